//! What people tell us about the answers, and what the bot could not answer well: the records the
//! store keeps for `netrunbook report` ([`Vote`], [`Unanswered`]), and the pure functions that make a
//! message safe to keep ([`redact`], [`excerpt`]) and group alike messages ([`signature`]).
//!
//! **Invariant:** user text reaches the store only through [`Unanswered::new`], which redacts it
//! before cutting it to [`EXCERPT_CHARS`], so no secret is ever stored, whole or in part.

use serde::{Deserialize, Serialize};

use crate::matcher::{MatchOutcome, Verdict};
use crate::redact::redact;
use crate::text::clean_slack;
use crate::vocab::ThreadKey;

/// How much of a message is kept.
pub(crate) const EXCERPT_CHARS: usize = 300;
/// An answer whose runner-up scored at least this share of the best is kept as a doubtful one.
pub(crate) const LOW_MARGIN_RATIO: f64 = 0.6;
/// Longest signature kept, in characters.
const SIGNATURE_CHARS: usize = 160;

/// Version of the stored [`Vote`] and [`Unanswered`] records; bump it when they change shape.
pub(crate) const FEEDBACK_FORMAT: u32 = 1;

/// What someone said about an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VoteKind {
    /// 👍
    Up,
    /// 👎
    Down,
    /// The answer was about the wrong section; `picked` is the one they chose instead.
    WrongTopic { picked: String },
}

impl VoteKind {
    /// The label used in metrics and reports: `up`, `down`, `wrong_topic`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            VoteKind::Up => "up",
            VoteKind::Down => "down",
            VoteKind::WrongTopic { .. } => "wrong_topic",
        }
    }
}

/// One person's latest verdict on the answer about `intent` in `thread` (a later click replaces it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub thread: ThreadKey,
    pub intent: String,
    /// Slack user id.
    pub user: String,
    pub kind: VoteKind,
    /// Seconds since the epoch.
    pub at: u64,
    /// For a wrong-topic vote, the message that was answered, redacted and cut like [`excerpt`]:
    /// `report --export` offers it for labelling with the section the person picked.
    #[serde(default)]
    pub question: Option<String>,
}

/// Why a message was kept as one the bot did not answer well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Doubt {
    /// No section fitted: the bot said so.
    Abstained,
    /// Two sections were too close: the bot asked which.
    Ambiguous,
    /// Answered, but the runner-up came within [`LOW_MARGIN_RATIO`] of the best.
    LowMargin,
}

impl Doubt {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Doubt::Abstained => "abstained",
            Doubt::Ambiguous => "ambiguous",
            Doubt::LowMargin => "low_margin",
        }
    }
}

/// Whether a match outcome is worth keeping for the report, and why.
pub(crate) fn doubt(outcome: &MatchOutcome) -> Option<Doubt> {
    match outcome.verdict {
        Verdict::Abstain => Some(Doubt::Abstained),
        Verdict::Ambiguous => Some(Doubt::Ambiguous),
        Verdict::Match => {
            let best = outcome.ranked.first()?.score;
            let second = outcome.ranked.get(1).map_or(0.0, |r| r.score);
            (best > 0.0 && second >= best * LOW_MARGIN_RATIO).then_some(Doubt::LowMargin)
        }
    }
}

/// Messages alike up to numbers, ids and spacing, counted together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unanswered {
    /// [`signature`] of the text: the record's key.
    pub signature: String,
    /// The latest such message, redacted and cut to [`EXCERPT_CHARS`].
    pub example: String,
    /// Why the latest one was kept.
    pub doubt: Doubt,
    /// The section the matcher leaned to, if any.
    pub guess: Option<String>,
    pub count: u64,
    pub first_at: u64,
    pub last_at: u64,
}

impl Unanswered {
    /// A first sighting of `text` at `now`.
    pub fn new(text: &str, doubt: Doubt, guess: Option<String>, now: u64) -> Unanswered {
        Unanswered {
            signature: signature(text),
            example: excerpt(text),
            doubt,
            guess,
            count: 1,
            first_at: now,
            last_at: now,
        }
    }

    /// This record after `newer`, a sighting of the same signature.
    pub(crate) fn merge(self, newer: Unanswered) -> Unanswered {
        Unanswered {
            count: self.count.saturating_add(newer.count),
            first_at: self.first_at.min(newer.first_at),
            ..newer
        }
    }
}

