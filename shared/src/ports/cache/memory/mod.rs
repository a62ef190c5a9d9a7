//! The in-memory reference driver of the cache port, with the same atomicity and expiry as Redis.

mod membership;
mod presence;
mod recent;
mod restrictions;
mod resumes;
mod sequences;

use crate::ports::cache::Claim;
use crate::Result;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

type ConversationKey = (String, String);
/// (app, conversation, sender, client_msg_id).
type ClaimKey = (String, String, String, String);

/// One app's mirrored restrictions (field → expiry), when the mirror lapses (`None`: never loaded), and
/// how many single changes it has seen.
#[derive(Default)]
struct RestrictionMirror {
    fields: HashMap<String, i64>,
    lapses: Option<Instant>,
    version: u64,
}

impl RestrictionMirror {
    fn is_loaded(&self, now: Instant) -> bool {
        self.lapses.is_some_and(|lapses| lapses > now)
    }
}

#[derive(Default)]
struct Entries {
    sequences: HashMap<ConversationKey, i64>,
    /// The mirrored seq reservation per conversation.
    reservations: HashMap<ConversationKey, i64>,
    /// (app, conversation, sender, client_msg_id) → claim and when it expires.
    claims: HashMap<ClaimKey, (Claim, Instant)>,
    members: HashMap<ConversationKey, (Vec<String>, Instant)>,
    /// Newest messages per conversation (seq → payload) and when the list expires.
    recent: HashMap<ConversationKey, (BTreeMap<i64, String>, Instant)>,
    conversations: HashMap<ConversationKey, (String, Instant)>,
    /// (app, user) → connection holder → when its presence lapses.
    presence: HashMap<(String, String), HashMap<String, Instant>>,
    /// app → its mirrored restrictions.
    restrictions: HashMap<String, RestrictionMirror>,
    /// Rate counter key → sends counted in its second.
    rates: HashMap<String, (u32, Instant)>,
    /// (app, recovery id) → resume record and when it expires.
    resumes: HashMap<(String, String), (String, Instant)>,
}

/// The in-memory reference driver of the cache port (`memory://`): private to this process, with the same
/// expiries as Redis.
#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<Entries>,
    /// Set by tests to play a Redis that is down: every operation fails until it "restarts".
    unreachable: AtomicBool,
}

impl MemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> Result<std::sync::MutexGuard<'_, Entries>> {
        if self.unreachable.load(Ordering::Relaxed) {
            return Err(redis::RedisError::from((redis::ErrorKind::Io, "the cache is unreachable")).into());
        }
        Ok(self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// From now on every operation fails, as with a Redis server that went down (a test's fault).
    #[cfg(any(test, feature = "conformance"))]
    pub fn go_down(&self) {
        self.unreachable.store(true, Ordering::Relaxed);
    }

    /// Comes back with nothing in it, as a Redis server restarted without persistence.
    #[cfg(any(test, feature = "conformance"))]
    pub fn restart_empty(&self) {
        *self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Entries::default();
        self.unreachable.store(false, Ordering::Relaxed);
    }
}

fn conversation(app_id: &str, conversation_id: &str) -> ConversationKey {
    (app_id.to_owned(), conversation_id.to_owned())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_cache_conformance_suite() {
        super::super::conformance::run(&super::MemoryCache::new()).await;
    }
}
