//! Messages, revisions, replies and reactions in the in-memory store.

use super::Change::{self, Changed, Unchanged};
use super::MemoryStore;
use crate::domain::model::{Message, Reaction, ReactionCount, SeqReservation, SeqSpan};
use crate::ports::store::{count_reactions, MessageInsert, MessageStore, RetentionExceptions, SeqRange};
use crate::{Error, Result};
use async_trait::async_trait;
use std::collections::HashMap;

#[async_trait]
impl MessageStore for MemoryStore {
    async fn insert_messages(&self, messages: &[Message]) -> Result<MessageInsert> {
        self.write(|tables| {
            let outcome = tables.add_messages(messages.iter().cloned());
            Ok(Change::when(outcome.inserted > 0, outcome))
        })
    }

    async fn keep_seq_conflicts(&self, conflicts: &[Message]) -> Result<usize> {
        self.write(|tables| {
            let mut kept = 0;
            for conflict in conflicts {
                if !tables.seq_conflicts.iter().any(|c| c.id == conflict.id) {
                    tables.seq_conflicts.push(conflict.clone());
                    kept += 1;
                }
            }
            Ok(Change::when(kept > 0, kept))
        })
    }

    async fn seq_conflicts(&self, app_id: &str, limit: usize) -> Result<Vec<Message>> {
        self.read(|tables| {
            let kept = tables.seq_conflicts.iter().filter(|c| c.app_id == app_id);
            kept.take(limit).cloned().collect()
        })
    }

    async fn count_unread(
        &self,
        app_id: &str,
        conversation_id: &str,
        user_id: &str,
        after_seq: i64,
        cap: usize,
    ) -> Result<usize> {
        self.read(|tables| {
            let key = (app_id.to_owned(), conversation_id.to_owned());
            let Some(seqs) = tables.sequences.get(&key) else {
                return 0;
            };
            let unread = seqs
                .range(after_seq.saturating_add(1)..)
                .filter_map(|(_, id)| tables.messages.get(id))
                .filter(|m| m.sender_id != user_id && m.deleted_at.is_none());
            unread.take(cap).count()
        })
    }

    async fn apply_message_revisions(&self, revisions: &[Message]) -> Result<usize> {
        self.write(|tables| {
            let mut applied = 0;
            for revision in revisions {
                match tables.messages.get_mut(&revision.id) {
                    Some(stored) if stored.app_id == revision.app_id => {
                        if stored.version < revision.version {
                            *stored = revision.clone();
                            applied += 1;
                        }
                    }
                    Some(_) => return Err(Error::Conflict("message id belongs to another app".into())),
                    None => applied += tables.add_messages([revision.clone()]).inserted,
                }
            }
            Ok(Change::when(applied > 0, applied))
        })
    }

    async fn find_message(&self, app_id: &str, conversation_id: &str, message_id: &str) -> Result<Option<Message>> {
        self.read(|tables| {
            tables
                .messages
                .get(message_id)
                .filter(|m| m.app_id == app_id && m.conversation_id == conversation_id)
                .cloned()
        })
    }

    async fn reply_counts(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_ids: &[String],
    ) -> Result<HashMap<String, usize>> {
        self.read(|tables| {
            let mut counts = HashMap::new();
            for message in tables.messages.values() {
                if message.app_id != app_id || message.conversation_id != conversation_id {
                    continue;
                }
                if let Some(parent) = message.reply_to.as_ref().filter(|p| parent_ids.contains(p)) {
                    *counts.entry(parent.clone()).or_insert(0) += 1;
                }
            }
            counts
        })
    }

    async fn list_replies(
        &self,
        app_id: &str,
        conversation_id: &str,
        parent_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.read(|tables| {
            let Some(seqs) = tables.sequences.get(&(app_id.to_owned(), conversation_id.to_owned())) else {
                return Vec::new();
            };
            seqs.range(after_seq.saturating_add(1)..)
                .map(|(_, id)| id)
                .filter_map(|id| tables.messages.get(id))
                .filter(|m| m.reply_to.as_deref() == Some(parent_id))
                .take(limit)
                .cloned()
                .collect()
        })
    }

    async fn apply_reactions(&self, reactions: &[Reaction]) -> Result<usize> {
        self.write(|tables| {
            let mut applied = 0;
            for reaction in reactions {
                let newer = tables
                    .reactions
                    .get(&reaction.id)
                    .is_none_or(|stored| stored.version < reaction.version);
                if newer {
                    tables.reactions.insert(reaction.id.clone(), reaction.clone());
                    applied += 1;
                }
            }
            Ok(Change::when(applied > 0, applied))
        })
    }

