//! `netrunbook report` and `/netrunbook report`: what the stored feedback says, per intent (answers,
//! 👍, 👎, wrong topic and what was picked instead) and the questions the bot answered worst (by
//! signature count). Pure: [`Report::build`] aggregates a [`FeedbackData`]; the callers read the store.
//! [`export`] turns the same records into lines of the `eval` format, for a runbook owner to label.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::feedback::{Doubt, VoteKind};
use crate::store::FeedbackData;

/// How many unanswered signatures a report lists by default.
pub const DEFAULT_TOP: usize = 10;

/// One intent's line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntentRow {
    pub intent: String,
    pub answers: u64,
    /// Alerts answered with this section.
    pub alerts: u64,
    pub up: u64,
    pub down: u64,
    pub wrong_topic: u64,
    /// For wrong-topic votes: the intent picked instead -> how often.
    pub picked_instead: BTreeMap<String, u64>,
}

/// One signature among the questions answered worst.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnansweredRow {
    pub signature: String,
    pub count: u64,
    pub doubt: Doubt,
    pub guess: Option<String>,
    /// The latest message with this signature, redacted.
    pub example: String,
    pub last_at: u64,
}

/// The report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Busiest intent first.
    pub intents: Vec<IntentRow>,
    /// Most frequent first, at most the `top` asked for.
    pub unanswered: Vec<UnansweredRow>,
    /// Signatures stored in all (the list may show fewer).
    pub unanswered_signatures: usize,
}

impl Report {
    /// Aggregate `data`, keeping the `top` most frequent unanswered signatures.
    pub(crate) fn build(data: &FeedbackData, top: usize) -> Report {
        let mut rows: BTreeMap<&str, IntentRow> = BTreeMap::new();
        for (intent, n) in &data.answers {
            rows.entry(intent).or_default().answers += n;
        }
        for (intent, n) in &data.alerts {
            rows.entry(intent).or_default().alerts += n;
        }
        for v in &data.votes {
            let r = rows.entry(&v.intent).or_default();
            match &v.kind {
                VoteKind::Up => r.up += 1,
                VoteKind::Down => r.down += 1,
                VoteKind::WrongTopic { picked } => {
                    r.wrong_topic += 1;
                    *r.picked_instead.entry(picked.clone()).or_default() += 1;
                }
            }
        }
        let mut intents: Vec<IntentRow> = rows
            .into_iter()
            .map(|(id, mut r)| {
                r.intent = id.to_string();
                r
            })
            .collect();
        intents.sort_by(|a, b| {
            (b.answers + b.alerts)
                .cmp(&(a.answers + a.alerts))
                .then_with(|| a.intent.cmp(&b.intent))
        });
        let mut unanswered: Vec<UnansweredRow> = data
            .unanswered
            .iter()
            .map(|u| UnansweredRow {
                signature: u.signature.clone(),
                count: u.count,
                doubt: u.doubt,
                guess: u.guess.clone(),
                example: u.example.clone(),
                last_at: u.last_at,
            })
            .collect();
        unanswered.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| b.last_at.cmp(&a.last_at))
                .then_with(|| a.signature.cmp(&b.signature))
        });
        let unanswered_signatures = unanswered.len();
        unanswered.truncate(top);
        Report {
            intents,
            unanswered,
            unanswered_signatures,
        }
    }

    /// The report as a plain-text table.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        // writing into a String cannot fail
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "Answers, alerts answered and feedback per intent")?;
        if self.intents.is_empty() {
            writeln!(out, "  (no answers or feedback recorded)")?;
        } else {
            let w = self.intents.iter().map(|r| r.intent.len()).max().unwrap_or(6).max(6);
            writeln!(
                out,
                "  {:<w$}  {:>7}  {:>6}  {:>4}  {:>4}  {:>11}",
                "intent", "answers", "alerts", "up", "down", "wrong topic"
            )?;
            for r in &self.intents {
                write!(
                    out,
                    "  {:<w$}  {:>7}  {:>6}  {:>4}  {:>4}  {:>11}",
                    r.intent, r.answers, r.alerts, r.up, r.down, r.wrong_topic
                )?;
                if !r.picked_instead.is_empty() {
                    let picked: Vec<String> = r.picked_instead.iter().map(|(i, n)| format!("{i} ×{n}")).collect();
                    write!(out, "  → {}", picked.join(", "))?;
                }
                writeln!(out)?;
            }
        }
        writeln!(out)?;
        writeln!(
            out,
            "Top unanswered questions ({} of {} signatures)",
            self.unanswered.len(),
            self.unanswered_signatures
        )?;
        if self.unanswered.is_empty() {
            writeln!(out, "  (none recorded)")?;
        }
        for u in &self.unanswered {
            let guess = u
                .guess
                .as_deref()
                .map(|g| format!(", nearest: {g}"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {:>5}×  {}{}  [{}]",
                u.count,
                u.doubt.label(),
                guess,
                u.signature
            )?;
            writeln!(out, "          e.g. \"{}\"", u.example)?;
        }
        Ok(())
    }
}

/// One line of `report --export`, in the `eval` format: `section` is the heading a person picked
/// ("wrong topic"), or empty for a line still to label; `guess` is the section the matcher leaned to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ExportLine {
    pub q: String,
    pub section: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guess: Option<String>,
}

