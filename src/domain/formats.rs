//! Input formats. Each turns what a station sends into [`Observation`]s in
//! canonical units, then applies the shared checks.
//!
//! MQTT messages go through [`parse_mqtt`], which tells the formats apart by
//! their content:
//!
//! - a JSON array is a batch of isobar JSON objects ([`json`]), each accepted
//!   or rejected on its own, so a station catching up after an outage can
//!   send its backlog in one message:
//!
//!   ```json
//!   [{"station_id": "WS001", "temperature": 21.0, "timestamp": "2025-01-13T10:00:00Z"},
//!    {"station_id": "WS001", "temperature": 21.4, "timestamp": "2025-01-13T10:01:00Z"}]
//!   ```
//!
//! - a JSON object with `dateTime` or `usUnits` is a WeeWX record
//!   ([`weewx`]);
//! - any other message is one isobar JSON object.
//!
//! The HTTP uploads have their own entry points: [`wunderground::parse`]
//! and [`ecowitt::parse`].
//!
//! [`Observation`]: super::Observation

pub mod ecowitt;
mod form;
pub mod json;
pub mod weewx;
pub mod wunderground;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::observation::{MAX_PAYLOAD_BYTES, Observation, RejectReason};
use super::station_id::StationId;

/// What one message yielded: the observations to store and, for a batch,
/// the elements rejected one by one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub observations: Vec<Observation>,
    pub rejected: Vec<Rejected>,
}

/// One element of a batch that was not accepted, with its own bytes so it
/// can be quarantined without the good elements around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub reason: RejectReason,
    pub raw: Vec<u8>,
}

