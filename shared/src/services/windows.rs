//! Counting per key in fixed windows (a minute, say), in the process: what the token endpoint's failure
//! limits and the key directory's claim budgets count with. Each function instance limits what reaches
//! it; behind API Gateway, throttling or a WAF rule adds a fleet-wide ceiling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked at once; beyond this, expired windows are forgotten first (and if all are live, all).
const MAX_TRACKED: usize = 100_000;

/// What one key counted in its current window.
struct Window {
    started: Instant,
    count: u32,
}

/// Per-key counts in fixed windows of one length.
pub struct FixedWindows {
    length: Duration,
    windows: Mutex<HashMap<String, Window>>,
}

impl FixedWindows {
    /// Windows of `length`.
    pub fn new(length: Duration) -> Self {
        Self {
            length,
            windows: Mutex::default(),
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, HashMap<String, Window>> {
        self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What `key` counted in its current window, and the time left in it.
    pub fn count(&self, key: &str) -> (u32, Duration) {
        let windows = self.windows();
        match windows.get(key) {
            Some(window) if window.started.elapsed() < self.length => {
                (window.count, self.length.saturating_sub(window.started.elapsed()))
            }
            _ => (0, self.length),
        }
    }

    /// Counts one for `key` if its current window has counted fewer than `limit`; else refuses with
    /// `rate_limited` naming `what` and the time left in the window.
    pub fn take_one(&self, key: &str, limit: u32, what: &str) -> crate::Result<()> {
        let (count, left) = self.count(key);
        if count >= limit {
            return Err(crate::Error::RateLimited {
                message: format!("too many {what}; at most {limit} in {} s", self.length.as_secs()),
                retry_after_ms: i64::try_from(left.as_millis()).unwrap_or(i64::MAX).max(1),
            });
        }
        self.add(key, 1);
        Ok(())
    }

    /// Adds `n` to `key`'s current window (a new one when the last has passed); returns the count now.
    pub fn add(&self, key: &str, n: u32) -> u32 {
        let mut windows = self.windows();
        if windows.len() >= MAX_TRACKED && !windows.contains_key(key) {
            let length = self.length;
            windows.retain(|_, window| window.started.elapsed() < length);
            if windows.len() >= MAX_TRACKED {
                windows.clear();
            }
        }
        let window = windows.entry(key.to_owned()).or_insert_with(|| Window {
            started: Instant::now(),
            count: 0,
        });
        if window.started.elapsed() >= self.length {
            *window = Window {
                started: Instant::now(),
                count: 0,
            };
        }
        window.count = window.count.saturating_add(n);
        window.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_until_the_window_passes() {
        let windows = FixedWindows::new(Duration::from_millis(100));
        assert_eq!(windows.add("a", 2), 2);
        assert_eq!(windows.add("a", 3), 5);
        assert_eq!(windows.count("b").0, 0);
        let (count, left) = windows.count("a");
        assert_eq!(count, 5);
        assert!(left <= Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(windows.count("a").0, 0, "a new window");
        assert_eq!(windows.add("a", 1), 1);
    }
}
