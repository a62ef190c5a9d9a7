//! Publishing a message's new state (an edit, a deletion, an erasure), shared by the socket node and
//! the compliance function so both reach every copy of a message the same way.

use crate::domain::events::{topics, EventHeaders, MessageEvent};
use crate::domain::model::Message;
use crate::ports::bus::Bus;
use crate::ports::cache::Cache;
use crate::{Error, Result};

/// What [`publish_and_remember`] did: the message as clients see it (JSON) and the outcome of each half.
pub struct Published {
    /// The message as clients see it, JSON-encoded once: the `data` of `message.*` frames and the recent-window
    /// entry.
    pub payload: String,
    /// Whether `caas.messages` took the event.
    pub published: Result<()>,
    /// Whether the recent window took the message.
    pub remembered: Result<()>,
}

/// Publishes `message` (wrapped as its event) on `caas.messages` and, at the same time, keeps it as its
/// seq's entry in the conversation's recent window, where reconnecting clients read it. Both halves
/// run whatever the other's outcome, and both outcomes come back: a new message records whether the
/// bus took it before failing, so a retry can republish under the same id and seq.
pub async fn publish_and_remember(
    bus: &dyn Bus,
    cache: &dyn Cache,
    message: Message,
    wrap: fn(Message) -> MessageEvent,
    correlation_id: &str,
) -> Result<Published> {
    let payload = serde_json::to_string(&message).map_err(|e| Error::Internal(format!("encoding message: {e}")))?;
    let (published, remembered) = publish_encoded(bus, cache, message, &payload, wrap, correlation_id, true).await;
    Ok(Published {
        payload,
        published,
        remembered,
    })
}

/// [`publish_and_remember`] for a message already encoded as `payload`; the window entry is written
/// only when `remember` (a send whose claim wrote it already does not). Returns whether the bus and the
/// window took it.
pub async fn publish_encoded(
    bus: &dyn Bus,
    cache: &dyn Cache,
    message: Message,
    payload: &str,
    wrap: fn(Message) -> MessageEvent,
    correlation_id: &str,
    remember: bool,
) -> (Result<()>, Result<()>) {
    let (app_id, conversation_id, seq) = (message.app_id.clone(), message.conversation_id.clone(), message.seq);
    let event = wrap(message);
    let headers = EventHeaders::for_message_event(&app_id, &event, correlation_id);
    let record = event.encode_with_data(payload);
    let remembering = async {
        match remember {
            true => cache.remember_recent(&app_id, &conversation_id, seq, payload).await,
            false => Ok(()),
        }
    };
    tokio::join!(
        bus.publish(topics::MESSAGES, &conversation_id, &headers, &record),
        remembering,
    )
}

/// Publishes `revision` (an edit, a deletion, an erasure) and replaces the message in the recent
/// window (a tombstone written there for an older message is harmless: it carries no content).
/// Returns the message as clients see it (JSON).
pub async fn publish(
    bus: &dyn Bus,
    cache: &dyn Cache,
    revision: Message,
    wrap: fn(Message) -> MessageEvent,
    correlation_id: &str,
) -> Result<String> {
    let Published {
        payload,
        published,
        remembered,
    } = publish_and_remember(bus, cache, revision, wrap, correlation_id).await?;
    published?;
    remembered?;
    Ok(payload)
}
