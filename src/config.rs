//! Settings: built-in defaults, then a TOML file, then `ISOBAR__SECTION__KEY`
//! environment variables, then command-line flags. Every key is documented in
//! `config/isobar.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::domain::alerts::{PipelineRules, QcFailureRule, ThresholdRule};
use crate::domain::{QcConfig, StationId};
use crate::supervisor::{Backoff, Restart, RestartPolicy, Strategy};

mod auth;
pub use auth::{AuthKeys, AuthSettings, JwtKey};

/// Exit status for bad configuration (EX_CONFIG would be 78; isobar follows
/// EX_USAGE, 64, as its documentation promises).
pub const EXIT_BAD_CONFIG: i32 = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub mqtt: MqttSettings,
    pub storage: StorageSettings,
    pub cache: CacheSettings,
    pub archive: ArchiveSettings,
    pub persister: PersisterSettings,
    pub web: WebSettings,
    pub simulator: SimulatorSettings,
    pub qc: QcConfig,
    pub supervision: SupervisionSettings,
    pub alerts: AlertSettings,
    pub log: LogSettings,
    pub telemetry: TelemetrySettings,
    /// `[stations.<id>]`: what the operator knows of each station.
    pub stations: std::collections::BTreeMap<String, StationMeta>,
}

/// What the operator knows of a station: its name, and a surveyed
/// position that replaces the one it reports. Reloaded on SIGHUP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StationMeta {
    pub name: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub elevation_m: Option<f64>,
}

/// The station metadata in force, shared with the API.
pub type SharedStations = Arc<std::sync::RwLock<std::collections::BTreeMap<String, StationMeta>>>;

impl StationMeta {
    fn validate(&self, id: &str) -> Result<(), ConfigError> {
        let key = |field: &str| format!("stations.{id}.{field}");
        StationId::parse(id).map_err(|e| {
            ConfigError::new(format!("stations.{id}"), format!("not a station id: {e}"))
        })?;
        if let Some(name) = &self.name
            && (name.trim().is_empty()
                || name.chars().count() > 100
                || name.chars().any(char::is_control))
        {
            return Err(ConfigError::new(
                key("name"),
                "must be 1 to 100 printable characters",
            ));
        }
        let within = |field: &str, value: Option<f64>, lo: f64, hi: f64| match value {
            Some(v) if !(lo..=hi).contains(&v) => Err(ConfigError::new(
                key(field),
                format!("{v} is outside {lo} to {hi}"),
            )),
            _ => Ok(()),
        };
        within("latitude", self.latitude, -90.0, 90.0)?;
        within("longitude", self.longitude, -180.0, 180.0)?;
        within("elevation_m", self.elevation_m, -500.0, 9000.0)?;
        if self.latitude.is_some() != self.longitude.is_some() {
            return Err(ConfigError::new(
                key(if self.latitude.is_some() {
                    "longitude"
                } else {
                    "latitude"
                }),
                "a position needs both latitude and longitude",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttMode {
    /// Run the MQTT broker inside the daemon.
    Embedded,
    /// Subscribe to a broker that runs elsewhere.
    External,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    pub mode: MqttMode,
    /// Where the embedded broker listens.
    pub listen: SocketAddr,
    /// `host:port` of the external broker.
    pub broker: String,
    /// Fixed client id, so the broker keeps our session across restarts.
    pub client_id: String,
    /// Subscription filter; its single `+` level is the station id.
    pub topic: String,
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// The broker's in-flight window for isobar's connection: how many QoS 1
    /// messages it sends before waiting for acknowledgements. Set it on the
    /// embedded broker (which caps it at 100); for an external broker, set it
    /// to that broker's limit (`max_inflight_messages` in Mosquitto).
    pub max_inflight: u16,
    /// For an external broker that asks for them.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The password, from a file (a mounted secret); trailing space cut.
    pub password_file: Option<PathBuf>,
    /// TLS to the external broker (rustls): the broker's CA from `ca_file`
    /// (PEM), or the system's roots without one.
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for brokers that ask for one
    /// (AWS IoT Core); they need `ca_file`.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

/// rumqttd sends at most this many unacknowledged messages to a client,
/// whatever it is configured with.
pub const EMBEDDED_INFLIGHT_CAP: u16 = 100;

impl MqttSettings {
    /// The in-flight window the broker will actually use.
    pub fn effective_inflight(&self) -> usize {
        let window = match self.mode {
            MqttMode::Embedded => self.max_inflight.min(EMBEDDED_INFLIGHT_CAP),
            MqttMode::External => self.max_inflight,
        };
        usize::from(window)
    }
}

/// A file's bytes, or why not, named by its setting.
pub(crate) fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))
}

/// The TLS files of an MQTT connection, read.
#[derive(Debug, Clone, Default)]
pub struct MqttTlsFiles {
    pub ca: Option<Vec<u8>>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl MqttSettings {
    /// The username and password to connect with, if any.
    pub fn credentials(&self) -> Result<Option<(String, Secret)>, ConfigError> {
        let password = match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "mqtt.password_file",
                    "give password or password_file, not both",
                ));
            }
            (Some(p), None) => Some(p.clone()),
            (None, Some(path)) => {
                let bytes = read_file("mqtt.password_file", path)?;
                Some(Secret::new(String::from_utf8_lossy(&bytes).trim_end()))
            }
            (None, None) => None,
        };
        match (&self.username, password) {
            (Some(user), password) => Ok(Some((
                user.clone(),
                password.unwrap_or_else(|| Secret::new("")),
            ))),
            (None, Some(_)) => Err(ConfigError::new(
                "mqtt.username",
                "a password needs a username",
            )),
            (None, None) => Ok(None),
        }
    }

