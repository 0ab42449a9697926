//! The glue between Slack and the dialogue engine, with no Slack library types: an [`Inbound`] (a
//! mention, a thread message, a slash command or a button click, already converted by `slack/`) goes
//! in; the thread's conversation is loaded and stepped with [`dialogue::step`]; the new conversation,
//! the event's "handled" marks and the replies (an outbox record) are committed to the store together;
//! what to show comes out as [`Outbound`] values for `slack/` to render and deliver.
//!
//! The rules that decide whether the bot speaks at all live here:
//! - messages from bots (our own included), edits, joins and other subtypes are ignored;
//! - a thread the bot has no conversation in is ignored unless the bot is mentioned;
//! - in a thread with a pending question, plain replies are offered to the engine as
//!   `addressed: false` (it ignores chatter that answers nothing), mentions as `addressed: true`;
//! - a bare mention in a thread ("@netrunbook", "@netrunbook what does the runbook say?") reads the
//!   thread's root message (the alert) and answers that;
//! - each event is handled once: by event id (Slack retries) and by channel + ts (the `app_mention`
//!   and `message` twins of one post); a click by a key from its payload (who, when, which button),
//!   so a re-sent envelope does not vote, share or escalate twice; a slash command by its trigger
//!   (a re-sent copy gets the same private answer, without counting it or starting work again);
//! - a question answered in words is marked answered in place, as a click marks it
//!   ([`Outbound::MarkAnswered`]), before the replies that follow the answer;
//! - outside the allowed channels (when a list is set) a mention or a click gets a short private note;
//!   `/netrunbook reload` and `/netrunbook report` are for the admins listed, from any channel.
//!
//! Along the way it keeps what `netrunbook report` shows: answers per intent, 👍/👎/wrong-topic votes,
//! and the messages it abstained on or answered with a small margin (redacted, see [`feedback`]).
//!
//! **Invariant:** the callers process the events of one thread one after another, so a load, step and
//! save here never race with another for the same thread.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use tracing::{debug, error, info, warn};

use crate::dialogue::{self, Conversation, Input, Pending, Reply, Step};
use crate::error::error_chain;
use crate::feedback::{self, Unanswered, Vote, VoteKind};
use crate::kb::{KnowledgeBase, LiveKb, ReloadError, Reloaded};
use crate::matcher::Verdict;
use crate::metrics::Metrics;
use crate::outbox::Parcel;
use crate::report::{self, Report};
use crate::store::{Change, Commit, Store};
use crate::vocab::{Action, AdminTask, CommandReply, Inbound, InboundKind, Message, Outbound, SlashCommand, ThreadKey};

/// What handling one event produced: the replies to deliver, in order, and the outbox record they
/// were saved under with the conversation (`None` when there are none, or saving failed).
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub out: Vec<Outbound>,
    pub outbox: Option<u64>,
}

/// What handling one event changes in the store, written at once when it is done.
#[derive(Debug, Default)]
struct Effects {
    /// Event keys to remember as handled.
    events: Vec<String>,
    /// The thread's conversation after the event; `None`: unchanged.
    conversation: Option<Option<Conversation>>,
}

impl Effects {
    fn save(&mut self, before: Option<&Conversation>, after: Option<&Conversation>) {
        self.conversation = match after {
            Some(c) if Some(c) != before => Some(Some(c.clone())),
            None if before.is_some() => Some(None),
            _ => None,
        };
    }

    fn change(&self) -> Change<'_> {
        match &self.conversation {
            None => Change::Keep,
            Some(Some(c)) => Change::Put(c),
            Some(None) => Change::Remove,
        }
    }
}

/// Reads a thread's root message, for bare mentions in incident threads.
pub trait ThreadReader: Send + Sync {
    /// The root message's text (with the text of its attachments), or `None` when it cannot be read.
    fn root_text(&self, channel: &str, thread_ts: &str) -> impl Future<Output = Option<String>> + Send;
}

/// Who the bot is in the workspace, to recognise its own messages and mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub bot_id: Option<String>,
}

/// Who may use the bot where. The default answers everywhere and has no admins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Channel ids the bot answers in; `None`: every channel it is in.
    pub channels: Option<BTreeSet<String>>,
    /// User ids allowed the admin commands (`reload`, `report`).
    pub admins: BTreeSet<String>,
}

impl Access {
    pub fn answers_in(&self, channel: &str) -> bool {
        self.channels.as_ref().is_none_or(|c| c.contains(channel))
    }

    pub fn is_admin(&self, user: &str) -> bool {
        self.admins.contains(user)
    }
}

/// Subtypes of human messages worth reading; every other subtype is ignored.
const READABLE_SUBTYPES: &[&str] = &["thread_broadcast", "file_share"];
/// Words that ask for the topic list.
const HELP_WORDS: &[&str] = &["help", "topics", "?"];

/// The bot: knowledge base, store, identity, who may use it, and what it counts.
pub struct Bot<S> {
    kb: LiveKb,
    store: S,
    me: Identity,
    access: Access,
    metrics: Arc<Metrics>,
}

