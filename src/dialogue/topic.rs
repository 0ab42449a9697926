//! A thread whose topic is open and no question is pending: a new or changed fact re-runs the flow,
//! "still stuck" goes to the node's `still` or the escalation path, pushback gets the runbook's
//! position again, anything else said to the bot gets where the thread stands; only a clearly
//! different problem starts a new topic.

use super::flow::{advance, escalation, label, sure_answers};
use super::{cues, flow, notice, rerun, slots, start_with, Conversation, Guidance, Reply, Step};
use crate::kb::{Intent, KnowledgeBase, Node};
use crate::matcher::{MatchOutcome, Verdict};

/// The thread has a topic and no question is pending: read the reply in that topic first.
pub(super) fn in_topic(
    kb: &KnowledgeBase,
    conv: &Conversation,
    intent: &Intent,
    text: &str,
    addressed: bool,
    now: u64,
    out: &mut Step,
) {
    // 1. a new or changed fact for the topic's flow ("it's been 25 minutes now"); an answer given to a
    // question changes only when said to the bot, by a correction, or as a duration that moved on
    let mut confirmed = false;
    if let Some(flow) = &intent.flow {
        let mut c = conv.clone();
        let mut changed = Vec::new();
        let correcting = addressed || cues::correction(text);
        for (slot, option, detail) in sure_answers(kb, flow, text, false, addressed) {
            let known = conv.slots.get(slot);
            // a value read from the first message was never confirmed: a later reply may restate it
            let answered = conv.asked.iter().any(|a| a.slot == slot);
            let minutes = kb
                .slots
                .get(slot)
                .is_some_and(|s| s.kind == crate::kb::SlotKind::Minutes);
            if known == Some(&option) {
                confirmed = true;
            } else if known.is_none() || !answered || correcting || minutes {
                changed.push(format!("*{}*", label(kb, slot, &option)));
                c.slots.insert(slot.to_string(), option);
            }
            if let Some(d) = detail {
                c.details.insert(slot.to_string(), d);
            }
        }
        if !changed.is_empty() {
            let mut trial = Step {
                state: None,
                replies: Vec::new(),
                matched: None,
                answered: Vec::new(),
            };
            rerun(kb, intent, c, &format!("Noted: {}.", changed.join(", ")), &mut trial);
            if trial.replies.len() > 1 {
                *out = trial;
                return;
            }
        }
    }
    // 2. a clearly different problem starts a new topic
    let outcome = kb.matcher.rank(&kb.prepare(text));
    if !confirmed && is_new_topic(kb, &outcome, intent, addressed, text) && !cues::still(text) {
        return start_with(kb, text, outcome, now, out);
    }
    let last = conv
        .trail
        .last()
        .and_then(|n| match intent.flow.as_ref()?.nodes.get(n)? {
            Node::Say {
                text, still, elsewhere, ..
            } => Some((n.as_str(), text.as_str(), still.as_deref(), *elsewhere)),
            Node::Ask { .. } => None,
        });
    let lead = last.map_or_else(|| flow::lead(&intent.summary), |(_, t, _, _)| flow::lead(t));
    let lead = lead.trim_end_matches(['.', ':']);
    // 3. the advice did not help: the section's next step
    if cues::still(text) {
        match last {
            Some((_, _, Some(next), _)) => {
                let mut c = conv.clone();
                if let Some(Node::Ask { slot, .. }) = intent.flow.as_ref().and_then(|f| f.nodes.get(next)) {
                    c.slots.remove(slot);
                    c.details.remove(slot);
                }
                out.state = Some(c);
                advance(kb, intent, next, out);
            }
            Some((_, _, None, true)) => out.replies.push(notice(&format!(
                "The runbook's answer stands: {lead}. armada-network cannot take this one further."
            ))),
            _ => {
                out.replies.push(notice(
                    "Then the next step is to hand it to the armada-network squad, with what you have learned:",
                ));
                out.replies.push(Reply::Escalation(escalation(kb, Some(conv))));
            }
        }
        return;
    }
    // 4. pushback: the runbook's position, once more, in one line
    if cues::pushback(text) && !cues::act(text) {
        out.replies.push(notice(&position(conv, intent)));
        return;
    }
    // 5. anything else said to the bot, or a thread reply about this very topic: where the thread
    // stands, never "nothing fits"
    let on_topic = outcome.best().is_some_and(|b| kb.intents[b.intent].id == intent.id);
    if addressed || on_topic || confirmed || cues::act(text) {
        out.matched = Some(outcome);
        repeat_last(conv, intent, out);
    }
}

/// Where the thread stands, for a reply that continues the topic: the last guidance again (not the
/// section's whole answer), or the lead of the section's summary.
pub(super) fn repeat_last(conv: &Conversation, intent: &Intent, out: &mut Step) {
    out.replies.push(notice(&format!(
        "Still on *{}*. Say *still stuck* if this didn't help, `escalate` for the escalation path, `reset` to start over, or describe a different problem.",
        intent.title
    )));
    let last = conv
        .trail
        .last()
        .and_then(|n| intent.flow.as_ref()?.nodes.get(n).map(|node| (n, node)));
    match last {
        Some((
            n,
            Node::Say {
                text,
                links,
                elsewhere,
                tip,
                ..
            },
        )) => out.replies.push(Reply::Guidance(Guidance {
            intent: intent.id.clone(),
            node: n.to_string(),
            text: text.clone(),
            links: links.clone(),
            end: true,
            escalate: false,
            elsewhere: *elsewhere,
            tip: tip.clone(),
        })),
        _ => out.replies.push(notice(&format!(
            "{}.",
            flow::lead(&intent.summary).trim_end_matches(['.', ':'])
        ))),
    }
}

/// The runbook's position where the thread stands, for pushback: the lead of the last guidance (or
/// of the section's summary) with its numbered steps, if it has any.
pub(super) fn position(conv: &Conversation, intent: &Intent) -> String {
    let text = conv
        .trail
        .last()
        .and_then(|n| match intent.flow.as_ref()?.nodes.get(n)? {
            Node::Say { text, .. } => Some(text.as_str()),
            Node::Ask { .. } => None,
        })
        .unwrap_or(&intent.summary);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let mut out = format!("The runbook's position stands: {}", first.replace('*', ""));
    let steps: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()) && l.contains(". "))
        .collect();
    for s in steps {
        out.push('\n');
        out.push_str(s);
    }
    out
}

/// A message not addressed to the bot starts a new topic only on strong evidence (a pasted error, a
/// component named with its symptom): this many times the abstention line.
const UNADDRESSED_TOPIC_FACTOR: f64 = 2.0;

/// The matcher clearly points at another section than `current`; for a message not addressed to the
/// bot, strongly so, and not in small talk.
pub(super) fn is_new_topic(
    kb: &KnowledgeBase,
    outcome: &MatchOutcome,
    current: &Intent,
    addressed: bool,
    text: &str,
) -> bool {
    outcome.verdict == Verdict::Match
        && outcome.best().is_some_and(|b| {
            kb.intents[b.intent].id != current.id
                && (addressed
                    || (b.score >= crate::matcher::ABSTAIN_BELOW * UNADDRESSED_TOPIC_FACTOR
                        && !slots::is_chatter(text)))
        })
}
