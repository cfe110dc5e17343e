//! `make bench-ingest`: how fast isobar takes QoS 1 readings from MQTT to the
//! store, against raw baselines measured in the same run on the same
//! machine: the same broker with a bare subscriber, and a bare PostgreSQL
//! COPY of the same rows.
//!
//! Two brokers, each measured alone and then with isobar on SQLite and on
//! PostgreSQL:
//! - Mosquitto with the shipped configuration (`deploy/mosquitto`), as in
//!   production but with an unbounded queue and no persistence:
//!   BENCH_READINGS readings (default 1,000,000);
//! - the embedded broker: at most 200,000 readings, because it holds at most
//!   160 MiB for a subscriber that falls behind and drops the oldest beyond.
//!
//! Readings come from 1,000 stations over 4 publisher connections, as fast
//! as the broker takes them, so this is throughput at saturation and the
//! latency includes queueing in the broker. Latency is from publish to the
//! reading reaching a live websocket client, which happens after its batch
//! commits, sampled on 10 stations. Prints one JSON object per measurement,
//! then a summary with isobar's rate as a fraction of each baseline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use isobar::App;
use isobar::broker::EmbeddedBroker;
use isobar::config::{ArchiveBackend, MqttMode, Settings, StoreBackend};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

const STATIONS: usize = 1_000;
const PUBLISHERS: usize = 4;
const SAMPLED: usize = 10;
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// What the embedded broker can hold for a subscriber that falls behind.
const EMBEDDED_MAX: usize = 200_000;

#[path = "../tests/common/mosquitto.rs"]
#[allow(dead_code)]
mod mosquitto;

/// The broker a measurement runs against.
#[derive(Clone, Copy)]
enum Broker {
    Embedded,
    /// Mosquitto on 127.0.0.1 at this port.
    Mosquitto(u16),
}