    /// The TLS files, read, when TLS is on; `None` when it is off.
    pub fn tls_files(&self) -> Result<Option<MqttTlsFiles>, ConfigError> {
        let given = self.ca_file.is_some()
            || self.client_cert_file.is_some()
            || self.client_key_file.is_some();
        if !self.tls {
            if given {
                return Err(ConfigError::new(
                    "mqtt.tls",
                    "ca_file and client certificates need tls = true",
                ));
            }
            return Ok(None);
        }
        if self.mode == MqttMode::Embedded {
            return Err(ConfigError::new(
                "mqtt.tls",
                "TLS is for an external broker (mqtt.mode = \"external\")",
            ));
        }
        let ca = self
            .ca_file
            .as_deref()
            .map(|p| read_file("mqtt.ca_file", p))
            .transpose()?;
        let client = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                if ca.is_none() {
                    return Err(ConfigError::new(
                        "mqtt.ca_file",
                        "a client certificate needs the broker's CA in ca_file",
                    ));
                }
                Some((
                    read_file("mqtt.client_cert_file", cert)?,
                    read_file("mqtt.client_key_file", key)?,
                ))
            }
            (None, None) => None,
            _ => {
                return Err(ConfigError::new(
                    "mqtt.client_key_file",
                    "give client_cert_file and client_key_file together",
                ));
            }
        };
        Ok(Some(MqttTlsFiles { ca, client }))
    }
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            mode: MqttMode::Embedded,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            broker: "127.0.0.1:1883".into(),
            client_id: "isobar".into(),
            topic: "weather/+/observations".into(),
            keep_alive: Duration::from_secs(30),
            max_inflight: 1000,
            username: None,
            password: None,
            password_file: None,
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// A SQLite file in `data_dir`: no server needed.
    Sqlite,
    /// PostgreSQL at `postgres_url`.
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    pub backend: StoreBackend,
    /// Directory for the SQLite database.
    pub data_dir: PathBuf,
    /// `postgres://user:password@host:port/database`; set it from the
    /// environment (ISOBAR__STORAGE__POSTGRES_URL), it holds a password.
    pub postgres_url: Option<Secret>,
    /// Connections in the PostgreSQL pool.
    pub postgres_pool: usize,
    /// Apply pending migrations when the daemon starts.
    pub migrate_on_start: bool,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sqlite,
            data_dir: PathBuf::from("data"),
            postgres_url: None,
            postgres_pool: 16,
            migrate_on_start: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    /// A map in the daemon's memory.
    Memory,
    /// Redis at `redis_url`; also relays readings between instances.
    Redis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    pub backend: CacheBackend,
    /// `redis://[:password@]host:port/db`; set it from the environment
    /// (ISOBAR__CACHE__REDIS_URL) when it holds a password.
    pub redis_url: Option<Secret>,
    /// Prefix of every key and channel, so instances of different networks
    /// can share a Redis.
    pub key_prefix: String,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            backend: CacheBackend::Memory,
            redis_url: None,
            key_prefix: "isobar:".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveBackend {
    /// A directory with the data lake's layout (`dir`).
    Local,
    /// An S3 bucket, on AWS or any S3-compatible endpoint.
    S3,
    /// No data lake.
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveSettings {
    pub backend: ArchiveBackend,
    /// Local archive directory; `<storage.data_dir>/archive` when unset.
    pub dir: Option<PathBuf>,
    pub bucket: Option<String>,
    /// Prefix of every object key, such as `isobar/`.
    pub prefix: String,
    /// AWS region; from the AWS environment or profile when unset.
    pub region: Option<String>,
    /// An S3-compatible endpoint (MinIO, Ceph, ...) instead of AWS.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most
    /// S3-compatible stores need.
    pub path_style: bool,
    /// A spool segment is uploaded at this age or size, whichever first.
    /// Each segment becomes one object per (date, station) it holds, so
    /// larger segments mean fewer, larger objects: cheaper to write, and
    /// what the lake's query engines read best.
    #[serde(with = "humantime_serde")]
    pub segment_age: Duration,
    pub segment_bytes: u64,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        Self {
            backend: ArchiveBackend::Local,
            dir: None,
            bucket: None,
            prefix: String::new(),
            region: None,
            endpoint_url: None,
            path_style: false,
            segment_age: Duration::from_secs(300),
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ArchiveSettings {
    pub fn local_dir(&self, storage: &StorageSettings) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| storage.data_dir.join("archive"))
    }
}

/// A value that must not be shown: `Debug` and serialisation (as in
/// `isobar check-config`) print a placeholder.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

impl StorageSettings {
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("isobar.sqlite3")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersisterSettings {
    /// The most deliveries one batch holds.
    pub batch_size: usize,
    /// How long a batch may wait to fill while a writer is free. Zero (the
    /// default) cuts a batch as soon as a writer is free: at low load a
    /// reading waits for one commit, and under load batches grow by
    /// themselves while the writers are busy (group commit).
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Raw bytes kept of a quarantined payload.
    pub quarantine_max_bytes: usize,
    /// Batches written at the same time, so one commits while the next is
    /// sent. Each holds a store connection while it is written.
    pub writers: usize,
}

impl Default for PersisterSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            flush_interval: Duration::ZERO,
            quarantine_max_bytes: 64 * 1024,
            writers: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    pub listen: SocketAddr,
    /// A built dashboard on disk (`frontend/dist`), served instead of the
    /// one embedded in the binary: for development with `vite build --watch`.
    pub static_dir: Option<PathBuf>,
    /// Messages queued per websocket client before its overflow policy applies.
    pub client_queue: usize,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    /// Origins (`https://wx.example.net`) besides the daemon's own whose
    /// pages may open the websocket.
    pub allowed_origins: Vec<String>,
    /// Origins whose pages may call the API from the browser (CORS): the
    /// answers carry `Access-Control-Allow-Origin` for them only.
    pub cors_origins: Vec<String>,
    /// The websocket pings each client this often, and closes the
    /// connection of one silent for two of them.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
}

/// Requests per client address, beyond the probes: a sustained rate and a
/// burst; past them, 429 with `Retry-After`. `per_second = 0` turns it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_second: 200,
            burst: 400,
        }
    }
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            static_dir: None,
            client_queue: 1024,
            auth: AuthSettings::default(),
            rate_limit: RateLimitSettings::default(),
            allowed_origins: Vec::new(),
            cors_origins: Vec::new(),
            heartbeat: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Simulated stations published by the daemon itself; 0 turns it off.
    pub stations: u32,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Seed for repeatable simulations; random when absent.
    pub seed: Option<u64>,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            stations: 0,
            interval: Duration::from_secs(1),
            seed: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter, such as `info` or `isobar=debug,warn`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// `[telemetry]`: traces of each reading's path, exported over OTLP/HTTP
