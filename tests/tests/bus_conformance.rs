//! The bus conformance suite on the Kafka driver, against the real Kafka-protocol broker (the in-memory
//! driver runs the same suite in `caas-shared`'s unit tests).

use caas_e2e::Stack;
use caas_shared::ports::bus::{conformance, KafkaBus, DEFAULT_PARTITIONS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bus_passes_the_conformance_suite() {
    let stack = Stack::obtain();
    let brokers = stack.get("CAAS_BUS_URL").trim_start_matches("kafka://");
    let bus = KafkaBus::connect(brokers, DEFAULT_PARTITIONS).unwrap();
    let prefix = format!("conformance-{}", uuid::Uuid::new_v4().simple());
    conformance::run(&bus, &prefix).await;
}
