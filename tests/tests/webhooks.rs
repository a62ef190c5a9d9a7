//! Webhook endpoints on the real stack (issue 38, first step): the operator registers, reads, changes,
//! rotates and removes an app's endpoints through the gateway; the signing secret is shown once and
//! stored sealed in MongoDB; every bad request gets its JSON error and changes nothing; one app cannot
//! reach another's endpoints; every change is in the audit trail.

use caas_e2e::{Operator, Platform};
use mongodb::bson::doc;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn operators_manage_endpoints_whose_secrets_are_shown_once_and_sealed() {
    let platform = Platform::start("webhooks_admin", 1);
    let operator = Operator::new(&platform);
    let (app_id, _) = platform.create_app(&operator.http).await;
    let (other_app, _) = platform.create_app(&operator.http).await;
    let base = format!("/api/v1/admin/apps/{app_id}/webhooks");
    use reqwest::Method;

    let (status, created) = operator
        .call(
            Method::POST,
            &base,
            Some(
                json!({"url": "http://127.0.0.1:9/hook", "event_types": ["message.new", "member.added"],
                        "description": "CRM sync"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["webhook"]["enabled"], true);
    assert_eq!(
        created["webhook"]["event_types"],
        json!(["message.new", "member.added"])
    );

    // Stored sealed: neither the secret nor its key bytes are in the document.
    let stored = platform
        .mongo()
        .await
        .collection::<mongodb::bson::Document>("webhooks")
        .find_one(doc! {"_id": &id})
        .await
        .unwrap()
        .expect("the endpoint is stored");
    let sealed = stored.get_str("secret_sealed").unwrap();
    assert!(
        sealed.starts_with("v1.") && !stored.to_string().contains(&secret[6..]),
        "{stored}"
    );

    // Read back without a secret, sealed or not.
    let (status, shown) = operator.call(Method::GET, &format!("{base}/{id}"), None).await;
    assert_eq!(status, 200, "{shown}");
    assert!(
        shown["webhook"].get("secret").is_none() && !shown.to_string().contains("v1."),
        "{shown}"
    );
    let (status, listed) = operator.call(Method::GET, &base, None).await;
    assert_eq!(
        (status, listed["webhooks"].as_array().unwrap().len()),
        (200, 1),
        "{listed}"
    );

    // Bad input: a JSON error each, nothing changed.
    let bad: [(Method, String, Value, u16, &str); 7] = [
        (
            Method::POST,
            base.clone(),
            json!({"url": "http://hooks.example.com/", "event_types": ["message.new"]}),
            400,
            "validation_failed",
        ),
        (
            Method::POST,
            base.clone(),
            json!({"url": "https://hooks.example.com/", "event_types": ["message.exploded"]}),
            400,
            "validation_failed",
        ),
        (
            Method::POST,
            base.clone(),
            json!({"url": "https://hooks.example.com/", "event_types": []}),
            400,
            "validation_failed",
        ),
        (
            Method::POST,
            base.clone(),
            json!({"url": "https://hooks.example.com/", "event_types": ["message.new"], "secret": "mine"}),
            400,
            "validation_failed",
        ),
        (
            Method::PATCH,
            format!("{base}/{id}"),
            json!({"url": "ftp://x/"}),
            400,
            "validation_failed",
        ),
        (
            Method::POST,
            format!("{base}/{id}/secret"),
            json!({"overlap_secs": -5}),
            400,
            "validation_failed",
        ),
        (
            Method::POST,
            "/api/v1/admin/apps/app_nope/webhooks".into(),
            json!({"url": "https://a.example/", "event_types": ["message.new"]}),
            404,
            "not_found",
        ),
    ];
    for (method, path, body, want_status, want_code) in bad {
        let (status, answer) = operator.call(method.clone(), &path, Some(body.clone())).await;
        assert_eq!(
            (status, error_code(&answer)),
            (want_status, want_code),
            "{method} {path} {body}: {answer}"
        );
        assert_eq!(answer["error"]["correlation_id"], "operator-e2e", "{answer}");
    }
    let (status, answer) = operator.call_as("not-the-operator", Method::GET, &base, None).await;
    assert_eq!((status, error_code(&answer)), (401, "unauthorized"), "{answer}");
    let (_, unchanged) = operator.call(Method::GET, &format!("{base}/{id}"), None).await;
    assert_eq!(unchanged, shown, "refused requests changed nothing");

    // Another app's path does not reach this endpoint.
    let foreign = format!("/api/v1/admin/apps/{other_app}/webhooks/{id}");
    for method in [Method::GET, Method::DELETE] {
        let (status, answer) = operator.call(method, &foreign, None).await;
        assert_eq!((status, error_code(&answer)), (404, "not_found"), "{answer}");
    }
    let (status, answer) = operator
        .call(Method::PATCH, &foreign, Some(json!({"enabled": false})))
        .await;
    assert_eq!(status, 404, "{answer}");

    // A change, then a rotation with an overlap: both secrets sign until it ends.
    let (status, changed) = operator
        .call(
            Method::PATCH,
            &format!("{base}/{id}"),
            Some(json!({"enabled": false, "event_types": ["message.new"]})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            changed["webhook"]["enabled"].clone(),
            changed["webhook"]["event_types"].clone()
        ),
        (json!(false), json!(["message.new"]))
    );
    assert_eq!(
        changed["webhook"]["url"], "http://127.0.0.1:9/hook",
        "fields not given stay"
    );
    let (status, rotated) = operator
        .call(
            Method::POST,
            &format!("{base}/{id}/secret"),
            Some(json!({"overlap_secs": 3600})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let fresh = rotated["secret"].as_str().unwrap();
    assert!(fresh.starts_with("whsec_") && fresh != secret, "{rotated}");
    assert!(rotated["webhook"]["previous_secret_signs_until"].as_i64().unwrap() > caas_shared::now_ms() + 3_500_000);

    let (status, deleted) = operator.call(Method::DELETE, &format!("{base}/{id}"), None).await;
    assert_eq!((status, deleted["deleted"].clone()), (200, json!(true)), "{deleted}");
    let (status, _) = operator.call(Method::GET, &format!("{base}/{id}"), None).await;
    assert_eq!(status, 404);

    // Every change is in the app's audit trail (written through Kafka by write-audit).
    let wanted = [
        "webhook.created",
        "webhook.changed",
        "webhook.secret_rotated",
        "webhook.deleted",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, audit) = operator
            .call(Method::GET, &format!("/api/v1/compliance/audit?app_id={app_id}"), None)
            .await;
        assert_eq!(status, 200, "{audit}");
        let actions: Vec<&str> = audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["action"].as_str())
            .collect();
        if wanted.iter().all(|w| actions.contains(w)) {
            assert!(
                !audit.to_string().contains(&secret[6..]) && !audit.to_string().contains(&fresh[6..]),
                "no secret in the audit trail"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit actions {actions:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
