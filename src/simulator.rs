//! The built-in simulator: stations at plausible places publishing realistic
//! readings over MQTT — a diurnal temperature cycle peaking mid-afternoon
//! local solar time, humidity that moves against temperature, slow pressure
//! drift and gusty, veering wind.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::publisher::Publisher;

/// Places stations are spread over: (name, latitude, longitude, elevation m).
const SITES: [(&str, f64, f64, f64); 24] = [
    ("New York", 40.7589, -73.9851, 10.0),
    ("Chicago", 41.8781, -87.6298, 181.0),
    ("Denver", 39.7392, -104.9903, 1609.0),
    ("Seattle", 47.6062, -122.3321, 53.0),
    ("Miami", 25.7617, -80.1918, 2.0),
    ("Phoenix", 33.4484, -112.0740, 331.0),
    ("Anchorage", 61.2181, -149.9003, 31.0),
    ("Mexico City", 19.4326, -99.1332, 2240.0),
    ("Sao Paulo", -23.5505, -46.6333, 760.0),
    ("Buenos Aires", -34.6037, -58.3816, 25.0),
    ("Reykjavik", 64.1466, -21.9426, 15.0),
    ("London", 51.5074, -0.1278, 11.0),
    ("Berlin", 52.5200, 13.4050, 34.0),
    ("Madrid", 40.4168, -3.7038, 667.0),
    ("Cairo", 30.0444, 31.2357, 23.0),
    ("Nairobi", -1.2921, 36.8219, 1795.0),
    ("Cape Town", -33.9249, 18.4241, 25.0),
    ("Moscow", 55.7558, 37.6173, 156.0),
    ("Dubai", 25.2048, 55.2708, 5.0),
    ("Mumbai", 19.0760, 72.8777, 14.0),
    ("Singapore", 1.3521, 103.8198, 15.0),
    ("Tokyo", 35.6762, 139.6503, 40.0),
    ("Sydney", -33.8688, 151.2093, 58.0),
    ("Auckland", -36.8485, 174.7633, 26.0),
];

/// One simulated station's state.
#[derive(Debug, Clone)]
pub struct SimStation {
    pub station_id: String,
    pub latitude: f64,
    pub longitude: f64,
    pub elevation_m: f64,
    mean_temp_c: f64,
    amplitude_c: f64,
    mean_rh: f64,
    /// Station-level pressure for its elevation; the reading drifts around it.
    base_pressure_hpa: f64,
    pressure_hpa: f64,
    wind_mean_ms: f64,
    wind_dir_deg: f64,
}

/// A network of simulated stations with its own random source.
pub struct Network {
    pub stations: Vec<SimStation>,
    rng: StdRng,
}

impl Network {
    pub fn new(count: u32, seed: Option<u64>) -> Self {
        let mut rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let stations = (0..count as usize)
            .map(|i| {
                let (_, lat, lon, elevation) = SITES[i % SITES.len()];
                // Stations beyond the first round sit around the same city.
                let spread = if i < SITES.len() { 0.0 } else { 0.5 };
                let latitude = (lat + rng.random_range(-spread..=spread)).clamp(-89.0, 89.0);
                let longitude = lon + rng.random_range(-spread..=spread);
                // Station pressure falls with height (standard atmosphere).
                let base_pressure_hpa = 1013.25 * (1.0 - 2.25577e-5 * elevation).powf(5.25588);
                // Warmer towards the equator, cooler with height.
                let mean_temp_c =
                    28.0 - 0.45 * latitude.abs() - 0.0065 * elevation + rng.random_range(-1.5..1.5);
                SimStation {
                    station_id: format!("WS{:03}", i + 1),
                    latitude,
                    longitude,
                    elevation_m: elevation,
                    mean_temp_c,
                    amplitude_c: rng.random_range(3.0..7.0),
                    mean_rh: rng.random_range(45.0..80.0),
                    base_pressure_hpa,
                    pressure_hpa: base_pressure_hpa + rng.random_range(-8.0..8.0),
                    wind_mean_ms: rng.random_range(1.0..6.0),
                    wind_dir_deg: rng.random_range(0.0..360.0),
                }
            })
            .collect();
        Self { stations, rng }
    }

