//! Conversation storage: the [`Store`] trait, keyed by Slack thread, with a sled backend for real use
//! ([`SledStore`]) and an in-memory one for tests and the terminal ([`MemoryStore`]).
//!
//! A store keeps two things: each thread's [`Conversation`], and the ids of events already handled, so
//! that a Slack retry, a re-delivery after a reconnect or the `message` twin of an `app_mention` is
//! answered once. Both expire: conversations after an idle time the caller chooses, event ids after
//! [`EVENT_MEMORY_SECS`]. Time is passed in (`now`, seconds since the epoch), never read here.
//!
//! A store also keeps the outbox: the replies of each handled event, written by [`Store::commit`] in
//! the same atomic, flushed write as the thread's new conversation and the event's "handled" marks,
//! so a crash between saving a step and posting its replies loses neither (the caller posts them and
//! removes the record; what is left is posted again after a restart). Records are opaque bytes here,
//! kept per thread (a thread's records are read without scanning the others').
//!
//! A store also keeps what [`FeedbackStore`] records for `netrunbook report`: answers and alerts
//! answered per intent and day, votes on answers, and the messages the bot could not answer well (redacted, counted per
//! signature). These expire after a retention the caller chooses.
//!
//! Every backend must pass the one generic conformance test in `tests/core/store_conformance.rs`.

mod memory;
pub mod postgres;
pub mod replica;
mod sled_store;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dialogue::Conversation;
use crate::feedback::{Unanswered, Vote};
use crate::vocab::ThreadKey;

pub use memory::MemoryStore;
pub use postgres::{PgStore, Restored};
pub use sled_store::SledStore;

/// How long handled event ids are remembered. Slack retries within minutes and re-delivers after a
/// reconnect within seconds; an hour is the floor the bot promises, two leave a margin.
pub const EVENT_MEMORY_SECS: u64 = 2 * 60 * 60;

/// Version of the stored record around a conversation; bump it when [`Stored`] changes shape.
pub(crate) const STORE_FORMAT: u32 = 1;

/// What a backend stores for a thread: the conversation with the record's format version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub format: u32,
    pub conversation: Conversation,
}

impl Stored {
    pub(crate) fn encode(c: &Conversation) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(&Stored {
            format: STORE_FORMAT,
            conversation: c.clone(),
        })
        .map_err(StoreError::Encode)
    }

    /// The conversation in `bytes`; `Ok(None)` when it was written in another format (it is dropped:
    /// the thread starts over rather than misreading old state).
    pub(crate) fn decode(key: &ThreadKey, bytes: &[u8]) -> Result<Option<Conversation>, StoreError> {
        #[derive(Deserialize)]
        struct Probe {
            format: u32,
            conversation: serde_json::Value,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
            key: key.to_string(),
            source,
        })?;
        if probe.format != STORE_FORMAT {
            tracing::warn!(thread = %key, format = probe.format, "dropping a conversation stored in an unknown format");
            return Ok(None);
        }
        let conversation: Conversation =
            serde_json::from_value(probe.conversation).map_err(|source| StoreError::Corrupt {
                key: key.to_string(),
                source,
            })?;
        if conversation.format > crate::dialogue::FORMAT_VERSION {
            tracing::warn!(thread = %key, format = conversation.format, "dropping a conversation of a newer dialogue format");
            return Ok(None);
        }
        Ok(Some(conversation))
    }
}

/// Everything a store holds, for moving a sled store to PostgreSQL (`netrunbook migrate`):
/// [`SledStore::dump`] reads it, [`PgStore::restore`] writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dump {
    pub conversations: Vec<(ThreadKey, Conversation)>,
    /// Handled event keys, with when they were first seen.
    pub events: Vec<(String, u64)>,
    /// Outbox records, per thread in id order.
    pub outbox: Vec<(ThreadKey, Vec<u8>)>,
    /// (kind `answer` or `alert`, intent, day, count).
    pub counts: Vec<(String, String, u64, u64)>,
    pub votes: Vec<Vote>,
    pub unanswered: Vec<Unanswered>,
}

/// What [`Store::purge`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub conversations: usize,
    pub events: usize,
}

