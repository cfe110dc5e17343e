//! The PostgreSQL store against the machine's real server: each test gets
//! its own schema, so tests run in parallel and leave nothing behind.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use common::{Daemon, Publisher, eventually};
use isobar::domain::{Observation, QcConfig, Reading, Resolution, StationId, StationQc};
use isobar::storage::{
    ArchiveOutbox, HistoryQuery, PostgresStore, QuarantineLog, QuarantineRecord, ReadingStore,
    RollupQuery, RollupStore, WriteBatch,
};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The machine's server, over plain TCP on loopback.
const PLAIN: isobar::config::PostgresTls = isobar::config::PostgresTls {
    mode: isobar::config::SslMode::Disable,
    ca: None,
};

/// A fresh schema, dropped when the test is done with it.
struct Schema {
    name: String,
}

impl Schema {
    async fn new() -> Schema {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("isobar_test_{nanos}_{}", std::process::id());
        run_sql(&format!("CREATE SCHEMA {name}")).await;
        Schema { name }
    }

    fn url(&self) -> String {
        format!("{SERVER}?options=-csearch_path%3D{}", self.name)
    }

    async fn drop(self) {
        run_sql(&format!("DROP SCHEMA {} CASCADE", self.name)).await;
    }
}

async fn run_sql(sql: &str) {
    let (client, connection) = tokio_postgres::connect(SERVER, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (scripts/services.sh starts it)");
    tokio::spawn(connection);
    client.simple_query(sql).await.unwrap();
}

async fn count(schema: &Schema, table: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// A station's rollups on 2025-01-13, at most `limit` periods.
fn day_of(station: &str, resolution: Resolution, limit: usize) -> RollupQuery {
    RollupQuery {
        station_id: StationId::parse(station).unwrap(),
        resolution,
        from: "2025-01-13T00:00:00Z".parse().unwrap(),
        to: "2025-01-14T00:00:00Z".parse().unwrap(),
        limit,
    }
}

fn reading(station: &str, at: &str, t: f64) -> Reading {
    let at: DateTime<Utc> = at.parse().unwrap();
    let mut obs = Observation::new(StationId::parse(station).unwrap(), at);
    obs.latitude = Some(52.5);
    obs.longitude = Some(13.4);
    obs.elevation_m = Some(34.0);
    obs.temperature_c = Some(t);
    obs.humidity_pct = Some(60.0);
    obs.pressure_hpa = Some(1009.0);
    let qc = StationQc::default().check(&obs, at, &QcConfig::default());
    Reading::new(obs, at, qc)
}

/// What a roll-up returns for live clients is each changed period as the
/// store then holds it.
#[tokio::test]
async fn a_roll_up_returns_the_periods_it_changed_as_stored() {
    let schema = Schema::new().await;
    let store = PostgresStore::new(&schema.url(), 4, &PLAIN).unwrap();
    store.migrate().await.unwrap();
    common::stores::a_roll_up_returns_the_periods_it_changed_as_stored(&store).await;
    schema.drop().await;
}

/// What an older database's per-reading outboxes held is carried into
/// batch entries, and read back from them; its rollups, one row per
/// variable, become one row per period.
#[tokio::test]
async fn an_older_database_is_carried_over() {
    let schema = Schema::new().await;
    let (client, connection) = tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(concat!(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, \
               applied_at timestamptz NOT NULL DEFAULT now());",
            include_str!("../../migrations/postgres/0001_init.sql"),
            include_str!("../../migrations/postgres/0002_archive_outbox.sql"),
            include_str!("../../migrations/postgres/0003_rollups.sql"),
            include_str!("../../migrations/postgres/0004_alerts.sql"),
            "INSERT INTO schema_migrations (version) VALUES (1), (2), (3), (4);",
            "INSERT INTO observations (station_id, observed_at, received_at, temperature_c) \
               VALUES ('WS001', '2025-01-13T10:00:00Z', now(), 1.0), \
                      ('WS001', '2025-01-13T10:01:00Z', now(), 2.0);",
            "INSERT INTO archive_outbox (station_id, observed_at) \
               SELECT station_id, observed_at FROM observations;",
            "INSERT INTO rollup_outbox (station_id, observed_at) \
               SELECT station_id, observed_at FROM observations;",
            "INSERT INTO rollups VALUES \
               ('WS009', '1h', '2025-01-13T10:00:00Z', 'temperature_c', 2, 1.0, 3.0, 4.0, 3.0, \
                '2025-01-13T10:20:00Z'), \
               ('WS009', '1h', '2025-01-13T10:00:00Z', 'humidity_pct', 1, 50.0, 50.0, 50.0, 50.0, \
                '2025-01-13T10:10:00Z'), \
               ('WS009', '1h', '2025-01-13T11:00:00Z', 'humidity_pct', 1, 60.0, 60.0, 60.0, 60.0, \
                '2025-01-13T11:10:00Z');",
        ))
        .await
        .unwrap();
    let store = PostgresStore::new(&schema.url(), 2, &PLAIN).unwrap();
    assert_eq!(store.migrate().await.unwrap(), 8);
    let periods = store
        .rollups(day_of("WS009", Resolution::Hour, 10))
        .await
        .unwrap();
    assert_eq!(periods.len(), 2);
    let t = periods[0].variables["temperature_c"];
    assert_eq!(
        (t.count, t.min, t.max, t.mean, t.last),
        (2, 1.0, 3.0, 2.0, 3.0)
    );
    assert_eq!(periods[0].variables["humidity_pct"].count, 1);
    let later: Vec<&String> = periods[1].variables.keys().collect();
    assert_eq!(later, ["humidity_pct"]);
    let archive = store
        .archive_leftovers(common::stores::ALL_LEFT)
        .await
        .unwrap();
    assert_eq!(archive.len(), 1);
    let temperatures: Vec<Option<f64>> = archive[0]
        .readings
        .iter()
        .map(|r| r.temperature_c)
        .collect();
    assert_eq!(temperatures, [Some(1.0), Some(2.0)]);
    let rolled = common::stores::roll_up_all(&store, false).await;
    assert_eq!((rolled.readings, rolled.leftovers), (2, 1));
    schema.drop().await;
}

#[tokio::test]
async fn wind_direction_rolls_up_as_vectors() {
    let schema = Schema::new().await;
    let store = PostgresStore::new(&schema.url(), 4, &PLAIN).unwrap();
    store.migrate().await.unwrap();
    common::stores::wind_direction_rolls_up_as_vectors(&store).await;
    schema.drop().await;
}

#[tokio::test]
async fn the_delivery_queue_keeps_its_order() {
    let schema = Schema::new().await;
    let store = PostgresStore::new(&schema.url(), 4, &PLAIN).unwrap();
    store.migrate().await.unwrap();
    common::stores::the_delivery_queue_keeps_its_order(&store).await;
    schema.drop().await;
}

#[tokio::test]
async fn each_stored_batch_counts_once() {
    let schema = Schema::new().await;
    let store = PostgresStore::new(&schema.url(), 4, &PLAIN).unwrap();
    store.migrate().await.unwrap();
    common::stores::each_stored_batch_counts_once(&store).await;
    schema.drop().await;
}

#[tokio::test]
async fn the_store_is_idempotent_and_answers_history() {
    let schema = Schema::new().await;
    let store = PostgresStore::new(&schema.url(), 4, &PLAIN).unwrap();
    assert_eq!(store.migrate().await.unwrap(), 12);
    assert_eq!(store.migrate().await.unwrap(), 0, "migrations run once");

    let first = reading("WS001", "2025-01-13T10:00:00Z", 1.0);
    let batch = Arc::new(WriteBatch {
        archive: true,
        readings: vec![
            first.clone(),
            reading("WS001", "2025-01-13T10:01:00Z", 2.0),
            // The same key twice in one batch is one reading.
            first.clone(),
            reading("WS002", "2025-01-13T09:00:00Z", 3.0),
        ],
        quarantine: vec![QuarantineRecord {
            received_at: Utc::now(),
            source: "weather/WS001/observations".into(),
            station_id: Some(StationId::parse("WS001").unwrap()),
            reason_code: "malformed_json",
            // A NUL quoted from the payload cannot go into PostgreSQL text.
            reason: "payload is not valid reading JSON: \0 at 1".into(),
            payload: b"{\"temp".to_vec(),
            payload_bytes: 6,
        }],
    });
    assert_eq!(
        store.write_batch(batch.clone()).await.unwrap().inserted,
        [true, true, false, true]
    );
    // A redelivered batch inserts nothing.
    assert_eq!(
        store
            .write_batch(Arc::new(WriteBatch {
                archive: false,
                readings: batch.readings.clone(),
                quarantine: vec![],
            }))
            .await
            .unwrap()
            .inserted,
        [false, false, false, false]
    );
    assert_eq!(count(&schema, "observations").await, 3);

    // Rollups: the new readings only, once each, once rolled up.
    let rolled = common::stores::roll_up_all(&store, false).await;
    assert_eq!(rolled.readings, 3);
    // Each reading's minute and hour, once each, in order.
    let periods: Vec<(String, Resolution, String)> = rolled
        .periods
        .iter()
        .map(|(s, r, b)| (s.to_string(), *r, b.to_rfc3339()))
        .collect();
    assert!(
        !periods.is_empty() && periods.windows(2).all(|w| w[0] < w[1]),
        "{periods:?}"
    );
    assert_eq!(
        common::stores::roll_up_all(&store, false).await.readings,
        0,
        "the outbox is cleared"
    );
    let hour = store
        .rollups(day_of("WS001", Resolution::Hour, 10))
        .await
        .unwrap();
    assert_eq!(hour.len(), 1);
    let t = hour[0].variables["temperature_c"];
    assert_eq!(
        (t.count, t.min, t.max, t.mean, t.last),
        (2, 1.0, 2.0, 1.5, 2.0)
    );
    let minutes = store
        .rollups(day_of("WS001", Resolution::Minute, 1))
        .await
        .unwrap();
    assert_eq!(minutes.len(), 1, "limit counts periods");
    assert_eq!(minutes[0].variables["temperature_c"].count, 1);

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
    assert_eq!(
        history,
        vec![first.clone(), reading("WS001", "2025-01-13T10:01:00Z", 2.0)]
    );
    assert_eq!(
        store.latest(&id).await.unwrap().unwrap().temperature_c,
        Some(2.0)
    );

    let stations = store.stations().await.unwrap();
    assert_eq!(stations.len(), 2);
    assert_eq!(
        stations[0].first_seen,
        "2025-01-13T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        stations[0].last_seen,
        "2025-01-13T10:01:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(stations[0].elevation_m, Some(34.0));
    // A late reading lowers first_seen and leaves last_seen, and the
    // position it carries (from before the station moved) is not taken.
    let mut late = reading("WS001", "2025-01-13T08:00:00Z", 0.5);
    late.latitude = Some(48.1);
    store
        .write_batch(Arc::new(WriteBatch {
            archive: false,
            readings: vec![late],
            quarantine: vec![],
        }))
        .await
        .unwrap();
    // The station's times and position move with the roll-up.
    let ws001 = store.station(&id).await.unwrap().unwrap();
    assert_eq!(
        ws001.first_seen,
        "2025-01-13T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    common::stores::roll_up_all(&store, false).await;
    let ws001 = store.station(&id).await.unwrap().unwrap();
    assert_eq!(
        ws001.first_seen,
        "2025-01-13T08:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        ws001.last_seen,
        "2025-01-13T10:01:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(ws001.latitude, Some(52.5));

    // The first batch's new readings wait in the archive outbox.
    let pending = store
        .archive_leftovers(common::stores::ALL_LEFT)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].readings.len(), 3);
    assert_eq!(pending[0].readings[0], first);
    store.archive_done(&[pending[0].seq]).await.unwrap();
    assert!(
        store
            .archive_leftovers(common::stores::ALL_LEFT)
            .await
            .unwrap()
            .is_empty()
    );

    let q = store.quarantine(10, None).await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].payload.as_str(), q[0].truncated), ("{\"temp", false));
    store.ping().await.unwrap();
    schema.drop().await;
}

