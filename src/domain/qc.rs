//! Quality control of observations, per station and per variable. Each
//! check gives a flag — pass, suspect or fail — and a reason. Failed values
//! are kept as reported but are left out of derived metrics and aggregates;
//! suspect values are kept and used, with the flag for whoever reads them.
//! Every limit is configurable; the defaults and their sources are in
//! `docs/qc.md`.
//!
//! The checks:
//! - **range**: outside the gross limits → fail.
//! - **step**: a change since the previous normal value larger than the
//!   time between them allows → suspect.
//! - **persistence**: a value that has not moved by more than a small
//!   amount for the persistence window (60 minutes) → suspect.
//! - **consistency**: a wind direction with calm wind, a gust below the mean
//!   speed → suspect.
//! - **outlier**: a change since the previous normal value that is far out
//!   of line with the station's recent changes (modified z-score from their
//!   median and median absolute deviation) → suspect. Scoring changes, not
//!   levels, lets trends through (sunrise, a front) while jumps stand out.
//!
//! A value that looks anomalous is not the reference for the next one; if
//! the next agrees with it rather than with the old level, the level really
//! changed and the checks start afresh from it. After a gap longer than
//! `step_max_gap` they start afresh too.
//! - **late**: a reading older than the station's newest, or received long
//!   after it was observed, is accepted and marked late; the checks over
//!   time are skipped for it, since its neighbours in time are unknown.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::observation::Observation;

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum QcFlag {
    #[default]
    Pass,
    Suspect,
    Fail,
}

impl QcFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Suspect => "suspect",
            Self::Fail => "fail",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pass" => Some(Self::Pass),
            "suspect" => Some(Self::Suspect),
            "fail" => Some(Self::Fail),
            _ => None,
        }
    }
}

/// A measured variable, named as in the API.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Variable {
    #[serde(rename = "temperature_c")]
    Temperature,
    #[serde(rename = "humidity_pct")]
    Humidity,
    #[serde(rename = "pressure_hpa")]
    Pressure,
    #[serde(rename = "sea_level_pressure_hpa")]
    SeaLevelPressure,
    #[serde(rename = "wind_speed_ms")]
    WindSpeed,
    #[serde(rename = "wind_gust_ms")]
    WindGust,
    #[serde(rename = "wind_direction_deg")]
    WindDirection,
}

impl Variable {
    pub const ALL: [Variable; 7] = [
        Self::Temperature,
        Self::Humidity,
        Self::Pressure,
        Self::SeaLevelPressure,
        Self::WindSpeed,
        Self::WindGust,
        Self::WindDirection,
    ];

    pub fn value(self, obs: &Observation) -> Option<f64> {
        match self {
            Self::Temperature => obs.temperature_c,
            Self::Humidity => obs.humidity_pct,
            Self::Pressure => obs.pressure_hpa,
            Self::SeaLevelPressure => obs.sea_level_pressure_hpa,
            Self::WindSpeed => obs.wind_speed_ms,
            Self::WindGust => obs.wind_gust_ms,
            Self::WindDirection => obs.wind_direction_deg,
        }
    }

    /// The reading field it is: its name in JSON and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Self::Temperature => "temperature_c",
            Self::Humidity => "humidity_pct",
            Self::Pressure => "pressure_hpa",
            Self::SeaLevelPressure => "sea_level_pressure_hpa",
            Self::WindSpeed => "wind_speed_ms",
            Self::WindGust => "wind_gust_ms",
            Self::WindDirection => "wind_direction_deg",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Temperature => "°C",
            Self::Humidity => "%",
            Self::Pressure | Self::SeaLevelPressure => "hPa",
            Self::WindSpeed | Self::WindGust => "m/s",
            Self::WindDirection => "°",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Range,
    Step,
    Persistence,
    Consistency,
    Outlier,
}

/// One check's verdict on one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub check: Check,
    pub flag: QcFlag,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VariableQc {
    pub flag: QcFlag,
    pub findings: Vec<Finding>,
}

/// The quality-control outcome of one reading. Variables that passed every
/// check are not listed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QcReport {
    /// The worst flag of any variable.
    #[serde(default)]
    pub status: QcFlag,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<Variable, VariableQc>,
    /// Why the reading counts as late, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<String>,
}

impl QcReport {
    fn add(&mut self, variable: Variable, check: Check, flag: QcFlag, detail: String) {
        let entry = self.variables.entry(variable).or_default();
        entry.flag = entry.flag.max(flag);
        entry.findings.push(Finding {
            check,
            flag,
            detail,
        });
        self.status = self.status.max(flag);
    }

    pub fn flag(&self, variable: Variable) -> QcFlag {
        self.variables
            .get(&variable)
            .map_or(QcFlag::Pass, |v| v.flag)
    }

    /// Whether the value may feed derived metrics and aggregates.
    pub fn usable(&self, variable: Variable) -> bool {
        self.flag(variable) != QcFlag::Fail
    }
}

/// How often a station's readings were flagged, and by which checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QcTally {
    pub readings: usize,
    /// Readings whose worst flag is suspect, and fail.
    pub suspect: usize,
    pub fail: usize,
    /// Readings marked late.
    pub late: usize,
    by_check: BTreeMap<(Variable, Check, QcFlag), usize>,
}

/// How many readings one check flagged on one variable, and their share of
/// the readings counted.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CheckCount {
    pub variable: Variable,
    pub check: Check,
    pub flag: QcFlag,
    pub count: usize,
    pub rate: f64,
}

impl QcTally {
    pub fn add(&mut self, report: &QcReport) {
        self.readings += 1;
        match report.status {
            QcFlag::Pass => {}
            QcFlag::Suspect => self.suspect += 1,
            QcFlag::Fail => self.fail += 1,
        }
        self.late += usize::from(report.late.is_some());
        for (variable, q) in &report.variables {
            for f in &q.findings {
                *self
                    .by_check
                    .entry((*variable, f.check, f.flag))
                    .or_default() += 1;
            }
        }
    }

    /// Each check that flagged anything, most often first.
    pub fn checks(&self) -> Vec<CheckCount> {
        let mut checks: Vec<CheckCount> = self
            .by_check
            .iter()
            .map(|(&(variable, check, flag), &count)| CheckCount {
                variable,
                check,
                flag,
                count,
                rate: count as f64 / self.readings.max(1) as f64,
            })
            .collect();
        checks.sort_by_key(|c| std::cmp::Reverse(c.count));
        checks
    }
}

