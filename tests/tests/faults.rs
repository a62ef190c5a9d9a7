//! Fault injection on the real stack: a steady multi-sender load across two socket nodes, a fault in
//! the middle of it, and at the end a comparison of what senders were told `accepted` with what MongoDB
//! holds and what every subscriber saw (live, completed by history after recovery). Each scenario
//! prints one row of the table in docs/reliability.md.
//!
//! Scenarios run one after another in one test: they break shared servers on purpose.

use caas_e2e::{ok, Client, Platform, Stack};
use futures_util::StreamExt;
use mongodb::bson::doc;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const SENDERS: usize = 4;
const MESSAGES_EACH: usize = 100;

/// What one scenario measured.
struct Outcome {
    fault: &'static str,
    accepted: usize,
    lost: usize,
    duplicated: usize,
    recovery: Duration,
}

impl Outcome {
    fn print(&self) {
        println!(
            "| {} | {} | {} | {} | {} ms |",
            self.fault,
            self.accepted,
            self.lost,
            self.duplicated,
            self.recovery.as_millis()
        );
    }
}

/// A subscriber collecting every `message.new` (seq → ids seen) until the socket is dropped.
fn collect(mut client: Client) -> tokio::task::JoinHandle<BTreeMap<i64, Vec<String>>> {
    tokio::spawn(async move {
        let mut seen: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(15), client.socket.next()).await {
            let Message::Text(text) = frame else { continue };
            let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if frame["type"] == "message.new" {
                let (seq, id) = (frame["data"]["seq"].as_i64(), frame["data"]["id"].as_str());
                if let (Some(seq), Some(id)) = (seq, id) {
                    seen.entry(seq).or_default().push(id.to_owned());
                }
            }
        }
        seen
    })
}

/// Two socket nodes on a stack of their own (its servers are broken on purpose); `durable_kafka` keeps
/// the broker's log across a broker restart, as a real Kafka's disks do.
fn platform(name: &str, durable_kafka: bool) -> Platform {
    Platform::start_on(Stack::dedicated(durable_kafka), name, 2, &[])
}

