//! The sled backend: one tree of conversations (thread key -> JSON [`Stored`] record), one tree of
//! handled event ids (id -> big-endian seconds when first seen), and three trees of feedback: answer
//! counters (big-endian day + intent -> big-endian count), votes (thread key, intent and user -> JSON)
//! and unanswered messages (signature -> JSON), and the outbox (thread key, NUL, big-endian id -> the
//! caller's bytes: a thread's records are one prefix, in id order).
//! [`Store::commit`] writes conversation, events and outbox in one sled transaction, then flushes.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{
    decode_record, encode_record, expired, Change, Commit, FeedbackData, FeedbackStore, Purged, PurgedFeedback, Store,
    StoreError, Stored, ThreadKey, DAY_SECS, EVENT_MEMORY_SECS,
};
use crate::dialogue::Conversation;
use crate::feedback::{Unanswered, Vote};

/// sled's page cache size. The cache fills up to it as conversations are stored: at 8 MiB the
/// bot's RSS was 31.6 MiB after 5,000 load-test conversations, at 2 MiB 27.8 MiB (BENCHMARKS.md).
const CACHE_BYTES: u64 = 2 * 1024 * 1024;

/// Conversations in a sled database directory. Only one process may open a directory at a time.
#[derive(Clone)]
pub struct SledStore {
    /// Kept for flushing the whole database (both trees) at once.
    db: sled::Db,
    conversations: sled::Tree,
    events: sled::Tree,
    answers: sled::Tree,
    /// Alerts answered per (day, intent), keyed like `answers`.
    alerts: sled::Tree,
    votes: sled::Tree,
    unanswered: sled::Tree,
    outbox: sled::Tree,
    dir: PathBuf,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("dir", &self.dir).finish()
    }
}

impl SledStore {
    /// Open (or create) the store in `dir`. A directory another process holds gives
    /// [`StoreError::Locked`] naming it.
    pub fn open(dir: impl AsRef<Path>) -> Result<SledStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        // sled's page cache defaults to 1 GiB and grows with every conversation touched; a bot that keeps
        // a few thousand small records needs a few MiB
        let db = sled::Config::new()
            .path(&dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|source| {
                let locked = matches!(&source, sled::Error::Io(e) if e.to_string().contains("could not acquire lock"));
                if locked {
                    StoreError::Locked {
                        dir: dir.clone(),
                        source,
                    }
                } else {
                    StoreError::Open {
                        dir: dir.clone(),
                        source,
                    }
                }
            })?;
        let conversations = db.open_tree("conversations")?;
        let events = db.open_tree("events")?;
        Ok(SledStore {
            conversations,
            events,
            answers: db.open_tree("answers")?,
            alerts: db.open_tree("alert_answers")?,
            votes: db.open_tree("votes")?,
            unanswered: db.open_tree("unanswered")?,
            outbox: db.open_tree("outbox")?,
            db,
            dir,
        })
    }
}

impl SledStore {
    /// Everything the store holds (records of unknown formats left out, with a warning).
    pub fn dump(&self) -> Result<super::Dump, StoreError> {
        let mut dump = super::Dump::default();
        for entry in self.conversations.iter() {
            let (k, v) = entry?;
            let key = decode_key(&k);
            if let Some(c) = Stored::decode(&key, &v)? {
                dump.conversations.push((key, c));
            }
        }
        for entry in self.events.iter() {
            let (k, v) = entry?;
            dump.events.push((String::from_utf8_lossy(&k).into_owned(), be_u64(&v)));
        }
        for entry in self.outbox.iter() {
            let (k, v) = entry?;
            // thread key, NUL, 8-byte id: the thread is what comes before the last 9 bytes
            if k.len() > 9 {
                dump.outbox.push((decode_key(&k[..k.len() - 9]), v.to_vec()));
            }
        }
        for (kind, tree) in [("answer", &self.answers), ("alert", &self.alerts)] {
            for entry in tree.iter() {
                let (k, v) = entry?;
                if k.len() >= 8 {
                    let intent = String::from_utf8_lossy(&k[8..]).into_owned();
                    dump.counts
                        .push((kind.to_string(), intent, be_u64(&k[..8]), be_u64(&v)));
                }
            }
        }
        for entry in self.votes.iter() {
            let (_, v) = entry?;
            dump.votes.extend(decode_record::<Vote>("votes", &v));
        }
        for entry in self.unanswered.iter() {
            let (_, v) = entry?;
            dump.unanswered.extend(decode_record::<Unanswered>("unanswered", &v));
        }
        Ok(dump)
    }
}

