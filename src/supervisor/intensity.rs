use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::RestartPolicy;

/// What a supervisor does about one more failure of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart the child after this delay.
    Restart { after: Duration, attempt: u32 },
    /// The child failed more than `max_restarts` times within the window:
    /// stop restarting it and escalate.
    GiveUp { restarts: u32 },
}

/// Counts one child's restarts within the policy's sliding window. Time is
/// passed in so the logic can be tested against a controlled clock.
#[derive(Debug, Clone, Default)]
pub struct RestartIntensity {
    restarts: VecDeque<Instant>,
}

impl RestartIntensity {
    /// Records a failure at `now` and decides. `unit` is a uniform random
    /// number in [0, 1) for the backoff jitter.
    pub fn on_failure(&mut self, policy: &RestartPolicy, now: Instant, unit: f64) -> Decision {
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_duration_since(oldest) >= policy.within {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        let recent = self.restarts.len() as u32;
        if recent >= policy.max_restarts {
            return Decision::GiveUp { restarts: recent };
        }
        self.restarts.push_back(now);
        Decision::Restart {
            after: policy.backoff.delay(recent, unit),
            attempt: recent + 1,
        }
    }

    /// Restarts counted in the current window.
    pub fn recent(&self) -> usize {
        self.restarts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::Backoff;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            strategy: Default::default(),
            restart: Default::default(),
            max_restarts: 3,
            within: Duration::from_secs(10),
            backoff: Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(100),
                factor: 2.0,
                jitter: 0.0,
            },
        }
    }

    #[test]
    fn restarts_with_growing_delay_then_gives_up() {
        let p = policy();
        let t0 = Instant::now();
        let mut i = RestartIntensity::default();
        let ms = |d: Decision| match d {
            Decision::Restart { after, .. } => after.as_millis(),
            Decision::GiveUp { .. } => panic!("gave up too early"),
        };
        assert_eq!(ms(i.on_failure(&p, t0, 0.5)), 10);
        assert_eq!(ms(i.on_failure(&p, t0 + Duration::from_secs(1), 0.5)), 20);
        assert_eq!(ms(i.on_failure(&p, t0 + Duration::from_secs(2), 0.5)), 40);
        assert_eq!(
            i.on_failure(&p, t0 + Duration::from_secs(3), 0.5),
            Decision::GiveUp { restarts: 3 }
        );
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let p = policy();
        let t0 = Instant::now();
        let mut i = RestartIntensity::default();
        for s in [0, 1, 2] {
            assert!(matches!(
                i.on_failure(&p, t0 + Duration::from_secs(s), 0.5),
                Decision::Restart { .. }
            ));
        }
        // Ten seconds after the first failure it no longer counts, and the
        // backoff starts again from the restarts still in the window.
        let d = i.on_failure(&p, t0 + Duration::from_secs(10), 0.5);
        assert_eq!(
            d,
            Decision::Restart {
                after: Duration::from_millis(40),
                attempt: 3
            }
        );
        assert_eq!(i.recent(), 3);
        let d = i.on_failure(&p, t0 + Duration::from_secs(30), 0.5);
        assert_eq!(
            d,
            Decision::Restart {
                after: Duration::from_millis(10),
                attempt: 1
            }
        );
    }
}
