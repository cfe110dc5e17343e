//! The embedded MQTT server as stations and strangers meet it: QoS 2,
//! topics that are not readings topics, a client id taken over, clients
//! that send nothing, garbage or another protocol, and more connections
//! than it holds.

use crate::common;

use std::time::{Duration, Instant};

use common::{Daemon, eventually};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn options(daemon: &Daemon, id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(id, &daemon.mqtt_host, daemon.mqtt_port);
    options.set_keep_alive(Duration::from_secs(10));
    options
}

/// Polls `eventloop` until `wanted` picks an event, for at most 10 s.
async fn until<T>(
    eventloop: &mut rumqttc::EventLoop,
    mut wanted: impl FnMut(&Result<Event, rumqttc::ConnectionError>) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = eventloop.poll().await;
            if let Some(found) = wanted(&event) {
                return found;
            }
            if event.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
    .await
    .expect("the event within 10 s")
}

async fn readings(daemon: &Daemon, station: &str) -> usize {
    let (_, body) = daemon
        .get(&format!(
            "/api/v1/stations/{station}/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z"
        ))
        .await;
    body["readings"].as_array().map_or(0, Vec::len)
}

/// Reads until the server closes the connection; panics if it does not
/// within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    got
}

/// QoS 2: PUBREC once stored, PUBCOMP on PUBREL. QoS 0: stored too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_2_and_0_publishes_are_stored() {
    let daemon = Daemon::start(&[]);
    let (client, mut eventloop) = AsyncClient::new(options(&daemon, "qos-station"), 10);
    client
        .publish(
            "weather/WS510/observations",
            QoS::ExactlyOnce,
            false,
            common::reading("WS510", "2025-01-13T10:00:00Z", 3.0),
        )
        .await
        .unwrap();
    until(&mut eventloop, |e| {
        matches!(e, Ok(Event::Incoming(Packet::PubComp(_)))).then_some(())
    })
    .await;
    assert_eq!(readings(&daemon, "WS510").await, 1, "stored before PUBREC");
    client
        .publish(
            "weather/WS510/observations",
            QoS::AtMostOnce,
            false,
            common::reading("WS510", "2025-01-13T10:01:00Z", 3.1),
        )
        .await
        .unwrap();
    until(&mut eventloop, |e| {
        matches!(e, Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_)))).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the QoS 0 reading", || async {
        (readings(&daemon, "WS510").await == 2).then_some(())
    })
    .await;
    assert_eq!(daemon.terminate(), Some(0));
}

/// A publish to a topic that is not a readings topic is quarantined with
/// the reason, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_outside_the_readings_topics_is_quarantined() {
    let daemon = Daemon::start(&[]);
    let (client, mut eventloop) = AsyncClient::new(options(&daemon, "status-station"), 10);
    client
        .publish("weather/WS511/status", QoS::AtLeastOnce, false, "online")
        .await
        .unwrap();
    until(&mut eventloop, |e| {
        matches!(e, Ok(Event::Incoming(Packet::PubAck(_)))).then_some(())
    })
    .await;
    let (_, body) = daemon.get("/api/v1/quarantine").await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["reason_code"], "invalid_topic");
    assert_eq!(
        items[0]["reason"],
        r#"topic "weather/WS511/status" does not match "weather/+/observations""#
    );
    assert_eq!(daemon.terminate(), Some(0));
}

/// A second connection with a client id takes it over: the first is
/// closed, the second goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_is_taken_over_by_its_newest_connection() {
    let daemon = Daemon::start(&[]);
    let (_first, mut first_loop) = AsyncClient::new(options(&daemon, "twin"), 10);
    until(&mut first_loop, |e| {
        matches!(e, Ok(Event::Incoming(Packet::ConnAck(_)))).then_some(())
    })
    .await;
    let (second, mut second_loop) = AsyncClient::new(options(&daemon, "twin"), 10);
    until(&mut second_loop, |e| {
        matches!(e, Ok(Event::Incoming(Packet::ConnAck(_)))).then_some(())
    })
    .await;
    // The first hears its connection end.
    until(&mut first_loop, |e| e.is_err().then_some(())).await;
    second
        .publish(
            "weather/WS512/observations",
            QoS::AtLeastOnce,
            false,
            common::reading("WS512", "2025-01-13T10:00:00Z", 3.0),
        )
        .await
        .unwrap();
    until(&mut second_loop, |e| {
        matches!(e, Ok(Event::Incoming(Packet::PubAck(_)))).then_some(())
    })
    .await;
    assert_eq!(readings(&daemon, "WS512").await, 1);
    assert_eq!(daemon.terminate(), Some(0));
}

