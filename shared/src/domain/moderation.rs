//! Moderation rules without I/O: blocked terms in a text, policy validation, and the question a send or
//! a connect puts to the cache ([`GateCheck`]) with its possible answers ([`SendGate`]). The cache
//! drivers answer it; the moderation service asks it.

use crate::domain::model::{ContentPolicy, RateLimits, Restriction, RestrictionKind};
use crate::{Error, Result};
use std::time::Duration;

/// How long a mirrored restriction set lives in the cache before it is reloaded from the store.
pub const RESTRICTIONS_TTL: Duration = Duration::from_secs(600);

/// The blocked terms found in `text` (lowercased, whole words), in policy order.
pub fn blocked_terms_in(policy: &ContentPolicy, text: &str) -> Vec<String> {
    if policy.blocked_terms.is_empty() {
        return Vec::new();
    }
    let haystack = format!(" {} ", words(text));
    policy
        .blocked_terms
        .iter()
        .map(|term| words(term))
        .filter(|term| !term.is_empty() && haystack.contains(&format!(" {term} ")))
        .collect()
}

/// Lowercase words separated by single spaces: "Buy  NOW!!" → "buy now".
fn words(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Validates an app's content policy before it is stored.
pub fn validate_policy(policy: &ContentPolicy, limits: &RateLimits) -> Result<()> {
    const MAX_TERMS: usize = 1_000;
    if policy.blocked_terms.len() > MAX_TERMS {
        return Err(Error::Validation(format!(
            "content.blocked_terms holds at most {MAX_TERMS} terms"
        )));
    }
    if let Some(bad) = policy
        .blocked_terms
        .iter()
        .find(|term| words(term).is_empty() || term.len() > 200)
    {
        return Err(Error::Validation(format!(
            "content.blocked_terms: {bad:?} must contain a word and be at most 200 bytes"
        )));
    }
    if limits.user_messages_per_second > 10_000 || limits.app_messages_per_second > 1_000_000 {
        return Err(Error::Validation(
            "rate_limits: at most 10000 messages/s per user and 1000000 per app (0 = unlimited)".into(),
        ));
    }
    Ok(())
}

/// The cache field a restriction is mirrored under (its id).
pub fn restriction_field(kind: RestrictionKind, user_id: &str, conversation_id: Option<&str>) -> String {
    Restriction::id_for(kind, user_id, conversation_id)
}

const NO_LIMITS: RateLimits = RateLimits {
    user_messages_per_second: 0,
    app_messages_per_second: 0,
};

/// One question to the cache: is any of these restrictions of the user in force, and (for a send)
/// does it fit the rate limits? Answered in one round trip.
#[derive(Clone, Debug)]
pub struct GateCheck<'a> {
    /// The app whose restriction mirror and rate counters are consulted.
    pub app_id: &'a str,
    /// The platform user id of the user connecting or sending.
    pub user_id: &'a str,
    /// Restrictions that refuse the action: (kind, conversation) — `None` is app-wide.
    pub refused_by: Vec<(RestrictionKind, Option<&'a str>)>,
    /// Counted against when set (a send); connecting counts nothing.
    pub limits: Option<&'a RateLimits>,
    /// When the question is asked, Unix ms; restrictions expiring at or before it are not in force.
    pub now_ms: i64,
}

impl<'a> GateCheck<'a> {
    /// A new connection: refused only by an app-wide ban.
    pub fn connect(app_id: &'a str, user_id: &'a str) -> Self {
        Self {
            app_id,
            user_id,
            refused_by: vec![(RestrictionKind::Ban, None)],
            limits: None,
            now_ms: crate::now_ms(),
        }
    }

    /// A send to a conversation: refused by any ban or mute, app-wide or there, and rate limited.
    pub fn send(app_id: &'a str, user_id: &'a str, conversation_id: &'a str, limits: &'a RateLimits) -> Self {
        Self {
            app_id,
            user_id,
            refused_by: vec![
                (RestrictionKind::Ban, None),
                (RestrictionKind::Mute, None),
                (RestrictionKind::Ban, Some(conversation_id)),
                (RestrictionKind::Mute, Some(conversation_id)),
            ],
            limits: Some(limits),
            now_ms: crate::now_ms(),
        }
    }

    /// An action in a conversation that is not a post (typing): refused by any ban or mute, app-wide
    /// or there, and counted against nothing.
    pub fn act(app_id: &'a str, user_id: &'a str, conversation_id: &'a str) -> Self {
        Self {
            limits: None,
            ..Self::send(app_id, user_id, conversation_id, &NO_LIMITS)
        }
    }

    /// The cache fields of [`Self::refused_by`], in order.
    pub fn fields(&self) -> Vec<String> {
        self.refused_by
            .iter()
            .map(|(kind, conversation)| restriction_field(*kind, self.user_id, *conversation))
            .collect()
    }

    /// The verdict when restriction `index` (of [`Self::refused_by`]) is in force until `expires_at`
    /// (0: until lifted).
    pub fn restricted(&self, index: usize, expires_at: i64) -> SendGate {
        let (kind, conversation) = self.refused_by[index];
        SendGate::Restricted {
            kind,
            conversation_wide: conversation.is_some(),
            expires_at: (expires_at > 0).then_some(expires_at),
        }
    }
}

/// A restriction's expiry as the cache stores it: 0 for "until lifted".
pub fn mirrored_expiry(restriction: &Restriction) -> i64 {
    restriction.expires_at.unwrap_or(0)
}

/// What the cache says about one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendGate {
    /// Nothing refuses the action; for a send, it has been counted against the rate limits.
    Allowed,
    /// The app's restrictions are not mirrored: load them from the store and ask again.
    Unloaded,
    /// A ban or mute of the user is in force; maps to `user_banned` or `user_muted` (403).
    Restricted {
        /// Ban or mute.
        kind: RestrictionKind,
        /// Whether the restriction is for this conversation rather than the whole app.
        conversation_wide: bool,
        /// Unix ms when it lapses; `None` lasts until lifted.
        expires_at: Option<i64>,
    },
    /// A rate limit is reached; maps to `rate_limited` (429). Nothing was counted.
    RateLimited {
        /// Whose limit: the sender's or the whole app's.
        scope: RateScope,
        /// Milliseconds until the current one-second window ends.
        retry_after_ms: i64,
    },
}

