//! The outbox record ([`Parcel`]): the replies of one handled event, saved by
//! [`Store::commit`](crate::store::Store::commit) in the same write as the thread's conversation and
//! the event's "handled" marks, and kept until every reply is delivered.
//!
//! This is what makes a reply survive a crash: once an event is marked handled (so a re-sent copy is
//! dropped as a duplicate), its replies are on disk too, and whoever delivers them (`slack::Engine`)
//! advances [`Parcel::delivered`] after each one and removes the record after the last. A record left
//! over (a crash, Slack unreachable for longer than the Web API retries) is delivered again later;
//! then a post already in the thread is recognised by its [`marker`] (carried in the message's first
//! `block_id`) and not posted twice. Updates are idempotent and simply go out again; a
//! [`Outbound::MarkAnswered`] looks for its question's message (with its buttons) again, and finds
//! none when it was already marked.
//!
//! Plain data, versioned by [`OUTBOX_FORMAT`]; a record of another format or unreadable is dropped
//! with a warning (its replies are lost, never misread).
//!
//! [`Outbox`] is the one owner of the records' life in a store once they are committed (a
//! [`Parcel`] is made by `bot` and written by the commit that saves its step): it reads a thread's
//! waiting records (dropping the unreadable and the too old), advances one as its
//! replies go out, clears it after the last, and lists the threads with records for the sweep.
//! Delivery itself (`slack/`) goes through it, never through the store.

use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::error::error_chain;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::vocab::{Outbound, ThreadKey};

/// Version of the serialised [`Parcel`]; bump it when a change of its shape (or [`Outbound`]'s)
/// would misread older records (a field or variant renamed, removed or changed in meaning). An added
/// variant ([`Outbound::MarkAnswered`]) reads older records as they were and keeps the version:
/// bumping it would drop the replies waiting at an upgrade. (A binary older than a variant drops a
/// record that holds it as unreadable.) Version 2 renders without the live knowledge base: the record
/// names the version that decided it, the topic list and the escalation carry what they show; a
/// version-1 record left at the upgrade is dropped with a warning.
pub(crate) const OUTBOX_FORMAT: u32 = 2;

/// The prefix of every [`marker`].
pub(crate) const MARKER_PREFIX: &str = "nrb:";

/// The replies of one handled event and how far their delivery got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    pub format: u32,
    pub thread: ThreadKey,
    /// When the event was handled (seconds since the epoch).
    pub created_at: u64,
    /// The version of the knowledge base that decided the replies; they are rendered with it.
    pub kb_version: String,
    pub items: Vec<Outbound>,
    /// `items[..delivered]` are delivered.
    pub delivered: usize,
}

impl Parcel {
    pub fn new(thread: ThreadKey, created_at: u64, kb_version: &str, items: Vec<Outbound>) -> Parcel {
        Parcel {
            format: OUTBOX_FORMAT,
            thread,
            created_at,
            kb_version: kb_version.to_string(),
            items,
            delivered: 0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("outbox records are plain data with string keys and always serialise")
    }

    /// The record in `bytes`; `None` (with a warning) when it is unreadable or of another format.
    pub(crate) fn decode(id: u64, bytes: &[u8]) -> Option<Parcel> {
        #[derive(Deserialize)]
        struct Probe {
            format: u32,
        }
        match serde_json::from_slice::<Probe>(bytes) {
            Ok(p) if p.format == OUTBOX_FORMAT => {}
            Ok(p) => {
                tracing::warn!(
                    outbox = id,
                    format = p.format,
                    "dropping an outbox record of an unknown format"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(outbox = id, error = %e, "dropping an unreadable outbox record");
                return None;
            }
        }
        match serde_json::from_slice(bytes) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(outbox = id, error = %e, "dropping an unreadable outbox record");
                None
            }
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.delivered >= self.items.len()
    }
}

/// The outbox of a store: the records' whole life (see the module's documentation).
pub(crate) struct Outbox<'s, S> {
    store: &'s S,
    metrics: &'s Metrics,
}

