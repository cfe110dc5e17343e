//! `make bench-ingest`: how fast isobar takes QoS 1 readings from MQTT to the
//! store, against raw baselines measured in the same run on the same
//! machine: the same broker with a bare subscriber, and a bare PostgreSQL
//! COPY of the same rows.
//!
//! BENCH_READINGS (default 200,000) readings from 1,000 stations, sent by
//! 4 publisher connections. Prints one JSON object per measurement, then a
//! summary with isobar's rate as a fraction of each baseline. Latency is
//! from publish to the reading reaching a live websocket client, which
//! happens after its batch commits, sampled on 10 stations. The publishers
//! send as fast as the broker takes them, so this is throughput at
//! saturation and the latency includes queueing in the broker. The embedded
//! broker holds at most 160 MiB for a subscriber that falls behind, which
//! caps the run at a few hundred thousand readings; a million needs an
//! external broker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use isobar::App;
use isobar::broker::EmbeddedBroker;
use isobar::config::{ArchiveBackend, Settings, StoreBackend};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

const STATIONS: usize = 1_000;
const PUBLISHERS: usize = 4;
const SAMPLED: usize = 10;
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

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
async fn raw_broker(total: usize) -> f64 {
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap(), 1000).unwrap();
    let (host, port) = (broker.addr().ip().to_string(), broker.addr().port());
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

/// The daemon, in process, on the embedded broker and the given store.
async fn isobar(total: usize, postgres_url: Option<String>) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.web.listen = "127.0.0.1:0".parse().unwrap();
    settings.mqtt.listen = "127.0.0.1:0".parse().unwrap();
    settings.storage.data_dir = dir.path().to_owned();
    settings.archive.backend = ArchiveBackend::Off;
    settings.web.client_queue = 1 << 20;
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

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let total = readings();
    eprintln!("bench-ingest: {total} readings from {STATIONS} stations, {PUBLISHERS} publishers");

    let broker = raw_broker(total).await;
    report("raw_broker", broker, None);

    let sqlite = isobar(total, None).await;
    report("isobar_sqlite", sqlite.rate, Some(&sqlite));

    let database = format!("isobar_bench_{}", std::process::id());
    let postgres_up =
        tokio_postgres::connect(&format!("{POSTGRES}/postgres"), tokio_postgres::NoTls)
            .await
            .is_ok();
    let (copy, postgres) = if postgres_up {
        admin("postgres", &format!("CREATE DATABASE {database}")).await;
        let postgres = isobar(total, Some(format!("{POSTGRES}/{database}"))).await;
        report("isobar_postgres", postgres.rate, Some(&postgres));
        let copy = raw_copy(&database, total).await;
        report("raw_postgres_copy", copy, None);
        admin(
            "postgres",
            &format!("DROP DATABASE {database} WITH (FORCE)"),
        )
        .await;
        (Some(copy), Some(postgres))
    } else {
        eprintln!("bench-ingest: PostgreSQL not reachable at {POSTGRES}; skipping it");
        (None, None)
    };

    println!();
    println!(
        "isobar on SQLite:     {:>9.0} readings/s = {:.2} of the raw broker; p50 {:.1} ms, p99 {:.1} ms",
        sqlite.rate,
        sqlite.rate / broker,
        sqlite.p50_ms,
        sqlite.p99_ms
    );
    if let (Some(copy), Some(pg)) = (copy, postgres) {
        println!(
            "isobar on PostgreSQL: {:>9.0} readings/s = {:.2} of the raw broker, {:.2} of raw COPY; p50 {:.1} ms, p99 {:.1} ms",
            pg.rate,
            pg.rate / broker,
            pg.rate / copy,
            pg.p50_ms,
            pg.p99_ms
        );
    }
}
