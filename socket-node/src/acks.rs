//! Relays `caas.acks` (written by persist-messages) to senders connected to this node.
//!
//! Every node reads every partition from the end, without a consumer group's shared offsets: an ack
//! matters only to nodes that hold the sender's connection right now, and a sender who reconnected
//! elsewhere learns the state from history.

use crate::hub::Hub;
use caas_shared::cache;
use caas_shared::events::{topics, PersistedAck};
use caas_shared::protocol::{self, Ack, AckStatus};
use caas_shared::{Error, Result};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

/// Assigns every partition of `caas.acks` at its current end, so no ack produced after this returns
/// is missed, then relays acks in the background.
pub async fn start(brokers: &str, node_id: &str, hub: Arc<Hub>) -> Result<()> {
    let consumer = caas_shared::bus::consumer(brokers, &format!("caas-socket-{node_id}"), false)?;
    let consumer = tokio::task::spawn_blocking(move || -> Result<StreamConsumer> {
        let timeout = Duration::from_secs(10);
        let metadata = consumer
            .fetch_metadata(Some(topics::ACKS), timeout)
            .map_err(|e| Error::Bus(format!("reading {} metadata: {e}", topics::ACKS)))?;
        let mut assignment = TopicPartitionList::new();
        for topic in metadata.topics() {
            for partition in topic.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(topics::ACKS, partition.id(), timeout)
                    .map_err(|e| Error::Bus(format!("reading {} offsets: {e}", topics::ACKS)))?;
                assignment
                    .add_partition_offset(topics::ACKS, partition.id(), Offset::Offset(high))
                    .map_err(|e| Error::Bus(e.to_string()))?;
            }
        }
        if assignment.count() == 0 {
            return Err(Error::Bus(format!("topic {} has no partitions", topics::ACKS)));
        }
        consumer
            .assign(&assignment)
            .map_err(|e| Error::Bus(format!("assigning {}: {e}", topics::ACKS)))?;
        Ok(consumer)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    tokio::spawn(async move {
        loop {
            match consumer.recv().await {
                Ok(record) => relay(&hub, record.payload().unwrap_or_default()),
                Err(e) => {
                    tracing::error!(error = %e, "reading acks failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    Ok(())
}

fn relay(hub: &Hub, payload: &[u8]) {
    let ack: PersistedAck = match serde_json::from_slice(payload) {
        Ok(ack) => ack,
        Err(e) => {
            tracing::warn!(error = %e, "malformed ack skipped");
            return;
        }
    };
    let frame = protocol::event(
        "ack",
        Ack {
            conversation_id: ack.conversation_id,
            client_msg_id: ack.client_msg_id,
            message_id: ack.message_id,
            seq: ack.seq,
            status: AckStatus::Persisted,
            duplicate: false,
        },
    );
    hub.deliver_local(&cache::user_channel(&ack.app_id, &ack.sender_id), frame.into());
}
