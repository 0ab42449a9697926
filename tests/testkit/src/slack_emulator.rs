//! A Slack stand-in for integration tests: Socket Mode over WebSocket and the Web API over HTTP,
//! both bound to 127.0.0.1 on ports the OS picks, so tests can run in parallel.
//!
//! The real bot connects to it exactly as it connects to Slack: it calls `apps.connections.open`
//! under [`SlackEmulator::api_url`], opens the `ws://` URL it gets back and receives `hello`. The
//! test then pushes envelopes ([`SlackEmulator::push_event`], [`SlackEmulator::push_slash`],
//! [`SlackEmulator::push_block_action`]) and asserts on what the bot did: every ack, Web API call
//! and `response_url` post is recorded with the instant it arrived.
//!
//! # Layout
//!
//! - [`SlackEmulator`] is the handle. It is cheap to clone; every clone drives the same emulator.
//!   The emulator lives until the Tokio runtime that started it shuts down.
//! - **Socket Mode** (`serve_socket`): each `apps.connections.open` issues a single-use ticket; a
//!   WebSocket that presents it receives `hello` (with the `connection_info.app_id`,
//!   `num_connections` and `debug_info.host` slack-morphism needs) and then the envelopes handed to
//!   it. Text frames that carry an `envelope_id` are recorded as [`Ack`]s; other client frames are
//!   ignored, pings are answered by tungstenite.
//! - **Delivery**: like Slack, each envelope goes to exactly one connection, round robin over the
//!   connections that are open and have not been sent a `disconnect`. With none, a push waits up to
//!   five seconds for one (a reconnect in progress) and then panics. [`SlackEmulator::resend`]
//!   sends any envelope again as Slack does (new envelope id, same payload), on another connection.
//!   A test of several bot processes (replicas) on one emulator can also hand an event to a
//!   connection of its choice ([`SlackEmulator::push_event_on`]); [`SlackEmulator::live_connections`]
//!   and [`SlackEmulator::last_connection`] tell which connections there are, and every delivered
//!   envelope is logged ([`SlackEmulator::delivered`]).
//! - **Web API** (`web_api`): the methods below, in Slack's documented shapes. Parameters are taken
//!   from the query string and from a JSON or `application/x-www-form-urlencoded` body. Every call
//!   is recorded as an [`ApiCall`] before it is answered, including calls answered with a fault.
//! - **Faults**: [`SlackEmulator::fail_next`] queues a [`Fault`] for the next call of one method;
//!   [`SlackEmulator::fail_for`] answers every call of a method with one for a while (an outage).
//! - **Messages**: a per-channel store fed by `chat.postMessage` and [`SlackEmulator::add_message`],
//!   read by `conversations.replies`, changed by `chat.update`.
//!
//! # Web API methods
//!
//! | method | answer |
//! |---|---|
//! | `apps.connections.open` | `{"ok":true,"url":"ws://127.0.0.1:PORT/link/?ticket=..&app_id=.."}`; needs an `xapp-` token |
//! | `auth.test` | the bot's identity: [`TEAM_ID`], [`BOT_USER_ID`], [`BOT_ID`] |
//! | `chat.postMessage` | `ok`, `channel`, a fresh increasing `ts`, `message`; stores the message |
//! | `chat.postEphemeral` | `ok`, `message_ts`; not stored (ephemeral messages have no thread) |
//! | `chat.update` | replaces `text`/`blocks`/`attachments` of a stored bot message |
//! | `chat.getPermalink` | `https://<team>.slack.com/archives/<channel>/p<ts>` |
//! | `conversations.replies` | the thread of `ts` (root first, by ts); `limit` + `cursor` paging |
//! | anything else | `{"ok":false,"error":"unknown_method"}` |
//!
//! Tokens are checked by kind only, as Slack does: no token gives `not_authed`; an unknown prefix
//! `invalid_auth`; an app token (`xapp-`) anywhere but `apps.connections.open`/`auth.test`, or
//! another token on `apps.connections.open`, gives `not_allowed_token_type`. Message content is
//! checked against the Block Kit limits that bite (`no_text`, `msg_too_long`, `invalid_blocks`
//! with Slack-style `errors`). Token values are never stored; [`ApiCall::token_kind`] keeps the prefix.
//!
//! # What it leaves out
//!
//! No TLS, no request signing, no users or channels beyond what tests add; `oldest`/`latest` of
//! `conversations.replies` are ignored; `response_url` posts are recorded, not turned into messages.
//! Slack's retries of unacked events are off unless [`SlackEmulator::retry_unacked_events`] (or
//! [`SlackEmulator::retry_unacked_events_after`], with a schedule) turns them on; the bot's own posts come back as `message` events only with
//! [`SlackEmulator::set_echo_bot_messages`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as HandshakeRequest, Response as HandshakeResponse,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The workspace every envelope and answer names.
pub const TEAM_ID: &str = "T0EMU";
/// The workspace's domain, used in URLs the emulator hands out.
pub const TEAM_DOMAIN: &str = "netrunbook-emu";
/// The app id in `hello` and in every envelope.
pub const APP_ID: &str = "A0EMU";
/// The bot's user id: `auth.test` returns it and the bot's posts carry it as `user`.
pub const BOT_USER_ID: &str = "UBOT";
/// The bot id on the bot's posts (`bot_id`), which is how a bot recognises its own messages.
pub const BOT_ID: &str = "BBOT";
/// The bot's user name, as `auth.test` returns it.
pub const BOT_NAME: &str = "netrunbook";
/// The slash command [`SlackEmulator::push_slash`] sends.
pub const SLASH_COMMAND: &str = "/netrunbook";
/// How long a connection stays open after its `disconnect` frame before the emulator closes it.
pub const DISCONNECT_GRACE: Duration = Duration::from_millis(500);

/// How long a push waits for a connection to deliver on before it panics.
const DELIVERY_WAIT: Duration = Duration::from_secs(5);
/// Slack retries an unacked event at most three times.
const MAX_RETRY_ATTEMPT: u32 = 3;
/// Seconds part of the first `ts` the emulator hands out (2023-11-14).
const FIRST_TS_SECS: u64 = 1_700_000_000;

/// A failure the next Web API call of one method answers with instead of its normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: retry_after_secs` and `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// This HTTP status with a JSON body `{"ok":false,"error":"emulated_http_<status>"}`.
    Status(u16),
    /// The normal answer, but only after this long; the call takes effect then, not before.
    Hang(Duration),
    /// HTTP 200 with `{"ok":false,"error":<code>}`, e.g. `channel_not_found`.
    SlackError(String),
}

/// An acknowledgement the bot sent over Socket Mode.
#[derive(Clone, Debug)]
pub struct Ack {
    pub envelope_id: String,
    /// The ack's `payload` (a slash command's immediate answer), if it had one.
    pub payload: Option<Value>,
    /// The connection it came in on, as in [`Pushed::connection`].
    pub connection: u64,
    pub at: Instant,
}

/// A Web API call the bot made.
#[derive(Clone, Debug)]
pub struct ApiCall {
    /// Slack's method name, e.g. `chat.postMessage`.
    pub method: String,
    /// `GET` or `POST`.
    pub http_method: String,
    pub content_type: Option<String>,
    /// Query parameters and body fields in one object. Form values are strings, except `blocks`,
    /// `attachments` and `metadata`, which are decoded from their JSON text when they parse. A
    /// `token` parameter is removed.
    pub params: Value,
    /// The prefix of the token the call carried (`"xoxb"`, `"xapp"`, ..., or `"unknown"`), so tests
    /// can check the right token was used; the token itself is never stored.
    pub token_kind: Option<String>,
    /// The fault this call was answered with, if one was queued.
    pub fault: Option<Fault>,
    pub at: Instant,
}

