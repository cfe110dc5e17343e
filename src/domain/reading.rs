use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::derived;
use super::observation::Observation;
use super::qc::{QcReport, Variable};
use super::station_id::StationId;

/// One accepted observation of one station, in canonical units, with the
/// metrics isobar derives from it. Identified by `(station_id, observed_at)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reading {
    pub station_id: StationId,
    pub observed_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub temperature_c: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub pressure_hpa: Option<f64>,
    pub wind_speed_ms: Option<f64>,
    pub wind_direction_deg: Option<f64>,
    pub wind_gust_ms: Option<f64>,
    pub elevation_m: Option<f64>,
    #[serde(flatten)]
    pub derived: Derived,
    /// Quality control: the worst flag, and the variables that did not pass.
    /// Shared: a reading is copied to the cache, the live clients and the
    /// archive, and its report (strings, for a flagged one) need not be.
    #[schema(value_type = QcReport)]
    pub qc: std::sync::Arc<QcReport>,
}

/// Metrics computed from the measured values; absent where undefined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Derived {
    pub dew_point_c: Option<f64>,
    pub heat_index_c: Option<f64>,
    pub wind_chill_c: Option<f64>,
    /// What the air feels like: the heat index when it applies, else the
    /// wind chill when it applies, else the air temperature.
    pub feels_like_c: Option<f64>,
    /// As reported, or reduced from station pressure and elevation.
    pub sea_level_pressure_hpa: Option<f64>,
}

/// The measured values derived metrics are computed from; a value that
/// failed quality control is passed as `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DerivedInputs {
    pub temperature_c: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub wind_speed_ms: Option<f64>,
    pub pressure_hpa: Option<f64>,
    pub elevation_m: Option<f64>,
    pub sea_level_pressure_hpa: Option<f64>,
}

impl Derived {
    pub fn compute(i: DerivedInputs) -> Self {
        // A sensor reads slightly over 100 % in saturated air; the air
        // itself is at 100 %.
        let with_humidity = i.temperature_c.zip(i.humidity_pct.map(|rh| rh.min(100.0)));
        let heat_index_c = with_humidity.and_then(|(t, rh)| derived::heat_index_c(t, rh));
        let wind_chill_c = i
            .temperature_c
            .zip(i.wind_speed_ms)
            .and_then(|(t, v)| derived::wind_chill_c(t, v));
        let sea_level_pressure_hpa = i.sea_level_pressure_hpa.or_else(|| {
            let (p, h) = i.pressure_hpa.zip(i.elevation_m)?;
            Some(derived::sea_level_pressure_hpa(p, h, i.temperature_c))
        });
        Self {
            dew_point_c: with_humidity.and_then(|(t, rh)| derived::dew_point_c(t, rh)),
            heat_index_c,
            wind_chill_c,
            feels_like_c: i
                .temperature_c
                .map(|t| heat_index_c.or(wind_chill_c).unwrap_or(t)),
            sea_level_pressure_hpa,
        }
    }
}

impl Reading {
    /// Builds the reading for a validated observation and its quality
    /// control, deriving metrics from the values that did not fail it.
    pub fn new(observation: Observation, received_at: DateTime<Utc>, qc: QcReport) -> Self {
        let usable = |variable: Variable, value: Option<f64>| value.filter(|_| qc.usable(variable));
        let derived = Derived::compute(DerivedInputs {
            temperature_c: usable(Variable::Temperature, observation.temperature_c),
            humidity_pct: usable(Variable::Humidity, observation.humidity_pct),
            wind_speed_ms: usable(Variable::WindSpeed, observation.wind_speed_ms),
            pressure_hpa: usable(Variable::Pressure, observation.pressure_hpa),
            elevation_m: observation.elevation_m,
            sea_level_pressure_hpa: usable(
                Variable::SeaLevelPressure,
                observation.sea_level_pressure_hpa,
            ),
        });
        Self {
            station_id: observation.station_id,
            observed_at: observation.observed_at,
            received_at,
            latitude: observation.latitude,
            longitude: observation.longitude,
            temperature_c: observation.temperature_c,
            humidity_pct: observation.humidity_pct,
            pressure_hpa: observation.pressure_hpa,
            wind_speed_ms: observation.wind_speed_ms,
            wind_direction_deg: observation.wind_direction_deg,
            wind_gust_ms: observation.wind_gust_ms,
            elevation_m: observation.elevation_m,
            derived,
            qc: std::sync::Arc::new(qc),
        }
    }

    /// The observation it was made from, as far as it is kept: a
    /// sea-level pressure counts as reported unless it could have been
    /// reduced from station pressure and elevation.
    pub fn observation(&self) -> Observation {
        let reduced = self.pressure_hpa.is_some() && self.elevation_m.is_some();
        Observation {
            station_id: self.station_id.clone(),
            observed_at: self.observed_at,
            latitude: self.latitude,
            longitude: self.longitude,
            temperature_c: self.temperature_c,
            humidity_pct: self.humidity_pct,
            pressure_hpa: self.pressure_hpa,
            wind_speed_ms: self.wind_speed_ms,
            wind_direction_deg: self.wind_direction_deg,
            wind_gust_ms: self.wind_gust_ms,
            elevation_m: self.elevation_m,
            sea_level_pressure_hpa: self.derived.sea_level_pressure_hpa.filter(|_| !reduced),
        }
    }
}

impl<'de> Deserialize<'de> for StationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        StationId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{QcConfig, StationId, StationQc};

    #[test]
    fn failed_values_are_kept_but_not_derived_from() {
        let at = "2025-07-01T14:00:00Z".parse().unwrap();
        let mut obs = Observation::new(StationId::parse("WS001").unwrap(), at);
        obs.temperature_c = Some(60.0);
        obs.humidity_pct = Some(40.0);
        let qc = StationQc::default().check(&obs, at, &QcConfig::default());
        let reading = Reading::new(obs, at, qc);
        assert_eq!(reading.temperature_c, Some(60.0));
        assert_eq!(reading.derived, Derived::default());
        assert_eq!(reading.qc.status, crate::domain::QcFlag::Fail);
    }

    /// A stored reading gives back the observation it was made from: a
    /// reported sea-level pressure as reported, a reduced one not at all.
    #[test]
    fn a_reading_gives_back_its_observation() {
        let at = "2025-07-01T14:00:00Z".parse().unwrap();
        let mut obs = Observation::new(StationId::parse("WS001").unwrap(), at);
        obs.temperature_c = Some(21.5);
        obs.humidity_pct = Some(55.0);
        obs.wind_gust_ms = Some(7.0);
        obs.sea_level_pressure_hpa = Some(1016.2);
        let qc = StationQc::default().check(&obs, at, &QcConfig::default());
        assert_eq!(Reading::new(obs.clone(), at, qc.clone()).observation(), obs);
        let mut reduced = obs.clone();
        reduced.sea_level_pressure_hpa = None;
        reduced.pressure_hpa = Some(950.0);
        reduced.elevation_m = Some(540.0);
        let reading = Reading::new(reduced.clone(), at, qc);
        assert!(reading.derived.sea_level_pressure_hpa.is_some());
        assert_eq!(reading.observation(), reduced);
    }
}
