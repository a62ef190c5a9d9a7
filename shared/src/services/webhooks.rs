//! Webhook endpoints, the operator's use cases (issue 38): create, read, change, rotate the signing
//! secret, delete. Signing secrets are generated here, shown once, and stored sealed; delivery reads
//! them back through [`signing_secrets`].

use crate::domain::model::WebhookEndpoint;
use crate::domain::sealing::SealingKey;
use crate::domain::webhooks::{self, new_secret};
use crate::ports::store::Store;
use crate::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

/// Most endpoints per app.
pub const MAX_ENDPOINTS_PER_APP: usize = 10;

/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 200;

/// How long a rotated-out secret keeps signing by default: a day, time to deploy the new one.
pub const DEFAULT_ROTATION_OVERLAP_SECS: i64 = 24 * 3600;

/// The longest overlap a rotation may ask for: a week.
pub const MAX_ROTATION_OVERLAP_SECS: i64 = 7 * 24 * 3600;

/// A new endpoint as the operator describes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where events are POSTed.
    pub url: String,
    /// The event types it receives.
    pub event_types: Vec<String>,
    /// Free text for the operator.
    #[serde(default)]
    pub description: String,
    /// Whether deliveries start at once (default yes).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// A change to an endpoint: only the fields given change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    /// A new URL.
    pub url: Option<String>,
    /// A new event filter.
    pub event_types: Option<Vec<String>>,
    /// A new description.
    pub description: Option<String>,
    /// Enables (clearing why the platform disabled it) or disables the endpoint.
    pub enabled: Option<bool>,
}

/// The operator's webhook use cases for one deployment.
pub struct WebhookAdmin<'a> {
    /// Where endpoints are kept.
    pub store: &'a dyn Store,
    /// Seals and opens signing secrets.
    pub key: &'a SealingKey,
    /// Whether plain `http://` to loopback is accepted (dev mode and tests).
    pub allow_loopback_http: bool,
}

/// What a sealed secret is bound to: the endpoint it belongs to.
fn seal_context(app_id: &str, endpoint_id: &str) -> String {
    format!("webhook:{app_id}:{endpoint_id}")
}

fn validate_description(description: &str) -> Result<()> {
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(Error::Validation(format!(
            "description must be at most {MAX_DESCRIPTION_BYTES} bytes"
        )));
    }
    if crate::domain::model::limits::has_deceptive_chars(description) {
        return Err(Error::Validation(
            "description must not contain control characters or bidirectional overrides".into(),
        ));
    }
    Ok(())
}

