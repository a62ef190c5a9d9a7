//! Conversation rules shared by the socket node and the conversations HTTP function: who may create,
//! read, change and leave a conversation, and how lists show the last message and the unread count.
//! Callers own the side effects on live connections (fan-out notices).

use crate::domain::audit::{actions, Actor, AuditEvent, Target};
use crate::domain::events::{topics, ConversationEvent, EventHeaders};
use crate::domain::model::{limits, Conversation, ConversationKind, Member, Restriction, RestrictionKind, Role};
use crate::domain::protocol::CreateConversation;
use crate::ports::bus::Bus;
use crate::ports::cache::Cache;
use crate::ports::store::Store;
use crate::{now_ms, Error, Result};
use std::collections::BTreeSet;

/// The authenticated user a request acts for (from the SDK token).
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The app of the token; every read and write is scoped to it.
    pub app_id: &'a str,
    /// The platform user id of the token's subject (`sub`).
    pub user_id: &'a str,
    /// The request's correlation id, written into every record and event the use case causes.
    pub correlation_id: &'a str,
}

/// The conversation use cases over the ports: membership and role checks, changes announced on
/// `caas.conversations`, and the membership cache kept in step with the store.
pub struct Conversations<'a> {
    /// Where conversations, members and read horizons are stored.
    pub store: &'a dyn Store,
    /// The membership cache, sequence counters and recent window.
    pub cache: &'a dyn Cache,
    /// Where changes are announced (and member removals audited).
    pub bus: &'a dyn Bus,
}

/// Largest page of conversations a list returns.
pub const MAX_LIST: usize = 100;

/// Unread counts stop here (clients show "999+"): counting is bounded whatever a member left unread.
pub const MAX_UNREAD_COUNT: usize = 1000;

