//! What the socket side reports to the [`Engine`], and the admin work it starts: connections up and
//! down (readiness, reconnects), slash commands (the acknowledgement's message; admin commands run
//! on a task and answer privately), and knowledge-base reloads (SIGHUP).
//!
//! **Contract with the Socket Mode listener** (`socket`): call [`Engine::socket_up`] from the `hello`
//! callback, [`Engine::socket_down`] when slack-morphism drops that connection (the watch's
//! [`Seen::Lost`](super::watch::Seen::Lost)) and [`Engine::sockets_closed`] once the listener is shut
//! down, [`Engine::dispatch`] for events and clicks, and acknowledge a slash command with the message
//! [`Engine::command`] returns.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use slack_morphism::SlackSocketModeWssClientId;
use tracing::{error, Instrument, Span};

use super::blocks::{self, Rendered};
use super::{unix_now, Engine};
use crate::store::Store;
use crate::vocab::{CommandReply, Outbound, SlashCommand};

/// A connection's key: slack-morphism's `(initial index, token index, reconnects)`, or for a `hello`
/// whose connection is unknown (no watch layer), a number of our own above every real one.
type Key = (u32, u32, u64);

/// Socket Mode connections.
#[derive(Debug, Default)]
pub(super) struct Sockets {
    /// Greeted and not lost since.
    live: BTreeSet<Key>,
    /// Every slot ever greeted: a second greeting in a slot is a reconnect.
    ever: BTreeSet<u32>,
    /// Greetings on an unknown connection so far.
    unknown: u64,
}

impl<S: Store + 'static> Engine<S> {
    /// A Socket Mode connection was greeted (`hello`): the bot can take events. `connection` is the
    /// one the frame came on, when the watch knows it. Returns the connections opened so far and the
    /// number open now.
    pub(crate) fn socket_up(&self, connection: Option<&SlackSocketModeWssClientId>) -> (u64, usize) {
        let connects = self.connects.fetch_add(1, Ordering::Relaxed) + 1;
        let mut s = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        let (key, slot) = match connection {
            Some(c) => ((c.initial_index, c.token_index, c.reconnected), Some(c.initial_index)),
            None => {
                s.unknown += 1;
                ((u32::MAX, u32::MAX, s.unknown), None)
            }
        };
        let reconnect = match slot {
            Some(slot) => !s.ever.insert(slot),
            // without the connection: every greeting after the first round is a reconnect
            None => connects > self.tuning.connections.max(1) as u64,
        };
        s.live.insert(key);
        if reconnect {
            self.bot.metrics().reconnected();
        }
        self.bot.metrics().set_socket_connections(s.live.len());
        (connects, s.live.len())
    }

    /// slack-morphism dropped `connection` (it opens another in its place). A connection that was
    /// never greeted, or already dropped, changes nothing. Returns the number open now.
    pub(crate) fn socket_down(&self, connection: &SlackSocketModeWssClientId) -> usize {
        let mut s = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        s.live
            .remove(&(connection.initial_index, connection.token_index, connection.reconnected));
        self.bot.metrics().set_socket_connections(s.live.len());
        s.live.len()
    }

    /// The listener was shut down: no connection is open any more.
    pub(crate) fn sockets_closed(&self) {
        let mut s = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        s.live.clear();
        self.bot.metrics().set_socket_connections(0);
    }

    /// The acknowledgement message for `/netrunbook <text>`. An admin command is acknowledged at
    /// once and runs on a task of its own, which shows its result to the user privately.
    pub fn command(self: &Arc<Self>, cmd: SlashCommand) -> Option<Rendered> {
        self.bot.metrics().event_received("command");
        let kb = self.bot.kb();
        match self.bot.command(&kb, &cmd, unix_now()) {
            CommandReply::Now(message) => blocks::render(&message, &kb.version).into_iter().next(),
            CommandReply::Later { ack, task } => {
                let engine = self.clone();
                let version = kb.version.clone();
                let span = Span::current();
                self.tasks.spawn(
                    async move {
                        let worker = engine.clone();
                        let message =
                            match tokio::task::spawn_blocking(move || worker.bot.admin(task, "slash command")).await {
                                Ok(m) => m,
                                Err(e) => {
                                    error!(error = %e, "an admin command panicked");
                                    return;
                                }
                            };
                        let out = Outbound::Ephemeral {
                            channel: cmd.channel,
                            user: cmd.user,
                            thread_ts: None,
                            message,
                        };
                        if let Err(e) = engine.deliver(&version, &out, None, None).await {
                            error!(error = %crate::error::error_chain(&e), "could not deliver an admin command's result");
                        }
                    }
                    .instrument(span),
                );
                blocks::render(&ack, &kb.version).into_iter().next()
            }
        }
    }

    /// Reload the knowledge base (SIGHUP); the outcome is logged and counted.
    pub(crate) async fn reload_kb(self: &Arc<Self>, trigger: &'static str) {
        let engine = self.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || engine.bot.reload_kb(trigger)).await {
            error!(error = %e, "reloading the knowledge base panicked");
        }
    }
}