    async fn reaction_counts(
        &self,
        app_id: &str,
        conversation_id: &str,
        message_ids: &[String],
        viewer_id: &str,
    ) -> Result<HashMap<String, Vec<ReactionCount>>> {
        self.read(|tables| {
            let mut matching: Vec<&Reaction> = tables
                .reactions
                .values()
                .filter(|r| {
                    r.app_id == app_id && r.conversation_id == conversation_id && message_ids.contains(&r.message_id)
                })
                .collect();
            matching.sort_by_key(|r| r.version);
            count_reactions(matching, viewer_id)
        })
    }

    async fn list_messages(&self, app_id: &str, conversation_id: &str, range: SeqRange) -> Result<Vec<Message>> {
        self.read(|tables| {
            let key = (app_id.to_owned(), conversation_id.to_owned());
            let Some(seqs) = tables.sequences.get(&key) else {
                return Vec::new();
            };
            let in_range = seqs.iter().filter(|(seq, _)| range.contains(**seq));
            let mut ids: Vec<&String> = if range.reads_forward() {
                in_range.take(range.limit).map(|(_, id)| id).collect()
            } else {
                in_range.rev().take(range.limit).map(|(_, id)| id).collect()
            };
            if !range.reads_forward() {
                ids.reverse();
            }
            ids.into_iter()
                .filter_map(|id| tables.messages.get(id))
                .cloned()
                .collect()
        })
    }

    async fn max_seq(&self, app_id: &str, conversation_id: &str) -> Result<i64> {
        let key = (app_id.to_owned(), conversation_id.to_owned());
        self.read(|tables| {
            tables
                .sequences
                .get(&key)
                .and_then(|seqs| seqs.keys().next_back().copied())
                .unwrap_or(0)
        })
    }

    async fn reserve_seqs(&self, app_id: &str, conversation_id: &str, through: i64) -> Result<i64> {
        self.write(|tables| {
            let reservation = tables.reservation_mut(app_id, conversation_id);
            if through <= reservation.reserved_through {
                return Ok(Unchanged(reservation.reserved_through));
            }
            reservation.reserved_through = through;
            Ok(Changed(through))
        })
    }

    async fn seq_reservation(&self, app_id: &str, conversation_id: &str) -> Result<SeqReservation> {
        let key = (app_id.to_owned(), conversation_id.to_owned());
        self.read(|tables| {
            tables
                .seq_reservations
                .get(&key)
                .cloned()
                .unwrap_or_else(|| SeqReservation::none(app_id, conversation_id))
        })
    }

    async fn mark_uncertain(&self, app_id: &str, conversation_id: &str, span: SeqSpan) -> Result<()> {
        self.write(|tables| {
            let reservation = tables.reservation_mut(app_id, conversation_id);
            if reservation.uncertain.contains(&span) {
                return Ok(Unchanged(()));
            }
            reservation.uncertain.push(span);
            Ok(Changed(()))
        })
    }

    async fn messages_created_before(
        &self,
        app_id: &str,
        before: i64,
        except: &RetentionExceptions,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut expired: Vec<Message> = self.read(|tables| {
            tables
                .messages
                .values()
                .filter(|m| m.app_id == app_id && m.created_at < before && !except.keeps(m))
                .cloned()
                .collect()
        })?;
        expired.sort_by_key(|m| m.created_at);
        expired.truncate(limit);
        Ok(expired)
    }

    async fn purge_messages(&self, app_id: &str, message_ids: &[String]) -> Result<usize> {
        self.write(|tables| {
            let mut purged = 0;
            for id in message_ids {
                let Some(message) = tables.messages.get(id).filter(|m| m.app_id == app_id).cloned() else {
                    continue;
                };
                tables.messages.remove(id);
                let key = (message.app_id.clone(), message.conversation_id.clone());
                if let Some(seqs) = tables.sequences.get_mut(&key) {
                    seqs.remove(&message.seq);
                }
                tables.reactions.retain(|_, r| r.message_id != *id);
                purged += 1;
            }
            Ok(Changed(purged))
        })
    }

    async fn messages_by_sender(
        &self,
        app_id: &str,
        sender_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut sent: Vec<Message> = self.read(|tables| {
            tables
                .messages
                .values()
                .filter(|m| m.app_id == app_id && m.sender_id == sender_id)
                .filter(|m| after_id.is_none_or(|after| m.id.as_str() > after))
                .cloned()
                .collect()
        })?;
        sent.sort_by(|a, b| a.id.cmp(&b.id));
        sent.truncate(limit);
        Ok(sent)
    }
}

impl super::Tables {
    fn reservation_mut(&mut self, app_id: &str, conversation_id: &str) -> &mut SeqReservation {
        self.seq_reservations
            .entry((app_id.to_owned(), conversation_id.to_owned()))
            .or_insert_with(|| SeqReservation::none(app_id, conversation_id))
    }
}