/// Refuses an id that is empty, longer than [`limits::MAX_ID_BYTES`] or holds control characters.
pub fn require_id(field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > limits::MAX_ID_BYTES || value.chars().any(char::is_control) {
        return Err(Error::Validation(format!(
            "{field} must be 1 to {} printable characters",
            limits::MAX_ID_BYTES
        )));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > limits::MAX_NAME_CHARS {
        return Err(Error::Validation(format!(
            "name must be 1 to {} characters",
            limits::MAX_NAME_CHARS
        )));
    }
    if limits::has_deceptive_chars(name) {
        return Err(Error::Validation(
            "name must not contain control characters or bidirectional overrides".into(),
        ));
    }
    Ok(())
}

impl Conversations<'_> {
    /// Announces a change on `caas.conversations` for every socket node to relay.
    async fn announce(&self, caller: Caller<'_>, event: ConversationEvent) -> Result<()> {
        let headers = EventHeaders::new(caller.app_id, &event.kind, caller.correlation_id);
        self.bus
            .publish_json(topics::CONVERSATIONS, &event.conversation.id, &headers, &event)
            .await?;
        tracing::debug!(kind = %event.kind, conversation_id = %event.conversation.id, removed = ?event.removed, "conversation change announced");
        Ok(())
    }

    /// Refuses callers who are not members of the conversation (one cache lookup when the member list is
    /// cached). Another app's conversation is "not found", never "forbidden".
    pub async fn require_member(&self, caller: Caller<'_>, conversation_id: &str) -> Result<()> {
        require_id("conversation_id", conversation_id)?;
        let member = match self
            .cache
            .is_member(caller.app_id, conversation_id, caller.user_id)
            .await?
        {
            Some(member) => member,
            None => self.find(caller, conversation_id).await?.has_member(caller.user_id),
        };
        if !member {
            return Err(not_a_member(conversation_id));
        }
        Ok(())
    }

    /// The conversation from the cache, or from the store (then cached for an hour).
    async fn find(&self, caller: Caller<'_>, conversation_id: &str) -> Result<Conversation> {
        if let Some(json) = self.cache.cached_conversation(caller.app_id, conversation_id).await? {
            if let Ok(conversation) = serde_json::from_str::<Conversation>(&json) {
                return Ok(conversation);
            }
        }
        let conversation = self
            .store
            .find_conversation(caller.app_id, conversation_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("conversation {conversation_id} not found")))?;
        self.remember(&conversation).await?;
        Ok(conversation)
    }

    /// Caches the conversation and its member list as they are now (after every change).
    async fn remember(&self, conversation: &Conversation) -> Result<()> {
        let json = serde_json::to_string(conversation).map_err(|e| Error::Internal(e.to_string()))?;
        tokio::try_join!(
            self.cache
                .cache_conversation(&conversation.app_id, &conversation.id, &json),
            self.cache
                .cache_members(&conversation.app_id, &conversation.id, &conversation.member_ids),
        )?;
        Ok(())
    }

    /// Drops the cached conversation and members after a change: the next reader caches what the
    /// store says then, so concurrent changes converge on the store's answer (each writing its own
    /// result could leave the older one cached for an hour).
    async fn forget(&self, conversation: &Conversation) -> Result<()> {
        self.cache
            .forget_conversation(&conversation.app_id, &conversation.id)
            .await
    }

    /// The conversation, for a member.
    pub async fn get(&self, caller: Caller<'_>, conversation_id: &str) -> Result<Conversation> {
        self.require_member(caller, conversation_id).await?;
        self.find(caller, conversation_id).await
    }

    async fn require_users_exist(&self, caller: Caller<'_>, ids: &[String]) -> Result<()> {
        let found = self.store.find_users(caller.app_id, ids).await?;
        if found.len() == ids.len() {
            return Ok(());
        }
        let known: BTreeSet<&str> = found.iter().map(|u| u.id.as_str()).collect();
        let missing: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| !known.contains(id))
            .collect();
        Err(Error::NotFound(format!(
            "unknown users in this app: {}",
            missing.join(", ")
        )))
    }

    /// Creates a direct conversation (one per pair of users: creating it again returns it) or a group
    /// owned by the caller.
    pub async fn create(&self, caller: Caller<'_>, request: CreateConversation) -> Result<Conversation> {
        let others: BTreeSet<String> = request
            .member_ids
            .into_iter()
            .filter(|id| id != caller.user_id)
            .collect();
        for id in &others {
            require_id("member_ids[]", id)?;
        }
        let id = match request.kind {
            ConversationKind::Direct => {
                let [other] = others.iter().collect::<Vec<_>>()[..] else {
                    return Err(Error::Validation(
                        "a direct conversation has exactly one other member".into(),
                    ));
                };
                Conversation::direct_id(caller.app_id, caller.user_id, other)
            }
            ConversationKind::Group => {
                if others.is_empty() || others.len() >= limits::MAX_GROUP_MEMBERS {
                    return Err(Error::Validation(format!(
                        "a group needs 1 to {} other members",
                        limits::MAX_GROUP_MEMBERS - 1
                    )));
                }
                uuid::Uuid::now_v7().to_string()
            }
        };
        if let Some(name) = &request.name {
            validate_name(name)?;
        }
        let ids: Vec<String> = others.iter().cloned().collect();
        self.require_users_exist(caller, &ids).await?;
        let mut member_ids = vec![caller.user_id.to_owned()];
        member_ids.extend(ids);
        let conversation = Conversation {
            id,
            app_id: caller.app_id.to_owned(),
            kind: request.kind,
            name: request.name.map(|n| n.trim().to_owned()),
            created_by: caller.user_id.to_owned(),
            member_ids,
            epoch: uuid::Uuid::new_v4().simple().to_string(),
            created_at: now_ms(),
            correlation_id: caller.correlation_id.to_owned(),
        };
        let members: Vec<Member> = conversation
            .member_ids
            .iter()
            .map(|user| {
                let role = if user == caller.user_id && request.kind == ConversationKind::Group {
                    Role::Owner
                } else {
                    Role::Member
                };
                Member::new(&conversation, user, role)
            })
            .collect();
        let stored = self.store.create_conversation(&conversation, &members).await?;
        if !stored.has_member(caller.user_id) {
            return Err(Error::Forbidden("you are not a member of this conversation".into()));
        }
        // No counter is created here: a conversation opened again (a direct pair) may already have
        // messages, and after a cache loss a counter made at 0 would hand their seqs out again. The
        // first send finds no counter and re-seeds it above the store's reservation
        // (`sequencing::claim`), the one place a counter is ever created.
        self.remember(&stored).await?;
        let event = ConversationEvent {
            kind: "conversation.created".into(),
            added: stored.member_ids.clone(),
            conversation: stored.clone(),
            removed: Vec::new(),
        };
        self.announce(caller, event).await?;
        Ok(stored)
    }

    /// The caller's role, refusing anyone below `Admin` (and every change to a direct conversation).
    async fn require_admin(&self, caller: Caller<'_>, conversation_id: &str) -> Result<(Conversation, Role)> {
        let conversation = self.get(caller, conversation_id).await?;
        if conversation.kind == ConversationKind::Direct {
            return Err(Error::Validation(
                "a direct conversation's members and name cannot change".into(),
            ));
        }
        let role = self
            .store
            .find_member(caller.app_id, conversation_id, caller.user_id)
            .await?
            .map(|m| m.role)
            .ok_or_else(|| Error::Forbidden("you are not a member of this conversation".into()))?;
        if role == Role::Member {
            return Err(Error::Forbidden("only the owner or an admin can do this".into()));
        }
        Ok((conversation, role))
    }

    /// Refuses to add a user banned from the conversation (or the whole app): re-adding must not undo
    /// the operator's ban.
    async fn refuse_banned(&self, app_id: &str, conversation_id: &str, user_ids: &[String]) -> Result<()> {
        let now = now_ms();
        for user_id in user_ids {
            for scope in [Some(conversation_id), None] {
                let id = Restriction::id_for(RestrictionKind::Ban, user_id, scope);
                if self
                    .store
                    .find_restriction(app_id, &id)
                    .await?
                    .is_some_and(|r| r.is_active(now))
                {
                    return Err(Error::Forbidden(format!("{user_id} is banned and cannot be added")));
                }
            }
        }
        Ok(())
    }

    /// Adds users to a group (owner/admin only). Only the owner may add admins.
    pub async fn add_members(
        &self,
        caller: Caller<'_>,
        conversation_id: &str,
        user_ids: &[String],
        role: Role,
    ) -> Result<Conversation> {
        let (conversation, caller_role) = self.require_admin(caller, conversation_id).await?;
        match role {
            Role::Owner => return Err(Error::Validation("a group has exactly one owner".into())),
            Role::Admin if caller_role != Role::Owner => {
                return Err(Error::Forbidden("only the owner can add admins".into()))
            }
            _ => {}
        }
        let new: Vec<String> = user_ids
            .iter()
            .filter(|id| !conversation.has_member(id))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if new.is_empty() {
            return Ok(conversation);
        }
        for id in &new {
            require_id("member_ids[]", id)?;
        }
        if conversation.member_ids.len() + new.len() > limits::MAX_GROUP_MEMBERS {
            return Err(Error::Validation(format!(
                "a group has at most {} members",
                limits::MAX_GROUP_MEMBERS
            )));
        }
        self.require_users_exist(caller, &new).await?;
        self.refuse_banned(caller.app_id, conversation_id, &new).await?;
        let members: Vec<Member> = new
            .iter()
            .map(|user| Member {
                joined_at: now_ms(),
                correlation_id: caller.correlation_id.to_owned(),
                ..Member::new(&conversation, user, role)
            })
            .collect();
        let updated = self.store.add_members(caller.app_id, conversation_id, &members).await?;
        self.forget(&updated).await?;
        let event = ConversationEvent {
            kind: "conversation.updated".into(),
            conversation: updated.clone(),
            added: new,
            removed: Vec::new(),
        };
        self.announce(caller, event).await?;
        Ok(updated)
    }

    /// Removes `user_id`: anyone may leave; owners and admins may remove members; nobody removes the
    /// owner, and the owner cannot leave a group that still has other members.
    pub async fn remove_member(
        &self,
        caller: Caller<'_>,
        conversation_id: &str,
        user_id: &str,
    ) -> Result<Conversation> {
        require_id("user_id", user_id)?;
        let leaving = user_id == caller.user_id;
        let (conversation, caller_role) = if leaving {
            (self.get(caller, conversation_id).await?, None)
        } else {
            let (conversation, role) = self.require_admin(caller, conversation_id).await?;
            (conversation, Some(role))
        };
        let Some(target) = self.store.find_member(caller.app_id, conversation_id, user_id).await? else {
            // Not a member (any more). A removal whose cache drop or announcement failed is retried
            // this way: the cache is dropped and the removal announced again, so the user's cached
            // membership and live subscriptions go whatever failed before.
            self.forget(&conversation).await?;
            let event = ConversationEvent {
                kind: "conversation.updated".into(),
                conversation: self
                    .store
                    .find_conversation(caller.app_id, conversation_id)
                    .await?
                    .unwrap_or(conversation),
                added: Vec::new(),
                removed: vec![user_id.to_owned()],
            };
            self.announce(caller, event).await?;
            return Err(Error::NotFound(format!(
                "{user_id} is not a member of this conversation"
            )));
        };
        if target.role == Role::Owner && (!leaving || conversation.member_ids.len() > 1) {
            return Err(Error::Forbidden(
                "the owner cannot be removed, and leaves only as the last member".into(),
            ));
        }
        if target.role == Role::Admin && caller_role == Some(Role::Admin) {
            return Err(Error::Forbidden("only the owner can remove an admin".into()));
        }
        let actor = if leaving {
            None
        } else {
            Some(Actor::user(caller.user_id))
        };
        self.drop_member(caller, conversation_id, user_id, actor).await
    }

    /// Removes a member on the operator's authority (a conversation ban), whatever their role;
    /// `None` when the user is not a member.
    pub async fn expel(
        &self,
        app_id: &str,
        conversation_id: &str,
        user_id: &str,
        correlation_id: &str,
    ) -> Result<Option<Conversation>> {
        if self
            .store
            .find_member(app_id, conversation_id, user_id)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let caller = Caller {
            app_id,
            user_id,
            correlation_id,
        };
        let updated = self
            .drop_member(caller, conversation_id, user_id, Some(Actor::operator()))
            .await?;
        Ok(Some(updated))
    }

    /// Removes the member, announces it, and audits a removal by someone else (`actor`).
    async fn drop_member(
        &self,
        caller: Caller<'_>,
        conversation_id: &str,
        user_id: &str,
        actor: Option<Actor>,
    ) -> Result<Conversation> {
        let updated = self
            .store
            .remove_member(caller.app_id, conversation_id, user_id)
            .await?;
        self.forget(&updated).await?;
        let event = ConversationEvent {
            kind: "conversation.updated".into(),
            conversation: updated.clone(),
            added: Vec::new(),
            removed: vec![user_id.to_owned()],
        };
        self.announce(caller, event).await?;
        // Again: a reader that loaded the members before the removal may have cached them meanwhile.
        self.forget(&updated).await?;
        if let Some(actor) = actor {
            AuditEvent::new(
                caller.app_id,
                actions::MEMBER_REMOVED,
                actor,
                Target::new("user", user_id),
                caller.correlation_id,
            )
            .with_details(serde_json::json!({"conversation_id": conversation_id}))
            .emit(self.bus)
            .await?;
        }
        Ok(updated)
    }

    /// Renames a group (owner or admin only; a direct conversation's name cannot change) to `name`, trimmed, and
    /// announces the change as `conversation.updated`.
    pub async fn rename(&self, caller: Caller<'_>, conversation_id: &str, name: &str) -> Result<Conversation> {
        validate_name(name)?;
        self.require_admin(caller, conversation_id).await?;
        let renamed = self
            .store
            .rename_conversation(caller.app_id, conversation_id, name.trim())
            .await?;
        self.forget(&renamed).await?;
        let event = ConversationEvent {
            kind: "conversation.updated".into(),
            conversation: renamed.clone(),
            added: Vec::new(),
            removed: Vec::new(),
        };
        self.announce(caller, event).await?;
        Ok(renamed)
    }

    /// The member records (with roles), for a member, in the order they joined.
    pub async fn members(&self, caller: Caller<'_>, conversation_id: &str) -> Result<Vec<Member>> {
        self.require_member(caller, conversation_id).await?;
        self.store.list_members(caller.app_id, conversation_id).await
    }
}

/// The refusal of a caller who is not a member of `conversation_id`.
pub(crate) fn not_a_member(conversation_id: &str) -> Error {
    Error::Forbidden(format!("you are not a member of conversation {conversation_id}"))
}
