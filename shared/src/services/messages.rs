//! Message use cases: send (and forward), edit, delete, react and read a thread. Each is authorised
//! against the caller's app and membership, published to `caas.messages` with the request's correlation
//! id (persist-messages stores it idempotently) and kept in the recent window for reconnecting clients.
//! What live connections must be told comes back as a [`Notice`]: delivering it is the transport's job.

use crate::domain::audit::{actions, Actor, AuditEvent, Target};
use crate::domain::clock::next_version;
use crate::domain::events::{topics, EventHeaders, MessageEvent};
use crate::domain::model::{limits, AttachmentStatus, ForwardedFrom, Message, MessageAttachment, Reaction, Role};
use crate::domain::protocol::{self, EditMessage, ForwardMessage, MessageRef, ReactionRequest, Replies};
use crate::ports::bus::Bus;
use crate::ports::cache::{self, Cache, RecentSlice, RECENT_MESSAGES};
use crate::ports::store::Store;
use crate::services::conversations::{require_id, Caller, Conversations};
use crate::services::history::{self, MAX_HISTORY_PAGE};
use crate::services::moderation::{self, AppSettingsCache};
use crate::services::revisions;
use crate::{now_ms, Error, Result};
use serde_json::{json, Value};

/// More than this many files in one message is refused.
pub const MAX_ATTACHMENTS: usize = 10;

/// A new message before it has an id and a seq.
pub struct Draft {
    /// The conversation to send to.
    pub conversation_id: String,
    /// The sender's idempotency key ([`Message::client_msg_id`]).
    pub client_msg_id: String,
    /// The text; empty only when the draft carries attachments.
    pub text: String,
    /// The id of the message replied to, in the same conversation; it must exist.
    pub reply_to: Option<String>,
    /// Set by [`Messages::forward`]: where the forwarded message came from.
    pub forwarded_from: Option<ForwardedFrom>,
    /// Ids of completed uploads (media function) to attach.
    pub attachment_ids: Vec<String>,
}

impl From<protocol::SendMessage> for Draft {
    fn from(request: protocol::SendMessage) -> Self {
        Self {
            conversation_id: request.conversation_id,
            client_msg_id: request.client_msg_id,
            text: request.text,
            reply_to: request.reply_to,
            forwarded_from: None,
            attachment_ids: request.attachments,
        }
    }
}

/// One event frame for every live subscriber of a conversation, on any node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The conversation's fan-out channel ([`cache::conversation_channel`]).
    pub channel: String,
    /// The whole event frame, encoded.
    pub frame: String,
}

impl Notice {
    /// `frame` for every subscriber of the conversation.
    pub fn to_conversation(app_id: &str, conversation_id: &str, frame: String) -> Self {
        Self {
            channel: cache::conversation_channel(app_id, conversation_id),
            frame,
        }
    }
}

/// A use case's reply to the caller and what the conversation must be told, in that order of need:
/// the transport delivers the notice before it sends the reply.
#[derive(Debug)]
pub struct Outcome {
    /// The reply `data` for the caller: the ack of a send, the new state of an edited or deleted message, the
    /// reaction notice.
    pub reply: Value,
    /// What the conversation's live subscribers must be told; `None` when nothing changed (a duplicate send, a
    /// repeated deletion).
    pub notice: Option<Notice>,
}

/// The message use cases over the ports; `settings` is the caller's node-wide cache of app settings.
pub struct Messages<'a> {
    /// Where messages, members and attachments are read.
    pub store: &'a dyn Store,
    /// Sequence counters, send claims, the recent window and the moderation gate.
    pub cache: &'a dyn Cache,
    /// Where message states (`caas.messages`) and audit events are published.
    pub bus: &'a dyn Bus,
    /// The node-wide cache of app settings (content policy, rate limits).
    pub settings: &'a AppSettingsCache,
}

