//! A WebSocket fuzz client against a live socket node (real stack) for a bounded time
//! (`CAAS_FUZZ_SECS`, 20 s by default; longer runs are in docs/reliability.md):
//! - wire fuzzers speak raw TCP after a real upgrade: random opcodes, reserved bits, unmasked frames,
//!   lying lengths, invalid UTF-8, truncated frames, garbage;
//! - protocol fuzzers send well-formed frames with random, truncated, oversized, binary, deeply nested
//!   and out-of-order requests (every event type, real field names, wrong values);
//! - a bystander keeps chatting through it all.
//!
//! The node must never panic or exit, keep its memory bounded, and keep serving the bystander: every
//! one of its sends is accepted and delivered.

use caas_e2e::{ok, rss_bytes, Client, Platform};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// xorshift64*: deterministic per seed, so a failing run can be replayed (`CAAS_FUZZ_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// Random bytes, fewer than `max`.
    fn bytes_below(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max);
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const REQUEST_TYPES: &[&str] = &[
    "message.send",
    "message.edit",
    "message.delete",
    "message.forward",
    "message.replies",
    "reaction.add",
    "reaction.remove",
    "conversation.create",
    "conversation.subscribe",
    "conversation.history",
    "conversation.list",
    "conversation.members",
    "conversation.members.add",
    "conversation.members.remove",
    "conversation.update",
    "conversation.leave",
    "read.mark",
    "typing.start",
    "typing.stop",
    "presence.subscribe",
    "auth",
    "ping",
    "no.such.type",
];

const FIELDS: &[&str] = &[
    "conversation_id",
    "client_msg_id",
    "text",
    "message_id",
    "since_seq",
    "after_seq",
    "before_seq",
    "limit",
    "seq",
    "member_ids",
    "user_ids",
    "kind",
    "name",
    "emoji",
    "attachments",
    "reply_to",
    "token",
    "role",
];

/// A random JSON value of bounded size; `depth` limits nesting.
fn value(rng: &mut Rng, depth: usize, conversation: &str) -> Value {
    match rng.below(if depth == 0 { 7 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() as i64),
        3 => json!(*rng.pick(&[0, -1, 1, i64::MAX, i64::MIN, 1_000_000_000_000])),
        4 => json!(conversation),
        5 => json!(String::from_utf8_lossy(&rng.bytes_below(40)).into_owned()),
        6 => json!(*rng.pick(&[
            "",
            "x",
            "\u{202e}evil",
            "\0",
            "💬",
            "a/b/../c",
            "$where",
            "{\"$gt\":\"\"}"
        ])),
        7 => Value::Array((0..rng.below(5)).map(|_| value(rng, depth - 1, conversation)).collect()),
        _ => {
            let mut object = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                object.insert(rng.pick(FIELDS).to_string(), value(rng, depth - 1, conversation));
            }
            Value::Object(object)
        }
    }
}

/// One protocol-level frame: mostly plausible requests with wrong values, sometimes worse.
fn protocol_frame(rng: &mut Rng, conversation: &str) -> Message {
    let mut data = serde_json::Map::new();
    for _ in 0..rng.below(6) {
        data.insert(rng.pick(FIELDS).to_string(), value(rng, 3, conversation));
    }
    let id = match rng.below(4) {
        0 => value(rng, 1, conversation),
        _ => json!(format!("f{}", rng.below(1000))),
    };
    let text = json!({"id": id, "type": rng.pick(REQUEST_TYPES), "data": data}).to_string();
    match rng.below(12) {
        0 => Message::binary(rng.bytes_below(2048)),
        1 => {
            let cut = rng.below(text.len().max(1));
            Message::text(text.get(..cut).unwrap_or_default().to_owned())
        }
        // Past the node's 64 KiB frame limit.
        2 => Message::text(format!(
            "{{\"id\":\"big\",\"type\":\"message.send\",\"data\":{{\"text\":\"{}\"}}}}",
            "x".repeat(70_000)
        )),
        3 => Message::text(format!("{}{}", "[".repeat(5_000), "]".repeat(5_000))),
        4 => Message::text(String::from_utf8_lossy(&rng.bytes_below(300)).into_owned()),
        5 => Message::Ping(rng.bytes_below(125).into()),
        6 => Message::text(format!("{text}{text}")),
        _ => Message::text(text),
    }
}

