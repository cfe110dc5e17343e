//! End to end through the real binary: MQTT in, SQLite, REST and the live
//! websocket out, quarantine for what is bad, and a clean shutdown.

use crate::common;

use std::time::Duration;

use common::{Daemon, Publisher, eventually, next_json, reading};
use futures_util::StreamExt;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_flow_from_mqtt_to_rest_and_websocket() {
    let daemon = Daemon::start(&[]);

    // A live client connected before anything is published.
    let (mut live, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live", daemon.web))
            .await
            .unwrap();
    let snapshot = next_json(&mut live).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["stations"], serde_json::json!([]));

    let publisher = Publisher::connect(&daemon, "test-publisher").await;
    let good = [
        ("WS001", "2025-01-13T10:00:00Z", 22.5),
        ("WS001", "2025-01-13T10:01:00Z", 22.7),
        ("WS001", "2025-01-13T10:02:00Z", 22.9),
        ("WS002", "2025-01-13T10:00:00Z", -3.0),
        ("WS002", "2025-01-13T10:01:00Z", -3.5),
    ];
    for (station, ts, t) in good {
        publisher.reading(station, ts, t).await;
    }
    // A duplicate of the first reading, a malformed payload, a payload whose
    // station disagrees with its topic, and a topic with an invalid id.
    publisher
        .reading("WS001", "2025-01-13T10:00:00Z", 22.5)
        .await;
    publisher
        .publish(
            "weather/WS001/observations",
            "{\"temperature\": 21.0, \"timesta",
        )
        .await;
    publisher
        .publish(
            "weather/WS003/observations",
            reading("WS004", "2025-01-13T10:00:00Z", 10.0),
        )
        .await;
    publisher
        .publish(
            "weather/bad station!/observations",
            reading("x", "2025-01-13T10:00:00Z", 1.0),
        )
        .await;

    // REST: every good reading, the duplicate once.
    let history = eventually(Duration::from_secs(20), "WS001 history", || async {
        let (status, body) = daemon
            .get(
                "/api/v1/stations/WS001/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z",
            )
            .await;
        (status == 200 && body["readings"].as_array()?.len() >= 3).then_some(body)
    })
    .await;
    let temps: Vec<f64> = history["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["temperature_c"].as_f64().unwrap())
        .collect();
    assert_eq!(temps, [22.5, 22.7, 22.9]);
    // Derived metrics are isobar's own, not the payload's.
    let first = &history["readings"][0];
    assert!(
        (first["dew_point_c"].as_f64().unwrap() - 15.6).abs() < 0.2,
        "{first}"
    );
    assert_eq!(first["wind_chill_c"], Value::Null);

    let latest = eventually(Duration::from_secs(10), "WS002's latest", || async {
        let (_, latest) = daemon.get("/api/v1/stations/WS002/latest").await;
        (latest["observed_at"] == "2025-01-13T10:01:00Z").then_some(latest)
    })
    .await;
    assert_eq!(latest["temperature_c"], -3.5);
    assert_eq!(latest["observed_at"], "2025-01-13T10:01:00Z");

    let (_, stations) = daemon.get("/api/v1/stations").await;
    let ids: Vec<&str> = stations["stations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["station_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["WS001", "WS002"]);

    // Quarantine: the three bad messages with their reasons and raw bytes.
    let quarantine = eventually(
        Duration::from_secs(10),
        "three quarantine records",
        || async {
            let (_, body) = daemon.get("/api/v1/quarantine").await;
            (body["items"].as_array()?.len() >= 3).then_some(body)
        },
    )
    .await;
    let mut reasons: Vec<&str> = quarantine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["reason_code"].as_str().unwrap())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["invalid_station_id", "malformed_json", "station_mismatch"]
    );
    let malformed = quarantine["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["reason_code"] == "malformed_json")
        .unwrap();
    assert_eq!(malformed["payload"], "{\"temperature\": 21.0, \"timesta");
    assert_eq!(malformed["source"], "weather/WS001/observations");

    // Websocket: each stored reading once, the duplicate never.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 5 {
        let frame = tokio::time::timeout_at(deadline, live.next())
            .await
            .expect("five readings on the websocket")
            .unwrap()
            .unwrap();
        let msg: Value = serde_json::from_str(&frame.into_text().unwrap()).unwrap();
        if msg["type"] == "reading" {
            let r = &msg["reading"];
            seen.push((
                r["station_id"].as_str().unwrap().to_owned(),
                r["observed_at"].as_str().unwrap().to_owned(),
            ));
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    // No more readings arrive: the duplicate was not broadcast. (Rollups
    // of the periods may.)
    let extra = tokio::time::timeout(
        Duration::from_millis(500),
        common::next_where(&mut live, |m| m["type"] == "reading"),
    )
    .await;
    assert!(extra.is_err(), "unexpected reading: {extra:?}");

    // Prometheus counts what happened.
    let metrics = daemon.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "isobar_readings_stored_total 5"),
        "stored readings missing from\n{metrics}"
    );
    // Quarantine is counted by reason.
    let quarantined: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("isobar_quarantined_total{reason=\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(quarantined, 3.0, "{metrics}");

    // Errors are JSON with a 4xx status.
    let (status, body) = daemon.get("/api/v1/stations/WS999/readings").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, body) = daemon.get("/api/v1/stations/WS001/readings?limit=0").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, body) = daemon
        .get("/api/v1/stations/WS001/readings?from=yesterday")
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().starts_with("from:"),
        "{body}"
    );
    let (status, _) = daemon.get("/api/v1/stations/not%20an%20id/latest").await;
    assert_eq!(status, 400);
    let (status, body) = daemon.get("/api/v1/nothing-here").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_client_can_ask_for_some_stations_only() {
    let daemon = Daemon::start(&[]);
    let publisher = Publisher::connect(&daemon, "filter-publisher").await;
    publisher
        .reading("WS001", "2025-01-13T09:00:00Z", 1.0)
        .await;
    eventually(Duration::from_secs(20), "WS001 stored", || async {
        (daemon.get("/api/v1/stations/WS001/latest").await.0 == 200).then_some(())
    })
    .await;

    let (mut live, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live?stations=WS002", daemon.web))
            .await
            .unwrap();
    let snapshot = next_json(&mut live).await;
    assert_eq!(
        snapshot["stations"],
        serde_json::json!([]),
        "WS001 is filtered out"
    );

    publisher
        .reading("WS001", "2025-01-13T09:01:00Z", 2.0)
        .await;
    publisher
        .reading("WS002", "2025-01-13T09:01:00Z", 3.0)
        .await;
    let msg: Value = serde_json::from_str(
        &tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(msg["type"], "reading");
    assert_eq!(msg["reading"]["station_id"], "WS002");

    // A real handshake with a bad filter is refused before the upgrade.
    match tokio_tungstenite::connect_async(format!(
        "ws://{}/api/v1/live?stations=bad%20id",
        daemon.web
    ))
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400);
        }
        other => panic!("expected a 400 refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_live_client_never_slows_ingestion() {
    const READINGS: u64 = 4_000;
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__WEB__CLIENT_QUEUE", "8")]);

    // A client with a tiny receive buffer that reads the snapshot and then
    // stops reading.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(daemon.web.parse().unwrap()).await.unwrap();
    let (mut stalled, _) =
        tokio_tungstenite::client_async(format!("ws://{}/api/v1/live", daemon.web), stream)
            .await
            .unwrap();
    assert_eq!(next_json(&mut stalled).await["type"], "snapshot");

    let publisher = Publisher::connect(&daemon, "flood-publisher").await;
    let start: chrono::DateTime<chrono::Utc> = "2025-01-13T00:00:00Z".parse().unwrap();
    for i in 0..READINGS {
        let ts = (start + chrono::TimeDelta::seconds(i as i64)).to_rfc3339();
        publisher.reading("WS100", &ts, 10.0).await;
    }
    // Every reading is stored although the client reads nothing.
    eventually(Duration::from_secs(60), "all readings stored", || async {
        let (_, body) = daemon
            .get("/api/v1/stations/WS100/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z&limit=10000")
            .await;
        (body["readings"].as_array()?.len() as u64 == READINGS).then_some(())
    })
    .await;

    // When it reads again, it is told how much it missed: every reading is
    // either delivered or counted in an overflow notice.
    let (mut dropped, mut delivered) = (0u64, 0u64);
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(2), stalled.next()).await {
        let msg: Value = serde_json::from_str(&frame.unwrap().into_text().unwrap()).unwrap();
        match msg["type"].as_str().unwrap() {
            "reading" => delivered += 1,
            "overflow" => dropped += msg["dropped"].as_u64().unwrap(),
            other => panic!("unexpected message type {other}"),
        }
        if delivered + dropped == READINGS {
            break;
        }
    }
    assert!(
        dropped > 0,
        "nothing was dropped: the client was not stalled"
    );
    assert_eq!(delivered + dropped, READINGS);
    let metrics = daemon.metrics().await;
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("isobar_live_dropped_total "))
        .expect("dropped messages are counted")
        .parse()
        .unwrap();
    assert!(counted >= dropped, "counted {counted}, told {dropped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulate_command_feeds_a_running_daemon() {
    let daemon = Daemon::start(&[]);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_isobar"))
        .args([
            "simulate",
            "--stations",
            "3",
            "--interval",
            "50ms",
            "--rounds",
            "4",
            "--seed",
            "9",
        ])
        .args([
            "--broker",
            &format!("{}:{}", daemon.mqtt_host, daemon.mqtt_port),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("published 12 readings"));
    let stations = eventually(
        Duration::from_secs(20),
        "three simulated stations",
        || async {
            let (_, body) = daemon.get("/api/v1/stations").await;
            let list = body["stations"].as_array()?.clone();
            (list.len() == 3 && list.iter().all(|s| !s["latest"].is_null())).then_some(list)
        },
    )
    .await;
    for station in &stations {
        let latest = &station["latest"];
        assert!(
            latest["temperature_c"].is_f64() && latest["wind_speed_ms"].is_f64(),
            "{latest}"
        );
        assert!(station["latitude"].is_f64());
        // Simulated stations report their elevation, so sea-level pressure
        // is derived from station pressure.
        assert!(latest["sea_level_pressure_hpa"].is_f64(), "{latest}");
        assert_eq!(latest["qc"]["status"], "pass", "{latest}");
    }
    for id in ["WS001", "WS002", "WS003"] {
        eventually(
            Duration::from_secs(10),
            "four readings per station",
            || async {
                let (_, body) = daemon.get(&format!("/api/v1/stations/{id}/readings")).await;
                (body["readings"].as_array()?.len() == 4).then_some(())
            },
        )
        .await;
    }
}

/// The websocket pings its clients every heartbeat; one that answers stays,
/// one that stays silent for two heartbeats is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_clients_are_pinged_and_a_silent_one_is_closed() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__WEB__HEARTBEAT", "200ms")]);
    let url = format!("ws://{}/api/v1/live", daemon.web);
    let (mut answering, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut silent, _) = tokio_tungstenite::connect_async(&url).await.unwrap();

    // Reading answers pings (the library sends the pongs): still open after
    // many heartbeats.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout(Duration::from_millis(300), answering.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                panic!("an answering client was closed")
            }
            _ => {}
        }
    }
    assert!(pings >= 3, "{pings} pings in 1.5 s");

    // The silent one, read only now: its connection was closed.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match silent.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true));
    drop(answering);
    assert_eq!(daemon.terminate(), Some(0));
}