/// Limits for one variable. A check whose limit is absent is not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableLimits {
    /// Gross range: a value outside `[min, max]` fails.
    pub min: f64,
    pub max: f64,
    /// Step: the change allowed between consecutive values is the larger of
    /// `step` and `step_per_hour` times the hours between them. Here and
    /// below, 0 turns the check off.
    #[serde(default)]
    pub step: Option<f64>,
    #[serde(default)]
    pub step_per_hour: Option<f64>,
    /// Persistence: a value that moves less than this over the whole
    /// persistence window is suspect.
    #[serde(default)]
    pub min_variation: Option<f64>,
    /// Outlier: the smallest median absolute deviation the score divides
    /// by, so that a very steady series does not make noise an outlier.
    #[serde(default)]
    pub min_mad: Option<f64>,
}

impl VariableLimits {
    fn range(min: f64, max: f64) -> Self {
        Self {
            min,
            max,
            step: None,
            step_per_hour: None,
            min_variation: None,
            min_mad: None,
        }
    }
}

/// Quality-control settings (`[qc]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QcConfig {
    /// A reading received this long after it was observed is late.
    #[serde(with = "humantime_serde")]
    pub late_after: Duration,
    /// How long a value must stay still to be suspect, for a variable
    /// reported as finely as its `min_variation`. A coarser resolution
    /// stretches it in proportion: a pressure in whole hPa (ten times 0.1 hPa)
    /// must stay still ten times as long.
    #[serde(with = "humantime_serde")]
    pub persistence_window: Duration,
    /// ... and for at least this many readings in a row, so that a station
    /// reporting every hour is not judged on two readings.
    pub persistence_min_readings: usize,
    /// Beyond this gap the previous value is no reference for a step check.
    #[serde(with = "humantime_serde")]
    pub step_max_gap: Duration,
    /// Recent values per variable the outlier score is computed over ...
    pub outlier_window: usize,
    /// ... once there are at least this many.
    pub outlier_min_samples: usize,
    /// Modified z-score above which a value is an outlier.
    pub outlier_threshold: f64,
    pub temperature: VariableLimits,
    pub humidity: VariableLimits,
    pub pressure: VariableLimits,
    pub sea_level_pressure: VariableLimits,
    pub wind_speed: VariableLimits,
    pub wind_gust: VariableLimits,
    pub wind_direction: VariableLimits,
}

impl Default for QcConfig {
    fn default() -> Self {
        Self {
            late_after: Duration::from_secs(15 * 60),
            persistence_window: Duration::from_secs(60 * 60),
            persistence_min_readings: 24,
            step_max_gap: Duration::from_secs(3 * 60 * 60),
            outlier_window: 30,
            outlier_min_samples: 10,
            outlier_threshold: 3.5,
            temperature: VariableLimits {
                step: Some(3.0),
                step_per_hour: Some(19.4),
                min_variation: Some(0.1),
                min_mad: Some(0.3),
                ..VariableLimits::range(-51.1, 54.4)
            },
            humidity: VariableLimits {
                step: Some(10.0),
                step_per_hour: Some(50.0),
                min_variation: Some(1.0),
                min_mad: Some(2.0),
                ..VariableLimits::range(0.0, 103.0)
            },
            pressure: VariableLimits {
                step: Some(0.5),
                step_per_hour: Some(10.0),
                min_variation: Some(0.1),
                min_mad: Some(0.3),
                ..VariableLimits::range(568.0, 1100.0)
            },
            sea_level_pressure: VariableLimits {
                step: Some(0.5),
                step_per_hour: Some(15.0),
                min_variation: Some(0.1),
                min_mad: Some(0.3),
                ..VariableLimits::range(846.0, 1100.0)
            },
            wind_speed: VariableLimits {
                step: Some(20.0),
                min_variation: Some(0.5),
                ..VariableLimits::range(0.0, 128.6)
            },
            wind_gust: VariableLimits::range(0.0, 128.3),
            wind_direction: VariableLimits {
                min_variation: Some(10.0),
                ..VariableLimits::range(0.0, 360.0)
            },
        }
    }
}

impl QcConfig {
    pub fn limits(&self, variable: Variable) -> &VariableLimits {
        match variable {
            Variable::Temperature => &self.temperature,
            Variable::Humidity => &self.humidity,
            Variable::Pressure => &self.pressure,
            Variable::SeaLevelPressure => &self.sea_level_pressure,
            Variable::WindSpeed => &self.wind_speed,
            Variable::WindGust => &self.wind_gust,
            Variable::WindDirection => &self.wind_direction,
        }
    }

    /// Checks what types cannot; the error names the key and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.outlier_window < self.outlier_min_samples || self.outlier_min_samples < 3 {
            return Err((
                "qc.outlier_min_samples".into(),
                "must be at least 3 and at most qc.outlier_window".into(),
            ));
        }
        if self.persistence_min_readings < 2 {
            return Err((
                "qc.persistence_min_readings".into(),
                "must be at least 2".into(),
            ));
        }
        if !self.outlier_threshold.is_finite() || self.outlier_threshold <= 0.0 {
            return Err((
                "qc.outlier_threshold".into(),
                "must be greater than zero".into(),
            ));
        }
        for variable in Variable::ALL {
            let l = self.limits(variable);
            let key = |field: &str| format!("qc.{}.{field}", config_name(variable));
            if !(l.min.is_finite() && l.max.is_finite() && l.min < l.max) {
                return Err((
                    key("min"),
                    "min and max must be finite, with min below max".into(),
                ));
            }
            for (field, value) in [
                ("step", l.step),
                ("step_per_hour", l.step_per_hour),
                ("min_variation", l.min_variation),
                ("min_mad", l.min_mad),
            ] {
                if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    return Err((key(field), "must be a number, 0 (off) or more".into()));
                }
            }
        }
        for (key, value) in [
            ("qc.persistence_window", self.persistence_window),
            ("qc.step_max_gap", self.step_max_gap),
        ] {
            if value.is_zero() {
                return Err((key.into(), "must be longer than zero".into()));
            }
        }
        Ok(())
    }
}

fn config_name(variable: Variable) -> &'static str {
    match variable {
        Variable::Temperature => "temperature",
        Variable::Humidity => "humidity",
        Variable::Pressure => "pressure",
        Variable::SeaLevelPressure => "sea_level_pressure",
        Variable::WindSpeed => "wind_speed",
        Variable::WindGust => "wind_gust",
        Variable::WindDirection => "wind_direction",
    }
}