/// One raw WebSocket frame, usually masked as a client's must be, with random header bits.
fn wire_frame(rng: &mut Rng) -> Vec<u8> {
    let opcode = *rng.pick(&[0u8, 1, 1, 1, 2, 3, 7, 8, 9, 10, 11, 15]);
    let fin = if rng.chance(80) { 0x80 } else { 0 };
    let rsv = if rng.chance(10) { (rng.below(8) as u8) << 4 } else { 0 };
    let payload = if opcode == 1 && rng.chance(60) {
        let text = json!({"id": "w", "type": "ping", "data": {}}).to_string().into_bytes();
        let mut text = text;
        if rng.chance(30) {
            text.extend_from_slice(&[0xC3, 0x28, 0xFF]); // Invalid UTF-8.
        }
        text
    } else {
        rng.bytes_below(200)
    };
    let masked = rng.chance(90);
    let mut frame = vec![fin | rsv | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    // The declared length sometimes lies (longer or shorter than what follows).
    let declared = match rng.below(10) {
        0 => rng.below(1 << 20),
        1 => payload.len().saturating_sub(3),
        _ => payload.len(),
    };
    if declared < 126 {
        frame.push(mask_bit | declared as u8);
    } else if declared < 65_536 {
        frame.push(mask_bit | 126);
        frame.extend_from_slice(&(declared as u16).to_be_bytes());
    } else {
        frame.push(mask_bit | 127);
        frame.extend_from_slice(&(declared as u64).to_be_bytes());
    }
    let key: Vec<u8> = (0..4).map(|_| rng.next() as u8).collect();
    if masked {
        frame.extend_from_slice(&key);
    }
    frame.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| if masked { b ^ key[i % 4] } else { *b }),
    );
    if rng.chance(10) {
        frame.truncate(rng.below(frame.len()));
    }
    frame
}

