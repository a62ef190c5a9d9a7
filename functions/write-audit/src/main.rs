//! Lambda entry point of write-audit: wires config, the store and the handler.

use aws_lambda_events::event::kafka::KafkaEvent;
use caas_shared::config::Config;
use caas_shared::store;
use lambda_runtime::{service_fn, LambdaEvent};
use write_audit::WriteAudit;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas_shared::telemetry::init();
    let config = Config::from_env()?;
    let handler = WriteAudit::new(store::connect(&config.store_url, &config.store_database).await?);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| async move {
        handler
            .handle(&event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
