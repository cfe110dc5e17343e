//! `[cluster]`: isobar as one of several instances on a Kafka log.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, StoreBackend};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    pub role: ClusterRole,
    /// Kafka's bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The readings topic, keyed by station id.
    pub topic: String,
    /// The consumer group whose committed offsets the workers share.
    pub group: String,
    /// Partitions of the readings topic when isobar creates it (an
    /// existing topic is left as it is).
    pub partitions: u32,
    /// Replicas of each partition when isobar creates the topic.
    pub replication: u16,
    /// This instance's name among the members, unique in the cluster and
    /// stable across restarts (a StatefulSet pod's name); empty for the
    /// host's name.
    pub instance: String,
    /// How long the partitions of a member that left wait for it to come
    /// back under the same name (a restart, a rolling update) before the
    /// others take them: a restart then moves nothing, at the cost of its
    /// partitions waiting as long when it has died. 0: taken at once.
    #[serde(with = "humantime_serde")]
    pub rejoin_grace: Duration,
    /// TLS to the brokers (MSK's TLS listeners), checked against
    /// `ca_file` (PEM) or the system's roots without one.
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    /// A SASL login to the brokers (MSK's SCRAM); only over TLS.
    pub sasl_mechanism: Option<SaslMechanism>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The password, from a file (a mounted secret); trailing space cut.
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "plain")]
    Plain,
}

impl SaslMechanism {
    /// As librdkafka's `sasl.mechanism` names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::Plain => "PLAIN",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterRole {
    /// One instance, its readings from MQTT (the default).
    Off,
    /// Reads the readings topic instead of MQTT, runs the station actors
    /// and stores.
    Worker,
    /// Takes readings over MQTT (a shared subscription at an external
    /// broker, or its embedded server) and HTTP uploads, and hands each to
    /// the readings topic keyed by station, acknowledging it once Kafka
    /// has it. Stores nothing.
    Bridge,
    /// Serves the API, the live websocket (readings from the workers
    /// through the Redis cache's fan-out) and the dashboard from the
    /// shared store; takes no readings and judges no alerts.
    Api,
    /// A bridge and a worker in one process, for a small deployment: it
    /// takes readings over MQTT and HTTP, hands them to the readings
    /// topic, and reads back the partitions it owns.
    Combined,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            role: ClusterRole::Off,
            brokers: String::new(),
            topic: "isobar.readings".into(),
            group: "isobar".into(),
            partitions: 12,
            replication: 1,
            instance: String::new(),
            rejoin_grace: Duration::ZERO,
            tls: false,
            ca_file: None,
            sasl_mechanism: None,
            username: None,
            password: None,
            password_file: None,
        }
    }
}

impl ClusterRole {
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Worker => "worker",
            Self::Bridge => "bridge",
            Self::Api => "api",
            Self::Combined => "combined",
        }
    }

    /// Whether this role hands what it takes in to the readings topic.
    pub fn bridges(self) -> bool {
        matches!(self, Self::Bridge | Self::Combined)
    }

    /// Whether this role reads the readings topic and stores.
    pub fn works(self) -> bool {
        matches!(self, Self::Worker | Self::Combined)
    }
}

