//! The demo chat page at `/demo`: plain HTML over the TypeScript SDK's browser build, served by the dev
//! mode and the local gateway. The page signs in by a user name only: `POST /demo/token` asks the real
//! token endpoint, in process, with the demo app's id and secret, which stay on the server (the page
//! never sees an app secret) — it stands in for an app's backend, which is what trades an app's
//! credentials and a user id for a token. Without a demo app configured, the page loads and says how to
//! get one.
//!
//! The page and the SDK bundle are compiled into the binary (`sdk/js/demo/`, and
//! `sdk/js/browser/caas-client.js`, committed: the SDK's tests check it is the build of its sources), so
//! `cargo run -p caas-dev` needs no Node.js.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use caas_shared::domain::model::{App, User};
use caas_shared::ports::store::Store;
use caas_shared::runtime::http::read_json;
use caas_shared::services::auth;
use caas_shared::{now_ms, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::Arc;
use tower::ServiceExt;

const INDEX_HTML: &str = include_str!("../../sdk/js/demo/index.html");
const DEMO_JS: &str = include_str!("../../sdk/js/demo/demo.js");
const DEMO_CSS: &str = include_str!("../../sdk/js/demo/demo.css");
const SDK_JS: &str = include_str!("../../sdk/js/browser/caas-client.js");

/// Scripts and styles from this origin only; sockets and uploads may go to the socket nodes and the
/// blob store, which listen elsewhere; images may be blob URLs of local previews.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data: http: https:; connect-src 'self' ws: wss: http: https:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// Most user names one `POST /demo/users` resolves.
const MAX_NAMES: usize = 20;
/// Longest demo user name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// The app the demo page signs its users into.
#[derive(Clone)]
pub struct DemoApp {
    pub app_id: String,
    pub app_secret: String,
}

impl DemoApp {
    /// The demo app named by `CAAS_DEMO_APP_ID` and `CAAS_DEMO_APP_SECRET`, when both are set.
    pub fn from_env() -> Option<Self> {
        let get = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        Some(Self {
            app_id: get("CAAS_DEMO_APP_ID")?,
            app_secret: get("CAAS_DEMO_APP_SECRET")?,
        })
    }
}

/// Where a data directory keeps the demo app's id and secret (readable by its owner only).
const DEMO_APP_FILE: &str = "demo-app";

/// The demo app of dev mode: the one kept in `data_dir` when it is still in the store, else a new app
/// (kept there for the next start, when there is a data directory).
pub async fn ensure_demo_app(store: &dyn Store, data_dir: Option<&std::path::Path>) -> Result<DemoApp> {
    let kept = data_dir.map(|dir| dir.join(DEMO_APP_FILE));
    if let Some(Ok(text)) = kept.as_ref().map(std::fs::read_to_string) {
        if let Some((app_id, app_secret)) = text.trim().split_once(' ') {
            if store.find_app(app_id).await?.is_some() {
                return Ok(DemoApp {
                    app_id: app_id.to_owned(),
                    app_secret: app_secret.to_owned(),
                });
            }
        }
    }
    let app_secret = auth::generate_secret();
    let for_hashing = app_secret.clone();
    // Hashing is slow on purpose (argon2id), so off the async workers.
    let secret_hash = tokio::task::spawn_blocking(move || auth::hash_secret(&for_hashing))
        .await
        .map_err(|e| Error::Internal(format!("hashing task: {e}")))??;
    let app = App::new(
        format!("app_{}", uuid::Uuid::new_v4().simple()),
        "Demo".into(),
        secret_hash,
        now_ms(),
        "caas-dev".into(),
    );
    store.insert_app(&app).await?;
    if let Some(path) = kept {
        let _ = std::fs::remove_file(&path);
        crate::write_private(&path, &format!("{} {app_secret}", app.id))
            .map_err(|e| Error::Internal(format!("keeping the demo app in {}: {e}", path.display())))?;
    }
    Ok(DemoApp {
        app_id: app.id,
        app_secret,
    })
}

struct Demo {
    /// The gateway's API routes, called in process for tokens.
    api: Router,
    store: Arc<dyn Store>,
    app: Option<DemoApp>,
}

/// The page, its assets and its sign-in; `api` is the gateway's API router (its token route is called in
/// process).
pub fn routes(api: Router, store: Arc<dyn Store>, app: Option<DemoApp>) -> Router {
    Router::new()
        .route("/demo", get(page))
        .route("/demo/", get(page))
        .route("/demo/assets/{file}", get(asset))
        .route("/demo/token", post(token))
        .route("/demo/users", post(users))
        .with_state(Arc::new(Demo { api, store, app }))
}

/// A demo file: compiled in, or read from `CAAS_DEMO_DIR` (the `sdk/js` folder) on every request while
/// working on the page, so an edit shows on reload without a rebuild.
fn demo_file(embedded: &'static str, path: &str) -> Cow<'static, str> {
    match std::env::var_os("CAAS_DEMO_DIR") {
        Some(dir) => std::fs::read_to_string(std::path::Path::new(&dir).join(path))
            .map(Cow::Owned)
            .unwrap_or(Cow::Borrowed(embedded)),
        None => Cow::Borrowed(embedded),
    }
}

async fn page() -> Response {
    let mut response = served(demo_file(INDEX_HTML, "demo/index.html"), "text/html; charset=utf-8");
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    response
}

async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "demo.js" => served(demo_file(DEMO_JS, "demo/demo.js"), "text/javascript; charset=utf-8"),
        "demo.css" => served(demo_file(DEMO_CSS, "demo/demo.css"), "text/css; charset=utf-8"),
        "caas-client.js" => served(
            demo_file(SDK_JS, "browser/caas-client.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => Error::RouteNotFound(format!("no demo asset {file:?}")).into_response(),
    }
}

fn served(body: Cow<'static, str>, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn demo_app(demo: &Demo) -> Result<&DemoApp> {
    demo.app.as_ref().ok_or_else(|| {
        Error::NotFound(
            "the demo's sign-in runs in dev mode (cargo run -p caas-dev), or on a gateway given \
             CAAS_DEMO_APP_ID and CAAS_DEMO_APP_SECRET"
                .into(),
        )
    })
}

fn checked_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::Validation(format!(
            "a name is 1 to {MAX_NAME_CHARS} printable characters"
        )));
    }
    Ok(name.to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: String,
}

