//! Slack: the only module that knows about Slack's wire formats and slack-morphism's types.
//!
//! - [`events`]: slack-morphism's typed events -> [`Inbound`], a slash command's answer -> its
//!   acknowledgement payload (pure).
//! - [`blocks`]: [`Message`](crate::vocab::Message) -> Block Kit, and our buttons' encoding (pure).
//! - [`web`]: the Web API client and the outbox (retries, `Retry-After`).
//! - [`socket`]: slack-morphism's Socket Mode listener: callbacks that queue and return, the
//!   supervisor that stops it on `link_disabled`, and its HTTP transport ([`socket::Gate`]).
//! - [`watch`]: what slack-morphism reports only in its log, read by a `tracing` layer.
//! - [`nodelay`]: `TCP_NODELAY` on the sockets slack-morphism opens without it.
//! - `hooks`: what the socket side reports to the engine (connections up and down, slash commands)
//!   and the knowledge-base reload.
//! - this file: the [`Engine`] tying them to the [`Bot`]: it hands each event to its thread's queue
//!   and delivers what the bot answers.
//!
//! **Architecture invariant:** an envelope is acknowledged as soon as it is converted and queued
//! (slack-morphism sends the ack when our callback returns; slash commands: as soon as the pure answer
//! is computed, since the answer rides on the ack). An envelope that does not parse is acknowledged
//! and dropped. Work happens in per-thread workers: the events of one thread in order, different
//! threads concurrently. A worker exits after [`Tuning::worker_idle`] without events.
//!
//! # Reconnects and `link_disabled`
//!
//! slack-morphism replaces a connection Slack refreshes (`refresh_requested`, `warning`), closes or
//! that stops answering pings, at once; a failed `apps.connections.open` is retried after
//! [`Tuning::reconnect_timeout`]. It reconnects on `link_disabled` too, where Slack says not to, and
//! reports the reason of a `disconnect` only in a TRACE log event
//! (`slack_morphism::socket_mode::clients_manager_listener`, "Received socket mode disconnected
//! event: ..."), emitted on the connection's reader just before it starts the new connection. So:
//!
//! 1. a `tracing` layer ([`watch::SocketModeWatch::layer`], filtered per layer to that target, so it
//!    changes no other logging and prints nothing) reads the reason, and on `link_disabled` flips the
//!    watch's flag right there, before slack-morphism reconnects;
//! 2. the listener's HTTP transport ([`socket::Gate`]) checks that flag: it opens no connection and
//!    writes nothing from then on, so the reconnect's `apps.connections.open` never reaches Slack;
//! 3. [`socket::SocketMode::run`] gets the observation, logs "Slack disabled Socket Mode for this app
//!    (link_disabled): not reconnecting; ...", stops the [`Engine`] with
//!    [`StopReason::LinkDisabled`] and shuts the listener down (`serve` exits with status 3).
//!
//! The same layer reads slack-morphism's ERROR event for a failed `apps.connections.open`, so a
//! rejected app-level token stops the bot ([`StopReason::AppTokenRejected`]) instead of being retried
//! forever. `telemetry::init` installs the layer of the process-wide watch, which
//! [`Tuning::default`] uses; an in-process bot can bring its own watch in [`Tuning::watch`] and install
//! its layer as the thread's default subscriber. Without the layer, `link_disabled` is reconnected
//! like any other reason. slack-morphism does not de-duplicate; `bot` does (event id, channel + ts;
//! clicks and slash commands by the keys `events` builds from their payloads).
//!
//! # Connections up and down (readiness, reconnects)
//!
//! slack-morphism has a `hello` callback but none for a connection that ends. The `hello` callback
//! calls [`Engine::socket_up`] with the connection the frame came on (which the watch layer saw in
//! slack-morphism's TRACE event for the frame, on the same thread, just before the callback); every
//! way a connection ends (a `disconnect` frame, a close, a socket error, missed pongs) goes through
//! slack-morphism's `restart_client`, whose DEBUG event the watch turns into
//! [`watch::Seen::Lost`], and [`socket::SocketMode::run`] calls [`Engine::socket_down`] for it. The
//! open connections are the `netrunbook_socket_connections` gauge, which `/readyz` reads: with every
//! connection dropped it answers 503 until a `hello` comes again. A second `hello` in the same
//! connection slot counts as a reconnect. Without the watch layer connections are still counted up,
//! but a lost one is not seen.

