//! The authenticated identity behind one connection.

use crate::hub::ConnectionId;
use caas_shared::domain::correlation::CorrelationId;
use caas_shared::services::auth::Claims;
use caas_shared::services::conversations::Caller;

pub struct Session {
    pub claims: Claims,
    pub connection: ConnectionId,
    /// The connection's correlation id (from the handshake, the auth frame, or generated); a frame may
    /// carry its own for one request.
    pub correlation_id: CorrelationId,
}

impl Session {
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
