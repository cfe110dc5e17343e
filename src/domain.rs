//! The weather domain: station identity, readings, their validation and the
//! metrics derived from them. Pure: no I/O, no actors, no clocks except the
//! ones passed in.

pub mod alerts;
mod derived;
pub mod formats;
mod observation;
pub mod qc;
mod reading;
pub mod rollup;
pub mod secrets;
mod station_id;
pub mod units;

pub use derived::{dew_point_c, heat_index_c, sea_level_pressure_hpa, wind_chill_c};
pub use formats::json::parse_observation;
pub use formats::{Parsed, Rejected, parse_mqtt};
pub use observation::{
    EXCERPT_CHARS, Excerpt, MAX_CLOCK_SKEW, MAX_PAYLOAD_BYTES, Name, Observation, RejectReason,
};
pub use qc::{QcConfig, QcFlag, QcReport, StationQc, Variable};
pub use reading::{Derived, DerivedInputs, Reading};
pub use rollup::{Resolution, Rollup};
pub use station_id::{StationId, StationIdError};
