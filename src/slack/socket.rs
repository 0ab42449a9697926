//! Socket Mode through slack-morphism's listener: its callbacks turn envelopes into [`Inbound`]s for
//! the [`Engine`]'s per-thread queues and return at once (the acknowledgement goes out when a callback
//! returns); a slash command's private answer rides on its acknowledgement. slack-morphism opens
//! [`Tuning::connections`](super::Tuning::connections) connections, pings them, and replaces a
//! connection that Slack refreshes (`refresh_requested`, `warning`), closes or that goes silent.
//!
//! [`SocketMode::run`] supervises it with what the [`SocketModeWatch`] saw in slack-morphism's log:
//! it logs each `disconnect` reason, tells the [`Engine`] which connection was dropped
//! ([`Engine::socket_down`]; the `hello` callback reported it up with [`Engine::socket_up`], which
//! is what `/readyz` and the connection and reconnect metrics read), counts failed
//! `apps.connections.open` calls, and stops the listener on `link_disabled` (Slack turned Socket
//! Mode off for the app and says not to reconnect) and when Slack rejects the app-level token. The
//! listener's HTTP transport is a [`Gate`]: once `link_disabled` was seen it sends nothing, so the
//! reconnect slack-morphism starts right after that frame never reaches Slack.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use slack_morphism::errors::{SlackClientError, SlackClientProtocolError};
use slack_morphism::prelude::*;
use tokio::net::TcpStream;
use tower_service::Service;
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::{debug, error, info, info_span, warn, Span};

use super::watch::{self, Seen, SocketModeWatch, LINK_DISABLED};
use super::{events, web, Engine, SlackError, StopReason};
use crate::store::Store;
use crate::vocab::{Inbound, SlashCommand};

/// The Web API method the listener calls, as counted in the metrics.
const OPEN: &str = "apps.connections.open";

/// `apps.connections.open` errors no retry will fix: the app-level token is bad.
const FATAL_OPEN_ERRORS: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "not_allowed_token_type",
    "token_revoked",
    "account_inactive",
];

type Connector = SlackClientHyperConnector<Gate>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Listener = SlackClientSocketModeListener<Connector>;

/// The running Socket Mode listener of an [`Engine`].
pub(crate) struct SocketMode {
    listener: Listener,
    watch: SocketModeWatch,
}

impl SocketMode {
    /// Build the listener for `engine` and open its connections.
    pub(crate) async fn start<S: Store + 'static>(engine: &Arc<Engine<S>>) -> Result<SocketMode, SlackError> {
        let tuning = &engine.tuning;
        if STATIC_MAX_LEVEL < LevelFilter::TRACE {
            warn!("TRACE events are compiled out (a max_level feature of tracing): link_disabled cannot be detected and will be reconnected like any other disconnect");
        }
        let gate = Gate {
            inner: web::https_connector()?,
            watch: tuning.watch.clone(),
        };
        let client =
            SlackClient::new(SlackClientHyperConnector::with_connector(gate).with_slack_api_url(engine.web.api_url()));
        let environment = SlackClientEventsListenerEnvironment::new(Arc::new(client))
            .with_error_handler(on_error)
            // weak: slack-morphism's tasks outlive `shutdown` by a moment, and must not keep the
            // engine (and its store) alive after the bot stopped
            .with_user_state(Arc::downgrade(engine));
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_hello_events(on_hello::<S, _>)
            .with_push_events(on_push::<S>)
            .with_command_events(on_command::<S>)
            .with_interaction_events(on_interaction::<S>);
        let ping_every = tuning.ping_every.as_secs().max(1);
        let config = SlackClientSocketModeConfig::new()
            .with_max_connections_count(u32::try_from(tuning.connections.max(1)).unwrap_or(u32::MAX))
            .with_initial_backoff_in_seconds(tuning.initial_backoff.as_secs())
            .with_reconnect_timeout_in_seconds(tuning.reconnect_timeout.as_secs().max(1))
            .with_ping_interval_in_seconds(ping_every)
            .with_ping_failure_threshold_times((tuning.dead_after.as_secs() / ping_every).max(1));
        let listener = SlackClientSocketModeListener::new(&config, Arc::new(environment), callbacks);
        listener
            .listen_for(engine.web.app_token())
            .await
            .map_err(|e| SlackError::Api {
                method: "apps.connections.open",
                source: Box::new(e),
            })?;
        listener.start().await;
        Ok(SocketMode {
            listener,
            watch: tuning.watch.clone(),
        })
    }

    /// Keep the connections open until the engine stops, or Slack disables Socket Mode or rejects the
    /// app-level token (which stops the engine); then close them.
    pub(crate) async fn run<S: Store + 'static>(self, engine: Arc<Engine<S>>) {
        loop {
            let seen = tokio::select! {
                _ = engine.stopped() => break,
                seen = self.watch.next() => seen,
            };
            match seen {
                Seen::Lost { connection } => {
                    let open = engine.socket_down(&connection);
                    info!(
                        connection = %connection.to_string(),
                        open,
                        "Socket Mode connection dropped; slack-morphism opens another"
                    );
                }
                Seen::Disconnect { reason } if reason == LINK_DISABLED => {
                    error!(reason = %reason, "Slack disabled Socket Mode for this app (link_disabled): not reconnecting; re-enable Socket Mode in the app settings and restart");
                    engine.request_stop(StopReason::LinkDisabled);
                    break;
                }
                Seen::Disconnect { reason } => info!(reason = %reason, "Slack asked us to reconnect; reconnecting"),
                Seen::OpenRefused { code } if FATAL_OPEN_ERRORS.contains(&code.as_str()) => {
                    engine.bot.metrics().slack_api_error(OPEN);
                    error!(code = %code, "Slack rejected SLACK_APP_TOKEN (apps.connections.open); stopping");
                    engine.request_stop(StopReason::AppTokenRejected);
                    break;
                }
                Seen::OpenRefused { code } => {
                    engine.bot.metrics().slack_api_error(OPEN);
                    warn!(
                        code = %code,
                        retry_in_s = engine.tuning.reconnect_timeout.as_secs().max(1),
                        "cannot open a Socket Mode connection; retrying"
                    )
                }
                // slack-morphism logged the error itself
                Seen::OpenFailed { rate_limited: true } => engine.bot.metrics().slack_rate_limited(OPEN),
                Seen::OpenFailed { rate_limited: false } => engine.bot.metrics().slack_api_error(OPEN),
            }
        }
        // whatever Slack sends from now on stays unacknowledged, and Slack re-sends it
        self.listener.shutdown().await;
        engine.sockets_closed();
        info!("Socket Mode connections closed");
    }
}

