//! Webhooks (issue 38), both halves.
//!
//! [`DeliverWebhooks`], the Kafka-triggered function, reads `caas.messages`, `caas.conversations` and
//! `caas.audit`, turns each record into the webhook events it announces, records them in their apps'
//! logs and queues one delivery per subscribed endpoint. It never calls an endpoint: a slow receiver
//! must not hold a partition. The template gives it a reserved concurrency of 1: each app's log has
//! one writer, so a reader following the cursor never skips an event.
//!
//! [`Worker`] delivers what is queued (see `webhook_delivery`): the scheduled function when deployed,
//! a task of the bridge and the dev mode locally.

use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use caas_shared::domain::audit::AuditEvent;
use caas_shared::domain::events::{topics, ConversationsRecord};
use caas_shared::domain::sealing::SealingKey;
use caas_shared::domain::webhooks::events::{self, Draft};
use caas_shared::ports::bus::Bus;
use caas_shared::ports::cache::Cache;
use caas_shared::ports::store::Store;
use caas_shared::ports::webhook_transport::WebhookTransport;
use caas_shared::runtime::kafka_function::{async_trait, KafkaFunction};
use caas_shared::runtime::lambda::{decode, decode_json};
use caas_shared::services::webhook_delivery::{Deliverer, RunReport};
use caas_shared::services::webhook_events::{purge_history, IngestReport, WebhookIngest};
use caas_shared::Result;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The Kafka-triggered half: records events and queues their deliveries.
pub struct DeliverWebhooks {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    /// Told whenever deliveries were queued, so a worker in the same process starts at once.
    queued: Arc<Notify>,
    /// One batch at a time per process: each app's log has one writer.
    writing: tokio::sync::Mutex<()>,
}

/// What one invocation did.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    pub records: usize,
    /// Records that can never be processed: logged and skipped so one cannot block its partition.
    pub rejected: usize,
    #[serde(flatten)]
    pub ingested: IngestReport,
}

impl DeliverWebhooks {
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn Cache>, queued: Arc<Notify>) -> Self {
        Self {
            store,
            cache,
            queued,
            writing: tokio::sync::Mutex::new(()),
        }
    }
}

/// The webhook events a record announces (none for the records webhooks do not carry).
fn drafts_of(record: &KafkaRecord) -> std::result::Result<Vec<Draft>, String> {
    let topic = record.topic.as_deref().unwrap_or_default();
    Ok(match topic {
        topics::MESSAGES => events::from_message_event(&decode(record)?).into_iter().collect(),
        topics::CONVERSATIONS => match decode_json(record, "a conversations record")? {
            ConversationsRecord::Change(change) => {
                let position = format!("{topic}:{}:{}", record.partition, record.offset);
                events::from_conversation_event(&change, &position)
            }
            ConversationsRecord::Keys(_) => Vec::new(),
        },
        topics::AUDIT => {
            let event: AuditEvent = decode_json(record, "an audit event")?;
            events::from_audit_event(&event).into_iter().collect()
        }
        other => return Err(format!("deliver-webhooks does not read {other:?}")),
    })
}

#[async_trait]
impl KafkaFunction for DeliverWebhooks {
    const NAME: &'static str = "deliver-webhooks";
    const TOPICS: &'static [&'static str] = &[topics::MESSAGES, topics::CONVERSATIONS, topics::AUDIT];
    type Report = BatchReport;

    async fn handle(&self, event: &KafkaEvent) -> Result<BatchReport> {
        let mut report = BatchReport::default();
        let mut drafts = Vec::new();
        for record in event.records.values().flatten() {
            report.records += 1;
            match drafts_of(record) {
                Ok(found) => drafts.extend(found),
                Err(reason) => {
                    report.rejected += 1;
                    tracing::error!(partition = record.partition, offset = record.offset, %reason, "rejected record");
                }
            }
        }
        let _writer = self.writing.lock().await;
        let ingest = WebhookIngest {
            store: self.store.as_ref(),
            cache: self.cache.as_ref(),
        };
        report.ingested = ingest.ingest(drafts, caas_shared::now_ms()).await?;
        if report.ingested.deliveries > 0 {
            self.queued.notify_one();
            tracing::info!(report = %serde_json::json!(report), "webhook events recorded");
        }
        Ok(report)
    }
}

/// The delivering half: what the scheduled function runs for a while, and the local bridge for ever.
pub struct Worker {
    pub store: Arc<dyn Store>,
    /// Where disabled endpoints are recorded (the audit trail).
    pub bus: Arc<dyn Bus>,
    pub key: SealingKey,
    pub transport: Arc<dyn WebhookTransport>,
    pub schedule: Vec<Duration>,
    pub retention: Duration,
}

impl Worker {
    /// Purges what retention let go of, then delivers until `stop` (waking early when `queued` is told)
    /// and finishes the attempts in flight.
    pub async fn run(&self, queued: &Notify, stop: impl Future<Output = ()>) -> RunReport {
        match purge_history(self.store.as_ref(), self.retention, caas_shared::now_ms()).await {
            Ok((events, deliveries)) if events + deliveries > 0 => {
                tracing::info!(events, deliveries, "old webhook events and deliveries purged");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "purging old webhook events failed"),
        }
        let deliverer = Deliverer {
            store: self.store.as_ref(),
            bus: self.bus.as_ref(),
            key: &self.key,
            transport: self.transport.as_ref(),
            schedule: &self.schedule,
        };
        deliverer.run(caas_shared::now_ms, queued, stop).await
    }
}

#[cfg(test)]
mod tests;
