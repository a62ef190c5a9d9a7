//! Message search on an embedded tantivy index kept in a directory (`CAAS_SEARCH_DIR`; EFS when
//! deployed): written by the index-messages function, read by the search function. No search cluster.
//!
//! One document per message, keyed by `app_id/message_id`, holding the newest version seen. An edit
//! replaces the document; a deletion (or an erasure) replaces it by a tombstone without text, which no
//! query can match but which remembers the version, so a redelivered older record never brings the
//! text back. That makes indexing idempotent under redelivery and order-independent, like MongoDB.
//!
//! Every query is scoped by the caller: the app term and the set of conversations the caller is a
//! member of are added by the search function from the store, never taken from the query string.

pub mod analysis;
pub mod query;

use crate::domain::model::Message;
use crate::{Error, Result};
use query::Clause;
use serde::Serialize;
use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    BooleanQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery, RegexQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED, STRING,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument, Term};

/// Memory the single writer may buffer before it flushes a segment.
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;
/// Most hits one page may hold; larger limits are clamped to it.
pub const MAX_PAGE: usize = 100;
/// How deep a caller may page; deeper pages cost as much as collecting everything before them.
pub const MAX_OFFSET: usize = 10_000;
/// A highlight fragment of a long message is cut to about this many bytes around the first match.
const FRAGMENT_BYTES: usize = 240;

impl From<tantivy::TantivyError> for Error {
    fn from(error: tantivy::TantivyError) -> Self {
        Error::Search(error.to_string())
    }
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    app_id: Field,
    message_id: Field,
    conversation_id: Field,
    sender_id: Field,
    seq: Field,
    created_at: Field,
    edited_at: Field,
    version: Field,
    has_attachment: Field,
    text: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let text_options = TextOptions::default().set_stored().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(analysis::ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = Fields {
            key: builder.add_text_field("key", STRING | STORED),
            app_id: builder.add_text_field("app_id", STRING),
            message_id: builder.add_text_field("message_id", STORED),
            conversation_id: builder.add_text_field("conversation_id", STRING | STORED),
            sender_id: builder.add_text_field("sender_id", STRING | STORED),
            seq: builder.add_i64_field("seq", STORED),
            created_at: builder.add_i64_field("created_at", INDEXED | FAST | STORED),
            edited_at: builder.add_i64_field("edited_at", STORED),
            version: builder.add_i64_field("version", STORED),
            has_attachment: builder.add_bool_field("has_attachment", INDEXED),
            text: builder.add_text_field("text", text_options),
        };
        (builder.build(), fields)
    }
}

fn key_of(app_id: &str, message_id: &str) -> String {
    format!("{app_id}/{message_id}")
}

/// What one [`SearchIndex::apply`] did.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Messages whose text is now searchable (new ones and edits).
    pub indexed: usize,
    /// Messages replaced by a tombstone (deleted or erased).
    pub removed: usize,
    /// Records older than, or equal to, what the index already holds (redeliveries, reordering).
    pub superseded: usize,
}

/// How hits are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Best BM25 match first (the default); hits carry their `score`.
    #[default]
    Relevance,
    /// Newest `created_at` first; hits carry no score.
    Recent,
}

/// One search, already scoped: `conversation_ids` are the conversations the caller may read.
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    /// The caller's app; only its messages can match.
    pub app_id: String,
    /// The conversations the caller is a member of (from the store, never from the query); empty finds nothing.
    pub conversation_ids: Vec<String>,
    /// The search box text, in the [`query`] language (words, `"phrases"`, `prefix*`).
    pub text: String,
    /// Only messages from this sender (a platform user id).
    pub sender_id: Option<String>,
    /// Inclusive bounds on `created_at`, in milliseconds since the epoch.
    pub from: Option<i64>,
    /// Upper bound on `created_at`, Unix ms, inclusive.
    pub to: Option<i64>,
    /// Only messages with (`true`) or without (`false`) attachments.
    pub has_attachment: Option<bool>,
    /// Relevance or recency.
    pub sort: Sort,
    /// Page size, clamped to 1 to [`MAX_PAGE`].
    pub limit: usize,
    /// How many hits to skip (the page cursor), capped at [`MAX_OFFSET`].
    pub offset: usize,
}