fn decode_key(bytes: &[u8]) -> ThreadKey {
    let s = String::from_utf8_lossy(bytes);
    let mut parts = s.splitn(3, '\0');
    ThreadKey::new(
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

impl Store for SledStore {
    fn get(&self, key: &ThreadKey) -> Result<Option<Conversation>, StoreError> {
        match self.conversations.get(key.encode())? {
            Some(bytes) => Stored::decode(key, &bytes),
            None => Ok(None),
        }
    }

    fn put(&self, key: &ThreadKey, conversation: &Conversation) -> Result<(), StoreError> {
        self.conversations.insert(key.encode(), Stored::encode(conversation)?)?;
        Ok(())
    }

    fn remove(&self, key: &ThreadKey) -> Result<(), StoreError> {
        self.conversations.remove(key.encode())?;
        Ok(())
    }

    fn mark_event_seen(&self, event: &str, now: u64) -> Result<bool, StoreError> {
        let swapped = self
            .events
            .compare_and_swap(event.as_bytes(), None::<&[u8]>, Some(&now.to_be_bytes()[..]))?;
        Ok(swapped.is_ok())
    }

    fn purge(&self, now: u64, idle_secs: u64) -> Result<Purged, StoreError> {
        /// Just the field purge needs, without decoding the whole conversation.
        #[derive(Deserialize)]
        struct Updated {
            conversation: UpdatedAt,
        }
        #[derive(Deserialize)]
        struct UpdatedAt {
            updated_at: u64,
        }
        let mut purged = Purged::default();
        for entry in self.conversations.iter() {
            let (k, v) = entry?;
            let updated = serde_json::from_slice::<Updated>(&v).map(|u| u.conversation.updated_at);
            let expired = match updated {
                Ok(at) => at.saturating_add(idle_secs) < now,
                Err(_) => true,
            };
            let current = matches!(Stored::decode(&decode_key(&k), &v), Ok(Some(_)));
            if expired || !current {
                self.conversations.remove(&k)?;
                purged.conversations += 1;
            }
        }
        for entry in self.events.iter() {
            let (k, v) = entry?;
            let at = <[u8; 8]>::try_from(v.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
            if at.saturating_add(EVENT_MEMORY_SECS) < now {
                self.events.remove(&k)?;
                purged.events += 1;
            }
        }
        Ok(purged)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn was_seen(&self, event: &str) -> Result<bool, StoreError> {
        Ok(self.events.contains_key(event.as_bytes())?)
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<Option<u64>, StoreError> {
        use sled::transaction::{TransactionError, TransactionResult};
        use sled::Transactional;
        if commit.is_empty() {
            return Ok(None);
        }
        let key = commit.thread.encode();
        let conversation = match commit.conversation {
            Change::Put(c) => Some(Stored::encode(c)?),
            Change::Keep | Change::Remove => None,
        };
        // ids from sled's persistent counter grow across restarts (it skips ahead after a crash)
        let id = commit.outbox.map(|_| self.db.generate_id()).transpose()?;
        let result: TransactionResult<(), String> =
            (&self.conversations, &self.events, &self.outbox).transaction(|(conversations, events, outbox)| {
                use sled::transaction::ConflictableTransactionError;
                if let Some(e) = commit
                    .events
                    .iter()
                    .find(|e| matches!(events.get(e.as_bytes()), Ok(Some(_))))
                {
                    return Err(ConflictableTransactionError::Abort(e.clone()));
                }
                match (&commit.conversation, &conversation) {
                    (Change::Put(_), Some(bytes)) => {
                        conversations.insert(key.as_slice(), bytes.as_slice())?;
                    }
                    (Change::Remove, _) => {
                        conversations.remove(key.as_slice())?;
                    }
                    _ => {}
                }
                for e in commit.events {
                    events.insert(e.as_bytes(), &commit.now.to_be_bytes()[..])?;
                }
                if let (Some(id), Some(record)) = (id, commit.outbox) {
                    outbox.insert(outbox_key(commit.thread, id), record)?;
                }
                Ok(())
            });
        match result {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(event)) => return Err(StoreError::AlreadyHandled { event }),
        }
        self.db.flush()?;
        Ok(id)
    }

    fn outbox(&self, thread: &ThreadKey) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let prefix = outbox_prefix(thread);
        self.outbox
            .scan_prefix(&prefix)
            .map(|entry| {
                let (k, v) = entry?;
                Ok((be_u64(&k[prefix.len()..]), v.to_vec()))
            })
            .collect()
    }

    fn outbox_threads(&self) -> Result<Vec<(ThreadKey, usize)>, StoreError> {
        let mut out: Vec<(ThreadKey, usize)> = Vec::new();
        for key in self.outbox.iter().keys() {
            let key = key?;
            // the thread key is everything before the NUL and the 8-byte id
            let thread = decode_key(&key[..key.len().saturating_sub(9)]);
            match out.last_mut() {
                Some((t, n)) if *t == thread => *n += 1,
                _ => out.push((thread, 1)),
            }
        }
        Ok(out)
    }

    fn set_outbox(&self, thread: &ThreadKey, id: u64, record: Option<&[u8]>) -> Result<(), StoreError> {
        let key = outbox_key(thread, id);
        match record {
            Some(r) => self.outbox.insert(key, r).map(drop)?,
            None => self.outbox.remove(key).map(drop)?,
        }
        Ok(())
    }
}

/// A thread's outbox records start with this.
fn outbox_prefix(thread: &ThreadKey) -> Vec<u8> {
    let mut k = thread.encode();
    k.push(0);
    k
}

fn outbox_key(thread: &ThreadKey, id: u64) -> Vec<u8> {
    let mut k = outbox_prefix(thread);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn be_u64(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map(u64::from_be_bytes).unwrap_or(0)
}

/// Add one to `intent`'s count for the day of `now` in `tree` (keys: day, big-endian, then the intent).
fn count_per_day(tree: &sled::Tree, intent: &str, now: u64) -> Result<(), StoreError> {
    let mut key = (now / DAY_SECS).to_be_bytes().to_vec();
    key.extend_from_slice(intent.as_bytes());
    tree.update_and_fetch(key, |old| {
        let n = old.map_or(0, be_u64).saturating_add(1);
        Some(n.to_be_bytes().to_vec())
    })?;
    Ok(())
}

impl FeedbackStore for SledStore {
    fn count_answer(&self, intent: &str, now: u64) -> Result<(), StoreError> {
        count_per_day(&self.answers, intent, now)
    }

    fn count_alert(&self, intent: &str, now: u64) -> Result<(), StoreError> {
        count_per_day(&self.alerts, intent, now)
    }

    fn put_vote(&self, vote: &Vote) -> Result<(), StoreError> {
        let mut key = vote.thread.encode();
        for part in [&vote.intent, &vote.user] {
            key.push(0);
            key.extend_from_slice(part.as_bytes());
        }
        self.votes.insert(key, encode_record(vote))?;
        Ok(())
    }

    fn note_unanswered(&self, sighting: &Unanswered) -> Result<u64, StoreError> {
        let merged = self.unanswered.update_and_fetch(sighting.signature.as_bytes(), |old| {
            let record = match old.and_then(|b| decode_record::<Unanswered>("unanswered", b)) {
                Some(prev) => prev.merge(sighting.clone()),
                None => sighting.clone(),
            };
            Some(encode_record(&record))
        })?;
        Ok(merged
            .and_then(|b| decode_record::<Unanswered>("unanswered", &b))
            .map_or(1, |u| u.count))
    }

    fn feedback(&self) -> Result<FeedbackData, StoreError> {
        let mut data = FeedbackData::default();
        for (tree, counts) in [(&self.answers, &mut data.answers), (&self.alerts, &mut data.alerts)] {
            for entry in tree.iter() {
                let (k, v) = entry?;
                if k.len() < 8 {
                    continue;
                }
                let intent = String::from_utf8_lossy(&k[8..]).into_owned();
                *counts.entry(intent).or_default() += be_u64(&v);
            }
        }
        for entry in self.votes.iter() {
            let (_, v) = entry?;
            data.votes.extend(decode_record::<Vote>("votes", &v));
        }
        for entry in self.unanswered.iter() {
            let (_, v) = entry?;
            data.unanswered.extend(decode_record::<Unanswered>("unanswered", &v));
        }
        Ok(data)
    }

    fn purge_feedback(&self, now: u64, retention_secs: u64) -> Result<PurgedFeedback, StoreError> {
        let mut purged = PurgedFeedback::default();
        for tree in [&self.answers, &self.alerts] {
            for entry in tree.iter() {
                let (k, _) = entry?;
                let day = k.get(..8).map_or(0, be_u64);
                if expired((day + 1).saturating_mul(DAY_SECS), now, retention_secs) {
                    tree.remove(&k)?;
                    purged.answer_days += 1;
                }
            }
        }
        for entry in self.votes.iter() {
            let (k, v) = entry?;
            let keep = decode_record::<Vote>("votes", &v).is_some_and(|vote| !expired(vote.at, now, retention_secs));
            if !keep {
                self.votes.remove(&k)?;
                purged.votes += 1;
            }
        }
        for entry in self.unanswered.iter() {
            let (k, v) = entry?;
            let keep =
                decode_record::<Unanswered>("unanswered", &v).is_some_and(|u| !expired(u.last_at, now, retention_secs));
            if !keep {
                self.unanswered.remove(&k)?;
                purged.unanswered += 1;
            }
        }
        Ok(purged)
    }
}
