//! `[alerts]`: the rules, checked against the readings they will see.

use super::*;

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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
