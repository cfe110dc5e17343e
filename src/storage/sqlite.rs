//! The embedded store: one SQLite file in WAL mode, one writer connection
//! and a few reader connections so history queries never wait on a batch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::{
    AlertRecord, AlertStore, ArchiveOutbox, HistoryQuery, Leftovers, NewAlert,
    POSITION_FROM_NEWEST, QuarantineLog, ReadingStore, RollupQuery, RollupStore, Station,
    StoreError, StoredBatch, StoredQuarantine, WriteBatch, WriteOutcome,
};
use crate::domain::rollup::{self, ROLLED_UP, Variables, WindStats};
use crate::domain::{Derived, QcFlag, QcReport, Reading, Rollup, StationId};

/// The migrations, in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_more_measurements_and_qc.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_archive_outbox.sql"),
    ),
    (4, include_str!("../../migrations/sqlite/0004_rollups.sql")),
    (5, include_str!("../../migrations/sqlite/0005_alerts.sql")),
    (
        6,
        include_str!("../../migrations/sqlite/0006_batch_outboxes.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_rollups_by_period.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_rollup_suspect_counts.sql"),
    ),
    (
        9,
        include_str!("../../migrations/sqlite/0009_wind_direction_rollups.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_alert_deliveries.sql"),
    ),
];

const READERS: usize = 4;

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The connection the checkpoints run on (see
    /// [`checkpoint_in_background`]).
    checkpointer: Mutex<Connection>,
}

