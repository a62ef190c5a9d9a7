//! Lambda entry point of deliver-webhooks (the event source mappings on `caas.messages`,
//! `caas.conversations` and `caas.audit`): wires config, the store, the cache (presence) and the handler.
//! The template gives it a reserved concurrency of 1: each app's event log has one writer.

use caas_shared::config::Config;
use caas_shared::ports::{cache, store};
use caas_shared::runtime::kafka_function::run_kafka_function;
use deliver_webhooks::DeliverWebhooks;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    let cache = cache::connect(&config.cache_url).await?;
    // No worker shares this process when deployed: the scheduled webhook-worker polls the queue.
    let queued = Arc::new(tokio::sync::Notify::new());
    run_kafka_function(DeliverWebhooks::new(store, cache, queued)).await
}
