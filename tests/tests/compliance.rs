//! Compliance and moderation on the real stack: the audit trail (written through Kafka by write-audit,
//! hash-chained in MongoDB, tampering detected), bans, mutes, blocked terms and rate limits enforced by
//! the socket node, retention with legal holds, and GDPR export and erasure down to MongoDB, S3, the
//! search index and the recent window.

use caas_e2e::{ok, refused, Client, Platform};
use caas_shared::domain::events::{topics, EventHeaders, MessageEvent};
use caas_shared::domain::model::{Message, MessageAttachment};
use futures_util::StreamExt;
use mongodb::bson::doc;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The operator's side of the compliance and admin APIs.
struct Operator<'a> {
    http: reqwest::Client,
    platform: &'a Platform,
}

impl<'a> Operator<'a> {
    fn new(platform: &'a Platform) -> Self {
        Self {
            http: reqwest::Client::new(),
            platform,
        }
    }

    /// SDK tokens for users of `app`, in the order their external ids are given.
    async fn tokens<const N: usize>(&self, app: &(String, String), external_ids: [&str; N]) -> [Value; N] {
        let mut tokens = Vec::with_capacity(N);
        for external_id in external_ids {
            tokens.push(self.platform.token(&self.http, app, external_id).await);
        }
        tokens.try_into().expect("one token per external id")
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.platform.gateway_url))
            .bearer_auth(&self.platform.admin_token)
            .header("x-correlation-id", "compliance-e2e");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Releases a hold or lifts a restriction (`kind` is `holds` or `restrictions`); returns the status.
    async fn end(&self, kind: &str, id: &Value, app_id: &str) -> u16 {
        let path = format!("/api/v1/compliance/{kind}/{}?app_id={app_id}", id.as_str().unwrap());
        self.call(reqwest::Method::DELETE, &path, None).await.0
    }

    async fn settings(&self, app_id: &str, settings: Value) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/admin/apps/{app_id}/settings"),
                Some(settings),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// The app's audit records matching `query` once there are at least `count` (written asynchronously).
    async fn audit_until(&self, app_id: &str, query: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self
                .get(&format!("/api/v1/compliance/audit?app_id={app_id}&{query}"))
                .await;
            assert_eq!(status, 200, "{body}");
            let records = body["records"].as_array().unwrap().clone();
            if records.len() >= count {
                return records;
            }
            assert!(Instant::now() < deadline, "audit {query}: wanted {count}, have {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn id_of(token: &Value) -> String {
    token["user"]["id"].as_str().unwrap().to_owned()
}

async fn connect(platform: &Platform, token: &Value, name: &str) -> Client {
    Client::connect(&platform.socket_urls[0], token["token"].as_str().unwrap(), name).await
}

fn send_request(conversation_id: &str, text: &str) -> Value {
    json!({"conversation_id": conversation_id, "client_msg_id": uuid::Uuid::new_v4().to_string(), "text": text})
}

async fn send(client: &mut Client, conversation_id: &str, text: &str) -> Value {
    client.call("message.send", send_request(conversation_id, text)).await
}

/// Polls `probe` until it returns true (asynchronous pipelines), failing with `what` after 30 s.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn search_hits(platform: &Platform, token: &Value, text: &str) -> usize {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/search/messages", platform.gateway_url))
        .query(&[("q", text)])
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["hits"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_records_actions_filters_them_and_detects_an_edited_record() {
    let platform = Platform::start("audit", 1);
    let operator = Operator::new(&platform);
    let app = platform.create_app(&operator.http).await;
    let app_id = app.0.clone();
    let alice = platform.token(&operator.http, &app, "alice").await;
    platform.token(&operator.http, &app, "bob").await;
    operator
        .settings(&app_id, json!({"content": {"blocked_terms": ["spoiler"]}}))
        .await;
    let (status, hold) = operator
        .post(
            "/api/v1/compliance/holds",
            json!({"app_id": app_id, "user_id": id_of(&alice), "reason": "case 42"}),
        )
        .await;
    assert_eq!(status, 201, "{hold}");

    // app.created, two token.issued, app.settings_changed, legal_hold.placed, in that order.
    let all = operator.audit_until(&app_id, "limit=100", 5).await;
    let actions: Vec<&str> = all.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "app.created",
            "token.issued",
            "token.issued",
            "app.settings_changed",
            "legal_hold.placed"
        ]
    );
    assert_eq!(
        all.iter().map(|r| r["seq"].as_i64().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let first = &all[0];
    assert_eq!(
        (first["actor"]["kind"].as_str(), first["target"]["id"].as_str()),
        (Some("operator"), Some(app_id.as_str()))
    );
    assert!(first["at"].as_i64().unwrap() > 0 && first["hash"].as_str().unwrap().len() == 64);
    assert_eq!(
        all[3]["details"]["after"]["content"]["blocked_terms"],
        json!(["spoiler"])
    );

    let tokens = operator.audit_until(&app_id, "action=token.issued", 2).await;
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0]["target"]["id"], alice["user"]["id"]);
    let by_operator = operator.audit_until(&app_id, "actor=operator", 3).await;
    assert_eq!(
        by_operator.len(),
        3,
        "the operator created the app, changed settings and placed the hold"
    );
    let correlated = operator.audit_until(&app_id, "correlation_id=compliance-e2e", 2).await;
    assert_eq!(
        correlated.len(),
        2,
        "the settings change and the hold carry this request's id"
    );
    let since = all[3]["at"].as_i64().unwrap();
    let late = operator.audit_until(&app_id, &format!("since={since}"), 2).await;
    assert!(late.iter().all(|r| r["at"].as_i64().unwrap() >= since));
    let (status, none) = operator
        .get(&format!("/api/v1/compliance/audit?app_id={app_id}&until=1"))
        .await;
    assert_eq!((status, &none["records"]), (200, &json!([])));
    let (status, bad) = operator
        .get(&format!("/api/v1/compliance/audit?app_id={app_id}&since=yesterday"))
        .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("validation_failed"))
    );

    let verify = format!("/api/v1/compliance/audit/verify?app_id={app_id}");
    let (status, verdict) = operator.get(&verify).await;
    assert_eq!(
        (status, &verdict["valid"], &verdict["records"]),
        (200, &json!(true), &json!(5)),
        "{verdict}"
    );

    // Someone with database access rewrites who got a token: the chain no longer verifies there.
    let mongo = platform.mongo().await;
    let edited = mongo
        .collection::<mongodb::bson::Document>("audit_events")
        .update_one(
            doc! {"app_id": &app_id, "seq": 3},
            doc! {"$set": {"target.id": "someone-else"}},
        )
        .await
        .unwrap();
    assert_eq!(edited.modified_count, 1);
    let (status, verdict) = operator.get(&verify).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&verdict["valid"], &verdict["broken_at"]["seq"]),
        (&json!(false), &json!(3)),
        "{verdict}"
    );

    let anonymous = reqwest::Client::new()
        .get(format!("{}{verify}", platform.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "the trail is for the operator only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_mutes_blocked_terms_and_rate_limits_are_enforced_by_the_socket_node() {
    let platform = Platform::start("moderation", 1);
    let operator = Operator::new(&platform);
    let app = platform.create_app(&operator.http).await;
    let app_id = app.0.clone();
    operator
        .settings(
            &app_id,
            json!({"content": {"blocked_terms": ["forbidden fruit", "scam"], "action": "reject"},
                   "rate_limits": {"user_messages_per_second": 5, "app_messages_per_second": 0}}),
        )
        .await;
    let [alice, bob, carol] = operator.tokens(&app, ["alice", "bob", "carol"]).await;
    let mut a = connect(&platform, &alice, "mod-alice").await;
    let mut b = connect(&platform, &bob, "mod-bob").await;
    let mut c = connect(&platform, &carol, "mod-carol").await;
    let conversation = a.create_group(&[&bob, &carol]).await;

    // Blocked terms: whole words, any case; nothing is sequenced for a refused send.
    refused(
        &send(&mut a, &conversation, "Try the FORBIDDEN fruit!").await,
        "content_blocked",
    );
    refused(&send(&mut a, &conversation, "total scam").await, "content_blocked");
    let fine = ok(&send(&mut a, &conversation, "scampi for dinner").await);
    assert_eq!(fine["seq"], 1, "refused sends took no seq");
    // An edit is screened like a send: a blocked term cannot get in by editing.
    let edit = |text: &str| json!({"conversation_id": conversation, "message_id": fine["message_id"], "text": text});
    refused(
        &a.call("message.edit", edit("a scam after all")).await,
        "content_blocked",
    );
    ok(&a.call("message.edit", edit("scampi, grilled")).await);

    // Rate limit: 5 per second per user; a burst of 20 (at most 3 seconds) gets refusals.
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(
            a.request("message.send", send_request(&conversation, &format!("burst {n}")))
                .await,
        );
    }
    let mut limited = 0;
    for id in &ids {
        let reply = a.reply(id).await;
        if reply["ok"] == false {
            refused(&reply, "rate_limited");
            assert!(reply["error"]["message"].as_str().unwrap().contains("retry in"));
            limited += 1;
        }
    }
    assert!(limited >= 5, "only {limited} of 20 were limited");
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let fine_of_bob = ok(&send(&mut b, &conversation, "before the mute").await)["message_id"].clone();
    // Conversation mute: bob cannot send there but still reads; lifting it restores sending.
    let (status, mute) = operator
        .post(
            "/api/v1/compliance/restrictions",
            json!({"app_id": app_id, "user_id": id_of(&bob), "kind": "mute", "conversation_id": conversation}),
        )
        .await;
    assert_eq!(status, 201, "{mute}");
    refused(&send(&mut b, &conversation, "hello?").await, "user_muted");
    // Nor can a muted user edit, react or show as typing there.
    let bobs = fine_of_bob.clone();
    refused(
        &b.call(
            "message.edit",
            json!({"conversation_id": conversation, "message_id": bobs, "text": "sneaky"}),
        )
        .await,
        "user_muted",
    );
    refused(
        &b.call(
            "reaction.add",
            json!({"conversation_id": conversation, "message_id": fine["message_id"], "emoji": "👍"}),
        )
        .await,
        "user_muted",
    );
    refused(
        &b.call("typing.start", json!({"conversation_id": conversation})).await,
        "user_muted",
    );
    ok(&b
        .call("conversation.subscribe", json!({"conversation_id": conversation}))
        .await);
    let status = operator.end("restrictions", &mute["id"], &app_id).await;
    assert_eq!(status, 200);
    ok(&send(&mut b, &conversation, "back again").await);

    // Conversation ban: carol is removed from the conversation at once and cannot send there.
    let (status, ban) = operator
        .post(
            "/api/v1/compliance/restrictions",
            json!({"app_id": app_id, "user_id": id_of(&carol), "kind": "ban", "conversation_id": conversation,
                   "reason": "spam"}),
        )
        .await;
    assert_eq!(status, 201, "{ban}");
    let removed = c.event("conversation.removed").await;
    assert_eq!(removed["conversation_id"], conversation.as_str());
    let reply = send(&mut c, &conversation, "let me in").await;
    assert_eq!(reply["ok"], false, "{reply}");
    // Re-adding her does not undo the ban.
    refused(
        &a.call(
            "conversation.members.add",
            json!({"conversation_id": conversation, "member_ids": [id_of(&carol)]}),
        )
        .await,
        "forbidden",
    );

    // App-wide ban: bob's live connection is told and closed; he cannot connect again.
    let (status, ban) = operator
        .post(
            "/api/v1/compliance/restrictions",
            json!({"app_id": app_id, "user_id": id_of(&bob), "kind": "ban", "reason": "abuse"}),
        )
        .await;
    assert_eq!(status, 201, "{ban}");
    let revoked = b.event("session.revoked").await;
    assert_eq!(revoked["reason"], "banned");
    assert_eq!(b.closed_with().await, Some(1008));
    // The ban ended bob's session: his token no longer opens a connection, and no new one is issued.
    let refusal = Client::refused_handshake(&platform.socket_urls[0], bob["token"].as_str().unwrap()).await;
    assert_eq!(refusal["code"], "unauthorized", "{refusal}");
    let response = operator
        .http
        .post(format!("{}/api/v1/auth/sdk/token", platform.gateway_url))
        .json(&json!({"app_id": app.0, "app_secret": app.1, "user_external_id": "bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "user_banned", "{body}");

    // Flag instead of reject: the message goes through and a review is requested in the audit trail.
    let other = platform.create_app(&operator.http).await;
    operator
        .settings(
            &other.0,
            json!({"content": {"blocked_terms": ["scam"], "action": "flag"}}),
        )
        .await;
    let [dave, erin] = operator.tokens(&other, ["dave", "erin"]).await;
    let mut d = connect(&platform, &dave, "mod-dave").await;
    let solo = d.create_group(&[&erin]).await;
    let flagged = ok(&send(&mut d, &solo, "obvious scam here").await);
    let reviews = operator.audit_until(&other.0, "action=message.flagged", 1).await;
    assert_eq!(reviews[0]["target"]["id"], flagged["message_id"]);
    assert_eq!(reviews[0]["details"]["terms"], json!(["scam"]));

    let restrictions = operator.audit_until(&app_id, "action=user.restricted", 3).await;
    assert_eq!(restrictions.len(), 3);
    let removals = operator.audit_until(&app_id, "action=member.removed", 1).await;
    assert_eq!(removals[0]["target"]["id"], carol["user"]["id"]);
}

/// An old message as if it had been sent `days` ago, published where socket nodes publish.
fn aged_message(app_id: &str, conversation_id: &str, sender: &str, seq: i64, days: i64, text: &str) -> Message {
    Message {
        id: uuid::Uuid::now_v7().to_string(),
        app_id: app_id.to_owned(),
        conversation_id: conversation_id.to_owned(),
        seq,
        sender_id: sender.to_owned(),
        client_msg_id: format!("aged-{seq}"),
        text: text.to_owned(),
        created_at: caas_shared::now_ms() - days * 24 * 3600 * 1000,
        correlation_id: "aged".into(),
        ..Message::default()
    }
}

async fn publish(platform: &Platform, messages: &[Message]) {
    let bus = caas_shared::ports::bus::connect(platform.stack.get("CAAS_BUS_URL"))
        .await
        .unwrap();
    for message in messages {
        let headers = EventHeaders::new(&message.app_id, "message.created", &message.correlation_id);
        bus.publish_json(
            topics::MESSAGES,
            &message.conversation_id,
            &headers,
            &MessageEvent::Created(message.clone()),
        )
        .await
        .unwrap();
    }
}

async fn stored(platform: &Platform, filter: mongodb::bson::Document) -> Vec<mongodb::bson::Document> {
    let cursor = platform
        .mongo()
        .await
        .collection("messages")
        .find(filter)
        .await
        .unwrap();
    cursor.map(|d| d.unwrap()).collect().await
}

/// Uploads a small text file to `conversation_id` as `token`'s user and completes it; returns the
/// attachment reference a message carries.
async fn upload(platform: &Platform, token: &Value, conversation_id: &str, content: &str) -> MessageAttachment {
    let http = reqwest::Client::new();
    let base = &platform.gateway_url;
    let bearer = token["token"].as_str().unwrap();
    let started: Value = http
        .post(format!("{base}/api/v1/media/uploads"))
        .bearer_auth(bearer)
        .json(
            &json!({"conversation_id": conversation_id, "filename": "note.txt", "content_type": "text/plain",
                      "size": content.len()}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut put = http.put(started["url"].as_str().unwrap()).body(content.to_owned());
    for (name, value) in started["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    assert_eq!(put.send().await.unwrap().status(), 200);
    let id = started["upload_id"].as_str().unwrap().to_owned();
    let completed = http
        .post(format!("{base}/api/v1/media/uploads/{id}/complete"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), 200);
    MessageAttachment {
        id,
        filename: "note.txt".into(),
        content_type: "text/plain".into(),
        size: content.len() as u64,
    }
}

/// The download URL of an attachment once its message is stored (the media function checks it).
async fn download_url(platform: &Platform, token: &Value, attachment_id: &str) -> String {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = http
            .get(format!("{}/api/v1/media/{attachment_id}", platform.gateway_url))
            .bearer_auth(token["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            let body: Value = response.json().await.unwrap();
            return body["url"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "attachment {attachment_id} never became downloadable"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn blob_status(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_old_messages_and_their_files_except_under_legal_hold() {
    let platform = Platform::start("retention", 1);
    let operator = Operator::new(&platform);
    let app = platform.create_app(&operator.http).await;
    let app_id = app.0.clone();
    let [alice, bob] = operator.tokens(&app, ["alice", "bob"]).await;
    let mut a = connect(&platform, &alice, "ret-alice").await;
    let (held, open) = (a.create_group(&[&bob]).await, a.create_group(&[&bob]).await);
    let file = upload(&platform, &alice, &open, "old notes").await;
    let alice_id = id_of(&alice);
    let mut old_with_file = aged_message(&app_id, &open, &alice_id, 1, 40, "ancient walrus");
    old_with_file.attachments = vec![file.clone()];
    let messages = vec![
        old_with_file,
        aged_message(&app_id, &open, &alice_id, 2, 31, "elderly narwhal"),
        aged_message(&app_id, &open, &alice_id, 3, 1, "fresh dolphin"),
        aged_message(&app_id, &held, &alice_id, 1, 40, "preserved mammoth"),
    ];
    publish(&platform, &messages).await;
    eventually("the aged messages are stored and indexed", || async {
        stored(&platform, doc! {"app_id": &app_id}).await.len() == 4
            && search_hits(&platform, &alice, "walrus").await == 1
            && search_hits(&platform, &alice, "mammoth").await == 1
    })
    .await;
    let file_url = download_url(&platform, &alice, &file.id).await;
    assert_eq!(blob_status(&file_url).await, 200);

    operator
        .settings(&app_id, json!({"retention": {"message_days": 30}}))
        .await;
    let (status, hold) = operator
        .post(
            "/api/v1/compliance/holds",
            json!({"app_id": app_id, "conversation_id": held, "reason": "litigation"}),
        )
        .await;
    assert_eq!(status, 201, "{hold}");
    let (status, run) = operator
        .post("/api/v1/compliance/retention/run", json!({"app_id": app_id}))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        run["apps"],
        json!([{"app_id": app_id, "messages_purged": 2, "attachments_deleted": 1, "unsent_uploads_deleted": 0}])
    );

    let left: Vec<String> = stored(&platform, doc! {"app_id": &app_id})
        .await
        .iter()
        .map(|d| d.get_str("text").unwrap().to_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["fresh dolphin", "preserved mammoth"]);
    let attachments = platform
        .mongo()
        .await
        .collection::<mongodb::bson::Document>("attachments")
        .count_documents(doc! {"_id": &file.id})
        .await
        .unwrap();
    assert_eq!(attachments, 0);
    assert_eq!(blob_status(&file_url).await, 404, "the file is gone from S3");
    eventually("the purged messages leave the search index", || async {
        search_hits(&platform, &alice, "walrus").await == 0 && search_hits(&platform, &alice, "narwhal").await == 0
    })
    .await;
    assert_eq!(search_hits(&platform, &alice, "mammoth").await, 1, "held");
    assert_eq!(search_hits(&platform, &alice, "dolphin").await, 1, "young enough");

    // A second run finds nothing more; the held message goes once the hold is released.
    let (_, again) = operator
        .post("/api/v1/compliance/retention/run", json!({"app_id": app_id}))
        .await;
    assert_eq!(again["apps"][0]["messages_purged"], 0);
    let status = operator.end("holds", &hold["id"], &app_id).await;
    assert_eq!(status, 200);
    let (_, released) = operator
        .post("/api/v1/compliance/retention/run", json!({"app_id": app_id}))
        .await;
    assert_eq!(released["apps"][0]["messages_purged"], 1);
    operator.audit_until(&app_id, "action=retention.applied", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_holds_exactly_the_users_data_and_erasure_removes_it_everywhere_unless_held() {
    let platform = Platform::start("privacy", 1);
    let operator = Operator::new(&platform);
    let app = platform.create_app(&operator.http).await;
    let app_id = app.0.clone();
    let [alice, bob] = operator.tokens(&app, ["alice", "bob"]).await;
    let (alice_id, bob_id) = (id_of(&alice), id_of(&bob));
    let mut a = connect(&platform, &alice, "gdpr-alice").await;
    let mut b = connect(&platform, &bob, "gdpr-bob").await;
    let conversation = a.create_group(&[&bob]).await;
    let file = upload(&platform, &alice, &conversation, "alice's secret file").await;
    let with_file = ok(&a
        .call(
            "message.send",
            json!({"conversation_id": conversation, "client_msg_id": "f1", "text": "see attached pelican",
                   "attachments": [file.id]}),
        )
        .await);
    ok(&send(&mut a, &conversation, "my private flamingo").await);
    ok(&send(&mut b, &conversation, "bob's own heron").await);
    eventually("all three messages are stored and searchable", || async {
        stored(&platform, doc! {"app_id": &app_id}).await.len() == 3
            && search_hits(&platform, &bob, "pelican").await == 1
            && search_hits(&platform, &bob, "flamingo").await == 1
    })
    .await;
    let file_url = download_url(&platform, &bob, &file.id).await;

    // Export: alice's profile, membership, messages and file metadata — and nothing of bob's.
    let (status, export) = operator
        .post(
            "/api/v1/compliance/exports",
            json!({"app_id": app_id, "user_id": alice_id}),
        )
        .await;
    assert_eq!(status, 201, "{export}");
    assert_eq!(
        export["counts"],
        json!({"memberships": 1, "messages": 2, "attachments": 1, "key_devices": 0})
    );
    let exported: Value = reqwest::get(export["url"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(exported["user"]["external_id"], "alice");
    assert_eq!(exported["memberships"][0]["conversation_id"], conversation.as_str());
    assert_eq!(exported["memberships"][0]["role"], "owner");
    let mut texts: Vec<&str> = exported["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    texts.sort();
    assert_eq!(texts, ["my private flamingo", "see attached pelican"]);
    assert_eq!(exported["attachments"][0]["id"], file.id.as_str());
    assert_eq!(exported["attachments"][0]["message_id"], with_file["message_id"]);
    assert!(!exported.to_string().contains("heron") && !exported.to_string().contains(&bob_id));

    // A legal hold on alice blocks erasure with a clear error, and nothing is erased.
    let (status, hold) = operator
        .post(
            "/api/v1/compliance/holds",
            json!({"app_id": app_id, "user_id": alice_id, "reason": "investigation"}),
        )
        .await;
    assert_eq!(status, 201);
    let erase = json!({"app_id": app_id, "user_id": alice_id});
    let (status, blocked) = operator.post("/api/v1/compliance/erasures", erase.clone()).await;
    assert_eq!(
        (status, blocked["error"]["code"].as_str()),
        (409, Some("legal_hold")),
        "{blocked}"
    );
    assert_eq!(search_hits(&platform, &bob, "flamingo").await, 1);
    assert_eq!(operator.end("holds", &hold["id"], &app_id).await, 200);

    let (status, erased) = operator.post("/api/v1/compliance/erasures", erase).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(
        (&erased["messages_erased"], &erased["attachments_deleted"]),
        (&json!(2), &json!(1))
    );
    // The earlier export file goes too, and alice's sessions end: her live socket is told and closed.
    assert_eq!(
        (&erased["exports_deleted"], &erased["sessions_ended"]),
        (&json!(1), &json!(1)),
        "{erased}"
    );
    assert_eq!(
        blob_status(export["url"].as_str().unwrap()).await,
        404,
        "the export is gone from S3"
    );
    assert_eq!(a.event("session.revoked").await["reason"], "user erased");
    assert_eq!(a.closed_with().await, Some(1008));
    let refusal = Client::refused_handshake(&platform.socket_urls[0], alice["token"].as_str().unwrap()).await;
    assert_eq!(refusal["code"], "unauthorized", "{refusal}");

    // MongoDB: tombstones without content; bob's message untouched; the user pseudonymised.
    let alices = stored(&platform, doc! {"app_id": &app_id, "sender_id": &alice_id}).await;
    assert_eq!(alices.len(), 2, "tombstones stay so the conversation reads coherently");
    for message in &alices {
        assert_eq!(message.get_str("text").unwrap(), "");
        assert!(message.get("deleted_at").is_some() && message.get("attachments").is_none());
    }
    let bobs = stored(&platform, doc! {"app_id": &app_id, "sender_id": &bob_id}).await;
    assert_eq!(bobs[0].get_str("text").unwrap(), "bob's own heron");
    let mongo = platform.mongo().await;
    let user = mongo
        .collection::<mongodb::bson::Document>("users")
        .find_one(doc! {"_id": &alice_id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.get_str("external_id").unwrap(),
        erased["pseudonym"].as_str().unwrap()
    );
    assert!(matches!(
        user.get("display_name"),
        None | Some(mongodb::bson::Bson::Null)
    ));
    let files = mongo
        .collection::<mongodb::bson::Document>("attachments")
        .count_documents(doc! {"app_id": &app_id})
        .await
        .unwrap();
    assert_eq!(files, 0);
    // Summaries follow through Kafka (persist-conversations), so the sweep waits for them.
    eventually("no collection holds alice's content", || async {
        let mut clean = true;
        for collection in ["messages", "conversation_summaries", "attachments", "users"] {
            let documents: Vec<mongodb::bson::Document> = mongo
                .collection::<mongodb::bson::Document>(collection)
                .find(doc! {"app_id": &app_id})
                .await
                .unwrap()
                .map(|d| d.unwrap())
                .collect()
                .await;
            let text = format!("{documents:?}");
            clean &= !text.contains("pelican") && !text.contains("flamingo") && !text.contains("note.txt");
        }
        clean
    })
    .await;
    // S3, the search index and the recent window.
    assert_eq!(blob_status(&file_url).await, 404);
    eventually("alice's messages leave the search index", || async {
        search_hits(&platform, &bob, "pelican").await == 0 && search_hits(&platform, &bob, "flamingo").await == 0
    })
    .await;
    assert_eq!(search_hits(&platform, &bob, "heron").await, 1);
    let mut late = connect(&platform, &bob, "gdpr-bob-again").await;
    let replay = ok(&late
        .call(
            "conversation.subscribe",
            json!({"conversation_id": conversation, "since_seq": 0}),
        )
        .await);
    let replayed = replay["messages"].to_string();
    assert!(
        !replayed.contains("pelican") && !replayed.contains("flamingo"),
        "{replayed}"
    );
    let erasures = operator.audit_until(&app_id, "action=user.erased", 1).await;
    assert_eq!(erasures[0]["target"]["id"], alice_id.as_str());
    operator.audit_until(&app_id, "action=user.exported", 1).await;
}
