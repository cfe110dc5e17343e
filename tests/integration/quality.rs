//! Quality control end to end: readings published over MQTT come back over
//! REST with their flags, and failed values are kept but not derived from.

use crate::common;

use std::time::Duration;

use common::{Daemon, Publisher, eventually};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_carry_their_quality_flags() {
    let daemon = Daemon::start(&[]);
    let publisher = Publisher::connect(&daemon, "qc-publisher").await;
    // One reading a minute: steady, then a spike, then back, then a value
    // outside the gross range.
    let temps = [
        20.0, 20.1, 20.0, 20.2, 20.1, 20.0, 20.1, 20.2, 20.1, 20.0, 20.1, 29.5, 20.1, 60.0,
    ];
    for (minute, t) in temps.iter().enumerate() {
        let ts = format!("2025-01-13T10:{minute:02}:00Z");
        publisher.reading("WS700", &ts, *t).await;
    }
    let readings =
        common::readings_of_the_day(&daemon, "WS700", temps.len(), Duration::from_secs(20)).await;
    let status: Vec<&str> = readings
        .iter()
        .map(|r| r["qc"]["status"].as_str().unwrap())
        .collect();
    let mut expected = vec!["pass"; temps.len()];
    expected[11] = "suspect";
    expected[13] = "fail";
    assert_eq!(status, expected, "{readings:#?}");

    let spike = &readings[11]["qc"]["variables"]["temperature_c"];
    assert_eq!(common::flagged_by(spike), ["step", "outlier"]);
    // A suspect value is still used.
    assert!(readings[11]["dew_point_c"].is_f64());

    let failed = &readings[13];
    assert_eq!(failed["temperature_c"], 60.0, "the raw value is kept");
    assert_eq!(failed["qc"]["variables"]["temperature_c"]["flag"], "fail");
    for derived in ["dew_point_c", "heat_index_c", "feels_like_c"] {
        assert_eq!(
            failed[derived],
            Value::Null,
            "{derived} from a failed value"
        );
    }
    // Other variables of the same reading are unaffected.
    assert_eq!(failed["qc"]["variables"].as_object().unwrap().len(), 1);

    // The hour's rollup counts the suspect spike, and says so, but not the
    // failed value.
    let hour = "/api/v1/stations/WS700/rollups?resolution=1h&from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z";
    let t = eventually(Duration::from_secs(20), "the hour rolled up", || async {
        let (_, body) = daemon.get(hour).await;
        let t = body["rollups"][0]["variables"]["temperature_c"].clone();
        (t["count"] == 13).then_some(t)
    })
    .await;
    assert_eq!(
        (t["suspect"].as_i64(), t["max"].as_f64()),
        (Some(1), Some(29.5)),
        "{t}"
    );

    // The station's QC report: by default the day up to its newest
    // reading, and what its QC has learned of how it reports.
    let (status, qc) = daemon.get("/api/v1/stations/WS700/qc").await;
    assert_eq!(status, 200, "{qc}");
    assert_eq!(
        (
            &qc["readings"],
            &qc["suspect"],
            &qc["fail"],
            &qc["truncated"]
        ),
        (&14.into(), &1.into(), &1.into(), &false.into()),
        "{qc}"
    );
    let count = |check: &str, flag: &str| {
        qc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["variable"] == "temperature_c" && c["check"] == check && c["flag"] == flag)
            .map(|c| (c["count"].as_i64().unwrap(), c["rate"].as_f64().unwrap()))
    };
    assert_eq!(count("step", "suspect"), Some((1, 1.0 / 14.0)), "{qc}");
    assert_eq!(count("outlier", "suspect"), Some((1, 1.0 / 14.0)), "{qc}");
    assert_eq!(count("range", "fail"), Some((1, 1.0 / 14.0)), "{qc}");
    assert_eq!(qc["learned"]["cadence_s"], 60, "{qc}");
    assert_eq!(qc["learned"]["resolution"]["temperature_c"], 0.1, "{qc}");
    // An earlier window holds nothing; bad requests are 4xx with a reason.
    let (_, empty) = daemon
        .get("/api/v1/stations/WS700/qc?from=2025-01-12T00:00:00Z&to=2025-01-13T00:00:00Z")
        .await;
    assert_eq!(
        (&empty["readings"], &empty["checks"]),
        (&0.into(), &serde_json::json!([]))
    );
    let (status, body) = daemon.get("/api/v1/stations/NOPE/qc").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = daemon.get("/api/v1/stations/WS700/qc?window=1h").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("window"),
        "{body}"
    );
}

/// One impossible value costs only itself: the reading is stored with that
/// variable failed and left out of what is derived from it; a message with
/// nothing possible in it is quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_value_fails_alone() {
    let daemon = Daemon::start(&[]);
    let publisher = Publisher::connect(&daemon, "qc-impossible").await;
    publisher
        .publish(
            "weather/WS701/observations",
            r#"{"temperature": 21.0, "humidity": 140, "pressure": 1012.0, "timestamp": "2025-01-13T10:00:00Z"}"#,
        )
        .await;
    publisher
        .publish(
            "weather/WS701/observations",
            r#"{"humidity": 140, "timestamp": "2025-01-13T10:01:00Z"}"#,
        )
        .await;
    let readings = common::readings_of_the_day(&daemon, "WS701", 1, Duration::from_secs(20)).await;
    let r = &readings[0];
    assert_eq!(r["humidity_pct"], 140.0, "kept as reported");
    let humidity = &r["qc"]["variables"]["humidity_pct"];
    assert_eq!(humidity["flag"], "fail");
    assert_eq!(common::flagged_by(humidity), ["range"]);
    assert_eq!(r["qc"]["variables"].as_object().unwrap().len(), 1, "{r}");
    assert_eq!(r["dew_point_c"], Value::Null, "nothing derived from it");
    assert_eq!(r["temperature_c"], 21.0);
    let quarantined = eventually(Duration::from_secs(20), "the quarantine", || async {
        let (_, body) = daemon.get("/api/v1/quarantine").await;
        let items = body["items"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0]["reason_code"], "out_of_range");
}
