//! The production store: PostgreSQL through a connection pool. A batch is one
//! transaction of set-based statements (`UNNEST` of arrays, one round trip
//! per table), idempotent on (station_id, observed_at). A lost connection
//! fails the call; the pool reconnects on the next one, and the persister
//! retries the batch with backoff, so the daemon keeps running.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row};

use super::{
    AlertRecord, HistoryQuery, NewAlert, POSITION_FROM_NEWEST, RollupQuery, Station, Store,
    StoreError, StoredQuarantine, WriteBatch, WriteOutcome, rollups_from_rows,
};
use crate::domain::rollup::{self, Stats};
use crate::domain::{Derived, QcFlag, QcReport, Reading, Resolution, Rollup, StationId};

/// The migrations, in order; each runs once, recorded in `schema_migrations`.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_archive_outbox.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_rollups.sql"),
    ),
    (4, include_str!("../../migrations/postgres/0004_alerts.sql")),
];

/// Any constant: the advisory lock that serialises concurrent migrators
/// (several instances starting together).
const MIGRATION_LOCK: i64 = 0x1503_a12b_0000_0001;

pub struct PostgresStore {
    pool: Pool,
}

fn pool_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(e.to_string())
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The source carries the server's message; Display alone says "db error".
        match e.as_db_error() {
            // Data exceptions and integrity violations: the data, not the
            // store, is at fault.
            Some(db) if ["22", "23"].contains(&&db.code().code()[..2]) => {
                StoreError::Rejected(format!("postgres: {}: {}", db.code().code(), db.message()))
            }
            Some(db) => StoreError::Postgres(format!("{}: {}", db.code().code(), db.message())),
            None => StoreError::Postgres(e.to_string()),
        }
    }
}

impl PostgresStore {
    /// A pool of at most `max_connections` to the database at `url`
    /// (`postgres://user:password@host:port/database?options=…`). Nothing
    /// is connected until first use.
    pub fn new(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Open {
            path: "storage.postgres_url".into(),
            reason: e.to_string(),
        })?;
        // A server that vanishes without closing the connection (failover,
        // partition) must fail calls in seconds, not after the kernel's
        // retransmission limit, so the persister retries on a new one.
        config
            .connect_timeout(std::time::Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(10))
            .tcp_user_timeout(std::time::Duration::from_secs(20));
        let manager = Manager::from_config(
            config,
            NoTls,
            // Check a connection before reusing it: after a server restart
            // the pool would otherwise hand out dead ones.
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(pool_error)?;
        Ok(Self { pool })
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let mut applied = 0;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await?;
            if done.is_none() {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[version],
                )
                .await?;
                applied += 1;
            }
        }
        tx.commit().await?;
        Ok(applied)
    }
}

const READING_COLUMNS: &str = "station_id, observed_at, received_at, latitude, longitude, \
    elevation_m, temperature_c, humidity_pct, pressure_hpa, wind_speed_ms, wind_direction_deg, \
    wind_gust_ms, dew_point_c, heat_index_c, wind_chill_c, feels_like_c, \
    sea_level_pressure_hpa, qc_status, qc";

fn reading_from_row(row: &Row) -> Result<Reading, StoreError> {
    let id: String = row.try_get(0)?;
    let station_id = StationId::parse(&id).map_err(|e| StoreError::Postgres(e.to_string()))?;
    let status: String = row.try_get(17)?;
    // Straight from the column's bytes, not through a JSON value.
    let qc = match row.try_get::<_, tokio_postgres::types::Json<QcReport>>(18) {
        Ok(tokio_postgres::types::Json(qc)) => qc,
        Err(_) => QcReport {
            status: QcFlag::parse(&status).unwrap_or(QcFlag::Suspect),
            ..QcReport::default()
        },
    };
    Ok(Reading {
        station_id,
        observed_at: row.try_get(1)?,
        received_at: row.try_get(2)?,
        latitude: row.try_get(3)?,
        longitude: row.try_get(4)?,
        elevation_m: row.try_get(5)?,
        temperature_c: row.try_get(6)?,
        humidity_pct: row.try_get(7)?,
        pressure_hpa: row.try_get(8)?,
        wind_speed_ms: row.try_get(9)?,
        wind_direction_deg: row.try_get(10)?,
        wind_gust_ms: row.try_get(11)?,
        derived: Derived {
            dew_point_c: row.try_get(12)?,
            heat_index_c: row.try_get(13)?,
            wind_chill_c: row.try_get(14)?,
            feels_like_c: row.try_get(15)?,
            sea_level_pressure_hpa: row.try_get(16)?,
        },
        qc,
    })
}

