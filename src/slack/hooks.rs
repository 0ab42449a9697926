//! What the socket side reports to the [`Engine`], and the admin work it starts: connections up and
//! down (readiness, reconnects), slash commands (the acknowledgement's payload; admin commands run
//! on a task and answer privately), and knowledge-base reloads (SIGHUP).
//!
//! **Contract with the Socket Mode listener:** call [`Engine::socket_up`] on each `hello`,
//! [`Engine::socket_down`] when that connection ends, [`Engine::dispatch`] for events and clicks, and
//! acknowledge a slash command with the payload [`Engine::command`] returns.

use std::collections::BTreeSet;
use std::sync::Arc;

use tracing::{error, Instrument, Span};

use super::{blocks, unix_now, Engine};
use crate::bot::{CommandReply, Outbound, SlashCommand};
use crate::store::Store;

/// Socket Mode connections by number.
#[derive(Debug, Default)]
pub(super) struct Sockets {
    /// Greeted and not lost since.
    live: BTreeSet<usize>,
    /// Every connection number ever greeted: a second greeting is a reconnect.
    ever: BTreeSet<usize>,
}

impl<S: Store + 'static> Engine<S> {
    /// Socket Mode connection `n` was greeted (`hello`): the bot can take events.
    pub fn socket_up(&self, n: usize) {
        let mut s = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        s.live.insert(n);
        if !s.ever.insert(n) {
            self.bot.metrics().reconnected();
        }
        self.bot.metrics().set_socket_connections(s.live.len());
    }

    /// Socket Mode connection `n` ended (it may come back).
    pub fn socket_down(&self, n: usize) {
        let mut s = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        s.live.remove(&n);
        self.bot.metrics().set_socket_connections(s.live.len());
    }

    /// The acknowledgement payload for `/netrunbook <text>`. An admin command is acknowledged at
    /// once and runs on a task of its own, which shows its result to the user privately.
    pub fn command(self: &Arc<Self>, cmd: SlashCommand) -> Option<serde_json::Value> {
        self.bot.metrics().event_received("command");
        let kb = self.bot.kb();
        match self.bot.command(&cmd, unix_now()) {
            CommandReply::Now(message) => blocks::ack_payload(&kb, &message),
            CommandReply::Later { ack, task } => {
                let engine = self.clone();
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
                        engine.deliver(&engine.bot.kb(), out).await;
                    }
                    .instrument(span),
                );
                blocks::ack_payload(&kb, &ack)
            }
        }
    }

    /// Reload the knowledge base (SIGHUP); the outcome is logged and counted.
    pub async fn reload_kb(self: &Arc<Self>, trigger: &'static str) {
        let engine = self.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || engine.bot.reload_kb(trigger)).await {
            error!(error = %e, "reloading the knowledge base panicked");
        }
    }
}