pub mod blocks;
pub mod buttons;
mod delivery;
pub mod events;
mod hooks;
pub mod mrkdwn;
pub mod nodelay;
pub mod socket;
pub mod watch;
pub mod web;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, Instrument, Span};

use crate::bot::Bot;
use crate::inbox::Ticket;
use crate::store::replica::Replicas;
use crate::store::{Store, StoreError};
use crate::vocab::{Inbound, InboundKind, ThreadKey};

pub use watch::SocketModeWatch;

/// Slack events the bot handles (`events.rs`), with the bot scope each needs. `manifest.yaml` must
/// subscribe to exactly these (`tests/manifest.rs`).
pub(crate) const EVENT_SCOPES: &[(&str, &str)] = &[
    ("app_mention", "app_mentions:read"),
    ("message.channels", "channels:history"),
    ("message.groups", "groups:history"),
];

/// Web API methods the bot calls with its bot token (`web.rs`), with the bot scopes each needs
/// (`auth.test` needs none; `apps.connections.open` uses the app-level token's `connections:write`).
/// The end-to-end tests fail when the bot calls a method missing here.
pub const WEB_API_SCOPES: &[(&str, &[&str])] = &[
    ("auth.test", &[]),
    ("chat.postMessage", &["chat:write"]),
    ("chat.postEphemeral", &["chat:write"]),
    ("chat.update", &["chat:write"]),
    ("conversations.replies", &["channels:history", "groups:history"]),
];

/// The message shortcut "Find the runbook section": its `callback_id` (the `commands` scope covers it).
pub const MESSAGE_SHORTCUT: &str = "find_runbook_section";

/// The slash command, and the scope it needs.
pub const SLASH_COMMAND: (&str, &str) = ("/netrunbook", "commands");

/// The bot events `manifest.yaml` must subscribe to.
pub fn subscribed_events() -> Vec<&'static str> {
    EVENT_SCOPES.iter().map(|(e, _)| *e).collect()
}

/// Every bot scope the code needs: its events, its Web API calls and the slash command.
pub fn required_scopes() -> std::collections::BTreeSet<&'static str> {
    EVENT_SCOPES
        .iter()
        .map(|(_, s)| *s)
        .chain(WEB_API_SCOPES.iter().flat_map(|(_, s)| s.iter().copied()))
        .chain([SLASH_COMMAND.1])
        .collect()
}
pub use web::{RetryPolicy, ThreadSeen, Web};

/// Errors of the Slack boundary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SlackError {
    #[error("Slack Web API call {method} failed")]
    Api {
        method: &'static str,
        #[source]
        source: Box<slack_morphism::errors::SlackClientError>,
    },
    #[error("Slack Web API call {0} timed out")]
    Timeout(&'static str),
    #[error("cannot load the system's TLS root certificates")]
    Tls(#[source] std::io::Error),
    #[error("an interaction carried an unusable response_url")]
    BadResponseUrl,
}

impl SlackError {
    /// True when the call may succeed later (see [`web::is_transient`]): the reply is kept and
    /// delivered again.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            SlackError::Api { source, .. } => web::is_transient(source),
            SlackError::Timeout(_) => true,
            SlackError::Tls(_) | SlackError::BadResponseUrl => false,
        }
    }
}

