//! The in-memory reference driver of the store port: the embedded dev mode's store and the fast unit
//! tests' store. It enforces the same unique constraints as the MongoDB indexes.

use super::{InsertOutcome, Store};
use crate::model::{App, Conversation, Member, Message, User};
use crate::{Error, Result};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Tables {
    apps: HashMap<String, App>,
    users: HashMap<String, User>,
    /// (app_id, external_id) → user id: the unique index of `users`.
    user_ids: HashMap<(String, String), String>,
    conversations: HashMap<String, Conversation>,
    members: HashMap<String, Member>,
    messages: HashMap<String, Message>,
    /// (app_id, conversation_id) → seq → message id: the unique index of `messages`.
    sequences: HashMap<(String, String), BTreeMap<i64, String>>,
}

#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a table half-written: every write is one insert.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert_app(&self, app: &App) -> Result<()> {
        let mut tables = self.tables();
        if tables.apps.contains_key(&app.id) {
            return Err(Error::Conflict(format!("app {} already exists", app.id)));
        }
        tables.apps.insert(app.id.clone(), app.clone());
        Ok(())
    }

    async fn find_app(&self, app_id: &str) -> Result<Option<App>> {
        Ok(self.tables().apps.get(app_id).cloned())
    }

    async fn upsert_user(&self, user: &User) -> Result<User> {
        let mut tables = self.tables();
        let key = (user.app_id.clone(), user.external_id.clone());
        let id = match tables.user_ids.get(&key) {
            Some(id) => id.clone(),
            None => {
                tables.user_ids.insert(key, user.id.clone());
                tables.users.insert(user.id.clone(), user.clone());
                return Ok(user.clone());
            }
        };
        let stored = tables
            .users
            .get_mut(&id)
            .ok_or_else(|| Error::Internal("user index out of step".into()))?;
        if user.display_name.is_some() {
            stored.display_name = user.display_name.clone();
        }
        Ok(stored.clone())
    }

    async fn find_users(&self, app_id: &str, ids: &[String]) -> Result<Vec<User>> {
        let tables = self.tables();
        Ok(ids
            .iter()
            .filter_map(|id| tables.users.get(id))
            .filter(|user| user.app_id == app_id)
            .cloned()
            .collect())
    }

    async fn create_conversation(&self, conversation: &Conversation, members: &[Member]) -> Result<Conversation> {
        let mut tables = self.tables();
        if let Some(existing) = tables.conversations.get(&conversation.id) {
            return if existing.app_id == conversation.app_id {
                Ok(existing.clone())
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
        Ok(conversation.clone())
    }

    async fn find_conversation(&self, app_id: &str, conversation_id: &str) -> Result<Option<Conversation>> {
        Ok(self
            .tables()
            .conversations
            .get(conversation_id)
            .filter(|c| c.app_id == app_id)
            .cloned())
    }

    async fn insert_messages(&self, messages: &[Message]) -> Result<InsertOutcome> {
        let mut tables = self.tables();
        let mut outcome = InsertOutcome::default();
        for message in messages {
            let key = (message.app_id.clone(), message.conversation_id.clone());
            let seq_taken = tables
                .sequences
                .get(&key)
                .is_some_and(|seqs| seqs.contains_key(&message.seq));
            if tables.messages.contains_key(&message.id) || seq_taken {
                outcome.duplicates += 1;
                continue;
            }
            tables
                .sequences
                .entry(key)
                .or_default()
                .insert(message.seq, message.id.clone());
            tables.messages.insert(message.id.clone(), message.clone());
            outcome.inserted += 1;
        }
        Ok(outcome)
    }

    async fn max_seq(&self, app_id: &str, conversation_id: &str) -> Result<i64> {
        let key = (app_id.to_owned(), conversation_id.to_owned());
        Ok(self
            .tables()
            .sequences
            .get(&key)
            .and_then(|seqs| seqs.keys().next_back().copied())
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_store_conformance_suite() {
        super::super::conformance::run(&super::MemoryStore::new()).await;
    }
}
