//! Message operations end to end on two socket nodes: replies, edits, reactions, forwards and soft
//! deletes reach members on the other node live, land in MongoDB, and show in history; non-members,
//! non-senders and other apps are refused.

use caas_e2e::{ok, refused, Client, Platform};
use serde_json::{json, Value};
use std::time::Duration;

async fn connect(platform: &Platform, node: usize, token: &Value, label: &str) -> Client {
    Client::connect(&platform.socket_urls[node], token["token"].as_str().unwrap(), label).await
}

async fn send(client: &mut Client, conversation_id: &str, client_msg_id: &str, extra: Value) -> Value {
    let mut data = json!({"conversation_id": conversation_id, "client_msg_id": client_msg_id, "text": client_msg_id});
    for (key, value) in extra.as_object().unwrap() {
        data[key] = value.clone();
    }
    ok(&client.call("message.send", data).await)
}

/// Polls history until `check` holds for the message (persistence is asynchronous).
async fn history_until(
    client: &mut Client,
    conversation_id: &str,
    message_id: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..100 {
        let page = ok(&client
            .call("conversation.history", json!({"conversation_id": conversation_id}))
            .await);
        if let Some(found) = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == message_id)
        {
            if check(found) {
                return found.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("history never showed the expected state of {message_id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_operations_reach_every_node_persist_and_respect_permissions() {
    let platform = Platform::start("messaging", 2);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let other_app = platform.create_app(&http).await;
    let (alice, bob, carol) = (
        platform.token(&http, &app, "alice").await,
        platform.token(&http, &app, "bob").await,
        platform.token(&http, &app, "carol").await,
    );
    let dave = platform.token(&http, &other_app, "dave").await;
    let mut a = connect(&platform, 0, &alice, "msg-alice").await;
    let mut b = connect(&platform, 1, &bob, "msg-bob").await;
    let mut c = connect(&platform, 0, &carol, "msg-carol").await;
    let mut d = connect(&platform, 1, &dave, "msg-dave").await;

    let group = ok(&a
        .call(
            "conversation.create",
            json!({"kind": "group", "name": "team", "member_ids": [bob["user"]["id"]]}),
        )
        .await);
    let group_id = group["id"].as_str().unwrap().to_owned();
    let direct = ok(&a
        .call(
            "conversation.create",
            json!({"kind": "direct", "member_ids": [carol["user"]["id"]]}),
        )
        .await);
    let direct_id = direct["id"].as_str().unwrap().to_owned();
    for (client, conversation) in [(&mut a, &group_id), (&mut b, &group_id), (&mut c, &direct_id)] {
        ok(&client
            .call("conversation.subscribe", json!({"conversation_id": conversation}))
            .await);
    }

    // A message, and a reply to it from the other node.
    let original = send(&mut a, &group_id, "hello", json!({})).await;
    let original_id = original["message_id"].as_str().unwrap().to_owned();
    assert_eq!(b.event("message.new").await["id"], original_id.as_str());
    let reply = send(&mut b, &group_id, "a reply", json!({"reply_to": original_id})).await;
    let reply_id = reply["message_id"].as_str().unwrap().to_owned();
    // Alice's own message may reach her live after its reply; the reply is the one that names a parent.
    let reply_seen = loop {
        let message = a.event("message.new").await;
        if message["id"] == reply_id.as_str() {
            break message;
        }
    };
    assert_eq!(reply_seen["reply_to"], original_id.as_str());
    refused(
        &b.call(
            "message.send",
            json!({"conversation_id": group_id, "client_msg_id": "orphan", "text": "x", "reply_to": "no-such-message"}),
        )
        .await,
        "not_found",
    );

    // Edit: the sender only; members on the other node see the new text.
    let edited = ok(&a
        .call(
            "message.edit",
            json!({"conversation_id": group_id, "message_id": original_id, "text": "hello, edited"}),
        )
        .await);
    assert_eq!(edited["text"], "hello, edited");
    assert!(edited["version"].as_i64().unwrap() > 0 && edited["edited_at"].is_i64());
    let updated = b.event("message.updated").await;
    assert_eq!(
        (updated["id"].as_str(), updated["text"].as_str()),
        (Some(original_id.as_str()), Some("hello, edited"))
    );
    let edit_by_bob = json!({"conversation_id": group_id, "message_id": original_id, "text": "hijacked"});
    refused(&b.call("message.edit", edit_by_bob.clone()).await, "forbidden");
    refused(&c.call("message.edit", edit_by_bob.clone()).await, "forbidden");
    refused(&d.call("message.edit", edit_by_bob).await, "not_found");

    // Reactions: one per user per emoji, live on the other node, counted in history with "mine".
    let react = |emoji: &str| json!({"conversation_id": group_id, "message_id": original_id, "emoji": emoji});
    ok(&b.call("reaction.add", react("👍")).await);
    ok(&b.call("reaction.add", react("👍")).await);
    let added = a.event("reaction.added").await;
    assert_eq!(
        (added["emoji"].as_str(), added["user_id"].as_str()),
        (Some("👍"), bob["user"]["id"].as_str())
    );
    ok(&a.call("reaction.add", react("👍")).await);
    ok(&a.call("reaction.add", react("🎉")).await);
    ok(&a.call("reaction.remove", react("🎉")).await);
    assert_eq!(b.event("reaction.removed").await["emoji"], "🎉");
    refused(&c.call("reaction.add", react("👍")).await, "forbidden");
    refused(
        &b.call("reaction.add", react("not an emoji")).await,
        "validation_failed",
    );
    let shown = history_until(&mut b, &group_id, &original_id, |m| {
        m["reactions"] == json!([{"emoji": "👍", "count": 2, "mine": true}]) && m["reply_count"] == 1
    })
    .await;
    assert_eq!(shown["text"], "hello, edited");
    let thread = ok(&a
        .call(
            "message.replies",
            json!({"conversation_id": group_id, "message_id": original_id}),
        )
        .await);
    assert_eq!(thread["messages"][0]["id"], reply_id.as_str());

    // Forward: a member of both conversations only.
    let forwarded = ok(&a
        .call(
            "message.forward",
            json!({"conversation_id": direct_id, "client_msg_id": "fwd-1", "source_conversation_id": group_id, "message_id": original_id}),
        )
        .await);
    let copy = c.event("message.new").await;
    assert_eq!(copy["id"], forwarded["message_id"]);
    assert_eq!(copy["text"], "hello, edited");
    assert_eq!(
        copy["forwarded_from"],
        json!({"conversation_id": group_id, "message_id": original_id})
    );
    refused(
        &b.call(
            "message.forward",
            json!({"conversation_id": direct_id, "client_msg_id": "fwd-2", "source_conversation_id": group_id, "message_id": original_id}),
        )
        .await,
        "forbidden",
    );

    // Delete: bob may not delete alice's message; alice (the group's owner) may delete bob's reply.
    refused(
        &b.call(
            "message.delete",
            json!({"conversation_id": group_id, "message_id": original_id}),
        )
        .await,
        "forbidden",
    );
    let tombstone = ok(&a
        .call(
            "message.delete",
            json!({"conversation_id": group_id, "message_id": reply_id}),
        )
        .await);
    assert_eq!(
        (tombstone["text"].as_str(), tombstone["deleted_at"].is_i64()),
        (Some(""), true)
    );
    let deleted = b.event("message.deleted").await;
    assert_eq!(deleted["id"], reply_id.as_str());
    refused(
        &b.call(
            "message.edit",
            json!({"conversation_id": group_id, "message_id": reply_id, "text": "revive"}),
        )
        .await,
        "conflict",
    );
    let stored = history_until(&mut a, &group_id, &reply_id, |m| m["deleted_at"].is_i64()).await;
    assert_eq!(stored["text"], "");

    // MongoDB holds the final states with the correlation ids of the requests that made them.
    let db = platform.mongo().await;
    let original_doc = db
        .collection::<mongodb::bson::Document>("messages")
        .find_one(mongodb::bson::doc! {"_id": &original_id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(original_doc.get_str("text").unwrap(), "hello, edited");
    assert_eq!(original_doc.get_str("correlation_id").unwrap(), "msg-alice");
    assert!(platform_alive(platform));
}

fn platform_alive(mut platform: Platform) -> bool {
    platform.all_alive()
}

/// Kafka topics hold accepted messages until persistence takes them: a node configured for replicated
/// topics (as on MSK) says loudly when it finds one with fewer replicas than configured, instead of
/// running on it silently. The test broker has one replica per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_warns_about_topics_below_the_configured_replication() {
    let platform = Platform::start_with(
        "replication",
        1,
        &[
            ("CAAS_KAFKA_REPLICATION_FACTOR", "3"),
            ("CAAS_KAFKA_MIN_INSYNC_REPLICAS", "2"),
        ],
    );
    let log = std::fs::read_to_string(platform.log_dir().join("node1.log")).unwrap();
    let warned: Vec<&str> = log.lines().filter(|l| l.contains("UNDER-REPLICATED TOPIC")).collect();
    assert!(
        warned.iter().any(|l| l.contains("caas.messages")),
        "no warning about caas.messages in:\n{log}"
    );
    assert!(warned.iter().all(|l| l.contains("\"configured\":3")), "{warned:?}");
}

/// A `persisted` ack reaches the connections open when persistence answers; a sender that was away then
/// learns it by resending: the duplicate's reply says `persisted` once the store has the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_of_a_stored_message_is_answered_persisted() {
    let platform = Platform::start("resend_persisted", 1);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let (alice, bob) = (
        platform.token(&http, &app, "alice").await,
        platform.token(&http, &app, "bob").await,
    );
    let mut a = connect(&platform, 0, &alice, "resend-alice").await;
    let conversation = a.create_group(&[&bob]).await;
    let send = json!({"conversation_id": conversation, "client_msg_id": "once", "text": "hello"});
    let first = ok(&a.call("message.send", send.clone()).await);
    assert_eq!(
        (first["status"].as_str(), first["duplicate"].as_bool()),
        (Some("accepted"), Some(false))
    );
    // The sender leaves before the persisted ack can reach it.
    drop(a);
    let mut again = connect(&platform, 0, &alice, "resend-alice-2").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = ok(&again.call("message.send", send.clone()).await);
        assert_eq!(reply["duplicate"], true, "{reply}");
        assert_eq!(
            (&reply["message_id"], &reply["seq"]),
            (&first["message_id"], &first["seq"])
        );
        if reply["status"] == "persisted" {
            break;
        }
        assert_eq!(reply["status"], "accepted", "{reply}");
        assert!(
            std::time::Instant::now() < deadline,
            "never answered persisted: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
