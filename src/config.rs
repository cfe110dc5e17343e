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

/// rustls cannot choose between the crypto providers its dependents
/// enable; without one installed, the first TLS client built without one
/// (fred's, for a `rediss://` URL) panics. Installs aws-lc-rs, once.
pub fn install_crypto_provider() {
    static CRYPTO: std::sync::Once = std::sync::Once::new();
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

pub mod acl;
mod alerts;
mod auth;
mod bounded;
mod cluster;
mod mqtt;
mod storage;
mod supervision;
pub mod users;
mod web;

pub use alerts::*;
pub use auth::{AuthKeys, AuthSettings, JwtKey};
pub use bounded::Bounded;
pub use cluster::*;
pub use mqtt::*;
pub use storage::*;
pub use supervision::*;
pub use web::*;

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
    /// Which stations the network takes readings from.
    pub admission: AdmissionSettings,
    /// Several instances on a Kafka log.
    pub cluster: ClusterSettings,
}

/// Which stations the network takes readings from. A reading of a station
/// not admitted is quarantined with the reason, not lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionSettings {
    pub policy: AdmissionPolicy,
    /// With `open`: stations supervised at most, counted since the start;
    /// a new station past it is refused.
    pub max_stations: Bounded<usize, 1, 10_000_000>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdmissionPolicy {
    /// Any station id, up to `max_stations`.
    Open,
    /// Only the stations configured in `[stations.<id>]` (reloaded on
    /// SIGHUP).
    Registered,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            policy: AdmissionPolicy::Open,
            max_stations: Bounded::new(10_000).expect("within its bounds"),
        }
    }
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

    /// Whether `candidate` is this secret, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        same_bytes(self.0.as_bytes(), candidate.as_bytes())
    }
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing of how much of a secret was guessed.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersisterSettings {
    /// The most deliveries one batch holds.
    pub batch_size: Bounded<usize, 1, 100_000>,
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
    pub writers: Bounded<usize, 1, 16>,
}

