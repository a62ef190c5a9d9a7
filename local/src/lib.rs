//! Local development tools: the gateway that serves every HTTP function on one port, the bridge that
//! feeds bus records to Kafka-triggered functions the way AWS's event source mapping does, and the
//! embedded dev mode that runs both with a socket node in one process.

pub mod bridge;

use caas_shared::bus::Bus;
use caas_shared::cache::Cache;
use caas_shared::config::Config;
use caas_shared::events::topics;
use caas_shared::store::Store;
use caas_shared::Result;
use std::future::Future;
use std::sync::Arc;

/// Every HTTP function mounted on its `/api/v1/...` routes, as API Gateway does when deployed.
pub fn gateway(config: &Config, store: Arc<dyn Store>, cache: Arc<dyn Cache>, bus: Arc<dyn Bus>) -> axum::Router {
    let auth = auth::AuthService::new(Arc::clone(&store), config);
    let conversations = conversations::ConversationsApi::new(store, cache, bus, config);
    caas_shared::http::finish_router(auth::routes(Arc::new(auth)).merge(conversations::routes(Arc::new(conversations))))
}

/// Feeds every Kafka-triggered function from its topic, one consumer group per function, until
/// `shutdown` resolves; each in-flight batch finishes (and is committed) first.
pub async fn run_functions(
    config: &Config,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let persist = persist_messages::PersistMessages::new(store, Arc::clone(&bus));
    let persist = &persist;
    bridge::run(
        bus.as_ref(),
        topics::MESSAGES,
        &config.consumer_group("persist-messages"),
        bridge::BatchPolicy::default(),
        |event| async move { persist.handle(&event).await },
        shutdown,
    )
    .await
}
