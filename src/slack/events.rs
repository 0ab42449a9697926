//! slack-morphism's typed Socket Mode events in, our types out: a push event (`app_mention`,
//! `message`) or a click on one of our buttons becomes an [`Inbound`]; a slash command's immediate
//! answer becomes the [`SlackCommandEventResponse`] that rides on its acknowledgement. Pure.
//!
//! What slack-morphism's models do not give us, and what we do about it:
//! - an `app_mention` or `message` whose shape slack-morphism does not model (a rich-text element it
//!   does not know, say) arrives as [`SlackEventCallbackBody::Unknown`] with the raw JSON: we read the
//!   few fields we need from it ourselves, so such a mention is still answered;
//! - `app_mention` has no `bot_id`: a mention posted by another bot looks like a person's (its
//!   `message` twin still carries `bot_id`);
//! - a click's `container.thread_ts` is dropped: a click's thread is the clicked message's
//!   `thread_ts` (from the `message` Slack sends along), else the message itself;
//! - `retry_attempt` is not exposed: Slack's retries are recognised by `event_id` alone (in `bot`);
//! - clicks and slash commands carry no `event_id`, and an envelope Slack re-sends (no ack in time,
//!   a dropped connection; possibly on another connection) has a new `envelope_id` and the same
//!   payload: they are recognised by a key from the payload ([`click_key`], [`command_key`]).

use serde_json::Value;
use slack_morphism::prelude::*;

use super::blocks::Rendered;
use super::buttons::decode_action;
use crate::vocab::{Identity, Inbound, InboundKind};

/// Subtypes of people's messages worth reading; every other subtype is not a new message.
/// (`bot_message`: an incoming webhook's post, read as an app's.)
const READABLE_SUBTYPES: &[&str] = &["thread_broadcast", "file_share", "bot_message"];

/// The event of an Events API envelope as an [`Inbound`], with the bot's mentions read and taken out of
/// its text (`me`: the bot), a readable subtype cleared and our own posts marked as a bot's; `None`
/// for events the bot does not read.
pub(crate) fn push_inbound(callback: &SlackPushEventCallback, me: &Identity) -> Option<Inbound> {
    posted(raw_inbound(callback)?, me)
}

/// What Slack's fields say, before [`posted`] reads them.
fn raw_inbound(callback: &SlackPushEventCallback) -> Option<Inbound> {
    let event_id = Some(callback.event_id.to_string());
    let team = callback.team_id.to_string();
    match &callback.event {
        SlackEventCallbackBody::AppMention(m) => Some(Inbound {
            event_id,
            team,
            channel: m.channel.to_string(),
            user: m.user.to_string(),
            ts: m.origin.ts.to_string(),
            thread_ts: m.origin.thread_ts.as_ref().map(ToString::to_string),
            text: m.content.text.clone().unwrap_or_default(),
            mentioned: true,
            is_bot: false,
            bot_id: None,
            edited: m.edited.is_some(),
            subtype: None,
            kind: InboundKind::Mention,
        }),
        SlackEventCallbackBody::Message(m) => {
            let subtype = m.subtype.as_ref().and_then(subtype_name);
            let is_bot = m.sender.bot_id.is_some() || subtype.as_deref() == Some("bot_message");
            let text = match (&m.content, is_bot) {
                // an app's post often says everything in its attachments and blocks
                (Some(c), true) => serde_json::to_value(c).map(|v| all_text(&v)).unwrap_or_default(),
                (c, _) => c.as_ref().and_then(|c| c.text.clone()).unwrap_or_default(),
            };
            Some(Inbound {
                event_id,
                team,
                channel: m.origin.channel.as_ref()?.to_string(),
                user: m.sender.user.as_ref().map(ToString::to_string).unwrap_or_default(),
                ts: m.origin.ts.to_string(),
                thread_ts: m.origin.thread_ts.as_ref().map(ToString::to_string),
                text,
                mentioned: false,
                is_bot,
                bot_id: m.sender.bot_id.as_ref().map(ToString::to_string),
                edited: subtype.as_deref() == Some("message_changed")
                    || m.message.as_ref().is_some_and(|e| e.edited.is_some()),
                subtype,
                kind: InboundKind::Message,
            })
        }
        SlackEventCallbackBody::Unknown(raw) => unmodelled_inbound(raw, event_id, team),
        _ => None,
    }
}

