//! The PostgreSQL backend, for two or more replicas of `serve` sharing one database: the same
//! [`Store`] and [`FeedbackStore`] as sled (the schema is in `migrations/`, applied at open by
//! [`migrate`]), and [`PgReplicas`], what lets replicas share the work: heartbeats, thread claims and
//! the inbox journal (see `replicas.rs`).
//!
//! Records are the same versioned JSON as sled's, so a conversation reads the same from either. Every
//! call is a database round trip made through [`connect::Bridge`]; a call that cannot reach the
//! database fails with an error for which [`StoreError::is_transient`] is true, and the caller tries
//! again later (the bot does not answer from a state it could not read).

mod connect;
mod migrate;
mod replicas;

use std::sync::Arc;

use tokio_postgres::types::ToSql;

use super::{
    decode_record, encode_record, expired, Change, Commit, FeedbackData, FeedbackStore, Purged, PurgedFeedback, Store,
    StoreError, Stored, ThreadKey, DAY_SECS, EVENT_MEMORY_SECS,
};
use crate::dialogue::Conversation;
use crate::feedback::{Unanswered, Vote};

pub use connect::{SslMode, Target};
pub use migrate::SCHEMA_VERSION;
pub use replicas::PgReplicas;

/// Boxed parameters for [`PgStore::query`] and [`PgStore::execute`].
macro_rules! params {
    ($($p:expr),* $(,)?) => { vec![$(Box::new($p) as Box<dyn ToSql + Send + Sync>),*] };
}

/// Connections in the pool when `--database-pool` is not given.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// What [`PgStore::restore`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Conversations written (new, or newer than the database's).
    pub conversations: usize,
    /// Handled marks new to the database.
    pub events: usize,
    /// Outbox records copied.
    pub outbox: usize,
    /// Per-day counters, votes and unanswered records offered.
    pub counts: usize,
    pub votes: usize,
    pub unanswered: usize,
    /// Journaled events handed over.
    pub journaled: usize,
}

/// Conversations, handled events, the outbox and feedback in PostgreSQL. Cheap to clone (one pool).
#[derive(Clone)]
pub struct PgStore {
    bridge: Arc<connect::Bridge>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("target", &self.bridge.target).finish()
    }
}

/// A database error as a [`StoreError`], saying what was being done.
fn db(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |source| StoreError::Database { what, source }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(crate::error::error_chain(&e))
}

