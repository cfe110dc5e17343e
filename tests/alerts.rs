//! Alert rules from the config against the real daemon: a threshold fires
//! once while it lasts and resolves with hysteresis, a silent station fires
//! and resolves, each is stored, listed by the API and pushed to live
//! clients, and a firing alert is not fired again after a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Daemon, Publisher, eventually, next_json};
use serde_json::Value;

const CONFIG: &str = r#"
[alerts]
silent_after = "2s"
check_every = "500ms"

[[alerts.thresholds]]
name = "hot"
variable = "temperature_c"
above = 30.0
for = "0s"
hysteresis = 1.0
"#;

async fn alerts(daemon: &Daemon, query: &str) -> Vec<Value> {
    let (_, body) = daemon.get(&format!("/api/v1/alerts{query}")).await;
    body["alerts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_and_silence_fire_and_resolve() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = dir.path().join("isobar.toml");
    std::fs::write(&config, CONFIG).unwrap();
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
