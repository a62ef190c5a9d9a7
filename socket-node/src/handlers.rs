//! What each client event does. Every handler checks the caller's app and membership first (through the
//! shared [`Conversations`] rules); replies are JSON values, failures are [`Error`]s the connection turns
//! into error replies. Live notices to other members go through the hub.

use crate::hub::ConnectionId;
use crate::messages;
use crate::Node;
use caas_shared::auth::Claims;
use caas_shared::cache;
use caas_shared::conversations::{self, Caller, Conversations};
use caas_shared::correlation::CorrelationId;
use caas_shared::history::{self, REPLAY_PAGE};
use caas_shared::model::Role;
use caas_shared::protocol::{
    self, AddMembers, ClientFrame, ConversationRef, History, ListConversations, MarkRead, PresenceSubscribe,
    RemoveMember, RenameConversation, SendMessage, Subscribe,
};
use caas_shared::store::SeqRange;
use caas_shared::{now_ms, Error, Result};
use serde_json::{json, Value};
use std::time::Duration;

/// How long a `typing` indication lasts unless renewed; clients hide it after this.
const TYPING_EXPIRES_MS: i64 = 5_000;

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

    pub fn caller<'a>(&'a self, correlation_id: &'a str) -> Caller<'a> {
        Caller {
            app_id: self.app_id(),
            user_id: self.user_id(),
            correlation_id,
        }
    }
}

impl Node {
    pub fn conversations(&self) -> Conversations<'_> {
        Conversations {
            store: self.store.as_ref(),
            cache: self.cache.as_ref(),
            bus: self.bus.as_ref(),
        }
    }
}

