//! The blob conformance suite on the S3 driver, against the real S3-protocol server (the local
//! directory driver runs the same suite in `caas-shared`'s unit tests).

use caas_e2e::Stack;
use caas_shared::config::Config;
use caas_shared::ports::blob::{conformance, s3::S3Blobs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blobs_pass_the_conformance_suite() {
    let stack = Stack::obtain();
    let config = Config::from_lookup(|key| match key {
        "CAAS_JWT_SECRET" => Some("blob-conformance-secret-0123456789abcdef".into()),
        _ => stack.env.get(key).cloned(),
    })
    .unwrap();
    let blobs = S3Blobs::connect(&config).await.unwrap();
    blobs.ensure_bucket().await.unwrap();
    conformance::run(&blobs).await;
}
