//! Webhook delivery on the real stack (issue 38), each endpoint a real HTTP receiver this test runs:
//! events arrive signed (verified here with the documented algorithm, byte for byte), filtered by type,
//! with correlation ids and `offline_member_ids`; a receiver failing three times gets the event on the
//! fourth attempt with the same `webhook-id`; a 400 is not retried; `410` disables; a rotation sends both
//! signatures; another app's slow, failing endpoints are dead-lettered while this app's deliveries stay on
//! time; the events API returns a window in order by cursor, and a replay sends it again.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use caas_e2e::{ok, Client, Operator, Platform};
use hmac::{KeyInit, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How one receiver path answers: `failures` times `fail_with`, then 200; each answer after `delay`.
#[derive(Clone, Copy, Default)]
struct Script {
    failures: usize,
    fail_with: u16,
    delay: Duration,
}

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Receivers {
    scripts: Mutex<HashMap<String, Script>>,
    got: Mutex<HashMap<String, Vec<Received>>>,
}

async fn receive(
    State(receivers): State<Arc<Receivers>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let received = Received {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
    };
    let script = receivers
        .scripts
        .lock()
        .unwrap()
        .get(&name)
        .copied()
        .unwrap_or_default();
    let count = {
        let mut got = receivers.got.lock().unwrap();
        let list = got.entry(name).or_default();
        list.push(received);
        list.len()
    };
    tokio::time::sleep(script.delay).await;
    if count <= script.failures {
        StatusCode::from_u16(script.fail_with).unwrap()
    } else {
        StatusCode::OK
    }
}

impl Receivers {
    fn script(&self, name: &str, script: Script) {
        self.scripts.lock().unwrap().insert(name.to_owned(), script);
    }

    fn got(&self, name: &str) -> Vec<Received> {
        self.got.lock().unwrap().get(name).cloned().unwrap_or_default()
    }

    /// Waits until `name` got at least `count` requests (or panics after `within`).
    async fn wait_for(&self, name: &str, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.got(name);
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{name} got {} of {count} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `name` got an event matching `check`.
    async fn wait_for_event(&self, name: &str, check: impl Fn(&Value) -> bool) -> Received {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = self.got(name).into_iter().find(|r| check(&r.json())) {
                return found;
            }
            assert!(Instant::now() < deadline, "{name} never got the event");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The Standard Webhooks signatures of a request under `secret`, as the README tells receivers to
/// compute them: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with the base64-decoded
/// part of `whsec_…`, base64-encoded, prefixed `v1,`.
fn expected_signature(secret: &str, received: &Received) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    let signed = format!(
        "{}.{}.",
        received.headers["webhook-id"], received.headers["webhook-timestamp"]
    );
    mac.update(signed.as_bytes());
    mac.update(&received.body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn signatures(received: &Received) -> Vec<String> {
    received.headers["webhook-signature"]
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// The webhook routes' calls these checks make.
trait Hooks {
    async fn register(&self, app_id: &str, url: &str, types: &[&str]) -> (String, String);
    async fn deliveries(&self, app_id: &str, webhook_id: &str) -> Vec<Value>;
    async fn deliveries_until(&self, app_id: &str, webhook_id: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value>;
}

impl Hooks for Operator<'_> {
    /// Registers an endpoint at `url` for `types`; its id and secret.
    async fn register(&self, app_id: &str, url: &str, types: &[&str]) -> (String, String) {
        let (status, created) = self
            .call(
                Method::POST,
                &format!("/api/v1/admin/apps/{app_id}/webhooks"),
                Some(json!({"url": url, "event_types": types})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        (
            created["webhook"]["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn deliveries(&self, app_id: &str, webhook_id: &str) -> Vec<Value> {
        let path = format!("/api/v1/admin/apps/{app_id}/webhooks/{webhook_id}/deliveries");
        let (status, listed) = self.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{listed}");
        listed["deliveries"].as_array().unwrap().clone()
    }

    /// Waits until the endpoint's deliveries satisfy `check`.
    async fn deliveries_until(&self, app_id: &str, webhook_id: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listed = self.deliveries(app_id, webhook_id).await;
            if check(&listed) {
                return listed;
            }
            assert!(Instant::now() < deadline, "deliveries never got there: {listed:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn send(client: &mut Client, conversation_id: &str, client_msg_id: &str) -> Value {
    ok(&client
        .call(
            "message.send",
            json!({"conversation_id": conversation_id, "client_msg_id": client_msg_id, "text": client_msg_id}),
        )
        .await)
}

#[tokio::test]
async fn events_are_signed_retried_dead_lettered_and_replayable() {
    // Three retries a second apart: four attempts in about three seconds.
    let platform = Platform::start_with("webhook_delivery", 2, &[("CAAS_WEBHOOK_RETRY_SCHEDULE", "1,1,1")]);
    let receivers = Arc::new(Receivers::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/{name}", axum::routing::post(receive))
        .with_state(Arc::clone(&receivers));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let operator = Operator::new(&platform);
    let http = &operator.http;
    let app = platform.create_app(http).await;
    let other_app = platform.create_app(http).await;
    let app_id = app.0.as_str();

    let (main_id, main_secret) = operator
        .register(app_id, &format!("{hooks}/main"), &["message.new", "member.added"])
        .await;
    let (flaky_id, _) = operator
        .register(app_id, &format!("{hooks}/flaky"), &["message.new"])
        .await;
    let (refusing_id, _) = operator
        .register(app_id, &format!("{hooks}/refusing"), &["message.new"])
        .await;
    let (gone_id, _) = operator
        .register(app_id, &format!("{hooks}/gone"), &["message.new"])
        .await;
    let (dead_id, _) = operator
        .register(&other_app.0, &format!("{hooks}/dead"), &["message.new"])
        .await;
    // Seven more of the other app's endpoints failing as slowly: with "dead", every message of that app
    // is 8 slow deliveries, and 4 of them fill all 32 of a worker's slots unless the app's share holds.
    let slow: Vec<String> = (1..=7).map(|i| format!("slow-{i}")).collect();
    for name in &slow {
        operator
            .register(&other_app.0, &format!("{hooks}/{name}"), &["message.new"])
            .await;
    }
    receivers.script(
        "flaky",
        Script {
            failures: 3,
            fail_with: 503,
            ..Script::default()
        },
    );
    receivers.script(
        "refusing",
        Script {
            failures: usize::MAX,
            fail_with: 400,
            ..Script::default()
        },
    );
    receivers.script(
        "gone",
        Script {
            failures: usize::MAX,
            fail_with: 410,
            ..Script::default()
        },
    );
    // Slow and always failing: each attempt holds a worker slot for 2 s (once it is known to fail, one
    // attempt at a time).
    for name in std::iter::once("dead").chain(slow.iter().map(String::as_str)) {
        receivers.script(
            name,
            Script {
                failures: usize::MAX,
                fail_with: 500,
                delay: Duration::from_secs(2),
            },
        );
    }

    // alice on node 1, carol on node 2, bob with no connection.
    let alice_token = platform.token(http, &app, "alice").await;
    let bob_token = platform.token(http, &app, "bob").await;
    let carol_token = platform.token(http, &app, "carol").await;
    let dave_token = platform.token(http, &app, "dave").await;
    let mut alice = Client::connect(
        &platform.socket_urls[0],
        alice_token["token"].as_str().unwrap(),
        "wh-alice",
    )
    .await;
    let _carol = Client::connect(
        &platform.socket_urls[1],
        carol_token["token"].as_str().unwrap(),
        "wh-carol",
    )
    .await;
    let group = alice.create_group(&[&bob_token, &carol_token]).await;
    let sent = send(&mut alice, &group, "first").await;

    // Signed, with the same id in the header and the body, and the correlation id of the send.
    let first = receivers.wait_for_event("main", |e| e["type"] == "message.new").await;
    assert_eq!(signatures(&first), [expected_signature(&main_secret, &first)]);
    let body = first.json();
    assert_eq!(first.headers["webhook-id"], body["id"].as_str().unwrap());
    assert_eq!(first.headers["content-type"], "application/json");
    let timestamp: i64 = first.headers["webhook-timestamp"].parse().unwrap();
    assert!((timestamp - caas_shared::now_ms() / 1000).abs() < 60, "{timestamp}");
    assert_eq!(
        (&body["app_id"], &body["correlation_id"], &body["data"]["message"]["id"]),
        (&json!(app_id), &json!("wh-alice"), &sent["message_id"])
    );
    assert_eq!(first.headers["x-correlation-id"], "wh-alice");
    assert_eq!(
        body["data"]["offline_member_ids"],
        json!([bob_token["user"]["id"]]),
        "bob alone has no live connection (carol is on the other node; alice sent it)"
    );

    // Filtered by type: the endpoint asked for member.added, not conversation.created.
    ok(&alice
        .call(
            "conversation.members.add",
            json!({"conversation_id": group, "member_ids": [dave_token["user"]["id"]]}),
        )
        .await);
    let added = receivers
        .wait_for_event("main", |e| e["type"] == "member.added")
        .await
        .json();
    assert_eq!(added["data"]["user_ids"], json!([dave_token["user"]["id"]]));
    assert!(
        receivers
            .got("main")
            .iter()
            .all(|r| ["message.new", "member.added"].contains(&r.json()["type"].as_str().unwrap())),
        "only the types the endpoint asked for"
    );

    // Failing three times, delivered on the fourth attempt with the same webhook-id.
    let flaky = receivers.wait_for("flaky", 4, Duration::from_secs(30)).await;
    let ids: Vec<&str> = flaky.iter().map(|r| r.headers["webhook-id"].as_str()).collect();
    assert_eq!(ids, [first.headers["webhook-id"].as_str(); 4]);
    let listed = operator
        .deliveries_until(app_id, &flaky_id, |d| {
            d.first().is_some_and(|d| d["status"] == "delivered")
        })
        .await;
    assert_eq!(
        (&listed[0]["attempts"], &listed[0]["last_status"]),
        (&json!(4), &json!(200))
    );

    // 400: not retried, dead at once. 410: dead, and the endpoint disabled.
    let refused = operator
        .deliveries_until(app_id, &refusing_id, |d| {
            d.first().is_some_and(|d| d["status"] == "dead")
        })
        .await;
    assert_eq!(
        (&refused[0]["attempts"], &refused[0]["last_status"]),
        (&json!(1), &json!(400))
    );
    operator
        .deliveries_until(app_id, &gone_id, |d| d.first().is_some_and(|d| d["status"] == "dead"))
        .await;
    let (_, gone) = operator
        .call(
            Method::GET,
            &format!("/api/v1/admin/apps/{app_id}/webhooks/{gone_id}"),
            None,
        )
        .await;
    assert_eq!(
        (&gone["webhook"]["enabled"], &gone["webhook"]["disabled_reason"]),
        (&json!(false), &json!("gone"))
    );

    // Another app's eight endpoints, slow and failing, with a backlog of 32: this app's deliveries stay on time.
    let other_token = platform.token(http, &other_app, "erin").await;
    let friend_token = platform.token(http, &other_app, "frank").await;
    let mut erin = Client::connect(
        &platform.socket_urls[1],
        other_token["token"].as_str().unwrap(),
        "wh-erin",
    )
    .await;
    let other_group = erin.create_group(&[&friend_token]).await;
    for i in 0..4 {
        send(&mut erin, &other_group, &format!("other-{i}")).await;
    }
    receivers.wait_for("dead", 4, Duration::from_secs(30)).await;
    let mut latencies = Vec::new();
    for i in 0..5 {
        let client_msg_id = format!("during-{i}");
        let sent_at = Instant::now();
        let message = send(&mut alice, &group, &client_msg_id).await;
        let id = message["message_id"].clone();
        let got = receivers
            .wait_for_event("main", |e| e["data"]["message"]["id"] == id)
            .await;
        latencies.push(got.at.duration_since(sent_at));
    }
    let dead_busy = receivers.got("dead").len();
    println!("this app's webhook latency while another app's endpoint fails slowly: {latencies:?} ({dead_busy} attempts at the failing endpoint so far)");
    assert!(
        latencies.iter().all(|l| *l < Duration::from_millis(1_500)),
        "never queued behind the other app's 2 s attempts: {latencies:?}"
    );
    let dead = operator
        .deliveries_until(&other_app.0, &dead_id, |d| {
            d.len() == 4 && d.iter().all(|d| d["status"] == "dead")
        })
        .await;
    assert!(
        dead.iter().all(|d| d["attempts"] == 4 && d["last_status"] == 500),
        "{dead:?}"
    );

    // Rotation: both signatures while the old secret overlaps.
    let (status, rotated) = operator
        .call(
            Method::POST,
            &format!("/api/v1/admin/apps/{app_id}/webhooks/{main_id}/secret"),
            Some(json!({"overlap_secs": 3600})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    let message = send(&mut alice, &group, "after-rotation").await;
    let id = message["message_id"].clone();
    let got = receivers
        .wait_for_event("main", |e| e["data"]["message"]["id"] == id)
        .await;
    let mut expected = vec![
        expected_signature(new_secret, &got),
        expected_signature(&main_secret, &got),
    ];
    let mut sent_signatures = signatures(&got);
    expected.sort();
    sent_signatures.sort();
    assert_eq!(sent_signatures, expected);

    // A receiver down for a while: the events API returns the window in order, page by page.
    let (_, page) = operator
        .call(
            Method::GET,
            &format!("/api/v1/admin/apps/{app_id}/events?limit=500"),
            None,
        )
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let window_start = caas_shared::now_ms();
    let mut window = Vec::new();
    for i in 0..5 {
        let message = send(&mut alice, &group, &format!("window-{i}")).await;
        window.push(message["message_id"].clone());
    }
    let mut read = Vec::new();
    let mut after = cursor;
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.len() < window.len() {
        let (status, page) = operator
            .call(
                Method::GET,
                &format!("/api/v1/admin/apps/{app_id}/events?after={after}&types=message.new&limit=2"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        for event in page["events"].as_array().unwrap() {
            assert_eq!(event["type"], "message.new");
            read.push(event["data"]["message"]["id"].clone());
        }
        after = page["next_cursor"].as_str().unwrap().to_owned();
        assert!(Instant::now() < deadline, "the window never appeared: {read:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read, window, "every event of the window, in order");
    let window_end = caas_shared::now_ms();

    // A replay of the window to the flaky endpoint sends each of its events once more, same ids.
    let (status, replayed) = operator
        .call(
            Method::POST,
            &format!("/api/v1/admin/apps/{app_id}/webhooks/{flaky_id}/replay"),
            Some(json!({"from": window_start, "to": window_end})),
        )
        .await;
    assert_eq!((status, &replayed["queued"]), (202, &json!(5)), "{replayed}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = receivers.got("flaky");
        let times: Vec<usize> = window
            .iter()
            .map(|id| got.iter().filter(|r| &r.json()["data"]["message"]["id"] == id).count())
            .collect();
        if times == [2; 5] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "each event of the window live and replayed: {times:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The operator's tools: a test event, and one more attempt at a dead-lettered delivery.
    let (status, tested) = operator
        .call(
            Method::POST,
            &format!("/api/v1/admin/apps/{app_id}/webhooks/{main_id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{tested}");
    receivers.wait_for_event("main", |e| e["type"] == "webhook.test").await;
    let refused_before = receivers.got("refusing").len();
    let retry_path = format!(
        "/api/v1/admin/apps/{app_id}/webhooks/{refusing_id}/deliveries/{}/retry",
        refused[0]["id"].as_str().unwrap()
    );
    let (status, retried) = operator.call(Method::POST, &retry_path, None).await;
    assert_eq!(
        (status, &retried["delivery"]["status"]),
        (200, &json!("pending")),
        "{retried}"
    );
    receivers
        .wait_for("refusing", refused_before + 1, Duration::from_secs(30))
        .await;

    // Bad input: JSON errors, and another app's endpoint is not found.
    for (method, path, body, expected) in [
        (
            Method::GET,
            format!("/api/v1/admin/apps/{app_id}/events?after=-3"),
            None,
            400,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/apps/{app_id}/events?types=message.exploded"),
            None,
            400,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/apps/{app_id}/events?limit=0"),
            None,
            400,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/apps/{app_id}/events?colour=red"),
            None,
            400,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/apps/{app_id}/webhooks/{main_id}/replay"),
            Some(json!({"from": 10, "to": 5})),
            400,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/apps/{app_id}/webhooks/{main_id}/replay"),
            Some(json!({"from": "yesterday"})),
            400,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/apps/{}/webhooks/{main_id}/deliveries", other_app.0),
            None,
            404,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/apps/{app_id}/webhooks/{main_id}/deliveries/nope/retry"),
            None,
            404,
        ),
    ] {
        let (status, answer) = operator.call(method, &path, body).await;
        assert_eq!(status, expected, "{path}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{path}: {answer}");
    }
}
