//! The webhook event logs in the in-memory store.

use super::Change::{Changed, Unchanged};
use super::{MemoryStore, Tables};
use crate::domain::model::{EventQuery, WebhookEvent};
use crate::ports::store::WebhookEventStore;
use crate::Result;
use async_trait::async_trait;

impl Tables {
    /// Files a stored event (with its seq) in the app's log and its index, and keeps the app's counter
    /// at or above its seq.
    pub(super) fn store_webhook_event(&mut self, event: WebhookEvent) {
        let counter = self.webhook_event_counters.entry(event.app_id.clone()).or_default();
        *counter = (*counter).max(event.seq);
        self.webhook_event_seqs
            .insert((event.app_id.clone(), event.id.clone()), event.seq);
        self.webhook_events.insert((event.app_id.clone(), event.seq), event);
    }

    fn stored_webhook_event(&self, app_id: &str, id: &str) -> Option<&WebhookEvent> {
        let seq = self.webhook_event_seqs.get(&(app_id.to_owned(), id.to_owned()))?;
        self.webhook_events.get(&(app_id.to_owned(), *seq))
    }
}

#[async_trait]
impl WebhookEventStore for MemoryStore {
    async fn append_webhook_events(&self, events: &[WebhookEvent]) -> Result<Vec<WebhookEvent>> {
        self.write(|tables| {
            let mut changed = false;
            let mut stored = Vec::with_capacity(events.len());
            for event in events {
                if tables.stored_webhook_event(&event.app_id, &event.id).is_none() {
                    let counter = tables.webhook_event_counters.entry(event.app_id.clone()).or_default();
                    *counter += 1;
                    let seq = *counter;
                    tables.store_webhook_event(WebhookEvent { seq, ..event.clone() });
                    changed = true;
                }
                stored.extend(tables.stored_webhook_event(&event.app_id, &event.id).cloned());
            }
            Ok(if changed { Changed(stored) } else { Unchanged(stored) })
        })
    }

    async fn find_webhook_events(&self, app_id: &str, query: &EventQuery) -> Result<Vec<WebhookEvent>> {
        self.read(|tables| {
            tables
                .webhook_events
                .range((app_id.to_owned(), query.after_seq + 1)..=(app_id.to_owned(), i64::MAX))
                .map(|(_, event)| event)
                .filter(|event| query.matches(event))
                .take(query.limit)
                .cloned()
                .collect()
        })
    }

    async fn count_webhook_events(&self, app_id: &str, query: &EventQuery) -> Result<u64> {
        self.read(|tables| {
            tables
                .webhook_events
                .range((app_id.to_owned(), query.after_seq + 1)..=(app_id.to_owned(), i64::MAX))
                .filter(|(_, event)| query.matches(event))
                .take(query.limit)
                .count() as u64
        })
    }

    async fn purge_webhook_events(&self, before: i64) -> Result<u64> {
        self.write(|tables| {
            let old: Vec<(String, i64, String)> = tables
                .webhook_events
                .values()
                .filter(|event| event.created_at < before)
                .map(|event| (event.app_id.clone(), event.seq, event.id.clone()))
                .collect();
            for (app_id, seq, id) in &old {
                tables.webhook_events.remove(&(app_id.clone(), *seq));
                tables.webhook_event_seqs.remove(&(app_id.clone(), id.clone()));
            }
            let purged = old.len() as u64;
            Ok(if purged > 0 { Changed(purged) } else { Unchanged(purged) })
        })
    }
}
