//! Attachments on the real stack (S3-protocol server): upload through the presigned URL with a plain
//! HTTP client, complete, send a message with it, fetch it (and its thumbnail) as another member;
//! non-members, wrong sizes, expired URLs and deleted messages are refused.

use caas_e2e::{ok, refused, Client, Platform};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Media<'a> {
    http: reqwest::Client,
    base: &'a str,
}

impl Media<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, token: &Value, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token["token"].as_str().unwrap());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn start(&self, token: &Value, request: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, "/api/v1/media/uploads", token, Some(request))
            .await
    }

    async fn complete(&self, token: &Value, id: &str) -> (u16, Value) {
        let path = format!("/api/v1/media/uploads/{id}/complete");
        self.call(reqwest::Method::POST, &path, token, None).await
    }

    async fn show(&self, token: &Value, id: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, &format!("/api/v1/media/{id}"), token, None)
            .await
    }

    /// PUTs `bytes` to a presigned upload exactly as a browser would: its URL, method and headers.
    async fn put(&self, upload: &Value, bytes: Vec<u8>) -> u16 {
        let mut request = self.http.put(upload["url"].as_str().unwrap()).body(bytes);
        for (name, value) in upload["headers"].as_object().unwrap() {
            request = request.header(name, value.as_str().unwrap());
        }
        request.send().await.unwrap().status().as_u16()
    }

    async fn fetch(&self, url: &str) -> (u16, Vec<u8>) {
        let response = self.http.get(url).send().await.unwrap();
        (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
    }
}

