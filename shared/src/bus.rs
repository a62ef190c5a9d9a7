//! The Kafka driver: a producer that publishes JSON with the standard headers, topic creation, and a
//! consumer configured for manual commits (at-least-once; consumers are idempotent).

use crate::events::{topics, EventHeaders};
use crate::{Error, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// How long a publish may wait for the broker before the send is reported as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct KafkaBus {
    producer: FutureProducer,
    brokers: String,
}

impl KafkaBus {
    pub fn connect(brokers: &str) -> Result<Self> {
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
        })
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Publishes one record and waits until the broker has acknowledged it.
    pub async fn publish(&self, topic: &str, key: &str, headers: &EventHeaders, payload: &[u8]) -> Result<()> {
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

    /// Publishes a JSON value; see [`KafkaBus::publish`].
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

/// Creates the platform's topics when missing (the Kafka-protocol test broker does not auto-create).
pub async fn ensure_topics(brokers: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| Error::Bus(format!("creating admin client: {e}")))?;
    let new_topics: Vec<NewTopic> = topics::ALL
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
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

/// A consumer in `group` that never commits on its own: callers commit after their handler succeeded.
pub fn consumer(brokers: &str, group: &str, start_from_earliest: bool) -> Result<StreamConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            if start_from_earliest { "earliest" } else { "latest" },
        )
        .set("session.timeout.ms", "10000")
        .create()
        .map_err(|e| Error::Bus(format!("creating consumer {group}: {e}")))
}

/// Reads a UTF-8 header value.
pub fn header_value<H: Headers>(headers: &H, name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}
