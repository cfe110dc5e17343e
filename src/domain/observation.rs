//! An observation as a station reported it, converted to canonical units,
//! and the checks every input format shares: physically possible values,
//! a plausible time, at least one measurement.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use super::station_id::StationId;

/// Largest payload accepted; larger ones are quarantined unparsed.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// The earliest observation time accepted: anything older is not a
/// measurement, and would not fit every store's time type.
pub const EARLIEST_OBSERVATION: &str = "1900-01-01T00:00:00Z";

/// How far ahead of the receiving clock an observation time may be.
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// One observation in canonical units (°C, %, hPa, m/s, degrees true,
/// metres, UTC). Built by an input format, then checked by
/// [`Observation::validate`]: code after that may rely on its values being
/// finite, its position possible and at least one measurement possible. A
/// measurement may still be impossible: quality control fails it.
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
    pub wind_gust_ms: Option<f64>,
    /// Station elevation above mean sea level, when the station reports it.
    pub elevation_m: Option<f64>,
    /// Pressure reduced to sea level, when the station reports it.
    pub sea_level_pressure_hpa: Option<f64>,
}

/// Text from outside (a topic, a station id, a value) as a reason or a log
/// line quotes it: in quotes, control characters escaped, at most
/// [`EXCERPT_CHARS`] characters, with the full length after the cut. So
/// input can neither forge a log line nor make one (or a stored reason)
/// as long as itself.
pub struct Excerpt<'a>(pub &'a str);

/// Characters of outside text a reason or a log line quotes.
pub const EXCERPT_CHARS: usize = 64;

/// `text` cut to [`EXCERPT_CHARS`] characters, on a character boundary, and
/// whether it was cut.
fn cut(text: &str) -> (&str, bool) {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

impl std::fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (shown, was_cut) = cut(self.0);
        write!(f, "{shown:?}")?;
        if was_cut {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// A name from outside (a payload's field, a topic), as a reason or a log
/// field shows it: like [`Excerpt`], without the quotes.
pub struct Name<'a>(pub &'a str);

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (shown, was_cut) = cut(self.0);
        for c in shown.chars() {
            write!(f, "{}", c.escape_debug())?;
        }
        if was_cut {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// Why a message was not accepted as a reading. Every variant has a stable
/// `code` used in the quarantine table and in metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RejectReason {
    #[error("payload is {len} bytes; the limit is {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("payload is not valid reading JSON: {detail}")]
    MalformedJson { detail: String },
    #[error("topic {} does not match {}", Excerpt(.topic), Excerpt(.filter))]
    InvalidTopic { topic: String, filter: String },
    #[error("{} may not publish to {} (mqtt.acl_file)", .user.as_deref().map_or_else(|| "an anonymous client".to_owned(), |u| format!("user {}", Excerpt(u))), Excerpt(.topic))]
    NotAuthorized { user: Option<String>, topic: String },
    #[error("station id {} is invalid: {reason}", Excerpt(.value))]
    InvalidStationId { value: String, reason: String },
    #[error("payload station_id {} does not match the topic's station {}", Excerpt(.payload), Excerpt(.topic))]
    StationMismatch { topic: String, payload: String },
    #[error("timestamp is missing")]
    MissingTimestamp,
    #[error("timestamp {} is not {expected}", Excerpt(.value))]
    InvalidTimestamp {
        value: String,
        expected: &'static str,
    },
    #[error("timestamp {observed_at} is more than {max_skew_s} s ahead of the receiving clock")]
    TimestampInFuture {
        observed_at: DateTime<Utc>,
        max_skew_s: i64,
    },
    #[error("timestamp {observed_at} is before {EARLIEST_OBSERVATION}")]
    TimestampTooOld { observed_at: DateTime<Utc> },
    #[error("{field} = {value} is outside the possible range [{min}, {max}]")]
    OutOfRange {
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("payload has no measurement (temperature, humidity, pressure or wind)")]
    NoMeasurements,
    #[error("{} = {} is not {expected}", Name(.field), Excerpt(.value))]
    InvalidValue {
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error("{} is in {}, a unit isobar does not convert", Name(.field), Excerpt(.unit))]
    UnknownUnit { field: String, unit: String },
    #[error("{} names no unit and the payload names no unit system", Name(.field))]
    MissingUnit { field: String },
    #[error("the batch is an empty array")]
    EmptyBatch,
    #[error("processing this message panicked: {detail}")]
    ProcessingPanicked { detail: String },
    #[error("the message could not be processed: its actor stopped with it {attempts} times")]
    ProcessingFailed { attempts: u32 },
    #[error("the store refused what this message holds: {detail}")]
    StoreRejected { detail: String },
    #[error("station {station} is not registered (admission.policy = \"registered\")")]
    StationNotRegistered { station: StationId },
    #[error(
        "station {station} is new and {max} stations are supervised already (admission.max_stations)"
    )]
    TooManyStations { station: StationId, max: usize },
}

