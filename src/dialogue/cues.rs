//! What a whole message does besides answering: commands (reset, escalate, help, thanks) and the cues
//! of a conversation that goes on after the advice ("still stuck", pushback, "no wait, ..."). Pure.

use std::sync::LazyLock;

use regex::Regex;

use super::slots::has_phrase;
use crate::text::clean_slack;

/// A whole-message command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Reset,
    Escalate,
    Help,
    Thanks,
}

const RESET: &[&str] = &[
    "stop",
    "reset",
    "cancel",
    "restart",
    "start over",
    "forget it",
    "never mind",
    "nevermind",
];
const ESCALATE_WHOLE: &[&str] = &[
    "escalate",
    "escalation",
    "escalate this",
    "escalate it",
    "escalate please",
    "please escalate",
    "escalate pls",
    "pls escalate",
    "escalate now",
    "hand over",
    "hand it over",
    "handover",
    "page them",
    "page armada network",
    "page the squad",
];
const ESCALATE_IN: &[&str] = &[
    "please escalate",
    "can you escalate",
    "could you escalate",
    "want to escalate",
    "need to escalate",
    "let's escalate",
    "lets escalate",
    "escalate this",
    "escalate it",
    "escalate to armada-network",
    "escalate to armada network",
    "time to escalate",
    "need the squad",
    "get the squad",
    "involve the squad",
    "loop in the squad",
    "loop in armada-network",
    "loop in armada network",
    "page armada-network",
    "page armada network",
    "need to escalate to armada-network",
    "escalating to armada-network",
    "escalating to armada network",
    "who do i escalate to",
    "who should i escalate to",
    "who do we escalate to",
    "where do i escalate",
    "how do i escalate",
    "escalate to whom",
    "who do i page",
    "who should i page",
];
const HELP: &[&str] = &["help", "?", "what can you do", "topics", "usage"];
const THANKS: &[&str] = &[
    "thanks",
    "thank you",
    "thx",
    "ty",
    "cheers",
    "thanks!",
    "great thanks",
    "ok thanks",
    "perfect",
    "awesome",
    "got it",
    "ok got it",
    "thanks a lot",
    "many thanks",
    "that helped",
    "great",
    "nice",
    "cool",
    "ok",
    "okay",
];
/// The advice was followed and the problem is still there.
const STILL: &[&str] = &[
    "still stuck",
    "still broken",
    "still failing",
    "still fails",
    "still the same",
    "still same",
    "still pending",
    "still happening",
    "still there",
    "still down",
    "still not",
    "still no",
    "still doesn't",
    "still does not",
    "still can't",
    "still cannot",
    "still crashing",
    "still crashloop",
    "still restarting",
    "still seeing",
    "still see",
    "didn't help",
    "did not help",
    "doesn't help",
    "didn't work",
    "did not work",
    "doesn't work",
    "didnt help",
    "didnt work",
    "no luck",
    "no change",
    "no difference",
    "nothing changed",
    "same thing",
    "same issue",
    "same error",
    "same problem",
    "same result",
    "tried that",
    "tried it",
    "tried all",
    "tried everything",
    "already tried",
    "they tried",
    "we tried",
    "already did",
    "already done",
    "did that",
    "done that",
    "not fixed",
    "not resolved",
    "not solved",
    "not helping",
    "hasn't moved",
    "has not moved",
    "not moving",
    "no progress",
    "still unresolved",
    "what next",
    "what now",
    "now what",
    "next step",
    "what else",
];
/// The customer (or someone) does not accept the runbook's answer.
const PUSHBACK: &[&str] = &[
    "they want us",
    "customer wants us",
    "they insist",
    "customer insists",
    "insisting",
    "insists",
    "at least tell",
    "at least help",
    "at least explain",
    "can't we",
    "cant we",
    "can we just",
    "could we just",
    "pushing back",
    "push back",
    "pushback",
    "they still want",
    "they are asking us",
    "they're asking us",
    "theyre asking us",
    "demanding",
    "not happy",
    "unhappy",
    "escalating to management",
    "wants us to",
    "want us to",
    "refuses",
    "refuse to",
    "won't remove",
    "any other option",
    "other options",
    "any alternative",
    "alternatives",
    "why does it happen",
    "why it happens",
    "stop getting paged",
];
/// Someone asks to act on the advice given ("go ahead and run it for them").
const ACT: &[&str] = &[
    "go ahead",
    "run it for them",
    "do it for them",
    "can we run",
    "should we run",
    "how do we run",
    "who runs",
    "can you run",
    "what do i do",
    "what should i do",
    "what do we do",
    "remind me",
    "which runbook",
    "which doc",
    "link again",
    "for them",
    "for the customer",
    "which of the workarounds",
    "which workaround",
    "which option",
    "gave permission",
    "give permission",
    "has permission",
    "to run it",
];

