//! The webhook event logs in the MongoDB store: `webhook_events` (unique per app and seq, indexed by
//! time for the retention purge) and one counter per app in `webhook_event_counters`.

use super::{from_document, to_document, MongoStore};
use crate::domain::model::{EventQuery, WebhookEvent};
use crate::ports::store::WebhookEventStore;
use crate::{Error, Result};
use async_trait::async_trait;
use mongodb::bson::{doc, Document};
use mongodb::options::ReturnDocument;
use std::collections::{HashMap, HashSet};

impl MongoStore {
    /// Reserves `count` seqs of the app's log; the last of them.
    async fn reserve_event_seqs(&self, app_id: &str, count: usize) -> Result<i64> {
        let counter = self
            .collection("webhook_event_counters")
            .find_one_and_update(doc! {"_id": app_id}, doc! {"$inc": {"seq": count as i64}})
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await?
            // The server may answer nothing although it counted (a race when the counter is created):
            // the batch is retried then, and the seqs counted are skipped, never handed out twice.
            .ok_or_else(|| Error::Internal(format!("the event counter of {app_id} was not returned")))?;
        counter
            .get_i64("seq")
            .map_err(|e| Error::Internal(format!("the event counter of {app_id}: {e}")))
    }

    /// The stored events of the app among `ids`, by id.
    async fn stored_events(&self, app_id: &str, ids: &[&str]) -> Result<HashMap<String, WebhookEvent>> {
        let stored: Vec<WebhookEvent> = self
            .find_all(
                "webhook_events",
                doc! {"app_id": app_id, "_id": {"$in": ids}},
                doc! {"seq": 1},
                usize::MAX,
            )
            .await?;
        Ok(stored.into_iter().map(|event| (event.id.clone(), event)).collect())
    }
}

#[async_trait]
impl WebhookEventStore for MongoStore {
    async fn append_webhook_events(&self, events: &[WebhookEvent]) -> Result<Vec<WebhookEvent>> {
        let mut by_app: HashMap<&str, Vec<&WebhookEvent>> = HashMap::new();
        for event in events {
            by_app.entry(event.app_id.as_str()).or_default().push(event);
        }
        let mut stored = HashMap::new();
        for (app_id, app_events) in by_app {
            let ids: Vec<&str> = app_events.iter().map(|event| event.id.as_str()).collect();
            let mut known = self.stored_events(app_id, &ids).await?;
            let mut seen = HashSet::new();
            let fresh: Vec<&WebhookEvent> = app_events
                .into_iter()
                .filter(|event| !known.contains_key(&event.id) && seen.insert(event.id.as_str()))
                .collect();
            if !fresh.is_empty() {
                let last = self.reserve_event_seqs(app_id, fresh.len()).await?;
                let first = last - fresh.len() as i64 + 1;
                let documents = fresh
                    .iter()
                    .zip(first..)
                    .map(|(event, seq)| {
                        to_document(&WebhookEvent {
                            seq,
                            ..(*event).clone()
                        })
                    })
                    .collect::<Result<Vec<Document>>>()?;
                // Ordered, so the events become visible in seq order and a reader's cursor never passes
                // one still to come. A failure fails the batch, which is handed over again: what went in
                // is then found above, the rest gets new seqs.
                self.collection("webhook_events").insert_many(documents).await?;
                known = self.stored_events(app_id, &ids).await?;
            }
            stored.extend(known);
        }
        Ok(events
            .iter()
            .filter_map(|event| stored.get(&event.id).cloned())
            .collect())
    }

    async fn find_webhook_events(&self, app_id: &str, query: &EventQuery) -> Result<Vec<WebhookEvent>> {
        let events: Vec<Document> = self
            .find_all(
                "webhook_events",
                event_filter(app_id, query),
                doc! {"seq": 1},
                query.limit,
            )
            .await?;
        events.into_iter().map(from_document).collect()
    }

    async fn count_webhook_events(&self, app_id: &str, query: &EventQuery) -> Result<u64> {
        Ok(self
            .collection("webhook_events")
            .count_documents(event_filter(app_id, query))
            .limit(query.limit as u64)
            .await?)
    }

    async fn purge_webhook_events(&self, before: i64) -> Result<u64> {
        let purged = self
            .collection("webhook_events")
            .delete_many(doc! {"created_at": {"$lt": before}})
            .await?;
        Ok(purged.deleted_count)
    }
}

/// The filter for the app's events `query` reads.
fn event_filter(app_id: &str, query: &EventQuery) -> Document {
    let mut filter = doc! {"app_id": app_id, "seq": {"$gt": query.after_seq}};
    if !query.types.is_empty() {
        filter.insert("event_type", doc! {"$in": &query.types});
    }
    let mut created_at = Document::new();
    if let Some(from) = query.from_ms {
        created_at.insert("$gte", from);
    }
    if let Some(to) = query.to_ms {
        created_at.insert("$lte", to);
    }
    if !created_at.is_empty() {
        filter.insert("created_at", created_at);
    }
    filter
}
