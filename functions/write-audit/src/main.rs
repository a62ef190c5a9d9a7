//! Lambda entry point of write-audit: wires config, the store and the handler.

use caas_shared::config::Config;
use caas_shared::ports::store;
use caas_shared::runtime::kafka_function::run_kafka_function;
use write_audit::WriteAudit;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let store = store::connect(&config.store_url, &config.store_database).await?;
    run_kafka_function(WriteAudit::new(store)).await
}
