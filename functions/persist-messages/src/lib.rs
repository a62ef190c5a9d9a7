//! The persist-messages function: takes a batch of `caas.messages` records (AWS's `KafkaEvent` shape),
//! bulk-writes the messages to MongoDB idempotently and tells senders through `caas.acks`.
//!
//! Redelivery of a batch inserts nothing new (message id is `_id`, `(app, conversation, seq)` is unique)
//! and re-sends the acks, which clients treat as idempotent too. A message whose seq a *different*
//! stored message holds is no redelivery but a sequencing fault: it is never acked `persisted`; it is
//! logged, counted and kept in `message_conflicts` for an operator.
//!
//! A sender has read what it answers: each sender's read horizon moves up to its newest message here,
//! so its own messages (and what came before them) are not unread for it. Edits, deletions and reactions carry a
//! version and only ever replace an older state, so they converge in any order — even an edit that
//! arrives before its message.

use aws_lambda_events::event::kafka::KafkaEvent;
use caas_shared::domain::events::{topics, EventHeaders, MessageEvent, PersistedAck};
use caas_shared::domain::model::Message;
use caas_shared::ports::bus::Bus;
use caas_shared::ports::store::Store;
use caas_shared::runtime::kafka_function::{async_trait, KafkaFunction};
use caas_shared::runtime::lambda::decode;
use caas_shared::Result;
use futures_util::future::try_join_all;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub struct PersistMessages {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
}

/// What one invocation did; returned to the caller (Lambda logs it, the bridge reports it).
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    pub records: usize,
    pub inserted: usize,
    pub duplicates: usize,
    /// Messages refused because a different message holds their seq: not acked, kept for an operator.
    pub conflicts: usize,
    /// Senders whose read horizon moved up to their newest message in the batch.
    pub horizons_advanced: usize,
    /// Edits and deletions that replaced an older state (the rest were already superseded).
    pub revisions_applied: usize,
    pub reactions_applied: usize,
    /// Messages retention removed for good (already gone when retention deleted them first).
    pub purged: usize,
    pub attachments_linked: usize,
    /// Records that can never be processed (not base64, not JSON, unknown type): logged and skipped so
    /// one bad record cannot block its partition forever.
    pub rejected: usize,
    pub acks: usize,
}

impl PersistMessages {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self { store, bus }
    }

    async fn purge(&self, purged: &[Message]) -> Result<usize> {
        let mut by_app: HashMap<&str, Vec<String>> = HashMap::new();
        for message in purged {
            by_app.entry(&message.app_id).or_default().push(message.id.clone());
        }
        let mut total = 0;
        for (app_id, ids) in by_app {
            total += self.store.purge_messages(app_id, &ids).await?;
        }
        Ok(total)
    }

    /// Moves each sender's read horizon up to its newest message among `messages` (never back).
    async fn advance_senders_horizons(&self, messages: &[Message]) -> Result<usize> {
        let mut newest: HashMap<(&str, &str, &str), i64> = HashMap::new();
        for message in messages {
            let key = (
                message.app_id.as_str(),
                message.conversation_id.as_str(),
                message.sender_id.as_str(),
            );
            let seq = newest.entry(key).or_default();
            *seq = (*seq).max(message.seq);
        }
        let moves = newest.iter().map(|(&(app_id, conversation_id, sender_id), &seq)| {
            self.store.mark_read(app_id, conversation_id, sender_id, seq)
        });
        try_join_all(moves).await?;
        Ok(newest.len())
    }

    async fn acknowledge(&self, message: &Message) -> Result<()> {
        let headers = EventHeaders::new(&message.app_id, "message.persisted", &message.correlation_id);
        let ack = PersistedAck::for_message(message);
        self.bus
            .publish_json(topics::ACKS, &message.conversation_id, &headers, &ack)
            .await
    }
}

