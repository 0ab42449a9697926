//! The knowledge base's own tests, replayed: every slot option's example answers must select it and its
//! near misses must not; no phrase may select two options of one slot; every flow example (first
//! message, then plain replies in the thread) must end on its node. `netrunbook check` reports each
//! failure with its file and line, so a runbook owner who edits a word list sees what broke.

use super::slots::{self, Reading};
use super::{step, Conversation, Input, Pending};
use crate::kb::KnowledgeBase;

/// How many example answers and near misses each option carries at least.
pub(crate) const MIN_EXAMPLES_PER_OPTION: usize = 8;

/// One example that landed wrong: the file, a snippet to find its line by, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub file: String,
    pub needle: String,
    pub message: String,
}

fn describe(kb: &KnowledgeBase, slot: &str, r: &Reading) -> String {
    let label = |o: &str| super::flow::label(kb, slot, o);
    match r {
        Reading::Pick { option, sure: true, .. } => format!("selects `{}`", label(option)),
        Reading::Pick {
            option, sure: false, ..
        } => format!("only hints at `{}` (read as small talk)", label(option)),
        Reading::Unsure => "reads as “not sure”".into(),
        Reading::Vague => "reads as a vague time".into(),
        Reading::Conflict(o) => format!(
            "is a conflict between {}",
            o.iter()
                .map(|x| format!("`{}`", label(x)))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        Reading::Nothing => "selects nothing".into(),
    }
}

/// Replay every example of the knowledge base; the failures, empty when all pass.
pub fn verify(kb: &KnowledgeBase) -> Vec<Failure> {
    let mut out = Vec::new();
    for slot in kb.slots.values() {
        for (i, o) in slot.options.iter().enumerate() {
            if o.examples.len() + o.near_misses.len() < MIN_EXAMPLES_PER_OPTION
                && slot.any_reply.as_deref() != Some(&o.id)
            {
                out.push(Failure {
                    file: slot.file.clone(),
                    needle: format!("{}:", o.id),
                    message: format!(
                        "slot `{}` option `{}` has {} examples and near misses; give at least {MIN_EXAMPLES_PER_OPTION}",
                        slot.name,
                        o.id,
                        o.examples.len() + o.near_misses.len()
                    ),
                });
            }
            for ex in &o.examples {
                let r = slots::read(kb, slot, ex, true, false);
                if !matches!(&r, Reading::Pick { option, sure: true, .. } if option == &o.id) {
                    out.push(Failure {
                        file: slot.file.clone(),
                        needle: ex.clone(),
                        message: format!(
                            "slot `{}`: example “{ex}” should select `{}` but {}",
                            slot.name,
                            o.label,
                            describe(kb, &slot.name, &r)
                        ),
                    });
                }
            }
            for nm in &o.near_misses {
                let r = slots::read(kb, slot, nm, true, false);
                if matches!(&r, Reading::Pick { option, sure: true, .. } if option == &o.id) {
                    out.push(Failure {
                        file: slot.file.clone(),
                        needle: nm.clone(),
                        message: format!(
                            "slot `{}`: near miss “{nm}” must not select `{}` but does",
                            slot.name, o.label
                        ),
                    });
                }
            }
            for other in &slot.options[i + 1..] {
                for w in &o.words {
                    if other.words.contains(w) {
                        out.push(Failure {
                            file: slot.file.clone(),
                            needle: format!("{}:", o.id),
                            message: format!(
                                "slot `{}`: the words “{}” select both `{}` and `{}`",
                                slot.name,
                                w.join(" "),
                                o.id,
                                other.id
                            ),
                        });
                    }
                }
            }
        }
    }
    for intent in &kb.intents {
        let Some(flow) = &intent.flow else { continue };
        for ex in &flow.examples {
            let mut state: Option<Conversation> = None;
            for (i, text) in ex.say.iter().enumerate() {
                let s = step(
                    kb,
                    state.as_ref(),
                    &Input::Message {
                        text: text.clone(),
                        addressed: i == 0,
                    },
                    1_700_000_000 + 60 * i as u64,
                );
                state = s.state;
            }
            let got = state.as_ref().map(|c| {
                let at = match &c.pending {
                    Pending::Question { node } => format!("waiting at question `{node}`"),
                    _ => match c.trail.last() {
                        Some(n) => format!("at `{n}`"),
                        None => "with no guidance given".into(),
                    },
                };
                (
                    c.intent.clone(),
                    at,
                    c.pending == Pending::Nothing && c.trail.last() == Some(&ex.ends),
                )
            });
            let ok = matches!(&got, Some((Some(id), _, true)) if id == &intent.id);
            if !ok {
                let what = match got {
                    Some((Some(id), at, _)) if id == intent.id => at,
                    Some((Some(id), at, _)) => format!("in intent `{id}` {at}"),
                    Some((None, _, _)) => "without a topic (no match, or asking which section)".into(),
                    None => "with no conversation".into(),
                };
                out.push(Failure {
                    file: intent.file.clone(),
                    needle: ex.say[0].clone(),
                    message: format!("flow example {:?} should end at `{}` but ended {what}", ex.say, ex.ends),
                });
            }
        }
    }
    out
}
