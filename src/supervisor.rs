//! Restart policies for supervised actors, after Erlang/OTP: which children
//! a failure takes down with it (the strategy), whether a child that ended
//! is started again (its restart type), how often a child may fail within a
//! window before its supervisor gives up and escalates, and how long to wait
//! before each restart. ractor reports failures; this module decides what
//! to do about them. It knows nothing about weather.

pub mod address;
mod backoff;
mod intensity;
pub mod tree;

pub use backoff::Backoff;
pub use intensity::{Decision, RestartIntensity};

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which children a supervisor restarts when one of them fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Only the child that failed.
    #[default]
    OneForOne,
    /// Every child: for children that cannot work without one another.
    OneForAll,
    /// The child that failed and every child started after it, which may
    /// depend on it.
    RestForOne,
}

impl Strategy {
    /// The children to restart, as indices in start order, when the child
    /// at `failed` of `count` children fails.
    pub fn affected(self, count: usize, failed: usize) -> std::ops::Range<usize> {
        match self {
            Self::OneForOne => failed..failed + 1,
            Self::OneForAll => 0..count,
            Self::RestForOne => failed..count,
        }
    }
}

/// Whether a child that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always.
    #[default]
    Permanent,
    /// Only if it failed; a child that stopped normally stays stopped.
    Transient,
    /// Never.
    Temporary,
}

impl Restart {
    /// Whether to restart a child that ended, failing or not.
    pub fn restarts(self, failed: bool) -> bool {
        match self {
            Self::Permanent => true,
            Self::Transient => failed,
            Self::Temporary => false,
        }
    }
}

/// How a supervisor treats the failures of one child.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    pub strategy: Strategy,
    pub restart: Restart,
    /// At most this many restarts ...
    pub max_restarts: u32,
    /// ... within this sliding window; one more and the supervisor escalates.
    pub within: Duration,
    pub backoff: Backoff,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            strategy: Strategy::OneForOne,
            restart: Restart::Permanent,
            max_restarts: 5,
            within: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }
}

impl RestartPolicy {
    /// Why this policy cannot work, if it cannot: the offending setting and
    /// the reason.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.within.is_zero() {
            return Err(("within", "must be longer than zero".into()));
        }
        let b = &self.backoff;
        if b.initial.is_zero() {
            return Err(("backoff.initial", "must be longer than zero".into()));
        }
        if b.max < b.initial {
            return Err((
                "backoff.max",
                format!(
                    "{:?} must be at least backoff.initial ({:?})",
                    b.max, b.initial
                ),
            ));
        }
        if !(b.factor.is_finite() && b.factor >= 1.0) {
            return Err(("backoff.factor", format!("{} must be at least 1", b.factor)));
        }
        if !(0.0..=1.0).contains(&b.jitter) {
            return Err((
                "backoff.jitter",
                format!("{} must be between 0 and 1", b.jitter),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_pick_the_children_to_restart() {
        // Five children in start order; the third (index 2) fails.
        assert_eq!(Strategy::OneForOne.affected(5, 2), 2..3);
        assert_eq!(Strategy::OneForAll.affected(5, 2), 0..5);
        assert_eq!(Strategy::RestForOne.affected(5, 2), 2..5);
        // The last child under rest_for_one takes only itself.
        assert_eq!(Strategy::RestForOne.affected(5, 4), 4..5);
        assert_eq!(Strategy::OneForAll.affected(1, 0), 0..1);
    }

    #[test]
    fn restart_types_decide_whether_an_ended_child_comes_back() {
        assert!(Restart::Permanent.restarts(true));
        assert!(Restart::Permanent.restarts(false));
        assert!(Restart::Transient.restarts(true));
        assert!(!Restart::Transient.restarts(false));
        assert!(!Restart::Temporary.restarts(true));
        assert!(!Restart::Temporary.restarts(false));
    }

    #[test]
    fn impossible_policies_say_why() {
        assert_eq!(RestartPolicy::default().check(), Ok(()));
        type Breaks = fn(&mut RestartPolicy);
        let broken: [(&str, Breaks); 5] = [
            ("backoff.max", |p| p.backoff.max = Duration::from_millis(10)),
            ("backoff.factor", |p| p.backoff.factor = 0.5),
            ("backoff.jitter", |p| p.backoff.jitter = 1.5),
            ("within", |p| p.within = Duration::ZERO),
            ("backoff.initial", |p| p.backoff.initial = Duration::ZERO),
        ];
        for (key, breaks) in broken {
            let mut p = RestartPolicy::default();
            breaks(&mut p);
            assert_eq!(p.check().unwrap_err().0, key);
        }
    }
}
