//! Scenario 3, persistence: messages per second from Kafka into MongoDB through the persist-messages
//! function (bulk, idempotent, acks to senders), against a naive writer that inserts one document per
//! record. Both consume the same topic through the same bridge, so only the writing differs.

use super::Environment;
use crate::error::{BenchError, Result};
use caas_local::bridge::{self, BatchPolicy};
use caas_local::StopSignal;
use caas_shared::domain::events::{EventHeaders, MessageEvent};
use caas_shared::domain::model::Message;
use caas_shared::ports::bus::Bus;
use caas_shared::runtime::kafka_function::KafkaFunction;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize)]
pub struct PersistSettings {
    pub messages: usize,
    /// The naive writer stops after this long (at ~1 insert per round trip it would take minutes).
    pub naive_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct PersistResult {
    pub messages: usize,
    pub produce_per_sec: f64,
    pub persist_messages_per_sec: f64,
    pub naive_written: usize,
    pub naive_per_sec: f64,
}

pub(super) fn messages(env: &Environment, count: usize) -> Vec<Message> {
    let conversations: Vec<String> = (0..100).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    (0..count)
        .map(|i| Message {
            id: uuid::Uuid::now_v7().to_string(),
            app_id: env.app_id.clone(),
            conversation_id: conversations[i % conversations.len()].clone(),
            seq: (i / conversations.len() + 1) as i64,
            sender_id: super::fleet::user_id(i % 1_000),
            client_msg_id: format!("p{i}"),
            text: format!("persisted message number {i} of the benchmark"),
            created_at: caas_shared::now_ms(),
            correlation_id: format!("bench-persist-{i}"),
            ..Message::default()
        })
        .collect()
}

/// Consumes `topic` in a new group, handing batches to `write` (which returns how many it stored)
/// until `target` are stored or `limit` passed; returns how many and how long.
pub(super) async fn drain<F, Fut>(
    bus: &dyn Bus,
    topic: &str,
    target: usize,
    limit: Duration,
    write: F,
) -> Result<(usize, f64)>
where
    F: Fn(aws_lambda_events::event::kafka::KafkaEvent) -> Fut,
    Fut: std::future::Future<Output = caas_shared::Result<usize>>,
{
    let stored = AtomicUsize::new(0);
    let stop = StopSignal::new();
    let group = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let started = Instant::now();
    let handler = |event| {
        let batch = write(event);
        let (stored, stop) = (&stored, &stop);
        async move {
            let count = batch.await?;
            if stored.fetch_add(count, Ordering::Relaxed) + count >= target {
                stop.trigger();
            }
            caas_shared::Result::Ok(())
        }
    };
    let consume = bridge::run(bus, topic, &group, BatchPolicy::default(), handler, stop.wait());
    let outcome = tokio::time::timeout(limit, consume).await;
    let seconds = started.elapsed().as_secs_f64();
    if let Ok(result) = outcome {
        result?;
    }
    Ok((stored.load(Ordering::Relaxed), seconds))
}

/// Publishes each message as a `message.created` record on `topic`, 1,000 in flight.
pub(super) async fn produce(bus: &dyn Bus, topic: &str, batch: &[Message]) -> Result<()> {
    stream::iter(batch.iter())
        .map(|message| {
            let headers = EventHeaders::new(&message.app_id, "message.created", &message.correlation_id);
            async move {
                let event = MessageEvent::Created(message.clone());
                bus.publish_json(topic, &message.conversation_id, &headers, &event)
                    .await
            }
        })
        .buffer_unordered(1_000)
        .try_collect::<()>()
        .await?;
    Ok(())
}

pub async fn run(settings: &PersistSettings, env: &Environment) -> Result<PersistResult> {
    // A producer of its own: the environment's may be tied to a broker that was restarted empty
    // between scenarios (its idempotent-producer state then refers to a log that no longer exists).
    let bus_handle = caas_shared::ports::bus::connect(&env.config.bus_url).await?;
    let bus = bus_handle.as_ref();
    let topic = format!("caas.bench.messages.{}", uuid::Uuid::new_v4().simple());
    // persist-messages also publishes acks: the platform's topics must exist on a fresh broker.
    bus.ensure_topics(&caas_shared::domain::events::topics::ALL).await?;
    bus.ensure_topics(&[topic.as_str()]).await?;
    let started = Instant::now();
    produce(bus, &topic, &messages(env, settings.messages)).await?;
    let produce_per_sec = settings.messages as f64 / started.elapsed().as_secs_f64();

    let persist = persist_messages::PersistMessages::new(env.store.clone(), std::sync::Arc::clone(&bus_handle));
    let persist = &persist;
    let (persisted, seconds) = drain(
        bus,
        &topic,
        settings.messages,
        Duration::from_secs(600),
        |event| async move {
            persist
                .handle(&event)
                .await
                .map(|report| report.inserted + report.duplicates)
        },
    )
    .await?;
    if persisted < settings.messages {
        return Err(BenchError::Failed(format!(
            "persist-messages stored {persisted} of {} messages within 600 s",
            settings.messages
        )));
    }

    let client = mongodb::Client::with_uri_str(&env.config.store_url)
        .await
        .map_err(|e| BenchError::Failed(format!("MongoDB: {e}")))?;
    let naive = client
        .database(&format!("{}_naive_bench", env.config.store_database))
        .collection::<Message>("messages");
    let naive = &naive;
    let (naive_written, naive_elapsed) = drain(
        bus,
        &topic,
        settings.messages,
        Duration::from_secs_f64(settings.naive_seconds),
        |event| async move {
            let mut written = 0;
            for record in event.records.values().flatten() {
                let Ok(MessageEvent::Created(message)) = caas_shared::runtime::lambda::decode(record) else {
                    continue;
                };
                naive.insert_one(&message).await?;
                written += 1;
            }
            Ok(written)
        },
    )
    .await?;
    let _ = naive.drop().await;
    Ok(PersistResult {
        messages: settings.messages,
        produce_per_sec,
        persist_messages_per_sec: persisted as f64 / seconds,
        naive_written,
        naive_per_sec: naive_written as f64 / naive_elapsed,
    })
}
