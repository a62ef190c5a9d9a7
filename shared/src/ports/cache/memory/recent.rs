//! The recent window in memory.

use super::{conversation, MemoryCache};
use crate::ports::cache::{RecentWindow, RECENT_MESSAGES, RECENT_TTL};
use crate::Result;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Instant;

#[async_trait]
impl RecentWindow for MemoryCache {
    async fn remember_recent(&self, app_id: &str, conversation_id: &str, seq: i64, payload: &str) -> Result<()> {
        let mut entries = self.entries()?;
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
        let entries = self.entries()?;
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
}