/// A message as the bot reads it: mentions of `me` found and removed from the text, a subtype that is
/// still a person's new message cleared, our own posts marked as a bot's.
fn posted(mut inbound: Inbound, me: &Identity) -> Option<Inbound> {
    let plain = format!("<@{}>", me.user_id);
    let labelled = format!("<@{}|", me.user_id);
    inbound.mentioned |= inbound.text.contains(&plain) || inbound.text.contains(&labelled);
    if inbound.mentioned {
        let mut text = inbound.text.replace(&plain, " ");
        while let Some(start) = text.find(&labelled) {
            match text[start..].find('>') {
                Some(end) => text.replace_range(start..start + end + 1, " "),
                None => break,
            }
        }
        inbound.text = text.trim().to_string();
    }
    // our own posts come back as events: never read them
    if inbound.user == me.user_id || (inbound.bot_id.is_some() && inbound.bot_id == me.bot_id) {
        return None;
    }
    if inbound
        .subtype
        .as_deref()
        .is_some_and(|s| READABLE_SUBTYPES.contains(&s))
    {
        inbound.subtype = None;
    }
    Some(inbound)
}

/// Every piece of text in a message payload (its `text`, and in its attachments and blocks each
/// `pretext`, `title`, `text`, field `value` and `fallback`), one per line, each once, in order.
fn all_text(v: &Value) -> String {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match x {
                        Value::String(s) if ["text", "pretext", "title", "value", "fallback"].contains(&k.as_str()) => {
                            for line in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
                                if !out.iter().any(|seen| seen == line) {
                                    out.push(line.to_string());
                                }
                            }
                        }
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    // the post's own text first
    if let Some(Value::String(t)) = v.get("text") {
        walk(&serde_json::json!({ "text": t }), &mut out);
    }
    walk(v, &mut out);
    out.join("\n")
}

/// A subtype as Slack spells it (`bot_message`, `channel_join`, or one slack-morphism does not know).
fn subtype_name(subtype: &SlackMessageEventType) -> Option<String> {
    match serde_json::to_value(subtype).ok()? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// An `app_mention` or `message` slack-morphism could not model, read from its JSON.
fn unmodelled_inbound(raw: &Value, event_id: Option<String>, team: String) -> Option<Inbound> {
    let kind = match raw.get("type")?.as_str()? {
        "app_mention" => InboundKind::Mention,
        "message" => InboundKind::Message,
        _ => return None,
    };
    let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_string);
    let subtype = text("subtype");
    let is_bot = raw.get("bot_id").is_some_and(|b| !b.is_null()) || subtype.as_deref() == Some("bot_message");
    Some(Inbound {
        event_id,
        team: if team.is_empty() {
            text("team").unwrap_or_default()
        } else {
            team
        },
        channel: text("channel")?,
        user: text("user").unwrap_or_default(),
        ts: text("ts")?,
        thread_ts: text("thread_ts"),
        text: if is_bot {
            all_text(raw)
        } else {
            text("text").unwrap_or_default()
        },
        mentioned: kind == InboundKind::Mention,
        is_bot,
        bot_id: text("bot_id"),
        edited: raw.get("edited").is_some_and(|e| !e.is_null()) || subtype.as_deref() == Some("message_changed"),
        subtype,
        kind,
    })
}

