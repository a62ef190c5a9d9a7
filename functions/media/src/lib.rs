//! The media function: attachments for messages, uploaded and downloaded directly against the blob
//! store through short-lived presigned URLs — bytes never pass through a function.
//!
//! Routes (all need `Authorization: Bearer <SDK token>`):
//! - `POST /api/v1/media/uploads` `{conversation_id, filename, content_type, size, expires_in_secs?}` →
//!   `201 {upload_id, url, method, headers, expires_at}`: members only, within the app's size and type
//!   limits, at most [`MAX_PENDING_UPLOADS`] started and not completed per user per hour (`429`).
//! - `POST /api/v1/media/uploads/{id}/complete` → the attachment: the object must exist with the declared
//!   size and type; images get a thumbnail. The id is then accepted by `message.send {attachments:[id]}`.
//! - `GET /api/v1/media/{id}` → `{…, url, expires_at, thumbnail_url?}`: members of the attachment's
//!   conversation only; not served once the message carrying it is deleted.
//!
//! The upload URL writes to a staging key; completion copies the verified object to the key downloads
//! serve, so a PUT to the same URL after completion (it stays valid until it expires) changes nothing
//! anyone can download.

mod thumbnail;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use caas_shared::config::Config;
use caas_shared::domain::model::{limits, Attachment, AttachmentStatus};
use caas_shared::ports::blob::Blobs;
use caas_shared::ports::store::Store;
use caas_shared::runtime::http::{finish_router, read_json, Authenticated, VerifiesSdkTokens};
use caas_shared::services::auth::TokenSigner;
use caas_shared::services::conversations::Caller;
use caas_shared::{now_ms, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_UPLOAD_TTL_SECS: u64 = 15 * 60;
const MAX_UPLOAD_TTL_SECS: u64 = 60 * 60;
/// Download links are handed out per view; short lives keep shared links from outliving access.
const DOWNLOAD_TTL: Duration = Duration::from_secs(5 * 60);
const MAX_FILENAME_BYTES: usize = 255;
/// Uploads a user may have started and not completed within the last [`MAX_UPLOAD_TTL_SECS`] (older
/// ones can no longer receive bytes): each holds a URL that accepts up to the app's upload limit.
pub const MAX_PENDING_UPLOADS: u64 = 20;

pub struct MediaApi {
    store: Arc<dyn Store>,
    blobs: Arc<dyn Blobs>,
    signer: TokenSigner,
    /// Bytes one user's uploads may hold in one app, pending and completed (`CAAS_MEDIA_USER_QUOTA_BYTES`);
    /// an upload past it is refused with `limit_exceeded`. Uploads no message carries are removed after
    /// a day by the retention job, and give their bytes back.
    user_quota_bytes: u64,
}

impl MediaApi {
    pub fn new(store: Arc<dyn Store>, blobs: Arc<dyn Blobs>, config: &Config) -> Self {
        Self {
            store,
            blobs,
            signer: TokenSigner::from_config(config),
            user_quota_bytes: config.media_user_quota_bytes,
        }
    }

    async fn require_member(&self, caller: Caller<'_>, conversation_id: &str) -> Result<()> {
        match self
            .store
            .find_member(caller.app_id, conversation_id, caller.user_id)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(Error::Forbidden(format!(
                "you are not a member of conversation {conversation_id}"
            ))),
        }
    }

    async fn find(&self, caller: Caller<'_>, attachment_id: &str) -> Result<Attachment> {
        self.store
            .find_attachments(caller.app_id, &[attachment_id.to_owned()])
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("attachment {attachment_id} not found")))
    }
}

impl VerifiesSdkTokens for MediaApi {
    fn token_signer(&self) -> &TokenSigner {
        &self.signer
    }

