//! [`PgReplicas`]: heartbeats, thread claims and the inbox journal in PostgreSQL (see
//! [`crate::store::replica`]). Leases are judged by the database's clock (`now()`), so replicas' clocks
//! need not agree.
//!
//! - `replicas`: one row per live replica, its heartbeat `seen_at` renewed by [`Replicas::beat`],
//!   and by a journal entry or a claim when the last beat is older than a beat period: after the
//!   database was away (no replica could beat), the first replica back must not take a replica for
//!   dead that is already journaling and claiming again, and take over or claim what it works.
//! - `thread_claims`: one row per thread being worked; taken when absent, held by this replica, or
//!   held by a replica whose heartbeat is older than the lease. A claim whose release failed (the
//!   database away at that moment) would keep the thread from every other replica for as long as
//!   this one lives: each beat removes this replica's claims on threads it is not working.
//! - `inbox`: journaled events with the replica working them. Done entries are deleted; a beat takes
//!   over entries of dead replicas and re-reads this replica's own entries that are not in hand
//!   (their ticket was dropped: the turn was put off while the database was away).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tracing::{info, warn};

use super::connect::Bridge;
use super::{db, parts, pool_error};
use crate::error::error_chain;
use crate::inbox::{Entry, SharedEntry, Ticket};
use crate::store::replica::Replicas;
use crate::store::StoreError;
use crate::vocab::{Inbound, ThreadKey};

/// A Slack `ts` (seconds, a dot, micro-seconds): what `earlier` compares as a number.
fn is_ts(ts: &str) -> bool {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && !frac.is_empty()
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// Journaled events taken over in one beat, at most.
const TAKE_OVER_BATCH: i64 = 500;

/// Replicas coordinated through one PostgreSQL database.
pub struct PgReplicas {
    shared: Arc<Shared>,
}

struct Shared {
    bridge: Arc<Bridge>,
    id: String,
    lease: Duration,
    /// Journal entries this replica holds a ticket for.
    in_hand: Mutex<HashSet<i64>>,
    /// Held for reading while an entry is journaled and for writing by a beat, which must not mistake
    /// an entry being journaled for a put-off one.
    gate: RwLock<()>,
    /// Threads this replica is claiming or working (how many turns), counted before the claim is
    /// asked for: a beat keeps the claims of these and removes this replica's others, left behind by
    /// a failed release (or a claim whose answer was lost).
    working: Mutex<HashMap<ThreadKey, usize>>,
}

impl std::fmt::Debug for PgReplicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReplicas").field("id", &self.shared.id).finish()
    }
}

/// A journaled event's row.
struct Row {
    id: i64,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").field("id", &self.id).finish()
    }
}

impl SharedEntry for Row {
    fn done(self: Box<Self>) {
        let id = self.id;
        if let Err(e) = self.shared.remove_entry(id) {
            // it is handed back later and dropped then as a duplicate (its marks were committed)
            warn!(error = %error_chain(&e), "cannot remove a handled event from the journal");
        }
        self.shared.forget(id);
    }

    fn abandon(self: Box<Self>) {
        self.shared.forget(self.id);
    }
}

impl Shared {
    /// Delete journal entry `id` (done, or unreadable).
    fn remove_entry(&self, id: i64) -> Result<u64, StoreError> {
        self.bridge.run_quick(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .execute("DELETE FROM inbox WHERE id = $1", &[&id])
                .await
                .map_err(db("removing an entry from the journal"))
        })
    }

    fn forget(&self, id: i64) {
        self.in_hand().remove(&id);
    }

    fn in_hand(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.in_hand.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn working(&self) -> std::sync::MutexGuard<'_, HashMap<ThreadKey, usize>> {
        self.working.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One turn fewer on `thread` (its claim refused, failed, or given back).
    fn done_with(&self, thread: &ThreadKey) {
        let mut working = self.working();
        if let Some(n) = working.get_mut(thread) {
            *n -= 1;
            if *n == 0 {
                working.remove(thread);
            }
        }
    }

    fn ticket(self: &Arc<Self>, id: i64) -> Ticket {
        Ticket::shared(Box::new(Row {
            id,
            shared: self.clone(),
        }))
    }

    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// How often this replica beats (see [`Replicas::beat_every`]).
    fn beat_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(100))
    }
}

