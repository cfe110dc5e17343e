//! The production store: PostgreSQL through a connection pool. A batch is one
//! transaction of set-based statements (`UNNEST` of arrays, one round trip
//! per table), idempotent on (station_id, observed_at). A lost connection
//! fails the call; the pool reconnects on the next one, and the persister
//! retries the batch with backoff, so the daemon keeps running.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row};

use super::{
    AlertRecord, AlertStore, ArchiveOutbox, HistoryQuery, Leftovers, NewAlert,
    POSITION_FROM_NEWEST, QuarantineLog, ReadingStore, RollupQuery, RollupStore, Station,
    StoreError, StoredBatch, StoredQuarantine, WriteBatch, WriteOutcome,
};
use crate::domain::rollup::{self, ROLLED_UP, Variables, WindStats};
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
    (
        5,
        include_str!("../../migrations/postgres/0005_batch_outboxes.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_rollups_by_period.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_qc_as_text.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_rollup_suspect_counts.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_wind_direction_rollups.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_cluster_members.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_cluster_member_stations.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_alert_deliveries.sql"),
    ),
];

/// Any constant: the advisory lock that serialises concurrent migrators
/// (several instances starting together).
const MIGRATION_LOCK: i64 = 0x1503_a12b_0000_0001;

pub struct PostgresStore {
    pool: Pool,
    /// Stations this process has seen stored: a batch adds only the others.
    known: std::sync::Mutex<std::collections::HashSet<StationId, foldhash::fast::RandomState>>,
    /// When a batch last met a reading already stored.
    duplicates_seen: std::sync::Mutex<Option<std::time::Instant>>,
}

/// The error with its causes ("error performing TLS handshake: invalid
/// peer certificate: UnknownIssuer"): the first line alone rarely says
/// what to fix.
fn pool_error(e: impl std::error::Error) -> StoreError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    StoreError::Postgres(text)
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
            None => pool_error(e),
        }
    }
}

/// The connection settings of `url`, with the timeouts every connection
/// gets.
fn config_of(url: &str) -> Result<tokio_postgres::Config, StoreError> {
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
    Ok(config)
}

/// How the server's certificate is checked, or `None` without TLS.
fn tls_of(
    tls: &crate::config::PostgresTls,
) -> Result<Option<crate::storage::tls::PostgresTls>, StoreError> {
    use crate::config::SslMode;
    use crate::storage::tls::Verify;
    let verify = match tls.mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require => Verify::Nothing,
        SslMode::VerifyCa => Verify::Chain,
        SslMode::VerifyFull => Verify::Full,
    };
    let client =
        crate::storage::tls::client_config(tls.ca.as_deref(), verify).map_err(|reason| {
            StoreError::Open {
                path: "storage.postgres_url (sslrootcert)".into(),
                reason,
            }
        })?;
    Ok(Some(crate::storage::tls::PostgresTls::new(client)))
}

