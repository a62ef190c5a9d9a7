//! The store conformance suite on the MongoDB driver, against the real MongoDB-protocol server (the
//! in-memory driver runs the same suite in `caas-shared`'s unit tests).

use caas_e2e::Stack;
use caas_shared::ports::store::{conformance, MongoStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_store_passes_the_conformance_suite() {
    let stack = Stack::obtain();
    let database = format!("e2e_conformance_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let store = MongoStore::connect(stack.get("CAAS_STORE_URL"), &database)
        .await
        .unwrap();
    conformance::run(&store).await;
}
