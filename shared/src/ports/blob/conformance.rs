//! One behaviour for every blob driver: the same body runs on the local directory (unit tests) and
//! on a real S3-protocol server (tests/blob_conformance.rs).

use super::{Blobs, ObjectInfo};
use std::time::Duration;

/// Runs the blob conformance checks on `blobs`: missing keys, put/head/get round trips, presigned PUT and GET,
/// idempotent delete and refused unsafe keys. Panics at the first behaviour that differs.
pub async fn run(blobs: &dyn Blobs) {
    let key = format!("conformance/{}/original", uuid::Uuid::new_v4().simple());
    assert_eq!(blobs.head(&key).await.unwrap(), None);
    assert_eq!(blobs.get(&key).await.unwrap(), None);

    blobs.put(&key, b"hello blob".to_vec(), "text/plain").await.unwrap();
    assert_eq!(
        blobs.head(&key).await.unwrap(),
        Some(ObjectInfo {
            size: 10,
            content_type: Some("text/plain".into())
        })
    );
    assert_eq!(
        blobs.get(&key).await.unwrap().as_deref(),
        Some(b"hello blob".as_slice())
    );

    let put = blobs
        .presign_put(&key, "image/png", 42, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(put.method, "PUT");
    assert!(put.expires_at > crate::now_ms());
    let get = blobs
        .presign_get(&key, "photo.png", "image/png", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(get.method, "GET");
    assert_ne!(put.url, get.url);

    // A copy carries bytes and type; listing a folder finds every key under it and nothing beside it.
    let folder = key.trim_end_matches("/original").to_owned();
    let copied = format!("{folder}/nested/copy");
    blobs.copy(&key, &copied).await.unwrap();
    assert_eq!(
        blobs.get(&copied).await.unwrap().as_deref(),
        Some(b"hello blob".as_slice())
    );
    assert_eq!(
        blobs.head(&copied).await.unwrap().unwrap().content_type.as_deref(),
        Some("text/plain")
    );
    assert!(matches!(
        blobs.copy(&format!("{folder}/missing"), &copied).await,
        Err(crate::Error::NotFound(_))
    ));
    let mut listed = blobs.list(&folder).await.unwrap();
    listed.sort();
    assert_eq!(listed, vec![copied.clone(), key.clone()]);
    assert!(blobs
        .list(&format!("{folder}/nested/copy/none"))
        .await
        .unwrap()
        .is_empty());
    assert!(
        blobs.list(&format!("{folder}x")).await.unwrap().is_empty(),
        "a sibling folder is not listed"
    );
    blobs.delete(std::slice::from_ref(&copied)).await.unwrap();

    blobs.delete(std::slice::from_ref(&key)).await.unwrap();
    blobs.delete(std::slice::from_ref(&key)).await.unwrap();
    assert_eq!(blobs.head(&key).await.unwrap(), None);
    assert!(blobs.put("../escape", vec![], "text/plain").await.is_err());
}
