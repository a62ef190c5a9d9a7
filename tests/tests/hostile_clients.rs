//! Clients that misbehave on purpose, against the real stack: they must not grow a node's memory
//! without bound, hold its slots, watch strangers' presence, or brute-force app secrets.

use caas_e2e::{ok, refused, rss_bytes, Client, DevMode, Platform};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1024 * 1024;

/// The reported reproduction: in the embedded dev mode (where replays are fastest, so memory would grow
/// fastest), clients that never read ask again and again for a replay of 300 messages of 15 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_are_disconnected_and_node_memory_stays_bounded() {
    // CI size; the full size (`CAAS_HOSTILE_NON_READERS=999`: one group of 1,000 with the sender) is
    // reported in docs/reliability.md.
    let non_readers: usize = std::env::var("CAAS_HOSTILE_NON_READERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    const REPLAYS_EACH: usize = 300;
    const QUEUE_BYTES: u64 = MIB;
    let data_dir = std::env::temp_dir().join(format!("caas-nonreaders-{}", uuid::Uuid::new_v4().simple()));
    let dev = DevMode::start(&data_dir);
    let http = reqwest::Client::new();
    let app = dev.gateway.create_app(&http).await;
    let alice = dev.gateway.token(&http, &app, "alice").await;
    let url = dev.socket_url.clone();
    let mut a = Client::connect(&url, alice["token"].as_str().unwrap(), "nonreaders-a").await;
    let mut readers = Vec::new();
    for n in 0..non_readers {
        readers.push(dev.gateway.token(&http, &app, &format!("nonreader{n}")).await);
    }
    let conversation = a.create_group(&readers.iter().collect::<Vec<_>>()).await;
    // 300 messages of 15 KB: a full replay of them is 4.5 MB.
    let text = "x".repeat(15_000);
    let mut ids = Vec::new();
    for n in 0..300 {
        let data = json!({"conversation_id": conversation, "client_msg_id": format!("big{n}"), "text": text});
        ids.push(a.request("message.send", data).await);
    }
    for id in &ids {
        ok(&a.reply(id).await);
    }

    let node = dev.pid();
    let baseline = rss_bytes(node);
    let disconnects_before = dev.output().matches("\"disconnected\"").count();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = std::sync::Arc::clone(&sampling);
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_bytes(node));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let replay = json!({"type": "conversation.subscribe", "data": {"conversation_id": conversation, "since_seq": 0}})
        .to_string();
    let mut sockets = Vec::new();
    for (n, reader) in readers.iter().enumerate() {
        let mut request = url.as_str().into_client_request().unwrap();
        let token = reader["token"].as_str().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
            .headers_mut()
            .insert("x-correlation-id", format!("nonreader-{n}").parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        // Ask, never read.
        for _ in 0..REPLAYS_EACH {
            let sent = tokio::time::timeout(Duration::from_secs(2), socket.send(Message::text(replay.clone()))).await;
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
        }
        sockets.push(socket);
    }
    // Still not reading: the node must close every one of them on its own (each must first fill its
    // socket buffers and its outbox, so more clients take longer).
    let waiting = Instant::now();
    let deadline = waiting + Duration::from_secs(90 + non_readers as u64 / 4);
    let closed = loop {
        let closed = dev.output().matches("\"disconnected\"").count() - disconnects_before;
        if closed >= non_readers || Instant::now() > deadline {
            break closed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    println!(
        "{closed} of {non_readers} non-reading clients closed by the node {:.1} s after the last one connected; node RSS peak {} MiB",
        waiting.elapsed().as_secs_f64(),
        peak / MIB
    );
    assert_eq!(closed, non_readers, "the node kept clients that did not read");
    // What each got before the node gave up on it: far less than it asked for.
    let mut delivered = Vec::new();
    for mut socket in sockets {
        let mut bytes = 0usize;
        let ended = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(frame) = socket.next().await {
                match frame {
                    Ok(Message::Text(text)) => bytes += text.len(),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "a closed connection kept delivering");
        delivered.push(bytes);
    }
    let asked = REPLAYS_EACH as u64 * 300 * 15_000;
    println!(
        "{non_readers} non-reading clients: node RSS {} MiB → peak {} MiB; delivered per client: at most {} MiB of {} MiB asked",
        baseline / MIB,
        peak / MIB,
        delivered.iter().max().copied().unwrap_or_default() as u64 / MIB,
        asked / MIB
    );
    assert!(delivered.iter().all(|b| (*b as u64) < asked / 10), "{delivered:?}");
    // Each connection may hold its queue, the frame being written and the socket's write buffer.
    let bound = non_readers as u64 * (QUEUE_BYTES + MIB) + 64 * MIB;
    assert!(
        peak.saturating_sub(baseline) < bound,
        "node RSS grew by {} MiB (bound {} MiB)",
        peak.saturating_sub(baseline) / MIB,
        bound / MIB
    );
    // The node still serves the well-behaved client.
    ok(&a.call("ping", json!({})).await);
    drop(dev);
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// A WebSocket upgrade of `/ws` without a token (so the node waits for an `auth` frame), with
/// `X-Forwarded-For: forwarded_for` when given.
async fn idle_upgrade(url: &str, forwarded_for: Option<&str>) -> caas_e2e::Socket {
    let mut request = url.into_client_request().unwrap();
    if let Some(address) = forwarded_for {
        request
            .headers_mut()
            .insert("x-forwarded-for", address.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Whether the node closed `socket` within `patience` (anything but a frame or silence).
async fn closed_within(socket: &mut caas_e2e::Socket, patience: Duration) -> bool {
    loop {
        match tokio::time::timeout(patience, socket.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_handshakes_fail_fair_per_address_and_in_time_and_connections_per_user_are_capped() {
    let platform = Platform::start_with(
        "handshakes",
        1,
        &[
            ("CAAS_SOCKET_HANDSHAKE_TIMEOUT_MS", "5000"),
            ("CAAS_SOCKET_MAX_HANDSHAKES_PER_IP", "8"),
            ("CAAS_SOCKET_MAX_CONNECTIONS_PER_USER", "3"),
        ],
    );
    let address = platform.socket_urls[0]
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_owned();
    // A real client first: once it is served, the node's start-up is over and the readiness probe's
    // connection (which waited in the listen backlog meanwhile) has given its handshake place back.
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let alice = platform.token(&http, &app, "alice").await;
    let token = alice["token"].as_str().unwrap();
    let url = &platform.socket_urls[0];
    ok(&Client::connect(url, token, "cap-first")
        .await
        .call("ping", json!({}))
        .await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Eight idle TCP connections (no upgrade request) fill this address's handshake places.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A ninth is not refused: the oldest pending one is closed to make room, well before the handshake
    // timeout would close it (the margin is wide because other tests load both cores meanwhile).
    let mut ninth = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(3_000), idle[0].read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the oldest handshake was not evicted: {read:?}"
    );
    let read = tokio::time::timeout(Duration::from_millis(300), ninth.read(&mut buf)).await;
    assert!(read.is_err(), "the newcomer was closed: {read:?}");
    // The others are closed when the handshake timeout passes.
    let started = Instant::now();
    for mut stream in idle.into_iter().skip(1).chain([ninth]) {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "an idle connection stayed open: {read:?}"
        );
    }
    println!("idle handshakes closed after {:?}", started.elapsed());

    // The reported lock-out: 80 idle upgrades (waiting for an auth frame) from one address, then real
    // clients from the same address: every one of them gets in.
    let mut upgrades = Vec::new();
    for _ in 0..80 {
        upgrades.push(idle_upgrade(url, None).await);
    }
    let mut held = Vec::new();
    for n in 0..3 {
        let mut client = Client::connect(url, token, &format!("cap-{n}")).await;
        ok(&client.call("ping", json!({})).await);
        held.push(client);
    }
    // ... and a user holds at most 3 connections.
    let refusal = Client::refused_handshake(url, token).await;
    assert_eq!(refusal["code"], "rate_limited", "{refusal}");
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = Client::connect(url, token, "cap-again").await;
    ok(&again.call("ping", json!({})).await);
    drop(upgrades);
}

/// Behind a trusted proxy each client is counted under the address the proxy forwarded; a peer that is
/// not trusted is counted under its own address whatever `X-Forwarded-For` it writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_count_against_the_forwarded_address_only_behind_a_trusted_proxy() {
    for (trusted, expect_separate) in [("127.0.0.1/32", true), ("10.0.0.0/8", false)] {
        let platform = Platform::start_with(
            "trusted_proxy",
            1,
            &[
                ("CAAS_SOCKET_MAX_HANDSHAKES_PER_IP", "8"),
                ("CAAS_TRUSTED_PROXIES", trusted),
            ],
        );
        let url = &platform.socket_urls[0];
        let mut first = Vec::new();
        for _ in 0..6 {
            first.push(idle_upgrade(url, Some("198.51.100.1")).await);
        }
        let mut second = Vec::new();
        for _ in 0..6 {
            second.push(idle_upgrade(url, Some("198.51.100.2")).await);
        }
        let mut evicted = 0;
        for socket in first.iter_mut() {
            evicted += usize::from(closed_within(socket, Duration::from_millis(300)).await);
        }
        if expect_separate {
            assert_eq!(evicted, 0, "two forwarded clients of 6 each, under a cap of 8");
        } else {
            assert_eq!(
                evicted, 4,
                "12 from one untrusted peer, under a cap of 8: the 4 oldest go"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_only_granted_for_users_sharing_a_conversation() {
    let platform = Platform::start("presence_scope", 1);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let [alice, bob, mallory] = [
        platform.token(&http, &app, "alice").await,
        platform.token(&http, &app, "bob").await,
        platform.token(&http, &app, "mallory").await,
    ];
    let url = &platform.socket_urls[0];
    let mut a = Client::connect(url, alice["token"].as_str().unwrap(), "scope-a").await;
    let _b = Client::connect(url, bob["token"].as_str().unwrap(), "scope-b").await;
    let mut m = Client::connect(url, mallory["token"].as_str().unwrap(), "scope-m").await;
    a.create_group(&[&bob]).await;
    let (alice_id, bob_id) = (alice["user"]["id"].clone(), bob["user"]["id"].clone());

    let probed = ok(&m
        .call("presence.subscribe", json!({"user_ids": [alice_id, bob_id]}))
        .await);
    assert_eq!(probed["presence"], json!([]), "{probed}");
    assert_eq!(probed["not_visible"], json!([alice_id, bob_id]));
    let watched = ok(&a.call("presence.subscribe", json!({"user_ids": [bob_id]})).await);
    assert_eq!(watched["presence"], json!([{"user_id": bob_id, "online": true}]));

    // Nothing was subscribed for mallory: alice going offline tells her nothing.
    drop(a);
    let quiet = tokio::time::timeout(Duration::from_millis(800), m.event("presence")).await;
    assert!(quiet.is_err(), "mallory was told about a stranger's presence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_in_parallel_are_rate_limited() {
    let platform = Platform::start("brute_force", 1);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let url = format!("{}/api/v1/auth/sdk/token", platform.gateway_url);
    let attempts = (0..40).map(|n| {
        let (http, url, app_id) = (http.clone(), url.clone(), app.0.clone());
        tokio::spawn(async move {
            let body = json!({"app_id": app_id, "app_secret": format!("sk_wrong{n}"), "user_external_id": "u"});
            http.post(&url).json(&body).send().await.unwrap().status().as_u16()
        })
    });
    let mut statuses = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        statuses.push(attempt.await.unwrap());
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    println!("40 wrong secrets in parallel: {unauthorized} × 401, {limited} × 429");
    assert_eq!(limited + unauthorized, 40, "{statuses:?}");
    assert!(limited >= 20, "only {limited} of 40 were rate limited: {statuses:?}");
    // An unknown app id answers exactly like a wrong secret (and counts against the same address).
    let response = http
        .post(&url)
        .json(&json!({"app_id": "app_does_not_exist", "app_secret": "x", "user_external_id": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let body: Value = response.json().await.unwrap();
    refused(&json!({"ok": false, "error": body["error"]}), "rate_limited");
}

/// The reported lock-out: wrong secrets sprayed from many addresses at one app (whose id is in every
/// user's token) must not refuse the app's backend its right secret, from a known or a new address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_from_many_addresses_never_lock_the_right_secret_out() {
    let platform = Platform::start("secret_spray", 1);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let url = format!("{}/api/v1/auth/sdk/token", platform.gateway_url);
    let from = |n: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, n]))
            .build()
            .unwrap()
    };
    let attempts = (2..22).map(|n| {
        let (client, url, app_id) = (from(n), url.clone(), app.0.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for attempt in 0..10 {
                let body =
                    json!({"app_id": app_id, "app_secret": format!("sk_wrong{attempt}"), "user_external_id": "u"});
                statuses.push(client.post(&url).json(&body).send().await.unwrap().status().as_u16());
            }
            statuses
        })
    });
    let mut statuses = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        statuses.extend(attempt.await.unwrap());
    }
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    println!("200 wrong secrets from 20 addresses: {unauthorized} × 401, the rest 429");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    let body = json!({"app_id": app.0, "app_secret": app.1, "user_external_id": "backend"});
    let response = from(22).post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "the right secret from a 21st address");
}

/// A socket lives no longer than its token: it is closed at expiry unless the client hands over a fresh
/// token of the same session in an `auth` frame (after `POST /auth/refresh`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_close_when_their_token_expires_unless_renewed_in_band() {
    let platform = Platform::start_with("token_expiry", 1, &[("CAAS_TOKEN_TTL_SECS", "4")]);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let [alice, bob] = [
        platform.token(&http, &app, "alice").await,
        platform.token(&http, &app, "bob").await,
    ];
    let url = &platform.socket_urls[0];
    let token = alice["token"].as_str().unwrap();
    let mut renewed = Client::connect(url, token, "expiry-renewed").await;
    let mut lapsing = Client::connect(url, token, "expiry-lapsing").await;
    // Another user's token cannot take over the connection.
    let takeover = renewed.call("auth", json!({"token": bob["token"]})).await;
    refused(&takeover, "forbidden");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let refreshed: Value = http
        .post(format!("{}/api/v1/auth/refresh", platform.gateway_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = refreshed["token"].as_str().expect("refreshed token");
    let renewal = ok(&renewed.call("auth", json!({"token": fresh})).await);
    assert!(renewal["expires_at"].as_i64().unwrap() > alice["expires_at"].as_i64().unwrap());
    // The other connection of the same session did not renew: it is told and closed at expiry.
    let expired = lapsing.event("session.expired").await;
    assert!(expired["reason"].as_str().unwrap().contains("expired"));
    assert_eq!(lapsing.closed_with().await, Some(1008));
    // Past the first token's expiry, the renewed connection still works.
    ok(&renewed.call("ping", json!({})).await);
}

/// One connection cannot make every member's connection (or the store) work without bound: typing
/// and read events, other requests and subscriptions are budgeted per connection, refused before
/// anything is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_requests_and_subscriptions_are_bounded_per_connection() {
    let platform = Platform::start_with("budgets", 1, &[("CAAS_SOCKET_MAX_SUBSCRIPTIONS", "3")]);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let (alice, bob) = (
        platform.token(&http, &app, "alice").await,
        platform.token(&http, &app, "bob").await,
    );
    let url = &platform.socket_urls[0];
    let mut a = Client::connect(url, alice["token"].as_str().unwrap(), "budget-a").await;
    let mut groups = Vec::new();
    for _ in 0..4 {
        groups.push(a.create_group(&[&bob]).await);
    }
    let mut b = Client::connect(url, bob["token"].as_str().unwrap(), "budget-b").await;
    ok(&b
        .call("conversation.subscribe", json!({"conversation_id": groups[0]}))
        .await);
    // A typing flood: the burst passes, then every frame is refused (and bob is spared).
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let reply = a.call("typing.start", json!({"conversation_id": groups[0]})).await;
        statuses.push(reply["ok"] == true);
        if reply["ok"] == false {
            assert_eq!(reply["error"]["code"], "rate_limited", "{reply}");
            let wait = reply["error"]["retry_after_ms"].as_i64().unwrap_or_default();
            assert!((1..=1000).contains(&wait), "the wait is in the error body: {reply}");
        }
    }
    let passed = statuses.iter().filter(|ok| **ok).count();
    assert!((10..=12).contains(&passed), "{passed} of 40 typing events passed");
    let mut typing = 0;
    while let Ok(frame) = tokio::time::timeout(Duration::from_millis(500), b.event("typing")).await {
        assert_eq!(frame["user_id"], alice["user"]["id"]);
        typing += 1;
    }
    assert_eq!(typing, passed, "bob got only what passed");
    // Subscriptions: at most 3 per connection; the same one again is fine.
    for group in &groups[..3] {
        ok(&a
            .call("conversation.subscribe", json!({"conversation_id": group}))
            .await);
    }
    ok(&a
        .call("conversation.subscribe", json!({"conversation_id": groups[0]}))
        .await);
    refused(
        &a.call("conversation.subscribe", json!({"conversation_id": groups[3]}))
            .await,
        "limit_exceeded",
    );
    // Other requests: a burst of 40, then refused.
    let mut limited = 0;
    for _ in 0..60 {
        let reply = a
            .call("conversation.history", json!({"conversation_id": groups[0]}))
            .await;
        limited += usize::from(reply["ok"] == false && reply["error"]["code"] == "rate_limited");
    }
    assert!(limited >= 10, "{limited} of 60 history requests were limited");
}

/// One request cannot make one huge reply: a history page of long messages is cut to the replay's byte
/// budget with `has_more`, and paging on from its oldest message gets the rest, each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_are_bounded_in_bytes_and_page_on() {
    let platform = Platform::start("page_bytes", 1);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let (alice, bob) = (
        platform.token(&http, &app, "alice").await,
        platform.token(&http, &app, "bob").await,
    );
    let mut a = Client::connect(&platform.socket_urls[0], alice["token"].as_str().unwrap(), "page-bytes").await;
    let group = a.create_group(&[&bob]).await;
    let text = "x".repeat(16 * 1024 - 16);
    for n in 0..40 {
        let data =
            json!({"conversation_id": group, "client_msg_id": format!("long{n}"), "text": format!("{n:03}{text}")});
        ok(&a.call("message.send", data).await);
    }
    let mut seen = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut request = json!({"conversation_id": group, "limit": 200});
        if let Some(before) = before {
            request["before_seq"] = json!(before);
        }
        let id = a.request("conversation.history", request).await;
        let frame = loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), a.socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if frame.to_text().unwrap().contains(&format!("\"reply_to\":\"{id}\"")) {
                break frame;
            }
        };
        let bytes = frame.len();
        assert!(bytes < 300 * 1024, "one history reply of {bytes} bytes");
        let page = ok(&serde_json::from_str::<Value>(frame.to_text().unwrap()).unwrap());
        let seqs: Vec<i64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect();
        seen.splice(0..0, seqs.iter().copied());
        if page["has_more"] != true || seqs.is_empty() {
            break;
        }
        before = seqs.first().copied();
    }
    assert_eq!(seen, (1..=40).collect::<Vec<i64>>(), "every message once, by paging on");
}
