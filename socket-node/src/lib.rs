//! The socket node: a long-lived WebSocket server.
//!
//! Shape borrowed from mini-redis: a [`server::Listener`] caps connections with a semaphore, shuts down
//! through a broadcast channel and waits for every connection through an mpsc "done" channel. Each
//! connection is served by [`connection`]; events reach connections on any node through the [`hub`]
//! (Redis pub/sub), and [`handlers`] hold the per-event domain logic.

pub mod acks;
pub mod config;
pub mod connection;
pub mod conversation_events;
pub mod handlers;
pub mod hub;
pub mod messages;
pub mod moderation;
pub mod moderation_events;
pub mod presence;
pub mod server;

use caas_shared::auth::TokenSigner;
use caas_shared::bus::Bus;
use caas_shared::cache::Cache;
use caas_shared::config::Config;
use caas_shared::store::Store;
use caas_shared::Result;
use std::sync::Arc;

/// Everything a connection needs, built once per node.
pub struct Node {
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub bus: Arc<dyn Bus>,
    pub signer: TokenSigner,
    pub hub: Arc<hub::Hub>,
    pub settings: config::NodeSettings,
    /// Each app's settings as recently read, for the checks every send makes.
    pub app_settings: moderation::AppSettingsCache,
}

impl Node {
    /// Builds a node on the given store, cache and bus (shared with other components in the embedded dev
    /// mode), connects its fan-out from `config`, and starts relaying acks, conversation changes and
    /// session revocations.
    pub async fn start(
        config: &Config,
        settings: config::NodeSettings,
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
        bus: Arc<dyn Bus>,
    ) -> Result<Arc<Self>> {
        let hub = hub::Hub::connect(&config.redis_socket_url).await?;
        acks::start(bus.as_ref(), Arc::clone(&hub)).await?;
        conversation_events::start(bus.as_ref(), Arc::clone(&hub)).await?;
        moderation_events::start(bus.as_ref(), Arc::clone(&hub)).await?;
        presence::start(Arc::clone(&cache), Arc::clone(&hub));
        Ok(Arc::new(Self {
            store,
            cache,
            bus,
            signer: TokenSigner::from_config(config),
            hub,
            settings,
            app_settings: Default::default(),
        }))
    }
}