/// The messages the bot abstained on, answered with a small margin, or was told were the wrong topic,
/// most frequent first; `heading` maps an intent id to its section heading.
pub(crate) fn export(data: &FeedbackData, heading: impl Fn(&str) -> Option<String>) -> Vec<ExportLine> {
    let mut unanswered: Vec<_> = data.unanswered.iter().collect();
    unanswered.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_at.cmp(&a.last_at)));
    let mut out: Vec<ExportLine> = unanswered
        .into_iter()
        .map(|u| ExportLine {
            q: u.example.clone(),
            section: String::new(),
            kind: u.doubt.label().to_string(),
            guess: u.guess.as_deref().and_then(&heading),
        })
        .collect();
    for v in &data.votes {
        if let (VoteKind::WrongTopic { picked }, Some(q)) = (&v.kind, &v.question) {
            out.push(ExportLine {
                q: q.clone(),
                section: heading(picked).unwrap_or_default(),
                kind: "wrong_topic".into(),
                guess: heading(&v.intent),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::{Unanswered, Vote};
    use crate::vocab::ThreadKey;

    fn vote(intent: &str, user: &str, kind: VoteKind) -> Vote {
        Vote {
            thread: ThreadKey::new("T", "C", "1.0"),
            intent: intent.into(),
            user: user.into(),
            kind,
            at: 10,
            question: None,
        }
    }

    fn seen(text: &str, count: u64, last_at: u64) -> Unanswered {
        Unanswered {
            count,
            last_at,
            ..Unanswered::new(text, Doubt::Abstained, None, 1)
        }
    }

    #[test]
    fn intents_are_counted_and_ordered_by_answers() {
        let data = FeedbackData {
            answers: BTreeMap::from([("dns".into(), 5), ("calico".into(), 9), ("lb".into(), 5)]),
            // alerts answered count toward how busy a section is, and show apart
            alerts: BTreeMap::from([("lb".into(), 1)]),
            votes: vec![
                vote("dns", "U1", VoteKind::Up),
                vote("dns", "U2", VoteKind::Down),
                vote("dns", "U3", VoteKind::Up),
                vote("dns", "U4", VoteKind::WrongTopic { picked: "lb".into() }),
                vote("dns", "U5", VoteKind::WrongTopic { picked: "lb".into() }),
                vote("gone", "U1", VoteKind::Down),
            ],
            unanswered: vec![],
        };
        let r = Report::build(&data, 5);
        let order: Vec<&str> = r.intents.iter().map(|r| r.intent.as_str()).collect();
        assert_eq!(order, ["calico", "lb", "dns", "gone"]);
        assert_eq!((r.intents[1].answers, r.intents[1].alerts), (5, 1));
        assert!(r.to_text().contains("alerts"), "{}", r.to_text());
        let dns = &r.intents[2];
        assert_eq!((dns.answers, dns.up, dns.down, dns.wrong_topic), (5, 2, 1, 2));
        assert_eq!(dns.picked_instead, BTreeMap::from([("lb".to_string(), 2)]));
        assert_eq!(
            (r.intents[3].answers, r.intents[3].down),
            (0, 1),
            "votes without answers count"
        );
        let text = r.to_text();
        assert!(text.contains("→ lb ×2"), "{text}");
    }

    #[test]
    fn unanswered_are_the_most_frequent_first_and_cut_to_top() {
        let data = FeedbackData {
            unanswered: vec![
                seen("resize a pvc", 2, 50),
                seen("billing question", 7, 10),
                seen("iam policy", 2, 90),
                seen("rare thing", 1, 99),
            ],
            ..FeedbackData::default()
        };
        let r = Report::build(&data, 3);
        let sigs: Vec<&str> = r.unanswered.iter().map(|u| u.signature.as_str()).collect();
        assert_eq!(sigs, ["billing question", "iam policy", "resize a pvc"]);
        assert_eq!(r.unanswered_signatures, 4);
        let text = r.to_text();
        assert!(
            text.contains("(3 of 4 signatures)") && text.contains("7×  abstained"),
            "{text}"
        );
        assert!(Report::build(&FeedbackData::default(), 3)
            .to_text()
            .contains("(none recorded)"));
    }

    #[test]
    fn export_offers_doubtful_and_corrected_messages_for_labelling() {
        let mut corrected = vote(
            "dns",
            "U1",
            VoteKind::WrongTopic {
                picked: "loadbalancer".into(),
            },
        );
        corrected.question = Some("LB ip pending".into());
        let data = FeedbackData {
            answers: BTreeMap::new(),
            alerts: BTreeMap::new(),
            votes: vec![corrected, vote("dns", "U2", VoteKind::Up)],
            unanswered: vec![seen("printer offline", 1, 5), seen("what is a vlan", 3, 4)],
        };
        let lines = export(&data, |id| Some(format!("H:{id}")));
        let qs: Vec<(&str, &str, &str)> = lines
            .iter()
            .map(|l| (l.q.as_str(), l.section.as_str(), l.kind.as_str()))
            .collect();
        assert_eq!(
            qs,
            vec![
                ("what is a vlan", "", "abstained"),
                ("printer offline", "", "abstained"),
                ("LB ip pending", "H:loadbalancer", "wrong_topic"),
            ]
        );
        assert_eq!(lines[2].guess.as_deref(), Some("H:dns"));
    }
}
