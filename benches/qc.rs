//! What quality control costs per reading, against parsing the same
//! readings from JSON in the same run (the cost of taking a reading in at
//! all), on two sets of data:
//! - `real`: the real station records in `tests/data/qc` (hourly, 5-minute
//!   and 1-minute stations, every variable they report);
//! - `noisy`: 1,000 stations whose every value is drawn afresh for each
//!   reading, half of them a year old at one a minute and half current at
//!   one every 5 s, as `make bench-ingest` sends: nearly every reading is
//!   flagged, so the checks write their findings (the costly path).
//!
//! `cargo bench --bench qc` (or `make bench-qc`). BENCH_ROUNDS sets how many
//! times the records are checked (default 20); the median round is printed.

use std::io::Read;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use isobar::domain::{Observation, QcConfig, QcFlag, StationId, StationQc, parse_observation};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Each record, read every `every`-th line: the cadences a network has.
const RECORDS: [(&str, usize); 9] = [
    ("greensboro-nc-hourly", 1),
    ("sand-point-ak-hourly", 1),
    ("miami-fl-hourly", 1),
    ("payerne-ch-1min", 1),
    ("payerne-ch-1min", 5),
    ("alamosa-co-1min", 1),
    ("alamosa-co-1min", 10),
    ("tucson-az-1min", 1),
    ("tucson-az-1min", 5),
];

struct Record {
    station: StationId,
    lines: Vec<String>,
    readings: Vec<Observation>,
}

impl Record {
    /// One station's readings as JSON lines, parsed once for the checks.
    fn new(station: StationId, lines: Vec<String>) -> Self {
        let now = Utc::now();
        let readings = lines
            .iter()
            .map(|l| parse_observation(&station, l.as_bytes(), now).expect("a valid reading"))
            .collect();
        Self {
            station,
            lines,
            readings,
        }
    }
}

fn load(name: &str, every: usize) -> Record {
    let path = format!(
        "{}/tests/data/qc/{name}.jsonl.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect(&path))
        .read_to_string(&mut text)
        .expect("a gzip JSON-lines record");
    let first: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a reading")).expect("JSON");
    let station = StationId::parse(first["station_id"].as_str().expect("a station id"))
        .expect("a valid station id");
    Record::new(
        station,
        text.lines().step_by(every).map(str::to_owned).collect(),
    )
}

/// `per_station` random readings of each of `stations` stations, as JSON.
fn noisy(stations: usize, per_station: usize) -> Vec<Record> {
    let mut rng = SmallRng::seed_from_u64(11);
    let now = Utc::now();
    (0..stations)
        .map(|i| {
            let station = StationId::parse(&format!("N{i:05}")).expect("a valid station id");
            let (start, step) = if i % 2 == 0 {
                (now - TimeDelta::days(365), TimeDelta::seconds(60))
            } else {
                (
                    now - TimeDelta::seconds(5 * per_station as i64),
                    TimeDelta::seconds(5),
                )
            };
            let mean_c = rng.random_range(-10.0..30.0);
            let lines: Vec<String> = (0..per_station)
                .map(|k| {
                    serde_json::json!({
                        "station_id": station.as_str(),
                        "temperature": mean_c + rng.random_range(-8.0..8.0),
                        "humidity": rng.random_range(5.0..100.0),
                        "pressure": rng.random_range(960.0..1045.0),
                        "wind_speed": rng.random_range(0.0..25.0),
                        "wind_direction": rng.random_range(0.0..360.0),
                        "timestamp": (start + step * k as i32).to_rfc3339(),
                    })
                    .to_string()
                })
                .collect();
            Record::new(station, lines)
        })
        .collect()
}

fn median(mut rounds: Vec<Duration>) -> Duration {
    rounds.sort();
    rounds[rounds.len() / 2]
}

/// Median nanoseconds per reading to parse and to check `records`, and
/// how many readings were flagged.
fn measure(records: &[Record], rounds: usize) -> (f64, f64, usize) {
    let readings: usize = records.iter().map(|r| r.readings.len()).sum();
    let config = QcConfig::default();
    let now = Utc::now();
    let mut flagged = 0usize;
    let mut qc_rounds = Vec::with_capacity(rounds);
    let mut parse_rounds = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for record in records {
            for line in &record.lines {
                let parsed = parse_observation(&record.station, line.as_bytes(), now);
                std::hint::black_box(&parsed);
            }
        }
        parse_rounds.push(start.elapsed());

        let start = Instant::now();
        flagged = 0;
        for record in records {
            let mut qc = StationQc::default();
            for reading in &record.readings {
                let report = qc.check(reading, reading.observed_at, &config);
                flagged += usize::from(report.status != QcFlag::Pass);
                std::hint::black_box(&report);
            }
        }
        qc_rounds.push(start.elapsed());
    }
    let per = |d: Duration| d.as_nanos() as f64 / readings as f64;
    (per(median(parse_rounds)), per(median(qc_rounds)), flagged)
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let sets = [
        (
            "real",
            RECORDS.iter().map(|(n, e)| load(n, *e)).collect::<Vec<_>>(),
        ),
        ("noisy", noisy(1_000, 100)),
    ];
    for (name, records) in &sets {
        let readings: usize = records.iter().map(|r| r.readings.len()).sum();
        let (parse, qc, flagged) = measure(records, rounds);
        println!(
            "qc/{name}: {readings} readings of {} stations, {flagged} flagged, median of {rounds} rounds",
            records.len()
        );
        println!("  parse JSON (baseline): {parse:>8.0} ns/reading");
        println!("  quality control:       {qc:>8.0} ns/reading");
        println!("  ratio qc / parse:      {:>8.2}", qc / parse);
    }
}
