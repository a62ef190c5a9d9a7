//! The MongoDB driver of the store port. Models use `id`; documents use `_id`.

mod apps;
mod attachments;
mod compliance;
mod conversations;
mod keys;
mod messages;
mod users;
mod webhook_events;
mod webhooks;

use super::InsertOutcome;
use crate::{Error, Result};
use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, ClientOptions, IndexOptions, WriteConcern};
use mongodb::{Collection, Database, IndexModel};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

const DUPLICATE_KEY: i32 = 11000;

/// The MongoDB driver of the store port (`mongodb://…`): a collection per kind of record (`apps`, `users`,
/// `messages`, …), every query filtered by `app_id`; a model's `id` is stored as `_id`.
pub struct MongoStore {
    db: Database,
}

fn to_document<T: Serialize>(value: &T) -> Result<Document> {
    let mut document = bson::to_document(value).map_err(|e| Error::Internal(format!("encoding document: {e}")))?;
    if let Some(id) = document.remove("id") {
        document.insert("_id", id);
    }
    Ok(document)
}

fn from_document<T: DeserializeOwned>(mut document: Document) -> Result<T> {
    if let Some(id) = document.remove("_id") {
        document.insert("id", id);
    }
    bson::from_document(document).map_err(|e| Error::Internal(format!("decoding document: {e}")))
}

fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    matches!(err.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY)
}

impl MongoStore {
    /// Connects to `url` and uses `database`, creating the indexes the port relies on (the unique ones make inserts
    /// idempotent).
    pub async fn connect(url: &str, database: &str) -> Result<Self> {
        let mut options = ClientOptions::parse(url).await?;
        // The MongoDB-protocol test server drops connections idle for 300 s; recycle them earlier.
        options.max_idle_time = Some(Duration::from_secs(240));
        options.app_name = Some("caas".into());
        // A write is acknowledged only once it is in the journal of a majority of the replica set:
        // the bridge commits its Kafka offsets (and senders are told `persisted`) on that
        // acknowledgement, so a server killed right after it must not take the write with it. The
        // server default (`w: 1`, no journal) loses the last unsynced writes on a crash; measured
        // here: 68 accepted messages gone after one `kill -9`. A URL that sets `w`/`journal`
        // itself (for example `?w=1`) wins.
        if options.write_concern.is_none() {
            options.write_concern = Some(
                WriteConcern::builder()
                    .w(Acknowledgment::Majority)
                    .journal(true)
                    .build(),
            );
        }
        let client = mongodb::Client::with_options(options)?;
        let store = Self {
            db: client.database(database),
        };
        store.ensure_indexes().await?;
        Ok(store)
    }