/// A thread key's three columns.
fn parts(key: &ThreadKey) -> [String; 3] {
    [key.team.clone(), key.channel.clone(), key.thread_ts.clone()]
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PgStore {
    /// Open the database at `url` with at most `pool` connections, and bring its schema to
    /// [`SCHEMA_VERSION`] (under an advisory lock, so replicas starting together migrate once). Fails
    /// when the database cannot be reached, or its schema is newer than this binary knows.
    pub fn open(url: &str, pool: usize) -> Result<PgStore, StoreError> {
        let bridge = Arc::new(connect::Bridge::new(url, pool)?);
        bridge.run(|pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            migrate::apply(&mut client).await
        })?;
        Ok(PgStore { bridge })
    }

    /// Where the database is (host, port, database, user, sslmode), for logs; never the password.
    pub fn target(&self) -> &Target {
        &self.bridge.target
    }

    /// The coordination of replicas through this database, as replica `id`, with heartbeats that
    /// expire after `lease`.
    pub fn replicas(&self, id: String, lease: std::time::Duration) -> PgReplicas {
        PgReplicas::new(self.bridge.clone(), id, lease)
    }

    /// True when a round trip to the database succeeds now.
    pub fn ping(&self) -> bool {
        self.bridge
            .run(|pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                client.simple_query("SELECT 1").await.map_err(db("ping"))?;
                Ok(())
            })
            .is_ok()
    }

    /// Every conversation, with its thread (for `migrate` and tests).
    pub fn conversations(&self) -> Result<Vec<(ThreadKey, Conversation)>, StoreError> {
        let rows = self.query(
            "SELECT team, channel, thread_ts, record FROM conversations ORDER BY updated_at",
            vec![],
            "reading conversations",
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key = ThreadKey::new(
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2),
            );
            if let Some(c) = Stored::decode(&key, row.get::<_, &[u8]>(3))? {
                out.push((key, c));
            }
        }
        Ok(out)
    }

    /// Write `dump` (a sled store's contents) and the `journaled` events it left unhandled, in one
    /// transaction. Safe to run again: conversations are replaced only by newer ones, handled marks
    /// and counts are not added twice, a thread's outbox records are copied only when it has none
    /// here, and journaled events, handed to the first replica that beats, are dropped there as
    /// duplicates when they were handled.
    pub fn restore(&self, dump: &super::Dump, journaled: &[crate::vocab::Inbound]) -> Result<Restored, StoreError> {
        let dump = dump.clone();
        let mut entries = Vec::with_capacity(journaled.len());
        for inbound in journaled {
            let [team, channel, thread_ts] = parts(&inbound.thread());
            entries.push((
                crate::inbox::Entry::encode(inbound).map_err(StoreError::Encode)?,
                [team, channel, thread_ts, inbound.ts.clone()],
            ));
        }
        self.bridge.run(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(db("restoring"))?;
            let mut done = Restored::default();
            for (key, c) in &dump.conversations {
                let [t, ch, ts] = parts(key);
                done.conversations += tx
                    .execute(
                        "INSERT INTO conversations AS c (team, channel, thread_ts, record, updated_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (team, channel, thread_ts) DO UPDATE SET record = $4, updated_at = $5
                         WHERE c.updated_at < $5",
                        &[&t, &ch, &ts, &Stored::encode(c)?, &i64_of(c.updated_at)],
                    )
                    .await
                    .map_err(db("restoring conversations"))? as usize;
            }
            for (key, at) in &dump.events {
                done.events += tx
                    .execute(
                        "INSERT INTO handled_events (key, at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                        &[key, &i64_of(*at)],
                    )
                    .await
                    .map_err(db("restoring handled events"))? as usize;
            }
            let mut threads_with_outbox = std::collections::HashSet::new();
            for (key, record) in &dump.outbox {
                let [t, ch, ts] = parts(key);
                if !threads_with_outbox.contains(key) {
                    let had = tx
                        .query_opt(
                            "SELECT 1 FROM outbox WHERE team = $1 AND channel = $2 AND thread_ts = $3 LIMIT 1",
                            &[&t, &ch, &ts],
                        )
                        .await
                        .map_err(db("restoring the outbox"))?;
                    if had.is_some() {
                        continue;
                    }
                    threads_with_outbox.insert(key.clone());
                }
                tx.execute(
                    "INSERT INTO outbox (team, channel, thread_ts, record) VALUES ($1, $2, $3, $4)",
                    &[&t, &ch, &ts, record],
                )
                .await
                .map_err(db("restoring the outbox"))?;
                done.outbox += 1;
            }
            for (kind, intent, day, n) in &dump.counts {
                tx.execute(
                    "INSERT INTO answer_counts AS a (kind, intent, day, n) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (kind, intent, day) DO UPDATE SET n = greatest(a.n, EXCLUDED.n)",
                    &[kind, intent, &i64_of(*day), &i64_of(*n)],
                )
                .await
                .map_err(db("restoring answer counts"))?;
                done.counts += 1;
            }
            for v in &dump.votes {
                let [t, ch, ts] = parts(&v.thread);
                tx.execute(
                    "INSERT INTO votes (team, channel, thread_ts, intent, voter, record, at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[&t, &ch, &ts, &v.intent, &v.user, &encode_record(v), &i64_of(v.at)],
                )
                .await
                .map_err(db("restoring votes"))?;
                done.votes += 1;
            }
            for u in &dump.unanswered {
                tx.execute(
                    "INSERT INTO unanswered AS u (signature, record, last_at) VALUES ($1, $2, $3)
                     ON CONFLICT (signature) DO UPDATE SET record = $2, last_at = $3 WHERE u.last_at < $3",
                    &[&u.signature, &encode_record(u), &i64_of(u.last_at)],
                )
                .await
                .map_err(db("restoring unanswered messages"))?;
                done.unanswered += 1;
            }
            for (entry, [team, channel, thread_ts, ts]) in &entries {
                // owned by no live replica: the first replica to beat takes them over
                tx.execute(
                    "INSERT INTO inbox (owner, entry, team, channel, thread_ts, ts)
                     VALUES ('migrated-from-sled', $1, $2, $3, $4, $5)",
                    &[entry, team, channel, thread_ts, ts],
                )
                .await
                .map_err(db("restoring journaled events"))?;
                done.journaled += 1;
            }
            tx.commit().await.map_err(db("restoring"))?;
            Ok(done)
        })
    }

    /// One statement's rows.
    fn query(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
        what: &'static str,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.bridge.run(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let stmt = client.prepare_cached(sql).await.map_err(db(what))?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
            client.query(&stmt, &refs).await.map_err(db(what))
        })
    }

    /// One statement; the rows it changed.
    fn execute(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn ToSql + Send + Sync>>,
        what: &'static str,
    ) -> Result<u64, StoreError> {
        self.bridge.run(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let stmt = client.prepare_cached(sql).await.map_err(db(what))?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
            client.execute(&stmt, &refs).await.map_err(db(what))
        })
    }

    fn count(&self, kind: &'static str, intent: &str, now: u64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO answer_counts (kind, intent, day, n) VALUES ($1, $2, $3, 1)
             ON CONFLICT (kind, intent, day) DO UPDATE SET n = answer_counts.n + 1",
            params![kind, intent.to_string(), i64_of(now / DAY_SECS)],
            "counting an answer",
        )
        .map(drop)
    }
}

