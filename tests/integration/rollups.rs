//! Rollups end to end: readings published over MQTT become 1-minute and
//! 1-hour rollups of the values that did not fail quality control, a late reading
//! updates the period it belongs to, and the API serves them.

use crate::common;

use std::time::Duration;

use common::{Daemon, Publisher, eventually};

/// What a roll-up returns for live clients is each changed period as the
/// SQLite store then holds it (tests/postgres.rs checks PostgreSQL).
#[tokio::test]
async fn a_roll_up_returns_the_periods_it_changed_as_stored_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = isobar::storage::SqliteStore::open(&dir.path().join("r.sqlite3")).unwrap();
    common::stores::a_roll_up_returns_the_periods_it_changed_as_stored(&store).await;
}

/// Each stored batch counts once in the SQLite store's rollups and stays
/// in its archive outbox until cleared (tests/postgres.rs: PostgreSQL).
#[tokio::test]
async fn each_stored_batch_counts_once_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = isobar::storage::SqliteStore::open(&dir.path().join("b.sqlite3")).unwrap();
    common::stores::each_stored_batch_counts_once(&store).await;
}

/// Wind direction rolls up as a vector mean in the SQLite store too.
#[tokio::test]
async fn wind_direction_rolls_up_as_vectors_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = isobar::storage::SqliteStore::open(&dir.path().join("w.sqlite3")).unwrap();
    common::stores::wind_direction_rolls_up_as_vectors(&store).await;
}

/// The webhook's delivery queue in the SQLite store (tests/postgres.rs:
/// PostgreSQL).
#[tokio::test]
async fn the_delivery_queue_keeps_its_order_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = isobar::storage::SqliteStore::open(&dir.path().join("d.sqlite3")).unwrap();
    common::stores::the_delivery_queue_keeps_its_order(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_become_rollups_served_by_the_api() {
    let daemon = Daemon::start(&[]);
    let publisher = Publisher::connect(&daemon, "rollup-publisher").await;
    for (at, t) in [
        ("2025-01-13T10:00:10Z", 10.0),
        ("2025-01-13T10:00:40Z", 12.0),
        ("2025-01-13T10:01:20Z", 11.0),
        ("2025-01-13T10:02:30Z", 11.5),
    ] {
        publisher.reading("WS800", at, t).await;
    }
    let path = "/api/v1/stations/WS800/rollups?resolution=1m&from=2025-01-13T10:00:00Z&to=2025-01-13T11:00:00Z";
    let body = eventually(
        Duration::from_secs(20),
        "three minutes rolled up",
        || async {
            let (status, body) = daemon.get(path).await;
            (status == 200 && body["rollups"].as_array()?.len() == 3).then_some(body)
        },
    )
    .await;
    let first = &body["rollups"][0];
    assert_eq!(first["bucket"], "2025-01-13T10:00:00Z");
    let t = &first["variables"]["temperature_c"];
    assert_eq!(
        (&t["count"], &t["min"], &t["max"], &t["mean"], &t["last"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(10.0),
            &serde_json::json!(12.0),
            &serde_json::json!(11.0),
            &serde_json::json!(12.0)
        ),
        "{first}"
    );
    assert!(first["variables"]["dew_point_c"]["count"] == 2, "{first}");

    // A late reading for the first minute: counted there; `last` stays the
    // latest observed.
    publisher
        .reading("WS800", "2025-01-13T10:00:05Z", 8.0)
        .await;
    let hour = "/api/v1/stations/WS800/rollups?resolution=1h&from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z";
    let body = eventually(
        Duration::from_secs(20),
        "the late reading counted",
        || async {
            let (_, body) = daemon.get(hour).await;
            (body["rollups"][0]["variables"]["temperature_c"]["count"] == 5).then_some(body)
        },
    )
    .await;
    let t = &body["rollups"][0]["variables"]["temperature_c"];
    assert_eq!(
        (t["min"].as_f64(), t["last"].as_f64()),
        (Some(8.0), Some(11.5))
    );
    assert_eq!(body["resolution"], "1h");

    // A redelivered reading adds nothing.
    publisher
        .reading("WS800", "2025-01-13T10:00:05Z", 8.0)
        .await;
    publisher
        .reading("WS800", "2025-01-13T10:03:00Z", 9.0)
        .await;
    eventually(
        Duration::from_secs(20),
        "the next reading counted",
        || async {
            let (_, body) = daemon.get(hour).await;
            (body["rollups"][0]["variables"]["temperature_c"]["count"] == 6).then_some(())
        },
    )
    .await;

    // Paged by period, and bad requests are 4xx with a reason.
    let (_, paged) = daemon.get(&format!("{path}&limit=2")).await;
    assert_eq!(paged["rollups"].as_array().unwrap().len(), 2);
    let (status, err) = daemon
        .get("/api/v1/stations/WS800/rollups?resolution=5m")
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("resolution"),
        "{err}"
    );
    let (status, _) = daemon.get("/api/v1/stations/WS801/rollups").await;
    assert_eq!(status, 404);
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_summary_counts_stations_and_spreads_latest_values() {
    let daemon = Daemon::start(&[]);
    let publisher = Publisher::connect(&daemon, "summary-publisher").await;
    let now = chrono::Utc::now();
    let ts = |ago: i64| {
        (now - chrono::TimeDelta::seconds(ago)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    publisher.reading("WS810", &ts(30), 10.0).await;
    publisher.reading("WS811", &ts(20), 14.0).await;
    // Heard from, but not within the last 10 minutes.
    publisher.reading("WS812", &ts(3600), 30.0).await;
    // The station list comes from the store and the latest values from the
    // cache, which is written just after: wait for both.
    let body = eventually(Duration::from_secs(20), "three stations", || async {
        let (status, body) = daemon.get("/api/v1/summary").await;
        (status == 200 && body["stations"] == 3 && body["latest"]["temperature_c"]["count"] == 2)
            .then_some(body)
    })
    .await;
    assert_eq!(
        (&body["reporting"], &body["silent"]),
        (&serde_json::json!(2), &serde_json::json!(1)),
        "{body}"
    );
    let t = &body["latest"]["temperature_c"];
    assert_eq!(
        (
            t["count"].as_i64(),
            t["min"].as_f64(),
            t["max"].as_f64(),
            t["mean"].as_f64()
        ),
        (Some(2), Some(10.0), Some(14.0), Some(12.0)),
        "{body}"
    );
    assert_eq!(body["qc"]["pass"], 2, "{body}");
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}
