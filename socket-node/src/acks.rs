//! Relays `caas.acks` (written by persist-messages) to senders connected to this node.
//!
//! Every node reads every partition from the end, without a consumer group's shared offsets: an ack
//! matters only to nodes that hold the sender's connection right now, and a sender who reconnected
//! elsewhere learns the state from history.

use crate::hub::Hub;
use caas_shared::bus::Bus;
use caas_shared::cache;
use caas_shared::events::{topics, PersistedAck};
use caas_shared::protocol::{self, Ack, AckStatus};
use caas_shared::Result;
use std::sync::Arc;
use std::time::Duration;

/// Positions a reader at the current end of `caas.acks`, so no ack produced after this returns is
/// missed, then relays acks in the background.
pub async fn start(bus: &dyn Bus, hub: Arc<Hub>) -> Result<()> {
    let mut acks = bus.tail(topics::ACKS).await?;
    tokio::spawn(async move {
        loop {
            match acks.next().await {
                Ok(record) => relay(&hub, &record.payload),
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
