//! Every function the SAM template deploys, as the artifact `cargo lambda build --release` makes of it,
//! invoked the way Lambda invokes it: the `bootstrap` runs against a Lambda runtime API emulator
//! (`cargo lambda watch --only-lambda-apis`) and gets one real event (an API Gateway v2 request, a
//! `KafkaEvent`, a schedule event) against the real stack; the response and the effect in MongoDB are
//! checked. Prints each artifact's size (raw and zipped) and cold start (process start → first response).
//!
//! `local/test.sh` builds the artifacts first and sets `CAAS_LAMBDA_ARTIFACTS_BUILT=1`; otherwise this
//! test builds them.

use caas_e2e::{cargo_lambda_path, free_port, workspace_root, KillOnDrop, Stack};
use caas_shared::domain::audit::{Actor, AuditEvent, Target};
use caas_shared::runtime::lambda::sample_event;
use mongodb::bson::{doc, Document};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `Binary` of every function in `template.yaml`: what `sam build` builds and deploys.
fn templated_functions() -> Vec<String> {
    let template = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let binaries: Vec<String> = template
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Binary:"))
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(binaries.len() >= 10, "template.yaml names {binaries:?}");
    binaries
}

const ADMIN_TOKEN: &str = "artifact-admin-token";
const JWT_SECRET: &str = "artifact-smoke-test-secret-0123456789abcdef";
/// 32 bytes in base64, sealing the webhook secrets.
const SECRETS_KEY: &str = "YXJ0aWZhY3Qtc2Vjc3JldHMta2V5LTAxMjM0NTY3ODk=";

/// `<target>/lambda`, where `cargo lambda build` puts `<binary>/bootstrap`.
fn artifacts_dir() -> PathBuf {
    // Test executables live in <target>/<profile>/deps.
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors().nth(3).expect("target dir").join("lambda")
}

fn build_artifacts() {
    if std::env::var("CAAS_LAMBDA_ARTIFACTS_BUILT").is_ok_and(|v| v == "1") {
        return;
    }
    let mut build = Command::new("cargo");
    build
        .args(["lambda", "build", "--release"])
        .current_dir(workspace_root());
    for function in templated_functions() {
        build.args(["--bin", &function]);
    }
    let status = build
        .env("PATH", cargo_lambda_path())
        .status()
        .expect("cargo lambda build");
    assert!(status.success(), "cargo lambda build --release failed");
}

/// An API Gateway HTTP API (payload format 2.0) request, as Lambda hands it to an HTTP function.
fn http_request(method: &str, path: &str, query: &str, headers: &[(&str, &str)], body: Option<Value>) -> Value {
    let mut all: HashMap<&str, &str> = headers.iter().copied().collect();
    all.insert("content-type", "application/json");
    all.insert("host", "api.example.com");
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "smoke"},
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:00:00:00 +0000",
            "timeEpoch": 1_796_083_200_000_i64,
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false,
    })
}

/// What one artifact measured.
struct Measured {
    function: &'static str,
    bytes: u64,
    zipped: u64,
    cold_start: Duration,
}

fn zipped_size(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&bytes).unwrap();
    encoder.finish().unwrap().len() as u64
}

/// What EventBridge Scheduler sends a scheduled function.
fn schedule_event() -> Value {
    json!({"version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "Scheduled Event",
        "source": "aws.scheduler", "time": "2026-12-01T00:00:00Z", "detail": {}})
}

struct Harness {
    stack: Stack,
    database: String,
    emulator_port: u16,
    log_dir: PathBuf,
    http: reqwest::Client,
    measured: Vec<Measured>,
}

