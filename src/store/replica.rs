//! Replicas: what lets several `serve` processes share one database and the work, behind one trait
//! the engine uses whatever the backend.
//!
//! Slack spreads envelopes over every open Socket Mode connection of every replica, so an
//! `app_mention` and its `message` twin, a retry, or consecutive replies of one thread may reach
//! different replicas at the same moment. The engine therefore:
//!
//! 1. **journals** each mention and message ([`Replicas::journal`]) before acknowledging it; when that
//!    is impossible the envelope is not acknowledged, and Slack sends it again;
//! 2. **claims the thread** ([`Replicas::claim`]) before each turn (an event, or a redelivery of the
//!    thread's outbox) and releases it after: one replica works a thread at a time, so a thread's
//!    turns stay in order and a twin or retry that reached another replica finds the first one's
//!    "handled" marks when it gets the claim;
//! 3. **beats** ([`Replicas::beat`]) every [`Replicas::beat_every`]: a replica whose heartbeat is older
//!    than its lease is dead, its claims lapse, and the events it journaled and did not finish are
//!    handed to the replica that beats next (with this replica's own entries that were put off).
//!    Outbox records need no owner: they are delivered under the thread's claim.
//!
//! [`Solo`] is the one-process case (sled, or memory): the journal is the inbox directory, every
//! claim is granted (the engine's per-thread queue already orders a thread's turns), and nothing is
//! ever taken over. `store::postgres::PgReplicas` is the shared case.

use std::time::Duration;

use super::StoreError;
use crate::inbox::{Inbox, Ticket};
use crate::vocab::{Inbound, ThreadKey};

/// How replicas share the work (see the module documentation).
pub trait Replicas: Send + Sync {
    /// This replica's id, for logs.
    fn id(&self) -> &str;
    /// Journal `inbound` before it is acknowledged. An error means it could not be: do not
    /// acknowledge.
    fn journal(&self, inbound: &Inbound) -> Result<Ticket, StoreError>;
    /// Claim `thread` for one turn: `Ok(false)` while another live replica holds it.
    fn claim(&self, thread: &ThreadKey) -> Result<bool, StoreError>;
    /// Under `inbound`'s thread claim: the thread's journaled events posted before it (by `ts`) that
    /// are not finished, whichever replica received them, oldest first, to handle before it: a thread's
    /// turns keep the order they were posted in even when consecutive replies reach different
    /// replicas. (The replica that received one finds it handled when its turn comes.)
    fn earlier(&self, inbound: &Inbound) -> Result<Vec<(Inbound, Ticket)>, StoreError>;
    /// Give the claim back (errors are logged: the next [`Replicas::beat`] gives back a claim left
    /// behind).
    fn release(&self, thread: &ThreadKey);
    /// Say this replica is alive; returns the journaled events nobody works any more, now this
    /// replica's, oldest first.
    fn beat(&self) -> Result<Vec<(Inbound, Ticket)>, StoreError>;
    /// How often to [`Replicas::beat`]; `None` when there is nothing to share.
    fn beat_every(&self) -> Option<Duration>;
    /// Leaving (after the last turn): claims released and the heartbeat removed, so what is left is
    /// taken over at once.
    fn leave(&self);
}

/// One process: the inbox directory's journal, claims always granted.
#[derive(Debug)]
pub struct Solo {
    inbox: Option<Inbox>,
}

impl Solo {
    /// Journaling to `inbox` (none: events are not journaled).
    pub fn new(inbox: Option<Inbox>) -> Solo {
        Solo { inbox }
    }
}

impl Replicas for Solo {
    fn id(&self) -> &str {
        "solo"
    }

    fn journal(&self, inbound: &Inbound) -> Result<Ticket, StoreError> {
        // a failed file write is logged by the inbox and the event goes on unjournaled: one process
        // with its state on local disk still answers (a full disk should not silence the bot)
        Ok(self.inbox.as_ref().map_or_else(Ticket::none, |i| i.append(inbound)))
    }

    fn claim(&self, _: &ThreadKey) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn earlier(&self, _: &Inbound) -> Result<Vec<(Inbound, Ticket)>, StoreError> {
        // one process receives a thread's events in the order Slack sends them
        Ok(Vec::new())
    }

    fn release(&self, _: &ThreadKey) {}

    fn beat(&self) -> Result<Vec<(Inbound, Ticket)>, StoreError> {
        Ok(Vec::new())
    }

    fn beat_every(&self) -> Option<Duration> {
        None
    }

    fn leave(&self) {}
}

/// A replica id: the pod's name (`HOSTNAME` in Kubernetes) with the process id and a random suffix,
/// so a restarted pod is a new replica.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "netrunbook".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{nanos:08x}", std::process::id())
}
