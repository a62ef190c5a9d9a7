//! Publishing a message's new state (an edit, a deletion, an erasure), shared by the socket node and
//! the compliance function so both reach every copy of a message the same way.

use crate::domain::events::{topics, EventHeaders, MessageEvent};
use crate::domain::model::Message;
use crate::ports::bus::Bus;
use crate::ports::cache::Cache;
use crate::{Error, Result};

/// Publishes `revision` on `caas.messages` (persistence, search index and summaries follow) and
/// replaces the message in the conversation's recent window, where reconnecting clients read it (a
/// tombstone written there for an older message is harmless: it carries no content).
/// Returns the message as clients see it (JSON).
pub async fn publish(
    bus: &dyn Bus,
    cache: &dyn Cache,
    revision: Message,
    wrap: fn(Message) -> MessageEvent,
    correlation_id: &str,
) -> Result<String> {
    let payload = serde_json::to_string(&revision).map_err(|e| Error::Internal(format!("encoding message: {e}")))?;
    let (app_id, conversation_id, seq) = (revision.app_id.clone(), revision.conversation_id.clone(), revision.seq);
    let event = wrap(revision);
    let headers = EventHeaders::for_message_event(&app_id, &event, correlation_id);
    let (published, remembered) = tokio::join!(
        bus.publish_json(topics::MESSAGES, &conversation_id, &headers, &event),
        cache.remember_recent(&app_id, &conversation_id, seq, &payload),
    );
    published?;
    remembered?;
    Ok(payload)
}