/// Opens a raw TCP connection and performs a real WebSocket upgrade with `token`; `None` when the node
/// refused (say, a connection cap was reached).
async fn raw_upgrade(url: &str, token: &str) -> Option<tokio::net::TcpStream> {
    let address = url.trim_start_matches("ws://").split('/').next().unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.ok()?;
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response))
        .await
        .ok()?
        .ok()?;
    std::str::from_utf8(&response[..read])
        .ok()?
        .starts_with("HTTP/1.1 101")
        .then_some(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_under_random_frames_never_panics_never_leaks_and_keeps_serving_others() {
    const WIRE_FUZZERS: usize = 4;
    const PROTOCOL_FUZZERS: usize = 4;
    let seconds: u64 = std::env::var("CAAS_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CAAS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| caas_shared::now_ms() as u64 | 1);
    println!("fuzzing for {seconds} s, seed {seed} (CAAS_FUZZ_SEED replays it)");
    let mut platform = Platform::start("ws_fuzz", 1);
    let http = reqwest::Client::new();
    let app = platform.create_app(&http).await;
    let url = platform.socket_urls[0].clone();
    let bystanders = [
        platform.token(&http, &app, "bystander0").await,
        platform.token(&http, &app, "bystander1").await,
    ];
    let mut fuzzer_tokens = Vec::new();
    for n in 0..WIRE_FUZZERS + PROTOCOL_FUZZERS {
        fuzzer_tokens.push(platform.token(&http, &app, &format!("fuzzer{n}")).await);
    }
    // The fuzzers share a conversation with the bystanders, so their requests reach real data.
    let mut speaker = Client::connect(&url, bystanders[0]["token"].as_str().unwrap(), "fuzz-speaker").await;
    let members: Vec<&Value> = bystanders[1..].iter().chain(fuzzer_tokens.iter()).collect();
    let conversation = speaker.create_group(&members).await;
    let mut listener = Client::connect(&url, bystanders[1]["token"].as_str().unwrap(), "fuzz-listener").await;
    ok(&listener
        .call("conversation.subscribe", json!({"conversation_id": conversation}))
        .await);
    // The listener reads all the time (fuzzers' messages reach it too), keeping the speaker's.
    let speaker_id = bystanders[0]["user"]["id"].as_str().unwrap().to_owned();
    let expected = Arc::new(AtomicUsize::new(usize::MAX));
    let listening = {
        let expected = Arc::clone(&expected);
        tokio::spawn(async move {
            let mut delivered: Vec<String> = Vec::new();
            while delivered.len() < expected.load(Ordering::Relaxed) {
                let Ok(message) = tokio::time::timeout(Duration::from_secs(1), listener.event("message.new")).await
                else {
                    continue;
                };
                if message["sender_id"] == speaker_id.as_str() {
                    delivered.push(message["id"].as_str().unwrap().to_owned());
                }
            }
            delivered
        })
    };

    let node = platform.pid("node1");
    let baseline = rss_bytes(node);
    let running = Arc::new(AtomicBool::new(true));
    let frames_sent = Arc::new(AtomicUsize::new(0));
    let mut fuzzers = Vec::new();
    for (n, token) in fuzzer_tokens.iter().enumerate() {
        let (url, token) = (url.clone(), token["token"].as_str().unwrap().to_owned());
        let (running, frames_sent, conversation) =
            (Arc::clone(&running), Arc::clone(&frames_sent), conversation.clone());
        let mut rng = Rng(seed.wrapping_add((n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
        fuzzers.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                if n < WIRE_FUZZERS {
                    let Some(mut stream) = raw_upgrade(&url, &token).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    for _ in 0..rng.below(40) + 1 {
                        if stream.write_all(&wire_frame(&mut rng)).await.is_err() {
                            break;
                        }
                        frames_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    // Sometimes read what came back, sometimes hang up mid-conversation.
                    let mut sink = [0u8; 4096];
                    let _ = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut sink)).await;
                } else {
                    let mut request = url.as_str().into_client_request().unwrap();
                    request
                        .headers_mut()
                        .insert("authorization", format!("Bearer {token}").parse().unwrap());
                    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    for _ in 0..rng.below(200) + 1 {
                        if socket.send(protocol_frame(&mut rng, &conversation)).await.is_err() {
                            break;
                        }
                        frames_sent.fetch_add(1, Ordering::Relaxed);
                        if rng.chance(30) {
                            let _ = tokio::time::timeout(Duration::from_millis(5), socket.next()).await;
                        }
                    }
                }
            }
        }));
    }

    // The bystander keeps chatting: every send accepted, every message delivered to the listener.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut sent = Vec::new();
    let mut peak = baseline;
    while Instant::now() < deadline {
        let m = sent.len();
        let reply = speaker
            .call(
                "message.send",
                json!({"conversation_id": conversation, "client_msg_id": format!("by{m}"), "text": format!("still here {m}")}),
            )
            .await;
        let accepted = ok(&reply);
        sent.push(accepted["message_id"].as_str().unwrap().to_owned());
        peak = peak.max(rss_bytes(node));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.store(false, Ordering::Relaxed);
    for fuzzer in fuzzers {
        fuzzer.await.unwrap();
    }
    expected.store(sent.len(), Ordering::Relaxed);
    let delivered = tokio::time::timeout(Duration::from_secs(30), listening)
        .await
        .expect("the listener got every message of the speaker")
        .unwrap();
    let after = rss_bytes(node);
    let log = std::fs::read_to_string(platform.log_dir().join("node1.log")).unwrap_or_default();
    println!(
        "{} fuzz frames; bystander: {} sent, {} delivered; node RSS {} MiB → peak {} MiB, {} MiB after",
        frames_sent.load(Ordering::Relaxed),
        sent.len(),
        delivered.len(),
        baseline / (1 << 20),
        peak / (1 << 20),
        after / (1 << 20)
    );
    assert!(
        platform.all_alive(),
        "a platform process died under fuzzing (see {:?})",
        platform.log_dir()
    );
    assert!(
        !log.contains("panicked"),
        "the node panicked: see {:?}",
        platform.log_dir()
    );
    assert_eq!(delivered, sent, "the bystander's messages all arrive, in order");
    assert!(
        peak < baseline + 128 * (1 << 20),
        "node memory grew from {baseline} to {peak} bytes under fuzzing"
    );
}