/// One connection of its own, outside any pool, for what lives as long
/// as a session does (a cluster member's advisory locks): dropping the
/// client ends the session.
pub async fn session(
    url: &str,
    tls: &crate::config::PostgresTls,
) -> Result<tokio_postgres::Client, StoreError> {
    let config = config_of(url)?;
    match tls_of(tls)? {
        None => {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(connection);
            Ok(client)
        }
        Some(tls) => {
            let (client, connection) = config.connect(tls).await?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}

impl PostgresStore {
    /// A pool of at most `max_connections` to the database at `url`
    /// (`postgres://user:password@host:port/database?options=…`). Nothing
    /// is connected until first use.
    pub fn new(
        url: &str,
        max_connections: usize,
        tls: &crate::config::PostgresTls,
    ) -> Result<Self, StoreError> {
        let config = config_of(url)?;
        // Check a connection before reusing it: after a server restart the
        // pool would otherwise hand out dead ones.
        let recycling = || ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        };
        let manager = match tls_of(tls)? {
            None => Manager::from_config(config, NoTls, recycling()),
            Some(tls) => Manager::from_config(config, tls, recycling()),
        };
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(pool_error)?;
        Ok(Self {
            pool,
            known: Default::default(),
            duplicates_seen: Default::default(),
        })
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
    let status: &str = row.try_get(17)?;
    // Straight from the column's text, not through a JSON value.
    let qc = match serde_json::from_str::<QcReport>(row.try_get(18)?) {
        Ok(qc) => qc,
        Err(_) => QcReport {
            status: QcFlag::parse(status).unwrap_or(QcFlag::Suspect),
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
        qc: qc.into(),
    })
}

/// The rollup of the period starting at `bucket`, from column `first` on
/// (`rollup_columns`).
fn rollup_from_row(row: &Row, bucket: DateTime<Utc>, first: usize) -> Result<Rollup, StoreError> {
    let mut out: Variables = [None; ROLLED_UP.len()];
    for (i, stats) in out.iter_mut().enumerate() {
        let at = first + super::STATS_COLUMNS.len() * i;
        *stats = super::stats_of(
            row.try_get(at)?,
            row.try_get(at + 1)?,
            row.try_get(at + 2)?,
            row.try_get(at + 3)?,
            row.try_get(at + 4)?,
            row.try_get(at + 5)?,
            row.try_get(at + 6)?,
        );
    }
    let at = first + super::WIND_AT;
    let wind = WindStats {
        count: row.try_get(at)?,
        suspect: row.try_get(at + 1)?,
        east: row.try_get(at + 2)?,
        north: row.try_get(at + 3)?,
        gust_direction: row.try_get(at + 4)?,
    };
    Ok(Rollup::of(bucket, &out, &wind))
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

/// The columns of a batch of readings, in `READING_COLUMNS` order,
/// borrowing from the readings and their QC reports' JSON: the arrays of
/// one `UNNEST` insert, or the rows of a `COPY`.
struct Columns<'a> {
    station_id: Vec<&'a str>,
    observed_at: Vec<DateTime<Utc>>,
    received_at: Vec<DateTime<Utc>>,
    values: [Vec<Option<f64>>; 14],
    qc_status: Vec<&'static str>,
    qc: Vec<&'a str>,
}

/// The value columns of a reading, in `READING_COLUMNS` order after the
/// times.
fn values_of(r: &Reading) -> [Option<f64>; 14] {
    let d = &r.derived;
    [
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
    ]
}

/// Every reading's QC report as JSON, in one buffer: reading `i`'s is
/// `text[ends[i - 1]..ends[i]]`.
struct QcTexts {
    text: String,
    ends: Vec<usize>,
}

impl QcTexts {
    fn of(readings: &[Reading]) -> Self {
        let mut text = Vec::with_capacity(readings.len() * 32);
        let mut ends = Vec::with_capacity(readings.len());
        for r in readings {
            serde_json::to_writer(&mut text, &r.qc).expect("a QC report always serialises");
            ends.push(text.len());
        }
        let text = String::from_utf8(text).expect("serde_json writes UTF-8");
        Self { text, ends }
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

impl<'a> Columns<'a> {
    fn of(readings: &'a [Reading], qc: &'a QcTexts) -> Self {
        let n = readings.len();
        let mut c = Columns {
            station_id: Vec::with_capacity(n),
            observed_at: Vec::with_capacity(n),
            received_at: Vec::with_capacity(n),
            values: std::array::from_fn(|_| Vec::with_capacity(n)),
            qc_status: Vec::with_capacity(n),
            qc: Vec::with_capacity(n),
        };
        for (i, r) in readings.iter().enumerate() {
            c.station_id.push(r.station_id.as_str());
            c.observed_at.push(r.observed_at);
            c.received_at.push(r.received_at);
            for (column, value) in c.values.iter_mut().zip(values_of(r)) {
                column.push(value);
            }
            c.qc_status.push(r.qc.status.as_str());
            c.qc.push(qc.get(i));
        }
        c
    }
}

/// How long after a batch met a reading already stored the next batches
/// take the path that expects duplicates.
const AFTER_A_DUPLICATE: std::time::Duration = std::time::Duration::from_secs(10);

/// Binary `COPY` of a batch's readings into `observations`: the cheapest
/// way in, for a batch holding no reading already stored. A duplicate
/// fails it with a unique violation, and with it the transaction.
async fn copy_readings(
    tx: &deadpool_postgres::Transaction<'_>,
    c: &Columns<'_>,
) -> Result<u64, tokio_postgres::Error> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};
    let types: Vec<Type> = [Type::TEXT, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ]
        .into_iter()
        .chain(c.values.iter().map(|_| Type::FLOAT8))
        .chain([Type::TEXT, Type::TEXT])
        .collect();
    let sink = tx
        .copy_in(&format!(
            "COPY observations ({READING_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    let mut row: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(types.len());
    for i in 0..c.station_id.len() {
        row.clear();
        row.extend([
            &c.station_id[i] as &(dyn ToSql + Sync),
            &c.observed_at[i],
            &c.received_at[i],
        ]);
        row.extend(
            c.values
                .iter()
                .map(|column| &column[i] as &(dyn ToSql + Sync)),
        );
        row.extend([&c.qc_status[i] as &(dyn ToSql + Sync), &c.qc[i]]);
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await
}

/// `INSERT … ON CONFLICT DO NOTHING` of a batch's readings, for a batch
/// that may hold readings already stored (or the same one twice): which
/// readings were new.
async fn insert_skipping_stored(
    tx: &deadpool_postgres::Transaction<'_>,
    readings: &[Reading],
    c: &Columns<'_>,
) -> Result<Vec<bool>, StoreError> {
    use tokio_postgres::types::ToSql;
    // Prepared once per connection: the batch is then one round trip
    // instead of a parse and an execute.
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO observations ({READING_COLUMNS}) \
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[], \
               $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], \
               $9::float8[], $10::float8[], $11::float8[], $12::float8[], \
               $13::float8[], $14::float8[], $15::float8[], $16::float8[], \
               $17::float8[], $18::text[], $19::text[]) \
             ON CONFLICT (station_id, observed_at) DO NOTHING \
             RETURNING station_id, observed_at"
        ))
        .await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&c.station_id, &c.observed_at, &c.received_at];
    params.extend(c.values.iter().map(|column| column as &(dyn ToSql + Sync)));
    params.extend([&c.qc_status as &(dyn ToSql + Sync), &c.qc]);
    let rows = tx.query(&insert, &params).await?;
    // Each returned key marks its first occurrence in the batch.
    let mut new: HashMap<(&str, DateTime<Utc>), usize> = HashMap::with_capacity(rows.len());
    for row in &rows {
        *new.entry((row.try_get(0)?, row.try_get(1)?)).or_default() += 1;
    }
    Ok(readings
        .iter()
        .map(
            |r| match new.get_mut(&(r.station_id.as_str(), r.observed_at)) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            },
        )
        .collect())
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

