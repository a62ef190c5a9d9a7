//! The compliance function: the audit trail, legal holds, GDPR export and erasure, retention and
//! moderation (bans and mutes). Every route needs the operator token (`Authorization: Bearer
//! <CAAS_ADMIN_TOKEN>`) and names the app it acts on; every change it makes is itself audited.
//!
//! Routes:
//! - `GET /api/v1/compliance/audit?app_id=&actor=&action=&target=&since=&until=&correlation_id=&after_seq=&limit=`
//!   → `{records, next_after_seq}`; `GET /api/v1/compliance/audit/verify?app_id=` → `{valid, records, broken_at?}`
//! - `POST /api/v1/compliance/holds` `{app_id, user_id | conversation_id, reason}` → `201` hold;
//!   `GET /api/v1/compliance/holds?app_id=` → `{holds}`; `DELETE /api/v1/compliance/holds/{id}?app_id=`
//! - `POST /api/v1/compliance/exports` `{app_id, user_id}` → `201 {export_id, url, expires_at, counts}`
//! - `POST /api/v1/compliance/erasures` `{app_id, user_id}` → `{user_id, pseudonym, messages_erased,
//!   attachments_deleted}`; `409 legal_hold` when a hold covers the user or their conversations
//! - `POST /api/v1/compliance/retention/run` `{app_id?}` → `{apps:[{app_id, messages_purged, attachments_deleted}]}`
//! - `POST /api/v1/compliance/restrictions` `{app_id, user_id, kind: ban|mute, conversation_id?, reason?,
//!   duration_secs?}` → `201` restriction; `GET …/restrictions?app_id=`; `DELETE …/restrictions/{id}?app_id=`

mod audit_trail;
mod holds;
mod privacy;
mod restrictions;
pub mod retention;

use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use axum::Router;
use caas_shared::config::Config;
use caas_shared::domain::audit::{Actor, AuditEvent, Target};
use caas_shared::ports::blob::Blobs;
use caas_shared::ports::bus::Bus;
use caas_shared::ports::cache::Cache;
use caas_shared::ports::store::Store;
use caas_shared::{Error, Result};
use serde::de::DeserializeOwned;
use std::sync::Arc;

pub struct ComplianceApi {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    bus: Arc<dyn Bus>,
    blobs: Arc<dyn Blobs>,
    admin_token: Option<String>,
}

type Api = axum::extract::State<Arc<ComplianceApi>>;

impl ComplianceApi {
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        bus: Arc<dyn Bus>,
        blobs: Arc<dyn Blobs>,
        config: &Config,
    ) -> Self {
        Self {
            store,
            cache,
            bus,
            blobs,
            admin_token: config.admin_token.clone(),
        }
    }

    fn require_operator(&self, headers: &HeaderMap) -> Result<()> {
        caas_shared::runtime::http::require_operator(self.admin_token.as_deref(), headers)
    }

    /// The JSON body of an operator-only change, read only once the operator token checks out.
    async fn operator_request<T: DeserializeOwned>(&self, headers: &HeaderMap, body: axum::body::Body) -> Result<T> {
        self.require_operator(headers)?;
        caas_shared::runtime::http::read_json(headers, body).await
    }

    /// The operator-only app a read or deletion names in its `?app_id=` query string.
    async fn operator_app_from_query(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<caas_shared::domain::model::App> {
        self.require_operator(headers)?;
        let query: AppQuery = parse_query(query)?;
        self.app(&query.app_id).await
    }

    /// The app a request names, which must exist.
    /// The key directory's use cases (erasure and export take the user's keys).
    fn keys(&self) -> caas_shared::services::keys::Keys<'_> {
        caas_shared::services::keys::Keys {
            store: self.store.as_ref(),
            bus: self.bus.as_ref(),
        }
    }

    async fn app(&self, app_id: &str) -> Result<caas_shared::domain::model::App> {
        if app_id.trim().is_empty() {
            return Err(Error::Validation("app_id is required".into()));
        }
        self.store
            .find_app(app_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("app {app_id} not found")))
    }

    /// Records an operator action in the app's audit trail before the request is answered.
    async fn audit(
        &self,
        app_id: &str,
        action: &str,
        target: Target,
        correlation_id: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        AuditEvent::new(app_id, action, Actor::operator(), target, correlation_id)
            .with_details(details)
            .emit(self.bus.as_ref())
            .await
    }
}

/// The function as deployed: its routes with the shared correlation and JSON-error handling.
pub fn router(api: Arc<ComplianceApi>) -> Router {
    caas_shared::runtime::http::finish_router(routes(api))
}

