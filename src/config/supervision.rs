//! `[supervision]`: the restart policies of the tree, and per station.

use super::*;

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

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
