//! SDK tokens (HS256 JWTs verified for signature, expiry, issuer and audience) and app secrets
//! (argon2id hashes; the plain secret is shown once and never stored or logged).

use crate::config::Config;
use crate::domain::model::Session;
use crate::ports::store::Store;
use crate::{Error, Result};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a token proves: this user of this app, for this session, until `exp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Platform user id.
    pub sub: String,
    /// The app the user belongs to; every request the token authorises is scoped to it.
    pub app_id: String,
    /// The id the app's backend knows the user by.
    pub external_id: String,
    /// Session id, so a session can be revoked.
    pub jti: String,
    /// Issuer, checked against [`Config::jwt_issuer`] on verification.
    pub iss: String,
    /// Audience, checked against [`Config::jwt_audience`] on verification.
    pub aud: String,
    /// Issued at, Unix seconds (not milliseconds, as JWT requires).
    pub iat: i64,
    /// Expiry, Unix seconds; verification allows 5 s of clock skew.
    pub exp: i64,
}

/// Issues and verifies SDK tokens with one shared secret.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    audience: String,
    ttl: Duration,
}

/// A freshly issued token and when it stops being accepted (Unix seconds).
pub struct IssuedToken {
    /// The signed HS256 JWT, sent as `Authorization: Bearer <token>` or on the WebSocket upgrade.
    pub token: String,
    /// The token's `exp`, Unix seconds.
    pub expires_at: i64,
    /// The session the token belongs to (its `jti`).
    pub session_id: String,
}

impl TokenSigner {
    /// A signer with the shared HMAC `secret`, the `issuer` and `audience` it sets and requires, and tokens valid for
    /// `ttl`.
    pub fn new(secret: &str, issuer: &str, audience: &str, ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        }
    }

    /// The signer of this deployment ([`Config::jwt_secret`], issuer, audience and token TTL).
    pub fn from_config(config: &Config) -> Self {
        Self::new(
            &config.jwt_secret,
            &config.jwt_issuer,
            &config.jwt_audience,
            config.token_ttl,
        )
    }

    /// A token for a new session; callers record the session ([`start_session`]) before handing it out.
    pub fn issue(&self, app_id: &str, user_id: &str, external_id: &str) -> Result<IssuedToken> {
        self.sign(app_id, user_id, external_id, &uuid::Uuid::new_v4().to_string())
    }

    /// A fresh token for the same session (a refresh): same identity and session id, new expiry — but
    /// never past `not_after` (Unix seconds), the session's absolute end.
    pub fn reissue(&self, claims: &Claims, not_after: i64) -> Result<IssuedToken> {
        self.sign_until(&claims.app_id, &claims.sub, &claims.external_id, &claims.jti, not_after)
    }

    fn sign(&self, app_id: &str, user_id: &str, external_id: &str, session_id: &str) -> Result<IssuedToken> {
        self.sign_until(app_id, user_id, external_id, session_id, i64::MAX)
    }

    fn sign_until(
        &self,
        app_id: &str,
        user_id: &str,
        external_id: &str,
        session_id: &str,
        not_after: i64,
    ) -> Result<IssuedToken> {
        let now = crate::now_ms() / 1000;
        let claims = Claims {
            sub: user_id.to_owned(),
            app_id: app_id.to_owned(),
            external_id: external_id.to_owned(),
            jti: session_id.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: (now + self.ttl.as_secs() as i64).min(not_after),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing token: {e}")))?;
        Ok(IssuedToken {
            token,
            expires_at: claims.exp,
            session_id: claims.jti,
        })
    }

    /// Checks the token's HS256 signature, expiry, issuer and audience and returns its claims; `Unauthorized` when
    /// any check fails. Does not look at the session: see [`authenticate`] for that.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| Error::Unauthorized(format!("invalid token: {e}")))
    }
}

/// Issues a token for a new session of `user_id` and records the session, so the token is accepted.
pub async fn start_session(
    signer: &TokenSigner,
    store: &dyn Store,
    (app_id, user_id, external_id): (&str, &str, &str),
    correlation_id: &str,
) -> Result<IssuedToken> {
    let issued = signer.issue(app_id, user_id, external_id)?;
    store
        .insert_session(&Session {
            id: issued.session_id.clone(),
            app_id: app_id.to_owned(),
            user_id: user_id.to_owned(),
            created_at: crate::now_ms(),
            expires_at: issued.expires_at,
            revoked_at: None,
            correlation_id: correlation_id.to_owned(),
        })
        .await?;
    Ok(issued)
}

/// [`start_session`] for many users of one app at once, with one store write: `users` are `(user id,
/// external id)` pairs; the tokens come back in the same order.
pub async fn start_sessions(
    signer: &TokenSigner,
    store: &dyn Store,
    app_id: &str,
    users: &[(String, String)],
    correlation_id: &str,
) -> Result<Vec<IssuedToken>> {
    let now = crate::now_ms();
    let mut issued = Vec::with_capacity(users.len());
    let mut sessions = Vec::with_capacity(users.len());
    for (user_id, external_id) in users {
        let token = signer.issue(app_id, user_id, external_id)?;
        sessions.push(Session {
            id: token.session_id.clone(),
            app_id: app_id.to_owned(),
            user_id: user_id.clone(),
            created_at: now,
            expires_at: token.expires_at,
            revoked_at: None,
            correlation_id: correlation_id.to_owned(),
        });
        issued.push(token);
    }
    store.insert_sessions(&sessions).await?;
    Ok(issued)
}

/// Verifies an SDK token, then that its session is one the platform recorded for this user and has
/// not revoked (logout, ban): a valid signature alone is not enough once a session has ended.
pub async fn authenticate(signer: &TokenSigner, store: &dyn Store, token: &str) -> Result<Claims> {
    let claims = signer.verify(token)?;
    require_live_session(store, &claims).await?;
    Ok(claims)
}

/// Refuses a verified token whose session was revoked, or was never recorded for this user.
pub async fn require_live_session(store: &dyn Store, claims: &Claims) -> Result<()> {
    check_live(store.find_session(&claims.app_id, &claims.jti).await?.as_ref(), claims)
}

/// The verdict on a verified token given its session as recorded (`None`: never recorded in its app).
pub fn check_live(session: Option<&Session>, claims: &Claims) -> Result<()> {
    match session {
        Some(session) if session.user_id == claims.sub && session.revoked_at.is_none() => Ok(()),
        Some(session) if session.revoked_at.is_some() => Err(Error::Unauthorized("session revoked".into())),
        _ => Err(Error::Unauthorized("unknown session".into())),
    }
}

/// The longest a session lives, however often it is refreshed: after this the user's app must request
/// a new token (with its app credentials), so a leaked token cannot be kept alive for ever.
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// A new random app secret (256 bits, URL-safe).
pub fn generate_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("sk_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The argon2id PHC string of an app secret, with a fresh random salt; what
/// [`App::secret_hash`](crate::domain::model::App::secret_hash) stores.
pub fn hash_secret(secret: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("hashing secret: {e}")))
}

