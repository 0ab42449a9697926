//! The dialogue engine: `step(knowledge, state, input, now) -> (new state, replies)`. Pure and
//! infallible: the caller loads the state, calls `step`, saves the new state and delivers the replies.
//!
//! A conversation is one thread. Its first addressed message is matched to an intent; the intent's
//! summary is the answer, and when the intent has a flow the engine walks it, asking for each slot it does
//! not know yet. Every message of the conversation fills every slot it answers (the first message, or one
//! reply that answers two questions), so nobody is asked what they already said.
//!
//! Answers are read as evidence about the question asked ([`slots`]): negation and contrast have scope,
//! counts and durations are read, "not sure" gets how to find out, thin or conflicting evidence gets the
//! question again, and chatter not addressed to the bot is left alone. After the advice the thread keeps
//! its topic: a new fact ("it's been 25 minutes now") re-runs the flow, "still stuck" gets the next step,
//! pushback gets the runbook's position again, and only a clearly different problem starts a new topic.
//! A correction ("no wait, it's IKS", or a click on an earlier question's button) re-answers and re-runs
//! the flow from there.
//!
//! Layout: `state` (the stored conversation), `reply` (what a step says), `flow` (walking a flow),
//! `slots` (reading an answer), `duration` (the duration grammar), `cues` (commands and follow-up cues),
//! `examples` (the knowledge base's own example answers and dialogues, replayed).

mod cues;
pub mod duration;
pub mod examples;
mod flow;
mod reply;
pub mod slots;
mod state;
mod topic;

pub use cues::{command, Command};
pub use flow::{escalation, first_links, lead, FIRST_REPLY_LINKS};
pub use reply::{Answer, Answered, Choice, Escalation, Guidance, Question, Reply};
pub use state::{Asked, Conversation, Pending, FORMAT_VERSION};

use flow::{advance, begin, choice_of, label, prefill, question, sure_answers};
use slots::Reading;
use topic::{in_topic, is_new_topic, position, repeat_last};

use crate::kb::{Intent, KnowledgeBase, Node, Slot};
use crate::matcher::{MatchOutcome, Verdict, AMBIGUOUS_RATIO};

/// How much of the first message a conversation keeps (for clarification and the escalation summary).
const ORIGIN_CHARS: usize = 2000;
/// A "not sure" longer than this many words, not said to the bot, is people talking among themselves.
const UNSURE_WORDS: usize = 6;
/// How much of a reply the escalation record quotes.
const SAID_CHARS: usize = 160;

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

/// The result of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The new state; `None` means forget the thread.
    pub state: Option<Conversation>,
    pub replies: Vec<Reply>,
    /// The matcher's outcome when this step matched text (for metrics and the feedback log).
    pub matched: Option<MatchOutcome>,
    /// Questions this step answered (by text or by a click), so the edge can mark them answered.
    pub answered: Vec<Answered>,
}

impl Conversation {
    pub(crate) fn new(kb: &KnowledgeBase, intent: Option<String>, pending: Pending, origin: String, now: u64) -> Self {
        Conversation {
            format: FORMAT_VERSION,
            kb_version: kb.version.clone(),
            intent,
            pending,
            slots: Default::default(),
            details: Default::default(),
            origin,
            trail: Vec::new(),
            started_at: now,
            updated_at: now,
            asked: Vec::new(),
        }
    }
}

