//! Blobs in a local directory, for the embedded dev mode: the same API as S3, with presigned-style
//! URLs (HMAC-signed, expiring, bound to method, key, size and type) that the local gateway serves
//! through [`routes`]. Objects live under `DIR/objects/<key>`, their content type under `DIR/types/<key>`.

use super::{check_key, Blobs, ObjectInfo, PresignedRequest};
use crate::domain::downloads;
use crate::{now_ms, Error, Result};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path as RoutePath, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The route prefix the gateway serves local blob URLs under.
pub const ROUTE_PREFIX: &str = "/api/v1/media/local";

/// The `file:///dir` blob driver of the embedded dev mode: objects in a local directory, with HMAC-signed,
/// expiring URLs that the local gateway serves.
pub struct LocalBlobs {
    root: PathBuf,
    public_url: String,
    secret: Vec<u8>,
}

impl LocalBlobs {
    /// `public_url` is where clients reach the gateway; `secret` signs the URLs.
    pub fn new(dir: &str, public_url: &str, secret: &str) -> Result<Self> {
        let root = PathBuf::from(dir);
        for sub in ["objects", "types"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| Error::Config(format!("CAAS_BLOB_URL file://{dir}: {e}")))?;
        }
        Ok(Self {
            root,
            public_url: public_url.trim_end_matches('/').to_owned(),
            secret: [b"caas-local-blobs:".as_slice(), secret.as_bytes()].concat(),
        })
    }

    /// The driver when `CAAS_BLOB_URL` is `file:///dir`; `None` for any other URL.
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Self>> {
        config
            .blob_url
            .strip_prefix("file://")
            .map(|dir| Self::new(dir, &config.public_url, &config.jwt_secret))
            .transpose()
    }

    fn object_path(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(key)
    }

    fn type_path(&self, key: &str) -> PathBuf {
        self.root.join("types").join(key)
    }

    fn signature(&self, fields: &[(&str, &str)]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        for (name, value) in fields {
            mac.update(name.as_bytes());
            mac.update(b"=");
            mac.update(value.as_bytes());
            mac.update(b"\n");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    fn presign(&self, method: &str, key: &str, bound: &[(&str, &str)], ttl: Duration) -> Result<PresignedRequest> {
        check_key(key)?;
        let expires_at = now_ms() + ttl.as_millis() as i64;
        let expires = expires_at.to_string();
        let mut fields = vec![("method", method), ("key", key), ("expires", expires.as_str())];
        fields.extend_from_slice(bound);
        let signature = self.signature(&fields);
        let mut query: Vec<(&str, &str)> = fields[2..].to_vec();
        query.push(("signature", &signature));
        let query = serde_urlencoded::to_string(&query).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(PresignedRequest {
            url: format!("{}{ROUTE_PREFIX}/{key}?{query}", self.public_url),
            method: method.to_owned(),
            headers: BTreeMap::new(),
            expires_at,
        })
    }

    /// Checks a presigned URL's signature and expiry; returns its query fields.
    fn verify(&self, method: &str, key: &str, query: Option<&str>, bound: &[&str]) -> Result<HashMap<String, String>> {
        let denied = |why: &str| Error::Forbidden(format!("this URL {why}"));
        check_key(key).map_err(|_| denied("names no valid object"))?;
        let fields: HashMap<String, String> =
            serde_urlencoded::from_str(query.unwrap_or_default()).map_err(|_| denied("is malformed"))?;
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
        let mut signed = vec![("method", method), ("key", key), ("expires", field("expires"))];
        signed.extend(bound.iter().map(|name| (*name, field(name))));
        let expected = self.signature(&signed);
        if !crate::domain::secrets::constant_time_eq(&expected, field("signature")) {
            return Err(denied("is not signed for this request"));
        }
        if field("expires")
            .parse::<i64>()
            .map_or(true, |expires| expires < now_ms())
        {
            return Err(denied("has expired"));
        }
        Ok(fields)
    }
}

fn io_error(error: std::io::Error) -> Error {
    Error::Internal(format!("local blob store: {error}"))
}

async fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(io_error)?;
    }
    // Write aside, then rename: a reader never sees half an object.
    let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&partial, bytes).await.map_err(io_error)?;
    tokio::fs::rename(&partial, path).await.map_err(io_error)
}

async fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(e)),
    }
}

#[async_trait]
impl Blobs for LocalBlobs {
    async fn presign_put(&self, key: &str, content_type: &str, size: u64, ttl: Duration) -> Result<PresignedRequest> {
        let size = size.to_string();
        let mut request = self.presign("PUT", key, &[("type", content_type), ("size", &size)], ttl)?;
        request.headers.insert("content-type".into(), content_type.to_owned());
        Ok(request)
    }

