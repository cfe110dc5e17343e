//! Recorded observations from a CSV file, through the same pipeline as a
//! live station's (parsing, quality control, storage), in one of two ways:
//!
//! - `isobar replay FILE` publishes them over MQTT to a running daemon, at
//!   full speed or at a chosen rate ([`publish`]);
//! - `isobar run --replay FILE` hands them in from inside the daemon, as a
//!   source of their own ([`ReplaySource`]): each row goes through the
//!   pipeline's front door with an acknowledgement that counts it, and the
//!   daemon reports how many were stored once all are.
//!
//! The header names each column, with its unit after the last `_` where
//! the variable has one:
//!
//! ```csv
//! time,station,temperature_F,humidity_pct,pressure_inHg,wind_speed_mph,wind_direction_deg
//! 2025-01-13T10:00:00Z,WS001,72.5,65,29.92,5.0,225
//! ```
//!
//! | column | units |
//! |---|---|
//! | `time` (or `timestamp`, `observed_at`) | RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or Unix seconds |
//! | `station` (or `station_id`) | — |
//! | `temperature` | `C`, `F`, `K` |
//! | `humidity` | `pct` |
//! | `pressure`, `sea_level_pressure` | `hPa`, `mbar`, `inHg`, `mmHg`, `kPa` |
//! | `wind_speed`, `wind_gust` | `ms`, `kmh`, `mph`, `knots` |
//! | `wind_direction` | `deg` |
//! | `latitude`, `longitude` | `deg` (or no unit) |
//! | `elevation` | `m`, `ft` |
//!
//! An empty cell is a missing value. Rows are published in file order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::actors::pipeline::Pipeline;
use crate::delivery::{Ack, Acknowledge, Arrival, Format, Verdict};
use crate::domain::{RejectReason, StationId, units};
use crate::publisher::Publisher;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplayError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("header column {column:?}: {reason}")]
    Header { column: String, reason: String },
    #[error("line {line}: {reason}")]
    Row { line: u64, reason: String },
}

/// One recorded observation, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub station: String,
    /// An isobar JSON payload, in canonical units.
    pub payload: Value,
}

