//! Alert rules from the config against the real daemon: a threshold fires
//! once while it lasts and resolves with hysteresis, a silent station fires
//! and resolves, each is stored, listed by the API and pushed to live
//! clients, and a firing alert is not fired again after a restart.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Daemon, Publisher, eventually, next_json};
use serde_json::Value;

/// The alert rules of these tests: `hot` above 30 °C at once, and
/// stations silent after 2 s.
fn rules() -> String {
    common::alert_rules("2s")
}

async fn alerts(daemon: &Daemon, query: &str) -> Vec<Value> {
    let (_, body) = daemon.get(&format!("/api/v1/alerts{query}")).await;
    body["alerts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_and_silence_fire_and_resolve() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = dir.path().join("isobar.toml");
    std::fs::write(&config, rules()).unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let daemon = Daemon::start_in(dir.clone(), &args, &[]);
    let (mut live, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live?stations=WS900", daemon.web))
            .await
            .unwrap();
    assert_eq!(next_json(&mut live).await["type"], "snapshot");
    let publisher = Publisher::connect(&daemon, "alert-publisher").await;
    let now = chrono::Utc::now();
    let ts = |s: i64| {
        (now + chrono::TimeDelta::seconds(s)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };

    publisher.reading("WS900", &ts(0), 31.0).await;
    publisher.reading("WS900", &ts(1), 32.0).await;
    let alert = loop {
        let msg = next_json(&mut live).await;
        if msg["type"] == "alert" {
            break msg["alert"].clone();
        }
    };
    assert_eq!(
        (
            alert["rule"].as_str(),
            alert["state"].as_str(),
            alert["value"].as_f64()
        ),
        (Some("hot"), Some("firing"), Some(31.0)),
        "{alert}"
    );
    // Once only, and still firing inside the hysteresis band.
    publisher.reading("WS900", &ts(2), 29.5).await;
    let firing = eventually(
        Duration::from_secs(10),
        "the firing alert listed",
        || async {
            let a = alerts(&daemon, "?state=firing").await;
            (a.iter().filter(|a| a["rule"] == "hot").count() == 1).then_some(a)
        },
    )
    .await;
    assert_eq!(firing[0]["station_id"], "WS900");

    // Restarted while firing: not fired again.
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
    let daemon = Daemon::start_in(dir.clone(), &args, &[]);
    let publisher = Publisher::connect(&daemon, "alert-publisher-2").await;
    publisher.reading("WS900", &ts(3), 30.5).await;
    publisher.reading("WS900", &ts(4), 28.5).await;
    eventually(Duration::from_secs(10), "the alert resolved", || async {
        let a = alerts(&daemon, "?state=resolved").await;
        a.iter().any(|a| a["rule"] == "hot").then_some(())
    })
    .await;
    let hot: Vec<Value> = alerts(&daemon, "")
        .await
        .into_iter()
        .filter(|a| a["rule"] == "hot")
        .collect();
    assert_eq!(hot.len(), 1, "fired once across the restart: {hot:?}");
    assert!(hot[0]["resolved_at"].is_string());

    // WS900 goes quiet past silent_after.
    eventually(Duration::from_secs(20), "WS900 silent", || async {
        let a = alerts(&daemon, "?state=firing").await;
        a.iter()
            .any(|a| a["rule"] == "station_silent" && a["station_id"] == "WS900")
            .then_some(())
    })
    .await;
    // Heard from again: resolved.
    let later = (chrono::Utc::now()).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    publisher.reading("WS900", &later, 20.0).await;
    eventually(Duration::from_secs(20), "silence resolved", || async {
        let a = alerts(&daemon, "?state=resolved").await;
        a.iter()
            .any(|a| a["rule"] == "station_silent")
            .then_some(())
    })
    .await;

    let (status, err) = daemon.get("/api/v1/alerts?state=sleeping").await;
    assert_eq!(status, 400, "{err}");
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_the_webhook_with_retries() {
    let accept = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (port, mut received) = crate::common::webhook_receiver(accept.clone()).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = dir.path().join("isobar.toml");
    std::fs::write(&config, rules()).unwrap();
    let url = format!("http://127.0.0.1:{port}/hooks/isobar?token=not-logged");
    let daemon = Daemon::start_in(
        dir.clone(),
        &["--config", config.to_str().unwrap()],
        &[("ISOBAR__ALERTS__WEBHOOK_URL", &url)],
    );
    let publisher = Publisher::connect(&daemon, "webhook-publisher").await;
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    publisher.reading("WS910", &ts, 31.0).await;
    // Refused once, then delivered: the same alert, twice.
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let body = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .expect("the webhook called")
            .unwrap();
        bodies.push(body);
        accept.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1]["alert"]["rule"], "hot");
    assert_eq!(bodies[1]["alert"]["station_id"], "WS910");
    assert_eq!(bodies[1]["alert"]["state"], "firing");
    assert!(
        daemon.logs().iter().all(|l| !l.contains("not-logged")),
        "the webhook URL stays out of the logs"
    );
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

/// The next live message of type `alert` whose rule is `rule`.
async fn next_alert<S: common::LiveSocket>(live: &mut S, rule: &str) -> Value {
    common::next_where(live, |m| m["type"] == "alert" && m["alert"]["rule"] == rule).await["alert"]
        .clone()
}

/// A station whose readings fail quality control too often raises
/// `qc_failure_rate`; messages quarantined too often raise the pipeline's
/// `error_rate`, which belongs to no station and reaches every client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qc_failures_and_quarantined_messages_raise_their_rates() {
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__ALERTS__QC_FAILURE_RATE__MIN_READINGS", "10"),
            ("ISOBAR__ALERTS__PIPELINE__CHECK_EVERY", "200ms"),
            ("ISOBAR__ALERTS__PIPELINE__ERROR_RATE_MIN_MESSAGES", "20"),
        ],
    );
    // Following WS931 only: the pipeline's alerts still come.
    let (mut live, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live?stations=WS931", daemon.web))
            .await
            .unwrap();
    assert_eq!(next_json(&mut live).await["type"], "snapshot");
    let publisher = Publisher::connect(&daemon, "rates-publisher").await;
    let now = chrono::Utc::now() - chrono::TimeDelta::minutes(30);
    let ts = |m: i64| {
        (now + chrono::TimeDelta::minutes(m)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    // WS930: 2 of 10 outside the gross range (60 °C fails QC, and is kept).
    for m in 0..10 {
        let t = if m == 4 || m == 7 { 60.0 } else { 20.0 };
        publisher.reading("WS930", &ts(m), t).await;
    }
    // WS931: clean readings, and as many malformed messages: half of all
    // messages are quarantined.
    for m in 0..10 {
        publisher.reading("WS931", &ts(m), 20.0).await;
        publisher
            .publish("weather/WS931/observations", "{not json")
            .await;
    }
    let rate = next_alert(&mut live, "error_rate").await;
    assert_eq!(rate["scope"], "pipeline", "{rate}");
    assert_eq!(rate["station_id"], Value::Null, "{rate}");
    assert_eq!(rate["state"], "firing", "{rate}");
    assert!(rate["value"].as_f64().unwrap() > 5.0, "{rate}");
    assert!(
        rate["message"]
            .as_str()
            .unwrap()
            .contains("were quarantined"),
        "{rate}"
    );

    let firing = eventually(Duration::from_secs(20), "both alerts listed", || async {
        let a = alerts(&daemon, "?state=firing").await;
        let qc = a.iter().find(|a| a["rule"] == "qc_failure_rate")?.clone();
        let rate = a.iter().find(|a| a["rule"] == "error_rate")?.clone();
        Some((qc, rate))
    })
    .await;
    let (qc, rate) = firing;
    assert_eq!(qc["station_id"], "WS930", "{qc}");
    assert_eq!(qc["scope"], "station", "{qc}");
    assert_eq!(qc["value"], 20.0, "{qc}");
    assert!(
        qc["message"]
            .as_str()
            .unwrap()
            .contains("2 of the last 10 readings"),
        "{qc}"
    );
    assert!(rate["id"].is_i64(), "recorded: {rate}");
    // Only WS930 fails QC.
    let all = alerts(&daemon, "").await;
    assert_eq!(
        all.iter()
            .filter(|a| a["rule"] == "qc_failure_rate")
            .count(),
        1,
        "{all:?}"
    );
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

/// PostgreSQL refuses isobar: `store_unreachable` fires while it is down,
/// pushed live before the store can record it, and so does
/// `processing_lag`, as a reading waits to be stored. Once the store
/// answers, both are recorded, resolve, and the reading is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_and_the_lag_it_causes_raise_alerts() {
    let db = format!(
        "isobar_alerts_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    common::pg_admin(&format!("CREATE DATABASE {db}")).await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__STORAGE__BACKEND", "postgres"),
            ("ISOBAR__STORAGE__POSTGRES_URL", &url),
            ("ISOBAR__ALERTS__PIPELINE__CHECK_EVERY", "200ms"),
            ("ISOBAR__ALERTS__PIPELINE__STORE_UNREACHABLE_FOR", "1s"),
            ("ISOBAR__ALERTS__PIPELINE__LAG_ABOVE", "2s"),
            ("ISOBAR__ALERTS__PIPELINE__LAG_RESOLVE_BELOW", "1s"),
        ],
    );
    let (mut live, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live", daemon.web))
            .await
            .unwrap();
    assert_eq!(next_json(&mut live).await["type"], "snapshot");
    let publisher = Publisher::connect(&daemon, "store-alert-publisher").await;
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    common::pg_admin(&format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}';"
    ))
    .await;
    publisher.reading("WS940", &ts, 20.0).await;
    let down = next_alert(&mut live, "store_unreachable").await;
    assert_eq!(
        (down["state"].as_str(), down["scope"].as_str()),
        (Some("firing"), Some("pipeline")),
        "{down}"
    );
    assert_eq!(down["id"], Value::Null, "not recorded yet: {down}");
    let lag = next_alert(&mut live, "processing_lag").await;
    assert_eq!(lag["state"], "firing", "{lag}");
    assert!(lag["value"].as_f64().unwrap() > 2.0, "{lag}");

    common::pg_admin(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).await;
    let up = next_alert(&mut live, "store_unreachable").await;
    assert_eq!(up["state"], "resolved", "{up}");
    assert_eq!(up["fired_at"], down["fired_at"], "{up}");
    let caught_up = next_alert(&mut live, "processing_lag").await;
    assert_eq!(caught_up["state"], "resolved", "{caught_up}");

    // Recorded once the store answers, each once, with the times they had.
    let listed = eventually(Duration::from_secs(20), "both alerts recorded", || async {
        let listed = alerts(&daemon, "?state=resolved").await;
        (listed.len() == 2).then_some(listed)
    })
    .await;
    let recorded = listed
        .iter()
        .find(|a| a["rule"] == "store_unreachable")
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert!(recorded["id"].is_i64(), "{recorded}");
    assert_eq!(recorded["fired_at"], down["fired_at"], "{recorded}");
    assert_eq!(recorded["resolved_at"], up["resolved_at"], "{recorded}");
    assert!(
        listed.iter().any(|a| a["rule"] == "processing_lag"),
        "{listed:?}"
    );
    eventually(Duration::from_secs(20), "the reading stored", || async {
        let (_, body) = daemon.get("/api/v1/stations/WS940/latest").await;
        (body["temperature_c"] == 20.0).then_some(())
    })
    .await;
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
    common::pg_admin(&format!("DROP DATABASE {db} WITH (FORCE)")).await;
}
