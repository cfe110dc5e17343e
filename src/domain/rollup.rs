//! Rollups: per station, per minute and per hour, the count, minimum,
//! maximum, sum (for the mean) and last value of each variable, and how
//! many of its values were suspect, from the values that did not fail
//! quality control. A batch of new readings becomes a set
//! of partial rollups (`RollupDelta`) that the store adds to what it holds,
//! in the same transaction as the readings; so a late reading updates the
//! rollup it belongs to, and a redelivered one (not new) adds nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{QcFlag, Reading, StationId, Variable};

/// The rollup periods.
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
pub enum Resolution {
    #[serde(rename = "1m")]
    Minute,
    #[serde(rename = "1h")]
    Hour,
}

impl Resolution {
    pub const ALL: [Resolution; 2] = [Self::Minute, Self::Hour];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "1m",
            Self::Hour => "1h",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "1m" => Some(Self::Minute),
            "1h" => Some(Self::Hour),
            _ => None,
        }
    }

    pub fn period(self) -> TimeDelta {
        match self {
            Self::Minute => TimeDelta::minutes(1),
            Self::Hour => TimeDelta::hours(1),
        }
    }

    /// The start of the period holding `at`.
    pub fn bucket(self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.duration_trunc(self.period())
            .expect("minutes and hours truncate any time isobar accepts")
    }
}

/// The variables rolled up, by their names in readings. Wind direction has
/// a rollup of its own ([`WindStats`]): the mean of angles is meaningless
/// (359° and 1° average to 180°).
pub const ROLLED_UP: [&str; 9] = [
    "temperature_c",
    "humidity_pct",
    "pressure_hpa",
    "sea_level_pressure_hpa",
    "wind_speed_ms",
    "wind_gust_ms",
    "dew_point_c",
    "feels_like_c",
    "heat_index_c",
];

/// Count, minimum, maximum, sum and last value of one variable over a set of
/// readings, and how many of the values counted were suspect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub last: f64,
    pub last_at: DateTime<Utc>,
    pub suspect: i64,
}

impl Stats {
    fn of(value: f64, at: DateTime<Utc>, flag: QcFlag) -> Self {
        Self {
            count: 1,
            min: value,
            max: value,
            sum: value,
            last: value,
            last_at: at,
            suspect: i64::from(flag == QcFlag::Suspect),
        }
    }

    /// Both together; `last` is the value observed latest.
    pub fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.suspect += other.suspect;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        if other.last_at >= self.last_at {
            self.last = other.last;
            self.last_at = other.last_at;
        }
    }

    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// What one batch adds to one period of one station: for each rolled-up
/// variable (in `ROLLED_UP` order), its stats, if any of its values counts.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupDelta {
    pub station_id: StationId,
    pub resolution: Resolution,
    pub bucket: DateTime<Utc>,
    pub variables: Variables,
    pub wind: WindStats,
}

/// Wind direction over a period, as WeeWX and MADIS summarise it: the sums
/// of the directions' unit vectors (their mean is the vector-mean
/// direction, its length how steady the wind was), and the direction
/// reported with the period's strongest gust. Directions in calm wind have
/// no meaning and are left out, as are those that failed quality control.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindStats {
    pub count: i64,
    pub suspect: i64,
    /// Σ sin(direction): the eastward components.
    pub east: f64,
    /// Σ cos(direction): the northward components.
    pub north: f64,
    /// The direction reported with the strongest gust (the maximum of
    /// `wind_gust_ms`), if it had one.
    pub gust_direction: Option<f64>,
}

impl WindStats {
    fn add(&mut self, direction_deg: f64, flag: QcFlag) {
        let radians = direction_deg.to_radians();
        self.count += 1;
        self.suspect += i64::from(flag == QcFlag::Suspect);
        self.east += radians.sin();
        self.north += radians.cos();
    }
}

/// A reading's wind direction if it counts: reported with wind above calm
/// (or no speed at all), finite, and not failed; with its flag.
fn usable_direction(r: &Reading) -> Option<(f64, QcFlag)> {
    let direction = r.wind_direction_deg.filter(|d| d.is_finite())?;
    if r.wind_speed_ms.is_some_and(|s| s <= super::qc::CALM_MS) {
        return None;
    }
    let flag = r.qc.flag(Variable::WindDirection);
    (flag != QcFlag::Fail).then_some((direction, flag))
}

/// Where `wind_gust_ms` is in `ROLLED_UP`.
const GUST: usize = 5;

