//! The isobar JSON payload (docs/formats.md):
//! `{"station_id", "latitude", "longitude", "temperature", "humidity",
//! "pressure", "wind_speed", "wind_direction", "timestamp", "metadata"}` in
//! °C, %, hPa, m/s and degrees. `metadata` (derived values) is ignored:
//! isobar computes its own.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{check_size, malformed_json};
use crate::domain::observation::{Observation, RejectReason};
use crate::domain::station_id::StationId;

#[derive(Deserialize)]
struct Wire {
    station_id: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    temperature: Option<f64>,
    humidity: Option<f64>,
    pressure: Option<f64>,
    wind_speed: Option<f64>,
    wind_direction: Option<f64>,
    wind_gust: Option<f64>,
    elevation: Option<f64>,
    sea_level_pressure: Option<f64>,
    timestamp: Option<String>,
}

/// Parses and validates one payload received on the topic of `station`.
pub fn parse_observation(
    station: &StationId,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<Observation, RejectReason> {
    check_size(payload)?;
    let wire: Wire = serde_json::from_slice(payload).map_err(malformed_json)?;
    if let Some(claimed) = &wire.station_id
        && claimed != station.as_str()
    {
        return Err(RejectReason::StationMismatch {
            topic: station.to_string(),
            payload: claimed.clone(),
        });
    }
    let raw_ts = wire
        .timestamp
        .as_deref()
        .ok_or(RejectReason::MissingTimestamp)?;
    let observed_at = DateTime::parse_from_rfc3339(raw_ts)
        .map_err(|_| RejectReason::InvalidTimestamp {
            value: raw_ts.to_owned(),
            expected: "an RFC 3339 date-time with an offset",
        })?
        .with_timezone(&Utc);
    let mut obs = Observation::new(station.clone(), observed_at);
    obs.latitude = wire.latitude;
    obs.longitude = wire.longitude;
    obs.elevation_m = wire.elevation;
    obs.temperature_c = wire.temperature;
    obs.humidity_pct = wire.humidity;
    obs.pressure_hpa = wire.pressure;
    obs.sea_level_pressure_hpa = wire.sea_level_pressure;
    obs.wind_speed_ms = wire.wind_speed;
    obs.wind_gust_ms = wire.wind_gust;
    obs.wind_direction_deg = wire.wind_direction;
    obs.validate(now)
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

    const DOCUMENTED_EXAMPLE: &str = r#"{"station_id":"WS001","latitude":40.7589,"longitude":-73.9851,
        "temperature":22.5,"humidity":65.2,"pressure":1013.8,
        "wind_speed":12.3,"wind_direction":225.0,
        "timestamp":"2025-01-13T10:00:00Z",
        "metadata":{"heat_index":24.1,"wind_chill":22.5,"dew_point":15.8}}"#;

    #[test]
    fn parses_the_documented_example() {
        let obs = parse_observation(&ws001(), DOCUMENTED_EXAMPLE.as_bytes(), now()).unwrap();
        assert_eq!(obs.station_id, ws001());
        assert_eq!(
            obs.observed_at,
            "2025-01-13T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(obs.temperature_c, Some(22.5));
        assert_eq!(obs.humidity_pct, Some(65.2));
        assert_eq!(obs.pressure_hpa, Some(1013.8));
        assert_eq!(obs.wind_speed_ms, Some(12.3));
        assert_eq!(obs.wind_direction_deg, Some(225.0));
        assert_eq!(obs.latitude, Some(40.7589));
    }

    #[test]
    fn a_temperature_only_sensor_is_a_station_too() {
        let obs = parse_observation(
            &ws001(),
            br#"{"temperature":-3.5,"timestamp":"2025-01-13T10:00:00+02:00"}"#,
            now(),
        )
        .unwrap();
        assert_eq!(obs.temperature_c, Some(-3.5));
        assert_eq!(obs.humidity_pct, None);
        assert_eq!(
            obs.observed_at,
            "2025-01-13T08:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn rejections_name_their_reason() {
        let cases: [(&[u8], &str); 9] = [
            (b"not json", "malformed_json"),
            (
                br#"{"temperature":"warm","timestamp":"2025-01-13T10:00:00Z"}"#,
                "malformed_json",
            ),
            (
                br#"{"station_id":"WS002","temperature":1,"timestamp":"2025-01-13T10:00:00Z"}"#,
                "station_mismatch",
            ),
            (br#"{"temperature":1}"#, "missing_timestamp"),
            (
                br#"{"temperature":1,"timestamp":"yesterday"}"#,
                "invalid_timestamp",
            ),
            (
                br#"{"temperature":1,"timestamp":"2025-01-13T10:00:00"}"#,
                "invalid_timestamp",
            ),
            (
                br#"{"temperature":1,"timestamp":"2025-01-14T10:00:00Z"}"#,
                "timestamp_in_future",
            ),
            (
                br#"{"humidity":120,"timestamp":"2025-01-13T10:00:00Z"}"#,
                "out_of_range",
            ),
            (
                br#"{"latitude":1,"timestamp":"2025-01-13T10:00:00Z"}"#,
                "no_measurements",
            ),
        ];
        for (payload, code) in cases {
            let err = parse_observation(&ws001(), payload, now()).unwrap_err();
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(payload));
        }
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            parse_observation(&ws001(), &big, now()).unwrap_err().code(),
            "payload_too_large"
        );
    }

    #[test]
    fn out_of_range_says_which_field_and_limit() {
        let err = parse_observation(
            &ws001(),
            br#"{"temperature":-300,"timestamp":"2025-01-13T10:00:00Z"}"#,
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "temperature = -300 is outside the possible range [-100, 100]"
        );
    }

    #[test]
    fn timestamps_keep_microseconds_only() {
        let obs = parse_observation(
            &ws001(),
            br#"{"temperature":1,"timestamp":"2025-01-13T10:00:00.123456789Z"}"#,
            now(),
        )
        .unwrap();
        assert_eq!(obs.observed_at.timestamp_subsec_nanos(), 123_456_000);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_observation(&ws001(), &bytes, now());
        }

        /// A message is a reading when at least one of its measurements
        /// is possible; its impossible ones are kept for quality control to
        /// fail. One with none possible is refused as out of range.
        #[test]
        fn a_message_is_kept_when_any_measurement_is_possible(
            t in -150.0f64..150.0, rh in -10.0f64..110.0, p in 0.0f64..1500.0,
        ) {
            let payload = format!(
                r#"{{"temperature":{t},"humidity":{rh},"pressure":{p},"timestamp":"2025-01-13T10:00:00Z"}}"#
            );
            let possible = (-100.0..=100.0).contains(&t)
                || (0.0..=105.0).contains(&rh)
                || (100.0..=1200.0).contains(&p);
            match parse_observation(&ws001(), payload.as_bytes(), now()) {
                Ok(obs) => {
                    prop_assert!(possible);
                    // Kept as sent (to the last bit of its decimal text).
                    for (kept, sent) in [(obs.temperature_c, t), (obs.humidity_pct, rh), (obs.pressure_hpa, p)] {
                        prop_assert!((kept.unwrap() - sent).abs() <= 1e-9 * sent.abs().max(1.0));
                    }
                }
                Err(e) => {
                    prop_assert!(!possible);
                    prop_assert_eq!(e.code(), "out_of_range");
                }
            }
        }
    }
}
