//! The in-memory backend: the same behaviour as sled, gone when the process ends. For unit tests and
//! the terminal `chat` without `--db`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::{
    expired, Change, Commit, FeedbackData, FeedbackStore, Purged, PurgedFeedback, Store, StoreError, ThreadKey,
    DAY_SECS, EVENT_MEMORY_SECS,
};
use crate::dialogue::Conversation;
use crate::feedback::{Unanswered, Vote};

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    conversations: HashMap<ThreadKey, Conversation>,
    /// Event id -> when first seen.
    events: HashMap<String, u64>,
    /// (day, intent) -> answers.
    answers: HashMap<(u64, String), u64>,
    /// (day, intent) -> alerts answered.
    alerts: HashMap<(u64, String), u64>,
    /// (thread, intent, user) -> latest vote.
    votes: HashMap<(ThreadKey, String, String), Vote>,
    /// Signature -> record.
    unanswered: HashMap<String, Unanswered>,
    /// (thread, outbox id) -> record.
    outbox: BTreeMap<(ThreadKey, u64), Vec<u8>>,
    next_outbox_id: u64,
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

    fn was_seen(&self, event: &str) -> Result<bool, StoreError> {
        Ok(self.lock().events.contains_key(event))
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<Option<u64>, StoreError> {
        let mut inner = self.lock();
        if let Some(e) = commit.events.iter().find(|e| inner.events.contains_key(*e)) {
            return Err(StoreError::AlreadyHandled { event: e.clone() });
        }
        match commit.conversation {
            Change::Keep => {}
            Change::Put(c) => {
                inner.conversations.insert(commit.thread.clone(), c.clone());
            }
            Change::Remove => {
                inner.conversations.remove(commit.thread);
            }
        }
        for e in commit.events {
            inner.events.insert(e.clone(), commit.now);
        }
        Ok(commit.outbox.map(|record| {
            let id = inner.next_outbox_id;
            inner.next_outbox_id += 1;
            inner.outbox.insert((commit.thread.clone(), id), record.to_vec());
            id
        }))
    }

    fn outbox(&self, thread: &ThreadKey) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .outbox
            .range((thread.clone(), 0)..=(thread.clone(), u64::MAX))
            .map(|((_, id), v)| (*id, v.clone()))
            .collect())
    }

    fn outbox_threads(&self) -> Result<Vec<(ThreadKey, usize)>, StoreError> {
        let mut out: Vec<(ThreadKey, usize)> = Vec::new();
        for (thread, _) in self.lock().outbox.keys() {
            match out.last_mut() {
                Some((t, n)) if t == thread => *n += 1,
                _ => out.push((thread.clone(), 1)),
            }
        }
        Ok(out)
    }

    fn set_outbox(&self, thread: &ThreadKey, id: u64, record: Option<&[u8]>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (thread.clone(), id);
        match record {
            Some(r) => inner.outbox.insert(key, r.to_vec()),
            None => inner.outbox.remove(&key),
        };
        Ok(())
    }
}

impl FeedbackStore for MemoryStore {
    fn count_answer(&self, intent: &str, now: u64) -> Result<(), StoreError> {
        *self
            .lock()
            .answers
            .entry((now / DAY_SECS, intent.to_string()))
            .or_default() += 1;
        Ok(())
    }

    fn count_alert(&self, intent: &str, now: u64) -> Result<(), StoreError> {
        *self
            .lock()
            .alerts
            .entry((now / DAY_SECS, intent.to_string()))
            .or_default() += 1;
        Ok(())
    }

    fn put_vote(&self, vote: &Vote) -> Result<(), StoreError> {
        let key = (vote.thread.clone(), vote.intent.clone(), vote.user.clone());
        self.lock().votes.insert(key, vote.clone());
        Ok(())
    }

    fn note_unanswered(&self, sighting: &Unanswered) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let record = match inner.unanswered.remove(&sighting.signature) {
            Some(prev) => prev.merge(sighting.clone()),
            None => sighting.clone(),
        };
        let count = record.count;
        inner.unanswered.insert(sighting.signature.clone(), record);
        Ok(count)
    }

    fn feedback(&self) -> Result<FeedbackData, StoreError> {
        let inner = self.lock();
        let mut data = FeedbackData::default();
        for ((_, intent), n) in &inner.answers {
            *data.answers.entry(intent.clone()).or_default() += n;
        }
        for ((_, intent), n) in &inner.alerts {
            *data.alerts.entry(intent.clone()).or_default() += n;
        }
        data.votes = inner.votes.values().cloned().collect();
        data.unanswered = inner.unanswered.values().cloned().collect();
        Ok(data)
    }

    fn purge_feedback(&self, now: u64, retention_secs: u64) -> Result<PurgedFeedback, StoreError> {
        let mut inner = self.lock();
        let before = (
            inner.answers.len() + inner.alerts.len(),
            inner.votes.len(),
            inner.unanswered.len(),
        );
        let kept =
            |(day, _): &(u64, String), _: &mut u64| !expired((day + 1).saturating_mul(DAY_SECS), now, retention_secs);
        inner.answers.retain(kept);
        inner.alerts.retain(kept);
        inner.votes.retain(|_, v| !expired(v.at, now, retention_secs));
        inner.unanswered.retain(|_, u| !expired(u.last_at, now, retention_secs));
        Ok(PurgedFeedback {
            answer_days: before.0 - inner.answers.len() - inner.alerts.len(),
            votes: before.1 - inner.votes.len(),
            unanswered: before.2 - inner.unanswered.len(),
        })
    }
}
