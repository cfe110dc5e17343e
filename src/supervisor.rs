//! Restart policies for supervised actors, after Erlang/OTP: how often a
//! child may fail within a window before its supervisor gives up and
//! escalates, and how long to wait before each restart. ractor reports
//! failures; this module decides what to do about them. It knows nothing
//! about weather.

mod backoff;
mod intensity;

pub use backoff::Backoff;
pub use intensity::{Decision, RestartIntensity};

use std::time::Duration;

/// How a supervisor treats the failures of one child.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    /// At most this many restarts ...
    pub max_restarts: u32,
    /// ... within this sliding window; one more and the supervisor escalates.
    pub within: Duration,
    pub backoff: Backoff,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            within: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }
}
