//! Walking an intent's flow: the first answer, filling slots from what was said, asking the next
//! question the conversation has no answer for, the guidance of say-nodes, and the escalation record.

use super::reply::{Answer, Choice, Escalation, Guidance, Question, Reply};
use super::slots::{self, Reading};
use super::state::{Asked, Conversation, Pending};
use super::Step;
use crate::kb::{Flow, Intent, KnowledgeBase, Link, Node};

/// How many links a first reply shows at most.
pub const FIRST_REPLY_LINKS: usize = 4;

pub(crate) fn choice_of(i: &Intent) -> Choice {
    Choice {
        id: i.id.clone(),
        label: i.title.clone(),
    }
}

/// The links of an intent's first reply: those no flow node gives (the flow's answers bring the
/// variant-specific ones), at most [`FIRST_REPLY_LINKS`].
pub fn first_links(intent: &Intent) -> Vec<Link> {
    let in_flow = |l: &Link| {
        intent.flow.as_ref().is_some_and(|f| {
            f.nodes
                .values()
                .any(|n| matches!(n, Node::Say { links, .. } if links.iter().any(|x| x.resolved == l.resolved)))
        })
    };
    intent
        .links
        .iter()
        .filter(|l| !in_flow(l))
        .take(FIRST_REPLY_LINKS)
        .cloned()
        .collect()
}

/// Answer with an intent and start its flow, with every slot `text` already answers filled.
#[allow(clippy::too_many_arguments)]
pub(crate) fn begin(
    kb: &KnowledgeBase,
    intent: &Intent,
    origin: &str,
    text: &str,
    score: f64,
    alternatives: Vec<Choice>,
    now: u64,
    out: &mut Step,
) {
    let mut c = Conversation::new(kb, Some(intent.id.clone()), Pending::Nothing, origin.to_string(), now);
    prefill(kb, intent, text, &mut c);
    out.replies.push(Reply::Answer(Answer {
        intent: intent.id.clone(),
        heading: intent.heading.clone(),
        title: intent.title.clone(),
        url: intent.url.clone(),
        summary: intent.summary.clone(),
        links: first_links(intent),
        facts: intent.facts.clone(),
        score,
        alternatives,
        has_flow: intent.flow.is_some(),
    }));
    out.state = Some(c);
    if let Some(flow) = &intent.flow {
        advance(kb, intent, &flow.start, out);
    }
}

/// The slots of the intent's flow, each once, in the order the flow asks them.
pub(crate) fn flow_slots(flow: &Flow) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    for node in flow_order(flow) {
        if let Node::Ask { slot, .. } = node {
            if !seen.contains(&slot.as_str()) {
                seen.push(slot);
            }
        }
    }
    seen
}

/// Every slot of `flow` that `text` answers for sure, in the order the flow asks them: (slot, option,
/// the value as given).
pub(crate) fn sure_answers<'f>(
    kb: &KnowledgeBase,
    flow: &'f Flow,
    text: &str,
    asked: bool,
    addressed: bool,
) -> Vec<(&'f str, String, Option<String>)> {
    flow_slots(flow)
        .into_iter()
        .filter_map(
            |slot| match slots::read(kb, kb.slots.get(slot)?, text, asked, addressed) {
                Reading::Pick {
                    option,
                    detail,
                    sure: true,
                } => Some((slot, option, detail)),
                _ => None,
            },
        )
        .collect()
}

/// Fill every slot of the intent's flow that `text` answers and that is not known yet.
pub(crate) fn prefill(kb: &KnowledgeBase, intent: &Intent, text: &str, c: &mut Conversation) {
    let Some(flow) = &intent.flow else { return };
    for (slot, option, detail) in sure_answers(kb, flow, text, false, true) {
        if c.slots.contains_key(slot) {
            continue;
        }
        c.slots.insert(slot.to_string(), option);
        if let Some(d) = detail {
            c.details.insert(slot.to_string(), d);
        }
    }
}

