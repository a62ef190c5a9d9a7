//! `conversation.*`, `read.mark` and `typing.*`: the shared conversation rules, plus the live notices
//! (read horizons, typing) this node publishes to the conversation.

use crate::Node;
use caas_shared::domain::model::Role;
use caas_shared::domain::protocol::{
    self, to_data, AddMembers, ConversationRef, CreateConversation, ListConversations, MarkRead, RenameConversation,
};
use caas_shared::services::conversations::Caller;
use caas_shared::services::messages::Notice;
use caas_shared::services::moderation;
use caas_shared::Result;
use serde_json::{json, Value};

/// How long a `typing` indication lasts unless renewed; clients hide it after this.
const TYPING_EXPIRES_MS: i64 = 5_000;

pub async fn create(node: &Node, caller: Caller<'_>, request: CreateConversation) -> Result<Value> {
    to_data(&node.conversations().create(caller, request).await?)
}

pub async fn list(node: &Node, caller: Caller<'_>, request: ListConversations) -> Result<Value> {
    let conversations = node.conversations().list(caller, request.limit.unwrap_or(50)).await?;
    Ok(json!({"conversations": conversations}))
}

pub async fn members(node: &Node, caller: Caller<'_>, request: ConversationRef) -> Result<Value> {
    let members = node.conversations().members(caller, &request.conversation_id).await?;
    Ok(json!({"conversation_id": request.conversation_id, "members": members}))
}

pub async fn add_members(node: &Node, caller: Caller<'_>, request: AddMembers) -> Result<Value> {
    let role = request.role.unwrap_or(Role::Member);
    let conversation = node
        .conversations()
        .add_members(caller, &request.conversation_id, &request.member_ids, role)
        .await?;
    to_data(&conversation)
}

/// `conversation.members.remove` and `conversation.leave` (the caller removing themself).
pub async fn remove_member(node: &Node, caller: Caller<'_>, conversation_id: &str, user_id: &str) -> Result<Value> {
    to_data(
        &node
            .conversations()
            .remove_member(caller, conversation_id, user_id)
            .await?,
    )
}

pub async fn rename(node: &Node, caller: Caller<'_>, request: RenameConversation) -> Result<Value> {
    to_data(
        &node
            .conversations()
            .rename(caller, &request.conversation_id, &request.name)
            .await?,
    )
}

pub async fn mark_read(node: &Node, caller: Caller<'_>, request: MarkRead) -> Result<Value> {
    let seq = node
        .conversations()
        .mark_read(caller, &request.conversation_id, request.seq)
        .await?;
    let notice = json!({"conversation_id": request.conversation_id, "user_id": caller.user_id, "seq": seq});
    announce(node, caller, &request.conversation_id, "read", notice).await
}

pub async fn typing(node: &Node, caller: Caller<'_>, request: ConversationRef, typing: bool) -> Result<Value> {
    node.conversations()
        .require_member(caller, &request.conversation_id)
        .await?;
    if typing {
        // A muted user cannot show as typing; stopping is always allowed (it only hides the indicator).
        moderation::screen_action(
            node.store.as_ref(),
            node.cache.as_ref(),
            caller,
            &request.conversation_id,
        )
        .await?;
    }
    let notice = json!({
        "conversation_id": request.conversation_id,
        "user_id": caller.user_id,
        "typing": typing,
        "expires_in_ms": if typing { TYPING_EXPIRES_MS } else { 0 },
    });
    announce(node, caller, &request.conversation_id, "typing", notice).await
}

/// Publishes `notice` to the conversation as a `kind` event, and answers the caller with it.
async fn announce(node: &Node, caller: Caller<'_>, conversation_id: &str, kind: &str, notice: Value) -> Result<Value> {
    let frame = protocol::event(kind, &notice);
    node.tell(Some(Notice::to_conversation(caller.app_id, conversation_id, frame)))
        .await?;
    Ok(notice)
}