/// Just the routes, for the local gateway to merge with the other functions'.
pub fn routes(api: Arc<ComplianceApi>) -> Router {
    Router::new()
        .route("/api/v1/compliance/audit", get(audit_trail::list))
        .route("/api/v1/compliance/audit/verify", get(audit_trail::verify))
        .route("/api/v1/compliance/holds", post(holds::place).get(holds::list))
        .route("/api/v1/compliance/holds/{hold_id}", delete(holds::release))
        .route("/api/v1/compliance/exports", post(privacy::export))
        .route("/api/v1/compliance/erasures", post(privacy::erase))
        .route("/api/v1/compliance/retention/run", post(retention::run_now))
        .route(
            "/api/v1/compliance/restrictions",
            post(restrictions::impose).get(restrictions::list),
        )
        .route(
            "/api/v1/compliance/restrictions/{restriction_id}",
            delete(restrictions::lift),
        )
        .with_state(api)
}

use caas_shared::runtime::http::parse_query;

/// The `app_id` every read and deletion names in its query string.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AppQuery {
    #[serde(default)]
    app_id: String,
}

fn number<T: std::str::FromStr>(name: &str, value: Option<&str>) -> Result<Option<T>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse()
                .map_err(|_| Error::Validation(format!("{name} must be an integer, got {v:?}")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use caas_shared::domain::model::{App, User};
    use caas_shared::ports::store::MemoryStore;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    const OPERATOR: &str = "operator-secret";

    async fn api() -> Arc<ComplianceApi> {
        let dir = std::env::temp_dir().join(format!("compliance-{}", uuid::Uuid::new_v4().simple()));
        let blobs =
            caas_shared::ports::blob::local::LocalBlobs::new(dir.to_str().unwrap(), "http://127.0.0.1:1", "s").unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        store
            .insert_app(&App::new("app".into(), "app".into(), String::new(), 1, "c".into()))
            .await
            .unwrap();
        store
            .upsert_user(&User {
                id: "u1".into(),
                app_id: "app".into(),
                external_id: "alice".into(),
                display_name: Some("Alice".into()),
                created_at: 1,
                correlation_id: "c".into(),
            })
            .await
            .unwrap();
        Arc::new(ComplianceApi {
            store,
            cache: caas_shared::ports::cache::connect("memory://").await.unwrap(),
            bus: caas_shared::ports::bus::connect("memory://").await.unwrap(),
            blobs: Arc::new(blobs),
            admin_token: Some(OPERATOR.into()),
        })
    }

    async fn call(api: &Arc<ComplianceApi>, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {OPERATOR}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = router(Arc::clone(api)).oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn only_the_operator_gets_in() {
        let api = api().await;
        let request = http::Request::get("/api/v1/compliance/holds?app_id=app")
            .header("authorization", "Bearer guess")
            .body(Body::empty())
            .unwrap();
        let response = router(api).oneshot(request).await.unwrap();
        assert_eq!(response.status(), 401);
    }

    #[tokio::test]
    async fn bad_requests_get_clear_errors() {
        let api = api().await;
        let both = json!({"app_id": "app", "user_id": "u1", "conversation_id": "c", "reason": "r"});
        let (status, body) = call(&api, "POST", "/api/v1/compliance/holds", Some(both)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("validation_failed"))
        );
        let odd = json!({"app_id": "app", "user_id": "u1", "kind": "shadowban"});
        let (status, _) = call(&api, "POST", "/api/v1/compliance/restrictions", Some(odd)).await;
        assert_eq!(status, 400);
        let (status, body) = call(&api, "GET", "/api/v1/compliance/audit?app_id=nope", None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
        let (status, _) = call(&api, "GET", "/api/v1/compliance/audit?app_id=app&limit=0", None).await;
        assert_eq!(status, 400);
        let (status, _) = call(&api, "GET", "/api/v1/compliance/audit?app_id=app&colour=red", None).await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn a_hold_blocks_erasure_until_it_is_released() {
        let api = api().await;
        let hold = json!({"app_id": "app", "user_id": "u1", "reason": "case"});
        let (status, hold) = call(&api, "POST", "/api/v1/compliance/holds", Some(hold)).await;
        assert_eq!(status, 201, "{hold}");
        let erase = json!({"app_id": "app", "user_id": "u1"});
        let (status, body) = call(&api, "POST", "/api/v1/compliance/erasures", Some(erase.clone())).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("legal_hold")));
        let release = format!("/api/v1/compliance/holds/{}?app_id=app", hold["id"].as_str().unwrap());
        assert_eq!(call(&api, "DELETE", &release, None).await.0, 200);
        let (status, body) = call(&api, "POST", "/api/v1/compliance/erasures", Some(erase)).await;
        assert_eq!(status, 200, "{body}");
        let user = api.store.find_users("app", &["u1".into()]).await.unwrap().remove(0);
        assert_eq!(
            (user.external_id.as_str(), user.display_name),
            (body["pseudonym"].as_str().unwrap(), None)
        );
    }
}
