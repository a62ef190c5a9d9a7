//! The keys function: the end-to-end-encryption key directory over HTTP. Devices publish their signed
//! public keys; users who share a conversation query them and claim one-time keys to start encrypted
//! sessions. The rules are the shared [`Keys`] use cases (see `docs/design/keys.md`).
//!
//! Routes (all need `Authorization: Bearer <SDK token>`):
//! - `PUT /api/v1/keys/devices/{device_id}` `{device_keys?, one_time_keys?, fallback_keys?}` →
//!   `{device_id, registered, one_time_key_counts, fallback}` (`201` when it registered the device)
//! - `GET /api/v1/keys/devices` → `{devices: [{device_id, keys, created_at, one_time_key_counts}]}`
//! - `DELETE /api/v1/keys/devices/{device_id}` → `{device_id, deleted: true}`
//! - `POST /api/v1/keys/query` `{user_ids}` → `{device_keys: {user: {device: identity}}, not_visible}`
//! - `POST /api/v1/keys/claim` `{one_time_keys: {user: {device or "*": "signed_curve25519"}}}` →
//!   `{one_time_keys: {user: {device: {"signed_curve25519:<id>": key}}}, fallback_used, failures}`

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use caas_shared::config::Config;
use caas_shared::ports::bus::Bus;
use caas_shared::ports::store::Store;
use caas_shared::runtime::http::{finish_router, json_body, read_json, Authenticated, VerifiesSdkTokens};
use caas_shared::services::auth::TokenSigner;
use caas_shared::services::keys::{Claim, ClaimBudget, Keys, Upload};
use caas_shared::Result;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct KeysApi {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    signer: TokenSigner,
    /// Claims per caller and per claimed user, a minute.
    claims: ClaimBudget,
}

impl KeysApi {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, config: &Config) -> Self {
        Self {
            store,
            bus,
            signer: TokenSigner::from_config(config),
            claims: ClaimBudget::from_config(config),
        }
    }

    fn keys(&self) -> Keys<'_> {
        Keys {
            store: self.store.as_ref(),
            bus: self.bus.as_ref(),
        }
    }
}

impl VerifiesSdkTokens for KeysApi {
    fn token_signer(&self) -> &TokenSigner {
        &self.signer
    }

