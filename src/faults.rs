//! Test-only fault injection, in builds with the `fault-injection` feature
//! (the integration tests build with it; production builds have none of
//! this). A JSON reading that carries `"isobar_fault"` makes a part of the
//! pipeline fail on purpose, so tests can watch it recover:
//! - `"panic"`: its station actor panics while processing it;
//! - `"persister"` or `"persister:N"`: the persister fails on it, the first
//!   N times it sees it in this process (1 by default).
//!
//! - the MQTT payload `isobar_fault:ingest` makes ingest's poller panic,
//!   once per process.
//!
//! The marker is read from the payload itself, so the domain's types and
//! parsers know nothing of it, and the pipeline calls one hook per place
//! ([`at_ingest`], [`at_station`], [`at_persister`]): without the feature,
//! each is an empty function the compiler removes.

use serde::Deserialize;

/// Ingest, for each publish it takes: `isobar_fault:ingest` panics its
/// poller, once per process (the broker redelivers the message to the new
/// connection, which then takes it).
#[inline]
pub fn at_ingest(_payload: &[u8]) {
    #[cfg(feature = "fault-injection")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static FAILED: AtomicBool = AtomicBool::new(false);
        if _payload == b"isobar_fault:ingest" && !FAILED.swap(true, Ordering::SeqCst) {
            panic!("fault injected into ingest's poller");
        }
    }
}

/// A station actor, for a delivery it parsed readings from: `"panic"`
/// panics it.
#[inline]
pub fn at_station(_station: &str, _payload: &[u8]) {
    #[cfg(feature = "fault-injection")]
    if requested(_payload) == Some(Fault::StationPanic) {
        panic!("fault injected into station {_station}");
    }
}

/// The persister, for a delivery that carries readings:
/// `"persister:N"` fails it the first N times in the process (the message
/// comes back after each restart, routed again or redelivered by the
/// broker, and is stored once the faults are spent).
#[inline]
pub fn at_persister(_payload: &[u8]) {
    #[cfg(feature = "fault-injection")]
    if let Some(Fault::Persister(times)) = requested(_payload) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static FAILED: AtomicU32 = AtomicU32::new(0);
        if FAILED.fetch_add(1, Ordering::SeqCst) < times {
            panic!("fault injected into the persister");
        }
    }
}

/// A failure a reading asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    StationPanic,
    /// Fail the persister, this many times in the process.
    Persister(u32),
}

/// The fault a payload asks for, if it is a JSON object that asks for one.
pub fn requested(payload: &[u8]) -> Option<Fault> {
    #[derive(Deserialize)]
    struct Marker {
        isobar_fault: Option<String>,
    }
    let marker: Marker = serde_json::from_slice(payload).ok()?;
    match marker.isobar_fault?.as_str() {
        "panic" => Some(Fault::StationPanic),
        other => match other.strip_prefix("persister")? {
            "" => Some(Fault::Persister(1)),
            n => n.strip_prefix(':')?.parse().ok().map(Fault::Persister),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_asks_for_a_fault_by_name() {
        let ask = |json: &str| requested(json.as_bytes());
        assert_eq!(
            ask(r#"{"isobar_fault": "panic"}"#),
            Some(Fault::StationPanic)
        );
        assert_eq!(
            ask(r#"{"isobar_fault": "persister"}"#),
            Some(Fault::Persister(1))
        );
        assert_eq!(
            ask(r#"{"isobar_fault": "persister:4"}"#),
            Some(Fault::Persister(4))
        );
        assert_eq!(ask(r#"{"isobar_fault": "persister:x"}"#), None);
        assert_eq!(ask(r#"{"isobar_fault": "other"}"#), None);
        assert_eq!(ask(r#"{"temperature": 2.0}"#), None);
        assert_eq!(ask(r#"[{"isobar_fault": "panic"}]"#), None);
        assert_eq!(ask("not json"), None);
    }
}
