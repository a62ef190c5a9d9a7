//! A burst of concurrent sends into one conversation, from many connections on two nodes, each sender
//! pipelining its sends (and retrying some of them at once): every accepted message gets its own seq,
//! the seqs are contiguous (no gap, no duplicate), each sender's seqs follow its send order, a retry
//! gets its original id and seq, a live subscriber on either node gets every message once and in seq
//! order (senders on two nodes finish their sends in any order), and history stores each exactly once.

use caas_e2e::{ok, Client, Platform};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const SENDERS: usize = 16;
const SENDS_EACH: usize = 30;
/// Every this-many-th send is sent a second time right after the first, with the same `client_msg_id`.
const RETRY_EVERY: usize = 5;

/// One sender's accepted messages in send order: (client_msg_id, message id, seq).
type Accepted = Vec<(String, String, i64)>;

/// Sends `SENDS_EACH` messages without waiting between them (plus the retries), then reads every reply.
async fn burst(mut client: Client, sender: usize, conversation_id: String) -> Accepted {
    let mut requests = Vec::new();
    for n in 0..SENDS_EACH {
        let client_msg_id = format!("s{sender}-m{n}");
        let data = json!({"conversation_id": conversation_id, "client_msg_id": client_msg_id, "text": client_msg_id});
        requests.push((
            client_msg_id.clone(),
            false,
            client.request("message.send", data.clone()).await,
        ));
        if n % RETRY_EVERY == 0 {
            requests.push((client_msg_id, true, client.request("message.send", data).await));
        }
    }
    let mut replies = HashMap::new();
    while replies.len() < requests.len() {
        let reply = client.next_reply().await;
        replies.insert(reply["reply_to"].as_str().unwrap().to_owned(), reply);
    }
    let mut accepted: Accepted = Vec::new();
    for (client_msg_id, retry, id) in requests {
        let ack = ok(&replies[&id]);
        assert_eq!(ack["status"], "accepted", "{ack}");
        assert_eq!(ack["client_msg_id"], client_msg_id.as_str());
        let (message_id, seq) = (
            ack["message_id"].as_str().unwrap().to_owned(),
            ack["seq"].as_i64().unwrap(),
        );
        if retry {
            let original = accepted.last().expect("a retry follows its original");
            assert_eq!(
                (&original.1, original.2, &ack["duplicate"]),
                (&message_id, seq, &json!(true)),
                "a retry gets the original id and seq"
            );
        } else {
            assert_eq!(ack["duplicate"], false, "{ack}");
            accepted.push((client_msg_id, message_id, seq));
        }
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_sends_gets_contiguous_seqs_in_each_senders_order() {
    let platform = Platform::start("send-burst", 2);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let mut tokens = Vec::new();
    for n in 0..SENDERS {
        tokens.push(platform.token(&http, &app, &format!("burst-{n}")).await);
    }
    let watcher_token = platform.token(&http, &app, "burst-watcher").await;
    let mut watchers = Vec::new();
    for (n, url) in platform.socket_urls.iter().enumerate() {
        watchers.push(Client::connect(url, watcher_token["token"].as_str().unwrap(), &format!("burst-w{n}")).await);
    }
    let members: Vec<&Value> = tokens.iter().collect();
    let conversation_id = watchers[0].create_group(&members).await;
    for watcher in &mut watchers {
        ok(&watcher
            .call("conversation.subscribe", json!({"conversation_id": conversation_id}))
            .await);
    }

    let mut clients = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        let url = &platform.socket_urls[n % 2];
        clients.push(Client::connect(url, token["token"].as_str().unwrap(), &format!("burst-{n}")).await);
    }
    let bursts: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, client)| tokio::spawn(burst(client, n, conversation_id.clone())))
        .collect();
    let mut by_seq: BTreeMap<i64, String> = BTreeMap::new();
    for burst in bursts {
        let accepted = burst.await.expect("a sender failed");
        let seqs: Vec<i64> = accepted.iter().map(|(_, _, seq)| *seq).collect();
        assert!(
            seqs.windows(2).all(|pair| pair[0] < pair[1]),
            "one sender's seqs follow its send order: {seqs:?}"
        );
        for (_, message_id, seq) in accepted {
            if let Some(other) = by_seq.insert(seq, message_id.clone()) {
                panic!("seq {seq} given to both {other} and {message_id}");
            }
        }
    }
    let total = SENDERS * SENDS_EACH;
    let first = *by_seq.keys().next().unwrap();
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (first..first + total as i64).collect::<Vec<_>>(),
        "contiguous seqs, no gap, no duplicate"
    );

    // A live subscriber on each node hears every message exactly once, in seq order: the seqs are
    // handed out in one order and the sends finish (and are published) in another.
    for (node, mut watcher) in watchers.into_iter().enumerate() {
        let mut heard: Vec<i64> = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            while heard.len() < total {
                let message = watcher.event("message.new").await;
                let seq = message["seq"].as_i64().unwrap();
                assert_eq!(by_seq[&seq], message["id"].as_str().unwrap());
                heard.push(seq);
            }
        })
        .await
        .expect("the subscriber heard every message");
        let disordered: Vec<&[i64]> = heard.windows(2).filter(|pair| pair[0] >= pair[1]).collect();
        assert!(
            disordered.is_empty(),
            "node {node}'s subscriber heard {} of {total} messages out of seq order (or twice): {disordered:?}",
            disordered.len()
        );
    }

    // Persisted exactly once each, under the acknowledged id and seq.
    let stored = platform.mongo().await.collection::<mongodb::bson::Document>("messages");
    let filter = mongodb::bson::doc! {"conversation_id": &conversation_id};
    let mut found = Vec::new();
    for _ in 0..200 {
        found = stored.distinct("seq", filter.clone()).await.expect("distinct seqs");
        let count = stored.count_documents(filter.clone()).await.expect("count");
        if found.len() == total && count as usize == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(found.len(), total, "every accepted message stored once");
    for (seq, message_id) in &by_seq {
        let doc = stored
            .find_one(mongodb::bson::doc! {"conversation_id": &conversation_id, "seq": *seq})
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(doc.get_str("_id").unwrap(), message_id);
    }
}
