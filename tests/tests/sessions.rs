//! Sessions over the real stack: a token's session is listed, refreshed and ended; ending it refuses
//! its tokens everywhere (HTTP and socket) and closes only its own live connections; ending another
//! user's session is impossible; every end is audited.

use caas_e2e::{Client, Platform};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Http<'a> {
    client: reqwest::Client,
    platform: &'a Platform,
}

impl Http<'_> {
    /// Calls the gateway as the holder of `token` (an SDK token string); returns status and JSON body.
    async fn call(&self, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.platform.gateway_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn audit(&self, app_id: &str, action: &str, wanted: usize) -> Vec<Value> {
        let admin = self.platform.gateway().admin_token;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!(
                "{}/api/v1/compliance/audit?app_id={app_id}&action={action}",
                self.platform.gateway_url
            );
            let body: Value = self
                .client
                .get(url)
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let records = body["records"].as_array().cloned().unwrap_or_default();
            if records.len() >= wanted || Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn token_of(grant: &Value) -> &str {
    grant["token"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_session_refuses_its_tokens_and_closes_only_its_connections() {
    use reqwest::Method;
    let platform = Platform::start("sessions", 1);
    let http = Http {
        client: reqwest::Client::new(),
        platform: &platform,
    };
    let app = platform.create_app(&http.client).await;
    let phone = platform.token(&http.client, &app, "alice").await;
    let laptop = platform.token(&http.client, &app, "alice").await;
    let mallory = platform.token(&http.client, &app, "mallory").await;
    assert_ne!(phone["session_id"], laptop["session_id"]);

    let (status, listed) = http.call(Method::GET, "/api/v1/auth/sessions", token_of(&phone)).await;
    assert_eq!(status, 200, "{listed}");
    let listed: Vec<(Value, Value)> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["session_id"].clone(), s["current"].clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (phone["session_id"].clone(), json!(true)),
            (laptop["session_id"].clone(), json!(false))
        ]
    );

    // A refresh keeps the session and moves its expiry; both tokens of the session work until it ends.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, refreshed) = http.call(Method::POST, "/api/v1/auth/refresh", token_of(&phone)).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["session_id"], phone["session_id"]);
    assert_eq!(
        refreshed["user"], phone["user"],
        "the token endpoint's user shape, name included"
    );
    assert!(
        refreshed["expires_at"].as_i64() > phone["expires_at"].as_i64(),
        "{refreshed}"
    );
    let mut phone_socket = Client::connect(&platform.socket_urls[0], token_of(&refreshed), "phone").await;
    let mut laptop_socket = Client::connect(&platform.socket_urls[0], token_of(&laptop), "laptop").await;

    // Mallory cannot end alice's session: it is not among hers.
    let path = format!("/api/v1/auth/sessions/{}", laptop["session_id"].as_str().unwrap());
    let (status, body) = http.call(Method::DELETE, &path, token_of(&mallory)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );

    // Logging out on the phone ends its session: its socket is told and closed, the laptop's stays.
    let (status, body) = http.call(Method::POST, "/api/v1/auth/logout", token_of(&phone)).await;
    assert_eq!((status, &body["revoked"]), (200, &json!(true)), "{body}");
    let revoked = phone_socket.event("session.revoked").await;
    assert_eq!(revoked["reason"], "logged out");
    assert_eq!(phone_socket.closed_with().await, Some(1008));
    let pong = laptop_socket.call("ping", json!({})).await;
    assert_eq!(pong["ok"], true, "the laptop's connection must survive: {pong}");

    for token in [token_of(&phone), token_of(&refreshed)] {
        let (status, body) = http.call(Method::GET, "/api/v1/conversations", token).await;
        assert_eq!(
            (status, body["error"]["message"].as_str()),
            (401, Some("session revoked")),
            "{body}"
        );
        let (status, _) = http.call(Method::POST, "/api/v1/auth/refresh", token).await;
        assert_eq!(status, 401);
        let refusal = Client::refused_handshake(&platform.socket_urls[0], token).await;
        assert_eq!(refusal["code"], "unauthorized", "{refusal}");
    }
    let (status, listed) = http.call(Method::GET, "/api/v1/auth/sessions", token_of(&laptop)).await;
    assert_eq!(status, 200);
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "{listed}");

    // Ending the laptop's session from itself works the same way.
    let (status, _) = http.call(Method::DELETE, &path, token_of(&laptop)).await;
    assert_eq!(status, 200);
    assert_eq!(laptop_socket.closed_with().await, Some(1008));
    let (status, _) = http.call(Method::GET, "/api/v1/conversations", token_of(&laptop)).await;
    assert_eq!(status, 401);

    // Other users' sessions are untouched.
    let (status, _) = http
        .call(Method::GET, "/api/v1/conversations", token_of(&mallory))
        .await;
    assert_eq!(status, 200, "mallory's own session is untouched");

    let ended = http.audit(&app.0, "session.revoked", 2).await;
    let mut ended_ids: Vec<&str> = ended.iter().map(|r| r["target"]["id"].as_str().unwrap()).collect();
    ended_ids.sort_unstable();
    let mut expected = vec![
        phone["session_id"].as_str().unwrap(),
        laptop["session_id"].as_str().unwrap(),
    ];
    expected.sort_unstable();
    assert_eq!(ended_ids, expected);
    assert_eq!(http.audit(&app.0, "token.refreshed", 1).await.len(), 1);
}

/// A leaked app secret: rotating it refuses the old secret at once, and with `end_sessions` also ends
/// every session it minted — tokens refused, live sockets told and closed — across users; without it
/// the sessions live on. Other apps are untouched either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_secret_can_end_every_session_of_the_app() {
    use reqwest::Method;
    let platform = Platform::start("rotation", 1);
    let http = Http {
        client: reqwest::Client::new(),
        platform: &platform,
    };
    let admin = platform.gateway().admin_token;
    let rotate = |app_id: String, body: Option<Value>| {
        let mut request = http
            .client
            .post(format!("{}/api/v1/admin/apps/{app_id}/secret", platform.gateway_url))
            .bearer_auth(&admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let app = platform.create_app(&http.client).await;
    let other_app = platform.create_app(&http.client).await;
    let alice = platform.token(&http.client, &app, "alice").await;
    let bob = platform.token(&http.client, &app, "bob").await;
    let outsider = platform.token(&http.client, &other_app, "carol").await;

    // A plain rotation: the old secret is refused, sessions it minted live on.
    let (status, rotated) = rotate(app.0.clone(), None).await;
    assert_eq!((status, &rotated["sessions_ended"]), (200, &json!(0)), "{rotated}");
    let refused = http
        .client
        .post(format!("{}/api/v1/auth/sdk/token", platform.gateway_url))
        .json(&json!({"app_id": app.0, "app_secret": app.1, "user_external_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the old secret stops working at once");
    let (status, _) = http.call(Method::GET, "/api/v1/conversations", token_of(&alice)).await;
    assert_eq!(status, 200, "without end_sessions, sessions live on");

    // The leak response: a rotation that ends every session of the app.
    let mut alice_socket = Client::connect(&platform.socket_urls[0], token_of(&alice), "alice").await;
    let mut bob_socket = Client::connect(&platform.socket_urls[0], token_of(&bob), "bob").await;
    let mut carol_socket = Client::connect(&platform.socket_urls[0], token_of(&outsider), "carol").await;
    let (status, body) = rotate(app.0.clone(), Some(json!({"end_sessions": "yes"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation_failed")),
        "{body}"
    );
    let (status, rotated) = rotate(app.0.clone(), Some(json!({"end_sessions": true}))).await;
    assert_eq!((status, &rotated["sessions_ended"]), (200, &json!(2)), "{rotated}");
    for socket in [&mut alice_socket, &mut bob_socket] {
        assert_eq!(socket.event("session.revoked").await["reason"], "app secret rotated");
        assert_eq!(socket.closed_with().await, Some(1008));
    }
    for grant in [&alice, &bob] {
        let (status, body) = http.call(Method::GET, "/api/v1/conversations", token_of(grant)).await;
        assert_eq!(
            (status, body["error"]["message"].as_str()),
            (401, Some("session revoked")),
            "{body}"
        );
        let refusal = Client::refused_handshake(&platform.socket_urls[0], token_of(grant)).await;
        assert_eq!(refusal["code"], "unauthorized", "{refusal}");
    }
    let pong = carol_socket.call("ping", json!({})).await;
    assert_eq!(pong["ok"], true, "another app's connection survives: {pong}");

    // The new secret works: users sign in again through the app's backend.
    let new_secret = rotated["app_secret"].as_str().unwrap().to_owned();
    let again = platform
        .token(&http.client, &(app.0.clone(), new_secret), "alice")
        .await;
    let (status, _) = http.call(Method::GET, "/api/v1/conversations", token_of(&again)).await;
    assert_eq!(status, 200);
    let audited = http.audit(&app.0, "app.secret_rotated", 2).await;
    let ended: Vec<&Value> = audited.iter().map(|r| &r["details"]["sessions_ended"]).collect();
    assert!(ended.contains(&&json!(2)) && ended.contains(&&json!(0)), "{audited:?}");
}

/// A revocation stored but never announced (the bus was unreachable when the session ended, and a
/// retried logout finds its token refused): the node finds it in the store by itself and closes the
/// session's socket within its recheck interval, not when the token expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_announcement_was_lost_still_closes_the_socket() {
    let platform = Platform::start_with("lost_revocation", 1, &[("CAAS_SOCKET_SESSION_RECHECK_MS", "500")]);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let grant = platform.token(&http, &app, "alice").await;
    let mut revoked = Client::connect(&platform.socket_urls[0], token_of(&grant), "lost-revocation").await;
    let other = platform.token(&http, &app, "alice").await;
    let mut kept = Client::connect(&platform.socket_urls[0], token_of(&other), "kept-session").await;
    // The revocation as the store write makes it, with no announcement after it.
    let updated = platform
        .mongo()
        .await
        .collection::<mongodb::bson::Document>("sessions")
        .update_one(
            mongodb::bson::doc! {"_id": grant["session_id"].as_str().unwrap(), "app_id": &app.0},
            mongodb::bson::doc! {"$set": {"revoked_at": caas_shared::now_ms()}},
        )
        .await
        .unwrap();
    assert_eq!(updated.modified_count, 1);
    let started = Instant::now();
    let revocation = tokio::time::timeout(Duration::from_secs(10), revoked.event("session.revoked"))
        .await
        .expect("the revoked session's socket got no session.revoked");
    assert!(revocation["reason"].is_string(), "{revocation}");
    revoked.closed_with().await; // panics unless the node closes it
    println!("closed {:?} after the revocation was stored", started.elapsed());
    assert_eq!(
        kept.call("ping", serde_json::json!({})).await["ok"],
        true,
        "the other session stays"
    );
}

/// A native client that vanished without closing (it never answers the node's WebSocket pings) is
/// disconnected after the ping interval and timeout and goes offline for those watching it; a client
/// that answers (every WebSocket library does, by itself) stays, however long it says nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_native_clients_are_pinged_then_dropped_and_go_offline() {
    let platform = Platform::start_with(
        "heartbeat",
        1,
        &[
            ("CAAS_SOCKET_PING_INTERVAL_MS", "400"),
            ("CAAS_SOCKET_PING_TIMEOUT_MS", "400"),
        ],
    );
    let client = reqwest::Client::new();
    let app = platform.create_app(&client).await;
    let (alice, bob) = (
        platform.token(&client, &app, "alice").await,
        platform.token(&client, &app, "bob").await,
    );
    let url = &platform.socket_urls[0];
    let mut a = Client::connect(url, token_of(&alice), "heartbeat-alice").await;
    let mut b = Client::connect(url, token_of(&bob), "heartbeat-bob").await;
    // Alice's last frame: from here on she reads nothing (so answers no ping).
    let started = Instant::now();
    a.create_group(&[&bob]).await;
    let alice_id = alice["user"]["id"].clone();
    let watched = b.call("presence.subscribe", json!({"user_ids": [alice_id]})).await;
    assert_eq!(
        watched["data"]["presence"],
        json!([{"user_id": alice_id, "online": true}]),
        "{watched}"
    );

    // Bob reads, and so answers his pings.
    let offline = tokio::time::timeout(Duration::from_secs(10), b.event("presence"))
        .await
        .expect("a silent client stayed online");
    assert_eq!(offline, json!({"user_id": alice_id, "online": false}));
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "not before interval + timeout"
    );
    assert_eq!(a.closed_with().await, Some(1001), "closed as gone away (ping timeout)");

    // Bob keeps reading (so answering pings) without a request of his own for three intervals.
    let nothing = tokio::time::timeout(Duration::from_millis(1200), b.event("no.such.event")).await;
    assert!(nothing.is_err());
    let alive = b.call("presence.subscribe", json!({"user_ids": [alice_id]})).await;
    assert_eq!(
        alive["ok"], true,
        "bob answered his pings and is still connected: {alive}"
    );
}