    async fn presign_get(
        &self,
        key: &str,
        filename: &str,
        content_type: &str,
        ttl: Duration,
    ) -> Result<PresignedRequest> {
        self.presign("GET", key, &[("filename", filename), ("type", content_type)], ttl)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        check_key(key)?;
        let size = match tokio::fs::metadata(self.object_path(key)).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(e)),
        };
        let content_type = read_file(&self.type_path(key))
            .await?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        Ok(Some(ObjectInfo { size, content_type }))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        read_file(&self.object_path(key)).await
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        check_key(key)?;
        write_file(&self.type_path(key), content_type.as_bytes()).await?;
        write_file(&self.object_path(key), &bytes).await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        check_key(from)?;
        check_key(to)?;
        let bytes = read_file(&self.object_path(from))
            .await?
            .ok_or_else(|| Error::NotFound(format!("no object at {from}")))?;
        let content_type = read_file(&self.type_path(from)).await?.unwrap_or_default();
        write_file(&self.type_path(to), &content_type).await?;
        write_file(&self.object_path(to), &bytes).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        check_key(prefix)?;
        let objects = self.root.join("objects");
        let mut keys = Vec::new();
        let mut folders = vec![objects.join(prefix)];
        while let Some(folder) = folders.pop() {
            let mut entries = match tokio::fs::read_dir(&folder).await {
                Ok(entries) => entries,
                // Nothing there, or an object where the folder would be: nothing under it.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(io_error(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io_error)? {
                let path = entry.path();
                if entry.file_type().await.map_err(io_error)?.is_dir() {
                    folders.push(path);
                } else if let Ok(key) = path.strip_prefix(&objects) {
                    let key = key.to_string_lossy().into_owned();
                    // Half-written objects (see write_file) are not objects yet.
                    if check_key(&key).is_ok() && !key.contains(".partial-") {
                        keys.push(key);
                    }
                }
            }
        }
        Ok(keys)
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            check_key(key)?;
            for path in [self.object_path(key), self.type_path(key)] {
                match tokio::fs::remove_file(path).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(e)),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// The gateway routes that make [`LocalBlobs`] URLs work like presigned S3 URLs.
pub fn routes(blobs: Arc<LocalBlobs>) -> Router {
    Router::new()
        .route(&format!("{ROUTE_PREFIX}/{{*key}}"), get(download).put(upload))
        .with_state(blobs)
}

async fn upload(
    State(blobs): State<Arc<LocalBlobs>>,
    RoutePath(key): RoutePath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode> {
    let fields = blobs.verify("PUT", &key, query.as_deref(), &["type", "size"])?;
    let declared_type = fields.get("type").cloned().unwrap_or_default();
    let sent_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if sent_type != Some(declared_type.as_str()) {
        return Err(Error::Forbidden(format!("this URL takes content-type {declared_type}")));
    }
    let size: usize = fields.get("size").and_then(|s| s.parse().ok()).unwrap_or_default();
    let bytes = axum::body::to_bytes(body, size + 1)
        .await
        .map_err(|_| Error::Forbidden(format!("this URL takes exactly {size} bytes")))?;
    if bytes.len() != size {
        return Err(Error::Forbidden(format!(
            "this URL takes exactly {size} bytes, got {}",
            bytes.len()
        )));
    }
    blobs.put(&key, bytes.to_vec(), &declared_type).await?;
    Ok(StatusCode::OK)
}

async fn download(
    State(blobs): State<Arc<LocalBlobs>>,
    RoutePath(key): RoutePath<String>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let fields = blobs.verify("GET", &key, query.as_deref(), &["filename", "type"])?;
    let Some(bytes) = blobs.get(&key).await? else {
        return Err(Error::NotFound("no such object".into()));
    };
    let filename = fields.get("filename").map_or("", String::as_str);
    // The type the platform recorded and signed into the URL, not whatever the bytes look like.
    let content_type = fields.get("type").map_or("application/octet-stream", String::as_str);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                downloads::content_disposition(downloads::Server::Platform, content_type, filename),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, downloads::NOSNIFF.to_owned()),
            (header::CONTENT_SECURITY_POLICY, downloads::FILE_CSP.to_owned()),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> (LocalBlobs, PathBuf) {
        let dir = std::env::temp_dir().join(format!("caas-blobs-{}", uuid::Uuid::new_v4()));
        (
            LocalBlobs::new(dir.to_str().unwrap(), "http://gw", "secret").unwrap(),
            dir,
        )
    }

    #[tokio::test]
    async fn conformance() {
        let (blobs, dir) = blobs();
        super::super::conformance::run(&blobs).await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn urls_are_bound_to_their_request_and_expire() {
        let (blobs, dir) = blobs();
        let put = blobs
            .presign_put("a/b/original", "image/png", 3, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            put.url.starts_with("http://gw/api/v1/media/local/a/b/original?"),
            "{}",
            put.url
        );
        let query = put.url.split_once('?').unwrap().1;
        assert!(blobs
            .verify("PUT", "a/b/original", Some(query), &["type", "size"])
            .is_ok());
        assert!(blobs
            .verify("GET", "a/b/original", Some(query), &["type", "size"])
            .is_err());
        assert!(blobs
            .verify("PUT", "a/b/other", Some(query), &["type", "size"])
            .is_err());
        let bigger = query.replace("size=3", "size=4");
        assert!(blobs
            .verify("PUT", "a/b/original", Some(&bigger), &["type", "size"])
            .is_err());
        let expired = blobs
            .presign_put("a/b/original", "image/png", 3, Duration::ZERO)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let error = blobs
            .verify(
                "PUT",
                "a/b/original",
                expired.url.split_once('?').map(|p| p.1),
                &["type", "size"],
            )
            .unwrap_err();
        assert!(error.to_string().contains("expired"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
