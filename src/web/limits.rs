//! Per-client request rates: a GCRA limiter keyed by the client's address,
//! with a sustained rate and a burst from `[web.rate_limit]`. A request past
//! them is refused with 429 and `Retry-After`, before any work is done.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use warp::{Filter, Rejection};

use crate::config::RateLimitSettings;

/// A request refused for its rate; the seconds to wait.
#[derive(Debug)]
pub struct RateLimited {
    pub retry_after_s: u64,
}

impl warp::reject::Reject for RateLimited {}

pub struct Limiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

/// Addresses remembered at most; beyond, the idle ones are forgotten.
const MAX_CLIENTS: usize = 100_000;

impl Limiter {
    pub fn new(s: &RateLimitSettings) -> Self {
        let limiter = NonZeroU32::new(s.per_second).map(|rate| {
            let burst = NonZeroU32::new(s.burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// Whether a request from `ip` may go on now.
    pub fn check(&self, ip: IpAddr) -> Result<(), RateLimited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > MAX_CLIENTS {
            limiter.retain_recent();
        }
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            metrics::counter!("isobar_http_rate_limited_total").increment(1);
            RateLimited {
                retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }
}

/// Passes a request within its client's rate, refuses it otherwise.
pub fn rate_limit(limiter: Arc<Limiter>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::ext::optional::<super::server::ClientAddr>()
        .and_then(move |addr: Option<super::server::ClientAddr>| {
            let limiter = limiter.clone();
            async move {
                match addr {
                    Some(addr) => limiter.check(addr.0.ip()).map_err(warp::reject::custom),
                    None => Ok(()),
                }
            }
        })
        .untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_burst_waits_and_others_do_not() {
        let l = Limiter::new(&RateLimitSettings {
            per_second: 1,
            burst: 3,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let refused = l.check(a).unwrap_err();
        assert_eq!(refused.retry_after_s, 1);
        assert!(l.check(b).is_ok(), "another client has its own budget");
    }

    #[test]
    fn zero_turns_it_off() {
        let l = Limiter::new(&RateLimitSettings {
            per_second: 0,
            burst: 0,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..10_000).all(|_| l.check(a).is_ok()));
    }
}
