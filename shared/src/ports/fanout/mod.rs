//! The fan-out port: publish a payload on a channel and have it reach every node subscribed to that
//! channel. Redis pub/sub across nodes (sharded pub/sub on a Redis Cluster); an in-process broker for the embedded mode (several nodes in one
//! process share it). Incoming payloads arrive on the [`Inbox`] given at connect time.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod memory;
mod redis;
mod redis_cluster;

pub use self::memory::{MemoryBroker, MemoryFanOut};
pub use self::redis::RedisFanOut;
pub use self::redis_cluster::ClusterFanOut;

use crate::Result;
use async_trait::async_trait;
use tokio::sync::mpsc;

/// The Redis fan-out `url` names: pub/sub on one server (`redis://…`) or sharded pub/sub on a Redis
/// Cluster (`redis+cluster://host:port,…`).
pub async fn connect_redis(url: &str, inbox: Inbox) -> Result<std::sync::Arc<dyn FanOut>> {
    Ok(match crate::ports::redis_target::cluster_seeds(url) {
        Some(seeds) => std::sync::Arc::new(ClusterFanOut::connect(seeds?, inbox).await?),
        None => std::sync::Arc::new(RedisFanOut::connect(url, inbox).await?),
    })
}

/// Where a node receives `(channel, payload)` for the channels it subscribed to.
pub type Inbox = mpsc::UnboundedSender<(String, String)>;

/// The fan-out port: one node's view of the pub/sub channels that carry live events between nodes (channel
/// names: [`crate::ports::cache::conversation_channel`] and its siblings).
#[async_trait]
pub trait FanOut: Send + Sync {
    /// Sends `payload` to every subscriber of `channel` on every node, the publishing one included.
    async fn publish(&self, channel: &str, payload: &str) -> Result<()>;
    /// Returns once the subscription is in effect: anything published afterwards arrives.
    async fn subscribe(&self, channel: &str) -> Result<()>;
    /// Stops delivering these channels to this node; channels it is not subscribed to are ignored.
    async fn unsubscribe(&self, channels: &[String]) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_fan_out_passes_the_fan_out_conformance_suite() {
        let broker = MemoryBroker::new();
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let node1 = MemoryFanOut::new(broker.clone(), tx1);
        let node2 = MemoryFanOut::new(broker, tx2);
        conformance::run(&node1, &mut rx1, &node2, &mut rx2).await;
    }
}