/// The engine the listener was built for (its user state), while it lives.
async fn engine_of<S: Store + 'static>(state: &SlackClientEventsUserState) -> UserCallbackResult<Arc<Engine<S>>> {
    let storage = state.read().await;
    storage
        .get_user_state::<Weak<Engine<S>>>()
        .and_then(Weak::upgrade)
        .ok_or_else(|| "the bot has stopped".into())
}

/// `hello`: one more connection is open (the engine counts it, and a second greeting in the same
/// slot as a reconnect). slack-morphism does not say which connection, so it is taken from the watch
/// before anything here awaits (see [`watch`]); nor does it export the type of `hello`
/// (`models::socket_mode` is private), so that is read through its `Serialize`.
async fn on_hello<S: Store + 'static, H: serde::Serialize>(
    hello: H,
    _: Arc<SlackClient<Connector>>,
    state: SlackClientEventsUserState,
) {
    let connection = watch::connection_on_this_thread();
    // the new WebSocket is connected now: let its small ack frames go out at once
    let nodelay = super::nodelay::disable_nagle();
    debug!(sockets = nodelay, "TCP_NODELAY set");
    if let Ok(engine) = engine_of::<S>(&state).await {
        let (connects, open) = engine.socket_up(connection.as_ref());
        let hello = serde_json::to_value(&hello).unwrap_or_default();
        info!(
            connection = %connection.map(|c| c.to_string()).unwrap_or_default(),
            connections = hello["num_connections"].as_u64(),
            host = hello["debug_info"]["host"].as_str().unwrap_or_default(),
            connects,
            open,
            "Socket Mode connected"
        );
    }
}

async fn on_push<S: Store + 'static>(
    event: SlackPushEventCallback,
    _: Arc<SlackClient<Connector>>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let engine = engine_of::<S>(&state).await?;
    match events::push_inbound(&event, engine.bot.identity()) {
        Some(inbound) => {
            let span = event_span(&inbound);
            engine
                .dispatch(inbound, span.clone())
                .map_err(|source| Box::new(NotJournaled { source }) as BoxError)?;
            span.in_scope(|| debug!("event queued"));
        }
        None => debug!(event_id = %event.event_id, "ignoring an event the bot does not read"),
    }
    Ok(())
}

