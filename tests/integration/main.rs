//! The integration tests, in one binary: each module starts the real
//! daemon (and, where a test needs them, the machine's Mosquitto,
//! PostgreSQL and Redis) and drives it from outside, as its users do.
//! One binary links the daemon once for all of them.

mod common;

mod alerts;
mod archive;
mod cli;
mod cluster;
mod dashboard;
mod embedded_server;
mod external_broker;
mod faults;
mod formats;
mod history;
mod live;
mod pipeline;
mod postgres;
mod quality;
mod redis;
mod replay;
mod rollups;
mod security;
// Makes station actors and the web server fail on purpose.
#[cfg(feature = "fault-injection")]
mod supervision;
mod telemetry;
