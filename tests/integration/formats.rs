//! Every input format, end to end over its real transport: MQTT (isobar
//! JSON, batches, WeeWX) and HTTP (Weather Underground, Ecowitt, JSON).
//! Each converges to the same reading, in canonical units.

use crate::common;

use std::time::Duration;

use common::{Daemon, Publisher, eventually};
use serde_json::Value;

fn close(v: &Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - expected).abs() < 0.01)
}

async fn latest(daemon: &Daemon, station: &str) -> Option<Value> {
    let (status, body) = daemon
        .get(&format!("/api/v1/stations/{station}/latest"))
        .await;
    (status == 200).then_some(body)
}

async fn quarantine(daemon: &Daemon) -> Vec<Value> {
    let (_, body) = daemon.get("/api/v1/quarantine").await;
    body["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_batches_and_weewx_records() {
    let daemon = Daemon::start(&[]);
    let publisher = Publisher::connect(&daemon, "formats-publisher").await;

    // A batch: two good readings and one bad element, in one message.
    publisher
        .publish(
            "weather/WS800/observations",
            r#"[{"station_id":"WS800","temperature":21.0,"timestamp":"2025-01-13T10:00:00Z"},
                {"station_id":"WS800","temperature":"hot","timestamp":"2025-01-13T10:01:00Z"},
                {"temperature":21.4,"timestamp":"2025-01-13T10:02:00Z"}]"#,
        )
        .await;
    // A WeeWX record in US units, values as strings.
    publisher
        .publish(
            "weather/WS801/observations",
            r#"{"dateTime":"1736762400.0","usUnits":"1.0","outTemp_F":"72.5","outHumidity":"65.0",
                "barometer_inHg":"29.92","windSpeed_mph":"10.0","windDir":"225.0"}"#,
        )
        .await;

    let history = eventually(Duration::from_secs(20), "the batch stored", || async {
        let (_, body) = daemon
            .get(
                "/api/v1/stations/WS800/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z",
            )
            .await;
        let list = body["readings"].as_array()?.clone();
        (list.len() == 2).then_some(list)
    })
    .await;
    assert_eq!(history[0]["temperature_c"], 21.0);
    assert_eq!(history[1]["temperature_c"], 21.4);
    let items = eventually(
        Duration::from_secs(10),
        "the bad element quarantined",
        || async {
            let items = quarantine(&daemon).await;
            (!items.is_empty()).then_some(items)
        },
    )
    .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["reason_code"], "malformed_json");
    assert!(
        items[0]["payload"].as_str().unwrap().contains("\"hot\""),
        "{}",
        items[0]
    );
    assert!(
        !items[0]["payload"].as_str().unwrap().contains("21.4"),
        "only the bad element"
    );

    let weewx = eventually(Duration::from_secs(10), "the WeeWX record", || {
        latest(&daemon, "WS801")
    })
    .await;
    assert!(close(&weewx["temperature_c"], 22.5), "{weewx}");
    assert!(close(&weewx["sea_level_pressure_hpa"], 1013.21), "{weewx}");
    assert!(close(&weewx["wind_speed_ms"], 4.4704), "{weewx}");
    assert_eq!(weewx["observed_at"], "2025-01-13T10:00:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_uploads_are_answered_once_stored() {
    let daemon = Daemon::start(&[]);
    let http = reqwest::Client::new();

    // Weather Underground, at its usual path.
    let wu = http
        .get(daemon.url(
            "/weatherstation/updateweatherstation.php?ID=WS810&PASSWORD=hunter2&action=updateraw\
             &dateutc=2025-01-13+10%3A00%3A00&tempf=50.0&humidity=80&baromin=30.00&windspeedmph=5\
             &winddir=90&windgustmph=9&rainin=0&solarradiation=120",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wu.status().as_u16(), 200);
    assert_eq!(wu.text().await.unwrap(), "success\n");
    // Stored before the answer: no waiting needed.
    let r = latest(&daemon, "WS810")
        .await
        .expect("stored before the reply");
    assert!(close(&r["temperature_c"], 10.0), "{r}");
    assert!(close(&r["sea_level_pressure_hpa"], 1015.92), "{r}");
    assert!(close(&r["wind_gust_ms"], 4.02336), "{r}");

    // Ecowitt's customized upload.
    let ecowitt = http
        .post(daemon.url("/api/v1/ingest/ecowitt/WS811"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            "PASSKEY=0123456789ABCDEF&stationtype=GW1100A_V2.1.4&dateutc=2025-01-13+10:00:00\
             &tempinf=70.0&humidityin=40&baromrelin=29.92&baromabsin=29.50&tempf=68.0&humidity=55\
             &winddir=180&windspeedmph=2.0&windgustmph=4.0&model=GW1100A",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ecowitt.status().as_u16(), 200);
    let body: Value = ecowitt.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"stored": 1, "quarantined": 0}));
    let r = latest(&daemon, "WS811").await.unwrap();
    assert!(close(&r["temperature_c"], 20.0), "{r}");
    assert!(close(&r["pressure_hpa"], 998.98), "{r}");

    // isobar JSON over HTTP.
    let json = http
        .post(daemon.url("/api/v1/ingest/WS812"))
        .body(r#"{"temperature":5.5,"timestamp":"2025-01-13T10:00:00Z"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status().as_u16(), 200);
    assert_eq!(
        latest(&daemon, "WS812").await.unwrap()["temperature_c"],
        5.5
    );

    // A bad upload: 400 naming the reason, and quarantined without the password.
    let bad = http
        .get(daemon.url(
            "/weatherstation/updateweatherstation.php?ID=WS813&PASSWORD=hunter2&dateutc=now&tempf=warm",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_value", "{body}");
    let items = quarantine(&daemon).await;
    assert_eq!(items.len(), 1);
    let stored = items[0]["payload"].as_str().unwrap();
    assert!(
        stored.contains("tempf=warm") && !stored.contains("hunter2"),
        "{stored}"
    );
    assert!(stored.contains("PASSWORD=redacted"), "{stored}");

    // An Ecowitt gateway that lost its outdoor sensor sends indoor values
    // only: quarantined, and its passkey with it never.
    let indoor = http
        .post(daemon.url("/api/v1/ingest/ecowitt/WS814"))
        .body("PASSKEY=0123456789ABCDEF&dateutc=2025-01-13+10:00:00&tempinf=70.0&humidityin=40")
        .send()
        .await
        .unwrap();
    assert_eq!(indoor.status().as_u16(), 400);
    let items = quarantine(&daemon).await;
    let stored = items[0]["payload"].as_str().unwrap();
    assert_eq!(items[0]["reason_code"], "no_measurements");
    assert!(
        stored.contains("PASSKEY=redacted") && !stored.contains("0123456789"),
        "{stored}"
    );

    // An invalid station id, and a body over the limit.
    let bad = http
        .post(daemon.url("/api/v1/ingest/ecowitt/bad%20id"))
        .body("tempf=1")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let huge = http
        .post(daemon.url("/api/v1/ingest/WS812"))
        .body(vec![b' '; 65 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status().as_u16(), 413);
    let body: Value = huge.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
}
