//! `[cluster]`: isobar as one of several instances on a Kafka log.

use serde::{Deserialize, Serialize};

use super::{ConfigError, StoreBackend};

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
        }
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
        if self.role == ClusterRole::Worker && store != StoreBackend::Postgres {
            return Err(ConfigError::new(
                "cluster.role",
                "a worker needs storage.backend = \"postgres\": the instances share one store",
            ));
        }
        Ok(())
    }
}
