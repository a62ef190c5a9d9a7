//! Lambda entry point of index-messages: wires config, the index directory and the handler.
//! The template gives it a reserved concurrency of 1: the index has a single writer.

use caas_shared::config::Config;
use caas_shared::ports::search::SearchIndex;
use caas_shared::runtime::kafka_function::run_kafka_function;
use index_messages::IndexMessages;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    caas_shared::runtime::telemetry::init();
    let config = Config::from_env()?;
    let index = SearchIndex::open(Some(config.required_search_dir()?))?;
    run_kafka_function(IndexMessages::new(index)).await
}
