//! External mode against the machine's real Mosquitto on 1883: isobar
//! subscribes with a persistent session and stores what is published there.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Daemon, eventually, metric, reading, remove_session};
use rumqttc::{AsyncClient, MqttOptions, QoS};

const MOSQUITTO: (&str, u16) = ("127.0.0.1", 1883);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_mode_ingests_from_mosquitto() {
    let unique = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let client_id = format!("isobar-test-{unique}");
    let prefix = format!("isobar-test-{unique}");
    let topic = format!("{prefix}/+/observations");
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__MQTT__MODE", "external"),
            (
                "ISOBAR__MQTT__BROKER",
                &format!("{}:{}", MOSQUITTO.0, MOSQUITTO.1),
            ),
            ("ISOBAR__MQTT__CLIENT_ID", &client_id),
            ("ISOBAR__MQTT__TOPIC", &topic),
        ],
    );
    assert_eq!((daemon.mqtt_host.as_str(), daemon.mqtt_port), MOSQUITTO);

    let mut options = MqttOptions::new(format!("{client_id}-pub"), MOSQUITTO.0, MOSQUITTO.1);
    options.set_keep_alive(Duration::from_secs(10));
    let (publisher, mut eventloop) = AsyncClient::new(options, 100);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });

    // Published until isobar's subscription is in place: the first ones may
    // precede it, so keep publishing new readings until one is stored.
    let station = "WS500";
    let stored = eventually(Duration::from_secs(20), "a reading via Mosquitto", || {
        let publisher = publisher.clone();
        let topic = format!("{prefix}/{station}/observations");
        let web = daemon.url(&format!("/api/v1/stations/{station}/latest"));
        async move {
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            publisher
                .publish(topic, QoS::AtLeastOnce, false, reading(station, &ts, 4.2))
                .await
                .ok()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let response = reqwest::get(web).await.ok()?;
            (response.status() == 200).then_some(response.json::<serde_json::Value>().await.ok()?)
        }
    })
    .await;
    assert_eq!(stored["temperature_c"], 4.2);
    poller.abort();
    assert_eq!(daemon.terminate(), Some(0));

    // Remove isobar's persistent session from the shared broker.
    remove_session(&client_id, MOSQUITTO.0, MOSQUITTO.1).await;
}

/// isobar has no more than twice its configured window in its pipeline,
/// whatever the broker sends: here the broker's window (1000, the shipped
/// Mosquitto configuration) is far above isobar's (4), as with a broker
/// that does not keep to its limit. Ingest holds what it reads past the
/// bound and hands it on as acknowledgements go out; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_keeps_to_its_bound_and_loses_nothing() {
    const N: usize = 600;
    const WINDOW: usize = 4;
    let port = common::mosquitto::free_port();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let _broker = common::mosquitto::PrivateMosquitto::start(port, dir, &[]);
    let address = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__MQTT__MODE", "external"),
            ("ISOBAR__MQTT__BROKER", &address),
            ("ISOBAR__MQTT__MAX_INFLIGHT", &WINDOW.to_string()),
        ],
    );
    eventually(Duration::from_secs(20), "subscribed", || async {
        let (status, _) = daemon.get("/ready").await;
        (status == 200).then_some(())
    })
    .await;
    let mut options = MqttOptions::new("bound-publisher", "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_inflight(1000);
    let (publisher, mut eventloop) = AsyncClient::new(options, N);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    for i in 0..N {
        let ts = format!("2025-01-13T{:02}:{:02}:00Z", i / 60, i % 60);
        publisher
            .publish(
                "weather/WS510/observations",
                QoS::AtLeastOnce,
                false,
                reading("WS510", &ts, 1.0),
            )
            .await
            .unwrap();
    }
    let client = reqwest::Client::new();
    let highest = std::sync::Arc::new(std::sync::Mutex::new(0.0_f64));
    let stored = eventually(Duration::from_secs(60), "every reading stored", || {
        let client = client.clone();
        let metrics = daemon.url("/metrics");
        let readings = daemon.url(
            "/api/v1/stations/WS510/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z&limit=1000",
        );
        let highest = highest.clone();
        async move {
            let text = client.get(metrics).send().await.ok()?.text().await.ok()?;
            let open = metric(&text, "isobar_mqtt_unacknowledged").unwrap_or(0.0);
            {
                let mut highest = highest.lock().unwrap();
                *highest = highest.max(open);
            }
            let body: serde_json::Value = client.get(readings).send().await.ok()?.json().await.ok()?;
            let n = body["readings"].as_array()?.len();
            (n == N).then_some(text)
        }
    })
    .await;
    assert!(
        metric(&stored, "isobar_ingest_paused_total").unwrap_or(0.0) > 0.0,
        "ingest held messages back at its bound"
    );
    let highest = *highest.lock().unwrap();
    assert!(
        highest <= (2 * WINDOW) as f64,
        "{highest} held unacknowledged"
    );
    poller.abort();
    assert_eq!(daemon.terminate(), Some(0));
}

