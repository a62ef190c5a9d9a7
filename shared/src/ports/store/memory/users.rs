//! Users and sessions in the in-memory store.

use super::Change::{Changed, Unchanged};
use super::{app_scoped_key, MemoryStore};
use crate::domain::model::{Session, User};
use crate::ports::store::UserStore;
use crate::{Error, Result};
use async_trait::async_trait;

#[async_trait]
impl UserStore for MemoryStore {
    async fn upsert_user(&self, user: &User) -> Result<User> {
        self.write(|tables| {
            let key = (user.app_id.clone(), user.external_id.clone());
            let id = match tables.user_ids.get(&key) {
                Some(id) => id.clone(),
                None => {
                    tables.user_ids.insert(key, user.id.clone());
                    tables.users.insert(user.id.clone(), user.clone());
                    return Ok(Changed(user.clone()));
                }
            };
            let stored = tables
                .users
                .get_mut(&id)
                .ok_or_else(|| Error::Internal("user index out of step".into()))?;
            if user.display_name.is_none() || stored.display_name == user.display_name {
                return Ok(Unchanged(stored.clone()));
            }
            stored.display_name = user.display_name.clone();
            Ok(Changed(stored.clone()))
        })
    }

    async fn find_users(&self, app_id: &str, ids: &[String]) -> Result<Vec<User>> {
        self.read(|tables| {
            ids.iter()
                .filter_map(|id| tables.users.get(id))
                .filter(|user| user.app_id == app_id)
                .cloned()
                .collect()
        })
    }

    async fn insert_session(&self, session: &Session) -> Result<()> {
        self.write(|tables| {
            let key = app_scoped_key(&session.app_id, &session.id);
            if tables.sessions.contains_key(&key) {
                return Err(Error::Conflict(format!("session {} exists", session.id)));
            }
            tables.sessions.insert(key, session.clone());
            Ok(Changed(()))
        })
    }

    async fn insert_sessions(&self, sessions: &[Session]) -> Result<()> {
        let conflicts = self.write(|tables| {
            let mut conflicts = 0;
            for session in sessions {
                let key = app_scoped_key(&session.app_id, &session.id);
                match tables.sessions.entry(key) {
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(session.clone());
                    }
                    std::collections::hash_map::Entry::Occupied(_) => conflicts += 1,
                }
            }
            Ok(Changed(conflicts))
        })?;
        match conflicts {
            0 => Ok(()),
            n => Err(Error::Conflict(format!("{n} of {} sessions exist", sessions.len()))),
        }
    }

    async fn find_session(&self, app_id: &str, session_id: &str) -> Result<Option<Session>> {
        self.read(|tables| tables.sessions.get(&app_scoped_key(app_id, session_id)).cloned())
    }

    async fn find_sessions(&self, app_id: &str, session_ids: &[String]) -> Result<Vec<Session>> {
        self.read(|tables| {
            session_ids
                .iter()
                .filter_map(|id| tables.sessions.get(&app_scoped_key(app_id, id)).cloned())
                .collect()
        })
    }

    async fn extend_session(&self, app_id: &str, session_id: &str, expires_at: i64) -> Result<Option<Session>> {
        self.write(|tables| {
            let Some(session) = tables
                .sessions
                .get_mut(&app_scoped_key(app_id, session_id))
                .filter(|s| s.revoked_at.is_none())
            else {
                return Ok(Unchanged(None));
            };
            session.expires_at = expires_at;
            Ok(Changed(Some(session.clone())))
        })
    }

    async fn revoke_sessions(
        &self,
        app_id: &str,
        user_id: &str,
        session_id: Option<&str>,
        revoked_at: i64,
    ) -> Result<Vec<Session>> {
        let mut revoked = self.write(|tables| {
            let mut revoked = Vec::new();
            for session in tables.sessions.values_mut() {
                let chosen = session_id.is_none_or(|id| id == session.id);
                if session.app_id == app_id && session.user_id == user_id && chosen && session.revoked_at.is_none() {
                    revoked.push(session.clone());
                    session.revoked_at = Some(revoked_at);
                }
            }
            Ok(Changed(revoked))
        })?;
        revoked.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(revoked)
    }

    async fn revoke_app_sessions(&self, app_id: &str, revoked_at: i64) -> Result<u64> {
        self.write(|tables| {
            let mut revoked = 0;
            for session in tables.sessions.values_mut() {
                if session.app_id == app_id && session.revoked_at.is_none() {
                    session.revoked_at = Some(revoked_at);
                    revoked += 1;
                }
            }
            Ok(Changed(revoked))
        })
    }

    async fn list_sessions(&self, app_id: &str, user_id: &str) -> Result<Vec<Session>> {
        let mut sessions: Vec<Session> = self.read(|tables| {
            tables
                .sessions
                .values()
                .filter(|s| s.app_id == app_id && s.user_id == user_id)
                .cloned()
                .collect()
        })?;
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    async fn pseudonymise_user(&self, app_id: &str, user_id: &str, pseudonym: &str) -> Result<User> {
        self.write(|tables| {
            let user = tables
                .users
                .get_mut(user_id)
                .filter(|u| u.app_id == app_id)
                .ok_or_else(|| Error::NotFound(format!("user {user_id} not found")))?;
            let old_key = (user.app_id.clone(), user.external_id.clone());
            user.external_id = pseudonym.to_owned();
            user.display_name = None;
            let user = user.clone();
            tables.user_ids.remove(&old_key);
            tables
                .user_ids
                .insert((user.app_id.clone(), user.external_id.clone()), user.id.clone());
            Ok(Changed(user))
        })
    }
}