/// A request to act on the advice, or to see it again.
pub(crate) fn act(text: &str) -> bool {
    let t = normal(text);
    ACT.iter().any(|p| has_phrase(&t, p))
}

/// An earlier answer is being corrected.
const CORRECTION: &[&str] = &[
    "no wait",
    "wait",
    "actually",
    "correction",
    "sorry",
    "i meant",
    "i mean",
    "my bad",
    "scratch that",
    "my mistake",
    "oops",
    "typo",
];

fn normal(text: &str) -> String {
    let cleaned = clean_slack(text).to_lowercase().replace('’', "'");
    cleaned
        .trim()
        .trim_end_matches(|c: char| c == '.' || c == '!' || c.is_whitespace())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command the whole message is, if it is one ("reset", "escalate please", "thanks!").
pub fn command(text: &str) -> Option<Command> {
    let t = normal(text);
    let t = t.trim_start_matches("netrunbook").trim();
    let bare = t.trim_start_matches('/').trim();
    if RESET.contains(&bare) {
        Some(Command::Reset)
    } else if ESCALATE_WHOLE.contains(&bare) || ESCALATE_IN.iter().any(|p| has_phrase(bare, p)) {
        Some(Command::Escalate)
    } else if HELP.contains(&bare) {
        Some(Command::Help)
    } else if THANKS.contains(&bare.trim_end_matches(['!', ' ', '🙏'])) {
        Some(Command::Thanks)
    } else {
        None
    }
}

/// "still <something>" that says the problem goes on ("still firing"), unlike "still fine".
static STILL_ANY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bstill\s+(?:is\s+|are\s+)?(?:fine|ok|okay|good|healthy|working|works|up|green|happy|here|around|on it|waiting|checking|looking)\b").unwrap()
});

/// "Still stuck", "didn't help", "they tried that", "still firing".
pub(crate) fn still(text: &str) -> bool {
    let t = normal(text);
    STILL.iter().any(|p| has_phrase(&t, p)) || (has_phrase(&t, "still") && !STILL_ANY.is_match(&t))
}

/// The runbook's answer is not accepted ("they want us to at least tell them how to configure it").
pub(crate) fn pushback(text: &str) -> bool {
    let t = normal(text);
    PUSHBACK.iter().any(|p| has_phrase(&t, p))
}

/// An earlier answer is being corrected ("no wait, it's IKS", "actually VPC").
pub(crate) fn correction(text: &str) -> bool {
    let t = normal(text);
    CORRECTION.iter().any(|p| has_phrase(&t, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(command("<@U0BOT123> stop"), Some(Command::Reset));
        assert_eq!(command("reset"), Some(Command::Reset));
        assert_eq!(command("escalate"), Some(Command::Escalate));
        assert_eq!(command("can you escalate this to the squad?"), Some(Command::Escalate));
        assert_eq!(command("thanks!"), Some(Command::Thanks));
        assert_eq!(command("help"), Some(Command::Help));
        assert_eq!(command("stop the calico-node restarts"), None);
        assert_eq!(
            command("who do I escalate to for armada-network?"),
            Some(Command::Escalate)
        );
        assert_eq!(command("what does the escalation policy say about weekends"), None);
    }

    #[test]
    fn conversation_cues() {
        assert!(still("it's been 25 minutes now and still the same"));
        assert!(still("they tried that, didn't help"));
        assert!(!still("calico-node is still fine"));
        assert!(still("followed it, still firing after an hour"));
        assert!(act("customer says go ahead and run it for them"));
        assert!(pushback("they want us to at least tell them how to configure it"));
        assert!(correction("no wait, it is IKS"));
        assert!(!correction("it is IKS"));
    }
}
