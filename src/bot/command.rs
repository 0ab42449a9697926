//! The slash command `/netrunbook <text>`: the answer or the topic list, privately, at once; the
//! admin commands `reload` and `report`, acknowledged at once and run off the socket.

use tracing::{debug, error, info, warn};

use crate::dialogue::{self, Input, Reply};
use crate::error::error_chain;
use crate::kb::{KnowledgeBase, ReloadError, Reloaded};
use crate::metrics::Duplicate;
use crate::report::{self, Report};
use crate::store::Store;
use crate::vocab::{AdminTask, CommandReply, Message, SlashCommand};

use super::route::HELP_WORDS;
use super::{record_intent, Bot, Outcome};

impl<S: Store> Bot<S> {
    /// The answer to `/netrunbook <text>` with `kb`: the topic list or the answer, privately; the admin
    /// commands `reload` and `report` (refused to others); a note outside the allowed channels.
    ///
    /// A copy Slack re-sends (the same `key`) gets the same answer without its side effects: the
    /// answer is not counted or kept for the report again and an admin task is not started again.
    /// Not an empty acknowledgement: the answer rides on the ack, and Slack re-sends a command
    /// when it did not get the first ack (a dropped connection, a slow one), so the person may
    /// not have seen the first answer at all; answering again is pure, starting work twice is not.
    pub fn command(&self, kb: &KnowledgeBase, cmd: &SlashCommand, now: u64) -> CommandReply {
        let first = self.first_command(cmd, now);
        let t = cmd.text.trim();
        let word = t.to_lowercase();
        let task = match word.as_str() {
            "reload" => Some(AdminTask::Reload),
            "report" => Some(AdminTask::Report),
            _ => None,
        };
        if let Some(task) = task {
            if !self.access.is_admin(&cmd.user) {
                info!(user = %cmd.user, command = %word, "admin command refused");
                let why = if self.access.admins.is_empty() {
                    "no admins are configured (--admins or NETRUNBOOK_ADMINS)"
                } else {
                    "you are not one of the admins configured"
                };
                return CommandReply::Now(Message::Notice(format!(
                    "Only netrunbook admins can use `/netrunbook {word}`: {why}."
                )));
            }
            let ack = Message::Notice(
                match task {
                    AdminTask::Reload => "Reloading the knowledge base…",
                    AdminTask::Report => "Putting the report together…",
                }
                .into(),
            );
            if !first {
                // the first copy's task shows its result
                return CommandReply::Now(ack);
            }
            return CommandReply::Later { ack, task };
        }
        if !self.access.answers_in(&cmd.channel) {
            return CommandReply::Now(self.not_here());
        }
        CommandReply::Now(self.answer_privately(kb, t, now, first))
    }

    /// True unless the command is a copy of one already answered (by its `key`); the key is marked
    /// at once. Commands are answered on the socket's callback, not in a thread's queue, so two
    /// copies on two connections can be answered at the same moment: the mark is an atomic
    /// insert-if-absent, and only one copy wins. Not flushed (the ack must not wait for the disk):
    /// a crash right after may let a copy through, which answers the person twice at worst.
    fn first_command(&self, cmd: &SlashCommand, now: u64) -> bool {
        let Some(key) = &cmd.key else {
            return true;
        };
        let key = format!("ev:{}:{key}", cmd.team);
        match self.store.mark_event_seen(&key, now) {
            Ok(true) => true,
            Ok(false) => {
                debug!(key = %key, "duplicate slash command: answered again without side effects");
                self.metrics.duplicate_dropped(Duplicate::Command);
                false
            }
            // better a rare double count than no answer when the store fails
            Err(e) => {
                error!(error = %error_chain(&e), "cannot read or mark the handled commands");
                true
            }
        }
    }

    /// The note for a channel the bot does not answer in.
    pub(super) fn not_here(&self) -> Message {
        Message::NotHere {
            channels: self.access.channels.iter().flatten().cloned().collect(),
        }
    }

