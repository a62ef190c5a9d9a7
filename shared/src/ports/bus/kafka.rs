//! The Kafka driver: an idempotent producer that publishes with the standard headers, topic creation,
//! group readers that commit only when told (at-least-once), and tail readers; both are assigned every
//! partition explicitly (no group membership).

use super::{Bus, Consumer, Position, Record};
use crate::config::TopicSettings;
use crate::domain::events::EventHeaders;
use crate::{Error, Result};
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use std::time::Duration;

/// How long a publish may wait for the broker before the send is reported as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);
/// Metadata and offset lookups when positioning a tail reader.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The Kafka driver of the bus port (`kafka://host:port,…`, cargo feature `kafka`); cheap to clone.
#[derive(Clone)]
pub struct KafkaBus {
    producer: FutureProducer,
    brokers: String,
    partitions: i32,
}

impl KafkaBus {
    /// A bus on the comma-separated `brokers`; topics it creates get `partitions` partitions. Only the producer is
    /// created here, and it connects in the background: nothing is checked against the brokers yet.
    pub fn connect(brokers: &str, partitions: i32) -> Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Records of many concurrent sends share a produce request: at 2 ms a batch held 2-3
            // records under load, and every request costs the broker a round of fsync-free but
            // per-request work (docs/benchmarks/load.md). 5 ms is under a send's Redis share of latency.
            .set("linger.ms", "5")
            .set("batch.num.messages", "1000")
            .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
            .create()
            .map_err(|e| Error::Bus(format!("creating producer: {e}")))?;
        Ok(Self {
            producer,
            brokers: brokers.to_owned(),
            partitions,
        })
    }

    /// Warns, loudly, about each existing topic with fewer replicas than configured: it was created
    /// by hand or by an older version, and one broker's loss can lose what it holds.
    async fn warn_if_under_replicated(&self, topics: &[String], settings: TopicSettings) {
        if topics.is_empty() {
            return;
        }
        let producer = self.producer.clone();
        let names = topics.to_vec();
        let replicas = tokio::task::spawn_blocking(move || {
            names
                .iter()
                .map(|name| {
                    let metadata = producer.client().fetch_metadata(Some(name), METADATA_TIMEOUT).ok()?;
                    let topic = metadata.topics().iter().find(|t| t.name() == name)?;
                    let fewest = topic.partitions().iter().map(|p| p.replicas().len()).min()?;
                    Some((name.clone(), fewest))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (topic, fewest) in replicas.into_iter().flatten() {
            if i32::try_from(fewest).unwrap_or(i32::MAX) < settings.replication_factor {
                tracing::warn!(
                    topic,
                    replicas = fewest,
                    configured = settings.replication_factor,
                    "UNDER-REPLICATED TOPIC: it has fewer replicas than CAAS_KAFKA_REPLICATION_FACTOR; \
                     losing one broker can lose accepted messages. Reassign its partitions \
                     (kafka-reassign-partitions) to add replicas"
                );
            }
        }
    }

    fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        config
    }
}

#[async_trait]
impl Bus for KafkaBus {
    fn source(&self) -> (&'static str, String) {
        ("SelfManagedKafka", self.brokers.clone())
    }

    async fn ensure_topics(&self, topics: &[&str]) -> Result<()> {
        let settings = TopicSettings::from_env()?;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .map_err(|e| Error::Bus(format!("creating admin client: {e}")))?;
        let min_insync = settings.min_insync_replicas.to_string();
        let new_topics: Vec<NewTopic> = topics
            .iter()
            .map(|name| {
                NewTopic::new(
                    name,
                    self.partitions,
                    TopicReplication::Fixed(settings.replication_factor),
                )
                .set("min.insync.replicas", &min_insync)
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| Error::Bus(format!("creating topics: {e}")))?;
        let mut existing = Vec::new();
        for result in results {
            match result {
                Ok(_) => {}
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(topic),
                Err((topic, code)) => return Err(Error::Bus(format!("creating topic {topic}: {code}"))),
            }
        }
        self.warn_if_under_replicated(&existing, settings).await;
        Ok(())
    }

    async fn publish(&self, topic: &str, key: &str, headers: &EventHeaders, payload: &[u8]) -> Result<()> {
        let kafka_headers = headers
            .pairs()
            .into_iter()
            .fold(OwnedHeaders::new(), |acc, (name, value)| {
                acc.insert(Header {
                    key: name,
                    value: Some(value),
                })
            });
        let record = FutureRecord::to(topic).key(key).payload(payload).headers(kafka_headers);
        self.producer
            .send(record, DELIVERY_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|(e, _)| Error::Bus(format!("publishing to {topic}: {e}")))
    }

    async fn group_consumer(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>> {
        // No group membership (subscribe): the group id only keeps the committed positions. Tansu
        // 0.6.0's coordinator can complete a rebalance with an empty assignment when a member died
        // without leaving (a SyncGroup race once the dead leader expires), which left a restarted
        // bridge stable, heartbeating and reading nothing. Each group has exactly one consumer (one
        // per function, as the event source mapping runs when deployed), so nothing needs balancing.
        let consumer: StreamConsumer = self
            .consumer_config(group)
            .create()
            .map_err(|e| Error::Bus(format!("creating consumer {group}: {e}")))?;
        let consumer = assign_every_partition(consumer, topic, |_, _, _| Ok(Offset::Stored)).await?;
        Ok(Box::new(KafkaConsumer {
            consumer,
            grouped: true,
        }))
    }

    async fn tail(&self, topic: &str) -> Result<Box<dyn Consumer>> {
        // A throwaway group id: nothing is committed, the assignment below is explicit.
        let group = format!("caas-tail-{}", uuid::Uuid::new_v4());
        let consumer: StreamConsumer = self
            .consumer_config(&group)
            .create()
            .map_err(|e| Error::Bus(format!("creating tail reader on {topic}: {e}")))?;
        let consumer = assign_every_partition(consumer, topic, |consumer, topic, partition| {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
                .map_err(|e| Error::Bus(format!("reading {topic} offsets: {e}")))?;
            Ok(Offset::Offset(high))
        })
        .await?;
        Ok(Box::new(KafkaConsumer {
            consumer,
            grouped: false,
        }))
    }
}

/// Assigns `consumer` every partition of `topic`, each starting where `start` says (blocking metadata
/// calls, so off the async workers).
async fn assign_every_partition(
    consumer: StreamConsumer,
    topic: &str,
    start: fn(&StreamConsumer, &str, i32) -> Result<Offset>,
) -> Result<StreamConsumer> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> Result<StreamConsumer> {
        let metadata = consumer
            .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
            .map_err(|e| Error::Bus(format!("reading {topic} metadata: {e}")))?;
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            assignment
                .add_partition_offset(&topic, partition.id(), start(&consumer, &topic, partition.id())?)
                .map_err(|e| Error::Bus(e.to_string()))?;
        }
        if assignment.count() == 0 {
            return Err(Error::Bus(format!("topic {topic} has no partitions")));
        }
        consumer
            .assign(&assignment)
            .map_err(|e| Error::Bus(format!("assigning {topic}: {e}")))?;
        Ok(consumer)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

struct KafkaConsumer {
    consumer: StreamConsumer,
    /// False for tail readers, whose throwaway group must not accumulate commits.
    grouped: bool,
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn next(&mut self) -> Result<Record> {
        let message = self
            .consumer
            .recv()
            .await
            .map_err(|e| Error::Bus(format!("consuming: {e}")))?;
        Ok(owned_record(&message))
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<()> {
        if positions.is_empty() || !self.grouped {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for position in positions {
            list.add_partition_offset(
                &position.topic,
                position.partition,
                Offset::Offset(position.next_offset),
            )
            .map_err(|e| Error::Bus(e.to_string()))?;
        }
        self.consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| Error::Bus(format!("committing offsets: {e}")))
    }
}

fn owned_record(message: &BorrowedMessage<'_>) -> Record {
    Record {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().unwrap_or_default().to_vec(),
        headers: message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}