/// What quality control remembers of one station: when it reports, and per
/// variable the last good value, the current run of a still value, recent
/// changes and the resolution it reports in.
#[derive(Debug, Clone, Default)]
pub struct StationQc {
    newest: Option<DateTime<Utc>>,
    /// The last spacings between consecutive readings, in seconds, oldest
    /// first overwritten: the station's cadence is their median.
    spacings: [u32; SPACINGS],
    spacings_seen: usize,
    /// Their median, once there are three, in seconds.
    cadence_s: Option<u32>,
    variables: [VariableState; 7],
}

/// Spacings the cadence is the median of.
const SPACINGS: usize = 9;

#[derive(Debug, Clone, Default)]
struct VariableState {
    /// The last value judged normal: what the next one is compared with.
    last_good: Option<(Micros, f64)>,
    /// The last value judged anomalous (step or outlier): if the next one
    /// agrees with it rather than with `last_good`, the level really changed.
    anomaly: Option<(Micros, f64)>,
    still: Option<StillRun>,
    /// Recent changes between consecutive normal values, each scaled to one
    /// cadence, for the outlier score: scoring changes rather than levels
    /// lets a trend (sunrise, a front) through while a jump stands out.
    /// Kept only for a variable the outlier check is on for.
    recent_changes: ChangeWindow,
    /// The previous value, whatever its flags.
    previous: Option<f64>,
    /// What its changes say of the resolution it is reported in: a
    /// property of the sensor, kept across gaps.
    resolution: ResolutionSeen,
}

/// The smallest change seen between two consecutive values, and how many
/// changes there have been: the resolution, once there have been
/// `RESOLUTION_AFTER`.
#[derive(Debug, Clone, Copy, Default)]
struct ResolutionSeen {
    smallest_change: Option<f64>,
    changes: u8,
}

/// Changes of a value seen before its smallest is taken as its resolution.
const RESOLUTION_AFTER: u8 = 5;

#[derive(Debug, Clone, Copy)]
struct StillRun {
    since: Micros,
    until: Micros,
    min: f64,
    max: f64,
    readings: u32,
}

/// What a station's QC has learned of how it reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Learned {
    /// The median spacing of its recent readings, in seconds; absent until
    /// three readings have been seen.
    pub cadence_s: Option<u32>,
    /// Per variable, the smallest change it has reported: its resolution
    /// (to three significant digits: 0.1, not 0.09999999999999787).
    pub resolution: BTreeMap<Variable, f64>,
}

impl StationQc {
    /// Gives back what its buffers hold beyond their contents, for a
    /// station that is going to sleep.
    pub fn shrink_to_fit(&mut self) {
        for variable in &mut self.variables {
            variable.recent_changes.sorted.shrink_to_fit();
        }
    }

    /// The station's cadence and its variables' resolutions, as learned.
    pub fn learned(&self) -> Learned {
        Learned {
            cadence_s: self.cadence_s,
            resolution: Variable::ALL
                .into_iter()
                .filter_map(|v| {
                    let resolution = self.variables[v.index()].resolution()?;
                    Some((v, round_for_display(resolution)))
                })
                .collect(),
        }
    }

    /// The median of the recent spacings, once there are three.
    fn cadence(&self) -> Option<Micros> {
        self.cadence_s.map(|s| i64::from(s) * MICROS_PER_SECOND)
    }

    fn note_spacing(&mut self, t: DateTime<Utc>) {
        if let Some(newest) = self.newest
            && t > newest
        {
            let seconds = (t - newest).num_seconds().clamp(1, i64::from(u32::MAX)) as u32;
            self.spacings[self.spacings_seen % SPACINGS] = seconds;
            self.spacings_seen += 1;
            let n = self.spacings_seen.min(SPACINGS);
            if n >= 3 {
                let mut recent = self.spacings;
                let recent = &mut recent[..n];
                recent.sort_unstable();
                self.cadence_s = Some(recent[n / 2]);
            }
        }
    }

    /// Checks one observation and remembers what later checks need.
    pub fn check(
        &mut self,
        obs: &Observation,
        received_at: DateTime<Utc>,
        config: &QcConfig,
    ) -> QcReport {
        let mut report = QcReport::default();
        let t = obs.observed_at;
        let out_of_order = self.newest.is_some_and(|newest| t < newest);
        let delay = received_at - t;
        if out_of_order {
            report.late = Some(format!(
                "observed at {t}, before the station's newest reading (arrived out of order)"
            ));
        } else if delay > to_delta(config.late_after) {
            report.late = Some(format!(
                "received {} s after it was observed",
                delay.num_seconds()
            ));
        }
        if !out_of_order {
            self.note_spacing(t);
        }
        let cadence = self.cadence();
        // Times in microseconds from here on: the checks subtract them
        // often, and integers subtract for nothing.
        let t_us = t.timestamp_micros();
        let max_gap = micros(config.step_max_gap);
        for variable in Variable::ALL {
            let Some(value) = variable.value(obs) else {
                continue;
            };
            let limits = config.limits(variable);
            let unit = variable.unit();
            // Kept by the parser so the reading's other values are not lost.
            let (min, max) = possible_range(variable);
            if !(min..=max).contains(&value) {
                report.add(
                    variable,
                    Check::Range,
                    QcFlag::Fail,
                    format!("{value} {unit} is outside the possible range [{min}, {max}] {unit}"),
                );
                continue;
            }
            if value < limits.min || value > limits.max {
                report.add(
                    variable,
                    Check::Range,
                    QcFlag::Fail,
                    format!(
                        "{value} {unit} is outside [{}, {}] {unit}",
                        limits.min, limits.max
                    ),
                );
                continue;
            }
            if out_of_order {
                continue;
            }
            let state = &mut self.variables[variable.index()];
            // After a long gap nothing remembered is a reference any more;
            // the sensor's resolution still holds.
            if state.last_good.is_some_and(|(t0, _)| t_us - t0 > max_gap) {
                *state = VariableState {
                    resolution: state.resolution,
                    ..VariableState::default()
                };
            }
            let stuck = if exempt_from_persistence(variable, value, obs) {
                state.still = None;
                false
            } else {
                state.persistence(variable, t_us, value, cadence, limits, config, &mut report)
            };
            state.temporal(
                variable,
                t_us,
                value,
                cadence,
                stuck,
                limits,
                config,
                &mut report,
            );
            state.learn_resolution(value);
        }
        consistency(obs, &mut report);
        if !out_of_order {
            self.newest = Some(t);
        }
        report
    }
}

