//! The sled backend: one tree of conversations (thread key -> JSON [`Stored`] record), one tree of
//! handled event ids (id -> big-endian seconds when first seen), and three trees of feedback: answer
//! counters (big-endian day + intent -> big-endian count), votes (thread key, intent and user -> JSON)
//! and unanswered messages (signature -> JSON).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{
    decode_record, encode_record, expired, FeedbackData, FeedbackStore, Purged, PurgedFeedback, Store, StoreError,
    Stored, ThreadKey, DAY_SECS, EVENT_MEMORY_SECS,
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
    votes: sled::Tree,
    unanswered: sled::Tree,
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
            votes: db.open_tree("votes")?,
            unanswered: db.open_tree("unanswered")?,
            db,
            dir,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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
}

fn be_u64(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map(u64::from_be_bytes).unwrap_or(0)
}

impl FeedbackStore for SledStore {
    fn count_answer(&self, intent: &str, now: u64) -> Result<(), StoreError> {
        let mut key = (now / DAY_SECS).to_be_bytes().to_vec();
        key.extend_from_slice(intent.as_bytes());
        self.answers.update_and_fetch(key, |old| {
            let n = old.map_or(0, be_u64).saturating_add(1);
            Some(n.to_be_bytes().to_vec())
        })?;
        Ok(())
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
        for entry in self.answers.iter() {
            let (k, v) = entry?;
            if k.len() < 8 {
                continue;
            }
            let intent = String::from_utf8_lossy(&k[8..]).into_owned();
            *data.answers.entry(intent).or_default() += be_u64(&v);
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
        for entry in self.answers.iter() {
            let (k, _) = entry?;
            let day = k.get(..8).map_or(0, be_u64);
            if expired((day + 1).saturating_mul(DAY_SECS), now, retention_secs) {
                self.answers.remove(&k)?;
                purged.answer_days += 1;
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
