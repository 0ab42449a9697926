//! Whether the bot speaks at all, and how: a message event in, a [`Route`] out. Pure: it reads the
//! event, who may use the bot where, and the thread's conversation (loaded by the caller only when
//! [`reads_thread`] says the event may concern one).
//!
//! The rules:
//! - posts by apps and bots (our own included), edits, joins and other subtypes are not read;
//! - a thread the bot has no conversation in is not read unless the bot is mentioned;
//! - in a thread with a conversation, plain replies are offered to the engine as `addressed: false`
//!   (it leaves chatter that answers nothing alone), mentions as `addressed: true`;
//! - a mention in a thread with no question pending that says nothing the matcher can place ("@netrunbook",
//!   "@netrunbook what does the runbook say?") is answered from the thread's root message (the alert);
//! - a bare mention or "help" outside a conversation gets the topic list;
//! - outside the allowed channels (when a list is set) a mention gets a short private note;
//! - in a channel opted in to alerts, a new top-level post by another app is an alert;
//! - the message shortcut asks about the message it was used on, as a mention in its thread would.

use crate::dialogue::{self, Conversation, Pending};
use crate::vocab::{Inbound, InboundKind};

use super::Access;
use crate::alert::AlertPolicy;

/// Words that ask for the topic list.
pub(crate) const HELP_WORDS: &[&str] = &["help", "topics", "?"];

/// What to do with a message event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Not for the bot (the reason, for the debug log).
    Ignore(&'static str),
    /// Outside the allowed channels: a private note.
    NotHere,
    /// The topic list.
    Help,
    /// An alert by another app in a channel opted in: answered when the match is confident.
    Alert,
    /// Step the thread's conversation with the text; `root_if_silent`: when the matcher cannot place
    /// the text (or it is empty), answer the thread's root message with it instead.
    Step { addressed: bool, root_if_silent: bool },
}

/// True when the event may concern the thread's conversation, which the caller then loads for
/// [`route`]: a mention, or any reply in a thread.
pub(crate) fn reads_thread(inbound: &Inbound) -> bool {
    addressed(inbound) || in_thread(inbound)
}

/// The route of a message event (`app_mention` or `message`), given the thread's conversation.
pub(crate) fn route(inbound: &Inbound, state: Option<&Conversation>, access: &Access, alerts: &AlertPolicy) -> Route {
    if inbound.edited || inbound.subtype.is_some() {
        return Route::Ignore("an edit or a non-message subtype");
    }
    if inbound.is_bot {
        if !in_thread(inbound) && !inbound.mentioned && alerts.reads(&inbound.channel, inbound.bot_id.as_deref()) {
            return Route::Alert;
        }
        return Route::Ignore("a bot's message");
    }
    let addressed = addressed(inbound);
    let in_thread = in_thread(inbound);
    if !addressed && (!in_thread || state.is_none()) {
        // people talking to each other: only a thread with a conversation makes their replies ours
        return Route::Ignore("people talking among themselves");
    }
    if !access.answers_in(&inbound.channel) {
        return Route::NotHere;
    }
    let text = inbound.text.trim();
    if inbound.kind == InboundKind::Shortcut {
        // the message the shortcut was used on is the question, whatever it says
        return Route::Step {
            addressed,
            root_if_silent: false,
        };
    }
    if addressed {
        let waiting = state.is_some_and(|c| matches!(c.pending, Pending::Question { .. } | Pending::Clarify { .. }));
        if in_thread && !waiting && dialogue::command(text).is_none() {
            return Route::Step {
                addressed,
                root_if_silent: true,
            };
        }
        if (!in_thread || state.is_none()) && (text.is_empty() || HELP_WORDS.contains(&text.to_lowercase().as_str())) {
            return Route::Help;
        }
    }
    Route::Step {
        addressed,
        root_if_silent: false,
    }
}

fn addressed(inbound: &Inbound) -> bool {
    matches!(inbound.kind, InboundKind::Mention | InboundKind::Shortcut) || inbound.mentioned
}