impl ApiCall {
    /// A string parameter, e.g. `call.param("thread_ts")`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(Value::as_str)
    }
}

/// An envelope the emulator delivered.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub envelope_id: String,
    /// The Events API `event_id`; `None` for slash commands and interactions.
    pub event_id: Option<String>,
    /// The connection that carried it (numbered from 1 in the order connections opened).
    pub connection: u64,
    pub at: Instant,
}

/// A message [`SlackEmulator::post_user_message`] stored and announced.
#[derive(Clone, Debug)]
pub struct UserPost {
    /// The new message's `ts`.
    pub ts: String,
    /// One envelope per event type asked for, in the same order.
    pub pushed: Vec<Pushed>,
}

/// Handle to a running emulator; see the module documentation.
#[derive(Clone)]
pub struct SlackEmulator {
    inner: Arc<Inner>,
}

struct Inner {
    /// Web API and `response_url`s.
    http_addr: SocketAddr,
    /// Socket Mode WebSockets; a second port keeps the raw `TcpStream` in reach for abrupt closes.
    ws_addr: SocketAddr,
    state: Mutex<State>,
    /// Woken on every change of `state`, so `wait_*` need not poll.
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Open connections that received `hello`, by connection number.
    connections: BTreeMap<u64, Connection>,
    /// Last connection number handed out.
    last_connection: u64,
    /// Connections that ever received `hello`.
    connects_total: usize,
    /// Counter behind every generated id (tickets, envelopes, events, triggers).
    last_id: u64,
    /// Tickets from `apps.connections.open` not used yet; each opens one WebSocket.
    tickets: HashSet<String>,
    round_robin: usize,
    acks: Vec<Ack>,
    calls: Vec<ApiCall>,
    responses: Vec<(String, Value)>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Per method: every call answered with this fault until the instant (see `fail_for`).
    outages: HashMap<String, (Fault, Instant)>,
    /// Messages per channel, as Slack returns them (`type`, `ts`, `user`, `text`, ...).
    messages: HashMap<String, Vec<Value>>,
    /// Counter behind `next_ts`.
    last_ts: u64,
    echo_bot_messages: bool,
    /// The waits before each retry of an unacked event (empty: no retries).
    retry_unacked: Vec<Duration>,
    /// Every envelope pushed, by envelope id, for [`SlackEmulator::resend`].
    envelopes: HashMap<String, Value>,
    /// Every envelope delivered (pushes, resends, retries), in order.
    delivered: Vec<Pushed>,
    /// The retries of unacked events sent so far.
    retried: Vec<Pushed>,
}

struct Connection {
    commands: mpsc::UnboundedSender<Command>,
    /// Sent a `disconnect`: Slack delivers nothing more on such a connection.
    draining: bool,
}

enum Command {
    /// Write this text frame.
    Frame(String),
    /// Write this `disconnect` frame, then close after [`DISCONNECT_GRACE`].
    Disconnect(String),
    /// Reset the TCP connection without a close handshake.
    Drop,
}

impl SlackEmulator {
    /// Binds two ports on 127.0.0.1 (Web API, Socket Mode) and starts serving them.
    pub async fn start() -> SlackEmulator {
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the emulator's Web API port on 127.0.0.1");
        let ws = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the emulator's Socket Mode port on 127.0.0.1");
        let inner = Arc::new(Inner {
            http_addr: http.local_addr().expect("local address of a bound socket"),
            ws_addr: ws.local_addr().expect("local address of a bound socket"),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        });
        tokio::spawn(serve_http(inner.clone(), http));
        tokio::spawn(serve_sockets(inner.clone(), ws));
        SlackEmulator { inner }
    }

