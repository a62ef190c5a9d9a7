//! GDPR: exporting everything the platform holds about a user, and erasing it.
//!
//! Erasure empties the user's messages into tombstones (id, seq, sender and thread links stay, so
//! conversations read coherently), deletes their uploads and every earlier export of their data from
//! blob storage, ends their sessions (live connections closed), and replaces their external id and
//! display name by a pseudonym. Their devices and public keys leave the key directory, and their
//! contacts are told (`device_list.changed`). The tombstones are written to MongoDB at once and published on
//! `caas.messages`, so the search index and conversation summaries drop the content too.

use crate::Api;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use caas_shared::domain::audit::{actions, Actor, Target};
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::domain::events::MessageEvent;
use caas_shared::domain::model::{Attachment, HoldScope, Message, User};
use caas_shared::services::conversations::Caller;
use caas_shared::services::sessions::{self, Revocation};
use caas_shared::{now_ms, services::revisions, Error, Result};
use futures_util::future::try_join_all;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// Messages read per store round trip.
const PAGE: usize = 500;
/// Tombstones published at once (each waits for the broker), so a prolific user is erased in seconds.
const PUBLISH_CONCURRENCY: usize = 64;
/// How long an export's download link works.
pub const EXPORT_LINK_TTL: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    app_id: String,
    user_id: String,
}

async fn user_of(api: &crate::ComplianceApi, request: &UserRequest) -> Result<User> {
    let app = api.app(&request.app_id).await?;
    caas_shared::services::conversations::require_id("user_id", &request.user_id)?;
    api.store
        .find_users(&app.id, std::slice::from_ref(&request.user_id))
        .await?
        .pop()
        .ok_or_else(|| Error::NotFound(format!("user {} not found", request.user_id)))
}

/// The user as the subject of a use case run for an operator's request.
fn caller_of<'a>(user: &'a User, correlation_id: &'a str) -> Caller<'a> {
    Caller {
        app_id: &user.app_id,
        user_id: &user.id,
        correlation_id,
    }
}

/// Every message the user sent, oldest first.
async fn messages_of(api: &crate::ComplianceApi, user: &User) -> Result<Vec<Message>> {
    let mut all: Vec<Message> = Vec::new();
    loop {
        let after = all.last().map(|m| m.id.clone());
        let page = api
            .store
            .messages_by_sender(&user.app_id, &user.id, after.as_deref(), PAGE)
            .await?;
        let full = page.len() == PAGE;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// The blob folder of a user's exports: erasure deletes everything in it.
fn exports_folder(user: &User) -> String {
    format!("{}/exports/{}", user.app_id, user.id)
}

/// `POST /compliance/exports`: writes the user's data as one JSON file to blob storage and returns a
/// download link.
pub async fn export(
    State(api): Api,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    let request: UserRequest = api.operator_request(&headers, body).await?;
    let user = user_of(&api, &request).await?;
    let conversations = api.store.list_conversations(&user.app_id, &user.id, usize::MAX).await?;
    let mut memberships = Vec::with_capacity(conversations.len());
    for conversation in &conversations {
        let role = api
            .store
            .find_member(&user.app_id, &conversation.id, &user.id)
            .await?
            .map(|m| m.role);
        memberships.push(json!({
            "conversation_id": conversation.id, "kind": conversation.kind, "name": conversation.name,
            "role": role, "created_at": conversation.created_at,
        }));
    }
    let messages = messages_of(&api, &user).await?;
    let attachments = api.store.attachments_by_uploader(&user.app_id, &user.id).await?;
    let key_devices = api.keys().export(caller_of(&user, correlation_id.as_str())).await?;
    let export_id = format!("export_{}", uuid::Uuid::now_v7().simple());
    let document = json!({
        "export_id": export_id,
        "generated_at": now_ms(),
        "app_id": user.app_id,
        "user": {"id": user.id, "external_id": user.external_id, "display_name": user.display_name,
                 "created_at": user.created_at},
        "memberships": memberships,
        "messages": messages.iter().map(|m| json!({
            "id": m.id, "conversation_id": m.conversation_id, "seq": m.seq, "text": m.text,
            "created_at": m.created_at, "edited_at": m.edited_at, "deleted_at": m.deleted_at,
            "reply_to": m.reply_to, "forwarded_from": m.forwarded_from, "attachments": m.attachments,
        })).collect::<Vec<_>>(),
        "attachments": attachments.iter().map(|a| json!({
            "id": a.id, "conversation_id": a.conversation_id, "filename": a.filename,
            "content_type": a.content_type, "size": a.size, "status": a.status,
            "created_at": a.created_at, "message_id": a.message_id,
        })).collect::<Vec<_>>(),
        "key_devices": key_devices,
    });
    let key = format!("{}/{export_id}.json", exports_folder(&user));
    let bytes = serde_json::to_vec_pretty(&document).map_err(|e| Error::Internal(format!("encoding export: {e}")))?;
    api.blobs.put(&key, bytes, "application/json").await?;
    let link = api
        .blobs
        .presign_get(&key, &format!("{export_id}.json"), "application/json", EXPORT_LINK_TTL)
        .await?;
    let counts = json!({"memberships": memberships.len(), "messages": messages.len(),
                        "attachments": attachments.len(), "key_devices": key_devices.len()});
    api.audit(
        &user.app_id,
        actions::USER_EXPORTED,
        Target::new("user", &user.id),
        correlation_id.as_str(),
        json!({"export_id": export_id, "counts": counts}),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"export_id": export_id, "url": link.url, "expires_at": link.expires_at, "counts": counts})),
    ))
}

