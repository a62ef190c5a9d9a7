//! The moderation mirror and rate counters in memory.

use super::MemoryCache;
use crate::domain::moderation::{GateCheck, RateScope, SendGate, RESTRICTIONS_TTL};
use crate::ports::cache::RestrictionCache;
use crate::Result;
use async_trait::async_trait;
use std::time::Instant;

#[async_trait]
impl RestrictionCache for MemoryCache {
    async fn restrictions_version(&self, app_id: &str) -> Result<u64> {
        Ok(self
            .entries()?
            .restrictions
            .get(app_id)
            .map_or(0, |mirror| mirror.version))
    }

    async fn mirror_restrictions(&self, app_id: &str, entries: &[(String, i64)], version: u64) -> Result<bool> {
        let mut cached = self.entries()?;
        let mirror = cached.restrictions.entry(app_id.to_owned()).or_default();
        if mirror.version != version {
            return Ok(false);
        }
        let now = Instant::now();
        if !mirror.is_loaded(now) {
            mirror.fields.clear();
            mirror.lapses = Some(now + RESTRICTIONS_TTL);
        }
        mirror.fields.extend(entries.iter().cloned());
        Ok(true)
    }

    async fn mirror_restriction(&self, app_id: &str, field: &str, expiry: Option<i64>) -> Result<()> {
        let mut cached = self.entries()?;
        let mirror = cached.restrictions.entry(app_id.to_owned()).or_default();
        mirror.version += 1;
        // Without a loaded mirror there is nothing to update: the next check loads from the store.
        if mirror.is_loaded(Instant::now()) {
            match expiry {
                Some(expiry) => mirror.fields.insert(field.to_owned(), expiry),
                None => mirror.fields.remove(field),
            };
        }
        Ok(())
    }

    async fn gate(&self, check: &GateCheck<'_>) -> Result<SendGate> {
        let mut cached = self.entries()?;
        let now = Instant::now();
        let Some(fields) = cached
            .restrictions
            .get(check.app_id)
            .filter(|mirror| mirror.is_loaded(now))
            .map(|mirror| &mirror.fields)
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
