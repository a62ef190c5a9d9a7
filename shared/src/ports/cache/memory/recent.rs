//! The recent window in memory.

use super::{conversation, MemoryCache};
use crate::ports::cache::{RecentSlice, RecentWindow, RECENT_BYTES, RECENT_MESSAGES, RECENT_TTL};
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
        let mut bytes: usize = messages.values().map(String::len).sum();
        while messages.len() > 1 && (messages.len() > RECENT_MESSAGES || bytes > RECENT_BYTES) {
            if let Some((_, oldest)) = messages.pop_first() {
                bytes -= oldest.len();
            }
        }
        *expires = now + RECENT_TTL;
        Ok(())
    }

    async fn recent_in(&self, app_id: &str, conversation_id: &str, slice: RecentSlice) -> Result<Vec<(i64, String)>> {
        let entries = self.entries()?;
        let Some((messages, _)) = entries
            .recent
            .get(&conversation(app_id, conversation_id))
            .filter(|(_, expires)| *expires > Instant::now())
        else {
            return Ok(Vec::new());
        };
        let upper = slice.before_seq.map_or(i64::MAX, |before| before.saturating_sub(1));
        let lower = slice.after_seq.saturating_add(1);
        if lower > upper {
            return Ok(Vec::new());
        }
        let in_range = messages
            .range(lower..=upper)
            .map(|(seq, payload)| (*seq, payload.clone()));
        Ok(match slice.newest {
            false => in_range.take(slice.limit).collect(),
            true => {
                let mut newest: Vec<_> = in_range.rev().take(slice.limit).collect();
                newest.reverse();
                newest
            }
        })
    }
}
