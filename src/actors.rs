//! The actors of the pipeline, one per file, each with its message type at
//! the top. Failures that are expected (a bad reading, the store down) are
//! handled inside an actor; a panic is a bug, and its supervisor's job.

pub mod aggregator;
pub mod alerter;
pub mod archiver;
pub mod bridge;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod kafka_ingest;
pub mod mqtt_server;
pub mod persister;
pub mod pipeline;
pub mod root;
pub mod station;
pub mod stations;

/// What a caught panic says.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