    fn session_store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// The function as deployed: its routes with the shared correlation and JSON-error handling.
pub fn router(api: Arc<KeysApi>) -> Router {
    finish_router(routes(api))
}

/// Just the routes, for the local gateway to merge with the other functions'.
pub fn routes(api: Arc<KeysApi>) -> Router {
    Router::new()
        .route("/api/v1/keys/devices", get(devices))
        .route("/api/v1/keys/devices/{device_id}", put(upload).delete(delete_device))
        .route("/api/v1/keys/query", post(query))
        .route("/api/v1/keys/claim", post(claim))
        .with_state(api)
}

type Api = State<Arc<KeysApi>>;

async fn upload(
    State(api): Api,
    user: Authenticated,
    headers: HeaderMap,
    Path(device_id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    let request: Upload = read_json(&headers, body).await?;
    let uploaded = api.keys().upload(user.caller(), &device_id, request).await?;
    let status = if uploaded.registered {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, json_body(&uploaded)?))
}

async fn devices(State(api): Api, user: Authenticated) -> Result<Json<Value>> {
    Ok(Json(api.keys().devices(user.caller()).await?))
}

async fn delete_device(State(api): Api, user: Authenticated, Path(device_id): Path<String>) -> Result<Json<Value>> {
    api.keys().delete_device(user.caller(), &device_id).await?;
    Ok(Json(json!({"device_id": device_id, "deleted": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    user_ids: Vec<String>,
}

async fn query(State(api): Api, user: Authenticated, headers: HeaderMap, body: Body) -> Result<Json<Value>> {
    let request: QueryRequest = read_json(&headers, body).await?;
    Ok(Json(api.keys().query(user.caller(), &request.user_ids).await?))
}

async fn claim(State(api): Api, user: Authenticated, headers: HeaderMap, body: Body) -> Result<Json<Value>> {
    let request: Claim = read_json(&headers, body).await?;
    api.claims.take(user.caller(), &request)?;
    Ok(Json(api.keys().claim(user.caller(), request).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_shared::domain::keys::testing::{device, signed_key};
    use caas_shared::ports::store::MemoryStore;
    use caas_shared::services::auth::start_session;
    use std::time::Duration;
    use tower::ServiceExt;

    struct Fixture {
        api: Arc<KeysApi>,
        token: String,
        user_id: String,
    }

    async fn fixture() -> Fixture {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let bus = caas_shared::ports::bus::connect("memory://").await.unwrap();
        let signer = TokenSigner::new(
            "a-test-secret-of-more-than-thirty-two-bytes",
            "caas",
            "caas-sdk",
            Duration::from_secs(600),
        );
        let issued = start_session(&signer, store.as_ref(), ("app", "u1", "alice"), "c")
            .await
            .unwrap();
        let api = Arc::new(KeysApi {
            store,
            bus,
            signer,
            claims: ClaimBudget::new(100, 60),
        });
        Fixture {
            api,
            token: issued.token,
            user_id: "u1".into(),
        }
    }

    impl Fixture {
        async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> (u16, Value) {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .header("authorization", format!("Bearer {}", self.token))
                .header("content-type", "application/json")
                .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
                .unwrap();
            let response = router(Arc::clone(&self.api)).oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (status, serde_json::from_slice(&bytes).unwrap())
        }
    }

    #[tokio::test]
    async fn a_signed_upload_registers_and_a_forged_one_gets_a_clear_error() {
        let f = fixture().await;
        let (signing, identity) = device(&f.user_id, "PHONE", 5);
        let one_time = signed_key(&signing, &f.user_id, "PHONE", 1, false);
        // Keys in another order and with whitespace sign the same: the signature covers canonical JSON.
        let pretty = serde_json::to_string_pretty(&json!({
            "one_time_keys": {"signed_curve25519:AAAA": one_time},
            "device_keys": identity,
        }))
        .unwrap();
        let (status, body) = f.call("PUT", "/api/v1/keys/devices/PHONE", Some(&pretty)).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 1);
        let (status, _) = f.call("PUT", "/api/v1/keys/devices/PHONE", Some(&pretty)).await;
        assert_eq!(status, 200, "the same upload again changes nothing");
        let mut forged = identity.clone();
        forged["keys"]["curve25519:PHONE"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let (status, body) = f
            .call(
                "PUT",
                "/api/v1/keys/devices/TABLET",
                Some(&json!({"device_keys": forged}).to_string()),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("validation_failed")),
            "{body}"
        );
        let (status, body) = f.call("GET", "/api/v1/keys/devices", None).await;
        assert_eq!(status, 200);
        assert_eq!(body["devices"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(body["devices"][0]["keys"], identity);
    }

    #[tokio::test]
    async fn bad_requests_get_clear_json_errors() {
        let f = fixture().await;
        let cases: [(&str, &str, Option<&str>, u16, &str); 7] = [
            ("PUT", "/api/v1/keys/devices/PHONE", Some("{"), 400, "invalid_json"),
            (
                "PUT",
                "/api/v1/keys/devices/PHONE",
                Some(r#"{"colour":1}"#),
                400,
                "validation_failed",
            ),
            ("PUT", "/api/v1/keys/devices/PHONE", Some("{}"), 404, "not_found"),
            ("PUT", "/api/v1/keys/devices/a:b", Some("{}"), 400, "validation_failed"),
            (
                "POST",
                "/api/v1/keys/query",
                Some(r#"{"user_ids":[]}"#),
                400,
                "validation_failed",
            ),
            (
                "POST",
                "/api/v1/keys/claim",
                Some(r#"{"one_time_keys":{"u2":{"D":"rsa"}}}"#),
                400,
                "validation_failed",
            ),
            ("DELETE", "/api/v1/keys/devices/NONE", None, 404, "not_found"),
        ];
        for (method, uri, body, status, code) in cases {
            let (got, answer) = f.call(method, uri, body).await;
            assert_eq!(
                (got, answer["error"]["code"].as_str()),
                (status, Some(code)),
                "{method} {uri} {body:?}: {answer}"
            );
        }
        let request = axum::http::Request::get("/api/v1/keys/devices")
            .body(Body::empty())
            .unwrap();
        let response = router(Arc::clone(&f.api)).oneshot(request).await.unwrap();
        assert_eq!(response.status(), 401);
    }
}