    /// The underlying database, for tests that inspect the stored documents directly.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    async fn ensure_indexes(&self) -> Result<()> {
        let unique = |keys: Document| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(true).build())
                .build()
        };
        self.collection("users")
            .create_index(unique(doc! {"app_id": 1, "external_id": 1}))
            .await?;
        self.collection("webhooks")
            .create_index(IndexModel::builder().keys(doc! {"app_id": 1, "created_at": 1}).build())
            .await?;
        self.collection("webhook_deliveries")
            .create_index(IndexModel::builder().keys(doc! {"status": 1, "due_at": 1}).build())
            .await?;
        self.collection("webhook_deliveries")
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"app_id": 1, "endpoint_id": 1, "created_at": -1})
                    .build(),
            )
            .await?;
        self.collection("webhook_events")
            .create_index(unique(doc! {"app_id": 1, "seq": 1}))
            .await?;
        self.collection("webhook_events")
            .create_index(IndexModel::builder().keys(doc! {"created_at": 1}).build())
            .await?;
        self.collection("members")
            .create_index(unique(doc! {"app_id": 1, "user_id": 1, "conversation_id": 1}))
            .await?;
        self.collection("messages")
            .create_index(unique(doc! {"app_id": 1, "conversation_id": 1, "seq": 1}))
            .await?;
        let plain = |keys: Document| IndexModel::builder().keys(keys).build();
        self.collection("messages")
            .create_index(plain(doc! {"app_id": 1, "conversation_id": 1, "reply_to": 1, "seq": 1}))
            .await?;
        self.collection("reactions")
            .create_index(plain(doc! {"app_id": 1, "conversation_id": 1, "message_id": 1}))
            .await?;
        self.collection("conversations")
            .create_index(plain(doc! {"app_id": 1, "member_ids": 1, "created_at": -1}))
            .await?;
        self.collection("reads")
            .create_index(unique(doc! {"app_id": 1, "user_id": 1, "conversation_id": 1}))
            .await?;
        self.collection("audit_events")
            .create_index(unique(doc! {"app_id": 1, "seq": 1}))
            .await?;
        self.collection("messages")
            .create_index(plain(doc! {"app_id": 1, "sender_id": 1, "_id": 1}))
            .await?;
        self.collection("messages")
            .create_index(plain(doc! {"app_id": 1, "created_at": 1}))
            .await?;
        self.collection("message_conflicts")
            .create_index(plain(doc! {"app_id": 1, "detected_at": 1}))
            .await?;
        self.collection("attachments")
            .create_index(plain(doc! {"app_id": 1, "uploader_id": 1}))
            .await?;
        self.collection("sessions")
            .create_index(plain(doc! {"app_id": 1, "user_id": 1, "created_at": 1}))
            .await?;
        self.collection("key_devices")
            .create_index(unique(doc! {"app_id": 1, "user_id": 1, "device_id": 1}))
            .await?;
        self.collection("one_time_keys")
            .create_index(unique(
                doc! {"app_id": 1, "user_id": 1, "device_id": 1, "algorithm": 1, "key_id": 1},
            ))
            .await?;
        // The oldest-first claim: the lowest upload number among one device's unclaimed keys of one
        // algorithm (claimed ones stay a day as tombstones, so `claimed_at` comes before the sort key).
        self.collection("one_time_keys")
            .create_index(plain(
                doc! {"app_id": 1, "user_id": 1, "device_id": 1, "algorithm": 1, "claimed_at": 1, "uploaded_seq": 1},
            ))
            .await?;
        self.collection("fallback_keys")
            .create_index(plain(doc! {"app_id": 1, "user_id": 1, "device_id": 1}))
            .await?;
        // A claimed one-time key is kept as a tombstone for a while (see `CLAIMED_KEY_MEMORY`), then expires.
        self.collection("one_time_keys")
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"claimed_at": 1})
                    .options(IndexOptions::builder().expire_after(super::CLAIMED_KEY_MEMORY).build())
                    .build(),
            )
            .await?;
        Ok(())
    }

    async fn find_all<T: DeserializeOwned>(
        &self,
        collection: &str,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<T>> {
        let documents: Vec<Document> = self
            .collection(collection)
            .find(filter)
            .sort(sort)
            // usize::MAX ("all") does not fit: 0 is MongoDB's "no limit".
            .limit(i64::try_from(limit).unwrap_or(0))
            .await?
            .try_collect()
            .await?;
        documents.into_iter().map(from_document).collect()
    }

    async fn find_one_in<T: DeserializeOwned>(&self, collection: &str, filter: Document) -> Result<Option<T>> {
        self.collection(collection)
            .find_one(filter)
            .await?
            .map(from_document)
            .transpose()
    }
}

/// The `seq` field of a document, whichever integer width the server stored.
fn seq_of(document: &Document) -> Option<i64> {
    number_of(document, "seq")
}

/// A numeric field of a document, whichever width (or, for `$sum` results, type) the server stored.
fn number_of(document: &Document, field: &str) -> Option<i64> {
    match document.get(field)? {
        Bson::Int64(n) => Some(*n),
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Double(n) => Some(*n as i64),
        _ => None,
    }
}

/// Unordered bulk insert where duplicate keys mean "already stored" rather than failure.
async fn insert_many_idempotent(collection: &Collection<Document>, documents: Vec<Document>) -> Result<InsertOutcome> {
    let total = documents.len();
    let duplicates = insert_many_noting_duplicates(collection, documents).await?.len();
    Ok(InsertOutcome {
        inserted: total - duplicates,
        duplicates,
    })
}

/// Unordered bulk insert that goes on past duplicate keys; returns the positions (in `documents`) of
/// those refused as duplicates, for the caller to tell a redelivery from a clash.
async fn insert_many_noting_duplicates(
    collection: &Collection<Document>,
    documents: Vec<Document>,
) -> Result<Vec<usize>> {
    match collection.insert_many(documents).ordered(false).await {
        Ok(_) => Ok(Vec::new()),
        Err(e) => match e.kind.as_ref() {
            ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => {
                let errors = failure.write_errors.as_deref().unwrap_or_default();
                if errors.iter().all(|w| w.code == DUPLICATE_KEY) {
                    Ok(errors.iter().map(|w| w.index).collect())
                } else {
                    Err(e)?
                }
            }
            _ => Err(e)?,
        },
    }
}
