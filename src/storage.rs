//! Where readings go to last: the store (history, stations, quarantine) and
//! the cache of each station's latest reading. Backends sit behind traits so
//! that the embedded defaults and the production services are chosen by
//! config.

pub mod archive;
mod memory;
mod postgres;
mod redis;
mod sqlite;
pub mod tls;

pub use memory::MemoryCache;
pub use postgres::{PostgresStore, session as postgres_session};
pub use redis::RedisCache;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use std::sync::Arc;

use crate::config::{StorageSettings, StoreTarget};
use crate::domain::rollup::{ROLLED_UP, Stats};
use crate::domain::{Reading, Resolution, Rollup, StationId};

/// Opens the configured store, applying migrations when `migrate` is set
/// (SQLite always migrates: it is the daemon's own file). PostgreSQL may
/// still be starting; it is retried with backoff for up to `wait`.
pub async fn open(
    settings: &StorageSettings,
    migrate: bool,
    wait: std::time::Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    let target = settings.target().map_err(|e| StoreError::Open {
        path: e.key,
        reason: e.reason,
    })?;
    match target {
        StoreTarget::Sqlite => {
            let path = settings.sqlite_path();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
            tracing::info!(path = %store.path().display(), "store open (sqlite)");
            Ok(Arc::new(store))
        }
        StoreTarget::Postgres { url, tls } => {
            let store = PostgresStore::new(url.expose(), settings.postgres_pool.get(), &tls)?;
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
    /// Size of the payload as received, before any cut (with the value of
    /// any credential replaced by `redacted`).
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
    /// The stored bytes, as text where they are UTF-8, lossily otherwise;
    /// the value of any credential they carried (`password`, `passkey`,
    /// `api_key`, `apikey`, `token`, `secret`) reads `redacted`.
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

/// A station with its latest reading, as the API and the live snapshot show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StationView {
    #[serde(flatten)]
    pub station: Station,
    /// The name given in `[stations.<id>]`, or null.
    pub name: Option<String>,
    /// `reporting` when heard from in the last 10 minutes, else `silent`.
    pub status: StationStatus,
    pub latest: Option<Reading>,
}

/// Whether a station is heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StationStatus {
    Reporting,
    Silent,
}

impl StationStatus {
    /// Stations heard from within this long count as reporting.
    pub const WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reporting => "reporting",
            Self::Silent => "silent",
        }
    }

    pub fn of(
        last_seen: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        if now - last_seen <= Self::WINDOW {
            Self::Reporting
        } else {
            Self::Silent
        }
    }
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
    /// The outbox entry of the batch's new readings (`None` when nothing
    /// was new): the aggregator and the archiver delete it once they have
    /// used the readings.
    pub seq: Option<i64>,
}

/// A committed batch's new readings, handed in memory from the persister to
/// the aggregator and the archiver, with the sequence number of the outbox
/// entry that records them in the store until they are used.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub seq: i64,
    pub readings: Arc<[Reading]>,
}

/// Which outbox entries to read back: those written more than `older_than`
/// ago (a batch just committed is on its way in memory to the actors that
/// use it, which delete its entry first), at most `limit` of them, oldest
/// first. They are what a crash or a restart left.
#[derive(Debug, Clone, Copy)]
pub struct Leftovers {
    pub older_than: std::time::Duration,
    pub limit: usize,
}

impl Leftovers {
    /// How long a committed batch may take to reach the actors that use
    /// it before its entry counts as left over.
    pub const IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(10);

    /// Entries older than `older_than`, 20 at a time (a batch is at most a
    /// few thousand readings).
    pub fn older_than(older_than: std::time::Duration) -> Self {
        Self {
            older_than,
            limit: 20,
        }
    }
}

/// The committed batches an actor holds until it has used them, oldest
/// first, at most `max` readings: beyond, the oldest are let go (while the
/// store or the disk fails), and their outbox entries bring them back as
/// leftovers.
#[derive(Debug)]
pub struct HeldBatches {
    batches: Vec<StoredBatch>,
    readings: usize,
    max: usize,
}

