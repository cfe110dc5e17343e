//! Faults against the real services on this machine. In each, a publisher
//! keeps sending QoS 1 readings while something fails, and afterwards every
//! published reading is stored exactly once.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use common::mosquitto::PrivateMosquitto;
use common::{Daemon, PrivateRedis, count_stored, eventually, metric, reading, remove_session};
use rumqttc::{AsyncClient, MqttOptions, QoS};

fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos}_{}", std::process::id())
}

/// Publishes `count` readings for `station` on `topic`, one every `every`,
/// one second apart in observation time; returns when all are sent.
fn publish_steadily(
    host: &str,
    port: u16,
    topic: String,
    station: &'static str,
    count: usize,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let mut options = MqttOptions::new(format!("fault-publisher-{}", unique()), host, port);
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_clean_session(false);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    tokio::spawn(async move {
        let start: DateTime<Utc> = "2025-01-13T00:00:00Z".parse().unwrap();
        for i in 0..count {
            let ts = (start + TimeDelta::seconds(i as i64)).to_rfc3339();
            client
                .publish(&topic, QoS::AtLeastOnce, false, reading(station, &ts, 10.0))
                .await
                .unwrap();
            tokio::time::sleep(every).await;
        }
    })
}

async fn stored(daemon: &Daemon, station: &str) -> usize {
    let (_, body) = daemon
        .get(&format!(
            "/api/v1/stations/{station}/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z&limit=10000"
        ))
        .await;
    body["readings"].as_array().map_or(0, Vec::len)
}

/// How many of the station's stored temperatures passed quality control.
async fn passed_temperatures(daemon: &Daemon, station: &str) -> u64 {
    let (_, body) = daemon
        .get(&format!(
            "/api/v1/stations/{station}/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z&limit=10000"
        ))
        .await;
    body["readings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["temperature_c"].is_number()
                && r["qc"]["variables"]["temperature_c"]["flag"]
                    .as_str()
                    .is_none_or(|flag| flag == "pass")
        })
        .count() as u64
}

