//! HTTP plumbing shared by every HTTP function: the correlation-id middleware, JSON bodies with a size
//! limit, and the single mapping from [`Error`] to a status code and `{"error":{…}}` body.

use crate::domain::correlation::{self, CorrelationId};
use crate::services::auth::{Claims, TokenSigner};
use crate::services::conversations::Caller;
use crate::Error;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;
use tracing::Instrument;

/// Request bodies larger than this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let correlation_id = correlation::current().unwrap_or_else(CorrelationId::generate);
        if self.is_server_fault() {
            tracing::error!(error = %self, code = self.code(), "request failed");
        } else {
            tracing::info!(error = %self, code = self.code(), "request refused");
        }
        let status = StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = json!({"error": {
            "code": self.code(),
            "message": self.public_message(),
            "correlation_id": correlation_id.as_str(),
        }});
        let Some(wait_ms) = self.retry_after_ms() else {
            return (status, axum::Json(body)).into_response();
        };
        body["error"]["retry_after_ms"] = wait_ms.into();
        // Whole seconds, rounded up: a client that waits what the header says is not refused again.
        let seconds = (wait_ms.max(0) + 999) / 1000;
        (
            status,
            [(axum::http::header::RETRY_AFTER, seconds.to_string())],
            axum::Json(body),
        )
            .into_response()
    }
}

/// Wraps a function's router with everything every HTTP function must do: correlation ids, JSON 404/405.
pub fn finish_router(router: Router) -> Router {
    router
        .fallback(|request: Request| async move {
            Error::RouteNotFound(format!("no route for {} {}", request.method(), request.uri().path()))
        })
        .method_not_allowed_fallback(|request: Request| async move {
            Error::MethodNotAllowed(format!(
                "{} is not allowed on {}",
                request.method(),
                request.uri().path()
            ))
        })
        .layer(axum::middleware::from_fn(correlate))
}

/// Reads or generates `x-correlation-id`, echoes it on the response, and runs the request inside a
/// tracing span and a correlation scope so that logs and error bodies carry it.
pub async fn correlate(mut request: Request, next: Next) -> Response {
    let id = CorrelationId::from_untrusted(request.headers().get(correlation::HEADER).and_then(|v| v.to_str().ok()));
    request.extensions_mut().insert(id.clone());
    let span =
        tracing::info_span!("http", correlation_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = correlation::CURRENT
        .scope(id.clone(), next.run(request))
        .instrument(span)
        .await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(correlation::HEADER, value);
    }
    response
}

/// Parses a query string into `T`, with a clear `validation` error for anything unexpected.
pub fn parse_query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, Error> {
    serde_urlencoded::from_str(raw.unwrap_or_default()).map_err(|e| Error::Validation(format!("bad query string: {e}")))
}

/// `value` as a JSON response body; a value that cannot be encoded is an internal error.
pub fn json_body(value: &impl serde::Serialize) -> Result<axum::Json<serde_json::Value>, Error> {
    serde_json::to_value(value)
        .map(axum::Json)
        .map_err(|e| Error::Internal(format!("encoding response: {e}")))
}

/// Parses a JSON body of at most [`MAX_BODY_BYTES`], mapping every failure to a clear client error.
pub async fn read_json<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, Error> {
    read_json_or(headers, body, || {
        Err(Error::InvalidJson("the request body is empty".into()))
    })
    .await
}

/// [`read_json`] for a request whose body is optional: an empty body means `T::default()`.
pub async fn read_optional_json<T: DeserializeOwned + Default>(headers: &HeaderMap, body: Body) -> Result<T, Error> {
    read_json_or(headers, body, || Ok(T::default())).await
}

async fn read_json_or<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    when_empty: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    if let Some(content_type) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        if !content_type.starts_with("application/json") {
            return Err(Error::Validation(format!(
                "content-type must be application/json, got {content_type}"
            )));
        }
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Error::PayloadTooLarge(MAX_BODY_BYTES))?;
    if bytes.is_empty() {
        return when_empty();
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// The token in `Authorization: Bearer <token>`, if present.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Refuses a request that does not carry the operator token (`CAAS_ADMIN_TOKEN`); with no token
/// configured, operator routes are disabled.
pub fn require_operator(expected: Option<&str>, headers: &HeaderMap) -> Result<(), Error> {
    let expected =
        expected.ok_or_else(|| Error::Forbidden("admin API is disabled: CAAS_ADMIN_TOKEN is not set".into()))?;
    match bearer_token(headers) {
        Some(presented) if crate::domain::secrets::constant_time_eq(presented, expected) => Ok(()),
        Some(_) => Err(Error::Unauthorized("invalid operator token".into())),
        None => Err(Error::Unauthorized(
            "missing Authorization: Bearer <operator token>".into(),
        )),
    }
}

/// Implemented by every HTTP function that serves SDK-token callers, so they share one extractor.
pub trait VerifiesSdkTokens {
    /// The signer whose secret, issuer and audience SDK tokens are verified with.
    fn token_signer(&self) -> &TokenSigner;
    /// Where sessions are recorded, so tokens of ended sessions are refused.
    fn session_store(&self) -> &dyn crate::ports::store::Store;
}

/// The user behind the request's SDK token; extracting it is what authenticates a request.
pub struct Authenticated {
    /// The verified token's claims: the app (`app_id`), the platform user (`sub`) and the session (`jti`).
    pub claims: Claims,
    /// The request's correlation id, as set by [`correlate`]; empty when the middleware did not run.
    pub correlation_id: String,
}

impl<S: VerifiesSdkTokens + Send + Sync> FromRequestParts<Arc<S>> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<S>) -> Result<Self, Error> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| Error::Unauthorized("missing Authorization: Bearer <SDK token>".into()))?;
        let correlation_id = parts
            .extensions
            .get::<CorrelationId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        Ok(Self {
            claims: crate::services::auth::authenticate(api.token_signer(), api.session_store(), token).await?,
            correlation_id,
        })
    }
}

impl Authenticated {
    /// The caller the services act for: the token's app and user, traced by the request's correlation id.
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            app_id: &self.claims.app_id,
            user_id: &self.claims.sub,
            correlation_id: &self.correlation_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use tower::ServiceExt;

    async fn echo(headers: HeaderMap, body: Body) -> Result<axum::Json<serde_json::Value>, Error> {
        Ok(axum::Json(read_json(&headers, body).await?))
    }

    async fn call(request: http::Request<Body>) -> (StatusCode, HeaderMap, serde_json::Value) {
        let router = finish_router(Router::new().route("/echo", post(echo)));
        let response = router.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn errors_are_json_and_quote_the_echoed_correlation_id() {
        let request = http::Request::post("/echo")
            .header(correlation::HEADER, "corr-1")
            .body(Body::from("{bad"))
            .unwrap();
        let (status, headers, body) = call(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[correlation::HEADER], "corr-1");
        assert_eq!(body["error"]["code"], "invalid_json");
        assert_eq!(body["error"]["correlation_id"], "corr-1");
    }

    #[tokio::test]
    async fn oversized_bodies_unknown_routes_and_wrong_methods_are_json_errors() {
        let huge = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
        let (status, headers, body) = call(http::Request::post("/echo").body(Body::from(huge)).unwrap()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body["error"]["correlation_id"],
            headers[correlation::HEADER].to_str().unwrap()
        );
        let (status, _, body) = call(http::Request::get("/nowhere").body(Body::empty()).unwrap()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("route_not_found"))
        );
        let (status, _, body) = call(http::Request::get("/echo").body(Body::empty()).unwrap()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
        );
    }
}
