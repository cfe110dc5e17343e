//! The live protocol, version 1, against the real daemon: the subprotocol
//! handshake, the snapshot's version, and the `rollup` and
//! `station_status` messages.

use crate::common;

use std::time::Duration;

use chrono::{SecondsFormat, TimeDelta, Utc};
use common::{Daemon, Publisher, next_json};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The next message of `kind`, skipping others, within `within`.
async fn next_of<S: common::LiveSocket>(live: &mut S, kind: &str, within: Duration) -> Value {
    tokio::time::timeout(within, common::next_where(live, |m| m["type"] == kind))
        .await
        .unwrap_or_else(|_| panic!("a {kind} message within {within:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_protocol_is_versioned_and_sends_rollups_and_station_status() {
    let daemon = Daemon::start(&[]);

    // A client that names the protocol gets it back.
    let mut request = format!("ws://{}/api/v1/live?stations=WS777", daemon.web)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "isobar.v1".parse().unwrap());
    let (mut live, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "isobar.v1");
    let snapshot = next_json(&mut live).await;
    assert_eq!(
        (snapshot["type"].as_str(), snapshot["protocol"].as_u64()),
        (Some("snapshot"), Some(1))
    );

    // One that names only versions the server does not speak is refused.
    let mut request = format!("ws://{}/api/v1/live", daemon.web)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "isobar.v9, chat".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400);
        }
        other => panic!("expected a 400 refusal, got {other:?}"),
    }

    // A new station heard from just under 10 minutes after its reading was
    // taken: reporting at once, silent a few seconds later.
    let publisher = Publisher::connect(&daemon, "live-protocol-publisher").await;
    let observed = Utc::now() - TimeDelta::seconds(597);
    let stamp = observed.to_rfc3339_opts(SecondsFormat::Secs, true);
    publisher.reading("WS777", &stamp, 12.5).await;

    let reading = next_of(&mut live, "reading", Duration::from_secs(10)).await;
    assert_eq!(reading["reading"]["temperature_c"], 12.5);
    let reporting = next_of(&mut live, "station_status", Duration::from_secs(10)).await;
    assert_eq!(
        (
            reporting["station_id"].as_str(),
            reporting["status"].as_str()
        ),
        (Some("WS777"), Some("reporting"))
    );
    assert_eq!(reporting["last_seen"], stamp);

    // The aggregator's next roll-up (every 5 s) sends the changed periods.
    let mut resolutions = Vec::new();
    let mut silent = None;
    tokio::time::timeout(Duration::from_secs(20), async {
        while resolutions.len() < 2 || silent.is_none() {
            let msg = next_json(&mut live).await;
            match msg["type"].as_str() {
                Some("rollup") => {
                    assert_eq!(msg["station_id"], "WS777");
                    let t = &msg["rollup"]["variables"]["temperature_c"];
                    assert_eq!(
                        (t["count"].as_u64(), t["last"].as_f64()),
                        (Some(1), Some(12.5))
                    );
                    resolutions.push(msg["resolution"].as_str().unwrap().to_owned());
                }
                Some("station_status") => silent = Some(msg),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("rollups and silence within 20 s: {resolutions:?} {silent:?}"));
    resolutions.sort();
    assert_eq!(resolutions, ["1h", "1m"]);
    let silent = silent.unwrap();
    assert_eq!(
        (silent["station_id"].as_str(), silent["status"].as_str()),
        (Some("WS777"), Some("silent"))
    );
    let (_, station) = daemon.get("/api/v1/stations/WS777").await;
    assert_eq!(station["status"], "silent");
}

/// A large network is read in pages: `GET /api/v1/stations` in station-id
/// order with `next_after`, and the websocket's snapshot holds only the
/// stations heard from last (`web.snapshot_max`), saying it is partial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stations_come_in_pages_and_the_snapshot_is_bounded() {
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__WEB__SNAPSHOT_MAX", "2")]);
    let publisher = Publisher::connect(&daemon, "paging-publisher").await;
    // Heard from in this order, a second apart.
    let ids = ["WS905", "WS901", "WS904", "WS902", "WS903"];
    let start = Utc::now() - TimeDelta::seconds(60);
    for (i, id) in ids.iter().enumerate() {
        let at = (start + TimeDelta::seconds(i as i64)).to_rfc3339_opts(SecondsFormat::Secs, true);
        publisher.reading(id, &at, 10.0 + i as f64).await;
        common::eventually(Duration::from_secs(10), "the station stored", || async {
            let (status, _) = daemon.get(&format!("/api/v1/stations/{id}/latest")).await;
            (status == 200).then_some(())
        })
        .await;
    }

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = after
            .as_ref()
            .map_or(String::new(), |a| format!("&after={a}"));
        let (status, page) = daemon
            .get(&format!("/api/v1/stations?limit=2{query}"))
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 5);
        let stations = page["stations"].as_array().unwrap();
        assert!(stations.len() <= 2);
        seen.extend(
            stations
                .iter()
                .map(|s| s["station_id"].as_str().unwrap().to_owned()),
        );
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["WS901", "WS902", "WS903", "WS904", "WS905"]);
    for bad in ["limit=0", "limit=10001", "after=no%20id", "page=2"] {
        let (status, body) = daemon.get(&format!("/api/v1/stations?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }

    let (mut live, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live", daemon.web))
            .await
            .unwrap();
    let snapshot = next_json(&mut live).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["complete"], false);
    assert_eq!(snapshot["total"], 5);
    let mut latest: Vec<&str> = snapshot["stations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["station_id"].as_str().unwrap())
        .collect();
    latest.sort();
    assert_eq!(latest, ["WS902", "WS903"], "the two heard from last");
    // A client following two stations gets both, complete.
    let (mut few, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/api/v1/live?stations=WS901,WS905",
        daemon.web
    ))
    .await
    .unwrap();
    let snapshot = next_json(&mut few).await;
    assert_eq!(
        (snapshot["complete"].as_bool(), snapshot["total"].as_u64()),
        (Some(true), Some(2))
    );
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}
