//! Where readings go to last: the store (history, stations, quarantine) and
//! the cache of each station's latest reading. Backends sit behind traits so
//! that the embedded defaults and the production services are chosen by
//! config.

mod memory;
mod sqlite;

pub use memory::MemoryCache;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Reading, StationId};

/// A message that was not accepted as a reading, kept for inspection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineRecord {
    pub received_at: DateTime<Utc>,
    /// Where it came from: the MQTT topic, or the HTTP route.
    pub source: String,
    pub station_id: Option<StationId>,
    pub reason_code: &'static str,
    pub reason: String,
    /// The raw bytes, cut to the configured bound.
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// Size of the payload as received, before any cut.
    pub payload_bytes: usize,
}

/// A quarantine record as stored, with its id.
#[derive(Debug, Clone, Serialize)]
pub struct StoredQuarantine {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub station_id: Option<String>,
    pub reason_code: String,
    pub reason: String,
    /// The stored bytes, as text where they are UTF-8, lossily otherwise.
    pub payload: String,
    pub payload_bytes: usize,
    pub truncated: bool,
}

/// A station as the store knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Station {
    pub station_id: StationId,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub elevation_m: Option<f64>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub readings: Vec<Reading>,
    pub quarantine: Vec<QuarantineRecord>,
}

/// What a batch write did: for each reading, whether it was new (false for a
/// redelivered duplicate).
#[derive(Debug)]
pub struct WriteOutcome {
    pub inserted: Vec<bool>,
}

/// A bounded time range query of one station's history.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub station_id: StationId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("store task failed: {0}")]
    Task(String),
}

/// Durable history. Writes are idempotent on (station_id, observed_at).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes one batch in one transaction.
    async fn write_batch(
        &self,
        batch: std::sync::Arc<WriteBatch>,
    ) -> Result<WriteOutcome, StoreError>;
    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn stations(&self) -> Result<Vec<Station>, StoreError>;
    async fn station(&self, id: &StationId) -> Result<Option<Station>, StoreError>;
    async fn latest(&self, id: &StationId) -> Result<Option<Reading>, StoreError>;
    /// Readings in `[from, to)`, oldest first, at most `limit`.
    async fn readings(&self, query: HistoryQuery) -> Result<Vec<Reading>, StoreError>;
    /// Quarantined messages, newest first.
    async fn quarantine(
        &self,
        limit: usize,
        before_id: Option<i64>,
    ) -> Result<Vec<StoredQuarantine>, StoreError>;
}

/// The latest reading of each station, for the live views and `/latest`.
pub trait LatestCache: Send + Sync + 'static {
    /// Keeps each reading that is newer than the one held for its station.
    fn put_newer(&self, readings: &[Reading]);
    fn get(&self, id: &StationId) -> Option<Reading>;
    fn all(&self) -> Vec<Reading>;
}