impl RejectReason {
    pub fn code(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::MalformedJson { .. } => "malformed_json",
            Self::InvalidTopic { .. } => "invalid_topic",
            Self::NotAuthorized { .. } => "not_authorized",
            Self::InvalidStationId { .. } => "invalid_station_id",
            Self::StationMismatch { .. } => "station_mismatch",
            Self::MissingTimestamp => "missing_timestamp",
            Self::InvalidTimestamp { .. } => "invalid_timestamp",
            Self::TimestampInFuture { .. } => "timestamp_in_future",
            Self::TimestampTooOld { .. } => "timestamp_too_old",
            Self::OutOfRange { .. } => "out_of_range",
            Self::NoMeasurements => "no_measurements",
            Self::InvalidValue { .. } => "invalid_value",
            Self::UnknownUnit { .. } => "unknown_unit",
            Self::MissingUnit { .. } => "missing_unit",
            Self::EmptyBatch => "empty_batch",
            Self::ProcessingPanicked { .. } => "processing_panicked",
            Self::ProcessingFailed { .. } => "processing_failed",
            Self::StoreRejected { .. } => "store_rejected",
            Self::StationNotRegistered { .. } => "station_not_registered",
            Self::TooManyStations { .. } => "too_many_stations",
        }
    }
}

/// Physically possible ranges: values outside cannot be a measurement of
/// Earth's surface air. A position outside its range makes a message no
/// reading; a measurement outside its range is kept and failed by quality
/// control, so the reading's other values are not lost. Plausibility
/// (climatological limits, steps, persistence) is quality control's job,
/// not the parser's.
const LIMITS: [(&str, f64, f64); 10] = [
    ("latitude", -90.0, 90.0),
    ("longitude", -180.0, 180.0),
    ("elevation", -500.0, 9000.0),
    ("temperature", -100.0, 100.0),
    ("humidity", 0.0, 105.0),
    ("pressure", 100.0, 1200.0),
    ("sea_level_pressure", 500.0, 1200.0),
    ("wind_speed", 0.0, 150.0),
    ("wind_gust", 0.0, 150.0),
    ("wind_direction", 0.0, 360.0),
];

/// Fields counted as measurements (position and elevation are not).
const FIRST_MEASUREMENT: usize = 3;

/// The physically possible range of a measured field, by its name in
/// [`LIMITS`] (`temperature`, `humidity`, …).
pub(crate) fn possible_range(field: &str) -> Option<(f64, f64)> {
    LIMITS[FIRST_MEASUREMENT..]
        .iter()
        .find(|(name, _, _)| *name == field)
        .map(|(_, min, max)| (*min, *max))
}

