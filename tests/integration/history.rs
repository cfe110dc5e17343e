//! The history API against the real daemon, on SQLite and on PostgreSQL:
//! cursor pages that cover a range exactly once, CSV export, station
//! metadata from the config (reloaded on SIGHUP) and the latest readings
//! of every station.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, TimeDelta, Utc};
use common::{Daemon, Publisher, eventually};
use serde_json::Value;

const CONFIG: &str = r#"
[stations.WS001]
name = "Central Park"
latitude = 40.7812
longitude = -73.9665
elevation_m = 42.0
"#;

/// Readings of WS001 one second apart, ending a minute ago (so the
/// station is reporting), and one old reading of WS002 (silent).
async fn feed(daemon: &Daemon, n: i64) -> Vec<String> {
    let publisher = Publisher::connect(daemon, "history-publisher").await;
    let start = Utc::now() - TimeDelta::seconds(60 + n);
    let times: Vec<String> = (0..n)
        .map(|i| (start + TimeDelta::seconds(i)).to_rfc3339_opts(SecondsFormat::Secs, true))
        .collect();
    let batch: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"station_id": "WS001", "timestamp": t, "temperature": 10.0 + i as f64,
                "humidity": 50.0, "latitude": 1.0, "longitude": 2.0})
        })
        .collect();
    publisher
        .publish(
            "weather/WS001/observations",
            serde_json::to_vec(&batch).unwrap(),
        )
        .await;
    publisher
        .reading("WS002", "2025-01-13T10:00:00Z", 5.0)
        .await;
    eventually(Duration::from_secs(15), "every reading stored", || async {
        let (_, body) = daemon
            .get("/api/v1/stations/WS001/readings?limit=10000")
            .await;
        let stored = body["readings"].as_array().map_or(0, Vec::len);
        let (ws2, _) = daemon.get("/api/v1/stations/WS002").await;
        (stored == n as usize && ws2 == 200).then_some(())
    })
    .await;
    times
}

/// Follows `next_cursor` from `first` to the end; returns each page's size
/// and every reading's `observed_at`.
async fn all_pages(daemon: &Daemon, first: &str) -> (Vec<usize>, Vec<String>) {
    let (mut sizes, mut times) = (Vec::new(), Vec::new());
    let (status, mut body) = daemon.get(first).await;
    assert_eq!(status, 200, "{body}");
    loop {
        let readings = body["readings"].as_array().unwrap();
        sizes.push(readings.len());
        times.extend(
            readings
                .iter()
                .map(|r| r["observed_at"].as_str().unwrap().to_owned()),
        );
        let Some(cursor) = body["next_cursor"].as_str() else {
            assert!(body["next_cursor"].is_null());
            break;
        };
        let (status, next) = daemon
            .get(&format!(
                "/api/v1/stations/WS001/readings?limit=10&cursor={cursor}"
            ))
            .await;
        assert_eq!(status, 200, "{next}");
        body = next;
    }
    (sizes, times)
}