#[async_trait]
impl KafkaFunction for PersistMessages {
    const NAME: &'static str = "persist-messages";
    const TOPICS: &'static [&'static str] = &[topics::MESSAGES];
    type Report = BatchReport;

    async fn handle(&self, event: &KafkaEvent) -> Result<BatchReport> {
        let mut report = BatchReport::default();
        let (mut messages, mut revisions, mut reactions, mut purged) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for record in event.records.values().flatten() {
            report.records += 1;
            match decode(record) {
                Ok(MessageEvent::Created(message)) => messages.push(message),
                Ok(MessageEvent::Edited(message) | MessageEvent::Deleted(message)) => revisions.push(message),
                Ok(MessageEvent::Reacted(reaction)) => reactions.push(reaction),
                Ok(MessageEvent::Purged(message)) => purged.push(message),
                Err(reason) => {
                    report.rejected += 1;
                    tracing::error!(partition = record.partition, offset = record.offset, %reason, "rejected record");
                }
            }
        }
        let outcome = self.store.insert_messages(&messages).await?;
        report.inserted = outcome.inserted;
        report.duplicates = outcome.duplicates;
        report.conflicts = outcome.conflicts.len();
        if !outcome.conflicts.is_empty() {
            self.store.keep_seq_conflicts(&outcome.conflicts).await?;
            for conflict in &outcome.conflicts {
                tracing::error!(
                    app_id = %conflict.app_id,
                    conversation_id = %conflict.conversation_id,
                    seq = conflict.seq,
                    message_id = %conflict.id,
                    correlation_id = %conflict.correlation_id,
                    "seq conflict: another message holds this seq; kept in message_conflicts, not acked"
                );
            }
            let refused: HashSet<&str> = outcome.conflicts.iter().map(|m| m.id.as_str()).collect();
            messages.retain(|message| !refused.contains(message.id.as_str()));
        }
        report.horizons_advanced = self.advance_senders_horizons(&messages).await?;
        // Attachments learn their message, so the media function stops serving them once it is deleted.
        report.attachments_linked = self.store.link_attachments(&messages).await?;
        report.revisions_applied = self.store.apply_message_revisions(&revisions).await?;
        report.reactions_applied = self.store.apply_reactions(&reactions).await?;
        // After the inserts: a redelivered creation earlier in this batch must not outlive its purge.
        report.purged = self.purge(&purged).await?;
        try_join_all(messages.iter().map(|message| self.acknowledge(message))).await?;
        report.acks = messages.len();
        tracing::info!(report = %json!(report), "batch persisted");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::kafka::KafkaRecord;
    use base64::Engine;

    fn record(value: Option<String>, headers: serde_json::Value) -> KafkaRecord {
        serde_json::from_value(json!({
            "topic": "caas.messages", "partition": 0, "offset": 7, "timestamp": 1700000000000_i64,
            "timestampType": "CREATE_TIME", "key": null, "value": value, "headers": headers,
        }))
        .unwrap()
    }

    fn encoded(value: serde_json::Value) -> Option<String> {
        Some(base64::engine::general_purpose::STANDARD.encode(value.to_string()))
    }

    #[test]
    fn decodes_messages_and_fills_the_correlation_id_from_headers() {
        let message = json!({"type":"message.created","data":{
            "id":"m1","app_id":"a","conversation_id":"c","seq":1,"sender_id":"u","client_msg_id":"k",
            "text":"hi","created_at":1,"correlation_id":""}});
        let corr: Vec<i8> = "corr-9".bytes().map(|b| b as i8).collect();
        let MessageEvent::Created(decoded) =
            decode(&record(encoded(message), json!([{"correlation_id": corr}]))).unwrap()
        else {
            panic!("a created message decodes as one");
        };
        assert_eq!((decoded.id.as_str(), decoded.correlation_id.as_str()), ("m1", "corr-9"));
    }

    #[test]
    fn undecodable_records_are_rejected_with_a_reason() {
        assert!(decode(&record(None, json!([]))).unwrap_err().contains("no value"));
        assert!(decode(&record(Some("%%%".into()), json!([])))
            .unwrap_err()
            .contains("base64"));
        assert!(decode(&record(encoded(json!({"type":"nope"})), json!([])))
            .unwrap_err()
            .contains("message event"));
    }
}
