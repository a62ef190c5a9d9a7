//! The fan-out conformance suite on the Redis pub/sub driver, two nodes on one real Redis, and on the
//! sharded pub/sub driver, two nodes on a real 3-master Redis Cluster (the in-process driver runs the same
//! suite in `caas-shared`'s unit tests).

use caas_e2e::{RedisCluster, Stack};
use caas_shared::ports::fanout::{self, conformance, RedisFanOut};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_fan_out_on_a_cluster_passes_the_conformance_suite() {
    let cluster = RedisCluster::start();
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let node1 = fanout::connect_redis(&cluster.url, tx1).await.unwrap();
    let node2 = fanout::connect_redis(&cluster.url, tx2).await.unwrap();
    conformance::run(node1.as_ref(), &mut rx1, node2.as_ref(), &mut rx2).await;
    // Channels spread over every master's slots: each still reaches its subscriber.
    let channels: Vec<String> = (0..24)
        .map(|i| format!("spread-{i}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    for channel in &channels {
        node1.subscribe(channel).await.unwrap();
    }
    for channel in &channels {
        node2.publish(channel, channel).await.unwrap();
    }
    let mut received = Vec::new();
    while received.len() < channels.len() {
        let (channel, payload) = tokio::time::timeout(std::time::Duration::from_secs(10), rx1.recv())
            .await
            .expect("every spread channel delivers")
            .expect("inbox open");
        assert_eq!(channel, payload);
        received.push(channel);
    }
    received.sort();
    let mut expected = channels.clone();
    expected.sort();
    assert_eq!(received, expected);
}