impl Harness {
    /// Starts the function's bootstrap, sends it `event` through the emulator's Invoke API and returns
    /// the function's response (for HTTP functions, the API Gateway response object).
    async fn invoke(&mut self, function: &'static str, event: Value) -> Value {
        let bootstrap = artifacts_dir().join(function).join("bootstrap");
        assert!(bootstrap.exists(), "{} missing", bootstrap.display());
        let log = std::fs::File::create(self.log_dir.join(format!("{function}.log"))).unwrap();
        let started = Instant::now();
        let _process = KillOnDrop(
            Command::new(&bootstrap)
                .envs(&self.stack.env)
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{}/.rt/{function}", self.emulator_port),
                )
                .env("AWS_LAMBDA_FUNCTION_NAME", function)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("CAAS_STORE_DATABASE", &self.database)
                .env("CAAS_JWT_SECRET", JWT_SECRET)
                .env("CAAS_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("CAAS_SECRETS_KEY", SECRETS_KEY)
                .env("CAAS_WEBHOOKS_ALLOW_LOOPBACK_HTTP", "1")
                .env("CAAS_WEBHOOK_WORKER_SECS", "2")
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting the bootstrap"),
        );
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{function}/invocations",
            self.emulator_port
        );
        let response = self.http.post(url).json(&event).send().await.unwrap();
        let cold_start = started.elapsed();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{function} failed: {status} {body}");
        self.measured.push(Measured {
            function,
            bytes: std::fs::metadata(&bootstrap).unwrap().len(),
            zipped: zipped_size(&bootstrap),
            cold_start,
        });
        body
    }

    /// An HTTP function's answer: `(status, JSON body)`.
    async fn call(
        &mut self,
        function: &'static str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let response = self
            .invoke(function, http_request(method, path, query, headers, body))
            .await;
        let status = response["statusCode"].as_u64().expect("statusCode") as u16;
        let body = serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
        (status, body)
    }

    async fn mongo(&self) -> mongodb::Database {
        mongodb::Client::with_uri_str(self.stack.get("CAAS_STORE_URL"))
            .await
            .unwrap()
            .database(&self.database)
    }

    async fn stored(&self, collection: &str, filter: Document) -> Option<Document> {
        self.mongo()
            .await
            .collection::<Document>(collection)
            .find_one(filter)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_release_artifact_answers_its_event() {
    build_artifacts();
    let stack = Stack::obtain();
    stack.ensure_topics().await;
    let database = format!("e2e_artifacts_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let log_dir = workspace_root().join("target/e2e-logs").join(&database);
    std::fs::create_dir_all(&log_dir).unwrap();
    let emulator_port = free_port();
    let emulator_log = std::fs::File::create(log_dir.join("emulator.log")).unwrap();
    let _emulator = KillOnDrop(
        Command::new("cargo")
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P"])
            .arg(emulator_port.to_string())
            .current_dir(workspace_root())
            .env("PATH", cargo_lambda_path())
            .stdin(Stdio::null())
            .stdout(emulator_log.try_clone().unwrap())
            .stderr(emulator_log)
            .spawn()
            .expect("starting cargo lambda watch"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", emulator_port)).is_err() {
        assert!(Instant::now() < deadline, "the runtime API emulator did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut h = Harness {
        stack,
        database,
        emulator_port,
        log_dir,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        measured: Vec::new(),
    };
    let admin = ("authorization", "Bearer artifact-admin-token");

    // auth: an operator creates an app; SDK tokens for two users (each a session in MongoDB).
    let (status, app) = h
        .call(
            "auth",
            "POST",
            "/api/v1/admin/apps",
            &[admin],
            Some(json!({"name": "artifacts"})),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let app_id = app["app_id"].as_str().unwrap().to_owned();
    assert!(h.stored("apps", doc! {"_id": &app_id}).await.is_some());
    let mut tokens = Vec::new();
    for user in ["alice", "bob"] {
        let request = json!({"app_id": app_id, "app_secret": app["app_secret"], "user_external_id": user});
        let (status, issued) = h
            .call("auth", "POST", "/api/v1/auth/sdk/token", &[], Some(request))
            .await;
        assert_eq!(status, 200, "{issued}");
        tokens.push(issued);
    }
    let bearer = format!("Bearer {}", tokens[0]["token"].as_str().unwrap());
    let user = ("authorization", bearer.as_str());

    // conversations: alice opens a direct conversation with bob.
    let request = json!({"kind": "direct", "member_ids": [tokens[1]["user"]["id"]]});
    let (status, conversation) = h
        .call("conversations", "POST", "/api/v1/conversations", &[user], Some(request))
        .await;
    assert_eq!(status, 201, "{conversation}");
    let conversation_id = conversation["id"].as_str().unwrap().to_owned();
    assert!(h
        .stored("conversations", doc! {"_id": &conversation_id})
        .await
        .is_some());

    // keys: alice registers a device with a signed one-time key; bob, her contact, claims it.
    let alice_id = tokens[0]["user"]["id"].as_str().unwrap().to_owned();
    let (signing, identity) = caas_shared::domain::keys::testing::device(&alice_id, "PHONE", 3);
    let one_time = caas_shared::domain::keys::testing::signed_key(&signing, &alice_id, "PHONE", 4, false);
    let request = json!({"device_keys": identity, "one_time_keys": {"signed_curve25519:k1": one_time}});
    let (status, uploaded) = h
        .call("keys", "PUT", "/api/v1/keys/devices/PHONE", &[user], Some(request))
        .await;
    assert_eq!(status, 201, "{uploaded}");
    assert!(h.stored("key_devices", doc! {"user_id": &alice_id}).await.is_some());
    let bob_bearer = format!("Bearer {}", tokens[1]["token"].as_str().unwrap());
    let request = json!({"one_time_keys": {&alice_id: {"PHONE": "signed_curve25519"}}});
    let (status, claimed) = h
        .call(
            "keys",
            "POST",
            "/api/v1/keys/claim",
            &[("authorization", bob_bearer.as_str())],
            Some(request),
        )
        .await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(
        claimed["one_time_keys"][&alice_id]["PHONE"]["signed_curve25519:k1"],
        one_time
    );
    let unclaimed = doc! {"user_id": &alice_id, "claimed_at": null};
    assert!(h.stored("one_time_keys", unclaimed).await.is_none());

    // media: an upload into it is recorded as pending and gets a presigned URL.
    let request =
        json!({"conversation_id": conversation_id, "filename": "a.png", "content_type": "image/png", "size": 4});
    let (status, upload) = h
        .call("media", "POST", "/api/v1/media/uploads", &[user], Some(request))
        .await;
    assert_eq!(status, 201, "{upload}");
    assert!(
        upload["url"].as_str().is_some_and(|u| u.starts_with("http")),
        "{upload}"
    );
    let upload_id = upload["upload_id"].as_str().unwrap();
    assert!(h.stored("attachments", doc! {"_id": upload_id}).await.is_some());

    // persist-messages, persist-conversations, index-messages: one message.created record.
    let sender_id = tokens[0]["user"]["id"].as_str().unwrap().to_owned();
    let message = json!({"type": "message.created", "data": {
        "id": uuid::Uuid::now_v7().to_string(), "app_id": app_id, "conversation_id": conversation_id, "seq": 1,
        "sender_id": sender_id, "client_msg_id": "artifact-1", "text": "hello from a release artifact",
        "created_at": caas_shared::now_ms(), "correlation_id": "artifact-correlation"}});
    let batch = serde_json::to_value(sample_event("caas.messages", std::slice::from_ref(&message))).unwrap();
    let report = h.invoke("persist-messages", batch.clone()).await;
    assert_eq!(report["inserted"], 1, "{report}");
    let stored = h
        .stored("messages", doc! {"client_msg_id": "artifact-1"})
        .await
        .expect("the message is stored");
    assert_eq!(stored.get_str("correlation_id").unwrap(), "artifact-correlation");
    let report = h.invoke("persist-conversations", batch.clone()).await;
    assert_eq!(report["summaries_applied"], 1, "{report}");
    assert!(h
        .stored("conversation_summaries", doc! {"_id": &conversation_id})
        .await
        .is_some());
    let report = h.invoke("index-messages", batch.clone()).await;
    assert_eq!(report["indexed"], 1, "{report}");

    // deliver-webhooks, webhook-worker: an endpoint registered through the auth artifact gets the
    // message's event, queued by the one and POSTed by the other (a Scheduler invocation).
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| async move {
            received_tx.send(body.0).ok();
            axum::http::StatusCode::NO_CONTENT
        }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    let request = json!({"url": hook, "event_types": ["message.new"]});
    let path = format!("/api/v1/admin/apps/{app_id}/webhooks");
    let (status, created) = h.call("auth", "POST", &path, &[admin], Some(request)).await;
    assert_eq!(status, 201, "{created}");
    let report = h.invoke("deliver-webhooks", batch).await;
    assert_eq!(
        (&report["events"], &report["deliveries"]),
        (&json!(1), &json!(1)),
        "{report}"
    );
    let report = h.invoke("webhook-worker", schedule_event()).await;
    assert_eq!(report["delivered"], 1, "{report}");
    let event = received.recv().await.expect("the receiver got the event");
    assert_eq!(
        (&event["type"], &event["correlation_id"]),
        (&json!("message.new"), &json!("artifact-correlation"))
    );

    // search: the index the previous artifact wrote answers, scoped by the caller's memberships.
    let (status, found) = h
        .call("search", "GET", "/api/v1/search/messages?q=artifact", &[user], None)
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"].as_array().map(Vec::len), Some(1), "{found}");

    // compliance: a legal hold on the conversation.
    let request = json!({"app_id": app_id, "conversation_id": conversation_id, "reason": "artifact smoke test"});
    let (status, hold) = h
        .call(
            "compliance",
            "POST",
            "/api/v1/compliance/holds",
            &[admin],
            Some(request),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    assert!(h.stored("legal_holds", doc! {"app_id": &app_id}).await.is_some());

    // write-audit: one audit event appended to the app's chain.
    let event = AuditEvent::new(
        &app_id,
        "artifact.checked",
        Actor::operator(),
        Target::new("app", &app_id),
        "artifact-audit",
    );
    let batch = sample_event("caas.audit", &[serde_json::to_value(&event).unwrap()]);
    let report = h.invoke("write-audit", serde_json::to_value(batch).unwrap()).await;
    assert_eq!(report["appended"], 1, "{report}");
    assert!(h
        .stored("audit_events", doc! {"app_id": &app_id, "action": "artifact.checked"})
        .await
        .is_some());

    // enforce-retention: a Scheduler invocation; the app has no retention policy, so nothing goes.
    let report = h.invoke("enforce-retention", schedule_event()).await;
    assert!(report["apps"].is_array(), "{report}");
    assert!(h
        .stored("messages", doc! {"client_msg_id": "artifact-1"})
        .await
        .is_some());

    let tested: Vec<&str> = h.measured.iter().map(|m| m.function).collect();
    for function in templated_functions() {
        assert!(tested.contains(&function.as_str()), "{function} was not invoked");
    }
    // Each invocation started a new process, so every one is a cold start; the first of a function
    // also pays for what its first request does (e.g. the database's indexes, Kafka metadata).
    println!("| function | bootstrap (MiB) | zipped (MiB) | cold starts: process start → response (ms) |");
    println!("|---|---:|---:|---|");
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    for function in templated_functions() {
        let runs: Vec<&Measured> = h.measured.iter().filter(|m| m.function == function).collect();
        let starts: Vec<String> = runs
            .iter()
            .map(|m| format!("{:.0}", m.cold_start.as_secs_f64() * 1000.0))
            .collect();
        println!(
            "| {function} | {:.1} | {:.1} | {} |",
            mib(runs[0].bytes),
            mib(runs[0].zipped),
            starts.join(", ")
        );
    }
}
