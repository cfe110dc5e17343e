//! The record the WeeWX MQTT uploader (matthewwall/weewx-mqtt) publishes on
//! `<topic>/loop`: a flat JSON object of WeeWX observation names, each value
//! a string (`"%s" % float(value)`), or a number when another publisher
//! sends the same record.
//!
//! ```json
//! {"dateTime": "1736762400.0", "usUnits": "1.0", "interval_minute": "5.0",
//!  "outTemp_F": "72.5", "outHumidity": "65.0", "dewpoint_F": "60.1",
//!  "barometer_inHg": "29.92", "pressure_inHg": "29.52",
//!  "altimeter_inHg": "29.91", "windSpeed_mph": "5.0", "windDir": "225.0",
//!  "windGust_mph": "8.5", "windGustDir": "230.0", "rain_in": "0.0",
//!  "inTemp_F": "70.3", "altitude_foot": "328.0"}
//! ```
//!
//! | record field            | observation              | units                            |
//! |-------------------------|--------------------------|----------------------------------|
//! | `dateTime`              | `observed_at`            | epoch seconds                    |
//! | `outTemp`               | `temperature_c`          | `F`, `C`, `degree_K`             |
//! | `outHumidity`           | `humidity_pct`           | %                                |
//! | `barometer`             | `sea_level_pressure_hpa` | `inHg`, `mbar`, `hPa`, `mmHg`, `kPa` |
//! | `pressure`              | `pressure_hpa` (station) | as `barometer`                   |
//! | `windSpeed`             | `wind_speed_ms`          | `mph`, `kph`, `mps`, `knot`      |
//! | `windGust`              | `wind_gust_ms`           | as `windSpeed`                   |
//! | `windDir`               | `wind_direction_deg`     | degrees                          |
//! | `altitude`              | `elevation_m`            | `foot`, `meter`                  |
//! | `latitude`, `longitude` | `latitude`, `longitude`  | degrees                          |
//!
//! Everything else (`altimeter`, which is a pressure reduced for aviation;
//! indoor, rain, solar and the derived `dewpoint`, `heatindex`, `windchill`)
//! is ignored.
//!
//! Units: the uploader's `append_units_label` (on by default) appends the
//! unit to the name, shortened as the uploader does (`outTemp_F`,
//! `windSpeed_kph`, `windSpeed_mps`, `barometer_mbar`); a suffix always
//! wins. A field without one is in the units of the record's `usUnits`:
//!
//! | `usUnits`    | temperature | pressure | speed | altitude |
//! |--------------|-------------|----------|-------|----------|
//! | 1 (US)       | °F          | inHg     | mph   | foot     |
//! | 16 (METRIC)  | °C          | mbar     | km/h  | metre    |
//! | 17 (METRICWX)| °C          | mbar     | m/s   | metre    |
//!
//! The station is the one of the MQTT topic: the record names none.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{check_size, invalid_value, malformed_json};
use crate::domain::observation::{Observation, RejectReason};
use crate::domain::station_id::StationId;
use crate::domain::units::{
    fahrenheit_to_celsius, feet_to_m, inhg_to_hpa, kelvin_to_celsius, kmh_to_ms, knots_to_ms,
    kpa_to_hpa, mmhg_to_hpa, mph_to_ms,
};

