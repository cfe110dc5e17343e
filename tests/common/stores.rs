//! Checks that every store must pass, run against each backend by the
//! tests of that backend.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use isobar::domain::{Observation, QcConfig, Reading, Resolution, StationId, StationQc};
use isobar::storage::{RollupQuery, Store, WriteBatch};

fn reading(station: &str, at: &str, t: f64) -> Reading {
    let at: DateTime<Utc> = at.parse().unwrap();
    let mut obs = Observation::new(StationId::parse(station).unwrap(), at);
    obs.temperature_c = Some(t);
    obs.humidity_pct = Some(60.0);
    let qc = StationQc::default().check(&obs, at, &QcConfig::default());
    Reading::new(obs, at, qc)
}

/// What a roll-up returns for live clients is each changed period as the
/// store then holds it, including what earlier roll-ups added to it.
pub async fn a_roll_up_returns_the_periods_it_changed_as_stored(store: &dyn Store) {
    let write = |readings: Vec<Reading>| {
        store.write_batch(Arc::new(WriteBatch {
            archive: false,
            readings,
            quarantine: vec![],
        }))
    };
    write(vec![reading("WS001", "2025-01-13T10:00:10Z", 1.0)])
        .await
        .unwrap();
    assert!(store.roll_up(100, false).await.unwrap().changed.is_empty());
    write(vec![
        reading("WS001", "2025-01-13T10:00:40Z", 3.0),
        reading("WS002", "2025-01-13T11:30:00Z", 7.0),
    ])
    .await
    .unwrap();
    let done = store.roll_up(100, true).await.unwrap();
    assert_eq!(done.readings, 2);
    let keys: Vec<(String, Resolution, String)> = done
        .changed
        .iter()
        .map(|(s, r, p)| (s.to_string(), *r, p.bucket.to_rfc3339()))
        .collect();
    let key = |s: &str, r, b: &str| (s.to_owned(), r, b.to_owned());
    assert_eq!(
        keys,
        [
            key("WS001", Resolution::Minute, "2025-01-13T10:00:00+00:00"),
            key("WS001", Resolution::Hour, "2025-01-13T10:00:00+00:00"),
            key("WS002", Resolution::Minute, "2025-01-13T11:30:00+00:00"),
            key("WS002", Resolution::Hour, "2025-01-13T11:00:00+00:00"),
        ]
    );
    for (station, resolution, period) in &done.changed {
        let stored = store
            .rollups(RollupQuery {
                station_id: station.clone(),
                resolution: *resolution,
                from: period.bucket,
                to: period.bucket + resolution.period(),
                limit: 1,
            })
            .await
            .unwrap();
        assert_eq!(stored, std::slice::from_ref(period));
    }
    // Both readings of WS001's minute, the first rolled up before.
    let t = done.changed[0].2.variables["temperature_c"];
    assert_eq!((t.count, t.min, t.max, t.last), (2, 1.0, 3.0, 3.0));
}
