//! Conversions between the units stations send and isobar's canonical units
//! (°C, hPa, m/s, metres). The constants are the exact defining values, so
//! converting there and back returns the value a station sent.

/// Hectopascals in one inch of mercury (3386.38866667 Pa, at 0 °C and
/// standard gravity).
const HPA_PER_INHG: f64 = 33.863_886_666_7;
/// Hectopascals in one millimetre of mercury (133.322387415 Pa).
const HPA_PER_MMHG: f64 = 1.333_223_874_15;
const HPA_PER_KPA: f64 = 10.0;
/// Exact since the international yard of 1959.
const MS_PER_MPH: f64 = 0.44704;
/// One nautical mile (1852 m, exact) per hour.
const MS_PER_KNOT: f64 = 1852.0 / 3600.0;
const KMH_PER_MS: f64 = 3.6;
/// Exact since the international yard of 1959.
const M_PER_FOOT: f64 = 0.3048;
const KELVIN_AT_0_C: f64 = 273.15;

pub fn fahrenheit_to_celsius(temperature_f: f64) -> f64 {
    (temperature_f - 32.0) * 5.0 / 9.0
}

pub fn celsius_to_fahrenheit(temperature_c: f64) -> f64 {
    temperature_c * 9.0 / 5.0 + 32.0
}

pub fn kelvin_to_celsius(temperature_k: f64) -> f64 {
    temperature_k - KELVIN_AT_0_C
}

pub fn celsius_to_kelvin(temperature_c: f64) -> f64 {
    temperature_c + KELVIN_AT_0_C
}

pub fn inhg_to_hpa(pressure_inhg: f64) -> f64 {
    pressure_inhg * HPA_PER_INHG
}

pub fn hpa_to_inhg(pressure_hpa: f64) -> f64 {
    pressure_hpa / HPA_PER_INHG
}

pub fn mmhg_to_hpa(pressure_mmhg: f64) -> f64 {
    pressure_mmhg * HPA_PER_MMHG
}

pub fn hpa_to_mmhg(pressure_hpa: f64) -> f64 {
    pressure_hpa / HPA_PER_MMHG
}

pub fn kpa_to_hpa(pressure_kpa: f64) -> f64 {
    pressure_kpa * HPA_PER_KPA
}

pub fn hpa_to_kpa(pressure_hpa: f64) -> f64 {
    pressure_hpa / HPA_PER_KPA
}

pub fn mph_to_ms(speed_mph: f64) -> f64 {
    speed_mph * MS_PER_MPH
}

pub fn ms_to_mph(speed_ms: f64) -> f64 {
    speed_ms / MS_PER_MPH
}

pub fn knots_to_ms(speed_knots: f64) -> f64 {
    speed_knots * MS_PER_KNOT
}

pub fn ms_to_knots(speed_ms: f64) -> f64 {
    speed_ms / MS_PER_KNOT
}

pub fn kmh_to_ms(speed_kmh: f64) -> f64 {
    speed_kmh / KMH_PER_MS
}

pub fn ms_to_kmh(speed_ms: f64) -> f64 {
    speed_ms * KMH_PER_MS
}

pub fn feet_to_m(length_feet: f64) -> f64 {
    length_feet * M_PER_FOOT
}

pub fn m_to_feet(length_m: f64) -> f64 {
    length_m / M_PER_FOOT
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[track_caller]
    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn temperatures_match_fixed_points() {
        close(fahrenheit_to_celsius(32.0), 0.0, 1e-12);
        close(fahrenheit_to_celsius(212.0), 100.0, 1e-12);
        close(fahrenheit_to_celsius(-40.0), -40.0, 1e-12);
        close(fahrenheit_to_celsius(72.5), 22.5, 1e-12);
        close(celsius_to_fahrenheit(0.0), 32.0, 1e-12);
        close(celsius_to_fahrenheit(100.0), 212.0, 1e-12);
        close(celsius_to_fahrenheit(37.0), 98.6, 1e-12);
        close(kelvin_to_celsius(0.0), -273.15, 1e-12);
        close(kelvin_to_celsius(273.15), 0.0, 1e-12);
        close(celsius_to_kelvin(-273.15), 0.0, 1e-12);
        close(celsius_to_kelvin(25.0), 298.15, 1e-12);
    }

    #[test]
    fn pressures_match_the_standard_atmosphere() {
        close(inhg_to_hpa(29.92), 1013.21, 0.005);
        close(inhg_to_hpa(1.0), 33.8638866667, 1e-12);
        close(hpa_to_inhg(1013.25), 29.9213, 5e-5);
        close(mmhg_to_hpa(760.0), 1013.25, 0.001);
        close(hpa_to_mmhg(1013.25), 760.0, 0.001);
        close(kpa_to_hpa(101.325), 1013.25, 1e-9);
        close(hpa_to_kpa(1013.25), 101.325, 1e-12);
    }

    #[test]
    fn speeds_match_their_definitions() {
        close(knots_to_ms(10.0), 5.1444, 5e-5);
        close(ms_to_knots(5.144_444), 10.0, 1e-5);
        close(mph_to_ms(60.0), 26.8224, 1e-12);
        close(ms_to_mph(26.8224), 60.0, 1e-12);
        close(kmh_to_ms(36.0), 10.0, 1e-12);
        close(ms_to_kmh(10.0), 36.0, 1e-12);
        close(feet_to_m(1000.0), 304.8, 1e-12);
        close(m_to_feet(304.8), 1000.0, 1e-12);
    }

    type Conversion = fn(f64) -> f64;

    proptest! {
        #[test]
        fn conversions_round_trip(v in -1.0e6f64..1.0e6) {
            let pairs: [(Conversion, Conversion); 9] = [
                (fahrenheit_to_celsius, celsius_to_fahrenheit),
                (kelvin_to_celsius, celsius_to_kelvin),
                (inhg_to_hpa, hpa_to_inhg),
                (mmhg_to_hpa, hpa_to_mmhg),
                (kpa_to_hpa, hpa_to_kpa),
                (mph_to_ms, ms_to_mph),
                (knots_to_ms, ms_to_knots),
                (kmh_to_ms, ms_to_kmh),
                (feet_to_m, m_to_feet),
            ];
            let tolerance = 1e-9 * v.abs().max(1.0);
            for (to, from) in pairs {
                prop_assert!((from(to(v)) - v).abs() <= tolerance, "{} -> {}", v, from(to(v)));
                prop_assert!((to(from(v)) - v).abs() <= tolerance, "{} -> {}", v, to(from(v)));
            }
        }
    }
}
