//! The cache conformance suite on the Redis driver, against a real Redis and a real 3-master Redis
//! Cluster (the in-memory driver runs the same suite in `caas-shared`'s unit tests).

use caas_e2e::{RedisCluster, Stack};
use caas_shared::ports::cache::{conformance, RedisCache};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_passes_the_conformance_suite() {
    let stack = Stack::obtain();
    let cache = RedisCache::connect(stack.get("CAAS_CACHE_URL")).await.unwrap();
    conformance::run(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_on_a_cluster_passes_the_conformance_suite() {
    let cluster = RedisCluster::start();
    let cache = RedisCache::connect(&cluster.url).await.unwrap();
    conformance::run(&cache).await;
}
