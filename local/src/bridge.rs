//! Kafka → function bridge: one consumer group per function, records batched into AWS's `KafkaEvent`
//! shape, the handler invoked, and offsets committed only after it succeeded. A failing batch is retried
//! (with backoff) rather than skipped, so delivery is at-least-once and the idempotent handlers make the
//! effect exactly-once.

use aws_lambda_events::event::kafka::KafkaEvent;
use caas_shared::ports::bus::{Bus, Position, Record};
use caas_shared::runtime::kafka_function::KafkaFunction;
use caas_shared::Result;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct BatchPolicy {
    pub max_records: usize,
    /// How long to wait for more records after the first one of a batch.
    pub max_wait: Duration,
    /// Records produced before this time (Unix ms) are committed without being handed to the function:
    /// a fresh consumer group on a broker shared with earlier runs need not replay their history.
    pub skip_before_ms: Option<i64>,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_records: 500,
            max_wait: Duration::from_millis(20),
            skip_before_ms: None,
        }
    }
}

impl BatchPolicy {
    /// The defaults, skipping what `config` says to skip.
    pub fn from_config(config: &caas_shared::config::Config) -> Self {
        Self {
            skip_before_ms: config.bridge_skip_before_ms,
            ..Self::default()
        }
    }
}

/// The position after the last record of each partition in the batch.
fn positions_after(batch: &[Record]) -> Vec<Position> {
    let mut latest: BTreeMap<(&str, i32), Position> = BTreeMap::new();
    for record in batch {
        latest.insert((&record.topic, record.partition), record.next_position());
    }
    latest.into_values().collect()
}

/// Feeds `function` from its topics in `group` until `shutdown`, as the event source mappings do when
/// deployed: one consumer per topic, in `group` itself when there is one topic, else in
/// `{group}.{topic}` (a group whose members subscribe to different topics is not every broker's
/// strength). The first consumer to fail stops the others.
pub async fn run_function<F: KafkaFunction>(
    bus: &dyn Bus,
    function: &F,
    group: &str,
    policy: BatchPolicy,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let handler = |event: KafkaEvent| async move { function.handle(&event).await };
    if let [topic] = F::TOPICS {
        return run(bus, topic, group, policy, handler, shutdown).await;
    }
    let stop = &tokio::sync::watch::channel(false).0;
    let stopped = || {
        let mut stopped = stop.subscribe();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let consumers = F::TOPICS.iter().map(|topic| {
        let group = format!("{group}.{topic}");
        let policy = policy.clone();
        let stopped = stopped();
        async move {
            let result = run(bus, topic, &group, policy, handler, stopped).await;
            stop.send_replace(true);
            result
        }
    });
    let all = futures_util::future::join_all(consumers);
    tokio::pin!(all, shutdown);
    tokio::select! {
        results = &mut all => return results.into_iter().collect(),
        _ = &mut shutdown => {
            stop.send_replace(true);
        }
    }
    all.await.into_iter().collect()
}

/// Consumes `topic` in `group` until `shutdown`, handing batches to `handler`.
pub async fn run<F, Fut, T>(
    bus: &dyn Bus,
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
    let mut consumer = bus.group_consumer(topic, group).await?;
    tracing::info!(topic, group, "bridge consuming");
    tokio::pin!(shutdown);
    loop {
        let first = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            first = consumer.next() => first,
        };
        let first = match first {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(error = %e, "consume error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + policy.max_wait;
        while batch.len() < policy.max_records {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Ok(record)) => batch.push(record),
                Ok(Err(e)) => tracing::warn!(error = %e, "consume error"),
                Err(_) => break,
            }
        }
        let positions = positions_after(&batch);
        if let Some(cutoff) = policy.skip_before_ms {
            batch.retain(|record| record.timestamp_ms >= cutoff);
        }
        if batch.is_empty() {
            consumer.commit(&positions).await.ok();
            continue;
        }
        let event = caas_shared::runtime::lambda::kafka_event(bus.source(), &batch)?;
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
        // A failed commit (say, after a rebalance) only means redelivery, which the handler tolerates.
        if let Err(e) = consumer.commit(&positions).await {
            tracing::warn!(error = %e, group, "offset commit failed; the batch may be redelivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_shared::domain::events::EventHeaders;
    use caas_shared::ports::bus::MemoryBus;
    use caas_shared::runtime::kafka_function::async_trait;
    use caas_shared::Error;
    use std::sync::Mutex;

    /// Collects the values it is handed; its first batch fails, as with a store that is briefly away.
    struct Collector {
        values: Mutex<Vec<serde_json::Value>>,
        failures_left: Mutex<u32>,
        stop: crate::StopSignal,
    }

    #[async_trait]
    impl KafkaFunction for Collector {
        const NAME: &'static str = "collector";
        const TOPICS: &'static [&'static str] = &["caas.bridge-test"];
        type Report = usize;

        async fn handle(&self, event: &KafkaEvent) -> Result<usize> {
            if std::mem::take(&mut *self.failures_left.lock().unwrap()) > 0 {
                return Err(Error::Internal("briefly away".into()));
            }
            let mut values = self.values.lock().unwrap();
            for record in event.records.values().flatten() {
                values.push(caas_shared::runtime::lambda::decode_json(record, "JSON").map_err(Error::Internal)?);
            }
            if values.len() >= 3 {
                self.stop.trigger();
            }
            Ok(values.len())
        }
    }

    #[tokio::test]
    async fn a_function_is_fed_its_topic_and_a_failed_batch_is_handed_over_again() {
        let memory = MemoryBus::new(1);
        let bus: &dyn Bus = &memory;
        bus.ensure_topics(&[Collector::TOPICS[0], "caas.other"]).await.unwrap();
        let headers = EventHeaders::new("app", "test", "corr");
        for i in 0..3 {
            bus.publish_json(Collector::TOPICS[0], "k", &headers, &serde_json::json!({ "n": i }))
                .await
                .unwrap();
        }
        bus.publish_json("caas.other", "k", &headers, &serde_json::json!({ "n": 9 }))
            .await
            .unwrap();
        let collector = Collector {
            values: Mutex::new(Vec::new()),
            failures_left: Mutex::new(1),
            stop: crate::StopSignal::new(),
        };
        let feed = run_function(bus, &collector, "group", BatchPolicy::default(), collector.stop.wait());
        tokio::time::timeout(Duration::from_secs(10), feed)
            .await
            .expect("the collector gets its three records")
            .unwrap();
        let values = collector.values.into_inner().unwrap();
        assert_eq!(values, [0, 1, 2].map(|n| serde_json::json!({ "n": n })));
    }
}
