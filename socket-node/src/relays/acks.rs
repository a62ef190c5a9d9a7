//! `caas.acks` (written by persist-messages) to the senders connected to this node.

use super::tail;
use crate::hub::Hub;
use crate::shutdown::Shutdown;
use caas_shared::domain::events::{topics, PersistedAck};
use caas_shared::domain::protocol::{self, Ack, AckStatus};
use caas_shared::ports::bus::Bus;
use caas_shared::ports::cache;
use caas_shared::Result;
use std::future::Future;
use std::sync::Arc;

pub async fn acks(bus: &dyn Bus, hub: Arc<Hub>, shutdown: Shutdown) -> Result<impl Future<Output = ()>> {
    tail(bus, topics::ACKS, shutdown, move |ack: PersistedAck| {
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
    })
    .await
}
