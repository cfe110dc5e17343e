//! Alert rules, and the engine that keeps their state and says when an
//! alert fires and when it resolves. Rules:
//!
//! - thresholds: a variable above (or below) a limit for a duration;
//! - `station_silent`: a station not heard from for longer than a limit;
//! - `qc_failure_rate`: a station's share of readings that failed quality
//!   control, over a window;
//! - pipeline health, not tied to a station: `store_unreachable`,
//!   `error_rate` (the share of messages quarantined, over a window) and
//!   `processing_lag` (how long the oldest message not yet stored has
//!   waited).
//!
//! An alert fires once and stays quiet while its condition lasts; it
//! resolves only once the condition is back past its hysteresis. Values that
//! failed quality control never fire a threshold. Pure: time comes in with
//! the readings and the checks.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::rollup;
use super::{QcFlag, Reading, StationId};

/// A threshold: the variable above `above` (or below `below`) for at least
/// `for`; resolved once it is back by `hysteresis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    pub name: String,
    /// A reading field: `temperature_c`, `wind_gust_ms`, …
    pub variable: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    #[serde(rename = "for", default, with = "humantime_serde")]
    pub for_: Duration,
    #[serde(default)]
    pub hysteresis: f64,
}

impl ThresholdRule {
    fn breached(&self, v: f64) -> bool {
        self.above.is_some_and(|a| v > a) || self.below.is_some_and(|b| v < b)
    }

    fn cleared(&self, v: f64) -> bool {
        self.above.is_none_or(|a| v <= a - self.hysteresis)
            && self.below.is_none_or(|b| v >= b + self.hysteresis)
    }

    fn describe(&self, v: f64) -> String {
        match (self.above, self.below) {
            (Some(a), _) if v > a => format!("{} {v} above {a}", self.variable),
            (_, Some(b)) => format!("{} {v} below {b}", self.variable),
            _ => format!("{} {v}", self.variable),
        }
    }
}

/// A station's share of readings that failed quality control, over the
/// last `window` of its observation times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QcFailureRule {
    pub enabled: bool,
    /// Fires above this share, in percent ...
    pub above_pct: f64,
    /// ... and resolves at or below `above_pct - hysteresis_pct`.
    pub hysteresis_pct: f64,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Fewer readings in the window say nothing either way.
    pub min_readings: u32,
}

impl Default for QcFailureRule {
    fn default() -> Self {
        Self {
            enabled: true,
            above_pct: 5.0,
            hysteresis_pct: 1.0,
            window: Duration::from_secs(3600),
            min_readings: 20,
        }
    }
}

/// The health of the pipeline itself, checked every `check_every`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineRules {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub check_every: Duration,
    /// The store has not answered for this long.
    #[serde(with = "humantime_serde")]
    pub store_unreachable_for: Duration,
    /// The share of messages processed within `error_rate_window` that were
    /// quarantined, in percent: fires above `error_rate_above_pct`, resolves
    /// at or below it minus `error_rate_hysteresis_pct`, once at least
    /// `error_rate_min_messages` were processed in the window.
    pub error_rate_above_pct: f64,
    pub error_rate_hysteresis_pct: f64,
    #[serde(with = "humantime_serde")]
    pub error_rate_window: Duration,
    pub error_rate_min_messages: u64,
    /// The oldest message received and not yet stored has waited longer
    /// than `lag_above`; resolved once it is at or below
    /// `lag_resolve_below`.
    #[serde(with = "humantime_serde")]
    pub lag_above: Duration,
    #[serde(with = "humantime_serde")]
    pub lag_resolve_below: Duration,
    /// The external broker's count of messages it dropped rose (it had no
    /// room to queue them, so they are lost to isobar); resolved once it
    /// has not risen for `broker_quiet_for`.
    #[serde(with = "humantime_serde")]
    pub broker_quiet_for: Duration,
}

impl Default for PipelineRules {
    fn default() -> Self {
        Self {
            enabled: true,
            check_every: Duration::from_secs(5),
            store_unreachable_for: Duration::from_secs(15),
            error_rate_above_pct: 5.0,
            error_rate_hysteresis_pct: 1.0,
            error_rate_window: Duration::from_secs(300),
            error_rate_min_messages: 100,
            lag_above: Duration::from_secs(5),
            lag_resolve_below: Duration::from_secs(2),
            broker_quiet_for: Duration::from_secs(300),
        }
    }
}

