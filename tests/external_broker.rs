//! External mode against the machine's real Mosquitto on 1883: isobar
//! subscribes with a persistent session and stores what is published there.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Daemon, eventually, reading, remove_session};
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