impl ClusterSettings {
    /// `instance`, or the host's name (`HOSTNAME`, then the kernel's).
    pub fn instance_name(&self) -> String {
        if !self.instance.is_empty() {
            return self.instance.clone();
        }
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "isobar".into())
    }

    /// librdkafka's connection properties for these settings, beyond
    /// `bootstrap.servers`: the security protocol, the CA, the login.
    /// Reads `password_file`.
    pub fn connection_properties(&self) -> Result<Vec<(&'static str, String)>, ConfigError> {
        let mut properties = Vec::new();
        let protocol = match (self.tls, self.sasl_mechanism) {
            (false, None) => "plaintext",
            (true, None) => "ssl",
            (true, Some(_)) => "sasl_ssl",
            (false, Some(_)) => {
                return Err(ConfigError::new(
                    "cluster.sasl_mechanism",
                    "needs cluster.tls = true: the password would cross the network in the clear",
                ));
            }
        };
        properties.push(("security.protocol", protocol.to_owned()));
        if let Some(ca) = &self.ca_file {
            if !self.tls {
                return Err(ConfigError::new(
                    "cluster.ca_file",
                    "is for TLS: set cluster.tls = true",
                ));
            }
            // librdkafka reads it when it connects; a path it cannot read
            // is named here instead.
            super::mqtt::read_file("cluster.ca_file", ca)?;
            properties.push(("ssl.ca.location", ca.display().to_string()));
        }
        let password = match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "cluster.password_file",
                    "give password or password_file, not both",
                ));
            }
            (Some(p), None) => Some(p.expose().to_owned()),
            (None, Some(path)) => {
                let bytes = super::mqtt::read_file("cluster.password_file", path)?;
                Some(String::from_utf8_lossy(&bytes).trim_end().to_owned())
            }
            (None, None) => None,
        };
        match (self.sasl_mechanism, &self.username, password) {
            (Some(mechanism), Some(user), Some(password)) => {
                properties.push(("sasl.mechanism", mechanism.name().to_owned()));
                properties.push(("sasl.username", user.clone()));
                properties.push(("sasl.password", password));
            }
            (Some(_), _, _) => {
                return Err(ConfigError::new(
                    "cluster.username",
                    "cluster.sasl_mechanism needs a username and a password (or password_file)",
                ));
            }
            (None, None, None) => {}
            (None, _, _) => {
                return Err(ConfigError::new(
                    "cluster.sasl_mechanism",
                    "a username or password needs a mechanism (scram-sha-512, scram-sha-256 or plain)",
                ));
            }
        }
        Ok(properties)
    }

    fn validate_instance(&self) -> Result<(), ConfigError> {
        if self.instance.len() > 200 || self.instance.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "cluster.instance",
                "must be at most 200 characters, none of them control characters",
            ));
        }
        Ok(())
    }

    pub fn validate(&self, store: StoreBackend) -> Result<(), ConfigError> {
        if self.role == ClusterRole::Off {
            return Ok(());
        }
        if self.role == ClusterRole::Api {
            return self.validate_instance().and_then(|()| {
                if store == StoreBackend::Postgres {
                    Ok(())
                } else {
                    Err(ConfigError::new(
                        "cluster.role",
                        "an API instance needs storage.backend = \"postgres\": it serves the workers' store",
                    ))
                }
            });
        }
        if self
            .brokers
            .split(',')
            .any(|b| super::parse_host_port(b.trim()).is_err())
        {
            return Err(ConfigError::new(
                "cluster.brokers",
                format!(
                    "{:?} is not a list of host:port (needed with cluster.role = \"{}\")",
                    self.brokers,
                    self.role.name()
                ),
            ));
        }
        // Kafka's own rule for topic names.
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.topic.is_empty()
            || self.topic.len() > 249
            || !self.topic.chars().all(legal)
            || self.topic == "."
            || self.topic == ".."
        {
            return Err(ConfigError::new(
                "cluster.topic",
                format!(
                    "{:?} is not a Kafka topic name (1 to 249 of a-z, A-Z, 0-9, '.', '_', '-')",
                    self.topic
                ),
            ));
        }
        if self.group.trim().is_empty() {
            return Err(ConfigError::new("cluster.group", "must not be empty"));
        }
        self.validate_instance()?;
        self.connection_properties()?;
        if self.rejoin_grace > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "cluster.rejoin_grace",
                "must be at most 10m: a dead member's partitions wait this long",
            ));
        }
        if !(1..=10_000).contains(&self.partitions) {
            return Err(ConfigError::new(
                "cluster.partitions",
                "must be from 1 to 10000",
            ));
        }
        if !(1..=10).contains(&self.replication) {
            return Err(ConfigError::new(
                "cluster.replication",
                "must be from 1 to 10",
            ));
        }
        if self.role.works() && store != StoreBackend::Postgres {
            return Err(ConfigError::new(
                "cluster.role",
                format!(
                    "a {} needs storage.backend = \"postgres\": the instances share one store",
                    if self.role == ClusterRole::Worker {
                        "worker"
                    } else {
                        "combined instance"
                    }
                ),
            ));
        }
        Ok(())
    }
}