/// Per rolled-up variable, in `ROLLED_UP` order: its stats, if any.
pub type Variables = [Option<Stats>; ROLLED_UP.len()];

/// The values of a reading, in `ROLLED_UP` order, each with its quality
/// flag: a measured variable's own, a derived one's the worst of what it
/// is derived from. Only finite values.
fn flagged(r: &Reading) -> [Option<(f64, QcFlag)>; ROLLED_UP.len()] {
    let flag = |v: Variable| r.qc.flag(v);
    let t = flag(Variable::Temperature);
    let h = flag(Variable::Humidity);
    let w = flag(Variable::WindSpeed);
    let p = flag(Variable::Pressure);
    let d = &r.derived;
    [
        (r.temperature_c, t),
        (r.humidity_pct, h),
        (r.pressure_hpa, p),
        (
            d.sea_level_pressure_hpa,
            flag(Variable::SeaLevelPressure).max(p),
        ),
        (r.wind_speed_ms, w),
        (r.wind_gust_ms, flag(Variable::WindGust)),
        (d.dew_point_c, t.max(h)),
        (d.feels_like_c, t.max(h).max(w)),
        (d.heat_index_c, t.max(h)),
    ]
    .map(|(value, flag)| Some((value.filter(|v| v.is_finite())?, flag)))
}

/// The values of a reading that passed, in `ROLLED_UP` order: each measured
/// variable only if its quality control passed, each derived one only if
/// what it is derived from passed. What alerts and the network summary use.
pub fn passed(r: &Reading) -> [Option<f64>; ROLLED_UP.len()] {
    flagged(r).map(|v| v.filter(|(_, flag)| *flag == QcFlag::Pass).map(|(v, _)| v))
}

/// The values of a reading that count in rollups: every one that did not
/// fail, with its flag (a suspect one is counted as suspect).
pub fn usable(r: &Reading) -> [Option<(f64, QcFlag)>; ROLLED_UP.len()] {
    flagged(r).map(|v| v.filter(|(_, flag)| *flag != QcFlag::Fail))
}

/// The values of a reading that passed (see [`passed`]), by name.
pub fn passed_values(r: &Reading) -> impl Iterator<Item = (&'static str, f64)> + '_ {
    ROLLED_UP
        .into_iter()
        .zip(passed(r))
        .filter_map(|(name, v)| Some((name, v?)))
}

/// The partial rollups of `readings` (new ones: each counts once), for both
/// resolutions, one per station and period, in key order.
pub fn deltas<'a>(readings: impl IntoIterator<Item = &'a Reading>) -> Vec<RollupDelta> {
    // Keyed by borrowed ids: a station id is cloned once per period, not
    // once per reading. foldhash (seeded per process) rather than SipHash:
    // hashing was most of the cost.
    type Key<'a> = (&'a StationId, Resolution, DateTime<Utc>);
    let mut acc: std::collections::HashMap<
        Key<'a>,
        (Variables, WindStats),
        foldhash::fast::RandomState,
    > = std::collections::HashMap::default();
    for r in readings {
        let values = usable(r);
        let direction = usable_direction(r);
        if values.iter().all(Option::is_none) && direction.is_none() {
            continue;
        }
        for resolution in Resolution::ALL {
            let key = (&r.station_id, resolution, resolution.bucket(r.observed_at));
            let (period, wind) = acc
                .entry(key)
                .or_insert(([None; ROLLED_UP.len()], WindStats::default()));
            if let Some((direction, flag)) = direction {
                wind.add(direction, flag);
            }
            // A stronger gust than any so far brings its direction.
            if let Some((gust, _)) = values[GUST]
                && period[GUST].is_none_or(|held| gust > held.max)
            {
                wind.gust_direction = direction.map(|(d, _)| d);
            }
            for (held, value) in period.iter_mut().zip(values) {
                if let Some((value, flag)) = value {
                    let stats = Stats::of(value, r.observed_at, flag);
                    match held {
                        Some(held) => held.merge(&stats),
                        None => *held = Some(stats),
                    }
                }
            }
        }
    }
    let mut out: Vec<RollupDelta> = acc
        .into_iter()
        .map(
            |((station_id, resolution, bucket), (variables, wind))| RollupDelta {
                station_id: station_id.clone(),
                resolution,
                bucket,
                variables,
                wind,
            },
        )
        .collect();
    out.sort_unstable_by(|a, b| {
        (&a.station_id, a.resolution, a.bucket).cmp(&(&b.station_id, b.resolution, b.bucket))
    });
    out
}

