//! isobar: a weather-station network in one daemon. Stations publish over
//! MQTT; each station has its own supervised actor that validates and
//! enriches readings; a persister stores them in batches and acknowledges
//! them only once stored; a hub pushes them to live dashboards.
#![forbid(unsafe_code)]

pub mod actors;
pub mod app;
pub mod broker;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod health;
pub mod publisher;
pub mod replay;
pub mod simulator;
pub mod storage;
pub mod supervisor;
pub mod telemetry;
pub mod web;

pub use app::App;
pub use config::Settings;
