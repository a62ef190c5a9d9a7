//! What each client event does. Every handler checks the caller's app and membership first; replies are
//! JSON values, failures are [`Error`]s the connection turns into error replies.

use crate::hub::ConnectionId;
use crate::messages;
use crate::Node;
use caas_shared::auth::Claims;
use caas_shared::cache;
use caas_shared::correlation::CorrelationId;
use caas_shared::history::{self, MAX_HISTORY_PAGE, REPLAY_PAGE};
use caas_shared::model::{limits, Conversation, ConversationKind, Member, Role};
use caas_shared::protocol::{self, ClientFrame, CreateConversation, History, SendMessage, Subscribe};
use caas_shared::store::SeqRange;
use caas_shared::{now_ms, Error, Result};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// The authenticated identity behind one connection.
pub struct Session {
    pub claims: Claims,
    pub connection: ConnectionId,
    pub correlation_id: CorrelationId,
}

impl Session {
    pub fn app_id(&self) -> &str {
        &self.claims.app_id
    }

    pub fn user_id(&self) -> &str {
        &self.claims.sub
    }
}

/// Runs one client request. `correlation_id` is the frame's own id or the connection's.
pub async fn dispatch(
    node: &Node,
    session: &Session,
    frame: &ClientFrame,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    match frame.kind.as_str() {
        "ping" => Ok(json!({"pong": now_ms()})),
        "conversation.create" => create_conversation(node, session, frame.payload()?, correlation_id).await,
        "conversation.subscribe" => subscribe(node, session, frame.payload()?).await,
        "conversation.history" => history(node, session, frame.payload()?).await,
        "message.send" => send_message(node, session, frame.payload()?, correlation_id).await,
        "message.edit" => messages::edit(node, session, frame.payload()?, correlation_id).await,
        "message.delete" => messages::delete(node, session, frame.payload()?, correlation_id).await,
        "message.forward" => messages::forward(node, session, frame.payload()?, correlation_id).await,
        "message.replies" => messages::replies(node, session, frame.payload()?).await,
        "reaction.add" => messages::react(node, session, frame.payload()?, true, correlation_id).await,
        "reaction.remove" => messages::react(node, session, frame.payload()?, false, correlation_id).await,
        "auth" => Err(Error::Validation("this connection is already authenticated".into())),
        other => Err(Error::UnknownEvent(other.to_owned())),
    }
}

pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal(format!("encoding reply: {e}")))
}

pub(crate) fn require_id(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        return Err(Error::Validation(format!(
            "{field} must be 1 to 128 printable characters"
        )));
    }
    Ok(())
}

/// The member ids of a conversation in the caller's app, from the cache or the store; refuses
/// callers who are not members. Another app's conversation is "not found", never "forbidden".
pub(crate) async fn members_for(node: &Node, session: &Session, conversation_id: &str) -> Result<Vec<String>> {
    require_id("conversation_id", conversation_id)?;
    let members = match node.cache.cached_members(session.app_id(), conversation_id).await? {
        Some(members) => members,
        None => {
            let conversation = node
                .store
                .find_conversation(session.app_id(), conversation_id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("conversation {conversation_id} not found")))?;
            node.cache
                .cache_members(session.app_id(), conversation_id, &conversation.member_ids)
                .await?;
            conversation.member_ids
        }
    };
    if !members.iter().any(|m| m == session.user_id()) {
        return Err(Error::Forbidden(format!(
            "you are not a member of conversation {conversation_id}"
        )));
    }
    Ok(members)
}

