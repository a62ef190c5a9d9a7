//! Legal holds: while one is active, what it covers (a user's messages, or a conversation's) is kept
//! by retention and cannot be erased.

use crate::Api;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use caas_shared::domain::audit::{actions, Target};
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::domain::model::{HoldScope, LegalHold};
use caas_shared::{now_ms, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceHold {
    app_id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    reason: String,
}

pub async fn place(
    State(api): Api,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    let request: PlaceHold = api.operator_request(&headers, body).await?;
    let app = api.app(&request.app_id).await?;
    let (scope, target_id) = match (request.user_id, request.conversation_id) {
        (Some(user_id), None) => {
            if api
                .store
                .find_users(&app.id, std::slice::from_ref(&user_id))
                .await?
                .is_empty()
            {
                return Err(Error::NotFound(format!("user {user_id} not found")));
            }
            (HoldScope::User, user_id)
        }
        (None, Some(conversation_id)) => {
            if api.store.find_conversation(&app.id, &conversation_id).await?.is_none() {
                return Err(Error::NotFound(format!("conversation {conversation_id} not found")));
            }
            (HoldScope::Conversation, conversation_id)
        }
        _ => {
            return Err(Error::Validation(
                "a hold covers exactly one of user_id or conversation_id".into(),
            ))
        }
    };
    let reason = request.reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(Error::Validation("reason must be 1 to 1000 bytes".into()));
    }
    let hold = LegalHold {
        id: format!("hold_{}", uuid::Uuid::now_v7().simple()),
        app_id: app.id.clone(),
        scope,
        target_id,
        reason: reason.to_owned(),
        created_at: now_ms(),
        released_at: None,
        correlation_id: correlation_id.to_string(),
    };
    api.store.insert_hold(&hold).await?;
    api.audit(
        &app.id,
        actions::LEGAL_HOLD_PLACED,
        Target::new("legal_hold", &hold.id),
        correlation_id.as_str(),
        json!({"scope": hold.scope, "target_id": hold.target_id, "reason": hold.reason}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!(hold))))
}

pub async fn list(State(api): Api, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Json<Value>> {
    let app = api.operator_app_from_query(&headers, query.as_deref()).await?;
    let holds = api.store.active_holds(&app.id).await?;
    Ok(Json(json!({"app_id": app.id, "holds": holds})))
}

pub async fn release(
    State(api): Api,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    Path(hold_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    let app = api.operator_app_from_query(&headers, query.as_deref()).await?;
    let hold = api.store.release_hold(&app.id, &hold_id, now_ms()).await?;
    api.audit(
        &app.id,
        actions::LEGAL_HOLD_RELEASED,
        Target::new("legal_hold", &hold.id),
        correlation_id.as_str(),
        json!({"scope": hold.scope, "target_id": hold.target_id}),
    )
    .await?;
    Ok(Json(json!(hold)))
}