/// when an endpoint is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`);
    /// traces go to `<endpoint>/v1/traces`. None: no traces.
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: OtlpProtocol,
    /// `service.name` of the traces.
    pub service_name: String,
    /// The share of readings traced, 0 to 1 (a parent's decision is kept).
    pub sample_ratio: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            service_name: "isobar".into(),
            sample_ratio: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

impl TelemetrySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint
            && !is_http_url(endpoint)
        {
            return Err(ConfigError::new(
                "telemetry.otlp_endpoint",
                format!("{endpoint:?} is not an http:// or https:// URL"),
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::new(
                "telemetry.sample_ratio",
                "must be from 0 to 1",
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::new(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        Ok(())
    }
}

/// The store the settings choose, with what it needs.
#[derive(Debug, Clone, Copy)]
pub enum StoreTarget<'a> {
    Sqlite,
    Postgres { url: &'a Secret },
}

impl StorageSettings {
    /// The store chosen, or which key stands in the way and why.
    pub fn target(&self) -> Result<StoreTarget<'_>, ConfigError> {
        match self.backend {
            StoreBackend::Sqlite => Ok(StoreTarget::Sqlite),
            StoreBackend::Postgres => {
                let url = self.postgres_url.as_ref().ok_or_else(|| {
                    ConfigError::new(
                        "storage.postgres_url",
                        "required with storage.backend = \"postgres\" \
                 (set ISOBAR__STORAGE__POSTGRES_URL)",
                    )
                })?;
                // The parser's message never quotes the URL, which holds a password.
                let parsed = url
                    .expose()
                    .parse::<tokio_postgres::Config>()
                    .map_err(|e| {
                        ConfigError::new(
                            "storage.postgres_url",
                            format!("not a PostgreSQL URL: {e}"),
                        )
                    })?;
                if parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
                    return Err(ConfigError::new(
                        "storage.postgres_url",
                        "sslmode=require is not supported yet; connect over a private network",
                    ));
                }
                Ok(StoreTarget::Postgres { url })
            }
        }
    }
}

/// The latest-reading cache the settings choose, with what it needs.
#[derive(Debug, Clone, Copy)]
pub enum CacheTarget<'a> {
    Memory,
    Redis { url: &'a Secret },
}

impl CacheSettings {
    /// The cache chosen, or which key stands in the way and why.
    pub fn target(&self) -> Result<CacheTarget<'_>, ConfigError> {
        match self.backend {
            CacheBackend::Memory => Ok(CacheTarget::Memory),
            CacheBackend::Redis => {
                let url = self.redis_url.as_ref().ok_or_else(|| {
                    ConfigError::new(
                        "cache.redis_url",
                        "required with cache.backend = \"redis\" (set ISOBAR__CACHE__REDIS_URL)",
                    )
                })?;
                if url.expose().starts_with("rediss://") {
                    return Err(ConfigError::new(
                        "cache.redis_url",
                        "TLS (rediss://) is not supported yet; connect over a private network",
                    ));
                }
                fred::prelude::Config::from_url(url.expose()).map_err(|e| {
                    ConfigError::new(
                        "cache.redis_url",
                        format!("not a Redis URL: {}", e.details()),
                    )
                })?;
                Ok(CacheTarget::Redis { url })
            }
        }
    }
}

/// The data lake the settings choose, with what it needs.
#[derive(Debug, Clone, Copy)]
pub enum ArchiveTarget<'a> {
    Off,
    Local,
    S3 { bucket: &'a str },
}

impl ArchiveSettings {
    /// The archive chosen, or which key stands in the way and why.
    pub fn target(&self) -> Result<ArchiveTarget<'_>, ConfigError> {
        match self.backend {
            ArchiveBackend::Off => Ok(ArchiveTarget::Off),
            ArchiveBackend::Local => Ok(ArchiveTarget::Local),
            ArchiveBackend::S3 => match self.bucket.as_deref() {
                Some(bucket) if !bucket.is_empty() => Ok(ArchiveTarget::S3 { bucket }),
                _ => Err(ConfigError::new(
                    "archive.bucket",
                    "required with archive.backend = \"s3\"",
                )),
            },
        }
    }
}

impl MqttSettings {
    /// The external broker's host and port; `None` with the embedded one.
    pub fn external_broker(&self) -> Result<Option<(String, u16)>, ConfigError> {
        match self.mode {
            MqttMode::Embedded => Ok(None),
            MqttMode::External => parse_host_port(&self.broker)
                .map(Some)
                .map_err(|reason| ConfigError::new("mqtt.broker", reason)),
        }
    }
}

