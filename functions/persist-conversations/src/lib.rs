//! The persist-conversations function: reads `caas.messages` (its own consumer group, beside
//! persist-messages) and keeps one summary per conversation — the newest message and its seq — so
//! conversation lists need no message queries. Summaries only ever move to a higher seq, or to a higher
//! version of the same message (an edit or deletion of the newest one), so redelivered and reordered
//! batches leave them unchanged.

use aws_lambda_events::event::kafka::KafkaEvent;
use caas_shared::domain::events::{topics, MessageEvent};
use caas_shared::domain::model::{ConversationSummary, Message};
use caas_shared::ports::store::Store;
use caas_shared::runtime::kafka_function::{async_trait, KafkaFunction};
use caas_shared::runtime::lambda::decode;
use caas_shared::Result;
use std::collections::HashMap;
use std::sync::Arc;

pub struct PersistConversations {
    store: Arc<dyn Store>,
}

#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    pub records: usize,
    /// Summaries that changed; the rest of the batch was older than what is stored.
    pub summaries_applied: usize,
    pub rejected: usize,
}

impl PersistConversations {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl KafkaFunction for PersistConversations {
    const NAME: &'static str = "persist-conversations";
    const TOPICS: &'static [&'static str] = &[topics::MESSAGES];
    type Report = BatchReport;

    async fn handle(&self, event: &KafkaEvent) -> Result<BatchReport> {
        let mut report = BatchReport::default();
        // Per conversation, the candidate with the highest (seq, version) in this batch.
        let mut newest: HashMap<(String, String), Message> = HashMap::new();
        for record in event.records.values().flatten() {
            report.records += 1;
            let message = match decode(record) {
                Ok(
                    MessageEvent::Created(m)
                    | MessageEvent::Edited(m)
                    | MessageEvent::Deleted(m)
                    | MessageEvent::Purged(m),
                ) => m,
                Ok(MessageEvent::Reacted(_)) => continue,
                Err(reason) => {
                    report.rejected += 1;
                    tracing::error!(partition = record.partition, offset = record.offset, %reason, "rejected record");
                    continue;
                }
            };
            let key = (message.app_id.clone(), message.conversation_id.clone());
            let replace = newest
                .get(&key)
                .is_none_or(|kept| (kept.seq, kept.version) < (message.seq, message.version));
            if replace {
                newest.insert(key, message);
            }
        }
        let summaries: Vec<ConversationSummary> = newest
            .into_values()
            .map(|message| ConversationSummary {
                id: message.conversation_id.clone(),
                app_id: message.app_id.clone(),
                last_seq: message.seq,
                last_message: message,
            })
            .collect();
        report.summaries_applied = self.store.apply_summaries(&summaries).await?;
        tracing::info!(report = %serde_json::json!(report), "conversation summaries updated");
        Ok(report)
    }
}
