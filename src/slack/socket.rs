//! Socket Mode connections: `apps.connections.open`, the WebSocket, acknowledgements, pings and
//! reconnects.
//!
//! We run the protocol ourselves (on tokio-tungstenite, which slack-morphism uses too) rather than with
//! slack-morphism's listener, because that listener reconnects on every `disconnect`, including
//! `link_disabled` where Slack says not to, gives no hook to see the reason, and hides
//! `retry_attempt`. Here: `refresh_requested`, `warning` and any other reason reconnect at once; a
//! dropped or silent socket reconnects with backoff; `link_disabled` stops the whole listener and says
//! why in the log.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;
use tracing::{debug, error, info, info_span, warn};

use super::events::{self, Envelope};
use super::{Engine, SlackError, StopReason};
use crate::bot::{error_chain, Inbound, InboundKind, SlashCommand};
use crate::store::Store;

/// Token problems that no reconnect will fix.
const FATAL_OPEN_ERRORS: &[&str] = &[
    "invalid_auth",
    "not_authed",
    "not_allowed_token_type",
    "token_revoked",
    "account_inactive",
];

/// How a socket ended.
enum Ended {
    /// Stop for good.
    Stop,
    /// Reconnect; `at_once` when Slack asked us to (no backoff).
    Reconnect { at_once: bool },
}

