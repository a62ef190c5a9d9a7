//! Load-generating WebSocket clients for both servers under test: the socket node's JSON protocol and
//! Socket.IO 4 (Engine.IO 4 over a plain WebSocket). One task per connection reads every frame, answers
//! Socket.IO's pings, and records each delivery's latency from the timestamp the sender put in the text.
//!
//! Frames are classified by substring search rather than parsed: at hundreds of thousands of deliveries a
//! second the load generator shares the machine's two cores with the server it measures.

use crate::error::{BenchError, Result};
use futures_util::{SinkExt, StreamExt};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Which server a client talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    /// The socket node, on Redis, the Kafka broker and MongoDB.
    Caas,
    /// The socket node, with Socket.IO clients: the replaced system's clients on the compatibility
    /// layer (`sendMessage` with its original fields), to measure the codec's cost.
    CaasSocketIo,
    /// A plain Socket.IO 4 server: token check, rooms, broadcast, nothing stored.
    SocketIo,
    /// The replaced system's stack: Socket.IO 4 processes sharing rooms through the Redis adapter, each
    /// message produced to Kafka (kafkajs, awaited) before it is broadcast and acknowledged.
    SocketIoStack,
    /// The floor: `floor-relay`, the node's native frames over tokio-tungstenite with in-process rooms
    /// and nothing else — what the harness and the kernel allow.
    Floor,
    /// The floor plus one Redis script and one awaited Kafka produce per message: the backends' share.
    FloorBackends,
}

/// The wire protocol a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The socket node's: `/ws?token=…`, `{"type","id","data"}` requests, `message.new` events.
    Caas,
    /// Socket.IO 4: `/socket.io/?EIO=4&transport=websocket`, auth in the namespace connect packet.
    SocketIo,
    /// Socket.IO 4 to the socket node: as [`Protocol::SocketIo`], joining with
    /// `conversation.subscribe` and receiving `message.new`.
    CaasSocketIo,
}

impl Flavor {
    pub fn label(self) -> &'static str {
        match self {
            Flavor::Caas => "caas socket node",
            Flavor::CaasSocketIo => "caas socket node, Socket.IO clients",
            Flavor::SocketIo => "Socket.IO 4",
            Flavor::SocketIoStack => "Socket.IO 4 + Redis adapter + kafkajs (2 processes)",
            Flavor::Floor => "floor (relay, no backends)",
            Flavor::FloorBackends => "floor + Redis script + Kafka produce",
        }
    }

    /// A short name for command lines, file names and `CAAS_BENCH_SERVERS`.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Caas => "caas",
            Flavor::CaasSocketIo => "caas-socketio",
            Flavor::SocketIo => "socketio",
            Flavor::SocketIoStack => "socketio-stack",
            Flavor::Floor => "floor",
            Flavor::FloorBackends => "floor-backends",
        }
    }

    /// One of the floor relays (no platform behind them: they accept any token).
    pub fn is_floor(self) -> bool {
        matches!(self, Flavor::Floor | Flavor::FloorBackends)
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Flavor::Caas | Flavor::Floor | Flavor::FloorBackends => Protocol::Caas,
            Flavor::CaasSocketIo => Protocol::CaasSocketIo,
            Flavor::SocketIo | Flavor::SocketIoStack => Protocol::SocketIo,
        }
    }
}

/// Marks a benchmark message's text; the digits after it are the send time in µs since [`epoch`].
const STAMP: &str = "lb";

/// The process-wide clock origin both the senders and the receivers use.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub fn micros_since_epoch(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_micros() as u64
}

/// Live counts shared by every connection of a run, so it can tell when all sends were answered and
/// when the last delivery arrived.
#[derive(Debug, Default)]
pub struct Progress {
    pub delivered: AtomicU64,
    pub acknowledged: AtomicU64,
}