/// Errors of the storage boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the conversation store in {}: another process (a running `netrunbook serve`?) holds it, and sled allows one process per directory: stop that process or give this one its own --db", dir.display())]
    Locked {
        dir: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("cannot open the conversation store in {}", dir.display())]
    Open {
        dir: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("conversation store I/O failed")]
    Backend(#[from] sled::Error),
    #[error("stored conversation of thread {key} is unreadable")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot serialise a conversation")]
    Encode(#[source] serde_json::Error),
    /// [`Store::commit`]: an event of the step was already marked handled (by another replica, or
    /// before a restart): nothing was written, and the step's replies must not go out.
    #[error("event {event} was already handled")]
    AlreadyHandled { event: String },
    #[error("{0}")]
    Config(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database request failed ({what})")]
    Database {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{0}")]
    Schema(String),
}

impl StoreError {
    /// True when the same call may succeed later: the database could not be reached, a connection
    /// broke, or the server is shutting down or starting. The caller puts the work off instead of
    /// acting on a state it could not read or write.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database { source, .. } => match source.code() {
                // no SQLSTATE: the connection, not the statement, failed
                None => true,
                Some(code) => {
                    let c = code.code();
                    // 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now;
                    // 40001 / 40P01: serialization failure, deadlock
                    c.starts_with("08") || c.starts_with("57P") || c == "40001" || c == "40P01"
                }
            },
            _ => false,
        }
    }
}

/// A feedback record as stored: the record with its format version.
#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    format: u32,
    record: T,
}

/// The stored bytes of a feedback record.
pub(crate) fn encode_record<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(&Versioned {
        format: crate::feedback::FEEDBACK_FORMAT,
        record,
    })
    .expect("feedback records are plain data and always serialise")
}

/// The record in `bytes`; `None` (with a warning) when it is unreadable or of another format.
pub(crate) fn decode_record<T: serde::de::DeserializeOwned>(tree: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice::<Versioned<T>>(bytes) {
        Ok(v) if v.format == crate::feedback::FEEDBACK_FORMAT => Some(v.record),
        Ok(v) => {
            tracing::warn!(
                tree,
                format = v.format,
                "ignoring a feedback record of an unknown format"
            );
            None
        }
        Err(e) => {
            tracing::warn!(tree, error = %e, "ignoring an unreadable feedback record");
            None
        }
    }
}

/// Seconds in a day: answers are counted per intent and day.
pub const DAY_SECS: u64 = 86_400;

/// Everything [`FeedbackStore`] holds, for the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedbackData {
    /// Intent -> answers given.
    pub answers: BTreeMap<String, u64>,
    /// Intent -> alerts answered with it.
    pub alerts: BTreeMap<String, u64>,
    pub votes: Vec<Vote>,
    pub unanswered: Vec<Unanswered>,
}

/// What [`FeedbackStore::purge_feedback`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgedFeedback {
    /// Per-day answer counters.
    pub answer_days: usize,
    pub votes: usize,
    pub unanswered: usize,
}

/// The records behind `netrunbook report`. Every [`Store`] is one.
pub trait FeedbackStore: Send + Sync {
    /// Count one answer about `intent`, given at `now`.
    fn count_answer(&self, intent: &str, now: u64) -> Result<(), StoreError>;
    /// Count one alert answered with `intent` at `now`.
    fn count_alert(&self, intent: &str, now: u64) -> Result<(), StoreError>;
    /// Record a vote, replacing the same user's earlier vote on the same intent in the same thread.
    fn put_vote(&self, vote: &Vote) -> Result<(), StoreError>;
    /// Add a sighting to the record of its signature (created on the first); returns how many
    /// sightings the signature has now. Atomic.
    fn note_unanswered(&self, sighting: &Unanswered) -> Result<u64, StoreError>;
    /// Every record, for the report.
    fn feedback(&self) -> Result<FeedbackData, StoreError>;
    /// Remove what is older than `retention_secs`: answer counters of days that ended before,
    /// votes cast before, unanswered signatures last seen before.
    fn purge_feedback(&self, now: u64, retention_secs: u64) -> Result<PurgedFeedback, StoreError>;
}

/// True when a record stamped `at` is older than `retention_secs` at `now`.
pub(crate) fn expired(at: u64, now: u64, retention_secs: u64) -> bool {
    at.saturating_add(retention_secs) < now
}

/// A thread's conversation after an event was handled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change<'a> {
    /// Unchanged.
    Keep,
    /// Replaced by this one.
    Put(&'a Conversation),
    /// Forgotten.
    Remove,
}

/// Everything handling one event leaves behind, for [`Store::commit`].
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    pub thread: &'a ThreadKey,
    pub conversation: Change<'a>,
    /// Event keys to remember as handled (as [`Store::mark_event_seen`] does), stamped `now`.
    pub events: &'a [String],
    /// The replies still to deliver (encoded by the caller), kept under a new outbox id.
    pub outbox: Option<&'a [u8]>,
    pub now: u64,
}

impl Commit<'_> {
    /// True when the commit writes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.conversation == Change::Keep && self.events.is_empty() && self.outbox.is_none()
    }
}

