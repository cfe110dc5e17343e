//! Where readings go to last: the store (history, stations, quarantine) and
//! the cache of each station's latest reading. Backends sit behind traits so
//! that the embedded defaults and the production services are chosen by
//! config.

pub mod archive;
mod memory;
mod postgres;
mod redis;
mod sqlite;

pub use memory::MemoryCache;
pub use postgres::PostgresStore;
pub use redis::RedisCache;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use std::sync::Arc;

use crate::config::{StorageSettings, StoreBackend};
use crate::domain::rollup::{Stats, Summary};
use crate::domain::{Reading, Resolution, Rollup, StationId};

/// Opens the configured store, applying migrations when `migrate` is set
/// (SQLite always migrates: it is the daemon's own file). PostgreSQL may
/// still be starting; it is retried with backoff for up to `wait`.
pub async fn open(
    settings: &StorageSettings,
    migrate: bool,
    wait: std::time::Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    match settings.backend {
        StoreBackend::Sqlite => {
            let path = settings.sqlite_path();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
            tracing::info!(path = %store.path().display(), "store open (sqlite)");
            Ok(Arc::new(store))
        }
        StoreBackend::Postgres => {
            let url = settings
                .postgres_url
                .as_ref()
                .ok_or_else(|| StoreError::Open {
                    path: "storage.postgres_url".into(),
                    reason: "not set".into(),
                })?;
            let store = PostgresStore::new(url.expose(), settings.postgres_pool)?;
            let deadline = tokio::time::Instant::now() + wait;
            let mut delay = std::time::Duration::from_millis(200);
            loop {
                let ready = if migrate {
                    store.migrate().await.map(Some)
                } else {
                    store.ping().await.map(|()| None)
                };
                match ready {
                    Ok(applied) => {
                        tracing::info!(migrations_applied = applied, "store open (postgres)");
                        return Ok(Arc::new(store));
                    }
                    Err(e) if tokio::time::Instant::now() + delay < deadline => {
                        tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64,
                            "postgres not reachable yet");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(std::time::Duration::from_secs(5));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
    /// Also record new readings in the archive outbox (a data lake is on).
    pub archive: bool,
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

/// The readings waiting in an outbox table (`archive_outbox`,
/// `rollup_outbox`), oldest first: `columns` (a store's reading columns),
/// then the outbox sequence number. The caller adds the limit.
pub(crate) fn outbox_readings(outbox: &str, columns: &str) -> String {
    let columns = columns
        .split(',')
        .map(|c| format!("o.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {columns}, x.seq FROM {outbox} x \
         JOIN observations o ON o.station_id = x.station_id AND o.observed_at = x.observed_at \
         ORDER BY x.seq"
    )
}

/// Upsert `SET` clauses, for both stores, that take a station's position
/// from its newest reading: a late reading only fills in what is missing.
pub(crate) const POSITION_FROM_NEWEST: &str = "\
    latitude = CASE WHEN excluded.last_seen >= stations.last_seen \
      THEN coalesce(excluded.latitude, stations.latitude) \
      ELSE coalesce(stations.latitude, excluded.latitude) END, \
    longitude = CASE WHEN excluded.last_seen >= stations.last_seen \
      THEN coalesce(excluded.longitude, stations.longitude) \
      ELSE coalesce(stations.longitude, excluded.longitude) END, \
    elevation_m = CASE WHEN excluded.last_seen >= stations.last_seen \
      THEN coalesce(excluded.elevation_m, stations.elevation_m) \
      ELSE coalesce(stations.elevation_m, excluded.elevation_m) END";

/// An alert to record.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub rule: String,
    /// `None` for the pipeline's own alerts.
    pub station_id: Option<StationId>,
    pub value: Option<f64>,
    pub message: String,
    pub fired_at: DateTime<Utc>,
}

/// The `station_id` column of an alert: the station, or empty for the
/// pipeline's own alerts (so the one-firing-per-rule index holds for them
/// too).
pub(crate) fn alert_subject(station: Option<&StationId>) -> &str {
    station.map_or("", StationId::as_str)
}

/// An alert as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AlertRecord {
    /// `None` while it could not be recorded (the store unreachable); it is
    /// recorded once the store answers again.
    pub id: Option<i64>,
    pub rule: String,
    /// `station` or `pipeline`.
    pub scope: &'static str,
    /// `None` for the pipeline's own alerts.
    pub station_id: Option<String>,
    /// `firing` or `resolved`.
    pub state: &'static str,
    pub value: Option<f64>,
    pub message: String,
    pub fired_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl AlertRecord {
    pub fn new(
        id: i64,
        rule: String,
        station_id: String,
        value: Option<f64>,
        message: String,
        fired_at: DateTime<Utc>,
        resolved_at: Option<DateTime<Utc>>,
    ) -> Self {
        let station_id = (!station_id.is_empty()).then_some(station_id);
        Self {
            id: Some(id),
            rule,
            scope: if station_id.is_some() {
                "station"
            } else {
                "pipeline"
            },
            station_id,
            state: if resolved_at.is_some() {
                "resolved"
            } else {
                "firing"
            },
            value,
            message,
            fired_at,
            resolved_at,
        }
    }
}

/// Which rollups to read.
#[derive(Debug, Clone)]
pub struct RollupQuery {
    pub station_id: StationId,
    pub resolution: Resolution,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: usize,
}

/// What one roll-up transaction did.
#[derive(Debug, Default, PartialEq)]
pub struct RolledUp {
    /// Readings taken from the outbox.
    pub readings: usize,
    /// The periods it changed, in (station, resolution, bucket) order.
    pub periods: Vec<(StationId, Resolution, DateTime<Utc>)>,
    /// When asked for: those periods as they now stand, in the same order.
    pub changed: Vec<(StationId, Resolution, Rollup)>,
}

impl RolledUp {
    /// `readings` taken, whose partial rollups were `deltas` (in key order).
    pub fn of(readings: usize, deltas: &[crate::domain::rollup::RollupDelta]) -> Self {
        let mut periods: Vec<(StationId, Resolution, DateTime<Utc>)> = Vec::new();
        for d in deltas {
            if periods
                .last()
                .is_none_or(|(s, r, b)| (s, *r, *b) != (&d.station_id, d.resolution, d.bucket))
            {
                periods.push((d.station_id.clone(), d.resolution, d.bucket));
            }
        }
        Self {
            readings,
            periods,
            changed: Vec::new(),
        }
    }
}

/// Rows of (station, resolution, bucket, variable, stats) as an upsert
/// returns them, ordered by period, as the periods they make up.
pub(crate) fn changed_from_rows(
    rows: impl IntoIterator<Item = (StationId, Resolution, DateTime<Utc>, String, Stats)>,
) -> Vec<(StationId, Resolution, Rollup)> {
    let mut out: Vec<(StationId, Resolution, Rollup)> = Vec::new();
    for (station, resolution, bucket, variable, stats) in rows {
        let same = out
            .last()
            .is_some_and(|(s, r, p)| *s == station && *r == resolution && p.bucket == bucket);
        if !same {
            out.push((
                station,
                resolution,
                Rollup {
                    bucket,
                    variables: Default::default(),
                },
            ));
        }
        let (_, _, last) = out.last_mut().expect("just pushed");
        last.variables.insert(variable, Summary::from(&stats));
    }
    out
}

/// Rows of (bucket, variable, stats), ordered by bucket, as periods.
pub fn rollups_from_rows(
    rows: impl IntoIterator<Item = (DateTime<Utc>, String, Stats)>,
) -> Vec<Rollup> {
    let mut out: Vec<Rollup> = Vec::new();
    for (bucket, variable, stats) in rows {
        if out.last().is_none_or(|r| r.bucket != bucket) {
            out.push(Rollup {
                bucket,
                variables: Default::default(),
            });
        }
        let last = out.last_mut().expect("just pushed");
        last.variables.insert(variable, Summary::from(&stats));
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("store task failed: {0}")]
    Task(String),
    #[error("postgres: {0}")]
    Postgres(String),
    /// The store refused the data itself (PostgreSQL SQLSTATE classes 22
    /// and 23): writing the same again fails the same way.
    #[error("{0}")]
    Rejected(String),
}

impl StoreError {
    /// Whether writing the same data again cannot succeed, as opposed to a
    /// store that is unreachable or busy for now.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Rejected(_) => true,
            Self::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::ConstraintViolation
                        | rusqlite::ErrorCode::TooBig
                        | rusqlite::ErrorCode::TypeMismatch
                )
            ),
            _ => false,
        }
    }
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
    /// Records an alert that fired; a rule already firing for the station
    /// is left as it is. Returns the alert.
    async fn fire_alert(&self, alert: NewAlert) -> Result<AlertRecord, StoreError>;
    /// Marks the rule's firing alert for the station resolved, if any.
    async fn resolve_alert(
        &self,
        rule: &str,
        station: Option<&StationId>,
        at: DateTime<Utc>,
    ) -> Result<Option<AlertRecord>, StoreError>;
    /// Alerts, newest first: all, only firing (`Some(true)`) or only
    /// resolved (`Some(false)`).
    async fn alerts(
        &self,
        firing: Option<bool>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError>;
    /// Adds up to `limit` new readings from the rollup outbox to the
    /// rollups and removes them from the outbox, in one transaction.
    /// Returns how many it took; fewer than `limit` means none are left.
    /// With `changes`, also the periods it changed as they now stand, read
    /// from the upsert itself (for live clients).
    async fn roll_up(&self, limit: usize, changes: bool) -> Result<RolledUp, StoreError>;
    /// A station's rollups at one resolution with periods starting in
    /// `[from, to)`, oldest first, at most `limit` periods.
    async fn rollups(&self, query: RollupQuery) -> Result<Vec<Rollup>, StoreError>;
    /// Stored readings not yet handed to the data lake, oldest first, with
    /// their outbox sequence numbers.
    async fn archive_pending(&self, limit: usize) -> Result<Vec<(i64, Reading)>, StoreError>;
    /// Forgets the outbox entries up to and including `seq`.
    async fn archive_done(&self, seq: i64) -> Result<(), StoreError>;
    /// Quarantined messages, newest first.
    async fn quarantine(
        &self,
        limit: usize,
        before_id: Option<i64>,
    ) -> Result<Vec<StoredQuarantine>, StoreError>;
}

/// The latest reading of each station, for the live views and `/latest`.
/// A cache is never the only copy: when it cannot answer, callers fall back
/// to the store, so its errors are logged and counted here, not returned.
#[async_trait]
pub trait LatestCache: Send + Sync + 'static {
    /// Keeps each reading that is newer than the one held for its station.
    async fn put_newer(&self, readings: &[Reading]);
    async fn get(&self, id: &StationId) -> Option<Reading>;
    async fn all(&self) -> Vec<Reading>;
    /// A number that changes whenever what [`LatestCache::all`] returns
    /// may have changed, so that an answer built from it can be reused
    /// until then; `None` when the cache cannot tell (it is shared).
    fn version(&self) -> Option<u64> {
        None
    }
    /// Whether the cache answers, for `/ready`.
    async fn ping(&self) -> Result<(), String> {
        Ok(())
    }
}
