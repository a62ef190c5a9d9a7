//! Smoke test of the embedded dev mode (`cargo run -p caas-dev`): one process, no server. It starts,
//! hands out tokens, lets two WebSocket clients exchange a message (sequenced, fanned out, persisted
//! through the in-memory bus and the function bridge), stops on Ctrl-C, and keeps its data across a
//! restart when given a data directory.

use caas_e2e::{Client, DevMode};
use caas_shared::domain::keys::testing::{device, signed_key};
use serde_json::{json, Value};

async fn connect(dev: &DevMode, token: &Value, correlation_id: &str) -> Client {
    Client::connect(&dev.socket_url, token["token"].as_str().unwrap(), correlation_id).await
}

/// Sends one message and returns (accepted reply, persisted ack).
async fn send(client: &mut Client, conversation_id: &str, client_msg_id: &str, text: &str) -> (Value, Value) {
    let id = client
        .request(
            "message.send",
            json!({"conversation_id": conversation_id, "client_msg_id": client_msg_id, "text": text}),
        )
        .await;
    let (mut accepted, mut persisted) = (None, None);
    while accepted.is_none() || persisted.is_none() {
        let frame = client.next_json().await;
        if frame["reply_to"] == id {
            accepted = Some(frame);
        } else if frame["type"] == "ack" && frame["data"]["client_msg_id"] == client_msg_id {
            assert_eq!(frame["data"]["status"], "persisted", "{frame}");
            persisted = Some(frame);
        }
    }
    (accepted.unwrap(), persisted.unwrap())
}

async fn next_message(client: &mut Client) -> Value {
    loop {
        let frame = client.next_json().await;
        if frame["type"] == "message.new" {
            return frame["data"].clone();
        }
    }
}

