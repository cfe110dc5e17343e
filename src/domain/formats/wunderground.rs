//! The Weather Underground upload protocol: an HTTP GET whose query string
//! carries the station's credentials and measurements in US units. Consoles
//! and station software (Ambient, Ecowitt, WeeWX, Cumulus…) speak it
//! natively, so pointing them at isobar needs no code on the station.
//!
//! ```text
//! GET /weatherstation/updateweatherstation.php?ID=KNYNEWYO123&PASSWORD=s3cret
//!     &dateutc=2025-01-13+10%3A00%3A00&tempf=72.5&humidity=65&dewptf=60.1
//!     &baromin=29.92&absbaromin=29.52&windspeedmph=5.0&windgustmph=8.5
//!     &winddir=225&rainin=0&dailyrainin=0.12&UV=3&action=updateraw
//! ```
//!
//! | parameter      | observation                           |
//! |----------------|---------------------------------------|
//! | `ID`           | station id                            |
//! | `dateutc`      | `now` or `YYYY-MM-DD HH:MM:SS`, UTC   |
//! | `tempf`        | `temperature_c` from °F               |
//! | `humidity`     | `humidity_pct`                        |
//! | `baromin`      | `sea_level_pressure_hpa` from inHg    |
//! | `absbaromin`   | `pressure_hpa` (station) from inHg    |
//! | `windspeedmph` | `wind_speed_ms` from mph              |
//! | `windgustmph`  | `wind_gust_ms` from mph               |
//! | `winddir`      | `wind_direction_deg`                  |
//!
//! `-9999` or an empty value means the sensor has nothing to report. Every
//! other parameter (rain, solar, UV, soil, indoor, `dewptf`: isobar derives
//! its own) is ignored. `PASSWORD` is never read: it cannot end up in an
//! observation, a rejection or a log line.

use chrono::{DateTime, Utc};

use super::check_size;
use super::form::{self, UsUnits};
use crate::domain::observation::{Observation, RejectReason};
use crate::domain::station_id::StationId;

/// Parses and validates one upload from its raw query string (with or
/// without the leading `?`).
pub fn parse(query: &str, now: DateTime<Utc>) -> Result<Observation, RejectReason> {
    check_size(query.as_bytes())?;
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut id = None;
    let mut date_utc = None;
    let mut measured = UsUnits::default();
    let barometers = form::Barometers {
        sea_level: "baromin",
        station: "absbaromin",
    };
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "ID" => id = Some(value),
            "dateutc" => date_utc = Some(value),
            _ => measured.set(&name, &value, &barometers)?,
        }
    }
    let station = station(id.as_deref())?;
    let observed_at = form::observed_at(date_utc.as_deref(), now)?;
    measured
        .into_observation(station, observed_at)
        .validate(now)
}