impl HeldBatches {
    pub fn new(max: usize) -> Self {
        Self {
            batches: Vec::new(),
            readings: 0,
            max,
        }
    }

    pub fn push(&mut self, batch: StoredBatch) {
        self.readings += batch.readings.len();
        self.batches.push(batch);
        let mut over = 0;
        while self.readings > self.max && over < self.batches.len() {
            self.readings -= self.batches[over].readings.len();
            over += 1;
        }
        self.batches.drain(..over);
    }

    /// Readings held.
    pub fn readings(&self) -> usize {
        self.readings
    }

    pub fn batches(&self) -> &[StoredBatch] {
        &self.batches
    }

    pub fn take(&mut self) -> Vec<StoredBatch> {
        self.readings = 0;
        std::mem::take(&mut self.batches)
    }
}

/// A bounded time range query of one station's history.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub station_id: StationId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub limit: usize,
}

impl HistoryQuery {
    /// The query for the page after `page`, which this query returned;
    /// `None` when `page` was the last (not full). Readings are ordered by
    /// time and a station has one per instant, so the next page starts a
    /// microsecond (storage's resolution) after the last one.
    pub fn next_page(&self, page: &[Reading]) -> Option<HistoryQuery> {
        let last = page.last().filter(|_| page.len() == self.limit)?;
        Some(HistoryQuery {
            from: last.observed_at + chrono::TimeDelta::microseconds(1),
            ..self.clone()
        })
    }
}

/// Readings read back for outbox entries, grouped by entry in the order of
/// `seqs`; an entry whose readings are gone (deleted since) is kept, empty,
/// so that it is cleared all the same.
pub(crate) fn stored_batches(seqs: &[i64], readings: Vec<(i64, Reading)>) -> Vec<StoredBatch> {
    let mut by_seq: std::collections::HashMap<i64, Vec<Reading>> =
        seqs.iter().map(|s| (*s, Vec::new())).collect();
    for (seq, reading) in readings {
        by_seq.entry(seq).or_default().push(reading);
    }
    seqs.iter()
        .map(|seq| StoredBatch {
            seq: *seq,
            readings: by_seq.remove(seq).unwrap_or_default().into(),
        })
        .collect()
}

/// Per station, what a set of new readings says about it: its position at
/// its newest reading (each coordinate from the newest reading that has
/// it), and its first and last observation times.
pub(crate) struct StationUpdate {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub elevation_m: Option<f64>,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// The station updates of `readings`, in station id order (so concurrent
/// writers lock rows in the same order and never deadlock).
pub(crate) fn station_updates<'a>(
    readings: impl IntoIterator<Item = &'a Reading>,
) -> std::collections::BTreeMap<&'a str, StationUpdate> {
    let mut updates: std::collections::BTreeMap<&str, StationUpdate> =
        std::collections::BTreeMap::new();
    for r in readings {
        let u = updates
            .entry(r.station_id.as_str())
            .or_insert(StationUpdate {
                latitude: None,
                longitude: None,
                elevation_m: None,
                first: r.observed_at,
                last: r.observed_at,
            });
        u.first = u.first.min(r.observed_at);
        if r.observed_at >= u.last {
            u.last = r.observed_at;
            u.latitude = r.latitude.or(u.latitude);
            u.longitude = r.longitude.or(u.longitude);
            u.elevation_m = r.elevation_m.or(u.elevation_m);
        } else {
            u.latitude = u.latitude.or(r.latitude);
            u.longitude = u.longitude.or(r.longitude);
            u.elevation_m = u.elevation_m.or(r.elevation_m);
        }
    }
    updates
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
    /// Readings added to the rollups.
    pub readings: usize,
    /// Outbox entries read back (left over); as many as asked for means
    /// more may be waiting.
    pub leftovers: usize,
    /// The periods it changed, in (station, resolution, bucket) order.
    pub periods: Vec<(StationId, Resolution, DateTime<Utc>)>,
    /// When asked for: those periods as they now stand, in the same order.
    pub changed: Vec<(StationId, Resolution, Rollup)>,
}