/// Runs the load with `fault` injected (on a blocking thread, so it may sleep) once half the messages
/// are accepted; returns the outcome.
async fn under_load(
    mut platform: Platform,
    fault_name: &'static str,
    fault: impl FnOnce(&mut Platform) + Send + 'static,
) -> Outcome {
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let mut senders = Vec::new();
    for n in 0..SENDERS {
        senders.push(platform.token(&http, &app, &format!("sender{n}")).await);
    }
    let receivers = [
        platform.token(&http, &app, "receiver0").await,
        platform.token(&http, &app, "receiver1").await,
    ];
    let urls = platform.socket_urls.clone();
    let node = |n: usize| urls[n % 2].clone();
    let mut owner = Client::connect(&node(0), senders[0]["token"].as_str().unwrap(), "faults-owner").await;
    let members: Vec<&Value> = senders[1..].iter().chain(receivers.iter()).collect();
    let conversation = owner.create_group(&members).await;
    drop(owner);
    let mut collectors = Vec::new();
    for (n, receiver) in receivers.iter().enumerate() {
        let mut client = Client::connect(&node(n), receiver["token"].as_str().unwrap(), &format!("faults-r{n}")).await;
        ok(&client
            .call("conversation.subscribe", json!({"conversation_id": conversation}))
            .await);
        collectors.push(collect(client));
    }

    let accepted_count = Arc::new(AtomicUsize::new(0));
    let fault_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let injector = {
        let (accepted_count, fault_at) = (Arc::clone(&accepted_count), Arc::clone(&fault_at));
        tokio::spawn(async move {
            while accepted_count.load(Ordering::Relaxed) < SENDERS * MESSAGES_EACH / 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            *fault_at.lock().unwrap() = Some(Instant::now());
            tokio::task::spawn_blocking(move || {
                fault(&mut platform);
                platform
            })
            .await
            .unwrap()
        })
    };
    let mut tasks = Vec::new();
    for (n, sender) in senders.iter().enumerate() {
        let (url, token) = (node(n), sender["token"].as_str().unwrap().to_owned());
        let (conversation, accepted_count) = (conversation.clone(), Arc::clone(&accepted_count));
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&url, &token, &format!("faults-s{n}")).await;
            let mut acks = Vec::new();
            for m in 0..MESSAGES_EACH {
                let data = json!({"conversation_id": conversation, "client_msg_id": format!("s{n}-{m}"), "text": format!("{n}/{m}")});
                // As a real client does: a refused send is retried with the same client_msg_id
                // (for up to a minute: long enough for any fault here to heal).
                let give_up = Instant::now() + Duration::from_secs(60);
                while Instant::now() < give_up {
                    let reply = client.call("message.send", data.clone()).await;
                    if reply["ok"] == true && reply["data"]["status"] == "accepted" {
                        accepted_count.fetch_add(1, Ordering::Relaxed);
                        acks.push((n, Instant::now(), reply["data"].clone()));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for task in tasks {
        acks.extend(task.await.unwrap());
    }
    let platform = injector.await.unwrap();
    let fault_at = fault_at.lock().unwrap().expect("the fault ran");
    // Recovery: the longest stall any sender saw between two accepted sends after the fault began.
    let recovery = (0..SENDERS)
        .filter_map(|sender| {
            let times: Vec<Instant> = acks
                .iter()
                .filter(|(n, _, _)| *n == sender)
                .map(|(_, at, _)| *at)
                .collect();
            times
                .windows(2)
                .filter(|pair| pair[1] > fault_at)
                .map(|pair| pair[1] - pair[0].max(fault_at))
                .max()
        })
        .max()
        .unwrap_or_default();
    let accepted: HashMap<String, i64> = acks
        .iter()
        .map(|(_, _, ack)| {
            (
                ack["message_id"].as_str().unwrap().to_owned(),
                ack["seq"].as_i64().unwrap(),
            )
        })
        .collect();

    // Persistence catches up (bounded); then MongoDB is compared with the acks.
    let messages = platform.mongo().await.collection::<mongodb::bson::Document>("messages");
    let filter = doc! {"conversation_id": &conversation};
    let deadline = Instant::now() + Duration::from_secs(90);
    while (messages.count_documents(filter.clone()).await.unwrap() as usize) < accepted.len()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut stored: HashMap<String, i64> = HashMap::new();
    let mut cursor = messages.find(filter).await.unwrap();
    let mut stored_keys = HashSet::new();
    let mut duplicated = 0;
    while let Some(document) = futures_util::TryStreamExt::try_next(&mut cursor).await.unwrap() {
        let id = document.get_str("_id").unwrap().to_owned();
        let key = (
            document.get_str("sender_id").unwrap().to_owned(),
            document.get_str("client_msg_id").unwrap().to_owned(),
        );
        if !stored_keys.insert(key) {
            duplicated += 1; // The same send stored twice.
        }
        stored.insert(id, document.get_i64("seq").unwrap());
    }
    let mut lost = accepted.iter().filter(|(id, seq)| stored.get(*id) != Some(seq)).count();
    let mut seqs = HashSet::new();
    duplicated += accepted.values().filter(|seq| !seqs.insert(**seq)).count(); // A seq handed out twice.

    // Every subscriber's view: what arrived live, completed by history (what a client reloads after a
    // gap). Each accepted message must be in it under its seq, and no seq may carry two messages.
    for collector in collectors {
        let mut view = collector.await.unwrap();
        let reader = &receivers[0];
        let mut client = Client::connect(&node(0), reader["token"].as_str().unwrap(), "faults-history").await;
        let mut after = 0;
        loop {
            let page = ok(&client
                .call(
                    "conversation.history",
                    json!({"conversation_id": conversation, "after_seq": after, "limit": 200}),
                )
                .await);
            let listed = page["messages"].as_array().unwrap().clone();
            let Some(last) = listed.last() else { break };
            after = last["seq"].as_i64().unwrap();
            for message in listed {
                let entry = view.entry(message["seq"].as_i64().unwrap()).or_default();
                let id = message["id"].as_str().unwrap().to_owned();
                if !entry.contains(&id) {
                    entry.push(id);
                }
            }
        }
        let mut by_seq: HashMap<i64, HashSet<&String>> = HashMap::new();
        for (seq, ids) in &view {
            by_seq.entry(*seq).or_default().extend(ids);
        }
        duplicated += by_seq.values().filter(|ids| ids.len() > 1).count();
        lost += accepted
            .iter()
            .filter(|(id, seq)| !by_seq.get(seq).is_some_and(|ids| ids.contains(id)))
            .count();
    }
    Outcome {
        fault: fault_name,
        accepted: accepted.len(),
        lost,
        duplicated,
        recovery,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_accepted_is_lost_or_duplicated_under_faults() {
    let restart =
        |server: &'static str, down: Duration| move |platform: &mut Platform| platform.stack.restart(server, down);
    let outcomes = vec![
        under_load(
            platform("faults_flush", false),
            "Redis `FLUSHALL` mid-burst (data lost)",
            |platform| {
                let client = redis::Client::open(platform.stack.get("CAAS_CACHE_URL")).unwrap();
                let mut connection = client.get_connection().unwrap();
                let _: () = redis::cmd("FLUSHALL").query(&mut connection).unwrap();
            },
        )
        .await,
        under_load(
            platform("faults_redis", false),
            "Redis killed and restarted empty (500 ms down)",
            restart("redis", Duration::from_millis(500)),
        )
        .await,
        under_load(
            platform("faults_kafka", true),
            "Kafka broker killed and restarted (1 s down, log kept)",
            restart("tansu", Duration::from_secs(1)),
        )
        .await,
        under_load(
            platform("faults_mongo", false),
            "MongoDB server killed mid-batch and restarted (1 s down)",
            restart("secantus", Duration::from_secs(1)),
        )
        .await,
        under_load(
            platform("faults_bridge", false),
            "persistence (bridge) `kill -9` mid-batch, restarted 2 s later",
            |platform| {
                platform.kill("bridge");
                std::thread::sleep(Duration::from_secs(2));
                platform.respawn("bridge");
            },
        )
        .await,
        under_load(
            platform("faults_pause", false),
            "socket node 2 paused (`SIGSTOP`) 12 s, past the 10 s heartbeat",
            |platform| {
                platform.signal("node2", "STOP");
                std::thread::sleep(Duration::from_secs(12));
                platform.signal("node2", "CONT");
            },
        )
        .await,
    ];
    println!("| fault | accepted | lost | duplicated | recovery |");
    println!("|---|---|---|---|---|");
    for outcome in &outcomes {
        outcome.print();
    }
    for outcome in &outcomes {
        assert_eq!(
            outcome.accepted,
            SENDERS * MESSAGES_EACH,
            "{}: every send was accepted eventually",
            outcome.fault
        );
        assert_eq!((outcome.lost, outcome.duplicated), (0, 0), "{}", outcome.fault);
    }
}

/// Latency percentiles (ms) of what the fast subscribers received.
fn percentiles(mut latencies: Vec<f64>) -> (f64, f64) {
    if latencies.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99))
}

/// One sender at a steady pace, `fast` subscribers that read everything and `slow` ones that never
/// read; returns the fast subscribers' delivery latencies (ms) and how many fast deliveries were missed.
async fn latencies_with(platform: &Platform, slow: usize) -> (Vec<f64>, usize) {
    const FAST: usize = 3;
    const MESSAGES: usize = 300;
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let sender = platform.token(&http, &app, "sender").await;
    let mut readers = Vec::new();
    for n in 0..FAST + slow {
        readers.push(platform.token(&http, &app, &format!("reader{n}")).await);
    }
    let url = &platform.socket_urls[0];
    let mut client = Client::connect(url, sender["token"].as_str().unwrap(), "slow-sender").await;
    let conversation = client.create_group(&readers.iter().collect::<Vec<_>>()).await;
    let started = Instant::now();
    let mut fast_tasks = Vec::new();
    let mut slow_clients = Vec::new();
    for (n, reader) in readers.iter().enumerate() {
        let mut reader = Client::connect(url, reader["token"].as_str().unwrap(), &format!("slow-r{n}")).await;
        ok(&reader
            .call("conversation.subscribe", json!({"conversation_id": conversation}))
            .await);
        if n >= FAST {
            slow_clients.push(reader); // Subscribed, and never read from again.
            continue;
        }
        fast_tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while latencies.len() < MESSAGES {
                let Ok(Some(Ok(Message::Text(text)))) =
                    tokio::time::timeout(Duration::from_secs(10), reader.socket.next()).await
                else {
                    break;
                };
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if frame["type"] == "message.new" {
                    let sent_at: f64 = frame["data"]["text"].as_str().unwrap()[..20].trim().parse().unwrap();
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0 - sent_at);
                }
            }
            latencies
        }));
    }
    // 8 KiB messages: a reader that never reads fills its socket buffers and then its outbox.
    let padding = "x".repeat(8 * 1024);
    for m in 0..MESSAGES {
        let sent_at = started.elapsed().as_secs_f64() * 1000.0;
        let text = format!("{sent_at:<20.3}{padding}");
        let reply = client
            .call(
                "message.send",
                json!({"conversation_id": conversation, "client_msg_id": format!("m{m}"), "text": text}),
            )
            .await;
        assert_eq!(reply["ok"], true, "{reply}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = Vec::new();
    let mut missed = 0;
    for task in fast_tasks {
        let got = task.await.unwrap();
        missed += MESSAGES - got.len();
        latencies.extend(got);
    }
    drop(slow_clients);
    (latencies, missed)
}

/// A slow consumer among fast ones: subscribers that never read must not slow delivery to the others
/// (the bound: their latency within 2× of a run without slow consumers). Printed, not asserted:
/// latency is a benchmark figure on a shared 2-core machine; what is asserted is that the fast
/// subscribers miss nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_does_not_slow_the_others() {
    let platform = Platform::start("faults_slow", 1);
    let (baseline, missed_baseline) = latencies_with(&platform, 0).await;
    let (with_slow, missed_with_slow) = latencies_with(&platform, 5).await;
    let ((base_p50, base_p99), (slow_p50, slow_p99)) = (percentiles(baseline), percentiles(with_slow));
    println!("| run | fast subscribers' p50 | p99 |");
    println!("|---|---|---|");
    println!("| 3 fast subscribers | {base_p50:.1} ms | {base_p99:.1} ms |");
    println!("| 3 fast + 5 never reading | {slow_p50:.1} ms | {slow_p99:.1} ms |");
    println!(
        "ratio with slow consumers / baseline: p50 {:.2}×, p99 {:.2}×",
        slow_p50 / base_p50,
        slow_p99 / base_p99
    );
    assert_eq!(
        (missed_baseline, missed_with_slow),
        (0, 0),
        "fast subscribers miss nothing"
    );
}