    /// The Web API base, `http://127.0.0.1:PORT/api` (no trailing slash), for
    /// `SlackClientHyperConnector::with_slack_api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.inner.http_addr)
    }

    /// A URL on the emulator whose POSTs [`SlackEmulator::responses`] records under `id`. Slash
    /// commands and block actions pushed by the emulator use their envelope id.
    pub fn response_url(&self, id: &str) -> String {
        self.inner.response_url(id)
    }

    /// Waits until at least `n` connections are open, got `hello` and were not sent a
    /// `disconnect`; false if that did not happen within `timeout`.
    pub async fn wait_connected(&self, n: usize, timeout: Duration) -> bool {
        self.inner
            .wait_for(timeout, |s| (s.live_connections() >= n).then_some(()))
            .await
            .is_some()
    }

    /// Connections that are open, got `hello` and were not sent a `disconnect`.
    pub fn connection_count(&self) -> usize {
        self.inner.state().live_connections()
    }

    /// Connections that ever got `hello`.
    pub fn connects_total(&self) -> usize {
        self.inner.state().connects_total
    }

    /// Pushes an Events API envelope (`events_api` / `event_callback`) with a fresh `event_id`.
    /// `event` is the inner event, e.g. from [`SlackEmulator::user_event`].
    pub async fn push_event(&self, event: Value) -> Pushed {
        let event_id = self.inner.state().next_id("Ev0EMU");
        self.push_events_api(event_id, 0, event, None).await
    }

    /// Pushes an event the way Slack retries one: the same `event_id`, a new envelope id, and
    /// `retry_attempt` (with `retry_reason` `timeout` when it is above 0).
    pub async fn push_event_with_id(&self, event_id: &str, retry_attempt: u32, event: Value) -> Pushed {
        self.push_events_api(event_id.to_owned(), retry_attempt, event, None)
            .await
    }

    /// Pushes `/netrunbook <text>` typed by `user` in `channel`. Its `response_url` is
    /// `response_url(<envelope id>)`.
    pub async fn push_slash(&self, channel: &str, user: &str, text: &str) -> Pushed {
        let (envelope_id, trigger_id) = {
            let mut s = self.inner.state();
            (s.next_id("emu-envelope-"), s.next_id("emu-trigger-"))
        };
        let frame = json!({
            "envelope_id": envelope_id,
            "type": "slash_commands",
            "accepts_response_payload": true,
            "payload": {
                "token": "emu-verification-token",
                "team_id": TEAM_ID,
                "team_domain": TEAM_DOMAIN,
                "channel_id": channel,
                "channel_name": channel.to_lowercase(),
                "user_id": user,
                "user_name": user.to_lowercase(),
                "command": SLASH_COMMAND,
                "text": text,
                "api_app_id": APP_ID,
                "is_enterprise_install": "false",
                "response_url": self.response_url(&envelope_id),
                "trigger_id": trigger_id,
            }
        });
        self.push_envelope(envelope_id, None, frame).await
    }

    /// Pushes a `block_actions` interaction: `user` clicked the button `action_id` carrying `value`
    /// on the message `message_ts` (in the thread `thread_ts`, if any) in `channel`. When that
    /// message is stored, the payload carries it as `message` and the button's `block_id` and text
    /// come from it. Its `response_url` is `response_url(<envelope id>)`.
    pub async fn push_block_action(
        &self,
        channel: &str,
        user: &str,
        message_ts: &str,
        thread_ts: Option<&str>,
        action_id: &str,
        value: &str,
    ) -> Pushed {
        let (envelope_id, trigger_id, action_ts, stored) = {
            let mut s = self.inner.state();
            let stored = s.find_message(channel, message_ts).cloned();
            (
                s.next_id("emu-envelope-"),
                s.next_id("emu-trigger-"),
                s.next_ts(),
                stored,
            )
        };
        let button = stored.as_ref().and_then(|m| find_button(m, action_id));
        let block_id = button
            .as_ref()
            .and_then(|(block_id, _)| block_id.clone())
            .unwrap_or_else(|| "emu-block".to_owned());
        let mut action = json!({
            "type": "button",
            "action_id": action_id,
            "block_id": block_id,
            "value": value,
            "action_ts": action_ts,
        });
        if let Some(text) = button.and_then(|(_, button)| button.get("text").cloned()) {
            action["text"] = text;
        }
        let mut container = json!({
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": false,
        });
        let message = stored.unwrap_or_else(
            || json!({"type": "message", "ts": message_ts, "text": "", "user": BOT_USER_ID, "bot_id": BOT_ID}),
        );
        if let Some(thread_ts) = thread_ts {
            container["thread_ts"] = json!(thread_ts);
        }
        let frame = json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": false,
            "payload": {
                "type": "block_actions",
                "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": TEAM_ID},
                "api_app_id": APP_ID,
                "token": "emu-verification-token",
                "container": container,
                "trigger_id": trigger_id,
                "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
                "is_enterprise_install": false,
                "channel": {"id": channel, "name": channel.to_lowercase()},
                "message": message,
                "state": {"values": {}},
                "response_url": self.response_url(&envelope_id),
                "actions": [action],
            }
        });
        self.push_envelope(envelope_id, None, frame).await
    }

    /// Sends any text frame (malformed JSON, unknown envelope types) on the next connection.
    /// Returns the connection it went to.
    pub async fn push_raw(&self, text: impl Into<String>) -> u64 {
        self.deliver(text.into()).await.0
    }

    /// Sends `{"type":"disconnect","reason":..,"debug_info":{"host":..}}` on every live
    /// connection and closes each after [`DISCONNECT_GRACE`]. Nothing more is delivered on them;
    /// acks still count. Returns how many connections were told.
    pub async fn disconnect(&self, reason: &str) -> usize {
        let told = {
            let mut s = self.inner.state();
            let mut told = 0;
            for (id, connection) in s.connections.iter_mut().filter(|(_, c)| !c.draining) {
                let frame = json!({
                    "type": "disconnect",
                    "reason": reason,
                    "debug_info": {"host": format!("applink-emu-{id}")},
                });
                connection.draining = true;
                told += usize::from(connection.commands.send(Command::Disconnect(frame.to_string())).is_ok());
            }
            told
        };
        self.inner.changed.notify_waiters();
        told
    }

    /// Resets every open connection (TCP RST, no close frame), as a network failure would.
    /// Returns how many there were.
    pub async fn drop_sockets(&self) -> usize {
        let dropped = {
            let mut s = self.inner.state();
            let mut dropped = 0;
            for connection in s.connections.values_mut() {
                connection.draining = true;
                dropped += usize::from(connection.commands.send(Command::Drop).is_ok());
            }
            dropped
        };
        self.inner.changed.notify_waiters();
        dropped
    }

    /// Every ack received so far, in arrival order.
    pub fn acks(&self) -> Vec<Ack> {
        self.inner.state().acks.clone()
    }

    /// The first ack for `envelope_id`, waiting up to `timeout` for it.
    pub async fn wait_ack(&self, envelope_id: &str, timeout: Duration) -> Option<Ack> {
        self.inner
            .wait_for(timeout, |s| {
                s.acks.iter().find(|a| a.envelope_id == envelope_id).cloned()
            })
            .await
    }

    /// The acks from the `from`-th on (0-based), in arrival order: for tests that follow thousands
    /// of acks without copying them all each time.
    pub fn acks_since(&self, from: usize) -> Vec<Ack> {
        self.inner.state().acks.get(from..).unwrap_or_default().to_vec()
    }

    /// The Web API calls from the `from`-th on (0-based), in arrival order.
    pub fn calls_since(&self, from: usize) -> Vec<ApiCall> {
        self.inner.state().calls.get(from..).unwrap_or_default().to_vec()
    }

    /// Every Web API call so far, in arrival order.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.inner.state().calls.clone()
    }

    /// The calls of one method so far, in arrival order.
    pub fn calls_to(&self, method: &str) -> Vec<ApiCall> {
        self.inner.state().calls_to(method)
    }

    /// Waits until at least `n` calls of `method` arrived and returns all of them; after
    /// `timeout` returns what there is (fewer than `n`).
    pub async fn wait_calls(&self, method: &str, n: usize, timeout: Duration) -> Vec<ApiCall> {
        self.inner
            .wait_for(timeout, |s| Some(s.calls_to(method)).filter(|calls| calls.len() >= n))
            .await
            .unwrap_or_else(|| self.calls_to(method))
    }

    /// POSTs to `response_url`s so far: the id from [`SlackEmulator::response_url`] and the body
    /// (JSON, or `{"raw": <text>}` when it is not JSON).
    pub fn responses(&self) -> Vec<(String, Value)> {
        self.inner.state().responses.clone()
    }

    /// Answers the next call of `method` with `fault`. Faults queue: call it twice to fail two
    /// calls.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        self.inner
            .state()
            .faults
            .entry(method.to_owned())
            .or_default()
            .push_back(fault);
    }

    /// Answers every call of `method` with `fault` for the next `duration` (an outage), after any
    /// faults queued with [`SlackEmulator::fail_next`].
    pub fn fail_for(&self, method: &str, fault: Fault, duration: Duration) {
        self.inner
            .state()
            .outages
            .insert(method.to_owned(), (fault, Instant::now() + duration));
    }

    /// Stores a message (as a person posted it) for `conversations.replies` and block actions;
    /// a message with the same `ts` in `channel` is replaced.
    pub fn add_message(&self, channel: &str, ts: &str, thread_ts: Option<&str>, user: &str, text: &str) {
        let mut message = json!({"type": "message", "user": user, "text": text, "ts": ts, "team": TEAM_ID});
        if let Some(thread_ts) = thread_ts {
            message["thread_ts"] = json!(thread_ts);
        }
        self.inner.state().store_message(channel, message);
    }

    /// Stores `message` (any JSON, e.g. a bot's post with its blocks) in `channel` as it is; a
    /// message with the same `ts` is replaced.
    pub fn add_raw_message(&self, channel: &str, message: Value) {
        self.inner.state().store_message(channel, message);
    }

    /// Another app posts a top-level message (a PagerDuty post, an incoming webhook's `bot_message`):
    /// a `message` event from `bot_id` with `text`, plus `fields` (`attachments`, `blocks`,
    /// `username`, `subtype`...), stored with a fresh `ts` and pushed.
    pub async fn post_app_message(&self, channel: &str, bot_id: &str, text: &str, fields: Value) -> UserPost {
        let ts = self.next_ts();
        let mut event = json!({
            "type": "message",
            "bot_id": bot_id,
            "text": text,
            "ts": ts,
            "team": TEAM_ID,
            "channel": channel,
            "event_ts": ts,
            "channel_type": channel_type(channel),
        });
        if let Value::Object(extra) = fields {
            for (k, v) in extra {
                event[k] = v;
            }
        }
        self.add_raw_message(channel, event.clone());
        let pushed = self.push_event(event).await;
        UserPost {
            ts,
            pushed: vec![pushed],
        }
    }

    /// A stored message of `channel` (as `conversations.replies` would show it).
    pub fn find_message(&self, channel: &str, ts: &str) -> Option<Value> {
        self.inner.state().find_message(channel, ts).cloned()
    }

    /// `user` uses the message shortcut `callback_id` on message `message_ts` of `channel` (a
    /// `message_action` interaction carrying the stored message).
    pub async fn push_message_shortcut(
        &self,
        channel: &str,
        user: &str,
        callback_id: &str,
        message_ts: &str,
    ) -> Pushed {
        let (envelope_id, trigger_id, action_ts, stored) = {
            let mut s = self.inner.state();
            let stored = s.find_message(channel, message_ts).cloned();
            (
                s.next_id("emu-envelope-"),
                s.next_id("emu-trigger-"),
                s.next_ts(),
                stored,
            )
        };
        let message = stored.unwrap_or_else(|| json!({"type": "message", "ts": message_ts, "text": ""}));
        let frame = json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": false,
            "payload": {
                "type": "message_action",
                "token": "emu-verification-token",
                "action_ts": action_ts,
                "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
                "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": TEAM_ID},
                "channel": {"id": channel, "name": channel.to_lowercase()},
                "is_enterprise_install": false,
                "callback_id": callback_id,
                "trigger_id": trigger_id,
                "response_url": self.response_url(&envelope_id),
                "message_ts": message_ts,
                "message": message,
            }
        });
        self.push_envelope(envelope_id, None, frame).await
    }

    /// A channel's stored messages, oldest first.
    pub fn messages(&self, channel: &str) -> Vec<Value> {
        let mut messages = self.inner.state().messages.get(channel).cloned().unwrap_or_default();
        messages.sort_by_key(|m| ts_key(m["ts"].as_str().unwrap_or_default()));
        messages
    }

    /// A fresh `ts`, later than every `ts` the emulator handed out before
    /// (`1700000000.000100`, `1700000000.000200`, ...).
    pub fn next_ts(&self) -> String {
        self.inner.state().next_ts()
    }

    /// The inner event of a person's post, as Slack sends it: `kind` is `message` or
    /// `app_mention`.
    pub fn user_event(kind: &str, channel: &str, user: &str, ts: &str, thread_ts: Option<&str>, text: &str) -> Value {
        let mut event = json!({
            "type": kind,
            "client_msg_id": format!("emu-msg-{ts}"),
            "user": user,
            "text": text,
            "ts": ts,
            "team": TEAM_ID,
            "channel": channel,
            "event_ts": ts,
        });
        if kind == "message" {
            event["channel_type"] = json!(channel_type(channel));
        }
        if let Some(thread_ts) = thread_ts {
            event["thread_ts"] = json!(thread_ts);
        }
        event
    }

    /// A person posts `text`: stores it with a fresh `ts` and pushes one event per entry of
    /// `event_types` (Slack sends both `app_mention` and `message` for a mention when the app
    /// subscribes to both).
    pub async fn post_user_message(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        thread_ts: Option<&str>,
        event_types: &[&str],
    ) -> UserPost {
        let ts = self.next_ts();
        self.add_message(channel, &ts, thread_ts, user, text);
        let mut pushed = Vec::with_capacity(event_types.len());
        for kind in event_types {
            let event = Self::user_event(kind, channel, user, &ts, thread_ts, text);
            pushed.push(self.push_event(event).await);
        }
        UserPost { ts, pushed }
    }

    /// When on, every `chat.postMessage` is followed by the `message` event Slack sends for it
    /// (carrying `bot_id`), as for an app subscribed to `message.channels`. Off by default.
    pub fn set_echo_bot_messages(&self, on: bool) {
        self.inner.state().echo_bot_messages = on;
    }

    /// When `Some(after)`, an Events API envelope not acked within `after` is re-sent like Slack
    /// does (same `event_id`, new envelope, `retry_attempt` + 1, `retry_reason` `timeout`), at
    /// most three times. Slack waits 3 s; tests may pass less. Off (`None`) by default.
    pub fn retry_unacked_events(&self, after: Option<Duration>) {
        let schedule = after.map_or_else(Vec::new, |after| vec![after; MAX_RETRY_ATTEMPT as usize]);
        self.inner.state().retry_unacked = schedule;
    }

    /// As [`SlackEmulator::retry_unacked_events`] with a schedule, as Slack's own (a retry nearly at
    /// once, then after a minute, then after five): retry `n` (from 1) is sent when the envelope
    /// before it was not acked within `waits[n - 1]`; at most three retries (more waits are
    /// ignored), each on the next live connection (round robin). Empty: off.
    pub fn retry_unacked_events_after(&self, waits: &[Duration]) {
        self.inner.state().retry_unacked = waits.iter().take(MAX_RETRY_ATTEMPT as usize).copied().collect();
    }

    /// The retries of unacked events sent so far (see [`SlackEmulator::retry_unacked_events`]).
    pub fn retries(&self) -> Vec<Pushed> {
        self.inner.state().retried.clone()
    }

    /// Every envelope delivered so far (pushes, resends, retries of unacked events), in order.
    pub fn delivered(&self) -> Vec<Pushed> {
        self.inner.state().delivered.clone()
    }

    /// Connections that are open, got `hello` and were not sent a `disconnect`, by number.
    pub fn live_connections(&self) -> Vec<u64> {
        let s = self.inner.state();
        s.connections
            .iter()
            .filter(|(_, c)| !c.draining)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The number of the last connection that was opened (0 before the first): the connections a
    /// bot process opens after this are numbered above it.
    pub fn last_connection(&self) -> u64 {
        self.inner.state().last_connection
    }

    /// As [`SlackEmulator::push_event`], on connection `connection` (as [`Pushed::connection`]
    /// numbers them), as Slack hands an event to whichever connection it picks; waits up to five
    /// seconds for that connection to be live, then panics. Retries of an unacked event (when on)
    /// go round robin, as always.
    pub async fn push_event_on(&self, connection: u64, event: Value) -> Pushed {
        let event_id = self.inner.state().next_id("Ev0EMU");
        self.push_events_api(event_id, 0, event, Some(connection)).await
    }

    /// As [`SlackEmulator::push_event_with_id`], on connection `connection` (see
    /// [`SlackEmulator::push_event_on`]).
    pub async fn push_event_with_id_on(
        &self,
        connection: u64,
        event_id: &str,
        retry_attempt: u32,
        event: Value,
    ) -> Pushed {
        self.push_events_api(event_id.to_owned(), retry_attempt, event, Some(connection))
            .await
    }

    async fn push_events_api(&self, event_id: String, retry_attempt: u32, event: Value, on: Option<u64>) -> Pushed {
        let (envelope_id, schedule) = {
            let mut s = self.inner.state();
            (s.next_id("emu-envelope-"), s.retry_unacked.clone())
        };
        let frame = events_api_frame(&envelope_id, &event_id, retry_attempt, &event);
        let pushed = match on {
            None => self.push_envelope(envelope_id, Some(event_id), frame).await,
            Some(connection) => {
                self.push_envelope_on(connection, envelope_id, Some(event_id), frame)
                    .await
            }
        };
        if !schedule.is_empty() {
            self.schedule_retries(pushed.clone(), retry_attempt, event, schedule);
        }
        pushed
    }

    /// Re-sends an unacked event until it is acked or was retried as often as `schedule` says (at
    /// most three times in all).
    fn schedule_retries(&self, first: Pushed, first_attempt: u32, event: Value, schedule: Vec<Duration>) {
        let emulator = self.clone();
        tokio::spawn(async move {
            let event_id = first.event_id.unwrap_or_default();
            let mut envelope_id = first.envelope_id;
            for (attempt, wait) in (1..=MAX_RETRY_ATTEMPT).zip(schedule).skip(first_attempt as usize) {
                if emulator.wait_ack(&envelope_id, wait).await.is_some() {
                    return;
                }
                envelope_id = emulator.inner.state().next_id("emu-envelope-");
                let frame = events_api_frame(&envelope_id, &event_id, attempt, &event);
                emulator
                    .inner
                    .state()
                    .envelopes
                    .insert(envelope_id.clone(), frame.clone());
                let Some((connection, at)) = emulator.inner.try_deliver(frame.to_string(), DELIVERY_WAIT).await else {
                    return;
                };
                let pushed = Pushed {
                    envelope_id: envelope_id.clone(),
                    event_id: Some(event_id.clone()),
                    connection,
                    at,
                };
                let mut s = emulator.inner.state();
                s.retried.push(pushed.clone());
                s.delivered.push(pushed);
            }
        });
    }

    /// Sends the envelope `pushed` again the way Slack re-sends one it got no ack for in time (or
    /// whose connection dropped): a new `envelope_id`, the same payload, on another live connection
    /// than the one that carried it when there is one (an Events API envelope as a retry:
    /// `retry_attempt` + 1, `retry_reason` `timeout`). Any envelope type: clicks and slash commands
    /// too.
    pub async fn resend(&self, pushed: &Pushed) -> Pushed {
        let (envelope_id, frame) = {
            let mut s = self.inner.state();
            let mut frame = s
                .envelopes
                .get(&pushed.envelope_id)
                .cloned()
                .unwrap_or_else(|| panic!("slack emulator: no envelope {} was pushed", pushed.envelope_id));
            let envelope_id = s.next_id("emu-envelope-");
            frame["envelope_id"] = json!(envelope_id);
            if let Some(attempt) = frame.get("retry_attempt").and_then(Value::as_u64) {
                frame["retry_attempt"] = json!(attempt + 1);
                frame["retry_reason"] = json!("timeout");
            }
            (envelope_id, frame)
        };
        let text = frame.to_string();
        self.inner.state().envelopes.insert(envelope_id.clone(), frame);
        let avoid = pushed.connection;
        let delivered = self
            .inner
            .wait_for(DELIVERY_WAIT, |s| {
                s.send_avoiding(&text, avoid).map(|id| (id, Instant::now()))
            })
            .await;
        let Some((connection, at)) = delivered else {
            panic!("slack emulator: no live Socket Mode connection within {DELIVERY_WAIT:?} to deliver to")
        };
        let resent = Pushed {
            envelope_id,
            event_id: pushed.event_id.clone(),
            connection,
            at,
        };
        self.inner.state().delivered.push(resent.clone());
        resent
    }

    async fn push_envelope(&self, envelope_id: String, event_id: Option<String>, frame: Value) -> Pushed {
        self.inner.state().envelopes.insert(envelope_id.clone(), frame.clone());
        let (connection, at) = self.deliver(frame.to_string()).await;
        let pushed = Pushed {
            envelope_id,
            event_id,
            connection,
            at,
        };
        self.inner.state().delivered.push(pushed.clone());
        pushed
    }

    /// As `push_envelope`, on connection `connection` only.
    async fn push_envelope_on(
        &self,
        connection: u64,
        envelope_id: String,
        event_id: Option<String>,
        frame: Value,
    ) -> Pushed {
        self.inner.state().envelopes.insert(envelope_id.clone(), frame.clone());
        let text = frame.to_string();
        let at = self
            .inner
            .wait_for(DELIVERY_WAIT, |s| s.send_to(&text, connection).then(Instant::now))
            .await
            .unwrap_or_else(|| {
                panic!("slack emulator: connection {connection} was not live within {DELIVERY_WAIT:?} to deliver to")
            });
        let pushed = Pushed {
            envelope_id,
            event_id,
            connection,
            at,
        };
        self.inner.state().delivered.push(pushed.clone());
        pushed
    }

    async fn deliver(&self, frame: String) -> (u64, Instant) {
        match self.inner.try_deliver(frame, DELIVERY_WAIT).await {
            Some(delivered) => delivered,
            None => panic!("slack emulator: no live Socket Mode connection within {DELIVERY_WAIT:?} to deliver to"),
        }
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its failure behind ours.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn response_url(&self, id: &str) -> String {
        format!("http://{}/response/{id}", self.http_addr)
    }

    /// Runs `check` on every change of the state until it yields something or `timeout` passes.
    async fn wait_for<T>(&self, timeout: Duration, mut check: impl FnMut(&mut State) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Register before checking, so a change between the check and the wait is not missed.
            notified.as_mut().enable();
            if let Some(found) = check(&mut self.state()) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return check(&mut self.state());
            }
        }
    }

    /// Hands `frame` to one live connection, waiting up to `wait` for one to exist.
    async fn try_deliver(&self, frame: String, wait: Duration) -> Option<(u64, Instant)> {
        self.wait_for(wait, |s| s.send_round_robin(&frame).map(|id| (id, Instant::now())))
            .await
    }

    fn record_client_frame(&self, connection: u64, text: &str) {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(envelope_id) = frame.get("envelope_id").and_then(Value::as_str) else {
            return;
        };
        let ack = Ack {
            envelope_id: envelope_id.to_owned(),
            payload: frame.get("payload").cloned(),
            connection,
            at: Instant::now(),
        };
        self.state().acks.push(ack);
        self.changed.notify_waiters();
    }
}