/// Constant-time check of a presented secret against its stored argon2 hash.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|hash| Argon2::default().verify_password(secret.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::store::UserStore;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn signer() -> TokenSigner {
        TokenSigner::new(SECRET, "caas", "caas-sdk", Duration::from_secs(60))
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_identity() {
        let issued = signer().issue("app1", "user1", "ext1").unwrap();
        let claims = signer().verify(&issued.token).unwrap();
        assert_eq!(
            (claims.app_id.as_str(), claims.sub.as_str(), claims.external_id.as_str()),
            ("app1", "user1", "ext1")
        );
        assert_eq!(claims.exp, issued.expires_at);
    }

    #[test]
    fn tokens_with_wrong_signature_issuer_audience_or_expiry_are_refused() {
        let token = signer().issue("app1", "user1", "ext1").unwrap().token;
        let other_key = TokenSigner::new(&"x".repeat(32), "caas", "caas-sdk", Duration::from_secs(60));
        assert!(other_key.verify(&token).is_err());
        let other_issuer = TokenSigner::new(SECRET, "evil", "caas-sdk", Duration::from_secs(60));
        assert!(other_issuer.verify(&token).is_err());
        let other_audience = TokenSigner::new(SECRET, "caas", "other", Duration::from_secs(60));
        assert!(other_audience.verify(&token).is_err());
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(signer().verify(&tampered).is_err());
        assert!(signer().verify("not.a.jwt").is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let signer = signer();
        let now = crate::now_ms() / 1000;
        let claims = Claims {
            sub: "u".into(),
            app_id: "a".into(),
            external_id: "e".into(),
            jti: "s".into(),
            iss: "caas".into(),
            aud: "caas-sdk".into(),
            iat: now - 120,
            exp: now - 60,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &signer.encoding).unwrap();
        assert!(signer.verify(&token).is_err());
    }

    #[tokio::test]
    async fn only_tokens_of_recorded_unrevoked_sessions_authenticate() {
        let store = crate::ports::store::MemoryStore::new();
        let signer = signer();
        let issued = start_session(&signer, &store, ("app1", "user1", "ext1"), "corr")
            .await
            .unwrap();
        let claims = authenticate(&signer, &store, &issued.token).await.unwrap();
        let refreshed = signer.reissue(&claims, i64::MAX).unwrap();
        assert_eq!(refreshed.session_id, issued.session_id);
        let capped = signer.reissue(&claims, claims.iat + 5).unwrap();
        assert_eq!(
            capped.expires_at,
            claims.iat + 5,
            "never past the session's absolute end"
        );
        assert!(authenticate(&signer, &store, &refreshed.token).await.is_ok());

        let unrecorded = signer.issue("app1", "user1", "ext1").unwrap();
        assert!(matches!(
            authenticate(&signer, &store, &unrecorded.token).await,
            Err(Error::Unauthorized(m)) if m == "unknown session"
        ));

        store.revoke_sessions("app1", "user1", None, 1).await.unwrap();
        for token in [&issued.token, &refreshed.token] {
            assert!(matches!(
                authenticate(&signer, &store, token).await,
                Err(Error::Unauthorized(m)) if m == "session revoked"
            ));
        }
    }

    #[test]
    fn secrets_hash_and_verify() {
        let secret = generate_secret();
        let hash = hash_secret(&secret).unwrap();
        assert!(!hash.contains(&secret));
        assert!(verify_secret(&secret, &hash));
        assert!(!verify_secret("wrong", &hash));
        assert!(!verify_secret(&secret, "not-a-hash"));
    }
}