fn station(id: Option<&str>) -> Result<StationId, RejectReason> {
    let id = id.ok_or_else(|| RejectReason::InvalidStationId {
        value: String::new(),
        reason: "the ID parameter is missing".to_owned(),
    })?;
    StationId::parse(id).map_err(|e| RejectReason::InvalidStationId {
        value: id.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MAX_PAYLOAD_BYTES;
    use proptest::prelude::*;

    const PASSWORD: &str = "s3cret-Pa55word";

    fn now() -> DateTime<Utc> {
        "2025-01-13T12:00:00Z".parse().unwrap()
    }

    fn upload(params: &str) -> String {
        format!("ID=KNYNEWYO123&PASSWORD={PASSWORD}&{params}&action=updateraw")
    }

    #[track_caller]
    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a value");
        assert!((actual - expected).abs() < 1e-6, "{actual} != {expected}");
    }

    const CONSOLE_UPLOAD: &str = "ID=KNYNEWYO123&PASSWORD=s3cret-Pa55word\
        &dateutc=2025-01-13+10%3A00%3A00&tempf=72.5&humidity=65&dewptf=60.1\
        &baromin=29.92&absbaromin=29.52&windspeedmph=5.0&windgustmph=8.5\
        &winddir=225&rainin=0&dailyrainin=0.12&solarradiation=312.5&UV=3\
        &indoortempf=70.2&indoorhumidity=40&softwaretype=WS-2902C\
        &action=updateraw&realtime=1&rtfreq=5";

    #[test]
    fn parses_a_console_upload_into_canonical_units() {
        let obs = parse(CONSOLE_UPLOAD, now()).unwrap();
        assert_eq!(obs.station_id.as_str(), "KNYNEWYO123");
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
        assert_eq!(obs.elevation_m, None);
    }

    #[test]
    fn dateutc_now_is_the_receiving_clock() {
        let obs = parse(&upload("dateutc=now&tempf=32"), now()).unwrap();
        assert_eq!(obs.observed_at, now());
        close(obs.temperature_c, 0.0);
    }

    #[test]
    fn the_missing_marker_leaves_a_measurement_out() {
        let obs = parse(
            &upload("dateutc=now&tempf=-9999&humidity=50&winddir=-9999"),
            now(),
        )
        .unwrap();
        assert_eq!(obs.temperature_c, None);
        assert_eq!(obs.wind_direction_deg, None);
        assert_eq!(obs.humidity_pct, Some(50.0));
    }

    #[test]
    fn a_leading_question_mark_is_accepted() {
        let obs = parse(&format!("?{}", upload("dateutc=now&tempf=50")), now()).unwrap();
        close(obs.temperature_c, 10.0);
    }

    #[test]
    fn rejections_name_their_reason() {
        let cases = [
            (
                format!("PASSWORD={PASSWORD}&dateutc=now&tempf=50"),
                "invalid_station_id",
            ),
            (
                format!("ID=K/NY&PASSWORD={PASSWORD}&dateutc=now&tempf=50"),
                "invalid_station_id",
            ),
            (upload("tempf=50"), "missing_timestamp"),
            (
                upload("dateutc=2025-01-13T10:00:00Z&tempf=50"),
                "invalid_timestamp",
            ),
            (
                upload("dateutc=2025-01-13+13%3A00%3A00&tempf=50"),
                "timestamp_in_future",
            ),
            (upload("dateutc=now&tempf=warm"), "invalid_value"),
            (upload("dateutc=now&humidity=150"), "out_of_range"),
            (
                upload("dateutc=now&tempf=-9999&rainin=0.1"),
                "no_measurements",
            ),
        ];
        for (query, code) in cases {
            let err = parse(&query, now()).unwrap_err();
            assert_eq!(err.code(), code, "{query}");
            assert!(!format!("{err:?} {err}").contains(PASSWORD), "{err:?}");
        }
        let big = upload(&"x".repeat(MAX_PAYLOAD_BYTES));
        assert_eq!(parse(&big, now()).unwrap_err().code(), "payload_too_large");
    }

    #[test]
    fn a_bad_value_says_which_parameter() {
        assert_eq!(
            parse(&upload("dateutc=now&windspeedmph=fast"), now())
                .unwrap_err()
                .to_string(),
            r#"windspeedmph = "fast" is not a number"#
        );
    }

    #[test]
    fn the_password_is_never_in_what_comes_back() {
        let obs = parse(CONSOLE_UPLOAD, now()).unwrap();
        assert!(!format!("{obs:?}").contains(PASSWORD));
    }

    fn param() -> impl Strategy<Value = (String, String)> {
        let name = prop_oneof![
            proptest::sample::select(vec![
                "ID",
                "PASSWORD",
                "dateutc",
                "tempf",
                "humidity",
                "baromin",
                "absbaromin",
                "windspeedmph",
                "windgustmph",
                "winddir",
                "rainin",
            ])
            .prop_map(str::to_owned),
            "\\PC{0,8}",
        ];
        let value = prop_oneof![
            "-?[0-9]{1,4}(\\.[0-9]{1,2})?",
            Just("-9999".to_owned()),
            Just("now".to_owned()),
            Just("2025-01-13 10:00:00".to_owned()),
            "\\PC{0,12}",
        ];
        (name, value)
    }

    proptest! {
        #[test]
        fn arbitrary_query_strings_never_panic(query in "\\PC{0,256}") {
            let _ = parse(&query, now());
        }

        #[test]
        fn arbitrary_uploads_never_leak_the_password(
            params in proptest::collection::vec(param(), 0..12),
            password in "pw[A-Za-z0-9]{12}",
        ) {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("PASSWORD", &password)
                .extend_pairs(params.iter().filter(|(name, _)| name != "PASSWORD"))
                .finish();
            let shown = match parse(&query, now()) {
                Ok(obs) => format!("{obs:?}"),
                Err(err) => format!("{err:?} {err}"),
            };
            prop_assert!(!shown.contains(&password), "{}", shown);
        }
    }
}