impl PostgresStore {
    /// The rest of a batch's transaction once its readings are in:
    /// stations seen for the first time, the outbox entries and the
    /// quarantine; then the commit.
    async fn finish_batch(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        batch: &WriteBatch,
        inserted: Vec<bool>,
    ) -> Result<WriteOutcome, StoreError> {
        // Only new stations here, so a station is listed as soon as its
        // first reading is stored; their position and times follow with
        // the roll-up, once per station and roll-up rather than once per
        // station and batch.
        let added: Vec<StationId> = {
            let unknown: Vec<&Reading> = {
                let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
                batch
                    .readings
                    .iter()
                    .zip(&inserted)
                    .filter(|(r, new)| **new && !known.contains(&r.station_id))
                    .map(|(r, _)| r)
                    .collect()
            };
            write_stations(&tx, unknown.iter().copied(), false).await?;
            unknown.iter().map(|r| r.station_id.clone()).collect()
        };
        // One outbox entry for the batch's new readings, in each outbox.
        let mut seq = None;
        if inserted.iter().any(|new| *new) {
            let (ids, times): (Vec<&str>, Vec<DateTime<Utc>>) = batch
                .readings
                .iter()
                .zip(&inserted)
                .filter(|(_, new)| **new)
                .map(|(r, _)| (r.station_id.as_str(), r.observed_at))
                .unzip();
            let outbox = tx
                .prepare_cached(
                    "WITH s AS (SELECT nextval('stored_batch_seq') AS seq), \
                       r AS (INSERT INTO rollup_batches (seq, station_ids, observed_ats) \
                         SELECT seq, $1::text[], $2::timestamptz[] FROM s), \
                       a AS (INSERT INTO archive_batches (seq, station_ids, observed_ats) \
                         SELECT seq, $1::text[], $2::timestamptz[] FROM s WHERE $3::bool) \
                     SELECT seq FROM s",
                )
                .await?;
            let row = tx
                .query_one(&outbox, &[&ids, &times, &batch.archive])
                .await?;
            seq = Some(row.try_get(0)?);
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
        if !added.is_empty() {
            self.known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(added);
        }
        Ok(WriteOutcome { inserted, seq })
    }
}

#[async_trait]
impl ReadingStore for PostgresStore {
    async fn write_batch(&self, batch: Arc<WriteBatch>) -> Result<WriteOutcome, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let qc = QcTexts::of(&batch.readings);
        let c = Columns::of(&batch.readings, &qc);
        // Readings are almost never stored already (only a redelivery
        // after a lost acknowledgement repeats one), so a batch is first
        // copied in as it is. If it did hold one, the copy fails, nothing
        // of it is kept, and for a while batches go the way that skips
        // readings already stored.
        let expect_duplicates = self
            .duplicates_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < AFTER_A_DUPLICATE);
        if !batch.readings.is_empty() && !expect_duplicates {
            let tx = client.transaction().await?;
            match copy_readings(&tx, &c).await {
                Ok(_) => {
                    let inserted = vec![true; batch.readings.len()];
                    return self.finish_batch(tx, &batch, inserted).await;
                }
                Err(e) if is_unique_violation(&e) => {
                    tx.rollback().await?;
                    *self
                        .duplicates_seen
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
                    metrics::counter!("isobar_store_batches_with_duplicates_total").increment(1);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let tx = client.transaction().await?;
        let inserted = if batch.readings.is_empty() {
            Vec::new()
        } else {
            insert_skipping_stored(&tx, &batch.readings, &c).await?
        };
        self.finish_batch(tx, &batch, inserted).await
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
}

#[async_trait]
impl AlertStore for PostgresStore {
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
    async fn queue_delivery(&self, body: &str) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute("INSERT INTO alert_deliveries (body) VALUES ($1)", &[&body])
            .await?;
        Ok(())
    }
    async fn next_delivery(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<super::QueuedDelivery>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                "SELECT id, body, attempts, next_at FROM alert_deliveries ORDER BY id LIMIT 1",
                &[],
            )
            .await?;
        Ok(row
            .filter(|r| r.get::<_, DateTime<Utc>>(3) <= now)
            .map(|r| super::QueuedDelivery {
                id: r.get(0),
                body: r.get(1),
                attempts: r.get(2),
            }))
    }
    async fn delivery_done(&self, id: i64) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute("DELETE FROM alert_deliveries WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }
    async fn delivery_failed(&self, id: i64, next_at: DateTime<Utc>) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "UPDATE alert_deliveries SET attempts = attempts + 1, next_at = $2 WHERE id = $1",
                &[&id, &next_at],
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl RollupStore for PostgresStore {
    async fn roll_up(
        &self,
        held: &[StoredBatch],
        leftovers: Leftovers,
        changes: bool,
    ) -> Result<super::RolledUp, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await?;
        // The held batches whose entries are still there: the delete is
        // the gate (a batch another transaction rolled up is not returned).
        let mut batches: Vec<StoredBatch> = Vec::with_capacity(held.len());
        if !held.is_empty() {
            let seqs: Vec<i64> = held.iter().map(|b| b.seq).collect();
            let taken = tx
                .query(
                    "DELETE FROM rollup_batches WHERE seq = ANY($1) RETURNING seq",
                    &[&seqs],
                )
                .await?;
            let taken: std::collections::HashSet<i64> = taken.iter().map(|r| r.get(0)).collect();
            batches.extend(held.iter().filter(|b| taken.contains(&b.seq)).cloned());
        }
        let left = read_leftovers(&tx, "rollup_batches", leftovers, true).await?;
        let left_over = left.len();
        batches.extend(left);
        let readings = || batches.iter().flat_map(|b| b.readings.iter());
        let deltas = rollup::deltas(readings());
        let changed = if deltas.is_empty() {
            Vec::new()
        } else {
            write_rollups(&tx, &deltas, changes).await?
        };
        write_stations(&tx, readings(), true).await?;
        tx.commit().await?;
        let readings = batches.iter().map(|b| b.readings.len()).sum();
        let mut done = super::RolledUp::of(readings, &deltas);
        done.leftovers = left_over;
        done.changed = changed;
        Ok(done)
    }
    async fn rollups(&self, q: RollupQuery) -> Result<Vec<Rollup>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT bucket, {} FROM rollups \
                     WHERE station_id = $1 AND resolution = $2 AND bucket >= $3 AND bucket < $4 \
                     ORDER BY bucket LIMIT $5",
                    super::rollup_columns()
                ),
                &[
                    &q.station_id.as_str(),
                    &q.resolution.as_str(),
                    &q.from,
                    &q.to,
                    &limit,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| rollup_from_row(row, row.try_get(0)?, 1))
            .collect()
    }
}