impl<'s, S: Store> Outbox<'s, S> {
    pub(crate) fn new(store: &'s S, metrics: &'s Metrics) -> Outbox<'s, S> {
        Outbox { store, metrics }
    }

    /// The records waiting for `thread`, oldest first. Unreadable records, and records created more
    /// than `max_age_secs` before `now` (their replies counted as dropped), are cleared on the way.
    pub(crate) fn waiting(
        &self,
        thread: &ThreadKey,
        now: u64,
        max_age_secs: u64,
    ) -> Result<Vec<(u64, Parcel)>, StoreError> {
        let mut out = Vec::new();
        for (id, bytes) in self.store.outbox(thread)? {
            let Some(parcel) = Parcel::decode(id, &bytes) else {
                self.clear(thread, id);
                continue;
            };
            if parcel.created_at.saturating_add(max_age_secs) < now {
                let left = parcel.items.len() - parcel.delivered.min(parcel.items.len());
                error!(thread = %thread, outbox = id, replies = left, max_age_s = max_age_secs, "giving up on replies older than the outbox's maximum age");
                for _ in 0..left {
                    self.metrics.reply_dropped();
                }
                self.clear(thread, id);
                continue;
            }
            out.push((id, parcel));
        }
        Ok(out)
    }

    /// Record that `parcel`'s first `delivered` items went out (record `id`), removing it after the
    /// last; `durable`: flushed at once (for what cannot be checked in the thread later).
    pub(crate) fn advance(&self, id: u64, parcel: &Parcel, durable: bool) {
        let record = (!parcel.is_done()).then(|| parcel.encode());
        let saved = self
            .store
            .set_outbox(&parcel.thread, id, record.as_deref())
            .and_then(|()| if durable { self.store.flush() } else { Ok(()) });
        if let Err(e) = saved {
            error!(outbox = id, error = %error_chain(&e), "cannot record a delivered reply");
        }
    }

    /// Remove record `id` of `thread`.
    pub(crate) fn clear(&self, thread: &ThreadKey, id: u64) {
        if let Err(e) = self.store.set_outbox(thread, id, None) {
            error!(outbox = id, error = %error_chain(&e), "cannot clear an outbox record");
        }
    }

    /// The threads with records waiting, for the sweep; sets the `outbox_pending` gauge.
    pub(crate) fn threads(&self) -> Result<Vec<ThreadKey>, StoreError> {
        let threads = self.store.outbox_threads().inspect_err(|e| {
            warn!(error = %error_chain(e), "cannot read the outbox");
        })?;
        self.metrics.set_outbox_pending(threads.iter().map(|(_, n)| n).sum());
        Ok(threads.into_iter().map(|(t, _)| t).collect())
    }
}

/// The mark of item `item` of outbox record `id`, put on each Slack message that item posts (with the
/// message's part number appended: `nrb:<id>:<item>:<part>`), so a post is recognised in the thread.
pub fn marker(id: u64, item: usize) -> String {
    format!("{MARKER_PREFIX}{id}:{item}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::Reply;
    use crate::vocab::Message;

    fn parcel() -> Parcel {
        Parcel::new(
            ThreadKey::new("T1", "C1", "1.0"),
            7,
            "kb-1",
            vec![
                Outbound::Post {
                    channel: "C1".into(),
                    thread_ts: Some("1.0".into()),
                    message: Message::Replies(vec![
                        Reply::NoMatch,
                        Reply::Notice {
                            text: "\u{202e} <!channel>".into(),
                        },
                    ]),
                },
                Outbound::Respond {
                    response_url: "http://127.0.0.1:1/r".into(),
                    message: None,
                },
                Outbound::MarkAnswered {
                    channel: "C1".into(),
                    thread_ts: "1.0".into(),
                    node: "infra".into(),
                    message: Message::Answered {
                        question: "Which infrastructure?".into(),
                        choice: "Classic".into(),
                        user: "U1".into(),
                    },
                },
            ],
        )
    }

    #[test]
    fn records_round_trip_and_track_delivery() {
        let mut p = parcel();
        assert_eq!(Parcel::decode(1, &p.encode()), Some(p.clone()));
        p.delivered = 1;
        assert!(!p.is_done());
        assert_eq!(Parcel::decode(1, &p.encode()).map(|p| p.delivered), Some(1));
        p.delivered = 3;
        assert!(p.is_done());
    }

    #[test]
    fn records_of_format_1_are_dropped_not_misread() {
        // format 1 rendered with the live knowledge base: its topic list and escalation carried
        // nothing to show
        let old = br#"{"format":1,"thread":{"team":"T1","channel":"C1","thread_ts":"1.0"},"created_at":7,
            "items":[{"Post":{"channel":"C1","thread_ts":"1.0","message":"Help"}}],
            "delivered":0}"#;
        assert_eq!(Parcel::decode(1, old), None);
    }

    #[test]
    fn other_formats_and_garbage_are_dropped() {
        let mut p = parcel();
        p.format = OUTBOX_FORMAT + 1;
        assert_eq!(Parcel::decode(1, &p.encode()), None);
        assert_eq!(Parcel::decode(1, b"\xff not json"), None);
        assert_eq!(Parcel::decode(1, br#"{"format":2,"items":"nope"}"#), None);
        assert_eq!(marker(12, 3), "nrb:12:3");
    }
}
