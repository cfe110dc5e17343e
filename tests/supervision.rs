//! A station actor that panics is restarted by its supervisor; its station
//! keeps working, other stations never notice, and the message that made it
//! panic is quarantined rather than lost or retried forever.

mod common;

use std::time::Duration;

use common::{Daemon, Publisher, eventually};
use serde_json::Value;

fn child<'a>(status: &'a Value, station: &str) -> Option<&'a Value> {
    status["stations"]["children"]
        .as_array()?
        .iter()
        .find(|c| c["station_id"] == station)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_station_is_restarted_and_others_are_unaffected() {
    let daemon = Daemon::start(&[]);
    let publisher = Publisher::connect(&daemon, "fault-publisher").await;
    for station in ["WS010", "WS011"] {
        publisher
            .reading(station, "2025-01-13T10:00:00Z", 5.0)
            .await;
    }
    eventually(Duration::from_secs(20), "both stations stored", || async {
        let (_, body) = daemon.get("/api/v1/stations").await;
        (body["stations"].as_array()?.len() == 2).then_some(())
    })
    .await;

    publisher
        .publish(
            "weather/WS010/observations",
            r#"{"temperature": 6.0, "timestamp": "2025-01-13T10:01:00Z", "isobar_fault": "panic"}"#,
        )
        .await;
    let status = eventually(Duration::from_secs(10), "WS010 restarted", || async {
        let (_, body) = daemon.get("/api/v1/supervision").await;
        let c = child(&body, "WS010")?;
        (c["restarts"] == 1 && c["running"] == true).then_some(body)
    })
    .await;
    let failed = child(&status, "WS010").unwrap();
    assert!(
        failed["last_failure"]
            .as_str()
            .unwrap()
            .contains("fault injected"),
        "{failed}"
    );
    let other = child(&status, "WS011").unwrap();
    assert_eq!(other["restarts"], 0);

    // Both stations keep working.
    for station in ["WS010", "WS011"] {
        publisher
            .reading(station, "2025-01-13T10:02:00Z", 7.0)
            .await;
    }
    for station in ["WS010", "WS011"] {
        eventually(
            Duration::from_secs(10),
            "the reading after the panic",
            || async {
                let (_, latest) = daemon
                    .get(&format!("/api/v1/stations/{station}/latest"))
                    .await;
                (latest["observed_at"] == "2025-01-13T10:02:00Z").then_some(())
            },
        )
        .await;
    }

    // The poison message is quarantined (and acknowledged), not retried.
    let quarantine = eventually(
        Duration::from_secs(10),
        "the poison message quarantined",
        || async {
            let (_, body) = daemon.get("/api/v1/quarantine").await;
            (!body["items"].as_array()?.is_empty()).then_some(body)
        },
    )
    .await;
    let items = quarantine["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{quarantine}");
    assert_eq!(items[0]["reason_code"], "processing_panicked");
    assert_eq!(items[0]["station_id"], "WS010");
    let (_, history) = daemon
        .get("/api/v1/stations/WS010/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z")
        .await;
    assert_eq!(history["readings"].as_array().unwrap().len(), 2);

    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}
