//! Starts the real `isobar` binary on free ports with its own data
//! directory, and talks to it as a user would: MQTT, REST and websocket.
#![allow(dead_code)]

pub mod kafka;
pub mod mosquitto;
pub mod stores;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::Value;

pub struct Daemon {
    child: Child,
    pub web: String,
    pub mqtt_host: String,
    pub mqtt_port: u16,
    pub data_dir: std::sync::Arc<tempfile::TempDir>,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `isobar run` with the embedded MQTT server and web server on
    /// port 0, and waits until it prints both addresses.
    pub fn start(extra_args: &[&str]) -> Daemon {
        Self::start_with_env(extra_args, &[])
    }

    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::start_in(
            std::sync::Arc::new(tempfile::tempdir().unwrap()),
            extra_args,
            env,
        )
    }

    /// Starts without waiting for readiness: for a daemon that cannot
    /// become ready (a broker refusing it).
    pub fn start_unready(env: &[(&str, &str)]) -> Daemon {
        Self::launch(
            std::sync::Arc::new(tempfile::tempdir().unwrap()),
            &[],
            env,
            false,
        )
    }

    /// Starts on an existing data directory, as a restart would.
    pub fn start_in(
        data_dir: std::sync::Arc<tempfile::TempDir>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        Self::launch(data_dir, extra_args, env, true)
    }

    fn launch(
        data_dir: std::sync::Arc<tempfile::TempDir>,
        extra_args: &[&str],
        env: &[(&str, &str)],
        ready: bool,
    ) -> Daemon {
        // A test that restarts the daemon gives it a port of its own, so
        // its stations find it again.
        let mqtt_listen: &[&str] = if extra_args.contains(&"--mqtt-listen") {
            &[]
        } else {
            &["--mqtt-listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_isobar"))
            .args(["run", "--listen", "127.0.0.1:0"])
            .args(mqtt_listen)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(extra_args)
            .env("ISOBAR__LOG__LEVEL", "info,isobar=debug")
            .env("ISOBAR__PERSISTER__FLUSH_INTERVAL", "20ms")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the isobar binary starts");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut web, mut mqtt) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while web.is_none() || mqtt.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("isobar: dashboard and API on http://") {
                        web = Some(addr.to_owned());
                    } else if let Some(addr) = line.strip_prefix("isobar: MQTT broker at ") {
                        mqtt = Some(addr.to_owned());
                    } else if line.starts_with("isobar: API only") {
                        // An API instance: no broker at all; its web
                        // address stands in.
                        mqtt = web.clone();
                    } else if let Some(rest) = line.strip_prefix("isobar: readings from Kafka at ")
                    {
                        // A cluster worker: its first Kafka broker stands in.
                        let brokers = rest.split(' ').next().unwrap_or_default();
                        mqtt = Some(brokers.split(',').next().unwrap_or_default().to_owned());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("isobar did not start: {:#?}", logs.lock().unwrap());
                }
            }
        }
        let mqtt = mqtt.unwrap();
        let (host, port) = mqtt.rsplit_once(':').unwrap();
        let web = web.unwrap();
        if ready {
            wait_until_ready(&web, &mut child, &logs);
        }
        Daemon {
            child,
            web,
            mqtt_host: host.to_owned(),
            mqtt_port: port.parse().unwrap(),
            data_dir,
            logs,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.web, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(self.url(path)).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `/metrics`, as Prometheus text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Kills the process outright (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGHUP: the daemon reads its configuration again.
    pub fn hangup(&self) {
        Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Waits for the process to end by itself and returns its exit code
    /// and what it logged.
    pub fn exit_within(mut self, within: Duration) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // What it wrote last reaches the reader thread shortly after.
                std::thread::sleep(Duration::from_millis(200));
                return (status.code(), self.logs());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("isobar did not end within {within:?}: {:#?}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(self) -> Option<i32> {
        self.stop_with("TERM")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGINT (Ctrl-C) and returns the exit code.
    pub fn interrupt(self) -> Option<i32> {
        self.stop_with("INT")
    }

    fn stop_with(mut self, signal: &str) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("isobar did not stop within 20 s after SIG{signal}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Ready means subscribed: a reading published from now on is taken.
fn wait_until_ready(web: &str, child: &mut Child, logs: &std::sync::Mutex<Vec<String>>) {
    let addr: std::net::SocketAddr = web.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
            use std::io::{Read, Write};
            let _ = stream.write_all(b"GET /ready HTTP/1.0\r\n\r\n");
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "isobar was not ready within 30 s: {:#?}",
                logs.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MQTT publisher connected to the daemon's broker.
pub struct Publisher {
    client: AsyncClient,
    poller: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(daemon: &Daemon, id: &str) -> Publisher {
        let mut options = MqttOptions::new(id, &daemon.mqtt_host, daemon.mqtt_port);
        // A persistent session: what was not acknowledged is sent again
        // after a reconnect.
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_clean_session(false);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let poller = tokio::spawn(async move {
            loop {
                if eventloop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Publisher { client, poller }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// Publishes a well-formed reading on the station's own topic.
    pub async fn reading(&self, station: &str, timestamp: &str, temperature: f64) {
        let topic = format!("weather/{station}/observations");
        self.publish(&topic, reading(station, timestamp, temperature))
            .await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// The station's readings of 2025-01-13 (the tests' day) over REST, once
/// there are `n` of them; panics after `within`.
pub async fn readings_of_the_day(
    daemon: &Daemon,
    station: &str,
    n: usize,
    within: Duration,
) -> Vec<Value> {
    let path = format!(
        "/api/v1/stations/{station}/readings?from=2025-01-13T00:00:00Z&to=2025-01-14T00:00:00Z"
    );
    eventually(
        within,
        &format!("{n} readings of {station} stored"),
        || async {
            let (_, body) = daemon.get(&path).await;
            let list = body["readings"].as_array()?.clone();
            (list.len() == n).then_some(list)
        },
    )
    .await
}

/// The checks that flagged one variable of a reading's `qc`
/// (`qc.variables.<name>`), in order.
pub fn flagged_by(variable: &Value) -> Vec<&str> {
    variable["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect()
}

/// A metric's value in `/metrics` text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A reading payload in the isobar JSON format.
pub fn reading(station: &str, timestamp: &str, temperature: f64) -> String {
    serde_json::json!({
        "station_id": station,
        "latitude": 40.7589,
        "longitude": -73.9851,
        "temperature": temperature,
        "humidity": 65.2,
        "pressure": 1013.8,
        "wind_speed": 12.3,
        "wind_direction": 225.0,
        "timestamp": timestamp,
        "metadata": {"heat_index": 99.0, "wind_chill": 99.0, "dew_point": 99.0}
    })
    .to_string()
}

/// A websocket client's stream of frames.
pub trait LiveSocket:
    futures_util::Stream<
        Item = Result<
            tokio_tungstenite::tungstenite::Message,
            tokio_tungstenite::tungstenite::Error,
        >,
    > + Unpin
{
}

impl<S> LiveSocket for S where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin
{
}

/// The next websocket message as JSON, failing the test after 10 s.
pub async fn next_json<S: LiveSocket>(socket: &mut S) -> Value {
    use futures_util::StreamExt;
    let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a websocket message within 10 s")
        .expect("the websocket is open")
        .expect("a valid frame");
    serde_json::from_str(&frame.into_text().unwrap()).unwrap()
}

/// The next websocket message for which `wanted` holds, skipping others.
pub async fn next_where<S: LiveSocket>(socket: &mut S, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let msg = next_json(socket).await;
        if wanted(&msg) {
            return msg;
        }
    }
}

/// Removes a persistent MQTT session from a shared broker: connecting with
/// the same client id and a clean session discards it.
pub async fn remove_session(client_id: &str, host: &str, port: u16) {
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_clean_session(true);
    let (cleaner, mut eventloop) = AsyncClient::new(options, 10);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(event) = eventloop.poll().await {
            if matches!(event, rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) {
                let _ = cleaner.disconnect().await;
            }
            if matches!(
                event,
                rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)
            ) {
                break;
            }
        }
    })
    .await;
}

/// A Redis of our own on a free port, so the test can stop it.
pub struct PrivateRedis {
    child: Child,
    pub port: u16,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let port = mosquitto::free_port();
        Self::start_on(port)
    }

    pub fn start_on(port: u16) -> PrivateRedis {
        Self::launch(port, &["--port", &port.to_string()])
    }

    /// redis-server with `args`, on loopback and without persistence,
    /// once it listens on `port`.
    fn launch(port: u16, args: &[&str]) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(args)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateRedis { child, port }
    }

    /// A Redis that speaks only TLS on `port`, with the certificate of
    /// [`tls::make_certificates`] in `certs`.
    pub fn start_tls(port: u16, certs: &std::path::Path) -> PrivateRedis {
        Self::start_tls_with(port, certs, &[])
    }

    /// As [`Self::start_tls`], and it wants `password` (`AUTH`), as
    /// ElastiCache does with an AUTH token.
    pub fn start_tls_with_password(
        port: u16,
        certs: &std::path::Path,
        password: &str,
    ) -> PrivateRedis {
        Self::start_tls_with(port, certs, &["--requirepass", password])
    }

    fn start_tls_with(port: u16, certs: &std::path::Path, more: &[&str]) -> PrivateRedis {
        let path = |name: &str| certs.join(name).to_str().unwrap().to_owned();
        Self::launch(
            port,
            &[
                more,
                &[
                    "--port",
                    "0",
                    "--tls-port",
                    &port.to_string(),
                    "--tls-cert-file",
                    &path("server.pem"),
                    "--tls-key-file",
                    &path("server.key"),
                    "--tls-ca-cert-file",
                    &path("ca.pem"),
                    "--tls-auth-clients",
                    "no",
                ],
            ]
            .concat(),
        )
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon whose cache is the Redis at `url`, once the cache answers.
pub async fn daemon_with_redis(url: &str) -> Daemon {
    let daemon = Daemon::start_with_env(
        &[],
        &[
            ("ISOBAR__CACHE__BACKEND", "redis"),
            ("ISOBAR__CACHE__REDIS_URL", url),
        ],
    );
    eventually(Duration::from_secs(10), "cache ready", || async {
        let (_, ready) = daemon.get("/ready").await;
        (ready["checks"]["cache"] == "ok").then_some(())
    })
    .await;
    daemon
}

/// Runs SQL as PostgreSQL's superuser on the machine's server: test
/// databases are created, cut off and dropped with it.
/// Readings stored in the database at `url`.
pub async fn count_stored(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one("SELECT count(*) FROM observations", &[])
        .await
        .unwrap()
        .get(0)
}

pub async fn pg_admin(sql: &str) {
    let (client, connection) = tokio_postgres::connect(
        "postgres://postgres@127.0.0.1:5432/postgres",
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

/// Runs a command-line tool the tests need (openssl, mosquitto_passwd) and
/// fails the test with its error output if it fails.
pub fn run_tool(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A webhook receiver on a free port: answers 200 while `accept` is set
/// and 500 otherwise, and hands over each request's body.
pub async fn webhook_receiver(
    accept: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then as much body as Content-Length says.
            let body = loop {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break Some(buf[end + 4..end + 4 + length].to_vec());
                    }
                }
            };
            let Some(body) = body else { continue };
            let status = if accept.load(std::sync::atomic::Ordering::SeqCst) {
                "200 OK"
            } else {
                "500 Internal Server Error"
            };
            let _ = socket
                .write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
            if let Ok(json) = serde_json::from_slice(&body) {
                let _ = tx.send(json);
            }
        }
    });
    (port, rx)
}

/// Alert rules for tests: `hot`, above 30 °C and at once, and stations
/// silent after `silent_after`, checked every 500 ms.
pub fn alert_rules(silent_after: &str) -> String {
    format!(
        r#"
[alerts]
silent_after = "{silent_after}"
check_every = "500ms"

[[alerts.thresholds]]
name = "hot"
variable = "temperature_c"
above = 30.0
for = "0s"
hysteresis = 1.0
"#
    )
}
