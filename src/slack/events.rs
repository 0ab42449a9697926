//! Socket Mode frames in, our types out: parses an envelope (`hello`, `disconnect`, `events_api`,
//! `slash_commands`, `interactive`) into an [`Envelope`], turning the events the bot cares about into
//! [`Inbound`]s. Pure.
//!
//! The shapes are read with small tolerant structs rather than slack-morphism's event models: those
//! reject a whole envelope for one unknown message subtype, and hide `retry_attempt` and the
//! `disconnect` reason, all of which the bot needs.

use serde::Deserialize;

use crate::bot::{Inbound, InboundKind};

use super::blocks::decode_action;

/// One Socket Mode frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    Hello,
    /// Slack is about to close the connection; `reason` says why (`link_disabled`: Socket Mode was
    /// turned off for the app, do not reconnect).
    Disconnect {
        reason: String,
    },
    /// An Events API event; `inbound` is `None` for events the bot does not read.
    Event {
        envelope_id: String,
        retry_attempt: u32,
        inbound: Option<Inbound>,
    },
    /// `/netrunbook <text>`; answered in the acknowledgement.
    Command {
        envelope_id: String,
        team: String,
        channel: String,
        user: String,
        text: String,
    },
    /// A click; `inbound` is `None` when it is not one of our buttons.
    Interactive {
        envelope_id: String,
        inbound: Option<Inbound>,
    },
    /// Anything else that carries an envelope id: acknowledged and dropped.
    Other {
        envelope_id: String,
        kind: String,
    },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable Socket Mode frame")]