impl Default for PersisterSettings {
    fn default() -> Self {
        Self {
            batch_size: Bounded::new(500).expect("within its bounds"),
            flush_interval: Duration::ZERO,
            quarantine_max_bytes: 64 * 1024,
            writers: Bounded::new(2).expect("within its bounds"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorSettings {
    /// Simulated stations published by the daemon itself; 0 turns it off.
    pub stations: Bounded<u32, 0, 10_000>,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Seed for repeatable simulations; random when absent.
    pub seed: Option<u64>,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        Self {
            stations: Bounded::new(0).expect("within its bounds"),
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
        self.mqtt.validate()?;
        validate_stores(&self.storage, &self.cache, &self.archive)?;
        if self.storage.backend == StoreBackend::Postgres
            && self.persister.writers.get() >= self.storage.postgres_pool.get()
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
        self.web.validate()?;
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
        self.cluster.validate(self.storage.backend)?;
        if matches!(self.cluster.role, ClusterRole::Worker | ClusterRole::Api)
            && self.simulator.stations.get() > 0
        {
            return Err(ConfigError::new(
                "simulator.stations",
                "a cluster worker reads Kafka, not MQTT: run the simulator against the broker the bridge reads",
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::new("log.level", e.to_string()))?;
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
        Kind::Message(message) if bounded::is_bound_message(message) => {
            return ConfigError::new(key, message.clone());
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

    /// A worker needs its brokers, a legal topic and the shared store, and
    /// has no MQTT for the simulator; each refusal names its key.
    #[test]
    fn a_cluster_worker_is_checked_key_by_key() {
        let worker = "[cluster]\nrole = \"worker\"\nbrokers = \"k1:9092,k2:9092\"\n";
        let postgres =
            "[storage]\nbackend = \"postgres\"\npostgres_url = \"postgres://db/isobar\"\n";
        let s = load_toml(&format!("{worker}{postgres}")).unwrap();
        assert_eq!(s.cluster.role, ClusterRole::Worker);
        assert_eq!(s.cluster.topic, "isobar.readings");
        let named = load_toml(&format!(
            "{worker}instance = \"isobar-worker-2\"\n{postgres}"
        ))
        .unwrap();
        assert_eq!(named.cluster.instance_name(), "isobar-worker-2");
        assert!(!s.cluster.instance_name().is_empty(), "the host's name");
        // A bridge stores nothing: any store will do.
        let bridge = load_toml("[cluster]\nrole = \"bridge\"\nbrokers = \"k1:9092\"\n").unwrap();
        assert_eq!(bridge.cluster.role, ClusterRole::Bridge);
        // A combined instance takes MQTT, so its simulator is welcome.
        let combined = load_toml(&format!(
            "[cluster]\nrole = \"combined\"\nbrokers = \"k1:9092\"\n{postgres}[simulator]\nstations = 5\n"
        ))
        .unwrap();
        assert!(combined.cluster.role.bridges() && combined.cluster.role.works());
        for (toml, key, says) in [
            (worker.to_owned(), "cluster.role", "postgres"),
            (
                format!("[cluster]\nrole = \"worker\"\n{postgres}"),
                "cluster.brokers",
                "host:port",
            ),
            (
                format!("{worker}topic = \"a topic\"\n{postgres}"),
                "cluster.topic",
                "Kafka topic name",
            ),
            (
                format!("{worker}partitions = 0\n{postgres}"),
                "cluster.partitions",
                "1 to 10000",
            ),
            (
                format!("{worker}instance = \"w\\u0007\"\n{postgres}"),
                "cluster.instance",
                "control characters",
            ),
            (
                format!("{worker}{postgres}[simulator]\nstations = 5\n"),
                "simulator.stations",
                "reads Kafka",
            ),
            (
                "[cluster]\nrole = \"bridge\"\n".to_owned(),
                "cluster.brokers",
                "cluster.role = \"bridge\"",
            ),
            (
                format!("{worker}rejoin_grace = \"11m\"\n{postgres}"),
                "cluster.rejoin_grace",
                "at most 10m",
            ),
            (
                "[cluster]\nrole = \"combined\"\nbrokers = \"k1:9092\"\n".to_owned(),
                "cluster.role",
                "a combined instance needs storage.backend",
            ),
            (
                "[cluster]\nrole = \"api\"\n".to_owned(),
                "cluster.role",
                "an API instance needs storage.backend",
            ),
            (
                "[cluster]\nrole = \"all\"\n".to_owned(),
                "cluster.role",
                "unknown variant",
            ),
        ] {
            let err = load_toml(&toml).unwrap_err();
            assert_eq!(err.key, key, "{toml}");
            assert!(err.reason.contains(says), "{toml}: {}", err.reason);
        }
    }

    /// TLS and a SASL login to the brokers become librdkafka's
    /// properties; a login without TLS, or half a login, is refused with
    /// its key.
    #[test]
    fn the_kafka_connection_is_secured_as_configured() {
        let base = "[cluster]\nrole = \"bridge\"\nbrokers = \"b-1.msk:9096\"\n";
        let props = |extra: &str| {
            load_toml(&format!("{base}{extra}")).map(|s| s.cluster.connection_properties().unwrap())
        };
        assert_eq!(
            props("").unwrap(),
            [("security.protocol", "plaintext".to_owned())]
        );
        assert_eq!(
            props("tls = true\n").unwrap(),
            [("security.protocol", "ssl".to_owned())]
        );
        let dir = tempfile::tempdir().unwrap();
        let (ca, password) = (dir.path().join("ca.pem"), dir.path().join("password"));
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        std::fs::write(&password, "s3cret\n").unwrap();
        let scram = props(&format!(
            "tls = true\nca_file = {ca:?}\nsasl_mechanism = \"scram-sha-512\"\n\
             username = \"isobar\"\npassword_file = {password:?}\n"
        ))
        .unwrap();
        assert_eq!(
            scram,
            [
                ("security.protocol", "sasl_ssl".to_owned()),
                ("ssl.ca.location", ca.display().to_string()),
                ("sasl.mechanism", "SCRAM-SHA-512".to_owned()),
                ("sasl.username", "isobar".to_owned()),
                ("sasl.password", "s3cret".to_owned()),
            ]
        );
        // The password is not shown when the settings are.
        let shown = format!(
            "{:?}",
            load_toml(&format!("{base}tls = true\nsasl_mechanism = \"plain\"\nusername = \"u\"\npassword = \"hunter2\"\n"))
                .unwrap()
                .cluster
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        for (extra, key, says) in [
            (
                "sasl_mechanism = \"scram-sha-256\"\nusername = \"u\"\npassword = \"p\"\n",
                "cluster.sasl_mechanism",
                "needs cluster.tls = true",
            ),
            (
                "tls = true\nsasl_mechanism = \"scram-sha-256\"\nusername = \"u\"\n",
                "cluster.username",
                "a username and a password",
            ),
            (
                "tls = true\nusername = \"u\"\npassword = \"p\"\n",
                "cluster.sasl_mechanism",
                "needs a mechanism",
            ),
            (
                "ca_file = \"/nonexistent/ca.pem\"\n",
                "cluster.ca_file",
                "cluster.tls = true",
            ),
            (
                "tls = true\nca_file = \"/nonexistent/ca.pem\"\n",
                "cluster.ca_file",
                "cannot read",
            ),
            (
                "sasl_mechanism = \"gssapi\"\n",
                "cluster.sasl_mechanism",
                "unknown variant",
            ),
        ] {
            let err = load_toml(&format!("{base}{extra}")).unwrap_err();
            assert_eq!(err.key, key, "{extra}");
            assert!(err.reason.contains(says), "{extra}: {}", err.reason);
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_toml("[mqtt]\nmod = \"external\"\n").unwrap_err();
        assert_eq!(err.key, "mqtt.mod");
        assert!(err.reason.contains("unknown key"), "{}", err.reason);
    }

    /// A bounded number out of its bounds is refused while the settings
    /// are read, with the same message wherever it came from.
    #[test]
    fn numbers_out_of_their_bounds_say_what_they_must_be() {
        for (toml, message) in [
            (
                "[persister]\nbatch_size = 0\n",
                "persister.batch_size: must be between 1 and 100000",
            ),
            (
                "[persister]\nwriters = 17\n",
                "persister.writers: must be between 1 and 16",
            ),
            (
                "[storage]\npostgres_pool = 1001\n",
                "storage.postgres_pool: must be between 1 and 1000",
            ),
            (
                "[web]\nclient_queue = 0\n",
                "web.client_queue: must be at least 1",
            ),
            (
                "[simulator]\nstations = 10001\n",
                "simulator.stations: must be at most 10000",
            ),
        ] {
            let err = load_toml(toml).unwrap_err();
            assert_eq!(err.to_string(), format!("invalid configuration: {message}"));
        }
        let flag = Figment::new().merge(Serialized::default("simulator.stations", 20_000));
        assert_eq!(
            Settings::load(None, flag).unwrap_err().to_string(),
            "invalid configuration: simulator.stations: must be at most 10000"
        );
        let ok = load_toml("[persister]\nbatch_size = 100000\nwriters = 16\n").unwrap();
        assert_eq!(ok.persister.batch_size.get(), 100_000);
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