/// One matching message, as the search function returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchHit {
    /// The message's id.
    pub message_id: String,
    /// The conversation the message is in.
    pub conversation_id: String,
    /// The platform user id of the sender.
    pub sender_id: String,
    /// The message's seq in its conversation, to open it in history.
    pub seq: i64,
    /// When the message was sent, Unix ms.
    pub created_at: i64,
    /// When it was last edited, Unix ms; `None` (and left out of the JSON) if never edited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// The message's whole current text.
    pub text: String,
    /// The matching part of the text, HTML-escaped, matches wrapped in `<mark>`…`</mark>`.
    pub highlight: String,
    /// BM25 relevance; absent when sorted by recency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

/// One page of hits, in the requested order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SearchPage {
    /// The hits of this page; at most the request's `limit`.
    pub hits: Vec<SearchHit>,
    /// The offset of the next page, when there is one.
    #[serde(skip)]
    pub next_offset: Option<usize>,
}

/// The embedded tantivy message index: one document per message (its newest version), read by many and written
/// through a single writer opened on the first [`apply`](SearchIndex::apply).
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// Opened on the first write: readers never take the directory's single-writer lock.
    writer: Mutex<Option<IndexWriter>>,
}

impl SearchIndex {
    /// Opens (creating if needed) the index in `dir`, or an in-memory index when `dir` is `None`
    /// (the embedded dev mode without a data directory).
    pub fn open(dir: Option<&Path>) -> Result<Arc<Self>> {
        let (schema, fields) = Fields::schema();
        let index = match dir {
            None => Index::create_in_ram(schema),
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Config(format!("CAAS_SEARCH_DIR {}: {e}", dir.display())))?;
                open_or_create(dir, schema)?
            }
        };
        index.tokenizers().register(analysis::ANALYZER, analysis::analyzer());
        // Commits by another process (the index-messages function) show up within half a second.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()?;
        Ok(Arc::new(Self {
            index,
            reader,
            fields,
            writer: Mutex::new(None),
        }))
    }

    /// Brings the index up to date with these message states (new, edited or deleted), keeping for
    /// each message the highest version ever seen, and commits once.
    pub async fn apply(self: &Arc<Self>, messages: Vec<Message>) -> Result<ApplyReport> {
        let this = Arc::clone(self);
        blocking(move || this.apply_blocking(messages)).await
    }

    /// Runs one scoped search (app, the caller's conversations and the filters, plus the parsed query text);
    /// `validation_failed` for a query the [`query`] language refuses.
    pub async fn search(self: &Arc<Self>, request: SearchRequest) -> Result<SearchPage> {
        let this = Arc::clone(self);
        blocking(move || this.search_blocking(&request)).await
    }

    fn apply_blocking(&self, messages: Vec<Message>) -> Result<ApplyReport> {
        let mut report = ApplyReport::default();
        let mut newest: HashMap<String, Message> = HashMap::new();
        for message in messages {
            let key = key_of(&message.app_id, &message.id);
            match newest.get(&key) {
                Some(kept) if kept.version >= message.version => report.superseded += 1,
                Some(_) => {
                    report.superseded += 1;
                    newest.insert(key, message);
                }
                None => {
                    newest.insert(key, message);
                }
            }
        }
        let searcher = self.reader.searcher();
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| Error::Internal("search writer poisoned".into()))?;
        if writer.is_none() {
            *writer = Some(self.index.writer(WRITER_HEAP_BYTES)?);
        }
        let writer = writer
            .as_mut()
            .ok_or_else(|| Error::Internal("search writer missing".into()))?;
        let mut changed = false;
        for (key, message) in newest {
            if self.indexed_version(&searcher, &key)? >= Some(message.version) {
                report.superseded += 1;
                continue;
            }
            writer.delete_term(Term::from_field_text(self.fields.key, &key));
            writer.add_document(self.document(&key, &message))?;
            changed = true;
            if message.is_deleted() {
                report.removed += 1;
            } else {
                report.indexed += 1;
            }
        }
        if changed {
            if let Err(error) = writer.commit() {
                // Drop what was buffered so a retry of the batch starts from the last commit.
                let _ = writer.rollback();
                return Err(error.into());
            }
            self.reader.reload()?;
        }
        Ok(report)
    }

    fn indexed_version(&self, searcher: &Searcher, key: &str) -> Result<Option<i64>> {
        let query = TermQuery::new(Term::from_field_text(self.fields.key, key), IndexRecordOption::Basic);
        let found = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, address)) = found.first() else {
            return Ok(None);
        };
        let document: TantivyDocument = searcher.doc(*address)?;
        Ok(document.get_first(self.fields.version).and_then(|v| v.as_i64()))
    }

    fn document(&self, key: &str, message: &Message) -> TantivyDocument {
        let f = &self.fields;
        let mut document = TantivyDocument::default();
        document.add_text(f.key, key);
        document.add_text(f.app_id, &message.app_id);
        document.add_text(f.message_id, &message.id);
        document.add_text(f.conversation_id, &message.conversation_id);
        document.add_text(f.sender_id, &message.sender_id);
        document.add_i64(f.seq, message.seq);
        document.add_i64(f.created_at, message.created_at);
        document.add_i64(f.version, message.version);
        if let Some(edited_at) = message.edited_at {
            document.add_i64(f.edited_at, edited_at);
        }
        // A tombstone keeps the version and where it was, but nothing a query can match.
        if !message.is_deleted() {
            document.add_bool(f.has_attachment, !message.attachments.is_empty());
            document.add_text(f.text, &message.text);
        }
        document
    }

    fn search_blocking(&self, request: &SearchRequest) -> Result<SearchPage> {
        let clauses = query::parse(&request.text)?;
        if request.conversation_ids.is_empty() {
            return Ok(SearchPage::default());
        }
        let limit = request.limit.clamp(1, MAX_PAGE);
        let offset = request.offset.min(MAX_OFFSET);
        let query = self.scoped_query(request, &clauses)?;
        let searcher = self.reader.searcher();
        // One more than asked tells whether there is a next page.
        let top = TopDocs::with_limit(limit + 1).and_offset(offset);
        let mut found: Vec<(Option<f32>, DocAddress)> = match request.sort {
            Sort::Relevance => searcher
                .search(&query, &top.order_by_score())?
                .into_iter()
                .map(|(score, address)| (Some(score), address))
                .collect(),
            Sort::Recent => searcher
                .search(&query, &top.order_by_fast_field::<i64>("created_at", Order::Desc))?
                .into_iter()
                .map(|(_, address)| (None, address))
                .collect(),
        };
        let next_offset = (found.len() > limit).then_some(offset + limit);
        found.truncate(limit);
        let hits = found
            .into_iter()
            .map(|(score, address)| self.hit(&searcher, address, score, &clauses))
            .collect::<Result<_>>()?;
        Ok(SearchPage { hits, next_offset })
    }

    fn scoped_query(&self, request: &SearchRequest, clauses: &[Clause]) -> Result<BooleanQuery> {
        let f = &self.fields;
        let exact = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        let mut must: Vec<Box<dyn Query>> = vec![
            exact(f.app_id, &request.app_id),
            Box::new(TermSetQuery::new(
                request
                    .conversation_ids
                    .iter()
                    .map(|id| Term::from_field_text(f.conversation_id, id)),
            )),
        ];
        if let Some(sender) = &request.sender_id {
            must.push(exact(f.sender_id, sender));
        }
        if request.from.is_some() || request.to.is_some() {
            let bound = |value: Option<i64>| {
                value.map_or(Bound::Unbounded, |v| {
                    Bound::Included(Term::from_field_i64(f.created_at, v))
                })
            };
            must.push(Box::new(RangeQuery::new(bound(request.from), bound(request.to))));
        }
        if let Some(has_attachment) = request.has_attachment {
            must.push(Box::new(TermQuery::new(
                Term::from_field_bool(f.has_attachment, has_attachment),
                IndexRecordOption::Basic,
            )));
        }
        for clause in clauses {
            must.push(self.clause_query(clause)?);
        }
        Ok(BooleanQuery::new(must.into_iter().map(|q| (Occur::Must, q)).collect()))
    }

    fn clause_query(&self, clause: &Clause) -> Result<Box<dyn Query>> {
        let text = self.fields.text;
        let term = |t: &String| Term::from_field_text(text, t);
        Ok(match clause {
            Clause::Terms(terms) if terms.len() == 1 => {
                Box::new(TermQuery::new(term(&terms[0]), IndexRecordOption::WithFreqs))
            }
            Clause::Terms(terms) => Box::new(PhraseQuery::new(terms.iter().map(term).collect())),
            Clause::Prefix(terms) if terms.len() == 1 => Box::new(RegexQuery::from_pattern(
                &format!("{}.*", regex_escape(&terms[0])),
                text,
            )?),
            Clause::Prefix(terms) => Box::new(PhrasePrefixQuery::new(terms.iter().map(term).collect())),
            // The tokens that contain a CJK character are its unigram and the bigrams it starts or
            // ends: `c.?|.c` says exactly that, and its automaton walks the term dictionary two levels
            // deep, not every term of every tenant as `.*c.*` did.
            Clause::Contains(c) => {
                let c = regex_escape(&c.to_string());
                Box::new(RegexQuery::from_pattern(&format!("{c}.?|.{c}"), text)?)
            }
        })
    }

    fn hit(
        &self,
        searcher: &Searcher,
        address: DocAddress,
        score: Option<f32>,
        clauses: &[Clause],
    ) -> Result<SearchHit> {
        let f = &self.fields;
        let document: TantivyDocument = searcher.doc(address)?;
        let text_of = |field| {
            document
                .get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let number_of = |field| document.get_first(field).and_then(|v| v.as_i64());
        let text = text_of(f.text);
        Ok(SearchHit {
            message_id: text_of(f.message_id),
            conversation_id: text_of(f.conversation_id),
            sender_id: text_of(f.sender_id),
            seq: number_of(f.seq).unwrap_or_default(),
            created_at: number_of(f.created_at).unwrap_or_default(),
            edited_at: number_of(f.edited_at),
            highlight: highlight(&text, clauses),
            text,
            score,
        })
    }
}

