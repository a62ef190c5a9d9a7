//! Presence in memory.

use super::MemoryCache;
use crate::ports::cache::{PresenceCache, PresenceHolder, PRESENCE_TTL};
use crate::Result;
use async_trait::async_trait;
use std::time::Instant;

#[async_trait]
impl PresenceCache for MemoryCache {
    async fn presence_touch(&self, app_id: &str, user_id: &str, holder: &str) -> Result<()> {
        self.entries()?
            .presence
            .entry((app_id.to_owned(), user_id.to_owned()))
            .or_default()
            .insert(holder.to_owned(), Instant::now() + PRESENCE_TTL);
        Ok(())
    }

    async fn presence_renew(&self, live: &[PresenceHolder]) -> Result<()> {
        let mut entries = self.entries()?;
        let lapses = Instant::now() + PRESENCE_TTL;
        for one in live {
            entries
                .presence
                .entry((one.app_id.clone(), one.user_id.clone()))
                .or_default()
                .insert(one.holder.clone(), lapses);
        }
        Ok(())
    }

    async fn presence_drop(&self, app_id: &str, user_id: &str, holder: &str) -> Result<bool> {
        let mut entries = self.entries()?;
        let now = Instant::now();
        let Some(holders) = entries.presence.get_mut(&(app_id.to_owned(), user_id.to_owned())) else {
            return Ok(false);
        };
        holders.remove(holder);
        holders.retain(|_, lapses| *lapses > now);
        Ok(!holders.is_empty())
    }

    async fn online(&self, app_id: &str, user_ids: &[String]) -> Result<Vec<bool>> {
        let entries = self.entries()?;
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
}
