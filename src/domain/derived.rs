//! Metrics derived from measured values. isobar always recomputes these; a
//! payload's own `metadata` values are never trusted.

/// Dew point by the Magnus formula with Sonntag's (1990) coefficients over
/// water, as given in the WMO Guide (WMO-No. 8, Part I, Annex 4.B):
/// a = 17.62, b = 243.12 °C.
pub fn dew_point_c(temperature_c: f64, humidity_pct: f64) -> Option<f64> {
    const A: f64 = 17.62;
    const B: f64 = 243.12;
    if humidity_pct <= 0.0 {
        return None;
    }
    let gamma = (humidity_pct / 100.0).ln() + A * temperature_c / (B + temperature_c);
    Some(B * gamma / (A - gamma))
}

/// Heat index by the US National Weather Service algorithm (NWS Weather
/// Prediction Center, "The Heat Index Equation"): the simple formula first,
/// `0.5·(T + 61 + 1.2·(T − 68) + 0.094·RH)`, which is Steadman's result
/// already averaged with the temperature; when that reaches 80 °F, the
/// Rothfusz regression with its two adjustments instead. Defined from 80 °F
/// (26.7 °C) air temperature up; below that the air temperature is what it
/// feels like.
pub fn heat_index_c(temperature_c: f64, humidity_pct: f64) -> Option<f64> {
    let t = c_to_f(temperature_c);
    if t < 80.0 {
        return None;
    }
    let rh = humidity_pct;
    let simple = 0.5 * (t + 61.0 + (t - 68.0) * 1.2 + rh * 0.094);
    // 80 °F itself takes the regression; the slack absorbs the °C → °F
    // conversion's last bits.
    let hi = if simple < 80.0 - 1e-9 {
        simple
    } else {
        let mut hi = -42.379 + 2.049_015_23 * t + 10.143_331_27 * rh
            - 0.224_755_41 * t * rh
            - 0.006_837_83 * t * t
            - 0.054_817_17 * rh * rh
            + 0.001_228_74 * t * t * rh
            + 0.000_852_82 * t * rh * rh
            - 0.000_001_99 * t * t * rh * rh;
        if rh < 13.0 && (80.0..=112.0).contains(&t) {
            hi -= ((13.0 - rh) / 4.0) * ((17.0 - (t - 95.0).abs()) / 17.0).sqrt();
        } else if rh > 85.0 && (80.0..=87.0).contains(&t) {
            hi += ((rh - 85.0) / 10.0) * ((87.0 - t) / 5.0);
        }
        hi
    };
    Some(f_to_c(hi))
}

/// Wind chill by the NWS / Environment Canada 2001 formula. Defined only at or
/// below 10 °C with wind above 4.8 km/h; `None` elsewhere.
pub fn wind_chill_c(temperature_c: f64, wind_speed_ms: f64) -> Option<f64> {
    let v_kmh = wind_speed_ms * 3.6;
    if temperature_c > 10.0 || v_kmh <= 4.8 {
        return None;
    }
    let v = v_kmh.powf(0.16);
    Some(13.12 + 0.6215 * temperature_c - 11.37 * v + 0.3965 * temperature_c * v)
}

/// Station pressure reduced to mean sea level with the hypsometric equation
/// for a standard lapse rate of 6.5 K/km (the reduction of the WMO
/// Guide, No. 8, used by NOAA/NWS station software). With the station's air
/// temperature when known; otherwise the standard atmosphere's.
pub fn sea_level_pressure_hpa(
    station_pressure_hpa: f64,
    elevation_m: f64,
    temperature_c: Option<f64>,
) -> f64 {
    const LAPSE: f64 = 0.0065;
    match temperature_c {
        Some(t) => {
            let ratio = 1.0 - LAPSE * elevation_m / (t + LAPSE * elevation_m + 273.15);
            station_pressure_hpa * ratio.powf(-5.257)
        }
        None => station_pressure_hpa / (1.0 - 2.25577e-5 * elevation_m).powf(5.25588),
    }
}

fn c_to_f(c: f64) -> f64 {
    c * 9.0 / 5.0 + 32.0
}

