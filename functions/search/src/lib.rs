//! The search function: full-text search over messages, for clients and app backends acting with a
//! user's SDK token.
//!
//! `GET /api/v1/search/messages?q=&conversation_id=&sender_id=&from=&to=&has_attachment=&sort=&limit=&cursor=`
//! → `{hits:[{message_id, conversation_id, sender_id, seq, created_at, edited_at?, text, highlight,
//! score?}], next_cursor}`.
//!
//! Scope is never taken from the query: the caller's app comes from the token and the conversations
//! searched are the caller's memberships, read from the store on every request, so a user removed
//! from a conversation stops finding its messages at once. `conversation_id` only narrows that set.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use caas_shared::config::Config;
use caas_shared::ports::search::{SearchIndex, SearchRequest, Sort, MAX_OFFSET, MAX_PAGE};
use caas_shared::ports::store::Store;
use caas_shared::runtime::http::{finish_router, Authenticated, VerifiesSdkTokens};
use caas_shared::services::auth::TokenSigner;
use caas_shared::services::windows::FixedWindows;
use caas_shared::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// A user in more conversations than this searches the most recently created ones.
pub const MAX_SEARCHED_CONVERSATIONS: usize = 10_000;
const DEFAULT_PAGE: usize = 20;
const CURSOR_PREFIX: &str = "offset:";

pub struct SearchApi {
    store: Arc<dyn Store>,
    index: Arc<SearchIndex>,
    signer: TokenSigner,
    /// Searches per user a minute: each one can walk a term dictionary every tenant shares.
    searches: FixedWindows,
    searches_per_user_per_minute: u32,
}

impl SearchApi {
    pub fn new(store: Arc<dyn Store>, index: Arc<SearchIndex>, config: &Config) -> Self {
        Self {
            store,
            index,
            signer: TokenSigner::from_config(config),
            searches: FixedWindows::new(Duration::from_secs(60)),
            searches_per_user_per_minute: config.searches_per_user_per_minute,
        }
    }
}

impl VerifiesSdkTokens for SearchApi {
    fn token_signer(&self) -> &TokenSigner {
        &self.signer
    }

    fn session_store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// The function as deployed: its routes with the shared correlation and JSON-error handling.
pub fn router(api: Arc<SearchApi>) -> Router {
    finish_router(routes(api))
}

/// Just the routes, for the local gateway to merge with the other functions'.
pub fn routes(api: Arc<SearchApi>) -> Router {
    Router::new()
        .route("/api/v1/search/messages", get(search_messages))
        .with_state(api)
}

/// The query string as sent; every value is checked by [`SearchParams::into_request`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: Option<String>,
    conversation_id: Option<String>,
    sender_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    has_attachment: Option<String>,
    sort: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse_number<T: std::str::FromStr>(name: &str, value: Option<&str>) -> Result<Option<T>> {
    value
        .map(|v| {
            v.parse()
                .map_err(|_| Error::Validation(format!("{name} must be a non-negative integer, got {v:?}")))
        })
        .transpose()
}

impl SearchParams {
    fn parse(raw: Option<&str>) -> Result<Self> {
        caas_shared::runtime::http::parse_query(raw)
    }

    fn into_request(self, app_id: &str, scope: Vec<String>) -> Result<SearchRequest> {
        let text = self
            .q
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| Error::Validation("q (what to search for) is required".into()))?;
        let limit = parse_number::<usize>("limit", self.limit.as_deref())?.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::Validation(format!("limit must be between 1 and {MAX_PAGE}")));
        }
        let (from, to) = (
            parse_number::<i64>("from", self.from.as_deref())?,
            parse_number::<i64>("to", self.to.as_deref())?,
        );
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(Error::Validation("from must not be after to".into()));
            }
        }
        let has_attachment = match self.has_attachment.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(Error::Validation(format!(
                    "has_attachment must be true or false, got {other:?}"
                )))
            }
        };
        let sort = match self.sort.as_deref() {
            None | Some("relevance") => Sort::Relevance,
            Some("recent") => Sort::Recent,
            Some(other) => {
                return Err(Error::Validation(format!(
                    "sort must be relevance or recent, got {other:?}"
                )))
            }
        };
        Ok(SearchRequest {
            app_id: app_id.to_owned(),
            conversation_ids: scope,
            text,
            sender_id: self.sender_id.filter(|s| !s.is_empty()),
            from,
            to,
            has_attachment,
            sort,
            limit,
            offset: self.cursor.as_deref().map(decode_cursor).transpose()?.unwrap_or(0),
        })
    }
}

fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{offset}"))
}

fn decode_cursor(cursor: &str) -> Result<usize> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(CURSOR_PREFIX)?.parse().ok())
        .filter(|offset| *offset <= MAX_OFFSET)
        .ok_or_else(|| {
            Error::Validation("cursor is not one this API returned (or pages past the deepest allowed)".into())
        })
}

async fn search_messages(
    State(api): State<Arc<SearchApi>>,
    user: Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    let params = SearchParams::parse(query.as_deref())?;
    let caller = user.caller();
    api.searches.take_one(
        &format!("{}:{}", caller.app_id, caller.user_id),
        api.searches_per_user_per_minute,
        "searches",
    )?;
    let mut scope: Vec<String> = api
        .store
        .list_conversations(caller.app_id, caller.user_id, MAX_SEARCHED_CONVERSATIONS)
        .await?
        .into_iter()
        .map(|conversation| conversation.id)
        .collect();
    if let Some(wanted) = params.conversation_id.as_deref().filter(|id| !id.is_empty()) {
        if !scope.iter().any(|id| id == wanted) {
            return Err(Error::Forbidden(format!(
                "you are not a member of conversation {wanted}"
            )));
        }
        scope = vec![wanted.to_owned()];
    }
    let request = params.into_request(caller.app_id, scope)?;
    let page = api.index.search(request).await?;
    Ok(Json(json!({
        "hits": page.hits,
        "next_cursor": page.next_offset.map(encode_cursor),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> Result<SearchRequest> {
        SearchParams::parse(Some(query))?.into_request("app", vec!["c".into()])
    }

    #[test]
    fn parameters_are_checked_with_clear_errors() {
        let ok = request("q=hello%20world&limit=5&from=1&to=9&has_attachment=true&sort=recent").unwrap();
        assert_eq!(
            (ok.text.as_str(), ok.limit, ok.from, ok.to),
            ("hello world", 5, Some(1), Some(9))
        );
        assert_eq!((ok.has_attachment, ok.sort), (Some(true), Sort::Recent));
        for (query, reason) in [
            ("", "q (what to search for) is required"),
            ("q=a&limit=0", "limit must be between"),
            ("q=a&limit=x", "limit must be a non-negative integer"),
            ("q=a&from=9&to=1", "from must not be after to"),
            ("q=a&has_attachment=yes", "has_attachment must be true or false"),
            ("q=a&sort=best", "sort must be relevance or recent"),
            ("q=a&cursor=bogus", "cursor is not one this API returned"),
            ("q=a&app_id=other", "unknown field"),
        ] {
            let error = request(query).unwrap_err();
            assert_eq!(error.http_status(), 400, "{query}");
            assert!(error.to_string().contains(reason), "{query}: {error}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let next = encode_cursor(40);
        assert_eq!(request(&format!("q=a&cursor={next}")).unwrap().offset, 40);
    }
}
