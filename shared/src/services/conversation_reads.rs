//! What members read of their conversations: lists with the last message and unread counts, history
//! pages, and read horizons (split from `conversations`, whose rules these share).

use crate::ports::store::SeqRange;
use crate::services::conversations::{Caller, Conversations, MAX_LIST, MAX_UNREAD_COUNT};
use crate::services::history;
use crate::{Error, Result};
use serde_json::{json, Value};

impl Conversations<'_> {
    /// Moves the caller's read horizon to `seq` (never past the last message, never back).
    pub async fn mark_read(&self, caller: Caller<'_>, conversation_id: &str, seq: i64) -> Result<i64> {
        self.require_member(caller, conversation_id).await?;
        if seq < 0 {
            return Err(Error::Validation("seq must not be negative".into()));
        }
        let last_seq = self.last_seq(caller.app_id, conversation_id).await?;
        self.store
            .mark_read(caller.app_id, conversation_id, caller.user_id, seq.min(last_seq))
            .await
    }

    async fn last_seq(&self, app_id: &str, conversation_id: &str) -> Result<i64> {
        match self.cache.current_seq(app_id, conversation_id).await? {
            Some(seq) => Ok(seq),
            None => self.store.max_seq(app_id, conversation_id).await,
        }
    }

    /// The caller's conversations with `last_message`, `last_seq`, `read_seq` and `unread_count` (the
    /// messages from others past `read_seq` that are not deleted, at most [`MAX_UNREAD_COUNT`]; see
    /// [`history::unread_count`]).
    pub async fn list(&self, caller: Caller<'_>, limit: usize) -> Result<Vec<Value>> {
        if limit == 0 || limit > MAX_LIST {
            return Err(Error::Validation(format!("limit must be 1 to {MAX_LIST}")));
        }
        let conversations = self
            .store
            .list_conversations(caller.app_id, caller.user_id, limit)
            .await?;
        let ids: Vec<String> = conversations.iter().map(|c| c.id.clone()).collect();
        let (horizons, summaries) = tokio::try_join!(
            self.store.read_horizons(caller.app_id, caller.user_id, &ids),
            self.store.summaries(caller.app_id, &ids),
        )?;
        let latest = SeqRange {
            after_seq: None,
            before_seq: None,
            limit: 1,
        };
        // One lookup per conversation, run concurrently rather than one round trip after another.
        let (horizons, summaries) = (&horizons, &summaries);
        let entries = conversations.iter().map(|conversation| async move {
            // The summary persist-conversations keeps, unless messages accepted since are not in it yet.
            let current_seq = self.cache.current_seq(caller.app_id, &conversation.id).await?;
            let fresh = summaries
                .get(&conversation.id)
                .filter(|summary| current_seq.is_none_or(|seq| summary.last_seq >= seq));
            let last_message = match fresh {
                Some(summary) => Some(summary.last_message.clone()),
                None => history::page(self.store, self.cache, caller.app_id, &conversation.id, latest)
                    .await?
                    .pop(),
            };
            let last_seq = last_message.as_ref().map_or(0, |m| m.seq);
            let read_seq = horizons.get(&conversation.id).copied().unwrap_or(0);
            // What the person sees: others' messages past the horizon, deletions and the seqs a
            // re-created counter skipped not counted.
            let unread_count = history::unread_count(
                self.store,
                self.cache,
                caller.app_id,
                &conversation.id,
                caller.user_id,
                read_seq,
                MAX_UNREAD_COUNT,
            )
            .await?;
            let mut value = serde_json::to_value(conversation).map_err(|e| Error::Internal(e.to_string()))?;
            value["last_message"] = json!(last_message);
            value["last_seq"] = last_seq.into();
            value["read_seq"] = read_seq.into();
            value["unread_count"] = unread_count.into();
            Ok::<Value, Error>(value)
        });
        futures_util::future::try_join_all(entries).await
    }

    /// A page of history for a member, annotated with reply counts and reactions.
    /// `{conversation_id, messages, has_more}`: `has_more` when the page is full or was cut to its
    /// byte budget (see [`history::fit_page_bytes`]); the client asks again from its last message.
    pub async fn history(&self, caller: Caller<'_>, conversation_id: &str, range: SeqRange) -> Result<Value> {
        self.require_member(caller, conversation_id).await?;
        if range.limit == 0 || range.limit > history::MAX_HISTORY_PAGE {
            return Err(Error::Validation(format!(
                "limit must be 1 to {}",
                history::MAX_HISTORY_PAGE
            )));
        }
        let messages = history::page(self.store, self.cache, caller.app_id, conversation_id, range).await?;
        let full = messages.len() == range.limit;
        let mut messages =
            history::annotate(self.store, caller.app_id, conversation_id, caller.user_id, messages).await?;
        let cut = history::fit_page_bytes(&mut messages, !range.reads_forward());
        Ok(json!({"conversation_id": conversation_id, "messages": messages, "has_more": full || cut}))
    }
}