impl State {
    fn next_id(&mut self, prefix: &str) -> String {
        self.last_id += 1;
        format!("{prefix}{:06}", self.last_id)
    }

    fn next_ts(&mut self) -> String {
        self.last_ts += 1;
        let micros = self.last_ts * 100;
        format!("{}.{:06}", FIRST_TS_SECS + micros / 1_000_000, micros % 1_000_000)
    }

    fn live_connections(&self) -> usize {
        self.connections.values().filter(|c| !c.draining).count()
    }

    fn calls_to(&self, method: &str) -> Vec<ApiCall> {
        self.calls.iter().filter(|c| c.method == method).cloned().collect()
    }

    /// Queues `frame` on the next live connection; `None` if there is none.
    fn send_round_robin(&mut self, frame: &str) -> Option<u64> {
        self.send_among(frame, |_| true)
    }

    /// Queues `frame` on the next live connection that `allowed` accepts (round robin); `None` if
    /// there is none.
    fn send_among(&mut self, frame: &str, allowed: impl Fn(u64) -> bool) -> Option<u64> {
        loop {
            let live: Vec<u64> = self
                .connections
                .iter()
                .filter(|(id, c)| !c.draining && allowed(**id))
                .map(|(id, _)| *id)
                .collect();
            if live.is_empty() {
                return None;
            }
            let id = live[self.round_robin % live.len()];
            self.round_robin = self.round_robin.wrapping_add(1);
            if self.connections[&id]
                .commands
                .send(Command::Frame(frame.to_owned()))
                .is_ok()
            {
                return Some(id);
            }
            // Its task ended between closing and deregistering.
            self.connections.remove(&id);
        }
    }

