//! Versions for edits, deletions and reactions: microseconds since the epoch, strictly increasing
//! within a process. Across nodes the later change wins (last writer wins by time); two changes to the
//! same thing on two nodes within the same microsecond are the only case left to chance.

use std::sync::atomic::{AtomicI64, Ordering};

static LAST: AtomicI64 = AtomicI64::new(0);

/// A new version for an edit, deletion or reaction: the current Unix time in microseconds, or one more than
/// the last version this process handed out if the clock has not moved on (or went back).
pub fn next_version() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(current) => last = current,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_strictly_increase() {
        let versions: Vec<i64> = (0..1000).map(|_| super::next_version()).collect();
        assert!(versions.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