fn in_thread(inbound: &Inbound) -> bool {
    inbound.thread_ts.as_deref().is_some_and(|t| t != inbound.ts)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn message(kind: InboundKind, thread_ts: Option<&str>, text: &str) -> Inbound {
        Inbound {
            event_id: Some("E1".into()),
            team: "T1".into(),
            channel: "C1".into(),
            user: "U1".into(),
            ts: "10.2".into(),
            thread_ts: thread_ts.map(str::to_string),
            text: text.into(),
            mentioned: kind == InboundKind::Mention,
            is_bot: false,
            bot_id: None,
            edited: false,
            subtype: None,
            kind,
        }
    }

    fn conversation(pending: Pending) -> Conversation {
        let kb = crate::kb::KnowledgeBase::builtin().expect("built-in knowledge base");
        Conversation::new(&kb, Some(kb.intents[0].id.clone()), pending, "dns fails".into(), 1)
    }

    fn route_(inbound: &Inbound, state: Option<&Conversation>, access: &Access) -> Route {
        let alerts = AlertPolicy {
            channels: BTreeSet::from(["CALERT".to_string()]),
            ..AlertPolicy::default()
        };
        route(inbound, state, access, &alerts)
    }

    const STEP: Route = Route::Step {
        addressed: false,
        root_if_silent: false,
    };

    #[test]
    fn each_rule_routes_as_documented() {
        let anywhere = Access::default();
        let topic = conversation(Pending::Nothing);
        let waiting = conversation(Pending::Question { node: "n".into() });
        let mut bot = message(InboundKind::Message, None, "dns");
        bot.is_bot = true;
        assert!(matches!(route_(&bot, None, &anywhere), Route::Ignore(_)));
        let mut join = message(InboundKind::Message, Some("10.1"), "joined");
        join.subtype = Some("channel_join".into());
        assert!(matches!(route_(&join, Some(&topic), &anywhere), Route::Ignore(_)));
        // chatter: a top-level message, or a reply in a thread the bot is not in
        let chatter = message(InboundKind::Message, Some("10.1"), "lunch?");
        assert!(matches!(
            route_(&message(InboundKind::Message, None, "dns"), None, &anywhere),
            Route::Ignore(_)
        ));
        assert!(matches!(route_(&chatter, None, &anywhere), Route::Ignore(_)));
        assert!(!reads_thread(&message(InboundKind::Message, None, "dns")));
        assert!(reads_thread(&chatter));
        // a reply in a thread with a conversation is offered, unaddressed
        assert_eq!(route_(&chatter, Some(&topic), &anywhere), STEP);
        // a mention in a thread with no question pending may read the root; with one, it answers it
        let mention = message(InboundKind::Mention, Some("10.1"), "");
        let from_root = Route::Step {
            addressed: true,
            root_if_silent: true,
        };
        assert_eq!(route_(&mention, Some(&topic), &anywhere), from_root);
        assert_eq!(route_(&mention, None, &anywhere), from_root);
        assert_eq!(
            route_(&mention, Some(&waiting), &anywhere),
            Route::Step {
                addressed: true,
                root_if_silent: false
            }
        );
        // a command in a thread is the command, never the root
        let reset = message(InboundKind::Mention, Some("10.1"), "reset");
        assert_eq!(
            route_(&reset, Some(&topic), &anywhere),
            Route::Step {
                addressed: true,
                root_if_silent: false
            }
        );
        // a bare mention or "help" at the top level lists the topics
        assert_eq!(
            route_(&message(InboundKind::Mention, None, ""), None, &anywhere),
            Route::Help
        );
        assert_eq!(
            route_(&message(InboundKind::Mention, None, "Help"), None, &anywhere),
            Route::Help
        );
        // outside the allowed channels: a note, but chatter stays chatter
        let elsewhere = Access {
            channels: Some(BTreeSet::from(["C9".to_string()])),
            admins: BTreeSet::new(),
        };
        assert_eq!(
            route_(&message(InboundKind::Mention, None, "dns"), None, &elsewhere),
            Route::NotHere
        );
        assert!(matches!(route_(&chatter, None, &elsewhere), Route::Ignore(_)));
        // an app's top-level post is an alert only in a channel opted in
        let mut alert = message(InboundKind::Message, None, "[FIRING:1] calico-node down");
        alert.is_bot = true;
        assert!(matches!(route_(&alert, None, &anywhere), Route::Ignore(_)));
        alert.channel = "CALERT".into();
        assert_eq!(route_(&alert, None, &anywhere), Route::Alert);
        alert.thread_ts = Some("10.1".into());
        assert!(
            matches!(route_(&alert, None, &anywhere), Route::Ignore(_)),
            "a reply is no new alert"
        );
        // the shortcut asks about its message, even an empty one, and never reads the root
        let shortcut = message(InboundKind::Shortcut, Some("10.1"), "");
        assert_eq!(
            route_(&shortcut, None, &anywhere),
            Route::Step {
                addressed: true,
                root_if_silent: false
            }
        );
    }
}
