//! The conversations function: the socket protocol's conversation operations over HTTP, for app
//! backends (acting with a user's SDK token) and for clients between connections. The rules are the
//! shared [`Conversations`] ones, so both entry points always agree; changes are announced on
//! `caas.conversations`, which socket nodes relay to live connections.
//!
//! Routes (all need `Authorization: Bearer <SDK token>`):
//! - `POST /api/v1/conversations` `{kind, member_ids, name?}` → `201` conversation
//! - `GET /api/v1/conversations?limit=` → `{conversations:[…, last_message, last_seq, read_seq, unread_count]}`
//! - `GET /api/v1/conversations/{id}` → conversation; `PATCH` `{name}` → renamed conversation
//! - `GET /api/v1/conversations/{id}/members` → `{members}`; `POST` `{member_ids, role?}` → conversation
//! - `DELETE /api/v1/conversations/{id}/members/{user_id}` → conversation (removing yourself is leaving)
//! - `GET /api/v1/conversations/{id}/messages?before_seq=&after_seq=&limit=` → `{messages}`
//! - `POST /api/v1/conversations/{id}/read` `{seq}` → `{seq}`

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use caas_shared::config::Config;
use caas_shared::domain::model::Role;
use caas_shared::domain::protocol::CreateConversation;
use caas_shared::ports::bus::Bus;
use caas_shared::ports::cache::Cache;
use caas_shared::ports::store::{SeqRange, Store};
use caas_shared::runtime::http::{finish_router, json_body, read_json, Authenticated, VerifiesSdkTokens};
use caas_shared::services::auth::TokenSigner;
use caas_shared::services::conversations::Conversations;
use caas_shared::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub struct ConversationsApi {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    bus: Arc<dyn Bus>,
    signer: TokenSigner,
}

impl ConversationsApi {
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn Cache>, bus: Arc<dyn Bus>, config: &Config) -> Self {
        Self {
            store,
            cache,
            bus,
            signer: TokenSigner::from_config(config),
        }
    }

    fn rules(&self) -> Conversations<'_> {
        Conversations {
            store: self.store.as_ref(),
            cache: self.cache.as_ref(),
            bus: self.bus.as_ref(),
        }
    }
}

/// The function as deployed: its routes with the shared correlation and JSON-error handling.
pub fn router(api: Arc<ConversationsApi>) -> Router {
    finish_router(routes(api))
}

/// Just the routes, for the local gateway to merge with the other functions'.
pub fn routes(api: Arc<ConversationsApi>) -> Router {
    Router::new()
        .route("/api/v1/conversations", post(create).get(list))
        .route("/api/v1/conversations/{id}", get(show).patch(rename))
        .route("/api/v1/conversations/{id}/members", get(members).post(add_members))
        .route("/api/v1/conversations/{id}/members/{user_id}", delete(remove_member))
        .route("/api/v1/conversations/{id}/messages", get(history))
        .route("/api/v1/conversations/{id}/read", post(mark_read))
        .with_state(api)
}

impl VerifiesSdkTokens for ConversationsApi {
    fn token_signer(&self) -> &TokenSigner {
        &self.signer
    }

    fn session_store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// Query parameters as integers, with a clear error for anything else or anything unknown.
fn query_numbers(raw: Option<String>, allowed: &[&str]) -> Result<HashMap<String, i64>> {
    let mut numbers = HashMap::new();
    for pair in raw.as_deref().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !allowed.contains(&key) {
            return Err(Error::Validation(format!(
                "unknown query parameter {key:?}; allowed: {}",
                allowed.join(", ")
            )));
        }
        let number = value
            .parse()
            .map_err(|_| Error::Validation(format!("{key} must be an integer, got {value:?}")))?;
        numbers.insert(key.to_owned(), number);
    }
    Ok(numbers)
}

fn limit_from(numbers: &HashMap<String, i64>, default: usize) -> Result<usize> {
    match numbers.get("limit") {
        None => Ok(default),
        Some(n) => usize::try_from(*n).map_err(|_| Error::Validation("limit must be positive".into())),
    }
}

type Api = State<Arc<ConversationsApi>>;

async fn create(
    State(api): Api,
    user: Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    let request: CreateConversation = read_json(&headers, body).await?;
    let conversation = api.rules().create(user.caller(), request).await?;
    Ok((StatusCode::CREATED, json_body(&conversation)?))
}

async fn list(State(api): Api, user: Authenticated, RawQuery(query): RawQuery) -> Result<Json<Value>> {
    let limit = limit_from(&query_numbers(query, &["limit"])?, 50)?;
    let conversations = api.rules().list(user.caller(), limit).await?;
    Ok(Json(json!({"conversations": conversations})))
}

async fn show(State(api): Api, user: Authenticated, Path(id): Path<String>) -> Result<Json<Value>> {
    json_body(&api.rules().get(user.caller(), &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameRequest {
    name: String,
}

async fn rename(
    State(api): Api,
    user: Authenticated,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>> {
    let request: RenameRequest = read_json(&headers, body).await?;
    json_body(&api.rules().rename(user.caller(), &id, &request.name).await?)
}

async fn members(State(api): Api, user: Authenticated, Path(id): Path<String>) -> Result<Json<Value>> {
    let members = api.rules().members(user.caller(), &id).await?;
    Ok(Json(json!({"conversation_id": id, "members": members})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMembersRequest {
    member_ids: Vec<String>,
    #[serde(default)]
    role: Option<Role>,
}

async fn add_members(
    State(api): Api,
    user: Authenticated,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>> {
    let request: AddMembersRequest = read_json(&headers, body).await?;
    let role = request.role.unwrap_or(Role::Member);
    json_body(
        &api.rules()
            .add_members(user.caller(), &id, &request.member_ids, role)
            .await?,
    )
}

async fn remove_member(
    State(api): Api,
    user: Authenticated,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    json_body(&api.rules().remove_member(user.caller(), &id, &user_id).await?)
}

async fn history(
    State(api): Api,
    user: Authenticated,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    let numbers = query_numbers(query, &["before_seq", "after_seq", "limit"])?;
    let range = SeqRange {
        after_seq: numbers.get("after_seq").copied(),
        before_seq: numbers.get("before_seq").copied(),
        limit: limit_from(&numbers, 50)?,
    };
    Ok(Json(api.rules().history(user.caller(), &id, range).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadRequest {
    seq: i64,
}

async fn mark_read(
    State(api): Api,
    user: Authenticated,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>> {
    let request: ReadRequest = read_json(&headers, body).await?;
    let seq = api.rules().mark_read(user.caller(), &id, request.seq).await?;
    Ok(Json(json!({"conversation_id": id, "seq": seq})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_numbers_are_checked() {
        let parsed = query_numbers(Some("limit=5&after_seq=2".into()), &["limit", "after_seq"]).unwrap();
        assert_eq!((parsed["limit"], parsed["after_seq"]), (5, 2));
        assert!(query_numbers(Some("limit=x".into()), &["limit"]).is_err());
        assert!(query_numbers(Some("evil=1".into()), &["limit"]).is_err());
        assert!(query_numbers(None, &["limit"]).unwrap().is_empty());
    }
}
