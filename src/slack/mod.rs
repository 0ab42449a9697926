//! Slack: the only module that knows about Slack's wire formats and slack-morphism's types.
//!
//! - [`events`]: Socket Mode frames -> [`Envelope`](events::Envelope) / [`Inbound`] (pure).
//! - [`blocks`]: [`Message`](crate::bot::Message) -> Block Kit, and our buttons' encoding (pure).
//! - [`web`]: the Web API client and the outbox (retries, `Retry-After`).
//! - [`socket`]: the Socket Mode connections: connect, acknowledge, reconnect, stop on
//!   `link_disabled`.
//! - this file: the [`Engine`] tying them to the [`Bot`]: it hands each event to its thread's queue
//!   and delivers what the bot answers.
//! - [`hooks`]: what the socket side reports to the engine (connections, slash commands) and the
//!   knowledge-base reload.
//!
//! **Architecture invariant:** a Socket Mode frame is acknowledged as soon as it is parsed and queued
//! (slash commands: as soon as the pure answer is computed, since the answer rides on the ack). Work
//! happens in per-thread workers: the events of one thread in order, different threads concurrently.
//! A worker exits after [`Tuning::worker_idle`] without events.

pub mod blocks;
pub mod events;
mod hooks;
pub mod socket;
pub mod web;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, Instrument, Span};

use crate::bot::{error_chain, Bot, Inbound, InboundKind, Outbound};
use crate::kb::KnowledgeBase;
use crate::store::{Store, ThreadKey};

pub use web::{RetryPolicy, Web};

/// Errors of the Slack boundary.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
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
    #[error("cannot open the Socket Mode WebSocket")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
}

impl SlackError {
    /// The Slack error code of a failed API call (`invalid_auth`, ...), if it was one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            SlackError::Api { source, .. } => match source.as_ref() {
                slack_morphism::errors::SlackClientError::ApiError(a) => Some(a.code.as_str()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Timings of the Slack side; the defaults suit Slack, tests shorten them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Socket Mode connections kept open (Slack delivers each event on one of them).
    pub connections: usize,
    /// A per-thread worker with nothing to do for this long exits.
    pub worker_idle: Duration,
    /// Ping the socket this often.
    pub ping_every: Duration,
    /// A socket silent for this long (no frame, no pong) is replaced.
    pub dead_after: Duration,
    /// First wait before reconnecting after a failure; doubles up to `max_reconnect_backoff`.
    pub reconnect_backoff: Duration,
    pub max_reconnect_backoff: Duration,
    pub retry: RetryPolicy,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            connections: 2,
            worker_idle: Duration::from_secs(60),
            ping_every: Duration::from_secs(15),
            dead_after: Duration::from_secs(60),
            reconnect_backoff: Duration::from_millis(500),
            max_reconnect_backoff: Duration::from_secs(30),
            retry: RetryPolicy::default(),
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

/// One queued event with the tracing span it is handled in.
struct Job {
    inbound: Inbound,
    span: Span,
    /// When it arrived, for the event → reply histogram.
    received: Instant,
}

/// A thread's queue: the sender and the generation of the worker reading it.
struct Queue {
    tx: mpsc::UnboundedSender<Job>,
    generation: u64,
}

/// The running Slack side: bot, Web API, per-thread queues and the stop signal.
pub struct Engine<S> {
    pub(crate) bot: Bot<S>,
    pub(crate) web: Web,
    pub(crate) tuning: Tuning,
    queues: Mutex<HashMap<ThreadKey, Queue>>,
    generations: AtomicU64,
    /// Set once shutdown began: new work no longer gets a long-lived queue.
    closing: AtomicBool,
    tasks: TaskTracker,
    /// Cancelled to stop the sockets (shutdown or `link_disabled`).
    stop: CancellationToken,
    reason: Mutex<Option<StopReason>>,
    /// Which Socket Mode connections are up, for readiness and the reconnect count.
    sockets: Mutex<hooks::Sockets>,
}

impl<S: Store + 'static> Engine<S> {
    pub fn new(bot: Bot<S>, web: Web, tuning: Tuning) -> Arc<Engine<S>> {
        Arc::new(Engine {
            bot,
            web,
            tuning,
            queues: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            reason: Mutex::new(None),
            sockets: Mutex::new(Default::default()),
        })
    }

    pub fn bot(&self) -> &Bot<S> {
        &self.bot
    }

    /// Stop taking events, for `reason` (the first reason given wins).
    pub fn request_stop(&self, reason: StopReason) {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(reason);
        self.stop.cancel();
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once a stop was requested.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Queue an event for its thread's worker (starting one when the thread has none).
    pub(crate) fn dispatch(self: &Arc<Self>, inbound: Inbound, span: Span) {
        let kind = match &inbound.kind {
            InboundKind::Mention => Some("mention"),
            InboundKind::Message => Some("message"),
            InboundKind::Action { .. } => Some("click"),
            // slash commands are answered in the ack and counted there; a shared answer's
            // follow-up is ours, not something Slack sent
            InboundKind::Command | InboundKind::Shared { .. } => None,
        };
        if let Some(kind) = kind {
            self.bot.metrics().event_received(kind);
        }
        let key = Bot::<S>::thread_of(&inbound);
        let mut job = Job {
            inbound,
            span,
            received: Instant::now(),
        };
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

    async fn worker(self: Arc<Self>, key: ThreadKey, generation: u64, mut rx: mpsc::UnboundedReceiver<Job>) {
        loop {
            match tokio::time::timeout(self.tuning.worker_idle, rx.recv()).await {
                Ok(Some(job)) => {
                    let span = job.span.clone();
                    if self.process(job.inbound).instrument(span).await {
                        self.bot.metrics().replied_after(job.received.elapsed());
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

    /// Handle one event and deliver its replies, all from one knowledge base; true when there were
    /// replies.
    async fn process(self: &Arc<Self>, inbound: Inbound) -> bool {
        let kb = self.bot.kb();
        let outbound = self.bot.handle_in(&kb, &inbound, &self.web, unix_now()).await;
        let replied = !outbound.is_empty();
        for o in outbound {
            self.deliver(&kb, o).await;
        }
        replied
    }

    async fn deliver(self: &Arc<Self>, kb: &KnowledgeBase, o: Outbound) {
        let result = match &o {
            Outbound::Post {
                channel,
                thread_ts,
                message,
            } => self
                .web
                .post(kb, channel, thread_ts.as_deref(), message)
                .await
                .map(drop),
            Outbound::Ephemeral {
                channel,
                user,
                thread_ts,
                message,
            } => {
                self.web
                    .post_ephemeral(kb, channel, user, thread_ts.as_deref(), message)
                    .await
            }
            Outbound::Update { channel, ts, message } => self.web.update(kb, channel, ts, message).await,
            Outbound::Respond { response_url, message } => self.web.respond(kb, response_url, message.as_ref()).await,
            Outbound::PostRoot { channel, message, then } => match self.web.post(kb, channel, None, message).await {
                Ok(Some(ts)) => {
                    let mut then = (**then).clone();
                    then.ts = ts.clone();
                    then.thread_ts = Some(ts);
                    self.dispatch(then, Span::current());
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            error!(error = %error_chain(&e), "could not deliver a reply to Slack");
        }
    }

    /// Stop the queues and wait up to `grace` for the work in hand to finish. True when it did.
    pub async fn drain(&self, grace: Duration) -> bool {
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

    /// Threads with a live worker (for tests and metrics).
    pub fn active_threads(&self) -> usize {
        self.queues.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