/// A batch of new readings is copied in whole: every column, the QC report
/// with its findings among them, reads back as written. A batch holding a
/// reading already stored still stores the others, once, and says which.
#[tokio::test]
async fn batches_are_copied_in_and_one_with_a_stored_reading_still_stores_the_rest() {
    let schema = Schema::new().await;
    let store = PostgresStore::new(&schema.url(), 2, &PLAIN).unwrap();
    store.migrate().await.unwrap();
    let config = QcConfig::default();
    let mut qc = StationQc::default();
    let mut readings = Vec::new();
    for (at, t) in [
        ("2025-01-13T10:00:00Z", 10.0),
        ("2025-01-13T10:01:00Z", 10.2),
        // A jump the step check flags.
        ("2025-01-13T10:02:00Z", 24.0),
    ] {
        let at: DateTime<Utc> = at.parse().unwrap();
        let mut obs = Observation::new(StationId::parse("WS001").unwrap(), at);
        obs.temperature_c = Some(t);
        obs.humidity_pct = Some(80.0);
        obs.wind_speed_ms = Some(1.0);
        let report = qc.check(&obs, at, &config);
        readings.push(Reading::new(obs, at, report));
    }
    assert!(
        !readings[2].qc.variables.is_empty(),
        "the jump has findings: {:?}",
        readings[2].qc
    );
    let write = |readings: Vec<Reading>| {
        let store = &store;
        async move {
            store
                .write_batch(Arc::new(WriteBatch {
                    archive: false,
                    readings,
                    quarantine: vec![],
                }))
                .await
                .unwrap()
                .inserted
        }
    };
    assert_eq!(write(readings.clone()).await, [true, true, true]);
    let day = |station: &str| HistoryQuery {
        station_id: StationId::parse(station).unwrap(),
        from: "2025-01-13T00:00:00Z".parse().unwrap(),
        to: "2025-01-14T00:00:00Z".parse().unwrap(),
        limit: 10,
    };
    assert_eq!(store.readings(day("WS001")).await.unwrap(), readings);

    // The middle reading again, between two new ones.
    let again = vec![
        reading("WS002", "2025-01-13T09:00:00Z", 3.0),
        readings[1].clone(),
        reading("WS002", "2025-01-13T09:01:00Z", 4.0),
    ];
    assert_eq!(write(again.clone()).await, [true, false, true]);
    assert_eq!(count(&schema, "observations").await, 5);
    assert_eq!(
        store.readings(day("WS002")).await.unwrap(),
        [again[0].clone(), again[2].clone()]
    );
    // And the batches after it store theirs.
    let later = vec![reading("WS002", "2025-01-13T09:02:00Z", 5.0)];
    assert_eq!(write(later).await, [true]);
    assert_eq!(count(&schema, "observations").await, 6);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_on_postgres() {
    let schema = Schema::new().await;
    let url = schema.url();
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__STORAGE__BACKEND", "postgres"),
            ("ISOBAR__STORAGE__POSTGRES_URL", &url),
        ],
    );
    let (_, ready) = daemon.get("/ready").await;
    assert_eq!(ready["checks"]["store"], "ok");
    let publisher = Publisher::connect(&daemon, "pg-publisher").await;
    for minute in 0..5 {
        publisher
            .reading(
                "WS300",
                &format!("2025-01-13T10:0{minute}:00Z"),
                10.0 + minute as f64,
            )
            .await;
    }
    publisher
        .reading("WS300", "2025-01-13T10:00:00Z", 10.0)
        .await;
    publisher
        .publish("weather/WS300/observations", "not json")
        .await;
    eventually(
        Duration::from_secs(20),
        "five readings and one quarantined in PostgreSQL",
        || async {
            (count(&schema, "observations").await == 5 && count(&schema, "quarantine").await == 1)
                .then_some(())
        },
    )
    .await;
    let (_, latest) = daemon.get("/api/v1/stations/WS300/latest").await;
    assert_eq!(latest["temperature_c"], 14.0);
    // Once the readings stop, the memory their burst took is handed back
    // on PostgreSQL too (the persister decides, not the store).
    eventually(
        Duration::from_secs(30),
        "memory given back once the readings stopped",
        || async {
            let metrics = daemon.metrics().await;
            (common::metric(&metrics, "isobar_memory_given_back_total").unwrap_or(0.0) >= 1.0)
                .then_some(())
        },
    )
    .await;
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
    schema.drop().await;
}

