//! The dialogue engine: `step(knowledge, state, input, now) -> (new state, replies)`. Pure and
//! infallible: the caller loads the state, calls `step`, saves the new state and delivers the replies.
//!
//! A conversation is one thread. Its first addressed message is matched to an intent; the intent's
//! summary is the answer, and when the intent has a flow the engine walks it, asking for each slot it does
//! not know yet. Every message of the conversation fills every slot it answers (the first message, or one
//! reply that answers two questions), so nobody is asked what they already said. Replies that answer
//! nothing are ignored unless they were addressed to the bot: then a clear new question starts over, and
//! anything else re-asks the pending question with its options.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::kb::{Intent, KnowledgeBase, Link, Node, Slot, SlotKind};
use crate::matcher::{MatchOutcome, Prepared, Verdict, AMBIGUOUS_RATIO};

/// Version of the serialised [`Conversation`]; bump it when the shape changes.
pub const FORMAT_VERSION: u32 = 1;
/// How much of the first message a conversation keeps (for clarification and the escalation summary).
const ORIGIN_CHARS: usize = 2000;

/// The state of one thread's conversation. Plain data, serialisable, versioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub format: u32,
    /// Knowledge-base version the conversation was last stepped with.
    pub kb_version: String,
    /// The intent being worked; `None` while the bot asks which of two sections was meant.
    pub intent: Option<String>,
    pub pending: Pending,
    /// Slot name -> option id.
    pub slots: BTreeMap<String, String>,
    /// Slot name -> the value as given, where it says more than the option ("25 min").
    pub details: BTreeMap<String, String>,
    /// The message that started the conversation (truncated).
    pub origin: String,
    /// Say-nodes passed, in order.
    pub trail: Vec<String>,
    pub started_at: u64,
    pub updated_at: u64,
}

/// What the conversation waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pending {
    /// Nothing: the flow ended, or the intent has none.
    Nothing,
    /// An answer to the question of this flow node.
    Question { node: String },
    /// A choice between these intents.
    Clarify { candidates: Vec<String> },
}

/// What happened in the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Text; `addressed` when it was meant for the bot (a mention, a slash command, the CLI).
    Message { text: String, addressed: bool },
    /// A button: option `option` of the question at flow node `node`.
    Choose { node: String, option: String },
    /// The user picked an intent (clarification, or "wrong topic").
    Pick { intent: String },
    /// The user asked for the escalation path.
    Escalate,
    /// Forget this thread's conversation.
    Reset,
}

/// A button or numbered choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub label: String,
}

/// The answer for a matched section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub intent: String,
    pub heading: String,
    pub title: String,
    pub url: String,
    pub summary: String,
    pub links: Vec<Link>,
    pub facts: BTreeMap<String, Vec<String>>,
    pub score: f64,
    /// Other sections that scored, for "wrong topic".
    pub alternatives: Vec<Choice>,
    /// A follow-up flow starts after this answer.
    pub has_flow: bool,
}

/// A follow-up question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub intent: String,
    pub node: String,
    pub text: String,
    pub options: Vec<Choice>,
    /// The previous reply did not answer it.
    pub reask: bool,
}

/// Guidance from a flow's say-node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guidance {
    pub intent: String,
    pub node: String,
    pub text: String,
    pub links: Vec<Link>,
    /// The flow ends here.
    pub end: bool,
    /// The runbook says to hand over here.
    pub escalate: bool,
}

/// The escalation path with what was learned so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// Title of the section being worked, if any.
    pub topic: Option<String>,
    pub links: Vec<Link>,
    pub facts: BTreeMap<String, Vec<String>>,
    /// (question, answer) pairs collected so far.
    pub collected: Vec<(String, String)>,
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Answer(Answer),
    Question(Question),
    Guidance(Guidance),
    /// Which of these sections was meant?
    Clarify {
        candidates: Vec<Choice>,
    },
    /// Nothing in the runbook fits.
    NoMatch,
    Escalation(Escalation),
    /// A short status line (reset, stale button, changed flow).
    Notice {
        text: String,
    },
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The new state; `None` means forget the thread.
    pub state: Option<Conversation>,
    pub replies: Vec<Reply>,
    /// The matcher's outcome when this step matched text (for metrics and the feedback log).
    pub matched: Option<MatchOutcome>,
}

