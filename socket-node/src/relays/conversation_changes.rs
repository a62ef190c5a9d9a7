//! `caas.conversations` to this node's connections: new conversations and joins to the users concerned,
//! updates to the conversation's subscribers, and removals — which first end the removed user's live
//! subscriptions here. The key directory's notices travel on the same topic: `device_list.changed` to
//! the users it names, `keys.low` to the connections of the device it names.

use super::tail;
use crate::hub::Hub;
use crate::shutdown::Shutdown;
use caas_shared::domain::events::{topics, ConversationEvent, ConversationsRecord, KeyNotice};
use caas_shared::domain::protocol;
use caas_shared::ports::bus::Bus;
use caas_shared::ports::cache;
use caas_shared::Result;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;

pub async fn conversation_changes(
    bus: &dyn Bus,
    hub: Arc<Hub>,
    shutdown: Shutdown,
) -> Result<impl Future<Output = ()>> {
    tail(
        bus,
        topics::CONVERSATIONS,
        shutdown,
        move |record: ConversationsRecord| match record {
            ConversationsRecord::Change(event) => relay(&hub, &event),
            ConversationsRecord::Keys(notice) => relay_key_notice(&hub, &notice),
        },
    )
    .await
}

fn relay_key_notice(hub: &Hub, notice: &KeyNotice) {
    match notice {
        KeyNotice::DeviceListChanged {
            app_id,
            user_id,
            recipients,
            ..
        } => {
            let frame = protocol::event("device_list.changed", json!({"user_id": user_id}));
            for recipient in recipients {
                hub.deliver_local(&cache::user_channel(app_id, recipient), frame.clone().into());
            }
        }
        KeyNotice::KeysLow {
            app_id,
            user_id,
            device_id,
            count,
            ..
        } => {
            let frame = protocol::event("keys.low", json!({"device_id": device_id, "count": count}));
            hub.deliver_to_device(&cache::user_channel(app_id, user_id), device_id, frame.into());
        }
    }
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