/// Every rule the engine applies.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    pub thresholds: Vec<ThresholdRule>,
    pub silent_after: Duration,
    pub qc_failure_rate: QcFailureRule,
    pub pipeline: PipelineRules,
}

/// The pipeline as one check sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PipelineSample {
    /// The store answered this check.
    pub store_answered: bool,
    /// Messages processed and, of those, quarantined (whole or in part),
    /// since the process started.
    pub processed: u64,
    pub rejected: u64,
    /// How long the oldest message not yet stored has waited.
    pub lag: Duration,
    /// The external broker's count of messages it dropped, since it
    /// started, if it reports one.
    pub broker_dropped: Option<u64>,
}

/// How many messages a broker dropped since its count was `before`, if its
/// count (since it started) is now `total` and rose: a count lower than
/// the last one is a restarted broker's, which starts over. The first
/// count heard (`before` is `None`) may be of drops long ago: no rise.
pub fn broker_rise(before: Option<u64>, total: u64) -> Option<u64> {
    match before {
        Some(before) if total > before => Some(total - before),
        Some(before) if total < before && total > 0 => Some(total),
        _ => None,
    }
}

/// The rule names the engine owns; threshold rules may not take them.
pub const SILENT: &str = "station_silent";
pub const QC_FAILURE_RATE: &str = "qc_failure_rate";
pub const STORE_UNREACHABLE: &str = "store_unreachable";
pub const ERROR_RATE: &str = "error_rate";
pub const PROCESSING_LAG: &str = "processing_lag";
pub const BROKER_DROPPING: &str = "broker_dropping";
pub const RESERVED: [&str; 6] = [
    SILENT,
    QC_FAILURE_RATE,
    STORE_UNREACHABLE,
    ERROR_RATE,
    PROCESSING_LAG,
    BROKER_DROPPING,
];

/// An alert starting or ending. `station_id` is `None` for the pipeline's
/// own alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Fire {
        rule: String,
        station_id: Option<StationId>,
        value: Option<f64>,
        at: DateTime<Utc>,
        message: String,
    },
    Resolve {
        rule: String,
        station_id: Option<StationId>,
        /// When it fired.
        fired_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Breached since, not yet for long enough.
    Pending(DateTime<Utc>),
    /// Firing since.
    Firing(DateTime<Utc>),
}

type Key = (String, Option<StationId>);

/// A station's readings by minute-wide slices of its window: (slice start,
/// readings, failed). Bounded by the window whatever the reading rate.
#[derive(Debug, Default)]
struct QcWindow {
    slices: VecDeque<(DateTime<Utc>, u32, u32)>,
    total: u32,
    failed: u32,
}

/// Slices per QC window.
const QC_SLICES: i32 = 60;

#[derive(Debug, Default)]
pub struct AlertEngine {
    /// Each threshold rule with the position of its variable in
    /// `rollup::ROLLED_UP` (a variable that is not rolled up is refused by
    /// the config).
    rules: Vec<(usize, ThresholdRule)>,
    silent_after: TimeDelta,
    qc_rule: Option<QcFailureRule>,
    pipeline: Option<PipelineRules>,
    state: HashMap<Key, State>,
    qc: HashMap<StationId, QcWindow>,
    store_down_since: Option<DateTime<Utc>>,
    /// (time, processed, rejected) at each check within the error window.
    samples: VecDeque<(DateTime<Utc>, u64, u64)>,
    /// The broker's drop count at the last check, and when it last rose.
    broker_dropped: Option<u64>,
    broker_rose_at: Option<DateTime<Utc>>,
}

