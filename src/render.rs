//! Plain-text rendering of replies, for the terminal (`ask`, `chat`). Slack's Block Kit rendering lives
//! in `slack/blocks.rs`; both render the same [`Reply`] values.

use std::fmt::Write;

use crate::dialogue::{Escalation, Reply};
use crate::kb::Link;

/// Render replies as the terminal shows them. Options are numbered from 1.
pub fn text(replies: &[Reply], kb_version: &str) -> String {
    let mut out = String::new();
    for r in replies {
        match r {
            Reply::Answer(a) => {
                let _ = writeln!(out, "== {} ==", a.heading);
                let _ = writeln!(out, "{}", a.summary);
                links(
                    &mut out,
                    std::iter::once(&Link {
                        title: "Runbook section".into(),
                        url: a.url.clone(),
                        resolved: a.url.clone(),
                    })
                    .chain(&a.links),
                );
                if !a.alternatives.is_empty() {
                    let alts: Vec<&str> = a.alternatives.iter().map(|c| c.label.as_str()).collect();
                    let _ = writeln!(out, "(also possible: {})", alts.join(", "));
                }
            }
            Reply::Question(q) => {
                match (&q.note, q.reask) {
                    (Some(note), _) => {
                        let _ = writeln!(out, "{note}");
                    }
                    (None, true) => {
                        let _ = writeln!(out, "I could not tell the answer from that.");
                    }
                    (None, false) => {}
                }
                let _ = writeln!(out, "? {}", q.text);
                for (i, o) in q.options.iter().enumerate() {
                    let _ = writeln!(out, "  {}. {}", i + 1, o.label);
                }
            }
            Reply::Guidance(g) => {
                let _ = writeln!(out, "-> {}", g.text);
                if let Some(tip) = &g.tip {
                    let _ = writeln!(out, "   (tip, ours, not the runbook's: {})", tip.trim());
                }
                links(&mut out, &g.links);
                if g.end && !g.escalate && !g.elsewhere {
                    let _ = writeln!(out, "(type /escalate for the escalation path)");
                }
            }
            Reply::Clarify { candidates } => {
                let _ = writeln!(
                    out,
                    "? That could be more than one runbook section. Which one did you mean?"
                );
                for (i, c) in candidates.iter().enumerate() {
                    let _ = writeln!(out, "  {}. {}", i + 1, c.label);
                }
            }
            Reply::NoMatch => {
                let _ = writeln!(
                    out,
                    "No runbook section fits that. I cover in-cluster networking on IKS and ROKS: Calico, load balancers, DNS, worker deploys, PD alerts, escalation. Try describing the symptom or paste the error."
                );
            }
            Reply::Escalation(e) => escalation(&mut out, e),
            Reply::Notice { text } => {
                let _ = writeln!(out, "({text})");
            }
        }
    }
    let _ = write!(out, "[knowledge base {kb_version}]");
    out
}

fn links<'a>(out: &mut String, links: impl IntoIterator<Item = &'a Link>) {
    for l in links {
        let _ = writeln!(out, "  * {}: {}", l.title, l.resolved);
    }
}

fn escalation(out: &mut String, e: &Escalation) {
    let _ = writeln!(out, "== Escalation: armada-network squad ==");
    links(out, &e.links);
    if let Some(t) = &e.topic {
        let _ = writeln!(out, "Topic: {t}");
    }
    for (q, a) in &e.collected {
        let _ = writeln!(out, "  - {q} {a}");
    }
}
