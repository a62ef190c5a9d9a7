//! Cached conversations and member lists in memory.

use super::{conversation, MemoryCache};
use crate::ports::cache::{MembershipCache, MEMBERSHIP_TTL};
use crate::Result;
use async_trait::async_trait;
use std::time::Instant;

#[async_trait]
impl MembershipCache for MemoryCache {
    async fn cached_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<String>> {
        Ok(self
            .entries()?
            .conversations
            .get(&conversation(app_id, conversation_id))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(json, _)| json.clone()))
    }

    async fn cache_conversation(&self, app_id: &str, conversation_id: &str, json: &str) -> Result<()> {
        self.entries()?.conversations.insert(
            conversation(app_id, conversation_id),
            (json.to_owned(), Instant::now() + MEMBERSHIP_TTL),
        );
        Ok(())
    }

    async fn cached_members(&self, app_id: &str, conversation_id: &str) -> Result<Option<Vec<String>>> {
        let entries = self.entries()?;
        Ok(entries
            .members
            .get(&conversation(app_id, conversation_id))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(members, _)| members.clone()))
    }

    async fn is_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<bool>> {
        Ok(self
            .entries()?
            .members
            .get(&conversation(app_id, conversation_id))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(members, _)| members.iter().any(|m| m == user_id)))
    }

    async fn cache_members(&self, app_id: &str, conversation_id: &str, members: &[String]) -> Result<()> {
        let key = conversation(app_id, conversation_id);
        let mut entries = self.entries()?;
        if members.is_empty() {
            entries.members.remove(&key);
        } else {
            entries
                .members
                .insert(key, (members.to_vec(), Instant::now() + MEMBERSHIP_TTL));
        }
        Ok(())
    }

    async fn forget_conversation(&self, app_id: &str, conversation_id: &str) -> Result<()> {
        let key = conversation(app_id, conversation_id);
        let mut entries = self.entries()?;
        entries.members.remove(&key);
        entries.conversations.remove(&key);
        Ok(())
    }
}
