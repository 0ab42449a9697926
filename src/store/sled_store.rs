//! The sled backend: one tree of conversations (thread key -> JSON [`Stored`] record) and one tree of
//! handled event ids (id -> big-endian seconds when first seen).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Purged, Store, StoreError, Stored, ThreadKey, EVENT_MEMORY_SECS};
use crate::dialogue::Conversation;

/// Conversations in a sled database directory. Only one process may open a directory at a time.
#[derive(Clone)]
pub struct SledStore {
    /// Kept for flushing the whole database (both trees) at once.
    db: sled::Db,
    conversations: sled::Tree,
    events: sled::Tree,
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
        let db = sled::Config::new().path(&dir).open().map_err(|source| {
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
            db,
            conversations,
            events,
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