/// Keep connection number `n` open until the engine stops.
pub async fn run_connection<S: Store + 'static>(engine: Arc<Engine<S>>, n: usize) {
    let tuning = engine.tuning.clone();
    let mut backoff = tuning.reconnect_backoff;
    loop {
        if engine.stop.is_cancelled() {
            return;
        }
        let opened = tokio::select! {
            _ = engine.stop.cancelled() => return,
            r = connect(&engine) => r,
        };
        let ended = match opened {
            Ok(ws) => {
                info!(connection = n, "Socket Mode connected");
                let ended = serve(&engine, n, ws, &mut backoff).await;
                engine.socket_down(n);
                if matches!(ended, Ended::Reconnect { at_once: true }) {
                    backoff = tuning.reconnect_backoff;
                }
                ended
            }
            Err(e) => {
                if e.api_code().is_some_and(|c| FATAL_OPEN_ERRORS.contains(&c)) {
                    error!(connection = n, error = %error_chain(&e), "Slack rejected SLACK_APP_TOKEN; stopping");
                    engine.request_stop(StopReason::AppTokenRejected);
                    return;
                }
                warn!(connection = n, error = %error_chain(&e), backoff_ms = backoff.as_millis() as u64, "cannot connect to Socket Mode; retrying");
                Ended::Reconnect { at_once: false }
            }
        };
        match ended {
            Ended::Stop => return,
            Ended::Reconnect { at_once: true } => {}
            Ended::Reconnect { at_once: false } => {
                tokio::select! {
                    _ = engine.stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(tuning.max_reconnect_backoff);
            }
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect<S: Store + 'static>(engine: &Arc<Engine<S>>) -> Result<Ws, SlackError> {
    let url = engine.web.open_connection().await?;
    let connecting = tokio_tungstenite::connect_async(url.as_str());
    match tokio::time::timeout(engine.tuning.retry.timeout, connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(SlackError::WebSocket(Box::new(e))),
        Err(_) => Err(SlackError::Timeout("Socket Mode WebSocket handshake")),
    }
}

/// Read frames until the socket ends or the engine stops.
async fn serve<S: Store + 'static>(engine: &Arc<Engine<S>>, n: usize, mut ws: Ws, backoff: &mut Duration) -> Ended {
    let tuning = &engine.tuning;
    let mut last_seen = Instant::now();
    let mut ping = tokio::time::interval(tuning.ping_every);
    ping.tick().await;
    loop {
        tokio::select! {
            _ = engine.stop.cancelled() => {
                // stop taking events: whatever Slack sends now stays unacknowledged and is re-sent
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return Ended::Stop;
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > tuning.dead_after {
                    warn!(connection = n, silent_ms = last_seen.elapsed().as_millis() as u64, "Socket Mode connection silent; reconnecting");
                    return Ended::Reconnect { at_once: true };
                }
                if ws.send(Frame::Ping(Vec::new().into())).await.is_err() {
                    warn!(connection = n, "Socket Mode ping failed; reconnecting");
                    return Ended::Reconnect { at_once: true };
                }
            }
            frame = ws.next() => {
                last_seen = Instant::now();
                match frame {
                    Some(Ok(Frame::Text(text))) => {
                        match on_frame(engine, n, text.as_str()) {
                            Reaction::Ack(ack) => {
                                if let Err(e) = ws.send(Frame::Text(ack.into())).await {
                                    warn!(connection = n, error = %e, "cannot acknowledge; reconnecting");
                                    return Ended::Reconnect { at_once: true };
                                }
                            }
                            Reaction::Hello => {
                                *backoff = tuning.reconnect_backoff;
                                engine.socket_up(n);
                            }
                            Reaction::Nothing => {}
                            Reaction::Disconnect(reason) if reason == "link_disabled" => {
                                error!(connection = n, reason = %reason, "Slack disabled Socket Mode for this app (disconnect reason link_disabled); not reconnecting, stopping the listener. Turn Socket Mode back on in the app's settings and restart netrunbook");
                                engine.request_stop(StopReason::LinkDisabled);
                                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                                return Ended::Stop;
                            }
                            Reaction::Disconnect(reason) => {
                                info!(connection = n, reason = %reason, "Slack asked us to reconnect");
                                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                                return Ended::Reconnect { at_once: true };
                            }
                        }
                    }
                    Some(Ok(Frame::Close(close))) => {
                        info!(connection = n, close = ?close, "Socket Mode connection closed by Slack; reconnecting");
                        return Ended::Reconnect { at_once: true };
                    }
                    Some(Ok(_)) => {} // ping (answered by tungstenite), pong, binary
                    Some(Err(e)) => {
                        warn!(connection = n, error = %e, "Socket Mode connection failed; reconnecting");
                        return Ended::Reconnect { at_once: false };
                    }
                    None => {
                        warn!(connection = n, "Socket Mode connection ended; reconnecting");
                        return Ended::Reconnect { at_once: false };
                    }
                }
            }
        }
    }
}

/// What to do about one frame.
enum Reaction {
    /// Send this acknowledgement.
    Ack(String),
    Hello,
    Disconnect(String),
    Nothing,
}

fn ack(envelope_id: &str) -> Reaction {
    Reaction::Ack(json!({ "envelope_id": envelope_id }).to_string())
}

/// Handle one text frame without waiting on anything: queue the work, return the acknowledgement.
fn on_frame<S: Store + 'static>(engine: &Arc<Engine<S>>, n: usize, text: &str) -> Reaction {
    let envelope = match events::parse(text) {
        Ok(e) => e,
        Err(e) => {
            // acknowledge what we can: it will not parse any better when Slack re-sends it
            let id = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("envelope_id").and_then(|i| i.as_str()).map(str::to_string));
            warn!(connection = n, error = %error_chain(&e), bytes = text.len(), "unreadable Socket Mode frame");
            return id.map_or(Reaction::Nothing, |id| ack(&id));
        }
    };
    match envelope {
        Envelope::Hello => {
            debug!(connection = n, "hello");
            Reaction::Hello
        }
        Envelope::Disconnect { reason } => Reaction::Disconnect(reason),
        Envelope::Event {
            envelope_id,
            retry_attempt,
            inbound,
        } => {
            if let Some(inbound) = inbound {
                let span = event_span(&inbound, "event");
                span.in_scope(|| debug!(envelope = %envelope_id, retry_attempt, "event queued"));
                engine.dispatch(inbound, span);
            }
            ack(&envelope_id)
        }
        Envelope::Interactive { envelope_id, inbound } => {
            if let Some(inbound) = inbound {
                let span = event_span(&inbound, "click");
                engine.dispatch(inbound, span);
            }
            ack(&envelope_id)
        }
        Envelope::Command {
            envelope_id,
            team,
            channel,
            user,
            text,
        } => {
            let span = info_span!("slack_event", kind = "command", channel = %channel, thread = tracing::field::Empty, intent = tracing::field::Empty);
            let _entered = span.enter();
            debug!(user = %user, text = %crate::text::truncate(&text, 2000), "slash command");
            let payload = engine.command(SlashCommand {
                team,
                channel,
                user,
                text,
            });
            info!("slash command answered");
            match payload {
                Some(p) => Reaction::Ack(json!({ "envelope_id": envelope_id, "payload": p }).to_string()),
                None => ack(&envelope_id),
            }
        }
        Envelope::Other { envelope_id, kind } => {
            debug!(connection = n, kind = %kind, "ignoring an envelope type");
            if envelope_id.is_empty() {
                Reaction::Nothing
            } else {
                ack(&envelope_id)
            }
        }
    }
}

fn event_span(inbound: &Inbound, kind: &'static str) -> tracing::Span {
    let kind = match (&inbound.kind, kind) {
        (InboundKind::Mention, _) => "mention",
        (InboundKind::Message, _) => "message",
        (_, k) => k,
    };
    info_span!(
        "slack_event",
        kind,
        channel = %inbound.channel,
        thread = %inbound.thread_ts.as_deref().unwrap_or(&inbound.ts),
        event_id = inbound.event_id.as_deref().unwrap_or(""),
        intent = tracing::field::Empty,
    )
}