/// Which rate limit refused a send ([`RateLimits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateScope {
    /// The sender's own limit, `user_messages_per_second`.
    User,
    /// The whole app's limit, `app_messages_per_second`.
    App,
}

impl SendGate {
    /// The error a refused send gets.
    pub fn into_result(self) -> Result<()> {
        match self {
            SendGate::Allowed => Ok(()),
            SendGate::Unloaded => Err(Error::Internal("restrictions not loaded".into())),
            SendGate::Restricted {
                kind,
                conversation_wide,
                expires_at,
            } => {
                let scope = if conversation_wide {
                    "in this conversation"
                } else {
                    "in this app"
                };
                let until = expires_at.map_or_else(String::new, |t| format!(" until {t} (Unix ms)"));
                Err(match kind {
                    RestrictionKind::Ban => Error::Banned(format!("you are banned {scope}{until}")),
                    RestrictionKind::Mute => Error::Muted(format!("you are muted {scope}{until}")),
                })
            }
            SendGate::RateLimited { scope, retry_after_ms } => {
                let whose = match scope {
                    RateScope::User => "your",
                    RateScope::App => "this app's",
                };
                Err(Error::RateLimited {
                    message: format!("{whose} message rate limit is reached; retry in {retry_after_ms} ms"),
                    retry_after_ms,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::BlockedTermAction;

    fn policy(terms: &[&str]) -> ContentPolicy {
        ContentPolicy {
            blocked_terms: terms.iter().map(|t| (*t).to_owned()).collect(),
            action: BlockedTermAction::Reject,
        }
    }

    #[test]
    fn terms_match_whole_words_case_insensitively() {
        let policy = policy(&["spam", "buy now"]);
        assert_eq!(blocked_terms_in(&policy, "No SPAM, please"), ["spam"]);
        assert_eq!(blocked_terms_in(&policy, "Buy   now!!"), ["buy now"]);
        assert!(blocked_terms_in(&policy, "spammer buys nowhere").is_empty());
        assert!(blocked_terms_in(&ContentPolicy::default(), "spam").is_empty());
    }

    #[test]
    fn policies_without_words_are_refused() {
        assert!(validate_policy(&policy(&["ok"]), &RateLimits::default()).is_ok());
        assert!(validate_policy(&policy(&["!!"]), &RateLimits::default()).is_err());
    }
}
