//! What slack-morphism's Socket Mode listener tells only its log: the reason of a `disconnect` frame,
//! and the Slack error that made `apps.connections.open` fail. slack-morphism reconnects (or retries)
//! right after logging either and has no callback for them, so a [`SocketModeWatch`] reads those two
//! log events through a small `tracing` layer ([`SocketModeWatch::layer`]) and queues them as [`Seen`]
//! values for `socket::listen`, which logs them and stops the listener when Slack means it.
//!
//! The layer is filtered per layer to the two events' targets, so it prints nothing and the rest of the
//! logging is unaffected. `link_disabled` is also recorded synchronously, while slack-morphism is still
//! inside the frame's handler and has not started its reconnect: the listener's HTTP transport
//! (`socket::Gate`) checks [`SocketModeWatch::link_disabled`] and sends nothing from then on, so that
//! reconnect never reaches Slack.
//!
//! `netrunbook serve` uses the process-wide watch ([`SocketModeWatch::global`]), whose layer
//! `telemetry::init` installs. An in-process bot (tests) can use a watch of its own: give it in
//! [`Tuning::watch`](super::Tuning::watch) and install its layer as the thread's default subscriber
//! (`tracing::subscriber::set_default`) on a current-thread runtime.
//!
//! **Invariant:** this module and `socket` are the only code that depends on the wording of
//! slack-morphism's log lines; [`read`] is unit-tested against their wording (and slack-morphism's
//! own error type) and the in-process `link_disabled` test drives the real listener, so a change of
//! wording fails the tests.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Where slack-morphism logs a `disconnect` frame (at TRACE), just before it reconnects.
pub const DISCONNECT_TARGET: &str = "slack_morphism::socket_mode::clients_manager_listener";
/// Where slack-morphism logs a failed `apps.connections.open` (at ERROR), before it retries.
pub const CONNECT_TARGET: &str = "slack_morphism::hyper_tokio::socket_mode::tungstenite_wss_client";

/// The `disconnect` reason that means "Socket Mode is off for this app: do not reconnect".
pub const LINK_DISABLED: &str = "link_disabled";

/// Observations not read yet, at most; the oldest go first.
const BACKLOG: usize = 64;

/// Something slack-morphism logged that the bot acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Slack sent `disconnect` with this reason (`refresh_requested`, `warning`, `link_disabled`, ...);
    /// slack-morphism is reconnecting.
    Disconnect { reason: String },
    /// `apps.connections.open` failed with this Slack error code (`invalid_auth`, ...);
    /// slack-morphism retries after `Tuning::reconnect_timeout`.
    OpenRefused { code: String },
}

/// A handle on what one listener's log events said; cheap to clone.
#[derive(Clone, Default)]
pub struct SocketModeWatch {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Set on the first `link_disabled`, never cleared: the listener's transport refuses to send.
    link_disabled: AtomicBool,
    seen: Mutex<VecDeque<Seen>>,
    /// One permit per batch of new observations, for the single reader.
    added: Notify,
}

impl SocketModeWatch {
    pub fn new() -> SocketModeWatch {
        SocketModeWatch::default()
    }

    /// The watch of this process's listener, the one `telemetry::init` installs the layer of.
    pub fn global() -> &'static SocketModeWatch {
        static GLOBAL: OnceLock<SocketModeWatch> = OnceLock::new();
        GLOBAL.get_or_init(SocketModeWatch::new)
    }

    /// The `tracing` layer that feeds this watch. It sees only the two slack-morphism events it
    /// reads (TRACE for the disconnect, ERROR for connection failures) and prints nothing.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let targets = Targets::new()
            .with_target(DISCONNECT_TARGET, Level::TRACE)
            .with_target(CONNECT_TARGET, Level::ERROR);
        WatchLayer(self.clone()).with_filter(targets)
    }

    /// Whether Slack said `link_disabled` (Socket Mode was turned off for the app).
    pub fn link_disabled(&self) -> bool {
        self.inner.link_disabled.load(Ordering::SeqCst)
    }

    /// The next observation, waiting for one. Meant for one reader.
    pub async fn next(&self) -> Seen {
        loop {
            if let Some(seen) = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner()).pop_front() {
                return seen;
            }
            self.inner.added.notified().await;
        }
    }

    /// Record an observation. Called from inside a `tracing` layer: no logging here, no waiting.
    fn observe(&self, seen: Seen) {
        if matches!(&seen, Seen::Disconnect { reason } if reason == LINK_DISABLED) {
            self.inner.link_disabled.store(true, Ordering::SeqCst);
        }
        {
            let mut queue = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
            if queue.len() >= BACKLOG {
                queue.pop_front();
            }
            queue.push_back(seen);
        }
        self.inner.added.notify_one();
    }
}

