//! One shape for every Kafka-triggered function: a [`KafkaFunction`] names itself and its topics and
//! handles a batch. Deployed, [`run_kafka_function`] serves it to Lambda's Kafka event source
//! mapping; locally, the bridge feeds it from its topic in its own consumer group.

use crate::Result;
use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::{service_fn, LambdaEvent};

/// Re-exported so the functions implement [`KafkaFunction`] without depending on `async-trait`.
pub use async_trait::async_trait;

/// A function invoked with batches of its topics' records, in AWS's `KafkaEvent` shape.
#[async_trait]
pub trait KafkaFunction: Send + Sync {
    /// The function's name; locally also its consumer group (see
    /// [`Config::consumer_group`](crate::config::Config::consumer_group)).
    const NAME: &'static str;
    /// The topics it consumes: deployed, one event source mapping each; locally, one consumer each
    /// (in the function's group when there is one topic, else in `{group}.{topic}`).
    const TOPICS: &'static [&'static str];
    /// What one invocation did: Lambda returns it as the function's response.
    type Report: serde::Serialize + Send;

    /// Handles one batch. An error fails the whole batch, which is then delivered again, so handling
    /// must be idempotent.
    async fn handle(&self, event: &KafkaEvent) -> Result<Self::Report>;
}

/// Serves `function` on the Lambda runtime until the runtime stops: each invocation's `KafkaEvent` is
/// handed to [`KafkaFunction::handle`], its report returned and its error reported to Lambda.
pub async fn run_kafka_function<F: KafkaFunction>(function: F) -> std::result::Result<(), lambda_runtime::Error> {
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| async move {
        function
            .handle(&event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