/// The gateway and the bridge may both find the directory empty and race to create the index; the
/// loser of that race opens what the winner created.
fn open_or_create(dir: &Path, schema: Schema) -> Result<Index> {
    let mut attempts = 0;
    loop {
        let directory = MmapDirectory::open(dir).map_err(|e| Error::Search(e.to_string()))?;
        match Index::open_or_create(directory, schema.clone()) {
            Ok(index) => return Ok(index),
            Err(error) if attempts < 3 => {
                attempts += 1;
                tracing::warn!(%error, attempts, "opening the search index; retrying");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("search task: {e}")))?
}

fn regex_escape(literal: &str) -> String {
    let mut escaped = String::with_capacity(literal.len());
    for c in literal.chars() {
        if "\\.+*?()|[]{}^$#&-~\"".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The text (or, when long, a fragment around the first match), HTML-escaped, with every token that
/// takes part in a match wrapped in `<mark>`; overlapping CJK bigrams merge into one mark.
pub fn highlight(text: &str, clauses: &[Clause]) -> String {
    let mut marks: Vec<(usize, usize)> = Vec::new();
    for token in analysis::tokens(text) {
        if !clauses.iter().any(|clause| clause.highlights(&token.text)) {
            continue;
        }
        match marks.last_mut() {
            Some(last) if token.offset_from <= last.1 => last.1 = last.1.max(token.offset_to),
            _ => marks.push((token.offset_from, token.offset_to)),
        }
    }
    let (start, end) = fragment(text, marks.first().map_or(0, |m| m.0));
    let mut html = String::new();
    if start > 0 {
        html.push('…');
    }
    let mut at = start;
    for &(from, to) in marks.iter().filter(|m| m.0 >= start && m.1 <= end) {
        html.push_str(&escape_html(&text[at..from]));
        html.push_str("<mark>");
        html.push_str(&escape_html(&text[from..to]));
        html.push_str("</mark>");
        at = to;
    }
    html.push_str(&escape_html(&text[at..end]));
    if end < text.len() {
        html.push('…');
    }
    html
}

/// Byte range of at most about [`FRAGMENT_BYTES`] that starts a little before `first_match`.
fn fragment(text: &str, first_match: usize) -> (usize, usize) {
    if text.len() <= FRAGMENT_BYTES {
        return (0, text.len());
    }
    let floor = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = floor(first_match.saturating_sub(FRAGMENT_BYTES / 4));
    (start, floor((start + FRAGMENT_BYTES).min(text.len())))
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests;
