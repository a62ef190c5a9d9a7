//! The event-bus port: keyed, partitioned, ordered logs with consumer groups that commit explicitly.
//!
//! Kafka in deployment; an in-memory log for the embedded dev mode. Both pass the same [`conformance`]
//! suite. Consumers are at-least-once: a record is delivered again to its group until a commit covers
//! it, so every handler must be idempotent.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(feature = "kafka")]
mod kafka;
mod memory;

#[cfg(feature = "kafka")]
pub use kafka::KafkaBus;
pub use memory::MemoryBus;

use crate::domain::events::EventHeaders;
use crate::{Error, Result};
use async_trait::async_trait;
use std::sync::Arc;

/// Partitions per topic when the platform creates its topics.
pub const DEFAULT_PARTITIONS: i32 = 3;

/// One record as a consumer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The topic it was read from (one of [`topics`](crate::domain::events::topics)).
    pub topic: String,
    /// The partition it was read from; records with the same key share one.
    pub partition: i32,
    /// Its position in the partition, from 0.
    pub offset: i64,
    /// When the bus accepted it, Unix ms (Kafka's record timestamp).
    pub timestamp_ms: i64,
    /// The key it was published with (a conversation or app id); always set on records the platform publishes.
    pub key: Option<Vec<u8>>,
    /// The record's value: the JSON of the event.
    pub payload: Vec<u8>,
    /// The headers as they travel (see [`EventHeaders::pairs`]); values are bytes, read them with [`Record::header`].
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// A UTF-8 header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// Where the group resumes once this record is committed.
    pub fn next_position(&self) -> Position {
        Position {
            topic: self.topic.clone(),
            partition: self.partition,
            next_offset: self.offset + 1,
        }
    }
}

/// A committed consumer position: the offset of the next record to read in one partition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset of the first record not yet processed: one past the last committed record.
    pub next_offset: i64,
}

/// The event-bus port: publishing keyed records and reading them in groups or as a tail. Hold it as
/// `Arc<dyn Bus>` (see [`connect`]) and publish events with its `publish_json`.
#[async_trait]
pub trait Bus: Send + Sync {
    /// How Lambda would name this source in a `KafkaEvent`: `(eventSource, bootstrapServers)`.
    fn source(&self) -> (&'static str, String);
    /// Creates the topics that do not exist yet; existing ones are left as they are.
    async fn ensure_topics(&self, topics: &[&str]) -> Result<()>;
    /// Appends one record and returns once the bus has durably accepted it. Records with the same key
    /// land in the same partition, in publish order.
    async fn publish(&self, topic: &str, key: &str, headers: &EventHeaders, payload: &[u8]) -> Result<()>;
    /// Reads `topic` for `group`: reading starts at the group's committed positions (the beginning for a
    /// new group). Run one consumer per group: the Kafka driver reads every partition in each consumer
    /// (it does not join the group, see its docs); the memory driver shares partitions among them.
    async fn group_consumer(&self, topic: &str, group: &str) -> Result<Box<dyn Consumer>>;
    /// Reads every partition of `topic` from its current end, outside any group: for relays that only
    /// care about what happens from now on. Returns once positioned, so nothing published later is missed.
    async fn tail(&self, topic: &str) -> Result<Box<dyn Consumer>>;
}

impl dyn Bus + '_ {
    /// Publishes a JSON value; see [`Bus::publish`].
    pub async fn publish_json(
        &self,
        topic: &str,
        key: &str,
        headers: &EventHeaders,
        value: &impl serde::Serialize,
    ) -> Result<()> {
        let payload = serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encoding event: {e}")))?;
        self.publish(topic, key, headers, &payload).await
    }
}

/// A reader of one topic, from [`Bus::group_consumer`] or [`Bus::tail`].
#[async_trait]
pub trait Consumer: Send {
    /// Waits for the next record.
    async fn next(&mut self) -> Result<Record>;
    /// Records the group's progress; records before these positions are not delivered to the group
    /// again. A tail consumer has no group, and committing is a no-op.
    async fn commit(&mut self, positions: &[Position]) -> Result<()>;
}

/// Connects the bus named by `url`: `kafka://host:port,…` or `memory://` (a log private to this process,
/// with the platform's topics). Creating Kafka topics is left to long-running processes (socket nodes,
/// the local bridge): a Lambda cold start should not pay for it, nor need the permission.
pub async fn connect(url: &str) -> Result<Arc<dyn Bus>> {
    if url.starts_with("memory://") {
        let bus = MemoryBus::new(DEFAULT_PARTITIONS);
        bus.ensure_topics(&crate::domain::events::topics::ALL).await?;
        Ok(Arc::new(bus))
    } else if let Some(brokers) = url.strip_prefix("kafka://") {
        kafka_bus(brokers)
    } else {
        Err(Error::Config(format!(
            "CAAS_BUS_URL must be kafka://host:port,… or memory://, got {url}"
        )))
    }
}

#[cfg(feature = "kafka")]
fn kafka_bus(brokers: &str) -> Result<Arc<dyn Bus>> {
    Ok(Arc::new(KafkaBus::connect(brokers, DEFAULT_PARTITIONS)?))
}

#[cfg(not(feature = "kafka"))]
fn kafka_bus(_brokers: &str) -> Result<Arc<dyn Bus>> {
    Err(Error::Config(
        "this binary was built without Kafka support; rebuild with `--features kafka` (needs cmake)".into(),
    ))
}

/// Stable partition choice for a key (FNV-1a), so one key always maps to one partition.
pub(crate) fn partition_for(key: &str, partitions: i32) -> i32 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % partitions.max(1) as u64) as i32
}
