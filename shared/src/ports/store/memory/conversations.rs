//! Conversations, members, read horizons and summaries in the in-memory store.

use super::Change::{self, Changed, Unchanged};
use super::MemoryStore;
use crate::domain::model::{Conversation, ConversationSummary, Member};
use crate::ports::store::ConversationStore;
use crate::{Error, Result};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn create_conversation(&self, conversation: &Conversation, members: &[Member]) -> Result<Conversation> {
        self.write(|tables| {
            if let Some(existing) = tables.conversations.get(&conversation.id) {
                return if existing.app_id == conversation.app_id {
                    Ok(Unchanged(existing.clone()))
                } else {
                    Err(Error::Conflict("conversation id belongs to another app".into()))
                };
            }
            tables
                .conversations
                .insert(conversation.id.clone(), conversation.clone());
            for member in members {
                tables
                    .members
                    .entry(member.id.clone())
                    .or_insert_with(|| member.clone());
            }
            Ok(Changed(conversation.clone()))
        })
    }

    async fn find_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<Conversation>> {
        self.read(|tables| {
            tables
                .conversations
                .get(conversation_id)
                .filter(|c| c.app_id == app_id)
                .cloned()
        })
    }

    async fn find_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Option<Member>> {
        self.read(|tables| {
            tables
                .members
                .values()
                .find(|m| m.app_id == app_id && m.conversation_id == conversation_id && m.user_id == user_id)
                .cloned()
        })
    }

    async fn list_members(&self, app_id: &str, conversation_id: &str) -> Result<Vec<Member>> {
        let mut members: Vec<Member> = self.read(|tables| {
            tables
                .members
                .values()
                .filter(|m| m.app_id == app_id && m.conversation_id == conversation_id)
                .cloned()
                .collect()
        })?;
        members.sort_by(|a, b| (a.joined_at, &a.user_id).cmp(&(b.joined_at, &b.user_id)));
        Ok(members)
    }

    async fn add_members(&self, app_id: &str, conversation_id: &str, members: &[Member]) -> Result<Conversation> {
        self.write(|tables| {
            let conversation = tables.conversation_mut(app_id, conversation_id)?;
            for member in members {
                if !conversation.has_member(&member.user_id) {
                    conversation.member_ids.push(member.user_id.clone());
                }
            }
            let updated = conversation.clone();
            for member in members {
                tables
                    .members
                    .entry(member.id.clone())
                    .or_insert_with(|| member.clone());
            }
            Ok(Changed(updated))
        })
    }

    async fn remove_member(&self, app_id: &str, conversation_id: &str, user_id: &str) -> Result<Conversation> {
        self.write(|tables| {
            let conversation = tables.conversation_mut(app_id, conversation_id)?;
            conversation.member_ids.retain(|m| m != user_id);
            let updated = conversation.clone();
            tables
                .members
                .retain(|_, m| !(m.app_id == app_id && m.conversation_id == conversation_id && m.user_id == user_id));
            Ok(Changed(updated))
        })
    }

    async fn rename_conversation(&self, app_id: &str, conversation_id: &str, name: &str) -> Result<Conversation> {
        self.write(|tables| {
            let conversation = tables.conversation_mut(app_id, conversation_id)?;
            conversation.name = Some(name.to_owned());
            Ok(Changed(conversation.clone()))
        })
    }

    async fn list_conversations(&self, app_id: &str, user_id: &str, limit: usize) -> Result<Vec<Conversation>> {
        let mut conversations: Vec<Conversation> = self.read(|tables| {
            tables
                .conversations
                .values()
                .filter(|c| c.app_id == app_id && c.has_member(user_id))
                .cloned()
                .collect()
        })?;
        conversations.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        conversations.truncate(limit);
        Ok(conversations)
    }

    async fn contacts(&self, app_id: &str, user_id: &str, candidates: &[String]) -> Result<HashSet<String>> {
        self.read(|tables| {
            tables
                .conversations
                .values()
                .filter(|c| c.app_id == app_id && c.has_member(user_id))
                .flat_map(|c| c.member_ids.iter())
                .filter(|member| candidates.contains(member))
                .cloned()
                .collect()
        })
    }

    async fn mark_read(&self, app_id: &str, conversation_id: &str, user_id: &str, seq: i64) -> Result<i64> {
        self.write(|tables| {
            let key = (app_id.to_owned(), conversation_id.to_owned(), user_id.to_owned());
            let horizon = tables.reads.entry(key).or_insert(0);
            if seq <= *horizon {
                return Ok(Unchanged(*horizon));
            }
            *horizon = seq;
            Ok(Changed(seq))
        })
    }

    async fn read_horizons(
        &self,
        app_id: &str,
        user_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, i64>> {
        self.read(|tables| {
            conversation_ids
                .iter()
                .map(|id| {
                    let key = (app_id.to_owned(), id.clone(), user_id.to_owned());
                    (id.clone(), tables.reads.get(&key).copied().unwrap_or(0))
                })
                .collect()
        })
    }

    async fn apply_summaries(&self, summaries: &[ConversationSummary]) -> Result<usize> {
        self.write(|tables| {
            let mut applied = 0;
            for summary in summaries {
                let newer = match tables.summaries.get(&summary.id) {
                    None => true,
                    Some(stored) if stored.app_id != summary.app_id => false,
                    Some(stored) => {
                        stored.last_seq < summary.last_seq
                            || (stored.last_message.id == summary.last_message.id
                                && stored.last_message.version < summary.last_message.version)
                    }
                };
                if newer {
                    tables.summaries.insert(summary.id.clone(), summary.clone());
                    applied += 1;
                }
            }
            Ok(Change::when(applied > 0, applied))
        })
    }

    async fn summaries(
        &self,
        app_id: &str,
        conversation_ids: &[String],
    ) -> Result<HashMap<String, ConversationSummary>> {
        self.read(|tables| {
            conversation_ids
                .iter()
                .filter_map(|id| tables.summaries.get(id))
                .filter(|s| s.app_id == app_id)
                .map(|s| (s.id.clone(), s.clone()))
                .collect()
        })
    }
}
