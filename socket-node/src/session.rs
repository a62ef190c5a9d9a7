//! The authenticated identity behind one connection.

use crate::budget::Budget;
use crate::hub::ConnectionId;
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::services::auth::Claims;
use caas_shared::services::conversations::Caller;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::Notify;

pub struct Session {
    pub claims: Claims,
    pub connection: ConnectionId,
    /// The connection's correlation id (from the handshake, the auth frame, or generated); a frame may
    /// carry its own for one request.
    pub correlation_id: CorrelationId,
    /// The client's device in the key directory, when it named one: its `keys.low` notices reach this
    /// connection.
    pub device_id: Option<String>,
    /// When the connection's token expires (Unix seconds): the connection closes then unless the client
    /// sent a fresh token for the same session in an `auth` frame.
    expires_at: AtomicI64,
    /// Signalled when an `auth` frame moved [`Self::expires_at`].
    pub renewed: Notify,
    /// What the client may still ask for this second (see [`crate::budget`]).
    pub budget: Budget,
}

impl Session {
    pub fn new(
        claims: Claims,
        connection: ConnectionId,
        correlation_id: CorrelationId,
        device_id: Option<String>,
    ) -> Self {
        Self {
            expires_at: AtomicI64::new(claims.exp),
            claims,
            connection,
            correlation_id,
            device_id,
            renewed: Notify::new(),
            budget: Budget::default(),
        }
    }

    /// When the connection's current token expires, Unix seconds.
    pub fn expires_at(&self) -> i64 {
        self.expires_at.load(Ordering::Relaxed)
    }

    /// Accepts a fresh token's claims: only for the same app, user and session, so a connection never
    /// changes identity.
    pub fn renew(&self, fresh: &Claims) -> caas_shared::Result<i64> {
        if fresh.app_id != self.claims.app_id || fresh.sub != self.claims.sub || fresh.jti != self.claims.jti {
            return Err(caas_shared::Error::Forbidden(
                "a connection renews only with a token of its own session".into(),
            ));
        }
        self.expires_at.fetch_max(fresh.exp, Ordering::Relaxed);
        self.renewed.notify_one();
        Ok(self.expires_at())
    }

    pub fn app_id(&self) -> &str {
        &self.claims.app_id
    }

    pub fn user_id(&self) -> &str {
        &self.claims.sub
    }

    /// The caller a request of this connection acts for, traced by `correlation_id`.
    pub fn caller<'a>(&'a self, correlation_id: &'a str) -> Caller<'a> {
        Caller {
            app_id: self.app_id(),
            user_id: self.user_id(),
            correlation_id,
        }
    }
}