impl fmt::Debug for SocketModeWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketModeWatch")
            .field("link_disabled", &self.link_disabled())
            .finish_non_exhaustive()
    }
}

/// What slack-morphism's log line `message` at `target` says, if it is one the bot acts on.
pub fn read(target: &str, message: &str) -> Option<Seen> {
    if target.starts_with(DISCONNECT_TARGET) {
        // "[0/0/0] Received socket mode disconnected event: SlackSocketModeDisconnectEvent { reason: \"link_disabled\", ..."
        let (_, event) = message.split_once("Received socket mode disconnected event")?;
        let (_, rest) = event.split_once("reason: \"")?;
        let (reason, _) = rest.split_once('"')?;
        return Some(Seen::Disconnect {
            reason: reason.to_string(),
        });
    }
    if target.starts_with(CONNECT_TARGET) {
        // "[0/0/0] Unable to create WSS url: Slack API error: invalid_auth\nBody: '...'"
        let (_, error) = message.split_once("Unable to create WSS url: ")?;
        let (_, rest) = error.split_once("Slack API error: ")?;
        let code: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return (!code.is_empty()).then_some(Seen::OpenRefused { code });
    }
    None
}

struct WatchLayer(SocketModeWatch);

impl<S: Subscriber> Layer<S> for WatchLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut message = MessageField(String::new());
        event.record(&mut message);
        if let Some(seen) = read(event.metadata().target(), &message.0) {
            self.0.observe(seen);
        }
    }
}

/// The formatted `message` of an event.
struct MessageField(String);

impl Visit for MessageField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slack_morphism::errors::{SlackClientApiError, SlackClientError};
    use tracing_subscriber::layer::SubscriberExt;

    /// The disconnect line as slack-morphism 2.31.1 logs it (`clients_manager_listener.rs`; the
    /// event's type is not exported, so its `Debug` is written out here; the in-process
    /// `link_disabled` test runs the real thing).
    fn disconnect_line(reason: &str) -> String {
        format!(
            "[0/0/0] Received socket mode disconnected event: SlackSocketModeDisconnectEvent {{ reason: {reason:?}, \
             debug_info: SlackSocketModeDebugInfo {{ host: \"wss-111\", started: None, build_number: None, \
             approximate_connection_time: None }} }}"
        )
    }

    #[test]
    fn reads_the_disconnect_reason_and_the_open_error_code() {
        for reason in ["link_disabled", "refresh_requested", "warning"] {
            assert_eq!(
                read(DISCONNECT_TARGET, &disconnect_line(reason)),
                Some(Seen::Disconnect { reason: reason.into() })
            );
        }
        let error = SlackClientError::ApiError(SlackClientApiError::new("invalid_auth".into()));
        let line = format!("[{}] Unable to create WSS url: {}", "0/0/1", error);
        assert_eq!(
            read(CONNECT_TARGET, &line),
            Some(Seen::OpenRefused {
                code: "invalid_auth".into()
            })
        );
        let transport = format!(
            "[0/0/1] Unable to create WSS url: {}",
            "Slack http protocol error: refused"
        );
        assert_eq!(read(CONNECT_TARGET, &transport), None);
        assert_eq!(read("netrunbook::slack", &disconnect_line("link_disabled")), None);
    }

    #[test]
    fn the_layer_sees_slack_morphisms_events_and_nothing_else() {
        let watch = SocketModeWatch::new();
        let subscriber = tracing_subscriber::registry().with(watch.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "slack_morphism::socket_mode::clients_manager_listener", "{}", disconnect_line("warning"));
            tracing::info!("{}", disconnect_line("link_disabled")); // another target: ignored
            tracing::trace!(target: "slack_morphism::socket_mode::clients_manager_listener", "{}", disconnect_line("link_disabled"));
        });
        assert!(watch.link_disabled());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(
            rt.block_on(watch.next()),
            Seen::Disconnect {
                reason: "warning".into()
            }
        );
        assert_eq!(
            rt.block_on(watch.next()),
            Seen::Disconnect {
                reason: "link_disabled".into()
            }
        );
    }

    #[test]
    fn trace_events_are_compiled_in() {
        // `link_disabled` is only ever logged at TRACE: a `max_level_*` feature of `tracing` would hide it
        assert_eq!(
            tracing::level_filters::STATIC_MAX_LEVEL,
            tracing::level_filters::LevelFilter::TRACE
        );
    }
}
