//! Every input format's parser, fed arbitrary bytes: none may panic, and
//! whatever is accepted must have passed the shared checks.
#![no_main]

use chrono::{DateTime, Utc};
use isobar::domain::formats::{ecowitt, parse_mqtt, wunderground};
use isobar::domain::{Observation, StationId};
use libfuzzer_sys::fuzz_target;

fn check(observation: &Observation) {
    // Accepted observations are finite and within the physical limits.
    for v in [
        observation.temperature_c,
        observation.humidity_pct,
        observation.pressure_hpa,
        observation.wind_speed_ms,
        observation.wind_direction_deg,
    ]
    .into_iter()
    .flatten()
    {
        assert!(v.is_finite(), "{observation:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let station = StationId::parse("WS001").unwrap();
    let now: DateTime<Utc> = DateTime::from_timestamp(1_736_762_400, 0).unwrap();
    if let Ok(parsed) = parse_mqtt(&station, data, now) {
        parsed.observations.iter().for_each(check);
    }
    if let Ok(observation) = ecowitt::parse(&station, data, now) {
        check(&observation);
    }
    if let Ok(query) = std::str::from_utf8(data)
        && let Ok(observation) = wunderground::parse(query, now)
    {
        check(&observation);
    }
});
