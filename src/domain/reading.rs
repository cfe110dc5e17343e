use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::derived;
use super::observation::Observation;
use super::station_id::StationId;

/// One accepted observation of one station, in canonical units, with the
/// metrics isobar derives from it. Identified by `(station_id, observed_at)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// Metrics computed from the measured values; absent where undefined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
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
        let with_humidity = i.temperature_c.zip(i.humidity_pct);
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
    /// Builds the reading for a validated observation, deriving its metrics.
    pub fn from_observation(observation: Observation, received_at: DateTime<Utc>) -> Self {
        let derived = Derived::compute(DerivedInputs {
            temperature_c: observation.temperature_c,
            humidity_pct: observation.humidity_pct,
            wind_speed_ms: observation.wind_speed_ms,
            pressure_hpa: observation.pressure_hpa,
            elevation_m: observation.elevation_m,
            sea_level_pressure_hpa: observation.sea_level_pressure_hpa,
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
        }
    }
}

impl<'de> Deserialize<'de> for StationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        StationId::parse(&raw).map_err(serde::de::Error::custom)
    }
}