impl VariableState {
    /// Notes the change from the previous value. Readings are decimals in
    /// binary floating point, so a change within the tolerance of zero is
    /// no change.
    fn learn_resolution(&mut self, value: f64) {
        let Some(previous) = self.previous.replace(value) else {
            return;
        };
        let change = (value - previous).abs();
        let seen = &mut self.resolution;
        if change > 1e-6 {
            seen.changes = seen.changes.saturating_add(1);
            if seen.smallest_change.is_none_or(|r| change < r - 1e-6) {
                seen.smallest_change = Some(change);
            }
        }
    }

    /// The resolution the variable is reported in, once known.
    fn resolution(&self) -> Option<f64> {
        let seen = self.resolution;
        seen.smallest_change
            .filter(|_| seen.changes >= RESOLUTION_AFTER)
    }

    /// The step and outlier checks, which both compare a value with the
    /// last normal one. `stuck` says the persistence check found the value
    /// stuck: it is no evidence of how the variable normally changes.
    #[allow(clippy::too_many_arguments)]
    fn temporal(
        &mut self,
        variable: Variable,
        t: Micros,
        value: f64,
        cadence: Option<Micros>,
        stuck: bool,
        limits: &VariableLimits,
        config: &QcConfig,
        report: &mut QcReport,
    ) {
        let Some((t0, v0)) = self.last_good else {
            self.last_good = Some((t, value));
            return;
        };
        let resolution = self.resolution().unwrap_or(0.0);
        let step_limit =
            |since: Micros| step_allowed(limits, t - since).map(|limit| limit.max(resolution));
        let within = |since: Micros, from: f64| {
            step_limit(since).is_none_or(|limit| (value - from).abs() <= limit + TOLERANCE)
        };
        // A change over several cadences is compared with changes over one
        // as a random walk grows: with the square root of the time.
        let per_cadence = |change: f64, since: Micros| match cadence {
            Some(c) if t - since > c => change / ((t - since) as f64 / c as f64).sqrt(),
            _ => change,
        };
        // The floor under the spread of changes is set for readings a
        // minute apart; changes over a longer cadence spread more, as a
        // random walk's do (with the square root of the time), up to three
        // times the floor (at nine minutes): beyond that the day's cycle,
        // not noise, sets how much an hour's changes vary, and the change
        // window itself spans it. Never below the resolution.
        let floor = limits.min_mad.filter(|m| *m > 0.0).map(|m| {
            let minutes = cadence.map_or(1.0, |c| c as f64 / MICROS_PER_MINUTE);
            (m * minutes.sqrt().clamp(1.0, 3.0)).max(resolution)
        });
        // The recent changes' median and MAD, worked out at most once per
        // reading (re-baselining and the outlier check both score).
        let spread = std::cell::OnceCell::new();
        let outlier_score = |change: f64| {
            let floor = floor?;
            if self.recent_changes.len() < config.outlier_min_samples {
                return None;
            }
            let (median, mad) = *spread.get_or_init(|| self.recent_changes.median_and_mad());
            Some(0.6745 * (change - median) / mad.max(floor))
        };
        // The previous value looked wrong, but this one agrees with it
        // rather than with the old level: the level changed (a front
        // passing, a sensor back from a fault). This value passes and is the
        // reference from now on.
        if let Some((ta, va)) = self.anomaly
            && (value - va).abs() <= (value - v0).abs()
            && within(ta, va)
            && outlier_score(per_cadence(value - va, ta))
                .is_none_or(|z| z.abs() <= config.outlier_threshold)
        {
            self.last_good = Some((t, value));
            self.anomaly = None;
            return;
        }
        let change = value - v0;
        let unit = variable.unit();
        let mut anomalous = false;
        if let Some(limit) = step_limit(t0)
            && change.abs() > limit + TOLERANCE
        {
            anomalous = true;
            report.add(
                variable,
                Check::Step,
                QcFlag::Suspect,
                format!(
                    "changed {:.1} {unit} in {} s; at most {limit:.1} {unit} allowed",
                    change.abs(),
                    (t - t0) / MICROS_PER_SECOND
                ),
            );
        }
        let scaled = per_cadence(change, t0);
        if let Some(score) = outlier_score(scaled)
            && score.abs() > config.outlier_threshold
        {
            anomalous = true;
            report.add(
                variable,
                Check::Outlier,
                QcFlag::Suspect,
                format!(
                    "changed {change:+.1} {unit}: modified z-score {score:.1} against the \
                     last {} changes",
                    self.recent_changes.len()
                ),
            );
        }
        if anomalous {
            self.anomaly = Some((t, value));
            return;
        }
        self.last_good = Some((t, value));
        self.anomaly = None;
        if !stuck && floor.is_some() {
            self.recent_changes.push(scaled, config.outlier_window);
        }
    }

    /// Whether the value has stayed still for too long: within
    /// `min_variation`, or within the variable's own resolution when that
    /// is coarser, for `persistence_window` (stretched by how much coarser
    /// the resolution is) and at least `persistence_min_readings` readings.
    #[allow(clippy::too_many_arguments)]
    fn persistence(
        &mut self,
        variable: Variable,
        t: Micros,
        value: f64,
        cadence: Option<Micros>,
        limits: &VariableLimits,
        config: &QcConfig,
        report: &mut QcReport,
    ) -> bool {
        let Some(min_variation) = limits.min_variation.filter(|m| *m > 0.0) else {
            return false;
        };
        // Still is within the resolution when that is coarser, and the
        // window stretches with how much coarser, up to `MAX_COARSENESS`.
        // Until the value has changed a few times its resolution is
        // unknown: it is judged as the coarsest, so a station that starts in
        // a still spell is not flagged for it and a sensor stuck from its
        // first reading still is, later.
        let (variation, coarseness) = match self.resolution() {
            Some(r) => (
                r.max(min_variation),
                (r / min_variation).clamp(1.0, MAX_COARSENESS),
            ),
            None => (min_variation, MAX_COARSENESS),
        };
        let base = micros(config.persistence_window);
        // The window stretches by the coarseness to the power 1.5: a still
        // value must last longer the coarser it is reported; how much
        // longer was set on the real records in `tests/data/qc`, between
        // the linear stretch a steady trend needs (1) and the quadratic one
        // a random walk needs (2). c·√c rather than a call to `powf`.
        let stretch = coarseness * coarseness.sqrt();
        let window = (base as f64 * stretch) as Micros;
        // Still through a gap cannot be told: a run ends where readings
        // are missing (more than two cadences, and the base window, apart).
        let gap = cadence.map_or(base, |c| base.max(c * 2));
        let run = match self.still {
            Some(run)
                if t - run.until <= gap
                    && run.max.max(value) - run.min.min(value) < variation - TOLERANCE =>
            {
                StillRun {
                    until: t,
                    min: run.min.min(value),
                    max: run.max.max(value),
                    readings: run.readings.saturating_add(1),
                    ..run
                }
            }
            _ => StillRun {
                since: t,
                until: t,
                min: value,
                max: value,
                readings: 1,
            },
        };
        self.still = Some(run);
        let still_for = t - run.since;
        let stuck = still_for >= window && run.readings as usize >= config.persistence_min_readings;
        if stuck {
            let unit = variable.unit();
            report.add(
                variable,
                Check::Persistence,
                QcFlag::Suspect,
                format!(
                    "within {} {unit} for {} min ({} readings)",
                    round_for_display(variation),
                    still_for / MICROS_PER_MINUTE as i64,
                    run.readings
                ),
            );
        }
        stuck
    }
}