/// Advance one thread's conversation by one input.
pub fn step(kb: &KnowledgeBase, state: Option<&Conversation>, input: &Input, now: u64) -> Step {
    let mut out = Step {
        state: state.cloned(),
        replies: Vec::new(),
        matched: None,
        answered: Vec::new(),
    };
    match input {
        Input::Reset => reset(&mut out),
        Input::Escalate => out.replies.push(Reply::Escalation(escalation(kb, state))),
        Input::Pick { intent } => match kb.intent(intent) {
            Some(i) => {
                let origin = state.map(|c| c.origin.clone()).unwrap_or_default();
                begin(kb, i, &origin, &origin, 0.0, Vec::new(), now, &mut out);
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
        c.format = FORMAT_VERSION;
    }
    out
}

fn notice(text: &str) -> Reply {
    Reply::Notice { text: text.to_string() }
}

fn reset(out: &mut Step) {
    out.state = None;
    out.replies
        .push(notice("Conversation reset. Mention me with a new question any time."));
}

fn message(kb: &KnowledgeBase, state: Option<&Conversation>, text: &str, addressed: bool, now: u64, out: &mut Step) {
    let cmd = command(text);
    if addressed && cmd == Some(Command::Reset) {
        return reset(out);
    }
    let Some(conv) = state else {
        if addressed {
            start(kb, text, now, out);
        }
        return;
    };
    match cmd {
        // "still broken after the runbook, need the squad" answers the question, then escalates
        Some(Command::Escalate) if matches!(conv.pending, Pending::Question { .. }) => {
            if let Pending::Question { node } = &conv.pending {
                answer(kb, conv, node, text, addressed, now, out);
            }
            if !out.replies.iter().any(|r| matches!(r, Reply::Escalation(_))) {
                let known = out.state.clone().unwrap_or_else(|| conv.clone());
                out.replies.push(Reply::Escalation(escalation(kb, Some(&known))));
            }
            return;
        }
        Some(Command::Escalate) if addressed || conv.intent.is_some() => {
            out.replies.push(Reply::Escalation(escalation(kb, Some(conv))));
            return;
        }
        Some(Command::Thanks) => {
            if addressed {
                out.replies.push(notice(
                    "Glad to help. The thread keeps its topic: tell me here if it comes back or the next step fails.",
                ));
            }
            return;
        }
        _ => {}
    }
    match &conv.pending {
        Pending::Question { node } => answer(kb, conv, node, text, addressed, now, out),
        Pending::Clarify { candidates } => clarify(kb, conv, candidates, text, addressed, now, out),
        Pending::Describe => {
            // the message after "no section fits": a new question, said to the bot or not
            out.state = None;
            let mut tried = Step {
                state: None,
                replies: Vec::new(),
                matched: None,
                answered: Vec::new(),
            };
            start(kb, text, now, &mut tried);
            if addressed || !matches!(tried.replies.first(), Some(Reply::NoMatch)) {
                *out = tried;
                if !addressed {
                    // one more miss and the thread is left to the people in it
                    if matches!(out.replies.first(), Some(Reply::NoMatch)) {
                        out.state = None;
                    }
                }
            }
        }
        Pending::Nothing => match conv.intent.as_deref().and_then(|id| kb.intent(id)) {
            Some(intent) => in_topic(kb, conv, intent, text, addressed, now, out),
            None if addressed => start(kb, text, now, out),
            None => {}
        },
    }
}

/// The pending question's reply.
#[allow(clippy::too_many_arguments)]
fn answer(kb: &KnowledgeBase, conv: &Conversation, node: &str, text: &str, addressed: bool, now: u64, out: &mut Step) {
    let Some((intent, slot)) = pending_slot(kb, conv, node) else {
        restart_changed(kb, conv, now, out);
        return;
    };
    if cues::correction(text) && correct(kb, conv, intent, text, addressed, out) {
        return;
    }
    let reading = slots::read(kb, slot, text, true, addressed);
    if !matches!(reading, Reading::Pick { sure: true, .. }) {
        if cues::act(text) {
            repeat_last(conv, intent, out);
            return;
        }
        if cues::pushback(text) {
            out.replies.push(notice(&position(conv, intent)));
            return;
        }
    }
    if let Reading::Pick {
        option,
        detail,
        sure: true,
    } = &reading
    {
        let mut c = conv.clone();
        c.slots.insert(slot.name.clone(), option.clone());
        if let Some(d) = detail {
            c.details.insert(slot.name.clone(), d.clone());
        }
        let q = asked_question(kb, intent, &c, node);
        if let Some(a) = c.asked.iter_mut().rev().find(|a| a.node == node) {
            a.said = Some(quote(text));
        }
        prefill(kb, intent, text, &mut c);
        out.answered.push(Answered {
            node: node.to_string(),
            question: q,
            choice: label(kb, &slot.name, option),
        });
        out.state = Some(c);
        advance(kb, intent, node, out);
        return;
    }
    // a reply to the question that names other components is not a new topic unless said to the bot
    if addressed {
        let outcome = kb.matcher.rank(&kb.prepare(text));
        if is_new_topic(kb, &outcome, intent, addressed, text)
            && !matches!(reading, Reading::Conflict(_) | Reading::Unsure)
        {
            return start_with(kb, text, outcome, now, out);
        }
        out.matched = Some(outcome);
    }
    let mut q = question(kb, intent, node, true);
    match reading {
        // "no idea yet" under the question is for the bot; "I'll ask the customer for the service
        // yaml" is people sharing out the work
        Reading::Unsure if addressed || text.split_whitespace().count() <= UNSURE_WORDS => {
            out.replies.push(notice(&unsure_note(slot)));
            return;
        }
        Reading::Unsure => return,
        Reading::Vague => {
            q.note = Some("I need roughly how long, e.g. “25 min”, “2h” or “since 09:40, about 50 minutes”.".into());
        }
        Reading::Conflict(options) => {
            let labels: Vec<String> = options
                .iter()
                .map(|o| format!("*{}*", label(kb, &slot.name, o)))
                .collect();
            q.note = Some(format!("I read both {} in that. Which is it?", labels.join(" and ")));
        }
        Reading::Pick { .. } | Reading::Nothing if !addressed => return,
        Reading::Pick { .. } | Reading::Nothing => {
            q.note = Some(
                "Answer with a button or in your own words; say *not sure* if you don't know yet, `escalate` for the escalation path, `reset` to start over."
                    .into(),
            );
        }
    }
    out.replies.push(Reply::Question(q));
}

fn unsure_note(slot: &Slot) -> String {
    match &slot.find_out {
        Some(how) => format!(
            "No problem. To find out: {}\nI'll wait for the answer here (`escalate` for the escalation path meanwhile).",
            how.trim()
        ),
        None => "No problem: answer here when you know (`escalate` for the escalation path meanwhile).".into(),
    }
}

fn quote(text: &str) -> String {
    let cleaned = crate::text::clean_slack(text);
    let line = cleaned.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let mut q: String = line.chars().take(SAID_CHARS).collect();
    if line.chars().count() > SAID_CHARS {
        q.push('…');
    }
    q
}

/// The question text as it was asked at `node` (the record), or as it would be asked now.
fn asked_question(kb: &KnowledgeBase, intent: &Intent, c: &Conversation, node: &str) -> String {
    c.asked
        .iter()
        .rev()
        .find(|a| a.node == node)
        .map(|a| a.question.clone())
        .unwrap_or_else(|| question(kb, intent, node, false).text)
}

/// "No wait, it's IKS": re-answer earlier questions the text answers differently and re-run the flow.
/// False when the text corrects nothing.
fn correct(
    kb: &KnowledgeBase,
    conv: &Conversation,
    intent: &Intent,
    text: &str,
    addressed: bool,
    out: &mut Step,
) -> bool {
    let Some(flow) = &intent.flow else { return false };
    let mut c = conv.clone();
    let mut changed = Vec::new();
    for (slot, option, detail) in sure_answers(kb, flow, text, true, addressed) {
        let Some(old) = conv.slots.get(slot) else { continue };
        if &option != old {
            changed.push(format!("*{}*", label(kb, slot, &option)));
            c.slots.insert(slot.to_string(), option);
            match detail {
                Some(d) => c.details.insert(slot.to_string(), d),
                None => c.details.remove(slot),
            };
            if let Some(a) = c.asked.iter_mut().rev().find(|a| a.slot == slot) {
                a.said = Some(quote(text));
            }
        }
    }
    if changed.is_empty() {
        return false;
    }
    rerun(
        kb,
        intent,
        c,
        &format!("Corrected: {}. Picking up from there.", changed.join(", ")),
        out,
    );
    true
}

/// Re-run the flow from its start with `c`'s slots, after a correction or a new fact; guidance already
/// given on the same path is not repeated.
fn rerun(kb: &KnowledgeBase, intent: &Intent, mut c: Conversation, note: &str, out: &mut Step) {
    let Some(flow) = &intent.flow else { return };
    let said = std::mem::take(&mut c.trail);
    c.pending = Pending::Nothing;
    out.state = Some(c);
    out.replies.push(notice(note));
    let before = out.replies.len();
    advance(kb, intent, &flow.start, out);
    let fresh: Vec<Reply> = out
        .replies
        .drain(before..)
        .filter(|r| !matches!(r, Reply::Guidance(g) if said.contains(&g.node)))
        .collect();
    out.replies.extend(fresh);
}

fn clarify(
    kb: &KnowledgeBase,
    conv: &Conversation,
    candidates: &[String],
    text: &str,
    addressed: bool,
    now: u64,
    out: &mut Step,
) {
    if !addressed {
        return;
    }
    let outcome = kb.matcher.rank(&kb.prepare(text));
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
            let both = format!("{}\n{}", conv.origin, text);
            begin(kb, i, &conv.origin, &both, 0.0, Vec::new(), now, out);
        }
        _ if outcome.best().is_some() => start_with(kb, text, outcome, now, out),
        _ => out.replies.push(Reply::Clarify {
            candidates: candidates
                .iter()
                .filter_map(|id| kb.intent(id))
                .map(choice_of)
                .collect(),
        }),
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

/// A new conversation from `text`, already matched as `outcome` (an alert is matched once, to decide
/// whether to answer it at all).
pub fn start_matched(kb: &KnowledgeBase, text: &str, outcome: MatchOutcome, now: u64) -> Step {
    let mut out = Step {
        state: None,
        replies: Vec::new(),
        matched: None,
        answered: Vec::new(),
    };
    start_with(kb, text, outcome, now, &mut out);
    out
}

fn start(kb: &KnowledgeBase, text: &str, now: u64, out: &mut Step) {
    let outcome = kb.matcher.rank(&kb.prepare(text));
    start_with(kb, text, outcome, now, out);
}

fn start_with(kb: &KnowledgeBase, text: &str, outcome: MatchOutcome, now: u64, out: &mut Step) {
    // kept with the conversation: secrets redacted first, so a cut never leaves part of one
    let origin = crate::redact::redact(crate::text::truncate(text, ORIGIN_CHARS * 4))
        .chars()
        .take(ORIGIN_CHARS)
        .collect::<String>();
    match outcome.verdict {
        Verdict::Abstain => {
            out.state = Some(Conversation::new(kb, None, Pending::Describe, origin, now));
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
            out.state = Some(Conversation::new(
                kb,
                None,
                Pending::Clarify { candidates },
                origin,
                now,
            ));
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
                text,
                best.score,
                alternatives,
                now,
                out,
            );
        }
    }
    out.matched = Some(outcome);
}

/// A button: the pending question's answer, or a correction of an earlier one.
fn choose(kb: &KnowledgeBase, state: Option<&Conversation>, node: &str, option: &str, now: u64, out: &mut Step) {
    let Some(conv) = state else {
        out.replies
            .push(notice("That question was already answered or has expired."));
        return;
    };
    let Some((intent, slot)) = pending_slot(kb, conv, node) else {
        if matches!(&conv.pending, Pending::Question { node: n } if n == node) {
            restart_changed(kb, conv, now, out);
        } else {
            out.replies
                .push(notice("That question was already answered or has expired."));
        }
        return;
    };
    if !slot.options.iter().any(|o| o.id == option) {
        out.replies.push(Reply::Question(question(kb, intent, node, true)));
        return;
    }
    let pending_here = matches!(&conv.pending, Pending::Question { node: n } if n == node);
    let asked_before = conv.asked.iter().any(|a| a.node == node) && conv.slots.contains_key(&slot.name);
    let answered = Answered {
        node: node.to_string(),
        question: asked_question(kb, intent, conv, node),
        choice: label(kb, &slot.name, option),
    };
    if pending_here {
        let mut c = conv.clone();
        c.slots.insert(slot.name.clone(), option.to_string());
        c.details.remove(&slot.name);
        c.updated_at = now;
        out.state = Some(c);
        out.answered.push(answered);
        advance(kb, intent, node, out);
    } else if asked_before && conv.slots.get(&slot.name).map(String::as_str) != Some(option) {
        let mut c = conv.clone();
        c.slots.insert(slot.name.clone(), option.to_string());
        c.details.remove(&slot.name);
        if let Some(a) = c.asked.iter_mut().rev().find(|a| a.node == node) {
            a.said = None;
        }
        let note = format!("Corrected: *{}*. Picking up from there.", answered.choice);
        out.answered.push(answered);
        rerun(kb, intent, c, &note, out);
    } else {
        out.replies
            .push(notice("That question was already answered or has expired."));
        if let (Pending::Question { node }, Some(intent)) =
            (&conv.pending, conv.intent.as_deref().and_then(|i| kb.intent(i)))
        {
            out.replies.push(Reply::Question(question(kb, intent, node, true)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb() -> KnowledgeBase {
        KnowledgeBase::builtin().expect("the shipped knowledge base loads")
    }

    #[test]
    fn the_first_message_is_kept_redacted_and_bounded() {
        let kb = kb();
        let secret = "xoxb-1234-5678-abcdEFGH";
        let text = format!("calico-node CrashLoopBackOff, token={secret} {}", "noise ".repeat(2000));
        let step = step(&kb, None, &Input::Message { text, addressed: true }, 1);
        let origin = &step.state.expect("a conversation starts").origin;
        assert!(!origin.contains(secret) && origin.contains("[REDACTED]"), "{origin}");
        assert!(origin.chars().count() <= ORIGIN_CHARS);
    }

    #[test]
    fn lead_is_the_first_sentence() {
        assert_eq!(
            lead("*That's expected behaviour.* The node ..."),
            "That's expected behaviour."
        );
        assert_eq!(
            lead("Calico looks healthy, so restart. Then look"),
            "Calico looks healthy, so restart."
        );
    }

    #[test]
    fn a_thread_with_a_topic_never_gets_no_match() {
        let kb = kb();
        let first = step(
            &kb,
            None,
            &Input::Message {
                text: "calico-kube-controllers CrashLoopBackOff on prod".into(),
                addressed: true,
            },
            1,
        );
        let s = step(
            &kb,
            first.state.as_ref(),
            &Input::Message {
                text: "hmm what about the weather".into(),
                addressed: true,
            },
            2,
        );
        assert!(
            !s.replies.iter().any(|r| matches!(r, Reply::NoMatch)),
            "{:?}",
            s.replies
        );
        assert!(!s.replies.is_empty());
    }
}
