//! Message operations: send (and forward), edit, delete, reactions and threads. Each is authorised
//! against the caller's app and membership, published to `caas.messages` with the request's correlation
//! id (persist-messages stores it idempotently), kept in the recent window for reconnecting clients, and
//! fanned out to the conversation on every node.

use crate::handlers::{require_id, require_member, to_json, Session};
use crate::moderation;
use crate::Node;
use caas_shared::audit::{actions, Actor, AuditEvent, Target};
use caas_shared::cache::{self, ClaimResult, ClaimState, SendKey};
use caas_shared::clock::next_version;
use caas_shared::correlation::CorrelationId;
use caas_shared::events::{topics, EventHeaders, MessageEvent};
use caas_shared::history::{self, MAX_HISTORY_PAGE};
use caas_shared::model::{limits, AttachmentStatus, ForwardedFrom, Message, MessageAttachment, Reaction, Role};
use caas_shared::protocol::{self, Ack, AckStatus, EditMessage, ForwardMessage, MessageRef, ReactionRequest, Replies};
use caas_shared::{now_ms, revisions, Error, Result};
use serde_json::{json, Value};

/// A new message before it has an id and a seq.
pub struct Draft {
    pub conversation_id: String,
    pub client_msg_id: String,
    pub text: String,
    pub reply_to: Option<String>,
    pub forwarded_from: Option<ForwardedFrom>,
    /// Ids of completed uploads (media function) to attach.
    pub attachment_ids: Vec<String>,
}

/// More than this many files in one message is refused.
pub const MAX_ATTACHMENTS: usize = 10;

fn validate_text(text: &str, has_attachments: bool) -> Result<()> {
    if text.trim().is_empty() && !has_attachments {
        return Err(Error::Validation(
            "text must not be empty (unless the message has attachments)".into(),
        ));
    }
    if text.len() > limits::MAX_TEXT_BYTES {
        return Err(Error::Validation(format!(
            "text must be at most {} bytes",
            limits::MAX_TEXT_BYTES
        )));
    }
    Ok(())
}

fn encode(message: &Message) -> Result<String> {
    serde_json::to_string(message).map_err(|e| Error::Internal(format!("encoding message: {e}")))
}

fn headers(app_id: &str, correlation_id: &CorrelationId, event: &MessageEvent) -> EventHeaders {
    EventHeaders {
        correlation_id: correlation_id.to_string(),
        app_id: app_id.to_owned(),
        event_type: event.event_type().to_owned(),
    }
}

/// The message as it stands now: the stored copy or, when newer or not persisted yet, the copy in the
/// recent window. Another app's or another conversation's message is "not found".
pub async fn current_message(node: &Node, app_id: &str, conversation_id: &str, message_id: &str) -> Result<Message> {
    require_id("message_id", message_id)?;
    let stored = node.store.find_message(app_id, conversation_id, message_id).await?;
    // Known seq: only that slot of the window matters; unknown: the message may be too new to be stored.
    let window = node
        .cache
        .recent_after(app_id, conversation_id, stored.as_ref().map_or(0, |m| m.seq - 1))
        .await?;
    let recent = window
        .iter()
        .take(if stored.is_some() { 1 } else { usize::MAX })
        .filter_map(|(_, payload)| serde_json::from_str::<Message>(payload).ok())
        .find(|m| m.id == message_id);
    [stored, recent]
        .into_iter()
        .flatten()
        .max_by_key(|m| m.version)
        .ok_or_else(|| Error::NotFound(format!("message {message_id} not found in this conversation")))
}

