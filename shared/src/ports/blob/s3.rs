//! Blobs in S3 or any S3-protocol server: `s3://bucket?endpoint=http://host:port&region=us-east-1`
//! (`endpoint` only for non-AWS servers; path-style addressing is used with it). Credentials come from
//! `CAAS_S3_ACCESS_KEY`/`CAAS_S3_SECRET_KEY`, else from the standard `AWS_*` variables Lambda sets for
//! the function's role.

use super::{check_key, Blobs, ObjectInfo, PresignedRequest};
use crate::config::Config;
use crate::domain::downloads;
use crate::{Error, Result};
use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use std::collections::HashMap;
use std::time::Duration;

/// The `s3://bucket?…` blob driver: S3 or any S3-protocol server, with SDK-presigned URLs.
pub struct S3Blobs {
    client: Client,
    bucket: String,
}

fn s3_error(error: impl std::fmt::Display) -> Error {
    Error::Blob(error.to_string())
}

impl S3Blobs {
    /// A client for the bucket `config.blob_url` names, with the credentials of `config` (`Config` error when the
    /// bucket or the credentials are missing).
    pub async fn connect(config: &Config) -> Result<Self> {
        let url = config.blob_url.strip_prefix("s3://").unwrap_or_default();
        let (bucket, query) = url.split_once('?').unwrap_or((url, ""));
        let options: HashMap<String, String> =
            serde_urlencoded::from_str(query).map_err(|e| Error::Config(format!("CAAS_BLOB_URL query: {e}")))?;
        if bucket.is_empty() {
            return Err(Error::Config("CAAS_BLOB_URL must name a bucket: s3://bucket?…".into()));
        }
        let (Some(access_key), Some(secret_key)) = (&config.s3_access_key, &config.s3_secret_key) else {
            return Err(Error::Config(
                "S3 credentials missing: set CAAS_S3_ACCESS_KEY/CAAS_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".into(),
            ));
        };
        let credentials = Credentials::new(access_key, secret_key, config.s3_session_token.clone(), None, "caas");
        let region = options.get("region").cloned().unwrap_or_else(|| "us-east-1".into());
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(credentials);
        if let Some(endpoint) = options.get("endpoint") {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        Ok(Self {
            client: Client::from_conf(builder.build()),
            bucket: bucket.to_owned(),
        })
    }

    /// Creates the bucket when it does not exist (local stacks; deployed buckets come from the template).
    pub async fn ensure_bucket(&self) -> Result<()> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(error) => {
                let raced = error
                    .as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists());
                if raced {
                    Ok(())
                } else {
                    Err(s3_error(aws_sdk_s3::error::DisplayErrorContext(error)))
                }
            }
        }
    }

    fn presigned(request: aws_sdk_s3::presigning::PresignedRequest, ttl: Duration) -> PresignedRequest {
        PresignedRequest {
            url: request.uri().to_owned(),
            method: request.method().to_owned(),
            headers: request
                .headers()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
                .collect(),
            expires_at: crate::now_ms() + ttl.as_millis() as i64,
        }
    }
}

fn presigning(ttl: Duration) -> Result<PresigningConfig> {
    PresigningConfig::expires_in(ttl).map_err(|e| Error::Validation(format!("URL lifetime: {e}")))
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn presign_put(&self, key: &str, content_type: &str, size: u64, ttl: Duration) -> Result<PresignedRequest> {
        check_key(key)?;
        let size = i64::try_from(size).map_err(|_| Error::Validation("size is too large".into()))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(size)
            .presigned(presigning(ttl)?)
            .await
            .map_err(s3_error)?;
        let mut presigned = Self::presigned(request, ttl);
        // Signed into the URL; the client must send it exactly.
        presigned.headers.insert("content-type".into(), content_type.to_owned());
        // Also signed, but every HTTP client sets it from the body (browsers refuse to let scripts set
        // it); a body of another size then fails the signature.
        presigned.headers.remove("content-length");
        Ok(presigned)
    }

    async fn presign_get(
        &self,
        key: &str,
        filename: &str,
        content_type: &str,
        ttl: Duration,
    ) -> Result<PresignedRequest> {
        check_key(key)?;
        // S3 serves from its own origin and cannot add headers beyond these overrides: the disposition
        // (attachment unless inline is safe) and the content type the platform recorded.
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(downloads::content_disposition(
                downloads::Server::ObjectStore,
                content_type,
                filename,
            ))
            .response_content_type(content_type)
            .presigned(presigning(ttl)?)
            .await
            .map_err(s3_error)?;
        Ok(Self::presigned(request, ttl))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        check_key(key)?;
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(Some(ObjectInfo {
                size: head.content_length().unwrap_or_default().max(0) as u64,
                content_type: head.content_type().map(str::to_owned),
            })),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(error) => Err(s3_error(aws_sdk_s3::error::DisplayErrorContext(error))),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(object) => Ok(Some(
                object.body.collect().await.map_err(s3_error)?.into_bytes().to_vec(),
            )),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(error) => Err(s3_error(aws_sdk_s3::error::DisplayErrorContext(error))),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        check_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        check_key(from)?;
        check_key(to)?;
        // Checked keys hold only characters that need no escaping in the copy source.
        match self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{from}", self.bucket))
            .key(to)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                Err(Error::NotFound(format!("no object at {from}")))
            }
            Err(error) => Err(s3_error(aws_sdk_s3::error::DisplayErrorContext(error))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        check_key(prefix)?;
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{prefix}/"))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e)))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        // DeleteObjects takes at most 1,000 keys per call.
        for chunk in keys.chunks(1_000) {
            let mut objects = Vec::with_capacity(chunk.len());
            for key in chunk {
                check_key(key)?;
                objects.push(ObjectIdentifier::builder().key(key).build().map_err(s3_error)?);
            }
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(s3_error)?;
            self.client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_error(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        }
        Ok(())
    }
}
