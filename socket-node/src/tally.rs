//! Counting capped holders of a key (connections per user, handshakes per IP): [`Tally::enter`] hands
//! out a [`Place`] while fewer than the cap hold one, and dropping the place gives it back, so a
//! connection that ends in any way — error, panic, timeout — frees its place.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// How many holders each key has now.
pub struct Tally<K: Hash + Eq + Clone> {
    counts: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq + Clone> Default for Tally<K> {
    fn default() -> Self {
        Self { counts: Arc::default() }
    }
}

impl<K: Hash + Eq + Clone> Tally<K> {
    /// A place for `key` if it has fewer than `cap` holders (`cap` 0: no cap).
    pub fn enter(&self, key: K, cap: usize) -> Option<Place<K>> {
        let mut counts = self.counts.lock().expect("tally lock");
        let count = counts.entry(key.clone()).or_default();
        if cap != 0 && *count >= cap {
            return None;
        }
        *count += 1;
        Some(Place {
            key,
            counts: Arc::clone(&self.counts),
        })
    }

    /// Holders of `key` now.
    #[cfg(test)]
    pub fn count(&self, key: &K) -> usize {
        self.counts.lock().expect("tally lock").get(key).copied().unwrap_or(0)
    }
}

/// One holder's place; dropping it frees the place (and forgets a key nobody holds).
pub struct Place<K: Hash + Eq + Clone> {
    key: K,
    counts: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq + Clone> Drop for Place<K> {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("tally lock");
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_holders_and_frees_places_on_drop() {
        let tally = Tally::default();
        let first = tally.enter("ip", 2).expect("first");
        let _second = tally.enter("ip", 2).expect("second");
        assert!(tally.enter("ip", 2).is_none());
        assert!(tally.enter("other", 2).is_some());
        drop(first);
        assert_eq!(tally.count(&"ip"), 1);
        assert!(tally.enter("ip", 2).is_some());
        assert!(tally.enter("ip", 0).is_some(), "0 means no cap");
    }
}
