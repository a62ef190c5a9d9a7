//! The blob port: where attachment bytes, thumbnails and exports live. Two drivers chosen by URL:
//! `s3://bucket?endpoint=…&region=…` (aws-sdk-s3, cargo feature `s3`) and `file:///dir` (a local
//! directory whose presigned-style URLs are served by the local gateway, for the embedded dev mode).
//!
//! Clients never stream bytes through a function: they get a short-lived URL (presigned PUT to upload,
//! presigned GET to download) and talk to the blob store directly.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod local;
#[cfg(feature = "s3")]
pub mod s3;

use crate::config::Config;
use crate::{Error, Result};
use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A request a client can make without credentials until `expires_at`: the URL, the method, and the
/// headers it must send exactly as given (they are part of the signature).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PresignedRequest {
    /// The absolute URL to call: S3 (or the S3-protocol server) directly, or the local gateway's
    /// [`ROUTE_PREFIX`](local::ROUTE_PREFIX) routes in dev mode.
    pub url: String,
    /// The HTTP method the signature is for: `PUT` to upload, `GET` to download.
    pub method: String,
    /// Headers the client must send unchanged (e.g. the content type of an upload); empty when none are required.
    pub headers: BTreeMap<String, String>,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
}

/// What the blob store says about a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The stored object's size in bytes.
    pub size: u64,
    /// The content type it was stored with; `None` when the store recorded none.
    pub content_type: Option<String>,
}

/// The blob port: objects addressed by a key (see [`check_key`]), with short-lived presigned URLs for clients.
#[async_trait]
pub trait Blobs: Send + Sync {
    /// A URL that accepts exactly one PUT of `size` bytes of `content_type` at `key`.
    async fn presign_put(&self, key: &str, content_type: &str, size: u64, ttl: Duration) -> Result<PresignedRequest>;
    /// A URL that serves `key`, offered to browsers as `filename` of `content_type`, with the
    /// disposition [`downloads::content_disposition`](crate::domain::downloads::content_disposition)
    /// gives: inline only for types that cannot script.
    async fn presign_get(
        &self,
        key: &str,
        filename: &str,
        content_type: &str,
        ttl: Duration,
    ) -> Result<PresignedRequest>;
    /// The stored object's size and content type; `None` when nothing is stored at `key`.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;
    /// The whole object (e.g. an image to make a thumbnail of); `None` when nothing is stored at `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `bytes` at `key` with `content_type`, replacing any object there (thumbnails, exports).
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()>;
    /// Copies the object at `from` (bytes and content type) to `to`, replacing any object there;
    /// `NotFound` when nothing is stored at `from`.
    async fn copy(&self, from: &str, to: &str) -> Result<()>;
    /// Every key under the folder `prefix` (keys that start with `prefix/`), in no particular order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Deleting what is not there is not an error.
    async fn delete(&self, keys: &[String]) -> Result<()>;
}

/// The driver `config.blob_url` names.
pub async fn connect(config: &Config) -> Result<Arc<dyn Blobs>> {
    let url = config.blob_url.as_str();
    if url.is_empty() {
        return Err(Error::Config(
            "CAAS_BLOB_URL (s3://bucket?… or file:///dir) is required".into(),
        ));
    }
    if let Some(local) = local::LocalBlobs::from_config(config)? {
        return Ok(Arc::new(local));
    }
    if url.starts_with("s3://") {
        #[cfg(feature = "s3")]
        return Ok(Arc::new(s3::S3Blobs::connect(config).await?));
        #[cfg(not(feature = "s3"))]
        return Err(Error::Config(
            "this binary was built without the s3 feature; use CAAS_BLOB_URL=file:///dir".into(),
        ));
    }
    Err(Error::Config(format!(
        "CAAS_BLOB_URL must be s3://bucket?… or file:///dir, got {url}"
    )))
}

/// Keys are built by the platform, but a key reaching a driver is checked anyway: no absolute paths,
/// no `..`, nothing a file-system driver could escape its root with.
pub fn check_key(key: &str) -> Result<()> {
    let safe = !key.is_empty()
        && key.len() <= 512
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if safe {
        Ok(())
    } else {
        Err(Error::Validation(format!("invalid blob key {key:?}")))
    }
}
