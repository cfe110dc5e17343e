//! `make bench-ingest`: what a reading costs isobar as users run it, against
//! raw baselines measured in the same run on the same machine.
//!
//! isobar is the release binary (`isobar run`) with its default settings:
//! quality control, alerts and the local archive on. Only the ports, the
//! data directory and, where a run says so, the broker and the store are
//! set. Readings come from many stations whose values vary from reading to
//! reading, half of them a year old and half current:
//! - `noisy`: every value drawn afresh for each reading (a broken or noisy
//!   station), so quality control flags steps and outliers and writes its
//!   findings: the costly paths;
//! - `smooth`: values that follow a daily cycle with a little noise, as a
//!   healthy station reports.
//!
//! Each measurement prints one JSON line; a summary of ratios follows:
//! 1. Throughput at saturation, Mosquitto → PostgreSQL: the broker alone (a
//!    subscriber that acknowledges at once), a naive pipeline written here
//!    (QoS 1 → serde_json → binary COPY of up to 1,000 rows → acknowledge
//!    after commit), then isobar on the noisy and the smooth data.
//! 2. Throughput at saturation, embedded MQTT server → SQLite: raw SQLite
//!    inserts of the same rows into isobar's own table with isobar's
//!    pragmas, in transactions of 1,000; then isobar, whose server
//!    acknowledges each publish only once it is stored.
//! 3. Latency, Mosquitto → PostgreSQL → websocket, at 1,000 and 10,000
//!    readings/s: publish to the reading reaching a live client that follows
//!    every station, p50 and p99, and how many the client missed.
//! 4. Throughput with a large network: the noisy readings of (1) from
//!    BENCH_STATIONS stations (default 100,000), a few each, against the
//!    naive pipeline on the same data.
//! 5. Memory: resident memory per station at 1,000 and at BENCH_STATIONS
//!    stations with their actors running, then once they have all gone to
//!    sleep (the default supervision.hibernate_after, 2 minutes), and how
//!    much of a BENCH_BURST-reading burst (default 500,000) is still held a
//!    minute after it is stored.
//!
//! 6. Memory given back, in the default mode (the embedded server): the
//!    resident memory of the idle daemon with 1,000 known stations, then
//!    once it settles after a burst of BENCH_MEMORY_READINGS (default
//!    100,000) readings, and after BENCH_CYCLES (default 10,000) MQTT
//!    connections that each connect, publish, hear the PUBACK and close;
//!    each as a ratio to idle.
//!
//! 7. Scale (`make bench-scale`, only when BENCH_ONLY names it): 1, 2 and
//!    3 cluster workers reading a Kafka topic (a private tansu broker)
//!    into PostgreSQL, against a naive Kafka-to-PostgreSQL consumer on the
//!    same records; see `scale`.
//!
//! BENCH_READINGS (default 500,000) sets the size of the saturation runs.
//! BENCH_ONLY=throughput,latency,stations,memory,given_back,scale picks parts. BENCH_LOG=info keeps
//! each daemon's log on stderr instead of in its temporary directory.
//! BENCH_ISOBAR=PATH measures another build of the daemon (an earlier
//! commit's, say) against the same baselines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

const STATIONS: usize = 1_000;
const PUBLISHERS: usize = 4;
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// Rows per transaction of the naive pipeline and the raw SQLite inserts.
const RAW_BATCH: usize = 1_000;

#[path = "../tests/integration/common/mosquitto.rs"]
#[allow(dead_code)]
mod mosquitto;

#[path = "../tests/integration/common/kafka.rs"]
#[allow(dead_code)]
mod kafka;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn wanted(part: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|p| p.trim() == part))
}

fn station(i: usize) -> String {
    format!("BENCH{i:06}")
}

fn topic(station: &str) -> String {
    format!("weather/{station}/observations")
}

// ---------------------------------------------------------------- the data

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Noisy,
    Smooth,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Self::Noisy => "noisy",
            Self::Smooth => "smooth",
        }
    }
}

/// One reading as a station sends it, and as the baselines store it.
#[derive(Debug, Clone, serde::Deserialize)]
struct Row {
    station_id: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    temperature: Option<f64>,
    humidity: Option<f64>,
    pressure: Option<f64>,
    wind_speed: Option<f64>,
    wind_direction: Option<f64>,
    timestamp: DateTime<Utc>,
}

/// Where station `i` is, what its climate is, and when its readings are.
struct StationPlan {
    id: String,
    latitude: f64,
    longitude: f64,
    mean_c: f64,
    /// Its first reading's time and the step between readings: even
    /// stations send a backlog from a year ago, odd ones end about now.
    start: DateTime<Utc>,
    step: TimeDelta,
}

fn plans(stations: usize, per_station: usize, now: DateTime<Utc>) -> Vec<StationPlan> {
    let mut rng = SmallRng::seed_from_u64(7);
    (0..stations)
        .map(|i| {
            let latitude = rng.random_range(-60.0..70.0);
            let (start, step) = if i % 2 == 0 {
                (
                    now - TimeDelta::days(365) + TimeDelta::seconds(i as i64),
                    TimeDelta::seconds(60),
                )
            } else {
                let step = TimeDelta::seconds(5);
                (now - step * (per_station as i32 + 1), step)
            };
            StationPlan {
                id: station(i),
                latitude,
                longitude: rng.random_range(-180.0..180.0),
                mean_c: 25.0 - f64::abs(latitude) * 0.4,
                start,
                step,
            }
        })
        .collect()
}

