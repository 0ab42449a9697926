//! The glue between Slack and the dialogue engine, with no Slack library types: an [`Inbound`] (a
//! mention, a thread message, a slash command or a button click, already converted by `slack/`) goes
//! in; the thread's conversation is loaded and stepped with [`dialogue::step`]; the new conversation,
//! the event's "handled" marks and the replies (an outbox record) are committed to the store together;
//! what to show comes out as [`Outbound`] values for `slack/` to render and deliver.
//!
//! - [`route`]: whether the bot speaks at all, and how (pure);
//! - [`actions`]: clicks on its buttons; `command`: the slash command and the admin tasks.
//!
//! Each event is handled once: by event id (Slack retries) and by channel + ts (the `app_mention`
//! and `message` twins of one post); a click by a key from its payload (who, when, which button),
//! so a re-sent envelope does not vote, share or escalate twice; a slash command by its trigger (a
//! re-sent copy gets the same private answer, without counting it or starting work again). A
//! question answered in words is marked answered in place, as a click marks it
//! ([`Outbound::MarkAnswered`]), before the replies that follow the answer.
//!
//! Along the way it keeps what `netrunbook report` shows: answers per intent, 👍/👎/wrong-topic votes,
//! and the messages it abstained on or answered with a small margin (redacted, see [`feedback`]).
//!
//! **Invariant:** the callers process the events of one thread one after another, so a load, step and
//! save here never race with another for the same thread.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tracing::{debug, error, info, warn};

use crate::alert::{AlertPolicy, Gate};
use crate::dialogue::{self, Conversation, Input, Pending, Reply, Step};
use crate::error::error_chain;
use crate::feedback::{self, Unanswered, Vote, VoteKind};
use crate::kb::{KnowledgeBase, LiveKb};
use crate::matcher::Verdict;
use crate::metrics::{Duplicate, Metrics};
use crate::outbox::{Outbox, Parcel};
use crate::store::{Change, Commit, Store, StoreError};
use crate::vocab::{Identity, Inbound, InboundKind, Message, Outbound, ThreadKey};

use route::Route;

mod actions;
mod alerts;
mod command;
mod route;

/// What handling one event produced: the replies to deliver, in order, as the outbox record they were
/// saved as with the conversation, and that record's id (`None` when there are none, or saving
/// failed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Handled {
    /// The replies, in the record they were saved as (its items are empty when there are none).
    pub parcel: Parcel,
    pub outbox: Option<u64>,
    /// The store could not be reached to save the step (a database away): nothing was saved and
    /// nothing is to be delivered; the event is handled again later.
    pub put_off: bool,
}

/// What handling one event changes in the store, written at once when it is done.
#[derive(Debug, Default)]
struct Effects {
    /// The store could not be reached while handling: nothing is written or answered.
    put_off: bool,
    /// Event keys to remember as handled.
    events: Vec<String>,
    /// The thread's conversation after the event; `None`: unchanged.
    conversation: Option<Option<Conversation>>,
    /// What the step amounted to, for the log line.
    outcome: Option<Outcome>,
    /// The step answered an alert: its answer is counted as one (`report` shows them apart).
    alert: bool,
}

/// What a step amounted to, for the one INFO line per answer, abstention, clarification and
/// follow-up step (never the text).
#[derive(Debug)]
pub(crate) struct Outcome {
    what: &'static str,
    intent: Option<String>,
    score: Option<f64>,
}

impl Outcome {
    /// The outcome of `step` from `before`, if it is one worth a line.
    pub(crate) fn of(kb: &KnowledgeBase, before: Option<&Conversation>, step: &Step) -> Option<Outcome> {
        let score = step
            .matched
            .as_ref()
            .and_then(|m| m.ranked.first())
            .map(|r| (r.score * 100.0).round() / 100.0);
        let (what, intent) = match step.replies.first() {
            Some(Reply::Answer(a)) => ("answer", Some(a.intent.clone())),
            Some(Reply::NoMatch) => ("abstain", None),
            Some(Reply::Clarify { .. }) => (
                "clarify",
                step.matched
                    .as_ref()
                    .and_then(|m| m.ranked.first())
                    .map(|r| kb.intents[r.intent].id.clone()),
            ),
            _ => ("follow_up", Some(followed_up(before, step)?.to_string())),
        };
        Some(Outcome { what, intent, score })
    }