impl Observation {
    /// An observation of `station` at `observed_at` with nothing measured
    /// yet; formats fill in what they have.
    pub fn new(station_id: StationId, observed_at: DateTime<Utc>) -> Self {
        Self {
            station_id,
            // Storage keeps microseconds; the identity must survive a round trip.
            observed_at: observed_at.trunc_subsecs(6),
            latitude: None,
            longitude: None,
            temperature_c: None,
            humidity_pct: None,
            pressure_hpa: None,
            wind_speed_ms: None,
            wind_direction_deg: None,
            wind_gust_ms: None,
            elevation_m: None,
            sea_level_pressure_hpa: None,
        }
    }

    /// The checks every format shares: a time not ahead of `now` by more
    /// than [`MAX_CLOCK_SKEW`], finite values, a possible position, and at
    /// least one measurement within its possible range (the others, kept,
    /// fail quality control).
    pub fn validate(self, now: DateTime<Utc>) -> Result<Self, RejectReason> {
        let earliest: DateTime<Utc> = EARLIEST_OBSERVATION.parse().expect("a valid constant");
        if self.observed_at < earliest {
            return Err(RejectReason::TimestampTooOld {
                observed_at: self.observed_at,
            });
        }
        if self.observed_at > now + MAX_CLOCK_SKEW {
            return Err(RejectReason::TimestampInFuture {
                observed_at: self.observed_at,
                max_skew_s: MAX_CLOCK_SKEW.num_seconds(),
            });
        }
        let values = [
            self.latitude,
            self.longitude,
            self.elevation_m,
            self.temperature_c,
            self.humidity_pct,
            self.pressure_hpa,
            self.sea_level_pressure_hpa,
            self.wind_speed_ms,
            self.wind_gust_ms,
            self.wind_direction_deg,
        ];
        let out_of_range = |field, value, min, max| RejectReason::OutOfRange {
            field,
            value,
            min,
            max,
        };
        let mut impossible = None;
        let mut possible = false;
        for (i, (value, (field, min, max))) in values.iter().zip(LIMITS).enumerate() {
            let Some(v) = *value else { continue };
            if (min..=max).contains(&v) {
                possible |= i >= FIRST_MEASUREMENT;
            } else if i < FIRST_MEASUREMENT || !v.is_finite() {
                // NaN fails `contains` too, and is reported here.
                return Err(out_of_range(field, v, min, max));
            } else {
                impossible.get_or_insert_with(|| out_of_range(field, v, min, max));
            }
        }
        if !possible {
            return Err(impossible.unwrap_or(RejectReason::NoMeasurements));
        }
        // Directions are kept as reported: by WMO and METAR convention 360
        // is north and 0 goes with calm, a difference QC relies on.
        Ok(self)
    }
}

#[cfg(test)]
mod excerpt_tests {
    use super::*;

    /// Outside text can neither break a log line nor make a long one.
    #[test]
    fn an_excerpt_escapes_and_cuts() {
        assert_eq!(Excerpt("WS001").to_string(), "\"WS001\"");
        assert_eq!(
            Excerpt("a\nforged log line\u{1b}[31m\0").to_string(),
            "\"a\\nforged log line\\u{1b}[31m\\0\""
        );
        let long = "x".repeat(60_000);
        let shown = Excerpt(&long).to_string();
        assert_eq!(shown, format!("\"{}\"… (60000 bytes)", "x".repeat(64)));
        // Cut on a character boundary.
        let accents = "é".repeat(70);
        assert_eq!(
            Excerpt(&accents).to_string(),
            format!("\"{}\"… (140 bytes)", "é".repeat(64))
        );
        assert_eq!(Name("temp\nerature").to_string(), "temp\\nerature");
        assert_eq!(
            Name(&long).to_string(),
            format!("{}… (60000 bytes)", "x".repeat(64))
        );
        // A reason quoting a 60 KB station id stays short.
        let reason = RejectReason::InvalidStationId {
            value: long,
            reason: "too long".into(),
        };
        assert!(reason.to_string().len() < 200, "{reason}");
    }
}