/// A configuration problem, naming the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl Settings {
    /// Loads defaults, the file (if any), the environment, then `overrides`
    /// (already-parsed command-line flags as a partial settings tree).
    pub fn load(file: Option<&Path>, overrides: Figment) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment
            .merge(Env::prefixed("ISOBAR__").split("__"))
            .merge(overrides);
        let settings: Settings = figment.extract().map_err(from_figment)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.credentials()?;
        self.mqtt.tls_files()?;
        let topic = &self.mqtt.topic;
        let levels: Vec<&str> = topic.split('/').collect();
        if levels.iter().filter(|l| **l == "+").count() != 1 || topic.contains('#') {
            return Err(ConfigError::new(
                "mqtt.topic",
                format!("{topic:?} must have exactly one '+' level (the station id) and no '#'"),
            ));
        }
        self.mqtt.external_broker()?;
        if self.mqtt.client_id.is_empty() || self.mqtt.client_id.len() > 64 {
            return Err(ConfigError::new(
                "mqtt.client_id",
                "must be 1 to 64 characters",
            ));
        }
        if self.mqtt.max_inflight == 0 {
            return Err(ConfigError::new("mqtt.max_inflight", "must be at least 1"));
        }
        self.storage.target()?;
        self.cache.target()?;
        self.archive.target()?;
        if self.archive.segment_age.is_zero() || self.archive.segment_bytes == 0 {
            return Err(ConfigError::new(
                "archive.segment_age",
                "segments need an age and a size above zero",
            ));
        }
        if !(1..=1000).contains(&self.storage.postgres_pool) {
            return Err(ConfigError::new(
                "storage.postgres_pool",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=100_000).contains(&self.persister.batch_size) {
            return Err(ConfigError::new(
                "persister.batch_size",
                "must be between 1 and 100000",
            ));
        }
        if !(1..=16).contains(&self.persister.writers) {
            return Err(ConfigError::new(
                "persister.writers",
                "must be between 1 and 16",
            ));
        }
        if self.storage.backend == StoreBackend::Postgres
            && self.persister.writers >= self.storage.postgres_pool
        {
            return Err(ConfigError::new(
                "persister.writers",
                "must be below storage.postgres_pool, which also serves the API",
            ));
        }
        if self.persister.flush_interval > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "persister.flush_interval",
                "must be at most 60s",
            ));
        }
        self.web.auth.parse()?;
        if self.web.heartbeat < Duration::from_millis(100) {
            return Err(ConfigError::new("web.heartbeat", "must be at least 100ms"));
        }
        if self.web.rate_limit.per_second > 0 && self.web.rate_limit.burst == 0 {
            return Err(ConfigError::new(
                "web.rate_limit.burst",
                "must be at least 1 when per_second is set",
            ));
        }
        for (key, origin) in self
            .web
            .allowed_origins
            .iter()
            .map(|o| ("web.allowed_origins", o))
            .chain(
                self.web
                    .cors_origins
                    .iter()
                    .map(|o| ("web.cors_origins", o)),
            )
        {
            let ok = is_http_url(origin)
                && !origin
                    .trim_end_matches('/')
                    .contains(|c: char| c.is_whitespace())
                && origin.splitn(4, '/').nth(3).is_none_or(str::is_empty);
            if !ok {
                return Err(ConfigError::new(
                    key,
                    format!("{origin:?} is not an origin (scheme://host[:port], no path)"),
                ));
            }
        }
        if self.web.client_queue == 0 {
            return Err(ConfigError::new("web.client_queue", "must be at least 1"));
        }
        if self.simulator.stations > 10_000 {
            return Err(ConfigError::new(
                "simulator.stations",
                "must be at most 10000",
            ));
        }
        if self.simulator.interval < Duration::from_millis(10) {
            return Err(ConfigError::new(
                "simulator.interval",
                "must be at least 10ms",
            ));
        }
        self.qc
            .validate()
            .map_err(|(key, reason)| ConfigError::new(key, reason))?;
        self.supervision.validate()?;
        self.alerts.validate()?;
        for (id, meta) in &self.stations {
            meta.validate(id)?;
        }
        self.telemetry.validate()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::new("log.level", e.to_string()))?;
        Ok(())
    }
}

/// Alert rules: thresholds held for a duration, silent stations, each
/// station's QC failure rate, and the pipeline's own health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// A station not heard from for this long raises `station_silent`.
    #[serde(with = "humantime_serde")]
    pub silent_after: Duration,
    /// How often silence is checked.
    #[serde(with = "humantime_serde")]
    pub check_every: Duration,
    /// Each alert that fires or resolves is POSTed here as JSON, in order,
    /// retried with backoff. May hold a token, so it is kept secret.
    pub webhook_url: Option<Secret>,
    pub thresholds: Vec<ThresholdRule>,
    pub qc_failure_rate: QcFailureRule,
    pub pipeline: PipelineRules,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            silent_after: Duration::from_secs(2 * 3600),
            check_every: Duration::from_secs(30),
            webhook_url: None,
            qc_failure_rate: QcFailureRule::default(),
            pipeline: PipelineRules::default(),
            thresholds: vec![
                ThresholdRule {
                    name: "heat".into(),
                    variable: "temperature_c".into(),
                    above: Some(35.0),
                    below: None,
                    for_: Duration::from_secs(600),
                    hysteresis: 1.0,
                },
                ThresholdRule {
                    name: "gusts".into(),
                    variable: "wind_gust_ms".into(),
                    above: Some(25.0),
                    below: None,
                    for_: Duration::ZERO,
                    hysteresis: 3.0,
                },
            ],
        }
    }
}

