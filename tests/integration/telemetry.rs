//! Traces and metrics show a reading's path: the daemon exports its spans
//! over OTLP/HTTP (JSON here, so the test can read them) to a collector
//! the test runs, and `/metrics` counts each stage.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Daemon, Publisher, eventually};
use serde_json::Value;
use warp::Filter;

/// An OTLP/HTTP receiver: keeps every span posted to `/v1/traces`.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        let route = warp::path!("v1" / "traces")
            .and(warp::post())
            .and(warp::body::json())
            .map(move |body: Value| {
                let mut spans = sink.lock().unwrap();
                for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                    let service = resource["resource"]["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|a| a["key"] == "service.name")
                        .map(|a| a["value"]["stringValue"].clone())
                        .unwrap_or(Value::Null);
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        for span in scope["spans"].as_array().into_iter().flatten() {
                            let mut span = span.clone();
                            span["service"] = service.clone();
                            spans.push(span);
                        }
                    }
                }
                warp::reply::json(&serde_json::json!({}))
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Collector { url, spans }
    }

    fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_is_traced_through_every_stage_and_counted_in_metrics() {
    let collector = Collector::start().await;
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__TELEMETRY__OTLP_ENDPOINT", &collector.url),
            ("ISOBAR__TELEMETRY__OTLP_PROTOCOL", "http/json"),
            ("ISOBAR__TELEMETRY__SERVICE_NAME", "isobar-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    // A live client, so the hub has someone to publish to.
    let (_live, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live", daemon.web))
        .await
        .unwrap();
    let publisher = Publisher::connect(&daemon, "trace-publisher").await;
    publisher
        .reading("WS321", "2025-01-13T10:00:00Z", 18.5)
        .await;

    // One trace: `reading` at the root, each stage a child of it.
    let stages = ["ingest", "station", "persist", "hub"];
    let (root, children) = eventually(Duration::from_secs(20), "the reading's spans", || async {
        let spans = collector.spans();
        let root = spans.iter().find(|s| {
            s["name"] == "reading"
                && attribute(s, "station_id").and_then(|v| v["stringValue"].as_str())
                    == Some("WS321")
        })?;
        let children: HashMap<String, Value> = spans
            .iter()
            .filter(|s| s["traceId"] == root["traceId"] && s["parentSpanId"] == root["spanId"])
            .map(|s| (s["name"].as_str().unwrap().to_owned(), s.clone()))
            .collect();
        stages
            .iter()
            .all(|s| children.contains_key(*s))
            .then(|| (root.clone(), children))
    })
    .await;
    assert_eq!(root["service"], "isobar-test");
    assert_eq!(
        attribute(&root, "messaging.source").and_then(|v| v["stringValue"].as_str()),
        Some("weather/WS321/observations")
    );
    // OTLP's JSON gives 64-bit integers as strings, or as numbers.
    let int = |span: &Value, key: &str| {
        attribute(span, key).map(|v| match &v["intValue"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let station = &children["station"];
    assert_eq!(int(station, "readings").as_deref(), Some("1"), "{station}");
    assert_eq!(
        int(&children["persist"], "batch").as_deref(),
        Some("1"),
        "{}",
        children["persist"]
    );
    // The stages happen in order: each starts after the one before it.
    let start = |name: &str| -> u128 {
        children[name]["startTimeUnixNano"]
            .as_str()
            .map(|s| s.parse().unwrap())
            .or(children[name]["startTimeUnixNano"].as_u64().map(u128::from))
            .unwrap()
    };
    for pair in stages.windows(2) {
        assert!(start(pair[0]) <= start(pair[1]), "{pair:?}: {children:#?}");
    }

    // Metrics: each stage counted, latencies as histograms.
    let metrics = daemon.metrics().await;
    for needle in [
        "isobar_messages_received_total 1",
        "isobar_readings_accepted_total{qc=\"pass\"} 1",
        "isobar_readings_stored_total 1",
        "isobar_readings_published_total 1",
        "isobar_store_write_seconds_bucket{le=\"0.5\"}",
        "isobar_queue_depth{queue=\"persister\"}",
        "isobar_live_clients 1",
        "isobar_http_requests_total{route=\"/ready\",status=\"200\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
}
