//! A cache loss under a running platform (Redis `FLUSHALL`, as a restart without persistence, an
//! eviction or a failover to an empty replica does), then members go on as usual:
//! - a re-opened direct conversation keeps every accepted message under the seq of its reply, and no
//!   message is acked `persisted` unless MongoDB holds that very message;
//! - unread counts stay what a person sees: others' messages past the read horizon, deletions not
//!   counted, the seq jump a cache loss causes not counted, the sender's own messages read.
//!
//! Both run on a stack of their own: its Redis is flushed on purpose.

use caas_e2e::{ok, Client, Platform, Stack};
use futures_util::TryStreamExt;
use mongodb::bson::doc;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn flush_cache(platform: &Platform) {
    let client = redis::Client::open(platform.stack.get("CAAS_CACHE_URL")).unwrap();
    let mut connection = client.get_connection().unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut connection).unwrap();
}

async fn connect(platform: &Platform, token: &Value, label: &str) -> Client {
    Client::connect(&platform.socket_urls[0], token["token"].as_str().unwrap(), label).await
}

/// Sends `text` and returns the accepted reply's `(message_id, seq)`.
async fn send(client: &mut Client, conversation_id: &str, text: &str) -> (String, i64) {
    let reply = ok(&client
        .call(
            "message.send",
            json!({"conversation_id": conversation_id, "client_msg_id": text, "text": text}),
        )
        .await);
    assert_eq!(reply["status"], "accepted", "{reply}");
    (
        reply["message_id"].as_str().unwrap().to_owned(),
        reply["seq"].as_i64().unwrap(),
    )
}

/// Every `ack` the client receives within `window` (message id → acked seq).
async fn acks_within(client: &mut Client, window: Duration) -> HashMap<String, i64> {
    let mut acks = HashMap::new();
    let deadline = Instant::now() + window;
    while let Ok(frame) = tokio::time::timeout_at(deadline.into(), client.next_json()).await {
        if frame["type"] == "ack" && frame["data"]["status"] == "persisted" {
            let data = &frame["data"];
            acks.insert(
                data["message_id"].as_str().unwrap().to_owned(),
                data["seq"].as_i64().unwrap(),
            );
        }
    }
    acks
}

/// The caller's `unread_count` of `conversation_id`.
async fn unread(client: &mut Client, conversation_id: &str) -> i64 {
    let list = ok(&client.call("conversation.list", json!({})).await);
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conversation_id)
        .unwrap_or_else(|| panic!("{conversation_id} missing from {list}"))["unread_count"]
        .as_i64()
        .unwrap()
}

