//! The load benchmark's floor: a minimal relay that speaks the socket node's native frames (`ready`,
//! `conversation.subscribe`, `message.send` → an ack and `message.new` to every member) with rooms in
//! this process and nothing else — tokio and tokio-tungstenite as the node uses them, each message's
//! frame built once for all its recipients. It is not part of the product: it shows what the harness,
//! the kernel and the WebSocket layer allow on the machine, so the report can say how far the node is from
//! that. With `--redis URL --kafka BROKERS` each send first runs one Redis script and one Kafka produce
//! (acks=all, awaited) — the backends' share of the node's work, and no other logic.
//!
//! `floor-relay --bind 127.0.0.1:PORT [--redis redis://… --kafka host:port]`

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Outlet = mpsc::UnboundedSender<Utf8Bytes>;

/// One conversation: its next seq and who is in it.
#[derive(Default)]
struct Room {
    seq: i64,
    members: Vec<(u64, Outlet)>,
}

/// The backends a send touches in the second variant.
struct Backends {
    redis: redis::aio::MultiplexedConnection,
    script: redis::Script,
    producer: rdkafka::producer::FutureProducer,
}

/// What every send does to Redis in the backends variant: a counter and a claim, one script.
const SEND_SCRIPT: &str = r"
local seq = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], seq, 'EX', 60)
return seq
";

const TOPIC: &str = "caas.floor";

struct Relay {
    rooms: Mutex<HashMap<String, Room>>,
    backends: Option<Backends>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let (mut bind, mut redis_url, mut kafka) = (None, None, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => bind = Some(value()?),
            "--redis" => redis_url = Some(value()?),
            "--kafka" => kafka = Some(value()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let backends = match (redis_url, kafka) {
        (Some(redis_url), Some(brokers)) => Some({
            ensure_topic(&brokers).await?;
            Backends {
                redis: redis::Client::open(redis_url)?
                    .get_multiplexed_async_connection()
                    .await?,
                script: redis::Script::new(SEND_SCRIPT),
                producer: rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .set("acks", "all")
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "1")
                    .create()?,
            }
        }),
        (None, None) => None,
        _ => return Err("--redis and --kafka go together".into()),
    };
    let listener = TcpListener::bind(bind.ok_or("--bind ADDR is required")?).await?;
    println!("listening on {}", listener.local_addr()?);
    let relay = Arc::new(Relay {
        rooms: Mutex::default(),
        backends,
    });
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        tokio::spawn(serve(Arc::clone(&relay), stream, next_id));
    }
}

async fn serve(relay: Arc<Relay>, stream: TcpStream, id: u64) {
    let _ = stream.set_nodelay(true);
    // The node's read buffer size: the same memory per connection for the same work.
    let config = WebSocketConfig::default().read_buffer_size(1024);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut frames) = ws.split();
    let (outlet, mut outbox) = mpsc::unbounded_channel::<Utf8Bytes>();
    // The writer: everything already queued goes out before one flush, as the node's writer does.
    let writer = tokio::spawn(async move {
        while let Some(first) = outbox.recv().await {
            let mut next = Some(first);
            while let Some(frame) = next.take().or_else(|| outbox.try_recv().ok()) {
                if sink.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let _ = outlet.send(
        json!({"type": "ready", "data": {"connection_id": id}})
            .to_string()
            .into(),
    );
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(frame)) = frames.next().await {
        let Message::Text(text) = frame else { continue };
        let Ok(request) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let request_id = request["id"].clone();
        let data = &request["data"];
        let conversation_id = data["conversation_id"].as_str().unwrap_or_default().to_owned();
        match request["type"].as_str() {
            Some("conversation.subscribe") => {
                let last_seq = {
                    let mut rooms = relay.rooms.lock().expect("rooms");
                    let room = rooms.entry(conversation_id.clone()).or_default();
                    room.members.push((id, outlet.clone()));
                    room.seq
                };
                joined.push(conversation_id.clone());
                let reply = json!({"reply_to": request_id, "ok": true, "data": {
                    "conversation_id": conversation_id, "epoch": "floor", "last_seq": last_seq,
                    "recovered": true, "messages": [], "has_more": false,
                }});
                let _ = outlet.send(reply.to_string().into());
            }
            Some("message.send") => {
                let client_msg_id = data["client_msg_id"].as_str().unwrap_or_default().to_owned();
                if let Some(backends) = &relay.backends {
                    if let Err(e) = touch_backends(backends, &conversation_id, &client_msg_id, text.as_str()).await {
                        let reply = json!({"reply_to": request_id, "ok": false,
                            "error": {"code": "unavailable", "message": e.to_string()}});
                        let _ = outlet.send(reply.to_string().into());
                        continue;
                    }
                }
                let (seq, members) = {
                    let mut rooms = relay.rooms.lock().expect("rooms");
                    let room = rooms.entry(conversation_id.clone()).or_default();
                    room.seq += 1;
                    (
                        room.seq,
                        room.members.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
                    )
                };
                let message_id = format!("{conversation_id}:{seq}");
                let ack = json!({"reply_to": request_id, "ok": true, "data": {
                    "conversation_id": conversation_id, "client_msg_id": client_msg_id,
                    "message_id": message_id, "seq": seq, "status": "accepted", "duplicate": false,
                }});
                let _ = outlet.send(ack.to_string().into());
                let event: Utf8Bytes = json!({"type": "message.new", "data": {
                    "id": message_id, "conversation_id": conversation_id, "seq": seq,
                    "sender_id": id.to_string(), "client_msg_id": client_msg_id,
                    "text": data["text"], "created_at": 0,
                }})
                .to_string()
                .into();
                for member in members {
                    let _ = member.send(event.clone());
                }
            }
            _ => {
                let reply = json!({"reply_to": request_id, "ok": true, "data": {}});
                let _ = outlet.send(reply.to_string().into());
            }
        }
    }
    {
        let mut rooms = relay.rooms.lock().expect("rooms");
        for conversation_id in joined {
            if let Some(room) = rooms.get_mut(&conversation_id) {
                room.members.retain(|(member, _)| *member != id);
            }
        }
    }
    drop(outlet);
    let _ = writer.await;
}

/// Creates the relay's topic (one partition per core is plenty for a floor), if it is not there yet.
async fn ensure_topic(brokers: &str) -> Result<(), BoxError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let topic = NewTopic::new(TOPIC, 2, TopicReplication::Fixed(1));
    for result in admin.create_topics([&topic], &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(format!("creating {TOPIC}: {code}").into()),
        }
    }
    Ok(())
}

/// The backends' share of a send: one script on Redis, one awaited produce.
async fn touch_backends(
    backends: &Backends,
    conversation_id: &str,
    client_msg_id: &str,
    frame: &str,
) -> Result<(), BoxError> {
    let mut redis = backends.redis.clone();
    let _: i64 = backends
        .script
        .key(format!("floor:{{{conversation_id}}}:seq"))
        .key(format!("floor:{{{conversation_id}}}:claim:{client_msg_id}"))
        .invoke_async(&mut redis)
        .await?;
    let record = rdkafka::producer::FutureRecord::to(TOPIC)
        .key(conversation_id)
        .payload(frame);
    backends
        .producer
        .send(record, std::time::Duration::from_secs(5))
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}
