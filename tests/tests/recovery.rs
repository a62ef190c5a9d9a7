//! Gap-free reconnect under a crash: user B receives a stream of 2,000 messages from A (on node 2) while
//! connected to node 1; node 1 is killed with SIGKILL mid-stream; B reconnects to node 2 with the last
//! seq it holds and must end with exactly the 2,000 messages, in order, none missing, none twice. A user
//! who was only on the killed node is then reported offline to a watcher on the surviving node.

use caas_e2e::{Client, Platform};
use serde_json::{json, Value};
use std::time::Duration;

const MESSAGES: i64 = 2_000;
/// B has seen this many when node 1 is killed.
const KILL_AFTER: usize = 600;

/// What B holds: seqs in order, each with its text.
#[derive(Default)]
struct Received {
    messages: Vec<(i64, String)>,
    /// Live events for seqs B already had (the replay and the live stream may overlap by design).
    repeats: usize,
}

impl Received {
    fn last_seq(&self) -> i64 {
        self.messages.last().map_or(0, |(seq, _)| *seq)
    }

    /// Takes a message as the protocol tells clients to: repeats are dropped, gaps are a failure.
    fn take(&mut self, message: &Value) {
        let seq = message["seq"].as_i64().expect("seq");
        if seq <= self.last_seq() {
            self.repeats += 1;
            return;
        }
        assert_eq!(seq, self.last_seq() + 1, "gap after seq {}", self.last_seq());
        self.messages.push((seq, message["text"].as_str().unwrap().to_owned()));
    }
}

/// Subscribes with `since_seq`, buffering live events that arrive before the reply, and applies the
/// replay and then the buffer. Returns whether the server says there is more to replay.
async fn resume(client: &mut Client, conversation_id: &str, epoch: &str, received: &mut Received) -> bool {
    let since_seq = received.last_seq();
    let id = client
        .request(
            "conversation.subscribe",
            json!({"conversation_id": conversation_id, "since_seq": since_seq, "epoch": epoch}),
        )
        .await;
    let mut live = Vec::new();
    let reply = loop {
        let frame = client.next_json().await;
        if frame["reply_to"] == id.as_str() {
            break frame;
        }
        if frame["type"] == "message.new" {
            live.push(frame["data"].clone());
        }
    };
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["data"]["recovered"], true, "recovery must succeed: {reply}");
    let replay = reply["data"]["messages"].as_array().unwrap();
    let seqs: Vec<i64> = replay.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (since_seq + 1..).take(seqs.len()).collect();
    assert_eq!(seqs, expected, "the replay is exactly the missed messages, in order");
    for message in replay.iter().chain(&live) {
        received.take(message);
    }
    reply["data"]["has_more"].as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_node_resumes_on_another_without_loss_or_duplicates() {
    let mut platform = Platform::start("recovery", 2);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let alice = platform.token(&http, &app, "alice").await;
    let bob = platform.token(&http, &app, "bob").await;
    let mut a = Client::connect(&platform.socket_urls[1], alice["token"].as_str().unwrap(), "recovery-a").await;
    let mut b = Client::connect(&platform.socket_urls[0], bob["token"].as_str().unwrap(), "recovery-b").await;
    let created = a
        .call(
            "conversation.create",
            json!({"kind": "direct", "member_ids": [bob["user"]["id"]]}),
        )
        .await;
    let conversation_id = created["data"]["id"].as_str().unwrap().to_owned();
    let subscribed = b
        .call("conversation.subscribe", json!({"conversation_id": conversation_id}))
        .await;
    let epoch = subscribed["data"]["epoch"].as_str().unwrap().to_owned();

    // Dave sits idle on node 1; Carol, on node 2, watches his presence.
    let dave = platform.token(&http, &app, "dave").await;
    let carol = platform.token(&http, &app, "carol").await;
    let _dave_socket = Client::connect(&platform.socket_urls[0], dave["token"].as_str().unwrap(), "recovery-d").await;
    let mut watcher = Client::connect(&platform.socket_urls[1], carol["token"].as_str().unwrap(), "recovery-c").await;
    // Presence is visible to users who share a conversation.
    watcher
        .call(
            "conversation.create",
            json!({"kind": "direct", "member_ids": [dave["user"]["id"]]}),
        )
        .await;
    let watched = watcher
        .call("presence.subscribe", json!({"user_ids": [dave["user"]["id"]]}))
        .await;
    assert_eq!(watched["data"]["presence"][0]["online"], true, "{watched}");

    // A streams at a steady pace so the kill lands mid-stream, then collects every accepted reply.
    let stream_conversation = conversation_id.clone();
    let sender = tokio::spawn(async move {
        let mut ids = Vec::new();
        for n in 1..=MESSAGES {
            let data = json!({"conversation_id": stream_conversation, "client_msg_id": format!("m{n}"), "text": format!("msg {n}")});
            ids.push(a.request("message.send", data).await);
            if n % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let mut accepted = 0;
        while accepted < ids.len() {
            let reply = a.next_reply().await;
            assert_eq!(reply["ok"], true, "{reply}");
            accepted += 1;
        }
        accepted
    });

    let mut received = Received::default();
    while received.messages.len() < KILL_AFTER {
        let frame = b.next_json().await;
        if frame["type"] == "message.new" {
            received.take(&frame["data"]);
        }
    }
    platform.kill("node1");
    drop(b);

    let mut b = Client::connect(&platform.socket_urls[1], bob["token"].as_str().unwrap(), "recovery-b2").await;
    while resume(&mut b, &conversation_id, &epoch, &mut received).await {}
    while received.last_seq() < MESSAGES {
        let frame = b.next_json().await;
        if frame["type"] == "message.new" {
            received.take(&frame["data"]);
        }
    }
    assert_eq!(sender.await.unwrap(), MESSAGES as usize, "every send was accepted");

    assert_eq!(received.messages.len(), MESSAGES as usize);
    for (index, (seq, text)) in received.messages.iter().enumerate() {
        assert_eq!(*seq, index as i64 + 1);
        assert_eq!(*text, format!("msg {seq}"), "seq {seq} carries A's message {seq}");
    }
    println!(
        "recovered: {} messages, 0 lost, 0 duplicated; {} live repeats of replayed seqs dropped by the client",
        received.messages.len(),
        received.repeats
    );

    // Nobody was left on node 1 to announce Dave leaving; his presence lapses and node 2 says so.
    let offline = watcher.event("presence").await;
    assert_eq!(offline["user_id"], dave["user"]["id"]);
    assert_eq!(offline["online"], false);
}
