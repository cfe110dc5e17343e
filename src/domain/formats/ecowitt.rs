//! Ecowitt's "customized" upload: gateways and consoles (GW1100, GW2000,
//! HP2550…) POST an `application/x-www-form-urlencoded` body in US units to
//! a server the owner configures. The body names no station, so the station
//! comes from the route, `/api/v1/ingest/ecowitt/{station_id}`.
//!
//! ```text
//! PASSKEY=A1B2C3D4E5F60718293A4B5C6D7E8F90&stationtype=GW1100A_V2.1.4
//! &runtime=86400&dateutc=2025-01-13+10:00:00&tempinf=70.3&humidityin=40
//! &baromrelin=29.920&baromabsin=29.520&tempf=72.5&humidity=65&winddir=225
//! &windspeedmph=5.0&windgustmph=8.5&maxdailygust=12.3&solarradiation=312.50
//! &uv=3&rainratein=0.000&dailyrainin=0.122&wh65batt=0&freq=868M
//! &model=GW1100A&interval=60
//! ```
//!
//! | parameter      | observation                           |
//! |----------------|---------------------------------------|
//! | `dateutc`      | `YYYY-MM-DD HH:MM:SS`, UTC            |
//! | `tempf`        | `temperature_c` from °F               |
//! | `humidity`     | `humidity_pct`                        |
//! | `baromrelin`   | `sea_level_pressure_hpa` from inHg    |
//! | `baromabsin`   | `pressure_hpa` (station) from inHg    |
//! | `windspeedmph` | `wind_speed_ms` from mph              |
//! | `windgustmph`  | `wind_gust_ms` from mph               |
//! | `winddir`      | `wind_direction_deg`                  |
//!
//! Indoor sensors (`tempinf`, `humidityin`), rain, solar, extra channels and
//! battery states are ignored; so is `-9999` or an empty value. `PASSKEY` is
//! never read: it cannot end up in an observation, a rejection or a log
//! line.

use chrono::{DateTime, Utc};

use super::check_size;
use super::form::{self, UsUnits};
use crate::domain::observation::{Observation, RejectReason};
use crate::domain::station_id::StationId;

/// Parses and validates one upload body POSTed for `station`.
pub fn parse(
    station: &StationId,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Observation, RejectReason> {
    check_size(body)?;
    let mut date_utc = None;
    let mut measured = UsUnits::default();
    let barometers = form::Barometers {
        sea_level: "baromrelin",
        station: "baromabsin",
    };
    for (name, value) in form_urlencoded::parse(body) {
        if name == "dateutc" {
            date_utc = Some(value);
        } else {
            measured.set(&name, &value, &barometers)?;
        }
    }
    let observed_at = form::observed_at(date_utc.as_deref(), now)?;
    measured
        .into_observation(station.clone(), observed_at)
        .validate(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MAX_PAYLOAD_BYTES;
    use proptest::prelude::*;

    const PASSKEY: &str = "A1B2C3D4E5F60718293A4B5C6D7E8F90";

    const GW1100_BODY: &str = "PASSKEY=A1B2C3D4E5F60718293A4B5C6D7E8F90\
        &stationtype=GW1100A_V2.1.4&runtime=86400&dateutc=2025-01-13+10:00:00\
        &tempinf=70.3&humidityin=40&baromrelin=29.920&baromabsin=29.520\
        &tempf=72.5&humidity=65&winddir=225&windspeedmph=5.0&windgustmph=8.5\
        &maxdailygust=12.3&solarradiation=312.50&uv=3&rainratein=0.000\
        &eventrainin=0.000&hourlyrainin=0.000&dailyrainin=0.122\
        &wh65batt=0&freq=868M&model=GW1100A&interval=60";

    fn garden() -> StationId {
        StationId::parse("garden-gw1100").unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2025-01-13T12:00:00Z".parse().unwrap()
    }

    fn body(params: &str) -> Vec<u8> {
        format!("PASSKEY={PASSKEY}&stationtype=GW2000A_V3.1.2&{params}&model=GW2000A").into_bytes()
    }

    #[track_caller]
    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a value");
        assert!((actual - expected).abs() < 1e-6, "{actual} != {expected}");
    }

    #[test]
    fn parses_a_gateway_upload_into_canonical_units() {
        let obs = parse(&garden(), GW1100_BODY.as_bytes(), now()).unwrap();
        assert_eq!(obs.station_id, garden());
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
    }

    #[test]
    fn indoor_sensors_are_not_the_station() {
        let err = parse(
            &garden(),
            &body("dateutc=2025-01-13+10:00:00&tempinf=70.3&humidityin=40"),
            now(),
        )
        .unwrap_err();
        assert_eq!(err, RejectReason::NoMeasurements);
    }

    #[test]
    fn rejections_name_their_reason() {
        let cases = [
            (body("tempf=50"), "missing_timestamp"),
            (body("dateutc=13%2F01%2F2025&tempf=50"), "invalid_timestamp"),
            (
                body("dateutc=2025-01-14+10:00:00&tempf=50"),
                "timestamp_in_future",
            ),
            (
                body("dateutc=2025-01-13+10:00:00&baromrelin=--"),
                "invalid_value",
            ),
            (
                body("dateutc=2025-01-13+10:00:00&winddir=400"),
                "out_of_range",
            ),
            (vec![0xff, 0xfe, b'=', 0x80], "missing_timestamp"),
        ];
        for (body, code) in cases {
            let err = parse(&garden(), &body, now()).unwrap_err();
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(&body));
            assert!(!format!("{err:?} {err}").contains(PASSKEY), "{err:?}");
        }
        let big = body(&"x".repeat(MAX_PAYLOAD_BYTES));
        assert_eq!(
            parse(&garden(), &big, now()).unwrap_err().code(),
            "payload_too_large"
        );
    }

    #[test]
    fn the_passkey_is_never_in_what_comes_back() {
        let obs = parse(&garden(), GW1100_BODY.as_bytes(), now()).unwrap();
        assert!(!format!("{obs:?}").contains(PASSKEY));
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&garden(), &body, now());
        }

        #[test]
        fn arbitrary_form_strings_never_panic(body in "\\PC{0,256}") {
            let _ = parse(&garden(), body.as_bytes(), now());
        }

        #[test]
        fn accepted_uploads_never_show_the_passkey(
            tempf in -80.0f64..150.0,
            humidity in -5.0f64..105.0,
            passkey in "[0-9A-F]{32}",
        ) {
            let body = format!(
                "PASSKEY={passkey}&dateutc=2025-01-13+10:00:00&tempf={tempf}&humidity={humidity}"
            );
            let shown = match parse(&garden(), body.as_bytes(), now()) {
                Ok(obs) => format!("{obs:?}"),
                Err(err) => format!("{err:?} {err}"),
            };
            prop_assert!(!shown.contains(&passkey), "{}", shown);
        }
    }
}