impl<S: Store> Bot<S> {
    /// A bot that answers everywhere, has no admins and counts into metrics of its own.
    pub fn new(kb: impl Into<LiveKb>, store: S, me: Identity) -> Bot<S> {
        Bot {
            kb: kb.into(),
            store,
            me,
            access: Access::default(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    pub fn with_access(self, access: Access) -> Bot<S> {
        Bot { access, ..self }
    }

    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Bot<S> {
        Bot { metrics, ..self }
    }

    /// The knowledge base in use now (a reload may replace it at any time; keep the `Arc` for the
    /// whole of one piece of work).
    pub fn kb(&self) -> Arc<KnowledgeBase> {
        self.kb.get()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// The answer to `/netrunbook <text>`: the topic list or the answer, privately; the admin
    /// commands `reload` and `report` (refused to others); a note outside the allowed channels.
    ///
    /// A copy Slack re-sends (the same `key`) gets the same answer without its side effects: the
    /// answer is not counted or kept for the report again and an admin task is not started again.
    /// Not an empty acknowledgement: the answer rides on the ack, and Slack re-sends a command
    /// when it did not get the first ack (a dropped connection, a slow one), so the person may
    /// not have seen the first answer at all; answering again is pure, starting work twice is not.
    pub fn command(&self, cmd: &SlashCommand, now: u64) -> CommandReply {
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
        CommandReply::Now(self.answer_privately(&self.kb(), t, now, first))
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
                self.metrics.duplicate_dropped();
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
    fn not_here(&self) -> Message {
        Message::NotHere {
            channels: self.access.channels.iter().flatten().cloned().collect(),
        }
    }

    /// The topic list, or the answer to `t`, for the asker only; counted and kept for the report
    /// when `observe` (not for a re-sent copy).
    fn answer_privately(&self, kb: &KnowledgeBase, t: &str, now: u64, observe: bool) -> Message {
        if t.is_empty() || HELP_WORDS.contains(&t.to_lowercase().as_str()) {
            return Message::Help;
        }
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
            self.observe(kb, Some(t), None, &step, now);
        }
        let mut replies = step.replies.into_iter();
        let reply = replies.next().unwrap_or(Reply::NoMatch);
        let more = replies.next().is_some() || matches!(&reply, Reply::Answer(a) if a.has_flow);
        let share = match reply {
            Reply::NoMatch => None,
            _ => Some(t.to_string()),
        };
        Message::Private { reply, more, share }
    }

    /// Run an admin command (blocking: it reads the disk) and say how it went.
    pub fn admin(&self, task: AdminTask, trigger: &str) -> Message {
        match task {
            AdminTask::Reload => match self.reload_kb(trigger) {
                Ok(r) => Message::Notice(format!(
                    "Knowledge base reloaded: version {} → {} ({} intents).",
                    r.from, r.to, r.intents
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
    pub fn reload_kb(&self, trigger: &str) -> Result<Reloaded, ReloadError> {
        let result = self.kb.reload();
        match &result {
            Ok(r) => {
                self.metrics.kb_reload("ok");
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

    /// Handle one event, click or shared answer with the knowledge base in use now; returns what to
    /// show, in order (the outbox record is left to whoever delivers it: see [`Bot::handle_in`]).
    pub async fn handle(&self, inbound: &Inbound, reader: &impl ThreadReader, now: u64) -> Vec<Outbound> {
        self.handle_in(&self.kb(), inbound, reader, now).await.out
    }

    /// Handle one event, click or shared answer with `kb`. The thread's new conversation, the event's
    /// "handled" marks and the replies (an outbox record, see [`crate::outbox`]) are saved together
    /// and flushed before this returns; the caller delivers the replies and clears the record.
    pub async fn handle_in(
        &self,
        kb: &KnowledgeBase,
        inbound: &Inbound,
        reader: &impl ThreadReader,
        now: u64,
    ) -> Handled {
        let mut fx = Effects::default();
        let mut out = match &inbound.kind {
            InboundKind::Mention | InboundKind::Message => self.message(kb, inbound, reader, now, &mut fx).await,
            InboundKind::Command => vec![],
            // a click Slack re-sends must not vote, share or escalate twice
            InboundKind::Action { action, response_url } if self.first_time(inbound, &mut fx) => {
                self.action(kb, inbound, action, response_url.as_deref(), now, &mut fx)
            }
            InboundKind::Action { .. } => vec![],
            InboundKind::Shared { question } => self.shared(kb, inbound, question, now, &mut fx),
        };
        let outbox = self.commit(inbound, &fx, &mut out, now);
        Handled { out, outbox }
    }

    /// Save what handling `inbound` changed, with `out` as its outbox record; the record's id. When the
    /// store fails, the replies still go out (better than silence), with a warning when the
    /// conversation could not be kept.
    fn commit(&self, inbound: &Inbound, fx: &Effects, out: &mut [Outbound], now: u64) -> Option<u64> {
        let key = inbound.thread();
        let record = (!out.is_empty()).then(|| Parcel::new(key.clone(), now, out.to_vec()).encode());
        let commit = Commit {
            thread: &key,
            conversation: fx.change(),
            events: &fx.events,
            outbox: record.as_deref(),
            now,
        };
        if commit.is_empty() {
            return None;
        }
        match self.store.commit(&commit) {
            Ok(id) => {
                self.metrics.store_write(true);
                id
            }
            Err(e) => {
                self.metrics.store_write(false);
                error!(thread = %key, error = %error_chain(&e), "cannot save the conversation and its replies");
                if fx.conversation.is_some() {
                    let replies = out.iter_mut().find_map(|o| match o {
                        Outbound::Post {
                            message: Message::Replies(r),
                            ..
                        } => Some(r),
                        _ => None,
                    });
                    if let Some(r) = replies {
                        r.push(Reply::Notice {
                            text:
                                "⚠️ I could not save this conversation (my storage is failing), so I may not remember \
                                   it: tell whoever runs me. Until then, put every fact in one message."
                                    .into(),
                        });
                    }
                }
                None
            }
        }
    }

    fn mentions_me(&self, text: &str) -> bool {
        text.contains(&format!("<@{}>", self.me.user_id)) || text.contains(&format!("<@{}|", self.me.user_id))
    }

    /// The text without mentions of the bot.
    fn without_mention(&self, text: &str) -> String {
        let mut out = text.replace(&format!("<@{}>", self.me.user_id), " ");
        let prefix = format!("<@{}|", self.me.user_id);
        while let Some(start) = out.find(&prefix) {
            match out[start..].find('>') {
                Some(end) => out.replace_range(start..start + end + 1, " "),
                None => break,
            }
        }
        out.trim().to_string()
    }

    fn is_mine_or_bot(&self, inbound: &Inbound) -> bool {
        inbound.is_bot || inbound.user == self.me.user_id || inbound.subtype.as_deref() == Some("bot_message")
    }

    /// Load a thread's conversation; an unreadable one is logged and treated as none.
    fn load(&self, key: &ThreadKey) -> Option<Conversation> {
        match self.store.get(key) {
            Ok(c) => c,
            Err(e) => {
                error!(thread = %key, error = %error_chain(&e), "cannot load the conversation; starting over");
                None
            }
        }
    }

    /// True when the event or click was not handled before (by event id or click key, and a
    /// message by channel + ts); its keys are then marked handled in `fx`, saved with the step.
    /// (Check now, mark at the commit: the inputs of one thread are handled one at a time, and
    /// twins and re-sent copies share the thread.)
    fn first_time(&self, inbound: &Inbound, fx: &mut Effects) -> bool {
        let mut keys = Vec::with_capacity(2);
        if let Some(id) = &inbound.event_id {
            keys.push(format!("ev:{}:{id}", inbound.team));
        }
        // a post's twins share its channel + ts; different clicks on one message share them too
        if matches!(inbound.kind, InboundKind::Mention | InboundKind::Message) {
            keys.push(format!("msg:{}:{}:{}", inbound.team, inbound.channel, inbound.ts));
        }
        for key in &keys {
            match self.store.was_seen(key) {
                Ok(false) => {}
                Ok(true) => {
                    debug!(key = %key, "duplicate event dropped");
                    self.metrics.duplicate_dropped();
                    return false;
                }
                // better a rare double answer than silence when the store fails
                Err(e) => error!(error = %error_chain(&e), "cannot read the handled events"),
            }
        }
        fx.events.extend(keys);
        true
    }

    async fn message(
        &self,
        kb: &KnowledgeBase,
        inbound: &Inbound,
        reader: &impl ThreadReader,
        now: u64,
        fx: &mut Effects,
    ) -> Vec<Outbound> {
        if self.is_mine_or_bot(inbound) {
            debug!("ignoring a bot's message");
            return vec![];
        }
        if inbound.edited
            || inbound
                .subtype
                .as_deref()
                .is_some_and(|s| !READABLE_SUBTYPES.contains(&s))
        {
            debug!(
                subtype = inbound.subtype.as_deref(),
                edited = inbound.edited,
                "ignoring an edit or a non-message subtype"
            );
            return vec![];
        }
        let addressed = inbound.kind == InboundKind::Mention || self.mentions_me(&inbound.text);
        let in_thread = inbound.thread_ts.as_deref().is_some_and(|t| t != inbound.ts);
        let key = inbound.thread();
        let state = if addressed || in_thread { self.load(&key) } else { None };
        if !addressed && (!in_thread || state.is_none()) {
            // people talking to each other: only a thread with a conversation makes their replies ours
            // (the engine still leaves chatter that answers nothing alone)
            return vec![];
        }
        if !self.first_time(inbound, fx) {
            return vec![];
        }
        let reply_in = Some(key.thread_ts.clone());
        if !self.access.answers_in(&inbound.channel) {
            return vec![Outbound::Ephemeral {
                channel: inbound.channel.clone(),
                user: inbound.user.clone(),
                thread_ts: in_thread.then(|| key.thread_ts.clone()),
                message: self.not_here(),
            }];
        }
        let post = |message: Message| Outbound::Post {
            channel: inbound.channel.clone(),
            thread_ts: reply_in.clone(),
            message,
        };
        let mut text = if addressed {
            self.without_mention(&inbound.text)
        } else {
            inbound.text.clone()
        };
        debug!(text = %crate::text::truncate(&text, 2000), addressed, "message");
        if addressed {
            let waiting = state
                .as_ref()
                .is_some_and(|c| matches!(c.pending, Pending::Question { .. } | Pending::Clarify { .. }));
            let command = dialogue::command(&text).is_some();
            let says_nothing = !command && (text.is_empty() || abstains(kb, &text));
            if in_thread && !waiting && says_nothing {
                match reader.root_text(&inbound.channel, &key.thread_ts).await {
                    Some(root) if !root.trim().is_empty() => {
                        debug!(root = %crate::text::truncate(&root, 2000), "answering from the thread's root message");
                        text = format!("{root}\n{text}");
                    }
                    _ if text.is_empty() => {
                        return vec![post(Message::Notice(
                            "I could not read this thread's first message. Tell me the symptom or paste the error, and mention me."
                                .into(),
                        ))];
                    }
                    _ => {}
                }
            } else if (!in_thread || state.is_none())
                && (text.is_empty() || HELP_WORDS.contains(&text.to_lowercase().as_str()))
            {
                return vec![post(Message::Help)];
            }
        }
        let step = dialogue::step(
            kb,
            state.as_ref(),
            &Input::Message {
                text: text.clone(),
                addressed,
            },
            now,
        );
        fx.save(state.as_ref(), step.state.as_ref());
        record_intent_of(step.state.as_ref(), step.replies.first());
        self.observe(kb, Some(&text), state.as_ref(), &step, now);
        // a question answered in words shows its answer in place, as a click does, before what
        // follows the answer
        let mut out: Vec<Outbound> = step
            .answered
            .into_iter()
            .map(|a| Outbound::MarkAnswered {
                channel: inbound.channel.clone(),
                thread_ts: key.thread_ts.clone(),
                node: a.node,
                message: Message::Answered {
                    question: a.question,
                    choice: a.choice,
                    user: inbound.user.clone(),
                },
            })
            .collect();
        if !step.replies.is_empty() {
            out.push(post(Message::Replies(step.replies)));
        }
        out
    }

    /// Count what a step did, keep its answers' tally and, when the match was doubtful, the message
    /// (redacted). `text` is what was matched, when the step read text.
    fn observe(&self, kb: &KnowledgeBase, text: Option<&str>, before: Option<&Conversation>, step: &Step, now: u64) {
        for r in &step.replies {
            match r {
                Reply::Answer(a) => {
                    self.metrics.answered(&a.intent);
                    if let Err(e) = self.store.count_answer(&a.intent, now) {
                        warn!(error = %error_chain(&e), "cannot count an answer");
                    }
                }
                Reply::NoMatch => self.metrics.abstained(),
                Reply::Clarify { .. } => self.metrics.clarified(),
                _ => {}
            }
        }
        if let (Some(b), Some(a)) = (before, step.state.as_ref()) {
            let answered =
                matches!(b.pending, Pending::Question { .. }) && a.intent == b.intent && a.slots.len() > b.slots.len();
            if let (true, Some(intent)) = (answered, a.intent.as_deref()) {
                self.metrics.follow_up_step(intent);
            }
        }
        // only a match that started (or restarted) a topic says how well the bot understood
        let started = matches!(
            step.replies.first(),
            Some(Reply::Answer(_) | Reply::Clarify { .. } | Reply::NoMatch)
        );
        let (Some(text), Some(outcome), true) = (text, step.matched.as_ref(), started) else {
            return;
        };
        let Some(doubt) = feedback::doubt(outcome) else {
            return;
        };
        let guess = outcome.ranked.first().map(|r| kb.intents[r.intent].id.clone());
        let sighting = Unanswered::new(text, doubt, guess, now);
        match self.store.note_unanswered(&sighting) {
            Ok(count) => {
                debug!(doubt = doubt.label(), signature = %sighting.signature, count, "kept a doubtful question")
            }
            Err(e) => warn!(error = %error_chain(&e), "cannot keep a doubtful question"),
        }
    }

    /// Record `user`'s vote on the answer about `intent` in the thread.
    fn vote(&self, key: &ThreadKey, inbound: &Inbound, intent: &str, kind: VoteKind, question: Option<&str>, now: u64) {
        info!(feedback.intent = %intent, vote = kind.label(), user = %inbound.user, "feedback");
        self.metrics.feedback(kind.label());
        let vote = Vote {
            thread: key.clone(),
            intent: intent.to_string(),
            user: inbound.user.clone(),
            kind,
            at: now,
            question: question.map(feedback::excerpt),
        };
        if let Err(e) = self.store.put_vote(&vote).and_then(|()| self.store.flush()) {
            error!(error = %error_chain(&e), "cannot record feedback");
        }
    }

    fn action(
        &self,
        kb: &KnowledgeBase,
        inbound: &Inbound,
        action: &Action,
        response_url: Option<&str>,
        now: u64,
        fx: &mut Effects,
    ) -> Vec<Outbound> {
        let key = inbound.thread();
        let thread = Some(key.thread_ts.clone());
        let ephemeral = |message: Message| Outbound::Ephemeral {
            channel: inbound.channel.clone(),
            user: inbound.user.clone(),
            thread_ts: thread.clone(),
            message,
        };
        let post = |replies: Vec<Reply>| Outbound::Post {
            channel: inbound.channel.clone(),
            thread_ts: thread.clone(),
            message: Message::Replies(replies),
        };
        if !self.access.answers_in(&inbound.channel) {
            return vec![ephemeral(self.not_here())];
        }
        match action {
            Action::Feedback { intent, helpful } => {
                let kind = if *helpful { VoteKind::Up } else { VoteKind::Down };
                self.vote(&key, inbound, intent, kind, None, now);
                vec![ephemeral(Message::Notice("Thanks, noted.".into()))]
            }
            Action::WrongTopic { from, to } => {
                let state = self.load(&key);
                let Some(picked) = kb.intent(to) else {
                    return vec![ephemeral(Message::Notice(
                        "That topic is no longer in the knowledge base.".into(),
                    ))];
                };
                if state.as_ref().is_some_and(|c| c.intent.as_deref() == Some(to.as_str())) {
                    return vec![ephemeral(Message::Notice(format!(
                        "This thread is already about “{}”.",
                        picked.title
                    )))];
                }
                let asked = state.as_ref().map(|c| c.origin.as_str());
                self.vote(
                    &key,
                    inbound,
                    from,
                    VoteKind::WrongTopic { picked: to.clone() },
                    asked,
                    now,
                );
                let step = dialogue::step(kb, state.as_ref(), &Input::Pick { intent: to.clone() }, now);
                fx.save(state.as_ref(), step.state.as_ref());
                record_intent_of(step.state.as_ref(), None);
                self.observe(kb, None, state.as_ref(), &step, now);
                let mut replies = vec![Reply::Notice {
                    text: format!("Wrong topic: switching to “{}”.", picked.title),
                }];
                replies.extend(step.replies);
                vec![post(replies)]
            }
            Action::Share { question } => {
                let step = dialogue::step(
                    kb,
                    None,
                    &Input::Message {
                        text: question.clone(),
                        addressed: true,
                    },
                    now,
                );
                self.observe(kb, None, None, &step, now);
                let Some(first) = step.replies.into_iter().next() else {
                    return vec![];
                };
                let mut out = vec![Outbound::PostRoot {
                    channel: inbound.channel.clone(),
                    message: Message::Shared {
                        user: inbound.user.clone(),
                        question: question.clone(),
                        reply: first,
                    },
                    then: Box::new(Inbound {
                        event_id: None,
                        thread_ts: None,
                        kind: InboundKind::Shared {
                            question: question.clone(),
                        },
                        ..inbound.clone()
                    }),
                }];
                if let Some(url) = response_url {
                    out.push(Outbound::Respond {
                        response_url: url.to_string(),
                        message: None,
                    });
                }
                out
            }
            Action::Escalate => {
                let state = self.load(&key);
                let step = dialogue::step(kb, state.as_ref(), &Input::Escalate, now);
                fx.save(state.as_ref(), step.state.as_ref());
                vec![post(step.replies)]
            }
            Action::Choose { node, option } => {
                let state = self.load(&key);
                let step = dialogue::step(
                    kb,
                    state.as_ref(),
                    &Input::Choose {
                        node: node.clone(),
                        option: option.clone(),
                    },
                    now,
                );
                fx.save(state.as_ref(), step.state.as_ref());
                record_intent_of(step.state.as_ref(), None);
                self.observe(kb, None, state.as_ref(), &step, now);
                match step.answered.first().map(|a| (a.question.clone(), a.choice.clone())) {
                    Some((question, choice)) => {
                        let mut out = vec![Outbound::Update {
                            channel: inbound.channel.clone(),
                            ts: inbound.ts.clone(),
                            message: Message::Answered {
                                question,
                                choice,
                                user: inbound.user.clone(),
                            },
                        }];
                        if !step.replies.is_empty() {
                            out.push(post(step.replies));
                        }
                        out
                    }
                    // a stale or repeated click: tell the clicker only
                    None => vec![ephemeral(Message::Replies(step.replies))],
                }
            }
            Action::Pick { intent } => {
                let state = self.load(&key);
                let waiting = state.as_ref().is_some_and(
                    |c| matches!(&c.pending, Pending::Clarify { candidates } if candidates.contains(intent)),
                );
                let Some(picked) = kb.intent(intent).filter(|_| waiting) else {
                    return vec![ephemeral(Message::Notice(
                        "That choice was already made or has expired.".into(),
                    ))];
                };
                let step = dialogue::step(kb, state.as_ref(), &Input::Pick { intent: intent.clone() }, now);
                fx.save(state.as_ref(), step.state.as_ref());
                record_intent_of(step.state.as_ref(), None);
                self.observe(kb, None, state.as_ref(), &step, now);
                vec![
                    Outbound::Update {
                        channel: inbound.channel.clone(),
                        ts: inbound.ts.clone(),
                        message: Message::Answered {
                            question: "Which runbook section did you mean?".into(),
                            choice: picked.title.clone(),
                            user: inbound.user.clone(),
                        },
                    },
                    post(step.replies),
                ]
            }
        }
    }

    /// The shared answer's thread: step the question, keep the state, post everything after the first
    /// reply (which the shared root message shows).
    fn shared(
        &self,
        kb: &KnowledgeBase,
        inbound: &Inbound,
        question: &str,
        now: u64,
        fx: &mut Effects,
    ) -> Vec<Outbound> {
        let key = inbound.thread();
        let state = self.load(&key);
        let step = dialogue::step(
            kb,
            state.as_ref(),
            &Input::Message {
                text: question.to_string(),
                addressed: true,
            },
            now,
        );
        fx.save(state.as_ref(), step.state.as_ref());
        record_intent_of(step.state.as_ref(), step.replies.first());
        let rest: Vec<Reply> = step.replies.into_iter().skip(1).collect();
        if rest.is_empty() {
            return vec![];
        }
        vec![Outbound::Post {
            channel: inbound.channel.clone(),
            thread_ts: Some(key.thread_ts),
            message: Message::Replies(rest),
        }]
    }
}

fn abstains(kb: &KnowledgeBase, text: &str) -> bool {
    kb.matcher.rank(&kb.prepare(text)).verdict == Verdict::Abstain
}

/// Note the intent being worked in the current tracing span (the Slack event's).
fn record_intent_of(state: Option<&Conversation>, first: Option<&Reply>) {
    match state.and_then(|c| c.intent.as_deref()) {
        Some(intent) => {
            tracing::Span::current().record("intent", intent);
        }
        None => record_intent(first),
    }
}

fn record_intent(first: Option<&Reply>) {
    let intent = match first {
        Some(Reply::Answer(a)) => a.intent.as_str(),
        Some(Reply::Clarify { .. }) => "(clarify)",
        Some(Reply::NoMatch) => "(none)",
        _ => return,
    };
    tracing::Span::current().record("intent", intent);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    struct Root(Option<&'static str>);

    impl ThreadReader for Root {
        async fn root_text(&self, _channel: &str, _thread_ts: &str) -> Option<String> {
            self.0.map(str::to_string)
        }
    }

    fn bot() -> Bot<MemoryStore> {
        Bot::new(
            Arc::new(KnowledgeBase::builtin().expect("built-in knowledge base")),
            MemoryStore::new(),
            Identity {
                user_id: "UBOT".into(),
                bot_id: Some("BBOT".into()),
            },
        )
    }

    fn event(kind: InboundKind, id: &str, ts: &str, thread_ts: Option<&str>, text: &str) -> Inbound {
        Inbound {
            event_id: Some(id.into()),
            team: "T1".into(),
            channel: "C1".into(),
            user: "UHUMAN".into(),
            ts: ts.into(),
            thread_ts: thread_ts.map(str::to_string),
            text: text.into(),
            is_bot: false,
            edited: false,
            subtype: None,
            kind,
        }
    }

    fn slash(bot: &Bot<MemoryStore>, user: &str, text: &str) -> CommandReply {
        bot.command(
            &SlashCommand {
                team: "T1".into(),
                channel: "C1".into(),
                user: user.into(),
                text: text.into(),
                key: None,
            },
            1,
        )
    }

    fn replies(out: &[Outbound]) -> Vec<&Reply> {
        out.iter()
            .flat_map(|o| match o {
                Outbound::Post {
                    message: Message::Replies(r),
                    ..
                } => r.iter().collect(),
                _ => vec![],
            })
            .collect()
    }

    #[tokio::test]
    async fn mention_in_channel_answers_in_a_new_thread() {
        let bot = bot();
        let out = bot
            .handle(
                &event(
                    InboundKind::Mention,
                    "E1",
                    "10.1",
                    None,
                    "<@UBOT> dns lookups time out in pods",
                ),
                &Root(None),
                100,
            )
            .await;
        let Outbound::Post { thread_ts, .. } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(thread_ts.as_deref(), Some("10.1"));
        assert!(matches!(replies(&out)[0], Reply::Answer(a) if a.intent == "dns"));
        assert!(bot.store().get(&ThreadKey::new("T1", "C1", "10.1")).unwrap().is_some());
    }

    #[tokio::test]
    async fn twins_and_retries_are_answered_once() {
        let bot = bot();
        let text = "<@UBOT> dns lookups time out in pods";
        let first = bot
            .handle(&event(InboundKind::Mention, "E1", "10.1", None, text), &Root(None), 100)
            .await;
        assert_eq!(first.len(), 1);
        let retry = bot
            .handle(&event(InboundKind::Mention, "E1", "10.1", None, text), &Root(None), 101)
            .await;
        let twin = bot
            .handle(&event(InboundKind::Message, "E2", "10.1", None, text), &Root(None), 101)
            .await;
        assert!(retry.is_empty() && twin.is_empty());
    }

    #[tokio::test]
    async fn chatter_bots_and_edits_get_no_reply() {
        let bot = bot();
        let plain = bot
            .handle(
                &event(InboundKind::Message, "E1", "10.1", None, "dns is broken"),
                &Root(None),
                1,
            )
            .await;
        assert!(plain.is_empty(), "a channel message without a mention");
        let mut own = event(InboundKind::Message, "E2", "10.2", None, "<@UBOT> dns");
        own.is_bot = true;
        assert!(bot.handle(&own, &Root(None), 1).await.is_empty());
        let mut edit = event(InboundKind::Message, "E3", "10.3", None, "<@UBOT> dns");
        edit.subtype = Some("message_changed".into());
        assert!(bot.handle(&edit, &Root(None), 1).await.is_empty());
        let thread = bot
            .handle(
                &event(InboundKind::Message, "E4", "10.5", Some("10.4"), "anyone?"),
                &Root(None),
                1,
            )
            .await;
        assert!(thread.is_empty(), "a thread the bot is not in");
    }

    #[tokio::test]
    async fn commands_in_an_alert_thread_are_not_read_with_the_alert() {
        let bot = bot();
        let root = Root(Some(
            "FIRING: calico-node pods in CrashLoopBackOff, NetworkUnavailable on 3 nodes",
        ));
        let first = bot
            .handle(
                &event(InboundKind::Mention, "E1", "10.2", Some("10.1"), "<@UBOT>"),
                &root,
                1,
            )
            .await;
        assert!(
            matches!(replies(&first).first(), Some(Reply::Answer(_) | Reply::Clarify { .. })),
            "{first:?}"
        );
        // thanks: a short acknowledgement, not the alert's answer again
        let thanks = bot
            .handle(
                &event(InboundKind::Mention, "E2", "10.3", Some("10.1"), "<@UBOT> thanks!"),
                &root,
                2,
            )
            .await;
        assert!(
            matches!(replies(&thanks).as_slice(), [Reply::Notice { .. }]),
            "{thanks:?}"
        );
        // escalate: the escalation path with the topic, not the Escalation Policy section as a new topic
        let esc = bot
            .handle(
                &event(InboundKind::Mention, "E3", "10.4", Some("10.1"), "<@UBOT> escalate"),
                &root,
                3,
            )
            .await;
        assert!(
            matches!(replies(&esc).as_slice(), [Reply::Escalation(e)] if e.topic.is_some()),
            "{esc:?}"
        );
        // reset forgets the thread
        let reset = bot
            .handle(
                &event(InboundKind::Mention, "E4", "10.5", Some("10.1"), "<@UBOT> reset"),
                &root,
                4,
            )
            .await;
        assert!(
            matches!(replies(&reset).as_slice(), [Reply::Notice { text }] if text.contains("reset")),
            "{reset:?}"
        );
    }

    #[tokio::test]
    async fn bare_mention_in_a_thread_reads_the_root() {
        let bot = bot();
        let root = Root(Some(
            "FIRING: calico-node pods in CrashLoopBackOff, NetworkUnavailable on 3 nodes",
        ));
        let out = bot
            .handle(
                &event(
                    InboundKind::Mention,
                    "E1",
                    "10.2",
                    Some("10.1"),
                    "<@UBOT> what does the runbook say?",
                ),
                &root,
                1,
            )
            .await;
        // without the root the text alone ("what does the runbook say?") matches nothing
        assert!(
            matches!(replies(&out).first(), Some(Reply::Answer(_) | Reply::Clarify { .. })),
            "{out:?}"
        );
        let alone = bot
            .handle(
                &event(
                    InboundKind::Mention,
                    "E2",
                    "20.3",
                    Some("20.1"),
                    "<@UBOT> what does the runbook say?",
                ),
                &Root(None),
                1,
            )
            .await;
        assert!(matches!(replies(&alone).first(), Some(Reply::NoMatch)), "{alone:?}");
    }

    #[tokio::test]
    async fn stop_forgets_the_thread() {
        let bot = bot();
        bot.handle(
            &event(
                InboundKind::Mention,
                "E1",
                "10.1",
                None,
                "<@UBOT> dns lookups fail in pods",
            ),
            &Root(None),
            1,
        )
        .await;
        let key = ThreadKey::new("T1", "C1", "10.1");
        assert!(bot.store().get(&key).unwrap().is_some());
        bot.handle(
            &event(InboundKind::Mention, "E2", "10.2", Some("10.1"), "<@UBOT> stop"),
            &Root(None),
            2,
        )
        .await;
        assert!(bot.store().get(&key).unwrap().is_none());
    }

    #[tokio::test]
    async fn answers_votes_and_doubtful_questions_are_kept_for_the_report() {
        use crate::store::FeedbackStore;
        let bot = bot();
        let out = bot
            .handle(
                &event(
                    InboundKind::Mention,
                    "E1",
                    "10.1",
                    None,
                    "<@UBOT> how do I pay my billing invoice? token=abc123secret",
                ),
                &Root(None),
                100,
            )
            .await;
        assert!(matches!(replies(&out)[0], Reply::NoMatch));
        bot.handle(
            &event(
                InboundKind::Mention,
                "E2",
                "11.1",
                None,
                "<@UBOT> dns lookups time out in pods",
            ),
            &Root(None),
            101,
        )
        .await;
        let click = event(
            InboundKind::Action {
                action: Action::Feedback {
                    intent: "dns".into(),
                    helpful: false,
                },
                response_url: None,
            },
            "E3",
            "11.2",
            Some("11.1"),
            "",
        );
        let out = bot.handle(&click, &Root(None), 102).await;
        assert!(matches!(&out[0], Outbound::Ephemeral { message: Message::Notice(n), .. } if n.contains("Thanks")));
        let data = bot.store().feedback().unwrap();
        assert_eq!(data.answers.get("dns"), Some(&1));
        assert_eq!(data.votes.len(), 1);
        assert_eq!(
            (data.votes[0].kind.label(), data.votes[0].thread.thread_ts.as_str()),
            ("down", "11.1")
        );
        assert_eq!(data.unanswered.len(), 1);
        let u = &data.unanswered[0];
        assert_eq!(u.example, "how do I pay my billing invoice? token=[REDACTED]");
        assert_eq!(u.doubt, feedback::Doubt::Abstained);
    }

    #[test]
    fn admin_commands_are_for_admins_only() {
        let bot = bot().with_access(Access {
            channels: Some(["C9".to_string()].into()),
            admins: ["UADMIN".to_string()].into(),
        });
        assert!(matches!(
            slash(&bot, "UHUMAN", "reload"),
            CommandReply::Now(Message::Notice(n)) if n.contains("Only netrunbook admins") && n.contains("not one of the admins")
        ));
        // admins may from any channel; questions are answered in the allowed channels only
        assert!(matches!(
            slash(&bot, "UADMIN", " Report "),
            CommandReply::Later {
                task: AdminTask::Report,
                ..
            }
        ));
        assert!(matches!(
            slash(&bot, "UADMIN", "dns fails"),
            CommandReply::Now(Message::NotHere { channels }) if channels == ["C9"]
        ));
        assert!(
            matches!(bot.admin(AdminTask::Report, "test"), Message::Block { body, .. } if body.contains("Top unanswered"))
        );
        assert!(matches!(bot.admin(AdminTask::Reload, "test"), Message::Notice(n) if n.contains("built-in")));
        let nobody = self::bot();
        assert!(matches!(
            slash(&nobody, "UADMIN", "reload"),
            CommandReply::Now(Message::Notice(n)) if n.contains("no admins are configured")
        ));
    }

    #[tokio::test]
    async fn an_answer_in_words_marks_its_question_answered_before_the_next_replies() {
        let bot = bot();
        bot.handle(
            &event(
                InboundKind::Mention,
                "E1",
                "10.1",
                None,
                "<@UBOT> LoadBalancer service stuck with pending external IP",
            ),
            &Root(None),
            1,
        )
        .await;
        let out = bot
            .handle(
                &event(InboundKind::Message, "E2", "10.2", Some("10.1"), "it's a vpc cluster"),
                &Root(None),
                2,
            )
            .await;
        let Some(Outbound::MarkAnswered {
            channel,
            thread_ts,
            node,
            message: Message::Answered { choice, user, .. },
        }) = out.first()
        else {
            panic!("{out:?}")
        };
        assert_eq!(
            (
                channel.as_str(),
                thread_ts.as_str(),
                node.as_str(),
                choice.as_str(),
                user.as_str()
            ),
            ("C1", "10.1", "infra", "VPC", "UHUMAN")
        );
        assert!(
            matches!(replies(&out).first(), Some(Reply::Question(q)) if q.node != "infra"),
            "then the next question: {out:?}"
        );
        // chatter that answers nothing marks nothing
        let out = bot
            .handle(
                &event(InboundKind::Message, "E3", "10.3", Some("10.1"), "brb, coffee"),
                &Root(None),
                3,
            )
            .await;
        assert!(
            !out.iter().any(|o| matches!(o, Outbound::MarkAnswered { .. })),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn a_click_slack_sends_again_is_handled_once() {
        use crate::store::FeedbackStore;
        let bot = bot();
        bot.handle(
            &event(
                InboundKind::Mention,
                "E1",
                "11.1",
                None,
                "<@UBOT> dns lookups time out in pods",
            ),
            &Root(None),
            1,
        )
        .await;
        let click = |key: &str| {
            event(
                InboundKind::Action {
                    action: Action::Feedback {
                        intent: "dns".into(),
                        helpful: true,
                    },
                    response_url: None,
                },
                key,
                "11.2",
                Some("11.1"),
                "",
            )
        };
        assert_eq!(bot.handle(&click("click:U:1.1:a"), &Root(None), 2).await.len(), 1);
        assert!(bot.handle(&click("click:U:1.1:a"), &Root(None), 3).await.is_empty());
        assert_eq!(bot.store().feedback().unwrap().votes.len(), 1, "one vote");
        // another click on the same button is another click (a person's vote replaces theirs)
        assert_eq!(bot.handle(&click("click:U:1.2:a"), &Root(None), 4).await.len(), 1);
    }

    #[test]
    fn a_slash_command_slack_sends_again_gets_its_answer_without_side_effects() {
        use crate::store::FeedbackStore;
        let bot = bot().with_access(Access {
            channels: None,
            admins: ["UADMIN".to_string()].into(),
        });
        let cmd = |user: &str, text: &str, key: &str| SlashCommand {
            team: "T1".into(),
            channel: "C1".into(),
            user: user.into(),
            text: text.into(),
            key: Some(key.into()),
        };
        let question = cmd("UHUMAN", "coredns lookups fail", "cmd:trigger-1");
        let first = bot.command(&question, 1);
        let again = bot.command(&question, 2);
        assert!(
            matches!(&first, CommandReply::Now(Message::Private { .. })),
            "{first:?}"
        );
        assert_eq!(first, again, "the same private answer");
        assert_eq!(
            bot.store().feedback().unwrap().answers.values().sum::<u64>(),
            1,
            "counted once"
        );
        assert!(matches!(
            bot.command(&cmd("UADMIN", "report", "cmd:trigger-2"), 3),
            CommandReply::Later {
                task: AdminTask::Report,
                ..
            }
        ));
        assert!(
            matches!(bot.command(&cmd("UADMIN", "report", "cmd:trigger-2"), 4), CommandReply::Now(Message::Notice(n)) if n.contains("report")),
            "acknowledged again, not run again"
        );
    }

    #[test]
    fn help_groups_every_intent() {
        let bot = bot();
        let groups = bot.kb().topic_groups();
        let n: usize = groups.iter().map(|(_, t)| t.len()).sum();
        assert_eq!(n, bot.kb().intents.len());
        assert_eq!(slash(&bot, "UHUMAN", "help"), CommandReply::Now(Message::Help));
        assert_eq!(slash(&bot, "UHUMAN", "  "), CommandReply::Now(Message::Help));
        assert!(matches!(
            slash(&bot, "UHUMAN", "coredns lookups fail"),
            CommandReply::Now(Message::Private { share: Some(_), .. })
        ));
    }
}