/// One period of one station, as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rollup {
    pub bucket: DateTime<Utc>,
    pub variables: BTreeMap<String, Summary>,
    /// Wind direction, when the period has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wind: Option<WindSummary>,
}

impl Rollup {
    /// The period starting at `bucket`, with the variables that have values.
    pub fn of(bucket: DateTime<Utc>, variables: &Variables, wind: &WindStats) -> Self {
        Self {
            bucket,
            variables: ROLLED_UP
                .iter()
                .zip(variables)
                .filter_map(|(name, stats)| {
                    Some(((*name).to_owned(), Summary::from(stats.as_ref()?)))
                })
                .collect(),
            wind: (wind.count > 0 || wind.gust_direction.is_some())
                .then(|| WindSummary::from(wind)),
        }
    }
}

/// A period's wind direction, as the API serves it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WindSummary {
    /// Directions counted: reported in wind above calm, not failed.
    pub count: i64,
    /// How many of them were suspect.
    pub suspect: i64,
    /// The vector mean of the directions' unit vectors, in degrees from
    /// north (0 < d ≤ 360); absent when they cancel out.
    pub direction_deg: Option<f64>,
    /// The length of that mean vector: 1 when every direction was the
    /// same, near 0 when they spread all round.
    pub steadiness: f64,
    /// The direction reported with the period's strongest gust.
    pub gust_direction_deg: Option<f64>,
}

impl From<&WindStats> for WindSummary {
    fn from(w: &WindStats) -> Self {
        let n = w.count.max(1) as f64;
        let (east, north) = (w.east / n, w.north / n);
        let steadiness = east.hypot(north);
        let direction_deg = (steadiness > 1e-9).then(|| {
            let d = east.atan2(north).to_degrees().rem_euclid(360.0);
            // By convention north is 360, and 0 goes with calm.
            if d < 1e-9 { 360.0 } else { d }
        });
        Self {
            count: w.count,
            suspect: w.suspect,
            direction_deg,
            steadiness,
            gust_direction_deg: w.gust_direction,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// Values counted: every one that did not fail quality control.
    pub count: i64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub last: f64,
    /// How many of the values counted were suspect.
    pub suspect: i64,
}

impl From<&Stats> for Summary {
    fn from(s: &Stats) -> Self {
        Self {
            count: s.count,
            min: s.min,
            max: s.max,
            mean: s.mean(),
            last: s.last,
            suspect: s.suspect,
        }
    }
}

/// The network at a glance, for the overview: how many stations report,
/// and the spread of the latest values that passed QC across those that do.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NetworkSummary {
    pub at: DateTime<Utc>,
    pub stations: usize,
    /// Stations heard from within `window` before `at`.
    pub reporting: usize,
    pub silent: usize,
    /// Latest readings of the reporting stations, by QC status.
    pub qc: BTreeMap<&'static str, usize>,
    /// Per variable, over the latest readings of the reporting stations.
    pub latest: BTreeMap<&'static str, Summary>,
}

impl NetworkSummary {
    /// From every station's last-seen time and the latest readings.
    pub fn of(
        last_seen: &[DateTime<Utc>],
        latest: &[Reading],
        at: DateTime<Utc>,
        window: TimeDelta,
    ) -> Self {
        let recent = |t: DateTime<Utc>| t > at - window;
        let reporting = last_seen.iter().filter(|t| recent(**t)).count();
        let mut qc = BTreeMap::new();
        let mut stats: BTreeMap<&'static str, Stats> = BTreeMap::new();
        for r in latest.iter().filter(|r| recent(r.observed_at)) {
            *qc.entry(r.qc.status.as_str()).or_insert(0) += 1;
            for (variable, value) in passed_values(r) {
                let s = Stats::of(value, r.observed_at, QcFlag::Pass);
                stats
                    .entry(variable)
                    .and_modify(|held| held.merge(&s))
                    .or_insert(s);
            }
        }
        Self {
            at,
            stations: last_seen.len(),
            reporting,
            silent: last_seen.len() - reporting,
            qc,
            latest: stats.iter().map(|(v, s)| (*v, Summary::from(s))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Observation, QcConfig, StationQc};

    fn reading(at: &str, t: f64, h: f64) -> Reading {
        let at: DateTime<Utc> = at.parse().unwrap();
        let mut obs = Observation::new(StationId::parse("WS001").unwrap(), at);
        obs.temperature_c = Some(t);
        obs.humidity_pct = Some(h);
        let qc = StationQc::default().check(&obs, at, &QcConfig::default());
        Reading::new(obs, at, qc)
    }

    fn find<'a>(d: &'a [RollupDelta], res: Resolution, bucket: &str, var: &str) -> &'a Stats {
        let bucket: DateTime<Utc> = bucket.parse().unwrap();
        let i = ROLLED_UP.iter().position(|v| *v == var).unwrap();
        d.iter()
            .find(|d| d.resolution == res && d.bucket == bucket)
            .and_then(|d| d.variables[i].as_ref())
            .unwrap_or_else(|| panic!("no {var} rollup at {bucket}"))
    }