/// The change a variable may make in `elapsed`, or `None` when the step
/// check is off. `step` is the WMO limit between values a minute apart and
/// `step_per_hour` the MADIS hourly one; between one minute and an hour the
/// limit follows a power law from one to the other, beyond an hour it grows
/// with the hours. A change of one resolution step is always allowed (the
/// caller's part).
fn step_allowed(limits: &VariableLimits, elapsed: Micros) -> Option<f64> {
    let per_reading = limits.step.filter(|s| *s > 0.0);
    let per_hour = limits.step_per_hour.filter(|s| *s > 0.0);
    let minutes = elapsed as f64 / MICROS_PER_MINUTE;
    match (per_reading, per_hour) {
        (None, None) => None,
        (Some(step), None) => Some(step),
        (None, Some(hourly)) => Some(hourly * minutes / 60.0),
        (Some(step), Some(_)) if minutes <= 1.0 => Some(step),
        (Some(step), Some(hourly)) if minutes < 60.0 && hourly > step => {
            Some(step * (hourly / step).powf(minutes.ln() / 60f64.ln()))
        }
        (Some(step), Some(hourly)) => Some(step.max(hourly * minutes / 60.0)),
    }
}

/// A resolution coarser than this many times `min_variation` stretches the
/// persistence window no further.
const MAX_COARSENESS: f64 = 10.0;

/// A learned resolution as people write it: 0.1, not 0.09999999999999787.
fn round_for_display(value: f64) -> f64 {
    let digits = (-value.log10().floor()).max(0.0) as i32 + 2;
    let f = 10f64.powi(digits);
    (value * f).round() / f
}

/// Calm wind legitimately stays still for hours, and so does humidity near
/// saturation (fog): the WMO persistence test applies to wind only above
/// 0.1 m/s and to humidity only below 95 %.
fn exempt_from_persistence(variable: Variable, value: f64, obs: &Observation) -> bool {
    match variable {
        Variable::WindSpeed => value <= CALM_MS,
        Variable::WindDirection => obs.wind_speed_ms.is_none_or(|s| s <= CALM_MS),
        Variable::Humidity => value >= 95.0,
        _ => false,
    }
}

pub(crate) const CALM_MS: f64 = 0.1;

/// A direction reported with calm wind is not flagged: a vane rests where
/// the last wind left it, and a calm has no direction; rollups leave the
/// direction of a calm out.
fn consistency(obs: &Observation, report: &mut QcReport) {
    if let (Some(gust), Some(speed)) = (obs.wind_gust_ms, obs.wind_speed_ms)
        && gust < speed
    {
        report.add(
            Variable::WindGust,
            Check::Consistency,
            QcFlag::Suspect,
            format!("gust {gust} m/s is below the mean speed {speed} m/s"),
        );
    }
}

/// The physically possible range of a variable, whatever the configured
/// limits.
fn possible_range(variable: Variable) -> (f64, f64) {
    static RANGES: LazyLock<[(f64, f64); 7]> = LazyLock::new(|| {
        Variable::ALL.map(|v| {
            super::observation::possible_range(config_name(v))
                .expect("every variable has a possible range")
        })
    });
    RANGES[variable.index()]
}

/// The last changes of a variable, kept in order of size, each with the
/// count it was pushed at: the median is read off the middle, the median
/// absolute deviation by walking out from it, and the oldest is the one
/// with the lowest count. No sorting and no allocation per reading.
#[derive(Debug, Clone, Default)]
struct ChangeWindow {
    sorted: Vec<(f64, u32)>,
    pushed: u32,
}

impl ChangeWindow {
    fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Adds a change, dropping the oldest beyond `capacity`.
    fn push(&mut self, change: f64, capacity: usize) {
        while !self.sorted.is_empty() && self.sorted.len() >= capacity {
            let pushed = self.pushed;
            let oldest = (0..self.sorted.len())
                .max_by_key(|&i| pushed.wrapping_sub(self.sorted[i].1))
                .expect("not empty");
            self.sorted.remove(oldest);
        }
        let at = self.sorted.partition_point(|(v, _)| *v < change);
        self.sorted.insert(at, (change, self.pushed));
        self.pushed = self.pushed.wrapping_add(1);
    }

    /// The median and the median absolute deviation (the median of the
    /// distances from the median). The distances grow outwards from the
    /// median on both sides, so the middle ones are found by merging the
    /// two sides up to half-way.
    fn median_and_mad(&self) -> (f64, f64) {
        let n = self.sorted.len();
        if n == 0 {
            return (0.0, 0.0);
        }
        let v = |i: usize| self.sorted[i].0;
        let median = if n % 2 == 1 {
            v(n / 2)
        } else {
            (v(n / 2 - 1) + v(n / 2)) / 2.0
        };
        // Below: indices `left` down to 0, above: `right` up to n.
        let mut right = self.sorted.partition_point(|(x, _)| *x < median);
        let mut left = right; // one past the next index below
        let (mut previous, mut current) = (0.0, 0.0);
        for _ in 0..=n / 2 {
            let below = (left > 0).then(|| median - v(left - 1));
            let above = (right < n).then(|| v(right) - median);
            let next = match (below, above) {
                (Some(b), Some(a)) if b <= a => {
                    left -= 1;
                    b
                }
                (_, Some(a)) => {
                    right += 1;
                    a
                }
                (Some(b), None) => {
                    left -= 1;
                    b
                }
                (None, None) => unreachable!("n / 2 + 1 distances exist"),
            };
            previous = current;
            current = next;
        }
        let mad = if n % 2 == 1 {
            current
        } else {
            (previous + current) / 2.0
        };
        (median, mad)
    }
}

/// Slack for comparing decimal readings in binary floating point: 12.4 −
/// 12.3 is 0.0999…, which must count as the 0.1 it is.
const TOLERANCE: f64 = 1e-9;

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// A time as the checks keep it: microseconds since the epoch (what
/// storage keeps of a reading's time), or a span of them.
type Micros = i64;