#[test]
fn migrate_applies_the_postgres_schema() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let schema = runtime.block_on(Schema::new());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isobar"))
        .arg("migrate")
        .env("ISOBAR__STORAGE__BACKEND", "postgres")
        .env("ISOBAR__STORAGE__POSTGRES_URL", schema.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = runtime.block_on(count(&schema, "schema_migrations"));
    assert_eq!(applied, 12);
    assert_eq!(
        runtime.block_on(count(&schema, "alerts")),
        0,
        "the alerts table exists"
    );
    runtime.block_on(schema.drop());
}

/// Opens the store the settings of `url` name (without migrating).
async fn open_postgres(url: String) -> Result<(), String> {
    let settings = isobar::config::StorageSettings {
        backend: isobar::config::StoreBackend::Postgres,
        postgres_url: Some(isobar::config::Secret::new(url)),
        ..Default::default()
    };
    isobar::storage::open(&settings, false, Duration::from_millis(300))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// TLS to PostgreSQL as libpq's `sslmode` says, against a server that
/// takes only TLS: `verify-full` with the server's CA (`sslrootcert`)
/// stores readings; a server whose certificate another CA signed is
/// refused; so is a plain connection, by the server; and `verify-full`
/// without a CA file is a configuration error naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_checks_the_server() {
    let certs = tempfile::tempdir().unwrap();
    common::tls::make_certificates(certs.path());
    let other = tempfile::tempdir().unwrap();
    common::tls::make_certificates(other.path());
    let server = common::tls::TlsPostgres::start(certs.path());
    let url = |params: String| {
        format!(
            "postgres://postgres@localhost:{}/postgres?{params}",
            server.port
        )
    };
    let ca = certs.path().join("ca.pem");
    let verified = url(format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    open_postgres(verified.clone()).await.unwrap();
    let err = open_postgres(url(format!(
        "sslmode=verify-full&sslrootcert={}",
        other.path().join("ca.pem").display()
    )))
    .await
    .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    let err = open_postgres(url("sslmode=disable".into()))
        .await
        .unwrap_err();
    assert!(err.contains("no encryption"), "{err}");
    // verify-ca checks the chain only; require checks nothing.
    open_postgres(format!(
        "postgres://postgres@127.0.0.2:{}/postgres?sslmode=verify-ca&sslrootcert={}",
        server.port,
        ca.display()
    ))
    .await
    .expect_err("127.0.0.2 is not where the server listens");
    open_postgres(url("sslmode=require".into())).await.unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isobar"))
        .arg("check-config")
        .env("ISOBAR__STORAGE__BACKEND", "postgres")
        .env(
            "ISOBAR__STORAGE__POSTGRES_URL",
            url("sslmode=verify-full".into()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("storage.postgres_url: sslmode=verify-ca and verify-full need sslrootcert"),
        "{stderr}"
    );

    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__STORAGE__BACKEND", "postgres"),
            ("ISOBAR__STORAGE__POSTGRES_URL", &verified),
        ],
    );
    let publisher = Publisher::connect(&daemon, "tls-postgres").await;
    publisher
        .reading("WS560", "2025-01-13T10:00:00Z", 4.5)
        .await;
    eventually(Duration::from_secs(20), "the reading over TLS", || async {
        let (_, body) = daemon.get("/api/v1/stations/WS560/latest").await;
        (body["temperature_c"] == 4.5).then_some(())
    })
    .await;
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}