/// Walk the flow from `from`, skipping questions already answered, until a question is pending or the
/// flow ends. `out.state` must hold the conversation.
pub(crate) fn advance(kb: &KnowledgeBase, intent: &Intent, from: &str, out: &mut Step) {
    let Some(flow) = &intent.flow else { return };
    let Some(conv) = out.state.as_mut() else { return };
    let mut at = from.to_string();
    // flows are acyclic (checked at load), so this visits each node at most once
    for _ in 0..=flow.nodes.len() {
        match flow.nodes.get(&at) {
            Some(Node::Ask { slot, next, .. }) => match conv.slots.get(slot) {
                Some(value) => match next.get(value).or_else(|| next.get("default")) {
                    Some(n) => at = n.clone(),
                    None => break,
                },
                None => {
                    let q = question(kb, intent, &at, false);
                    conv.asked.retain(|a| a.node != at);
                    conv.asked.push(Asked {
                        node: at.clone(),
                        slot: slot.clone(),
                        question: q.text.clone(),
                        said: None,
                    });
                    conv.pending = Pending::Question { node: at.clone() };
                    out.replies.push(Reply::Question(q));
                    return;
                }
            },
            Some(Node::Say {
                text,
                links,
                then,
                escalate,
                elsewhere,
                tip,
                ..
            }) => {
                conv.trail.push(at.clone());
                out.replies.push(Reply::Guidance(Guidance {
                    intent: intent.id.clone(),
                    node: at.clone(),
                    text: text.clone(),
                    links: links.clone(),
                    end: then.is_none(),
                    escalate: *escalate,
                    elsewhere: *elsewhere,
                    tip: tip.clone(),
                }));
                match then {
                    Some(n) => at = n.clone(),
                    None => break,
                }
            }
            None => break,
        }
    }
    conv.pending = Pending::Nothing;
    let c = conv.clone();
    if out
        .replies
        .iter()
        .any(|r| matches!(r, Reply::Guidance(g) if g.escalate && g.end))
    {
        out.replies.push(Reply::Escalation(escalation(kb, Some(&c))));
    }
}

pub(crate) fn question(kb: &KnowledgeBase, intent: &Intent, node: &str, reask: bool) -> Question {
    let (slot, text) = match intent.flow.as_ref().and_then(|f| f.nodes.get(node)) {
        Some(Node::Ask { slot, question, .. }) => (kb.slots.get(slot), question.clone()),
        _ => (None, None),
    };
    Question {
        intent: intent.id.clone(),
        node: node.to_string(),
        text: text.or_else(|| slot.map(|s| s.question.clone())).unwrap_or_default(),
        options: slot
            .map(|s| {
                s.options
                    .iter()
                    .map(|o| Choice {
                        id: o.id.clone(),
                        label: o.label.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        reask,
        note: None,
    }
}

/// The label of `option` of `slot`, or the id when the slot or option is gone.
pub(crate) fn label(kb: &KnowledgeBase, slot: &str, option: &str) -> String {
    kb.slots
        .get(slot)
        .and_then(|s| s.options.iter().find(|o| o.id == option))
        .map_or_else(|| option.to_string(), |o| o.label.clone())
}

/// The escalation path, with each question as it was asked and the answer as it was given; facts taken
/// from the first message are listed as such.
pub fn escalation(kb: &KnowledgeBase, state: Option<&Conversation>) -> Escalation {
    let esc = kb.escalation_intent();
    let intent = state.and_then(|c| c.intent.as_deref()).and_then(|id| kb.intent(id));
    let mut collected = Vec::new();
    if let Some(c) = state {
        for a in &c.asked {
            let Some(value) = c.slots.get(&a.slot) else { continue };
            let mut answer = label(kb, &a.slot, value);
            if let Some(d) = c.details.get(&a.slot) {
                answer = format!("{answer} ({d})");
            }
            if let Some(said) = &a.said {
                answer = format!("{answer}: “{said}”");
            }
            collected.push((a.question.clone(), answer));
        }
        for (slot, value) in &c.slots {
            if c.asked.iter().any(|a| &a.slot == slot) {
                continue;
            }
            let mut answer = label(kb, slot, value);
            if let Some(d) = c.details.get(slot) {
                answer = format!("{answer} ({d})");
            }
            collected.push(("From the first message:".to_string(), answer));
        }
    }
    Escalation {
        title: esc.title.clone(),
        summary: esc.summary.trim().to_string(),
        topic: intent.map(|i| i.title.clone()),
        links: esc.links.clone(),
        facts: esc.facts.clone(),
        collected,
        origin: state.map(|c| c.origin.clone()).unwrap_or_default(),
    }
}

/// The flow's nodes breadth-first from the start: the order in which questions are asked.
pub(crate) fn flow_order(flow: &Flow) -> Vec<&Node> {
    let mut order: Vec<&String> = vec![&flow.start];
    let mut i = 0;
    while i < order.len() {
        let next: Vec<&String> = match flow.nodes.get(order[i]) {
            Some(Node::Ask { next, .. }) => next.values().collect(),
            Some(Node::Say { then, .. }) => then.iter().collect(),
            None => Vec::new(),
        };
        for n in next {
            if !order.contains(&n) {
                order.push(n);
            }
        }
        i += 1;
    }
    order.iter().filter_map(|n| flow.nodes.get(*n)).collect()
}

/// The first sentence of a node's text (its bold lead when it has one): the runbook's position in
/// one line.
pub fn lead(text: &str) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if let Some(rest) = first.strip_prefix('*') {
        if let Some(end) = rest.find('*') {
            return rest[..end].trim().to_string();
        }
    }
    let end = first
        .char_indices()
        .find(|&(i, c)| (c == '.' || c == ':') && first[i + 1..].starts_with(' '))
        .map_or(first.len(), |(i, _)| i + 1);
    first[..end].trim().to_string()
}
