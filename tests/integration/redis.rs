//! The Redis cache against real Redis: latest readings, newer-only updates,
//! the relay that lets several instances feed each other's live clients,
//! and the daemon carrying on (from the store) while Redis is down.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use common::{Daemon, PrivateRedis, Publisher, eventually, next_json};
use isobar::domain::{Observation, QcReport, Reading, StationId};
use isobar::storage::{LatestCache, RedisCache};

const REDIS: &str = "redis://127.0.0.1:6379";

fn prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("isobar-test:{nanos}:")
}

fn reading(station: &str, at: &str, t: f64) -> Reading {
    let at: DateTime<Utc> = at.parse().unwrap();
    let mut obs = Observation::new(StationId::parse(station).unwrap(), at);
    obs.temperature_c = Some(t);
    Reading::new(obs, at, QcReport::default())
}

#[tokio::test]
async fn the_cache_keeps_the_newest_reading_per_station() {
    let prefix = prefix();
    let a = RedisCache::connect(REDIS, &prefix, "a", None).unwrap();
    eventually(Duration::from_secs(10), "redis connected", || async {
        a.ping().await.ok()
    })
    .await;
    a.put_newer(&[
        reading("WS1", "2025-01-13T10:00:00Z", 1.0),
        reading("WS2", "2025-01-13T10:00:00Z", 2.0),
    ])
    .await;
    // Older: ignored. Newer: kept.
    a.put_newer(&[reading("WS1", "2025-01-13T09:00:00Z", 9.0)])
        .await;
    a.put_newer(&[reading("WS2", "2025-01-13T11:00:00Z", 3.0)])
        .await;
    // Another instance sharing the prefix sees the same.
    let b = RedisCache::connect(REDIS, &prefix, "b", None).unwrap();
    eventually(Duration::from_secs(10), "redis connected", || async {
        b.ping().await.ok()
    })
    .await;
    let id = |s: &str| StationId::parse(s).unwrap();
    assert_eq!(b.get(&id("WS1")).await.unwrap().temperature_c, Some(1.0));
    assert_eq!(b.get(&id("WS2")).await.unwrap().temperature_c, Some(3.0));
    assert_eq!(b.get(&id("WS3")).await, None);
    assert_eq!(b.all().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_redis_feed_each_others_live_clients() {
    let prefix = prefix();
    let env = [
        ("ISOBAR__CACHE__BACKEND", "redis"),
        ("ISOBAR__CACHE__REDIS_URL", REDIS),
        ("ISOBAR__CACHE__KEY_PREFIX", prefix.as_str()),
    ];
    let a = Daemon::start_with_env(&[], &env);
    let b = Daemon::start_with_env(&[], &env);
    let (mut live_b, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live", b.web))
        .await
        .unwrap();
    assert_eq!(next_json(&mut live_b).await["type"], "snapshot");
    // Give b's relay its subscription: readiness covers MQTT and the store,
    // not the relay, so wait for a reading to come through.
    let publisher = Publisher::connect(&a, "relay-publisher").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut minute = 0;
    let msg = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reading relayed to b's client"
        );
        minute += 1;
        publisher
            .reading(
                "WS400",
                &format!("2025-01-13T10:{:02}:00Z", minute % 60),
                7.0,
            )
            .await;
        if let Ok(msg) =
            tokio::time::timeout(Duration::from_millis(500), next_json(&mut live_b)).await
        {
            break msg;
        }
    };
    assert_eq!(msg["type"], "reading");
    assert_eq!(msg["reading"]["station_id"], "WS400");
    // b serves a's latest reading from the shared cache.
    let (status, latest) = b.get("/api/v1/stations/WS400/latest").await;
    assert_eq!(status, 200, "{latest}");
    let (_, ready) = a.get("/ready").await;
    assert_eq!(ready["checks"]["cache"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_carries_on_without_redis() {
    let redis = PrivateRedis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let daemon = common::daemon_with_redis(&url).await;
    let port = redis.port;
    drop(redis);

    let publisher = Publisher::connect(&daemon, "no-redis-publisher").await;
    for minute in 0..5 {
        publisher
            .reading("WS410", &format!("2025-01-13T10:0{minute}:00Z"), 3.0)
            .await;
    }
    // Stored and served from the store, though the cache is gone.
    eventually(Duration::from_secs(20), "five readings stored", || async {
        let (_, body) = daemon
            .get(
                "/api/v1/stations/WS410/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z",
            )
            .await;
        (body["readings"].as_array()?.len() == 5).then_some(())
    })
    .await;
    let (status, latest) = daemon.get("/api/v1/stations/WS410/latest").await;
    assert_eq!(
        (status, latest["observed_at"].as_str()),
        (200, Some("2025-01-13T10:04:00Z"))
    );
    let (status, ready) = daemon.get("/ready").await;
    assert_eq!(status, 200, "the daemon still takes readings");
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_ne!(ready["checks"]["cache"], "ok");

    // Redis back: the daemon reconnects by itself.
    let _redis = PrivateRedis::start_on(port);
    eventually(Duration::from_secs(20), "the cache reconnected", || async {
        let (_, ready) = daemon.get("/ready").await;
        (ready["status"] == "ready").then_some(())
    })
    .await;
}

/// `rediss://`: the cache over TLS, the server's certificate checked
/// against `cache.redis_ca_file`; a server of another CA is not reached,
/// nor is the TLS port without TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_checks_the_server() {
    // Two crypto providers are linked; the test's clients take the daemon's.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs = tempfile::tempdir().unwrap();
    common::tls::make_certificates(certs.path());
    let other = tempfile::tempdir().unwrap();
    common::tls::make_certificates(other.path());
    let port = common::mosquitto::free_port();
    let _redis = common::PrivateRedis::start_tls(port, certs.path());
    let ca = std::fs::read(certs.path().join("ca.pem")).unwrap();
    let url = format!("rediss://localhost:{port}");
    let cache = RedisCache::connect(&url, "tls:", "a", Some(Some(ca.clone()))).unwrap();
    eventually(Duration::from_secs(10), "an answer over TLS", || async {
        cache.ping().await.ok()
    })
    .await;
    // Never answered, in three seconds of trying.
    let never = |cache: RedisCache| async move {
        for _ in 0..10 {
            assert!(cache.ping().await.is_err());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let wrong = RedisCache::connect(
        &url,
        "tls:",
        "b",
        Some(Some(std::fs::read(other.path().join("ca.pem")).unwrap())),
    )
    .unwrap();
    never(wrong).await;
    let plain =
        RedisCache::connect(&format!("redis://localhost:{port}"), "tls:", "c", None).unwrap();
    never(plain).await;

    let ca_file = certs.path().join("ca.pem");
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__CACHE__BACKEND", "redis"),
            ("ISOBAR__CACHE__REDIS_URL", &url),
            ("ISOBAR__CACHE__REDIS_CA_FILE", ca_file.to_str().unwrap()),
        ],
    );
    eventually(Duration::from_secs(10), "cache ready", || async {
        let (_, ready) = daemon.get("/ready").await;
        (ready["checks"]["cache"] == "ok").then_some(())
    })
    .await;
    assert_eq!(daemon.terminate(), Some(0));
}

/// ElastiCache with an AUTH token, as the AWS stacks deploy it: a Redis
/// that speaks only TLS and wants a password, which the daemon gives from
/// `cache.redis_url` (`rediss://:<token>@host:port`). With a wrong token
/// the cache is never up and `/ready` says so; neither token reaches the
/// log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_an_auth_token() {
    const TOKEN: &str = "Q7pAuthTokenOfSixtyFourLettersAndDigitsOnly0123456789abcdefghij";
    const WRONG: &str = "NotTheTokenNotTheTokenNotTheTokenNotTheTokenNotTheToken01234567";
    let certs = tempfile::tempdir().unwrap();
    common::tls::make_certificates(certs.path());
    let port = common::mosquitto::free_port();
    let _redis = common::PrivateRedis::start_tls_with_password(port, certs.path(), TOKEN);
    let ca_file = certs.path().join("ca.pem");
    let start = |token: &str| {
        Daemon::start_with_env(
            &[],
            &[
                ("ISOBAR__CACHE__BACKEND", "redis"),
                (
                    "ISOBAR__CACHE__REDIS_URL",
                    &format!("rediss://:{token}@localhost:{port}"),
                ),
                ("ISOBAR__CACHE__REDIS_CA_FILE", ca_file.to_str().unwrap()),
            ],
        )
    };
    let daemon = start(TOKEN);
    eventually(Duration::from_secs(10), "cache ready", || async {
        let (_, ready) = daemon.get("/ready").await;
        (ready["checks"]["cache"] == "ok").then_some(())
    })
    .await;
    let publisher = Publisher::connect(&daemon, "auth-token-publisher").await;
    publisher
        .reading("WS420", "2025-01-13T10:00:00Z", 4.0)
        .await;
    eventually(Duration::from_secs(10), "the latest reading", || async {
        let (status, _) = daemon.get("/api/v1/stations/WS420/latest").await;
        (status == 200).then_some(())
    })
    .await;
    drop(publisher);

    let refused = start(WRONG);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, ready) = refused.get("/ready").await;
    assert_eq!(status, 200, "the daemon still takes readings");
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_ne!(ready["checks"]["cache"], "ok", "{ready}");
    let said = refused.logs().join("\n");
    assert!(said.contains("redis refused the login"), "{said}");
    for d in [&daemon, &refused] {
        let logs = d.logs().join("\n");
        assert!(!logs.contains(TOKEN) && !logs.contains(WRONG), "{logs}");
    }
    assert_eq!(daemon.terminate(), Some(0));
    assert_eq!(refused.terminate(), Some(0));
}