    /// Queues `frame` on connection `id` if it is live (the round robin is left as it was).
    fn send_to(&mut self, frame: &str, id: u64) -> bool {
        match self.connections.get(&id) {
            Some(c) if !c.draining => {
                if c.commands.send(Command::Frame(frame.to_owned())).is_ok() {
                    return true;
                }
                // its task ended between closing and deregistering
                self.connections.remove(&id);
                false
            }
            _ => false,
        }
    }

    /// Queues `frame` on a live connection other than `avoid` (round robin among them), or on
    /// `avoid` when it is the only one; `None` if there is none.
    fn send_avoiding(&mut self, frame: &str, avoid: u64) -> Option<u64> {
        let others = self.connections.iter().any(|(id, c)| *id != avoid && !c.draining);
        self.send_among(frame, |id| !others || id != avoid)
    }

    fn find_message(&self, channel: &str, ts: &str) -> Option<&Value> {
        self.messages.get(channel)?.iter().find(|m| m["ts"] == ts)
    }

    fn store_message(&mut self, channel: &str, message: Value) {
        let messages = self.messages.entry(channel.to_owned()).or_default();
        match messages.iter_mut().find(|m| m["ts"] == message["ts"]) {
            Some(existing) => *existing = message,
            None => messages.push(message),
        }
    }
}