/// Sequences and publishes a new message; a retried `client_msg_id` returns the original id and seq.
pub async fn publish_new(
    node: &Node,
    session: &Session,
    draft: Draft,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    require_id("client_msg_id", &draft.client_msg_id)?;
    validate_text(&draft.text, !draft.attachment_ids.is_empty())?;
    if let Some(parent) = &draft.reply_to {
        require_id("reply_to", parent)?;
    }
    require_member(node, session, &draft.conversation_id).await?;
    let flagged_terms = moderation::screen_send(node, session, &draft.conversation_id, &draft.text).await?;
    if let Some(parent) = &draft.reply_to {
        current_message(node, session.app_id(), &draft.conversation_id, parent).await?;
    }
    let attachments = attachments_for(node, session, &draft).await?;
    let (app_id, sender_id) = (session.app_id(), session.user_id());
    let conversation_id = draft.conversation_id.as_str();
    let send_key = SendKey {
        app_id,
        conversation_id,
        sender_id,
        client_msg_id: &draft.client_msg_id,
    };
    let claim_of = || async {
        node.cache
            .claim_message(send_key, &uuid::Uuid::now_v7().to_string())
            .await
    };
    let claim = match claim_of().await? {
        ClaimResult::Claimed(claim) => claim,
        ClaimResult::CounterMissing => {
            // Redis lost the counter: continue after the highest stored seq instead of reusing numbers.
            let floor = node.store.max_seq(app_id, conversation_id).await?;
            node.cache.ensure_sequence(app_id, conversation_id, floor).await?;
            match claim_of().await? {
                ClaimResult::Claimed(claim) => claim,
                ClaimResult::CounterMissing => return Err(Error::Internal("sequence counter vanished".into())),
            }
        }
    };
    let ack = Ack {
        conversation_id: conversation_id.to_owned(),
        client_msg_id: draft.client_msg_id.clone(),
        message_id: claim.message_id.clone(),
        seq: claim.seq,
        status: AckStatus::Accepted,
        duplicate: !claim.is_new,
    };
    if claim.state == ClaimState::Published {
        return to_json(&ack);
    }
    // New, failed or still pending (its node may have died before publishing): publish under the
    // claimed id and seq. Persistence is idempotent, so a second publish of the same message is harmless.
    let message = Message {
        id: claim.message_id.clone(),
        app_id: app_id.to_owned(),
        conversation_id: conversation_id.to_owned(),
        seq: claim.seq,
        sender_id: sender_id.to_owned(),
        client_msg_id: draft.client_msg_id.clone(),
        text: draft.text,
        reply_to: draft.reply_to,
        forwarded_from: draft.forwarded_from,
        attachments,
        created_at: now_ms(),
        correlation_id: correlation_id.to_string(),
        ..Message::default()
    };
    let payload = encode(&message)?;
    if !flagged_terms.is_empty() && claim.is_new {
        moderation::report_flagged(node, &message, flagged_terms).await;
    }
    let event = MessageEvent::Created(message);
    let event_headers = headers(app_id, correlation_id, &event);
    // The recent window must hold the message before anyone can learn its seq (from the fan-out or the
    // ack), so that a client reconnecting right after can replay it even before it is persisted.
    let (published, remembered) = tokio::join!(
        node.bus
            .publish_json(topics::MESSAGES, conversation_id, &event_headers, &event),
        node.cache.remember_recent(app_id, conversation_id, claim.seq, &payload),
    );
    // Recorded either way: a failed claim is republished by the client's retry under the same id and seq.
    let state = if published.is_ok() {
        ClaimState::Published
    } else {
        ClaimState::Failed
    };
    node.cache.set_claim_state(send_key, &claim, state).await?;
    published?;
    remembered?;
    node.hub
        .publish(
            &cache::conversation_channel(app_id, conversation_id),
            &protocol::event_with_encoded_data("message.new", &payload),
        )
        .await?;
    to_json(&ack)
}

/// Publishes a message's new state (edit or deletion) and tells the conversation with `notice`.
async fn publish_revision(
    node: &Node,
    revision: Message,
    wrap: fn(Message) -> MessageEvent,
    notice: &str,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    let (app_id, conversation_id) = (revision.app_id.clone(), revision.conversation_id.clone());
    let payload = revisions::publish(
        node.bus.as_ref(),
        node.cache.as_ref(),
        revision,
        wrap,
        correlation_id.as_str(),
    )
    .await?;
    node.hub
        .publish(
            &cache::conversation_channel(&app_id, &conversation_id),
            &protocol::event_with_encoded_data(notice, &payload),
        )
        .await?;
    serde_json::from_str(&payload).map_err(|e| Error::Internal(e.to_string()))
}

