//! Socket.IO compatibility end to end: the real `socket.io-client` 4.x npm package, driven from Node
//! (`tests/socketio/client.cjs`), against two socket nodes on the real stack. The replaced system's
//! snippet (default transports: long-polling, then the upgrade) and a WebSocket-only client chat across
//! nodes with native and original event names; acks carry the native reply body; bad, missing and
//! revoked tokens get `connect_error`; a logout is a server disconnect; a client cut off mid-stream
//! comes back on the other node recovered, holding every message; native and Socket.IO clients share a
//! conversation; correlation ids reach MongoDB.

use caas_e2e::{ok, Client, Platform};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `node_modules` holding `socket.io-client` (installed by `local/stack.sh install`).
fn node_modules() -> PathBuf {
    let tools = std::env::var_os("CAAS_TOOLS_DIR").map_or_else(
        || PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/caas/tools"),
        PathBuf::from,
    );
    let modules = tools.join("socketio/node_modules");
    assert!(
        modules.join("socket.io-client/package.json").exists(),
        "socket.io-client is missing from {}: run `bash local/stack.sh install`",
        modules.display()
    );
    modules
}

/// One run of the Node driver: its output lines as they come.
struct Driver {
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Driver {
    fn start(scenario: &str, config: &Value) -> Self {
        let script = caas_e2e::workspace_root().join("tests/socketio/client.cjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(scenario)
            .arg(config.to_string())
            .env("NODE_PATH", node_modules())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running node");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or_else(|_| json!({"raw": line}));
                if sender.send(value).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line that satisfies `accept`; fails on the driver's error or end.
    fn until(&mut self, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("the driver ended or stalled before {what}; it said: {:#?}", self.seen));
            assert!(line.get("error").is_none(), "the driver failed: {line}");
            self.seen.push(line.clone());
            if accept(&line) {
                return line;
            }
        }
    }

    fn step(&mut self, step: &str) {
        self.until(step, |line| line["step"] == step);
    }

    /// Waits for the driver's end; returns every line it printed.
    fn finish(mut self) -> Vec<Value> {
        self.until("done", |line| line["done"] == true);
        let status = self.child.wait().expect("driver exit");
        assert!(status.success(), "driver exited with {status}");
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Socket.IO URL of a node (the client adds `/socket.io/`).
fn socketio_url(platform: &Platform, node: usize) -> String {
    platform.socket_urls[node].trim_end_matches("/ws").to_owned()
}

fn events<'a>(lines: &'a [Value], client: &str, event: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|line| line["client"] == client && line["event"] == event)
        .map(|line| &line["args"][0])
        .collect()
}

fn ack<'a>(lines: &'a [Value], client: &str, event: &str) -> &'a Value {
    lines
        .iter()
        .find(|line| line["client"] == client && line["ack"] == event)
        .map(|line| &line["reply"])
        .unwrap_or_else(|| panic!("no ack of {event} for {client}"))
}

struct Chat {
    platform: Platform,
    http: reqwest::Client,
    app: (String, String),
    alice: Value,
    bob: Value,
    carol: Value,
    conversation_id: String,
}

async fn chat_setup(name: &str, env: &[(&str, &str)]) -> Chat {
    let platform = Platform::start_with(name, 2, env);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let alice = platform.token(&http, &app, "alice").await;
    let bob = platform.token(&http, &app, "bob").await;
    let carol = platform.token(&http, &app, "carol").await;
    let mut native = Client::connect(&platform.socket_urls[1], token(&carol), "setup").await;
    let members = [&alice, &bob];
    let conversation_id = native.create_group(&members).await;
    Chat {
        platform,
        http,
        app,
        alice,
        bob,
        carol,
        conversation_id,
    }
}