/// A click on one of our buttons, or our message shortcut, as an [`Inbound`]; `None` for anything
/// else.
pub(crate) fn interaction_inbound(event: &SlackInteractionEvent) -> Option<Inbound> {
    let click = match event {
        SlackInteractionEvent::BlockActions(click) => click,
        SlackInteractionEvent::MessageAction(a) if a.callback_id.0 == super::MESSAGE_SHORTCUT => {
            return shortcut_inbound(a);
        }
        _ => return None,
    };
    let first = click.actions.as_ref()?.first()?;
    let action = decode_action(&first.action_id.0, first.value.as_deref().unwrap_or(""))?;
    let user = click.user.as_ref().map(|u| u.id.to_string()).unwrap_or_default();
    let (message_ts, container_channel) = match &click.container {
        SlackInteractionActionContainer::Message(c) => (Some(&c.message_ts), c.channel_id.as_ref()),
        SlackInteractionActionContainer::MessageAttachment(c) => (Some(&c.message_ts), c.channel_id.as_ref()),
        SlackInteractionActionContainer::View(_) => (None, None),
    };
    let channel = container_channel.or(click.channel.as_ref().map(|c| &c.id))?.to_string();
    let ts = message_ts.or(click.message.as_ref().map(|m| &m.origin.ts))?.to_string();
    // the clicked message's thread; a root message (a shared answer) is its own thread
    let thread_ts = click
        .message
        .as_ref()
        .and_then(|m| m.origin.thread_ts.as_ref())
        .map_or_else(|| ts.clone(), ToString::to_string);
    Some(Inbound {
        event_id: Some(click_key(&user, first, &click.trigger_id)),
        team: click.team.id.to_string(),
        channel,
        user,
        ts,
        thread_ts: Some(thread_ts),
        text: String::new(),
        mentioned: false,
        is_bot: false,
        bot_id: None,
        edited: false,
        subtype: None,
        kind: InboundKind::Action {
            action,
            response_url: click.response_url.as_ref().map(|u| u.0.to_string()),
        },
    })
}

/// The message shortcut on a message: a question about that message, in its thread, by whoever used
/// it (every copy of one use shares its `trigger_id`).
fn shortcut_inbound(a: &SlackInteractionMessageActionEvent) -> Option<Inbound> {
    let message = a.message.as_ref()?;
    let is_app = message.sender.bot_id.is_some();
    let text = match (&message.content, is_app) {
        (c, true) => serde_json::to_value(c).map(|v| all_text(&v)).unwrap_or_default(),
        (c, false) => c.text.clone().unwrap_or_default(),
    };
    let ts = message.origin.ts.to_string();
    Some(Inbound {
        event_id: Some(format!("shortcut:{}", a.trigger_id)),
        team: a.team.id.to_string(),
        channel: a.channel.as_ref()?.id.to_string(),
        user: a.user.id.to_string(),
        thread_ts: Some(
            message
                .origin
                .thread_ts
                .as_ref()
                .map_or_else(|| ts.clone(), ToString::to_string),
        ),
        ts,
        text,
        mentioned: true,
        is_bot: false,
        bot_id: None,
        edited: false,
        subtype: None,
        kind: InboundKind::Shortcut,
    })
}

/// What every copy of one click shares and no other click does (the team is added by `bot`): who
/// clicked, when (`action_ts`, to the microsecond) and which button. Without an `action_ts` (Slack
/// always sends one for a button), the `trigger_id`, which is as unique per interaction.
fn click_key(user: &str, action: &SlackInteractionActionInfo, trigger: &SlackTriggerId) -> String {
    match &action.action_ts {
        Some(ts) => format!("click:{user}:{ts}:{}", action.action_id),
        None => format!("click:{user}:trigger:{trigger}"),
    }
}

/// What every copy of one slash command shares and no other command does (the team is added by
/// `bot`): its `trigger_id`, which Slack issues per invocation.
pub(crate) fn command_key(command: &SlackCommandEvent) -> String {
    format!("cmd:{}", command.trigger_id)
}