/// Where conversations live, keyed by thread. Implementations are shared between tasks.
pub trait Store: FeedbackStore + Send + Sync {
    /// The thread's conversation, if it has one.
    fn get(&self, key: &ThreadKey) -> Result<Option<Conversation>, StoreError>;
    /// Replace the thread's conversation.
    fn put(&self, key: &ThreadKey, conversation: &Conversation) -> Result<(), StoreError>;
    /// Forget the thread's conversation (no error when there is none).
    fn remove(&self, key: &ThreadKey) -> Result<(), StoreError>;
    /// Record that the event `event` was handled at `now`. True the first time, false when it was
    /// already recorded (and not purged since): the caller then drops it as a duplicate. Atomic.
    fn mark_event_seen(&self, event: &str, now: u64) -> Result<bool, StoreError>;
    /// Remove conversations not updated for more than `idle_secs`, and event ids older than
    /// [`EVENT_MEMORY_SECS`].
    fn purge(&self, now: u64, idle_secs: u64) -> Result<Purged, StoreError>;
    /// Make every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// True when the event key was recorded as handled (and not purged since).
    fn was_seen(&self, event: &str) -> Result<bool, StoreError>;
    /// Write a handled event's effects all together or not at all, then make them durable. Returns
    /// the outbox id given to `commit.outbox`: ids grow, across restarts too, so they order the
    /// records. An empty commit writes nothing and is not flushed. When one of `commit.events` is
    /// already marked handled, nothing is written: [`StoreError::AlreadyHandled`] (the fence that
    /// keeps a replica that lost its thread from answering what another answered).
    fn commit(&self, commit: &Commit<'_>) -> Result<Option<u64>, StoreError>;
    /// The outbox records of `thread`, oldest first.
    fn outbox(&self, thread: &ThreadKey) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// The threads that have outbox records, with how many each has.
    fn outbox_threads(&self) -> Result<Vec<(ThreadKey, usize)>, StoreError>;
    /// Replace `thread`'s outbox record `id` (with `Some`) or remove it (with `None`); not flushed.
    fn set_outbox(&self, thread: &ThreadKey, id: u64, record: Option<&[u8]>) -> Result<(), StoreError>;
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn get(&self, key: &ThreadKey) -> Result<Option<Conversation>, StoreError> {
        (**self).get(key)
    }
    fn put(&self, key: &ThreadKey, conversation: &Conversation) -> Result<(), StoreError> {
        (**self).put(key, conversation)
    }
    fn remove(&self, key: &ThreadKey) -> Result<(), StoreError> {
        (**self).remove(key)
    }
    fn mark_event_seen(&self, event: &str, now: u64) -> Result<bool, StoreError> {
        (**self).mark_event_seen(event, now)
    }
    fn purge(&self, now: u64, idle_secs: u64) -> Result<Purged, StoreError> {
        (**self).purge(now, idle_secs)
    }
    fn flush(&self) -> Result<(), StoreError> {
        (**self).flush()
    }
    fn was_seen(&self, event: &str) -> Result<bool, StoreError> {
        (**self).was_seen(event)
    }
    fn commit(&self, commit: &Commit<'_>) -> Result<Option<u64>, StoreError> {
        (**self).commit(commit)
    }
    fn outbox(&self, thread: &ThreadKey) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        (**self).outbox(thread)
    }
    fn outbox_threads(&self) -> Result<Vec<(ThreadKey, usize)>, StoreError> {
        (**self).outbox_threads()
    }
    fn set_outbox(&self, thread: &ThreadKey, id: u64, record: Option<&[u8]>) -> Result<(), StoreError> {
        (**self).set_outbox(thread, id, record)
    }
}

impl<S: FeedbackStore + ?Sized> FeedbackStore for std::sync::Arc<S> {
    fn count_answer(&self, intent: &str, now: u64) -> Result<(), StoreError> {
        (**self).count_answer(intent, now)
    }
    fn count_alert(&self, intent: &str, now: u64) -> Result<(), StoreError> {
        (**self).count_alert(intent, now)
    }
    fn put_vote(&self, vote: &Vote) -> Result<(), StoreError> {
        (**self).put_vote(vote)
    }
    fn note_unanswered(&self, sighting: &Unanswered) -> Result<u64, StoreError> {
        (**self).note_unanswered(sighting)
    }
    fn feedback(&self) -> Result<FeedbackData, StoreError> {
        (**self).feedback()
    }
    fn purge_feedback(&self, now: u64, retention_secs: u64) -> Result<PurgedFeedback, StoreError> {
        (**self).purge_feedback(now, retention_secs)
    }
}