/// `message.edit`: the sender replaces the text; `version` and `edited_at` record the change.
pub async fn edit(
    node: &Node,
    session: &Session,
    request: EditMessage,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    validate_text(&request.text, false)?;
    require_member(node, session, &request.conversation_id).await?;
    let current = current_message(node, session.app_id(), &request.conversation_id, &request.message_id).await?;
    if current.sender_id != session.user_id() {
        return Err(Error::Forbidden("only the sender can edit a message".into()));
    }
    if current.is_deleted() {
        return Err(Error::Conflict("the message was deleted".into()));
    }
    let revision = Message {
        text: request.text,
        version: next_version(),
        edited_at: Some(now_ms()),
        correlation_id: correlation_id.to_string(),
        ..current
    };
    publish_revision(node, revision, MessageEvent::Edited, "message.updated", correlation_id).await
}

/// `message.delete`: a soft delete by the sender or a conversation owner/admin. The text goes, the
/// tombstone (id, seq, sender, thread links) stays so the conversation reads coherently.
pub async fn delete(
    node: &Node,
    session: &Session,
    request: MessageRef,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    require_member(node, session, &request.conversation_id).await?;
    let current = current_message(node, session.app_id(), &request.conversation_id, &request.message_id).await?;
    if current.sender_id != session.user_id() {
        let member = node
            .store
            .find_member(session.app_id(), &request.conversation_id, session.user_id())
            .await?;
        if !member.is_some_and(|m| matches!(m.role, Role::Owner | Role::Admin)) {
            return Err(Error::Forbidden(
                "only the sender or a conversation admin can delete a message".into(),
            ));
        }
    }
    if current.is_deleted() {
        return to_json(&current);
    }
    let tombstone = Message {
        text: String::new(),
        // The files stop being served too (the media function checks the carrying message).
        attachments: Vec::new(),
        version: next_version(),
        deleted_at: Some(now_ms()),
        correlation_id: correlation_id.to_string(),
        ..current
    };
    let audit = AuditEvent::new(
        session.app_id(),
        actions::MESSAGE_DELETED,
        Actor::user(session.user_id()),
        Target::new("message", &tombstone.id),
        correlation_id.as_str(),
    )
    .with_details(json!({"conversation_id": tombstone.conversation_id, "sender_id": tombstone.sender_id}));
    let deleted = publish_revision(
        node,
        tombstone,
        MessageEvent::Deleted,
        "message.deleted",
        correlation_id,
    )
    .await?;
    // The deletion stands; a trail that missed it is logged loudly rather than undone.
    if let Err(e) = audit.emit(node.bus.as_ref()).await {
        tracing::error!(error = %e, message_id = %audit.target.id, "auditing a deletion failed");
    }
    Ok(deleted)
}

/// The references a new message carries: each id must be a completed upload of this sender to this
/// conversation (the media function checked the object's size and type when it was completed).
async fn attachments_for(node: &Node, session: &Session, draft: &Draft) -> Result<Vec<MessageAttachment>> {
    let ids = &draft.attachment_ids;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if ids.len() > MAX_ATTACHMENTS {
        return Err(Error::Validation(format!(
            "a message carries at most {MAX_ATTACHMENTS} attachments"
        )));
    }
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    if unique.len() != ids.len() {
        return Err(Error::Validation("attachments must not repeat an id".into()));
    }
    let found = node.store.find_attachments(session.app_id(), ids).await?;
    ids.iter()
        .map(|id| {
            let attachment = found
                .iter()
                .find(|a| &a.id == id)
                .ok_or_else(|| Error::NotFound(format!("attachment {id} not found")))?;
            if attachment.conversation_id != draft.conversation_id {
                return Err(Error::Validation(format!(
                    "attachment {id} was uploaded to another conversation"
                )));
            }
            if attachment.uploader_id != session.user_id() {
                return Err(Error::Forbidden(format!(
                    "attachment {id} was uploaded by someone else"
                )));
            }
            if attachment.status != AttachmentStatus::Complete {
                return Err(Error::Conflict(format!(
                    "attachment {id} is not complete; complete the upload first"
                )));
            }
            Ok(attachment.reference())
        })
        .collect()
}

