//! What the Weather Underground and Ecowitt uploads share: form-encoded
//! parameters, US units, `dateutc` in UTC, and -9999 for a sensor that has
//! no value.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::invalid_value;
use crate::domain::observation::{Observation, RejectReason};
use crate::domain::station_id::StationId;
use crate::domain::units::{fahrenheit_to_celsius, inhg_to_hpa, mph_to_ms};

/// Weather Underground's value for "this sensor has nothing to report";
/// Ecowitt firmware sends it too when a sensor is lost.
const MISSING: f64 = -9999.0;

/// The measurements of an upload, in the units the protocols send.
#[derive(Debug, Default)]
pub(super) struct UsUnits {
    pub temperature_f: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub pressure_inhg: Option<f64>,
    pub sea_level_pressure_inhg: Option<f64>,
    pub wind_speed_mph: Option<f64>,
    pub wind_gust_mph: Option<f64>,
    pub wind_direction_deg: Option<f64>,
}

/// The names a protocol gives its two barometers.
pub(super) struct Barometers {
    pub sea_level: &'static str,
    pub station: &'static str,
}

impl UsUnits {
    /// Records `name = value` if `name` is one of the measurements the
    /// Weather Underground and Ecowitt uploads share (they differ only in
    /// their barometers' names); other names are left to the caller.
    pub fn set(
        &mut self,
        name: &str,
        value: &str,
        barometers: &Barometers,
    ) -> Result<(), RejectReason> {
        let slot = match name {
            "tempf" => &mut self.temperature_f,
            "humidity" => &mut self.humidity_pct,
            "windspeedmph" => &mut self.wind_speed_mph,
            "windgustmph" => &mut self.wind_gust_mph,
            "winddir" => &mut self.wind_direction_deg,
            n if n == barometers.sea_level => &mut self.sea_level_pressure_inhg,
            n if n == barometers.station => &mut self.pressure_inhg,
            _ => return Ok(()),
        };
        *slot = number(name, value)?;
        Ok(())
    }

    pub fn into_observation(self, station: StationId, observed_at: DateTime<Utc>) -> Observation {
        let mut obs = Observation::new(station, observed_at);
        obs.temperature_c = self.temperature_f.map(fahrenheit_to_celsius);
        obs.humidity_pct = self.humidity_pct;
        obs.pressure_hpa = self.pressure_inhg.map(inhg_to_hpa);
        obs.sea_level_pressure_hpa = self.sea_level_pressure_inhg.map(inhg_to_hpa);
        obs.wind_speed_ms = self.wind_speed_mph.map(mph_to_ms);
        obs.wind_gust_ms = self.wind_gust_mph.map(mph_to_ms);
        obs.wind_direction_deg = self.wind_direction_deg;
        obs
    }
}

/// The value of a numeric parameter; `None` when the sensor has none.
pub(super) fn number(name: &str, value: &str) -> Result<Option<f64>, RejectReason> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let number: f64 = value
        .parse()
        .map_err(|_| invalid_value(name, value, "a number"))?;
    Ok((number != MISSING).then_some(number))
}

/// `dateutc`: `now` (the receiving clock) or `YYYY-MM-DD HH:MM:SS` in UTC.
pub(super) fn observed_at(
    date_utc: Option<&str>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, RejectReason> {
    match date_utc.map(str::trim) {
        None | Some("") => Err(RejectReason::MissingTimestamp),
        Some("now") => Ok(now),
        Some(value) => NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S")
            .map(|t| t.and_utc())
            .map_err(|_| RejectReason::InvalidTimestamp {
                value: value.to_owned(),
                expected: "`now` or a UTC date-time YYYY-MM-DD HH:MM:SS",
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_treat_the_missing_marker_and_blanks_as_absent() {
        assert_eq!(number("tempf", "72.5"), Ok(Some(72.5)));
        assert_eq!(number("tempf", " -4 "), Ok(Some(-4.0)));
        assert_eq!(number("tempf", "-9999"), Ok(None));
        assert_eq!(number("tempf", "-9999.0"), Ok(None));
        assert_eq!(number("tempf", ""), Ok(None));
        assert_eq!(
            number("tempf", "warm"),
            Err(RejectReason::InvalidValue {
                field: "tempf".into(),
                value: "warm".into(),
                expected: "a number",
            })
        );
    }

    #[test]
    fn dateutc_is_now_or_a_utc_date_time() {
        let now: DateTime<Utc> = "2025-01-13T12:00:00Z".parse().unwrap();
        assert_eq!(observed_at(Some("now"), now), Ok(now));
        assert_eq!(
            observed_at(Some("2025-01-13 10:00:00"), now),
            Ok("2025-01-13T10:00:00Z".parse().unwrap())
        );
        assert_eq!(observed_at(None, now), Err(RejectReason::MissingTimestamp));
        for bad in ["2025-01-13T10:00:00Z", "2025-02-30 10:00:00", "yesterday"] {
            assert_eq!(
                observed_at(Some(bad), now).unwrap_err().code(),
                "invalid_timestamp",
                "{bad}"
            );
        }
    }
}
