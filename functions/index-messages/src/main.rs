//! Lambda entry point of index-messages: wires config, the index directory and the handler.
//! The template gives it a reserved concurrency of 1: the index has a single writer.

use aws_lambda_events::event::kafka::KafkaEvent;
use caas_shared::config::Config;
use caas_shared::search::SearchIndex;
use index_messages::IndexMessages;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas_shared::telemetry::init();
    let config = Config::from_env()?;
    let handler = IndexMessages::new(SearchIndex::open(Some(config.required_search_dir()?))?);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| async move {
        handler
            .handle(&event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