impl RolledUp {
    /// `readings` rolled up, whose partial rollups were `deltas` (in key
    /// order).
    pub fn of(readings: usize, deltas: &[crate::domain::rollup::RollupDelta]) -> Self {
        Self {
            readings,
            leftovers: 0,
            periods: deltas
                .iter()
                .map(|d| (d.station_id.clone(), d.resolution, d.bucket))
                .collect(),
            changed: Vec::new(),
        }
    }
}

/// What each variable's rollup columns hold, in order: `<variable>_count`,
/// `_min`, `_max`, `_sum`, `_last`, `_last_at` (count 0: no value) and
/// `_suspect` (how many of the values counted were suspect).
pub(crate) const STATS_COLUMNS: [&str; 7] =
    ["count", "min", "max", "sum", "last", "last_at", "suspect"];

/// The wind direction's rollup columns, after every variable's (see
/// [`crate::domain::rollup::WindStats`]): directions counted, suspect ones, the sums of their unit
/// vectors' east and north components, and the direction of the strongest
/// gust (the one with `wind_gust_ms_max`).
pub(crate) const WIND_COLUMNS: [&str; 5] = [
    "wind_direction_count",
    "wind_direction_suspect",
    "wind_direction_east",
    "wind_direction_north",
    "wind_gust_direction_deg",
];

