//! The Kafka driver: an idempotent producer that publishes with the standard headers, topic creation,
//! group consumers that commit only when told (at-least-once), and partition-assigned tail readers.

use super::{Bus, Consumer, Position, Record};
use crate::domain::events::EventHeaders;
use crate::{Error, Result};
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
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
            .set("linger.ms", "2")
            .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
            .create()
            .map_err(|e| Error::Bus(format!("creating producer: {e}")))?;
        Ok(Self {
            producer,
            brokers: brokers.to_owned(),
            partitions,
        })
    }

    fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            // Also the rebalance timeout: a consumer that died mid-batch (kill -9) holds its partitions
            // until the group gives up on it, so this bounds how long its replacement waits (the
            // default, 5 minutes, stalled persistence that long). Batches take far less.
            .set("max.poll.interval.ms", "30000");
        config
    }
}

#[async_trait]
impl Bus for KafkaBus {
    fn source(&self) -> (&'static str, String) {
        ("SelfManagedKafka", self.brokers.clone())
    }

    async fn ensure_topics(&self, topics: &[&str]) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .map_err(|e| Error::Bus(format!("creating admin client: {e}")))?;
        let new_topics: Vec<NewTopic> = topics
            .iter()
            .map(|name| NewTopic::new(name, self.partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| Error::Bus(format!("creating topics: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(Error::Bus(format!("creating topic {topic}: {code}"))),
            }
        }
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
        let consumer: StreamConsumer = self
            .consumer_config(group)
            .create()
            .map_err(|e| Error::Bus(format!("creating consumer {group}: {e}")))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| Error::Bus(format!("subscribing to {topic}: {e}")))?;
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
        let topic = topic.to_owned();
        let consumer = tokio::task::spawn_blocking(move || -> Result<StreamConsumer> {
            let metadata = consumer
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .map_err(|e| Error::Bus(format!("reading {topic} metadata: {e}")))?;
            let mut assignment = TopicPartitionList::new();
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, partition.id(), METADATA_TIMEOUT)
                    .map_err(|e| Error::Bus(format!("reading {topic} offsets: {e}")))?;
                assignment
                    .add_partition_offset(&topic, partition.id(), Offset::Offset(high))
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
        .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(Box::new(KafkaConsumer {
            consumer,
            grouped: false,
        }))
    }
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