async fn create_conversation(
    node: &Node,
    session: &Session,
    request: CreateConversation,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    let others: BTreeSet<String> = request
        .member_ids
        .into_iter()
        .filter(|id| id != session.user_id())
        .collect();
    for id in &others {
        require_id("member_ids[]", id)?;
    }
    let id = match request.kind {
        ConversationKind::Direct => {
            let [other] = others.iter().collect::<Vec<_>>()[..] else {
                return Err(Error::Validation(
                    "a direct conversation has exactly one other member".into(),
                ));
            };
            Conversation::direct_id(session.app_id(), session.user_id(), other)
        }
        ConversationKind::Group => {
            if others.is_empty() || others.len() >= limits::MAX_GROUP_MEMBERS {
                return Err(Error::Validation(format!(
                    "a group needs 1 to {} other members",
                    limits::MAX_GROUP_MEMBERS - 1
                )));
            }
            uuid::Uuid::now_v7().to_string()
        }
    };
    if let Some(name) = &request.name {
        if name.trim().is_empty() || name.chars().count() > limits::MAX_NAME_CHARS {
            return Err(Error::Validation(format!(
                "name must be 1 to {} characters",
                limits::MAX_NAME_CHARS
            )));
        }
    }
    let ids: Vec<String> = others.iter().cloned().collect();
    let found = node.store.find_users(session.app_id(), &ids).await?;
    if found.len() != ids.len() {
        let known: BTreeSet<&str> = found.iter().map(|u| u.id.as_str()).collect();
        let missing: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| !known.contains(id))
            .collect();
        return Err(Error::NotFound(format!(
            "unknown users in this app: {}",
            missing.join(", ")
        )));
    }
    let mut member_ids = vec![session.user_id().to_owned()];
    member_ids.extend(ids);
    let conversation = Conversation {
        id,
        app_id: session.app_id().to_owned(),
        kind: request.kind,
        name: request.name.map(|n| n.trim().to_owned()),
        created_by: session.user_id().to_owned(),
        member_ids,
        epoch: uuid::Uuid::new_v4().simple().to_string(),
        created_at: now_ms(),
        correlation_id: correlation_id.to_string(),
    };
    let members: Vec<Member> = conversation
        .member_ids
        .iter()
        .map(|user| {
            let role = if user == session.user_id() && request.kind == ConversationKind::Group {
                Role::Owner
            } else {
                Role::Member
            };
            Member::new(&conversation, user, role)
        })
        .collect();
    let stored = node.store.create_conversation(&conversation, &members).await?;
    if !stored.has_member(session.user_id()) {
        return Err(Error::Forbidden("you are not a member of this conversation".into()));
    }
    node.cache.ensure_sequence(&stored.app_id, &stored.id, 0).await?;
    node.cache
        .cache_members(&stored.app_id, &stored.id, &stored.member_ids)
        .await?;
    let notice = protocol::event("conversation.created", &stored);
    for member in &stored.member_ids {
        node.hub
            .publish(&cache::user_channel(&stored.app_id, member), &notice)
            .await?;
    }
    to_json(&stored)
}

/// How long a replay waits for a missing seq to show up (a send still between its claim and its
/// publish) before it declares the gap unrecoverable.
const REPLAY_GAP_PATIENCE: Duration = Duration::from_secs(2);

/// Subscribes the connection to the conversation's live events and, when the client says what it
/// already has (`since_seq`, `epoch`), replays what it missed. The live subscription comes first, so a
/// message is either in the replay or arrives live afterwards (possibly both: clients drop `message.new`
/// with a seq they already hold).
async fn subscribe(node: &Node, session: &Session, request: Subscribe) -> Result<Value> {
    members_for(node, session, &request.conversation_id).await?;
    let conversation = node
        .store
        .find_conversation(session.app_id(), &request.conversation_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("conversation {} not found", request.conversation_id)))?;
    let channel = cache::conversation_channel(session.app_id(), &conversation.id);
    node.hub.subscribe(session.connection, &channel).await?;
    let last_seq = node
        .cache
        .current_seq(session.app_id(), &conversation.id)
        .await?
        .unwrap_or(0);
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
    let range = SeqRange {
        after_seq: Some(since_seq),
        before_seq: None,
        limit: REPLAY_PAGE,
    };
    let deadline = tokio::time::Instant::now() + REPLAY_GAP_PATIENCE;
    loop {
        let messages = history::page(
            node.store.as_ref(),
            node.cache.as_ref(),
            session.app_id(),
            &conversation.id,
            range,
        )
        .await?;
        match history::first_gap(since_seq, &messages) {
            None => {
                reply["recovered"] = json!(true);
                reply["has_more"] = json!(messages.len() == REPLAY_PAGE);
                reply["messages"] = to_json(&messages)?;
                return Ok(reply);
            }
            Some(missing) if tokio::time::Instant::now() >= deadline => {
                tracing::warn!(conversation_id = %conversation.id, since_seq, missing, "replay has a gap; client must reload");
                return Ok(reply);
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A page of history (stored messages completed by the recent window), newest page by default.
async fn history(node: &Node, session: &Session, request: History) -> Result<Value> {
    members_for(node, session, &request.conversation_id).await?;
    let limit = request.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_HISTORY_PAGE {
        return Err(Error::Validation(format!("limit must be 1 to {MAX_HISTORY_PAGE}")));
    }
    let range = SeqRange {
        after_seq: request.after_seq,
        before_seq: request.before_seq,
        limit,
    };
    let messages = history::page(
        node.store.as_ref(),
        node.cache.as_ref(),
        session.app_id(),
        &request.conversation_id,
        range,
    )
    .await?;
    let messages = history::annotate(
        node.store.as_ref(),
        session.app_id(),
        &request.conversation_id,
        session.user_id(),
        messages,
    )
    .await?;
    Ok(json!({"conversation_id": request.conversation_id, "messages": messages}))
}

async fn send_message(
    node: &Node,
    session: &Session,
    request: SendMessage,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    if let Some(parent) = &request.reply_to {
        members_for(node, session, &request.conversation_id).await?;
        messages::current_message(node, session.app_id(), &request.conversation_id, parent).await?;
    }
    let draft = messages::Draft {
        conversation_id: request.conversation_id,
        client_msg_id: request.client_msg_id,
        text: request.text,
        reply_to: request.reply_to,
        forwarded_from: None,
    };
    messages::publish_new(node, session, draft, correlation_id).await
}