/// Timings of the Slack side; the defaults suit Slack, tests shorten them. slack-morphism counts
/// Socket Mode timings in whole seconds.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Socket Mode connections kept open (Slack delivers each event on one of them).
    pub connections: usize,
    /// Connection i (from 0) is first opened i × this after start, so they do not all open at once.
    pub initial_backoff: Duration,
    /// Wait after a failed `apps.connections.open` or handshake before trying again (at least 1 s;
    /// Slack allows about one `apps.connections.open` a minute). A connection Slack refreshes or
    /// closes is replaced at once.
    pub reconnect_timeout: Duration,
    /// Ping each connection this often (at least 1 s).
    pub ping_every: Duration,
    /// A connection without a pong for this long (rounded down to whole pings) is replaced.
    pub dead_after: Duration,
    /// A per-thread worker with nothing to do for this long exits. It only keeps one thread's
    /// events in order (the next event starts a new one), so short: an idle worker is memory held
    /// for every thread that was active this long ago.
    pub worker_idle: Duration,
    pub retry: RetryPolicy,
    /// How long a turn waits for its thread while another replica works it, or for the database to
    /// come back, before it is put off (a journaled event comes back with a later beat).
    pub claim_patience: Duration,
    /// How often replies left in the outbox (Slack unreachable for longer than `retry` lasts) are
    /// tried again. Also done once at start, for what a crash left.
    pub redeliver_every: Duration,
    /// Replies older than this are given up on (logged and counted) instead of delivered late.
    pub reply_max_age: Duration,
    /// What slack-morphism logged about this bot's connections (see [`watch`]): the process-wide
    /// watch by default; a test bot brings its own.
    pub watch: SocketModeWatch,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            connections: 2,
            initial_backoff: Duration::from_secs(1),
            reconnect_timeout: Duration::from_secs(30),
            ping_every: Duration::from_secs(15),
            dead_after: Duration::from_secs(60),
            worker_idle: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            claim_patience: Duration::from_secs(30),
            redeliver_every: Duration::from_secs(10),
            reply_max_age: Duration::from_secs(60 * 60),
            watch: SocketModeWatch::global().clone(),
        }
    }
}

/// Why the Slack side stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// We were asked to (SIGTERM, Ctrl-C, a test).
    Shutdown,
    /// Slack sent `disconnect` with reason `link_disabled`: Socket Mode is off for the app.
    LinkDisabled,
    /// Slack rejected the app-level token.
    AppTokenRejected,
}

/// What a thread's worker does.
enum Work {
    /// Handle an event and deliver its replies (boxed: a queued job stays small).
    Event(Box<Inbound>),
    /// Deliver what the thread's outbox records still hold.
    Redeliver,
}

/// How a turn ended.
enum Turn {
    /// Replies were saved and handed to delivery.
    Replied,
    /// Handled, nothing to say.
    Quiet,
    /// Not handled: the store could not save it. The event is handled again later.
    PutOff,
}

/// The longest wait between two redeliveries to a thread that keep failing.
const MAX_REDELIVER_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// A thread whose replies wait in the outbox.
#[derive(Debug, Clone, Copy)]
struct Stuck {
    /// Not tried again before: a post that timed out may still take effect on Slack's side, so the
    /// thread is read for it only after another call timeout; repeated failures back off.
    not_before: Instant,
    /// Redeliveries that failed in a row.
    failures: u32,
}

/// One queued piece of work with the tracing span it is done in. Queued boxed: a thread's channel
/// allocates a block of 32 slots at its first send, which is several KiB for `Job`s inline and 256
/// bytes for boxes.
struct Job {
    work: Work,
    /// The event's claim in the inbox journal, done once it was handled.
    ticket: Ticket,
    span: Span,
    /// When it arrived, for the event → reply histogram.
    received: Instant,
}

/// A thread's queue: the sender and the generation of the worker reading it.
struct Queue {
    tx: mpsc::UnboundedSender<Box<Job>>,
    generation: u64,
}

/// The running Slack side: bot, Web API, per-thread queues and the stop signal.
pub(crate) struct Engine<S> {
    pub(crate) bot: Bot<S>,
    pub(crate) web: Web,
    pub(crate) tuning: Tuning,
    /// Where mentions and messages are journaled before they are acknowledged, and how a thread's
    /// turn is claimed among replicas (see [`crate::store::replica`]).
    replicas: Arc<dyn Replicas>,
    queues: Mutex<HashMap<ThreadKey, Queue>>,
    generations: AtomicU64,
    /// Set once shutdown began: new work no longer gets a long-lived queue.
    closing: AtomicBool,
    tasks: TaskTracker,
    /// Cancelled to stop the listener (shutdown, `link_disabled`, a rejected app token).
    stop: CancellationToken,
    reason: Mutex<Option<StopReason>>,
    /// Which Socket Mode connections are up, for readiness and the reconnect count.
    sockets: Mutex<hooks::Sockets>,
    /// Socket Mode connections opened (`hello` received) since start.
    connects: AtomicU64,
    /// Threads whose outbox holds replies not delivered yet (their next replies wait behind those).
    stuck: Mutex<HashMap<ThreadKey, Stuck>>,
    /// Threads with a [`Work::Redeliver`] queued and not started.
    redeliver_queued: Mutex<HashSet<ThreadKey>>,
}

