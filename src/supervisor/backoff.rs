use std::time::Duration;

/// Exponential backoff with jitter: the n-th consecutive restart waits
/// `initial * factor^n`, capped at `max`, then spread by ±`jitter` (a
/// fraction) so that children failing together do not restart together.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub factor: f64,
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before restart number `attempt` (0 for the first), given a
    /// uniform random number `unit` in [0, 1) for the jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self.factor.powi(attempt.min(64) as i32);
        let base = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((base * spread).clamp(0.0, self.max.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            factor: 2.0,
            jitter: 0.0,
        }
    }

    #[test]
    fn grows_by_the_factor_up_to_the_cap() {
        let b = no_jitter();
        let delays: Vec<_> = (0..6).map(|n| b.delay(n, 0.5).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_within_its_fraction() {
        let b = Backoff {
            jitter: 0.2,
            ..no_jitter()
        };
        assert_eq!(b.delay(0, 0.0).as_millis(), 80);
        assert_eq!(b.delay(0, 0.5).as_millis(), 100);
        assert!(b.delay(0, 0.999_999).as_millis() <= 120);
        // Never beyond the cap, even with jitter.
        assert_eq!(b.delay(10, 0.999), Duration::from_secs(1));
    }
}