/// The `events_api` envelope around `event`.
fn events_api_frame(envelope_id: &str, event_id: &str, retry_attempt: u32, event: &Value) -> Value {
    let event_time = event
        .get("event_ts")
        .and_then(Value::as_str)
        .and_then(|ts| ts.split('.').next()?.parse::<u64>().ok())
        .unwrap_or(FIRST_TS_SECS);
    json!({
        "envelope_id": envelope_id,
        "type": "events_api",
        "accepts_response_payload": false,
        "retry_attempt": retry_attempt,
        "retry_reason": if retry_attempt > 0 { "timeout" } else { "" },
        "payload": {
            "token": "emu-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": event_time,
            "authorizations": [{
                "enterprise_id": null,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": true,
                "is_enterprise_install": false,
            }],
            "is_ext_shared_channel": false,
            "event_context": format!("4-emu-{event_id}"),
        }
    })
}

/// Slack's `channel_type` for a channel id: `D…` direct message, `G…` private, else public.
fn channel_type(channel: &str) -> &'static str {
    match channel.chars().next() {
        Some('D') => "im",
        Some('G') => "group",
        _ => "channel",
    }
}

/// The `block_id` of the block holding the element `action_id`, and the element.
fn find_button(message: &Value, action_id: &str) -> Option<(Option<String>, Value)> {
    for block in message.get("blocks")?.as_array()? {
        let accessory = block.get("accessory").into_iter();
        let elements = block.get("elements").and_then(Value::as_array).into_iter().flatten();
        if let Some(element) = accessory.chain(elements).find(|e| e["action_id"] == action_id) {
            let block_id = block.get("block_id").and_then(Value::as_str).map(str::to_owned);
            return Some((block_id, element.clone()));
        }
    }
    None
}

/// Orders `ts` values numerically (`"1700000000.000100"` → `(1700000000, 100)`).
fn ts_key(ts: &str) -> (u64, u64) {
    let (secs, micros) = ts.split_once('.').unwrap_or((ts, "0"));
    (secs.parse().unwrap_or(0), micros.parse().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Socket Mode

async fn serve_sockets(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_socket(inner.clone(), stream));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// One Socket Mode connection: handshake (ticket checked), `hello`, then frames both ways.
async fn serve_socket(inner: Arc<Inner>, stream: TcpStream) {
    let tickets = inner.clone();
    // The error type is tungstenite's, dictated by its `Callback` trait.
    #[allow(clippy::result_large_err)]
    let check_ticket = move |request: &HandshakeRequest, response: HandshakeResponse| {
        let ticket = request
            .uri()
            .query()
            .and_then(|query| parse_form(query).into_iter().find(|(k, _)| k == "ticket"))
            .map(|(_, ticket)| ticket);
        if ticket.is_some_and(|ticket| tickets.state().tickets.remove(&ticket)) {
            Ok(response)
        } else {
            let mut rejection = ErrorResponse::new(Some("invalid or used ticket".to_owned()));
            *rejection.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
            Err(rejection)
        }
    };
    let handshake = tokio_tungstenite::accept_hdr_async(stream, check_ticket);
    let Ok(Ok(mut ws)) = tokio::time::timeout(Duration::from_secs(5), handshake).await else {
        return;
    };

    let (commands, receiver) = mpsc::unbounded_channel();
    let (id, hello) = {
        let mut s = inner.state();
        s.last_connection += 1;
        let hello = json!({
            "type": "hello",
            "num_connections": s.live_connections() + 1,
            "connection_info": {"app_id": APP_ID},
            "debug_info": {
                "host": format!("applink-emu-{}", s.last_connection),
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
        });
        (s.last_connection, hello)
    };
    // `hello` goes out before the connection is registered, so no envelope can overtake it.
    if ws.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    {
        let mut s = inner.state();
        s.connects_total += 1;
        s.connections.insert(
            id,
            Connection {
                commands,
                draining: false,
            },
        );
    }
    inner.changed.notify_waiters();

    run_socket(&inner, id, ws, receiver).await;

    inner.state().connections.remove(&id);
    inner.changed.notify_waiters();
}

/// What a connection's timer does when it fires.
enum Timer {
    /// The disconnect grace is over: send a close frame.
    Close,
    /// The peer did not finish the close handshake: drop the connection.
    GiveUp,
}

async fn run_socket(
    inner: &Inner,
    id: u64,
    mut ws: WebSocketStream<TcpStream>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut timer: Option<(Instant, Timer)> = None;
    loop {
        let deadline = timer.as_ref().map(|(at, _)| *at);
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Frame(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                Some(Command::Disconnect(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                    timer = Some((Instant::now() + DISCONNECT_GRACE, Timer::Close));
                }
                Some(Command::Drop) | None => {
                    // SO_LINGER 0: closing sends RST instead of FIN.
                    let _ = ws.get_ref().set_zero_linger();
                    return;
                }
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => inner.record_client_frame(id, text.as_str()),
                // Pings and close frames are answered by tungstenite while reading.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            () = sleep_until(deadline) => match timer.take() {
                Some((_, Timer::Close)) => {
                    let _ = ws.send(Message::Close(None)).await;
                    timer = Some((Instant::now() + Duration::from_secs(1), Timer::GiveUp));
                }
                Some((_, Timer::GiveUp)) | None => return,
            },
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------
// Web API and response URLs

type HttpResponse = Response<Full<Bytes>>;

async fn serve_http(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle_http(&inner, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle_http(inner: &Arc<Inner>, request: Request<Incoming>) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|collected| collected.to_bytes()) else {
        return json_response(StatusCode::BAD_REQUEST, &json!({"ok": false, "error": "invalid_body"}));
    };
    let path = parts.uri.path().to_owned();
    if let Some(method) = path.strip_prefix("/api/") {
        web_api(inner, method, &parts, &body).await
    } else if let Some(id) = path.strip_prefix("/response/") {
        let posted = serde_json::from_slice(&body).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)}));
        inner.state().responses.push((id.to_owned(), posted));
        inner.changed.notify_waiters();
        json_response(StatusCode::OK, &json!({"ok": true}))
    } else {
        json_response(StatusCode::NOT_FOUND, &json!({"ok": false, "error": "not_found"}))
    }
}

const KNOWN_METHODS: [&str; 7] = [
    "apps.connections.open",
    "auth.test",
    "chat.postMessage",
    "chat.postEphemeral",
    "chat.update",
    "chat.getPermalink",
    "conversations.replies",
];

async fn web_api(inner: &Arc<Inner>, method: &str, parts: &Parts, body: &Bytes) -> HttpResponse {
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (mut params, malformed) = request_params(parts.uri.query(), content_type.as_deref(), body);
    let body_token = params.remove("token").and_then(|t| t.as_str().map(str::to_owned));
    let header_token = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token_kind = header_token.or(body_token).map(|token| token_kind(&token));

    let fault = {
        let mut s = inner.state();
        let fault = s.faults.get_mut(method).and_then(VecDeque::pop_front).or_else(|| {
            s.outages
                .get(method)
                .filter(|(_, until)| Instant::now() < *until)
                .map(|(fault, _)| fault.clone())
        });
        s.calls.push(ApiCall {
            method: method.to_owned(),
            http_method: parts.method.to_string(),
            content_type,
            params: Value::Object(params.clone()),
            token_kind: token_kind.clone(),
            fault: fault.clone(),
            at: Instant::now(),
        });
        fault
    };
    inner.changed.notify_waiters();

    match fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut response = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"ok": false, "error": "ratelimited"}),
            );
            response.headers_mut().insert(
                RETRY_AFTER,
                retry_after_secs.to_string().parse().expect("digits are a valid header"),
            );
            return response;
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return json_response(status, &json!({"ok": false, "error": format!("emulated_http_{code}")}));
        }
        Some(Fault::SlackError(code)) => return json_response(StatusCode::OK, &slack_error(&code)),
        Some(Fault::Hang(delay)) => {
            // as on Slack, the call takes effect after the delay even when the caller stopped waiting
            let (inner, method) = (inner.clone(), method.to_owned());
            let later = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let answer = checked_answer(&inner, &method, &params, malformed, token_kind.as_deref());
                inner.changed.notify_waiters();
                answer
            });
            let answer = later.await.unwrap_or_else(|_| slack_error("internal_error"));
            return json_response(StatusCode::OK, &answer);
        }
        None => {}
    }
    let answer = checked_answer(inner, method, &params, malformed, token_kind.as_deref());
    json_response(StatusCode::OK, &answer)
}

