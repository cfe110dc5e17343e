//! The reading payload of DESIGN §4 and why one is rejected.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde::Deserialize;

use super::station_id::StationId;

/// Largest payload accepted; larger ones are quarantined unparsed.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// How far ahead of the receiving clock an observation time may be.
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// A payload that passed validation: values are finite and physically
/// possible, in canonical units.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub station_id: StationId,
    pub observed_at: DateTime<Utc>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub temperature_c: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub pressure_hpa: Option<f64>,
    pub wind_speed_ms: Option<f64>,
    pub wind_direction_deg: Option<f64>,
    /// Test-only request to fail while processing this observation.
    #[cfg(feature = "fault-injection")]
    pub fault: Option<String>,
}

/// Why a message was not accepted as a reading. Every variant has a stable
/// `code` used in the quarantine table and in metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RejectReason {
    #[error("payload is {len} bytes; the limit is {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("payload is not valid reading JSON: {detail}")]
    MalformedJson { detail: String },
    #[error("topic {topic:?} does not match weather/<station_id>/observations")]
    InvalidTopic { topic: String },
    #[error("station id {value:?} is invalid: {reason}")]
    InvalidStationId { value: String, reason: String },
    #[error("payload station_id {payload:?} does not match the topic's station {topic:?}")]
    StationMismatch { topic: String, payload: String },
    #[error("timestamp is missing")]
    MissingTimestamp,
    #[error("timestamp {value:?} is not an RFC 3339 date-time with an offset")]
    InvalidTimestamp { value: String },
    #[error("timestamp {observed_at} is more than {max_skew_s} s ahead of the receiving clock")]
    TimestampInFuture {
        observed_at: DateTime<Utc>,
        max_skew_s: i64,
    },
    #[error("{field} = {value} is outside the possible range [{min}, {max}]")]
    OutOfRange {
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("payload has no measurement (temperature, humidity, pressure or wind)")]
    NoMeasurements,
    #[error("processing this message panicked: {detail}")]
    ProcessingPanicked { detail: String },
    #[error("the message could not be processed: its actor stopped with it {attempts} times")]
    ProcessingFailed { attempts: u32 },
}

impl RejectReason {
    pub fn code(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::MalformedJson { .. } => "malformed_json",
            Self::InvalidTopic { .. } => "invalid_topic",
            Self::InvalidStationId { .. } => "invalid_station_id",
            Self::StationMismatch { .. } => "station_mismatch",
            Self::MissingTimestamp => "missing_timestamp",
            Self::InvalidTimestamp { .. } => "invalid_timestamp",
            Self::TimestampInFuture { .. } => "timestamp_in_future",
            Self::OutOfRange { .. } => "out_of_range",
            Self::NoMeasurements => "no_measurements",
            Self::ProcessingPanicked { .. } => "processing_panicked",
            Self::ProcessingFailed { .. } => "processing_failed",
        }
    }
}

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
    timestamp: Option<String>,
    #[cfg(feature = "fault-injection")]
    isobar_fault: Option<String>,
}

/// Physically possible ranges: values outside cannot be a measurement of
/// Earth's surface air. Plausibility (climatological limits, steps,
/// persistence) is quality control's job, not the parser's.
const LIMITS: [(&str, f64, f64); 7] = [
    ("latitude", -90.0, 90.0),
    ("longitude", -180.0, 180.0),
    ("temperature", -100.0, 100.0),
    ("humidity", 0.0, 100.0),
    ("pressure", 100.0, 1200.0),
    ("wind_speed", 0.0, 150.0),
    ("wind_direction", 0.0, 360.0),
];

/// Parses and validates one payload received on the topic of `station`.
pub fn parse_observation(
    station: &StationId,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<Observation, RejectReason> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(RejectReason::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let wire: Wire = serde_json::from_slice(payload).map_err(|e| RejectReason::MalformedJson {
        detail: e.to_string(),
    })?;
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
        })?
        .with_timezone(&Utc)
        // Storage keeps microseconds; the identity must survive a round trip.
        .trunc_subsecs(6);
    if observed_at > now + MAX_CLOCK_SKEW {
        return Err(RejectReason::TimestampInFuture {
            observed_at,
            max_skew_s: MAX_CLOCK_SKEW.num_seconds(),
        });
    }
    let values = [
        wire.latitude,
        wire.longitude,
        wire.temperature,
        wire.humidity,
        wire.pressure,
        wire.wind_speed,
        wire.wind_direction,
    ];
    for (value, (field, min, max)) in values.iter().zip(LIMITS) {
        if let Some(v) = *value
            && !(min..=max).contains(&v)
        {
            return Err(RejectReason::OutOfRange {
                field,
                value: v,
                min,
                max,
            });
        }
    }
    if values[2..].iter().all(Option::is_none) {
        return Err(RejectReason::NoMeasurements);
    }
    Ok(Observation {
        station_id: station.clone(),
        observed_at,
        latitude: wire.latitude,
        longitude: wire.longitude,
        temperature_c: wire.temperature,
        humidity_pct: wire.humidity,
        pressure_hpa: wire.pressure,
        wind_speed_ms: wire.wind_speed,
        // 360° and 0° are both north; store one of them.
        wind_direction_deg: wire
            .wind_direction
            .map(|d| if d == 360.0 { 0.0 } else { d }),
        #[cfg(feature = "fault-injection")]
        fault: wire.isobar_fault,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ws001() -> StationId {
        StationId::parse("WS001").unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2025-01-13T12:00:00Z".parse().unwrap()
    }

    const DESIGN_EXAMPLE: &str = r#"{"station_id":"WS001","latitude":40.7589,"longitude":-73.9851,
        "temperature":22.5,"humidity":65.2,"pressure":1013.8,
        "wind_speed":12.3,"wind_direction":225.0,
        "timestamp":"2025-01-13T10:00:00Z",
        "metadata":{"heat_index":24.1,"wind_chill":22.5,"dew_point":15.8}}"#;

    #[test]
    fn parses_the_design_example() {
        let obs = parse_observation(&ws001(), DESIGN_EXAMPLE.as_bytes(), now()).unwrap();
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

        #[test]
        fn accepted_values_are_within_their_limits(
            t in -150.0f64..150.0, rh in -10.0f64..110.0, p in 0.0f64..1500.0,
        ) {
            let payload = format!(
                r#"{{"temperature":{t},"humidity":{rh},"pressure":{p},"timestamp":"2025-01-13T10:00:00Z"}}"#
            );
            match parse_observation(&ws001(), payload.as_bytes(), now()) {
                Ok(obs) => {
                    prop_assert!((-100.0..=100.0).contains(&obs.temperature_c.unwrap()));
                    prop_assert!((0.0..=100.0).contains(&obs.humidity_pct.unwrap()));
                    prop_assert!((100.0..=1200.0).contains(&obs.pressure_hpa.unwrap()));
                }
                Err(e) => prop_assert_eq!(e.code(), "out_of_range"),
            }
        }
    }
}
