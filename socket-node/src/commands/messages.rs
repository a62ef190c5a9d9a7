//! `message.*` and `reaction.*`: the shared [`Messages`](caas_shared::services::messages::Messages)
//! use cases, whose notices this node publishes to the conversation before it replies.

use crate::Node;
use caas_shared::domain::protocol::{EditMessage, ForwardMessage, MessageRef, ReactionRequest, SendMessage};
use caas_shared::services::conversations::Caller;
use caas_shared::services::messages::Outcome;
use caas_shared::Result;
use serde_json::Value;

/// Tells the conversation, then hands back the reply: a sender sees its own message live no later
/// than anyone else.
///
/// The use case has already put the change on the bus, so it has happened: a notice that could not be
/// published (Redis down) is only missed live, and subscribers find the change by replay or history.
/// Answering an error instead would make the client retry a change that is done, and a send retried
/// into a Redis that restarted empty would be sequenced and stored a second time.
async fn deliver(node: &Node, outcome: Outcome) -> Result<Value> {
    if let Err(e) = node.tell(outcome.notice).await {
        tracing::warn!(error = %e, "accepted, but its live notice was not published");
    }
    Ok(outcome.reply)
}

pub async fn send(node: &Node, caller: Caller<'_>, request: SendMessage) -> Result<Value> {
    deliver(node, node.messages().send(caller, request.into()).await?).await
}

pub async fn forward(node: &Node, caller: Caller<'_>, request: ForwardMessage) -> Result<Value> {
    deliver(node, node.messages().forward(caller, request).await?).await
}

pub async fn edit(node: &Node, caller: Caller<'_>, request: EditMessage) -> Result<Value> {
    deliver(node, node.messages().edit(caller, request).await?).await
}

pub async fn delete(node: &Node, caller: Caller<'_>, request: MessageRef) -> Result<Value> {
    deliver(node, node.messages().delete(caller, request).await?).await
}

pub async fn react(node: &Node, caller: Caller<'_>, request: ReactionRequest, active: bool) -> Result<Value> {
    deliver(node, node.messages().react(caller, request, active).await?).await
}
