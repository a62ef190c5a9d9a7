//! A connection's request budget: token buckets that bound what one client can make the node (and
//! Redis, MongoDB and every member's connection) do, per second. Sends have their own gate (the
//! app's `rate_limits`); everything else a client asks for draws on one of these:
//! - signals (`typing.*`, `read.mark`): each fans out to every member of the conversation;
//! - requests (subscribe, history, replies, lists, membership changes, edits, deletions, reactions,
//!   forwards, presence): each reads the store or the recent window.
//!
//! A request over budget is answered `rate_limited` before it reads anything.

use caas_shared::{Error, Result};
use std::sync::Mutex;
use std::time::Instant;

/// One token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f32,
    at: Instant,
}

/// What a connection may ask for per second, per kind; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// `typing.*` and `read.mark` a second (`CAAS_SOCKET_SIGNALS_PER_SECOND`, default 5; bursts of twice).
    pub signals_per_second: f32,
    /// Other requests a second (`CAAS_SOCKET_REQUESTS_PER_SECOND`, default 20; bursts of twice).
    pub requests_per_second: f32,
}

/// Which budget a request draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Signal,
    Request,
}

/// A connection's buckets.
pub struct Budget {
    buckets: Mutex<[Bucket; 2]>,
}

impl Default for Budget {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            // Start empty-handed is wrong for a client that reconnects and resubscribes at once: full.
            buckets: Mutex::new(
                [Bucket {
                    tokens: f32::MAX,
                    at: now,
                }; 2],
            ),
        }
    }
}

impl Budget {
    /// Takes one token of `kind`, or refuses with `rate_limited` and when to retry.
    pub fn take(&self, kind: Kind, rates: &Rates) -> Result<()> {
        let (index, rate) = match kind {
            Kind::Signal => (0, rates.signals_per_second),
            Kind::Request => (1, rates.requests_per_second),
        };
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = rate * 2.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = &mut buckets[index];
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f32() * rate;
        bucket.tokens = (bucket.tokens.min(burst) + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = ((1.0 - bucket.tokens) / rate * 1000.0).ceil() as i64;
        Err(Error::RateLimited {
            message: match kind {
                Kind::Signal => format!("too many typing or read events; at most {rate} a second"),
                Kind::Request => format!("too many requests on this connection; at most {rate} a second"),
            },
            retry_after_ms: wait_ms.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_then_refusals_that_say_when() {
        let rates = Rates {
            signals_per_second: 5.0,
            requests_per_second: 0.0,
        };
        let budget = Budget::default();
        for n in 0..10 {
            assert!(budget.take(Kind::Signal, &rates).is_ok(), "burst {n}");
        }
        match budget.take(Kind::Signal, &rates) {
            Err(Error::RateLimited { retry_after_ms, .. }) => assert!((1..=200).contains(&retry_after_ms)),
            other => panic!("not refused: {other:?}"),
        }
        for _ in 0..1000 {
            assert!(budget.take(Kind::Request, &rates).is_ok(), "a rate of 0: no limit");
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(budget.take(Kind::Signal, &rates).is_ok(), "refilled");
    }
}
