//! Alert rules: a threshold on a variable held for a duration, and a station
//! that has gone silent. The engine keeps each (rule, station)'s state and
//! says when an alert fires and when it resolves; it fires once and stays
//! quiet while the condition lasts, and resolves only once the value is back
//! past the threshold by the rule's hysteresis. Values that failed quality
//! control never fire anything. Pure: time comes in with the readings and
//! the ticks.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::rollup;
use super::{Reading, StationId};

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

/// The rule name of silent-station alerts.
pub const SILENT: &str = "station_silent";

/// An alert starting or ending.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Fire {
        rule: String,
        station_id: StationId,
        value: Option<f64>,
        at: DateTime<Utc>,
        message: String,
    },
    Resolve {
        rule: String,
        station_id: StationId,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Breached since, not yet for long enough.
    Pending(DateTime<Utc>),
    Firing,
}

#[derive(Debug, Default)]
pub struct AlertEngine {
    rules: Vec<ThresholdRule>,
    silent_after: TimeDelta,
    state: HashMap<(String, StationId), State>,
}

impl AlertEngine {
    pub fn new(rules: Vec<ThresholdRule>, silent_after: Duration) -> Self {
        Self {
            rules,
            silent_after: TimeDelta::from_std(silent_after).unwrap_or(TimeDelta::MAX),
            state: HashMap::new(),
        }
    }

    /// An alert already firing (kept in the store across restarts): it is
    /// not fired again.
    pub fn firing(&mut self, rule: &str, station: StationId) {
        self.state.insert((rule.to_owned(), station), State::Firing);
    }

    /// A new reading, checked against every threshold.
    pub fn observe(&mut self, r: &Reading) -> Vec<Change> {
        let mut changes = Vec::new();
        let values: HashMap<&str, f64> = rollup::passed_values(r).collect();
        for rule in &self.rules {
            let Some(&v) = values.get(rule.variable.as_str()) else {
                continue;
            };
            let key = (rule.name.clone(), r.station_id.clone());
            let fire = |changes: &mut Vec<Change>| {
                changes.push(Change::Fire {
                    rule: rule.name.clone(),
                    station_id: r.station_id.clone(),
                    value: Some(v),
                    at: r.observed_at,
                    message: rule.describe(v),
                })
            };
            let for_ = TimeDelta::from_std(rule.for_).unwrap_or(TimeDelta::MAX);
            match self.state.get(&key).copied() {
                None if rule.breached(v) => {
                    if for_.is_zero() {
                        fire(&mut changes);
                        self.state.insert(key, State::Firing);
                    } else {
                        self.state.insert(key, State::Pending(r.observed_at));
                    }
                }
                None => {}
                Some(State::Pending(since))
                    if rule.breached(v) && r.observed_at - since >= for_ =>
                {
                    fire(&mut changes);
                    self.state.insert(key, State::Firing);
                }
                Some(State::Pending(_)) if rule.breached(v) => {}
                Some(State::Pending(_)) => {
                    self.state.remove(&key);
                }
                Some(State::Firing) if rule.cleared(v) => {
                    changes.push(Change::Resolve {
                        rule: rule.name.clone(),
                        station_id: r.station_id.clone(),
                        at: r.observed_at,
                    });
                    self.state.remove(&key);
                }
                Some(State::Firing) => {}
            }
        }
        changes
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
            let key = (SILENT.to_owned(), station.clone());
            let silent = now - *seen > self.silent_after;
            match (silent, self.state.contains_key(&key)) {
                (true, false) => {
                    changes.push(Change::Fire {
                        rule: SILENT.to_owned(),
                        station_id: station.clone(),
                        value: None,
                        at: now,
                        message: format!("no reading since {}", seen.to_rfc3339()),
                    });
                    self.state.insert(key, State::Firing);
                }
                (false, true) => {
                    changes.push(Change::Resolve {
                        rule: SILENT.to_owned(),
                        station_id: station.clone(),
                        at: now,
                    });
                    self.state.remove(&key);
                }
                _ => {}
            }
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
        let mut e = AlertEngine::new(vec![heat(600)], Duration::from_secs(7200));
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
        let mut e = AlertEngine::new(vec![heat(600)], Duration::from_secs(7200));
        assert!(e.observe(&reading("2025-07-01T12:00:00Z", 36.0)).is_empty());
        assert!(e.observe(&reading("2025-07-01T12:05:00Z", 30.0)).is_empty());
        assert!(e.observe(&reading("2025-07-01T12:11:00Z", 36.0)).is_empty());
    }

    #[test]
    fn a_value_that_failed_quality_control_fires_nothing() {
        let mut e = AlertEngine::new(vec![heat(0)], Duration::from_secs(7200));
        let mut r = reading("2025-07-01T12:00:00Z", 60.0);
        r.qc.variables
            .entry(Variable::Temperature)
            .or_default()
            .flag = QcFlag::Fail;
        assert!(e.observe(&r).is_empty());
        assert_eq!(fired(&e.observe(&reading("2025-07-01T12:01:00Z", 36.0))), 1);
    }

    #[test]
    fn an_alert_firing_before_a_restart_is_not_fired_again() {
        let mut e = AlertEngine::new(vec![heat(0)], Duration::from_secs(7200));
        e.firing("heat", StationId::parse("WS001").unwrap());
        assert!(e.observe(&reading("2025-07-01T12:00:00Z", 36.0)).is_empty());
        assert_eq!(
            resolved(&e.observe(&reading("2025-07-01T12:01:00Z", 30.0))),
            1
        );
    }

    #[test]
    fn a_silent_station_fires_once_and_resolves_when_heard_from() {
        let mut e = AlertEngine::new(vec![], Duration::from_secs(7200));
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
}