const MICROS_PER_SECOND: Micros = 1_000_000;
const MICROS_PER_MINUTE: f64 = 60e6;

fn micros(d: Duration) -> Micros {
    Micros::try_from(d.as_micros()).unwrap_or(Micros::MAX)
}

#[cfg(test)]
mod records;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StationId;

    fn at(minutes: i64) -> DateTime<Utc> {
        "2025-01-13T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::minutes(minutes)
    }

    fn obs(minutes: i64, temperature: f64) -> Observation {
        let mut o = Observation::new(StationId::parse("WS001").unwrap(), at(minutes));
        o.temperature_c = Some(temperature);
        o
    }

    /// Runs a sequence through one station's QC, received on time.
    fn run(seq: &[Observation]) -> Vec<QcReport> {
        let mut qc = StationQc::default();
        let config = QcConfig::default();
        seq.iter()
            .map(|o| qc.check(o, o.observed_at, &config))
            .collect()
    }

    fn flags(reports: &[QcReport], v: Variable) -> Vec<QcFlag> {
        reports.iter().map(|r| r.flag(v)).collect()
    }

    /// A gently varying temperature, one reading a minute.
    fn smooth(minutes: i64) -> Vec<Observation> {
        (0..minutes)
            .map(|m| obs(m, 15.0 + (m as f64 / 20.0).sin() * 2.0))
            .collect()
    }

    /// The median and MAD as a textbook computes them: sort, take the
    /// middle, sort the distances, take their middle.
    fn sorted_median_and_mad(values: &[f64]) -> (f64, f64) {
        fn median_of(values: &mut [f64]) -> f64 {
            values.sort_by(f64::total_cmp);
            let n = values.len();
            if n % 2 == 1 {
                values[n / 2]
            } else {
                (values[n / 2 - 1] + values[n / 2]) / 2.0
            }
        }
        let mut buffer = values.to_vec();
        let median = median_of(&mut buffer);
        let mut distances: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        (median, median_of(&mut distances))
    }

    mod change_window {
        use super::super::ChangeWindow;
        use super::sorted_median_and_mad;
        use proptest::prelude::*;

        proptest! {
            /// The window agrees with the textbook on its last `capacity`
            /// changes, whatever they are (ties, one side only, odd and even
            /// counts, the capacity shrinking).
            #[test]
            fn the_change_window_keeps_the_median_and_mad_of_its_last_changes(
                changes in prop::collection::vec(
                    prop_oneof![
                        (-20i32..20).prop_map(|c| f64::from(c) / 10.0),
                        -50.0f64..50.0,
                    ],
                    1..120,
                ),
                capacity in 3usize..40,
            ) {
                let mut window = ChangeWindow::default();
                // The reference: a queue, oldest first.
                let mut kept = std::collections::VecDeque::new();
                for (i, change) in changes.iter().enumerate() {
                    let capacity = if i > changes.len() / 2 { capacity.max(4) - 1 } else { capacity };
                    window.push(*change, capacity);
                    while kept.len() >= capacity {
                        kept.pop_front();
                    }
                    kept.push_back(*change);
                    prop_assert_eq!(window.len(), kept.len());
                    let expected: Vec<f64> = kept.iter().copied().collect();
                    prop_assert_eq!(window.median_and_mad(), sorted_median_and_mad(&expected));
                }
            }
        }
    }

    #[test]
    fn the_default_config_is_valid() {
        QcConfig::default().validate().unwrap();
    }

    #[test]
    fn a_plausible_series_passes_everything() {
        let reports = run(&smooth(120));
        assert!(
            reports.iter().all(|r| r.status == QcFlag::Pass),
            "{reports:?}"
        );
    }

    #[test]
    fn out_of_range_fails_and_is_not_usable() {
        let reports = run(&[obs(0, 15.0), obs(1, 60.0)]);
        assert_eq!(reports[1].flag(Variable::Temperature), QcFlag::Fail);
        assert!(!reports[1].usable(Variable::Temperature));
        let finding = &reports[1].variables[&Variable::Temperature].findings[0];
        assert_eq!(finding.check, Check::Range);
        assert_eq!(finding.detail, "60 °C is outside [-51.1, 54.4] °C");
    }

    /// A value no sensor could measure fails whatever the configured
    /// limits, and names the possible range.
    #[test]
    fn an_impossible_value_fails_even_under_wider_limits() {
        let mut config = QcConfig::default();
        config.humidity.max = 500.0;
        let mut o = obs(0, 15.0);
        o.humidity_pct = Some(140.0);
        let report = StationQc::default().check(&o, o.observed_at, &config);
        assert_eq!(report.flag(Variable::Humidity), QcFlag::Fail);
        assert_eq!(report.flag(Variable::Temperature), QcFlag::Pass);
        assert_eq!(
            report.variables[&Variable::Humidity].findings[0].detail,
            "140 % is outside the possible range [0, 105] %"
        );
    }

    #[test]
    fn a_spike_is_suspect_and_the_series_recovers() {
        let mut seq = smooth(30);
        let spike = seq[29].temperature_c.unwrap() + 8.0;
        seq.push(obs(30, spike));
        seq.push(obs(31, seq[29].temperature_c.unwrap()));
        seq.push(obs(32, seq[29].temperature_c.unwrap()));
        let reports = run(&seq);
        assert_eq!(reports[30].flag(Variable::Temperature), QcFlag::Suspect);
        let checks: Vec<Check> = reports[30].variables[&Variable::Temperature]
            .findings
            .iter()
            .map(|f| f.check)
            .collect();
        assert_eq!(checks, [Check::Step, Check::Outlier]);
        assert_eq!(
            flags(&reports[31..], Variable::Temperature),
            [QcFlag::Pass, QcFlag::Pass]
        );
    }

    /// Which readings any check found suspect, by index.
    fn suspects(reports: &[QcReport], v: Variable) -> Vec<usize> {
        reports
            .iter()
            .enumerate()
            .filter(|(_, r)| r.flag(v) != QcFlag::Pass)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn a_real_change_of_level_is_accepted_after_one_suspect_value() {
        // A cold front after a long steady spell: 6 °C down within a
        // minute, then steady at the new level.
        let mut seq: Vec<_> = (0..40)
            .map(|m| obs(m, 20.0 + if m % 2 == 0 { 0.1 } else { 0.0 }))
            .collect();
        seq.extend((40..60).map(|m| obs(m, 14.0 + if m % 2 == 0 { 0.1 } else { 0.0 })));
        let reports = run(&seq);
        assert_eq!(
            suspects(&reports, Variable::Temperature),
            [40],
            "{:?}",
            reports[41]
        );
    }

    #[test]
    fn a_sunrise_at_five_minute_cadence_passes() {
        // Three flat hours of night, then warming at 4 °C an hour.
        let mut seq: Vec<_> = (0..36)
            .map(|i| obs(i * 5, 8.0 + (i % 3) as f64 * 0.1))
            .collect();
        seq.extend((36..60).map(|i| obs(i * 5, 8.0 + (i - 35) as f64 * 4.0 / 12.0)));
        let reports = run(&seq);
        assert!(suspects(&reports, Variable::Temperature).is_empty());
    }

    #[test]
    fn after_a_long_gap_the_checks_start_afresh() {
        // Evening at 10 °C, four hours without data, a warm morning.
        let mut seq: Vec<_> = (0..30)
            .map(|m| obs(m, 10.0 + (m % 2) as f64 * 0.1))
            .collect();
        seq.extend((270..280).map(|m| obs(m, 18.0 + (m % 2) as f64 * 0.1)));
        let reports = run(&seq);
        assert!(suspects(&reports, Variable::Temperature).is_empty());
    }

    #[test]
    fn a_sensor_toggling_by_its_resolution_is_not_stuck() {
        // 0.1 °C resolution: 12.3 and 12.4 are 0.1 apart, though in binary
        // floating point 12.4 - 12.3 < 0.1.
        let seq: Vec<_> = (0..=90)
            .map(|m| obs(m, if m % 2 == 0 { 12.3 } else { 12.4 }))
            .collect();
        assert!(suspects(&run(&seq), Variable::Temperature).is_empty());
    }

    #[test]
    fn still_across_a_long_gap_is_not_stuck() {
        let seq = [obs(0, 12.0), obs(30, 12.0), obs(95, 12.0), obs(100, 12.0)];
        assert!(suspects(&run(&seq), Variable::Temperature).is_empty());
    }

    #[test]
    fn zero_turns_a_check_off() {
        let mut config = QcConfig::default();
        config.temperature.step = Some(0.0);
        config.temperature.step_per_hour = Some(0.0);
        config.temperature.min_mad = Some(0.0);
        config.validate().unwrap();
        let mut qc = StationQc::default();
        let a = obs(0, 10.0);
        let b = obs(1, 30.0);
        qc.check(&a, a.observed_at, &config);
        assert_eq!(qc.check(&b, b.observed_at, &config).status, QcFlag::Pass);
    }

    #[test]
    fn steps_are_scaled_by_the_time_between_readings() {
        // 5 °C in one minute is suspect; in an hour it is weather.
        let reports = run(&[obs(0, 10.0), obs(1, 15.0)]);
        assert_eq!(reports[1].flag(Variable::Temperature), QcFlag::Suspect);
        let reports = run(&[obs(0, 10.0), obs(60, 15.0)]);
        assert_eq!(reports[1].flag(Variable::Temperature), QcFlag::Pass);
        // After a gap longer than step_max_gap there is no reference.
        let reports = run(&[obs(0, 10.0), obs(240, 40.0)]);
        assert_eq!(reports[1].flag(Variable::Temperature), QcFlag::Pass);
    }

    #[test]
    fn a_stuck_sensor_is_suspect_after_an_hour() {
        // An hour of a sensor moving by its 0.1 °C resolution, then stuck.
        let mut seq: Vec<_> = (0..60)
            .map(|m| obs(m, 12.0 + (m % 4) as f64 * 0.1))
            .collect();
        seq.extend((60..=130).map(|m| obs(m, 12.74)));
        let reports = run(&seq);
        let first_suspect = reports
            .iter()
            .position(|r| r.flag(Variable::Temperature) == QcFlag::Suspect)
            .unwrap();
        assert_eq!(first_suspect, 120);
        let f = &reports[130].variables[&Variable::Temperature].findings[0];
        assert_eq!(
            (f.check, f.detail.as_str()),
            (Check::Persistence, "within 0.1 °C for 70 min (71 readings)")
        );
        // It passes again once it moves.
        let mut moving = seq.clone();
        moving.push(obs(131, 13.0));
        assert_eq!(run(&moving)[131].flag(Variable::Temperature), QcFlag::Pass);
    }

    /// Hourly readings: the same value two, three, twelve hours running is
    /// weather, not a stuck sensor; only a day of it is.
    #[test]
    fn an_hourly_station_is_judged_on_a_day_not_two_readings() {
        let hourly = |h: i64, t: f64| obs(h * 60, t);
        let mut seq: Vec<_> = (0..24)
            .map(|h| hourly(h, 4.0 + (h % 5) as f64 * 0.1))
            .collect();
        seq.extend((24..60).map(|h| hourly(h, 4.0)));
        let reports = run(&seq);
        let suspect = suspects(&reports, Variable::Temperature);
        // Still from hour 24: the 24th still reading in a row (hour 47) is
        // the first that can be stuck.
        assert_eq!(suspect.first(), Some(&47), "{suspect:?}");
        assert_eq!(suspect.len(), 60 - 47);
    }

    /// A pressure reported in whole hPa may stay unchanged for many hours;
    /// the window stretches with the resolution.
    #[test]
    fn a_coarse_resolution_stretches_the_window() {
        let mut qc = StationQc::default();
        let config = QcConfig::default();
        let at_minute = |m: i64, p: f64| {
            let mut o = Observation::new(StationId::parse("WS001").unwrap(), at(m));
            o.pressure_hpa = Some(p);
            o
        };
        // A few changes by whole hPa teach the resolution.
        let mut m = 0;
        for p in [1010.0, 1011.0, 1010.0, 1011.0, 1012.0, 1011.0, 1012.0] {
            qc.check(&at_minute(m, p), at(m), &config);
            m += 1;
        }
        assert_eq!(qc.learned().resolution[&Variable::Pressure], 1.0);
        // Ten hours unchanged: fine at this resolution.
        for _ in 0..600 {
            let r = qc.check(&at_minute(m, 1012.0), at(m), &config);
            assert_eq!(r.flag(Variable::Pressure), QcFlag::Pass, "minute {m}");
            m += 1;
        }
        // Past (1 / 0.1)^1.5 hours it is stuck.
        let mut flagged = None;
        for _ in 0..1500 {
            let r = qc.check(&at_minute(m, 1012.0), at(m), &config);
            if r.flag(Variable::Pressure) == QcFlag::Suspect {
                flagged = Some(m);
                break;
            }
            m += 1;
        }
        let still_since = 6;
        let stuck_after = flagged.unwrap() - still_since;
        assert!((1897..=1898).contains(&stuck_after), "{stuck_after} min");
    }

    /// The hourly record: after an outlier, the next reading that
    /// agrees with it is the new level, not a second outlier.
    #[test]
    fn the_reading_after_an_anomaly_that_agrees_with_it_passes() {
        let hourly = |h: i64, t: f64| obs(h * 60, t);
        let mut seq: Vec<_> = (0..20)
            .map(|h| hourly(h, 11.0 + (h % 3) as f64 * 0.2))
            .collect();
        seq.push(hourly(20, 11.1));
        seq.push(hourly(21, 5.8));
        seq.push(hourly(22, 5.2));
        seq.push(hourly(23, 5.2));
        seq.push(hourly(24, 5.4));
        let reports = run(&seq);
        assert_eq!(suspects(&reports, Variable::Temperature), [21]);
        let f = &reports[21].variables[&Variable::Temperature].findings[0];
        assert_eq!(f.check, Check::Outlier);
    }

    #[test]
    fn the_cadence_and_resolutions_are_learned() {
        let mut qc = StationQc::default();
        let config = QcConfig::default();
        for (i, t) in [10.0, 10.5, 10.0, 11.0, 10.5, 11.5, 11.0]
            .iter()
            .enumerate()
        {
            let o = obs(i as i64 * 10, *t);
            qc.check(&o, o.observed_at, &config);
        }
        let learned = qc.learned();
        assert_eq!(learned.cadence_s, Some(600));
        assert_eq!(learned.resolution[&Variable::Temperature], 0.5);
        assert!(!learned.resolution.contains_key(&Variable::Humidity));
    }

    #[test]
    fn calm_wind_and_saturated_air_may_stay_still() {
        let seq: Vec<_> = (0..=90)
            .map(|m| {
                let mut o = obs(m, 5.0 + m as f64 * 0.01);
                o.wind_speed_ms = Some(0.0);
                o.wind_direction_deg = Some(0.0);
                o.humidity_pct = Some(100.0);
                o
            })
            .collect();
        let reports = run(&seq);
        assert!(
            reports.iter().all(|r| r.status == QcFlag::Pass),
            "{:?}",
            reports[90]
        );
    }

    #[test]
    fn a_gust_below_the_mean_is_suspect_and_a_calm_has_no_direction() {
        // A vane rests where the last wind left it: not a fault.
        let mut o = obs(0, 10.0);
        o.wind_speed_ms = Some(0.0);
        o.wind_direction_deg = Some(270.0);
        let r = &run(&[o])[0];
        assert_eq!(r.flag(Variable::WindDirection), QcFlag::Pass);
        let mut o = obs(0, 10.0);
        o.wind_speed_ms = Some(8.0);
        o.wind_gust_ms = Some(5.0);
        let r = &run(&[o])[0];
        assert_eq!(r.flag(Variable::WindGust), QcFlag::Suspect);
        assert_eq!(r.flag(Variable::WindSpeed), QcFlag::Pass);
    }

    #[test]
    fn late_readings_are_accepted_and_marked() {
        let mut qc = StationQc::default();
        let config = QcConfig::default();
        let first = qc.check(&obs(10, 15.0), at(10), &config);
        assert_eq!(first.late, None);
        // Out of order: older than the newest already seen. No step check
        // against the newest, so the jump is not suspect.
        let older = qc.check(&obs(5, 25.0), at(11), &config);
        assert!(older.late.as_deref().unwrap().contains("out of order"));
        assert_eq!(older.status, QcFlag::Pass);
        // In order, but received an hour after it was observed.
        let delayed = qc.check(&obs(12, 15.1), at(72), &config);
        assert_eq!(
            delayed.late.as_deref(),
            Some("received 3600 s after it was observed")
        );
        // A late reading does not disturb the state: the next one is fine.
        assert_eq!(
            qc.check(&obs(13, 15.2), at(13), &config).status,
            QcFlag::Pass
        );
    }

    #[test]
    fn the_report_serialises_compactly() {
        let reports = run(&[obs(0, 15.0), obs(1, 60.0)]);
        let json = serde_json::to_value(&reports[1]).unwrap();
        assert_eq!(json["status"], "fail");
        assert_eq!(json["variables"]["temperature_c"]["flag"], "fail");
        assert_eq!(
            json["variables"]["temperature_c"]["findings"][0]["check"],
            "range"
        );
        let clean = serde_json::to_value(&reports[0]).unwrap();
        assert_eq!(clean, serde_json::json!({"status": "pass"}));
        let back: QcReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, reports[1]);
    }

    #[test]
    fn a_tally_counts_readings_by_status_and_check() {
        let mut seq = smooth(30);
        let spike = seq[29].temperature_c.unwrap() + 8.0;
        seq.push(obs(30, spike));
        seq.push(obs(31, 70.0));
        let mut tally = QcTally::default();
        for r in run(&seq) {
            tally.add(&r);
        }
        assert_eq!(
            (tally.readings, tally.suspect, tally.fail, tally.late),
            (32, 1, 1, 0)
        );
        let checks: Vec<(Check, QcFlag, usize)> = tally
            .checks()
            .iter()
            .map(|c| (c.check, c.flag, c.count))
            .collect();
        assert_eq!(
            checks,
            [
                (Check::Range, QcFlag::Fail, 1),
                (Check::Step, QcFlag::Suspect, 1),
                (Check::Outlier, QcFlag::Suspect, 1),
            ]
        );
        assert_eq!(tally.checks()[0].rate, 1.0 / 32.0);
    }

    #[test]
    fn median_and_mad_are_robust() {
        let mut window = ChangeWindow::default();
        for change in [100.0, 1.0, 4.0, 2.0, 3.0] {
            window.push(change, 30);
        }
        assert_eq!(window.median_and_mad(), (3.0, 1.0));
        // The oldest (100) goes first, not the largest.
        window.push(-1.0, 5);
        assert_eq!(window.median_and_mad(), (2.0, 1.0));
    }

    #[test]
    fn bad_limits_name_their_key() {
        let mut c = QcConfig::default();
        c.humidity.min = 120.0;
        assert_eq!(c.validate().unwrap_err().0, "qc.humidity.min");
        let mut c = QcConfig::default();
        c.temperature.step = Some(-1.0);
        assert_eq!(c.validate().unwrap_err().0, "qc.temperature.step");
        let c = QcConfig {
            persistence_window: Duration::ZERO,
            ..QcConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "qc.persistence_window");
    }
}