impl PgReplicas {
    pub(super) fn new(bridge: Arc<Bridge>, id: String, lease: Duration) -> PgReplicas {
        PgReplicas {
            shared: Arc::new(Shared {
                bridge,
                id,
                lease,
                in_hand: Mutex::new(HashSet::new()),
                gate: RwLock::new(()),
                working: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Replicas for PgReplicas {
    fn id(&self) -> &str {
        &self.shared.id
    }

    fn journal(&self, inbound: &Inbound) -> Result<Ticket, StoreError> {
        let entry = Entry::encode(inbound).map_err(StoreError::Encode)?;
        let [team, channel, thread_ts] = parts(&inbound.thread());
        let ts = inbound.ts.clone();
        let owner = self.shared.id.clone();
        let beat = self.shared.beat_every().as_secs_f64();
        let _gate = self.shared.gate.read().unwrap_or_else(|e| e.into_inner());
        let id = self.shared.bridge.run_quick(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            // journaling is a sign of life: renewed here when the last beat is a beat period old
            let row = client
                .query_one(
                    "WITH alive AS (
                         UPDATE replicas SET seen_at = now()
                         WHERE id = $1 AND seen_at < now() - make_interval(secs => $3))
                     INSERT INTO inbox (owner, entry, team, channel, thread_ts, ts)
                     VALUES ($1, $2, $4, $5, $6, $7) RETURNING id",
                    &[&owner, &entry, &beat, &team, &channel, &thread_ts, &ts],
                )
                .await
                .map_err(db("journaling an event"))?;
            Ok(row.get::<_, i64>(0))
        })?;
        self.shared.in_hand().insert(id);
        Ok(self.shared.ticket(id))
    }

    fn claim(&self, thread: &ThreadKey) -> Result<bool, StoreError> {
        let [t, c, ts] = parts(thread);
        let owner = self.shared.id.clone();
        let lease = self.shared.lease_secs();
        let beat = self.shared.beat_every().as_secs_f64();
        // counted before the claim exists, so a beat in between does not take it for a left-over
        *self.shared.working().entry(thread.clone()).or_insert(0) += 1;
        let claimed = self.shared.bridge.run_quick(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            // claiming is a sign of life too (see `journal`): a replica that takes a thread is not
            // taken for dead by the next replica to claim it
            let stmt = client
                .prepare_cached(
                    "WITH alive AS (
                         UPDATE replicas SET seen_at = now()
                         WHERE id = $4 AND seen_at < now() - make_interval(secs => $6))
                     INSERT INTO thread_claims AS c (team, channel, thread_ts, owner) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (team, channel, thread_ts) DO UPDATE SET owner = EXCLUDED.owner, since = now()
                     WHERE c.owner = EXCLUDED.owner OR NOT EXISTS (
                         SELECT 1 FROM replicas r
                         WHERE r.id = c.owner AND r.seen_at > now() - make_interval(secs => $5))
                     RETURNING owner",
                )
                .await
                .map_err(db("claiming a thread"))?;
            let rows = client
                .query(&stmt, &[&t, &c, &ts, &owner, &lease, &beat])
                .await
                .map_err(db("claiming a thread"))?;
            Ok(!rows.is_empty())
        });
        if !matches!(claimed, Ok(true)) {
            self.shared.done_with(thread);
        }
        claimed
    }

    fn earlier(&self, inbound: &Inbound) -> Result<Vec<(Inbound, Ticket)>, StoreError> {
        let [team, channel, thread_ts] = parts(&inbound.thread());
        let ts = inbound.ts.clone();
        if !is_ts(&ts) {
            return Ok(Vec::new());
        }
        let rows = self.shared.bridge.run_quick(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let stmt = client
                .prepare_cached(
                    "SELECT id, entry FROM inbox
                     WHERE team = $1 AND channel = $2 AND thread_ts = $3
                       AND ts ~ '^[0-9]+([.][0-9]+)?$' AND ts::numeric < ($4::text)::numeric
                     ORDER BY ts::numeric, id",
                )
                .await
                .map_err(db("reading a thread's earlier events"))?;
            client
                .query(&stmt, &[&team, &channel, &thread_ts, &ts])
                .await
                .map_err(db("reading a thread's earlier events"))
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get(0);
            if let Ok(earlier) = Entry::decode(row.get::<_, &[u8]>(1)) {
                out.push((earlier, self.shared.ticket(id)));
            }
        }
        Ok(out)
    }

    fn release(&self, thread: &ThreadKey) {
        let [t, c, ts] = parts(thread);
        let owner = self.shared.id.clone();
        self.shared.done_with(thread);
        let result = self.shared.bridge.run_quick(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let stmt = client
                .prepare_cached(
                    "DELETE FROM thread_claims WHERE team = $1 AND channel = $2 AND thread_ts = $3 AND owner = $4",
                )
                .await
                .map_err(db("releasing a thread"))?;
            client
                .execute(&stmt, &[&t, &c, &ts, &owner])
                .await
                .map_err(db("releasing a thread"))
        });
        if let Err(e) = result {
            warn!(thread = %thread, error = %error_chain(&e), "cannot release a thread's claim; this replica's next heartbeat gives it back");
        }
    }