/// The station's temperature count over its hourly rollups of the day.
async fn rolled_up_temperatures(daemon: &Daemon, station: &str) -> u64 {
    let (_, body) = daemon
        .get(&format!(
            "/api/v1/stations/{station}/rollups?resolution=1h&from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z"
        ))
        .await;
    body["rollups"].as_array().map_or(0, |periods| {
        periods
            .iter()
            .filter_map(|p| p["variables"]["temperature_c"]["count"].as_u64())
            .sum()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_stream_loses_nothing() {
    const N: usize = 1_500;
    let id = unique();
    let client_id = format!("isobar-fault-{id}");
    let prefix = format!("isobar-fault-{id}");
    let topic_filter = format!("{prefix}/+/observations");
    let env = [
        ("ISOBAR__MQTT__MODE", "external"),
        ("ISOBAR__MQTT__BROKER", "127.0.0.1:1883"),
        ("ISOBAR__MQTT__CLIENT_ID", client_id.as_str()),
        ("ISOBAR__MQTT__TOPIC", topic_filter.as_str()),
    ];
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let daemon = Daemon::start_in(dir.clone(), &[], &env);
    let publisher = publish_steadily(
        "127.0.0.1",
        1883,
        format!("{prefix}/WS600/observations"),
        "WS600",
        N,
        // Slow enough that the broker's default queue (1000 messages for a
        // disconnected session) outlasts the restart by seconds.
        Duration::from_millis(3),
    );
    eventually(Duration::from_secs(30), "some readings stored", || async {
        (stored(&daemon, "WS600").await >= 200).then_some(())
    })
    .await;
    // kill -9 in mid-stream: whatever was received but not committed was
    // not acknowledged, and the broker keeps it for the session.
    daemon.kill();
    let daemon = Daemon::start_in(dir.clone(), &[], &env);
    publisher.await.unwrap();
    eventually(
        Duration::from_secs(60),
        "every reading stored once",
        || async { (stored(&daemon, "WS600").await == N).then_some(()) },
    )
    .await;
    // And rolled up once: the batches the kill caught between commit and
    // roll-up are read back after the restart, the others are not counted
    // again.
    let passed = passed_temperatures(&daemon, "WS600").await;
    eventually(
        Duration::from_secs(60),
        "every stored temperature that passed rolled up once",
        || async { (rolled_up_temperatures(&daemon, "WS600").await == passed).then_some(()) },
    )
    .await;
    assert!(passed > 0);
    assert_eq!(daemon.terminate(), Some(0));
    // Remove the session from the shared broker.
    remove_session(&client_id, "127.0.0.1", 1883).await;
}

/// Stations publishing as fast as the embedded server takes them, each on
/// its own persistent session: `stations` × `each` readings, one second
/// apart in observation time. Returns when every one is acknowledged.
fn stations_publishing(
    port: u16,
    stations: &[&'static str],
    each: usize,
) -> tokio::task::JoinHandle<()> {
    let tasks: Vec<_> = stations
        .iter()
        .map(|&station| {
            let mut options =
                MqttOptions::new(format!("{station}-{}", unique()), "127.0.0.1", port);
            options
                .set_keep_alive(Duration::from_secs(5))
                .set_clean_session(false)
                .set_inflight(100);
            let (client, mut eventloop) = AsyncClient::new(options, 100);
            let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counted = acked.clone();
            let poller = tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
            tokio::spawn(async move {
                let start: DateTime<Utc> = "2025-01-13T00:00:00Z".parse().unwrap();
                let topic = format!("weather/{station}/observations");
                for i in 0..each {
                    let ts = (start + TimeDelta::seconds(i as i64)).to_rfc3339();
                    client
                        .publish(
                            &topic,
                            QoS::AtLeastOnce,
                            false,
                            reading(station, &ts, 10.0 + (i % 7) as f64 * 0.1),
                        )
                        .await
                        .unwrap();
                }
                // Acknowledged, counting each once: a resent message may be
                // acknowledged twice.
                while acked.load(std::sync::atomic::Ordering::Relaxed) < each {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                poller.abort();
            })
        })
        .collect();
    tokio::spawn(async move {
        for task in tasks {
            task.await.unwrap();
        }
    })
}

/// In the default mode, the embedded server acknowledges a publish only
/// once it is stored: a daemon killed (kill -9) or stopped (SIGTERM) under
/// load loses nothing, since what it did not acknowledge the stations
/// send again to the next start.
async fn embedded_stop_under_load_loses_nothing(kill: bool) {
    const EACH: usize = 1_500;
    let stations = ["WS640", "WS641", "WS642", "WS643"];
    let port = common::mosquitto::free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--mqtt-listen", listen.as_str()];
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let daemon = Daemon::start_in(dir.clone(), &args, &[]);
    let publishing = stations_publishing(port, &stations, EACH);
    eventually(Duration::from_secs(30), "some readings stored", || async {
        (stored(&daemon, "WS640").await >= 300).then_some(())
    })
    .await;
    // Mid-stream: the stop catches readings on their way.
    let before = stored(&daemon, "WS640").await;
    assert!(before < EACH, "{before} of {EACH} stored before the stop");
    let daemon = if kill {
        daemon.kill();
        Daemon::start_in(dir.clone(), &args, &[])
    } else {
        let (code, logs) = {
            let d = daemon;
            let pid = d.pid();
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
            d.exit_within(Duration::from_secs(30))
        };
        assert_eq!(code, Some(0), "{logs:#?}");
        assert!(
            logs.iter().any(|l| l.contains("persister flushed")),
            "{logs:#?}"
        );
        Daemon::start_in(dir.clone(), &args, &[])
    };
    tokio::time::timeout(Duration::from_secs(90), publishing)
        .await
        .expect("every reading acknowledged")
        .unwrap();
    // Acknowledged means stored: no waiting.
    for station in stations {
        assert_eq!(stored(&daemon, station).await, EACH, "{station}");
    }
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_server_killed_under_load_loses_nothing() {
    embedded_stop_under_load_loses_nothing(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_server_stopped_under_load_loses_nothing() {
    embedded_stop_under_load_loses_nothing(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_stream_loses_nothing() {
    const N: usize = 600;
    let redis = PrivateRedis::start();
    let port = redis.port;
    let url = format!("redis://127.0.0.1:{port}");
    let daemon = common::daemon_with_redis(&url).await;
    let publisher = publish_steadily(
        &daemon.mqtt_host,
        daemon.mqtt_port,
        "weather/WS630/observations".into(),
        "WS630",
        N,
        Duration::from_millis(10),
    );
    eventually(Duration::from_secs(30), "some readings stored", || async {
        (stored(&daemon, "WS630").await >= 100).then_some(())
    })
    .await;
    // Redis goes away while readings keep coming.
    drop(redis);
    let during = stored(&daemon, "WS630").await;
    eventually(
        Duration::from_secs(10),
        "/ready to report the cache down",
        || async {
            let (status, ready) = daemon.get("/ready").await;
            (status == 200 && ready["status"] == "degraded").then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "readings stored with Redis down",
        || async { (stored(&daemon, "WS630").await >= during + 100).then_some(()) },
    )
    .await;
    let redis = PrivateRedis::start_on(port);
    publisher.await.unwrap();
    eventually(
        Duration::from_secs(30),
        "every reading stored once",
        || async { (stored(&daemon, "WS630").await == N).then_some(()) },
    )
    .await;
    // The cache came back and holds the newest reading again: straight from
    // Redis, not through the store fallback of the latest endpoint.
    let last = (DateTime::parse_from_rfc3339("2025-01-13T00:00:00Z").unwrap()
        + TimeDelta::seconds(N as i64 - 1))
    .with_timezone(&Utc);
    eventually(
        Duration::from_secs(20),
        "the newest reading in Redis",
        || async {
            let client =
                fred::prelude::Builder::from_config(fred::prelude::Config::from_url(&url).unwrap())
                    .build()
                    .unwrap();
            fred::prelude::ClientLike::init(&client).await.ok()?;
            let json: Option<String> =
                fred::prelude::HashesInterface::hget(&client, "isobar:latest", "WS630")
                    .await
                    .ok()?;
            let value: serde_json::Value = serde_json::from_str(&json?).ok()?;
            let at: DateTime<Utc> = value["observed_at"].as_str()?.parse().ok()?;
            (at == last).then_some(())
        },
    )
    .await;
    drop(redis);
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_30_seconds_loses_nothing() {
    const N: usize = 400;
    // A database of its own, so its outage touches no other test.
    let db = format!("isobar_fault_{}", unique());
    common::pg_admin(&format!("CREATE DATABASE {db}")).await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__STORAGE__BACKEND", "postgres"),
            ("ISOBAR__STORAGE__POSTGRES_URL", &url),
        ],
    );
    let publisher = publish_steadily(
        &daemon.mqtt_host,
        daemon.mqtt_port,
        "weather/WS610/observations".into(),
        "WS610",
        N,
        Duration::from_millis(90),
    );
    eventually(Duration::from_secs(30), "some readings stored", || async {
        (stored(&daemon, "WS610").await >= 20).then_some(())
    })
    .await;
    // The outage: no new connections, and the open ones cut.
    common::pg_admin(&format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}';"
    ))
    .await;
    eventually(
        Duration::from_secs(10),
        "/ready to report the store down",
        || async {
            let (status, _) = daemon.get("/ready").await;
            (status == 503).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    common::pg_admin(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).await;

    publisher.await.unwrap();
    eventually(
        Duration::from_secs(60),
        "every reading stored once",
        || async { (stored(&daemon, "WS610").await == N).then_some(()) },
    )
    .await;
    assert!(
        daemon
            .logs()
            .iter()
            .any(|l| l.contains("batch write failed; will retry"))
    );
    assert_eq!(daemon.terminate(), Some(0));
    common::pg_admin(&format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    const N: usize = 600;
    let port = common::mosquitto::free_port();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let broker = PrivateMosquitto::start(port, dir.clone(), &[]);
    let address = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__MQTT__MODE", "external"),
            ("ISOBAR__MQTT__BROKER", &address),
        ],
    );
    // The publisher keeps its session too, so what it sent unacknowledged
    // is sent again after the restart.
    let mut options =
        MqttOptions::new(format!("restart-publisher-{}", unique()), "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_clean_session(false);
    let (client, mut eventloop) = AsyncClient::new(options, 2000);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let publisher = tokio::spawn(async move {
        let start: DateTime<Utc> = "2025-01-13T00:00:00Z".parse().unwrap();
        for i in 0..N {
            let ts = (start + TimeDelta::seconds(i as i64)).to_rfc3339();
            let topic = "weather/WS620/observations";
            client
                .publish(topic, QoS::AtLeastOnce, false, reading("WS620", &ts, 5.0))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    eventually(Duration::from_secs(30), "some readings stored", || async {
        (stored(&daemon, "WS620").await >= 100).then_some(())
    })
    .await;
    broker.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _broker = PrivateMosquitto::start(port, dir.clone(), &[]);
    publisher.await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = stored(&daemon, "WS620").await;
        if n == N {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let logs: Vec<String> = daemon
                .logs()
                .into_iter()
                .filter(|l| !l.contains("http request"))
                .collect();
            let tail = &logs[logs.len().saturating_sub(30)..];
            panic!("{n} of {N} readings stored after the broker restart: {tail:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_behind_a_stalled_store_drains_without_a_broker_disconnect() {
    const STATIONS: usize = 50;
    const EACH: usize = 400;
    // ISOBAR_TEST_STALL=600s ISOBAR_TEST_KEEP_ALIVE=30s runs the full
    // 10-minute stall at the default keep-alive.
    let setting =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let stall = humantime::parse_duration(&setting("ISOBAR_TEST_STALL", "25s")).unwrap();
    let keep_alive = setting("ISOBAR_TEST_KEEP_ALIVE", "2s");
    let port = common::mosquitto::free_port();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let _broker = PrivateMosquitto::start(port, dir.clone(), &[]);
    let db = format!("isobar_stall_{}", unique());
    common::pg_admin(&format!("CREATE DATABASE {db}")).await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let address = format!("127.0.0.1:{port}");
    // A keep-alive of 2 s: the stall lasts a dozen of them, as a
    // 10-minute one does at the default 30 s. isobar's window (100) is a
    // tenth of the broker's (1000), as with a broker that sends past its
    // window: the readings it sends beyond isobar's bound wait in the
    // socket, in front of its answers to isobar's pings.
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__MQTT__MODE", "external"),
            ("ISOBAR__MQTT__BROKER", &address),
            ("ISOBAR__MQTT__KEEP_ALIVE", &keep_alive),
            ("ISOBAR__MQTT__MAX_INFLIGHT", "100"),
            ("ISOBAR__STORAGE__BACKEND", "postgres"),
            ("ISOBAR__STORAGE__POSTGRES_URL", &url),
        ],
    );
    // The stall: every write waits on a lock held in an open transaction.
    let (locker, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    locker
        .batch_execute("BEGIN; LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let stalled = std::time::Instant::now();

    let mut options = MqttOptions::new(format!("stall-publisher-{}", unique()), "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_inflight(500);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = acked.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let start: DateTime<Utc> = "2025-01-13T00:00:00Z".parse().unwrap();
    for i in 0..EACH {
        let ts = (start + TimeDelta::seconds(60 * i as i64)).to_rfc3339();
        for s in 0..STATIONS {
            let station = format!("WS7{s:02}");
            let topic = format!("weather/{station}/observations");
            let payload = reading(&station, &ts, 10.0 + (i % 7) as f64 * 0.3 + s as f64 * 0.01);
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
        }
    }
    eventually(
        Duration::from_secs(60),
        "the broker to take every reading",
        || async {
            (acked.load(std::sync::atomic::Ordering::SeqCst) == STATIONS * EACH).then_some(())
        },
    )
    .await;
    tokio::time::sleep(stall.saturating_sub(stalled.elapsed())).await;
    assert_eq!(
        common::metric(&daemon.metrics().await, "isobar_ingest_paused_total").map(|v| v > 0.0),
        Some(true),
        "ingest held back while the store was stalled"
    );
    locker.batch_execute("COMMIT").await.unwrap();

    eventually(Duration::from_secs(120), "every reading stored", || async {
        (count_stored(&url).await == (STATIONS * EACH) as i64).then_some(())
    })
    .await;
    let logs = daemon.logs();
    let lost: Vec<_> = logs
        .iter()
        .filter(|l| l.contains("broker connection lost"))
        .collect();
    assert!(lost.is_empty(), "the connection was kept: {lost:?}");
    assert_eq!(daemon.terminate(), Some(0));
    common::pg_admin(&format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

/// A broker that drops what it has no room to queue (Mosquitto's stock
/// `max_queued_messages 1000`, a small in-flight window, a slow consumer):
/// isobar cannot get those messages back, but it says so, in its metrics,
/// in a `broker_dropping` alert and in `/ready`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_the_broker_drops_are_reported() {
    let port = common::mosquitto::free_port();
    let _broker = PrivateMosquitto::start(
        port,
        Arc::new(tempfile::tempdir().unwrap()),
        &[
            ("max_queued_messages", "1000"),
            ("max_queued_bytes", "0"),
            ("max_inflight_messages", "20"),
            ("sys_interval", "1"),
        ],
    );
    let id = unique();
    let prefix = format!("isobar-drops-{id}");
    let broker = format!("127.0.0.1:{port}");
    let topic = format!("{prefix}/+/observations");
    let client_id = format!("isobar-drops-{id}");
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__MQTT__MODE", "external"),
            ("ISOBAR__MQTT__BROKER", broker.as_str()),
            ("ISOBAR__MQTT__CLIENT_ID", client_id.as_str()),
            ("ISOBAR__MQTT__TOPIC", topic.as_str()),
            ("ISOBAR__MQTT__MAX_INFLIGHT", "20"),
            // A slow consumer: each batch waits 200 ms to fill.
            ("ISOBAR__PERSISTER__FLUSH_INTERVAL", "200ms"),
            ("ISOBAR__ALERTS__PIPELINE__CHECK_EVERY", "1s"),
        ],
    );
    // Faster than isobar takes them, for several of the broker's $SYS
    // intervals.
    let publisher = publish_steadily(
        "127.0.0.1",
        port,
        format!("{prefix}/WS700/observations"),
        "WS700",
        6_000,
        Duration::from_micros(500),
    );
    let dropped = eventually(Duration::from_secs(30), "drops reported", || async {
        let dropped = metric(
            &daemon.metrics().await,
            "isobar_broker_messages_dropped_total",
        )?;
        (dropped > 0.0).then_some(dropped)
    })
    .await;
    let (status, ready) = daemon.get("/ready").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(
        ready["checks"]["broker"]
            .as_str()
            .unwrap()
            .starts_with("dropping"),
        "{ready}"
    );
    let alert = eventually(
        Duration::from_secs(10),
        "the broker_dropping alert",
        || async {
            let (_, body) = daemon.get("/api/v1/alerts?state=firing").await;
            body["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["rule"] == "broker_dropping")
                .cloned()
        },
    )
    .await;
    assert!(alert["station_id"].is_null(), "{alert}");
    assert!(dropped >= 1.0);
    publisher.abort();
    remove_session(&client_id, "127.0.0.1", port).await;
}