/// The acknowledgement payload of a slash command: the first rendered message, shown only to the
/// person who typed the command.
pub(crate) fn command_answer(rendered: Option<Rendered>) -> SlackCommandEventResponse {
    let content = rendered.map_or_else(SlackMessageContent::new, |r| r.content());
    SlackCommandEventResponse::new(content).with_response_type(SlackMessageResponseType::Ephemeral)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Action;
    use serde_json::json;

    /// An Events API payload as Slack sends it, through slack-morphism's model.
    fn push(event: Value) -> SlackPushEventCallback {
        serde_json::from_value(json!({"team_id":"T1","api_app_id":"A1","type":"event_callback",
            "event_id":"Ev1","event_time":1_610_241_741,"event":event}))
        .expect("slack-morphism reads the payload")
    }

    fn me() -> Identity {
        Identity {
            user_id: "UB".into(),
            bot_id: Some("BB".into()),
        }
    }

    fn inbound(event: Value) -> Option<Inbound> {
        push_inbound(&push(event), &me())
    }

    #[test]
    fn mentions_and_thread_messages() {
        let i = inbound(json!({"type":"app_mention","user":"U2","text":"<@UB> hi","ts":"1.2",
            "channel":"C1","event_ts":"1.2"}))
        .unwrap();
        assert_eq!(
            (
                i.kind,
                i.channel.as_str(),
                i.ts.as_str(),
                i.event_id.as_deref(),
                i.team.as_str()
            ),
            (InboundKind::Mention, "C1", "1.2", Some("Ev1"), "T1")
        );
        assert_eq!(
            (i.text.as_str(), i.mentioned, i.user.as_str(), i.thread_ts),
            ("hi", true, "U2", None)
        );
        let i = inbound(
            json!({"type":"message","user":"U2","text":"vpc","ts":"1.3","thread_ts":"1.2",
            "channel":"C1","channel_type":"channel","event_ts":"1.3"}),
        )
        .unwrap();
        assert_eq!(
            (i.kind, i.thread_ts.as_deref(), i.is_bot, i.edited, i.subtype),
            (InboundKind::Message, Some("1.2"), false, false, None)
        );
        assert_eq!(
            inbound(json!({"type":"reaction_added","user":"U2","reaction":"x","item":{},"event_ts":"1"})),
            None
        );
    }

    #[test]
    fn bots_edits_and_unknown_subtypes_are_marked() {
        let i = inbound(json!({"type":"message","bot_id":"B1","channel":"C","ts":"1.0","text":"x"})).unwrap();
        assert!(i.is_bot);
        let i = inbound(json!({"type":"message","subtype":"bot_message","channel":"C","ts":"1.0","text":"x"})).unwrap();
        assert!(i.is_bot);
        let i = inbound(
            json!({"type":"message","subtype":"message_changed","channel":"C","ts":"1.0",
            "message":{"type":"message","user":"U","text":"<@UB> dns","ts":"0.9","edited":{"user":"U","ts":"1.0"}}}),
        )
        .unwrap();
        assert!(i.edited && !i.is_bot);
        let i = inbound(
            json!({"type":"message","subtype":"some_future_subtype","channel":"C","ts":"1.0",
            "message":{"text":"x"}}),
        )
        .unwrap();
        assert_eq!(i.subtype.as_deref(), Some("some_future_subtype"));
        // a reply also sent to the channel and a file share are people's new messages
        for subtype in ["thread_broadcast", "file_share"] {
            let i = inbound(json!({"type":"message","subtype":subtype,"user":"U","channel":"C","ts":"1.0","text":"x"}))
                .unwrap();
            assert_eq!((i.subtype, i.is_bot), (None, false), "{subtype}");
        }
        // our own posts are never read, whatever Slack marks them with
        assert_eq!(
            inbound(json!({"type":"message","user":"UB","channel":"C","ts":"1.0","text":"x"})),
            None
        );
        assert_eq!(
            inbound(
                json!({"type":"message","bot_id":"BB","subtype":"bot_message","channel":"C","ts":"1.0","text":"x"})
            ),
            None
        );
    }

    #[test]
    fn an_apps_post_is_read_with_its_attachments_and_blocks() {
        // PagerDuty: the alert is in an attachment; Alertmanager through a webhook: title, text, fields
        let i = inbound(
            json!({"type":"message","subtype":"bot_message","bot_id":"BPD","username":"PagerDuty",
            "channel":"C1","ts":"5.0","text":"",
            "attachments":[{"fallback":"[Triggered] armada-network_endpoint_scrape_failure",
                "title":"[Triggered] #4821 armada-network_endpoint_scrape_failure on carrier105",
                "text":"Service: armada-network","color":"#d00",
                "fields":[{"title":"Urgency","value":"high","short":true}]}],
            "blocks":[{"type":"section","text":{"type":"mrkdwn","text":"Assigned to *on-call*"}}]}),
        )
        .unwrap();
        assert!(i.is_bot && i.subtype.is_none(), "{i:?}");
        assert_eq!(i.bot_id.as_deref(), Some("BPD"));
        for part in [
            "[Triggered] #4821 armada-network_endpoint_scrape_failure on carrier105",
            "Service: armada-network",
            "high",
            "Assigned to *on-call*",
            "[Triggered] armada-network_endpoint_scrape_failure",
        ] {
            assert!(i.text.lines().any(|l| l == part), "{part} missing from {:?}", i.text);
        }
        // a person's message is read from its text alone, as before
        let i = inbound(json!({"type":"message","user":"U2","channel":"C1","ts":"5.1","text":"dns fails",
            "blocks":[{"type":"rich_text","elements":[{"type":"rich_text_section","elements":[{"type":"text","text":"dns fails"}]}]}]}))
        .unwrap();
        assert_eq!(i.text, "dns fails");
    }

    #[test]
    fn the_message_shortcut_asks_about_its_message_in_its_thread() {
        let event: SlackInteractionEvent = serde_json::from_value(json!({"type":"message_action",
            "team":{"id":"T1"},"user":{"id":"U9"},"channel":{"id":"C1"},"callback_id":"find_runbook_section",
            "trigger_id":"tr1","response_url":"https://hooks.slack.com/app/x","message_ts":"7.1",
            "message":{"type":"message","user":"U2","ts":"7.1","thread_ts":"7.0","text":"calico-node keeps restarting"}}))
        .expect("slack-morphism reads the shortcut");
        let i = interaction_inbound(&event).expect("our shortcut");
        assert_eq!(
            (
                i.kind,
                i.user.as_str(),
                i.ts.as_str(),
                i.thread_ts.as_deref(),
                i.text.as_str(),
                i.mentioned
            ),
            (
                InboundKind::Shortcut,
                "U9",
                "7.1",
                Some("7.0"),
                "calico-node keeps restarting",
                true
            )
        );
        assert_eq!(i.event_id.as_deref(), Some("shortcut:tr1"));
        let mut other = serde_json::to_value(&event).unwrap();
        other["callback_id"] = json!("someone_elses");
        let other: SlackInteractionEvent = serde_json::from_value(other).unwrap();
        assert_eq!(interaction_inbound(&other), None);
    }

    #[test]
    fn the_bots_mentions_are_read_and_taken_out_of_the_text() {
        let i = inbound(
            json!({"type":"message","user":"U2","text":"hey <@UB|netrunbook> dns <@U7> fails <@UB>",
            "ts":"1.3","channel":"C1"}),
        )
        .unwrap();
        assert_eq!((i.mentioned, i.text.as_str()), (true, "hey   dns <@U7> fails"));
        let i = inbound(json!({"type":"message","user":"U2","text":"ask <@U7> about dns","ts":"1.3","channel":"C1"}))
            .unwrap();
        assert_eq!((i.mentioned, i.text.as_str()), (false, "ask <@U7> about dns"));
    }

    #[test]
    fn a_mention_slack_morphism_cannot_model_is_still_read() {
        // an incoming webhook's post has no `user`: slack-morphism cannot model such an `app_mention`
        let event = json!({"type":"app_mention","bot_id":"B9","username":"alertmanager","text":"<@UB> calico down",
            "ts":"1.2","channel":"C1","event_ts":"1.2"});
        let callback = push(event);
        assert!(matches!(callback.event, SlackEventCallbackBody::Unknown(_)));
        let i = push_inbound(&callback, &me()).unwrap();
        assert_eq!(
            (i.kind, i.channel.as_str(), i.text.as_str(), i.team.as_str(), i.is_bot),
            (InboundKind::Mention, "C1", "calico down", "T1", true)
        );
    }

    fn click(message: Value, thread_ts: Option<&str>, action: &Action) -> Option<Inbound> {
        let (id, value) = super::super::buttons::encode_action(action, 1);
        let mut container = json!({"type":"message","message_ts":"5.0","channel_id":"C","is_ephemeral":false});
        if let Some(t) = thread_ts {
            container["thread_ts"] = json!(t);
        }
        let event: SlackInteractionEvent = serde_json::from_value(json!({"type":"block_actions",
            "team":{"id":"T"},"user":{"id":"U"},"api_app_id":"A","trigger_id":"t","channel":{"id":"C"},
            "container":container,"message":message,"response_url":"http://x/r",
            "actions":[{"type":"button","action_id":id,"value":value,"block_id":"b"}]}))
        .expect("slack-morphism reads the click");
        interaction_inbound(&event)
    }

    #[test]
    fn clicks_on_our_buttons_become_actions_in_the_clicked_messages_thread() {
        let choose = Action::Choose {
            node: "infra".into(),
            option: "vpc".into(),
        };
        let in_thread = json!({"type":"message","ts":"5.0","thread_ts":"4.0","text":"q","user":"UB","bot_id":"BB"});
        let i = click(in_thread, Some("4.0"), &choose).unwrap();
        assert_eq!((i.ts.as_str(), i.thread_ts.as_deref()), ("5.0", Some("4.0")));
        assert!(matches!(
            &i.kind,
            InboundKind::Action {
                action: Action::Choose { .. },
                response_url: Some(u),
            } if u == "http://x/r"
        ));
        // a root message (a shared answer) is its own thread
        let root = json!({"type":"message","ts":"5.0","text":"a","user":"UB","bot_id":"BB"});
        let i = click(root, None, &Action::Escalate).unwrap();
        assert_eq!(i.thread_ts.as_deref(), Some("5.0"));
    }

    #[test]
    fn a_click_is_known_by_who_when_and_which_button() {
        let (id, value) = super::super::buttons::encode_action(&Action::Escalate, 1);
        let key = |user: &str, action_ts: Option<&str>, trigger: &str| {
            let mut action = json!({"type":"button","action_id":id,"value":value,"block_id":"b"});
            if let Some(ts) = action_ts {
                action["action_ts"] = json!(ts);
            }
            let event: SlackInteractionEvent = serde_json::from_value(json!({"type":"block_actions",
                "team":{"id":"T"},"user":{"id":user},"api_app_id":"A","trigger_id":trigger,
                "container":{"type":"message","message_ts":"5.0","channel_id":"C"},"actions":[action]}))
            .unwrap();
            interaction_inbound(&event).unwrap().event_id.unwrap()
        };
        // a re-sent envelope carries the same payload
        assert_eq!(key("U", Some("9.1"), "t1"), key("U", Some("9.1"), "t1"));
        assert_ne!(
            key("U", Some("9.1"), "t1"),
            key("U", Some("9.2"), "t2"),
            "another click"
        );
        assert_ne!(
            key("U", Some("9.1"), "t1"),
            key("V", Some("9.1"), "t1"),
            "someone else's"
        );
        assert_eq!(key("U", None, "t1"), key("U", None, "t1"));
        assert_ne!(key("U", None, "t1"), key("U", None, "t2"));
    }

    #[test]
    fn a_slash_command_is_known_by_its_trigger() {
        let command = |trigger: &str| -> SlackCommandEvent {
            serde_json::from_value(json!({"team_id":"T1","channel_id":"C1","user_id":"U1",
                "command":"/netrunbook","text":"dns","response_url":"https://example.com/r","trigger_id":trigger}))
            .unwrap()
        };
        assert_eq!(command_key(&command("t1")), command_key(&command("t1")));
        assert_ne!(command_key(&command("t1")), command_key(&command("t2")));
    }

    #[test]
    fn clicks_on_other_buttons_are_not_ours() {
        let event: SlackInteractionEvent = serde_json::from_value(json!({"type":"block_actions",
            "team":{"id":"T"},"user":{"id":"U"},"api_app_id":"A","trigger_id":"t",
            "container":{"type":"message","message_ts":"5.0","channel_id":"C"},
            "actions":[{"type":"button","action_id":"someone_elses","value":"x"}]}))
        .unwrap();
        assert_eq!(interaction_inbound(&event), None);
    }

    #[test]
    fn a_command_answer_is_ephemeral() {
        let answer = command_answer(Some(Rendered {
            text: "fallback".into(),
            blocks: vec![],
        }));
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(
            (json["response_type"].as_str(), json["text"].as_str()),
            (Some("ephemeral"), Some("fallback"))
        );
    }
}