/// Reading `k` of a station, as JSON.
fn payload(
    plan: &StationPlan,
    k: usize,
    at: DateTime<Utc>,
    shape: Shape,
    rng: &mut SmallRng,
) -> Vec<u8> {
    let (t, rh, p, ws, wd) = match shape {
        Shape::Noisy => (
            plan.mean_c + rng.random_range(-8.0..8.0),
            rng.random_range(5.0..100.0),
            rng.random_range(960.0..1045.0),
            rng.random_range(0.0..25.0),
            rng.random_range(0.0..360.0),
        ),
        Shape::Smooth => {
            let day = (at.timestamp() % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
            let t = plan.mean_c + 5.0 * day.sin() + rng.random_range(-0.05..0.05);
            (
                t,
                (70.0 - 15.0 * day.sin() + rng.random_range(-0.2..0.2)).clamp(1.0, 100.0),
                1013.0 + 3.0 * (k as f64 / 500.0).sin() + rng.random_range(-0.05..0.05),
                (4.0 + 2.0 * day.cos() + rng.random_range(-0.3..0.3)).max(0.0),
                (200.0 + 30.0 * day.cos() + rng.random_range(-5.0..5.0)).rem_euclid(360.0),
            )
        }
    };
    let round = |v: f64, places: i32| {
        let f = 10f64.powi(places);
        (v * f).round() / f
    };
    json!({
        "station_id": plan.id,
        "latitude": round(plan.latitude, 4),
        "longitude": round(plan.longitude, 4),
        "temperature": round(t, 2),
        "humidity": round(rh, 1),
        "pressure": round(p, 2),
        "wind_speed": round(ws, 2),
        "wind_direction": round(wd, 0),
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
    .to_string()
    .into_bytes()
}

/// `total` readings from `stations` stations, split among the publishers:
/// publisher p sends for every PUBLISHERS-th station, each station's
/// readings in time order.
fn dataset(total: usize, stations: usize, shape: Shape) -> Vec<Vec<(String, Bytes)>> {
    dataset_at(total, stations, shape, Utc::now())
}

/// `dataset`, with its current readings ending at `now`.
fn dataset_at(
    total: usize,
    stations: usize,
    shape: Shape,
    now: DateTime<Utc>,
) -> Vec<Vec<(String, Bytes)>> {
    let per_station = total.div_ceil(stations);
    let plans = plans(stations, per_station, now);
    let mut rng = SmallRng::seed_from_u64(11);
    let mut out: Vec<Vec<(String, Bytes)>> = (0..PUBLISHERS)
        .map(|_| Vec::with_capacity(total / PUBLISHERS + 1))
        .collect();
    for n in 0..total {
        let (k, i) = (n / stations, n % stations);
        let plan = &plans[i];
        let at = plan.start + plan.step * k as i32;
        let body = payload(plan, k, at, shape, &mut rng);
        out[i % PUBLISHERS].push((topic(&plan.id), Bytes::from(body)));
    }
    out
}

// ---------------------------------------------------------------- publishing

/// A bench client of `addr`, its id unique to this process.
fn mqtt_options(role: &str, addr: SocketAddr) -> MqttOptions {
    let mut options = MqttOptions::new(
        format!("bench-{role}-{}", std::process::id()),
        addr.ip().to_string(),
        addr.port(),
    );
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20);
    options
}

/// Publishes every message of `data` (QoS 1, in-flight window 1,000 per
/// connection) as fast as the broker takes them; returns once the broker
/// acknowledged all.
async fn publish(addr: SocketAddr, data: &[Vec<(String, Bytes)>]) {
    let mut tasks = Vec::new();
    for (p, messages) in data.iter().enumerate() {
        let messages = messages.clone();
        tasks.push(tokio::spawn(async move {
            let mut options = mqtt_options(&format!("pub-{p}"), addr);
            options.set_inflight(1000);
            let (client, mut eventloop) = AsyncClient::new(options, 10_000);
            let acked = Arc::new(AtomicU64::new(0));
            let counter = acked.clone();
            let poller = tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("bench-ingest: publisher {p}: {e}; reconnecting");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            });
            let n = messages.len() as u64;
            for (topic, body) in messages {
                client
                    .publish_bytes(topic, QoS::AtLeastOnce, false, body)
                    .await
                    .unwrap();
            }
            while acked.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            poller.abort();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Publishes `rate` readings a second for `seconds` from STATIONS stations
/// with the current time as each reading's time; returns how many.
async fn publish_at_rate(addr: SocketAddr, rate: usize, seconds: u64) -> u64 {
    let mut options = mqtt_options("rate", addr);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 100_000);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let plans = plans(STATIONS, 1, Utc::now());
    let mut rng = SmallRng::seed_from_u64(13);
    let ticks_per_second = 100;
    let per_tick = rate / ticks_per_second;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / ticks_per_second as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let mut next = 0usize;
    for _ in 0..seconds * ticks_per_second as u64 {
        tick.tick().await;
        for _ in 0..per_tick {
            let plan = &plans[next % STATIONS];
            let body = payload(plan, next / STATIONS, Utc::now(), Shape::Smooth, &mut rng);
            client
                .publish(topic(&plan.id), QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
            next += 1;
            sent += 1;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    poller.abort();
    sent
}

// ---------------------------------------------------------------- baselines

/// The broker alone: a subscriber that acknowledges at once.
async fn raw_broker(addr: SocketAddr, data: &[Vec<(String, Bytes)>]) -> f64 {
    let total: usize = data.iter().map(Vec::len).sum();
    let (client, mut eventloop) = AsyncClient::new(mqtt_options("raw-sub", addr), 10_000);
    client
        .subscribe("weather/+/observations", QoS::AtLeastOnce)
        .await
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    let poller = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Event::Incoming(Packet::Publish(_)) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    subscribed.await.unwrap();
    let start = Instant::now();
    publish(addr, data).await;
    while received.load(Ordering::Relaxed) < total as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let _ = client.disconnect().await;
    poller.abort();
    rate
}

/// The naive pipelines' write: `rows` into naive_observations by binary
/// COPY, in one transaction.
async fn copy_naive(db: &mut tokio_postgres::Client, rows: &[Row]) {
    use futures_util::pin_mut;
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};
    let types = [
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
    ];
    let tx = db.transaction().await.unwrap();
    let sink = tx
        .copy_in(
            "COPY naive_observations (station_id, observed_at, latitude, longitude, \
             temperature_c, humidity_pct, pressure_hpa, wind_speed_ms, wind_direction_deg) \
             FROM STDIN (FORMAT binary)",
        )
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for r in rows {
        let values: [&(dyn ToSql + Sync); 9] = [
            &r.station_id,
            &r.timestamp,
            &r.latitude,
            &r.longitude,
            &r.temperature,
            &r.humidity,
            &r.pressure,
            &r.wind_speed,
            &r.wind_direction,
        ];
        writer.as_mut().write(&values).await.unwrap();
    }
    writer.finish().await.unwrap();
    tx.commit().await.unwrap();
}

/// A connection to `database` with the naive pipelines' table in it:
/// isobar's observations, without its columns for quality control and
/// enrichment.
async fn naive_db(database: &str) -> tokio_postgres::Client {
    let (db, connection) =
        tokio_postgres::connect(&format!("{POSTGRES}/{database}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    db.batch_execute(
        "CREATE TABLE naive_observations (
           station_id text NOT NULL, observed_at timestamptz NOT NULL,
           latitude float8, longitude float8, temperature_c float8, humidity_pct float8,
           pressure_hpa float8, wind_speed_ms float8, wind_direction_deg float8,
           PRIMARY KEY (station_id, observed_at))",
    )
    .await
    .unwrap();
    db
}

/// What a naive MQTT-to-database pipeline does: QoS 1 with manual
/// acknowledgements, each message parsed with serde_json, up to 1,000 rows
/// written by binary COPY in one transaction, then acknowledged.
async fn naive_pipeline(addr: SocketAddr, database: &str, data: &[Vec<(String, Bytes)>]) -> f64 {
    let total: usize = data.iter().map(Vec::len).sum();
    let mut db = naive_db(database).await;
    let mut options = mqtt_options("naive", addr);
    options.set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 1 << 20);
    client
        .subscribe("weather/+/observations", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await.unwrap() {
            break;
        }
    }
    // The connection is driven by a task of its own, so that no poll is
    // ever cut short and acknowledgements always go out; publishes reach
    // the consumer through a channel. Unbounded: Mosquitto does not keep
    // to its in-flight window under load, and a bounded one would stop the
    // poller, and with it the acknowledgements the consumer queues.
    let (messages, mut inbox) = tokio::sync::mpsc::unbounded_channel::<rumqttc::Publish>();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if messages.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("naive pipeline: {e}"),
            }
        }
    });
    let stored = Arc::new(AtomicU64::new(0));
    let counter = stored.clone();
    let consumer = tokio::spawn(async move {
        let mut rows: Vec<Row> = Vec::with_capacity(RAW_BATCH);
        let mut held = Vec::with_capacity(RAW_BATCH);
        loop {
            // Up to a batch, or what comes within 20 ms of the first.
            let Some(first) = inbox.recv().await else {
                return;
            };
            rows.push(serde_json::from_slice(&first.payload).unwrap());
            held.push(first);
            let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
            while rows.len() < RAW_BATCH {
                match tokio::time::timeout_at(deadline, inbox.recv()).await {
                    Ok(Some(p)) => {
                        rows.push(serde_json::from_slice(&p.payload).unwrap());
                        held.push(p);
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            copy_naive(&mut db, &rows).await;
            for p in held.drain(..) {
                client.ack(&p).await.unwrap();
            }
            counter.fetch_add(rows.len() as u64, Ordering::Relaxed);
            rows.clear();
        }
    });
    let start = Instant::now();
    publish(addr, data).await;
    while stored.load(Ordering::Relaxed) < total as u64 {
        assert!(
            !consumer.is_finished() && !poller.is_finished(),
            "the naive pipeline stopped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    consumer.abort();
    poller.abort();
    rate
}

/// SQLite alone: the rows of `data`, parsed beforehand, inserted into
/// isobar's own observations table with isobar's pragmas, 1,000 rows a
/// transaction.
fn raw_sqlite(dir: &Path, data: &[Vec<(String, Bytes)>]) -> f64 {
    let path = dir.join("raw.sqlite3");
    drop(isobar::storage::SqliteStore::open(&path).expect("isobar's schema"));
    let rows: Vec<Row> = data
        .iter()
        .flatten()
        .map(|(_, body)| serde_json::from_slice(body).unwrap())
        .collect();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    let start = Instant::now();
    for chunk in rows.chunks(RAW_BATCH) {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO observations (station_id, observed_at, received_at, latitude, \
                     longitude, temperature_c, humidity_pct, pressure_hpa, wind_speed_ms, \
                     wind_direction_deg) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .unwrap();
            let received = Utc::now().timestamp_micros();
            for r in chunk {
                insert
                    .execute(rusqlite::params![
                        r.station_id,
                        r.timestamp.timestamp_micros(),
                        received,
                        r.latitude,
                        r.longitude,
                        r.temperature,
                        r.humidity,
                        r.pressure,
                        r.wind_speed,
                        r.wind_direction,
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    rows.len() as f64 / start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------- the daemon

#[derive(Clone)]
enum Broker {
    Embedded,
    /// Mosquitto on 127.0.0.1 at this port.
    Mosquitto(u16),
    /// No MQTT: a cluster worker named `instance` reading `SCALE_TOPIC`
    /// at `brokers` in consumer group `group`.
    Kafka {
        brokers: String,
        group: String,
        instance: String,
    },
}

/// `isobar run` as a child process, on its own ports and directory.
struct Daemon {
    child: Child,
    web: SocketAddr,
    mqtt: SocketAddr,
    /// Its MQTT client id on Mosquitto, whose session outlives it.
    session: Option<String>,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], mosquitto::free_port()))
}

impl Daemon {
    async fn start(broker: Broker, postgres_url: Option<&str>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let web = free_addr();
        let session_id = format!("isobar-bench-{}-{}", std::process::id(), web.port());
        let binary = std::env::var("BENCH_ISOBAR")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_isobar").to_owned());
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars() {
            if key.starts_with("ISOBAR") {
                command.env_remove(key);
            }
        }
        command
            .arg("run")
            .arg("--listen")
            .arg(web.to_string())
            .arg("--data-dir")
            .arg(dir.path())
            // The large-network parts run 100,000 stations: their operator
            // raises the cap on stations (10,000 by default), or all past
            // it would be quarantined. Nothing else changes.
            .env("ISOBAR__ADMISSION__MAX_STATIONS", "10000000");
        let session = matches!(broker, Broker::Mosquitto(_)).then_some(session_id.clone());
        let mqtt = match broker {
            Broker::Embedded => {
                let mqtt = free_addr();
                command.arg("--mqtt-listen").arg(mqtt.to_string());
                mqtt
            }
            Broker::Mosquitto(port) => {
                command
                    .env("ISOBAR__MQTT__MODE", "external")
                    .env("ISOBAR__MQTT__BROKER", format!("127.0.0.1:{port}"))
                    .env("ISOBAR__MQTT__CLIENT_ID", &session_id)
                    // The shipped Mosquitto configuration's max_inflight_messages.
                    .env("ISOBAR__MQTT__MAX_INFLIGHT", "1000");
                SocketAddr::from(([127, 0, 0, 1], port))
            }
            Broker::Kafka {
                brokers,
                group,
                instance,
            } => {
                command
                    .env("ISOBAR__CLUSTER__ROLE", "worker")
                    .env("ISOBAR__CLUSTER__BROKERS", brokers)
                    .env("ISOBAR__CLUSTER__TOPIC", SCALE_TOPIC)
                    .env("ISOBAR__CLUSTER__GROUP", group)
                    .env("ISOBAR__CLUSTER__PARTITIONS", SCALE_PARTITIONS.to_string())
                    .env("ISOBAR__CLUSTER__INSTANCE", instance);
                // No MQTT at all; nothing listens here.
                free_addr()
            }
        };
        if let Some(url) = postgres_url {
            // Plain TCP on loopback, as the naive pipeline connects (libpq's
            // default, sslmode=prefer, would encrypt against this server).
            command.env("ISOBAR__STORAGE__BACKEND", "postgres").env(
                "ISOBAR__STORAGE__POSTGRES_URL",
                format!("{url}?sslmode=disable"),
            );
        }
        if std::env::var("BENCH_LOG").is_ok() {
            command.stderr(Stdio::inherit());
        } else {
            let log = std::fs::File::create(dir.path().join("isobar.log")).unwrap();
            command.stderr(log);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("the isobar binary");
        let daemon = Daemon {
            child,
            web,
            mqtt,
            session,
            dir,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = daemon
                .http
                .get(format!("http://{web}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "isobar did not become ready; its log: {}",
                daemon.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon
    }

    /// The end of its log, without the alerts a year-old backlog fires,
    /// and where the whole log is kept.
    fn log_tail(&self) -> String {
        let path = self.dir.path().join("isobar.log");
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("station_silent"))
            .collect();
        let kept = std::env::temp_dir().join(format!("isobar-bench-{}.log", self.pid()));
        let _ = std::fs::copy(&path, &kept);
        format!(
            "{}\n(the whole log: {})",
            lines[lines.len().saturating_sub(30)..].join("\n"),
            kept.display()
        )
    }

    /// The daemon's `/metrics` text, empty if it does not answer.
    async fn metrics_text(&self) -> String {
        match self
            .http
            .get(format!("http://{}/metrics", self.web))
            .send()
            .await
        {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// A gauge or counter of the daemon's `/metrics`, 0 when absent.
    async fn metric(&self, name: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Readings stored and messages quarantined, from `/metrics`.
    async fn counts(&self) -> (u64, u64) {
        let text = self.metrics_text().await;
        let sum = |name: &str| -> u64 {
            text.lines()
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        (
            sum("isobar_readings_stored_total"),
            sum("isobar_quarantined_total"),
        )
    }

    /// Waits until `total` readings are stored or quarantined; fails when
    /// nothing moves for two minutes.
    async fn wait_for(&self, total: u64) -> (u64, u64) {
        let mut last = (0, 0);
        let mut moved = Instant::now();
        loop {
            let now = self.counts().await;
            if now.0 + now.1 >= total {
                return now;
            }
            if now != last {
                last = now;
                moved = Instant::now();
            }
            if moved.elapsed() > Duration::from_secs(120) {
                let metrics = self.metrics_text().await;
                let state: Vec<&str> = metrics
                    .lines()
                    .filter(|l| {
                        ["isobar_mqtt", "isobar_queue_depth", "isobar_ingest_paused"]
                            .iter()
                            .any(|p| l.starts_with(p))
                    })
                    .collect();
                panic!(
                    "isobar stopped at {now:?} of {total}; its metrics:\n{}\nits log:\n{}",
                    state.join("\n"),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// CPU time used so far (user + system), in seconds.
    fn cpu_seconds(&self) -> f64 {
        cpu_of(self.pid())
    }

    fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("isobar.sqlite3")
    }

    async fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.child.try_wait().ok().flatten().is_none() {
            eprintln!("bench-ingest: isobar did not stop within 60 s; killed");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.end_session().await;
    }

    /// Ends its persistent session, which would otherwise keep queueing
    /// the next runs' readings in Mosquitto.
    async fn end_session(&self) {
        let Some(id) = &self.session else { return };
        let mut options = MqttOptions::new(id, self.mqtt.ip().to_string(), self.mqtt.port());
        options.set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(Packet::ConnAck(_)) = event {
                    let _ = client.disconnect().await;
                }
                if let Event::Outgoing(rumqttc::Outgoing::Disconnect) = event {
                    let _ = eventloop.poll().await;
                    return;
                }
            }
        })
        .await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A throughput run of isobar.
struct Measured {
    rate: f64,
    /// CPU seconds per 1,000 readings while storing them.
    cpu_ms_per_reading: f64,
    /// CPU seconds spent in the 10 s after the last reading was stored.
    cpu_after: f64,
    stored: u64,
    quarantined: u64,
    rss_mib: f64,
}

/// isobar on `broker` and `postgres_url` (SQLite without), fed `data` as
/// fast as the broker takes it.
async fn isobar(
    broker: Broker,
    postgres_url: Option<&str>,
    data: &[Vec<(String, Bytes)>],
) -> Measured {
    let total: usize = data.iter().map(Vec::len).sum();
    let daemon = Daemon::start(broker, postgres_url).await;
    let cpu_before = daemon.cpu_seconds();
    let start = Instant::now();
    publish(daemon.mqtt, data).await;
    let (stored, quarantined) = daemon.wait_for(total as u64).await;
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let cpu_during = daemon.cpu_seconds() - cpu_before;
    let rss_mib = daemon.rss_kib() as f64 / 1024.0;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu_after = daemon.cpu_seconds() - cpu_before - cpu_during;
    let sqlite = daemon.sqlite_path();
    let mut daemon = daemon;
    daemon.stop().await;
    // Nothing lost: every reading is in the store.
    let in_store = match postgres_url {
        Some(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .query_one("SELECT count(*) FROM observations", &[])
                .await
                .unwrap()
                .get::<_, i64>(0) as u64
        }
        None => rusqlite::Connection::open(&sqlite)
            .unwrap()
            .query_row("SELECT count(*) FROM observations", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64,
    };
    assert_eq!(
        in_store + quarantined,
        total as u64,
        "every reading is stored or quarantined"
    );
    Measured {
        rate,
        cpu_ms_per_reading: cpu_during * 1000.0 / total as f64,
        cpu_after,
        stored,
        quarantined,
        rss_mib,
    }
}

// ---------------------------------------------------------------- latency

struct Latency {
    published: u64,
    received: u64,
    missed: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Publish → websocket at `rate` readings a second, for a client following
/// every station.
async fn latency(daemon: &Daemon, rate: usize, seconds: u64) -> Latency {
    let (mut live, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live", daemon.web))
            .await
            .unwrap();
    let _snapshot = live.next().await;
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let reader = tokio::spawn(async move {
        let mut latencies = Vec::new();
        let mut missed = 0u64;
        loop {
            let frame = tokio::select! {
                frame = live.next() => frame,
                () = stopped.notified() => break,
            };
            let Some(Ok(frame)) = frame else { break };
            let now = Utc::now();
            // Pings and pongs carry no message.
            let tokio_tungstenite::tungstenite::Message::Text(text) = frame else {
                continue;
            };
            let msg: serde_json::Value = serde_json::from_str(&text).unwrap();
            match msg["type"].as_str() {
                Some("reading") => {
                    let at: DateTime<Utc> = msg["reading"]["observed_at"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    latencies.push((now - at).as_seconds_f64() * 1000.0);
                }
                Some("overflow") => missed += msg["dropped"].as_u64().unwrap_or(0),
                _ => {}
            }
        }
        (latencies, missed)
    });
    let (before, _) = daemon.counts().await;
    let published = publish_at_rate(daemon.mqtt, rate, seconds).await;
    // Until every reading is stored (then 2 s for the last to arrive), or
    // for 30 s at most.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (stored, _) = daemon.counts().await;
        if stored >= before + published || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.notify_one();
    let (mut latencies, missed) = reader.await.unwrap();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Latency {
        published,
        received: latencies.len() as u64,
        missed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

// ---------------------------------------------------------------- memory

/// One reading from each of the stations `from..to`, published and stored.
async fn greet(daemon: &Daemon, from: usize, to: usize) {
    let plans = plans(to, 1, Utc::now());
    let mut rng = SmallRng::seed_from_u64(17);
    let mut data: Vec<Vec<(String, Bytes)>> = vec![Vec::new(); PUBLISHERS];
    for (i, plan) in plans.iter().enumerate().skip(from) {
        let body = payload(plan, 0, Utc::now(), Shape::Smooth, &mut rng);
        data[i % PUBLISHERS].push((topic(&plan.id), Bytes::from(body)));
    }
    let (stored, quarantined) = daemon.counts().await;
    publish(daemon.mqtt, &data).await;
    daemon
        .wait_for(stored + quarantined + (to - from) as u64)
        .await;
}

/// Resident memory once it has settled: after at least 10 s (the daemon
/// hands memory back once its store has been quiet for 5 s), three
/// readings 2 s apart within 2 % of each other, or the last of a minute.
async fn settled_rss(daemon: &Daemon) -> u64 {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut recent = vec![daemon.rss_kib()];
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        recent.push(daemon.rss_kib());
        if let [.., a, b, c] = recent[..] {
            let (lo, hi) = (a.min(b).min(c), a.max(b).max(c));
            if (hi - lo) * 50 <= hi {
                return c;
            }
        }
    }
    *recent.last().unwrap()
}

// ---------------------------------------------------------------- reporting

fn line(value: serde_json::Value) {
    println!("{value}");
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn report_isobar(name: &str, m: &Measured, baseline: Option<(&str, f64)>) {
    let mut value = json!({
        "measurement": name,
        "readings_per_second": m.rate.round(),
        "cpu_ms_per_1000_readings": round(m.cpu_ms_per_reading * 1000.0, 1),
        "cpu_seconds_in_10s_after": round(m.cpu_after, 2),
        "stored": m.stored,
        "quarantined": m.quarantined,
        "rss_mib": round(m.rss_mib, 1),
    });
    if let Some((of, rate)) = baseline {
        value[format!("ratio_to_{of}")] = json!(round(m.rate / rate, 2));
    }
    line(value);
}

async fn admin(database: &str, sql: &str) {
    let (client, connection) =
        tokio_postgres::connect(&format!("{POSTGRES}/{database}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

/// A fresh database for one run; dropped at the end of the bench.
struct Databases {
    made: Vec<String>,
}

impl Databases {
    async fn fresh(&mut self, name: &str) -> String {
        let database = format!("isobar_bench_{}_{name}", std::process::id());
        admin("postgres", &format!("CREATE DATABASE {database}")).await;
        self.made.push(database.clone());
        database
    }

    async fn drop_all(&mut self) {
        for database in self.made.drain(..) {
            admin(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
            )
            .await;
        }
    }
}

#[derive(Default)]
struct Summary {
    lines: Vec<String>,
}

impl Summary {
    fn add(&mut self, text: String) {
        self.lines.push(text);
    }
}

async fn throughput(port: u16, total: usize, summary: &mut Summary, dbs: &mut Databases) {
    let broker = SocketAddr::from(([127, 0, 0, 1], port));
    eprintln!(
        "bench-ingest: throughput: {total} readings from {STATIONS} stations, {PUBLISHERS} publishers"
    );
    let noisy = dataset(total, STATIONS, Shape::Noisy);
    let smooth = dataset(total, STATIONS, Shape::Smooth);

    // Mosquitto → PostgreSQL.
    let raw = raw_broker(broker, &noisy).await;
    line(json!({"measurement": "mosquitto/raw_broker", "readings_per_second": raw.round()}));
    let naive_db = dbs.fresh("naive").await;
    let naive = naive_pipeline(broker, &naive_db, &noisy).await;
    line(
        json!({"measurement": "mosquitto/naive_pipeline_postgres", "readings_per_second": naive.round()}),
    );
    for (shape, data) in [(Shape::Noisy, &noisy), (Shape::Smooth, &smooth)] {
        let db = dbs.fresh(&format!("pg_{}", shape.name())).await;
        let url = format!("{POSTGRES}/{db}");
        let m = isobar(Broker::Mosquitto(port), Some(&url), data).await;
        let name = format!("mosquitto/isobar_postgres/{}", shape.name());
        report_isobar(&name, &m, Some(("naive_pipeline", naive)));
        summary.add(format!(
            "Mosquitto → PostgreSQL, {:<6}: isobar {:>7.0}/s, naive pipeline {:>7.0}/s: ratio {:.2} (raw broker {:.0}/s)",
            shape.name(),
            m.rate,
            naive,
            m.rate / naive,
            raw
        ));
    }

    // Embedded MQTT server → SQLite.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = raw_sqlite(dir.path(), &noisy);
    line(json!({"measurement": "raw_sqlite_inserts", "readings_per_second": sqlite.round()}));
    for (shape, data) in [(Shape::Noisy, &noisy), (Shape::Smooth, &smooth)] {
        let m = isobar(Broker::Embedded, None, data).await;
        let name = format!("embedded/isobar_sqlite/{}", shape.name());
        report_isobar(&name, &m, Some(("raw_sqlite_inserts", sqlite)));
        summary.add(format!(
            "embedded → SQLite,     {:<6}: isobar {:>7.0}/s, raw SQLite inserts {:>7.0}/s: ratio {:.2}",
            shape.name(),
            m.rate,
            sqlite,
            m.rate / sqlite,
        ));
    }
}

/// Mosquitto → PostgreSQL with a large network: the same number of noisy
/// readings from BENCH_STATIONS stations (a few each), so every station's
/// actor starts during the run; against the naive pipeline on the same data.
async fn many_stations(port: u16, total: usize, summary: &mut Summary, dbs: &mut Databases) {
    let broker = SocketAddr::from(([127, 0, 0, 1], port));
    let stations = env_usize("BENCH_STATIONS", 100_000).max(STATIONS);
    eprintln!("bench-ingest: throughput: {total} readings from {stations} stations");
    let data = dataset(total, stations, Shape::Noisy);
    let naive_db = dbs.fresh("naive_many").await;
    let naive = naive_pipeline(broker, &naive_db, &data).await;
    line(json!({
        "measurement": format!("mosquitto/naive_pipeline_postgres/{stations}_stations"),
        "readings_per_second": naive.round(),
    }));
    let db = dbs.fresh("pg_many").await;
    let url = format!("{POSTGRES}/{db}");
    let m = isobar(Broker::Mosquitto(port), Some(&url), &data).await;
    let name = format!("mosquitto/isobar_postgres/noisy/{stations}_stations");
    report_isobar(&name, &m, Some(("naive_pipeline", naive)));
    summary.add(format!(
        "Mosquitto → PostgreSQL, noisy, {stations} stations: isobar {:>7.0}/s, naive pipeline {:>7.0}/s: ratio {:.2}",
        m.rate,
        naive,
        m.rate / naive
    ));
}

async fn latencies(port: u16, summary: &mut Summary, dbs: &mut Databases) {
    let db = dbs.fresh("latency").await;
    let url = format!("{POSTGRES}/{db}");
    let mut daemon = Daemon::start(Broker::Mosquitto(port), Some(&url)).await;
    for (rate, seconds) in [(1_000, 20), (10_000, 10)] {
        eprintln!("bench-ingest: latency at {rate} readings/s for {seconds} s");
        let l = latency(&daemon, rate, seconds).await;
        line(json!({
            "measurement": format!("latency/postgres/{rate}_per_second"),
            "published": l.published,
            "received_live": l.received,
            "missed_live": l.missed,
            "p50_ms": round(l.p50_ms, 1),
            "p99_ms": round(l.p99_ms, 1),
        }));
        summary.add(format!(
            "publish → websocket at {rate:>6}/s (PostgreSQL): p50 {:.1} ms, p99 {:.1} ms, {} of {} delivered",
            l.p50_ms, l.p99_ms, l.received, l.published
        ));
    }
    daemon.stop().await;
}

async fn memory(port: u16, summary: &mut Summary) {
    let many = env_usize("BENCH_STATIONS", 100_000).max(STATIONS);
    let burst = env_usize("BENCH_BURST", 500_000);
    eprintln!(
        "bench-ingest: memory: {STATIONS} then {many} stations, then a {burst}-reading burst"
    );
    let mut daemon = Daemon::start(Broker::Mosquitto(port), None).await;
    let idle = settled_rss(&daemon).await;
    greet(&daemon, 0, STATIONS).await;
    let at_few = settled_rss(&daemon).await;
    greet(&daemon, STATIONS, many).await;
    let at_many = settled_rss(&daemon).await;
    // Then nothing more: every station's actor goes to sleep after the
    // default supervision.hibernate_after.
    let asleep_since = Instant::now();
    while daemon.metric("isobar_stations_hibernating").await < many as f64 {
        assert!(
            asleep_since.elapsed() < Duration::from_secs(600),
            "the stations' actors did not go to sleep"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let asleep = settled_rss(&daemon).await;
    let per = |rss: u64, n: usize| (rss.saturating_sub(idle)) as f64 * 1024.0 / n as f64;
    line(json!({
        "measurement": "memory/stations",
        "idle_rss_mib": round(idle as f64 / 1024.0, 1),
        format!("rss_mib_at_{STATIONS}"): round(at_few as f64 / 1024.0, 1),
        format!("rss_mib_at_{many}"): round(at_many as f64 / 1024.0, 1),
        format!("rss_mib_at_{many}_asleep"): round(asleep as f64 / 1024.0, 1),
        format!("bytes_per_station_at_{STATIONS}"): per(at_few, STATIONS).round(),
        format!("bytes_per_station_at_{many}"): per(at_many, many).round(),
        format!("bytes_per_station_at_{many}_asleep"): per(asleep, many).round(),
        "seconds_until_asleep": asleep_since.elapsed().as_secs(),
    }));
    summary.add(format!(
        "memory: idle {:.0} MiB; {} stations {:.0} MiB ({:.1} KB each); {} stations {:.0} MiB ({:.1} KB each); asleep {:.0} MiB ({:.1} KB each)",
        idle as f64 / 1024.0,
        STATIONS,
        at_few as f64 / 1024.0,
        per(at_few, STATIONS) / 1000.0,
        many,
        at_many as f64 / 1024.0,
        per(at_many, many) / 1000.0,
        asleep as f64 / 1024.0,
        per(asleep, many) / 1000.0,
    ));
    let at_many = asleep;
    if burst > 0 {
        let data = dataset(burst, STATIONS, Shape::Noisy);
        let (stored, quarantined) = daemon.counts().await;
        publish(daemon.mqtt, &data).await;
        daemon.wait_for(stored + quarantined + burst as u64).await;
        let peak = daemon.rss_kib();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let after = daemon.rss_kib();
        line(json!({
            "measurement": "memory/burst",
            "readings": burst,
            "rss_mib_before": round(at_many as f64 / 1024.0, 1),
            "rss_mib_when_stored": round(peak as f64 / 1024.0, 1),
            "rss_mib_a_minute_after": round(after as f64 / 1024.0, 1),
            "ratio_after_to_before": round(after as f64 / at_many as f64, 2),
        }));
        summary.add(format!(
            "memory: a {burst}-reading burst: {:.0} MiB before, {:.0} MiB when stored, {:.0} MiB a minute after ({:.2} of before)",
            at_many as f64 / 1024.0,
            peak as f64 / 1024.0,
            after as f64 / 1024.0,
            after as f64 / at_many as f64
        ));
    }
    daemon.stop().await;
}

/// The default mode's memory given back: the daemon on its embedded server
/// with 1,000 known stations, idle; then three bursts of
/// BENCH_MEMORY_READINGS (default 100,000) noisy readings from them, each
/// six hours of station time before the last (so none is a duplicate);
/// then BENCH_CYCLES (default 10,000) MQTT connections that each connect,
/// publish one reading, hear its PUBACK and close. After each, the
/// resident memory once it settles, against the idle value and against
/// what the first burst left.
async fn memory_given_back(summary: &mut Summary) {
    let readings = env_usize("BENCH_MEMORY_READINGS", 100_000);
    let cycles = env_usize("BENCH_CYCLES", 10_000);
    eprintln!(
        "bench-ingest: memory given back: 3 bursts of {readings} readings, then {cycles} connections"
    );
    let mut daemon = Daemon::start(Broker::Embedded, None).await;
    greet(&daemon, 0, STATIONS).await;
    let idle = settled_rss(&daemon).await;
    let (mut peaks, mut settled) = (Vec::new(), Vec::new());
    for burst in 0..3 {
        let now = Utc::now() - TimeDelta::hours(6 * burst);
        let data = dataset_at(readings, STATIONS, Shape::Noisy, now);
        let (stored, quarantined) = daemon.counts().await;
        publish(daemon.mqtt, &data).await;
        daemon
            .wait_for(stored + quarantined + readings as u64)
            .await;
        peaks.push(daemon.rss_kib());
        settled.push(settled_rss(&daemon).await);
    }
    let started = Instant::now();
    churn(daemon.mqtt, cycles).await;
    let churn_seconds = started.elapsed().as_secs_f64();
    let churn_peak = daemon.rss_kib();
    let after_churn = settled_rss(&daemon).await;
    let mib = |rss: u64| round(rss as f64 / 1024.0, 1);
    let ratio = |rss: u64, to: u64| round(rss as f64 / to as f64, 2);
    let first = settled[0];
    line(json!({
        "measurement": "memory/given_back",
        "idle_rss_mib": mib(idle),
        "burst_readings": readings,
        "rss_mib_when_stored": peaks.iter().map(|r| mib(*r)).collect::<Vec<_>>(),
        "rss_mib_after_bursts": settled.iter().map(|r| mib(*r)).collect::<Vec<_>>(),
        "ratio_after_first_burst_to_idle": ratio(first, idle),
        "ratio_after_third_burst_to_first": ratio(settled[2], first),
        "connection_cycles": cycles,
        "cycles_per_second": (cycles as f64 / churn_seconds).round(),
        "rss_mib_when_cycled": mib(churn_peak),
        "rss_mib_after_cycles": mib(after_churn),
        "ratio_after_cycles_to_idle": ratio(after_churn, idle),
    }));
    summary.add(format!(
        "memory given back (embedded): idle {:.0} MiB; 3 bursts of {readings} readings: {:.0}, {:.0}, {:.0} MiB when stored, {:.0}, {:.0}, {:.0} MiB settled ({:.2} of idle after the first, the third {:.2} of the first); {cycles} connect/close: {:.0} MiB settled ({:.2} of idle)",
        mib(idle),
        mib(peaks[0]),
        mib(peaks[1]),
        mib(peaks[2]),
        mib(settled[0]),
        mib(settled[1]),
        mib(settled[2]),
        ratio(first, idle),
        ratio(settled[2], first),
        mib(after_churn),
        ratio(after_churn, idle),
    ));
    daemon.stop().await;
}

/// `cycles` MQTT connections, 50 at a time, each from a client id of its
/// own: connect, publish one current reading of a known station (QoS 1),
/// wait for its PUBACK, disconnect.
async fn churn(addr: SocketAddr, cycles: usize) {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= cycles {
                        return;
                    }
                    let options = mqtt_options(&format!("churn-{i}"), addr);
                    let (client, mut eventloop) = AsyncClient::new(options, 10);
                    let id = station(i % STATIONS);
                    let body = json!({
                        "station_id": id,
                        "timestamp": Utc::now().to_rfc3339(),
                        "temperature": 10.0 + (i % 100) as f64 * 0.1,
                    })
                    .to_string();
                    client
                        .publish(topic(&id), QoS::AtLeastOnce, false, body)
                        .await
                        .unwrap();
                    loop {
                        match eventloop.poll().await {
                            Ok(Event::Incoming(Packet::PubAck(_))) => break,
                            Ok(_) => {}
                            Err(e) => panic!("churn connection {i}: {e}"),
                        }
                    }
                    client.disconnect().await.unwrap();
                    // Let the DISCONNECT out.
                    while let Ok(event) = eventloop.poll().await {
                        if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

// ---------------------------------------------------------------- scale

/// The readings topic of the scale runs, and its partitions (the
/// default `cluster.partitions`).
const SCALE_TOPIC: &str = "bench.readings";
const SCALE_PARTITIONS: u32 = 12;

/// Every reading of `data` produced to `SCALE_TOPIC` keyed by station, as
/// a bridge produces (idempotent, `acks=all`, murmur2); returns readings/s
/// once Kafka acknowledged all.
async fn produce_all(brokers: &str, data: &[Vec<(String, Bytes)>]) -> f64 {
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let start = Instant::now();
    let mut pending = Vec::with_capacity(data.iter().map(Vec::len).sum());
    for messages in data {
        for (topic, body) in messages {
            let station = topic.split('/').nth(1).unwrap();
            let record = FutureRecord::to(SCALE_TOPIC)
                .key(station)
                .payload(&body[..]);
            pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        }
    }
    for delivery in pending {
        delivery.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    data.iter().map(Vec::len).sum::<usize>() as f64 / start.elapsed().as_secs_f64()
}

/// The naive pipeline on Kafka: one consumer of the whole topic in a
/// group of its own, each record parsed with serde_json, up to 1,000 rows
/// written by binary COPY in one transaction, then the offsets committed.
async fn naive_kafka(brokers: &str, database: &str, total: usize) -> f64 {
    use rdkafka::Message;
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    let mut db = naive_db(database).await;
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("naive-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[SCALE_TOPIC]).unwrap();
    let start = Instant::now();
    let mut stored = 0;
    let mut rows: Vec<Row> = Vec::with_capacity(RAW_BATCH);
    while stored < total {
        // Up to a batch, or what comes within 20 ms of the first.
        let first = consumer.recv().await.unwrap();
        rows.push(serde_json::from_slice(first.payload().unwrap()).unwrap());
        drop(first);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        while rows.len() < RAW_BATCH {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(message) => {
                    let message = message.unwrap();
                    rows.push(serde_json::from_slice(message.payload().unwrap()).unwrap());
                }
                Err(_) => break,
            }
        }
        copy_naive(&mut db, &rows).await;
        // What was read is stored: its offsets go to the group.
        consumer.commit_consumer_state(CommitMode::Async).unwrap();
        stored += rows.len();
        rows.clear();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// CPU time (user + system) of process `pid` so far, in seconds; 0 once
/// it is gone.
fn cpu_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command's name, which is in parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// CPU time of every PostgreSQL server process on the machine so far, in
/// seconds (its backends come and go; those that ended are not counted,
/// so read it around a run whose connections stay open).
fn postgres_cpu() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_of)
        .sum()
}

/// `make bench-scale`: readings/s of 1, 2 and 3 cluster workers on this
/// machine. BENCH_SCALE_READINGS (default 400,000) noisy readings from
/// BENCH_SCALE_STATIONS stations (default 10,000), half a year old and
/// half current, are produced to a private Kafka-compatible broker (tansu)
/// first. Then each run starts its workers (release builds, default
/// settings: QC, alerts and the local archive on) in a consumer group of
/// its own, on a database of its own, and times them from their start
/// until every reading is stored. The naive pipeline on Kafka, run on the
/// same topic, is the baseline. Each run says what CPU the workers, the
/// broker and PostgreSQL took: on this machine they share its cores.
async fn scale(summary: &mut Summary, dbs: &mut Databases) {
    let total = env_usize("BENCH_SCALE_READINGS", 400_000);
    let stations = env_usize("BENCH_SCALE_STATIONS", 10_000);
    let kafka = kafka::PrivateKafka::start();
    let brokers = kafka.brokers();
    isobar::cluster::ensure_topic(&brokers, SCALE_TOPIC, SCALE_PARTITIONS, 1)
        .await
        .unwrap();
    eprintln!("bench-scale: producing {total} readings from {stations} stations");
    let data = dataset(total, stations, Shape::Noisy);
    let produced = produce_all(&brokers, &data).await;
    drop(data);
    line(json!({"measurement": "kafka/produce", "readings_per_second": produced.round()}));
    let naive_db = dbs.fresh("naive_kafka").await;
    let (broker_before, postgres_before) = (kafka.pid().map_or(0.0, cpu_of), postgres_cpu());
    let own_before = cpu_of(std::process::id());
    let naive = naive_kafka(&brokers, &naive_db, total).await;
    let elapsed = total as f64 / naive;
    line(json!({
        "measurement": "kafka/naive_pipeline_postgres",
        "readings_per_second": naive.round(),
        "cores_busy": {
            "consumer": round((cpu_of(std::process::id()) - own_before) / elapsed, 2),
            "broker": round((kafka.pid().map_or(0.0, cpu_of) - broker_before) / elapsed, 2),
            "postgres": round((postgres_cpu() - postgres_before) / elapsed, 2),
        },
    }));
    summary.add(format!(
        "Kafka ({SCALE_PARTITIONS} partitions) → PostgreSQL, {stations} stations: produced at {produced:.0}/s, naive consumer {naive:.0}/s"
    ));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut single = None;
    for workers in 1..=3usize {
        eprintln!("bench-scale: {workers} worker(s)");
        let db = dbs.fresh(&format!("scale_{workers}")).await;
        let url = format!("{POSTGRES}/{db}");
        let group = format!("isobar-bench-{}-{workers}", std::process::id());
        let start = Instant::now();
        let mut daemons = futures_util::future::join_all((0..workers).map(|w| {
            Daemon::start(
                Broker::Kafka {
                    brokers: brokers.clone(),
                    group: group.clone(),
                    instance: format!("worker-{w}"),
                },
                Some(&url),
            )
        }))
        .await;
        let cpu_before: Vec<f64> = daemons.iter().map(Daemon::cpu_seconds).collect();
        let broker_before = kafka.pid().map_or(0.0, cpu_of);
        let postgres_before = postgres_cpu();
        // Counted in the store, not from the workers' metrics: a record
        // read again after its partition moved is stored once but counted
        // by both.
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let in_store = async || -> i64 {
            client
                .query_one(
                    "SELECT (SELECT count(*) FROM observations) + (SELECT count(*) FROM quarantine)",
                    &[],
                )
                .await
                .map_or(0, |row| row.get(0))
        };
        let mut last = 0;
        let mut moved = Instant::now();
        loop {
            let done = in_store().await;
            if done >= total as i64 {
                break;
            }
            if done != last {
                (last, moved) = (done, Instant::now());
            }
            assert!(
                moved.elapsed() < Duration::from_secs(120),
                "{workers} workers stopped at {done} of {total}; the first one's log:\n{}",
                daemons[0].log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let rate = total as f64 / elapsed;
        let cpu: f64 = daemons
            .iter()
            .zip(&cpu_before)
            .map(|(d, before)| d.cpu_seconds() - before)
            .sum();
        let rss: f64 = daemons.iter().map(|d| d.rss_kib() as f64 / 1024.0).sum();
        let broker_cpu = kafka.pid().map_or(0.0, cpu_of) - broker_before;
        let postgres_cpu = postgres_cpu() - postgres_before;
        for d in &mut daemons {
            d.stop().await;
        }
        // Nothing lost, nothing twice: every reading is in the store once.
        let in_store = in_store().await;
        assert_eq!(in_store, total as i64, "every reading stored once");
        let single_rate = *single.get_or_insert(rate);
        line(json!({
            "measurement": format!("kafka/isobar_workers/{workers}"),
            "readings_per_second": rate.round(),
            "seconds": round(elapsed, 2),
            "cpu_ms_per_1000_readings": round(cpu * 1000.0 * 1000.0 / total as f64, 1),
            "rss_mib_all_workers": round(rss, 1),
            "ratio_to_naive_pipeline": round(rate / naive, 2),
            "ratio_to_one_worker": round(rate / single_rate, 2),
            "cores": cores,
            "cores_busy": {
                "workers": round(cpu / elapsed, 2),
                "broker": round(broker_cpu / elapsed, 2),
                "postgres": round(postgres_cpu / elapsed, 2),
            },
        }));
        summary.add(format!(
            "Kafka → PostgreSQL, {workers} worker(s): isobar {rate:>7.0}/s, naive consumer {naive:>7.0}/s: ratio {:.2}; {:.2}× one worker; cores busy: workers {:.2}, broker {:.2}, PostgreSQL {:.2} of {cores}",
            rate / naive,
            rate / single_rate,
            cpu / elapsed,
            broker_cpu / elapsed,
            postgres_cpu / elapsed,
        ));
    }
    drop(kafka);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let total = env_usize("BENCH_READINGS", 500_000);
    let postgres_up =
        tokio_postgres::connect(&format!("{POSTGRES}/postgres"), tokio_postgres::NoTls)
            .await
            .is_ok();
    assert!(
        postgres_up,
        "PostgreSQL is not reachable at {POSTGRES}: run scripts/services.sh"
    );
    let port = mosquitto::free_port();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // Queued messages bounded by memory only: the publishers outrun isobar
    // by design here, and the shipped 256 MiB would drop the excess; and no
    // snapshots of that queue every 5 seconds.
    let broker = mosquitto::PrivateMosquitto::start(
        port,
        dir,
        &[("max_queued_bytes", "0"), ("persistence", "false")],
    );
    wait_for_port(port).await;
    let mut dbs = Databases { made: Vec::new() };
    let mut summary = Summary::default();
    if wanted("throughput") {
        throughput(port, total, &mut summary, &mut dbs).await;
    }
    if wanted("latency") {
        latencies(port, &mut summary, &mut dbs).await;
    }
    if wanted("stations") {
        many_stations(port, total, &mut summary, &mut dbs).await;
    }
    if wanted("given_back") {
        memory_given_back(&mut summary).await;
    }
    if wanted("memory") {
        memory(port, &mut summary).await;
    }
    // Only when asked for (`make bench-scale`): it needs tansu.
    if std::env::var("BENCH_ONLY").is_ok_and(|only| only.split(',').any(|p| p.trim() == "scale")) {
        scale(&mut summary, &mut dbs).await;
    }
    dbs.drop_all().await;
    drop(broker);
    println!();
    for text in summary.lines {
        println!("{text}");
    }
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mosquitto did not start on port {port}");
}