/// What may be kept of a message: redacted, whitespace collapsed, at most [`EXCERPT_CHARS`]
/// characters (redaction first, so a cut never leaves part of a secret).
pub(crate) fn excerpt(text: &str) -> String {
    let redacted = redact(crate::text::truncate(text, crate::text::MAX_INPUT_BYTES));
    let collapsed = redacted.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= EXCERPT_CHARS {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(EXCERPT_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// The key alike messages share: Slack markup dropped, secrets redacted, lower case, every word that
/// holds a digit (numbers, ids, hashes, IPs, timestamps) and every long hex word dropped, punctuation
/// and spacing collapsed to single spaces.
pub(crate) fn signature(text: &str) -> String {
    let cleaned = clean_slack(&redact(text)).to_lowercase();
    let mut out = String::new();
    for word in cleaned.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() || word.chars().any(|c| c.is_ascii_digit()) || is_hex_id(word) {
            continue;
        }
        if out.len() + word.len() + 1 > SIGNATURE_CHARS {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        "(no words)".to_string()
    } else {
        out
    }
}

fn is_hex_id(word: &str) -> bool {
    word.len() >= 8 && word.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Ranked;

    #[test]
    fn excerpts_are_redacted_before_they_are_cut() {
        let secret = format!("{}xoxb-{}", "a ".repeat(148), "9".repeat(40));
        let e = excerpt(&secret);
        assert!(!e.contains("xoxb") && !e.contains("999"), "{e}");
        let long = "word ".repeat(200);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt("  two\n\nlines  "), "two lines");
    }

    #[test]
    fn alike_messages_share_a_signature() {
        let same = [
            "<@UBOT> LoadBalancer svc-123 pending for 25 min on cluster c8a9f2e1b3",
            "loadbalancer svc-9 PENDING for 3 min on cluster deadbeefcafe",
            "LoadBalancer  svc pending, for 45 min on cluster 10.0.0.1 !!",
        ];
        let sigs: Vec<String> = same.iter().map(|t| signature(t)).collect();
        assert_eq!(sigs[0], "loadbalancer svc pending for min on cluster");
        assert!(sigs.iter().all(|s| s == &sigs[0]), "{sigs:?}");
        assert_eq!(
            signature("pod coredns-7f9c6b8d4-x2k9z fails 2024-01-02T03:04:05Z"),
            "pod coredns fails"
        );
        assert_eq!(signature("password=hunter2 please"), "password redacted please");
        assert_eq!(signature("12345 678"), "(no words)");
        assert!(signature(&"word ".repeat(100)).len() <= SIGNATURE_CHARS);
    }

    fn outcome(verdict: Verdict, scores: &[f64]) -> MatchOutcome {
        MatchOutcome {
            verdict,
            ranked: scores
                .iter()
                .enumerate()
                .map(|(i, &score)| Ranked {
                    intent: i,
                    score,
                    evidence: vec![],
                })
                .collect(),
            off_topic: 0.0,
            corrections: vec![],
        }
    }

    #[test]
    fn doubtful_outcomes_are_recognised() {
        assert_eq!(doubt(&outcome(Verdict::Abstain, &[])), Some(Doubt::Abstained));
        assert_eq!(doubt(&outcome(Verdict::Ambiguous, &[5.0, 4.5])), Some(Doubt::Ambiguous));
        assert_eq!(doubt(&outcome(Verdict::Match, &[10.0, 7.0])), Some(Doubt::LowMargin));
        assert_eq!(doubt(&outcome(Verdict::Match, &[10.0, 5.0])), None);
        assert_eq!(doubt(&outcome(Verdict::Match, &[10.0])), None);
    }

    #[test]
    fn sightings_merge_into_one_count() {
        let a = Unanswered::new("how do I resize a PVC 1", Doubt::Abstained, None, 100);
        let b = Unanswered::new("how do I resize a PVC 2", Doubt::LowMargin, Some("dns".into()), 200);
        assert_eq!(a.signature, b.signature);
        let m = a.merge(b);
        assert_eq!((m.count, m.first_at, m.last_at), (2, 100, 200));
        assert_eq!(m.example, "how do I resize a PVC 2");
        assert_eq!(m.doubt, Doubt::LowMargin);
    }
}
