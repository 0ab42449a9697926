//! Clicks on the bot's buttons: an option of a question, the topic meant, escalation, 👍/👎, "wrong
//! topic" and "share in channel". A click is handled once (by its key); outside the allowed
//! channels it gets a private note. Every click that moves the conversation goes through
//! [`Bot::turn`]: step the thread's conversation, then settle it like any other step.

use crate::dialogue::{self, Conversation, Input, Pending, Reply, Step};
use crate::feedback::VoteKind;
use crate::kb::KnowledgeBase;
use crate::store::Store;
use crate::vocab::{Action, Inbound, InboundKind, Message, Outbound, ThreadKey};

use super::{Bot, Effects};

/// One click: what it acts on, and where its answers go.
pub(super) struct Click<'a> {
    pub kb: &'a KnowledgeBase,
    pub key: &'a ThreadKey,
    pub inbound: &'a Inbound,
    pub now: u64,
}

impl Click<'_> {
    /// For the clicker only, in the thread.
    fn private(&self, message: Message) -> Outbound {
        Outbound::Ephemeral {
            channel: self.inbound.channel.clone(),
            user: self.inbound.user.clone(),
            thread_ts: Some(self.key.thread_ts.clone()),
            message,
        }
    }

    /// Replies in the thread.
    fn post(&self, replies: Vec<Reply>) -> Outbound {
        Outbound::Post {
            channel: self.inbound.channel.clone(),
            thread_ts: Some(self.key.thread_ts.clone()),
            message: Message::Replies(replies),
        }
    }

    /// The clicked question, shown answered by the clicker, without its buttons.
    fn answered(&self, question: String, choice: String) -> Outbound {
        Outbound::Update {
            channel: self.inbound.channel.clone(),
            ts: self.inbound.ts.clone(),
            message: Message::Answered {
                question,
                choice,
                user: self.inbound.user.clone(),
            },
        }
    }
}

impl<S: Store> Bot<S> {
    /// Handle a click on `action` (already known to be the first copy).
    pub(super) fn action(&self, c: &Click<'_>, action: &Action, fx: &mut Effects) -> Vec<Outbound> {
        if !self.access.answers_in(&c.inbound.channel) {
            return vec![c.private(self.not_here())];
        }
        match action {
            Action::Feedback { intent, helpful } => {
                let kind = if *helpful { VoteKind::Up } else { VoteKind::Down };
                self.vote(c.key, c.inbound, intent, kind, None, c.now);
                vec![c.private(Message::Notice("Thanks, noted.".into()))]
            }
            Action::WrongTopic { from, to } => self.wrong_topic(c, from, to, fx),
            Action::Share { question } => self.share(c, question),
            Action::Escalate => {
                let state = self.load(c.key, fx);
                let step = self.turn(c, state.as_ref(), &Input::Escalate, fx);
                vec![c.post(step.replies)]
            }
            Action::Choose { node, option } => {
                let state = self.load(c.key, fx);
                let input = Input::Choose {
                    node: node.clone(),
                    option: option.clone(),
                };
                let step = self.turn(c, state.as_ref(), &input, fx);
                match step.answered.first().map(|a| (a.question.clone(), a.choice.clone())) {
                    Some((question, choice)) => {
                        let mut out = vec![c.answered(question, choice)];
                        if !step.replies.is_empty() {
                            out.push(c.post(step.replies));
                        }
                        out
                    }
                    // a stale or repeated click: tell the clicker only
                    None => vec![c.private(Message::Replies(step.replies))],
                }
            }
            Action::Pick { intent } => {
                let state = self.load(c.key, fx);
                let waiting = state.as_ref().is_some_and(
                    |s| matches!(&s.pending, Pending::Clarify { candidates } if candidates.contains(intent)),
                );
                let Some(picked) = c.kb.intent(intent).filter(|_| waiting) else {
                    return vec![c.private(Message::Notice("That choice was already made or has expired.".into()))];
                };
                let step = self.turn(c, state.as_ref(), &Input::Pick { intent: intent.clone() }, fx);
                vec![
                    c.answered("Which runbook section did you mean?".into(), picked.title.clone()),
                    c.post(step.replies),
                ]
            }
        }
    }

    /// Step the thread's conversation `state` with `input` and settle the step.
    fn turn(&self, c: &Click<'_>, state: Option<&Conversation>, input: &Input, fx: &mut Effects) -> Step {
        let step = dialogue::step(c.kb, state, input, c.now);
        self.settle(c.kb, state, &step, None, c.now, fx);
        step
    }

    /// The answer was about the wrong section: count the vote against it and switch to `to`.
    fn wrong_topic(&self, c: &Click<'_>, from: &str, to: &str, fx: &mut Effects) -> Vec<Outbound> {
        let state = self.load(c.key, fx);
        let Some(picked) = c.kb.intent(to) else {
            return vec![c.private(Message::Notice("That topic is no longer in the knowledge base.".into()))];
        };
        if state.as_ref().is_some_and(|s| s.intent.as_deref() == Some(to)) {
            return vec![c.private(Message::Notice(format!(
                "This thread is already about “{}”.",
                picked.title
            )))];
        }
        let asked = state.as_ref().map(|s| s.origin.as_str());
        let vote = VoteKind::WrongTopic { picked: to.to_string() };
        self.vote(c.key, c.inbound, from, vote, asked, c.now);
        let step = self.turn(c, state.as_ref(), &Input::Pick { intent: to.to_string() }, fx);
        let mut replies = vec![Reply::Notice {
            text: format!("Wrong topic: switching to “{}”.", picked.title),
        }];
        replies.extend(step.replies);
        vec![c.post(replies)]
    }

    /// Post the private answer to `question` in the channel: its first reply as a new message there,
    /// whose thread then starts with the conversation the question started (not matched again).
    fn share(&self, c: &Click<'_>, question: &str) -> Vec<Outbound> {
        let input = Input::Message {
            text: question.to_string(),
            addressed: true,
        };
        let step = dialogue::step(c.kb, None, &input, c.now);
        self.observe(c.kb, None, None, &step, c.now, false);
        let mut replies = step.replies.into_iter();
        let Some(first) = replies.next() else {
            return vec![];
        };
        let mut out = vec![Outbound::PostRoot {
            channel: c.inbound.channel.clone(),
            message: Message::Shared {
                user: c.inbound.user.clone(),
                question: question.to_string(),
                reply: first,
            },
            then: Box::new(Inbound {
                event_id: None,
                thread_ts: None,
                kind: InboundKind::Shared {
                    state: step.state.map(Box::new),
                    rest: replies.collect(),
                },
                ..c.inbound.clone()
            }),
        }];
        if let InboundKind::Action {
            response_url: Some(url),
            ..
        } = &c.inbound.kind
        {
            out.push(Outbound::Respond {
                response_url: url.clone(),
                message: None,
            });
        }
        out
    }
}