    /// The next reading of station `index` at time `at`, as the JSON
    /// payload a real station would publish.
    pub fn reading(&mut self, index: usize, at: DateTime<Utc>) -> serde_json::Value {
        let rng = &mut self.rng;
        let s = &mut self.stations[index];
        // Local solar hour: 15:00 is the warmest, 03:00 the coldest.
        let solar_hour =
            (at.num_seconds_from_midnight() as f64 / 3600.0 + s.longitude / 15.0).rem_euclid(24.0);
        let phase = (solar_hour - 15.0) / 24.0 * std::f64::consts::TAU;
        let temperature = s.mean_temp_c + s.amplitude_c * phase.cos() + rng.random_range(-0.2..0.2);
        let humidity = (s.mean_rh - 2.5 * (temperature - s.mean_temp_c)
            + rng.random_range(-1.0..1.0))
        .clamp(5.0, 100.0);
        s.pressure_hpa = (s.pressure_hpa + rng.random_range(-0.05..0.05))
            .clamp(s.base_pressure_hpa - 30.0, s.base_pressure_hpa + 30.0);
        // Mean wind drifts; gusts are short bursts above it.
        s.wind_mean_ms = (s.wind_mean_ms + rng.random_range(-0.2..0.2)).clamp(0.0, 15.0);
        let gust = if rng.random_bool(0.1) {
            rng.random_range(2.0..8.0)
        } else {
            0.0
        };
        let wind_speed = (s.wind_mean_ms + gust + rng.random_range(-0.5..0.5)).max(0.0);
        s.wind_dir_deg = (s.wind_dir_deg + rng.random_range(-8.0..8.0)).rem_euclid(360.0);
        let round = |v: f64, places: i32| (v * 10f64.powi(places)).round() / 10f64.powi(places);
        json!({
            "station_id": s.station_id,
            "latitude": round(s.latitude, 4),
            "longitude": round(s.longitude, 4),
            "elevation": s.elevation_m,
            "temperature": round(temperature, 1),
            "humidity": round(humidity, 1),
            "pressure": round(s.pressure_hpa, 1),
            "wind_speed": round(wind_speed, 1),
            "wind_direction": round(s.wind_dir_deg, 0).rem_euclid(360.0),
            "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
    }
}

/// Publishes readings for `count` stations every `interval` until `stop`
/// (or, with `rounds`, after that many readings per station).
pub async fn publish(
    broker: &crate::publisher::Target,
    count: u32,
    interval: Duration,
    seed: Option<u64>,
    rounds: Option<u64>,
    stop: CancellationToken,
) -> Result<u64, rumqttc::ClientError> {
    let mut publisher = Publisher::connect(broker, "isobar-simulator");
    let mut network = Network::new(count, seed);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0u64;
    tracing::info!(
        stations = count,
        interval_ms = interval.as_millis() as u64,
        "simulator running"
    );
    'outer: loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = Utc::now();
        for i in 0..network.stations.len() {
            let payload = network.reading(i, now).to_string();
            let topic = format!("weather/{}/observations", network.stations[i].station_id);
            tokio::select! {
                _ = stop.cancelled() => break 'outer,
                sent = publisher.publish(topic, payload) => sent?,
            }
        }
        round += 1;
        if rounds.is_some_and(|r| round >= r) {
            break;
        }
    }
    Ok(publisher.finish(Duration::from_secs(10)).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{StationId, parse_observation};

    fn at(hms: &str) -> DateTime<Utc> {
        format!("2025-06-21T{hms}Z").parse().unwrap()
    }

    #[test]
    fn readings_are_valid_payloads() {
        let mut net = Network::new(30, Some(7));
        for i in 0..30 {
            let payload = net.reading(i, at("12:00:00")).to_string();
            let id = StationId::parse(&net.stations[i].station_id).unwrap();
            parse_observation(&id, payload.as_bytes(), at("12:00:01")).expect(&payload);
        }
        assert_eq!(net.stations[29].station_id, "WS030");
    }

    #[test]
    fn afternoon_is_warmer_and_drier_than_night() {
        // London (WS012) is at longitude ~0, so solar time ≈ UTC.
        let mut net = Network::new(12, Some(1));
        let mean = |net: &mut Network, hms: &str, key: &str| {
            (0..20)
                .map(|_| net.reading(11, at(hms))[key].as_f64().unwrap())
                .sum::<f64>()
                / 20.0
        };
        let (t_day, t_night) = (
            mean(&mut net, "15:00:00", "temperature"),
            mean(&mut net, "03:00:00", "temperature"),
        );
        let (rh_day, rh_night) = (
            mean(&mut net, "15:00:00", "humidity"),
            mean(&mut net, "03:00:00", "humidity"),
        );
        assert!(t_day > t_night + 4.0, "day {t_day} night {t_night}");
        assert!(rh_day < rh_night, "day {rh_day} night {rh_night}");
    }

    #[test]
    fn the_same_seed_gives_the_same_network() {
        let a = Network::new(5, Some(42)).reading(3, at("08:00:00"));
        let b = Network::new(5, Some(42)).reading(3, at("08:00:00"));
        assert_eq!(a, b);
    }
}