/// Parses and validates one MQTT message received on the topic of
/// `station`, in whichever format its content shows. `Err` rejects the
/// whole message; a batch with some bad elements is `Ok`, and lists them in
/// [`Parsed::rejected`].
pub fn parse_mqtt(
    station: &StationId,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<Parsed, RejectReason> {
    check_size(payload)?;
    if payload.trim_ascii_start().starts_with(b"[") {
        return parse_batch(station, payload, now);
    }
    let observation = if is_weewx(payload) {
        weewx::parse(station, payload, now)?
    } else {
        json::parse_observation(station, payload, now)?
    };
    Ok(Parsed {
        observations: vec![observation],
        rejected: Vec::new(),
    })
}

fn parse_batch(
    station: &StationId,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<Parsed, RejectReason> {
    let elements: Vec<&RawValue> = serde_json::from_slice(payload).map_err(malformed_json)?;
    if elements.is_empty() {
        return Err(RejectReason::EmptyBatch);
    }
    let mut parsed = Parsed::default();
    for element in elements {
        let raw = element.get().as_bytes();
        match json::parse_observation(station, raw, now) {
            Ok(observation) => parsed.observations.push(observation),
            Err(reason) => parsed.rejected.push(Rejected {
                reason,
                raw: raw.to_vec(),
            }),
        }
    }
    Ok(parsed)
}

/// The keys that set a WeeWX record apart from a isobar JSON object; every
/// other value is skipped without being built.
#[derive(Deserialize)]
struct WeewxKeys {
    #[serde(rename = "dateTime")]
    date_time: Option<IgnoredAny>,
    #[serde(rename = "usUnits")]
    us_units: Option<IgnoredAny>,
}

fn is_weewx(payload: &[u8]) -> bool {
    serde_json::from_slice::<WeewxKeys>(payload)
        .is_ok_and(|keys| keys.date_time.is_some() || keys.us_units.is_some())
}

fn check_size(payload: &[u8]) -> Result<(), RejectReason> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(RejectReason::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

fn malformed_json(error: serde_json::Error) -> RejectReason {
    RejectReason::MalformedJson {
        detail: error.to_string(),
    }
}

fn invalid_value(field: &str, value: &str, expected: &'static str) -> RejectReason {
    RejectReason::InvalidValue {
        field: field.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    fn ws001() -> StationId {
        StationId::parse("WS001").unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2025-01-13T12:00:00Z".parse().unwrap()
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        rfc3339.parse().unwrap()
    }

    #[test]
    fn a_single_object_is_one_design_observation() {
        let parsed = parse_mqtt(
            &ws001(),
            br#"{"station_id":"WS001","temperature":22.5,"timestamp":"2025-01-13T10:00:00Z"}"#,
            now(),
        )
        .unwrap();
        assert_eq!(parsed.rejected, []);
        assert_eq!(parsed.observations.len(), 1);
        assert_eq!(parsed.observations[0].temperature_c, Some(22.5));
    }

    #[test]
    fn a_weewx_record_is_recognised_by_its_keys() {
        let parsed = parse_mqtt(
            &ws001(),
            br#"{"dateTime": "1736762400.0", "usUnits": "1.0", "outTemp_F": "72.5"}"#,
            now(),
        )
        .unwrap();
        let obs = &parsed.observations[0];
        assert_eq!(obs.observed_at, at("2025-01-13T10:00:00Z"));
        assert!((obs.temperature_c.unwrap() - 22.5).abs() < 1e-9);
    }

    #[test]
    fn a_batch_keeps_its_good_elements_and_rejects_the_bad_one_by_one() {
        let payload = br#"[
            {"temperature": 21.0, "timestamp": "2025-01-13T10:00:00Z"},
            {"station_id": "WS002", "temperature": 21.5, "timestamp": "2025-01-13T10:01:00Z"},
            {"temperature": 22.0, "timestamp": "2025-01-13T10:02:00Z"},
            {"humidity": 140, "timestamp": "2025-01-13T10:03:00Z"},
            "not an object"
        ]"#;
        let parsed = parse_mqtt(&ws001(), payload, now()).unwrap();
        let times: Vec<_> = parsed.observations.iter().map(|o| o.observed_at).collect();
        assert_eq!(
            times,
            [at("2025-01-13T10:00:00Z"), at("2025-01-13T10:02:00Z")]
        );
        let rejected: Vec<_> = parsed
            .rejected
            .iter()
            .map(|r| (r.reason.code(), String::from_utf8(r.raw.clone()).unwrap()))
            .collect();
        assert_eq!(
            rejected,
            [
                (
                    "station_mismatch",
                    r#"{"station_id": "WS002", "temperature": 21.5, "timestamp": "2025-01-13T10:01:00Z"}"#
                        .to_owned()
                ),
                (
                    "out_of_range",
                    r#"{"humidity": 140, "timestamp": "2025-01-13T10:03:00Z"}"#.to_owned()
                ),
                ("malformed_json", r#""not an object""#.to_owned()),
            ]
        );
    }

    #[test]
    fn a_batch_whose_every_element_fails_is_still_a_batch() {
        let parsed = parse_mqtt(&ws001(), br#"[{"temperature": 1}]"#, now()).unwrap();
        assert_eq!(parsed.observations, []);
        assert_eq!(parsed.rejected[0].reason, RejectReason::MissingTimestamp);
    }

    #[test]
    fn whole_message_rejections_name_their_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "malformed_json"),
            (b"not json", "malformed_json"),
            (b"[]", "empty_batch"),
            (b"  [ ] ", "empty_batch"),
            (br#"[{"temperature": 1}"#, "malformed_json"),
            (
                br#"{"dateTime": "1736762400", "outTemp": "50"}"#,
                "missing_unit",
            ),
        ];
        for (payload, code) in cases {
            let err = parse_mqtt(&ws001(), payload, now()).unwrap_err();
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(payload));
        }
        let mut big = b"[".to_vec();
        big.resize(MAX_PAYLOAD_BYTES + 1, b' ');
        assert_eq!(
            parse_mqtt(&ws001(), &big, now()).unwrap_err().code(),
            "payload_too_large"
        );
    }

    /// Keys each format knows, so generated objects reach past the first
    /// lookup of every parser.
    const KEYS: &[&str] = &[
        "station_id",
        "timestamp",
        "temperature",
        "humidity",
        "pressure",
        "wind_speed",
        "dateTime",
        "usUnits",
        "outTemp",
        "outTemp_F",
        "outTemp_degree_K",
        "outHumidity",
        "barometer_inHg",
        "pressure_mbar",
        "windSpeed_kph",
        "windDir",
        "altitude_foot",
    ];

    fn json_key() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(KEYS).prop_map(str::to_owned),
            "\\PC{0,12}",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| Value::String(f.to_string())),
            "(-?[0-9]{1,4}(\\.[0-9]{1,2})?|2025-01-13T10:00:00Z|1736762400\\.0|1|16|17)"
                .prop_map(Value::String),
            "\\PC{0,16}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec((json_key(), inner), 0..8)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_mqtt(&ws001(), &bytes, now());
        }

        #[test]
        fn arbitrary_json_never_panics(value in json_value()) {
            let payload = serde_json::to_vec(&value).unwrap();
            if let Ok(parsed) = parse_mqtt(&ws001(), &payload, now()) {
                for obs in &parsed.observations {
                    prop_assert_eq!(&obs.station_id, &ws001());
                }
            }
        }
    }
}
