//! `message.send` (and the send half of `message.forward`): the hot path of the product. Its cache work
//! is one call for a plain text send (membership, idempotency claim, seq and recent-window entry in
//! one Redis script, see `SequenceCache::claim_send`), and the message is encoded once for the
//! window, the bus and the fan-out.

use crate::domain::events::MessageEvent;
use crate::domain::model::Message;
use crate::domain::moderation::{GateCheck, SendGate};
use crate::domain::protocol::{self, Ack, AckStatus};
use crate::ports::cache::{ClaimState, EntryAroundSeq, SendKey, SendRequest};
use crate::services::conversations::{not_a_member, require_id, Caller};
use crate::services::messages::{validate_text, Draft, Messages, Notice, Outcome};
use crate::services::moderation;
use crate::services::revisions;
use crate::services::sequencing::{self, Sequenced};
use crate::{now_ms, Error, Result};

impl Messages<'_> {
    /// `message.send`: sequences and publishes a new message; a retried `client_msg_id` returns the
    /// original id and seq. `accepted` is answered only once the bus has the message.
    pub async fn send(&self, caller: Caller<'_>, draft: Draft) -> Result<Outcome> {
        require_id("conversation_id", &draft.conversation_id)?;
        require_id("client_msg_id", &draft.client_msg_id)?;
        validate_text(&draft.text, !draft.attachment_ids.is_empty())?;
        if let Some(parent) = &draft.reply_to {
            require_id("reply_to", parent)?;
        }
        // A plain text send has its membership checked inside the claim (one cache call for both). A
        // reply or a send with files reads the conversation's messages or uploads first, so a
        // non-member is refused before that and learns nothing about them.
        // The gate (restrictions, rate limits) runs inside the claim too then, in the same script on a
        // single Redis.
        let check_in_claim = draft.reply_to.is_none() && draft.attachment_ids.is_empty();
        if !check_in_claim {
            self.require_member(caller, &draft.conversation_id).await?;
        }
        let (settings, flagged_terms) =
            moderation::screen_content(self.store, self.settings, caller.app_id, &draft.text).await?;
        if !check_in_claim {
            let check = GateCheck::send(
                caller.app_id,
                caller.user_id,
                &draft.conversation_id,
                &settings.rate_limits,
            );
            moderation::gate(self.store, self.cache, &check).await?.into_result()?;
        }
        if let Some(parent) = &draft.reply_to {
            self.current(caller.app_id, &draft.conversation_id, parent).await?;
        }
        let attachments = self.attachments_for(caller, &draft).await?;
        let Draft {
            conversation_id,
            client_msg_id,
            text,
            reply_to,
            forwarded_from,
            attachment_ids: _,
        } = draft;
        let (app_id, sender_id) = (caller.app_id, caller.user_id);
        let mut message = Message {
            id: uuid::Uuid::now_v7().to_string(),
            app_id: app_id.to_owned(),
            conversation_id: conversation_id.clone(),
            seq: 0,
            sender_id: sender_id.to_owned(),
            client_msg_id: client_msg_id.clone(),
            text,
            reply_to,
            forwarded_from,
            attachments,
            created_at: now_ms(),
            correlation_id: caller.correlation_id.to_owned(),
            ..Message::default()
        };
        let (head, tail) = message
            .encode_around_seq()
            .map_err(|e| Error::Internal(format!("encoding message: {e}")))?
            .ok_or_else(|| Error::Internal("a new message has no seq to fill in".into()))?;
        let entry = EntryAroundSeq {
            head: &head,
            tail: &tail,
        };
        let send_key = SendKey {
            app_id,
            conversation_id: &conversation_id,
            sender_id,
            client_msg_id: &client_msg_id,
        };
        let check = GateCheck::send(app_id, sender_id, &conversation_id, &settings.rate_limits);
        let mut request = SendRequest {
            key: send_key,
            message_id: &message.id,
            check_member: check_in_claim,
            entry,
            gate: check_in_claim.then_some(&check),
        };
        let (claim, remembered) = loop {
            match sequencing::claim(self.store, self.cache, request).await? {
                Sequenced::Claimed { claim, remembered } => break (claim, remembered),
                Sequenced::NotMember => return Err(not_a_member(&conversation_id)),
                Sequenced::MembersNotCached => {
                    // The store decides (and the member set is cached again for the next send). The
                    // gate let the send through already.
                    self.require_member(caller, &conversation_id).await?;
                    request.check_member = false;
                    request.gate = None;
                }
                Sequenced::Gated(SendGate::Unloaded) => {
                    // The cache lost the app's restrictions: the gate mirrors them from the store and
                    // answers on its own; the claim then goes without it.
                    moderation::gate(self.store, self.cache, &check).await?.into_result()?;
                    request.gate = None;
                }
                Sequenced::Gated(verdict) => {
                    verdict.into_result()?;
                    request.gate = None;
                }
            }
        };
        let ack = Ack {
            conversation_id: conversation_id.clone(),
            client_msg_id: client_msg_id.clone(),
            message_id: claim.message_id.clone(),
            seq: claim.seq,
            status: AckStatus::Accepted,
            duplicate: !claim.is_new,
        };
        if claim.state == ClaimState::Published {
            let mut ack = ack;
            if !claim.is_new && self.is_persisted(app_id, &conversation_id, &claim).await {
                // A resend after a reconnect: the `persisted` ack went to the connections open when
                // persistence answered, so this one may never have had it. Only resends pay this read.
                ack.status = AckStatus::Persisted;
            }
            return Ok(Outcome {
                reply: protocol::to_data(&ack)?,
                notice: None,
            });
        }
        // New, failed or still pending (its node may have died before publishing): publish under the
        // claimed id and seq. Persistence is idempotent, so a second publish of the same message is harmless.
        message.seq = claim.seq;
        let payload = if claim.message_id == message.id {
            entry.with_seq(claim.seq)
        } else {
            message.id = claim.message_id.clone();
            serde_json::to_string(&message).map_err(|e| Error::Internal(format!("encoding message: {e}")))?
        };
        if !flagged_terms.is_empty() && claim.is_new {
            self.report_flagged(&message, flagged_terms).await;
        }
        // The recent window must hold the message before anyone can learn its seq (from the fan-out or
        // the ack), so that a client reconnecting right after can replay it even before it is persisted:
        // the claim wrote it, or it is written now, next to the publish.
        let (published, window) = revisions::publish_encoded(
            self.bus,
            self.cache,
            message,
            &payload,
            MessageEvent::Created,
            caller.correlation_id,
            !remembered,
        )
        .await;
        // Recorded either way: a failed claim is republished by the client's retry under the same id and seq.
        let state = if published.is_ok() {
            ClaimState::Published
        } else {
            ClaimState::Failed
        };
        let recorded = self.cache.set_claim_state(send_key, &claim, state).await;
        published?;
        // Once the bus has the message it is accepted, whatever happened to the cache meanwhile: an
        // error now would make the client retry, and a cache that lost the claim (a Redis restart)
        // would then sequence the retry as a second message. A window entry that did not land is
        // filled from the store by replay; a claim state that did not land stays `pending`, whose
        // retry republishes under the same id and seq.
        for (what, outcome) in [("claim state", recorded), ("recent window entry", window)] {
            if let Err(e) = outcome {
                tracing::warn!(error = %e, message_id = %claim.message_id, "accepted, but its {what} was not cached");
            }
        }
        Ok(Outcome {
            reply: protocol::to_data(&ack)?,
            notice: Some(Notice::to_conversation(
                app_id,
                &conversation_id,
                protocol::event_with_encoded_data("message.new", &payload),
            )),
        })
    }

    /// Whether the store holds the claimed message under its seq (a failed read says no: the reply is
    /// then `accepted`, as without the read).
    async fn is_persisted(&self, app_id: &str, conversation_id: &str, claim: &crate::ports::cache::Claim) -> bool {
        match self
            .store
            .find_message(app_id, conversation_id, &claim.message_id)
            .await
        {
            Ok(Some(stored)) => stored.seq == claim.seq,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "could not tell whether a resent message is persisted");
                false
            }
        }
    }
}
