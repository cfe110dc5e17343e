//! The weather domain: station identity, readings, their validation and the
//! metrics derived from them. Pure: no I/O, no actors, no clocks except the
//! ones passed in.

mod derived;
mod payload;
mod reading;
mod station_id;

pub use derived::{dew_point_c, heat_index_c, wind_chill_c};
pub use payload::{Observation, RejectReason, parse_observation};
pub use reading::{Derived, Reading};
pub use station_id::{StationId, StationIdError};
