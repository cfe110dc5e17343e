use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::derived;
use super::payload::Observation;
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
    #[serde(flatten)]
    pub derived: Derived,
}

/// Metrics computed from the measured values; absent where undefined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    pub dew_point_c: Option<f64>,
    pub heat_index_c: Option<f64>,
    pub wind_chill_c: Option<f64>,
}

impl Derived {
    pub fn compute(
        temperature_c: Option<f64>,
        humidity_pct: Option<f64>,
        wind_speed_ms: Option<f64>,
    ) -> Self {
        let with_humidity = temperature_c.zip(humidity_pct);
        Self {
            dew_point_c: with_humidity.and_then(|(t, rh)| derived::dew_point_c(t, rh)),
            heat_index_c: with_humidity.and_then(|(t, rh)| derived::heat_index_c(t, rh)),
            wind_chill_c: temperature_c
                .zip(wind_speed_ms)
                .and_then(|(t, v)| derived::wind_chill_c(t, v)),
        }
    }
}

impl Reading {
    /// Builds the reading for a validated observation, deriving its metrics.
    pub fn from_observation(observation: Observation, received_at: DateTime<Utc>) -> Self {
        let derived = Derived::compute(
            observation.temperature_c,
            observation.humidity_pct,
            observation.wind_speed_ms,
        );
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
