//! The webhook endpoints' part of the store conformance suite, run by its `run`.

use super::Store;
use crate::domain::model::WebhookEndpoint;
use crate::Error;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn endpoint(app_id: &str, created_at: i64) -> WebhookEndpoint {
    WebhookEndpoint {
        id: unique("wh"),
        app_id: app_id.to_owned(),
        url: "https://hooks.example.com/caas".into(),
        event_types: vec!["message.new".into()],
        description: String::new(),
        enabled: true,
        disabled_reason: None,
        secret_sealed: "v1.sealed".into(),
        previous_secret_sealed: None,
        previous_secret_until: None,
        created_at,
        updated_at: created_at,
        correlation_id: "conformance".into(),
    }
}

/// Runs the webhook endpoints' checks.
pub async fn run(store: &dyn Store) {
    endpoints_are_listed_oldest_first_and_stay_in_their_app(store).await;
    endpoints_are_bounded_per_app(store).await;
}

async fn endpoints_are_listed_oldest_first_and_stay_in_their_app(store: &dyn Store) {
    let (app, other_app) = (unique("app"), unique("app"));
    let (second, first) = (endpoint(&app, 20), endpoint(&app, 10));
    store.insert_webhook(&second, 10).await.unwrap();
    store.insert_webhook(&first, 10).await.unwrap();
    assert!(matches!(
        store.insert_webhook(&first, 10).await,
        Err(Error::Conflict(_))
    ));
    let stranger = endpoint(&other_app, 5);
    store.insert_webhook(&stranger, 10).await.unwrap();
    assert_eq!(
        store.list_webhooks(&app).await.unwrap(),
        [first.clone(), second.clone()]
    );
    assert_eq!(store.find_webhook(&app, &first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.find_webhook(&other_app, &first.id).await.unwrap(),
        None,
        "another app's id finds nothing"
    );

    let mut changed = first.clone();
    changed.enabled = false;
    changed.disabled_reason = Some("gone".into());
    changed.previous_secret_sealed = Some("v1.old".into());
    changed.previous_secret_until = Some(99);
    changed.updated_at = 30;
    store.replace_webhook(&changed).await.unwrap();
    assert_eq!(
        store.find_webhook(&app, &first.id).await.unwrap(),
        Some(changed.clone())
    );
    let mut hijack = stranger.clone();
    hijack.app_id = app.clone();
    assert!(
        matches!(store.replace_webhook(&hijack).await, Err(Error::NotFound(_))),
        "an id of another app cannot be written through this app"
    );
    assert_eq!(
        store.find_webhook(&other_app, &stranger.id).await.unwrap(),
        Some(stranger.clone())
    );

    assert!(!store.delete_webhook(&app, &stranger.id).await.unwrap(), "nor deleted");
    assert!(store.delete_webhook(&app, &first.id).await.unwrap());
    assert!(!store.delete_webhook(&app, &first.id).await.unwrap());
    assert_eq!(store.list_webhooks(&app).await.unwrap(), [second]);
    assert_eq!(store.list_webhooks(&other_app).await.unwrap(), [stranger]);
}

async fn endpoints_are_bounded_per_app(store: &dyn Store) {
    let app = unique("app");
    for at in 0..3 {
        store.insert_webhook(&endpoint(&app, at), 3).await.unwrap();
    }
    assert!(matches!(
        store.insert_webhook(&endpoint(&app, 3), 3).await,
        Err(Error::LimitExceeded(_))
    ));
    store.insert_webhook(&endpoint(&unique("app"), 0), 3).await.unwrap();
    assert_eq!(store.list_webhooks(&app).await.unwrap().len(), 3);
}