/// The answer to a call that reached the method: an error for an unknown method, a malformed body or
/// the wrong token, else what the method does.
fn checked_answer(
    inner: &Inner,
    method: &str,
    params: &Map<String, Value>,
    malformed: bool,
    token: Option<&str>,
) -> Value {
    if !KNOWN_METHODS.contains(&method) {
        slack_error("unknown_method")
    } else if malformed {
        slack_error("invalid_json")
    } else if let Err(code) = check_token(method, token) {
        slack_error(code)
    } else {
        answer(inner, method, params)
    }
}

/// Query parameters and body fields in one object, and whether a JSON body failed to parse.
fn request_params(query: Option<&str>, content_type: Option<&str>, body: &[u8]) -> (Map<String, Value>, bool) {
    let mut params = Map::new();
    for (key, value) in query.map(parse_form).unwrap_or_default() {
        params.insert(key.clone(), form_value(&key, value));
    }
    let mut malformed = false;
    if !body.is_empty() {
        if content_type.is_some_and(|t| t.starts_with("application/json")) {
            match serde_json::from_slice(body) {
                Ok(Value::Object(fields)) => params.extend(fields),
                _ => malformed = true,
            }
        } else {
            for (key, value) in parse_form(&String::from_utf8_lossy(body)) {
                params.insert(key.clone(), form_value(&key, value));
            }
        }
    }
    (params, malformed)
}

/// Form fields that carry JSON in Slack's API are decoded; everything else stays a string.
fn form_value(key: &str, value: String) -> Value {
    if matches!(key, "blocks" | "attachments" | "metadata") {
        if let Ok(decoded) = serde_json::from_str(&value) {
            return decoded;
        }
    }
    Value::String(value)
}

fn token_kind(token: &str) -> String {
    match token.split('-').next() {
        Some(prefix @ ("xoxb" | "xoxp" | "xapp" | "xoxe" | "xoxa")) => prefix.to_owned(),
        _ => "unknown".to_owned(),
    }
}

fn check_token(method: &str, kind: Option<&str>) -> Result<(), &'static str> {
    match kind {
        None => Err("not_authed"),
        Some("unknown") => Err("invalid_auth"),
        Some(kind) if method == "apps.connections.open" && kind != "xapp" => Err("not_allowed_token_type"),
        Some("xapp") if !matches!(method, "apps.connections.open" | "auth.test") => Err("not_allowed_token_type"),
        Some(_) => Ok(()),
    }
}