impl WebhookAdmin<'_> {
    /// Registers an endpoint for an existing app; returns it and its signing secret (shown only now).
    pub async fn create(
        &self,
        app_id: &str,
        new: NewEndpoint,
        now: i64,
        correlation_id: &str,
    ) -> Result<(WebhookEndpoint, String)> {
        webhooks::validate_url(&new.url, self.allow_loopback_http)?;
        webhooks::validate_event_types(&new.event_types)?;
        validate_description(&new.description)?;
        self.require_app(app_id).await?;
        let id = format!("wh_{}", uuid::Uuid::now_v7().simple());
        let secret = new_secret();
        let endpoint = WebhookEndpoint {
            secret_sealed: self.key.seal(&secret, &seal_context(app_id, &id))?,
            id,
            app_id: app_id.to_owned(),
            url: new.url,
            event_types: new.event_types,
            description: new.description,
            enabled: new.enabled,
            disabled_reason: None,
            failing_since: None,
            previous_secret_sealed: None,
            previous_secret_until: None,
            created_at: now,
            updated_at: now,
            correlation_id: correlation_id.to_owned(),
        };
        self.store.insert_webhook(&endpoint, MAX_ENDPOINTS_PER_APP).await?;
        Ok((endpoint, secret))
    }

    /// The app's endpoint, or `not_found`.
    pub async fn get(&self, app_id: &str, id: &str) -> Result<WebhookEndpoint> {
        self.store
            .find_webhook(app_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("webhook {id} not found")))
    }

    /// The app's endpoints, oldest first (`not_found` for an unknown app).
    pub async fn list(&self, app_id: &str) -> Result<Vec<WebhookEndpoint>> {
        self.require_app(app_id).await?;
        self.store.list_webhooks(app_id).await
    }

    /// Applies `change`; returns the endpoint before and after.
    pub async fn change(
        &self,
        app_id: &str,
        id: &str,
        change: EndpointChange,
        now: i64,
    ) -> Result<(WebhookEndpoint, WebhookEndpoint)> {
        let before = self.get(app_id, id).await?;
        let mut after = before.clone();
        if let Some(url) = change.url {
            webhooks::validate_url(&url, self.allow_loopback_http)?;
            after.url = url;
        }
        if let Some(types) = change.event_types {
            webhooks::validate_event_types(&types)?;
            after.event_types = types;
        }
        if let Some(description) = change.description {
            validate_description(&description)?;
            after.description = description;
        }
        let enablement = change.enabled.is_some();
        if let Some(enabled) = change.enabled {
            after.enabled = enabled;
            after.disabled_reason = None;
            after.failing_since = None;
        }
        after.updated_at = now;
        self.store.replace_webhook(&after, enablement).await?;
        // What is stored now (a delivery may have changed the endpoint's health meanwhile).
        let after = self.get(app_id, id).await?;
        Ok((before, after))
    }

    /// A new signing secret (returned, shown only now); the current one keeps signing beside it for
    /// `overlap_secs` (default a day, at most a week; 0 drops it at once, for a leaked secret).
    pub async fn rotate_secret(
        &self,
        app_id: &str,
        id: &str,
        overlap_secs: Option<i64>,
        now: i64,
    ) -> Result<(WebhookEndpoint, String)> {
        let overlap_secs = overlap_secs.unwrap_or(DEFAULT_ROTATION_OVERLAP_SECS);
        if !(0..=MAX_ROTATION_OVERLAP_SECS).contains(&overlap_secs) {
            return Err(Error::Validation(format!(
                "overlap_secs must be 0 to {MAX_ROTATION_OVERLAP_SECS} (a week)"
            )));
        }
        let mut endpoint = self.get(app_id, id).await?;
        let secret = new_secret();
        let context = seal_context(app_id, id);
        // A current secret sealed under another key (CAAS_SECRETS_KEY replaced) cannot sign any more:
        // nothing of it to keep.
        let still_opens = self.key.open(&endpoint.secret_sealed, &context).is_ok();
        let (previous, until) = if overlap_secs > 0 && still_opens {
            (Some(endpoint.secret_sealed.clone()), Some(now + overlap_secs * 1000))
        } else {
            (None, None)
        };
        endpoint.secret_sealed = self.key.seal(&secret, &context)?;
        endpoint.previous_secret_sealed = previous;
        endpoint.previous_secret_until = until;
        endpoint.updated_at = now;
        self.store.replace_webhook(&endpoint, false).await?;
        Ok((endpoint, secret))
    }

    /// Removes the endpoint (`not_found` when there is none).
    pub async fn delete(&self, app_id: &str, id: &str) -> Result<()> {
        if self.store.delete_webhook(app_id, id).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("webhook {id} not found")))
        }
    }

    async fn require_app(&self, app_id: &str) -> Result<()> {
        match self.store.find_app(app_id).await? {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!("app {app_id} not found"))),
        }
    }
}

/// The secrets that sign a delivery at `now`: the current one, and the previous one while its
/// overlap lasts (the `webhook-signature` header carries one signature per secret, newest first). An
/// error when the current one does not open; a previous one that does not open is left out.
pub fn signing_secrets(key: &SealingKey, endpoint: &WebhookEndpoint, now: i64) -> Result<Vec<String>> {
    let context = seal_context(&endpoint.app_id, &endpoint.id);
    let mut secrets = vec![key.open(&endpoint.secret_sealed, &context)?];
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret_sealed, endpoint.previous_secret_until) {
        if now < until {
            secrets.extend(key.open(previous, &context).ok());
        }
    }
    Ok(secrets)
}