/// What is not MQTT 3.1.1, or not MQTT at all, is closed, with a CONNACK
/// that says why where there is one; a client that says nothing is closed
/// after 10 s; past `mqtt.max_connections` a connection is closed at once.
/// The server goes on serving stations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_closed_and_stations_go_on() {
    let daemon = Daemon::start_with_env(&[], &[("ISOBAR__MQTT__MAX_CONNECTIONS", "3")]);
    let addr = format!("{}:{}", daemon.mqtt_host, daemon.mqtt_port);

    // MQTT 5's CONNECT: refused, unacceptable protocol version (1).
    let mut v5 = TcpStream::connect(&addr).await.unwrap();
    v5.write_all(&[
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 10, 0, 0, 0,
    ])
    .await
    .unwrap();
    let answer = closed_within(&mut v5, Duration::from_secs(5)).await;
    assert_eq!(answer, [0x20, 2, 0, 1]);

    // Garbage: closed, nothing answered.
    let mut garbage = TcpStream::connect(&addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(
        closed_within(&mut garbage, Duration::from_secs(5))
            .await
            .is_empty()
    );

    // Silence: closed after the 10 s CONNECT timeout; meanwhile it holds
    // one of the three connections, a station another, and a fourth is
    // closed at once.
    let started = Instant::now();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let (station, mut station_loop) = AsyncClient::new(options(&daemon, "steady"), 10);
    until(&mut station_loop, |e| {
        matches!(e, Ok(Event::Incoming(Packet::ConnAck(_)))).then_some(())
    })
    .await;
    let _third = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut fourth, Duration::from_secs(2))
            .await
            .is_empty()
    );
    station
        .publish(
            "weather/WS513/observations",
            QoS::AtLeastOnce,
            false,
            common::reading("WS513", "2025-01-13T10:00:00Z", 3.0),
        )
        .await
        .unwrap();
    until(&mut station_loop, |e| {
        matches!(e, Ok(Event::Incoming(Packet::PubAck(_)))).then_some(())
    })
    .await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(15))
            .await
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_secs(9));
    assert_eq!(readings(&daemon, "WS513").await, 1);
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains(r#"isobar_mqtt_refused_total{reason="max_connections"} 1"#),
        "{metrics}"
    );
    let logs = daemon.logs().join("\n");
    assert!(
        logs.contains("MQTT connection closed: protocol error"),
        "{logs}"
    );
    assert_eq!(daemon.terminate(), Some(0));
}

/// With `mqtt.tls_listen`, stations publish over TLS beside the plain
/// listener; a client that does not speak TLS there is closed; a key that
/// is not one is refused at start, naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stations_publish_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    common::tls::make_certificates(dir.path());
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let port = common::mosquitto::free_port();
    let listen = format!("127.0.0.1:{port}");
    let (cert, key) = (path("server.pem"), path("server.key"));
    let tls_env = [
        ("ISOBAR__MQTT__TLS_LISTEN", listen.as_str()),
        ("ISOBAR__MQTT__TLS_CERT_FILE", cert.as_str()),
        ("ISOBAR__MQTT__TLS_KEY_FILE", key.as_str()),
    ];
    let daemon = Daemon::start_with_env(&[], &tls_env);
    // Two crypto providers are linked; the client takes the daemon's.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut options = MqttOptions::new("tls-station", "localhost", port);
    options.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Simple {
            ca: std::fs::read(path("ca.pem")).unwrap(),
            alpn: None,
            client_auth: None,
        },
    ));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client
        .publish(
            "weather/WS514/observations",
            QoS::AtLeastOnce,
            false,
            common::reading("WS514", "2025-01-13T10:00:00Z", 3.0),
        )
        .await
        .unwrap();
    until(&mut eventloop, |e| {
        matches!(e, Ok(Event::Incoming(Packet::PubAck(_)))).then_some(())
    })
    .await;
    assert_eq!(readings(&daemon, "WS514").await, 1);

    // Plain MQTT on the TLS port: closed.
    let (_plain, mut plain_loop) = AsyncClient::new(options_at("plain", &listen), 10);
    until(&mut plain_loop, |e| e.is_err().then_some(())).await;
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains(r#"isobar_mqtt_refused_total{reason="tls"}"#),
        "{metrics}"
    );
    assert_eq!(daemon.terminate(), Some(0));

    // A key file that holds no key: exit 64, naming it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isobar"))
        .arg("check-config")
        .envs(tls_env)
        .env("ISOBAR__MQTT__TLS_KEY_FILE", &cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mqtt.tls_key_file: not a PEM private key"),
        "{stderr}"
    );
}

fn options_at(id: &str, addr: &str) -> MqttOptions {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut options = MqttOptions::new(id, host, port.parse().unwrap());
    options.set_keep_alive(Duration::from_secs(10));
    options
}