/// A real 300×200 PNG (uncompressed deflate blocks), so the thumbnail comes from an actual decode.
fn png(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn adler32(bytes: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for byte in bytes {
            a = (a + u32::from(*byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        (b << 16) | a
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0);
        for x in 0..width {
            raw.extend([(x % 256) as u8, (y % 256) as u8, 120]);
        }
    }
    let mut deflate = vec![0x78, 0x01];
    for (i, block) in raw.chunks(65_535).enumerate() {
        let last = (i + 1) * 65_535 >= raw.len();
        deflate.push(u8::from(last));
        deflate.extend((block.len() as u16).to_le_bytes());
        deflate.extend((!(block.len() as u16)).to_le_bytes());
        deflate.extend(block);
    }
    deflate.extend(adler32(&raw).to_be_bytes());
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &deflate);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_upload_complete_send_download_and_are_refused_when_they_should_be() {
    let platform = Platform::start("media", 1);
    let media = Media {
        http: reqwest::Client::new(),
        base: &platform.gateway_url,
    };
    let app = platform.create_app(&media.http).await;
    let (alice, bob, carol) = (
        platform.token(&media.http, &app, "alice").await,
        platform.token(&media.http, &app, "bob").await,
        platform.token(&media.http, &app, "carol").await,
    );
    let url = &platform.socket_urls[0];
    let mut a = Client::connect(url, alice["token"].as_str().unwrap(), "media-alice").await;
    let mut b = Client::connect(url, bob["token"].as_str().unwrap(), "media-bob").await;
    let created = ok(&a
        .call(
            "conversation.create",
            json!({"kind": "group", "name": "photos", "member_ids": [bob["user"]["id"]]}),
        )
        .await);
    let conversation = created["id"].as_str().unwrap().to_owned();
    ok(&b
        .call("conversation.subscribe", json!({"conversation_id": conversation}))
        .await);

    // Upload through the presigned URL with a plain HTTP client, then complete.
    let image = png(300, 200);
    let declare = |size: usize, extra: Value| {
        let mut request = json!({"conversation_id": conversation, "filename": "cat.png",
            "content_type": "image/png", "size": size});
        for (key, value) in extra.as_object().unwrap() {
            request[key] = value.clone();
        }
        request
    };
    let (status, upload) = media.start(&alice, declare(image.len(), json!({}))).await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(upload["method"], "PUT");
    let id = upload["upload_id"].as_str().unwrap().to_owned();
    let (status, early) = media.complete(&alice, &id).await;
    assert_eq!(
        (status, early["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{early}"
    );
    assert_eq!(media.put(&upload, image.clone()).await, 200);
    let (status, completed) = media.complete(&alice, &id).await;
    assert_eq!(status, 200, "{completed}");
    assert_eq!(
        (completed["status"].as_str(), completed["has_thumbnail"].as_bool()),
        (Some("complete"), Some(true))
    );
    assert_eq!(
        media.complete(&alice, &id).await.1,
        completed,
        "completing twice changes nothing"
    );

    // Send a message with it; the other member receives it and can fetch the file and its thumbnail.
    let sent = ok(&a
        .call(
            "message.send",
            json!({"conversation_id": conversation, "client_msg_id": "photo-1", "text": "", "attachments": [id]}),
        )
        .await);
    // Wait for persistence now: later calls skip (and so drop) events such as this ack.
    let message_id = sent["message_id"].as_str().unwrap().to_owned();
    loop {
        let ack = a.event("ack").await;
        if ack["message_id"] == message_id.as_str() && ack["status"] == "persisted" {
            break;
        }
    }
    let received = b.event("message.new").await;
    assert_eq!(
        received["attachments"],
        json!([{"id": id, "filename": "cat.png", "content_type": "image/png", "size": image.len()}])
    );
    let (status, shown) = media.show(&bob, &id).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(media.fetch(shown["url"].as_str().unwrap()).await, (200, image.clone()));
    // Served as what was recorded, and inline only because PNG cannot script.
    let served = media.http.get(shown["url"].as_str().unwrap()).send().await.unwrap();
    let header = |name: &str| {
        served
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-type").as_deref(), Some("image/png"));
    assert_eq!(
        header("content-disposition").as_deref(),
        Some("inline; filename=\"cat.png\"")
    );
    // The upload URL is valid until it expires, but what it writes after completion is never served.
    let replaced = media.put(&upload, vec![0xAB; image.len()]).await;
    let (_, shown_again) = media.show(&bob, &id).await;
    assert_eq!(
        media.fetch(shown_again["url"].as_str().unwrap()).await,
        (200, image.clone()),
        "a PUT to a completed upload's URL (answered {replaced}) must not replace the file"
    );
    let (status, thumbnail) = media.fetch(shown["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(&thumbnail[..3], &[0xFF, 0xD8, 0xFF], "the thumbnail is a JPEG");
    assert!(thumbnail.len() < image.len());

    // A non-member can neither fetch it nor upload to the conversation; nobody attaches others' files.
    let (status, body) = media.show(&carol, &id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, body) = media.start(&carol, declare(10, json!({}))).await;
    assert_eq!(status, 403, "{body}");
    refused(
        &b.call(
            "message.send",
            json!({"conversation_id": conversation, "client_msg_id": "steal", "attachments": [id]}),
        )
        .await,
        "forbidden",
    );

    // A wrong size is refused, by the blob store or at completion, and can never be attached.
    let (_, wrong) = media.start(&alice, declare(100, json!({}))).await;
    let wrong_id = wrong["upload_id"].as_str().unwrap().to_owned();
    let put_status = media.put(&wrong, vec![7; 50]).await;
    let (status, body) = media.complete(&alice, &wrong_id).await;
    assert_eq!(status, 409, "PUT answered {put_status}; completion: {body}");
    refused(
        &a.call(
            "message.send",
            json!({"conversation_id": conversation, "client_msg_id": "wrong", "attachments": [wrong_id]}),
        )
        .await,
        "conflict",
    );

    // An expired URL is refused.
    let (_, short) = media
        .start(&alice, declare(image.len(), json!({"expires_in_secs": 1})))
        .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let status = media.put(&short, image.clone()).await;
    assert_eq!(status, 403, "an expired upload URL must be refused");

    // Limits: size and type, with clear errors.
    for (request, reason) in [
        (declare(0, json!({})), "size must be 1 to"),
        (declare(200 * 1024 * 1024, json!({})), "this app's upload limit"),
        (
            declare(10, json!({"content_type": "application/x-msdownload"})),
            "is not allowed in this app",
        ),
        // SVG runs script: `image/*` does not admit it.
        (
            declare(10, json!({"content_type": "image/svg+xml", "filename": "x.svg"})),
            "is not allowed in this app",
        ),
        (declare(10, json!({"filename": "../../etc/passwd"})), "slashes"),
        (declare(10, json!({"expires_in_secs": 0})), "expires_in_secs"),
        (declare(10, json!({"bucket": "other"})), "unknown field"),
    ] {
        let (status, body) = media.start(&alice, request).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(reason),
            "{reason}: {body}"
        );
    }

    // The operator tightens this app's limits; they apply to the next upload.
    let settings = media
        .http
        .put(format!("{}/api/v1/admin/apps/{}/settings", media.base, app.0))
        .bearer_auth(&platform.admin_token)
        .json(&json!({"media": {"max_upload_bytes": 1000, "allowed_content_types": ["image/png"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), 200);
    let (status, body) = media.start(&alice, declare(2_000, json!({}))).await;
    assert!(
        status == 400 && body["error"]["message"].as_str().unwrap().contains("1000"),
        "{body}"
    );
    let (status, body) = media
        .start(&alice, declare(10, json!({"content_type": "image/gif"})))
        .await;
    assert!(
        status == 400 && body["error"]["message"].as_str().unwrap().contains("image/png"),
        "{body}"
    );

    // Pending uploads are bounded per user: each holds a URL that takes up to the app's limit.
    for n in 0..20 {
        // media::MAX_PENDING_UPLOADS
        let (status, body) = media.start(&bob, declare(10, json!({}))).await;
        assert_eq!(status, 201, "upload {n}: {body}");
    }
    let (status, body) = media.start(&bob, declare(10, json!({}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let (status, body) = media.start(&alice, declare(10, json!({}))).await;
    assert_eq!(status, 201, "another user's uploads are not counted: {body}");

    // Once the message is persisted and then deleted, its attachment is no longer served.
    let deadline = Instant::now() + Duration::from_secs(30);
    ok(&a
        .call(
            "message.delete",
            json!({"conversation_id": conversation, "message_id": message_id}),
        )
        .await);
    loop {
        let (status, body) = media.show(&bob, &id).await;
        if status == 404 {
            assert!(body["error"]["message"].as_str().unwrap().contains("deleted"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deleted message's attachment is still served: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Completing uploads and never sending them cannot grow storage without bound: every upload of a user
/// counts against a per-user quota (pending or completed, sent or not), and one past it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stop_at_the_users_storage_quota() {
    let platform = Platform::start_with("media_quota", 1, &[("CAAS_MEDIA_USER_QUOTA_BYTES", "5000")]);
    let media = Media {
        http: reqwest::Client::new(),
        base: &platform.gateway_url,
    };
    let app = platform.create_app(&media.http).await;
    let (alice, bob) = (
        platform.token(&media.http, &app, "alice").await,
        platform.token(&media.http, &app, "bob").await,
    );
    let mut a = Client::connect(
        &platform.socket_urls[0],
        alice["token"].as_str().unwrap(),
        "quota-alice",
    )
    .await;
    let conversation = a.create_group(&[&bob]).await;
    let declare = |size: usize| json!({"conversation_id": conversation, "filename": "f.txt", "content_type": "text/plain", "size": size});
    for n in 0..2 {
        let (status, upload) = media.start(&alice, declare(2000)).await;
        assert_eq!(status, 201, "upload {n}: {upload}");
        assert_eq!(media.put(&upload, vec![b'x'; 2000]).await, 200);
        let (status, done) = media.complete(&alice, upload["upload_id"].as_str().unwrap()).await;
        assert_eq!(status, 200, "{done}");
    }
    let (status, body) = media.start(&alice, declare(2000)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("limit_exceeded")),
        "{body}"
    );
    let (status, body) = media.start(&alice, declare(1000)).await;
    assert_eq!(status, 201, "what still fits: {body}");
    let (status, body) = media.start(&bob, declare(2000)).await;
    assert_eq!(status, 201, "another user's quota: {body}");
}
