//! Our buttons on the wire: an [`Action`] as a button's `action_id` and `value` and back, and the
//! questions a message's buttons answer (read back from a thread). Pure.

use serde::{Deserialize, Serialize};
use slack_morphism::prelude::*;

use crate::vocab::Action;

/// Most characters of a button's `value`.
pub(crate) const VALUE_CHARS: usize = 2000;

/// What a button carries in its `value`: short keys, JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Value {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    /// The intent an answer was about (wrong topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<String>,
}

pub(crate) const A_CHOOSE: &str = "nrb_choose";
pub(crate) const A_PICK: &str = "nrb_pick";
pub(crate) const A_ESCALATE: &str = "nrb_escalate";
pub(crate) const A_UP: &str = "nrb_helpful";
pub(crate) const A_DOWN: &str = "nrb_unhelpful";
pub(crate) const A_SHARE: &str = "nrb_share";
pub(crate) const A_WRONG_TOPIC: &str = "nrb_wrong_topic";

/// The `action_id` (unique in its message thanks to `seq`) and `value` of an action's button.
pub fn encode_action(action: &Action, seq: usize) -> (String, String) {
    let (kind, v) = match action {
        Action::Choose { node, option } => (
            A_CHOOSE,
            Value {
                n: Some(node.clone()),
                o: Some(option.clone()),
                ..Value::default()
            },
        ),
        Action::Pick { intent } => (
            A_PICK,
            Value {
                i: Some(intent.clone()),
                ..Value::default()
            },
        ),
        Action::Escalate => (A_ESCALATE, Value::default()),
        Action::WrongTopic { from, to } => (
            A_WRONG_TOPIC,
            Value {
                i: Some(to.clone()),
                f: Some(from.clone()),
                ..Value::default()
            },
        ),
        Action::Feedback { intent, helpful } => (
            if *helpful { A_UP } else { A_DOWN },
            Value {
                i: Some(intent.clone()),
                ..Value::default()
            },
        ),
        Action::Share { question } => {
            // shorten the question until the value fits the limit
            let mut keep = question.chars().count().min(VALUE_CHARS);
            loop {
                let q: String = question.chars().take(keep).collect();
                let value = serde_json::to_string(&Value {
                    q: Some(q),
                    ..Value::default()
                })
                .unwrap_or_default();
                if value.chars().count() <= VALUE_CHARS || keep == 0 {
                    return (format!("{A_SHARE}:{seq}"), value);
                }
                keep = keep * 9 / 10;
            }
        }
    };
    (format!("{kind}:{seq}"), serde_json::to_string(&v).unwrap_or_default())
}

/// The action behind one of our buttons; `None` for anything else.
pub(crate) fn decode_action(action_id: &str, value: &str) -> Option<Action> {
    let kind = action_id.split(':').next()?;
    let v: Value = if value.is_empty() {
        Value::default()
    } else {
        serde_json::from_str(value).ok()?
    };
    Some(match kind {
        A_CHOOSE => Action::Choose {
            node: v.n?,
            option: v.o?,
        },
        A_PICK => Action::Pick { intent: v.i? },
        A_ESCALATE => Action::Escalate,
        A_UP => Action::Feedback {
            intent: v.i.unwrap_or_default(),
            helpful: true,
        },
        A_DOWN => Action::Feedback {
            intent: v.i.unwrap_or_default(),
            helpful: false,
        },
        A_SHARE => Action::Share { question: v.q? },
        A_WRONG_TOPIC => Action::WrongTopic { from: v.f?, to: v.i? },
        _ => return None,
    })
}

/// The flow nodes whose options the buttons in `blocks` choose: the questions a message asks (read
/// back from a thread, to find the message that asked a question answered in words).
pub(crate) fn question_nodes(blocks: &[SlackBlock]) -> Vec<String> {
    let buttons = blocks.iter().flat_map(|b| match b {
        SlackBlock::Actions(a) => a
            .elements
            .iter()
            .filter_map(|e| match e {
                SlackActionBlockElement::Button(b) => Some(b),
                _ => None,
            })
            .collect(),
        SlackBlock::Section(s) => match &s.accessory {
            Some(SlackSectionBlockElement::Button(b)) => vec![b],
            _ => vec![],
        },
        _ => vec![],
    });
    let mut nodes: Vec<String> = buttons
        .filter_map(
            |b| match decode_action(&b.action_id.as_ref()?.0, b.value.as_deref().unwrap_or(""))? {
                Action::Choose { node, .. } => Some(node),
                _ => None,
            },
        )
        .collect();
    nodes.dedup();
    nodes
}