pub struct FrameError(#[from] serde_json::Error);

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    envelope_id: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    retry_attempt: u32,
    #[serde(default)]
    payload: serde_json::Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EventCallback {
    team_id: String,
    event_id: Option<String>,
    event: Event,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    subtype: Option<String>,
    user: Option<String>,
    bot_id: Option<String>,
    text: Option<String>,
    ts: Option<String>,
    thread_ts: Option<String>,
    channel: Option<String>,
    /// Present on edited messages.
    edited: Option<serde_json::Value>,
    team: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Command {
    team_id: String,
    channel_id: String,
    user_id: String,
    text: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    team: Id,
    user: Id,
    channel: Id,
    container: Container,
    message: Option<Posted>,
    response_url: Option<String>,
    actions: Vec<ActionInfo>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Id {
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Container {
    message_ts: Option<String>,
    thread_ts: Option<String>,
    channel_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Posted {
    ts: Option<String>,
    thread_ts: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ActionInfo {
    action_id: String,
    value: Option<String>,
}

/// Parse one text frame.
pub fn parse(text: &str) -> Result<Envelope, FrameError> {
    let frame: Frame = serde_json::from_str(text)?;
    let envelope_id = frame.envelope_id.unwrap_or_default();
    Ok(match frame.kind.as_str() {
        "hello" => Envelope::Hello,
        "disconnect" => Envelope::Disconnect {
            reason: frame.reason.unwrap_or_default(),
        },
        "events_api" => {
            let cb: EventCallback = serde_json::from_value(frame.payload)?;
            Envelope::Event {
                envelope_id,
                retry_attempt: frame.retry_attempt,
                inbound: event_inbound(cb),
            }
        }
        "slash_commands" => {
            let c: Command = serde_json::from_value(frame.payload)?;
            Envelope::Command {
                envelope_id,
                team: c.team_id,
                channel: c.channel_id,
                user: c.user_id,
                text: c.text,
            }
        }
        "interactive" => {
            let i: Interaction = serde_json::from_value(frame.payload)?;
            Envelope::Interactive {
                envelope_id,
                inbound: interaction_inbound(i),
            }
        }
        other => Envelope::Other {
            envelope_id,
            kind: other.to_string(),
        },
    })
}

fn event_inbound(cb: EventCallback) -> Option<Inbound> {
    let e = cb.event;
    let kind = match e.kind.as_str() {
        "app_mention" => InboundKind::Mention,
        "message" => InboundKind::Message,
        _ => return None,
    };
    let team = if cb.team_id.is_empty() {
        e.team.unwrap_or_default()
    } else {
        cb.team_id
    };
    Some(Inbound {
        event_id: cb.event_id,
        team,
        channel: e.channel?,
        user: e.user.unwrap_or_default(),
        ts: e.ts?,
        thread_ts: e.thread_ts,
        text: e.text.unwrap_or_default(),
        is_bot: e.bot_id.is_some() || e.subtype.as_deref() == Some("bot_message"),
        edited: e.edited.is_some() || e.subtype.as_deref() == Some("message_changed"),
        subtype: e.subtype,
        kind,
    })
}

fn interaction_inbound(i: Interaction) -> Option<Inbound> {
    if i.kind != "block_actions" {
        return None;
    }
    let first = i.actions.into_iter().next()?;
    let action = decode_action(&first.action_id, first.value.as_deref().unwrap_or(""))?;
    let channel = i.container.channel_id.filter(|c| !c.is_empty()).unwrap_or(i.channel.id);
    let ts = i
        .container
        .message_ts
        .or_else(|| i.message.as_ref().and_then(|m| m.ts.clone()))?;
    // the clicked message's thread; a root message (a shared answer) is its own thread
    let thread_ts = i
        .container
        .thread_ts
        .or_else(|| i.message.and_then(|m| m.thread_ts))
        .or_else(|| Some(ts.clone()));
    Some(Inbound {
        event_id: None,
        team: i.team.id,
        channel,
        user: i.user.id,
        ts,
        thread_ts,
        text: String::new(),
        is_bot: false,
        edited: false,
        subtype: None,
        kind: InboundKind::Action {
            action,
            response_url: i.response_url,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::Action;

    #[test]
    fn reads_the_documented_frames() {
        assert_eq!(
            parse(
                r#"{"type":"hello","num_connections":1,"connection_info":{"app_id":"A1"},"debug_info":{"host":"h"}}"#
            )
            .unwrap(),
            Envelope::Hello
        );
        assert_eq!(
            parse(r#"{"type":"disconnect","reason":"link_disabled"}"#).unwrap(),
            Envelope::Disconnect {
                reason: "link_disabled".into()
            }
        );
        let ev = parse(r#"{"envelope_id":"e1","type":"events_api","accepts_response_payload":false,"retry_attempt":2,
            "payload":{"team_id":"T1","type":"event_callback","event_id":"Ev1","event":{"type":"app_mention","user":"U2",
            "text":"<@UB> hi","ts":"1.2","channel":"C1","event_ts":"1.2"}}}"#)
        .unwrap();
        let Envelope::Event {
            envelope_id,
            retry_attempt,
            inbound: Some(i),
        } = ev
        else {
            panic!("{ev:?}")
        };
        assert_eq!((envelope_id.as_str(), retry_attempt), ("e1", 2));
        assert_eq!(
            (i.kind, i.channel.as_str(), i.ts.as_str(), i.event_id.as_deref()),
            (InboundKind::Mention, "C1", "1.2", Some("Ev1"))
        );
    }

    #[test]
    fn unknown_subtypes_and_edits_still_parse() {
        let ev = parse(
            r#"{"envelope_id":"e","type":"events_api","payload":{"team_id":"T","event_id":"E","event":{"type":"message",
            "subtype":"some_future_subtype","channel":"C","ts":"1.0","message":{"text":"x"}}}}"#,
        )
        .unwrap();
        assert!(matches!(
            ev,
            Envelope::Event {
                inbound: Some(Inbound { subtype: Some(_), .. }),
                ..
            }
        ));
        let ev = parse(
            r#"{"envelope_id":"e","type":"events_api","payload":{"team_id":"T","event_id":"E","event":{"type":"message",
            "bot_id":"B1","channel":"C","ts":"1.0","text":"x"}}}"#,
        )
        .unwrap();
        assert!(matches!(
            ev,
            Envelope::Event {
                inbound: Some(Inbound { is_bot: true, .. }),
                ..
            }
        ));
    }

    #[test]
    fn clicks_on_our_buttons_become_actions() {
        let (id, value) = super::super::blocks::encode_action(
            &Action::Choose {
                node: "infra".into(),
                option: "vpc".into(),
            },
            1,
        );
        let frame = serde_json::json!({"envelope_id":"e","type":"interactive","payload":{"type":"block_actions",
            "team":{"id":"T"},"user":{"id":"U"},"channel":{"id":"C"},
            "container":{"type":"message","message_ts":"5.0","channel_id":"C","thread_ts":"4.0"},
            "response_url":"http://x/r","actions":[{"type":"button","action_id":id,"value":value}]}});
        let Envelope::Interactive { inbound: Some(i), .. } = parse(&frame.to_string()).unwrap() else {
            panic!()
        };
        assert_eq!((i.ts.as_str(), i.thread_ts.as_deref()), ("5.0", Some("4.0")));
        assert!(matches!(
            i.kind,
            InboundKind::Action {
                action: Action::Choose { .. },
                ..
            }
        ));
    }
}