/// What one connection saw; merged over all connections at the end of a run.
#[derive(Debug, Default)]
pub struct Tally {
    pub deliveries: u64,
    /// Send → receive latency of each delivery, in µs.
    pub latencies_us: Vec<u32>,
    /// Sends the server acknowledged as accepted.
    pub acks: u64,
    /// Error replies and unexpected closes.
    pub errors: u64,
    /// When this connection received its last delivery.
    pub last_delivery: Option<Instant>,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.deliveries += other.deliveries;
        self.latencies_us.extend(other.latencies_us);
        self.acks += other.acks;
        self.errors += other.errors;
        self.last_delivery = self.last_delivery.max(other.last_delivery);
    }
}

enum Command {
    /// Joins a conversation; the socket node also replays what came after `since_seq`, when given.
    Join {
        conversation_id: String,
        since_seq: Option<i64>,
        done: oneshot::Sender<Result<()>>,
    },
    /// Sends one stamped message; the stamp is the time it was scheduled (so a server that falls behind
    /// shows up as latency, not as a lower send rate). Unstamped (`None`) messages warm up caches and are
    /// not counted as deliveries.
    Send {
        conversation_id: String,
        scheduled: Option<Instant>,
    },
}

/// A connected, authenticated client.
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<Tally>,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Connects from loopback address `source` (spreading connections over 127.0.0.x keeps clear of
/// ephemeral-port exhaustion) and authenticates with `token`.
pub async fn connect(
    protocol: Protocol,
    server: SocketAddr,
    source: Ipv4Addr,
    token: &str,
    progress: Arc<Progress>,
) -> Result<Client> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    let url = match protocol {
        Protocol::Caas => format!("ws://{server}/ws?token={token}"),
        Protocol::SocketIo | Protocol::CaasSocketIo => format!("ws://{server}/socket.io/?EIO=4&transport=websocket"),
    };
    // A small read buffer, as in the socket node: tungstenite zero-fills the whole buffer on each read, so
    // the 128 KiB default would make the load generator itself run out of memory at 100k connections.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    // Bounded: a server out of file descriptors leaves the connection in its listen backlog, never
    // accepted, and the upgrade would wait for ever.
    let upgrade = async {
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        Ok::<_, BenchError>(tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?)
    };
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(30), upgrade)
        .await
        .map_err(|_| BenchError::Failed("no WebSocket upgrade within 30 s".into()))??;
    let first = next_text(&mut ws).await?;
    match protocol {
        Protocol::Caas if first.contains("\"ready\"") => {}
        Protocol::SocketIo | Protocol::CaasSocketIo if first.starts_with('0') => {
            let connect = format!("40{}", serde_json::json!({"token": token}));
            ws.send(Message::text(connect)).await?;
            let answer = next_text(&mut ws).await?;
            if !answer.starts_with("40") {
                return Err(BenchError::Failed(format!(
                    "Socket.IO refused the connection: {answer}"
                )));
            }
        }
        _ => return Err(BenchError::Failed(format!("unexpected first frame: {first}"))),
    }
    let (commands, received) = mpsc::unbounded_channel();
    let task = tokio::spawn(drive(protocol, ws, received, progress));
    Ok(Client { commands, task })
}

async fn next_text(ws: &mut Socket) -> Result<String> {
    let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .map_err(|_| BenchError::Failed("no frame from the server within 30 s".into()))?;
    match frame {
        Some(Ok(Message::Text(text))) => Ok(text.as_str().to_owned()),
        Some(Ok(other)) => Err(BenchError::Failed(format!("unexpected frame {other:?}"))),
        Some(Err(e)) => Err(e.into()),
        None => Err(BenchError::Failed("the server closed the connection".into())),
    }
}

impl Client {
    /// Joins a conversation (socket node: `conversation.subscribe`, with `since_seq` when the client
    /// resumes; Socket.IO: the `join` event) and waits for the server's confirmation, so every later
    /// message reaches this client.
    pub async fn join(&self, conversation_id: &str, since_seq: Option<i64>) -> Result<()> {
        let (done, confirmed) = oneshot::channel();
        self.commands
            .send(Command::Join {
                conversation_id: conversation_id.to_owned(),
                since_seq,
                done,
            })
            .map_err(|_| BenchError::Failed("connection closed".into()))?;
        confirmed
            .await
            .map_err(|_| BenchError::Failed("connection closed before the join was confirmed".into()))?
    }