#[derive(Debug, Clone, Copy)]
enum Column {
    Time,
    Station,
    /// A measurement: its payload field and the conversion to its unit.
    Value(&'static str, fn(f64) -> f64),
}

fn identity(v: f64) -> f64 {
    v
}

fn column(name: &str) -> Result<Column, String> {
    match name {
        "time" | "timestamp" | "observed_at" => return Ok(Column::Time),
        "station" | "station_id" => return Ok(Column::Station),
        "humidity" => return Ok(Column::Value("humidity", identity)),
        "latitude" | "longitude" => {
            let field = if name == "latitude" {
                "latitude"
            } else {
                "longitude"
            };
            return Ok(Column::Value(field, identity));
        }
        _ => {}
    }
    let (variable, unit) = name
        .rsplit_once('_')
        .ok_or("expected <variable>_<unit>, such as temperature_C")?;
    let pressure = |field| -> Result<Column, String> {
        let convert: fn(f64) -> f64 = match unit {
            "hPa" | "hpa" | "mbar" | "mb" => identity,
            "inHg" | "inhg" => units::inhg_to_hpa,
            "mmHg" | "mmhg" => units::mmhg_to_hpa,
            "kPa" | "kpa" => units::kpa_to_hpa,
            _ => {
                return Err(format!(
                    "unknown pressure unit {unit:?}; use hPa, mbar, inHg, mmHg or kPa"
                ));
            }
        };
        Ok(Column::Value(field, convert))
    };
    let speed = |field| -> Result<Column, String> {
        let convert: fn(f64) -> f64 = match unit {
            "ms" | "mps" => identity,
            "kmh" | "kph" => units::kmh_to_ms,
            "mph" => units::mph_to_ms,
            "knots" | "kt" | "knot" => units::knots_to_ms,
            _ => {
                return Err(format!(
                    "unknown speed unit {unit:?}; use ms, kmh, mph or knots"
                ));
            }
        };
        Ok(Column::Value(field, convert))
    };
    match variable {
        "temperature" => {
            let convert: fn(f64) -> f64 = match unit {
                "C" | "c" => identity,
                "F" | "f" => units::fahrenheit_to_celsius,
                "K" | "k" => units::kelvin_to_celsius,
                _ => return Err(format!("unknown temperature unit {unit:?}; use C, F or K")),
            };
            Ok(Column::Value("temperature", convert))
        }
        "humidity" if unit == "pct" => Ok(Column::Value("humidity", identity)),
        "pressure" => pressure("pressure"),
        "sea_level_pressure" => pressure("sea_level_pressure"),
        "wind_speed" => speed("wind_speed"),
        "wind_gust" => speed("wind_gust"),
        "wind_direction" if unit == "deg" => Ok(Column::Value("wind_direction", identity)),
        "latitude" | "longitude" if unit == "deg" => Ok(Column::Value(
            if variable == "latitude" {
                "latitude"
            } else {
                "longitude"
            },
            identity,
        )),
        "elevation" => match unit {
            "m" => Ok(Column::Value("elevation", identity)),
            "ft" => Ok(Column::Value("elevation", units::feet_to_m)),
            _ => Err(format!("unknown elevation unit {unit:?}; use m or ft")),
        },
        _ => Err("not a known variable and unit".to_owned()),
    }
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    let seconds: f64 = raw.parse().ok()?;
    DateTime::from_timestamp_micros((seconds * 1e6).round() as i64)
}

/// Reads the whole CSV text into payloads; the first bad header or row is
/// an error naming it.
pub fn parse(text: &str) -> Result<Vec<Recorded>, ReplayError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ReplayError::Header {
            column: String::new(),
            reason: e.to_string(),
        })?
        .clone();
    let columns = headers
        .iter()
        .map(|h| {
            column(h).map_err(|reason| ReplayError::Header {
                column: h.to_owned(),
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for required in ["time", "station"] {
        let present = columns.iter().any(|c| match c {
            Column::Time => required == "time",
            Column::Station => required == "station",
            Column::Value(..) => false,
        });
        if !present {
            return Err(ReplayError::Header {
                column: required.to_owned(),
                reason: "this column is required".to_owned(),
            });
        }
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| ReplayError::Row {
            line: e.position().map_or(0, |p| p.line()),
            reason: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let row_error = |reason: String| ReplayError::Row { line, reason };
        let mut payload = Map::new();
        let mut station = String::new();
        for (cell, (column, name)) in record.iter().zip(columns.iter().zip(headers.iter())) {
            if cell.is_empty() {
                continue;
            }
            match column {
                Column::Time => {
                    let t = parse_time(cell)
                        .ok_or_else(|| row_error(format!("{name}: {cell:?} is not a time")))?;
                    payload.insert("timestamp".into(), Value::String(t.to_rfc3339()));
                }
                Column::Station => station = cell.to_owned(),
                Column::Value(field, convert) => {
                    let v: f64 = cell
                        .parse()
                        .map_err(|_| row_error(format!("{name}: {cell:?} is not a number")))?;
                    payload.insert((*field).to_owned(), serde_json::json!(convert(v)));
                }
            }
        }
        if station.is_empty() {
            return Err(row_error("the station is empty".to_owned()));
        }
        payload.insert("station_id".into(), Value::String(station.clone()));
        out.push(Recorded {
            station,
            payload: Value::Object(payload),
        });
    }
    Ok(out)
}

/// Publishes `rows` to the broker, as fast as it takes them or at `rate`
/// rows per second; returns how many the broker acknowledged.
pub async fn publish(
    rows: &[Recorded],
    host: &str,
    port: u16,
    rate: Option<f64>,
) -> Result<u64, rumqttc::ClientError> {
    let mut publisher =
        Publisher::connect(&crate::publisher::Target::new(host, port), "isobar-replay");
    let mut ticker = rate.map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    for row in rows {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let topic = format!("weather/{}/observations", row.station);
        publisher.publish(topic, row.payload.to_string()).await?;
    }
    Ok(publisher.finish(Duration::from_secs(30)).await)
}

/// Rows handed in and not yet stored, at most: enough to keep every
/// station actor and the persister's writers busy, and a bound on memory.
const IN_FLIGHT: usize = 1024;

/// A recorded file as a source inside the daemon: its rows go in through
/// [`Pipeline::submit`] like any station's message, each with an
/// acknowledgement that counts what became of it.
#[derive(Debug)]
pub struct ReplaySource {
    /// `replay:<file name>`, as each message's source and in the logs.
    pub name: String,
    pub rows: Vec<Recorded>,
}

/// What became of a replayed file's rows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    /// Rows handed in.
    pub rows: u64,
    /// Readings stored (a row the store already held counts too).
    pub stored: u64,
    /// Rows, or parts of rows, quarantined.
    pub quarantined: u64,
    /// Rows not processed: the daemon stopped first.
    pub not_processed: u64,
}

#[derive(Debug, Default)]
struct Counts {
    stored: AtomicU64,
    quarantined: AtomicU64,
    not_processed: AtomicU64,
}

/// One row's acknowledgement: it counts the outcome and frees its place
/// in the window.
struct RowAck {
    counts: Arc<Counts>,
    _place: OwnedSemaphorePermit,
}

impl Acknowledge for RowAck {
    fn stored(self: Box<Self>, verdict: Verdict) {
        match verdict {
            Verdict::Stored { readings, rejected } => {
                self.counts
                    .stored
                    .fetch_add(readings as u64, Ordering::Relaxed);
                self.counts
                    .quarantined
                    .fetch_add(rejected as u64, Ordering::Relaxed);
            }
            Verdict::Rejected { .. } => {
                self.counts.quarantined.fetch_add(1, Ordering::Relaxed);
            }
            // On a bridge: in the readings topic, where a worker stores it.
            Verdict::Forwarded => {
                self.counts.stored.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn abandoned(self: Box<Self>) {
        self.counts.not_processed.fetch_add(1, Ordering::Relaxed);
    }
}

impl ReplaySource {
    /// The rows of `file`, parsed; its name (not its path) names the source.
    pub fn from_file(file: &std::path::Path) -> Result<Self, ReplayError> {
        let text = std::fs::read_to_string(file).map_err(|e| ReplayError::Read {
            path: file.display().to_string(),
            reason: e.to_string(),
        })?;
        let name = file
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            name: format!("replay:{name}"),
            rows: parse(&text)?,
        })
    }

    /// Hands every row in, at most 1,024 of them not yet stored,
    /// until all are or `stop` is cancelled; then waits for the outcome of
    /// what it handed in.
    pub async fn run(self, pipeline: Arc<Pipeline>, stop: CancellationToken) -> ReplayReport {
        let window = Arc::new(Semaphore::new(IN_FLIGHT));
        let counts = Arc::new(Counts::default());
        let mut handed_in = 0u64;
        tracing::info!(source = %self.name, rows = self.rows.len(), "replay started");
        for row in self.rows {
            let place = tokio::select! {
                place = window.clone().acquire_owned() => place.expect("the window is never closed"),
                () = stop.cancelled() => break,
            };
            let station =
                StationId::parse(&row.station).map_err(|e| RejectReason::InvalidStationId {
                    value: row.station.clone(),
                    reason: e.to_string(),
                });
            pipeline.submit(Arrival {
                station,
                source: self.name.clone(),
                payload: serde_json::to_vec(&row.payload)
                    .expect("a JSON value serialises")
                    .into(),
                format: Format::Json,
                ack: Ack::new(RowAck {
                    counts: counts.clone(),
                    _place: place,
                }),
                received_at: None,
            });
            handed_in += 1;
        }
        // Every place back: every row handed in is stored, quarantined or
        // given back.
        let _all = window
            .acquire_many(IN_FLIGHT as u32)
            .await
            .expect("the window is never closed");
        let report = ReplayReport {
            rows: handed_in,
            stored: counts.stored.load(Ordering::Relaxed),
            quarantined: counts.quarantined.load(Ordering::Relaxed),
            not_processed: counts.not_processed.load(Ordering::Relaxed),
        };
        tracing::info!(source = %self.name, rows = report.rows, stored = report.stored,
            quarantined = report.quarantined, not_processed = report.not_processed,
            "replay finished");
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_each_column_to_canonical_units() {
        let rows = parse(
            "time,station,temperature_F,humidity_pct,pressure_inHg,wind_speed_mph,wind_direction_deg,elevation_ft\n\
             2025-01-13T10:00:00Z,WS001,212,65,29.92,10,225,1000\n",
        )
        .unwrap();
        let p = &rows[0].payload;
        assert_eq!(rows[0].station, "WS001");
        assert_eq!(p["timestamp"], "2025-01-13T10:00:00+00:00");
        assert!((p["temperature"].as_f64().unwrap() - 100.0).abs() < 1e-9);
        assert!((p["pressure"].as_f64().unwrap() - 1013.21).abs() < 0.01);
        assert!((p["wind_speed"].as_f64().unwrap() - 4.4704).abs() < 1e-9);
        assert!((p["elevation"].as_f64().unwrap() - 304.8).abs() < 1e-9);
        assert_eq!(p["humidity"], 65.0);
    }

    #[test]
    fn empty_cells_are_missing_and_times_come_in_three_forms() {
        let rows = parse(
            "timestamp,station_id,temperature_C,humidity_pct\n\
             2025-01-13 10:00:00,WS001,5.0,\n\
             1736762460,WS001,,80\n",
        )
        .unwrap();
        assert_eq!(rows[0].payload["timestamp"], "2025-01-13T10:00:00+00:00");
        assert!(rows[0].payload.get("humidity").is_none());
        assert_eq!(rows[1].payload["timestamp"], "2025-01-13T10:01:00+00:00");
        assert!(rows[1].payload.get("temperature").is_none());
    }

    #[test]
    fn bad_headers_and_rows_say_where() {
        assert_eq!(
            parse("time,station,temperature_X\n").unwrap_err(),
            ReplayError::Header {
                column: "temperature_X".into(),
                reason: "unknown temperature unit \"X\"; use C, F or K".into()
            }
        );
        assert!(matches!(
            parse("station,temperature_C\n").unwrap_err(),
            ReplayError::Header { column, .. } if column == "time"
        ));
        let err =
            parse("time,station,temperature_C\n2025-01-13T10:00:00Z,WS001,warm\n").unwrap_err();
        assert_eq!(
            err,
            ReplayError::Row {
                line: 2,
                reason: "temperature_C: \"warm\" is not a number".into()
            }
        );
    }
}
