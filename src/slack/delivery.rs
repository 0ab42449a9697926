//! Delivery of the replies the bot committed: an outbox record's items posted, updated or answered in
//! order, each advanced in the record as it goes out; what cannot go out now stays in the outbox and is
//! redelivered on its thread's worker (at start, and every `Tuning::redeliver_every`), after reading the
//! thread for the markers of posts that already went out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, info, warn, Span};

use super::blocks;
use super::web::ThreadSeen;
use super::{unix_now, Engine, SlackError, Stuck, Work, MAX_REDELIVER_BACKOFF};
use crate::error::error_chain;
use crate::inbox::Ticket;
use crate::outbox::{self, Parcel};
use crate::store::Store;
use crate::vocab::{Message, Outbound, ThreadKey};

impl<S: Store + 'static> Engine<S> {
    /// Deliver what the outbox holds for thread `key`, oldest first, checking the thread for posts
    /// that already went out; the thread stays stuck when a delivery fails again.
    pub(super) async fn redeliver(self: &Arc<Self>, key: &ThreadKey) {
        if self
            .lock(&self.stuck)
            .get(key)
            .is_some_and(|s| Instant::now() < s.not_before)
        {
            return;
        }
        let max_age = self.tuning.reply_max_age.as_secs();
        let records = match self.bot.outbox().waiting(key, unix_now(), max_age) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %error_chain(&e), "cannot read the outbox");
                return;
            }
        };
        for (id, parcel) in records {
            if let Err(wait) = self.deliver_parcel(Some(id), parcel, true).await {
                self.stuck_again(key, wait);
                return;
            }
            self.bot.metrics().reply_redelivered();
            info!(thread = %key, outbox = id, "delivered replies that were waiting in the outbox");
        }
        self.lock(&self.stuck).remove(key);
    }

    /// A redelivery to `key` failed again: try after `wait`, and at least after a backoff that
    /// doubles with each failure in a row, from [`Tuning::redeliver_every`] up to
    /// [`MAX_REDELIVER_BACKOFF`] (a long outage is not hammered by every stuck thread).
    fn stuck_again(&self, key: &ThreadKey, wait: Duration) {
        let mut stuck = self.lock(&self.stuck);
        let failures = stuck.get(key).map_or(0, |s| s.failures) + 1;
        let backoff = self
            .tuning
            .redeliver_every
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_REDELIVER_BACKOFF);
        stuck.insert(
            key.clone(),
            Stuck {
                not_before: Instant::now() + wait.max(backoff),
                failures,
            },
        );
    }

    /// Deliver the items of `parcel` not delivered yet, recording progress in outbox record `id`
    /// (removed after the last). With `check`, posts already in the thread (found by their marks) are
    /// not posted again. `Err(wait)` when a delivery failed in a way worth trying again after `wait`;
    /// the record then keeps the rest. Items Slack refuses for good are logged, counted and skipped.
    pub(super) async fn deliver_parcel(
        self: &Arc<Self>,
        id: Option<u64>,
        mut parcel: Parcel,
        check: bool,
    ) -> Result<(), Duration> {
        let mut threads: HashMap<(String, String), ThreadSeen> = HashMap::new();
        while !parcel.is_done() {
            let i = parcel.delivered;
            let item = &parcel.items[i];
            let marker = id.map(|id| outbox::marker(id, i));
            // the thread is read for the marks of the posts that already went out (when checking),
            // and for the message that asked a question answered in words; once per parcel: what
            // this parcel posts is neither
            let read = match item {
                Outbound::Post {
                    channel,
                    thread_ts: Some(thread),
                    ..
                } if check => Some((channel, thread, true)),
                Outbound::MarkAnswered { channel, thread_ts, .. } => Some((channel, thread_ts, false)),
                _ => None,
            };
            let seen = match read {
                Some((channel, thread, for_marks)) => {
                    let k = (channel.clone(), thread.clone());
                    if !threads.contains_key(&k) {
                        match self.web.read_thread(channel, thread, self.bot.identity()).await {
                            Ok(t) => {
                                threads.insert(k.clone(), t);
                            }
                            Err(e) if for_marks || e.is_transient() => {
                                warn!(error = %error_chain(&e), "cannot read the thread to see which replies went out or which question was answered; trying later");
                                return Err(Duration::ZERO);
                            }
                            // the replies after the answer matter more than closing the question
                            Err(e) => {
                                warn!(error = %error_chain(&e), "cannot read the thread for the question answered in words; leaving its buttons");
                            }
                        }
                    }
                    threads.get(&k)
                }
                None => None,
            };
            match self.deliver(&parcel.kb_version, item, marker.as_deref(), seen).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    error!(error = %error_chain(&e), "could not deliver a reply to Slack; kept, trying again later");
                    // a call that timed out may still take effect: look for it after another timeout
                    let timed_out = matches!(e, SlackError::Timeout(_));
                    return Err(if timed_out {
                        self.tuning.retry.timeout
                    } else {
                        Duration::ZERO
                    });
                }
                Err(e) => {
                    error!(error = %error_chain(&e), "Slack refused a reply; dropping it");
                    self.bot.metrics().reply_dropped();
                }
            }
            // what cannot be checked in the thread later is made durable as delivered at once
            let uncheckable = !matches!(
                item,
                Outbound::Post { thread_ts: Some(_), .. } | Outbound::Update { .. } | Outbound::MarkAnswered { .. }
            );
            parcel.delivered = i + 1;
            if let Some(id) = id {
                self.bot.outbox().advance(id, &parcel, uncheckable);
            }
        }
        Ok(())
    }

    /// Deliver one reply. `thread` is what a read of its thread showed, when it was read (see
    /// [`Engine::deliver_parcel`]): posts whose marks it holds are not posted again, and a
    /// [`Outbound::MarkAnswered`] updates the question message it found (nothing when it found
    /// none, or the thread was not read).
    pub(super) async fn deliver(
        self: &Arc<Self>,
        version: &str,
        o: &Outbound,
        marker: Option<&str>,
        thread: Option<&ThreadSeen>,
    ) -> Result<(), SlackError> {
        let none = HashSet::new();
        let posted = thread.map_or(&none, |t| &t.marks);
        let render = |m: &Message| blocks::render(m, version);
        match o {
            Outbound::Post {
                channel,
                thread_ts,
                message,
            } => self
                .web
                .post(channel, thread_ts.as_deref(), render(message), marker, posted)
                .await
                .map(drop),
            Outbound::Ephemeral {
                channel,
                user,
                thread_ts,
                message,
            } => {
                self.web
                    .post_ephemeral(channel, user, thread_ts.as_deref(), render(message))
                    .await
            }
            Outbound::Update { channel, ts, message } => self.web.update(channel, ts, render(message)).await,
            Outbound::MarkAnswered {
                channel, node, message, ..
            } => match thread.and_then(|t| t.questions.get(node)) {
                // an update is idempotent: delivered again after a crash, it changes nothing
                Some(ts) => self.web.update(channel, ts, render(message)).await,
                // already marked (a redelivery), deleted, or never posted with buttons
                None => {
                    debug!(node = %node, "no message of ours in the thread asks this question with buttons; nothing to mark answered");
                    Ok(())
                }
            },
            Outbound::Respond { response_url, message } => {
                self.web
                    .respond(response_url, message.as_ref().map(render).unwrap_or_default())
                    .await
            }
            Outbound::PostRoot { channel, message, then } => {
                if let Some(ts) = self.web.post(channel, None, render(message), marker, posted).await? {
                    let mut then = (**then).clone();
                    then.ts = ts.clone();
                    then.thread_ts = Some(ts);
                    // a shared answer's follow-up is not journaled, so queuing it cannot fail
                    if let Err(e) = self.dispatch(then, Span::current()) {
                        error!(error = %error_chain(&e), "cannot queue a shared answer's follow-up");
                    }
                }
                Ok(())
            }
        }
    }

    /// Queue a [`Work::Redeliver`] for every thread whose outbox holds replies (once per thread until
    /// it runs), and update the `outbox_pending` gauge. Run at start and every
    /// [`Tuning::redeliver_every`].
    pub(crate) fn sweep_outbox(self: &Arc<Self>) {
        let Ok(threads) = self.bot.outbox().threads() else {
            return;
        };
        for key in threads {
            if self.lock(&self.redeliver_queued).insert(key.clone()) {
                let span = tracing::info_span!("redeliver", thread = %key);
                self.enqueue(key, Work::Redeliver, Ticket::none(), span);
            }
        }
    }

    /// [`Engine::sweep_outbox`] every [`Tuning::redeliver_every`], from one period from now.
    pub(crate) async fn redeliver_loop(self: Arc<Self>) {
        let every = self.tuning.redeliver_every.max(Duration::from_millis(10));
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stopped() => return,
                _ = ticks.tick() => self.sweep_outbox(),
            }
        }
    }
}