    pub fn send(&self, conversation_id: &str, scheduled: Option<Instant>) -> bool {
        self.commands
            .send(Command::Send {
                conversation_id: conversation_id.to_owned(),
                scheduled,
            })
            .is_ok()
    }

    /// Closes the connection and returns what it saw.
    pub async fn finish(self) -> Tally {
        drop(self.commands);
        self.task.await.unwrap_or_default()
    }
}

/// The connection's life: requests go out in order, every frame that comes in is classified.
async fn drive(
    protocol: Protocol,
    ws: Socket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    progress: Arc<Progress>,
) -> Tally {
    let (mut sink, mut frames) = ws.split();
    let mut tally = Tally::default();
    let mut next_id: u64 = 0;
    let mut pending_join: Option<(String, oneshot::Sender<Result<()>>)> = None;
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break };
                next_id += 1;
                let frame = match command {
                    Command::Join { conversation_id, since_seq, done } => {
                        let frame = join_frame(protocol, next_id, &conversation_id, since_seq);
                        pending_join = Some((reply_marker(protocol, next_id), done));
                        frame
                    }
                    Command::Send { conversation_id, scheduled } => {
                        send_frame(protocol, next_id, &conversation_id, scheduled.map(micros_since_epoch))
                    }
                };
                if sink.send(Message::text(frame)).await.is_err() {
                    tally.errors += 1;
                    break;
                }
            }
            frame = frames.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => { tally.errors += 1; break; }
                    Some(Ok(_)) => continue,
                };
                let text = text.as_str();
                if let Some(sent_us) = delivery_stamp(protocol, text) {
                    let now = Instant::now();
                    tally.deliveries += 1;
                    tally.latencies_us.push(micros_since_epoch(now).saturating_sub(sent_us).min(u32::MAX as u64) as u32);
                    tally.last_delivery = Some(now);
                    progress.delivered.fetch_add(1, Ordering::Relaxed);
                } else if protocol != Protocol::Caas && text == "2" {
                    if sink.send(Message::text("3")).await.is_err() { break; }
                } else if pending_join.as_ref().is_some_and(|(marker, _)| is_reply(protocol, text, marker)) {
                    let ok = protocol == Protocol::SocketIo || text.contains("\"ok\":true");
                    let (_, done) = pending_join.take().expect("checked above");
                    let _ = done.send(if ok { Ok(()) } else { Err(BenchError::Failed(format!("join refused: {text}"))) });
                } else if is_error(protocol, text) {
                    tally.errors += 1;
                } else if is_ack(protocol, text) {
                    tally.acks += 1;
                    progress.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    let _ = sink.close().await;
    tally
}

fn join_frame(protocol: Protocol, id: u64, conversation_id: &str, since_seq: Option<i64>) -> String {
    match protocol {
        Protocol::Caas => serde_json::json!({
            "type": "conversation.subscribe", "id": id.to_string(),
            "data": {"conversation_id": conversation_id, "since_seq": since_seq}
        })
        .to_string(),
        Protocol::SocketIo => format!("42{id}{}", serde_json::json!(["join", conversation_id])),
        Protocol::CaasSocketIo => format!(
            "42{id}{}",
            serde_json::json!(["conversation.subscribe", {"conversation_id": conversation_id, "since_seq": since_seq}])
        ),
    }
}

fn send_frame(protocol: Protocol, id: u64, conversation_id: &str, stamp_us: Option<u64>) -> String {
    let text = stamp_us.map_or_else(|| "warm-up".to_owned(), |us| format!("{STAMP}{us}"));
    match protocol {
        Protocol::Caas => serde_json::json!({
            "type": "message.send", "id": id.to_string(),
            "data": {"conversation_id": conversation_id, "client_msg_id": format!("m{id}"), "text": text}
        })
        .to_string(),
        Protocol::SocketIo | Protocol::CaasSocketIo => format!(
            "42{id}{}",
            serde_json::json!(["sendMessage", {"conversationId": conversation_id, "messageContent": text}])
        ),
    }
}