/// Advance one thread's conversation by one input.
pub fn step(kb: &KnowledgeBase, state: Option<&Conversation>, input: &Input, now: u64) -> Step {
    let mut out = Step {
        state: state.cloned(),
        replies: Vec::new(),
        matched: None,
    };
    match input {
        Input::Reset => {
            out.state = None;
            out.replies
                .push(notice("Conversation reset. Mention me with a new question any time."));
        }
        Input::Escalate => {
            out.replies.push(Reply::Escalation(escalation(kb, state)));
        }
        Input::Pick { intent } => match kb.intent(intent) {
            Some(i) => {
                let origin = state.map(|c| c.origin.clone()).unwrap_or_default();
                let msg = kb.prepare(&origin);
                begin(kb, i, &origin, &msg, 0.0, Vec::new(), now, &mut out);
            }
            None => out
                .replies
                .push(notice("That topic is no longer in the knowledge base.")),
        },
        Input::Choose { node, option } => choose(kb, state, node, option, now, &mut out),
        Input::Message { text, addressed } => message(kb, state, text, *addressed, now, &mut out),
    }
    if let Some(c) = out.state.as_mut() {
        c.updated_at = now;
        c.kb_version = kb.version.clone();
    }
    out
}

fn notice(text: &str) -> Reply {
    Reply::Notice { text: text.to_string() }
}

fn is_reset_command(text: &str) -> bool {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    // a mention arrives as "<@UBOT> stop": the id is one more word
    let words: Vec<&String> = words
        .iter()
        .filter(|w| !(w.starts_with('u') && w.len() > 6 && w.chars().any(|c| c.is_ascii_digit())))
        .collect();
    words.len() == 1 && ["stop", "reset", "cancel", "restart"].contains(&words[0].as_str())
}

fn message(kb: &KnowledgeBase, state: Option<&Conversation>, text: &str, addressed: bool, now: u64, out: &mut Step) {
    if addressed && is_reset_command(text) {
        out.state = None;
        out.replies
            .push(notice("Conversation reset. Mention me with a new question any time."));
        return;
    }
    let msg = kb.prepare(text);
    let conv = state.filter(|c| !matches!(c.pending, Pending::Nothing));
    let Some(conv) = conv else {
        if addressed {
            start(kb, text, &msg, now, out);
        }
        return;
    };
    match &conv.pending {
        Pending::Question { node } => {
            let Some((intent, slot)) = pending_slot(kb, conv, node) else {
                restart_changed(kb, conv, now, out);
                return;
            };
            if let Some((value, detail)) = extract(kb, slot, &msg, true) {
                let mut c = conv.clone();
                c.slots.insert(slot.name.clone(), value);
                if let Some(d) = detail {
                    c.details.insert(slot.name.clone(), d);
                }
                prefill(kb, intent, &msg, &mut c);
                let node = node.clone();
                out.state = Some(c);
                advance(kb, intent, &node, out);
                return;
            }
            if !addressed {
                return;
            }
            let outcome = kb.matcher.rank(&msg);
            let new_topic = outcome.best().is_some_and(|b| kb.intents[b.intent].id != intent.id);
            if new_topic {
                start_with(kb, text, &msg, outcome, now, out);
            } else {
                out.matched = Some(outcome);
                out.replies.push(Reply::Question(question(kb, intent, node, true)));
            }
        }
        Pending::Clarify { candidates } => {
            if !addressed {
                return;
            }
            let outcome = kb.matcher.rank(&msg);
            let picked = pick_by_number(text, candidates).or_else(|| {
                outcome
                    .ranked
                    .iter()
                    .map(|r| &kb.intents[r.intent].id)
                    .find(|id| candidates.contains(id))
                    .cloned()
            });
            match picked.as_deref().and_then(|id| kb.intent(id)) {
                Some(i)
                    if outcome
                        .best()
                        .is_none_or(|b| candidates.contains(&kb.intents[b.intent].id)) =>
                {
                    let origin = format!("{}\n{}", conv.origin, text);
                    let msg = kb.prepare(&origin);
                    begin(kb, i, &conv.origin, &msg, 0.0, Vec::new(), now, out);
                }
                _ if outcome.best().is_some() => start_with(kb, text, &msg, outcome, now, out),
                _ => out.replies.push(Reply::Clarify {
                    candidates: candidates
                        .iter()
                        .filter_map(|id| kb.intent(id))
                        .map(choice_of)
                        .collect(),
                }),
            }
        }
        // filtered out above: a finished conversation behaves like none
        Pending::Nothing => {}
    }
}

fn pick_by_number(text: &str, candidates: &[String]) -> Option<String> {
    let t = text.trim().trim_start_matches('#');
    let n: usize = t.parse().ok()?;
    candidates.get(n.checked_sub(1)?).cloned()
}

