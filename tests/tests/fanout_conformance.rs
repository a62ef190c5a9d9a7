//! The fan-out conformance suite on the Redis pub/sub driver, two nodes on one real Redis (the
//! in-process driver runs the same suite in `caas-shared`'s unit tests).

use caas_e2e::Stack;
use caas_shared::ports::fanout::{conformance, RedisFanOut};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fan_out_passes_the_conformance_suite() {
    let stack = Stack::obtain();
    let url = stack.get("CAAS_CACHE_URL");
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let node1 = RedisFanOut::connect(url, tx1).await.unwrap();
    let node2 = RedisFanOut::connect(url, tx2).await.unwrap();
    conformance::run(&node1, &mut rx1, &node2, &mut rx2).await;
}