/// A rollup's count, min, max, sum, last and last_at, from column `first` on.
fn stats_from_row(row: &Row, first: usize) -> Result<Stats, StoreError> {
    Ok(Stats {
        count: row.try_get(first)?,
        min: row.try_get(first + 1)?,
        max: row.try_get(first + 2)?,
        sum: row.try_get(first + 3)?,
        last: row.try_get(first + 4)?,
        last_at: row.try_get(first + 5)?,
    })
}

fn station_from_row(row: &Row) -> Result<Station, StoreError> {
    let id: String = row.try_get(0)?;
    Ok(Station {
        station_id: StationId::parse(&id).map_err(|e| StoreError::Postgres(e.to_string()))?,
        latitude: row.try_get(1)?,
        longitude: row.try_get(2)?,
        elevation_m: row.try_get(3)?,
        first_seen: row.try_get(4)?,
        last_seen: row.try_get(5)?,
    })
}

/// The column arrays of a batch of readings, for one `UNNEST` insert,
/// borrowing from the readings. The QC report is written as jsonb straight
/// from the report, with no JSON value in between.
#[derive(Default)]
struct Columns<'a> {
    station_id: Vec<&'a str>,
    observed_at: Vec<DateTime<Utc>>,
    received_at: Vec<DateTime<Utc>>,
    values: [Vec<Option<f64>>; 14],
    qc_status: Vec<&'static str>,
    qc: Vec<tokio_postgres::types::Json<&'a QcReport>>,
}

impl<'a> Columns<'a> {
    fn of(readings: &'a [Reading]) -> Self {
        let n = readings.len();
        let mut c = Columns {
            station_id: Vec::with_capacity(n),
            observed_at: Vec::with_capacity(n),
            received_at: Vec::with_capacity(n),
            values: std::array::from_fn(|_| Vec::with_capacity(n)),
            qc_status: Vec::with_capacity(n),
            qc: Vec::with_capacity(n),
        };
        for r in readings {
            c.station_id.push(r.station_id.as_str());
            c.observed_at.push(r.observed_at);
            c.received_at.push(r.received_at);
            let d = &r.derived;
            let values = [
                r.latitude,
                r.longitude,
                r.elevation_m,
                r.temperature_c,
                r.humidity_pct,
                r.pressure_hpa,
                r.wind_speed_ms,
                r.wind_direction_deg,
                r.wind_gust_ms,
                d.dew_point_c,
                d.heat_index_c,
                d.wind_chill_c,
                d.feels_like_c,
                d.sea_level_pressure_hpa,
            ];
            for (column, value) in c.values.iter_mut().zip(values) {
                column.push(value);
            }
            c.qc_status.push(r.qc.status.as_str());
            c.qc.push(tokio_postgres::types::Json(&r.qc));
        }
        c
    }
}

