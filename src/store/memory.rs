//! The in-memory backend: the same behaviour as sled, gone when the process ends. For unit tests and
//! the terminal `chat` without `--db`.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Purged, Store, StoreError, ThreadKey, EVENT_MEMORY_SECS};
use crate::dialogue::Conversation;

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    conversations: HashMap<ThreadKey, Conversation>,
    /// Event id -> when first seen.
    events: HashMap<String, u64>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // a panic while holding the lock leaves plain data behind: keep using it
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &ThreadKey) -> Result<Option<Conversation>, StoreError> {
        Ok(self.lock().conversations.get(key).cloned())
    }

    fn put(&self, key: &ThreadKey, conversation: &Conversation) -> Result<(), StoreError> {
        self.lock().conversations.insert(key.clone(), conversation.clone());
        Ok(())
    }

    fn remove(&self, key: &ThreadKey) -> Result<(), StoreError> {
        self.lock().conversations.remove(key);
        Ok(())
    }

    fn mark_event_seen(&self, event: &str, now: u64) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.events.contains_key(event) {
            return Ok(false);
        }
        inner.events.insert(event.to_string(), now);
        Ok(true)
    }

    fn purge(&self, now: u64, idle_secs: u64) -> Result<Purged, StoreError> {
        let mut inner = self.lock();
        let (c0, e0) = (inner.conversations.len(), inner.events.len());
        inner
            .conversations
            .retain(|_, c| c.updated_at.saturating_add(idle_secs) >= now);
        inner.events.retain(|_, at| at.saturating_add(EVENT_MEMORY_SECS) >= now);
        Ok(Purged {
            conversations: c0 - inner.conversations.len(),
            events: e0 - inner.events.len(),
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
