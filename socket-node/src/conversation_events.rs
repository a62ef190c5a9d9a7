//! Relays `caas.conversations` to this node's connections: new conversations and joins to the users
//! concerned, updates to the conversation's subscribers, and removals — which first end the removed
//! user's live subscriptions here. Every node reads the topic from its end, outside any group, as with
//! acks: a change matters only to the connections open right now.

use crate::hub::Hub;
use caas_shared::bus::Bus;
use caas_shared::cache;
use caas_shared::events::{topics, ConversationEvent};
use caas_shared::protocol;
use caas_shared::Result;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub async fn start(bus: &dyn Bus, hub: Arc<Hub>) -> Result<()> {
    let mut events = bus.tail(topics::CONVERSATIONS).await?;
    tokio::spawn(async move {
        loop {
            match events.next().await {
                Ok(record) => match serde_json::from_slice::<ConversationEvent>(&record.payload) {
                    Ok(event) => relay(&hub, &event),
                    Err(e) => tracing::warn!(error = %e, "malformed conversation event skipped"),
                },
                Err(e) => {
                    tracing::error!(error = %e, "reading conversation events failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    Ok(())
}

fn relay(hub: &Hub, event: &ConversationEvent) {
    let conversation = &event.conversation;
    tracing::debug!(kind = %event.kind, conversation_id = %conversation.id, added = ?event.added, removed = ?event.removed, "relaying conversation event");
    let app_id = conversation.app_id.as_str();
    let conversation_channel = cache::conversation_channel(app_id, &conversation.id);
    let tell = |user_id: &str, frame: &str| {
        hub.deliver_local(&cache::user_channel(app_id, user_id), frame.to_owned().into());
    };
    for user_id in &event.removed {
        hub.revoke(&cache::user_channel(app_id, user_id), &conversation_channel);
        let notice = json!({"app_id": app_id, "conversation_id": conversation.id, "user_id": user_id});
        tell(user_id, &protocol::event("conversation.removed", &notice));
    }
    if event.kind == "conversation.created" {
        let frame = protocol::event("conversation.created", conversation);
        for user_id in &event.added {
            tell(user_id, &frame);
        }
        return;
    }
    let joined = protocol::event("conversation.joined", conversation);
    for user_id in &event.added {
        tell(user_id, &joined);
    }
    hub.deliver_local(
        &conversation_channel,
        protocol::event("conversation.updated", conversation).into(),
    );
}