fn answer(inner: &Inner, method: &str, params: &Map<String, Value>) -> Value {
    let param = |key: &str| params.get(key).and_then(Value::as_str).filter(|v| !v.is_empty());
    match method {
        "apps.connections.open" => {
            let ticket = {
                let mut s = inner.state();
                let ticket = s.next_id("emu-ticket-");
                s.tickets.insert(ticket.clone());
                ticket
            };
            json!({"ok": true, "url": format!("ws://{}/link/?ticket={ticket}&app_id={APP_ID}", inner.ws_addr)})
        }
        "auth.test" => json!({
            "ok": true,
            "url": format!("https://{TEAM_DOMAIN}.slack.com/"),
            "team": "Netrunbook Emulator",
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": false,
        }),
        "chat.postMessage" => {
            let Some(channel) = param("channel") else {
                return slack_error("channel_not_found");
            };
            if let Err(error) = check_content(params) {
                return error;
            }
            let (message, echo) = {
                let mut s = inner.state();
                let mut message = json!({
                    "type": "message",
                    "user": BOT_USER_ID,
                    "bot_id": BOT_ID,
                    "app_id": APP_ID,
                    "team": TEAM_ID,
                    "text": param("text").unwrap_or_default(),
                    "ts": s.next_ts(),
                });
                if let Some(thread_ts) = param("thread_ts") {
                    message["thread_ts"] = json!(thread_ts);
                }
                for key in ["blocks", "attachments", "metadata"] {
                    if let Some(value) = params.get(key) {
                        message[key] = value.clone();
                    }
                }
                s.store_message(channel, message.clone());
                (message, s.echo_bot_messages)
            };
            if echo {
                echo_bot_message(inner, channel, &message);
            }
            json!({"ok": true, "channel": channel, "ts": message["ts"], "message": message})
        }
        "chat.postEphemeral" => {
            let (Some(_channel), Some(_user)) = (param("channel"), param("user")) else {
                return slack_error("channel_not_found");
            };
            if let Err(error) = check_content(params) {
                return error;
            }
            json!({"ok": true, "message_ts": inner.state().next_ts()})
        }
        "chat.update" => {
            let (Some(channel), Some(ts)) = (param("channel"), param("ts")) else {
                return slack_error("message_not_found");
            };
            if let Err(error) = check_content(params) {
                return error;
            }
            let mut s = inner.state();
            let edited_ts = s.next_ts();
            let Some(message) = s
                .messages
                .get_mut(channel)
                .and_then(|messages| messages.iter_mut().find(|m| m["ts"] == ts))
            else {
                return slack_error("message_not_found");
            };
            if message["bot_id"] != BOT_ID {
                return slack_error("cant_update_message");
            }
            for key in ["text", "blocks", "attachments"] {
                if let Some(value) = params.get(key) {
                    message[key] = value.clone();
                }
            }
            message["edited"] = json!({"user": BOT_USER_ID, "ts": edited_ts});
            json!({"ok": true, "channel": channel, "ts": ts, "text": message["text"], "message": message})
        }
        "chat.getPermalink" => {
            let (Some(channel), Some(ts)) = (param("channel"), param("message_ts")) else {
                return slack_error("channel_not_found");
            };
            let s = inner.state();
            let Some(message) = s.find_message(channel, ts) else {
                return slack_error("message_not_found");
            };
            let mut permalink = format!(
                "https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{}",
                ts.replace('.', "")
            );
            if let Some(thread_ts) = message["thread_ts"].as_str().filter(|t| *t != ts) {
                permalink.push_str(&format!("?thread_ts={thread_ts}&cid={channel}"));
            }
            json!({"ok": true, "channel": channel, "permalink": permalink})
        }
        "conversations.replies" => {
            let (Some(channel), Some(ts)) = (param("channel"), param("ts")) else {
                return slack_error("channel_not_found");
            };
            let limit = param("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(1000)
                .max(1);
            let offset = param("cursor")
                .and_then(|c| c.strip_prefix("emu-cursor-"))
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(0);
            thread_page(&inner.state(), channel, ts, offset, limit)
        }
        _ => slack_error("unknown_method"),
    }
}

/// One page of `conversations.replies`: the root (with `reply_count` etc. when it has replies)
/// and its replies, oldest first.
fn thread_page(s: &State, channel: &str, ts: &str, offset: usize, limit: usize) -> Value {
    let Some(target) = s.find_message(channel, ts) else {
        return slack_error("thread_not_found");
    };
    let root_ts = target["thread_ts"].as_str().unwrap_or(ts).to_owned();
    let mut thread: Vec<Value> = s.messages[channel]
        .iter()
        .filter(|m| m["ts"] == root_ts.as_str() || m["thread_ts"] == root_ts.as_str())
        .cloned()
        .collect();
    thread.sort_by_key(|m| ts_key(m["ts"].as_str().unwrap_or_default()));
    let replies: Vec<&Value> = thread.iter().filter(|m| m["ts"] != root_ts.as_str()).collect();
    let reply_count = replies.len();
    let latest_reply = replies.last().map(|m| m["ts"].clone());
    let mut reply_users: Vec<Value> = Vec::new();
    for user in replies.iter().map(|m| m["user"].clone()) {
        if !reply_users.contains(&user) {
            reply_users.push(user);
        }
    }
    if let Some(root) = thread.iter_mut().find(|m| m["ts"] == root_ts.as_str()) {
        if reply_count > 0 {
            root["thread_ts"] = json!(root_ts);
            root["reply_count"] = json!(reply_count);
            root["reply_users_count"] = json!(reply_users.len());
            root["reply_users"] = Value::Array(reply_users);
            root["latest_reply"] = latest_reply.unwrap_or(Value::Null);
        }
    }
    let page: Vec<Value> = thread.iter().skip(offset).take(limit).cloned().collect();
    let has_more = offset + page.len() < thread.len();
    let next_cursor = if has_more {
        format!("emu-cursor-{}", offset + page.len())
    } else {
        String::new()
    };
    json!({
        "ok": true,
        "messages": page,
        "has_more": has_more,
        "response_metadata": {"next_cursor": next_cursor},
    })
}

/// Pushes the `message` event Slack sends to an app subscribed to `message.channels` for the
/// bot's own post. It may reach the bot before the HTTP answer does, as with Slack. Best effort:
/// dropped if no connection is open.
fn echo_bot_message(inner: &Inner, channel: &str, message: &Value) {
    let mut event = message.clone();
    event["channel"] = json!(channel);
    event["event_ts"] = message["ts"].clone();
    event["channel_type"] = json!(channel_type(channel));
    let (envelope_id, event_id) = {
        let mut s = inner.state();
        (s.next_id("emu-envelope-"), s.next_id("Ev0EMU"))
    };
    let frame = events_api_frame(&envelope_id, &event_id, 0, &event).to_string();
    // No waiting for a connection: the HTTP answer must not depend on one.
    inner.state().send_round_robin(&frame);
    inner.changed.notify_waiters();
}

/// Checks a message's content the way Slack does before posting it.
fn check_content(params: &Map<String, Value>) -> Result<(), Value> {
    let text = params.get("text").and_then(Value::as_str).unwrap_or_default();
    let blocks = params
        .get("blocks")
        .filter(|b| b.as_array().is_none_or(|a| !a.is_empty()));
    let attachments = params.get("attachments");
    if text.is_empty() && blocks.is_none() && attachments.is_none() {
        return Err(slack_error("no_text"));
    }
    if text.chars().count() > 40_000 {
        return Err(slack_error("msg_too_long"));
    }
    match blocks.map(block_problems) {
        Some(problems) if !problems.is_empty() => {
            let messages: Vec<String> = problems.iter().map(|p| format!("[ERROR] {p}")).collect();
            Err(json!({
                "ok": false,
                "error": "invalid_blocks",
                "errors": problems,
                "response_metadata": {"messages": messages},
            }))
        }
        _ => Ok(()),
    }
}

/// Block Kit limits Slack enforces, as Slack words them (`... [json-pointer:/blocks/0/text/text]`).
fn block_problems(blocks: &Value) -> Vec<String> {
    let Some(blocks) = blocks.as_array() else {
        return vec!["must be an array [json-pointer:/blocks]".to_owned()];
    };
    let mut problems = Vec::new();
    let mut too_long = |value: Option<&Value>, max: usize, at: String| {
        if value.and_then(Value::as_str).is_some_and(|s| s.chars().count() > max) {
            problems.push(format!("must be less than {} characters [json-pointer:{at}]", max + 1));
        }
    };
    let mut structural = Vec::new();
    if blocks.len() > 50 {
        structural.push("no more than 50 items allowed [json-pointer:/blocks]".to_owned());
    }
    let mut block_ids = HashSet::new();
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("/blocks/{i}");
        if let Some(block_id) = block.get("block_id").and_then(Value::as_str) {
            too_long(block.get("block_id"), 255, format!("{at}/block_id"));
            if !block_ids.insert(block_id) {
                structural.push(format!("duplicate block_id [json-pointer:{at}/block_id]"));
            }
        }
        let mut elements: Vec<(String, &Value)> = Vec::new();
        match block.get("type").and_then(Value::as_str) {
            Some("section") => {
                let text = block.get("text");
                let fields = block.get("fields").and_then(Value::as_array);
                if text.is_none() && fields.is_none() {
                    structural.push(format!("must provide either text or fields [json-pointer:{at}]"));
                }
                too_long(block.pointer("/text/text"), 3000, format!("{at}/text/text"));
                if let Some(fields) = fields {
                    if fields.len() > 10 {
                        structural.push(format!("no more than 10 items allowed [json-pointer:{at}/fields]"));
                    }
                    for (j, field) in fields.iter().enumerate() {
                        too_long(field.get("text"), 2000, format!("{at}/fields/{j}/text"));
                    }
                }
                if let Some(accessory) = block.get("accessory") {
                    elements.push((format!("{at}/accessory"), accessory));
                }
            }
            Some("header") => too_long(block.pointer("/text/text"), 150, format!("{at}/text/text")),
            Some("context") => {
                let count = block.get("elements").and_then(Value::as_array).map_or(0, Vec::len);
                if count == 0 || count > 10 {
                    structural.push(format!("must have between 1 and 10 items [json-pointer:{at}/elements]"));
                }
            }
            Some("actions") => {
                let actions = block.get("elements").and_then(Value::as_array);
                let count = actions.map_or(0, Vec::len);
                if count == 0 || count > 25 {
                    structural.push(format!("must have between 1 and 25 items [json-pointer:{at}/elements]"));
                }
                for (j, element) in actions.into_iter().flatten().enumerate() {
                    elements.push((format!("{at}/elements/{j}"), element));
                }
            }
            Some("divider" | "image" | "rich_text" | "input" | "markdown" | "video" | "file") => {}
            Some(other) => structural.push(format!("unsupported type `{other}` [json-pointer:{at}/type]")),
            None => structural.push(format!("missing required field: type [json-pointer:{at}]")),
        }
        let mut action_ids = HashSet::new();
        for (at, element) in elements {
            if let Some(action_id) = element.get("action_id").and_then(Value::as_str) {
                too_long(element.get("action_id"), 255, format!("{at}/action_id"));
                if !action_ids.insert(action_id) {
                    structural.push(format!("duplicate action_id [json-pointer:{at}/action_id]"));
                }
            }
            if element["type"] == "button" {
                too_long(element.pointer("/text/text"), 75, format!("{at}/text/text"));
                too_long(element.get("value"), 2000, format!("{at}/value"));
                too_long(element.get("url"), 3000, format!("{at}/url"));
            }
        }
    }
    problems.extend(structural);
    problems
}

fn slack_error(code: &str) -> Value {
    json!({"ok": false, "error": code})
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json; charset=utf-8".parse().expect("a valid header value"),
    );
    response
}

/// Splits `a=1&b=x+y` into decoded pairs.
fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                i += 1;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