#[async_trait]
impl ArchiveOutbox for PostgresStore {
    async fn archive_leftovers(
        &self,
        leftovers: Leftovers,
    ) -> Result<Vec<StoredBatch>, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await?;
        // Read, not taken: the archiver deletes the entries once the
        // readings are in its spool.
        let batches = read_leftovers(&tx, "archive_batches", leftovers, false).await?;
        tx.commit().await?;
        Ok(batches)
    }
    async fn archive_present(&self, seqs: &[i64]) -> Result<Vec<i64>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                "SELECT seq FROM archive_batches WHERE seq = ANY($1) ORDER BY seq",
                &[&seqs],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
    async fn archive_done(&self, seqs: &[i64]) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute("DELETE FROM archive_batches WHERE seq = ANY($1)", &[&seqs])
            .await?;
        Ok(())
    }
}

#[async_trait]
impl QuarantineLog for PostgresStore {
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

/// Outbox entries of `table` nobody holds, oldest first, with their
/// readings read back; with `take`, deleted in the same transaction (rows
/// another transaction has locked are skipped, not waited for).
async fn read_leftovers(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    leftovers: Leftovers,
    take: bool,
) -> Result<Vec<StoredBatch>, StoreError> {
    if leftovers.limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(leftovers.limit).unwrap_or(i64::MAX);
    let older_than = leftovers.older_than.as_secs_f64();
    let rows = tx
        .query(
            &format!(
                "SELECT seq, station_ids, observed_ats FROM {table} \
                 WHERE stored_at < now() - make_interval(secs => $1) \
                 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED"
            ),
            &[&older_than, &limit],
        )
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut seqs = Vec::with_capacity(rows.len());
    let (mut keys_seq, mut ids, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for row in &rows {
        let seq: i64 = row.try_get(0)?;
        let station_ids: Vec<String> = row.try_get(1)?;
        let observed_ats: Vec<DateTime<Utc>> = row.try_get(2)?;
        keys_seq.extend(std::iter::repeat_n(seq, station_ids.len()));
        ids.extend(station_ids);
        times.extend(observed_ats);
        seqs.push(seq);
    }
    let columns = READING_COLUMNS
        .split(',')
        .map(|c| format!("o.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let readings = tx
        .query(
            &format!(
                "SELECT {columns}, k.seq FROM UNNEST($1::int8[], $2::text[], $3::timestamptz[]) \
                   WITH ORDINALITY AS k(seq, station_id, observed_at, n) \
                 JOIN observations o \
                   ON o.station_id = k.station_id AND o.observed_at = k.observed_at \
                 ORDER BY k.n"
            ),
            &[&keys_seq, &ids, &times],
        )
        .await?;
    let readings = readings
        .iter()
        .map(|row| Ok((row.try_get::<_, i64>(19)?, reading_from_row(row)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    if take {
        tx.execute(
            &format!("DELETE FROM {table} WHERE seq = ANY($1)"),
            &[&seqs],
        )
        .await?;
    }
    Ok(super::stored_batches(&seqs, readings))
}

/// Adds a batch's partial rollups to those stored, one row per station and
/// period; with `changes`, returns the periods as they now stand.
async fn write_rollups(
    tx: &deadpool_postgres::Transaction<'_>,
    deltas: &[rollup::RollupDelta],
    changes: bool,
) -> Result<Vec<(StationId, Resolution, Rollup)>, StoreError> {
    use tokio_postgres::types::ToSql;
    /// One `UNNEST` array: `f` of every delta, and its SQL type.
    fn column<'a, T>(
        deltas: &'a [rollup::RollupDelta],
        sql: &'static str,
        f: impl Fn(&'a rollup::RollupDelta) -> T,
    ) -> (Box<dyn ToSql + Sync + Send + 'a>, &'static str)
    where
        Vec<T>: ToSql + Sync + Send + 'a,
    {
        (Box::new(deltas.iter().map(f).collect::<Vec<T>>()), sql)
    }
    let mut arrays = vec![
        column(deltas, "text[]", |d| d.station_id.as_str()),
        column(deltas, "text[]", |d| d.resolution.as_str()),
        column(deltas, "timestamptz[]", |d| d.bucket),
    ];
    for i in 0..ROLLED_UP.len() {
        let stats = move |d: &rollup::RollupDelta| d.variables[i];
        arrays.extend([
            column(deltas, "int8[]", move |d| stats(d).map_or(0, |s| s.count)),
            column(deltas, "float8[]", move |d| stats(d).map(|s| s.min)),
            column(deltas, "float8[]", move |d| stats(d).map(|s| s.max)),
            column(deltas, "float8[]", move |d| stats(d).map_or(0.0, |s| s.sum)),
            column(deltas, "float8[]", move |d| stats(d).map(|s| s.last)),
            column(deltas, "timestamptz[]", move |d| {
                stats(d).map(|s| s.last_at)
            }),
            column(deltas, "int8[]", move |d| stats(d).map_or(0, |s| s.suspect)),
        ]);
    }
    arrays.extend([
        column(deltas, "int8[]", |d| d.wind.count),
        column(deltas, "int8[]", |d| d.wind.suspect),
        column(deltas, "float8[]", |d| d.wind.east),
        column(deltas, "float8[]", |d| d.wind.north),
        column(deltas, "float8[]", |d| d.wind.gust_direction),
    ]);
    let (params, types): (Vec<_>, Vec<_>) = arrays.into_iter().unzip();
    let unnest = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let columns = super::rollup_columns();
    let statement = format!(
        "INSERT INTO rollups (station_id, resolution, bucket, {columns}) \
         SELECT * FROM UNNEST({unnest}) \
         ON CONFLICT (station_id, resolution, bucket) DO UPDATE SET {}{}",
        super::rollup_merge("least", "greatest"),
        if changes {
            format!(" RETURNING station_id, resolution, bucket, {columns}")
        } else {
            String::new()
        }
    );
    let upsert = tx.prepare_cached(&statement).await?;
    let params: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    if !changes {
        tx.execute(&upsert, &params).await?;
        return Ok(Vec::new());
    }
    let rows = tx.query(&upsert, &params).await?;
    let mut out = Vec::with_capacity(rows.len());
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
            rollup_from_row(row, row.try_get(2)?, 3)?,
        ));
    }
    // RETURNING follows the input's order in practice; sorted all the same,
    // since SQL does not promise it.
    out.sort_by(|a, b| (&a.0, a.1, a.2.bucket).cmp(&(&b.0, b.1, b.2.bucket)));
    Ok(out)
}

/// One statement for the stations of `readings`: with `update`, an upsert
/// that moves each station's first and last times and position; without,
/// only stations not stored yet are added.
async fn write_stations<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    readings: impl IntoIterator<Item = &'a Reading>,
    update: bool,
) -> Result<(), StoreError> {
    let updates = super::station_updates(readings);
    if updates.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = updates.keys().copied().collect();
    let lat: Vec<Option<f64>> = updates.values().map(|u| u.latitude).collect();
    let lon: Vec<Option<f64>> = updates.values().map(|u| u.longitude).collect();
    let elevation: Vec<Option<f64>> = updates.values().map(|u| u.elevation_m).collect();
    let first: Vec<DateTime<Utc>> = updates.values().map(|u| u.first).collect();
    let last: Vec<DateTime<Utc>> = updates.values().map(|u| u.last).collect();
    let on_conflict = if update {
        format!(
            "DO UPDATE SET {POSITION_FROM_NEWEST}, \
               first_seen = least(stations.first_seen, EXCLUDED.first_seen), \
               last_seen = greatest(stations.last_seen, EXCLUDED.last_seen)"
        )
    } else {
        "DO NOTHING".to_owned()
    };
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO stations \
               (station_id, latitude, longitude, elevation_m, first_seen, last_seen) \
             SELECT * FROM UNNEST($1::text[], $2::float8[], $3::float8[], $4::float8[], \
               $5::timestamptz[], $6::timestamptz[]) \
             ON CONFLICT (station_id) {on_conflict}",
        ))
        .await?;
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