    fn beat(&self) -> Result<Vec<(Inbound, Ticket)>, StoreError> {
        let owner = self.shared.id.clone();
        let lease = self.shared.lease_secs();
        // no entry is journaled while the beat decides which of ours are in hand
        let _gate = self.shared.gate.write().unwrap_or_else(|e| e.into_inner());
        let held: Vec<i64> = self.shared.in_hand().iter().copied().collect();
        let shared = self.shared.clone();
        let (taken, rows, left_behind) = self.shared.bridge.run_quick(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(db("beating"))?;
            tx.execute(
                "INSERT INTO replicas (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET seen_at = now()",
                &[&owner],
            )
            .await
            .map_err(db("beating"))?;
            // this replica's claims on threads it is not working: left behind. Read after the
            // transaction began: a claim counted later is made later, so its `since` is after this
            // transaction's `now()` and it is kept
            let (mut teams, mut channels, mut threads) = (Vec::new(), Vec::new(), Vec::new());
            for key in shared.working().keys() {
                teams.push(key.team.clone());
                channels.push(key.channel.clone());
                threads.push(key.thread_ts.clone());
            }
            let left_behind = tx
                .execute(
                    "DELETE FROM thread_claims c WHERE c.owner = $1 AND c.since < now() AND NOT EXISTS (
                         SELECT 1 FROM unnest($2::text[], $3::text[], $4::text[]) AS w(team, channel, thread_ts)
                         WHERE w.team = c.team AND w.channel = c.channel AND w.thread_ts = c.thread_ts)",
                    &[&owner, &teams, &channels, &threads],
                )
                .await
                .map_err(db("giving back claims left behind"))?;
            let taken = tx
                .execute(
                    "UPDATE inbox SET owner = $1 WHERE id IN (
                         SELECT i.id FROM inbox i
                         WHERE i.owner <> $1 AND NOT EXISTS (
                             SELECT 1 FROM replicas r
                             WHERE r.id = i.owner AND r.seen_at > now() - make_interval(secs => $2))
                         ORDER BY i.id LIMIT $3 FOR UPDATE SKIP LOCKED)",
                    &[&owner, &lease, &TAKE_OVER_BATCH],
                )
                .await
                .map_err(db("taking over journaled events"))?;
            let rows = tx
                .query(
                    "SELECT id, entry FROM inbox WHERE owner = $1 AND NOT (id = ANY($2)) ORDER BY id LIMIT $3",
                    &[&owner, &held, &TAKE_OVER_BATCH],
                )
                .await
                .map_err(db("reading journaled events"))?;
            tx.commit().await.map_err(db("beating"))?;
            Ok((taken, rows, left_behind))
        })?;
        if left_behind > 0 {
            info!(
                claims = left_behind,
                "gave back thread claims left behind by failed releases"
            );
        }
        if taken > 0 {
            info!(
                events = taken,
                replica = %self.shared.id,
                "took over events journaled by a replica that stopped beating"
            );
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get(0);
            match Entry::decode(row.get::<_, &[u8]>(1)) {
                Ok(inbound) => {
                    self.shared.in_hand().insert(id);
                    out.push((inbound, self.shared.ticket(id)));
                }
                Err(why) => {
                    warn!(id, why = %why, "dropping an unreadable journal entry");
                    if let Err(e) = self.shared.remove_entry(id) {
                        warn!(id, error = %error_chain(&e), "cannot drop an unreadable journal entry");
                    }
                }
            }
        }
        Ok(out)
    }

    fn beat_every(&self) -> Option<Duration> {
        Some(self.shared.beat_every())
    }

    fn leave(&self) {
        let owner = self.shared.id.clone();
        let result = self.shared.bridge.run_quick(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .execute("DELETE FROM thread_claims WHERE owner = $1", &[&owner])
                .await
                .map_err(db("leaving"))?;
            client
                .execute("DELETE FROM replicas WHERE id = $1", &[&owner])
                .await
                .map_err(db("leaving"))
        });
        match result {
            Ok(_) => info!(replica = %self.shared.id, "left the replicas"),
            Err(e) => warn!(error = %error_chain(&e), "cannot leave cleanly; the lease runs out instead"),
        }
    }
}
