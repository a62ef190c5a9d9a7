//! Bans and mutes. The record goes to the store and its mirror to the cache, where socket nodes check
//! it on every connect and send; an app-wide ban also ends the user's sessions (tokens refused, live
//! connections closed through `caas.moderation`), and a conversation ban removes the user from the
//! conversation.

use crate::Api;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use caas_shared::domain::audit::{actions, Actor, Target};
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::domain::model::{Restriction, RestrictionKind};
use caas_shared::domain::moderation::mirrored_expiry;
use caas_shared::services::conversations::{require_id, Conversations};
use caas_shared::services::sessions;
use caas_shared::{now_ms, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest timed restriction: ten years (longer ones simply have no end).
const MAX_DURATION_SECS: u64 = 10 * 365 * 24 * 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Impose {
    app_id: String,
    user_id: String,
    kind: RestrictionKind,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// Without it the restriction lasts until lifted.
    #[serde(default)]
    duration_secs: Option<u64>,
}

pub async fn impose(
    State(api): Api,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    let request: Impose = api.operator_request(&headers, body).await?;
    let app = api.app(&request.app_id).await?;
    require_id("user_id", &request.user_id)?;
    if api
        .store
        .find_users(&app.id, std::slice::from_ref(&request.user_id))
        .await?
        .is_empty()
    {
        return Err(Error::NotFound(format!("user {} not found", request.user_id)));
    }
    if let Some(conversation_id) = &request.conversation_id {
        require_id("conversation_id", conversation_id)?;
        if api.store.find_conversation(&app.id, conversation_id).await?.is_none() {
            return Err(Error::NotFound(format!("conversation {conversation_id} not found")));
        }
    }
    if request.duration_secs.is_some_and(|d| d == 0 || d > MAX_DURATION_SECS) {
        return Err(Error::Validation(format!(
            "duration_secs must be 1 to {MAX_DURATION_SECS}; omit it for no end"
        )));
    }
    if request.reason.as_ref().is_some_and(|r| r.len() > 1000) {
        return Err(Error::Validation("reason must be at most 1000 bytes".into()));
    }
    let now = now_ms();
    let restriction = Restriction {
        id: Restriction::id_for(request.kind, &request.user_id, request.conversation_id.as_deref()),
        app_id: app.id.clone(),
        user_id: request.user_id,
        kind: request.kind,
        conversation_id: request.conversation_id,
        reason: request.reason,
        expires_at: request.duration_secs.map(|secs| now + secs as i64 * 1000),
        created_at: now,
        correlation_id: correlation_id.to_string(),
    };
    // Stored before mirrored: a node that reloads the mirror from the store sees it either way.
    api.store.put_restriction(&restriction).await?;
    api.cache
        .mirror_restriction(&app.id, &restriction.id, Some(mirrored_expiry(&restriction)))
        .await?;
    if restriction.kind == RestrictionKind::Ban {
        enforce_ban(&api, &restriction).await?;
    }
    api.audit(
        &app.id,
        actions::USER_RESTRICTED,
        Target::new("user", &restriction.user_id),
        correlation_id.as_str(),
        json!({"restriction_id": restriction.id, "kind": restriction.kind,
               "conversation_id": restriction.conversation_id, "expires_at": restriction.expires_at,
               "reason": restriction.reason}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!(restriction))))
}

/// A ban takes effect at once: app-wide, every session of the user ends (its tokens are refused and its
/// connections closed); in a conversation, the user is removed from it (which ends its live delivery).
async fn enforce_ban(api: &crate::ComplianceApi, ban: &Restriction) -> Result<()> {
    match &ban.conversation_id {
        None => {
            let revocation = sessions::Revocation {
                app_id: &ban.app_id,
                user_id: &ban.user_id,
                session_id: None,
                reason: "banned",
                actor: Actor::operator(),
                correlation_id: &ban.correlation_id,
            };
            sessions::revoke(api.store.as_ref(), api.bus.as_ref(), revocation)
                .await
                .map(|_| ())
        }
        Some(conversation_id) => {
            let rules = Conversations {
                store: api.store.as_ref(),
                cache: api.cache.as_ref(),
                bus: api.bus.as_ref(),
            };
            rules
                .expel(&ban.app_id, conversation_id, &ban.user_id, &ban.correlation_id)
                .await
                .map(|_| ())
        }
    }
}

pub async fn list(State(api): Api, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Json<Value>> {
    let app = api.operator_app_from_query(&headers, query.as_deref()).await?;
    let now = now_ms();
    let restrictions: Vec<Restriction> = api
        .store
        .list_restrictions(&app.id)
        .await?
        .into_iter()
        .filter(|r| r.is_active(now))
        .collect();
    Ok(Json(json!({"app_id": app.id, "restrictions": restrictions})))
}

pub async fn lift(
    State(api): Api,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path(restriction_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    let app = api.operator_app_from_query(&headers, query.as_deref()).await?;
    let lifted = api
        .store
        .remove_restriction(&app.id, &restriction_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("restriction {restriction_id} not found")))?;
    api.cache.mirror_restriction(&app.id, &lifted.id, None).await?;
    api.audit(
        &app.id,
        actions::USER_RESTRICTION_LIFTED,
        Target::new("user", &lifted.user_id),
        correlation_id.as_str(),
        json!({"restriction_id": lifted.id, "kind": lifted.kind, "conversation_id": lifted.conversation_id}),
    )
    .await?;
    Ok(Json(json!({"lifted": lifted})))
}