/// A Mosquitto that asks for a password, with a TLS listener for isobar
/// (its certificate from a CA made for this run) and a plain one for the
/// test's publisher: readings come through, and a wrong password is
/// refused and said so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_with_tls_and_a_password_is_reached() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    common::tls::make_certificates(dir.path());
    common::run_tool(
        "mosquitto_passwd",
        &[
            "-b",
            "-c",
            &path("passwords"),
            "isobar",
            "station-network-secret",
        ],
    );

    let plain = common::mosquitto::free_port();
    let tls = common::mosquitto::free_port();
    let listener = format!(
        "{tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nlistener {plain} 127.0.0.1",
        path("ca.pem"),
        path("server.pem"),
        path("server.key")
    );
    let _broker = common::mosquitto::PrivateMosquitto::start(
        plain,
        dir.clone(),
        &[
            ("user", "root"),
            ("allow_anonymous", "false"),
            ("password_file", &path("passwords")),
            ("listener", &listener),
        ],
    );
    // A wrong password: refused, and said so.
    let refused = Daemon::start_unready(&[
        ("ISOBAR__MQTT__MODE", "external"),
        ("ISOBAR__MQTT__BROKER", &format!("localhost:{tls}")),
        ("ISOBAR__MQTT__CLIENT_ID", "isobar-tls-refused"),
        ("ISOBAR__MQTT__USERNAME", "isobar"),
        ("ISOBAR__MQTT__PASSWORD", "not-the-password"),
        ("ISOBAR__MQTT__TLS", "true"),
        ("ISOBAR__MQTT__CA_FILE", &path("ca.pem")),
    ]);
    eventually(Duration::from_secs(20), "the refusal logged", || async {
        refused
            .logs()
            .iter()
            .any(|l| l.contains("NotAuthorized") || l.contains("BadUserNamePassword"))
            .then_some(())
    })
    .await;
    assert!(
        refused
            .logs()
            .iter()
            .all(|l| !l.contains("not-the-password")),
        "the password was logged"
    );
    drop(refused);

    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__MQTT__MODE", "external"),
            ("ISOBAR__MQTT__BROKER", &format!("localhost:{tls}")),
            ("ISOBAR__MQTT__CLIENT_ID", "isobar-tls"),
            ("ISOBAR__MQTT__USERNAME", "isobar"),
            ("ISOBAR__MQTT__PASSWORD", "station-network-secret"),
            ("ISOBAR__MQTT__TLS", "true"),
            ("ISOBAR__MQTT__CA_FILE", &path("ca.pem")),
        ],
    );
    let mut options = rumqttc::MqttOptions::new("tls-test-publisher", "127.0.0.1", plain);
    options.set_credentials("isobar", "station-network-secret");
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
        .publish(
            "weather/WS970/observations",
            rumqttc::QoS::AtLeastOnce,
            false,
            common::reading("WS970", "2025-01-13T10:00:00Z", 8.5),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the reading through TLS",
        || async {
            let (_, body) = daemon.get("/api/v1/stations/WS970/latest").await;
            (body["temperature_c"] == 8.5).then_some(())
        },
    )
    .await;
    poller.abort();
    assert_eq!(daemon.terminate(), Some(0));
}