/// Parses and validates one record received on the topic of `station`.
pub fn parse(
    station: &StationId,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<Observation, RejectReason> {
    check_size(payload)?;
    let record: Map<String, Value> = serde_json::from_slice(payload).map_err(malformed_json)?;
    let observed_at = observed_at(record.get("dateTime"))?;
    let system = record.get("usUnits").map(UnitSystem::parse).transpose()?;
    let mut obs = Observation::new(station.clone(), observed_at);
    for (name, value) in &record {
        let Some((field, suffix)) = field_named(name) else {
            continue;
        };
        let Some(number) = number(name, value)? else {
            continue;
        };
        let canonical = match field.quantity {
            None => number,
            Some(quantity) => {
                let unit = match suffix {
                    Some(unit) => unit,
                    None => system
                        .ok_or_else(|| RejectReason::MissingUnit {
                            field: name.to_owned(),
                        })?
                        .unit_of(quantity),
                };
                quantity
                    .to_canonical(unit, number)
                    .ok_or_else(|| RejectReason::UnknownUnit {
                        field: name.to_owned(),
                        unit: unit.to_owned(),
                    })?
            }
        };
        *(field.slot)(&mut obs) = Some(canonical);
    }
    obs.validate(now)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Quantity {
    Temperature,
    Pressure,
    Speed,
    Altitude,
}

impl Quantity {
    /// `unit` is spelled as the uploader labels it.
    fn to_canonical(self, unit: &str, value: f64) -> Option<f64> {
        use Quantity::*;
        Some(match (self, unit) {
            (Temperature, "C") => value,
            (Temperature, "F") => fahrenheit_to_celsius(value),
            (Temperature, "degree_K") => kelvin_to_celsius(value),
            (Pressure, "mbar" | "hPa") => value,
            (Pressure, "inHg") => inhg_to_hpa(value),
            (Pressure, "mmHg") => mmhg_to_hpa(value),
            (Pressure, "kPa") => kpa_to_hpa(value),
            (Speed, "mps") => value,
            (Speed, "kph") => kmh_to_ms(value),
            (Speed, "mph") => mph_to_ms(value),
            (Speed, "knot") => knots_to_ms(value),
            (Altitude, "meter") => value,
            (Altitude, "foot") => feet_to_m(value),
            _ => return None,
        })
    }
}

/// WeeWX's `usUnits`: which units a record's unlabelled fields are in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum UnitSystem {
    Us,
    Metric,
    MetricWx,
}

impl UnitSystem {
    fn parse(value: &Value) -> Result<Self, RejectReason> {
        let code = as_f64(value).filter(|code| code.fract() == 0.0);
        match code.map(|code| code as i64) {
            Some(1) => Ok(Self::Us),
            Some(16) => Ok(Self::Metric),
            Some(17) => Ok(Self::MetricWx),
            _ => Err(invalid_value(
                "usUnits",
                &text(value),
                "1 (US), 16 (METRIC) or 17 (METRICWX)",
            )),
        }
    }

    fn unit_of(self, quantity: Quantity) -> &'static str {
        match (self, quantity) {
            (Self::Us, Quantity::Temperature) => "F",
            (_, Quantity::Temperature) => "C",
            (Self::Us, Quantity::Pressure) => "inHg",
            (_, Quantity::Pressure) => "mbar",
            (Self::Us, Quantity::Speed) => "mph",
            (Self::Metric, Quantity::Speed) => "kph",
            (Self::MetricWx, Quantity::Speed) => "mps",
            (Self::Us, Quantity::Altitude) => "foot",
            (_, Quantity::Altitude) => "meter",
        }
    }
}

/// A record field isobar takes, and where it goes.
struct Field {
    name: &'static str,
    /// `None` for percent and degrees, which need no conversion.
    quantity: Option<Quantity>,
    slot: fn(&mut Observation) -> &mut Option<f64>,
}

