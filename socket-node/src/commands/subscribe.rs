//! `conversation.subscribe` (live events, and the replay of what a reconnecting client missed) and
//! `conversation.history`.

use crate::session::Session;
use crate::Node;
use caas_shared::domain::protocol::{to_data, History, Subscribe};
use caas_shared::ports::cache;
use caas_shared::ports::store::SeqRange;
use caas_shared::services::conversations::Caller;
use caas_shared::services::history;
use caas_shared::{Error, Result};
use serde_json::{json, Value};

/// Subscribes the connection to the conversation's live events and, when the client says what it
/// already has (`since_seq`, `epoch`), replays what it missed. The live subscription comes first, so a
/// message is either in the replay or arrives live afterwards (possibly both: clients drop `message.new`
/// with a seq they already hold).
pub async fn subscribe(node: &Node, session: &Session, caller: Caller<'_>, request: Subscribe) -> Result<Value> {
    let conversation = node.conversations().get(caller, &request.conversation_id).await?;
    let channel = cache::conversation_channel(caller.app_id, &conversation.id);
    // A resubscribe of a conversation it holds is always fine; a new one must fit under the cap.
    let held = node
        .hub
        .count_channels_of(session.connection, &cache::conversation_channel(caller.app_id, ""));
    if held >= node.settings.max_subscriptions && !node.hub.channels_of(session.connection, &channel).contains(&channel)
    {
        return Err(Error::LimitExceeded(format!(
            "a connection subscribes to at most {} conversations; leave some first",
            node.settings.max_subscriptions
        )));
    }
    node.hub.subscribe(session.connection, &channel).await?;
    let current_seq = node.cache.current_seq(caller.app_id, &conversation.id).await?;
    // Every message numbered after this read arrives on the subscription: the channel's order starts
    // here, so the first of them to arrive is not taken for the first in seq. No counter is a
    // conversation without messages (or a cache that lost it: the counter is then re-seeded above the
    // store's reservation, and the first message after it waits out one gap).
    node.hub.start_after(
        &channel,
        current_seq.and_then(|seq| u64::try_from(seq).ok()).unwrap_or(0),
    );
    let last_seq = current_seq.unwrap_or(0);
    let mut reply = json!({
        "conversation_id": conversation.id,
        "epoch": conversation.epoch,
        "last_seq": last_seq,
        "recovered": false,
        "messages": [],
        "has_more": false,
    });
    let Some(since_seq) = request.since_seq else {
        return Ok(reply);
    };
    if since_seq < 0 {
        return Err(Error::Validation("since_seq must not be negative".into()));
    }
    if request.epoch.as_ref().is_some_and(|epoch| *epoch != conversation.epoch) {
        // The numbering the client knows no longer holds: it must reload history.
        return Ok(reply);
    }
    if current_seq == Some(since_seq) {
        // Nothing after `since_seq` has been numbered: whatever comes next arrives on the live
        // subscription made above, so there is nothing to replay and no store read to make. Most of a
        // reconnecting client's conversations are like this, and so is most of a reconnect storm. A
        // counter Redis lost reads as `None`, and one behind the client's seq (Redis restored from an
        // older snapshot) proves the counter stale: both take the full replay from the store.
        reply["recovered"] = json!(true);
        return Ok(reply);
    }
    let replayed = history::replay(
        node.store.as_ref(),
        node.cache.as_ref(),
        caller.app_id,
        &conversation.id,
        since_seq,
    )
    .await?;
    if let Some(page) = replayed {
        reply["recovered"] = json!(true);
        reply["has_more"] = json!(page.has_more);
        reply["messages"] = to_data(&page.messages)?;
    }
    Ok(reply)
}

/// A page of history (stored messages completed by the recent window), newest page by default.
pub async fn history(node: &Node, caller: Caller<'_>, request: History) -> Result<Value> {
    let range = SeqRange {
        after_seq: request.after_seq,
        before_seq: request.before_seq,
        limit: request.limit.unwrap_or(50),
    };
    node.conversations()
        .history(caller, &request.conversation_id, range)
        .await
}
