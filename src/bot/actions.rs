//! Clicks on the bot's buttons: an option of a question, the topic meant, escalation, 👍/👎, "wrong
//! topic" and "share in channel". A click is handled once (by its key); outside the allowed
//! channels it gets a private note.

use crate::dialogue::{self, Input, Pending, Reply};
use crate::feedback::VoteKind;
use crate::kb::KnowledgeBase;
use crate::store::Store;
use crate::vocab::{Action, Inbound, InboundKind, Message, Outbound, ThreadKey};

use super::{Bot, Effects};

impl<S: Store> Bot<S> {
    /// Handle a click on `action` (already known to be the first copy).
    pub(super) fn action(
        &self,
        kb: &KnowledgeBase,
        key: &ThreadKey,
        inbound: &Inbound,
        action: &Action,
        now: u64,
        fx: &mut Effects,
    ) -> Vec<Outbound> {
        let response_url = match &inbound.kind {
            InboundKind::Action { response_url, .. } => response_url.as_deref(),
            _ => None,
        };
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
                self.vote(key, inbound, intent, kind, None, now);
                vec![ephemeral(Message::Notice("Thanks, noted.".into()))]
            }
            Action::WrongTopic { from, to } => {
                let state = self.load(key);
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
                    key,
                    inbound,
                    from,
                    VoteKind::WrongTopic { picked: to.clone() },
                    asked,
                    now,
                );
                let step = dialogue::step(kb, state.as_ref(), &Input::Pick { intent: to.clone() }, now);
                self.settle(kb, state.as_ref(), &step, None, now, fx);
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
                self.observe(kb, None, None, &step, now, false);
                let mut replies = step.replies.into_iter();
                let Some(first) = replies.next() else {
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
                            state: step.state.map(Box::new),
                            rest: replies.collect(),
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
                let state = self.load(key);
                let step = dialogue::step(kb, state.as_ref(), &Input::Escalate, now);
                self.settle(kb, state.as_ref(), &step, None, now, fx);
                vec![post(step.replies)]
            }
            Action::Choose { node, option } => {
                let state = self.load(key);
                let step = dialogue::step(
                    kb,
                    state.as_ref(),
                    &Input::Choose {
                        node: node.clone(),
                        option: option.clone(),
                    },
                    now,
                );
                self.settle(kb, state.as_ref(), &step, None, now, fx);
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
                let state = self.load(key);
                let waiting = state.as_ref().is_some_and(
                    |c| matches!(&c.pending, Pending::Clarify { candidates } if candidates.contains(intent)),
                );
                let Some(picked) = kb.intent(intent).filter(|_| waiting) else {
                    return vec![ephemeral(Message::Notice(
                        "That choice was already made or has expired.".into(),
                    ))];
                };
                let step = dialogue::step(kb, state.as_ref(), &Input::Pick { intent: intent.clone() }, now);
                self.settle(kb, state.as_ref(), &step, None, now, fx);
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
}
