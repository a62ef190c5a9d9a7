//! The write-audit function: takes a batch of `caas.audit` records (AWS's `KafkaEvent` shape) and
//! appends each app's events to its hash chain in MongoDB (`audit_events`).
//!
//! Events are keyed by app, so one app's events arrive in order on one partition and one invocation
//! extends its chain at a time. A redelivered event is recognised by its id and skipped; if another
//! writer extended the chain meanwhile, the unique `(app_id, seq)` refuses the append and the batch is
//! retried on the new end of the chain. Nothing here ever updates or deletes a record.

use aws_lambda_events::event::kafka::KafkaEvent;
use caas_shared::domain::audit::{AuditEvent, AuditRecord};
use caas_shared::domain::events::topics;
use caas_shared::ports::store::Store;
use caas_shared::runtime::kafka_function::{async_trait, KafkaFunction};
use caas_shared::runtime::lambda::decode_json;
use caas_shared::Result;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

pub struct WriteAudit {
    store: Arc<dyn Store>,
}

/// What one invocation did; returned to the caller (Lambda logs it, the bridge reports it).
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    pub records: usize,
    pub appended: usize,
    /// Events the chain already held (a redelivery).
    pub duplicates: usize,
    /// Records that can never be processed: logged and skipped so one cannot block its partition.
    pub rejected: usize,
}

impl WriteAudit {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Extends one app's chain with the events it does not hold yet.
    async fn append(&self, app_id: &str, events: Vec<AuditEvent>) -> Result<(usize, usize)> {
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let stored: HashSet<String> = self.store.stored_audit_ids(app_id, &ids).await?.into_iter().collect();
        let mut seen = HashSet::new();
        let fresh: Vec<AuditEvent> = events
            .into_iter()
            .filter(|e| !stored.contains(&e.id) && seen.insert(e.id.clone()))
            .collect();
        let duplicates = ids.len() - fresh.len();
        let mut previous = self.store.last_audit_record(app_id).await?;
        let mut records = Vec::with_capacity(fresh.len());
        for event in fresh {
            let record = AuditRecord::chain(previous.as_ref(), event);
            previous = Some(record.clone());
            records.push(record);
        }
        self.store.append_audit_records(&records).await?;
        Ok((records.len(), duplicates))
    }
}

#[async_trait]
impl KafkaFunction for WriteAudit {
    const NAME: &'static str = "write-audit";
    const TOPICS: &'static [&'static str] = &[topics::AUDIT];
    type Report = BatchReport;

    async fn handle(&self, event: &KafkaEvent) -> Result<BatchReport> {
        let mut report = BatchReport::default();
        // Per app, in arrival order (each partition's records are in offset order).
        let mut per_app: Vec<(String, Vec<AuditEvent>)> = Vec::new();
        for record in event.records.values().flatten() {
            report.records += 1;
            match decode_json::<AuditEvent>(record, "an audit event") {
                Ok(audit) if !audit.app_id.is_empty() && !audit.id.is_empty() => {
                    match per_app.iter_mut().find(|(app, _)| *app == audit.app_id) {
                        Some((_, events)) => events.push(audit),
                        None => per_app.push((audit.app_id.clone(), vec![audit])),
                    }
                }
                Ok(_) => {
                    report.rejected += 1;
                    tracing::error!(
                        partition = record.partition,
                        offset = record.offset,
                        "audit event without app or id"
                    );
                }
                Err(reason) => {
                    report.rejected += 1;
                    tracing::error!(partition = record.partition, offset = record.offset, %reason, "rejected record");
                }
            }
        }
        for (app_id, events) in per_app {
            let (appended, duplicates) = self.append(&app_id, events).await?;
            report.appended += appended;
            report.duplicates += duplicates;
        }
        tracing::info!(report = %json!(report), "audit batch written");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_shared::domain::audit::{self, actions, Actor, AuditQuery, Target};
    use caas_shared::ports::store::{ComplianceStore, MemoryStore};
    use serde_json::Value;

    fn event(records: Vec<Value>) -> KafkaEvent {
        caas_shared::runtime::lambda::sample_event("caas.audit", &records)
    }

    fn audit_event(app: &str, target: &str) -> Value {
        let event = AuditEvent::new(
            app,
            actions::USER_RESTRICTED,
            Actor::operator(),
            Target::new("user", target),
            "c",
        );
        serde_json::to_value(event).unwrap()
    }

    #[tokio::test]
    async fn events_extend_each_apps_chain_once_even_when_redelivered() {
        let store = Arc::new(MemoryStore::new());
        let handler = WriteAudit::new(store.clone());
        let batch = event(vec![
            audit_event("a", "u1"),
            audit_event("b", "u1"),
            audit_event("a", "u2"),
            json!({"nope": true}),
        ]);
        let report = handler.handle(&batch).await.unwrap();
        assert_eq!((report.appended, report.duplicates, report.rejected), (3, 0, 1));
        let again = handler.handle(&batch).await.unwrap();
        assert_eq!((again.appended, again.duplicates), (0, 3));
        let query = AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        };
        let chain = store.list_audit_records("a", &query).await.unwrap();
        assert_eq!(chain.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(audit::verify(None, &chain), Ok(()));
        assert_eq!(chain[1].event.target.id, "u2");
    }
}
