//! Redis pub/sub fan-out: one subscriber connection per node, resubscribed after a reconnect.

use super::{FanOut, Inbox};
use crate::Result;
use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The Redis pub/sub driver of the fan-out port: one node's connections, resubscribing its channels after a
/// reconnect.
pub struct RedisFanOut {
    /// Publishing needs an ordinary connection: a pub/sub connection cannot PUBLISH.
    publisher: ConnectionManager,
    sink: Arc<tokio::sync::Mutex<PubSubSink>>,
    /// What to resubscribe after a reconnect.
    channels: Arc<Mutex<HashSet<String>>>,
}

impl RedisFanOut {
    /// Connects to the Redis at `url` and relays every payload of this node's subscriptions to `inbox` (from a task
    /// spawned here).
    pub async fn connect(url: &str, inbox: Inbox) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let (sink, stream) = client.get_async_pubsub().await?.split();
        let fan_out = Self {
            publisher: crate::ports::redis_target::server_connection(client.clone()).await?,
            sink: Arc::new(tokio::sync::Mutex::new(sink)),
            channels: Arc::default(),
        };
        tokio::spawn(relay(
            client,
            stream,
            inbox,
            Arc::clone(&fan_out.sink),
            Arc::clone(&fan_out.channels),
        ));
        Ok(fan_out)
    }
}

fn channels_of(set: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    set.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Forwards everything Redis sends to the inbox; reconnects and resubscribes when the connection drops.
async fn relay(
    client: redis::Client,
    mut stream: PubSubStream,
    inbox: Inbox,
    sink: Arc<tokio::sync::Mutex<PubSubSink>>,
    channels: Arc<Mutex<HashSet<String>>>,
) {
    loop {
        while let Some(message) = stream.next().await {
            match message.get_payload::<String>() {
                Ok(payload) => {
                    if inbox.send((message.get_channel_name().to_owned(), payload)).is_err() {
                        return; // the node is gone
                    }
                }
                Err(e) => tracing::warn!(error = %e, "non-text pub/sub payload ignored"),
            }
        }
        tracing::error!("redis pub/sub connection lost; reconnecting");
        stream = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match resubscribe(&client, &sink, &channels).await {
                Ok(stream) => break stream,
                Err(e) => tracing::error!(error = %e, "redis pub/sub reconnect failed"),
            }
        };
    }
}

async fn resubscribe(
    client: &redis::Client,
    sink: &tokio::sync::Mutex<PubSubSink>,
    channels: &Mutex<HashSet<String>>,
) -> Result<PubSubStream> {
    let mut sink = sink.lock().await;
    let (mut fresh, stream) = client.get_async_pubsub().await?.split();
    let wanted: Vec<String> = channels_of(channels).iter().cloned().collect();
    if !wanted.is_empty() {
        fresh.subscribe(&wanted).await?;
    }
    *sink = fresh;
    Ok(stream)
}

#[async_trait]
impl FanOut for RedisFanOut {
    async fn publish(&self, channel: &str, payload: &str) -> Result<()> {
        let _: i64 = redis::AsyncCommands::publish(&mut self.publisher.clone(), channel, payload).await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<()> {
        let mut sink = self.sink.lock().await;
        sink.subscribe(channel).await?;
        channels_of(&self.channels).insert(channel.to_owned());
        Ok(())
    }

    async fn unsubscribe(&self, channels: &[String]) -> Result<()> {
        let mut sink = self.sink.lock().await;
        {
            let mut set = channels_of(&self.channels);
            for channel in channels {
                set.remove(channel);
            }
        }
        sink.unsubscribe(channels).await?;
        Ok(())
    }
}