/// The rollup columns of every variable, in `ROLLED_UP` order, then the
/// wind direction's.
pub(crate) fn rollup_columns() -> String {
    ROLLED_UP
        .iter()
        .flat_map(|v| STATS_COLUMNS.iter().map(move |c| format!("{v}_{c}")))
        .chain(WIND_COLUMNS.iter().map(|c| (*c).to_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the wind direction's columns start, after the variables'.
pub(crate) const WIND_AT: usize = STATS_COLUMNS.len() * ROLLED_UP.len();

/// The upsert `SET` clauses that add a delta (`excluded`) to a stored
/// period (`rollups`), given the store's two-argument minimum and maximum
/// (a variable without values has NULL min, max, last and last_at).
pub(crate) fn rollup_merge(min: &str, max: &str) -> String {
    let (r, e) = ("rollups", "excluded");
    // The gust direction follows the stronger gust: compared before either
    // maximum is updated (SET reads the stored row as it was).
    let wind = format!(
        "wind_direction_count = {r}.wind_direction_count + {e}.wind_direction_count, \
         wind_direction_suspect = {r}.wind_direction_suspect + {e}.wind_direction_suspect, \
         wind_direction_east = {r}.wind_direction_east + {e}.wind_direction_east, \
         wind_direction_north = {r}.wind_direction_north + {e}.wind_direction_north, \
         wind_gust_direction_deg = CASE WHEN {e}.wind_gust_ms_max IS NOT NULL \
           AND ({r}.wind_gust_ms_max IS NULL OR {e}.wind_gust_ms_max > {r}.wind_gust_ms_max) \
           THEN {e}.wind_gust_direction_deg ELSE {r}.wind_gust_direction_deg END"
    );
    ROLLED_UP
        .iter()
        .map(|v| {
            format!(
                "{v}_count = {r}.{v}_count + {e}.{v}_count, \
                 {v}_min = coalesce({min}({r}.{v}_min, {e}.{v}_min), {r}.{v}_min, {e}.{v}_min), \
                 {v}_max = coalesce({max}({r}.{v}_max, {e}.{v}_max), {r}.{v}_max, {e}.{v}_max), \
                 {v}_sum = {r}.{v}_sum + {e}.{v}_sum, \
                 {v}_last = CASE WHEN {e}.{v}_last_at IS NOT NULL AND ({r}.{v}_last_at IS NULL \
                   OR {e}.{v}_last_at >= {r}.{v}_last_at) THEN {e}.{v}_last ELSE {r}.{v}_last END, \
                 {v}_last_at = coalesce({max}({r}.{v}_last_at, {e}.{v}_last_at), \
                   {r}.{v}_last_at, {e}.{v}_last_at), \
                 {v}_suspect = {r}.{v}_suspect + {e}.{v}_suspect"
            )
        })
        .chain([wind])
        .collect::<Vec<_>>()
        .join(", ")
}

/// A variable's stats from its rollup columns, as a store reads them.
pub(crate) fn stats_of(
    count: i64,
    min: Option<f64>,
    max: Option<f64>,
    sum: f64,
    last: Option<f64>,
    last_at: Option<DateTime<Utc>>,
    suspect: i64,
) -> Option<Stats> {
    (count > 0).then(|| Stats {
        count,
        min: min.unwrap_or(f64::NAN),
        max: max.unwrap_or(f64::NAN),
        sum,
        last: last.unwrap_or(f64::NAN),
        last_at: last_at.unwrap_or_default(),
        suspect,
    })
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

// The store, split by concern: each actor takes only the part it uses
// (the persister a `ReadingStore`, the aggregator a `RollupStore`, ...);
// the web side and the composition root hold the whole `Store`.

/// Readings and stations: what the persister writes and history reads.
/// Writes are idempotent on (station_id, observed_at).
#[async_trait]
pub trait ReadingStore: Send + Sync + 'static {
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
    /// Called once the readings have stopped coming for a while: hand
    /// back the caches a burst filled (they fill again with the next).
    /// Nothing to do for a store whose caches live in another process.
    async fn release_memory(&self) {}
}

/// Alerts as they fire and resolve.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
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
    /// Queues `body` (an alert as the webhook is sent it) for posting.
    async fn queue_delivery(&self, body: &str) -> Result<(), StoreError>;
    /// The oldest queued post, if it is due by `now`: posts go out in
    /// order, so a later one waits for it.
    async fn next_delivery(&self, now: DateTime<Utc>)
    -> Result<Option<QueuedDelivery>, StoreError>;
    /// Done with post `id`: made, or given up.
    async fn delivery_done(&self, id: i64) -> Result<(), StoreError>;
    /// Post `id` failed; it is tried again from `next_at`.
    async fn delivery_failed(&self, id: i64, next_at: DateTime<Utc>) -> Result<(), StoreError>;
}

/// An alert queued for the webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedDelivery {
    pub id: i64,
    /// What is posted: `{"alert": Alert}`.
    pub body: String,
    /// Posts of it that failed so far.
    pub attempts: i32,
}

/// Per-minute and per-hour rollups, kept in step with the stored readings
/// through the rollup outbox.
#[async_trait]
pub trait RollupStore: Send + Sync + 'static {
    /// Adds stored readings to the rollups, in one transaction: the `held`
    /// batches (handed over in memory) and the `leftovers` (read back), each
    /// counted only if its rollup outbox entry is still there, and the entry
    /// deleted with it; so every reading counts exactly once, whoever else
    /// holds it. With `changes`, also returns the periods it changed as they
    /// now stand, read from the upsert itself (for live clients).
    async fn roll_up(
        &self,
        held: &[StoredBatch],
        leftovers: Leftovers,
        changes: bool,
    ) -> Result<RolledUp, StoreError>;
    /// A station's rollups at one resolution with periods starting in
    /// `[from, to)`, oldest first, at most `limit` periods.
    async fn rollups(&self, query: RollupQuery) -> Result<Vec<Rollup>, StoreError>;
}

