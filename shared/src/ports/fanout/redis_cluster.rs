//! Sharded pub/sub on a Redis Cluster (`SPUBLISH`/`SSUBSCRIBE`): a channel lives on the master that owns
//! its slot, so fan-out traffic spreads over the masters instead of being copied to every one of them
//! (what plain `PUBLISH` does on a cluster).

use super::{FanOut, Inbox};
use crate::ports::redis_target;
use crate::Result;
use async_trait::async_trait;
use redis::aio::{AsyncPushSender, SendError};
use redis::cluster_async::ClusterConnection;
use redis::{ProtocolVersion, PushInfo, PushKind};

/// The Redis Cluster driver of the fan-out port: one RESP3 connection per master, which carries both the
/// node's publishes and its subscriptions and resubscribes them itself after a reconnect or a slot move.
pub struct ClusterFanOut {
    connection: ClusterConnection,
}

impl ClusterFanOut {
    /// Connects to the cluster `seeds` name and relays every payload of this node's subscriptions to
    /// `inbox`, straight from the connection's reader (no task of its own).
    pub async fn connect(seeds: Vec<String>, inbox: Inbox) -> Result<Self> {
        let client = redis_target::cluster_builder(seeds)
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(InboxSender(inbox))
            .build()?;
        Ok(Self {
            connection: client.get_async_connection().await?,
        })
    }
}

/// Hands each sharded message to the node's inbox as `(channel, payload)`.
struct InboxSender(Inbox);

impl AsyncPushSender for InboxSender {
    fn send(&self, info: PushInfo) -> std::result::Result<(), SendError> {
        match info.kind {
            PushKind::SMessage | PushKind::Message => {
                let mut data = info.data.into_iter();
                let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                    tracing::warn!("malformed pub/sub message ignored");
                    return Ok(());
                };
                match (
                    redis::from_redis_value::<String>(channel),
                    redis::from_redis_value::<String>(payload),
                ) {
                    (Ok(channel), Ok(payload)) => self.0.send((channel, payload)).map_err(|_| SendError),
                    _ => {
                        tracing::warn!("non-text pub/sub payload ignored");
                        Ok(())
                    }
                }
            }
            PushKind::Disconnection => {
                // Whatever was published while the link was down is gone, as with one server; clients
                // catch up from the recent window with `since_seq`.
                tracing::error!("redis cluster pub/sub link lost; the connection reconnects and resubscribes");
                Ok(())
            }
            _ => Ok(()), // subscription confirmations
        }
    }
}

#[async_trait]
impl FanOut for ClusterFanOut {
    async fn publish(&self, channel: &str, payload: &str) -> Result<()> {
        let _: i64 = redis::cmd("SPUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<()> {
        self.connection.clone().ssubscribe(channel).await?;
        Ok(())
    }

    async fn unsubscribe(&self, channels: &[String]) -> Result<()> {
        // One command per channel: channels of different slots cannot share one.
        for channel in channels {
            self.connection.clone().sunsubscribe(channel).await?;
        }
        Ok(())
    }
}