/// `POST /demo/token {"name"}` → the token endpoint's answer for that user of the demo app.
async fn token(State(demo): State<Arc<Demo>>, request: Request<Body>) -> Result<Response> {
    let app = demo_app(&demo)?;
    // Whoever calls counts as the token endpoint's caller (its failure limits key on the address).
    let (parts, body) = request.into_parts();
    let connect_info = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .cloned();
    let wanted: TokenRequest = read_json(&parts.headers, body).await?;
    let name = checked_name(&wanted.name)?;
    let body = json!({
        "app_id": app.app_id,
        "app_secret": app.app_secret,
        "user_external_id": name,
        "display_name": name,
    });
    let mut inner = Request::post("/api/v1/auth/sdk/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .map_err(|e| Error::Internal(format!("building the token request: {e}")))?;
    if let Some(connect_info) = connect_info {
        inner.extensions_mut().insert(connect_info);
    }
    let response = demo
        .api
        .clone()
        .oneshot(inner)
        .await
        .map_err(|e| Error::Internal(format!("calling the token endpoint: {e}")))?;
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersRequest {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    ids: Vec<String>,
}

/// `POST /demo/users {"names":[…]}` or `{"ids":[…]}` → `{"users":[{name, user_id}]}`: the demo app's
/// users by name (created when new), so the page can start a conversation with someone by name, or by
/// id (unknown ids are left out), so it can name the members and senders it meets — what an app's
/// backend does with its own user directory.
async fn users(State(demo): State<Arc<Demo>>, headers: HeaderMap, body: Body) -> Result<Json<Value>> {
    let app = demo_app(&demo)?;
    let wanted: UsersRequest = read_json(&headers, body).await?;
    let asked = wanted.names.len() + wanted.ids.len();
    if asked == 0 || asked > MAX_NAMES || !(wanted.names.is_empty() || wanted.ids.is_empty()) {
        return Err(Error::Validation(format!(
            "give names or ids (not both), 1 to {MAX_NAMES} of them"
        )));
    }
    if !wanted.ids.is_empty() {
        let found = demo.store.find_users(&app.app_id, &wanted.ids).await?;
        let users: Vec<Value> = found
            .into_iter()
            .map(|user| {
                let name = user.display_name.unwrap_or(user.external_id);
                json!({"name": name, "user_id": user.id})
            })
            .collect();
        return Ok(Json(json!({ "users": users })));
    }
    let mut found = Vec::with_capacity(wanted.names.len());
    for name in &wanted.names {
        let name = checked_name(name)?;
        let candidate = User {
            id: uuid::Uuid::now_v7().to_string(),
            app_id: app.app_id.clone(),
            external_id: name.clone(),
            display_name: Some(name.clone()),
            created_at: now_ms(),
            correlation_id: "demo".into(),
        };
        let user = demo.store.upsert_user(&candidate).await?;
        found.push(json!({"name": name, "user_id": user.id}));
    }
    Ok(Json(json!({ "users": found })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_shared::ports::store::MemoryStore;

    async fn call(router: &Router, method: &str, path: &str, body: &str) -> (u16, Value, HeaderMap) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), headers)
    }

    #[tokio::test]
    async fn the_page_is_locked_down_and_every_refusal_is_a_json_error() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let without_app = caas_shared::runtime::http::finish_router(routes(Router::new(), Arc::clone(&store), None));
        let (status, _, headers) = call(&without_app, "GET", "/demo", "").await;
        assert_eq!(status, 200);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        let (status, body, _) = call(&without_app, "GET", "/demo/assets/../../etc/passwd", "").await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("route_not_found")));
        let (status, body, _) = call(&without_app, "POST", "/demo/token", r#"{"name":"alice"}"#).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{body}"
        );

        let app = DemoApp {
            app_id: "app_demo".into(),
            app_secret: "secret".into(),
        };
        let with_app = caas_shared::runtime::http::finish_router(routes(Router::new(), store, Some(app)));
        let (status, body, _) = call(&with_app, "POST", "/demo/users", "{not json").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_json")),
            "{body}"
        );
        let (status, body, _) = call(&with_app, "POST", "/demo/users", r#"{"names":[""]}"#).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("validation_failed"))
        );
        let (status, body, _) = call(&with_app, "POST", "/demo/users", r#"{"names":["bob","bob"]}"#).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["users"][0]["user_id"], body["users"][1]["user_id"],
            "one user per name"
        );
    }
}
