//! The spine, end to end on real servers: token → two socket nodes → Kafka → persist-messages →
//! MongoDB → acks, with 1,000 messages and correlation ids followed all the way into the documents; once
//! on one Redis and once on a 3-master Redis Cluster (sequencing scripts in each conversation's slot,
//! fan-out over sharded pub/sub).

use caas_e2e::{Client, Platform, RedisCluster};
use mongodb::bson::doc;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const MESSAGES: usize = 1_000;

fn frame_correlation(i: usize) -> Option<String> {
    i.is_multiple_of(2).then(|| format!("spine-msg-{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_messages_cross_nodes_in_order_are_acked_and_persisted_once() {
    spine(Platform::start("spine", 2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spine_holds_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let (app_id, conversation_id) = spine(Platform::start_with(
        "spine_cluster",
        2,
        &[("CAAS_CACHE_URL", &cluster.url)],
    ))
    .await;
    // The sequencing happened on the cluster: its counter for the conversation is there, at the last seq.
    let seeds = caas_shared::ports::redis_target::cluster_seeds(&cluster.url)
        .unwrap()
        .unwrap();
    let mut connection = redis::cluster::ClusterClient::new(seeds)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let seq: Option<i64> =
        redis::AsyncCommands::get(&mut connection, format!("caas:{{{app_id}:{conversation_id}}}:seq"))
            .await
            .unwrap();
    assert_eq!(seq, Some(MESSAGES as i64 + 1));
}

/// Runs the spine on `platform`; returns the app and the conversation it used.
async fn spine(platform: Platform) -> (String, String) {
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;

    // Tokens, with a chosen correlation id that must be echoed.
    let response = http
        .post(format!("{}/api/v1/auth/sdk/token", platform.gateway_url))
        .header("x-correlation-id", "spine-token-alice")
        .json(&json!({"app_id": app.0, "app_secret": app.1, "user_external_id": "alice", "display_name": "Alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-correlation-id"], "spine-token-alice");
    let alice: serde_json::Value = response.json().await.unwrap();
    assert_eq!(alice["user"]["external_id"], "alice");
    assert_eq!(alice["socket_urls"], json!(platform.socket_urls));
    assert!(alice["expires_at"].as_i64().unwrap() > 0);
    let bob = platform.token(&http, &app, "bob").await;
    // The same external id maps to the same user on every login.
    let alice_again = platform.token(&http, &app, "alice").await;
    assert_eq!(alice_again["user"]["id"], alice["user"]["id"]);

    let mut a = Client::connect(
        &platform.socket_urls[0],
        alice["token"].as_str().unwrap(),
        "spine-conn-alice",
    )
    .await;
    let mut b = Client::connect(
        &platform.socket_urls[1],
        bob["token"].as_str().unwrap(),
        "spine-conn-bob",
    )
    .await;

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

    // Alice pipelines all sends; replies and acks are collected by a reader task.
    let (mut a_tx, mut a_rx) = futures_util::StreamExt::split(a.socket);
    let reader = tokio::spawn(async move {
        let mut accepted: HashMap<String, (String, i64)> = HashMap::new();
        let mut persisted: HashMap<String, (String, i64)> = HashMap::new();
        while accepted.len() < MESSAGES || persisted.len() < MESSAGES {
            let frame = tokio::time::timeout(Duration::from_secs(120), futures_util::StreamExt::next(&mut a_rx))
                .await
                .expect("alice timed out waiting for acks")
                .expect("alice socket closed")
                .expect("alice socket error");
            let text = frame.into_text().unwrap();
            let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            let ack = if value["reply_to"].is_string() {
                assert_eq!(value["ok"], true, "send failed: {value}");
                &value["data"]
            } else if value["type"] == "ack" {
                &value["data"]
            } else {
                continue;
            };
            let entry = (
                ack["message_id"].as_str().unwrap().to_owned(),
                ack["seq"].as_i64().unwrap(),
            );
            let key = ack["client_msg_id"].as_str().unwrap().to_owned();
            match ack["status"].as_str().unwrap() {
                "accepted" => assert!(accepted.insert(key, entry).is_none(), "accepted twice"),
                "persisted" => {
                    persisted.insert(key, entry);
                }
                other => panic!("unknown ack status {other}"),
            }
        }
        (accepted, persisted, a_rx)
    });
    for i in 0..MESSAGES {
        let mut frame = json!({"id": format!("send-{i}"), "type": "message.send", "data": {
            "conversation_id": conversation_id, "client_msg_id": format!("cm-{i}"), "text": format!("hello {i}")}});
        if let Some(correlation_id) = frame_correlation(i) {
            frame["correlation_id"] = json!(correlation_id);
        }
        futures_util::SinkExt::send(&mut a_tx, frame.to_string().into())
            .await
            .unwrap();
    }

    // Bob, on the other node, receives every message once, in seq order.
    let mut received = Vec::with_capacity(MESSAGES);
    while received.len() < MESSAGES {
        let frame = b.next_json().await;
        if frame["type"] == "message.new" {
            received.push(frame["data"].clone());
        }
    }
    for (i, message) in received.iter().enumerate() {
        assert_eq!(message["seq"], (i + 1) as i64, "out of order at {i}");
        assert_eq!(message["text"], format!("hello {i}"));
        assert_eq!(message["sender_id"], alice["user"]["id"]);
    }

    let (accepted, persisted, a_rx) = reader.await.unwrap();
    assert_eq!(accepted.len(), MESSAGES);
    assert_eq!(persisted, accepted, "persisted acks must match accepted ones");

    // MongoDB holds exactly one document per message, each with its request's correlation id.
    let db = platform.mongo().await;
    let messages = db.collection::<mongodb::bson::Document>("messages");
    let filter = doc! {"conversation_id": &conversation_id};
    assert_eq!(messages.count_documents(filter.clone()).await.unwrap(), MESSAGES as u64);
    let mut cursor = messages.find(filter.clone()).await.unwrap();
    let mut checked = 0;
    while cursor.advance().await.unwrap() {
        let document = cursor.deserialize_current().unwrap();
        let i: usize = document.get_str("client_msg_id").unwrap()["cm-".len()..]
            .parse()
            .unwrap();
        let expected = frame_correlation(i).unwrap_or_else(|| "spine-conn-alice".into());
        assert_eq!(document.get_str("correlation_id").unwrap(), expected);
        assert_eq!(document.get_str("_id").unwrap(), accepted[&format!("cm-{i}")].0);
        checked += 1;
    }
    assert_eq!(checked, MESSAGES);
    let users = db.collection::<mongodb::bson::Document>("users");
    let alice_doc = users.find_one(doc! {"external_id": "alice"}).await.unwrap().unwrap();
    assert_eq!(alice_doc.get_str("correlation_id").unwrap(), "spine-token-alice");

    // A resend of one client_msg_id returns the original message and creates nothing.
    let mut a = Client::from_socket(a_tx.reunite(a_rx).unwrap());
    let resend = a
        .call(
            "message.send",
            json!({"conversation_id": conversation_id, "client_msg_id": "cm-500", "text": "hello 500"}),
        )
        .await;
    assert_eq!(resend["ok"], true, "{resend}");
    assert_eq!(resend["data"]["message_id"], accepted["cm-500"].0.as_str());
    assert_eq!(resend["data"]["seq"], accepted["cm-500"].1);
    assert_eq!(resend["data"]["duplicate"], true);
    let next = a
        .call(
            "message.send",
            json!({"conversation_id": conversation_id, "client_msg_id": "after", "text": "after"}),
        )
        .await;
    assert_eq!(
        next["data"]["seq"],
        (MESSAGES + 1) as i64,
        "a duplicate must not consume a seq"
    );
    // Bob's next message is the new one, not a re-delivery of the duplicate.
    let following = loop {
        let frame = b.next_json().await;
        if frame["type"] == "message.new" {
            break frame;
        }
    };
    assert_eq!(following["data"]["client_msg_id"], "after");
    loop {
        let frame = a.next_json().await;
        if frame["type"] == "ack" && frame["data"]["client_msg_id"] == "after" && frame["data"]["status"] == "persisted"
        {
            break;
        }
    }
    assert_eq!(messages.count_documents(filter).await.unwrap(), MESSAGES as u64 + 1);
    (app.0, conversation_id)
}