    fn session_store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// The function as deployed: its routes with the shared correlation and JSON-error handling.
pub fn router(api: Arc<MediaApi>) -> Router {
    finish_router(routes(api))
}

/// Just the routes, for the local gateway to merge with the other functions'.
pub fn routes(api: Arc<MediaApi>) -> Router {
    Router::new()
        .route("/api/v1/media/uploads", post(start_upload))
        .route("/api/v1/media/uploads/{id}/complete", post(complete_upload))
        .route("/api/v1/media/{id}", get(download))
        .with_state(api)
}

type Api = State<Arc<MediaApi>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadRequest {
    conversation_id: String,
    filename: String,
    content_type: String,
    size: u64,
    #[serde(default)]
    expires_in_secs: Option<u64>,
}

fn check_filename(filename: &str) -> Result<()> {
    if filename.trim().is_empty() || filename.len() > MAX_FILENAME_BYTES {
        return Err(Error::Validation(format!(
            "filename must be 1 to {MAX_FILENAME_BYTES} bytes"
        )));
    }
    if limits::has_deceptive_chars(filename) || filename.chars().any(|c| c == '/' || c == '\\') {
        return Err(Error::Validation(
            "filename must not contain slashes, control characters or bidirectional overrides".into(),
        ));
    }
    Ok(())
}

/// `type/subtype` (parameters allowed), lowercased; anything else is refused.
fn normalise_content_type(content_type: &str) -> Result<String> {
    let lowered = content_type.trim().to_ascii_lowercase();
    let essence = lowered.split(';').next().unwrap_or_default().trim();
    let token = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    let Some((kind, sub)) = essence
        .split_once('/')
        .filter(|(k, s)| token(k) && token(s) && lowered.len() <= 127)
    else {
        return Err(Error::Validation(format!(
            "content_type {content_type:?} is not a media type like image/png"
        )));
    };
    // Parameters are where a second type hides (`text/plain; a=b, text/html`): only a charset, whose
    // value is a token, is kept; anything else is refused rather than stored and served.
    let mut normalised = format!("{kind}/{sub}");
    for parameter in lowered.split(';').skip(1) {
        match parameter.trim().split_once('=') {
            Some(("charset", value)) if token(value) => {
                normalised.push_str("; charset=");
                normalised.push_str(value);
            }
            _ => {
                return Err(Error::Validation(format!(
                    "content_type {content_type:?}: only a charset parameter (charset=utf-8) is allowed"
                )))
            }
        }
    }
    Ok(normalised)
}

fn attachment_view(attachment: &Attachment) -> Value {
    json!({
        "id": attachment.id,
        "conversation_id": attachment.conversation_id,
        "uploader_id": attachment.uploader_id,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "status": attachment.status,
        "has_thumbnail": attachment.thumbnail_key.is_some(),
        "created_at": attachment.created_at,
        "completed_at": attachment.completed_at,
    })
}

async fn start_upload(
    State(api): Api,
    user: Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>)> {
    let request: UploadRequest = read_json(&headers, body).await?;
    let caller = user.caller();
    check_filename(&request.filename)?;
    let content_type = normalise_content_type(&request.content_type)?;
    let ttl = request.expires_in_secs.unwrap_or(DEFAULT_UPLOAD_TTL_SECS);
    if !(1..=MAX_UPLOAD_TTL_SECS).contains(&ttl) {
        return Err(Error::Validation(format!(
            "expires_in_secs must be 1 to {MAX_UPLOAD_TTL_SECS}"
        )));
    }
    api.require_member(caller, &request.conversation_id).await?;
    let app = api
        .store
        .find_app(caller.app_id)
        .await?
        .ok_or_else(|| Error::Unauthorized("the token's app no longer exists".into()))?;
    let limits = &app.settings.media;
    if request.size == 0 || request.size > limits.max_upload_bytes {
        return Err(Error::Validation(format!(
            "size must be 1 to {} bytes (this app's upload limit)",
            limits.max_upload_bytes
        )));
    }
    if !limits.allows(&content_type) {
        return Err(Error::Validation(format!(
            "content_type {content_type} is not allowed in this app; allowed: {}",
            limits.allowed_content_types.join(", ")
        )));
    }
    let since = now_ms() - (MAX_UPLOAD_TTL_SECS * 1000) as i64;
    let pending = api
        .store
        .count_pending_uploads(caller.app_id, caller.user_id, since)
        .await?;
    if pending >= MAX_PENDING_UPLOADS {
        return Err(Error::RateLimited {
            message: format!(
                "{pending} uploads are started and not completed; complete them first (at most {MAX_PENDING_UPLOADS} pending per hour)"
            ),
            retry_after_ms: 60_000,
        });
    }
    let held = api.store.uploaded_bytes(caller.app_id, caller.user_id).await?;
    if held.saturating_add(request.size) > api.user_quota_bytes {
        return Err(Error::LimitExceeded(format!(
            "your uploads hold {held} bytes; this one would pass your quota of {} bytes",
            api.user_quota_bytes
        )));
    }
    let id = format!("att_{}", uuid::Uuid::now_v7().simple());
    let attachment = Attachment {
        key: format!("{}/{id}/original", caller.app_id),
        id,
        app_id: caller.app_id.to_owned(),
        conversation_id: request.conversation_id,
        uploader_id: caller.user_id.to_owned(),
        filename: request.filename,
        content_type,
        size: request.size,
        status: AttachmentStatus::Pending,
        created_at: now_ms(),
        completed_at: None,
        thumbnail_key: None,
        message_id: None,
        correlation_id: caller.correlation_id.to_owned(),
    };
    let upload = api
        .blobs
        .presign_put(
            &attachment.staging_key(),
            &attachment.content_type,
            attachment.size,
            Duration::from_secs(ttl),
        )
        .await?;
    api.store.insert_attachment(&attachment).await?;
    tracing::info!(attachment_id = %attachment.id, size = attachment.size, "upload started");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "upload_id": attachment.id,
            "url": upload.url,
            "method": upload.method,
            "headers": upload.headers,
            "expires_at": upload.expires_at,
        })),
    ))
}