/// Runs one client request. `correlation_id` is the frame's own id or the connection's.
pub async fn dispatch(
    node: &Node,
    session: &Session,
    frame: &ClientFrame,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    let caller = session.caller(correlation_id.as_str());
    let rules = node.conversations();
    match frame.kind.as_str() {
        "ping" => Ok(json!({"pong": now_ms()})),
        "conversation.create" => to_json(&rules.create(caller, frame.payload()?).await?),
        "conversation.list" => {
            let request: ListConversations = if frame.data.is_null() {
                Default::default()
            } else {
                frame.payload()?
            };
            let conversations = rules.list(caller, request.limit.unwrap_or(50)).await?;
            Ok(json!({"conversations": conversations}))
        }
        "conversation.members" => {
            let request: ConversationRef = frame.payload()?;
            let members = rules.members(caller, &request.conversation_id).await?;
            Ok(json!({"conversation_id": request.conversation_id, "members": members}))
        }
        "conversation.members.add" => {
            let request: AddMembers = frame.payload()?;
            let role = request.role.unwrap_or(Role::Member);
            let conversation = rules
                .add_members(caller, &request.conversation_id, &request.member_ids, role)
                .await?;
            to_json(&conversation)
        }
        "conversation.members.remove" => {
            let request: RemoveMember = frame.payload()?;
            to_json(
                &rules
                    .remove_member(caller, &request.conversation_id, &request.user_id)
                    .await?,
            )
        }
        "conversation.leave" => {
            let request: ConversationRef = frame.payload()?;
            to_json(
                &rules
                    .remove_member(caller, &request.conversation_id, session.user_id())
                    .await?,
            )
        }
        "conversation.update" => {
            let request: RenameConversation = frame.payload()?;
            to_json(&rules.rename(caller, &request.conversation_id, &request.name).await?)
        }
        "conversation.subscribe" => subscribe(node, session, frame.payload()?).await,
        "conversation.history" => history(node, session, frame.payload()?).await,
        "read.mark" => {
            let request: MarkRead = frame.payload()?;
            let seq = rules.mark_read(caller, &request.conversation_id, request.seq).await?;
            let notice = json!({"conversation_id": request.conversation_id, "user_id": session.user_id(), "seq": seq});
            publish_to_conversation(
                node,
                session.app_id(),
                &request.conversation_id,
                &protocol::event("read", &notice),
            )
            .await?;
            Ok(notice)
        }
        "typing.start" | "typing.stop" => {
            let request: ConversationRef = frame.payload()?;
            rules.require_member(caller, &request.conversation_id).await?;
            let typing = frame.kind == "typing.start";
            let notice = json!({
                "conversation_id": request.conversation_id,
                "user_id": session.user_id(),
                "typing": typing,
                "expires_in_ms": if typing { TYPING_EXPIRES_MS } else { 0 },
            });
            publish_to_conversation(
                node,
                session.app_id(),
                &request.conversation_id,
                &protocol::event("typing", &notice),
            )
            .await?;
            Ok(notice)
        }
        "presence.subscribe" => presence_subscribe(node, session, frame.payload()?).await,
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

pub(crate) use conversations::require_id;

/// Refuses callers who are not members; see [`Conversations::require_member`].
pub(crate) async fn require_member(node: &Node, session: &Session, conversation_id: &str) -> Result<()> {
    let correlation_id = session.correlation_id.to_string();
    node.conversations()
        .require_member(session.caller(&correlation_id), conversation_id)
        .await
}

async fn publish_to_conversation(node: &Node, app_id: &str, conversation_id: &str, frame: &str) -> Result<()> {
    node.hub
        .publish(&cache::conversation_channel(app_id, conversation_id), frame)
        .await
}

/// Most users one `presence.subscribe` may watch.
const MAX_PRESENCE_WATCH: usize = 500;

async fn presence_subscribe(node: &Node, session: &Session, request: PresenceSubscribe) -> Result<Value> {
    if request.user_ids.is_empty() || request.user_ids.len() > MAX_PRESENCE_WATCH {
        return Err(Error::Validation(format!(
            "user_ids must list 1 to {MAX_PRESENCE_WATCH} users"
        )));
    }
    for user_id in &request.user_ids {
        require_id("user_ids[]", user_id)?;
        node.hub
            .subscribe(session.connection, &cache::presence_channel(session.app_id(), user_id))
            .await?;
    }
    // Read after subscribing, so a change in between arrives as an event rather than being lost.
    let online = node.cache.online(session.app_id(), &request.user_ids).await?;
    let presence: Vec<Value> = request
        .user_ids
        .iter()
        .zip(online)
        .map(|(user_id, online)| json!({"user_id": user_id, "online": online}))
        .collect();
    Ok(json!({"presence": presence}))
}

/// How long a replay waits for a missing seq to show up (a send still between its claim and its
/// publish) before it declares the gap unrecoverable.
const REPLAY_GAP_PATIENCE: Duration = Duration::from_secs(2);

/// Subscribes the connection to the conversation's live events and, when the client says what it
/// already has (`since_seq`, `epoch`), replays what it missed. The live subscription comes first, so a
/// message is either in the replay or arrives live afterwards (possibly both: clients drop `message.new`
/// with a seq they already hold).
async fn subscribe(node: &Node, session: &Session, request: Subscribe) -> Result<Value> {
    let correlation_id = session.correlation_id.to_string();
    let conversation = node
        .conversations()
        .get(session.caller(&correlation_id), &request.conversation_id)
        .await?;
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
    let range = SeqRange {
        after_seq: request.after_seq,
        before_seq: request.before_seq,
        limit: request.limit.unwrap_or(50),
    };
    let correlation_id = session.correlation_id.to_string();
    let messages = node
        .conversations()
        .history(session.caller(&correlation_id), &request.conversation_id, range)
        .await?;
    Ok(json!({"conversation_id": request.conversation_id, "messages": messages}))
}

async fn send_message(
    node: &Node,
    session: &Session,
    request: SendMessage,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    let draft = messages::Draft {
        conversation_id: request.conversation_id,
        client_msg_id: request.client_msg_id,
        text: request.text,
        reply_to: request.reply_to,
        forwarded_from: None,
        attachment_ids: request.attachments,
    };
    messages::publish_new(node, session, draft, correlation_id).await
}