fn f_to_c(f: f64) -> f64 {
    (f - 32.0) * 5.0 / 9.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn dew_point_matches_reference_values() {
        // Values from the Magnus form with the same coefficients (WMO No. 8).
        close(dew_point_c(20.0, 50.0).unwrap(), 9.26, 0.02);
        close(dew_point_c(25.0, 60.0).unwrap(), 16.69, 0.02);
        close(dew_point_c(-10.0, 80.0).unwrap(), -12.8, 0.1);
        // Saturated air: dew point equals temperature.
        close(dew_point_c(15.0, 100.0).unwrap(), 15.0, 1e-9);
        assert_eq!(dew_point_c(15.0, 0.0), None);
    }

    #[test]
    fn heat_index_matches_the_nws_table() {
        // NWS heat index chart (°F): (T, RH) -> HI.
        for (t_f, rh, hi_f) in [
            (90.0, 50.0, 95.0),
            (100.0, 40.0, 109.0),
            (86.0, 90.0, 105.0),
            (96.0, 65.0, 121.0),
            (80.0, 40.0, 80.0),
        ] {
            let hi = heat_index_c(f_to_c(t_f), rh).unwrap();
            close(c_to_f(hi), hi_f, 1.0);
        }
        assert_eq!(heat_index_c(20.0, 65.0), None);
    }

    /// The simple formula's own value decides: below 80 °F it is the heat
    /// index; from 80 °F the Rothfusz regression is.
    #[test]
    fn the_simple_value_decides_at_80_f() {
        fn rothfusz(t: f64, rh: f64) -> f64 {
            -42.379 + 2.04901523 * t + 10.14333127 * rh
                - 0.22475541 * t * rh
                - 6.83783e-3 * t * t
                - 5.481717e-2 * rh * rh
                + 1.22874e-3 * t * t * rh
                + 8.5282e-4 * t * rh * rh
                - 1.99e-6 * t * t * rh * rh
        }
        let rh = 40.0;
        // simple = 1.1·T − 10.3 + 0.047·RH, solved for T.
        let t_for = |simple: f64| (simple + 10.3 - 0.047 * rh) / 1.1;
        let below = t_for(79.9);
        close(c_to_f(heat_index_c(f_to_c(below), rh).unwrap()), 79.9, 1e-9);
        for simple in [80.0, 80.1] {
            let t = t_for(simple);
            let hi = c_to_f(heat_index_c(f_to_c(t), rh).unwrap());
            close(hi, rothfusz(t, rh), 1e-9);
            assert!((hi - simple).abs() > 0.05, "{hi} is the simple value");
        }
        // 26.7 °C and 47 %: the simple value is 79.97 °F, so it stands.
        close(heat_index_c(26.7, 47.0).unwrap(), 26.65, 0.005);
    }

    #[test]
    fn sea_level_pressure_reduces_by_elevation() {
        // 1000 m, 15 °C, 900 hPa: about 1012 hPa at sea level.
        close(
            sea_level_pressure_hpa(900.0, 1000.0, Some(15.0)),
            1011.98,
            0.05,
        );
        // The standard atmosphere has 898.75 hPa at 1000 m.
        close(sea_level_pressure_hpa(898.75, 1000.0, None), 1013.25, 0.05);
        close(
            sea_level_pressure_hpa(1013.25, 0.0, Some(20.0)),
            1013.25,
            1e-9,
        );
        // Colder air is denser: the same station pressure means more above sea level.
        assert!(
            sea_level_pressure_hpa(850.0, 1500.0, Some(-10.0))
                > sea_level_pressure_hpa(850.0, 1500.0, Some(30.0))
        );
    }

    #[test]
    fn wind_chill_matches_the_nws_table() {
        // NWS wind chill chart (°F, mph): (T, V) -> WC.
        for (t_f, v_mph, wc_f) in [(0.0, 15.0, -19.0), (30.0, 10.0, 21.0), (-20.0, 30.0, -53.0)] {
            let wc = wind_chill_c(f_to_c(t_f), v_mph * 0.44704).unwrap();
            close(c_to_f(wc), wc_f, 0.6);
        }
        // Environment Canada table: -10 °C at 20 km/h is -17.9 °C.
        close(wind_chill_c(-10.0, 20.0 / 3.6).unwrap(), -17.9, 0.1);
        assert_eq!(wind_chill_c(12.0, 10.0), None);
        assert_eq!(wind_chill_c(0.0, 1.0), None);
    }

    /// Parses one of the CSV files under `testdata/`; an empty cell is `None`.
    fn reference(csv: &str) -> Vec<Vec<Option<f64>>> {
        csv.lines()
            .skip(1)
            .map(|line| line.split(',').map(|cell| cell.parse().ok()).collect())
            .collect()
    }

    /// Against MetPy 1.7.1 (scripts/reference): 480 combinations of
    /// temperature, humidity and wind.
    #[test]
    fn derived_metrics_agree_with_the_reference_implementation() {
        use crate::domain::{Derived, DerivedInputs};
        let rows = reference(include_str!("testdata/reference_derived.csv"));
        assert_eq!(rows.len(), 480);
        for row in rows {
            let [Some(t), Some(rh), Some(v), dew, hi, wc, Some(apparent)] = row[..] else {
                panic!("malformed reference row {row:?}");
            };
            let d = Derived::compute(DerivedInputs {
                temperature_c: Some(t),
                humidity_pct: Some(rh),
                wind_speed_ms: Some(v),
                ..DerivedInputs::default()
            });
            let case = format!("T={t} RH={rh} v={v}");
            // MetPy 1.7 computes saturation vapour pressure after Ambaum
            // (2020) but inverts it with Bolton's coefficients, which puts it
            // up to 0.15 °C from the Magnus form; within that, they agree.
            close_opt(d.dew_point_c, dew, 0.15, &case);
            close_opt(d.heat_index_c, hi, 0.01, &case);
            close_opt(d.wind_chill_c, wc, 0.01, &case);
            close_opt(d.feels_like_c, Some(apparent), 0.01, &case);
        }
    }

    #[test]
    fn sea_level_pressure_agrees_with_the_reference_table() {
        let rows = reference(include_str!("testdata/reference_sea_level_pressure.csv"));
        assert_eq!(rows.len(), 80);
        for row in rows {
            let [Some(p), Some(h), Some(t), Some(p0)] = row[..] else {
                panic!("malformed reference row {row:?}");
            };
            close(sea_level_pressure_hpa(p, h, Some(t)), p0, 0.01);
        }
    }

    fn close_opt(actual: Option<f64>, expected: Option<f64>, tolerance: f64, case: &str) {
        match (actual, expected) {
            (Some(a), Some(e)) => {
                assert!(
                    (a - e).abs() <= tolerance,
                    "{case}: {a} is not within {tolerance} of {e}"
                )
            }
            (None, None) => {}
            _ => panic!("{case}: {actual:?} where the reference has {expected:?}"),
        }
    }
}
