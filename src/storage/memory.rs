use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::LatestCache;
use crate::domain::{Reading, StationId};

/// The embedded cache: a map in the daemon's memory.
#[derive(Debug, Default)]
pub struct MemoryCache {
    latest: RwLock<HashMap<StationId, Reading>>,
    /// Bumped by every change.
    version: AtomicU64,
}

#[async_trait::async_trait]
impl LatestCache for MemoryCache {
    async fn put_newer(&self, readings: &[Reading]) {
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        for reading in readings {
            match latest.get(&reading.station_id) {
                Some(held) if held.observed_at >= reading.observed_at => {}
                _ => {
                    latest.insert(reading.station_id.clone(), reading.clone());
                    self.version.fetch_add(1, Ordering::Release);
                }
            }
        }
    }

    fn version(&self) -> Option<u64> {
        Some(self.version.load(Ordering::Acquire))
    }

    async fn get(&self, id: &StationId) -> Option<Reading> {
        let latest = self.latest.read().unwrap_or_else(|e| e.into_inner());
        latest.get(id).cloned()
    }

    async fn all(&self) -> Vec<Reading> {
        let latest = self.latest.read().unwrap_or_else(|e| e.into_inner());
        latest.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Observation;

    fn reading(at: &str, t: f64) -> Reading {
        let mut obs = Observation::new(StationId::parse("WS001").unwrap(), at.parse().unwrap());
        obs.temperature_c = Some(t);
        Reading::new(obs, at.parse().unwrap(), crate::domain::QcReport::default())
    }

    #[tokio::test]
    async fn a_late_reading_does_not_replace_a_newer_one() {
        let cache = MemoryCache::default();
        cache
            .put_newer(&[reading("2025-01-13T10:00:00Z", 1.0)])
            .await;
        cache
            .put_newer(&[reading("2025-01-13T09:00:00Z", 2.0)])
            .await;
        let id = StationId::parse("WS001").unwrap();
        assert_eq!(cache.get(&id).await.unwrap().temperature_c, Some(1.0));
        cache
            .put_newer(&[reading("2025-01-13T11:00:00Z", 3.0)])
            .await;
        assert_eq!(cache.get(&id).await.unwrap().temperature_c, Some(3.0));
        assert_eq!(cache.all().await.len(), 1);
    }
}
