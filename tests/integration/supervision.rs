//! A station actor that panics is restarted by its supervisor; its station
//! keeps working, other stations never notice, the message that made it
//! panic is quarantined rather than lost or retried forever, and the
//! messages queued behind it are processed normally. A station that keeps
//! failing escalates, and the restarted supervisor serves every station.

use crate::common;

use std::time::Duration;

use common::{Daemon, Publisher, eventually, next_json};
use serde_json::{Value, json};

const POISON: &str =
    r#"{"temperature": 6.0, "timestamp": "2025-01-13T10:01:00Z", "isobar_fault": "panic"}"#;

fn child<'a>(status: &'a Value, station: &str) -> Option<&'a Value> {
    status["stations"]["children"]
        .as_array()?
        .iter()
        .find(|c| c["station_id"] == station)
}

async fn history_len(daemon: &Daemon, station: &str) -> Option<usize> {
    let (_, body) = daemon
        .get(&format!(
            "/api/v1/stations/{station}/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z"
        ))
        .await;
    Some(body["readings"].as_array()?.len())
}

/// A log line without its terminal colours.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn quarantined(daemon: &Daemon) -> Vec<Value> {
    let (_, body) = daemon.get("/api/v1/quarantine").await;
    body["items"].as_array().cloned().unwrap_or_default()
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

    // A live client following WS010 hears of its restart.
    let (mut live, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live?stations=WS010", daemon.web))
            .await
            .unwrap();
    assert_eq!(next_json(&mut live).await["type"], "snapshot");

    // The poison message, with good readings right behind it in the same
    // station's mailbox.
    publisher
        .publish("weather/WS010/observations", POISON)
        .await;
    for minute in 2..=4 {
        publisher
            .reading("WS010", &format!("2025-01-13T10:0{minute}:00Z"), 7.0)
            .await;
    }
    publisher
        .reading("WS011", "2025-01-13T10:02:00Z", 7.0)
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
    assert_eq!(child(&status, "WS011").unwrap()["restarts"], 0);
    let event = loop {
        let msg = next_json(&mut live).await;
        if msg["type"] == "supervision" {
            break msg["event"].clone();
        }
    };
    assert_eq!(
        (
            event["group"].as_str(),
            event["child"].as_str(),
            event["attempt"].as_u64()
        ),
        (Some("stations"), Some("WS010"), Some(1)),
        "{event}"
    );
    assert!(event["reason"].as_str().unwrap().contains("fault injected"));

    // Every good reading is stored, those queued behind the poison included.
    eventually(Duration::from_secs(10), "WS010's four readings", || async {
        (history_len(&daemon, "WS010").await? == 4).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "WS011's two readings", || async {
        (history_len(&daemon, "WS011").await? == 2).then_some(())
    })
    .await;

    // Only the poison message is quarantined (and acknowledged), once.
    let items = quarantined(&daemon).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["reason_code"], "processing_panicked");
    assert_eq!(items[0]["station_id"], "WS010");
    assert_eq!(items[0]["payload"], POISON);

    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_failing_past_its_intensity_escalates_and_service_resumes() {
    // A small in-flight window: acknowledgements must keep flowing through
    // the escalation or ingestion stops.
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__MQTT__MAX_INFLIGHT", "20")]);
    let publisher = Publisher::connect(&daemon, "escalation-publisher").await;
    publisher
        .reading("WS021", "2025-01-13T09:00:00Z", 1.0)
        .await;

    // Six panics within the window: five restarts, then the station
    // supervisor gives up and the root restarts it.
    for _ in 0..6 {
        publisher
            .publish("weather/WS020/observations", POISON)
            .await;
    }
    eventually(
        Duration::from_secs(30),
        "six poison messages quarantined",
        || async { (quarantined(&daemon).await.len() == 6).then_some(()) },
    )
    .await;
    let logs = eventually(Duration::from_secs(10), "the escalation logged", || async {
        let logs = daemon.logs();
        logs.iter()
            .any(|l| l.contains("exceeded its restart intensity"))
            .then_some(logs)
    })
    .await;
    assert!(
        logs.iter()
            .map(|l| plain(l))
            .any(|l| l.contains("supervised actor failed; restarting")
                && l.contains(r#"group="root""#)
                && l.contains(r#"child="stations""#)),
        "{logs:#?}"
    );

    // Many more readings than the in-flight window, for old and new stations.
    for i in 0..60 {
        let ts = format!("2025-01-13T10:{:02}:00Z", i);
        for station in ["WS020", "WS021", "WS022"] {
            publisher.reading(station, &ts, 2.0).await;
        }
    }
    for (station, expected) in [("WS020", 60), ("WS021", 61), ("WS022", 60)] {
        eventually(
            Duration::from_secs(30),
            "readings after the escalation",
            || async { (history_len(&daemon, station).await? == expected).then_some(()) },
        )
        .await;
    }
    assert_eq!(quarantined(&daemon).await.len(), 6);
    drop(publisher);
    assert_eq!(daemon.interrupt(), Some(0));
}

/// The persister fails once (a test-only fault) under each pipeline
/// strategy: the siblings the strategy names are stopped and started again
/// with it, in start order, and no reading is lost across the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_strategy_decides_which_siblings_restart_with_the_persister() {
    // Restarts of archiver, aggregator, alerter, persister, hub.
    let cases = [
        ("one_for_one", "[]", [0, 0, 0, 1, 0]),
        ("rest_for_one", r#"["hub"]"#, [0, 0, 0, 1, 1]),
        (
            "one_for_all",
            r#"["archiver", "aggregator", "alerter", "hub"]"#,
            [1, 1, 1, 1, 1],
        ),
    ];
    for (strategy, siblings, restarts) in cases {
        let daemon = Daemon::start_with_env(
            &[],
            &[("ISOBAR__SUPERVISION__PIPELINE__STRATEGY", strategy)],
        );
        let publisher = Publisher::connect(&daemon, &format!("strategy-{strategy}")).await;
        let (mut live, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/api/v1/live", daemon.web))
                .await
                .unwrap();
        assert_eq!(next_json(&mut live).await["type"], "snapshot");
        publisher
            .reading("WS700", "2025-01-13T10:00:00Z", 1.0)
            .await;
        eventually(Duration::from_secs(20), "the first reading", || async {
            (history_len(&daemon, "WS700").await? == 1).then_some(())
        })
        .await;
        publisher
            .publish(
                "weather/WS700/observations",
                r#"{"temperature": 2.0, "timestamp": "2025-01-13T10:01:00Z", "isobar_fault": "persister"}"#,
            )
            .await;
        for minute in 2..=4 {
            publisher
                .reading("WS700", &format!("2025-01-13T10:0{minute}:00Z"), 3.0)
                .await;
        }
        // The faulty message is stored on its second attempt, and nothing
        // around it is lost.
        eventually(Duration::from_secs(30), "all five readings", || async {
            (history_len(&daemon, "WS700").await? == 5).then_some(())
        })
        .await;
        let logs: Vec<String> = daemon.logs().iter().map(|l| plain(l)).collect();
        let restart = logs
            .iter()
            .find(|l| l.contains("supervised actor failed; restarting"))
            .unwrap_or_else(|| panic!("{strategy}: no restart logged: {logs:#?}"));
        assert!(restart.contains(r#"group="pipeline""#), "{restart}");
        assert!(restart.contains(r#"child="persister""#), "{restart}");
        assert!(
            restart.contains(&format!("with={siblings}")),
            "{strategy}: {restart}"
        );
        assert!(quarantined(&daemon).await.is_empty());

        // Live clients hear of it, unless the strategy restarts the hub
        // too, which closes their connections.
        if strategy == "one_for_one" {
            let event = loop {
                let msg = next_json(&mut live).await;
                if msg["type"] == "supervision" {
                    break msg["event"].clone();
                }
            };
            assert_eq!(
                (event["group"].as_str(), event["child"].as_str()),
                (Some("pipeline"), Some("persister")),
                "{event}"
            );
            assert_eq!(event["with"], serde_json::json!([]), "{event}");
        }

        // The tree as the API shows it.
        let (_, tree) = daemon.get("/api/v1/supervision").await;
        assert_eq!(tree["pipeline"]["policy"]["strategy"], strategy, "{tree}");
        let children = tree["pipeline"]["children"].as_array().unwrap();
        let names: Vec<&str> = children
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["archiver", "aggregator", "alerter", "persister", "hub"]
        );
        for (child, expected) in children.iter().zip(restarts) {
            assert_eq!(child["restarts"], expected, "{strategy}: {child}");
            assert_eq!(child["state"], "running", "{strategy}: {child}");
            assert_eq!(child["group"], "pipeline");
        }
        assert!(
            children[3]["last_failure"]
                .as_str()
                .unwrap()
                .contains("fault injected into the persister"),
            "{tree}"
        );
        assert!(children[3]["last_failure_at"].is_string());
        // The pipeline handled it: nothing reached the root.
        let root = tree["root"]["children"].as_array().unwrap();
        let names: Vec<&str> = root.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["pipeline", "stations", "ingest", "web"]);
        for child in root {
            assert_eq!(
                (&child["restarts"], &child["state"]),
                (&0.into(), &"running".into()),
                "{child}"
            );
        }
        drop(publisher);
        assert_eq!(daemon.terminate(), Some(0), "{strategy}");
    }
}

/// Restart policies come from the config file, and a SIGHUP puts a changed
/// one in force from the next failure, without restarting the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_changed_in_the_config_applies_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("isobar.toml");
    let policy = |max: u32| {
        format!(
            "[supervision.stations]\nmax_restarts = {max}\nwithin = \"10m\"\nbackoff = {{ initial = \"10ms\", max = \"20ms\", factor = 2.0, jitter = 0.0 }}\n"
        )
    };
    std::fs::write(&config, policy(1)).unwrap();
    let daemon = Daemon::start(&["--config", config.to_str().unwrap()]);
    let publisher = Publisher::connect(&daemon, "reload-publisher").await;
    let escalations = |daemon: &Daemon| {
        daemon
            .logs()
            .iter()
            .filter(|l| l.contains("exceeded its restart intensity"))
            .count()
    };

    // One restart allowed: the second panic escalates.
    for _ in 0..2 {
        publisher
            .publish("weather/WS040/observations", POISON)
            .await;
    }
    eventually(Duration::from_secs(20), "WS040 escalates", || async {
        (escalations(&daemon) == 1).then_some(())
    })
    .await;

    // Five allowed from now on.
    std::fs::write(&config, policy(5)).unwrap();
    daemon.hangup();
    eventually(Duration::from_secs(10), "the reload logged", || async {
        daemon
            .logs()
            .iter()
            .any(|l| l.contains("configuration reloaded"))
            .then_some(())
    })
    .await;
    for _ in 0..3 {
        publisher
            .publish("weather/WS041/observations", POISON)
            .await;
    }
    eventually(
        Duration::from_secs(20),
        "three poisons quarantined",
        || async { (quarantined(&daemon).await.len() == 5).then_some(()) },
    )
    .await;
    let status = eventually(
        Duration::from_secs(10),
        "WS041 restarted thrice",
        || async {
            let (_, body) = daemon.get("/api/v1/supervision").await;
            let c = child(&body, "WS041")?;
            (c["restarts"] == 3).then_some(body)
        },
    )
    .await;
    assert_eq!(escalations(&daemon), 1, "{status}");

    // A bad policy is refused and the running one stays.
    std::fs::write(&config, "[supervision.stations]\nmax_restarts = -1\n").unwrap();
    daemon.hangup();
    eventually(Duration::from_secs(10), "the refusal logged", || async {
        daemon
            .logs()
            .iter()
            .any(|l| l.contains("configuration reload refused") && l.contains("max_restarts"))
            .then_some(())
    })
    .await;
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

fn group_child<'a>(tree: &'a Value, group: &str, name: &str) -> &'a Value {
    tree[group]["children"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {group}.{name} in {tree}"))
}

/// Restarts quickly, so the escalations below take milliseconds.
const FAST: [(&str, &str); 2] = [
    ("ISOBAR__SUPERVISION__PIPELINE__MAX_RESTARTS", "1"),
    ("ISOBAR__SUPERVISION__PIPELINE__BACKOFF__INITIAL", "10ms"),
];

/// The persister fails twice: the pipeline restarts it once, then, past
/// its intensity, fails itself; the root restarts the whole pipeline, and
/// the reading is stored once it is back. Each group's history shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_past_its_intensity_escalates_to_the_root() {
    let daemon = Daemon::start_with_env(&[], &FAST);
    let publisher = Publisher::connect(&daemon, "pipeline-escalation").await;
    publisher
        .publish(
            "weather/WS710/observations",
            r#"{"temperature": 2.0, "timestamp": "2025-01-13T10:00:00Z", "isobar_fault": "persister:2"}"#,
        )
        .await;
    publisher
        .reading("WS710", "2025-01-13T10:01:00Z", 3.0)
        .await;
    eventually(Duration::from_secs(30), "both readings", || async {
        (history_len(&daemon, "WS710").await? == 2).then_some(())
    })
    .await;
    let tree = eventually(Duration::from_secs(10), "the pipeline back", || async {
        let (_, tree) = daemon.get("/api/v1/supervision").await;
        (group_child(&tree, "root", "pipeline")["state"] == "running").then_some(tree)
    })
    .await;
    let pipeline = group_child(&tree, "root", "pipeline");
    assert_eq!(pipeline["restarts"], 1, "{tree}");
    let failure = pipeline["last_failure"].as_str().unwrap();
    assert!(
        failure.contains("pipeline: persister failed 2 times"),
        "{failure}"
    );
    // The pipeline's own history outlived its supervisor's restart.
    assert_eq!(
        group_child(&tree, "pipeline", "persister")["restarts"],
        1,
        "{tree}"
    );
    for other in ["stations", "ingest", "web"] {
        assert_eq!(group_child(&tree, "root", other)["restarts"], 0, "{tree}");
    }
    assert!(quarantined(&daemon).await.is_empty());
    let logs: Vec<String> = daemon.logs().iter().map(|l| plain(l)).collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("exceeded its restart intensity")
                && l.contains(r#"group="pipeline""#)),
        "{logs:#?}"
    );
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

/// The pipeline escalates twice within the root's window of one restart:
/// the root gives up, says why, and the daemon exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_giving_up_ends_the_daemon_with_a_clear_reason() {
    let mut env = FAST.to_vec();
    env.push(("ISOBAR__SUPERVISION__ROOT__MAX_RESTARTS", "1"));
    env.push(("ISOBAR__SUPERVISION__ROOT__BACKOFF__INITIAL", "10ms"));
    let daemon = Daemon::start_with_env(&[], &env);
    let publisher = Publisher::connect(&daemon, "root-gives-up").await;
    publisher
        .publish(
            "weather/WS720/observations",
            r#"{"temperature": 2.0, "timestamp": "2025-01-13T10:00:00Z", "isobar_fault": "persister:4"}"#,
        )
        .await;
    let (code, logs) = daemon.exit_within(Duration::from_secs(30));
    let logs: Vec<String> = logs.iter().map(|l| plain(l)).collect();
    assert_eq!(code, Some(70), "{logs:#?}");
    let last = logs
        .iter()
        .find(|l| l.contains("root supervisor gave up"))
        .unwrap_or_else(|| panic!("{logs:#?}"));
    assert!(
        last.contains("root: pipeline failed 2 times") && last.contains("fault injected"),
        "{last}"
    );
}

/// The web server fails (a test-only fault): the root starts it again on
/// the same address, and the API and the probes answer as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_web_server_is_restarted_on_the_same_address() {
    let daemon = Daemon::start(&[]);
    let _ = reqwest::Client::new()
        .post(daemon.url("/faults/web"))
        .send()
        .await;
    let tree = eventually(Duration::from_secs(20), "the web server back", || async {
        let response = reqwest::get(daemon.url("/api/v1/supervision")).await.ok()?;
        let tree: Value = response.json().await.ok()?;
        let web = group_child(&tree, "root", "web");
        (web["restarts"] == 1 && web["state"] == "running").then_some(tree)
    })
    .await;
    let web = group_child(&tree, "root", "web");
    assert!(
        web["last_failure"]
            .as_str()
            .unwrap()
            .contains("fault injected into the web server"),
        "{tree}"
    );
    for other in ["pipeline", "stations", "ingest"] {
        assert_eq!(group_child(&tree, "root", other)["restarts"], 0, "{tree}");
    }
    assert_eq!(daemon.get("/health").await.0, 200);
    assert_eq!(daemon.get("/ready").await.0, 200);
    assert_eq!(daemon.terminate(), Some(0));
}

/// Ingest's poller panics (a test-only fault): the ingest actor fails with
/// it rather than staying up without a connection, the root starts it
/// again, and the broker's redelivery and later readings are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_mqtt_poller_fails_ingest_and_ingest_is_restarted() {
    let daemon = Daemon::start(&[]);
    let publisher = Publisher::connect(&daemon, "poller-fault").await;
    publisher
        .publish("weather/WS730/observations", "isobar_fault:ingest")
        .await;
    let tree = eventually(Duration::from_secs(20), "ingest restarted", || async {
        let (_, tree) = daemon.get("/api/v1/supervision").await;
        let ingest = group_child(&tree, "root", "ingest");
        (ingest["restarts"] == 1 && ingest["state"] == "running").then_some(tree)
    })
    .await;
    let ingest = group_child(&tree, "root", "ingest");
    assert!(
        ingest["last_failure"]
            .as_str()
            .unwrap()
            .contains("poller panicked: fault injected"),
        "{tree}"
    );
    publisher
        .reading("WS730", "2025-01-13T10:00:00Z", 4.0)
        .await;
    eventually(
        Duration::from_secs(20),
        "a reading after the restart",
        || async { (history_len(&daemon, "WS730").await? == 1).then_some(()) },
    )
    .await;
    // The message that panicked it came again, and is quarantined as what
    // it is: not a reading.
    eventually(
        Duration::from_secs(20),
        "the fault message quarantined",
        || async { (quarantined(&daemon).await.len() == 1).then_some(()) },
    )
    .await;
    drop(publisher);
    assert_eq!(daemon.terminate(), Some(0));
}

/// A station not heard from for `supervision.hibernate_after` has its actor
/// put to sleep; its next reading wakes it with its quality-control memory,
/// so a spike after the sleep is still judged against the readings before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_station_sleeps_and_wakes_with_its_memory() {
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__SUPERVISION__HIBERNATE_AFTER", "1s")]);
    let publisher = Publisher::connect(&daemon, "hibernate-publisher").await;
    let temps = [
        20.0, 20.1, 20.0, 20.2, 20.1, 20.0, 20.1, 20.2, 20.1, 20.0, 20.1,
    ];
    for (minute, t) in temps.iter().enumerate() {
        let ts = format!("2025-01-13T10:{minute:02}:00Z");
        publisher.reading("WS830", &ts, *t).await;
    }
    eventually(Duration::from_secs(10), "WS830 asleep", || async {
        let (_, body) = daemon.get("/api/v1/supervision").await;
        let c = child(&body, "WS830")?;
        (c["state"] == "hibernating").then_some(())
    })
    .await;
    let (_, body) = daemon.get("/api/v1/supervision").await;
    let asleep = child(&body, "WS830").unwrap();
    assert_eq!(
        (
            &asleep["running"],
            &asleep["hibernating"],
            &asleep["restarts"]
        ),
        (&json!(false), &json!(true), &json!(0)),
        "{asleep}"
    );
    let metrics = daemon.metrics().await;
    assert_eq!(
        common::metric(&metrics, "isobar_stations_hibernating"),
        Some(1.0)
    );

    // The spike: suspect only if the memory of the eleven before survived.
    publisher
        .reading("WS830", "2025-01-13T10:11:00Z", 29.5)
        .await;
    let readings =
        common::readings_of_the_day(&daemon, "WS830", temps.len() + 1, Duration::from_secs(10))
            .await;
    let spike = &readings[temps.len()]["qc"];
    assert_eq!(spike["status"], "suspect", "{spike}");
    assert_eq!(
        common::flagged_by(&spike["variables"]["temperature_c"]),
        ["step", "outlier"]
    );
    // Woken, not restarted; and asleep again once idle.
    let (_, body) = daemon.get("/api/v1/supervision").await;
    assert_eq!(child(&body, "WS830").unwrap()["restarts"], 0);
    eventually(Duration::from_secs(10), "WS830 asleep again", || async {
        let (_, body) = daemon.get("/api/v1/supervision").await;
        (child(&body, "WS830")?["state"] == "hibernating").then_some(())
    })
    .await;
    assert_eq!(daemon.terminate(), Some(0));
}