async fn on_interaction<S: Store + 'static>(
    event: SlackInteractionEvent,
    _: Arc<SlackClient<Connector>>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let engine = engine_of::<S>(&state).await?;
    match events::interaction_inbound(&event) {
        Some(inbound) => {
            let span = event_span(&inbound);
            // clicks are not journaled: queuing one cannot fail
            if let Err(e) = engine.dispatch(inbound, span) {
                warn!(error = %crate::error::error_chain(&e), "cannot queue a click");
            }
        }
        None => debug!("ignoring an interaction that is not a click on our buttons"),
    }
    Ok(())
}

async fn on_command<S: Store + 'static>(
    command: SlackCommandEvent,
    _: Arc<SlackClient<Connector>>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let engine = engine_of::<S>(&state).await?;
    let span = info_span!("slack_event", kind = "command", channel = %command.channel_id, thread = tracing::field::Empty, intent = tracing::field::Empty);
    Ok(span.in_scope(|| {
        let key = events::command_key(&command);
        let text = command.text.unwrap_or_default();
        debug!(user = %command.user_id, text = %crate::text::truncate(&text, 2000), "slash command");
        // the admin check and the channel allow-list need who typed it and where
        let answer = events::command_answer(engine.command(SlashCommand {
            team: command.team_id.to_string(),
            channel: command.channel_id.to_string(),
            user: command.user_id.to_string(),
            text,
            key: Some(key),
        }));
        info!("slash command answered");
        answer
    }))
}

/// An event that could not be journaled (the database is away): it is not acknowledged, so Slack
/// sends it again.
#[derive(Debug, thiserror::Error)]
#[error("the event could not be journaled")]
struct NotJournaled {
    #[source]
    source: crate::store::StoreError,
}

/// Called for envelopes that do not parse, for callback errors and for socket errors. The status
/// says whether to acknowledge anyway: yes, since a frame that did not parse will not parse when
/// Slack re-sends it; no for an event that could not be journaled, which Slack should send again.
fn on_error(err: BoxError, _: Arc<SlackClient<Connector>>, _: SlackClientEventsUserState) -> HttpStatusCode {
    if let Some(e) = err.downcast_ref::<NotJournaled>() {
        warn!(error = %crate::error::error_chain(e), "event not acknowledged: Slack will send it again");
        return HttpStatusCode::SERVICE_UNAVAILABLE;
    }
    let unreadable =
        err.downcast_ref::<SlackClientProtocolError>()
            .or_else(|| match err.downcast_ref::<SlackClientError>() {
                Some(SlackClientError::ProtocolError(p)) => Some(p),
                _ => None,
            });
    match unreadable {
        Some(p) => {
            // the frame carries user text: only its size at warn level
            let body = p.json_body.as_deref().unwrap_or_default();
            warn!(error = %p.json_error, bytes = body.len(), "unreadable Socket Mode frame; acknowledged and dropped");
            debug!(frame = %crate::text::truncate(body, 2000), "the unreadable frame");
        }
        None => warn!(error = %err, "Socket Mode error"),
    }
    HttpStatusCode::OK
}

fn event_span(inbound: &Inbound) -> Span {
    let kind = inbound.kind.label();
    info_span!(
        "slack_event",
        kind,
        channel = %inbound.channel,
        thread = %inbound.thread_ts.as_deref().unwrap_or(&inbound.ts),
        event_id = inbound.event_id.as_deref().unwrap_or(""),
        intent = tracing::field::Empty,
    )
}

/// The listener's HTTP transport (`apps.connections.open`): hyper-rustls, except that once the watch
/// saw `link_disabled` it opens no connection and writes nothing on a pooled one.
#[derive(Clone)]
pub(crate) struct Gate {
    inner: HttpsConnector<HttpConnector>,
    watch: SocketModeWatch,
}

fn link_disabled() -> io::Error {
    io::Error::other("Slack disabled Socket Mode for this app (link_disabled): not reconnecting")
}

impl Service<Uri> for Gate {
    type Response = Gated<MaybeHttpsStream<TokioIo<TcpStream>>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if self.watch.link_disabled() {
            return Box::pin(std::future::ready(Err(link_disabled().into())));
        }
        let watch = self.watch.clone();
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            Ok(Gated {
                io: connecting.await?,
                watch,
            })
        })
    }
}

/// A connection of the [`Gate`].
pub(crate) struct Gated<T> {
    io: T,
    watch: SocketModeWatch,
}

impl<T: Read + Unpin> Read for Gated<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Gated<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.watch.link_disabled() {
            return Poll::Ready(Err(link_disabled()));
        }
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.watch.link_disabled() {
            return Poll::Ready(Err(link_disabled()));
        }
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for Gated<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}