/// Per station, what the inserted readings say about it.
struct StationUpdate {
    latitude: Option<f64>,
    longitude: Option<f64>,
    elevation_m: Option<f64>,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

#[async_trait]
impl Store for PostgresStore {
    async fn write_batch(&self, batch: Arc<WriteBatch>) -> Result<WriteOutcome, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await?;
        let mut inserted = vec![false; batch.readings.len()];
        if !batch.readings.is_empty() {
            let c = Columns::of(&batch.readings);
            let v = &c.values;
            // Prepared once per connection: the batch is then one round
            // trip instead of a parse and an execute.
            let insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO observations ({READING_COLUMNS}) \
                         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[], \
                           $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], \
                           $9::float8[], $10::float8[], $11::float8[], $12::float8[], \
                           $13::float8[], $14::float8[], $15::float8[], $16::float8[], \
                           $17::float8[], $18::text[], $19::jsonb[]) \
                         ON CONFLICT (station_id, observed_at) DO NOTHING \
                         RETURNING station_id, observed_at"
                ))
                .await?;
            let rows = tx
                .query(
                    &insert,
                    &[
                        &c.station_id,
                        &c.observed_at,
                        &c.received_at,
                        &v[0],
                        &v[1],
                        &v[2],
                        &v[3],
                        &v[4],
                        &v[5],
                        &v[6],
                        &v[7],
                        &v[8],
                        &v[9],
                        &v[10],
                        &v[11],
                        &v[12],
                        &v[13],
                        &c.qc_status,
                        &c.qc,
                    ],
                )
                .await?;
            // Which readings were new: each returned key marks its first
            // occurrence in the batch (a batch may hold a key twice).
            let mut new: HashMap<(&str, DateTime<Utc>), usize> = HashMap::with_capacity(rows.len());
            for row in &rows {
                *new.entry((row.try_get(0)?, row.try_get(1)?)).or_default() += 1;
            }
            for (i, r) in batch.readings.iter().enumerate() {
                if let Some(n) = new.get_mut(&(r.station_id.as_str(), r.observed_at))
                    && *n > 0
                {
                    *n -= 1;
                    inserted[i] = true;
                }
            }
            upsert_stations(&tx, &batch.readings, &inserted).await?;
            if batch.archive {
                let new = batch
                    .readings
                    .iter()
                    .zip(&inserted)
                    .filter(|(_, new)| **new);
                let (ids, times): (Vec<&str>, Vec<DateTime<Utc>>) = new
                    .map(|(r, _)| (r.station_id.as_str(), r.observed_at))
                    .unzip();
                let outbox = tx
                    .prepare_cached(
                        "INSERT INTO archive_outbox (station_id, observed_at) \
                         SELECT * FROM UNNEST($1::text[], $2::timestamptz[])",
                    )
                    .await?;
                tx.execute(&outbox, &[&ids, &times]).await?;
            }
        }
        if inserted.iter().any(|new| *new) {
            let (ids, times): (Vec<&str>, Vec<DateTime<Utc>>) = batch
                .readings
                .iter()
                .zip(&inserted)
                .filter(|(_, new)| **new)
                .map(|(r, _)| (r.station_id.as_str(), r.observed_at))
                .unzip();
            let to_roll_up = tx
                .prepare_cached(
                    "INSERT INTO rollup_outbox (station_id, observed_at) \
                     SELECT * FROM UNNEST($1::text[], $2::timestamptz[])",
                )
                .await?;
            tx.execute(&to_roll_up, &[&ids, &times]).await?;
        }
        if !batch.quarantine.is_empty() {
            let q = &batch.quarantine;
            let received: Vec<DateTime<Utc>> = q.iter().map(|r| r.received_at).collect();
            // PostgreSQL text cannot hold NUL, and a rejected payload's
            // topic or reason may quote one: a batch must never fail on it.
            let source: Vec<String> = q.iter().map(|r| without_nul(&r.source)).collect();
            let station: Vec<Option<&str>> = q
                .iter()
                .map(|r| r.station_id.as_ref().map(StationId::as_str))
                .collect();
            let code: Vec<&str> = q.iter().map(|r| r.reason_code).collect();
            let reason: Vec<String> = q.iter().map(|r| without_nul(&r.reason)).collect();
            let payload: Vec<&[u8]> = q.iter().map(|r| r.payload.as_slice()).collect();
            let bytes: Vec<i32> = q
                .iter()
                .map(|r| i32::try_from(r.payload_bytes).unwrap_or(i32::MAX))
                .collect();
            let insert = tx
                .prepare_cached(
                    "INSERT INTO quarantine \
                   (received_at, source, station_id, reason_code, reason, payload, payload_bytes) \
                 SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], \
                   $5::text[], $6::bytea[], $7::int4[])",
                )
                .await?;
            tx.execute(
                &insert,
                &[
                    &received, &source, &station, &code, &reason, &payload, &bytes,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(WriteOutcome { inserted })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn stations(&self) -> Result<Vec<Station>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                "SELECT station_id, latitude, longitude, elevation_m, first_seen, last_seen \
                 FROM stations ORDER BY station_id",
                &[],
            )
            .await?;
        rows.iter().map(station_from_row).collect()
    }

    async fn station(&self, id: &StationId) -> Result<Option<Station>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                "SELECT station_id, latitude, longitude, elevation_m, first_seen, last_seen \
                 FROM stations WHERE station_id = $1",
                &[&id.as_str()],
            )
            .await?;
        row.as_ref().map(station_from_row).transpose()
    }

    async fn latest(&self, id: &StationId) -> Result<Option<Reading>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {READING_COLUMNS} FROM observations WHERE station_id = $1 \
                     ORDER BY observed_at DESC LIMIT 1"
                ),
                &[&id.as_str()],
            )
            .await?;
        row.as_ref().map(reading_from_row).transpose()
    }

    async fn readings(&self, q: HistoryQuery) -> Result<Vec<Reading>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        // Prepared once per pooled connection.
        let statement = client
            .prepare_cached(&format!(
                "SELECT {READING_COLUMNS} FROM observations \
                 WHERE station_id = $1 AND observed_at >= $2 AND observed_at < $3 \
                 ORDER BY observed_at LIMIT $4"
            ))
            .await?;
        let rows = client
            .query(
                &statement,
                &[&q.station_id.as_str(), &q.from, &q.to, &limit],
            )
            .await?;
        rows.iter().map(reading_from_row).collect()
    }

    async fn fire_alert(&self, a: NewAlert) -> Result<AlertRecord, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "INSERT INTO alerts (rule, station_id, value, message, fired_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (rule, station_id) WHERE resolved_at IS NULL DO NOTHING",
                &[
                    &a.rule,
                    &super::alert_subject(a.station_id.as_ref()),
                    &a.value,
                    &a.message,
                    &a.fired_at,
                ],
            )
            .await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts \
                     WHERE rule = $1 AND station_id = $2 AND resolved_at IS NULL"
                ),
                &[&a.rule, &super::alert_subject(a.station_id.as_ref())],
            )
            .await?;
        alert_from_row(&row)
    }

    async fn resolve_alert(
        &self,
        rule: &str,
        station: Option<&StationId>,
        at: DateTime<Utc>,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE alerts SET resolved_at = $3 \
                     WHERE rule = $1 AND station_id = $2 AND resolved_at IS NULL \
                     RETURNING {ALERT_COLUMNS}"
                ),
                &[&rule, &super::alert_subject(station), &at],
            )
            .await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    async fn alerts(
        &self,
        firing: Option<bool>,
        limit: usize,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let filter = match firing {
            None => "",
            Some(true) => "WHERE resolved_at IS NULL",
            Some(false) => "WHERE resolved_at IS NOT NULL",
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts {filter} \
                     ORDER BY fired_at DESC, id DESC LIMIT $1"
                ),
                &[&limit],
            )
            .await?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn roll_up(&self, limit: usize, changes: bool) -> Result<super::RolledUp, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Rows another instance is rolling up are skipped, not counted twice.
        let rows = tx
            .query(
                &format!(
                    "{} LIMIT $1 FOR UPDATE OF x SKIP LOCKED",
                    super::outbox_readings("rollup_outbox", READING_COLUMNS)
                ),
                &[&limit],
            )
            .await?;
        if rows.is_empty() {
            return Ok(super::RolledUp::default());
        }
        let mut seqs = Vec::with_capacity(rows.len());
        let mut readings = Vec::with_capacity(rows.len());
        for row in &rows {
            seqs.push(row.try_get::<_, i64>(19)?);
            readings.push(reading_from_row(row)?);
        }
        let deltas = rollup::deltas(&readings, &vec![true; readings.len()]);
        let changed = if deltas.is_empty() {
            Vec::new()
        } else {
            write_rollups(&tx, &deltas, changes).await?
        };
        // By the rows taken: concurrent writers commit out of sequence order.
        tx.execute("DELETE FROM rollup_outbox WHERE seq = ANY($1)", &[&seqs])
            .await?;
        tx.commit().await?;
        let mut done = super::RolledUp::of(seqs.len(), &deltas);
        done.changed = changed;
        Ok(done)
    }

    async fn rollups(&self, q: RollupQuery) -> Result<Vec<Rollup>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT bucket, variable, count, min, max, sum, last, last_at FROM rollups \
                 WHERE station_id = $1 AND resolution = $2 AND bucket >= $3 AND bucket <= \
                   (SELECT max(bucket) FROM (SELECT DISTINCT bucket FROM rollups \
                    WHERE station_id = $1 AND resolution = $2 AND bucket >= $3 AND bucket < $4 \
                    ORDER BY bucket LIMIT $5) first) \
                 ORDER BY bucket, variable",
                &[
                    &q.station_id.as_str(),
                    &q.resolution.as_str(),
                    &q.from,
                    &q.to,
                    &limit,
                ],
            )
            .await?;
        let rows = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get::<_, String>(1)?,
                    stats_from_row(row, 2)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(rollups_from_rows(rows))
    }

    async fn archive_pending(&self, limit: usize) -> Result<Vec<(i64, Reading)>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "{} LIMIT $1",
                    super::outbox_readings("archive_outbox", READING_COLUMNS)
                ),
                &[&limit],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(19)?, reading_from_row(row)?)))
            .collect()
    }

    async fn archive_done(&self, seq: i64) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute("DELETE FROM archive_outbox WHERE seq <= $1", &[&seq])
            .await?;
        Ok(())
    }

    async fn quarantine(
        &self,
        limit: usize,
        before_id: Option<i64>,
    ) -> Result<Vec<StoredQuarantine>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, received_at, source, station_id, reason_code, reason, payload, \
                        payload_bytes \
                 FROM quarantine WHERE id < $1 ORDER BY id DESC LIMIT $2",
                &[&before_id.unwrap_or(i64::MAX), &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let payload: Vec<u8> = r.try_get(6)?;
                let payload_bytes = r.try_get::<_, i32>(7)?.max(0) as usize;
                Ok(StoredQuarantine {
                    id: r.try_get(0)?,
                    received_at: r.try_get(1)?,
                    source: r.try_get(2)?,
                    station_id: r.try_get(3)?,
                    reason_code: r.try_get(4)?,
                    reason: r.try_get(5)?,
                    truncated: payload.len() < payload_bytes,
                    payload: String::from_utf8_lossy(&payload).into_owned(),
                    payload_bytes,
                })
            })
            .collect()
    }
}

fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// One upsert for the stations of the newly inserted readings, in id order
/// so that concurrent writers take row locks in the same order.
const ALERT_COLUMNS: &str = "id, rule, station_id, value, message, fired_at, resolved_at";

fn alert_from_row(row: &tokio_postgres::Row) -> Result<AlertRecord, StoreError> {
    Ok(AlertRecord::new(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
    ))
}

/// Adds a batch's partial rollups to those stored; with `changes`, returns
/// the periods as they now stand.
async fn write_rollups(
    tx: &deadpool_postgres::Transaction<'_>,
    deltas: &[rollup::RollupDelta],
    changes: bool,
) -> Result<Vec<(StationId, Resolution, Rollup)>, StoreError> {
    let ids: Vec<&str> = deltas.iter().map(|d| d.station_id.as_str()).collect();
    let resolution: Vec<&str> = deltas.iter().map(|d| d.resolution.as_str()).collect();
    let bucket: Vec<DateTime<Utc>> = deltas.iter().map(|d| d.bucket).collect();
    let variable: Vec<&str> = deltas.iter().map(|d| d.variable).collect();
    let count: Vec<i64> = deltas.iter().map(|d| d.stats.count).collect();
    let min: Vec<f64> = deltas.iter().map(|d| d.stats.min).collect();
    let max: Vec<f64> = deltas.iter().map(|d| d.stats.max).collect();
    let sum: Vec<f64> = deltas.iter().map(|d| d.stats.sum).collect();
    let last: Vec<f64> = deltas.iter().map(|d| d.stats.last).collect();
    let last_at: Vec<DateTime<Utc>> = deltas.iter().map(|d| d.stats.last_at).collect();
    let statement = format!(
        "INSERT INTO rollups \
               (station_id, resolution, bucket, variable, count, min, max, sum, last, last_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[], \
               $5::int8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[], \
               $10::timestamptz[]) \
             ON CONFLICT (station_id, resolution, bucket, variable) DO UPDATE SET \
               count = rollups.count + EXCLUDED.count, \
               min = least(rollups.min, EXCLUDED.min), \
               max = greatest(rollups.max, EXCLUDED.max), \
               sum = rollups.sum + EXCLUDED.sum, \
               last = CASE WHEN EXCLUDED.last_at >= rollups.last_at \
                 THEN EXCLUDED.last ELSE rollups.last END, \
               last_at = greatest(rollups.last_at, EXCLUDED.last_at){}",
        if changes {
            " RETURNING station_id, resolution, bucket, variable, count, min, max, sum, last, \
               last_at"
        } else {
            ""
        }
    );
    let upsert = tx.prepare_cached(&statement).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
        &ids,
        &resolution,
        &bucket,
        &variable,
        &count,
        &min,
        &max,
        &sum,
        &last,
        &last_at,
    ];
    if !changes {
        tx.execute(&upsert, &params).await?;
        return Ok(Vec::new());
    }
    let rows = tx.query(&upsert, &params).await?;
    let mut out = Vec::with_capacity(rows.len());
    // RETURNING follows the input's order in practice; sorted below all the
    // same, since SQL does not promise it.
    for row in &rows {
        let station: String = row.try_get(0)?;
        let resolution: String = row.try_get(1)?;
        let (Ok(station), Some(resolution)) =
            (StationId::parse(&station), Resolution::parse(&resolution))
        else {
            continue;
        };
        out.push((
            station,
            resolution,
            row.try_get(2)?,
            row.try_get(3)?,
            stats_from_row(row, 4)?,
        ));
    }
    out.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    Ok(super::changed_from_rows(out))
}