impl Store for PgStore {
    fn get(&self, key: &ThreadKey) -> Result<Option<Conversation>, StoreError> {
        let [t, c, ts] = parts(key);
        let rows = self.query(
            "SELECT record FROM conversations WHERE team = $1 AND channel = $2 AND thread_ts = $3",
            params![t, c, ts],
            "reading a conversation",
        )?;
        match rows.first() {
            Some(row) => Stored::decode(key, row.get::<_, &[u8]>(0)),
            None => Ok(None),
        }
    }

    fn put(&self, key: &ThreadKey, conversation: &Conversation) -> Result<(), StoreError> {
        let [t, c, ts] = parts(key);
        let record = Stored::encode(conversation)?;
        self.execute(
            "INSERT INTO conversations (team, channel, thread_ts, record, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (team, channel, thread_ts) DO UPDATE SET record = $4, updated_at = $5",
            params![t, c, ts, record, i64_of(conversation.updated_at)],
            "saving a conversation",
        )
        .map(drop)
    }

    fn remove(&self, key: &ThreadKey) -> Result<(), StoreError> {
        let [t, c, ts] = parts(key);
        self.execute(
            "DELETE FROM conversations WHERE team = $1 AND channel = $2 AND thread_ts = $3",
            params![t, c, ts],
            "removing a conversation",
        )
        .map(drop)
    }

    fn mark_event_seen(&self, event: &str, now: u64) -> Result<bool, StoreError> {
        let n = self.execute(
            "INSERT INTO handled_events (key, at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            params![event.to_string(), i64_of(now)],
            "marking an event handled",
        )?;
        Ok(n == 1)
    }