    /// The topic list, or the answer to `t`, for the asker only; counted and kept for the report
    /// when `observe` (not for a re-sent copy).
    fn answer_privately(&self, kb: &KnowledgeBase, t: &str, now: u64, observe: bool) -> Message {
        if t.is_empty() || HELP_WORDS.contains(&t.to_lowercase().as_str()) {
            return Message::Help {
                topics: kb.topic_groups(),
            };
        }
        let started = std::time::Instant::now();
        let step = dialogue::step(
            kb,
            None,
            &Input::Message {
                text: t.to_string(),
                addressed: true,
            },
            now,
        );
        record_intent(step.replies.first());
        if observe {
            self.observe(kb, Some(t), None, &step, now, false);
            if let Some(o) = Outcome::of(kb, None, &step) {
                o.log("command", started);
            }
        }
        let mut replies = step.replies.into_iter();
        let reply = replies.next().unwrap_or(Reply::NoMatch);
        let more = replies.next().is_some() || matches!(&reply, Reply::Answer(a) if a.has_flow);
        // an answer or a choice of sections is worth sharing; "no match", a notice ("reset") is not
        let share = matches!(reply, Reply::Answer(_) | Reply::Clarify { .. }).then(|| t.to_string());
        Message::Private { reply, more, share }
    }

    /// Run an admin command (blocking: it reads the disk) and say how it went.
    pub(crate) fn admin(&self, task: AdminTask, trigger: &str) -> Message {
        match task {
            AdminTask::Reload => match self.reload_kb(trigger) {
                Ok(r) if r.dropped.is_empty() => Message::Notice(format!(
                    "Knowledge base reloaded: version {} → {} ({} intents).",
                    r.from, r.to, r.intents
                )),
                Ok(r) => Message::Notice(format!(
                    "Knowledge base reloaded: version {} → {} ({} intents). ⚠️ It no longer has these sections, so threads about them start over: {}.",
                    r.from,
                    r.to,
                    r.intents,
                    r.dropped.join(", ")
                )),
                Err(e @ ReloadError::BuiltIn) => Message::Notice(e.to_string()),
                Err(ReloadError::Invalid { dir, kept, source }) => Message::Block {
                    title: format!(
                        "The knowledge base in {} was rejected; still answering from version {kept}.",
                        dir.display()
                    ),
                    body: source
                        .problems()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                },
            },
            AdminTask::Report => match self.store.feedback() {
                Ok(data) => Message::Block {
                    title: "netrunbook report".into(),
                    body: Report::build(&data, report::DEFAULT_TOP).to_text(),
                },
                Err(e) => {
                    error!(error = %error_chain(&e), "cannot read the feedback for a report");
                    Message::Notice("Cannot read the stored feedback; see the bot's log.".into())
                }
            },
        }
    }

    /// Re-read the intents directory and swap it in when valid (blocking); logged and counted.
    /// Conversations in flight carry on: a flow step that vanished restarts the flow.
    pub(crate) fn reload_kb(&self, trigger: &str) -> Result<Reloaded, ReloadError> {
        let result = self.kb.reload();
        match &result {
            Ok(r) => {
                self.metrics.kb_reload("ok");
                self.metrics.set_build_info(&r.to);
                if !r.dropped.is_empty() {
                    warn!(trigger, dropped = ?r.dropped, "the reload removed sections: threads about them start over");
                }
                info!(trigger, from = %r.from, to = %r.to, intents = r.intents, "knowledge base reloaded");
            }
            Err(e @ ReloadError::BuiltIn) => {
                self.metrics.kb_reload("unavailable");
                warn!(trigger, "{e}");
            }
            Err(e) => {
                self.metrics.kb_reload("rejected");
                warn!(trigger, error = %error_chain(e), "knowledge base reload rejected");
            }
        }
        result
    }
}