/// An endpoint as the operator API shows it: never a secret, sealed or not.
pub fn view(endpoint: &WebhookEndpoint, now: i64) -> Value {
    let rotation_until = endpoint.previous_secret_until.filter(|until| *until > now);
    json!({
        "id": endpoint.id,
        "app_id": endpoint.app_id,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since,
        "previous_secret_signs_until": rotation_until,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::App;
    use crate::ports::store::MemoryStore;

    async fn setup() -> (MemoryStore, SealingKey) {
        let store = MemoryStore::new();
        let app = App::new("app".into(), "App".into(), "hash".into(), 1, "c".into());
        crate::ports::store::AppStore::insert_app(&store, &app).await.unwrap();
        (store, SealingKey::from_base64(&SealingKey::generate_base64()).unwrap())
    }

    fn new_endpoint(url: &str) -> NewEndpoint {
        NewEndpoint {
            url: url.into(),
            event_types: vec!["message.new".into()],
            description: String::new(),
            enabled: true,
        }
    }

    #[tokio::test]
    async fn a_secret_is_shown_once_stored_sealed_and_rotated_with_an_overlap() {
        let (store, key) = setup().await;
        let admin = WebhookAdmin {
            store: &store,
            key: &key,
            allow_loopback_http: false,
        };
        let (endpoint, secret) = admin
            .create("app", new_endpoint("https://hooks.example.com/a"), 1_000, "c")
            .await
            .unwrap();
        assert!(secret.starts_with("whsec_"));
        assert!(!endpoint.secret_sealed.contains(&secret[6..]));
        assert!(
            !view(&endpoint, 1_000).to_string().contains("v1."),
            "no sealed secret in the view"
        );
        assert_eq!(
            signing_secrets(&key, &endpoint, 1_000).unwrap(),
            std::slice::from_ref(&secret)
        );

        let (rotated, fresh) = admin.rotate_secret("app", &endpoint.id, Some(60), 2_000).await.unwrap();
        assert_eq!(
            signing_secrets(&key, &rotated, 2_000).unwrap(),
            [fresh.clone(), secret.clone()]
        );
        assert_eq!(
            signing_secrets(&key, &rotated, 62_000).unwrap(),
            std::slice::from_ref(&fresh),
            "the overlap ended"
        );
        assert_eq!(view(&rotated, 2_000)["previous_secret_signs_until"], 62_000);

        let (leaked, newest) = admin.rotate_secret("app", &endpoint.id, Some(0), 3_000).await.unwrap();
        assert_eq!(signing_secrets(&key, &leaked, 3_000).unwrap(), [newest]);
        assert!(admin.rotate_secret("app", &endpoint.id, Some(-1), 3_000).await.is_err());
        assert!(admin
            .rotate_secret("app", &endpoint.id, Some(MAX_ROTATION_OVERLAP_SECS + 1), 3_000)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn bad_input_changes_nothing() {
        let (store, key) = setup().await;
        let admin = WebhookAdmin {
            store: &store,
            key: &key,
            allow_loopback_http: true,
        };
        assert!(matches!(
            admin.create("nope", new_endpoint("https://a.example/"), 1, "c").await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            admin
                .create("app", new_endpoint("http://hooks.example.com/"), 1, "c")
                .await,
            Err(Error::Validation(_))
        ));
        let (endpoint, _) = admin
            .create("app", new_endpoint("http://127.0.0.1:9/hook"), 1, "c")
            .await
            .unwrap();
        let bad = EndpointChange {
            url: Some("https://fine.example/".into()),
            event_types: Some(vec!["nope".into()]),
            ..EndpointChange::default()
        };
        assert!(matches!(
            admin.change("app", &endpoint.id, bad, 2).await,
            Err(Error::Validation(_))
        ));
        assert_eq!(admin.get("app", &endpoint.id).await.unwrap(), endpoint);

        let disable = EndpointChange {
            enabled: Some(false),
            ..EndpointChange::default()
        };
        let (_, after) = admin.change("app", &endpoint.id, disable, 3).await.unwrap();
        assert!(!after.enabled && after.updated_at == 3 && after.url == endpoint.url);
        for _ in 1..MAX_ENDPOINTS_PER_APP {
            admin
                .create("app", new_endpoint("https://a.example/"), 4, "c")
                .await
                .unwrap();
        }
        assert!(matches!(
            admin.create("app", new_endpoint("https://a.example/"), 5, "c").await,
            Err(Error::LimitExceeded(_))
        ));
        admin.delete("app", &endpoint.id).await.unwrap();
        assert!(matches!(
            admin.delete("app", &endpoint.id).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(admin.get("other", &after.id).await, Err(Error::NotFound(_))));
    }
}
