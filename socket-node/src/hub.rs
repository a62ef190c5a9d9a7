//! Routes events to local connections and across nodes.
//!
//! Each node holds one Redis pub/sub connection and subscribes to a channel only while at least one of
//! its connections wants it, so a message is published once and reaches only nodes with an interested
//! client. Payloads are serialised once and shared by every recipient.

use caas_shared::Result;
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub type ConnectionId = u64;

/// The sending side of one client connection.
pub struct Outlet {
    pub frames: mpsc::Sender<Utf8Bytes>,
    /// Signalled when the client's queue is full: the connection closes instead of silently dropping.
    pub overflow: Arc<Notify>,
}

#[derive(Default)]
struct Routes {
    outlets: HashMap<ConnectionId, Outlet>,
    channels: HashMap<String, HashSet<ConnectionId>>,
    channels_of: HashMap<ConnectionId, HashSet<String>>,
}

pub struct Hub {
    /// Publishes to other nodes (a pub/sub connection cannot publish).
    publisher: redis::aio::ConnectionManager,
    routes: Mutex<Routes>,
    /// Serialises Redis SUBSCRIBE/UNSUBSCRIBE with the route changes that cause them.
    sink: tokio::sync::Mutex<PubSubSink>,
    next_id: AtomicU64,
}

impl Hub {
    pub async fn connect(redis_url: &str) -> Result<Arc<Self>> {
        let client = redis::Client::open(redis_url)?;
        let (sink, stream) = client.get_async_pubsub().await?.split();
        let publisher = redis::aio::ConnectionManager::new(client.clone()).await?;
        let hub = Arc::new(Self {
            publisher,
            routes: Mutex::new(Routes::default()),
            sink: tokio::sync::Mutex::new(sink),
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(Arc::clone(&hub).relay(client, stream));
        Ok(hub)
    }

    /// Delivers everything Redis sends us; reconnects and resubscribes when the connection drops.
    async fn relay(self: Arc<Self>, client: redis::Client, mut stream: redis::aio::PubSubStream) {
        loop {
            while let Some(message) = stream.next().await {
                match message.get_payload::<String>() {
                    Ok(payload) => {
                        self.deliver_local(message.get_channel_name(), Utf8Bytes::from(payload));
                    }
                    Err(e) => tracing::warn!(error = %e, "non-text pub/sub payload ignored"),
                }
            }
            tracing::error!("redis pub/sub connection lost; reconnecting");
            stream = loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                match self.resubscribe(&client).await {
                    Ok(stream) => break stream,
                    Err(e) => tracing::error!(error = %e, "redis pub/sub reconnect failed"),
                }
            };
        }
    }

    async fn resubscribe(&self, client: &redis::Client) -> Result<redis::aio::PubSubStream> {
        let mut sink_guard = self.sink.lock().await;
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        let channels: Vec<String> = self
            .routes
            .lock()
            .expect("routes lock")
            .channels
            .keys()
            .cloned()
            .collect();
        if !channels.is_empty() {
            sink.subscribe(&channels).await?;
        }
        *sink_guard = sink;
        Ok(stream)
    }

    /// Sends `payload` to every subscriber of `channel` on every node, this one included.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<()> {
        let _: i64 = redis::AsyncCommands::publish(&mut self.publisher.clone(), channel, payload).await?;
        Ok(())
    }

    pub fn register(&self, outlet: Outlet) -> ConnectionId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.routes.lock().expect("routes lock").outlets.insert(id, outlet);
        id
    }

    /// Routes `channel` to the connection; returns once Redis confirmed the subscription, so anything
    /// published afterwards is guaranteed to arrive.
    pub async fn subscribe(&self, connection: ConnectionId, channel: &str) -> Result<()> {
        let mut sink = self.sink.lock().await;
        let first_local_subscriber = {
            let mut routes = self.routes.lock().expect("routes lock");
            if !routes.outlets.contains_key(&connection) {
                return Ok(());
            }
            routes
                .channels_of
                .entry(connection)
                .or_default()
                .insert(channel.to_owned());
            let subscribers = routes.channels.entry(channel.to_owned()).or_default();
            subscribers.insert(connection);
            subscribers.len() == 1
        };
        if first_local_subscriber {
            if let Err(e) = sink.subscribe(channel).await {
                self.remove_route(connection, channel);
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn remove_route(&self, connection: ConnectionId, channel: &str) -> bool {
        let mut routes = self.routes.lock().expect("routes lock");
        if let Some(channels) = routes.channels_of.get_mut(&connection) {
            channels.remove(channel);
        }
        let now_empty = match routes.channels.get_mut(channel) {
            Some(subscribers) => {
                subscribers.remove(&connection);
                subscribers.is_empty()
            }
            None => false,
        };
        if now_empty {
            routes.channels.remove(channel);
        }
        now_empty
    }

    /// Forgets a closed connection and drops Redis subscriptions nobody on this node needs any more.
    pub async fn unregister(&self, connection: ConnectionId) {
        let mut sink = self.sink.lock().await;
        let channels = {
            let mut routes = self.routes.lock().expect("routes lock");
            routes.outlets.remove(&connection);
            routes.channels_of.remove(&connection).unwrap_or_default()
        };
        let mut abandoned = Vec::new();
        for channel in channels {
            if self.remove_route(connection, &channel) {
                abandoned.push(channel);
            }
        }
        if !abandoned.is_empty() {
            if let Err(e) = sink.unsubscribe(&abandoned).await {
                tracing::warn!(error = %e, "redis unsubscribe failed");
            }
        }
    }

    /// Queues `payload` for every local subscriber of `channel`; returns how many got it.
    pub fn deliver_local(&self, channel: &str, payload: Utf8Bytes) -> usize {
        let routes = self.routes.lock().expect("routes lock");
        let Some(subscribers) = routes.channels.get(channel) else {
            return 0;
        };
        let mut delivered = 0;
        for id in subscribers {
            let Some(outlet) = routes.outlets.get(id) else { continue };
            match outlet.frames.try_send(payload.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => outlet.overflow.notify_one(),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }

    pub fn connection_count(&self) -> usize {
        self.routes.lock().expect("routes lock").outlets.len()
    }
}