impl AlertSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.silent_after.is_zero() || self.check_every.is_zero() {
            return Err(ConfigError::new(
                "alerts.silent_after",
                "silent_after and check_every must be longer than zero",
            ));
        }
        if let Some(url) = &self.webhook_url
            && !is_http_url(url.expose())
        {
            return Err(ConfigError::new(
                "alerts.webhook_url",
                "must be an http:// or https:// URL",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, rule) in self.thresholds.iter().enumerate() {
            let key = |field: &str| format!("alerts.thresholds[{i}].{field}");
            if rule.name.is_empty() || crate::domain::alerts::RESERVED.contains(&rule.name.as_str())
            {
                return Err(ConfigError::new(
                    key("name"),
                    format!(
                        "must be set, and not one of the built-in rules ({})",
                        crate::domain::alerts::RESERVED.join(", ")
                    ),
                ));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(ConfigError::new(
                    key("name"),
                    format!("{:?} is used twice", rule.name),
                ));
            }
            if !crate::domain::rollup::ROLLED_UP.contains(&rule.variable.as_str()) {
                return Err(ConfigError::new(
                    key("variable"),
                    format!(
                        "{:?} is not one of {}",
                        rule.variable,
                        crate::domain::rollup::ROLLED_UP.join(", ")
                    ),
                ));
            }
            if rule.above.is_none() && rule.below.is_none() {
                return Err(ConfigError::new(key("above"), "give above, below or both"));
            }
            if !(rule.hysteresis.is_finite() && rule.hysteresis >= 0.0) {
                return Err(ConfigError::new(key("hysteresis"), "must be zero or more"));
            }
        }
        // A limit in percent and the hysteresis below it.
        let percent = |(above_key, above): (&str, f64),
                       (hysteresis_key, hysteresis): (&str, f64)| {
            if !(above.is_finite() && (0.0..100.0).contains(&above)) {
                return Err(ConfigError::new(
                    format!("alerts.{above_key}"),
                    format!("{above} is not a share in percent, from 0 to below 100"),
                ));
            }
            if !(hysteresis.is_finite() && (0.0..=above).contains(&hysteresis)) {
                return Err(ConfigError::new(
                    format!("alerts.{hysteresis_key}"),
                    format!("{hysteresis} must be from 0 to the limit ({above})"),
                ));
            }
            Ok(())
        };
        let q = &self.qc_failure_rate;
        percent(
            ("qc_failure_rate.above_pct", q.above_pct),
            ("qc_failure_rate.hysteresis_pct", q.hysteresis_pct),
        )?;
        if q.window.is_zero() {
            return Err(ConfigError::new(
                "alerts.qc_failure_rate.window",
                "must be longer than zero",
            ));
        }
        let p = &self.pipeline;
        percent(
            ("pipeline.error_rate_above_pct", p.error_rate_above_pct),
            (
                "pipeline.error_rate_hysteresis_pct",
                p.error_rate_hysteresis_pct,
            ),
        )?;
        for (key, d) in [
            ("check_every", p.check_every),
            ("store_unreachable_for", p.store_unreachable_for),
            ("error_rate_window", p.error_rate_window),
            ("lag_above", p.lag_above),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(
                    format!("alerts.pipeline.{key}"),
                    "must be longer than zero",
                ));
            }
        }
        if p.lag_resolve_below > p.lag_above {
            return Err(ConfigError::new(
                "alerts.pipeline.lag_resolve_below",
                format!(
                    "{} must be at most lag_above ({})",
                    humantime::format_duration(p.lag_resolve_below),
                    humantime::format_duration(p.lag_above)
                ),
            ));
        }
        Ok(())
    }
}

/// The supervision settings in force, shared by the supervisors, which read
/// them at each failure; replaced as a whole when the configuration is
/// reloaded (SIGHUP).
pub type SharedSupervision = Arc<std::sync::RwLock<SupervisionSettings>>;

/// How isobar restarts its actors: `[supervision.root]` for the root's
/// children (the pipeline, the stations supervisor, ingest and the web
/// server, in that start order), `[supervision.pipeline]` for the
/// pipeline's actors (archiver, aggregator, alerter, persister, hub),
/// `[supervision.stations]` for each station's actor, and
/// `[supervision.station_overrides.<id>]` for single stations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionSettings {
    /// A station's actor not sent a message for this long hibernates: it
    /// stops, and its supervisor keeps only its quality-control memory,
    /// from which its next message starts it again. Zero keeps every
    /// station's actor running.
    #[serde(with = "humantime_serde")]
    pub hibernate_after: Duration,
    pub root: PolicySettings,
    pub pipeline: PolicySettings,
    pub stations: PolicySettings,
    /// Per station: only the keys given replace the stations policy's.
    pub station_overrides: std::collections::BTreeMap<String, PolicyOverride>,
}

impl Default for SupervisionSettings {
    fn default() -> Self {
        Self {
            hibernate_after: Duration::from_secs(120),
            root: PolicySettings::default(),
            pipeline: PolicySettings::default(),
            stations: PolicySettings::default(),
            station_overrides: std::collections::BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySettings {
    pub strategy: Strategy,
    pub restart: Restart,
    pub max_restarts: u32,
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "1m")]
    pub within: Duration,
    pub backoff: BackoffSettings,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self::from(&RestartPolicy::default())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffSettings {
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "100ms")]
    pub initial: Duration,
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "30s")]
    pub max: Duration,
    pub factor: f64,
    pub jitter: f64,
}

