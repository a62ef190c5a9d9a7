//! The in-memory reference driver of the cache port, with the same atomicity and expiry as Redis.

use super::{
    Cache, Claim, ClaimResult, ClaimState, SendKey, IDEMPOTENCY_TTL, MEMBERSHIP_TTL, PRESENCE_TTL, RECENT_MESSAGES,
    RECENT_TTL,
};
use crate::moderation::{GateCheck, RateScope, SendGate, RESTRICTIONS_TTL};
use crate::Result;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

type ConversationKey = (String, String);
/// (app, conversation, sender, client_msg_id).
type ClaimKey = (String, String, String, String);

#[derive(Default)]
struct Entries {
    sequences: HashMap<ConversationKey, i64>,
    /// (app, conversation, sender, client_msg_id) → claim and when it expires.
    claims: HashMap<ClaimKey, (Claim, Instant)>,
    members: HashMap<ConversationKey, (Vec<String>, Instant)>,
    /// Newest messages per conversation (seq → payload) and when the list expires.
    recent: HashMap<ConversationKey, (BTreeMap<i64, String>, Instant)>,
    conversations: HashMap<ConversationKey, (String, Instant)>,
    /// (app, user) → connection holder → when its presence lapses.
    presence: HashMap<(String, String), HashMap<String, Instant>>,
    /// app → mirrored restrictions (field → expiry) and when the mirror lapses; present means loaded.
    restrictions: HashMap<String, (HashMap<String, i64>, Instant)>,
    /// Rate counter key → sends counted in its second.
    rates: HashMap<String, (u32, Instant)>,
}

#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<Entries>,
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn owned(key: SendKey<'_>) -> ClaimKey {
    (
        key.app_id.to_owned(),
        key.conversation_id.to_owned(),
        key.sender_id.to_owned(),
        key.client_msg_id.to_owned(),
    )
}

fn conversation(app_id: &str, conversation_id: &str) -> ConversationKey {
    (app_id.to_owned(), conversation_id.to_owned())
}

#[async_trait]
impl Cache for MemoryCache {
    async fn ensure_sequence(&self, app_id: &str, conversation_id: &str, floor: i64) -> Result<()> {
        self.entries()
            .sequences
            .entry(conversation(app_id, conversation_id))
            .or_insert(floor);
        Ok(())
    }

    async fn current_seq(&self, app_id: &str, conversation_id: &str) -> Result<Option<i64>> {
        Ok(self
            .entries()
            .sequences
            .get(&conversation(app_id, conversation_id))
            .copied())
    }

    async fn claim_message(&self, key: SendKey<'_>, message_id: &str) -> Result<ClaimResult> {
        let mut entries = self.entries();
        let claim_key = owned(key);
        if let Some((claim, expires)) = entries.claims.get(&claim_key) {
            if *expires > Instant::now() {
                return Ok(ClaimResult::Claimed(Claim {
                    is_new: false,
                    ..claim.clone()
                }));
            }
        }
        let Some(counter) = entries
            .sequences
            .get_mut(&conversation(key.app_id, key.conversation_id))
        else {
            return Ok(ClaimResult::CounterMissing);
        };
        *counter += 1;
        let claim = Claim {
            message_id: message_id.to_owned(),
            seq: *counter,
            state: ClaimState::Pending,
            is_new: true,
        };
        entries
            .claims
            .insert(claim_key, (claim.clone(), Instant::now() + IDEMPOTENCY_TTL));
        Ok(ClaimResult::Claimed(claim))
    }

    async fn set_claim_state(&self, key: SendKey<'_>, claim: &Claim, state: ClaimState) -> Result<()> {
        let claim_key = owned(key);
        let stored = Claim {
            state,
            is_new: false,
            ..claim.clone()
        };
        self.entries()
            .claims
            .insert(claim_key, (stored, Instant::now() + IDEMPOTENCY_TTL));
        Ok(())
    }

