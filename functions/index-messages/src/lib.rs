//! The index-messages function: takes a batch of `caas.messages` records (AWS's `KafkaEvent` shape)
//! and brings the search index up to date in one commit.
//!
//! New messages and edits are indexed, deletions (and retention's purges) replace the document by a
//! tombstone; every record
//! carries the message's version and only a higher one changes the index, so a redelivered or
//! reordered batch leaves it as it was. Reactions do not change what a message says and are skipped.
//! The index has one writer: deployed, the function runs with a reserved concurrency of 1, and the
//! index directory's lock refuses a second writer (its batch fails and is retried).

use aws_lambda_events::event::kafka::KafkaEvent;
use caas_shared::domain::events::{topics, MessageEvent};
use caas_shared::ports::search::SearchIndex;
use caas_shared::runtime::kafka_function::{async_trait, KafkaFunction};
use caas_shared::runtime::lambda::decode;
use caas_shared::Result;
use serde_json::json;
use std::sync::Arc;

pub struct IndexMessages {
    index: Arc<SearchIndex>,
}

/// What one invocation did; returned to the caller (Lambda logs it, the bridge reports it).
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    pub records: usize,
    pub indexed: usize,
    pub removed: usize,
    /// Records the index already held at this version or newer.
    pub superseded: usize,
    pub reactions_skipped: usize,
    /// Records that can never be processed: logged and skipped so one cannot block its partition.
    pub rejected: usize,
}

impl IndexMessages {
    pub fn new(index: Arc<SearchIndex>) -> Self {
        Self { index }
    }
}

#[async_trait]
impl KafkaFunction for IndexMessages {
    const NAME: &'static str = "index-messages";
    const TOPICS: &'static [&'static str] = &[topics::MESSAGES];
    type Report = BatchReport;

    async fn handle(&self, event: &KafkaEvent) -> Result<BatchReport> {
        let mut report = BatchReport::default();
        let mut messages = Vec::new();
        for record in event.records.values().flatten() {
            report.records += 1;
            match decode(record) {
                Ok(
                    MessageEvent::Created(message)
                    | MessageEvent::Edited(message)
                    | MessageEvent::Deleted(message)
                    | MessageEvent::Purged(message),
                ) => messages.push(message),
                Ok(MessageEvent::Reacted(_)) => report.reactions_skipped += 1,
                Err(reason) => {
                    report.rejected += 1;
                    tracing::error!(partition = record.partition, offset = record.offset, %reason, "rejected record");
                }
            }
        }
        if !messages.is_empty() {
            let applied = self.index.apply(messages).await?;
            report.indexed = applied.indexed;
            report.removed = applied.removed;
            report.superseded = applied.superseded;
        }
        tracing::info!(report = %json!(report), "batch indexed");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_shared::ports::search::SearchRequest;
    use serde_json::Value;

    fn event(records: Vec<Value>) -> KafkaEvent {
        caas_shared::runtime::lambda::sample_event("caas.messages", &records)
    }

    fn message(kind: &str, text: &str, version: i64) -> Value {
        json!({"type": kind, "data": {"id": "m1", "app_id": "a", "conversation_id": "c", "seq": 1,
            "sender_id": "u", "client_msg_id": "k", "text": text, "created_at": 1, "correlation_id": "",
            "version": version}})
    }

    #[tokio::test]
    async fn a_batch_is_indexed_once_and_redelivery_changes_nothing() {
        let handler = IndexMessages::new(SearchIndex::open(None).unwrap());
        let batch = event(vec![
            message("message.created", "first words", 0),
            message("message.edited", "second words", 5),
            json!({"type": "message.reacted", "data": {}}),
            json!({"type": "nope"}),
        ]);
        let report = handler.handle(&batch).await.unwrap();
        assert_eq!(
            (report.records, report.indexed, report.superseded, report.rejected),
            (4, 1, 1, 2),
            "the malformed reaction and the unknown type are both rejected"
        );
        let again = handler.handle(&batch).await.unwrap();
        assert_eq!((again.indexed, again.superseded), (0, 2));
        let found = |text: &str| {
            let index = Arc::clone(&handler.index);
            let request = SearchRequest {
                app_id: "a".into(),
                conversation_ids: vec!["c".into()],
                text: text.into(),
                limit: 5,
                ..SearchRequest::default()
            };
            async move { index.search(request).await.unwrap().hits.len() }
        };
        assert_eq!((found("first").await, found("second").await), (0, 1));
    }
}
