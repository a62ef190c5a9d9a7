//! The key directory end to end on the real stack: devices upload signed keys through the gateway,
//! contacts query them and claim one-time keys oldest first, the empty pool falls back, 200 concurrent
//! claims through two gateway processes hand out 200 distinct keys, strangers and other apps learn
//! nothing, the socket events reach clients on other nodes, and erasure removes every key.

use caas_e2e::{Client, Platform};
use caas_shared::domain::keys::testing::{device, signed_key};
use futures_util::future::join_all;
use mongodb::bson::{doc, Document};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Http {
    client: reqwest::Client,
}

impl Http {
    async fn call(&self, method: reqwest::Method, url: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, url).bearer_auth(bearer);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

fn token(issued: &Value) -> &str {
    issued["token"].as_str().unwrap()
}

fn id(issued: &Value) -> String {
    issued["user"]["id"].as_str().unwrap().to_owned()
}

/// Connects a native client naming its device; returns it with its `ready` frame's data.
async fn connect_device(url: &str, bearer: &str, device_id: &str) -> (Client, Value) {
    let mut request = format!("{url}?device_id={device_id}").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("ws connect");
    let mut client = Client::from_socket(socket);
    let ready = client.next_json().await;
    assert_eq!(ready["type"], "ready", "{ready}");
    (client, ready["data"].clone())
}

/// The upload body of a device's one-time keys `from..=to` (key `kNNN` filled with `NNN`).
fn one_time_keys(
    signing: &ed25519_dalek::SigningKey,
    user: &str,
    device_id: &str,
    ids: std::ops::RangeInclusive<u32>,
) -> Map<String, Value> {
    ids.map(|n| {
        let key = signed_key(signing, user, device_id, (n % 251) as u8, false);
        (format!("signed_curve25519:k{n:03}"), key)
    })
    .collect()
}

fn claim_body(user: &str, device_id: &str) -> Value {
    json!({"one_time_keys": {user: {device_id: "signed_curve25519"}}})
}

/// The one key a claim of one device handed out: `(name, object)`.
fn handed(answer: &Value, user: &str, device_id: &str) -> (String, Value) {
    let keys = answer["one_time_keys"][user][device_id]
        .as_object()
        .unwrap_or_else(|| panic!("no key for {device_id}: {answer}"));
    let (name, object) = keys.iter().next().unwrap();
    (name.clone(), object.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_published_queried_claimed_once_each_and_erased() {
    // 210 claims on one device in a burst, beyond the default budgets on purpose.
    let budgets = [
        ("CAAS_KEYS_CLAIMS_PER_CALLER_PER_MINUTE", "1000"),
        ("CAAS_KEYS_CLAIMS_ON_USER_PER_MINUTE", "1000"),
    ];
    let mut platform = Platform::start_with("keys", 2, &budgets);
    let second_gateway = platform.start_gateway("gateway2");
    let http = Http {
        client: reqwest::Client::new(),
    };
    let app = platform.create_app(&http.client).await;
    let other_app = platform.create_app(&http.client).await;
    let alice = platform.token(&http.client, &app, "alice").await;
    let bob = platform.token(&http.client, &app, "bob").await;
    let carol = platform.token(&http.client, &app, "carol").await;
    let mallory = platform.token(&http.client, &other_app, "mallory").await;
    let alice_id = id(&alice);
    let gateway = platform.gateway_url.clone();
    let keys_url = |base: &str, path: &str| format!("{base}/api/v1/keys/{path}");
    use reqwest::Method;

    // Alice and bob share a conversation; carol is in the app but not in it.
    let (status, _) = http
        .call(
            Method::POST,
            &format!("{gateway}/api/v1/conversations"),
            token(&alice),
            Some(json!({"kind": "direct", "member_ids": [id(&bob)]})),
        )
        .await;
    assert_eq!(status, 201);
    let mut bob_socket = Client::connect(&platform.socket_urls[1], token(&bob), "keys-bob").await;

    // Alice's phone publishes its identity, 6 one-time keys (k007–k012) and a fallback key, then 6 more
    // (k001–k006); bob, on the other node, hears that her device list changed.
    let (phone, identity) = device(&alice_id, "PHONE", 11);
    let fallback = signed_key(&phone, &alice_id, "PHONE", 200, true);
    let upload = json!({
        "device_keys": identity,
        "one_time_keys": one_time_keys(&phone, &alice_id, "PHONE", 7..=12),
        "fallback_keys": {"signed_curve25519:fallback1": fallback},
    });
    let (status, uploaded) = http
        .call(
            Method::PUT,
            &keys_url(&gateway, "devices/PHONE"),
            token(&alice),
            Some(upload),
        )
        .await;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["one_time_key_counts"]["signed_curve25519"], 6);
    assert_eq!(uploaded["fallback"], true);
    let more = json!({"one_time_keys": one_time_keys(&phone, &alice_id, "PHONE", 1..=6)});
    let (status, uploaded) = http
        .call(
            Method::PUT,
            &keys_url(&gateway, "devices/PHONE"),
            token(&alice),
            Some(more),
        )
        .await;
    assert_eq!(status, 200, "{uploaded}");
    assert_eq!(uploaded["one_time_key_counts"]["signed_curve25519"], 12);
    assert_eq!(
        bob_socket.event("device_list.changed").await,
        json!({"user_id": alice_id})
    );
    let (mut alice_phone, ready) = connect_device(&platform.socket_urls[0], token(&alice), "PHONE").await;
    assert_eq!(ready["device_id"], "PHONE");
    assert_eq!(ready["one_time_key_counts"]["signed_curve25519"], 12, "{ready}");
    // The auth frame names a device too; a device id the directory would refuse ends the handshake.
    let (socket, _) = tokio_tungstenite::connect_async(platform.socket_urls[1].as_str())
        .await
        .unwrap();
    let mut alice_phone_too = Client::from_socket(socket);
    let auth = json!({"type": "auth", "token": token(&alice), "data": {"device_id": "PHONE"}});
    alice_phone_too.send_raw(&auth.to_string()).await;
    assert_eq!(
        alice_phone_too.event("ready").await["one_time_key_counts"]["signed_curve25519"],
        12
    );
    let bad_device = format!("{}?device_id=a:b", platform.socket_urls[0]);
    let refused = Client::refused_handshake(&bad_device, token(&alice)).await;
    assert_eq!(refused["code"], "validation_failed", "{refused}");

    // A forged key is refused with a clear error, and nothing of its upload is stored.
    let (forger, _) = device(&alice_id, "PHONE", 99);
    let forged = json!({"one_time_keys": {"signed_curve25519:x1": signed_key(&forger, &alice_id, "PHONE", 1, false)}});
    let (status, refused) = http
        .call(
            Method::PUT,
            &keys_url(&gateway, "devices/PHONE"),
            token(&alice),
            Some(forged),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("validation_failed")),
        "{refused}"
    );

    // Bob sees alice's device; carol (no shared conversation) and mallory (another app) see nothing.
    let query = json!({"user_ids": [alice_id, id(&carol)]});
    let (status, seen) = http
        .call(Method::POST, &keys_url(&gateway, "query"), token(&bob), Some(query))
        .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["device_keys"][&alice_id]["PHONE"], identity);
    assert_eq!(seen["not_visible"], json!([id(&carol)]));
    for stranger in [&carol, &mallory] {
        let (status, seen) = http
            .call(
                Method::POST,
                &keys_url(&gateway, "query"),
                token(stranger),
                Some(json!({"user_ids": [alice_id]})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(seen["not_visible"], json!([alice_id]), "{seen}");
        assert_eq!(seen["device_keys"], json!({}), "{seen}");
        let (status, claimed) = http
            .call(
                Method::POST,
                &keys_url(&gateway, "claim"),
                token(stranger),
                Some(claim_body(&alice_id, "PHONE")),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(claimed["failures"][0]["code"], "not_visible", "{claimed}");
        assert_eq!(claimed["one_time_keys"], json!({}));
    }

    // Bob's claims take the one-time keys oldest first; the third leaves 9, and alice's phone (on the
    // other node) is told its keys run low.
    let mut order = Vec::new();
    for _ in 0..12 {
        let (status, claimed) = http
            .call(
                Method::POST,
                &keys_url(&gateway, "claim"),
                token(&bob),
                Some(claim_body(&alice_id, "PHONE")),
            )
            .await;
        assert_eq!(status, 200, "{claimed}");
        assert_eq!(claimed["fallback_used"], json!([]));
        order.push(handed(&claimed, &alice_id, "PHONE").0);
        if order.len() == 3 {
            assert_eq!(
                alice_phone.event("keys.low").await,
                json!({"device_id": "PHONE", "count": 9})
            );
        }
    }
    let expected: Vec<String> = (7..=12)
        .chain(1..=6)
        .map(|n| format!("signed_curve25519:k{n:03}"))
        .collect();
    assert_eq!(order, expected, "one-time keys are handed out in upload order");
    // The pool is empty: the fallback key is handed out, and stays.
    for _ in 0..2 {
        let (_, claimed) = http
            .call(
                Method::POST,
                &keys_url(&gateway, "claim"),
                token(&bob),
                Some(claim_body(&alice_id, "PHONE")),
            )
            .await;
        assert_eq!(
            handed(&claimed, &alice_id, "PHONE"),
            ("signed_curve25519:fallback1".into(), fallback.clone())
        );
        assert_eq!(
            claimed["fallback_used"],
            json!([{"user_id": alice_id, "device_id": "PHONE"}])
        );
    }

    // 200 keys on a second device, 210 concurrent claims through two gateway processes: every key
    // goes out exactly once, and the last ten find the pool empty.
    let (tablet, tablet_identity) = device(&alice_id, "TABLET", 12);
    for (n, range) in [(0, 1..=100), (1, 101..=200)] {
        let mut body = json!({"one_time_keys": one_time_keys(&tablet, &alice_id, "TABLET", range)});
        if n == 0 {
            body["device_keys"] = tablet_identity.clone();
        }
        let (status, uploaded) = http
            .call(
                Method::PUT,
                &keys_url(&gateway, "devices/TABLET"),
                token(&alice),
                Some(body),
            )
            .await;
        assert!(status == 200 || status == 201, "{uploaded}");
    }
    assert_eq!(
        bob_socket.event("device_list.changed").await,
        json!({"user_id": alice_id})
    );
    let claims = (0..210).map(|n| {
        let base = if n % 2 == 0 { &gateway } else { &second_gateway };
        let (http, bob, alice_id) = (&http, &bob, &alice_id);
        async move {
            let (status, claimed) = http
                .call(
                    Method::POST,
                    &keys_url(base, "claim"),
                    token(bob),
                    Some(claim_body(alice_id, "TABLET")),
                )
                .await;
            assert_eq!(status, 200, "{claimed}");
            claimed["one_time_keys"][alice_id]["TABLET"]
                .as_object()
                .map(|keys| keys.keys().next().unwrap().clone())
        }
    });
    let results = join_all(claims).await;
    let claimed: Vec<&String> = results.iter().flatten().collect();
    let distinct: HashSet<&&String> = claimed.iter().collect();
    assert_eq!(
        claimed.len(),
        200,
        "every key handed out, the last 10 claims found none"
    );
    assert_eq!(distinct.len(), 200, "no key handed out twice");
    let mongo = platform.mongo().await;
    let one_time = mongo.collection::<Document>("one_time_keys");
    let unclaimed = doc! {"user_id": &alice_id, "claimed_at": null};
    assert_eq!(one_time.count_documents(unclaimed).await.unwrap(), 0);
    // Each claimed key stays a day as a tombstone, so a retried upload cannot put it back.
    let claimed_ones = doc! {"user_id": &alice_id, "claimed_at": {"$type": "date"}};
    assert_eq!(one_time.count_documents(claimed_ones).await.unwrap(), 212);

    // Deleting a device tells bob; the export lists the rest (public keys only); erasure removes them.
    let (status, _) = http
        .call(
            Method::DELETE,
            &keys_url(&gateway, "devices/TABLET"),
            token(&alice),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        bob_socket.event("device_list.changed").await,
        json!({"user_id": alice_id})
    );
    let operator = |path: &str, body: Value| {
        let request = http
            .client
            .post(format!("{gateway}/api/v1/compliance/{path}"))
            .bearer_auth(&platform.admin_token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let subject = json!({"app_id": app.0, "user_id": alice_id});
    let (status, export) = operator("exports", subject.clone()).await;
    assert_eq!(status, 201, "{export}");
    assert_eq!(export["counts"]["key_devices"], 1);
    let exported: Value = reqwest::get(export["url"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(exported["key_devices"][0]["identity"], identity);
    let (status, erased) = operator("erasures", subject).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["keys_deleted"], 2, "the device and its fallback key: {erased}");
    assert_eq!(
        bob_socket.event("device_list.changed").await,
        json!({"user_id": alice_id})
    );
    for collection in ["key_devices", "one_time_keys", "fallback_keys"] {
        let found = mongo
            .collection::<Document>(collection)
            .count_documents(doc! {"user_id": &alice_id})
            .await
            .unwrap();
        assert_eq!(found, 0, "{collection} still holds alice's keys");
    }
    assert!(platform.all_alive());
}