    /// The INFO line, with the time the event took so far.
    pub(crate) fn log(&self, kind: &str, started: std::time::Instant) {
        info!(
            kind,
            outcome = self.what,
            intent = self.intent.as_deref().unwrap_or(""),
            score = self.score,
            latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0,
            "handled"
        );
    }
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
pub(crate) trait ThreadReader: Send + Sync {
    /// The root message's text (with the text of its attachments), or `None` when it cannot be read.
    fn root_text(&self, channel: &str, thread_ts: &str) -> impl Future<Output = Option<String>> + Send;
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
    pub(crate) fn answers_in(&self, channel: &str) -> bool {
        self.channels.as_ref().is_none_or(|c| c.contains(channel))
    }

    pub(crate) fn is_admin(&self, user: &str) -> bool {
        self.admins.contains(user)
    }
}

/// The bot: knowledge base, store, identity, who may use it, and what it counts.
pub(crate) struct Bot<S> {
    kb: LiveKb,
    /// Where alerts are read, and what was answered lately (in memory: a restart forgets re-fires).
    alerts: AlertPolicy,
    gate: Mutex<Gate>,
    store: S,
    me: Identity,
    access: Access,
    metrics: Arc<Metrics>,
}

impl<S: Store> Bot<S> {
    /// A bot that answers everywhere, has no admins and counts into metrics of its own.
    pub(crate) fn new(kb: impl Into<LiveKb>, store: S, me: Identity) -> Bot<S> {
        Bot {
            kb: kb.into(),
            alerts: AlertPolicy::default(),
            gate: Mutex::new(Gate::default()),
            store,
            me,
            access: Access::default(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    pub(crate) fn with_access(self, access: Access) -> Bot<S> {
        Bot { access, ..self }
    }

    /// Read alerts as `alerts` says (by default, nowhere).
    pub(crate) fn with_alerts(self, alerts: AlertPolicy) -> Bot<S> {
        Bot { alerts, ..self }
    }

    pub(crate) fn with_metrics(self, metrics: Arc<Metrics>) -> Bot<S> {
        metrics.set_build_info(&self.kb.get().version);
        Bot { metrics, ..self }
    }

    /// The knowledge base in use now (a reload may replace it at any time; keep the `Arc` for the
    /// whole of one piece of work).
    pub(crate) fn kb(&self) -> Arc<KnowledgeBase> {
        self.kb.get()
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    #[cfg(test)]
    pub(crate) fn store(&self) -> &S {
        &self.store
    }

    /// The outbox of the bot's store: the replies committed with each step until they are delivered.
    pub(crate) fn outbox(&self) -> Outbox<'_, S> {
        Outbox::new(&self.store, &self.metrics)
    }

    pub(crate) fn identity(&self) -> &Identity {
        &self.me
    }

    /// Handle one event, click or shared answer with the knowledge base in use now; returns what to
    /// show, in order (the outbox record is left to whoever delivers it: see [`Bot::handle_in`]).
    #[cfg(test)]
    pub(crate) async fn handle(&self, inbound: &Inbound, reader: &impl ThreadReader, now: u64) -> Vec<Outbound> {
        self.handle_in(&self.kb(), inbound, reader, now).await.parcel.items
    }

    /// Handle one event, click or shared answer with `kb`. The thread's new conversation, the event's
    /// "handled" marks and the replies (an outbox record, see [`crate::outbox`]) are saved together
    /// and flushed before this returns; the caller delivers the replies and clears the record.
    pub(crate) async fn handle_in(
        &self,
        kb: &KnowledgeBase,
        inbound: &Inbound,
        reader: &impl ThreadReader,
        now: u64,
    ) -> Handled {
        let started = std::time::Instant::now();
        let mut fx = Effects::default();
        let key = inbound.thread();
        let out = match &inbound.kind {
            InboundKind::Mention | InboundKind::Message | InboundKind::Shortcut => {
                self.message(kb, &key, inbound, reader, now, &mut fx).await
            }
            // a click Slack re-sends must not vote, share or escalate twice
            InboundKind::Action { action, .. } if self.first_time(inbound, &mut fx) => {
                let click = actions::Click {
                    kb,
                    key: &key,
                    inbound,
                    now,
                };
                self.action(&click, action, &mut fx)
            }
            InboundKind::Action { .. } => vec![],
            InboundKind::Shared { state, rest } => self.shared(&key, inbound, state.as_deref(), rest, &mut fx),
        };
        let mut parcel = Parcel::new(key, now, &kb.version, out);
        let saved = if fx.put_off {
            Err(None)
        } else {
            self.commit(&fx, &mut parcel, now).map_err(Some)
        };
        let outbox = match saved {
            Ok(outbox) => outbox,
            Err(e) => {
                parcel.items.clear();
                // already handled elsewhere: a duplicate, dropped; else the store is away: put off
                let duplicate = matches!(e, Some(StoreError::AlreadyHandled { .. }));
                if duplicate {
                    self.metrics.duplicate_dropped(Duplicate::Redelivery);
                }
                return Handled {
                    parcel,
                    outbox: None,
                    put_off: !duplicate,
                };
            }
        };
        if let Some(o) = &fx.outcome {
            o.log(inbound.kind.label(), started);
        }
        Handled {
            parcel,
            outbox,
            put_off: false,
        }
    }

    /// Save what handling an event changed, with `parcel` as its outbox record; the record's id. When
    /// the store cannot be reached for now ([`StoreError::is_transient`]: a database away), `Err`:
    /// the step is put off, not answered, since answering unsaved would answer again when the event
    /// is handled later; and `Err` when the event was handled elsewhere meanwhile
    /// ([`StoreError::AlreadyHandled`]): the step is dropped. When the store fails otherwise, the replies still go out (better than
    /// silence), with a warning when the conversation could not be kept.
    fn commit(&self, fx: &Effects, parcel: &mut Parcel, now: u64) -> Result<Option<u64>, StoreError> {
        let key = parcel.thread.clone();
        let record = (!parcel.items.is_empty()).then(|| parcel.encode());
        let commit = Commit {
            thread: &key,
            conversation: fx.change(),
            events: &fx.events,
            outbox: record.as_deref(),
            now,
        };
        if commit.is_empty() {
            return Ok(None);
        }
        match self.store.commit(&commit) {
            Ok(id) => {
                self.metrics.store_write(true);
                Ok(id)
            }
            Err(e) if e.is_transient() => {
                self.metrics.store_write(false);
                warn!(thread = %key, error = %error_chain(&e), "the store is unavailable: this turn is put off until it is back");
                Err(e)
            }
            Err(e @ StoreError::AlreadyHandled { .. }) => {
                warn!(thread = %key, error = %e, "the event was handled elsewhere meanwhile (by another replica): this step is dropped");
                Err(e)
            }
            Err(e) => {
                self.metrics.store_write(false);
                error!(thread = %key, error = %error_chain(&e), "cannot save the conversation and its replies");
                if fx.conversation.is_some() {
                    let replies = parcel.items.iter_mut().find_map(|o| match o {
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
                Ok(None)
            }
        }
    }

    /// Load a thread's conversation; an unreadable one is logged and treated as none. When the store
    /// cannot be reached for now, the turn is put off (`fx.put_off`): no answer from a state that
    /// could not be read.
    fn load(&self, key: &ThreadKey, fx: &mut Effects) -> Option<Conversation> {
        match self.store.get(key) {
            Ok(c) => c,
            Err(e) if e.is_transient() => {
                warn!(thread = %key, error = %error_chain(&e), "the store is unavailable: this turn is put off until it is back");
                fx.put_off = true;
                None
            }
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
        for (i, key) in keys.iter().enumerate() {
            match self.store.was_seen(key) {
                Ok(false) => {}
                Ok(true) => {
                    // the event id was new and the post was seen: the other event of its pair
                    let cause = match &inbound.kind {
                        InboundKind::Action { .. } => Duplicate::Click,
                        _ if i > 0 => Duplicate::Twin,
                        _ => Duplicate::Redelivery,
                    };
                    debug!(key = %key, ?cause, "duplicate event dropped");
                    self.metrics.duplicate_dropped(cause);
                    return false;
                }
                Err(e) if e.is_transient() => {
                    warn!(error = %error_chain(&e), "the store is unavailable: this turn is put off until it is back");
                    fx.put_off = true;
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
        key: &ThreadKey,
        inbound: &Inbound,
        reader: &impl ThreadReader,
        now: u64,
        fx: &mut Effects,
    ) -> Vec<Outbound> {
        let state = if route::reads_thread(inbound) {
            self.load(key, fx)
        } else {
            None
        };
        let (addressed, root_if_silent) = match route::route(inbound, state.as_ref(), &self.access, &self.alerts) {
            Route::Ignore(why) => {
                debug!(why, "not read");
                return vec![];
            }
            _ if !self.first_time(inbound, fx) => return vec![],
            Route::NotHere => {
                let in_thread = inbound.thread_ts.as_deref().is_some_and(|t| t != inbound.ts);
                return vec![Outbound::Ephemeral {
                    channel: inbound.channel.clone(),
                    user: inbound.user.clone(),
                    thread_ts: in_thread.then(|| key.thread_ts.clone()),
                    message: self.not_here(),
                }];
            }
            Route::Alert => return self.alert(kb, key, inbound, now, fx),
            Route::Help => {
                let topics = kb.topic_groups();
                return vec![reply_in(inbound, key, Message::Help { topics })];
            }
            Route::Step {
                addressed,
                root_if_silent,
            } => (addressed, root_if_silent),
        };
        let mut text = inbound.text.trim().to_string();
        debug!(text = %crate::text::truncate(&text, 2000), addressed, "message");
        let said = |text: &str| Input::Message {
            text: text.to_string(),
            addressed,
        };
        // the text is matched once; only a mention the matcher cannot place is read with the root
        let mut step = (!text.is_empty()).then(|| dialogue::step(kb, state.as_ref(), &said(&text), now));
        let silent = step
            .as_ref()
            .is_none_or(|s| s.matched.as_ref().is_some_and(|m| m.verdict == Verdict::Abstain));
        if root_if_silent && silent {
            match reader.root_text(&inbound.channel, &key.thread_ts).await {
                Some(root) if !root.trim().is_empty() => {
                    debug!(root = %crate::text::truncate(&root, 2000), "answering from the thread's root message");
                    text = format!("{root}\n{text}");
                    step = Some(dialogue::step(kb, state.as_ref(), &said(&text), now));
                }
                _ if text.is_empty() => {
                    return vec![reply_in(
                        inbound,
                        key,
                        Message::Notice(
                            "I could not read this thread's first message. Tell me the symptom or paste the error, and mention me."
                                .into(),
                        ),
                    )];
                }
                _ => {}
            }
        }
        let step = step.unwrap_or_else(|| dialogue::step(kb, state.as_ref(), &said(&text), now));
        self.settle(kb, state.as_ref(), &step, Some(&text), now, fx);
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
        if inbound.kind == InboundKind::Shortcut {
            let user = inbound.user.clone();
            out.insert(0, reply_in(inbound, key, Message::AskedBy { user }));
        }
        if !step.replies.is_empty() {
            out.push(reply_in(inbound, key, Message::Replies(step.replies)));
        }
        out
    }

    /// What every step shares once it is decided: the thread's new conversation to save, the
    /// intent for the log, the counts and the doubtful question for the report. `text` is what was
    /// matched, when the step read text a person wrote.
    fn settle(
        &self,
        kb: &KnowledgeBase,
        before: Option<&Conversation>,
        step: &Step,
        text: Option<&str>,
        now: u64,
        fx: &mut Effects,
    ) {
        fx.save(before, step.state.as_ref());
        fx.outcome = Outcome::of(kb, before, step);
        record_intent_of(step.state.as_ref(), step.replies.first());
        self.observe(kb, text, before, step, now, fx.alert);
    }

    /// Count what a step did, keep its answers' tally and, when the match was doubtful, the message
    /// (redacted). `text` is what was matched, when the step read text.
    fn observe(
        &self,
        kb: &KnowledgeBase,
        text: Option<&str>,
        before: Option<&Conversation>,
        step: &Step,
        now: u64,
        alert: bool,
    ) {
        for r in &step.replies {
            match r {
                Reply::Answer(a) => {
                    self.metrics.answered(&a.intent);
                    let counted = if alert {
                        self.store.count_alert(&a.intent, now)
                    } else {
                        self.store.count_answer(&a.intent, now)
                    };
                    if let Err(e) = counted {
                        warn!(error = %error_chain(&e), "cannot count an answer");
                    }
                }
                Reply::NoMatch => self.metrics.abstained(),
                Reply::Clarify { .. } => self.metrics.clarified(),
                _ => {}
            }
        }
        if let Some(intent) = followed_up(before, step) {
            self.metrics.follow_up_step(intent);
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

    /// The shared answer's thread: keep the conversation the question started and post the replies
    /// after the first (which the shared message shows).
    fn shared(
        &self,
        key: &ThreadKey,
        inbound: &Inbound,
        state: Option<&Conversation>,
        rest: &[Reply],
        fx: &mut Effects,
    ) -> Vec<Outbound> {
        let before = self.load(key, fx);
        fx.save(before.as_ref(), state);
        record_intent_of(state, None);
        if rest.is_empty() {
            return vec![];
        }
        vec![reply_in(inbound, key, Message::Replies(rest.to_vec()))]
    }
}

/// The intent whose pending question `step` answered (its conversation learned a slot), if it did.
fn followed_up<'a>(before: Option<&Conversation>, step: &'a Step) -> Option<&'a str> {
    let (b, a) = (before?, step.state.as_ref()?);
    let answered =
        matches!(b.pending, Pending::Question { .. }) && a.intent == b.intent && a.slots.len() > b.slots.len();
    answered.then_some(a.intent.as_deref()).flatten()
}

/// A post in the inbound's thread.
fn reply_in(inbound: &Inbound, key: &ThreadKey, message: Message) -> Outbound {
    Outbound::Post {
        channel: inbound.channel.clone(),
        thread_ts: Some(key.thread_ts.clone()),
        message,
    }
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
    use crate::vocab::{Action, AdminTask, CommandReply, SlashCommand};

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
            // as `slack/` hands it over: the bot's mention read and taken out of the text
            mentioned: text.contains("<@UBOT>"),
            text: text.replace("<@UBOT>", "").trim().into(),
            is_bot: false,
            bot_id: None,
            edited: false,
            subtype: None,
            kind,
        }
    }

    fn slash(bot: &Bot<MemoryStore>, user: &str, text: &str) -> CommandReply {
        bot.command(
            &bot.kb(),
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

    /// A store that can be taken away, as a database is: every call fails transiently meanwhile.
    #[derive(Default)]
    struct Away {
        inner: MemoryStore,
        away: std::sync::atomic::AtomicBool,
    }

    impl Away {
        fn check(&self) -> Result<(), StoreError> {
            if self.away.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Unavailable("the test took it away".into()));
            }
            Ok(())
        }
    }

    impl crate::store::FeedbackStore for Away {
        fn count_answer(&self, i: &str, now: u64) -> Result<(), StoreError> {
            self.check()?;
            self.inner.count_answer(i, now)
        }
        fn count_alert(&self, i: &str, now: u64) -> Result<(), StoreError> {
            self.check()?;
            self.inner.count_alert(i, now)
        }
        fn put_vote(&self, v: &Vote) -> Result<(), StoreError> {
            self.check()?;
            self.inner.put_vote(v)
        }
        fn note_unanswered(&self, u: &Unanswered) -> Result<u64, StoreError> {
            self.check()?;
            self.inner.note_unanswered(u)
        }
        fn feedback(&self) -> Result<crate::store::FeedbackData, StoreError> {
            self.check()?;
            self.inner.feedback()
        }
        fn purge_feedback(&self, now: u64, r: u64) -> Result<crate::store::PurgedFeedback, StoreError> {
            self.check()?;
            self.inner.purge_feedback(now, r)
        }
    }

    impl Store for Away {
        fn get(&self, key: &ThreadKey) -> Result<Option<Conversation>, StoreError> {
            self.check()?;
            self.inner.get(key)
        }
        fn put(&self, key: &ThreadKey, c: &Conversation) -> Result<(), StoreError> {
            self.check()?;
            self.inner.put(key, c)
        }
        fn remove(&self, key: &ThreadKey) -> Result<(), StoreError> {
            self.check()?;
            self.inner.remove(key)
        }
        fn mark_event_seen(&self, e: &str, now: u64) -> Result<bool, StoreError> {
            self.check()?;
            self.inner.mark_event_seen(e, now)
        }
        fn purge(&self, now: u64, idle: u64) -> Result<crate::store::Purged, StoreError> {
            self.check()?;
            self.inner.purge(now, idle)
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.check()
        }
        fn was_seen(&self, e: &str) -> Result<bool, StoreError> {
            self.check()?;
            self.inner.was_seen(e)
        }
        fn commit(&self, c: &Commit<'_>) -> Result<Option<u64>, StoreError> {
            self.check()?;
            self.inner.commit(c)
        }
        fn outbox(&self, t: &ThreadKey) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
            self.check()?;
            self.inner.outbox(t)
        }
        fn outbox_threads(&self) -> Result<Vec<(ThreadKey, usize)>, StoreError> {
            self.check()?;
            self.inner.outbox_threads()
        }
        fn set_outbox(&self, t: &ThreadKey, id: u64, r: Option<&[u8]>) -> Result<(), StoreError> {
            self.check()?;
            self.inner.set_outbox(t, id, r)
        }
    }

    #[tokio::test]
    async fn a_turn_the_store_cannot_read_or_save_is_put_off_unanswered_then_answered_once() {
        let bot = Bot::new(
            Arc::new(KnowledgeBase::builtin().expect("built-in knowledge base")),
            Away::default(),
            Identity {
                user_id: "UBOT".into(),
                bot_id: Some("BBOT".into()),
            },
        );
        let kb = bot.kb();
        let text = "<@UBOT> dns lookups time out in pods";
        let first = event(InboundKind::Mention, "E1", "10.1", None, text);
        bot.store().away.store(true, std::sync::atomic::Ordering::SeqCst);
        for e in [
            &first,
            &event(InboundKind::Message, "E2", "10.2", Some("10.1"), "it is VPC"),
        ] {
            let h = bot.handle_in(&kb, e, &Root(None), 100).await;
            assert!(h.put_off, "put off while the store is away");
            assert!(h.parcel.items.is_empty() && h.outbox.is_none(), "nothing to post");
        }
        bot.store().away.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            bot.store().inner.get(&first.thread()).unwrap(),
            None,
            "nothing was saved"
        );
        // the journaled event comes back once the store is: answered, then a re-sent copy is not
        let h = bot.handle_in(&kb, &first, &Root(None), 101).await;
        assert!(!h.put_off && h.outbox.is_some());
        assert!(matches!(replies(&h.parcel.items)[0], Reply::Answer(a) if a.intent == "dns"));
        let again = bot.handle_in(&kb, &first, &Root(None), 102).await;
        assert!(!again.put_off && again.parcel.items.is_empty(), "answered once");
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
        let root = Root(Some("FIRING: calico-node pods in CrashLoopBackOff on 3 nodes"));
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
        let root = Root(Some("FIRING: calico-node pods in CrashLoopBackOff on 3 nodes"));
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
        let first = bot.command(&bot.kb(), &question, 1);
        let again = bot.command(&bot.kb(), &question, 2);
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
            bot.command(&bot.kb(), &cmd("UADMIN", "report", "cmd:trigger-2"), 3),
            CommandReply::Later {
                task: AdminTask::Report,
                ..
            }
        ));
        assert!(
            matches!(bot.command(&bot.kb(), &cmd("UADMIN", "report", "cmd:trigger-2"), 4), CommandReply::Now(Message::Notice(n)) if n.contains("report")),
            "acknowledged again, not run again"
        );
    }

    #[test]
    fn help_groups_every_intent() {
        let bot = bot();
        let groups = bot.kb().topic_groups();
        let n: usize = groups.iter().map(|(_, t)| t.len()).sum();
        assert_eq!(n, bot.kb().intents.len());
        let help = CommandReply::Now(Message::Help {
            topics: bot.kb().topic_groups(),
        });
        assert_eq!(slash(&bot, "UHUMAN", "help"), help);
        assert_eq!(slash(&bot, "UHUMAN", "  "), help);
        assert!(matches!(
            slash(&bot, "UHUMAN", "coredns lookups fail"),
            CommandReply::Now(Message::Private { share: Some(_), .. })
        ));
    }
}
