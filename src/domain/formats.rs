//! Input formats. Each turns what a station sends into [`Observation`]s in
//! canonical units, then applies the shared checks.
//!
//! [`Observation`]: super::Observation

pub mod json;