/// Once readings stop coming, the daemon hands back what their burst took
/// (the store's page caches, the allocators' free pages): once per quiet
/// spell, not on every tick while quiet, and again after the next burst.
/// How much comes back is measured by `make bench-memory`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_given_back_once_the_readings_stop() {
    let daemon = Daemon::start(&[]);
    let publisher = Publisher::connect(&daemon, "burst-publisher").await;
    let given_back = || async {
        common::metric(&daemon.metrics().await, "isobar_memory_given_back_total").unwrap_or(0.0)
    };
    let mut seen = given_back().await;
    assert_eq!(seen, 0.0, "nothing to give back before any reading");
    for burst in 0..2 {
        for i in 0..50 {
            let at = chrono::Utc::now() - chrono::TimeDelta::minutes(60 * burst + i);
            publisher
                .reading("WS500", &at.to_rfc3339(), 10.0 + i as f64 * 0.1)
                .await;
        }
        seen = eventually(
            Duration::from_secs(30),
            "memory given back after the burst",
            || async {
                let n = given_back().await;
                (n > seen).then_some(n)
            },
        )
        .await;
        // Quiet since: nothing more to give back.
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert_eq!(given_back().await, seen, "given back again while quiet");
    }
    assert_eq!(daemon.terminate(), Some(0));
}