    /// Whether any period has a value of `var`.
    fn has(d: &[RollupDelta], var: &str) -> bool {
        let i = ROLLED_UP.iter().position(|v| *v == var).unwrap();
        d.iter().any(|d| d.variables[i].is_some())
    }

    #[test]
    fn readings_roll_up_by_minute_and_hour() {
        let readings = [
            reading("2025-01-13T10:00:10Z", 10.0, 50.0),
            reading("2025-01-13T10:00:50Z", 12.0, 52.0),
            reading("2025-01-13T10:01:30Z", 11.0, 51.0),
        ];
        let d = deltas(&readings);
        let m0 = find(
            &d,
            Resolution::Minute,
            "2025-01-13T10:00:00Z",
            "temperature_c",
        );
        assert_eq!((m0.count, m0.min, m0.max, m0.last), (2, 10.0, 12.0, 12.0));
        assert_eq!(m0.mean(), 11.0);
        let m1 = find(
            &d,
            Resolution::Minute,
            "2025-01-13T10:01:00Z",
            "temperature_c",
        );
        assert_eq!((m1.count, m1.last), (1, 11.0));
        let h = find(
            &d,
            Resolution::Hour,
            "2025-01-13T10:00:00Z",
            "temperature_c",
        );
        assert_eq!(
            (h.count, h.min, h.max, h.sum, h.last),
            (3, 10.0, 12.0, 33.0, 11.0)
        );
        // Dew point comes along, derived from values that passed.
        assert_eq!(
            find(&d, Resolution::Hour, "2025-01-13T10:00:00Z", "dew_point_c").count,
            3
        );
        // Nothing the readings do not have.
        assert!(!has(&d, "pressure_hpa"));
        // One delta per period: two minutes and their hour.
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_late_reading_joins_its_own_period_and_last_stays_the_latest() {
        let mut held = *find(
            &deltas(&[reading("2025-01-13T10:30:00Z", 5.0, 50.0)]),
            Resolution::Hour,
            "2025-01-13T10:00:00Z",
            "temperature_c",
        );
        let late = deltas(&[reading("2025-01-13T10:05:00Z", 2.0, 50.0)]);
        held.merge(find(
            &late,
            Resolution::Hour,
            "2025-01-13T10:00:00Z",
            "temperature_c",
        ));
        assert_eq!((held.count, held.min, held.last), (2, 2.0, 5.0));
    }

    #[test]
    fn values_that_failed_quality_control_are_left_out() {
        let mut r = reading("2025-01-13T10:00:00Z", 10.0, 50.0);
        std::sync::Arc::make_mut(&mut r.qc)
            .variables
            .entry(Variable::Temperature)
            .or_default()
            .flag = QcFlag::Fail;
        let d = deltas(&[r]);
        assert!(!has(&d, "temperature_c"));
        assert!(!has(&d, "dew_point_c"));
        assert!(has(&d, "humidity_pct"));
    }

    /// A suspect value counts, and is counted as suspect; so is what is
    /// derived from it.
    #[test]
    fn suspect_values_count_and_are_counted_as_suspect() {
        let clean = reading("2025-01-13T10:00:00Z", 10.0, 50.0);
        let mut odd = reading("2025-01-13T10:00:30Z", 14.0, 50.0);
        std::sync::Arc::make_mut(&mut odd.qc)
            .variables
            .entry(Variable::Temperature)
            .or_default()
            .flag = QcFlag::Suspect;
        let d = deltas(&[clean, odd]);
        let t = find(
            &d,
            Resolution::Minute,
            "2025-01-13T10:00:00Z",
            "temperature_c",
        );
        assert_eq!((t.count, t.suspect, t.max), (2, 1, 14.0));
        let dew = find(
            &d,
            Resolution::Minute,
            "2025-01-13T10:00:00Z",
            "dew_point_c",
        );
        assert_eq!((dew.count, dew.suspect), (2, 1));
        let rh = find(
            &d,
            Resolution::Minute,
            "2025-01-13T10:00:00Z",
            "humidity_pct",
        );
        assert_eq!((rh.count, rh.suspect), (2, 0));
        let summary = Summary::from(t);
        assert_eq!((summary.count, summary.suspect, summary.mean), (2, 1, 12.0));
    }

    fn windy(at: &str, speed: f64, direction: f64, gust: Option<f64>) -> Reading {
        let at: DateTime<Utc> = at.parse().unwrap();
        let mut obs = Observation::new(StationId::parse("WS001").unwrap(), at);
        obs.wind_speed_ms = Some(speed);
        obs.wind_direction_deg = Some(direction);
        obs.wind_gust_ms = gust;
        let qc = StationQc::default().check(&obs, at, &QcConfig::default());
        Reading::new(obs, at, qc)
    }

    /// Directions are averaged as vectors, calm ones left out, and the
    /// strongest gust keeps its direction.
    #[test]
    fn wind_direction_is_a_vector_mean_with_the_strongest_gusts_direction() {
        assert_eq!(ROLLED_UP[GUST], "wind_gust_ms");
        let d = deltas(&[
            windy("2025-01-13T10:00:00Z", 5.0, 359.0, Some(8.0)),
            windy("2025-01-13T10:00:10Z", 5.0, 1.0, Some(12.0)),
            windy("2025-01-13T10:00:20Z", 0.0, 180.0, None),
            windy("2025-01-13T10:00:30Z", 5.0, 3.0, Some(9.0)),
        ]);
        let minute = d
            .iter()
            .find(|d| d.resolution == Resolution::Minute)
            .unwrap();
        let wind = Rollup::of(minute.bucket, &minute.variables, &minute.wind)
            .wind
            .unwrap();
        assert_eq!(
            (wind.count, wind.suspect),
            (3, 0),
            "the calm one is left out"
        );
        let direction = wind.direction_deg.unwrap();
        assert!((direction - 1.0).abs() < 0.01, "{direction}");
        assert!(wind.steadiness > 0.99, "{}", wind.steadiness);
        assert_eq!(wind.gust_direction_deg, Some(1.0));
        // Opposite directions cancel out: no mean direction, no steadiness.
        let d = deltas(&[
            windy("2025-01-13T10:00:00Z", 5.0, 90.0, None),
            windy("2025-01-13T10:00:10Z", 5.0, 270.0, None),
        ]);
        let wind = WindSummary::from(&d[0].wind);
        assert_eq!(wind.direction_deg, None);
        assert!(wind.steadiness < 1e-9);
        // Due north is 360, as reported.
        let d = deltas(&[windy("2025-01-13T10:00:00Z", 5.0, 360.0, None)]);
        assert_eq!(WindSummary::from(&d[0].wind).direction_deg, Some(360.0));
    }

    #[test]
    fn resolutions_parse_and_truncate() {
        assert_eq!(Resolution::parse("1m"), Some(Resolution::Minute));
        assert_eq!(Resolution::parse("1h"), Some(Resolution::Hour));
        assert_eq!(Resolution::parse("5m"), None);
        let at: DateTime<Utc> = "2025-01-13T10:42:17.5Z".parse().unwrap();
        assert_eq!(
            Resolution::Hour.bucket(at),
            "2025-01-13T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            Resolution::Minute.bucket(at),
            "2025-01-13T10:42:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn the_network_summary_counts_reporting_stations_and_spreads_their_values() {
        let at: DateTime<Utc> = "2025-01-13T10:10:00Z".parse().unwrap();
        let seen: Vec<DateTime<Utc>> = [
            "2025-01-13T10:09:00Z",
            "2025-01-13T10:05:00Z",
            "2025-01-13T08:00:00Z",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let mut b = reading("2025-01-13T10:05:00Z", 20.0, 40.0);
        b.station_id = StationId::parse("WS002").unwrap();
        let mut silent = reading("2025-01-13T08:00:00Z", 99.0, 40.0);
        silent.station_id = StationId::parse("WS003").unwrap();
        let latest = [reading("2025-01-13T10:09:00Z", 10.0, 60.0), b, silent];
        let s = NetworkSummary::of(&seen, &latest, at, TimeDelta::minutes(10));
        assert_eq!((s.stations, s.reporting, s.silent), (3, 2, 1));
        assert_eq!(s.qc.get("pass"), Some(&2));
        let t = s.latest["temperature_c"];
        assert_eq!((t.count, t.min, t.max, t.mean), (2, 10.0, 20.0, 15.0));
        assert_eq!(t.last, 10.0, "the value observed latest");
    }
}