    fn purge(&self, now: u64, idle_secs: u64) -> Result<Purged, StoreError> {
        let conversations = self.execute(
            "DELETE FROM conversations WHERE updated_at < $1",
            params![i64_of(now.saturating_sub(idle_secs))],
            "purging conversations",
        )?;
        let events = self.execute(
            "DELETE FROM handled_events WHERE at < $1",
            params![i64_of(now.saturating_sub(EVENT_MEMORY_SECS))],
            "purging handled events",
        )?;
        Ok(Purged {
            conversations: conversations as usize,
            events: events as usize,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        // every statement commits durably
        Ok(())
    }

    fn was_seen(&self, event: &str) -> Result<bool, StoreError> {
        let rows = self.query(
            "SELECT 1 FROM handled_events WHERE key = $1",
            params![event.to_string()],
            "reading handled events",
        )?;
        Ok(!rows.is_empty())
    }

    fn commit(&self, commit: &Commit<'_>) -> Result<Option<u64>, StoreError> {
        if commit.is_empty() {
            return Ok(None);
        }
        let [t, c, ts] = parts(commit.thread);
        let conversation = match commit.conversation {
            Change::Keep => None,
            Change::Put(conv) => Some(Some((Stored::encode(conv)?, i64_of(conv.updated_at)))),
            Change::Remove => Some(None),
        };
        // each key once: a key listed twice must not read as "already handled" by its own first insert
        let mut events: Vec<String> = commit.events.to_vec();
        events.sort();
        events.dedup();
        let outbox = commit.outbox.map(<[u8]>::to_vec);
        let now = i64_of(commit.now);
        self.bridge.run(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(db("committing a step"))?;
            match conversation {
                None => {}
                Some(Some((record, updated_at))) => {
                    tx.execute(
                        "INSERT INTO conversations (team, channel, thread_ts, record, updated_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (team, channel, thread_ts) DO UPDATE SET record = $4, updated_at = $5",
                        &[&t, &c, &ts, &record, &updated_at],
                    )
                    .await
                    .map_err(db("saving a conversation"))?;
                }
                Some(None) => {
                    tx.execute(
                        "DELETE FROM conversations WHERE team = $1 AND channel = $2 AND thread_ts = $3",
                        &[&t, &c, &ts],
                    )
                    .await
                    .map_err(db("removing a conversation"))?;
                }
            }
            for e in &events {
                // a mark already there: another replica handled the event (this one was paused past its
                // lease, or the event was taken over): nothing of this step may be written
                let fresh = tx
                    .execute(
                        "INSERT INTO handled_events (key, at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                        &[e, &now],
                    )
                    .await
                    .map_err(db("marking an event handled"))?;
                if fresh == 0 {
                    tx.rollback().await.map_err(db("committing a step"))?;
                    return Err(StoreError::AlreadyHandled { event: e.clone() });
                }
            }
            let id = match outbox {
                Some(record) => {
                    let row = tx
                        .query_one(
                            "INSERT INTO outbox (team, channel, thread_ts, record) VALUES ($1, $2, $3, $4) RETURNING id",
                            &[&t, &c, &ts, &record],
                        )
                        .await
                        .map_err(db("saving replies"))?;
                    Some(u64_of(row.get::<_, i64>(0)))
                }
                None => None,
            };
            tx.commit().await.map_err(db("committing a step"))?;
            Ok(id)
        })
    }

    fn outbox(&self, thread: &ThreadKey) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let [t, c, ts] = parts(thread);
        let rows = self.query(
            "SELECT id, record FROM outbox WHERE team = $1 AND channel = $2 AND thread_ts = $3 ORDER BY id",
            params![t, c, ts],
            "reading the outbox",
        )?;
        Ok(rows
            .iter()
            .map(|r| (u64_of(r.get::<_, i64>(0)), r.get::<_, Vec<u8>>(1)))
            .collect())
    }

    fn outbox_threads(&self) -> Result<Vec<(ThreadKey, usize)>, StoreError> {
        let rows = self.query(
            "SELECT team, channel, thread_ts, count(*) FROM outbox GROUP BY team, channel, thread_ts
             ORDER BY team, channel, thread_ts",
            params![],
            "reading the outbox",
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    ThreadKey::new(r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2)),
                    u64_of(r.get::<_, i64>(3)) as usize,
                )
            })
            .collect())
    }

    fn set_outbox(&self, thread: &ThreadKey, id: u64, record: Option<&[u8]>) -> Result<(), StoreError> {
        let [t, c, ts] = parts(thread);
        match record {
            Some(r) => self.execute(
                "UPDATE outbox SET record = $5 WHERE id = $4 AND team = $1 AND channel = $2 AND thread_ts = $3",
                params![t, c, ts, i64_of(id), r.to_vec()],
                "updating the outbox",
            ),
            None => self.execute(
                "DELETE FROM outbox WHERE id = $4 AND team = $1 AND channel = $2 AND thread_ts = $3",
                params![t, c, ts, i64_of(id)],
                "updating the outbox",
            ),
        }
        .map(drop)
    }
}

impl FeedbackStore for PgStore {
    fn count_answer(&self, intent: &str, now: u64) -> Result<(), StoreError> {
        self.count("answer", intent, now)
    }