const FIELDS: [Field; 10] = [
    Field {
        name: "outTemp",
        quantity: Some(Quantity::Temperature),
        slot: |o| &mut o.temperature_c,
    },
    Field {
        name: "outHumidity",
        quantity: None,
        slot: |o| &mut o.humidity_pct,
    },
    Field {
        name: "barometer",
        quantity: Some(Quantity::Pressure),
        slot: |o| &mut o.sea_level_pressure_hpa,
    },
    Field {
        name: "pressure",
        quantity: Some(Quantity::Pressure),
        slot: |o| &mut o.pressure_hpa,
    },
    Field {
        name: "windSpeed",
        quantity: Some(Quantity::Speed),
        slot: |o| &mut o.wind_speed_ms,
    },
    Field {
        name: "windGust",
        quantity: Some(Quantity::Speed),
        slot: |o| &mut o.wind_gust_ms,
    },
    Field {
        name: "windDir",
        quantity: None,
        slot: |o| &mut o.wind_direction_deg,
    },
    Field {
        name: "altitude",
        quantity: Some(Quantity::Altitude),
        slot: |o| &mut o.elevation_m,
    },
    Field {
        name: "latitude",
        quantity: None,
        slot: |o| &mut o.latitude,
    },
    Field {
        name: "longitude",
        quantity: None,
        slot: |o| &mut o.longitude,
    },
];

/// The field a record name refers to, and its unit suffix if it has one.
/// `windGustDir` or `windSpeed10` are other observations, not suffixes.
fn field_named(name: &str) -> Option<(&'static Field, Option<&str>)> {
    FIELDS.iter().find_map(|field| {
        let rest = name.strip_prefix(field.name)?;
        if rest.is_empty() {
            return Some((field, None));
        }
        let unit = rest.strip_prefix('_')?;
        field.quantity.is_some().then_some((field, Some(unit)))
    })
}

fn observed_at(value: Option<&Value>) -> Result<DateTime<Utc>, RejectReason> {
    let value = value
        .filter(|value| !value.is_null())
        .ok_or(RejectReason::MissingTimestamp)?;
    as_f64(value)
        .filter(|seconds| seconds.is_finite())
        // Saturates far outside chrono's range, which then answers None.
        .and_then(|seconds| DateTime::from_timestamp_micros((seconds * 1e6).round() as i64))
        .ok_or_else(|| RejectReason::InvalidTimestamp {
            value: text(value),
            expected: "epoch seconds",
        })
}

/// A measurement's value; `None` when the record has it as `null`.
fn number(name: &str, value: &Value) -> Result<Option<f64>, RejectReason> {
    if value.is_null() {
        return Ok(None);
    }
    as_f64(value)
        .map(Some)
        .ok_or_else(|| invalid_value(name, &text(value), "a number"))
}

fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MAX_PAYLOAD_BYTES;
    use proptest::prelude::*;

    fn ws001() -> StationId {
        StationId::parse("WS001").unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2025-01-13T12:00:00Z".parse().unwrap()
    }

    fn parse_str(record: &str) -> Result<Observation, RejectReason> {
        parse(&ws001(), record.as_bytes(), now())
    }

    #[track_caller]
    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a value");
        assert!((actual - expected).abs() < 1e-6, "{actual} != {expected}");
    }

    /// What the uploader publishes with its defaults from a US-units
    /// database.
    const US_RECORD: &str = r#"{"dateTime": "1736762400.0", "usUnits": "1.0",
        "interval_minute": "5.0", "outTemp_F": "72.5", "outHumidity": "65.0",
        "dewpoint_F": "60.1", "barometer_inHg": "29.92", "pressure_inHg": "29.52",
        "altimeter_inHg": "29.91", "windSpeed_mph": "5.0", "windDir": "225.0",
        "windGust_mph": "8.5", "windGustDir": "230.0", "rain_in": "0.0",
        "inTemp_F": "70.3", "altitude_foot": "328.0"}"#;

    #[test]
    fn parses_a_us_record_with_unit_labels() {
        let obs = parse_str(US_RECORD).unwrap();
        assert_eq!(obs.station_id, ws001());
        assert_eq!(
            obs.observed_at,
            "2025-01-13T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        close(obs.temperature_c, 22.5);
        close(obs.humidity_pct, 65.0);
        close(obs.sea_level_pressure_hpa, 1_013.207_489_068);
        close(obs.pressure_hpa, 999.661_934_401);
        close(obs.wind_speed_ms, 2.2352);
        close(obs.wind_gust_ms, 3.79984);
        close(obs.wind_direction_deg, 225.0);
        close(obs.elevation_m, 99.9744);
    }

    #[test]
    fn parses_metric_and_metricwx_labels() {
        let metric = parse_str(
            r#"{"dateTime": "1736762400.0", "usUnits": "16.0", "outTemp_C": "22.5",
                "barometer_mbar": "1013.2", "windSpeed_kph": "18.0", "altitude_meter": "100.0"}"#,
        )
        .unwrap();
        close(metric.temperature_c, 22.5);
        close(metric.sea_level_pressure_hpa, 1013.2);
        close(metric.wind_speed_ms, 5.0);
        close(metric.elevation_m, 100.0);

        let metricwx = parse_str(
            r#"{"dateTime": "1736762400.0", "usUnits": "17.0", "windSpeed_mps": "5.0",
                "windGust_mps": "7.5"}"#,
        )
        .unwrap();
        close(metricwx.wind_speed_ms, 5.0);
        close(metricwx.wind_gust_ms, 7.5);
    }

    #[test]
    fn units_chosen_per_field_are_converted_too() {
        let obs = parse_str(
            r#"{"dateTime": "1736762400.0", "usUnits": "1.0", "outTemp_degree_K": "295.65",
                "windSpeed_knot": "10.0", "windGust_kph": "36", "barometer_hPa": "1013.25",
                "pressure_mmHg": "750.0"}"#,
        )
        .unwrap();
        close(obs.temperature_c, 22.5);
        close(obs.wind_speed_ms, 1852.0 / 360.0);
        close(obs.wind_gust_ms, 10.0);
        close(obs.sea_level_pressure_hpa, 1013.25);
        close(obs.pressure_hpa, 750.0 * 1.333_223_874_15);
        let kpa = parse_str(r#"{"dateTime": 1736762400, "pressure_kPa": 99.5}"#).unwrap();
        close(kpa.pressure_hpa, 995.0);
    }

    #[test]
    fn unlabelled_fields_follow_us_units() {
        let cases = [
            ("1", "29.52", 22.5, 2.2352, 999.661_934_401, 99.9744),
            ("16", "999.7", 72.5, 5.0 / 3.6, 999.7, 328.0),
            ("17", "999.7", 72.5, 5.0, 999.7, 328.0),
        ];
        for (us_units, pressure, temperature_c, wind_speed_ms, pressure_hpa, elevation_m) in cases {
            let obs = parse_str(&format!(
                r#"{{"dateTime": 1736762400.0, "usUnits": {us_units}, "outTemp": 72.5,
                    "windSpeed": 5.0, "pressure": {pressure}, "altitude": 328.0}}"#
            ))
            .unwrap();
            close(obs.temperature_c, temperature_c);
            close(obs.wind_speed_ms, wind_speed_ms);
            close(obs.pressure_hpa, pressure_hpa);
            close(obs.elevation_m, elevation_m);
        }
    }

    #[test]
    fn other_observations_sharing_a_prefix_are_ignored() {
        let obs = parse_str(
            r#"{"dateTime": "1736762400.0", "usUnits": "1.0", "outTemp_F": "50.0",
                "windGustDir": "not a number", "windSpeed10_mph": "99999",
                "outTempBatteryStatus": "x", "altimeter_inHg": "nope", "windDir_x": "x"}"#,
        )
        .unwrap();
        close(obs.temperature_c, 10.0);
        assert_eq!(obs.wind_gust_ms, None);
        assert_eq!(obs.wind_speed_ms, None);
        assert_eq!(obs.wind_direction_deg, None);
    }

    #[test]
    fn nulls_are_absent_measurements() {
        let obs =
            parse_str(r#"{"dateTime": 1736762400, "outTemp_C": null, "outHumidity": 40}"#).unwrap();
        assert_eq!(obs.temperature_c, None);
        assert_eq!(obs.humidity_pct, Some(40.0));
    }

    #[test]
    fn rejections_name_their_reason() {
        let cases = [
            ("[]", "malformed_json"),
            (
                r#"{"usUnits": "1.0", "outTemp_F": "50"}"#,
                "missing_timestamp",
            ),
            (
                r#"{"dateTime": null, "outTemp_F": "50"}"#,
                "missing_timestamp",
            ),
            (
                r#"{"dateTime": "yesterday", "outTemp_F": "50"}"#,
                "invalid_timestamp",
            ),
            (
                r#"{"dateTime": "1e300", "outTemp_F": "50"}"#,
                "invalid_timestamp",
            ),
            (
                r#"{"dateTime": "1736848800", "outTemp_F": "50"}"#,
                "timestamp_in_future",
            ),
            (
                r#"{"dateTime": "1736762400", "usUnits": "2", "outTemp_F": "50"}"#,
                "invalid_value",
            ),
            (
                r#"{"dateTime": "1736762400", "outTemp_F": "warm"}"#,
                "invalid_value",
            ),
            (
                r#"{"dateTime": "1736762400", "outTemp_F": true}"#,
                "invalid_value",
            ),
            (
                r#"{"dateTime": "1736762400", "outTemp": "50"}"#,
                "missing_unit",
            ),
            (
                r#"{"dateTime": "1736762400", "windSpeed_beaufort": "3"}"#,
                "unknown_unit",
            ),
            (
                r#"{"dateTime": "1736762400", "outTemp_C": "-150"}"#,
                "out_of_range",
            ),
            (
                r#"{"dateTime": "1736762400", "usUnits": "1", "inTemp_F": "70"}"#,
                "no_measurements",
            ),
        ];
        for (record, code) in cases {
            assert_eq!(parse_str(record).unwrap_err().code(), code, "{record}");
        }
        let mut big = br#"{"dateTime": "1736762400", "x": ""#.to_vec();
        big.resize(MAX_PAYLOAD_BYTES, b'x');
        big.extend_from_slice(br#""}"#);
        assert_eq!(
            parse(&ws001(), &big, now()).unwrap_err().code(),
            "payload_too_large"
        );
    }

    #[test]
    fn rejections_say_which_field_and_unit() {
        assert_eq!(
            parse_str(r#"{"dateTime": "1736762400", "windSpeed_beaufort": "3"}"#)
                .unwrap_err()
                .to_string(),
            r#"windSpeed_beaufort is in "beaufort", a unit isobar does not convert"#
        );
        assert_eq!(
            parse_str(r#"{"dateTime": "1736762400", "usUnits": "8"}"#)
                .unwrap_err()
                .to_string(),
            r#"usUnits = "8" is not 1 (US), 16 (METRIC) or 17 (METRICWX)"#
        );
    }

    proptest! {
        #[test]
        fn us_records_convert_like_the_units_module(
            temperature_f in -40.0f64..120.0,
            barometer_inhg in 25.0f64..32.0,
            wind_speed_mph in 0.0f64..100.0,
            as_strings in any::<bool>(),
        ) {
            let value = |v: f64| if as_strings { format!("\"{v}\"") } else { v.to_string() };
            let record = format!(
                r#"{{"dateTime": 1736762400, "usUnits": 1, "outTemp": {}, "barometer": {}, "windSpeed": {}}}"#,
                value(temperature_f), value(barometer_inhg), value(wind_speed_mph),
            );
            let obs = parse_str(&record).unwrap();
            let pairs = [
                (obs.temperature_c, fahrenheit_to_celsius(temperature_f)),
                (obs.sea_level_pressure_hpa, inhg_to_hpa(barometer_inhg)),
                (obs.wind_speed_ms, mph_to_ms(wind_speed_mph)),
            ];
            for (parsed, expected) in pairs {
                prop_assert!((parsed.unwrap() - expected).abs() < 1e-9, "{:?} != {}", parsed, expected);
            }
        }
    }
}