async fn upsert_stations(
    tx: &deadpool_postgres::Transaction<'_>,
    readings: &[Reading],
    inserted: &[bool],
) -> Result<(), StoreError> {
    let mut updates: BTreeMap<&str, StationUpdate> = BTreeMap::new();
    for r in readings
        .iter()
        .zip(inserted)
        .filter(|(_, new)| **new)
        .map(|(r, _)| r)
    {
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
        }
    }
    if updates.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = updates.keys().copied().collect();
    let lat: Vec<Option<f64>> = updates.values().map(|u| u.latitude).collect();
    let lon: Vec<Option<f64>> = updates.values().map(|u| u.longitude).collect();
    let elevation: Vec<Option<f64>> = updates.values().map(|u| u.elevation_m).collect();
    let first: Vec<DateTime<Utc>> = updates.values().map(|u| u.first).collect();
    let last: Vec<DateTime<Utc>> = updates.values().map(|u| u.last).collect();
    let upsert = tx
        .prepare_cached(&format!(
        "INSERT INTO stations (station_id, latitude, longitude, elevation_m, first_seen, last_seen) \
         SELECT * FROM UNNEST($1::text[], $2::float8[], $3::float8[], $4::float8[], \
           $5::timestamptz[], $6::timestamptz[]) \
         ON CONFLICT (station_id) DO UPDATE SET {POSITION_FROM_NEWEST}, \
           first_seen = least(stations.first_seen, EXCLUDED.first_seen), \
           last_seen = greatest(stations.last_seen, EXCLUDED.last_seen)",
    )).await?;
    tx.execute(&upsert, &[&ids, &lat, &lon, &elevation, &first, &last])
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn every_migration_file_is_applied() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
        let files = std::fs::read_dir(dir).unwrap().count();
        assert_eq!(files, MIGRATIONS.len());
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, (1..=files as i32).collect::<Vec<_>>());
    }
}