impl Default for BackoffSettings {
    fn default() -> Self {
        let b = Backoff::default();
        Self {
            initial: b.initial,
            max: b.max,
            factor: b.factor,
            jitter: b.jitter,
        }
    }
}

/// A station's own policy: what it gives replaces the stations policy's.
/// A station's actor has no siblings to take down, so there is no strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyOverride {
    pub restart: Option<Restart>,
    pub max_restarts: Option<u32>,
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub within: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffSettings>,
}

impl From<&RestartPolicy> for PolicySettings {
    fn from(p: &RestartPolicy) -> Self {
        Self {
            strategy: p.strategy,
            restart: p.restart,
            max_restarts: p.max_restarts,
            within: p.within,
            backoff: BackoffSettings {
                initial: p.backoff.initial,
                max: p.backoff.max,
                factor: p.backoff.factor,
                jitter: p.backoff.jitter,
            },
        }
    }
}

impl PolicySettings {
    pub fn policy(&self) -> RestartPolicy {
        RestartPolicy {
            strategy: self.strategy,
            restart: self.restart,
            max_restarts: self.max_restarts,
            within: self.within,
            backoff: Backoff {
                initial: self.backoff.initial,
                max: self.backoff.max,
                factor: self.backoff.factor,
                jitter: self.backoff.jitter,
            },
        }
    }
}

impl SupervisionSettings {
    /// The policy of one station's actor: the stations policy, with the
    /// station's overrides.
    pub fn station_policy(&self, id: &str) -> RestartPolicy {
        let mut policy = self.stations.policy();
        if let Some(o) = self.station_overrides.get(id) {
            if let Some(restart) = o.restart {
                policy.restart = restart;
            }
            if let Some(max) = o.max_restarts {
                policy.max_restarts = max;
            }
            if let Some(within) = o.within {
                policy.within = within;
            }
            if let Some(b) = &o.backoff {
                policy.backoff = Backoff {
                    initial: b.initial,
                    max: b.max,
                    factor: b.factor,
                    jitter: b.jitter,
                };
            }
        }
        policy
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let checked = |group: &str, policy: RestartPolicy| {
            policy.check().map_err(|(key, reason)| {
                ConfigError::new(format!("supervision.{group}.{key}"), reason)
            })
        };
        if !self.hibernate_after.is_zero() && self.hibernate_after < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "supervision.hibernate_after",
                "must be at least 1s, or 0 to keep every station's actor running",
            ));
        }
        checked("root", self.root.policy())?;
        checked("pipeline", self.pipeline.policy())?;
        checked("stations", self.stations.policy())?;
        if self.stations.strategy != Strategy::OneForOne {
            return Err(ConfigError::new(
                "supervision.stations.strategy",
                "stations are independent of one another: only one_for_one applies",
            ));
        }
        for id in self.station_overrides.keys() {
            StationId::parse(id).map_err(|e| {
                ConfigError::new(
                    format!("supervision.station_overrides.{id}"),
                    format!("not a station id: {e}"),
                )
            })?;
            checked(&format!("station_overrides.{id}"), self.station_policy(id))?;
        }
        Ok(())
    }
}

/// Splits `host:port`, checking the port.
pub fn parse_host_port(raw: &str) -> Result<(String, u16), String> {
    let (host, port) = raw
        .rsplit_once(':')
        .ok_or_else(|| format!("{raw:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{raw:?} has no valid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{raw:?} has no host"));
    }
    Ok((host.to_owned(), port))
}