/// The archive outbox: stored batches the data lake has not taken yet.
#[async_trait]
pub trait ArchiveOutbox: Send + Sync + 'static {
    /// Archive outbox entries nobody holds, with their readings read back.
    async fn archive_leftovers(&self, leftovers: Leftovers)
    -> Result<Vec<StoredBatch>, StoreError>;
    /// Which of the archive outbox entries `seqs` are still there (not
    /// spooled already as leftovers).
    async fn archive_present(&self, seqs: &[i64]) -> Result<Vec<i64>, StoreError>;
    /// Forgets the archive outbox entries `seqs` (their readings are in
    /// the spool).
    async fn archive_done(&self, seqs: &[i64]) -> Result<(), StoreError>;
}

/// Messages that could not be readings, as stored.
#[async_trait]
pub trait QuarantineLog: Send + Sync + 'static {
    /// Quarantined messages, newest first.
    async fn quarantine(
        &self,
        limit: usize,
        before_id: Option<i64>,
    ) -> Result<Vec<StoredQuarantine>, StoreError>;
}

/// Durable history: every concern at once, as SQLite and PostgreSQL
/// provide it.
pub trait Store: ReadingStore + AlertStore + RollupStore + ArchiveOutbox + QuarantineLog {}

impl<T: ReadingStore + AlertStore + RollupStore + ArchiveOutbox + QuarantineLog> Store for T {}

/// The latest reading of each station, for the live views and `/latest`.
/// A cache is never the only copy: when it cannot answer, callers fall back
/// to the store, so its errors are logged and counted here, not returned.
#[async_trait]
pub trait LatestCache: Send + Sync + 'static {
    /// Keeps each reading that is newer than the one held for its station.
    async fn put_newer(&self, readings: &[Reading]);
    async fn get(&self, id: &StationId) -> Option<Reading>;
    async fn all(&self) -> Vec<Reading>;
    /// The latest readings of these stations, those the cache holds.
    async fn many(&self, ids: &[StationId]) -> Vec<Reading> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.get(id).await {
                found.push(r);
            }
        }
        found
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Observation, QcReport};

    /// A full page continues a microsecond after its last reading; a
    /// short or empty one is the last.
    #[test]
    fn a_history_query_pages_on_from_its_last_reading() {
        let at: DateTime<Utc> = "2025-01-13T10:00:00Z".parse().unwrap();
        let station = StationId::parse("WS001").unwrap();
        let reading = |minute: i64| {
            let t = at + chrono::TimeDelta::minutes(minute);
            Reading::new(Observation::new(station.clone(), t), t, QcReport::default())
        };
        let query = HistoryQuery {
            station_id: station.clone(),
            from: at,
            to: at + chrono::TimeDelta::days(1),
            limit: 2,
        };
        let next = query.next_page(&[reading(0), reading(5)]).unwrap();
        assert_eq!(
            next.from,
            at + chrono::TimeDelta::microseconds(5 * 60_000_000 + 1)
        );
        assert_eq!((next.to, next.limit), (query.to, query.limit));
        assert!(query.next_page(&[reading(0)]).is_none());
        assert!(query.next_page(&[]).is_none());
    }

    fn batch(seq: i64, readings: usize) -> StoredBatch {
        let at = "2025-01-13T10:00:00Z".parse().unwrap();
        let obs = Observation::new(StationId::parse("WS001").unwrap(), at);
        let reading = Reading::new(obs, at, QcReport::default());
        StoredBatch {
            seq,
            readings: vec![reading; readings].into(),
        }
    }

    /// Past its bound, the oldest batches are let go, whole.
    #[test]
    fn held_batches_let_the_oldest_go_past_their_bound() {
        let mut held = HeldBatches::new(5);
        held.push(batch(1, 2));
        held.push(batch(2, 2));
        assert_eq!(held.readings(), 4);
        held.push(batch(3, 3));
        let seqs: Vec<i64> = held.batches().iter().map(|b| b.seq).collect();
        assert_eq!((seqs, held.readings()), (vec![2, 3], 5));
        assert_eq!(held.take().len(), 2);
        assert_eq!((held.batches().len(), held.readings()), (0, 0));
    }
}