fn pending_slot<'k>(kb: &'k KnowledgeBase, conv: &Conversation, node: &str) -> Option<(&'k Intent, &'k Slot)> {
    let intent = kb.intent(conv.intent.as_deref()?)?;
    match intent.flow.as_ref()?.nodes.get(node)? {
        Node::Ask { slot, .. } => Some((intent, kb.slots.get(slot)?)),
        Node::Say { .. } => None,
    }
}

/// The knowledge base changed under a running conversation: start its intent's flow again, keeping
/// every answer, or forget it when the intent is gone.
fn restart_changed(kb: &KnowledgeBase, conv: &Conversation, now: u64, out: &mut Step) {
    match conv.intent.as_deref().and_then(|id| kb.intent(id)) {
        Some(intent) if intent.flow.is_some() => {
            out.replies.push(notice(
                "The runbook flow for this topic changed since my last question; picking up with the new one.",
            ));
            let mut c = conv.clone();
            c.pending = Pending::Nothing;
            c.updated_at = now;
            out.state = Some(c);
            let start = intent.flow.as_ref().map(|f| f.start.clone()).unwrap_or_default();
            advance(kb, intent, &start, out);
        }
        _ => {
            out.state = None;
            out.replies.push(notice(
                "The knowledge base changed and this topic is gone. Please ask again.",
            ));
        }
    }
}

fn start(kb: &KnowledgeBase, text: &str, msg: &Prepared, now: u64, out: &mut Step) {
    let outcome = kb.matcher.rank(msg);
    start_with(kb, text, msg, outcome, now, out);
}

fn start_with(kb: &KnowledgeBase, text: &str, msg: &Prepared, outcome: MatchOutcome, now: u64, out: &mut Step) {
    let origin = crate::text::truncate(text, ORIGIN_CHARS * 4)
        .chars()
        .take(ORIGIN_CHARS)
        .collect::<String>();
    match outcome.verdict {
        Verdict::Abstain => {
            out.state = None;
            out.replies.push(Reply::NoMatch);
        }
        Verdict::Ambiguous => {
            let best = outcome.ranked[0].score;
            let candidates: Vec<String> = outcome
                .ranked
                .iter()
                .filter(|r| r.score >= best * AMBIGUOUS_RATIO)
                .take(3)
                .map(|r| kb.intents[r.intent].id.clone())
                .collect();
            out.replies.push(Reply::Clarify {
                candidates: candidates
                    .iter()
                    .filter_map(|id| kb.intent(id))
                    .map(choice_of)
                    .collect(),
            });
            out.state = Some(new_conversation(kb, None, Pending::Clarify { candidates }, origin, now));
        }
        Verdict::Match => {
            let best = &outcome.ranked[0];
            let alternatives = outcome.ranked[1..]
                .iter()
                .map(|r| choice_of(&kb.intents[r.intent]))
                .collect();
            begin(
                kb,
                &kb.intents[best.intent],
                &origin,
                msg,
                best.score,
                alternatives,
                now,
                out,
            );
        }
    }
    out.matched = Some(outcome);
}

fn new_conversation(
    kb: &KnowledgeBase,
    intent: Option<String>,
    pending: Pending,
    origin: String,
    now: u64,
) -> Conversation {
    Conversation {
        format: FORMAT_VERSION,
        kb_version: kb.version.clone(),
        intent,
        pending,
        slots: BTreeMap::new(),
        details: BTreeMap::new(),
        origin,
        trail: Vec::new(),
        started_at: now,
        updated_at: now,
    }
}

fn choice_of(i: &Intent) -> Choice {
    Choice {
        id: i.id.clone(),
        label: i.title.clone(),
    }
}