    fn count_alert(&self, intent: &str, now: u64) -> Result<(), StoreError> {
        self.count("alert", intent, now)
    }

    fn put_vote(&self, vote: &Vote) -> Result<(), StoreError> {
        let [t, c, ts] = parts(&vote.thread);
        self.execute(
            "INSERT INTO votes (team, channel, thread_ts, intent, voter, record, at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (team, channel, thread_ts, intent, voter) DO UPDATE SET record = $6, at = $7",
            params![
                t,
                c,
                ts,
                vote.intent.clone(),
                vote.user.clone(),
                encode_record(vote),
                i64_of(vote.at)
            ],
            "saving a vote",
        )
        .map(drop)
    }

    fn note_unanswered(&self, sighting: &Unanswered) -> Result<u64, StoreError> {
        let sighting = sighting.clone();
        self.bridge.run(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(db("noting a message"))?;
            let first = tx
                .execute(
                    "INSERT INTO unanswered (signature, record, last_at) VALUES ($1, $2, $3)
                     ON CONFLICT (signature) DO NOTHING",
                    &[
                        &sighting.signature,
                        &encode_record(&sighting),
                        &i64_of(sighting.last_at),
                    ],
                )
                .await
                .map_err(db("noting a message"))?;
            let count = if first == 1 {
                sighting.count
            } else {
                let row = tx
                    .query_one(
                        "SELECT record FROM unanswered WHERE signature = $1 FOR UPDATE",
                        &[&sighting.signature],
                    )
                    .await
                    .map_err(db("noting a message"))?;
                let merged = match decode_record::<Unanswered>("unanswered", row.get::<_, &[u8]>(0)) {
                    Some(prev) => prev.merge(sighting.clone()),
                    None => sighting.clone(),
                };
                tx.execute(
                    "UPDATE unanswered SET record = $2, last_at = $3 WHERE signature = $1",
                    &[&sighting.signature, &encode_record(&merged), &i64_of(merged.last_at)],
                )
                .await
                .map_err(db("noting a message"))?;
                merged.count
            };
            tx.commit().await.map_err(db("noting a message"))?;
            Ok(count)
        })
    }

    fn feedback(&self) -> Result<FeedbackData, StoreError> {
        let mut data = FeedbackData::default();
        for row in self.query(
            "SELECT kind, intent, sum(n)::bigint FROM answer_counts GROUP BY kind, intent",
            params![],
            "reading feedback",
        )? {
            let kind: &str = row.get(0);
            let map = if kind == "alert" {
                &mut data.alerts
            } else {
                &mut data.answers
            };
            *map.entry(row.get::<_, String>(1)).or_default() += u64_of(row.get::<_, i64>(2));
        }
        for row in self.query("SELECT record FROM votes", params![], "reading feedback")? {
            data.votes
                .extend(decode_record::<Vote>("votes", row.get::<_, &[u8]>(0)));
        }
        for row in self.query("SELECT record FROM unanswered", params![], "reading feedback")? {
            data.unanswered
                .extend(decode_record::<Unanswered>("unanswered", row.get::<_, &[u8]>(0)));
        }
        Ok(data)
    }

    fn purge_feedback(&self, now: u64, retention_secs: u64) -> Result<PurgedFeedback, StoreError> {
        // a day's counter goes once the day ended more than the retention ago (as `expired` says)
        let mut answer_days = 0;
        for row in self.query("SELECT DISTINCT day FROM answer_counts", params![], "purging feedback")? {
            let day = u64_of(row.get::<_, i64>(0));
            if expired((day + 1).saturating_mul(DAY_SECS), now, retention_secs) {
                answer_days += self.execute(
                    "DELETE FROM answer_counts WHERE day = $1",
                    params![i64_of(day)],
                    "purging feedback",
                )? as usize;
            }
        }
        let cutoff = i64_of(now.saturating_sub(retention_secs));
        let votes = self.execute("DELETE FROM votes WHERE at < $1", params![cutoff], "purging feedback")? as usize;
        let unanswered = self.execute(
            "DELETE FROM unanswered WHERE last_at < $1",
            params![cutoff],
            "purging feedback",
        )? as usize;
        Ok(PurgedFeedback {
            answer_days,
            votes,
            unanswered,
        })
    }
}
