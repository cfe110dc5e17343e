//! The embedded store: one SQLite file in WAL mode, one writer connection
//! and a few reader connections so history queries never wait on a batch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::{
    AlertRecord, HistoryQuery, NewAlert, POSITION_FROM_NEWEST, RollupQuery, Station, Store,
    StoreError, StoredQuarantine, WriteBatch, WriteOutcome, rollups_from_rows,
};
use crate::domain::rollup::{self, Stats};
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
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut writer)?;
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
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
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

/// A rollup's count, min, max, sum, last and last_at, from column `first` on.
fn stats_at(row: &Row<'_>, first: usize) -> rusqlite::Result<Stats> {
    Ok(Stats {
        count: row.get(first)?,
        min: row.get(first + 1)?,
        max: row.get(first + 2)?,
        sum: row.get(first + 3)?,
        last: row.get(first + 4)?,
        last_at: from_micros(row.get(first + 5)?),
    })
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

const READING_COLUMNS: &str = "station_id, observed_at, received_at, latitude, longitude, \
    temperature_c, humidity_pct, pressure_hpa, wind_speed_ms, wind_direction_deg, \
    dew_point_c, heat_index_c, wind_chill_c, wind_gust_ms, elevation_m, \
    sea_level_pressure_hpa, feels_like_c, qc_status, qc";

/// A row of `outbox_readings`: the reading, then its sequence number.
fn outbox_row(row: &Row<'_>) -> Result<(i64, Reading), rusqlite::Error> {
    let reading = reading_from_row(row)?;
    Ok((row.get(READING_COLUMNS.split(',').count())?, reading))
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
        qc: qc_from_columns(row.get(at + 17)?, row.get(at + 18)?),
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
        let mut outbox = tx.prepare_cached(
            "INSERT INTO archive_outbox (station_id, observed_at) VALUES (?1, ?2)",
        )?;
        let mut to_roll_up = tx.prepare_cached(
            "INSERT INTO rollup_outbox (station_id, observed_at) VALUES (?1, ?2)",
        )?;
        let mut station = tx.prepare_cached(&format!(
            "INSERT INTO stations \
               (station_id, latitude, longitude, elevation_m, first_seen, last_seen) \
             VALUES (?1, ?2, ?3, ?5, ?4, ?4) \
             ON CONFLICT (station_id) DO UPDATE SET {POSITION_FROM_NEWEST}, \
               first_seen = min(stations.first_seen, excluded.first_seen), \
               last_seen = max(stations.last_seen, excluded.last_seen)",
        ))?;
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
            if n == 1 && batch.archive {
                outbox.execute(params![r.station_id.as_str(), observed])?;
            }
            if n == 1 {
                to_roll_up.execute(params![r.station_id.as_str(), observed])?;
            }
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
    tx.commit()?;
    Ok(WriteOutcome { inserted })
}

#[async_trait]
impl Store for SqliteStore {
    async fn write_batch(&self, batch: Arc<WriteBatch>) -> Result<WriteOutcome, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            write(&mut conn, &batch).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
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

    async fn fire_alert(&self, a: NewAlert) -> Result<AlertRecord, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
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
        .map_err(|e| StoreError::Task(e.to_string()))?
        .map_err(StoreError::from)
    }

    async fn resolve_alert(
        &self,
        rule: &str,
        station: Option<&StationId>,
        at: DateTime<Utc>,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let inner = self.inner.clone();
        let (rule, station) = (rule.to_owned(), super::alert_subject(station).to_owned());
        tokio::task::spawn_blocking(move || {
            let conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
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
        .map_err(|e| StoreError::Task(e.to_string()))?
        .map_err(StoreError::from)
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

    async fn roll_up(&self, limit: usize, changes: bool) -> Result<super::RolledUp, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn.transaction()?;
            let (seqs, readings): (Vec<i64>, Vec<Reading>) = {
                let mut pending = tx.prepare_cached(&format!(
                    "{} LIMIT ?1",
                    super::outbox_readings("rollup_outbox", READING_COLUMNS)
                ))?;
                pending
                    .query_map([limit as i64], outbox_row)?
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .unzip()
            };
            let Some(&last) = seqs.last() else {
                return Ok(super::RolledUp::default());
            };
            let all = vec![true; readings.len()];
            let mut upsert = tx.prepare_cached(
                "INSERT INTO rollups \
                   (station_id, resolution, bucket, variable, count, min, max, sum, last, last_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (station_id, resolution, bucket, variable) DO UPDATE SET \
                   count = rollups.count + excluded.count, \
                   min = min(rollups.min, excluded.min), \
                   max = max(rollups.max, excluded.max), \
                   sum = rollups.sum + excluded.sum, \
                   last = CASE WHEN excluded.last_at >= rollups.last_at \
                     THEN excluded.last ELSE rollups.last END, \
                   last_at = max(rollups.last_at, excluded.last_at) \
                 RETURNING count, min, max, sum, last, last_at",
            )?;
            let deltas = rollup::deltas(&readings, &all);
            let mut changed = Vec::new();
            for d in &deltas {
                let mut rows = upsert.query(params![
                    d.station_id.as_str(),
                    d.resolution.as_str(),
                    micros(d.bucket),
                    d.variable,
                    d.stats.count,
                    d.stats.min,
                    d.stats.max,
                    d.stats.sum,
                    d.stats.last,
                    micros(d.stats.last_at),
                ])?;
                // Stepping the statement runs the upsert; the row it
                // returns, the period as it now stands, is kept only when
                // asked for.
                if let Some(row) = rows.next()?
                    && changes
                {
                    changed.push((
                        d.station_id.clone(),
                        d.resolution,
                        d.bucket,
                        d.variable.to_owned(),
                        stats_at(row, 0)?,
                    ));
                }
            }
            drop(upsert);
            // One writer: nothing can enter the outbox below `last` unseen.
            tx.execute("DELETE FROM rollup_outbox WHERE seq <= ?1", [last])?;
            tx.commit()?;
            let mut done = super::RolledUp::of(seqs.len(), &deltas);
            done.changed = super::changed_from_rows(changed);
            Ok(done)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn rollups(&self, q: RollupQuery) -> Result<Vec<Rollup>, StoreError> {
        self.read(move |c| {
            // The last of the first `limit` periods, so no period is cut.
            let last: Option<i64> = c
                .prepare_cached(
                    "SELECT max(bucket) FROM (SELECT DISTINCT bucket FROM rollups \
                     WHERE station_id = ?1 AND resolution = ?2 AND bucket >= ?3 AND bucket < ?4 \
                     ORDER BY bucket LIMIT ?5)",
                )?
                .query_row(
                    params![
                        q.station_id.as_str(),
                        q.resolution.as_str(),
                        micros(q.from),
                        micros(q.to),
                        q.limit as i64
                    ],
                    |row| row.get(0),
                )?;
            let Some(last) = last else {
                return Ok(Vec::new());
            };
            let mut stmt = c.prepare_cached(
                "SELECT bucket, variable, count, min, max, sum, last, last_at FROM rollups \
                 WHERE station_id = ?1 AND resolution = ?2 AND bucket >= ?3 AND bucket <= ?4 \
                 ORDER BY bucket, variable",
            )?;
            let rows = stmt
                .query_map(
                    params![
                        q.station_id.as_str(),
                        q.resolution.as_str(),
                        micros(q.from),
                        last
                    ],
                    |row| {
                        Ok((
                            from_micros(row.get(0)?),
                            row.get::<_, String>(1)?,
                            stats_at(row, 2)?,
                        ))
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rollups_from_rows(rows))
        })
        .await
    }

    async fn archive_pending(&self, limit: usize) -> Result<Vec<(i64, Reading)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "{} LIMIT ?1",
                super::outbox_readings("archive_outbox", READING_COLUMNS)
            ))?;
            stmt.query_map([limit as i64], outbox_row)?.collect()
        })
        .await
    }

    async fn archive_done(&self, seq: i64) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.writer.lock().unwrap_or_else(|e| e.into_inner());
            conn.execute("DELETE FROM archive_outbox WHERE seq <= ?1", [seq])
                .map(|_| ())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
        .map_err(StoreError::from)
    }

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
        let pending = store.archive_pending(10).await.unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].1, reading("WS001", "2025-01-13T10:00:00Z", 1.0));
        store.archive_done(pending[0].0).await.unwrap();
        let rest = store.archive_pending(10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].1.station_id.as_str(), "WS002");
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