impl<S: Store + 'static> Engine<S> {
    /// The engine; mentions and messages are journaled by `replicas` before they are acknowledged,
    /// and each turn of a thread is claimed there.
    pub(crate) fn new(bot: Bot<S>, web: Web, tuning: Tuning, replicas: Arc<dyn Replicas>) -> Arc<Engine<S>> {
        Arc::new(Engine {
            bot,
            web,
            tuning,
            replicas,
            queues: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            reason: Mutex::new(None),
            sockets: Mutex::new(Default::default()),
            connects: AtomicU64::new(0),
            stuck: Mutex::new(HashMap::new()),
            redeliver_queued: Mutex::new(HashSet::new()),
        })
    }

    /// Stop taking events, for `reason` (the first reason given wins).
    pub(crate) fn request_stop(&self, reason: StopReason) {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(reason);
        self.stop.cancel();
    }

    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once a stop was requested.
    pub(crate) async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Queue an event for its thread's worker (starting one when the thread has none). An error
    /// when it had to be journaled and could not be: it must not be acknowledged then.
    pub(crate) fn dispatch(self: &Arc<Self>, inbound: Inbound, span: Span) -> Result<(), StoreError> {
        // slash commands are answered in the ack and counted there; a shared answer's follow-up is
        // ours, not something Slack sent
        if !matches!(inbound.kind, InboundKind::Shared { .. }) {
            self.bot.metrics().event_received(inbound.kind.label());
        }
        // bots' messages (our own posts echoed back among them) are ignored anyway: not worth a write
        let journaled = matches!(inbound.kind, InboundKind::Mention | InboundKind::Message) && !inbound.is_bot;
        let ticket = if journaled {
            self.replicas.journal(&inbound)?
        } else {
            Ticket::none()
        };
        let key = inbound.thread();
        self.enqueue(key, Work::Event(Box::new(inbound)), ticket, span);
        Ok(())
    }

    /// Hand the events an earlier process (or a replica that stopped) journaled and did not finish
    /// to their threads' workers; those it had handled are dropped there as duplicates.
    pub(crate) fn replay(self: &Arc<Self>, left: Vec<(Inbound, Ticket)>) {
        if !left.is_empty() {
            info!(
                events = left.len(),
                "handing the events journaled before a restart back to the bot"
            );
        }
        for (inbound, ticket) in left {
            let span = tracing::info_span!("replayed_event", channel = %inbound.channel, thread = tracing::field::Empty, intent = tracing::field::Empty);
            let key = inbound.thread();
            self.enqueue(key, Work::Event(Box::new(inbound)), ticket, span);
        }
    }

    /// Queue work for a thread's worker (starting one when the thread has none).
    fn enqueue(self: &Arc<Self>, key: ThreadKey, work: Work, ticket: Ticket, span: Span) {
        let mut job = Box::new(Job {
            work,
            ticket,
            span,
            received: Instant::now(),
        });
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = queues.get(&key) {
            match q.tx.send(job) {
                Ok(()) => return,
                Err(e) => job = e.0,
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(job);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        if !self.closing.load(Ordering::SeqCst) {
            queues.insert(key.clone(), Queue { tx, generation });
        }
        // when closing, `tx` drops here: the worker handles the one job and ends
        drop(queues);
        let engine = self.clone();
        self.tasks
            .spawn(async move { engine.worker(key, generation, rx).await });
    }

    async fn worker(self: Arc<Self>, key: ThreadKey, generation: u64, mut rx: mpsc::UnboundedReceiver<Box<Job>>) {
        loop {
            match tokio::time::timeout(self.tuning.worker_idle, rx.recv()).await {
                Ok(Some(job)) => {
                    let Job {
                        work,
                        ticket,
                        span,
                        received,
                    } = *job;
                    // boxed: the handling future is several KB, which an idle worker need not keep
                    match work {
                        Work::Event(inbound) => {
                            if !self.claim_turn(&key, true).await {
                                // put off: a journaled event stays journaled and comes back
                                // with a later beat; one that was not is let go
                                if !ticket.is_journaled() {
                                    tracing::warn!(parent: &span, thread = %key, "an event that was not journaled could not be handled (its thread could not be claimed) and is dropped");
                                }
                                continue;
                            }
                            // the thread's events posted before this one, received by another
                            // replica and not handled yet, go first: turns keep the posting order
                            match self.replicas.earlier(&inbound) {
                                Ok(earlier) => {
                                    for (before, t) in earlier {
                                        match Box::pin(self.process(before)).instrument(span.clone()).await {
                                            Turn::PutOff => drop(t),
                                            _ => t.done(),
                                        }
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(parent: &span, thread = %key, error = %crate::error::error_chain(&e), "cannot read the thread's earlier events; handling this one now")
                                }
                            }
                            let turn = Box::pin(self.process(*inbound)).instrument(span).await;
                            self.replicas.release(&key);
                            match turn {
                                Turn::Replied => {
                                    self.bot.metrics().replied_after(received.elapsed());
                                    ticket.done();
                                }
                                Turn::Quiet => ticket.done(),
                                Turn::PutOff => drop(ticket),
                            }
                        }
                        Work::Redeliver => {
                            self.lock(&self.redeliver_queued).remove(&key);
                            // a live replica working the thread delivers its outbox itself
                            if self.claim_turn(&key, false).await {
                                Box::pin(self.redeliver(&key)).instrument(span).await;
                                self.replicas.release(&key);
                            }
                        }
                    }
                }
                Ok(None) => return,
                Err(_idle) => {
                    let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
                    // sends happen under this lock: an empty queue now stays empty
                    if rx.is_empty() {
                        if queues.get(&key).is_some_and(|q| q.generation == generation) {
                            queues.remove(&key);
                        }
                        return;
                    }
                }
            }
        }
    }

    /// Claim `key`'s turn among replicas (granted at once with one replica). With `wait`, a thread
    /// another replica is working is waited for, and a database away is tried again, with back-off,
    /// for up to [`Tuning::claim_patience`]; without, one try. False when the turn is not ours.
    async fn claim_turn(&self, key: &ThreadKey, wait: bool) -> bool {
        let give_up = Instant::now() + self.tuning.claim_patience;
        let mut pause = Duration::from_millis(10);
        loop {
            match self.replicas.claim(key) {
                Ok(true) => return true,
                Ok(false) if !wait => return false,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(thread = %key, error = %crate::error::error_chain(&e), "cannot claim the thread's turn");
                    if !wait {
                        return false;
                    }
                }
            }
            if Instant::now() + pause > give_up || self.stop.is_cancelled() {
                tracing::warn!(thread = %key, "the thread's turn was not ours in time: put off");
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Handle one event and deliver its replies, all from one knowledge base. The replies were saved
    /// with the conversation (see [`crate::outbox`]); when the thread has older replies still
    /// waiting, these go out after them.
    async fn process(self: &Arc<Self>, inbound: Inbound) -> Turn {
        let kb = self.bot.kb();
        let now = unix_now();
        let handled = self.bot.handle_in(&kb, &inbound, &self.web, now).await;
        if handled.put_off {
            return Turn::PutOff;
        }
        if handled.parcel.items.is_empty() {
            return Turn::Quiet;
        }
        let key = handled.parcel.thread.clone();
        if handled.outbox.is_some() && self.lock(&self.stuck).contains_key(&key) {
            // the thread's earlier replies are still waiting: keep the order
            self.redeliver(&key).await;
            return Turn::Replied;
        }
        if let Err(wait) = self.deliver_parcel(handled.outbox, handled.parcel, false).await {
            self.lock(&self.stuck).insert(
                key,
                Stuck {
                    not_before: Instant::now() + wait,
                    failures: 0,
                },
            );
        }
        Turn::Replied
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stop the queues and wait up to `grace` for the work in hand to finish. True when it did.
    pub(crate) async fn drain(&self, grace: Duration) -> bool {
        self.closing.store(true, Ordering::SeqCst);
        // dropping the senders ends each worker once its queue is empty
        self.queues.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.tasks.close();
        let done = tokio::time::timeout(grace, self.tasks.wait()).await.is_ok();
        if !done {
            error!(
                grace_ms = grace.as_millis() as u64,
                "work still in flight at the end of the shutdown grace period"
            );
        } else {
            info!("in-flight work finished");
        }
        done
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