fn readings() -> usize {
    std::env::var("BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn station(i: usize) -> String {
    format!("BENCH{i:04}")
}

fn payload(station: &str) -> String {
    json!({
        "station_id": station,
        "temperature": 21.5, "humidity": 60.0, "pressure": 1012.0,
        "wind_speed": 3.2, "wind_direction": 180.0,
        "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
    .to_string()
}

/// Publishes `total` readings round-robin over the stations from
/// PUBLISHERS connections; returns when all are acknowledged by the broker.
async fn publish(host: &str, port: u16, total: usize) {
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let host = host.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut options = MqttOptions::new(format!("bench-pub-{p}"), host, port);
            options
                .set_inflight(1000)
                .set_keep_alive(Duration::from_secs(30));
            let (client, mut eventloop) = AsyncClient::new(options, 10_000);
            let share = total / PUBLISHERS + usize::from(p < total % PUBLISHERS);
            let acked = Arc::new(AtomicU64::new(0));
            let counter = acked.clone();
            let poller = tokio::spawn(async move {
                while let Ok(event) = eventloop.poll().await {
                    if let Event::Incoming(Packet::PubAck(_)) = event {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            for k in 0..share {
                // Publisher p owns every PUBLISHERS-th station, so a station's
                // readings come in order from one connection.
                let s = station((k * PUBLISHERS + p) % STATIONS);
                let topic = format!("weather/{s}/observations");
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload(&s))
                    .await
                    .unwrap();
            }
            while acked.load(Ordering::Relaxed) < share as u64 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            poller.abort();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// The broker alone: a subscriber that acknowledges at once.
async fn raw_broker(broker: Broker, total: usize) -> f64 {
    let embedded;
    let (host, port) = match broker {
        Broker::Embedded => {
            embedded = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap(), 1000).unwrap();
            (embedded.addr().ip().to_string(), embedded.addr().port())
        }
        Broker::Mosquitto(port) => ("127.0.0.1".to_owned(), port),
    };
    let mut options = MqttOptions::new("bench-raw-sub", &host, port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    client
        .subscribe("weather/+/observations", QoS::AtLeastOnce)
        .await
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    tokio::spawn(async move {
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
    publish(&host, port, total).await;
    while received.load(Ordering::Relaxed) < total as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    total as f64 / start.elapsed().as_secs_f64()
}

struct Measured {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The daemon, in process, on the given broker and store.
async fn isobar(broker: Broker, total: usize, postgres_url: Option<String>) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.web.listen = "127.0.0.1:0".parse().unwrap();
    settings.mqtt.listen = "127.0.0.1:0".parse().unwrap();
    settings.storage.data_dir = dir.path().to_owned();
    settings.archive.backend = ArchiveBackend::Off;
    settings.web.client_queue = 1 << 20;
    if let Broker::Mosquitto(port) = broker {
        settings.mqtt.mode = MqttMode::External;
        settings.mqtt.broker = format!("127.0.0.1:{port}");
        settings.mqtt.client_id = format!("isobar-bench-{}", std::process::id());
        // The shipped configuration's max_inflight_messages.
        settings.mqtt.max_inflight = 1000;
    }
    if let Some(url) = &postgres_url {
        settings.storage.backend = StoreBackend::Postgres;
        settings.storage.postgres_url = Some(isobar::config::Secret::new(url.clone()));
    }
    let app = App::build(settings).await.expect("isobar starts");
    let web = app.web_addr();
    let (host, port) = app
        .mqtt_addr()
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.parse().unwrap()))
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    // Ready once subscribed.
    let ready = format!("http://{web}/ready");
    while reqwest::get(&ready)
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sampled: Vec<String> = (0..SAMPLED).map(station).collect();
    let (mut live, _) = tokio_tungstenite::connect_async(format!(
        "ws://{web}/api/v1/live?stations={}",
        sampled.join(",")
    ))
    .await
    .unwrap();
    let _snapshot = live.next().await;
    let expected_samples = total / STATIONS * SAMPLED;
    let latencies = tokio::spawn(async move {
        let mut out = Vec::with_capacity(expected_samples);
        while out.len() < expected_samples {
            let Some(Ok(frame)) = live.next().await else {
                break;
            };
            let now = Utc::now();
            let msg: serde_json::Value = serde_json::from_str(&frame.into_text().unwrap()).unwrap();
            if msg["type"] == "reading" {
                let at: chrono::DateTime<Utc> = msg["reading"]["observed_at"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                out.push((now - at).as_seconds_f64() * 1000.0);
            }
        }
        out
    });
    let start = Instant::now();
    publish(&host, port, total).await;
    let mut latencies = tokio::time::timeout(Duration::from_secs(600), latencies)
        .await
        .expect("all sampled readings stored")
        .unwrap();
    let rate = total as f64 / start.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = running.await;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Measured {
        rate,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

async fn admin(database: &str, sql: &str) {
    let (client, connection) =
        tokio_postgres::connect(&format!("{POSTGRES}/{database}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

/// PostgreSQL alone: COPY of the same number of rows into the same table.
async fn raw_copy(database: &str, total: usize) -> f64 {
    use futures_util::SinkExt;
    let (client, connection) =
        tokio_postgres::connect(&format!("{POSTGRES}/{database}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE copy_target (LIKE observations INCLUDING ALL)")
        .await
        .unwrap();
    let base = Utc::now();
    let mut csv = String::with_capacity(total * 120);
    for i in 0..total {
        let at = base + chrono::TimeDelta::microseconds(i as i64);
        csv.push_str(&format!(
            "{},{},{},21.5,60.0,1012.0,3.2,180.0,13.6,pass,{{}}\n",
            station(i % STATIONS),
            at.to_rfc3339(),
            at.to_rfc3339()
        ));
    }
    let start = Instant::now();
    let sink = client
        .copy_in(
            "COPY copy_target (station_id, observed_at, received_at, temperature_c, humidity_pct, \
             pressure_hpa, wind_speed_ms, wind_direction_deg, dew_point_c, qc_status, qc) \
             FROM STDIN (FORMAT csv)",
        )
        .await
        .unwrap();
    let mut sink = std::pin::pin!(sink);
    for chunk in csv.as_bytes().chunks(1 << 20) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap();
    }
    sink.as_mut().finish().await.unwrap();
    total as f64 / start.elapsed().as_secs_f64()
}

fn report(name: &str, rate: f64, latency: Option<&Measured>) {
    let mut line = json!({ "measurement": name, "readings_per_second": rate.round() });
    if let Some(m) = latency {
        line["p50_ms"] = json!((m.p50_ms * 10.0).round() / 10.0);
        line["p99_ms"] = json!((m.p99_ms * 10.0).round() / 10.0);
    }
    println!("{line}");
}

struct Run {
    broker: f64,
    sqlite: Measured,
    postgres: Option<Measured>,
}

/// The broker alone, then isobar on SQLite and on PostgreSQL against it.
async fn run(name: &str, broker: Broker, total: usize, postgres: Option<&str>) -> Run {
    eprintln!(
        "bench-ingest: {name}: {total} readings from {STATIONS} stations, {PUBLISHERS} publishers"
    );
    let raw = raw_broker(broker, total).await;
    report(&format!("{name}/raw_broker"), raw, None);
    let sqlite = isobar(broker, total, None).await;
    report(&format!("{name}/isobar_sqlite"), sqlite.rate, Some(&sqlite));
    let postgres = match postgres {
        Some(url) => {
            let m = isobar(broker, total, Some(url.to_owned())).await;
            report(&format!("{name}/isobar_postgres"), m.rate, Some(&m));
            Some(m)
        }
        None => None,
    };
    Run {
        broker: raw,
        sqlite,
        postgres,
    }
}

fn summary(name: &str, run: &Run, copy: Option<f64>) {
    println!(
        "{name:<10} isobar on SQLite:     {:>7.0} readings/s = {:.2} of the raw broker; p50 {:.0} ms, p99 {:.0} ms",
        run.sqlite.rate,
        run.sqlite.rate / run.broker,
        run.sqlite.p50_ms,
        run.sqlite.p99_ms
    );
    if let (Some(pg), Some(copy)) = (&run.postgres, copy) {
        println!(
            "{name:<10} isobar on PostgreSQL: {:>7.0} readings/s = {:.2} of the raw broker, {:.2} of raw COPY; p50 {:.0} ms, p99 {:.0} ms",
            pg.rate,
            pg.rate / run.broker,
            pg.rate / copy,
            pg.p50_ms,
            pg.p99_ms
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // The daemon's own log, for looking into a run: BENCH_LOG=info.
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let total = readings();
    let postgres_up =
        tokio_postgres::connect(&format!("{POSTGRES}/postgres"), tokio_postgres::NoTls)
            .await
            .is_ok();
    if !postgres_up {
        eprintln!("bench-ingest: PostgreSQL not reachable at {POSTGRES}; skipping it");
    }
    // A database per broker, so each run starts from empty tables.
    let database = |name: &str| format!("isobar_bench_{}_{name}", std::process::id());
    for name in ["mosquitto", "embedded"] {
        if postgres_up {
            admin("postgres", &format!("CREATE DATABASE {}", database(name))).await;
        }
    }
    let url = |name: &str| postgres_up.then(|| format!("{POSTGRES}/{}", database(name)));

    let port = mosquitto::free_port();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // Queued messages bounded by memory only: the publishers outrun isobar
    // by design here, and the shipped 256 MiB would drop the excess of a
    // million readings; and no snapshots of that queue every 5 seconds.
    let broker = mosquitto::PrivateMosquitto::start(
        port,
        dir,
        &[("max_queued_bytes", "0"), ("persistence", "false")],
    );
    wait_for_port(port).await;
    let on_mosquitto = run(
        "mosquitto",
        Broker::Mosquitto(port),
        total,
        url("mosquitto").as_deref(),
    )
    .await;
    drop(broker);

    let on_embedded = run(
        "embedded",
        Broker::Embedded,
        total.min(EMBEDDED_MAX),
        url("embedded").as_deref(),
    )
    .await;

    let copy = if postgres_up {
        // Into a table like the one isobar's migrations made.
        let copy = raw_copy(&database("mosquitto"), total).await;
        report("raw_postgres_copy", copy, None);
        let (unnest, staged) = batch_methods(&database("embedded"), total.min(EMBEDDED_MAX)).await;
        report("batches_of_333/unnest_insert", unnest, None);
        report("batches_of_333/binary_copy_staging_insert", staged, None);
        for name in ["mosquitto", "embedded"] {
            admin(
                "postgres",
                &format!("DROP DATABASE {} WITH (FORCE)", database(name)),
            )
            .await;
        }
        Some(copy)
    } else {
        None
    };
    println!();
    summary("mosquitto", &on_mosquitto, copy);
    summary("embedded", &on_embedded, copy);
}

/// The two ways the store could write a batch, on the same rows in batches
/// of the size isobar uses against Mosquitto (333), each batch one
/// transaction with the duplicate check: a prepared `INSERT … SELECT FROM
/// UNNEST(…) ON CONFLICT DO NOTHING` (what isobar does), and binary COPY
/// into a temporary staging table followed by `INSERT … SELECT … ON
/// CONFLICT DO NOTHING`. Returns rows per second for each.
async fn batch_methods(database: &str, total: usize) -> (f64, f64) {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    const BATCH: usize = 333;
    let (mut client, connection) =
        tokio_postgres::connect(&format!("{POSTGRES}/{database}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE unnest_target (LIKE observations INCLUDING ALL);
             CREATE TABLE copy_staged (LIKE observations INCLUDING ALL);",
        )
        .await
        .unwrap();
    let base = Utc::now();
    let rows: Vec<(String, chrono::DateTime<Utc>)> = (0..total)
        .map(|i| {
            (
                station(i % STATIONS),
                base + chrono::TimeDelta::microseconds(i as i64),
            )
        })
        .collect();
    let qc = serde_json::json!({});

    let insert = client
        .prepare(
            "INSERT INTO unnest_target (station_id, observed_at, received_at, temperature_c, \
               humidity_pct, pressure_hpa, wind_speed_ms, wind_direction_deg, dew_point_c, \
               qc_status, qc) \
             SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[], \
               $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], \
               $9::float8[], $10::text[], $11::jsonb[]) \
             ON CONFLICT (station_id, observed_at) DO NOTHING",
        )
        .await
        .unwrap();
    let start = Instant::now();
    for chunk in rows.chunks(BATCH) {
        let n = chunk.len();
        let ids: Vec<&str> = chunk.iter().map(|(s, _)| s.as_str()).collect();
        let at: Vec<chrono::DateTime<Utc>> = chunk.iter().map(|(_, t)| *t).collect();
        let f = |v: f64| vec![v; n];
        let tx = client.transaction().await.unwrap();
        tx.execute(
            &insert,
            &[
                &ids,
                &at,
                &at,
                &f(21.5),
                &f(60.0),
                &f(1012.0),
                &f(3.2),
                &f(180.0),
                &f(13.6),
                &vec!["pass"; n],
                &vec![&qc; n],
            ],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let unnest = total as f64 / start.elapsed().as_secs_f64();

    let types = [
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TIMESTAMPTZ,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::TEXT,
        Type::JSONB,
    ];
    let columns = "station_id, observed_at, received_at, temperature_c, humidity_pct, \
                   pressure_hpa, wind_speed_ms, wind_direction_deg, dew_point_c, qc_status, qc";
    let start = Instant::now();
    for chunk in rows.chunks(BATCH) {
        let tx = client.transaction().await.unwrap();
        tx.batch_execute(
            "CREATE TEMP TABLE staging (LIKE observations INCLUDING DEFAULTS) ON COMMIT DROP",
        )
        .await
        .unwrap();
        let sink = tx
            .copy_in(&format!(
                "COPY staging ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .unwrap();
        let writer = BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for (id, at) in chunk {
            writer
                .as_mut()
                .write(&[
                    id,
                    at,
                    at,
                    &21.5_f64,
                    &60.0_f64,
                    &1012.0_f64,
                    &3.2_f64,
                    &180.0_f64,
                    &13.6_f64,
                    &"pass",
                    &qc,
                ])
                .await
                .unwrap();
        }
        writer.finish().await.unwrap();
        tx.execute(
            &format!(
                "INSERT INTO copy_staged ({columns}) SELECT {columns} FROM staging \
                 ON CONFLICT (station_id, observed_at) DO NOTHING"
            ),
            &[],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let copy = total as f64 / start.elapsed().as_secs_f64();
    (unnest, copy)
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