/// `message.forward`: a new message in the target conversation, copying the source's text and pointing
/// at it. The caller must be a member of both.
pub async fn forward(
    node: &Node,
    session: &Session,
    request: ForwardMessage,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    require_member(node, session, &request.source_conversation_id).await?;
    let source = current_message(
        node,
        session.app_id(),
        &request.source_conversation_id,
        &request.message_id,
    )
    .await?;
    if source.is_deleted() {
        return Err(Error::Conflict("a deleted message cannot be forwarded".into()));
    }
    let draft = Draft {
        conversation_id: request.conversation_id,
        client_msg_id: request.client_msg_id,
        text: source.text,
        reply_to: None,
        // Files stay readable only by members of the conversation they were uploaded to.
        attachment_ids: Vec::new(),
        forwarded_from: Some(ForwardedFrom {
            conversation_id: source.conversation_id,
            message_id: source.id,
        }),
    };
    publish_new(node, session, draft, correlation_id).await
}

/// `reaction.add` / `reaction.remove`: one reaction per user per emoji; repeating either is harmless.
pub async fn react(
    node: &Node,
    session: &Session,
    request: ReactionRequest,
    active: bool,
    correlation_id: &CorrelationId,
) -> Result<Value> {
    let emoji = request.emoji.as_str();
    if emoji.is_empty()
        || emoji.len() > limits::MAX_EMOJI_BYTES
        || emoji.chars().any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err(Error::Validation(format!(
            "emoji must be 1 to {} bytes without spaces or colons",
            limits::MAX_EMOJI_BYTES
        )));
    }
    require_member(node, session, &request.conversation_id).await?;
    let message = current_message(node, session.app_id(), &request.conversation_id, &request.message_id).await?;
    if message.is_deleted() {
        return Err(Error::Conflict("the message was deleted".into()));
    }
    let reaction = Reaction {
        id: Reaction::id_for(&message.id, session.user_id(), emoji),
        app_id: message.app_id.clone(),
        conversation_id: message.conversation_id.clone(),
        message_id: message.id.clone(),
        user_id: session.user_id().to_owned(),
        emoji: emoji.to_owned(),
        active,
        version: next_version(),
        correlation_id: correlation_id.to_string(),
    };
    let notice = json!({
        "conversation_id": reaction.conversation_id,
        "message_id": reaction.message_id,
        "emoji": reaction.emoji,
        "user_id": reaction.user_id,
    });
    let event = MessageEvent::Reacted(reaction);
    node.bus
        .publish_json(
            topics::MESSAGES,
            &message.conversation_id,
            &headers(&message.app_id, correlation_id, &event),
            &event,
        )
        .await?;
    let kind = if active { "reaction.added" } else { "reaction.removed" };
    node.hub
        .publish(
            &cache::conversation_channel(&message.app_id, &message.conversation_id),
            &protocol::event(kind, &notice),
        )
        .await?;
    let mut reply = notice;
    reply["active"] = active.into();
    Ok(reply)
}

/// `message.replies`: the thread under one message, oldest first, annotated like history.
pub async fn replies(node: &Node, session: &Session, request: Replies) -> Result<Value> {
    require_member(node, session, &request.conversation_id).await?;
    let parent = current_message(node, session.app_id(), &request.conversation_id, &request.message_id).await?;
    let limit = request.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_HISTORY_PAGE {
        return Err(Error::Validation(format!("limit must be 1 to {MAX_HISTORY_PAGE}")));
    }
    let replies = node
        .store
        .list_replies(session.app_id(), &parent.conversation_id, &parent.id, limit)
        .await?;
    let messages = history::annotate(
        node.store.as_ref(),
        session.app_id(),
        &parent.conversation_id,
        session.user_id(),
        replies,
    )
    .await?;
    Ok(json!({"conversation_id": parent.conversation_id, "message_id": parent.id, "messages": messages}))
}