    async fn cached_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<String>> {
        Ok(self
            .entries()
            .conversations
            .get(&conversation(app_id, conversation_id))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(json, _)| json.clone()))
    }

    async fn cache_conversation(&self, app_id: &str, conversation_id: &str, json: &str) -> Result<()> {
        self.entries().conversations.insert(
            conversation(app_id, conversation_id),
            (json.to_owned(), Instant::now() + MEMBERSHIP_TTL),
        );
        Ok(())
    }

    async fn cached_members(&self, app_id: &str, conversation_id: &str) -> Result<Option<Vec<String>>> {
        let entries = self.entries();
        Ok(entries
            .members
            .get(&conversation(app_id, conversation_id))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(members, _)| members.clone()))
    }

    async fn is_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<bool>> {
        Ok(self
            .entries()
            .members
            .get(&conversation(app_id, conversation_id))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(members, _)| members.iter().any(|m| m == user_id)))
    }

    async fn cache_members(&self, app_id: &str, conversation_id: &str, members: &[String]) -> Result<()> {
        let key = conversation(app_id, conversation_id);
        let mut entries = self.entries();
        if members.is_empty() {
            entries.members.remove(&key);
        } else {
            entries
                .members
                .insert(key, (members.to_vec(), Instant::now() + MEMBERSHIP_TTL));
        }
        Ok(())
    }

    async fn remember_recent(&self, app_id: &str, conversation_id: &str, seq: i64, payload: &str) -> Result<()> {
        let mut entries = self.entries();
        let now = Instant::now();
        let (messages, expires) = entries
            .recent
            .entry(conversation(app_id, conversation_id))
            .or_insert_with(|| (BTreeMap::new(), now));
        if *expires <= now {
            messages.clear();
        }
        messages.insert(seq, payload.to_owned());
        while messages.len() > RECENT_MESSAGES {
            messages.pop_first();
        }
        *expires = now + RECENT_TTL;
        Ok(())
    }

    async fn recent_after(&self, app_id: &str, conversation_id: &str, after_seq: i64) -> Result<Vec<(i64, String)>> {
        let entries = self.entries();
        Ok(entries
            .recent
            .get(&conversation(app_id, conversation_id))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(messages, _)| {
                messages
                    .range(after_seq.saturating_add(1)..)
                    .map(|(seq, payload)| (*seq, payload.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn presence_touch(&self, app_id: &str, user_id: &str, holder: &str) -> Result<()> {
        self.entries()
            .presence
            .entry((app_id.to_owned(), user_id.to_owned()))
            .or_default()
            .insert(holder.to_owned(), Instant::now() + PRESENCE_TTL);
        Ok(())
    }

    async fn presence_drop(&self, app_id: &str, user_id: &str, holder: &str) -> Result<bool> {
        let mut entries = self.entries();
        let now = Instant::now();
        let Some(holders) = entries.presence.get_mut(&(app_id.to_owned(), user_id.to_owned())) else {
            return Ok(false);
        };
        holders.remove(holder);
        holders.retain(|_, lapses| *lapses > now);
        Ok(!holders.is_empty())
    }

    async fn online(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<bool>> {
        let entries = self.entries();
        let now = Instant::now();
        Ok(user_ids
            .iter()
            .map(|user_id| {
                entries
                    .presence
                    .get(&(app_id.to_owned(), user_id.clone()))
                    .is_some_and(|holders| holders.values().any(|lapses| *lapses > now))
            })
            .collect())
    }

    async fn mirror_restrictions(&self, app_id: &str, entries: &[(String, i64)]) -> Result<()> {
        let mut cached = self.entries();
        let now = Instant::now();
        let mirror = cached
            .restrictions
            .entry(app_id.to_owned())
            .or_insert_with(|| (HashMap::new(), now));
        if mirror.1 <= now {
            mirror.0.clear();
        }
        mirror.0.extend(entries.iter().cloned());
        mirror.1 = now + RESTRICTIONS_TTL;
        Ok(())
    }

    async fn mirror_restriction(&self, app_id: &str, field: &str, expiry: Option<i64>) -> Result<()> {
        // Without a loaded mirror there is nothing to update: the next check loads from the store.
        if let Some((fields, _)) = self.entries().restrictions.get_mut(app_id) {
            match expiry {
                Some(expiry) => fields.insert(field.to_owned(), expiry),
                None => fields.remove(field),
            };
        }
        Ok(())
    }

    async fn gate(&self, check: &GateCheck<'_>) -> Result<SendGate> {
        let mut cached = self.entries();
        let now = Instant::now();
        let Some((fields, _)) = cached
            .restrictions
            .get(check.app_id)
            .filter(|(_, lapses)| *lapses > now)
        else {
            return Ok(SendGate::Unloaded);
        };
        for (index, field) in check.fields().iter().enumerate() {
            if let Some(&expiry) = fields.get(field) {
                if expiry == 0 || expiry > check.now_ms {
                    return Ok(check.restricted(index, expiry));
                }
            }
        }
        let Some(limits) = check.limits else {
            return Ok(SendGate::Allowed);
        };
        let second = check.now_ms / 1000;
        let counters = [
            (
                format!("{}:{}:{second}", check.app_id, check.user_id),
                limits.user_messages_per_second,
                RateScope::User,
            ),
            (
                format!("{}:{second}", check.app_id),
                limits.app_messages_per_second,
                RateScope::App,
            ),
        ];
        cached.rates.retain(|_, (_, lapses)| *lapses > now);
        for (key, limit, scope) in &counters {
            if *limit > 0 && cached.rates.get(key).is_some_and(|(count, _)| count >= limit) {
                return Ok(SendGate::RateLimited {
                    scope: *scope,
                    retry_after_ms: 1000 - check.now_ms % 1000,
                });
            }
        }
        for (key, limit, _) in counters {
            if limit > 0 {
                let counter = cached
                    .rates
                    .entry(key)
                    .or_insert((0, now + std::time::Duration::from_secs(2)));
                counter.0 += 1;
            }
        }
        Ok(SendGate::Allowed)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_cache_conformance_suite() {
        super::super::conformance::run(&super::MemoryCache::new()).await;
    }
}