/// Polls the caller's unread count until it is `expected` (persistence is asynchronous); panics with
/// the last count after 20 s.
async fn unread_becomes(client: &mut Client, conversation_id: &str, expected: i64, what: &str) {
    let mut last = -1;
    for _ in 0..200 {
        last = unread(client, conversation_id).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: unread_count stayed {last}, a person sees {expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_direct_conversation_after_a_cache_loss_keeps_every_accepted_message() {
    let platform = Platform::start_on(Stack::dedicated(false), "cache_loss", 1, &[]);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let database = platform.mongo().await;
    let (alice, bob) = (
        platform.token(&http, &app, "alice").await,
        platform.token(&http, &app, "bob").await,
    );
    let mut a = connect(&platform, &alice, "loss-alice").await;
    let open = json!({"kind": "direct", "member_ids": [bob["user"]["id"]]});
    let direct = ok(&a.call("conversation.create", open.clone()).await)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut accepted = HashMap::new();
    for n in 0..5 {
        let (id, seq) = send(&mut a, &direct, &format!("before-{n}")).await;
        accepted.insert(id, seq);
    }
    let mut acked = acks_within(&mut a, Duration::from_secs(5)).await;
    assert_eq!(acked.len(), 5, "the first five are persisted: {acked:?}");
    flush_cache(&platform);
    let reopened = ok(&a.call("conversation.create", open).await);
    assert_eq!(
        reopened["id"],
        direct.as_str(),
        "the same pair opens the same conversation"
    );
    for n in 0..3 {
        let (id, seq) = send(&mut a, &direct, &format!("after-{n}")).await;
        assert!(
            !accepted.values().any(|&taken| taken == seq),
            "seq {seq} handed out twice after the cache loss"
        );
        accepted.insert(id, seq);
    }
    acked.extend(acks_within(&mut a, Duration::from_secs(8)).await);
    let stored: HashMap<String, i64> = database
        .collection::<mongodb::bson::Document>("messages")
        .find(doc! {"conversation_id": &direct})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.get_str("_id").unwrap().to_owned(), m.get_i64("seq").unwrap()))
        .collect();
    for (id, seq) in &acked {
        assert_eq!(
            stored.get(id),
            Some(seq),
            "acked persisted, but MongoDB does not hold {id} under seq {seq}"
        );
    }
    assert_eq!(stored, accepted, "every accepted message persisted under its seq");
    assert_eq!(acked, accepted, "every accepted message acked persisted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_are_what_a_person_sees_through_a_cache_loss() {
    let platform = Platform::start_on(Stack::dedicated(false), "unread", 1, &[]);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let (carol, dan) = (
        platform.token(&http, &app, "carol").await,
        platform.token(&http, &app, "dan").await,
    );
    let mut c = connect(&platform, &carol, "loss-carol").await;
    let mut d = connect(&platform, &dan, "loss-dan").await;
    let group = c.create_group(&[&dan]).await;
    for n in 0..3 {
        send(&mut c, &group, &format!("carol-{n}")).await;
    }
    unread_becomes(&mut d, &group, 3, "dan after carol's three").await;
    unread_becomes(&mut c, &group, 0, "carol's own messages").await;
    let (dans_first, _) = send(&mut d, &group, "dan-0").await;
    send(&mut d, &group, "dan-1").await;
    unread_becomes(&mut c, &group, 2, "carol after dan's two").await;
    unread_becomes(&mut d, &group, 0, "dan has read what came before his own sends").await;
    ok(&d
        .call(
            "message.delete",
            json!({"conversation_id": group, "message_id": dans_first}),
        )
        .await);
    unread_becomes(&mut c, &group, 1, "carol after dan deleted one").await;
    flush_cache(&platform);
    let (_, seq) = send(&mut d, &group, "dan-2").await;
    assert!(seq > 5, "the counter re-created above the reservation (seq {seq})");
    unread_becomes(&mut c, &group, 2, "carol after the cache loss and one more from dan").await;
    unread_becomes(&mut d, &group, 0, "dan after his own send").await;
}

/// Sends `text` under `client_msg_id`; returns the accepted message's id.
async fn send_long(client: &mut Client, conversation_id: &str, client_msg_id: &str, text: &str) -> String {
    let data = json!({"conversation_id": conversation_id, "client_msg_id": client_msg_id, "text": text});
    let reply = ok(&client.call("message.send", data).await);
    assert_eq!(reply["status"], "accepted", "{reply}");
    reply["message_id"].as_str().unwrap().to_owned()
}

/// A Redis server of one test's own, so its byte counter measures only that test's platform.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> Self {
        let port = caas_e2e::free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis::Client::open(url.as_str()).unwrap().get_connection().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, url }
    }

    /// Bytes Redis has sent to all its clients so far.
    fn bytes_sent(&self) -> u64 {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut client.get_connection().unwrap())
            .unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("total_net_output_bytes:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_net_output_bytes")
    }

    /// Bytes the key's value takes in Redis.
    fn memory_usage(&self, key: &str) -> u64 {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query::<Option<u64>>(&mut client.get_connection().unwrap())
            .unwrap()
            .unwrap_or(0)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One cheap request must not make the cache send a conversation's whole recent window: editing one
/// message, or a history page before a seq, reads just the entries it needs (measured as the bytes Redis
/// sends), and a window of large messages is bounded in bytes, not only in entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_reads_take_only_their_entries_and_the_window_is_bounded_in_bytes() {
    let redis = OwnRedis::start();
    let platform = Platform::start_with("window_reads", 1, &[("CAAS_CACHE_URL", redis.url.as_str())]);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let (alice, bob) = (
        platform.token(&http, &app, "alice").await,
        platform.token(&http, &app, "bob").await,
    );
    let mut a = connect(&platform, &alice, "window-alice").await;
    let conversation = a.create_group(&[&bob]).await;
    let mut ids = Vec::new();
    for n in 0..300 {
        let text = "w".repeat(3000);
        ids.push(send_long(&mut a, &conversation, &format!("w{n}"), &text).await);
    }

    let before = redis.bytes_sent();
    let edited = a
        .call(
            "message.edit",
            json!({"conversation_id": conversation, "message_id": ids[150], "text": "edited"}),
        )
        .await;
    ok(&edited);
    let edit_bytes = redis.bytes_sent() - before;
    let before = redis.bytes_sent();
    let page = ok(&a
        .call(
            "conversation.history",
            json!({"conversation_id": conversation, "before_seq": 21, "limit": 5}),
        )
        .await);
    assert_eq!(page["messages"].as_array().unwrap().len(), 5, "{page}");
    let page_bytes = redis.bytes_sent() - before;
    println!(
        "Redis sent {edit_bytes} bytes for one edit, {page_bytes} for a 5-message page (the window holds ~900 KB)"
    );
    assert!(edit_bytes < 64 * 1024, "an edit made Redis send {edit_bytes} bytes");
    assert!(
        page_bytes < 64 * 1024,
        "a 5-message page made Redis send {page_bytes} bytes"
    );

    // 400 messages of 15 KiB: 6 MB sent, the window keeps 4 MiB of them.
    let large = a.create_group(&[&bob]).await;
    for n in 0..400 {
        send_long(&mut a, &large, &format!("l{n}"), &"L".repeat(15 * 1024)).await;
    }
    let window = format!("caas:{{{}:{large}}}:recent", app.0);
    let held = redis.memory_usage(&window);
    println!("the window of 400 large messages takes {held} bytes");
    assert!(held > 3 << 20 && held < 5 << 20, "window holds {held} bytes");
}