fn from_figment(err: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let mut key = err.path.join(".");
    let reason = match &err.kind {
        Kind::UnknownField(field, expected) => {
            // figment's path already ends at the unknown key for nested
            // tables, but not at the top level.
            if !key.ends_with(field.as_str()) {
                key = if key.is_empty() {
                    field.clone()
                } else {
                    format!("{key}.{field}")
                };
            }
            format!("unknown key; expected one of {}", expected.join(", "))
        }
        Kind::MissingField(field) => {
            key = if key.is_empty() {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            "missing".to_owned()
        }
        other => other.to_string(),
    };
    let source = err.metadata.as_ref().map(|m| m.name.to_string());
    let reason = match source {
        Some(source) => format!("{reason} (from {source})"),
        None => reason,
    };
    ConfigError::new(
        if key.is_empty() {
            "<root>".to_owned()
        } else {
            key
        },
        reason,
    )
}

/// Whether a setting is an http: or https: URL (the rest is checked by
/// whoever uses it).
fn is_http_url(value: &str) -> bool {
    value.starts_with("http://") || value.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(toml: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("isobar.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::load(Some(&path), Figment::new())
    }

    #[test]
    fn defaults_are_valid_and_embedded() {
        let s = Settings::default();
        s.validate().unwrap();
        assert_eq!(s.mqtt.mode, MqttMode::Embedded);
        assert_eq!(s.web.listen.port(), 8080);
    }

    #[test]
    fn the_example_config_loads() {
        let example = include_str!("../config/isobar.example.toml");
        let s = load_toml(example).unwrap();
        // The example documents the defaults, so it must equal them.
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn a_static_dir_replaces_the_embedded_dashboard_only_when_set() {
        assert_eq!(Settings::default().web.static_dir, None);
        let s = load_toml("[web]\nstatic_dir = \"frontend/dist\"\n").unwrap();
        assert_eq!(s.web.static_dir, Some(PathBuf::from("frontend/dist")));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_toml("[mqtt]\nmod = \"external\"\n").unwrap_err();
        assert_eq!(err.key, "mqtt.mod");
        assert!(err.reason.contains("unknown key"), "{}", err.reason);
    }

    #[test]
    fn wrong_types_and_bad_addresses_are_named() {
        let err = load_toml("[persister]\nbatch_size = \"many\"\n").unwrap_err();
        assert_eq!(err.key, "persister.batch_size");
        let err = load_toml("[web]\nlisten = \"localhost\"\n").unwrap_err();
        assert_eq!(err.key, "web.listen");
        let err = load_toml("[mqtt]\nmode = \"external\"\nbroker = \"nohost\"\n").unwrap_err();
        assert_eq!(err.key, "mqtt.broker");
        let err = load_toml("[mqtt]\ntopic = \"weather/#\"\n").unwrap_err();
        assert_eq!(err.key, "mqtt.topic");
        let err = load_toml("[persister]\nflush_interval = \"soon\"\n").unwrap_err();
        assert_eq!(err.key, "persister.flush_interval");
    }

    /// Zero is group commit, the default; a batch may wait at most 60 s.
    #[test]
    fn the_flush_interval_is_zero_or_a_bounded_wait() {
        assert_eq!(Settings::default().persister.flush_interval, Duration::ZERO);
        let zero = load_toml("[persister]\nflush_interval = \"0s\"\n").unwrap();
        assert_eq!(zero.persister.flush_interval, Duration::ZERO);
        let wait = load_toml("[persister]\nflush_interval = \"250ms\"\n").unwrap();
        assert_eq!(wait.persister.flush_interval, Duration::from_millis(250));
        let err = load_toml("[persister]\nflush_interval = \"2m\"\n").unwrap_err();
        assert_eq!(err.key, "persister.flush_interval");
        assert_eq!(err.reason, "must be at most 60s");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("isobar.toml");
        std::fs::write(&path, "[web]\nlisten = \"127.0.0.1:9000\"\n").unwrap();
        let overrides = Figment::new().merge(Serialized::default("web.listen", "127.0.0.1:9001"));
        let s = Settings::load(Some(&path), overrides).unwrap();
        assert_eq!(s.web.listen.port(), 9001);
    }

    #[test]
    fn postgres_needs_a_valid_url_that_is_never_shown() {
        let err = load_toml("[storage]\nbackend = \"postgres\"\n").unwrap_err();
        assert_eq!(err.key, "storage.postgres_url");
        let s = load_toml(
            "[storage]\nbackend = \"postgres\"\npostgres_url = \"postgres://u:hunter2@db/isobar\"\n",
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!toml::to_string(&s).unwrap().contains("hunter2"));
        assert_eq!(
            s.storage.postgres_url.unwrap().expose(),
            "postgres://u:hunter2@db/isobar"
        );
    }

    #[test]
    fn parses_host_and_port() {
        assert_eq!(
            parse_host_port("broker.local:8883"),
            Ok(("broker.local".into(), 8883))
        );
        assert_eq!(parse_host_port("[::1]:1883"), Ok(("::1".into(), 1883)));
        assert!(parse_host_port("broker").is_err());
        assert!(parse_host_port(":1883").is_err());
    }

    #[test]
    fn restart_policies_come_from_the_config_with_station_overrides() {
        let settings = load_toml(
            r#"
[supervision.pipeline]
strategy = "rest_for_one"
restart = "transient"
max_restarts = 3
within = "10s"
backoff = { initial = "50ms", max = "2s", factor = 3.0, jitter = 0.0 }

[supervision.root]
strategy = "one_for_all"

[supervision.stations]
max_restarts = 7

[supervision.station_overrides.WS001]
max_restarts = 20
within = "5m"
"#,
        )
        .unwrap();
        let pipeline = settings.supervision.pipeline.policy();
        assert_eq!(pipeline.strategy, Strategy::RestForOne);
        assert_eq!(pipeline.restart, Restart::Transient);
        assert_eq!(pipeline.max_restarts, 3);
        assert_eq!(pipeline.within, Duration::from_secs(10));
        assert_eq!(pipeline.backoff.initial, Duration::from_millis(50));
        assert_eq!(pipeline.backoff.factor, 3.0);
        let root = settings.supervision.root.policy();
        assert_eq!(root.strategy, Strategy::OneForAll);
        assert_eq!(root.max_restarts, RestartPolicy::default().max_restarts);
        let ws001 = settings.supervision.station_policy("WS001");
        assert_eq!(
            (ws001.max_restarts, ws001.within),
            (20, Duration::from_secs(300))
        );
        // What the override leaves out comes from the stations policy.
        assert_eq!(ws001.backoff, Backoff::default());
        assert_eq!(
            settings.supervision.hibernate_after,
            Duration::from_secs(120),
            "the default"
        );
        let other = settings.supervision.station_policy("WS002");
        assert_eq!(
            (other.max_restarts, other.within),
            (7, Duration::from_secs(60))
        );
    }

    #[test]
    fn station_metadata_comes_from_the_config_and_bad_values_name_their_key() {
        let settings = load_toml(
            "[stations.WS001]\nname = \"Central Park\"\nlatitude = 40.78\nlongitude = -73.97\nelevation_m = 42.0\n",
        )
        .unwrap();
        let ws001 = &settings.stations["WS001"];
        assert_eq!(ws001.name.as_deref(), Some("Central Park"));
        assert_eq!(
            (ws001.latitude, ws001.elevation_m),
            (Some(40.78), Some(42.0))
        );
        let cases = [
            (
                "[stations.\"no spaces\"]\nname = \"x\"\n",
                "stations.no spaces",
            ),
            ("[stations.WS001]\nname = \"  \"\n", "stations.WS001.name"),
            (
                "[stations.WS001]\nlatitude = 91.0\nlongitude = 0.0\n",
                "stations.WS001.latitude",
            ),
            (
                "[stations.WS001]\nlatitude = 10.0\n",
                "stations.WS001.longitude",
            ),
            (
                "[stations.WS001]\nelevation_m = 12000.0\n",
                "stations.WS001.elevation_m",
            ),
            ("[stations.WS001]\nheight = 3.0\n", "stations.WS001.height"),
        ];
        for (toml, key) in cases {
            let err = load_toml(toml).unwrap_err();
            assert_eq!(err.key, key, "{toml}: {err:?}");
        }
    }

    #[test]
    fn a_bad_restart_policy_names_its_key() {
        let cases = [
            (
                "[supervision.pipeline.backoff]\ninitial = \"1s\"\nmax = \"100ms\"\n",
                "supervision.pipeline.backoff.max",
            ),
            (
                "[supervision.stations]\nstrategy = \"one_for_all\"\n",
                "supervision.stations.strategy",
            ),
            (
                "[supervision.root]\nmax_restarts = 2\nwithin = \"0s\"\n",
                "supervision.root.within",
            ),
            (
                "[supervision.pipeline]\nstrategy = \"all_at_once\"\n",
                "supervision.pipeline.strategy",
            ),
            (
                "[supervision.station_overrides.WS001]\nbackoff = { initial = \"1s\", max = \"1s\", factor = 0.5, jitter = 0.1 }\n",
                "supervision.station_overrides.WS001.backoff.factor",
            ),
            (
                "[supervision.station_overrides.\"not a station\"]\nmax_restarts = 1\n",
                "supervision.station_overrides.not a station",
            ),
            (
                "[supervision.station_overrides.WS001]\nstrategy = \"one_for_one\"\n",
                "supervision.station_overrides.WS001",
            ),
            (
                "[supervision]\nhibernate_after = \"500ms\"\n",
                "supervision.hibernate_after",
            ),
            (
                "[supervision]\nhibernate_after = \"soon\"\n",
                "supervision.hibernate_after",
            ),
        ];
        for (toml, key) in cases {
            let err = load_toml(toml).unwrap_err();
            assert!(err.key.starts_with(key), "{toml}: {err:?}");
        }
    }

    #[test]
    fn bad_health_alert_rules_name_their_key() {
        let cases = [
            (
                "[alerts.qc_failure_rate]\nabove_pct = 120.0\n",
                "alerts.qc_failure_rate.above_pct",
            ),
            (
                "[alerts.qc_failure_rate]\nabove_pct = 5.0\nhysteresis_pct = 6.0\n",
                "alerts.qc_failure_rate.hysteresis_pct",
            ),
            (
                "[alerts.qc_failure_rate]\nwindow = \"0s\"\n",
                "alerts.qc_failure_rate.window",
            ),
            (
                "[alerts.pipeline]\nerror_rate_above_pct = -1.0\n",
                "alerts.pipeline.error_rate_above_pct",
            ),
            (
                "[alerts.pipeline]\ncheck_every = \"0s\"\n",
                "alerts.pipeline.check_every",
            ),
            (
                "[alerts.pipeline]\nlag_above = \"5s\"\nlag_resolve_below = \"10s\"\n",
                "alerts.pipeline.lag_resolve_below",
            ),
            ("[alerts.pipeline]\nlag = \"5s\"\n", "alerts"),
            (
                "[[alerts.thresholds]]\nname = \"processing_lag\"\nvariable = \"temperature_c\"\nabove = 1.0\n",
                "alerts.thresholds[0].name",
            ),
        ];
        for (toml, key) in cases {
            let err = load_toml(toml).unwrap_err();
            assert!(err.key.starts_with(key), "{toml}: {err:?}");
        }
        let ok = load_toml(
            "[alerts.pipeline]\nenabled = false\nlag_above = \"30s\"\n[alerts.qc_failure_rate]\nabove_pct = 10.0\n",
        )
        .unwrap();
        assert!(!ok.alerts.pipeline.enabled);
        assert_eq!(ok.alerts.pipeline.lag_above, Duration::from_secs(30));
        assert_eq!(ok.alerts.qc_failure_rate.above_pct, 10.0);
        assert_eq!(ok.alerts.qc_failure_rate.min_readings, 20);
    }

    #[test]
    fn bad_mqtt_credentials_and_tls_name_their_key() {
        let cases = [
            ("[mqtt]\npassword = \"secret\"\n", "mqtt.username"),
            ("[mqtt]\ntls = true\n", "mqtt.tls"),
            (
                "[mqtt]\nmode = \"external\"\nca_file = \"/etc/ca.pem\"\n",
                "mqtt.tls",
            ),
            (
                "[mqtt]\nmode = \"external\"\ntls = true\nca_file = \"/nonexistent/ca.pem\"\n",
                "mqtt.ca_file",
            ),
            (
                "[mqtt]\nmode = \"external\"\ntls = true\nclient_cert_file = \"/etc/c.pem\"\n",
                "mqtt.client_key_file",
            ),
            (
                "[mqtt]\nusername = \"u\"\npassword = \"p\"\npassword_file = \"/etc/p\"\n",
                "mqtt.password_file",
            ),
        ];
        for (toml, key) in cases {
            let err = load_toml(toml).unwrap_err();
            assert_eq!(err.key, key, "{toml}: {err:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let ok = load_toml(&format!(
            "[mqtt]\nusername = \"isobar\"\npassword_file = {:?}\n",
            file.display().to_string()
        ))
        .unwrap();
        let (user, password) = ok.mqtt.credentials().unwrap().unwrap();
        assert_eq!(
            (user.as_str(), password.expose()),
            ("isobar", "from-a-file")
        );
        assert!(!format!("{:?}", ok.mqtt).contains("from-a-file"));
    }
}