/// Answer with an intent and start its flow, with every slot the text already answers filled.
#[allow(clippy::too_many_arguments)]
fn begin(
    kb: &KnowledgeBase,
    intent: &Intent,
    origin: &str,
    msg: &Prepared,
    score: f64,
    alternatives: Vec<Choice>,
    now: u64,
    out: &mut Step,
) {
    let mut c = new_conversation(kb, Some(intent.id.clone()), Pending::Nothing, origin.to_string(), now);
    prefill(kb, intent, msg, &mut c);
    out.replies.push(Reply::Answer(Answer {
        intent: intent.id.clone(),
        heading: intent.heading.clone(),
        title: intent.title.clone(),
        url: intent.url.clone(),
        summary: intent.summary.clone(),
        links: intent.links.clone(),
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

/// Fill every slot of the intent's flow that this message answers and that is not known yet.
fn prefill(kb: &KnowledgeBase, intent: &Intent, msg: &Prepared, c: &mut Conversation) {
    let Some(flow) = &intent.flow else { return };
    for node in flow.nodes.values() {
        if let Node::Ask { slot, .. } = node {
            if c.slots.contains_key(slot) {
                continue;
            }
            if let Some(s) = kb.slots.get(slot) {
                if let Some((value, detail)) = extract(kb, s, msg, false) {
                    c.slots.insert(slot.clone(), value);
                    if let Some(d) = detail {
                        c.details.insert(slot.clone(), d);
                    }
                }
            }
        }
    }
}

/// Walk the flow from `from`, skipping questions already answered, until a question is pending or the
/// flow ends. `out.state` must hold the conversation.
fn advance(kb: &KnowledgeBase, intent: &Intent, from: &str, out: &mut Step) {
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
                    conv.pending = Pending::Question { node: at.clone() };
                    out.replies.push(Reply::Question(question(kb, intent, &at, false)));
                    return;
                }
            },
            Some(Node::Say {
                text,
                links,
                then,
                escalate,
            }) => {
                conv.trail.push(at.clone());
                out.replies.push(Reply::Guidance(Guidance {
                    intent: intent.id.clone(),
                    node: at.clone(),
                    text: text.clone(),
                    links: links.clone(),
                    end: then.is_none(),
                    escalate: *escalate,
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

fn question(kb: &KnowledgeBase, intent: &Intent, node: &str, reask: bool) -> Question {
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
    }
}

fn choose(kb: &KnowledgeBase, state: Option<&Conversation>, node: &str, option: &str, now: u64, out: &mut Step) {
    let current = state.and_then(|c| match &c.pending {
        Pending::Question { node: n } if n == node => Some(c),
        _ => None,
    });
    let Some(conv) = current else {
        out.replies
            .push(notice("That question was already answered or has expired."));
        if let Some(c) = state {
            if let (Pending::Question { node }, Some(intent)) =
                (&c.pending, c.intent.as_deref().and_then(|i| kb.intent(i)))
            {
                out.replies.push(Reply::Question(question(kb, intent, node, true)));
            }
        }
        return;
    };
    match pending_slot(kb, conv, node) {
        Some((intent, slot)) if slot.options.iter().any(|o| o.id == option) => {
            let mut c = conv.clone();
            c.slots.insert(slot.name.clone(), option.to_string());
            c.updated_at = now;
            out.state = Some(c);
            advance(kb, intent, node, out);
        }
        Some((intent, _)) => out.replies.push(Reply::Question(question(kb, intent, node, true))),
        None => restart_changed(kb, conv, now, out),
    }
}

fn escalation(kb: &KnowledgeBase, state: Option<&Conversation>) -> Escalation {
    let esc = kb.escalation_intent();
    let intent = state.and_then(|c| c.intent.as_deref()).and_then(|id| kb.intent(id));
    let mut collected = Vec::new();
    if let (Some(c), Some(i)) = (state, intent) {
        if let Some(flow) = &i.flow {
            let mut seen = Vec::new();
            for node in flow_order(flow) {
                if let Node::Ask { slot, question: q, .. } = node {
                    if seen.contains(slot) {
                        continue;
                    }
                    seen.push(slot.clone());
                    let (Some(value), Some(s)) = (c.slots.get(slot), kb.slots.get(slot)) else {
                        continue;
                    };
                    let label = s
                        .options
                        .iter()
                        .find(|o| &o.id == value)
                        .map_or(value.clone(), |o| o.label.clone());
                    let answer = match c.details.get(slot) {
                        Some(d) => format!("{label} ({d})"),
                        None => label,
                    };
                    collected.push((q.clone().unwrap_or_else(|| s.question.clone()), answer));
                }
            }
        }
    }
    Escalation {
        topic: intent.map(|i| i.title.clone()),
        links: esc.links.clone(),
        facts: esc.facts.clone(),
        collected,
        origin: state.map(|c| c.origin.clone()).unwrap_or_default(),
    }
}

/// The flow's nodes breadth-first from the start: the order in which questions are asked.
fn flow_order(flow: &crate::kb::Flow) -> Vec<&Node> {
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

// ---- slot extraction ----------------------------------------------------------------------------

/// The option of `slot` that this message selects, with the raw value when it says more. `asked` is true
/// when the message replies to this very question.
pub fn extract(kb: &KnowledgeBase, slot: &Slot, msg: &Prepared, asked: bool) -> Option<(String, Option<String>)> {
    let _ = kb;
    if slot.only_when_asked && !asked {
        return None;
    }
    if slot.kind == SlotKind::Minutes {
        if let Some(m) = minutes(&msg.cleaned, asked) {
            let opt = slot
                .options
                .iter()
                .find(|o| o.at_least.is_none_or(|a| m >= a) && o.below.is_none_or(|b| m < b));
            if let Some(o) = opt {
                return Some((o.id.clone(), Some(format!("{m} min"))));
            }
        }
    }
    // longest matching phrase wins; a tie between options leaves the slot unknown
    let mut best: Option<(usize, &str)> = None;
    let mut tie = false;
    for o in &slot.options {
        let len = o
            .words
            .iter()
            .filter(|w| msg.find(w).next().is_some())
            .map(Vec::len)
            .max();
        if let Some(len) = len {
            match best {
                Some((b, _)) if len < b => {}
                Some((b, id)) if len == b && id != o.id => tie = true,
                _ => {
                    best = Some((len, &o.id));
                    tie = false;
                }
            }
        }
    }
    match best {
        Some((_, id)) if !tie => Some((id.to_string(), None)),
        _ if asked && !msg.tokens.is_empty() && !tie => {
            slot.any_reply.clone().map(|a| (a, Some(first_line(&msg.cleaned))))
        }
        _ => None,
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    line.chars().take(200).collect()
}

static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\d+(?:\.\d+)?|an?|one|two|three|four|five|ten|fifteen|twenty|thirty|forty|forty-five|sixty|ninety|half an?|a few|a couple of|couple of|few)\s*\+?\s*(days?|d|hours?|hrs?|h|minutes?|mins?|m)\b").unwrap()
});
static BARE_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*[~≈]?\s*(?:about|around|roughly|maybe|like|over|more than|almost|nearly)?\s*(\d{1,5})\s*\+?\s*$")
        .unwrap()
});

/// A duration in minutes named in the text ("25 min", "half an hour", "2h", "a few hours", "3 days").
/// A bare number counts as minutes only when the text answers the minutes question.
pub fn minutes(text: &str, asked: bool) -> Option<f64> {
    for caps in DURATION.captures_iter(text) {
        let qty = caps[1].to_lowercase();
        let n = match qty.as_str() {
            "a" | "an" | "one" => 1.0,
            "two" => 2.0,
            "three" => 3.0,
            "four" => 4.0,
            "five" => 5.0,
            "ten" => 10.0,
            "fifteen" => 15.0,
            "twenty" => 20.0,
            "thirty" => 30.0,
            "forty" => 40.0,
            "forty-five" => 45.0,
            "sixty" => 60.0,
            "ninety" => 90.0,
            "a few" | "few" => 3.0,
            "a couple of" | "couple of" => 2.0,
            q if q.starts_with("half") => 0.5,
            q => match q.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        let unit = caps[2].to_lowercase();
        let factor = match unit.chars().next() {
            Some('d') => 1440.0,
            Some('h') => 60.0,
            _ => 1.0,
        };
        // "m" right after a version-like number ("1.29m") is rare; accept it
        return Some((n * factor * 10.0).round() / 10.0);
    }
    if asked {
        if let Some(c) = BARE_NUMBER.captures(text) {
            return c[1].parse().ok();
        }
        let t = text.to_lowercase();
        if t.contains("hours") || t.contains("all day") || t.contains("overnight") || t.contains("since yesterday") {
            return Some(180.0);
        }
        if t.contains("just now") || t.contains("few seconds") || t.contains("just started") {
            return Some(1.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_in_minutes() {
        let cases = [
            ("about 25 min", Some(25.0)),
            ("stuck for half an hour", Some(30.0)),
            ("2h now", Some(120.0)),
            ("a few hours", Some(180.0)),
            ("for 3 days", Some(4320.0)),
            ("since 45 minutes", Some(45.0)),
            ("openshift 4.14", None),
        ];
        for (text, want) in cases {
            assert_eq!(minutes(text, false), want, "{text}");
        }
        assert_eq!(minutes("25", true), Some(25.0));
        assert_eq!(minutes("25", false), None);
        assert_eq!(minutes("~ 40", true), Some(40.0));
    }

    #[test]
    fn reset_commands_are_recognised() {
        assert!(is_reset_command("<@U0BOT123> stop"));
        assert!(is_reset_command("reset"));
        assert!(!is_reset_command("stop the calico-node restarts"));
    }
}