/// What only the reply to request `id` contains (the socket node's reply keys come in any order).
fn reply_marker(protocol: Protocol, id: u64) -> String {
    match protocol {
        Protocol::Caas => format!("\"reply_to\":\"{id}\""),
        Protocol::SocketIo | Protocol::CaasSocketIo => format!("43{id}["),
    }
}

fn is_reply(protocol: Protocol, text: &str, marker: &str) -> bool {
    match protocol {
        Protocol::Caas => text.contains(marker),
        Protocol::SocketIo | Protocol::CaasSocketIo => text.starts_with(marker),
    }
}

/// The send time stamped into a delivered message, if `text` is a delivery.
fn delivery_stamp(protocol: Protocol, text: &str) -> Option<u64> {
    let field = match protocol {
        Protocol::Caas if text.contains("\"message.new\"") => "\"text\":\"",
        Protocol::SocketIo if text.starts_with("42[\"message\"") => "\"messageContent\":\"",
        Protocol::CaasSocketIo if text.starts_with("42[\"message.new\"") => "\"text\":\"",
        _ => return None,
    };
    let start = text.find(field)? + field.len();
    let digits = text[start..].strip_prefix(STAMP)?;
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    digits[..end].parse().ok()
}

fn is_error(protocol: Protocol, text: &str) -> bool {
    match protocol {
        Protocol::Caas => text.contains("\"ok\":false"),
        Protocol::SocketIo | Protocol::CaasSocketIo => text.starts_with("44") || text.contains("\"ok\":false"),
    }
}

fn is_ack(protocol: Protocol, text: &str) -> bool {
    match protocol {
        Protocol::Caas => text.contains("\"ok\":true"),
        Protocol::SocketIo | Protocol::CaasSocketIo => text.starts_with("43"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_back_from_both_protocols() {
        let caas = r#"{"type":"message.new","data":{"id":"x","seq":3,"text":"lb123456","sender_id":"u"}}"#;
        assert_eq!(delivery_stamp(Protocol::Caas, caas), Some(123_456));
        let socket_io = r#"42["message",{"conversationId":"c","senderId":"u","messageContent":"lb987"}]"#;
        assert_eq!(delivery_stamp(Protocol::SocketIo, socket_io), Some(987));
        let ours = r#"42["message.new",{"id":"x","seq":3,"text":"lb55","sender_id":"u"},"3@c"]"#;
        assert_eq!(delivery_stamp(Protocol::CaasSocketIo, ours), Some(55));
        let mirrored = r#"42["message:new",{"id":"x","seq":3,"text":"lb55","sender_id":"u"},"3@c"]"#;
        assert_eq!(delivery_stamp(Protocol::CaasSocketIo, mirrored), None, "counted once");
        assert_eq!(
            delivery_stamp(Protocol::Caas, r#"{"type":"message.new","data":{"text":"hello"}}"#),
            None
        );
        assert_eq!(
            delivery_stamp(Protocol::Caas, r#"{"reply_to":"1","ok":true,"data":{"text":"lb1"}}"#),
            None
        );
    }

    #[test]
    fn replies_are_matched_to_their_request() {
        let replied = |protocol, text: &str| is_reply(protocol, text, &reply_marker(protocol, 12));
        assert!(replied(Protocol::Caas, r#"{"data":{},"ok":true,"reply_to":"12"}"#));
        assert!(!replied(Protocol::Caas, r#"{"data":{},"ok":true,"reply_to":"123"}"#));
        assert!(replied(Protocol::SocketIo, r#"4312[{"ok":true}]"#));
        assert!(!replied(Protocol::SocketIo, r#"43123[{"ok":true}]"#));
    }
}
