//! The webhook transport port: one signed POST to a customer's endpoint, answered with its status or
//! why there was none. The real driver ([`HttpTransport`]) goes through the SSRF guard
//! ([`crate::domain::webhooks::address`]): every address the host resolves to is checked when the
//! connection is made, literal IPs too, no proxy is used (a proxy would resolve the host itself) and no
//! redirect is followed. Unit tests of the delivery rules use a scripted transport; tests of the real path
//! start real HTTP receivers.

use crate::domain::webhooks::address::is_deliverable;
use async_trait::async_trait;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
#[cfg(test)]
use std::sync::Mutex;
use std::time::Duration;

/// The longest a receiver may take to answer (the bound: at most 10 s).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One POST: the endpoint's URL, the headers (signature, ids, content type) and the body.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRequest {
    /// The endpoint's URL as registered.
    pub url: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The signed body.
    pub body: Vec<u8>,
}

/// How the POST ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered.
    Answered {
        /// The HTTP status.
        status: u16,
        /// Its `Retry-After`, raw.
        retry_after: Option<String>,
    },
    /// No answer within [`DELIVERY_TIMEOUT`].
    TimedOut,
    /// No connection; the reason is for the operator's delivery log (no secrets in it).
    Unreachable(String),
}

/// Sends one webhook POST.
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// POSTs `request` and reports how it ended.
    async fn post(&self, request: &OutboundRequest) -> Outcome;
}

/// The real driver: reqwest over rustls, through the address guard.
pub struct HttpTransport {
    client: reqwest::Client,
    allow_loopback: bool,
}

impl HttpTransport {
    /// A transport that refuses every non-public address (loopback too unless `allow_loopback`, for
    /// dev mode and tests).
    pub fn new(allow_loopback: bool) -> crate::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
            .user_agent(concat!("caas-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Config(format!("building the webhook client: {e}")))?;
        Ok(Self { client, allow_loopback })
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn post(&self, request: &OutboundRequest) -> Outcome {
        let url = match reqwest::Url::parse(&request.url) {
            Ok(url) => url,
            Err(e) => return Outcome::Unreachable(format!("invalid URL: {e}")),
        };
        // A literal IP is never resolved, so the resolver cannot check it: check it here.
        let literal = url.host_str().and_then(|host| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        });
        if let Some(ip) = literal.filter(|ip| !is_deliverable(*ip, self.allow_loopback)) {
            return Outcome::Unreachable(format!("refused address {ip} (private, loopback or reserved)"));
        }
        let mut builder = self.client.post(url).body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        match builder.send().await {
            Ok(response) => Outcome::Answered {
                status: response.status().as_u16(),
                retry_after: response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            },
            Err(e) if e.is_timeout() => Outcome::TimedOut,
            Err(e) => Outcome::Unreachable(describe(&e)),
        }
    }
}

/// The error and its causes on one line (the guard's refusal is a cause of reqwest's connect error).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves with the system resolver, then keeps only deliverable addresses; none left is an error.
struct GuardedResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|address| is_deliverable(address.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                let refused = format!("{host} resolves only to refused addresses (private, loopback or reserved)");
                return Err(refused.into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A transport for the delivery rules' unit tests (never built into a binary): answers each POST with
/// the next scripted outcome (the last one repeats) and keeps every request.
#[cfg(test)]
#[derive(Default)]
pub struct ScriptedTransport {
    script: Mutex<Vec<Outcome>>,
    requests: Mutex<Vec<OutboundRequest>>,
}

#[cfg(test)]
impl ScriptedTransport {
    /// Answers with `outcomes` in order, then the last one for ever.
    pub fn new(outcomes: Vec<Outcome>) -> Self {
        Self {
            script: Mutex::new(outcomes),
            requests: Mutex::default(),
        }
    }

    /// Every request posted so far.
    pub fn requests(&self) -> Vec<OutboundRequest> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
#[async_trait]
impl WebhookTransport for ScriptedTransport {
    async fn post(&self, request: &OutboundRequest) -> Outcome {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request.clone());
        let mut script = self.script.lock().unwrap_or_else(|p| p.into_inner());
        if script.len() > 1 {
            script.remove(0)
        } else {
            script
                .first()
                .cloned()
                .unwrap_or(Outcome::Unreachable("nothing scripted".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real receiver on loopback: answered when loopback is allowed, refused (without a connection)
    /// when it is not, by name and by literal address.
    #[tokio::test]
    async fn the_guard_refuses_loopback_unless_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let seen = Arc::clone(&seen);
                async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    seen.lock().unwrap().push(format!("{id} {body}"));
                    (axum::http::StatusCode::ACCEPTED, [("retry-after", "7")], "")
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let request = |host: &str| OutboundRequest {
            url: format!("http://{host}:{port}/hook"),
            headers: vec![("webhook-id".into(), "msg_1".into())],
            body: b"{}".to_vec(),
        };
        let allowed = HttpTransport::new(true).unwrap();
        assert_eq!(
            allowed.post(&request("localhost")).await,
            Outcome::Answered {
                status: 202,
                retry_after: Some("7".into())
            }
        );
        let guarded = HttpTransport::new(false).unwrap();
        for host in ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"] {
            let outcome = guarded.post(&request(host)).await;
            assert!(
                matches!(&outcome, Outcome::Unreachable(why) if why.contains("refused")),
                "{host}: {outcome:?}"
            );
        }
        assert_eq!(
            received.lock().unwrap().as_slice(),
            ["msg_1 {}"],
            "only the allowed POST arrived"
        );
    }

    #[tokio::test]
    async fn a_scripted_transport_answers_in_order_then_repeats() {
        let transport = ScriptedTransport::new(vec![Outcome::TimedOut, Outcome::Unreachable("x".into())]);
        let request = OutboundRequest {
            url: "https://a.example/".into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert_eq!(transport.post(&request).await, Outcome::TimedOut);
        assert_eq!(transport.post(&request).await, Outcome::Unreachable("x".into()));
        assert_eq!(transport.post(&request).await, Outcome::Unreachable("x".into()));
        assert_eq!(transport.requests().len(), 3);
    }
}
