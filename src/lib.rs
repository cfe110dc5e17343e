//! isobar: a weather-station network in one daemon. Stations publish
//! readings over MQTT or upload them over HTTP; each station has its own
//! supervised actor that validates, quality-controls and enriches them; a
//! persister stores them in batches and acknowledges them only once stored;
//! rollups, alerts, the data lake and live dashboards are fed from what was
//! stored.
//!
//! # Layout
//!
//! A reading's path, and where each step lives:
//!
//! 1. A source hands a message in through the one front door,
//!    [`actors::pipeline::Pipeline::submit`]: MQTT in [`actors::ingest`],
//!    HTTP uploads in [`web`] (`web/ingest.rs`). A [`delivery::Delivery`]
//!    carries it from there, with the duty to acknowledge it to its source
//!    once stored; one dropped on the way reports back to the pipeline.
//! 2. The stations supervisor ([`actors::stations`]) routes it to the
//!    station's actor ([`actors::station`]), which parses it
//!    ([`domain::formats`]), checks it ([`domain::qc`]) and derives metrics
//!    ([`domain::derived`](domain)).
//! 3. The persister ([`actors::persister`]) stores batches through
//!    [`storage`] and acknowledges each message once its batch commits, in
//!    arrival order ([`delivery::AckSequencer`]).
//! 4. It publishes the new readings once on its
//!    [`StoredPort`](actors::pipeline::StoredPort): the aggregator (rollups),
//!    the archiver (data lake), the alerter and the hub (websocket clients)
//!    subscribe.
//!
//! Around it: [`actors::pipeline`] holds the typed addresses the actors
//! reach each other by; [`actors::root`] is the supervision tree, built on
//! the policy-only [`supervisor`]; [`app`] builds everything from the
//! [`config`] and drains it on shutdown; [`web`] serves the REST API, the
//! websocket and the dashboard; [`broker`] is the embedded MQTT broker;
//! [`telemetry`] sets up logs and traces; [`replay`] hands a recorded file
//! in as a source of its own. `docs/architecture.md` explains the
//! decisions.
//!
//! The modules form layers, each using only those below it (a unit test,
//! `src/layering.rs`, checks it): [`domain`] and [`supervisor`]; [`config`];
//! [`storage`] and the other services; [`delivery`]; [`actors`]; [`web`]
//! and the sources; [`app`].
#![forbid(unsafe_code)]

pub mod actors;
pub mod app;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod faults;
pub mod health;
#[cfg(test)]
mod layering;
pub mod memory;
pub mod publisher;
pub mod replay;
pub mod simulator;
pub mod storage;
pub mod supervisor;
pub mod telemetry;
pub mod web;

pub use app::App;
pub use config::Settings;