impl Inner {
    /// Hands back the page caches of every connection not in use: what a
    /// burst filled (up to `cache_size`, 2 MiB, on each) is freed once the
    /// store is quiet, and filled again by the next burst's first pages.
    /// SQLite allocates with the C library's malloc, which keeps freed
    /// memory in its arenas (one per thread that ran a query): the
    /// persister's [`crate::memory::give_back`], just after, trims them, or
    /// the pages would stay resident.
    fn release_memory(&self) {
        let connections = std::iter::once(&self.writer)
            .chain(&self.readers)
            .chain(std::iter::once(&self.checkpointer));
        for conn in connections {
            if let Ok(conn) = conn.try_lock()
                && let Err(e) = conn.release_memory()
            {
                tracing::debug!(error = %e, "SQLite could not release its cache");
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies any
    /// pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let mut writer = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        // A batch is acknowledged to the broker once committed, so a commit
        // must survive a power loss too: FULL syncs the WAL on every commit
        // (one fsync per batch, not per reading).
        writer.pragma_update(None, "synchronous", "FULL")?;
        // Checkpoints run on their own connection, off the writer's
        // commits (below); this one is only the backstop should they stall
        // (40 MiB of WAL), and the WAL is cut back to 64 MiB when it resets.
        writer.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        writer.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut writer)?;
        let checkpointer = Connection::open(path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        let readers = (0..READERS)
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>, rusqlite::Error>>()?;
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            checkpointer: Mutex::new(checkpointer),
        });
        checkpoint_in_background(Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let conn = inner.readers[i].lock().unwrap_or_else(|e| e.into_inner());
            f(&conn).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` on the writer connection, on a blocking thread.
    async fn write<T, E, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        E: Into<StoreError>,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn).map_err(Into::into)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// Copies the WAL into the database every second on its own connection and
/// thread, for as long as the store is open. A checkpoint inside a commit
/// (SQLite's default) made every thousandth commit copy 4 MiB and sync the
/// database file while the batch's deliveries waited; here a commit is the
/// WAL append and its fsync alone. PASSIVE: it never waits for readers or
/// the writer, and what it cannot copy now it copies next time.
fn checkpoint_in_background(store: std::sync::Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let Some(inner) = store.upgrade() else { break };
                let conn = inner.checkpointer.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "SQLite checkpoint failed; retrying in a second");
                }
            }
        });
    if let Err(e) = spawned {
        // The writer's own checkpoints (the backstop) still run.
        tracing::warn!(error = %e, "cannot start the SQLite checkpoint thread");
    }
}

/// Applies pending migrations; returns how many ran.
pub fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let mut applied = 0;
    for (version, sql) in MIGRATIONS {
        let tx = conn.transaction()?;
        let done: Option<i64> = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()?;
        if done.is_none() {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, micros(Utc::now())],
            )?;
            applied += 1;
        }
        tx.commit()?;
    }
    Ok(applied)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The rollup of the period starting at `bucket`, from column `first` on
/// (`rollup_columns`).
fn rollup_at(row: &Row<'_>, bucket: DateTime<Utc>, first: usize) -> rusqlite::Result<Rollup> {
    let mut out: Variables = [None; ROLLED_UP.len()];
    for (i, stats) in out.iter_mut().enumerate() {
        let at = first + super::STATS_COLUMNS.len() * i;
        *stats = super::stats_of(
            row.get(at)?,
            row.get(at + 1)?,
            row.get(at + 2)?,
            row.get(at + 3)?,
            row.get(at + 4)?,
            row.get::<_, Option<i64>>(at + 5)?.map(from_micros),
            row.get(at + 6)?,
        );
    }
    let at = first + super::WIND_AT;
    let wind = WindStats {
        count: row.get(at)?,
        suspect: row.get(at + 1)?,
        east: row.get(at + 2)?,
        north: row.get(at + 3)?,
        gust_direction: row.get(at + 4)?,
    };
    Ok(Rollup::of(bucket, &out, &wind))
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

const READING_COLUMNS: &str = "station_id, observed_at, received_at, latitude, longitude, \
    temperature_c, humidity_pct, pressure_hpa, wind_speed_ms, wind_direction_deg, \
    dew_point_c, heat_index_c, wind_chill_c, wind_gust_ms, elevation_m, \
    sea_level_pressure_hpa, feels_like_c, qc_status, qc";

/// Moves each station's first and last times and position by what
/// `readings` say, one upsert per station.
fn write_stations<'a>(
    tx: &Connection,
    readings: impl IntoIterator<Item = &'a Reading>,
) -> Result<(), rusqlite::Error> {
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT INTO stations \
           (station_id, latitude, longitude, elevation_m, first_seen, last_seen) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (station_id) DO UPDATE SET {POSITION_FROM_NEWEST}, \
           first_seen = min(stations.first_seen, excluded.first_seen), \
           last_seen = max(stations.last_seen, excluded.last_seen)",
    ))?;
    for (id, u) in super::station_updates(readings) {
        upsert.execute(params![
            id,
            u.latitude,
            u.longitude,
            u.elevation_m,
            micros(u.first),
            micros(u.last)
        ])?;
    }
    Ok(())
}

/// Outbox entries of `table` nobody holds, oldest first, with their
/// readings read back; with `take`, deleted in the same transaction.
fn read_leftovers(
    tx: &Connection,
    table: &str,
    leftovers: Leftovers,
    take: bool,
) -> Result<Vec<StoredBatch>, rusqlite::Error> {
    if leftovers.limit == 0 {
        return Ok(Vec::new());
    }
    let before =
        micros(Utc::now()) - i64::try_from(leftovers.older_than.as_micros()).unwrap_or(i64::MAX);
    let entries: Vec<(i64, String)> = tx
        .prepare_cached(&format!(
            "SELECT seq, keys FROM {table} \
             WHERE stored_at < ?1 ORDER BY seq LIMIT ?2"
        ))?
        .query_map(params![before, leftovers.limit as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut one = tx.prepare_cached(&format!(
        "SELECT {READING_COLUMNS} FROM observations WHERE station_id = ?1 AND observed_at = ?2"
    ))?;
    let mut seqs = Vec::with_capacity(entries.len());
    let mut readings = Vec::new();
    for (seq, keys) in entries {
        seqs.push(seq);
        // Written by `write` below; unreadable only if edited by hand, and
        // then there is nothing to read back.
        let keys: Vec<(String, i64)> = serde_json::from_str(&keys).unwrap_or_default();
        for (station, observed) in keys {
            if let Some(r) = one
                .query_row(params![station, observed], reading_from_row)
                .optional()?
            {
                readings.push((seq, r));
            }
        }
    }
    if take && !seqs.is_empty() {
        let list = serde_json::to_string(&seqs).expect("numbers serialise");
        tx.execute(
            &format!("DELETE FROM {table} WHERE seq IN (SELECT value FROM json_each(?1))"),
            [list],
        )?;
    }
    Ok(super::stored_batches(&seqs, readings))
}

fn reading_from_row(row: &Row<'_>) -> Result<Reading, rusqlite::Error> {
    reading_from_row_at(row, 0)
}

/// A reading from the row's columns from `at` on, in `READING_COLUMNS` order.
fn reading_from_row_at(row: &Row<'_>, at: usize) -> Result<Reading, rusqlite::Error> {
    let id: String = row.get(at)?;
    let station_id = StationId::parse(&id).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Reading {
        station_id,
        observed_at: from_micros(row.get(at + 1)?),
        received_at: from_micros(row.get(at + 2)?),
        latitude: row.get(at + 3)?,
        longitude: row.get(at + 4)?,
        temperature_c: row.get(at + 5)?,
        humidity_pct: row.get(at + 6)?,
        pressure_hpa: row.get(at + 7)?,
        wind_speed_ms: row.get(at + 8)?,
        wind_direction_deg: row.get(at + 9)?,
        wind_gust_ms: row.get(at + 13)?,
        elevation_m: row.get(at + 14)?,
        derived: Derived {
            dew_point_c: row.get(at + 10)?,
            heat_index_c: row.get(at + 11)?,
            wind_chill_c: row.get(at + 12)?,
            sea_level_pressure_hpa: row.get(at + 15)?,
            feels_like_c: row.get(at + 16)?,
        },
        qc: qc_from_columns(row.get(at + 17)?, row.get(at + 18)?).into(),
    })
}

/// The stored QC report; should its JSON ever be unreadable, the status
/// column still tells the worst flag.
fn qc_from_columns(status: String, json: String) -> QcReport {
    serde_json::from_str(&json).unwrap_or_else(|_| QcReport {
        status: QcFlag::parse(&status).unwrap_or(QcFlag::Suspect),
        ..QcReport::default()
    })
}

fn station_from_row(row: &Row<'_>) -> Result<Station, rusqlite::Error> {
    let id: String = row.get(0)?;
    let station_id = StationId::parse(&id).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Station {
        station_id,
        latitude: row.get(1)?,
        longitude: row.get(2)?,
        first_seen: from_micros(row.get(3)?),
        last_seen: from_micros(row.get(4)?),
        elevation_m: row.get(5)?,
    })
}

const ALERT_COLUMNS: &str = "id, rule, station_id, value, message, fired_at, resolved_at";

fn alert_from_row(row: &rusqlite::Row<'_>) -> Result<AlertRecord, rusqlite::Error> {
    Ok(AlertRecord::new(
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        from_micros(row.get(5)?),
        row.get::<_, Option<i64>>(6)?.map(from_micros),
    ))
}

fn write(conn: &mut Connection, batch: &WriteBatch) -> Result<WriteOutcome, rusqlite::Error> {
    let tx = conn.transaction()?;
    let mut inserted = Vec::with_capacity(batch.readings.len());
    {
        let mut insert = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO observations ({READING_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
                     ?18, ?19)"
        ))?;
        // Only new stations here, so a station is listed as soon as its
        // first reading is stored; their position and times follow with
        // the roll-up, once per station and roll-up.
        let mut station = tx.prepare_cached(
            "INSERT INTO stations \
               (station_id, latitude, longitude, elevation_m, first_seen, last_seen) \
             VALUES (?1, ?2, ?3, ?5, ?4, ?4) ON CONFLICT (station_id) DO NOTHING",
        )?;
        for r in &batch.readings {
            let observed = micros(r.observed_at);
            let n = insert.execute(params![
                r.station_id.as_str(),
                observed,
                micros(r.received_at),
                r.latitude,
                r.longitude,
                r.temperature_c,
                r.humidity_pct,
                r.pressure_hpa,
                r.wind_speed_ms,
                r.wind_direction_deg,
                r.derived.dew_point_c,
                r.derived.heat_index_c,
                r.derived.wind_chill_c,
                r.wind_gust_ms,
                r.elevation_m,
                r.derived.sea_level_pressure_hpa,
                r.derived.feels_like_c,
                r.qc.status.as_str(),
                serde_json::to_string(&r.qc).expect("a QC report always serialises"),
            ])?;
            inserted.push(n == 1);
            if n == 1 {
                station.execute(params![
                    r.station_id.as_str(),
                    r.latitude,
                    r.longitude,
                    observed,
                    r.elevation_m,
                ])?;
            }
        }
        let mut quarantine = tx.prepare_cached(
            "INSERT INTO quarantine \
             (received_at, source, station_id, reason_code, reason, payload, payload_bytes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for q in &batch.quarantine {
            quarantine.execute(params![
                micros(q.received_at),
                q.source,
                q.station_id.as_ref().map(StationId::as_str),
                q.reason_code,
                q.reason,
                q.payload,
                q.payload_bytes as i64,
            ])?;
        }
    }
    // One outbox entry for the batch's new readings, in each outbox.
    let mut seq = None;
    if inserted.iter().any(|new| *new) {
        let keys: Vec<(&str, i64)> = batch
            .readings
            .iter()
            .zip(&inserted)
            .filter(|(_, new)| **new)
            .map(|(r, _)| (r.station_id.as_str(), micros(r.observed_at)))
            .collect();
        let keys = serde_json::to_string(&keys).expect("keys serialise");
        let next: i64 = tx
            .prepare_cached("UPDATE stored_batch_seq SET last = last + 1 RETURNING last")?
            .query_row([], |row| row.get(0))?;
        let now = micros(Utc::now());
        tx.prepare_cached("INSERT INTO rollup_batches (seq, keys, stored_at) VALUES (?1, ?2, ?3)")?
            .execute(params![next, keys, now])?;
        if batch.archive {
            tx.prepare_cached(
                "INSERT INTO archive_batches (seq, keys, stored_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![next, keys, now])?;
        }
        seq = Some(next);
    }
    tx.commit()?;
    Ok(WriteOutcome { inserted, seq })
}

#[async_trait]
impl ReadingStore for SqliteStore {
    async fn release_memory(&self) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || inner.release_memory()).await;
    }
    async fn write_batch(&self, batch: Arc<WriteBatch>) -> Result<WriteOutcome, StoreError> {
        self.write(move |conn| write(conn, &batch)).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }
    async fn stations(&self) -> Result<Vec<Station>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT station_id, latitude, longitude, first_seen, last_seen, elevation_m \
                 FROM stations ORDER BY station_id",
            )?;
            stmt.query_map([], station_from_row)?.collect()
        })
        .await
    }
    async fn station(&self, id: &StationId) -> Result<Option<Station>, StoreError> {
        let id = id.clone();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT station_id, latitude, longitude, first_seen, last_seen, elevation_m \
                 FROM stations WHERE station_id = ?1",
            )?
            .query_row([id.as_str()], station_from_row)
            .optional()
        })
        .await
    }
    async fn latest(&self, id: &StationId) -> Result<Option<Reading>, StoreError> {
        let id = id.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {READING_COLUMNS} FROM observations WHERE station_id = ?1 \
                 ORDER BY observed_at DESC LIMIT 1"
            ))?
            .query_row([id.as_str()], reading_from_row)
            .optional()
        })
        .await
    }
    async fn readings(&self, q: HistoryQuery) -> Result<Vec<Reading>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {READING_COLUMNS} FROM observations \
                 WHERE station_id = ?1 AND observed_at >= ?2 AND observed_at < ?3 \
                 ORDER BY observed_at LIMIT ?4"
            ))?;
            stmt.query_map(
                params![
                    q.station_id.as_str(),
                    micros(q.from),
                    micros(q.to),
                    q.limit as i64
                ],
                reading_from_row,
            )?
            .collect()
        })
        .await
    }
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn fire_alert(&self, a: NewAlert) -> Result<AlertRecord, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO alerts (rule, station_id, value, message, fired_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (rule, station_id) WHERE resolved_at IS NULL DO NOTHING",
                params![
                    a.rule,
                    super::alert_subject(a.station_id.as_ref()),
                    a.value,
                    a.message,
                    micros(a.fired_at)
                ],
            )?;
            conn.query_row(
                &format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts \
                     WHERE rule = ?1 AND station_id = ?2 AND resolved_at IS NULL"
                ),
                params![a.rule, super::alert_subject(a.station_id.as_ref())],
                alert_from_row,
            )
        })
        .await
    }
    async fn resolve_alert(
        &self,
        rule: &str,
        station: Option<&StationId>,
        at: DateTime<Utc>,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let (rule, station) = (rule.to_owned(), super::alert_subject(station).to_owned());
        self.write(move |conn| {
            conn.query_row(
                &format!(
                    "UPDATE alerts SET resolved_at = ?3 \
                     WHERE rule = ?1 AND station_id = ?2 AND resolved_at IS NULL \
                     RETURNING {ALERT_COLUMNS}"
                ),
                params![rule, station, micros(at)],
                alert_from_row,
            )
            .optional()
        })
        .await
    }
    async fn alerts(
        &self,
        firing: Option<bool>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        self.read(move |c| {
            let filter = match firing {
                None => "",
                Some(true) => "WHERE resolved_at IS NULL",
                Some(false) => "WHERE resolved_at IS NOT NULL",
            };
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts {filter} ORDER BY fired_at DESC, id DESC LIMIT ?1"
            ))?;
            stmt.query_map([limit as i64], alert_from_row)?.collect()
        })
        .await
    }
    async fn queue_delivery(&self, body: &str) -> Result<(), StoreError> {
        let body = body.to_owned();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO alert_deliveries (body, next_at) VALUES (?1, ?2)",
                params![body, micros(Utc::now())],
            )
            .map(|_| ())
        })
        .await
    }
    async fn next_delivery(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<super::QueuedDelivery>, StoreError> {
        self.write(move |conn| {
            conn.query_row(
                "SELECT id, body, attempts, next_at FROM alert_deliveries ORDER BY id LIMIT 1",
                [],
                |r| {
                    Ok((
                        super::QueuedDelivery {
                            id: r.get(0)?,
                            body: r.get(1)?,
                            attempts: r.get(2)?,
                        },
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
            .map(|first| first.filter(|(_, at)| *at <= micros(now)).map(|(d, _)| d))
        })
        .await
    }
    async fn delivery_done(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute("DELETE FROM alert_deliveries WHERE id = ?1", params![id])
                .map(|_| ())
        })
        .await
    }
    async fn delivery_failed(&self, id: i64, next_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE alert_deliveries SET attempts = attempts + 1, next_at = ?2 WHERE id = ?1",
                params![id, micros(next_at)],
            )
            .map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl RollupStore for SqliteStore {
    async fn roll_up(
        &self,
        held: &[StoredBatch],
        leftovers: Leftovers,
        changes: bool,
    ) -> Result<super::RolledUp, StoreError> {
        let held = held.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            // The held batches whose entries are still there: the delete
            // is the gate (a batch rolled up already is not returned).
            let mut batches: Vec<StoredBatch> = Vec::with_capacity(held.len());
            {
                let mut gate =
                    tx.prepare_cached("DELETE FROM rollup_batches WHERE seq = ?1 RETURNING seq")?;
                for b in held {
                    if gate.query_row([b.seq], |_| Ok(())).optional()?.is_some() {
                        batches.push(b);
                    }
                }
            }
            let left = read_leftovers(&tx, "rollup_batches", leftovers, true)?;
            let left_over = left.len();
            batches.extend(left);
            let columns = super::rollup_columns();
            let placeholders = (1..=3 + super::WIND_AT + super::WIND_COLUMNS.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut upsert = tx.prepare_cached(&format!(
                "INSERT INTO rollups (station_id, resolution, bucket, {columns}) \
                 VALUES ({placeholders}) \
                 ON CONFLICT (station_id, resolution, bucket) DO UPDATE SET {} \
                 RETURNING {columns}",
                super::rollup_merge("min", "max"),
            ))?;
            let deltas = rollup::deltas(batches.iter().flat_map(|b| b.readings.iter()));
            let mut changed = Vec::new();
            for d in &deltas {
                use rusqlite::types::Value;
                let mut values = vec![
                    Value::Text(d.station_id.as_str().to_owned()),
                    Value::Text(d.resolution.as_str().to_owned()),
                    Value::Integer(micros(d.bucket)),
                ];
                for stats in &d.variables {
                    let real = |v: Option<f64>| v.map_or(Value::Null, Value::Real);
                    values.extend([
                        Value::Integer(stats.map_or(0, |s| s.count)),
                        real(stats.map(|s| s.min)),
                        real(stats.map(|s| s.max)),
                        Value::Real(stats.map_or(0.0, |s| s.sum)),
                        real(stats.map(|s| s.last)),
                        stats.map_or(Value::Null, |s| Value::Integer(micros(s.last_at))),
                        Value::Integer(stats.map_or(0, |s| s.suspect)),
                    ]);
                }
                let w = &d.wind;
                values.extend([
                    Value::Integer(w.count),
                    Value::Integer(w.suspect),
                    Value::Real(w.east),
                    Value::Real(w.north),
                    w.gust_direction.map_or(Value::Null, Value::Real),
                ]);
                let mut rows = upsert.query(rusqlite::params_from_iter(values))?;
                // Stepping the statement runs the upsert; the row it
                // returns, the period as it now stands, is kept only when
                // asked for.
                if let Some(row) = rows.next()?
                    && changes
                {
                    changed.push((
                        d.station_id.clone(),
                        d.resolution,
                        rollup_at(row, d.bucket, 0)?,
                    ));
                }
            }
            drop(upsert);
            write_stations(&tx, batches.iter().flat_map(|b| b.readings.iter()))?;
            tx.commit()?;
            let readings = batches.iter().map(|b| b.readings.len()).sum();
            let mut done = super::RolledUp::of(readings, &deltas);
            done.leftovers = left_over;
            done.changed = changed;
            Ok::<_, rusqlite::Error>(done)
        })
        .await
    }
    async fn rollups(&self, q: RollupQuery) -> Result<Vec<Rollup>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT bucket, {} FROM rollups \
                 WHERE station_id = ?1 AND resolution = ?2 AND bucket >= ?3 AND bucket < ?4 \
                 ORDER BY bucket LIMIT ?5",
                super::rollup_columns()
            ))?;
            stmt.query_map(
                params![
                    q.station_id.as_str(),
                    q.resolution.as_str(),
                    micros(q.from),
                    micros(q.to),
                    q.limit as i64
                ],
                |row| rollup_at(row, from_micros(row.get(0)?), 1),
            )?
            .collect()
        })
        .await
    }
}

#[async_trait]
impl ArchiveOutbox for SqliteStore {
    async fn archive_leftovers(
        &self,
        leftovers: Leftovers,
    ) -> Result<Vec<StoredBatch>, StoreError> {
        self.read(move |c| read_leftovers(c, "archive_batches", leftovers, false))
            .await
    }
    async fn archive_present(&self, seqs: &[i64]) -> Result<Vec<i64>, StoreError> {
        let seqs = serde_json::to_string(seqs).expect("numbers serialise");
        self.read(move |c| {
            c.prepare_cached(
                "SELECT seq FROM archive_batches \
                 WHERE seq IN (SELECT value FROM json_each(?1)) ORDER BY seq",
            )?
            .query_map([seqs], |row| row.get(0))?
            .collect()
        })
        .await
    }
    async fn archive_done(&self, seqs: &[i64]) -> Result<(), StoreError> {
        let seqs = serde_json::to_string(seqs).expect("numbers serialise");
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM archive_batches WHERE seq IN (SELECT value FROM json_each(?1))",
                [seqs],
            )
            .map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl QuarantineLog for SqliteStore {
    async fn quarantine(
        &self,
        limit: usize,
        before_id: Option<i64>,
    ) -> Result<Vec<StoredQuarantine>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, received_at, source, station_id, reason_code, reason, payload, \
                        payload_bytes \
                 FROM quarantine WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![before_id.unwrap_or(i64::MAX), limit as i64], |r| {
                let payload: Vec<u8> = r.get(6)?;
                let payload_bytes = r.get::<_, i64>(7)? as usize;
                Ok(StoredQuarantine {
                    id: r.get(0)?,
                    received_at: from_micros(r.get(1)?),
                    source: r.get(2)?,
                    station_id: r.get(3)?,
                    reason_code: r.get(4)?,
                    reason: r.get(5)?,
                    truncated: payload.len() < payload_bytes,
                    payload: String::from_utf8_lossy(&payload).into_owned(),
                    payload_bytes,
                })
            })?
            .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Observation;
    use crate::storage::QuarantineRecord;
    use chrono::Timelike;

    fn reading(station: &str, at: &str, t: f64) -> Reading {
        let mut obs = Observation::new(StationId::parse(station).unwrap(), at.parse().unwrap());
        obs.latitude = Some(52.5);
        obs.longitude = Some(13.4);
        obs.temperature_c = Some(t);
        obs.humidity_pct = Some(50.0);
        obs.pressure_hpa = Some(950.0);
        obs.elevation_m = Some(500.0);
        Reading::new(obs, at.parse().unwrap(), crate::domain::QcReport::default())
    }

    #[tokio::test]
    async fn writes_are_idempotent_on_station_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("isobar.sqlite3")).unwrap();
        let first = Arc::new(WriteBatch {
            archive: false,
            readings: vec![
                reading("WS001", "2025-01-13T10:00:00Z", 1.0),
                reading("WS001", "2025-01-13T10:01:00Z", 2.0),
            ],
            quarantine: vec![],
        });
        assert_eq!(
            store.write_batch(first.clone()).await.unwrap().inserted,
            [true, true]
        );
        assert_eq!(
            store.write_batch(first).await.unwrap().inserted,
            [false, false]
        );

        let id = StationId::parse("WS001").unwrap();
        let history = store
            .readings(HistoryQuery {
                station_id: id.clone(),
                from: "2025-01-13T00:00:00Z".parse().unwrap(),
                to: "2025-01-14T00:00:00Z".parse().unwrap(),
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0], reading("WS001", "2025-01-13T10:00:00Z", 1.0));
        assert_eq!(
            store.latest(&id).await.unwrap().unwrap().temperature_c,
            Some(2.0)
        );
        // Listed with its first batch; its times and position move with
        // the roll-up.
        let station = store.station(&id).await.unwrap().unwrap();
        assert_eq!(station.first_seen, station.last_seen);
        let all = crate::storage::Leftovers {
            older_than: std::time::Duration::ZERO,
            limit: 10,
        };
        store.roll_up(&[], all, false).await.unwrap();
        let station = store.station(&id).await.unwrap().unwrap();
        assert_eq!(
            station.last_seen,
            "2025-01-13T10:01:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // A late reading's position (from before the station moved) is not
        // taken; a newer one's is.
        let mut late = reading("WS001", "2025-01-13T09:00:00Z", 0.5);
        late.elevation_m = Some(120.0);
        let mut newer = reading("WS001", "2025-01-13T10:02:00Z", 0.5);
        newer.elevation_m = Some(510.0);
        for r in [late, newer] {
            store
                .write_batch(Arc::new(WriteBatch {
                    archive: false,
                    readings: vec![r.clone()],
                    quarantine: vec![],
                }))
                .await
                .unwrap();
            store.roll_up(&[], all, false).await.unwrap();
            let station = store.station(&id).await.unwrap().unwrap();
            let expected = if r.observed_at.hour() == 9 {
                500.0
            } else {
                510.0
            };
            assert_eq!(station.elevation_m, Some(expected));
        }
        assert_eq!(station.latitude, Some(52.5));
    }

    #[tokio::test]
    async fn quarantine_keeps_the_bytes_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("q.sqlite3")).unwrap();
        let record = QuarantineRecord {
            received_at: Utc::now(),
            source: "weather/WS001/observations".into(),
            station_id: Some(StationId::parse("WS001").unwrap()),
            reason_code: "malformed_json",
            reason: "payload is not valid reading JSON".into(),
            payload: b"not js".to_vec(),
            payload_bytes: 8,
        };
        store
            .write_batch(Arc::new(WriteBatch {
                archive: false,
                readings: vec![],
                quarantine: vec![record],
            }))
            .await
            .unwrap();
        let rows = store.quarantine(10, None).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].reason_code, "malformed_json");
        assert_eq!(rows[0].payload, "not js");
        assert!(rows[0].truncated);
    }

    #[tokio::test]
    async fn new_readings_wait_in_the_archive_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.sqlite3")).unwrap();
        let batch = || {
            Arc::new(WriteBatch {
                readings: vec![
                    reading("WS001", "2025-01-13T10:00:00Z", 1.0),
                    reading("WS002", "2025-01-13T10:00:00Z", 2.0),
                ],
                quarantine: vec![],
                archive: true,
            })
        };
        store.write_batch(batch()).await.unwrap();
        // A redelivery adds nothing to the outbox.
        store.write_batch(batch()).await.unwrap();
        let all = crate::storage::Leftovers {
            older_than: std::time::Duration::ZERO,
            limit: 10,
        };
        let pending = store.archive_leftovers(all).await.unwrap();
        assert_eq!(pending.len(), 1, "one entry for the batch");
        assert_eq!(pending[0].readings.len(), 2);
        assert_eq!(
            pending[0].readings[0],
            reading("WS001", "2025-01-13T10:00:00Z", 1.0)
        );
        assert_eq!(pending[0].readings[1].station_id.as_str(), "WS002");
        store.archive_done(&[pending[0].seq]).await.unwrap();
        assert!(store.archive_leftovers(all).await.unwrap().is_empty());
    }

    /// What an older database's per-reading outboxes held is carried into
    /// batch entries, and read back from them; its rollups, one row per
    /// variable, become one row per period.
    #[tokio::test]
    async fn an_older_database_is_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (
                     version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
            )
            .unwrap();
            let tx = conn.transaction().unwrap();
            for (version, sql) in &MIGRATIONS[..5] {
                tx.execute_batch(sql).unwrap();
                tx.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version])
                    .unwrap();
            }
            tx.commit().unwrap();
            let mut r = reading("WS001", "2025-01-13T10:00:00Z", 1.0);
            let write = |r: &Reading| {
                let at = micros(r.observed_at);
                conn.execute(
                    "INSERT INTO observations (station_id, observed_at, received_at, \
                       temperature_c, qc_status, qc) VALUES (?1, ?2, ?2, ?3, 'pass', '{}')",
                    params![r.station_id.as_str(), at, r.temperature_c],
                )
                .unwrap();
                for outbox in ["archive_outbox", "rollup_outbox"] {
                    conn.execute(
                        &format!("INSERT INTO {outbox} (station_id, observed_at) VALUES (?1, ?2)"),
                        params![r.station_id.as_str(), at],
                    )
                    .unwrap();
                }
            };
            write(&r);
            r.observed_at += chrono::TimeDelta::minutes(1);
            write(&r);
            let hour = micros("2025-01-13T10:00:00Z".parse().unwrap());
            conn.execute_batch(&format!(
                "INSERT INTO rollups VALUES \
                   ('WS009', '1h', {hour}, 'temperature_c', 2, 1.0, 3.0, 4.0, 3.0, {hour}), \
                   ('WS009', '1h', {hour}, 'humidity_pct', 1, 50.0, 50.0, 50.0, 50.0, {hour});"
            ))
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let periods = store
            .rollups(RollupQuery {
                station_id: StationId::parse("WS009").unwrap(),
                resolution: crate::domain::Resolution::Hour,
                from: "2025-01-13T00:00:00Z".parse().unwrap(),
                to: "2025-01-14T00:00:00Z".parse().unwrap(),
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(periods.len(), 1);
        let t = periods[0].variables["temperature_c"];
        assert_eq!(
            (t.count, t.min, t.max, t.mean, t.last),
            (2, 1.0, 3.0, 2.0, 3.0)
        );
        assert_eq!(periods[0].variables["humidity_pct"].count, 1);
        assert_eq!(periods[0].variables.len(), 2);
        let all = crate::storage::Leftovers {
            older_than: std::time::Duration::ZERO,
            limit: 10,
        };
        let archive = store.archive_leftovers(all).await.unwrap();
        assert_eq!(archive.len(), 1);
        assert_eq!(archive[0].readings.len(), 2);
        let rolled = store.roll_up(&[], all, false).await.unwrap();
        assert_eq!((rolled.readings, rolled.leftovers), (2, 1));
        // New entries are numbered after the carried ones.
        let seq = store
            .write_batch(Arc::new(WriteBatch {
                readings: vec![reading("WS003", "2025-01-13T10:00:00Z", 1.0)],
                quarantine: vec![],
                archive: true,
            }))
            .await
            .unwrap()
            .seq
            .unwrap();
        assert!(seq > archive[0].seq);
    }

    #[tokio::test]
    async fn quarantine_pages_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.sqlite3")).unwrap();
        let record = |n: u8| QuarantineRecord {
            received_at: Utc::now(),
            source: "weather/WS001/observations".into(),
            station_id: None,
            reason_code: "malformed_json",
            reason: "bad".into(),
            payload: vec![b'0' + n],
            payload_bytes: 1,
        };
        let quarantine = (0..3).map(record).collect();
        store
            .write_batch(Arc::new(WriteBatch {
                archive: false,
                readings: vec![],
                quarantine,
            }))
            .await
            .unwrap();
        let first = store.quarantine(2, None).await.unwrap();
        let payloads: Vec<&str> = first.iter().map(|q| q.payload.as_str()).collect();
        assert_eq!(payloads, ["2", "1"]);
        let rest = store.quarantine(2, Some(first[1].id)).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].payload, "0");
    }

    #[test]
    fn migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("m.sqlite3")).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), MIGRATIONS.len());
        assert_eq!(migrate(&mut conn).unwrap(), 0);
    }

    #[test]
    fn every_migration_file_is_applied() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), MIGRATIONS.len());
    }
}
