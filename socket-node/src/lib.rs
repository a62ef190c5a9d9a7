//! The socket node: a long-lived WebSocket server.
//!
//! Shape borrowed from mini-redis: a [`server::Listener`] caps connections with a semaphore, shuts down
//! through a broadcast channel and waits for every connection through an mpsc "done" channel. Each
//! connection is served by [`connection`]; events reach connections on any node through the [`hub`]
//! (Redis pub/sub), and [`handlers`] hold the per-event domain logic.

pub mod acks;
pub mod config;
pub mod connection;
pub mod handlers;
pub mod hub;
pub mod server;

use caas_shared::auth::TokenSigner;
use caas_shared::bus::KafkaBus;
use caas_shared::cache::Cache;
use caas_shared::store::Store;
use std::sync::Arc;

/// Everything a connection needs, built once per node.
pub struct Node {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub bus: KafkaBus,
    pub signer: TokenSigner,
    pub hub: Arc<hub::Hub>,
    pub settings: config::NodeSettings,
}
