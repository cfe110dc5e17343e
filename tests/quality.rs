//! Quality control end to end: readings published over MQTT come back over
//! REST with their flags, and failed values are kept but not derived from.

mod common;

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
}