async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The hits for `q` once there are any (the index is fed through the in-process bus).
async fn search(http: &reqwest::Client, dev: &DevMode, token: &Value, q: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let body = json_of(
            http.get(format!("{}/api/v1/search/messages", dev.gateway.url))
                .query(&[("q", q)])
                .bearer_auth(token["token"].as_str().unwrap()),
        )
        .await;
        let hits = body["hits"].as_array().unwrap_or_else(|| panic!("{body}"));
        if !hits.is_empty() {
            return hits.clone();
        }
        assert!(std::time::Instant::now() < deadline, "nothing found for {q:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_runs_the_platform_in_one_process_and_keeps_data_across_restarts() {
    let data_dir = caas_e2e::workspace_root()
        .join("target")
        .join("e2e-dev-data")
        .join(uuid::Uuid::new_v4().simple().to_string());
    let http = reqwest::Client::new();

    let mut dev = DevMode::start(&data_dir);
    let banner = dev.output();
    assert!(
        banner.contains(&dev.socket_url),
        "banner names the WebSocket URL:\n{banner}"
    );
    assert!(banner.contains("/api/v1/admin/apps"), "banner has the curl:\n{banner}");

    let app = dev.gateway.create_app(&http).await;
    let alice = dev.gateway.token(&http, &app, "alice").await;
    let bob = dev.gateway.token(&http, &app, "bob").await;
    assert_eq!(alice["socket_urls"], json!([dev.socket_url]));
    let mut a = connect(&dev, &alice, "dev-alice").await;
    let mut b = connect(&dev, &bob, "dev-bob").await;

    let created = a
        .call(
            "conversation.create",
            json!({"kind": "direct", "member_ids": [bob["user"]["id"]]}),
        )
        .await;
    assert_eq!(created["ok"], true, "{created}");
    let conversation_id = created["data"]["id"].as_str().unwrap().to_owned();
    let subscribed = b
        .call("conversation.subscribe", json!({"conversation_id": conversation_id}))
        .await;
    assert_eq!(subscribed["ok"], true, "{subscribed}");

    let (accepted, persisted) = send(&mut a, &conversation_id, "hello-1", "hello bob").await;
    assert_eq!(accepted["ok"], true, "{accepted}");
    assert_eq!(accepted["data"]["seq"], 1);
    assert_eq!(persisted["data"]["message_id"], accepted["data"]["message_id"]);
    let received = next_message(&mut b).await;
    assert_eq!(received["text"], "hello bob");
    assert_eq!(received["sender_id"], alice["user"]["id"]);
    assert_eq!(received["seq"], 1);

    // The dev mode speaks Socket.IO too: a long-polling handshake, a CONNECT with the token, the greeting.
    let socketio = format!(
        "{}/socket.io/?EIO=4&transport=polling",
        dev.socket_url.replace("ws://", "http://").trim_end_matches("/ws")
    );
    let open = http.get(&socketio).send().await.unwrap().text().await.unwrap();
    assert!(open.starts_with("0{"), "{open}");
    let sid = serde_json::from_str::<Value>(&open[1..]).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = format!("{socketio}&sid={sid}");
    let connect_packet = format!(r#"40{{"token":"{}"}}"#, alice["token"].as_str().unwrap());
    let posted = http
        .post(&session)
        .body(connect_packet)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(posted, "ok");
    let greeting = http.get(&session).send().await.unwrap().text().await.unwrap();
    assert!(greeting.starts_with(r#"40{"sid""#), "{greeting}");
    assert!(greeting.contains(r#"42["ready""#), "{greeting}");

    // Attachments work the same on file:// blobs, through URLs the dev gateway serves.
    let api = |path: &str| format!("{}/api/v1/media{path}", dev.gateway.url);
    let bearer = |token: &Value| format!("Bearer {}", token["token"].as_str().unwrap());
    let upload = json_of(
        http.post(api("/uploads"))
            .header("authorization", bearer(&alice))
            .json(&json!({"conversation_id": conversation_id, "filename": "notes.txt",
                "content_type": "text/plain", "size": 11})),
    )
    .await;
    let url = upload["url"].as_str().unwrap_or_else(|| panic!("{upload}"));
    assert!(url.starts_with(&dev.gateway.url), "{url}");
    let put = |body: &'static str| http.put(url).header("content-type", "text/plain").body(body).send();
    assert_eq!(put("too long for the URL").await.unwrap().status(), 403);
    assert_eq!(put("hello notes").await.unwrap().status(), 200);
    let id = upload["upload_id"].as_str().unwrap();
    let completed = http
        .post(api(&format!("/uploads/{id}/complete")))
        .header("authorization", bearer(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), 200);
    let shown = json_of(http.get(api(&format!("/{id}"))).header("authorization", bearer(&bob))).await;
    let fetched = http.get(shown["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(fetched.text().await.unwrap(), "hello notes");

    let hits = search(&http, &dev, &bob, "hello").await;
    assert_eq!(hits[0]["message_id"], accepted["data"]["message_id"], "{hits:?}");

    // The key directory: alice's device publishes its keys, and bob hears that her device list changed.
    let alice_id = alice["user"]["id"].as_str().unwrap();
    let (phone, identity) = device(alice_id, "PHONE", 5);
    let keys_api = |base: &str, path: &str| format!("{base}/api/v1/keys/{path}");
    let one_time: serde_json::Map<String, Value> = (1..=2)
        .map(|n| {
            (
                format!("signed_curve25519:k{n}"),
                signed_key(&phone, alice_id, "PHONE", n, false),
            )
        })
        .collect();
    let uploaded = http
        .put(keys_api(&dev.gateway.url, "devices/PHONE"))
        .header("authorization", bearer(&alice))
        .json(&json!({"device_keys": identity, "one_time_keys": one_time}))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    assert_eq!(b.event("device_list.changed").await["user_id"], alice_id);

    drop((a, b));
    assert!(dev.interrupt(), "Ctrl-C stops caas-dev cleanly:\n{}", dev.output());
    assert!(dev.output().contains("caas-dev stopped"));

    // Restart on the same directory: the app, the signing secret and the conversation survive, and the
    // sequence continues above every seq that may have been handed out (the stored reservation), although
    // the in-memory cache started empty: no seq is ever reused.
    let dev = DevMode::start(&data_dir);
    let mut b = connect(&dev, &bob, "dev-bob-again").await;
    let mut a = connect(&dev, &dev.gateway.token(&http, &app, "alice").await, "dev-alice-again").await;
    let subscribed = b
        .call("conversation.subscribe", json!({"conversation_id": conversation_id}))
        .await;
    assert_eq!(
        subscribed["ok"], true,
        "the conversation survived the restart: {subscribed}"
    );
    let (accepted, _) = send(&mut a, &conversation_id, "hello-2", "still here").await;
    assert!(accepted["data"]["seq"].as_i64().unwrap() > 1, "{accepted}");
    assert_eq!(next_message(&mut b).await["text"], "still here");
    // The search index is kept in the data directory too.
    assert_eq!(search(&http, &dev, &bob, "hello").await.len(), 1);
    // So are the keys: bob claims alice's oldest one-time key.
    let claimed = json_of(
        http.post(keys_api(&dev.gateway.url, "claim"))
            .header("authorization", bearer(&bob))
            .json(&json!({"one_time_keys": {alice_id: {"PHONE": "signed_curve25519"}}})),
    )
    .await;
    assert_eq!(
        claimed["one_time_keys"][alice_id]["PHONE"]["signed_curve25519:k1"], one_time["signed_curve25519:k1"],
        "{claimed}"
    );
    drop(dev);
    std::fs::remove_dir_all(&data_dir).unwrap();
}
