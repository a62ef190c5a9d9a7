//! The gateway's HTTP API called as the platform's operator (or with another token), for the tests of
//! operator routes.

use crate::Platform;
use serde_json::Value;

/// Calls a platform's gateway with its operator token.
pub struct Operator<'a> {
    pub http: reqwest::Client,
    pub platform: &'a Platform,
}

impl<'a> Operator<'a> {
    pub fn new(platform: &'a Platform) -> Self {
        Self {
            http: reqwest::Client::new(),
            platform,
        }
    }

    /// `method path` with `body` as JSON, as the operator: the status and the JSON answer.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.platform.admin_token, method, path, body).await
    }

    /// The same with `token` instead.
    pub async fn call_as(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.platform.gateway_url))
            .bearer_auth(token)
            .header("x-correlation-id", "operator-e2e");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}
