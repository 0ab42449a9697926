//! What slack-morphism's Socket Mode listener tells only its log: the reason of a `disconnect` frame,
//! the Slack error that made `apps.connections.open` fail, and which connection it dropped to replace
//! it. slack-morphism reconnects (or retries) right after logging these and has no callback for them,
//! so a [`SocketModeWatch`] reads those log events through a small `tracing` layer
//! ([`SocketModeWatch::layer`]) and queues them as [`Seen`] values for `socket::SocketMode::run`, which
//! logs them, keeps the engine's connection count, and stops the listener when Slack means it.
//!
//! The layer is filtered per layer to slack-morphism's Socket Mode targets, so it prints nothing and the
//! rest of the logging is unaffected. `link_disabled` is also recorded synchronously, while
//! slack-morphism is still inside the frame's handler and has not started its reconnect: the listener's
//! HTTP transport (`socket::Gate`) checks [`SocketModeWatch::link_disabled`] and sends nothing from then
//! on, so that reconnect never reaches Slack.
//!
//! # Which connection said `hello`
//!
//! slack-morphism's `hello` callback is not told which connection the frame came on, but the frame is
//! logged (TRACE, with the structured field `slack_wss_client_id`) on the connection's reader just
//! before the callback runs, on the same thread and in the same poll. The layer keeps the last
//! connection id it saw on each thread; the `hello` callback takes it ([`connection_on_this_thread`])
//! before it awaits anything. A [`Seen::Lost`] later names the same id, so the engine knows exactly
//! which connections are up.
//!
//! `netrunbook serve` uses the process-wide watch ([`SocketModeWatch::global`]), whose layer
//! `telemetry::init` installs. An in-process bot (tests) can use a watch of its own: give it in
//! [`Tuning::watch`](super::Tuning::watch) and install its layer as the thread's default subscriber
//! (`tracing::subscriber::set_default`) on a current-thread runtime.
//!
//! **Invariant:** this module and `socket` are the only code that depends on the wording of
//! slack-morphism's log lines and fields; [`read`] is unit-tested against their wording (and
//! slack-morphism's own error type) and the in-process `link_disabled` and readiness tests drive the
//! real listener, so a change of wording fails the tests.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use slack_morphism::SlackSocketModeWssClientId;
use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Where slack-morphism logs a `disconnect` frame (at TRACE), just before it reconnects.
pub(crate) const DISCONNECT_TARGET: &str = "slack_morphism::socket_mode::clients_manager_listener";
/// Where slack-morphism logs a failed `apps.connections.open` (at ERROR), before it retries, and every
/// frame it reads (at TRACE, with [`CLIENT_ID_FIELD`]).
pub(crate) const CONNECT_TARGET: &str = "slack_morphism::hyper_tokio::socket_mode::tungstenite_wss_client";
/// Where slack-morphism logs (at DEBUG) that it drops a connection to replace it, whatever ended it: a
/// `disconnect` frame, a close, a socket error or missed pongs.
pub(crate) const CLIENTS_TARGET: &str = "slack_morphism::hyper_tokio::socket_mode::tokio_clients_manager";
/// The structured field naming the connection (`initial/token/reconnects`) in slack-morphism's events.
pub(crate) const CLIENT_ID_FIELD: &str = "slack_wss_client_id";

/// The `disconnect` reason that means "Socket Mode is off for this app: do not reconnect".
pub(crate) const LINK_DISABLED: &str = "link_disabled";

/// Observations not read yet, at most; the oldest go first.
const BACKLOG: usize = 64;

/// Something slack-morphism logged that the bot acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Slack sent `disconnect` with this reason (`refresh_requested`, `warning`, `link_disabled`, ...);
    /// slack-morphism is reconnecting.
    Disconnect { reason: String },
    /// `apps.connections.open` failed with this Slack error code (`invalid_auth`, ...);
    /// slack-morphism retries after `Tuning::reconnect_timeout`.
    OpenRefused { code: String },
    /// `apps.connections.open` failed otherwise (an HTTP status, the network, a rate limit); retried
    /// likewise.
    OpenFailed { rate_limited: bool },
    /// slack-morphism dropped this connection and opens a new one in its place.
    Lost { connection: SlackSocketModeWssClientId },
}