impl Chat {
    /// Ends the session behind `session` (`POST /api/v1/auth/logout`).
    async fn logout(&self, session: &Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/auth/logout", self.platform.gateway_url))
            .bearer_auth(token(session))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

fn token(session: &Value) -> &str {
    session["token"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replaced_systems_clients_chat_across_nodes_with_native_clients() {
    let chat = chat_setup("socketio_chat", &[]).await;
    let platform = &chat.platform;
    let conversation_id = chat.conversation_id.as_str();
    let mut carol = Client::connect(&platform.socket_urls[1], token(&chat.carol), "carol-native").await;
    ok(&carol
        .call("conversation.subscribe", json!({"conversation_id": conversation_id}))
        .await);
    let config = json!({
        "conversation_id": conversation_id,
        // The snippet: default transports, auth {token, correlationId}, the correlation header.
        "a": {"url": socketio_url(platform, 0), "token": token(&chat.alice), "correlationId": "test-correlation-001"},
        "b": {"url": socketio_url(platform, 1), "token": token(&chat.bob), "correlationId": "sio-bob", "transports": ["websocket"]},
    });
    let mut driver = Driver::start("chat", &config);
    driver.step("await-native");
    // The native client saw the Socket.IO clients' messages, and they see its own.
    let hello = carol.event("message.new").await;
    assert_eq!(hello["text"], "Hello World");
    let native_reply = ok(&carol
        .call(
            "message.send",
            json!({"conversation_id": conversation_id, "client_msg_id": "carol-1", "text": "from native"}),
        )
        .await);
    driver.step("sent-to-native");
    loop {
        let message = carol.event("message.new").await;
        if message["text"] == "to native" {
            break;
        }
    }
    let lines = driver.finish();

    // Transports: the snippet starts with long-polling and upgrades; `b` is WebSocket-only.
    let said = |client: &str, key: &str| {
        lines
            .iter()
            .find(|line| line["client"] == client && line.get(key).is_some())
            .map(|line| line[key].clone())
    };
    assert_eq!(said("a", "opened_with"), Some(json!("polling")));
    assert_eq!(said("a", "upgraded_to"), Some(json!("websocket")));
    assert_eq!(said("b", "opened_with"), Some(json!("websocket")));
    assert_eq!(said("b", "upgraded_to"), None);

    // The original `sendMessage` reached the other node under both names, with a derived message id.
    let hello_b = events(&lines, "b", "message.new");
    let hello_b = hello_b
        .iter()
        .find(|m| m["text"] == "Hello World")
        .expect("b got Hello World");
    assert!(
        hello_b["client_msg_id"].as_str().unwrap().starts_with("sio-"),
        "{hello_b}"
    );
    assert_eq!(hello_b["id"], hello["id"], "the native client got the same message");
    assert!(events(&lines, "b", "message:new")
        .iter()
        .any(|m| m["text"] == "Hello World"));
    // Both clients sent, edited, reacted, forwarded and deleted; the other saw each live (the driver
    // waited for every one of these events before going on).
    for (actor, observer) in [("a", "b"), ("b", "a")] {
        assert!(
            lines
                .iter()
                .any(|line| line["client"] == actor && line["step"] == "operations-done"),
            "{actor} did not finish its operations"
        );
        let edited = events(&lines, observer, "message.updated");
        assert!(
            edited.iter().any(|m| m["text"] == format!("edited by {actor}")),
            "{observer}: {edited:?}"
        );
        let forwarded = events(&lines, observer, "message.new");
        assert!(
            forwarded.iter().any(|m| m["forwarded_from"].is_object()),
            "{observer} saw no forward"
        );
        assert!(!events(&lines, observer, "reaction.added").is_empty());
        assert!(!events(&lines, observer, "message.deleted").is_empty());
        assert!(!events(&lines, observer, "message:reacted").is_empty());
    }

    // Acks carry the native reply body: the same keys as the native client's reply.
    let sent = ack(&lines, "b", "message.send");
    assert_eq!(sent["ok"], true);
    let keys = |value: &Value| {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&sent["data"]), keys(&native_reply));
    assert_eq!(sent["data"]["status"], "accepted");
    assert_eq!(keys(&ack(&lines, "a", "sendMessage")["data"]), keys(&native_reply));
    assert_eq!(ack(&lines, "a", "message:edit")["data"]["text"], "edited by a");
    assert_eq!(ack(&lines, "b", "message:react")["data"]["emoji"], "👍");
    let binary = lines
        .iter()
        .find_map(|line| line.get("binary_refused"))
        .expect("binary refused");
    assert_eq!(binary["code"], "validation_failed", "{binary}");
    let unknown = ack(&lines, "a", "no.such.event");
    assert_eq!(
        (&unknown["ok"], &unknown["error"]["code"]),
        (&json!(false), &json!("unknown_event"))
    );
    // The native message reached both Socket.IO clients.
    for client in ["a", "b"] {
        assert!(events(&lines, client, "message.new")
            .iter()
            .any(|m| m["text"] == "from native"));
    }

    // The snippet's correlation id reached MongoDB with the message.
    let db = platform.mongo().await;
    let messages = db.collection::<mongodb::bson::Document>("messages");
    let hello_id = hello["id"].as_str().unwrap();
    let mut stored = None;
    for _ in 0..100 {
        stored = messages.find_one(mongodb::bson::doc! {"_id": hello_id}).await.unwrap();
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = stored.expect("the message was persisted");
    assert_eq!(stored.get_str("correlation_id").unwrap(), "test-correlation-001");
    assert_eq!(stored.get_str("text").unwrap(), "Hello World");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_missing_and_revoked_tokens_get_connect_error_and_no_reconnect() {
    let chat = chat_setup("socketio_refused", &[]).await;
    let platform = &chat.platform;
    // A revoked session: alice logs out, then her old token is presented.
    chat.logout(&chat.alice).await;
    let cases = [
        (json!("not.a.token"), None, "unauthorized"),
        (Value::Null, Some(json!(["websocket"])), "unauthorized"),
        (json!(token(&chat.alice)), None, "unauthorized"),
    ];
    for (node, (bad_token, transports, code)) in cases.into_iter().enumerate() {
        let mut client = json!({"url": socketio_url(platform, node % 2), "correlationId": "refused"});
        if !bad_token.is_null() {
            client["token"] = bad_token.clone();
        }
        if let Some(transports) = transports {
            client["transports"] = transports;
        }
        let lines = Driver::start("refused", &json!({"a": client})).finish();
        let refused = lines
            .iter()
            .find(|line| line["event"] == "connect_error")
            .expect("connect_error");
        assert_eq!(refused["data"]["code"], code, "{bad_token}: {refused}");
        assert!(
            !refused["message"].as_str().unwrap().is_empty(),
            "a clear message: {refused}"
        );
        let state = lines.iter().find(|line| line.get("active").is_some()).unwrap();
        assert_eq!(state["active"], false, "the client must not reconnect: {state}");
    }
    let revoked = Driver::start(
        "refused",
        &json!({"a": {"url": socketio_url(platform, 0), "token": token(&chat.alice), "correlationId": "r"}}),
    )
    .finish();
    let message = revoked.iter().find(|line| line["event"] == "connect_error").unwrap();
    assert!(
        message["message"].as_str().unwrap().contains("session"),
        "a revoked session says so: {message}"
    );
    let _ = &chat.app;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_disconnects_the_socketio_client_for_good() {
    let chat = chat_setup("socketio_logout", &[]).await;
    let platform = &chat.platform;
    let config = json!({"a": {"url": socketio_url(platform, 1), "token": token(&chat.bob), "correlationId": "bye"}});
    let mut driver = Driver::start("revoked", &config);
    driver.step("connected");
    chat.logout(&chat.bob).await;
    let lines = driver.finish();
    let revoked = events(&lines, "a", "session.revoked");
    assert_eq!(revoked.len(), 1, "{lines:#?}");
    let disconnect = lines.iter().find(|line| line["event"] == "disconnect").unwrap();
    assert_eq!(disconnect["reason"], "io server disconnect");
    assert_eq!(disconnect["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_mid_stream_recovers_every_message_on_the_other_node() {
    // A short heartbeat, so pongs confirm part of the stream before the cut.
    cut_off_mid_stream("socketio_recover", "300", 800).await;
}

/// The reported repeat: the client received messages after the last heartbeat confirmed anything (here
/// none does: the heartbeat is longer than the stream), then its node died. It resumes after the
/// messages it holds, by its offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_before_any_heartbeat_confirmed_is_sent_nothing_twice() {
    cut_off_mid_stream("socketio_unconfirmed", "25000", 0).await;
}

/// `a` on node 1 (through a proxy) and `b` on node 2 stream messages; a third of the way through, the
/// proxy cuts `a` off (after `cut_after_ms`) and node 1 is killed. `a` must come back recovered on
/// node 2 holding every message exactly once.
async fn cut_off_mid_stream(name: &str, ping_interval_ms: &str, cut_after_ms: u64) {
    let env = [
        ("CAAS_SOCKETIO_PING_INTERVAL_MS", ping_interval_ms),
        ("CAAS_SOCKETIO_PING_TIMEOUT_MS", "20000"),
    ];
    let mut chat = chat_setup(name, &env).await;
    let port = |platform: &Platform, node: usize| -> u16 {
        let url = socketio_url(platform, node);
        url.rsplit(':').next().unwrap().parse().unwrap()
    };
    const MESSAGES: usize = 150;
    let config = json!({
        "conversation_id": chat.conversation_id,
        "messages": MESSAGES,
        "cut_after_ms": cut_after_ms,
        "nodes": [
            {"host": "127.0.0.1", "port": port(&chat.platform, 0)},
            {"host": "127.0.0.1", "port": port(&chat.platform, 1)},
        ],
        "a": {"token": token(&chat.alice), "correlationId": "recovering"},
        "b": {"url": socketio_url(&chat.platform, 1), "token": token(&chat.bob), "correlationId": "streaming", "transports": ["websocket"]},
    });
    let mut driver = Driver::start("recover", &config);
    let cut = driver.until("the cut", |line| line["step"] == "cut");
    // Node 1 dies with the client's connection: nothing it held in memory can help.
    chat.platform.kill("node1");
    let lines = driver.finish();
    let result = lines
        .iter()
        .find(|line| line.get("recovered").is_some())
        .expect("a result");
    assert_eq!(result["recovered"], true, "socket.recovered: {result}");
    let expected: Vec<Value> = (1..=MESSAGES).map(|i| json!(format!("m{i}"))).collect();
    assert_eq!(
        result["texts"].as_array().unwrap(),
        &expected,
        "every message, in order"
    );
    assert!(cut["received"].as_u64().unwrap() > 0, "the cut came mid-stream: {cut}");
    // Socket.IO apps do not dedupe: the resume starts exactly after what the client holds (its
    // offset), not at the last heartbeat's confirmation.
    assert_eq!(
        result["repeats"], 0,
        "messages the client held were sent again: {result}"
    );
    eprintln!("recovered after the cut at {} messages, none repeated", cut["received"]);
}