async fn complete_upload(State(api): Api, user: Authenticated, Path(id): Path<String>) -> Result<Json<Value>> {
    let caller = user.caller();
    let attachment = api.find(caller, &id).await?;
    if attachment.uploader_id != caller.user_id {
        return Err(Error::Forbidden("only the uploader can complete an upload".into()));
    }
    if attachment.status == AttachmentStatus::Complete {
        return Ok(Json(attachment_view(&attachment)));
    }
    let staged = attachment.staging_key();
    let Some(stored) = api.blobs.head(&staged).await? else {
        // A completion that stopped after moving the bytes finishes here.
        if api.blobs.head(&attachment.key).await?.is_some() {
            return finish_completion(&api, caller, &attachment).await;
        }
        return Err(Error::Conflict(
            "nothing has been uploaded for this attachment yet; PUT the file to its upload URL first".into(),
        ));
    };
    let stored_type = stored
        .content_type
        .as_deref()
        .and_then(|t| normalise_content_type(t).ok());
    let mismatch = if stored.size != attachment.size {
        Some(format!(
            "the upload has {} bytes but {} were declared",
            stored.size, attachment.size
        ))
    } else if stored_type.as_deref() != Some(attachment.content_type.as_str()) {
        Some(format!(
            "the upload's content type is {} but {} was declared",
            stored.content_type.as_deref().unwrap_or("missing"),
            attachment.content_type
        ))
    } else {
        None
    };
    if let Some(reason) = mismatch {
        // A wrong object must not linger where a later completion could pick it up.
        api.blobs.delete(std::slice::from_ref(&staged)).await?;
        return Err(Error::Conflict(format!("{reason}; upload again with a new URL")));
    }
    // Copied, not renamed in place: only this copy is ever served, whatever later lands at the staging key.
    match api.blobs.copy(&staged, &attachment.key).await {
        // A concurrent completion moved it first: finish from the copy it made.
        Err(Error::NotFound(_)) if api.blobs.head(&attachment.key).await?.is_some() => {}
        result => result?,
    }
    api.blobs.delete(std::slice::from_ref(&staged)).await?;
    finish_completion(&api, caller, &attachment).await
}

/// The verified bytes are at `attachment.key`: the thumbnail, then the record.
async fn finish_completion(api: &MediaApi, caller: Caller<'_>, attachment: &Attachment) -> Result<Json<Value>> {
    let thumbnail_key = thumbnail::create(api.blobs.as_ref(), attachment).await?;
    let completed = api
        .store
        .complete_attachment(caller.app_id, &attachment.id, now_ms(), thumbnail_key.as_deref())
        .await?;
    tracing::info!(attachment_id = %attachment.id, thumbnail = thumbnail_key.is_some(), "upload completed");
    Ok(Json(attachment_view(&completed)))
}

async fn download(State(api): Api, user: Authenticated, Path(id): Path<String>) -> Result<Json<Value>> {
    let caller = user.caller();
    let attachment = api.find(caller, &id).await?;
    api.require_member(caller, &attachment.conversation_id).await?;
    if attachment.status != AttachmentStatus::Complete {
        return Err(Error::Conflict("this upload has not been completed".into()));
    }
    if let Some(message_id) = &attachment.message_id {
        let message = api
            .store
            .find_message(caller.app_id, &attachment.conversation_id, message_id)
            .await?;
        if message.is_some_and(|m| m.is_deleted()) {
            return Err(Error::NotFound(
                "the message carrying this attachment was deleted".into(),
            ));
        }
    }
    let original = api
        .blobs
        .presign_get(
            &attachment.key,
            &attachment.filename,
            &attachment.content_type,
            DOWNLOAD_TTL,
        )
        .await?;
    let mut view = attachment_view(&attachment);
    view["url"] = json!(original.url);
    view["expires_at"] = json!(original.expires_at);
    if let Some(key) = &attachment.thumbnail_key {
        let thumbnail = api
            .blobs
            .presign_get(key, "thumbnail.jpg", "image/jpeg", DOWNLOAD_TTL)
            .await?;
        view["thumbnail_url"] = json!(thumbnail.url);
    }
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_and_content_types_are_checked() {
        assert!(check_filename("holiday photo.JPG").is_ok());
        for bad in ["", " ", "../etc/passwd", "a\\b", "new\nline", &"x".repeat(256)] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
        assert_eq!(normalise_content_type("Image/PNG").unwrap(), "image/png");
        assert_eq!(
            normalise_content_type("text/plain; charset=utf-8").unwrap(),
            "text/plain; charset=utf-8"
        );
        for bad in [
            "png",
            "image/",
            "/png",
            "image/png<script>",
            "",
            "text/plain; a=b, text/html",
            "text/plain; charset=utf-8, text/html",
            "text/plain;",
            "image/png; name=\"x.html\"",
        ] {
            assert!(normalise_content_type(bad).is_err(), "{bad:?}");
        }
    }
}
