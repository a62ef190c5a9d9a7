//! Kafka → function bridge: one consumer group per function, records batched into AWS's `KafkaEvent`
//! shape, the handler invoked, and offsets committed only after it succeeded. A failing batch is retried
//! (with backoff) rather than skipped, so delivery is at-least-once and the idempotent handlers make the
//! effect exactly-once.

use aws_lambda_events::event::kafka::KafkaEvent;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use caas_shared::{Error, Result};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct BatchPolicy {
    pub max_records: usize,
    /// How long to wait for more records after the first one of a batch.
    pub max_wait: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_records: 500,
            max_wait: Duration::from_millis(20),
        }
    }
}

/// One record in the JSON form Lambda receives (key and value base64, headers as signed bytes).
fn lambda_record(message: &BorrowedMessage<'_>) -> Value {
    let headers: Vec<Value> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    let bytes: Vec<i8> = h.value.unwrap_or_default().iter().map(|b| *b as i8).collect();
                    json!({ h.key: bytes })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": message.timestamp().to_millis().unwrap_or_default(),
        "timestampType": "CREATE_TIME",
        "key": message.key().map(|k| BASE64.encode(k)),
        "value": message.payload().map(|v| BASE64.encode(v)),
        "headers": headers,
    })
}

/// Consumes `topic` in `group` forever (until `shutdown`), handing batches to `handler`.
pub async fn run<F, Fut, T>(
    brokers: &str,
    topic: &str,
    group: &str,
    policy: BatchPolicy,
    handler: F,
    shutdown: impl Future<Output = ()>,
) -> Result<()>
where
    F: Fn(KafkaEvent) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let consumer: StreamConsumer = caas_shared::bus::consumer(brokers, group, true)?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| Error::Bus(format!("subscribing to {topic}: {e}")))?;
    tracing::info!(topic, group, "bridge consuming");
    tokio::pin!(shutdown);
    loop {
        let first = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            first = consumer.recv() => first,
        };
        let first = match first {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "consume error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + policy.max_wait;
        while batch.len() < policy.max_records {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message),
                Ok(Err(e)) => tracing::warn!(error = %e, "consume error"),
                Err(_) => break,
            }
        }
        let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut next_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for message in &batch {
            records
                .entry(format!("{}-{}", message.topic(), message.partition()))
                .or_default()
                .push(lambda_record(message));
            next_offsets.insert((message.topic().to_owned(), message.partition()), message.offset() + 1);
        }
        let event: KafkaEvent = serde_json::from_value(json!({
            "eventSource": "SelfManagedKafka",
            "bootstrapServers": brokers,
            "records": records,
        }))
        .map_err(|e| Error::Internal(format!("building KafkaEvent: {e}")))?;
        let mut backoff = Duration::from_millis(100);
        loop {
            match handler(event.clone()).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, records = batch.len(), group, "handler failed; retrying the batch");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        let mut commit = TopicPartitionList::new();
        for ((topic, partition), offset) in next_offsets {
            commit
                .add_partition_offset(&topic, partition, Offset::Offset(offset))
                .map_err(|e| Error::Bus(e.to_string()))?;
        }
        // A failed commit (say, after a rebalance) only means redelivery, which the handler tolerates.
        if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
            tracing::warn!(error = %e, group, "offset commit failed; the batch may be redelivered");
        }
    }
}