async fn history_api(daemon: &Daemon) {
    let times = feed(daemon, 25).await;

    // Pages of 10 cover the range exactly once, in order, and the last
    // says so rather than leaving an empty page to fetch.
    let (sizes, seen) = all_pages(daemon, "/api/v1/stations/WS001/readings?limit=10").await;
    assert_eq!(sizes, [10, 10, 5]);
    let expected: Vec<String> = times.iter().map(|t| t.replace("+00:00", "Z")).collect();
    assert_eq!(seen, expected);
    // A page that ends exactly at the last reading has no next page.
    let (_, body) = daemon.get("/api/v1/stations/WS001/readings?limit=25").await;
    assert!(body["next_cursor"].is_null(), "{body}");

    // The cursor keeps the range it was issued for.
    let to = &times[12];
    let (sizes, _) = all_pages(
        daemon,
        &format!("/api/v1/stations/WS001/readings?limit=10&to={to}"),
    )
    .await;
    assert_eq!(sizes, [10, 2]);

    // Bad paging is a 400 that says why.
    for (query, needle) in [
        ("cursor=bm90IGEgY3Vyc29y", "cursor:"),
        ("cursor=%%%", "cursor:"),
        ("limit=10001", "limit:"),
        (
            "limit=10&from=2025-01-13T00:00:00Z&cursor=x",
            "without from and to",
        ),
    ] {
        let (status, body) = daemon
            .get(&format!("/api/v1/stations/WS001/readings?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }

    // Rollups page the same way.
    eventually(
        Duration::from_secs(20),
        "rollups of the readings",
        || async {
            let (_, body) = daemon
                .get("/api/v1/stations/WS001/rollups?resolution=1m")
                .await;
            let counted: u64 = body["rollups"]
                .as_array()?
                .iter()
                .map(|r| {
                    r["variables"]["temperature_c"]["count"]
                        .as_u64()
                        .unwrap_or(0)
                })
                .sum();
            (counted == 25).then_some(())
        },
    )
    .await;
    let (_, all) = daemon
        .get("/api/v1/stations/WS001/rollups?resolution=1m")
        .await;
    let buckets = all["rollups"].as_array().unwrap().len();
    assert!(buckets >= 1);
    let (_, first) = daemon
        .get("/api/v1/stations/WS001/rollups?resolution=1m&limit=1")
        .await;
    assert_eq!(first["rollups"].as_array().unwrap().len(), 1);
    if buckets > 1 {
        let cursor = first["next_cursor"].as_str().expect("a next page");
        let (_, second) = daemon
            .get(&format!(
                "/api/v1/stations/WS001/rollups?resolution=1m&cursor={cursor}"
            ))
            .await;
        assert_eq!(second["rollups"][0], all["rollups"][1]);
    } else {
        assert!(first["next_cursor"].is_null());
    }

    // CSV: a header and one row per reading, as an attachment.
    let response = reqwest::get(daemon.url("/api/v1/stations/WS001/readings.csv"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"WS001_"),
        "{disposition}"
    );
    let text = response.text().await.unwrap();
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    let headers = csv.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 25);
    assert_eq!(&rows[0][column("temperature_c")], "10");
    assert_eq!(&rows[24][column("temperature_c")], "34");
    assert_eq!(&rows[3][column("observed_at")], expected[3]);
    assert_eq!(&rows[0][column("qc_status")], "pass");
    // Bounded: a range over 31 days, an unknown station.
    let (status, body) = daemon
        .get(
            "/api/v1/stations/WS001/readings.csv?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 31 days")
    );
    let (status, _) = daemon.get("/api/v1/stations/NOPE/readings.csv").await;
    assert_eq!(status, 404);

    // The latest reading of every station, from the cache.
    let (status, body) = daemon.get("/api/v1/latest").await;
    assert_eq!(status, 200);
    let latest: Vec<(&str, f64)> = body["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["station_id"].as_str().unwrap(),
                r["temperature_c"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(latest, [("WS001", 34.0), ("WS002", 5.0)]);
}

/// Metadata from `[stations.WS001]` over what the station reports, the
/// status from when it was last heard, and a SIGHUP that renames it.
async fn station_metadata(daemon: &Daemon, config: &std::path::Path) {
    let (status, ws1) = daemon.get("/api/v1/stations/WS001").await;
    assert_eq!(status, 200, "{ws1}");
    assert_eq!(ws1["name"], "Central Park");
    assert_eq!(
        (ws1["latitude"].as_f64(), ws1["longitude"].as_f64()),
        (Some(40.7812), Some(-73.9665))
    );
    assert_eq!(ws1["elevation_m"], 42.0);
    assert_eq!(ws1["status"], "reporting");
    assert_eq!(ws1["latest"]["temperature_c"], 34.0);
    let (_, ws2) = daemon.get("/api/v1/stations/WS002").await;
    assert_eq!(
        (ws2["name"].clone(), ws2["status"].clone()),
        (Value::Null, "silent".into())
    );
    let (status, body) = daemon.get("/api/v1/stations/WS404").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    std::fs::write(config, CONFIG.replace("Central Park", "Belvedere Castle")).unwrap();
    daemon.hangup();
    eventually(
        Duration::from_secs(10),
        "the new name after SIGHUP",
        || async {
            let (_, list) = daemon.get("/api/v1/stations").await;
            let names: HashSet<String> = list["stations"]
                .as_array()?
                .iter()
                .filter_map(|s| s["name"].as_str().map(String::from))
                .collect();
            names.contains("Belvedere Castle").then_some(())
        },
    )
    .await;
}

fn config_in(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let config = dir.path().join("isobar.toml");
    std::fs::write(&config, CONFIG).unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_export_and_metadata_on_sqlite() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = config_in(&dir);
    let daemon = Daemon::start_in(dir.clone(), &["--config", config.to_str().unwrap()], &[]);
    history_api(&daemon).await;
    station_metadata(&daemon, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_export_and_metadata_on_postgres() {
    let db = format!(
        "isobar_history_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
    common::pg_admin(&format!("CREATE DATABASE {db}")).await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = config_in(&dir);
    let daemon = Daemon::start_in(
        dir.clone(),
        &["--config", config.to_str().unwrap()],
        &[
            ("ISOBAR__STORAGE__BACKEND", "postgres"),
            ("ISOBAR__STORAGE__POSTGRES_URL", &url),
        ],
    );
    history_api(&daemon).await;
    station_metadata(&daemon, &config).await;
    daemon.kill();
    common::pg_admin(&format!("DROP DATABASE {db} WITH (FORCE)")).await;
}