thread_local! {
    /// The connection slack-morphism last logged about on this thread (see the module docs).
    static LAST_CONNECTION: RefCell<Option<SlackSocketModeWssClientId>> = const { RefCell::new(None) };
}

/// The connection whose frame this thread is handling, for slack-morphism's `hello` callback; call it
/// before the callback awaits anything. `None` without the layer (or with TRACE compiled out).
pub(crate) fn connection_on_this_thread() -> Option<SlackSocketModeWssClientId> {
    LAST_CONNECTION.with(|c| c.borrow_mut().take())
}

/// slack-morphism's connection id from its log form, `initial/token/reconnects`.
pub(crate) fn parse_connection(id: &str) -> Option<SlackSocketModeWssClientId> {
    let mut parts = id.split('/');
    let initial = parts.next()?.parse().ok()?;
    let token = parts.next()?.parse().ok()?;
    let reconnected = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then(|| SlackSocketModeWssClientId::new(initial, token, reconnected))
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
    pub(crate) fn global() -> &'static SocketModeWatch {
        static GLOBAL: OnceLock<SocketModeWatch> = OnceLock::new();
        GLOBAL.get_or_init(SocketModeWatch::new)
    }

    /// The `tracing` layer that feeds this watch. It sees only slack-morphism's Socket Mode events
    /// (the disconnect, the connections' frames and failures, the dropped connections) and prints
    /// nothing.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let targets = Targets::new()
            .with_target(DISCONNECT_TARGET, Level::TRACE)
            .with_target(CONNECT_TARGET, Level::TRACE)
            .with_target(CLIENTS_TARGET, Level::DEBUG);
        WatchLayer(self.clone()).with_filter(targets)
    }

    /// Whether Slack said `link_disabled` (Socket Mode was turned off for the app).
    pub(crate) fn link_disabled(&self) -> bool {
        self.inner.link_disabled.load(Ordering::SeqCst)
    }

    /// The next observation, waiting for one. Meant for one reader.
    pub(crate) async fn next(&self) -> Seen {
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
/// `connection` is the event's [`CLIENT_ID_FIELD`].
pub(crate) fn read(target: &str, message: &str, connection: Option<&str>) -> Option<Seen> {
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
        let Some((_, rest)) = error.split_once("Slack API error: ") else {
            // "Slack HTTP error status: 503 ...", "Slack API rate limit error: ...", "Slack http protocol error: ..."
            return Some(Seen::OpenFailed {
                rate_limited: error.starts_with("Slack API rate limit error"),
            });
        };
        let code: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return (!code.is_empty()).then_some(Seen::OpenRefused { code });
    }
    if target.starts_with(CLIENTS_TARGET) {
        // "[0/0/0] Removing client", with slack_wss_client_id = "0/0/0"
        message.ends_with("Removing client").then_some(())?;
        return Some(Seen::Lost {
            connection: parse_connection(connection?)?,
        });
    }
    None
}

struct WatchLayer(SocketModeWatch);

impl<S: Subscriber> Layer<S> for WatchLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        // every frame a connection reads is logged at TRACE on CONNECT_TARGET: only its connection
        // id is wanted from those, not the (formatted) frame
        let wanted = !(meta.target().starts_with(CONNECT_TARGET) && *meta.level() != Level::ERROR);
        let mut fields = Fields {
            message: wanted.then(String::new),
            connection: None,
        };
        event.record(&mut fields);
        if let Some(id) = fields.connection.as_deref().and_then(parse_connection) {
            LAST_CONNECTION.with(|c| *c.borrow_mut() = Some(id));
        }
        if let Some(message) = &fields.message {
            if let Some(seen) = read(meta.target(), message, fields.connection.as_deref()) {
                self.0.observe(seen);
            }
        }
    }
}