pub(super) fn validate_text(text: &str, has_attachments: bool) -> Result<()> {
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

impl Messages<'_> {
    fn conversations(&self) -> Conversations<'_> {
        Conversations {
            store: self.store,
            cache: self.cache,
            bus: self.bus,
        }
    }

    pub(super) async fn require_member(&self, caller: Caller<'_>, conversation_id: &str) -> Result<()> {
        self.conversations().require_member(caller, conversation_id).await
    }

    /// A message of a conversation the caller is a member of, as it stands now (see [`Self::current`]).
    async fn member_message(&self, caller: Caller<'_>, conversation_id: &str, message_id: &str) -> Result<Message> {
        self.require_member(caller, conversation_id).await?;
        self.current(caller.app_id, conversation_id, message_id).await
    }

    /// The message as it stands now: the stored copy or, when newer or not persisted yet, the copy in
    /// the recent window. Another app's or another conversation's message is "not found".
    pub async fn current(&self, app_id: &str, conversation_id: &str, message_id: &str) -> Result<Message> {
        require_id("message_id", message_id)?;
        let stored = self.store.find_message(app_id, conversation_id, message_id).await?;
        // Known seq: exactly that slot of the window is read (it may hold a newer edit); unknown: the
        // message may be too new to be stored, and only the window (bounded) can say where it is.
        let slice = match &stored {
            Some(message) => RecentSlice::at(message.seq),
            None => RecentSlice {
                after_seq: 0,
                before_seq: None,
                limit: RECENT_MESSAGES,
                newest: false,
            },
        };
        let window = self.cache.recent_in(app_id, conversation_id, slice).await?;
        let recent = window
            .iter()
            .filter_map(|(_, payload)| serde_json::from_str::<Message>(payload).ok())
            .find(|m| m.id == message_id);
        [stored, recent]
            .into_iter()
            .flatten()
            .max_by_key(|m| m.version)
            .ok_or_else(|| Error::NotFound(format!("message {message_id} not found in this conversation")))
    }

    /// `message.forward`: a new message in the target conversation, copying the source's text and
    /// pointing at it. The caller must be a member of both.
    pub async fn forward(&self, caller: Caller<'_>, request: ForwardMessage) -> Result<Outcome> {
        let source = self
            .member_message(caller, &request.source_conversation_id, &request.message_id)
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
        self.send(caller, draft).await
    }

    /// `message.edit`: the sender replaces the text; `version` and `edited_at` record the change.
    pub async fn edit(&self, caller: Caller<'_>, request: EditMessage) -> Result<Outcome> {
        validate_text(&request.text, false)?;
        let current = self
            .member_message(caller, &request.conversation_id, &request.message_id)
            .await?;
        if current.sender_id != caller.user_id {
            return Err(Error::Forbidden("only the sender can edit a message".into()));
        }
        if current.is_deleted() {
            return Err(Error::Conflict("the message was deleted".into()));
        }
        // An edit is a post: the same content policy, restrictions and rate limits as a send, or a
        // muted user (or a blocked term) could get in by editing an earlier message.
        let flagged_terms = moderation::screen_post(
            self.store,
            self.cache,
            self.settings,
            caller,
            &request.conversation_id,
            &request.text,
        )
        .await?;
        let revision = Message {
            text: request.text,
            version: next_version(),
            edited_at: Some(now_ms()),
            correlation_id: caller.correlation_id.to_owned(),
            ..current
        };
        if !flagged_terms.is_empty() {
            self.report_flagged(&revision, flagged_terms).await;
        }
        self.publish_revision(caller, revision, MessageEvent::Edited, "message.updated")
            .await
    }

    /// `message.delete`: a soft delete by the sender or a conversation owner/admin. The text goes, the
    /// tombstone (id, seq, sender, thread links) stays so the conversation reads coherently.
    pub async fn delete(&self, caller: Caller<'_>, request: MessageRef) -> Result<Outcome> {
        let current = self
            .member_message(caller, &request.conversation_id, &request.message_id)
            .await?;
        if current.sender_id != caller.user_id {
            let member = self
                .store
                .find_member(caller.app_id, &request.conversation_id, caller.user_id)
                .await?;
            if !member.is_some_and(|m| matches!(m.role, Role::Owner | Role::Admin)) {
                return Err(Error::Forbidden(
                    "only the sender or a conversation admin can delete a message".into(),
                ));
            }
        }
        if current.is_deleted() {
            return Ok(Outcome {
                reply: protocol::to_data(&current)?,
                notice: None,
            });
        }
        // The files stop being served too (the media function checks the carrying message).
        let tombstone = current.into_tombstone(now_ms(), caller.correlation_id);
        let audit = AuditEvent::new(
            caller.app_id,
            actions::MESSAGE_DELETED,
            Actor::user(caller.user_id),
            Target::new("message", &tombstone.id),
            caller.correlation_id,
        )
        .with_details(json!({"conversation_id": tombstone.conversation_id, "sender_id": tombstone.sender_id}));
        let deleted = self
            .publish_revision(caller, tombstone, MessageEvent::Deleted, "message.deleted")
            .await?;
        // The deletion stands; a trail that missed it is logged loudly rather than undone.
        if let Err(e) = audit.emit(self.bus).await {
            tracing::error!(error = %e, message_id = %audit.target.id, "auditing a deletion failed");
        }
        Ok(deleted)
    }

    /// Refuses a new emoji on a message that already has [`limits::MAX_DISTINCT_REACTIONS`] distinct
    /// ones (persisted): reacting with one already there is always fine.
    async fn require_room_for_emoji(&self, caller: Caller<'_>, message: &Message, emoji: &str) -> Result<()> {
        let counts = self
            .store
            .reaction_counts(
                caller.app_id,
                &message.conversation_id,
                std::slice::from_ref(&message.id),
                caller.user_id,
            )
            .await?;
        let emojis = counts.get(&message.id).map(Vec::as_slice).unwrap_or_default();
        if emojis.len() >= limits::MAX_DISTINCT_REACTIONS && !emojis.iter().any(|c| c.emoji == emoji) {
            return Err(Error::LimitExceeded(format!(
                "a message has at most {} distinct reactions; react with one already there",
                limits::MAX_DISTINCT_REACTIONS
            )));
        }
        Ok(())
    }

    /// `reaction.add` / `reaction.remove`: one reaction per user per emoji; repeating either is harmless.
    pub async fn react(&self, caller: Caller<'_>, request: ReactionRequest, active: bool) -> Result<Outcome> {
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
        let message = self
            .member_message(caller, &request.conversation_id, &request.message_id)
            .await?;
        if message.is_deleted() {
            return Err(Error::Conflict("the message was deleted".into()));
        }
        if active {
            self.require_room_for_emoji(caller, &message, emoji).await?;
        }
        moderation::screen_post(
            self.store,
            self.cache,
            self.settings,
            caller,
            &request.conversation_id,
            "",
        )
        .await?;
        let reaction = Reaction {
            id: Reaction::id_for(&message.id, caller.user_id, emoji),
            app_id: message.app_id.clone(),
            conversation_id: message.conversation_id.clone(),
            message_id: message.id.clone(),
            user_id: caller.user_id.to_owned(),
            emoji: emoji.to_owned(),
            active,
            version: next_version(),
            correlation_id: caller.correlation_id.to_owned(),
        };
        let notice = json!({
            "conversation_id": reaction.conversation_id,
            "message_id": reaction.message_id,
            "emoji": reaction.emoji,
            "user_id": reaction.user_id,
        });
        let event = MessageEvent::Reacted(reaction);
        let headers = EventHeaders::for_message_event(&message.app_id, &event, caller.correlation_id);
        self.bus
            .publish_json(topics::MESSAGES, &message.conversation_id, &headers, &event)
            .await?;
        let kind = if active { "reaction.added" } else { "reaction.removed" };
        let frame = protocol::event(kind, &notice);
        let mut reply = notice;
        reply["active"] = active.into();
        Ok(Outcome {
            reply,
            notice: Some(Notice::to_conversation(
                &message.app_id,
                &message.conversation_id,
                frame,
            )),
        })
    }

    /// `message.replies`: the thread under one message, oldest first, annotated like history.
    pub async fn replies(&self, caller: Caller<'_>, request: Replies) -> Result<Value> {
        let parent = self
            .member_message(caller, &request.conversation_id, &request.message_id)
            .await?;
        let limit = request.limit.unwrap_or(50);
        if limit == 0 || limit > MAX_HISTORY_PAGE {
            return Err(Error::Validation(format!("limit must be 1 to {MAX_HISTORY_PAGE}")));
        }
        let after_seq = request.after_seq.unwrap_or(0);
        let replies = self
            .store
            .list_replies(caller.app_id, &parent.conversation_id, &parent.id, after_seq, limit)
            .await?;
        let full = replies.len() == limit;
        let mut messages = history::annotate(
            self.store,
            caller.app_id,
            &parent.conversation_id,
            caller.user_id,
            replies,
        )
        .await?;
        let cut = history::fit_page_bytes(&mut messages, false);
        Ok(
            json!({"conversation_id": parent.conversation_id, "message_id": parent.id, "messages": messages,
                  "has_more": full || cut}),
        )
    }

    /// Publishes a message's new state (edit or deletion); the conversation is told with `notice_kind`.
    async fn publish_revision(
        &self,
        caller: Caller<'_>,
        revision: Message,
        wrap: fn(Message) -> MessageEvent,
        notice_kind: &str,
    ) -> Result<Outcome> {
        let (app_id, conversation_id) = (revision.app_id.clone(), revision.conversation_id.clone());
        let payload = revisions::publish(self.bus, self.cache, revision, wrap, caller.correlation_id).await?;
        Ok(Outcome {
            reply: serde_json::from_str(&payload).map_err(|e| Error::Internal(e.to_string()))?,
            notice: Some(Notice::to_conversation(
                &app_id,
                &conversation_id,
                protocol::event_with_encoded_data(notice_kind, &payload),
            )),
        })
    }

    /// The references a new message carries: each id must be a completed upload of this sender to this
    /// conversation (the media function checked the object's size and type when it was completed).
    pub(super) async fn attachments_for(&self, caller: Caller<'_>, draft: &Draft) -> Result<Vec<MessageAttachment>> {
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
        let found = self.store.find_attachments(caller.app_id, ids).await?;
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
                if attachment.uploader_id != caller.user_id {
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

    /// Asks for a review of a message the content policy flagged (an audit event). The message is
    /// already accepted, so a failure here is logged rather than failing the send.
    pub(super) async fn report_flagged(&self, message: &Message, terms: Vec<String>) {
        let event = AuditEvent::new(
            &message.app_id,
            actions::MESSAGE_FLAGGED,
            Actor::user(&message.sender_id),
            Target::new("message", &message.id),
            &message.correlation_id,
        )
        .with_details(json!({"conversation_id": message.conversation_id, "seq": message.seq, "terms": terms}));
        if let Err(e) = event.emit(self.bus).await {
            tracing::error!(error = %e, message_id = %message.id, "flagging a message for review failed");
        }
    }
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