/// `POST /compliance/erasures`: erases the user's content and pseudonymises them, unless a legal hold
/// covers the user or a conversation they wrote in. Safe to repeat.
pub async fn erase(
    State(api): Api,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let request: UserRequest = api.operator_request(&headers, body).await?;
    let user = user_of(&api, &request).await?;
    let messages = messages_of(&api, &user).await?;
    let written_in: BTreeSet<&str> = messages.iter().map(|m| m.conversation_id.as_str()).collect();
    let holds: Vec<String> = api
        .store
        .active_holds(&user.app_id)
        .await?
        .into_iter()
        .filter(|hold| match hold.scope {
            HoldScope::User => hold.target_id == user.id,
            HoldScope::Conversation => written_in.contains(hold.target_id.as_str()),
        })
        .map(|hold| hold.id)
        .collect();
    if !holds.is_empty() {
        return Err(Error::LegalHold(format!(
            "legal hold {} covers this user's data; release it before erasing",
            holds.join(", ")
        )));
    }
    let now = now_ms();
    let tombstones: Vec<Message> = messages
        .into_iter()
        .filter(|m| !m.is_deleted() || !m.text.is_empty() || !m.attachments.is_empty())
        .map(|m| m.into_tombstone(now, correlation_id.as_str()))
        .collect();
    // Stored first, so the content is gone from MongoDB when this answers; then published, so the
    // search index, summaries and recent window follow (persistence sees the same version: a no-op).
    api.store.apply_message_revisions(&tombstones).await?;
    for chunk in tombstones.chunks(PUBLISH_CONCURRENCY) {
        try_join_all(chunk.iter().map(|tombstone| {
            revisions::publish(
                api.bus.as_ref(),
                api.cache.as_ref(),
                tombstone.clone(),
                MessageEvent::Deleted,
                correlation_id.as_str(),
            )
        }))
        .await?;
    }
    let attachments = api.store.attachments_by_uploader(&user.app_id, &user.id).await?;
    let mut keys: Vec<String> = attachments.iter().flat_map(Attachment::blob_keys).collect();
    let exports = api.blobs.list(&exports_folder(&user)).await?;
    let exports_deleted = exports.len();
    keys.extend(exports);
    api.blobs.delete(&keys).await?;
    let attachment_ids: Vec<String> = attachments.iter().map(|a| a.id.clone()).collect();
    let attachments_deleted = api.store.delete_attachments(&user.app_id, &attachment_ids).await?;
    let pseudonym = format!("erased-{}", uuid::Uuid::new_v4().simple());
    api.store.pseudonymise_user(&user.app_id, &user.id, &pseudonym).await?;
    // Last, so a client that reconnects meanwhile finds nothing left to read.
    let sessions_ended = sessions::revoke(
        api.store.as_ref(),
        api.bus.as_ref(),
        Revocation {
            app_id: &user.app_id,
            user_id: &user.id,
            session_id: None,
            reason: "user erased",
            actor: Actor::operator(),
            correlation_id: correlation_id.as_str(),
        },
    )
    .await?
    .len();
    // After the sessions end, so no client of the user can upload keys once they are erased.
    let keys_deleted = api.keys().erase(caller_of(&user, correlation_id.as_str())).await?;
    api.audit(
        &user.app_id,
        actions::USER_ERASED,
        Target::new("user", &user.id),
        correlation_id.as_str(),
        json!({"messages_erased": tombstones.len(), "attachments_deleted": attachments_deleted,
               "exports_deleted": exports_deleted, "keys_deleted": keys_deleted, "sessions_ended": sessions_ended}),
    )
    .await?;
    Ok(Json(json!({
        "user_id": user.id, "pseudonym": pseudonym,
        "messages_erased": tombstones.len(), "attachments_deleted": attachments_deleted,
        "exports_deleted": exports_deleted, "keys_deleted": keys_deleted, "sessions_ended": sessions_ended,
    })))
}
