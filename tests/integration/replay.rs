//! A recorded sequence fed through the daemon, published over MQTT by
//! `isobar replay` or handed in from inside by `isobar run --replay`: both
//! go through the same front door, and its spike, stuck sensor, gap and late
//! reading come back flagged the same.

use crate::common;

use std::fmt::Write;
use std::time::Duration;

use common::{Daemon, eventually};
use serde_json::Value;

/// One station, one reading a minute from 00:00 in °F and inHg: smooth
/// until a spike at minute 30; no data from minute 40 to 250; then a much
/// warmer sensor stuck for 70 minutes; then a reading recorded out of order.
fn recording() -> String {
    let mut csv = String::from("time,station,temperature_F,pressure_inHg,wind_speed_mph\n");
    let mut row = |minute: u32, temp_f: f64, pressure: f64| {
        let t = format!("2025-01-13T{:02}:{:02}:00Z", minute / 60, minute % 60);
        writeln!(csv, "{t},WS900,{temp_f:.2},{pressure:.3},5").unwrap();
    };
    for m in 0..40 {
        let temp = if m == 30 {
            75.0
        } else {
            50.0 + (m as f64 / 10.0).sin()
        };
        row(m, temp, 29.92 + (m % 3) as f64 * 0.01);
    }
    for m in 250..=320 {
        row(m, 62.0, 29.80 + (m % 3) as f64 * 0.01);
    }
    // Recorded out of order: from before the gap, sent last.
    csv.push_str("2025-01-13T00:35:30Z,WS900,50.2,29.92,5\n");
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_sequence_is_replayed_and_flagged() {
    let daemon = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ws900.csv");
    std::fs::write(&file, recording()).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_isobar"))
        .arg("replay")
        .arg(&file)
        .args([
            "--broker",
            &format!("{}:{}", daemon.mqtt_host, daemon.mqtt_port),
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("replayed 112 readings"), "{stderr}");

    let readings = stored_readings(&daemon, 112).await;
    assert_flagged(&readings);
}

/// The 112 readings of [`recording`] as stored, judged as a meteorologist
/// would.
fn assert_flagged(readings: &[Value]) {
    let at_time = |t: &str| {
        readings
            .iter()
            .find(|r| r["observed_at"] == t)
            .unwrap()
            .clone()
    };
    let at = |minute: u32| {
        at_time(&format!(
            "2025-01-13T{:02}:{:02}:00Z",
            minute / 60,
            minute % 60
        ))
    };
    let temp_checks = |r: &Value| -> Vec<String> {
        r["qc"]["variables"]["temperature_c"]["findings"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|x| x["check"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    // °F converted: 50 °F is 10 °C.
    assert!((at(0)["temperature_c"].as_f64().unwrap() - 10.0).abs() < 0.01);
    // The spike, and the series recovering after it.
    assert_eq!(temp_checks(&at(30)), ["step", "outlier"]);
    assert_eq!(at(31)["qc"]["status"], "pass", "{}", at(31));
    // After a gap longer than step_max_gap (3 h) there is no reference:
    // 16.7 °C after 10 °C is not a step.
    assert_eq!(at(250)["qc"]["status"], "pass", "{}", at(250));
    // Stuck for an hour: suspect from minute 310, not before.
    assert!(!temp_checks(&at(309)).contains(&"persistence".to_owned()));
    assert!(
        temp_checks(&at(310)).contains(&"persistence".to_owned()),
        "{}",
        at(310)
    );
    // The reading that arrived out of order is kept, marked late, and not
    // judged against the readings around it.
    let late = at_time("2025-01-13T00:35:30Z");
    assert!(
        late["qc"]["late"]
            .as_str()
            .unwrap()
            .contains("out of order"),
        "{late}"
    );
    assert_eq!(late["qc"]["status"], "pass");
}

/// Readings of WS900 on the recorded day, once there are `n`.
async fn stored_readings(daemon: &Daemon, n: usize) -> Vec<Value> {
    eventually(Duration::from_secs(30), "the replayed readings", || async {
        let (_, body) = daemon
            .get(
                "/api/v1/stations/WS900/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z",
            )
            .await;
        let list = body["readings"].as_array()?.clone();
        (list.len() == n).then_some(list)
    })
    .await
}

/// The daemon hands the file in itself, through the same front door as
/// MQTT, and says what became of every row once all are stored: a row for
/// a station id that cannot be is quarantined, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_file_is_handed_in_from_inside_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ws900.csv");
    let mut csv = recording();
    csv.push_str("2025-01-13T06:00:00Z,not a station,10,29.9,5\n");
    std::fs::write(&file, csv).unwrap();
    let daemon = Daemon::start(&["--replay", file.to_str().unwrap()]);

    let readings = stored_readings(&daemon, 112).await;
    assert_flagged(&readings);
    let report = eventually(Duration::from_secs(30), "the replay's report", || async {
        daemon
            .logs()
            .into_iter()
            .find(|l| l.contains("replay finished"))
    })
    .await;
    for expected in [
        "source=replay:ws900.csv",
        "rows=113",
        "stored=112",
        "quarantined=1",
        "not_processed=0",
    ] {
        assert!(report.contains(expected), "{expected} in {report}");
    }
    let (_, quarantine) = daemon.get("/api/v1/quarantine").await;
    let records = quarantine["items"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["source"] == "replay:ws900.csv" && r["reason_code"] == "invalid_station_id"),
        "{quarantine}"
    );
}

#[test]
fn a_bad_recording_exits_65_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(
        &file,
        "time,station,temperature_C\n2025-01-13T10:00:00Z,WS1,warm\n",
    )
    .unwrap();
    let data = dir.path().display().to_string();
    // `isobar replay` refuses it before publishing, and the daemon before
    // it starts.
    for (args, prefix) in [
        (vec!["replay"], ""),
        (
            vec![
                "run",
                "--listen",
                "127.0.0.1:0",
                "--mqtt-listen",
                "127.0.0.1:0",
                "--data-dir",
                &data,
                "--replay",
            ],
            "--replay: ",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_isobar"))
            .args(args)
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(65));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "{prefix}line 2: temperature_C: \"warm\" is not a number"
            )),
            "{stderr}"
        );
    }
}