/// The formatted `message` of an event (when wanted) and the connection it is about.
struct Fields {
    message: Option<String>,
    connection: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match (field.name(), &mut self.message) {
            ("message", Some(m)) => m.push_str(value),
            (CLIENT_ID_FIELD, _) => self.connection = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match (field.name(), &mut self.message) {
            ("message", Some(m)) => {
                let _ = write!(m, "{value:?}");
            }
            (CLIENT_ID_FIELD, _) => self.connection = Some(format!("{value:?}").trim_matches('"').to_string()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slack_morphism::errors::{
        SlackClientApiError, SlackClientError, SlackClientHttpError, SlackClientHttpProtocolError, SlackRateLimitError,
    };
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
                read(DISCONNECT_TARGET, &disconnect_line(reason), Some("0/0/0")),
                Some(Seen::Disconnect { reason: reason.into() })
            );
        }
        let error = SlackClientError::ApiError(SlackClientApiError::new("invalid_auth".into()));
        let line = format!("[{}] Unable to create WSS url: {}", "0/0/1", error);
        assert_eq!(
            read(CONNECT_TARGET, &line, None),
            Some(Seen::OpenRefused {
                code: "invalid_auth".into()
            })
        );
        let failures = [
            (
                SlackClientError::HttpError(SlackClientHttpError::new(hyper::StatusCode::SERVICE_UNAVAILABLE)),
                false,
            ),
            (
                SlackClientError::HttpProtocolError(SlackClientHttpProtocolError::new()),
                false,
            ),
            (SlackClientError::RateLimitError(SlackRateLimitError::new()), true),
        ];
        for (error, rate_limited) in failures {
            let line = format!("[{}] Unable to create WSS url: {}", "0/0/1", error);
            assert_eq!(
                read(CONNECT_TARGET, &line, None),
                Some(Seen::OpenFailed { rate_limited }),
                "{line}"
            );
        }
        // a frame read, a WSS handshake failure: nothing to act on
        assert_eq!(
            read(
                CONNECT_TARGET,
                "[0/0/1] Received from Slack: {\"type\":\"hello\"}",
                Some("0/0/1")
            ),
            None
        );
        assert_eq!(
            read(CONNECT_TARGET, "[0/0/1] Unable to connect ws://x: 503", Some("0/0/1")),
            None
        );
        assert_eq!(read("netrunbook::slack", &disconnect_line("link_disabled"), None), None);
        assert_eq!(
            read(CLIENTS_TARGET, "[1/1/3] Removing client", Some("1/1/3")),
            Some(Seen::Lost {
                connection: SlackSocketModeWssClientId::new(1, 1, 3)
            })
        );
        assert_eq!(
            read(CLIENTS_TARGET, "[1/1/3] No need to reconnect for client", Some("1/1/3")),
            None
        );
        assert_eq!(
            parse_connection("0/0/64"),
            Some(SlackSocketModeWssClientId::new(0, 0, 64))
        );
        assert_eq!(parse_connection("0/0"), None);
        assert_eq!(parse_connection("0/0/1/2"), None);
    }

    #[test]
    fn the_connection_a_frame_came_on_is_known_on_its_thread() {
        let watch = SocketModeWatch::new();
        let subscriber = tracing_subscriber::registry().with(watch.layer());
        assert_eq!(connection_on_this_thread(), None);
        tracing::subscriber::with_default(subscriber, || {
            // as slack-morphism 2.31.1 logs a frame it read, just before it hands it to the callbacks
            tracing::trace!(
                target: "slack_morphism::hyper_tokio::socket_mode::tungstenite_wss_client",
                slack_wss_client_id = "1/1/2",
                "[{}] Received from Slack: {}",
                "1/1/2",
                "{\"type\":\"hello\"}"
            );
            assert_eq!(
                connection_on_this_thread(),
                Some(SlackSocketModeWssClientId::new(1, 1, 2))
            );
            assert_eq!(connection_on_this_thread(), None, "taken");
            tracing::debug!(
                target: "slack_morphism::hyper_tokio::socket_mode::tokio_clients_manager",
                slack_wss_client_id = "1/1/2",
                "[{}] Removing client",
                "1/1/2"
            );
        });
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(
            rt.block_on(watch.next()),
            Seen::Lost {
                connection: SlackSocketModeWssClientId::new(1, 1, 2)
            }
        );
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