/// An on/off rule's verdict on a value: on above `above`, off at or below
/// `off_at`, and between the two, as it was (`None`).
fn band<T: PartialOrd>(value: T, above: T, off_at: T) -> Option<bool> {
    if value > above {
        Some(true)
    } else if value <= off_at {
        Some(false)
    } else {
        None
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl AlertEngine {
    pub fn new(rules: AlertRules) -> Self {
        Self {
            rules: rules
                .thresholds
                .into_iter()
                .filter_map(|rule| {
                    let at = rollup::ROLLED_UP
                        .iter()
                        .position(|name| *name == rule.variable)?;
                    Some((at, rule))
                })
                .collect(),
            silent_after: delta(rules.silent_after),
            qc_rule: rules
                .qc_failure_rate
                .enabled
                .then_some(rules.qc_failure_rate),
            pipeline: rules.pipeline.enabled.then_some(rules.pipeline),
            ..Self::default()
        }
    }

    /// An alert already firing since `since` (kept in the store across
    /// restarts): it is not fired again.
    pub fn firing(&mut self, rule: &str, station: Option<StationId>, since: DateTime<Utc>) {
        self.state
            .insert((rule.to_owned(), station), State::Firing(since));
    }

    /// The alerts firing as the store has them now, another instance's
    /// included (a cluster's members share the alerts): those it thought
    /// firing and the store does not were resolved elsewhere, and are
    /// forgotten; those it did not know of are not fired again.
    pub fn sync_firing(&mut self, firing: Vec<(String, Option<StationId>, DateTime<Utc>)>) {
        let keys: std::collections::HashSet<Key> = firing
            .iter()
            .map(|(rule, station, _)| (rule.clone(), station.clone()))
            .collect();
        self.state
            .retain(|key, state| !matches!(state, State::Firing(_)) || keys.contains(key));
        for (rule, station, since) in firing {
            let state = self
                .state
                .entry((rule, station))
                .or_insert(State::Firing(since));
            if !matches!(state, State::Firing(_)) {
                *state = State::Firing(since);
            }
        }
    }

    /// Moves an on/off rule to `on`, saying what changed.
    #[allow(clippy::too_many_arguments)]
    fn switch(
        &mut self,
        changes: &mut Vec<Change>,
        rule: &str,
        station: Option<&StationId>,
        on: Option<bool>,
        at: DateTime<Utc>,
        value: Option<f64>,
        message: impl FnOnce() -> String,
    ) {
        let key = (rule.to_owned(), station.cloned());
        match (on, self.state.get(&key).copied()) {
            (Some(true), None | Some(State::Pending(_))) => {
                changes.push(Change::Fire {
                    rule: rule.to_owned(),
                    station_id: station.cloned(),
                    value,
                    at,
                    message: message(),
                });
                self.state.insert(key, State::Firing(at));
            }
            (Some(false), Some(State::Firing(fired_at))) => {
                changes.push(Change::Resolve {
                    rule: rule.to_owned(),
                    station_id: station.cloned(),
                    fired_at,
                    at,
                });
                self.state.remove(&key);
            }
            _ => {}
        }
    }

    /// A new reading, checked against every threshold and its station's
    /// QC failure rate.
    pub fn observe(&mut self, r: &Reading) -> Vec<Change> {
        let mut changes = Vec::new();
        let values = rollup::passed(r);
        for (at, rule) in &self.rules {
            let Some(v) = values[*at] else {
                continue;
            };
            let key = (rule.name.clone(), Some(r.station_id.clone()));
            let fire = |changes: &mut Vec<Change>| {
                changes.push(Change::Fire {
                    rule: rule.name.clone(),
                    station_id: Some(r.station_id.clone()),
                    value: Some(v),
                    at: r.observed_at,
                    message: rule.describe(v),
                })
            };
            let for_ = delta(rule.for_);
            match self.state.get(&key).copied() {
                None if rule.breached(v) => {
                    if for_.is_zero() {
                        fire(&mut changes);
                        self.state.insert(key, State::Firing(r.observed_at));
                    } else {
                        self.state.insert(key, State::Pending(r.observed_at));
                    }
                }
                None => {}
                Some(State::Pending(since))
                    if rule.breached(v) && r.observed_at - since >= for_ =>
                {
                    fire(&mut changes);
                    self.state.insert(key, State::Firing(r.observed_at));
                }
                Some(State::Pending(_)) if rule.breached(v) => {}
                Some(State::Pending(_)) => {
                    self.state.remove(&key);
                }
                Some(State::Firing(fired_at)) if rule.cleared(v) => {
                    changes.push(Change::Resolve {
                        rule: rule.name.clone(),
                        station_id: Some(r.station_id.clone()),
                        fired_at,
                        at: r.observed_at,
                    });
                    self.state.remove(&key);
                }
                Some(State::Firing(_)) => {}
            }
        }
        self.observe_qc(r, &mut changes);
        changes
    }

    fn observe_qc(&mut self, r: &Reading, changes: &mut Vec<Change>) {
        let Some(rule) = self.qc_rule.clone() else {
            return;
        };
        let window = delta(rule.window);
        let slice = (window / QC_SLICES).max(TimeDelta::seconds(1));
        let w = self.qc.entry(r.station_id.clone()).or_default();
        let newest = w
            .slices
            .back()
            .map_or(r.observed_at, |s| s.0.max(r.observed_at));
        if r.observed_at <= newest - window {
            // Older than the window: it says nothing of the station now.
            return;
        }
        let failed = u32::from(r.qc.status == QcFlag::Fail);
        match w
            .slices
            .iter_mut()
            .rev()
            .find(|s| s.0 <= r.observed_at && r.observed_at < s.0 + slice)
        {
            Some(s) => {
                s.1 += 1;
                s.2 += failed;
            }
            None => {
                // Slices stay in time order; a late reading between two
                // slices joins the later one.
                let at = w.slices.partition_point(|s| s.0 <= r.observed_at);
                if at == w.slices.len() {
                    w.slices.push_back((r.observed_at, 1, failed));
                } else {
                    w.slices[at].1 += 1;
                    w.slices[at].2 += failed;
                }
            }
        }
        w.total += 1;
        w.failed += failed;
        let newest = w.slices.back().map_or(r.observed_at, |s| s.0);
        while w
            .slices
            .front()
            .is_some_and(|s| s.0 + slice <= newest - window)
        {
            let (_, n, f) = w.slices.pop_front().expect("checked");
            w.total -= n;
            w.failed -= f;
        }
        if w.total < rule.min_readings {
            return;
        }
        let pct = 100.0 * f64::from(w.failed) / f64::from(w.total);
        let (failed, total) = (w.failed, w.total);
        let on = band(pct, rule.above_pct, rule.above_pct - rule.hysteresis_pct);
        self.switch(
            changes,
            QC_FAILURE_RATE,
            Some(&r.station_id),
            on,
            r.observed_at,
            Some(pct),
            || {
                format!(
                    "{failed} of the last {total} readings failed quality control ({pct:.1}%, above {}%)",
                    rule.above_pct
                )
            },
        );
    }

    /// Stations not heard from for longer than the limit fire; those heard
    /// from again resolve.
    pub fn check_silence(
        &mut self,
        last_seen: &[(StationId, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for (station, seen) in last_seen {
            let silent = now - *seen > self.silent_after;
            self.switch(
                &mut changes,
                SILENT,
                Some(station),
                Some(silent),
                now,
                None,
                || format!("no reading since {}", seen.to_rfc3339()),
            );
        }
        changes
    }

    /// The pipeline's counts when checking starts: rates are measured from
    /// here.
    pub fn baseline(&mut self, processed: u64, rejected: u64, now: DateTime<Utc>) {
        self.samples.clear();
        self.samples.push_back((now, processed, rejected));
    }

    /// The pipeline's health rules, on one check's sample.
    pub fn check_pipeline(&mut self, sample: PipelineSample, now: DateTime<Utc>) -> Vec<Change> {
        let mut changes = Vec::new();
        let Some(rules) = self.pipeline.clone() else {
            return changes;
        };

        // The store.
        let down = if sample.store_answered {
            self.store_down_since = None;
            Some(false)
        } else {
            let since = *self.store_down_since.get_or_insert(now);
            (now - since >= delta(rules.store_unreachable_for)).then_some(true)
        };
        let since = self.store_down_since;
        self.switch(
            &mut changes,
            STORE_UNREACHABLE,
            None,
            down,
            since.unwrap_or(now),
            None,
            || {
                format!(
                    "the store has not answered since {}",
                    since.unwrap_or(now).to_rfc3339()
                )
            },
        );

        // The error rate: the oldest sample kept is the last one at or
        // before the window's start, so the rate spans the whole window.
        self.samples
            .push_back((now, sample.processed, sample.rejected));
        let start = now - delta(rules.error_rate_window);
        while self.samples.len() > 1 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
        let (_, p0, r0) = self.samples[0];
        let processed = sample.processed.saturating_sub(p0);
        let rejected = sample.rejected.saturating_sub(r0);
        if processed >= rules.error_rate_min_messages && processed > 0 {
            let pct = 100.0 * rejected as f64 / processed as f64;
            let on = band(
                pct,
                rules.error_rate_above_pct,
                rules.error_rate_above_pct - rules.error_rate_hysteresis_pct,
            );
            let window = humantime::format_duration(rules.error_rate_window);
            self.switch(&mut changes, ERROR_RATE, None, on, now, Some(pct), || {
                format!(
                    "{rejected} of {processed} messages in the last {window} were quarantined ({pct:.1}%, above {}%)",
                    rules.error_rate_above_pct
                )
            });
        }

        // The lag.
        let on = band(sample.lag, rules.lag_above, rules.lag_resolve_below);
        let lag = sample.lag.as_secs_f64();
        self.switch(
            &mut changes,
            PROCESSING_LAG,
            None,
            on,
            now,
            Some(lag),
            || {
                format!(
                    "the oldest message not yet stored has waited {lag:.1} s (more than {})",
                    humantime::format_duration(rules.lag_above)
                )
            },
        );

        // The broker's drops.
        if let Some(total) = sample.broker_dropped {
            let rose = broker_rise(self.broker_dropped, total);
            self.broker_dropped = Some(total);
            if rose.is_some() {
                self.broker_rose_at = Some(now);
            }
            let on = match (rose, self.broker_rose_at) {
                (Some(_), _) => Some(true),
                (None, Some(at)) if now - at >= delta(rules.broker_quiet_for) => Some(false),
                (None, None) => Some(false),
                (None, Some(_)) => None,
            };
            self.switch(
                &mut changes,
                BROKER_DROPPING,
                None,
                on,
                now,
                rose.map(|n| n as f64),
                || {
                    format!(
                        "the broker dropped {} messages it had no room to queue: they never reached isobar",
                        rose.unwrap_or(0)
                    )
                },
            );
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Observation, QcFlag, QcReport, Variable};

    fn reading(at: &str, t: f64) -> Reading {
        let at: DateTime<Utc> = at.parse().unwrap();
        let mut obs = Observation::new(StationId::parse("WS001").unwrap(), at);
        obs.temperature_c = Some(t);
        Reading::new(obs, at, QcReport::default())
    }

    fn engine(thresholds: Vec<ThresholdRule>) -> AlertEngine {
        AlertEngine::new(AlertRules {
            thresholds,
            silent_after: Duration::from_secs(7200),
            qc_failure_rate: QcFailureRule::default(),
            pipeline: PipelineRules::default(),
        })
    }

    fn heat(for_: u64) -> ThresholdRule {
        ThresholdRule {
            name: "heat".into(),
            variable: "temperature_c".into(),
            above: Some(35.0),
            below: None,
            for_: Duration::from_secs(for_),
            hysteresis: 1.0,
        }
    }

    fn fired(changes: &[Change]) -> usize {
        changes
            .iter()
            .filter(|c| matches!(c, Change::Fire { .. }))
            .count()
    }

    fn resolved(changes: &[Change]) -> usize {
        changes
            .iter()
            .filter(|c| matches!(c, Change::Resolve { .. }))
            .count()
    }

    #[test]
    fn a_threshold_fires_after_its_duration_once_and_resolves_with_hysteresis() {
        let mut e = engine(vec![heat(600)]);
        assert!(e.observe(&reading("2025-07-01T12:00:00Z", 36.0)).is_empty());
        assert!(e.observe(&reading("2025-07-01T12:05:00Z", 36.5)).is_empty());
        let c = e.observe(&reading("2025-07-01T12:10:00Z", 37.0));
        assert_eq!(fired(&c), 1);
        assert!(matches!(&c[0], Change::Fire { message, .. } if message.contains("above 35")));
        // Not repeated while it stays firing, nor resolved within the
        // hysteresis band.
        assert!(e.observe(&reading("2025-07-01T12:15:00Z", 38.0)).is_empty());
        assert!(e.observe(&reading("2025-07-01T12:20:00Z", 34.5)).is_empty());
        let c = e.observe(&reading("2025-07-01T12:25:00Z", 33.9));
        assert_eq!(resolved(&c), 1);
        // A fresh breach starts over.
        assert!(e.observe(&reading("2025-07-01T12:30:00Z", 36.0)).is_empty());
    }

    #[test]
    fn a_breach_shorter_than_the_duration_fires_nothing() {
        let mut e = engine(vec![heat(600)]);
        assert!(e.observe(&reading("2025-07-01T12:00:00Z", 36.0)).is_empty());
        assert!(e.observe(&reading("2025-07-01T12:05:00Z", 30.0)).is_empty());
        assert!(e.observe(&reading("2025-07-01T12:11:00Z", 36.0)).is_empty());
    }

    #[test]
    fn a_value_that_failed_quality_control_fires_nothing() {
        let mut e = engine(vec![heat(0)]);
        let mut r = reading("2025-07-01T12:00:00Z", 60.0);
        std::sync::Arc::make_mut(&mut r.qc)
            .variables
            .entry(Variable::Temperature)
            .or_default()
            .flag = QcFlag::Fail;
        assert!(e.observe(&r).is_empty());
        assert_eq!(fired(&e.observe(&reading("2025-07-01T12:01:00Z", 36.0))), 1);
    }

    #[test]
    fn an_alert_firing_before_a_restart_is_not_fired_again() {
        let mut e = engine(vec![heat(0)]);
        e.firing(
            "heat",
            Some(StationId::parse("WS001").unwrap()),
            "2025-07-01T11:00:00Z".parse().unwrap(),
        );
        assert!(e.observe(&reading("2025-07-01T12:00:00Z", 36.0)).is_empty());
        assert_eq!(
            resolved(&e.observe(&reading("2025-07-01T12:01:00Z", 30.0))),
            1
        );
    }

    #[test]
    fn a_silent_station_fires_once_and_resolves_when_heard_from() {
        let mut e = engine(vec![]);
        let ws = StationId::parse("WS001").unwrap();
        let seen: DateTime<Utc> = "2025-07-01T10:00:00Z".parse().unwrap();
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        assert!(
            e.check_silence(&[(ws.clone(), seen)], at("2025-07-01T11:59:00Z"))
                .is_empty()
        );
        let c = e.check_silence(&[(ws.clone(), seen)], at("2025-07-01T12:01:00Z"));
        assert_eq!(fired(&c), 1);
        assert!(
            e.check_silence(&[(ws.clone(), seen)], at("2025-07-01T13:00:00Z"))
                .is_empty()
        );
        let back = at("2025-07-01T13:00:00Z");
        assert_eq!(resolved(&e.check_silence(&[(ws, back)], back)), 1);
    }

    fn at(t: &str) -> DateTime<Utc> {
        t.parse().unwrap()
    }

    /// What another instance fired is not fired again; what it resolved
    /// is forgotten, so it fires again when it should.
    #[test]
    fn the_firing_set_follows_the_store() {
        let mut e = engine(vec![]);
        let ws = StationId::parse("WS001").unwrap();
        let seen = at("2025-07-01T10:00:00Z");
        let later = at("2025-07-01T13:00:00Z");
        e.sync_firing(vec![(
            SILENT.into(),
            Some(ws.clone()),
            at("2025-07-01T12:01:00Z"),
        )]);
        assert!(
            e.check_silence(&[(ws.clone(), seen)], later).is_empty(),
            "fired elsewhere: not again"
        );
        e.sync_firing(vec![]);
        assert_eq!(
            fired(&e.check_silence(&[(ws.clone(), seen)], later)),
            1,
            "resolved elsewhere: fires again"
        );
        e.sync_firing(vec![(SILENT.into(), Some(ws.clone()), later)]);
        assert_eq!(resolved(&e.check_silence(&[(ws, later)], later)), 1);
    }

    /// WS001's reading at 12:00 plus `s` seconds, failing QC or not.
    fn qc_reading(s: i64, failed: bool) -> Reading {
        let mut r = reading("2025-07-01T12:00:00Z", 20.0);
        r.observed_at += TimeDelta::seconds(s);
        if failed {
            std::sync::Arc::make_mut(&mut r.qc).status = QcFlag::Fail;
        }
        r
    }

    #[test]
    fn a_station_failing_quality_control_too_often_fires_and_resolves_with_hysteresis() {
        let mut e = engine(vec![]);
        let mut changes = Vec::new();
        // 19 good readings, then one bad: 5 % is not above 5 %.
        for s in 0..19 {
            changes.extend(e.observe(&qc_reading(s * 60, false)));
        }
        changes.extend(e.observe(&qc_reading(19 * 60, true)));
        assert!(changes.is_empty(), "{changes:?}");
        // A second bad one: 2 of 21, 9.5 %.
        let c = e.observe(&qc_reading(20 * 60, true));
        assert_eq!(fired(&c), 1, "{c:?}");
        match &c[0] {
            Change::Fire {
                rule,
                station_id,
                value,
                message,
                ..
            } => {
                assert_eq!(rule, QC_FAILURE_RATE);
                assert_eq!(station_id.as_ref().map(|s| s.as_str()), Some("WS001"));
                assert!((value.unwrap() - 200.0 / 21.0).abs() < 1e-9);
                assert!(message.contains("2 of the last 21 readings"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Not repeated; resolved only at or below 4 %: 2 of 50.
        let mut changes = Vec::new();
        for s in 21..50 {
            changes.extend(e.observe(&qc_reading(s * 60, false)));
        }
        assert_eq!(resolved(&changes), 1, "{changes:?}");
        assert_eq!(fired(&changes), 0);
        // Two hours on, the window holds only new readings: 2 of 20.
        let mut changes = Vec::new();
        for s in 0..20 {
            changes.extend(e.observe(&qc_reading(8000 + s * 60, s < 2)));
        }
        assert_eq!(fired(&changes), 1, "{changes:?}");
        assert!(
            matches!(&changes[0], Change::Fire { message, .. }
            if message.contains("2 of the last 20 readings")),
            "{changes:?}"
        );
    }

    #[test]
    fn too_few_readings_say_nothing_of_the_qc_failure_rate() {
        let mut e = engine(vec![]);
        for s in 0..19 {
            assert!(e.observe(&qc_reading(s * 60, true)).is_empty());
        }
        assert_eq!(fired(&e.observe(&qc_reading(19 * 60, true))), 1);
    }

    fn sample(store: bool, processed: u64, rejected: u64, lag_s: u64) -> PipelineSample {
        PipelineSample {
            store_answered: store,
            processed,
            rejected,
            lag: Duration::from_secs(lag_s),
            broker_dropped: None,
        }
    }

    #[test]
    fn a_rising_broker_drop_count_fires_and_quiet_resolves() {
        let mut e = engine(vec![]);
        let t0 = at("2025-07-01T12:00:00Z");
        let s = |n: i64| t0 + TimeDelta::seconds(n);
        let dropped = |n: u64| PipelineSample {
            broker_dropped: Some(n),
            ..sample(true, 0, 0, 0)
        };
        // Drops from before isobar heard the broker fire nothing.
        assert!(e.check_pipeline(dropped(500), s(0)).is_empty());
        assert!(e.check_pipeline(dropped(500), s(5)).is_empty());
        let c = e.check_pipeline(dropped(620), s(10));
        assert_eq!(rules_fired(&c), [BROKER_DROPPING]);
        match &c[0] {
            Change::Fire { value, message, .. } => {
                assert_eq!(*value, Some(120.0));
                assert!(message.contains("dropped 120 messages"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Still firing while it rises, and for broker_quiet_for after.
        assert!(e.check_pipeline(dropped(700), s(15)).is_empty());
        assert!(e.check_pipeline(dropped(700), s(300)).is_empty());
        let c = e.check_pipeline(dropped(700), s(315));
        assert!(matches!(&c[..], [Change::Resolve { rule, .. }] if rule == BROKER_DROPPING));
        // A restarted broker counts from zero: its first drops fire.
        let c = e.check_pipeline(dropped(30), s(320));
        assert_eq!(rules_fired(&c), [BROKER_DROPPING]);
    }

    fn rules_fired(changes: &[Change]) -> Vec<&str> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Fire {
                    rule,
                    station_id: None,
                    ..
                } => Some(rule.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_store_unreachable_for_its_limit_fires_and_its_first_answer_resolves() {
        let mut e = engine(vec![]);
        let t0 = at("2025-07-01T12:00:00Z");
        let s = |n: i64| t0 + TimeDelta::seconds(n);
        assert!(e.check_pipeline(sample(false, 0, 0, 0), s(0)).is_empty());
        assert!(e.check_pipeline(sample(false, 0, 0, 0), s(10)).is_empty());
        let c = e.check_pipeline(sample(false, 0, 0, 0), s(15));
        assert_eq!(rules_fired(&c), [STORE_UNREACHABLE]);
        assert!(matches!(&c[0], Change::Fire { at, message, .. }
            if *at == t0 && message.contains("12:00:00")));
        assert!(e.check_pipeline(sample(false, 0, 0, 0), s(20)).is_empty());
        let c = e.check_pipeline(sample(true, 0, 0, 0), s(25));
        assert!(
            matches!(&c[..], [Change::Resolve { rule, fired_at, .. }]
            if rule == STORE_UNREACHABLE && *fired_at == t0),
            "{c:?}"
        );
        // A blip shorter than the limit fires nothing.
        assert!(e.check_pipeline(sample(false, 0, 0, 0), s(30)).is_empty());
        assert!(e.check_pipeline(sample(true, 0, 0, 0), s(40)).is_empty());
    }

    #[test]
    fn the_error_rate_spans_its_window_and_needs_enough_messages() {
        let mut e = engine(vec![]);
        let t0 = at("2025-07-01T12:00:00Z");
        let m = |n: i64| t0 + TimeDelta::minutes(n);
        assert!(e.check_pipeline(sample(true, 1_000, 0, 0), m(0)).is_empty());
        // 10 of 50 rejected: too few messages to judge.
        assert!(
            e.check_pipeline(sample(true, 1_050, 10, 0), m(1))
                .is_empty()
        );
        // 10 of 200 in the window: 5 %, not above.
        assert!(
            e.check_pipeline(sample(true, 1_200, 10, 0), m(2))
                .is_empty()
        );
        // 21 of 300: 7 %.
        let c = e.check_pipeline(sample(true, 1_300, 21, 0), m(3));
        assert_eq!(rules_fired(&c), [ERROR_RATE]);
        assert!(
            matches!(&c[0], Change::Fire { message, .. }
            if message.contains("21 of 300 messages in the last 5m")),
            "{c:?}"
        );
        // Five minutes on, the window starts at minute 3: 0 of 100 since.
        let c = e.check_pipeline(sample(true, 1_400, 21, 0), m(8));
        assert_eq!(resolved(&c), 1, "{c:?}");
    }

    #[test]
    fn processing_lag_fires_above_its_limit_and_resolves_below_the_lower_one() {
        let mut e = engine(vec![]);
        let t0 = at("2025-07-01T12:00:00Z");
        let s = |n: i64| t0 + TimeDelta::seconds(n);
        assert!(e.check_pipeline(sample(true, 0, 0, 5), s(0)).is_empty());
        let c = e.check_pipeline(sample(true, 0, 0, 6), s(5));
        assert_eq!(rules_fired(&c), [PROCESSING_LAG]);
        assert!(matches!(&c[0], Change::Fire { value: Some(v), .. } if *v == 6.0));
        assert!(e.check_pipeline(sample(true, 0, 0, 3), s(10)).is_empty());
        assert_eq!(resolved(&e.check_pipeline(sample(true, 0, 0, 2), s(15))), 1);
    }

    #[test]
    fn disabled_rule_groups_fire_nothing() {
        let mut e = AlertEngine::new(AlertRules {
            thresholds: vec![],
            silent_after: Duration::from_secs(7200),
            qc_failure_rate: QcFailureRule {
                enabled: false,
                ..QcFailureRule::default()
            },
            pipeline: PipelineRules {
                enabled: false,
                ..PipelineRules::default()
            },
        });
        for s in 0..30 {
            assert!(e.observe(&qc_reading(s, true)).is_empty());
        }
        let t0 = at("2025-07-01T12:00:00Z");
        assert!(e.check_pipeline(sample(false, 0, 0, 60), t0).is_empty());
        let later = t0 + TimeDelta::minutes(10);
        assert!(
            e.check_pipeline(sample(false, 1000, 1000, 60), later)
                .is_empty()
        );
    }
}
