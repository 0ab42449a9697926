//! What a dialogue step says: answers, questions, guidance, escalation, notices. Rendered by
//! `render.rs` (terminal) and `slack/blocks.rs` (Block Kit); stored in the outbox, so new fields
//! default when an older record is read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kb::Link;

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
    /// The links of the first reply (at most four): the ones the follow-up questions decide between
    /// come with the answer to those questions.
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
    /// Why it is asked again ("I read both *Classic* and *VPC* in that").
    #[serde(default)]
    pub note: Option<String>,
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
    /// The problem belongs to another team or the customer: no escalation hint.
    #[serde(default)]
    pub elsewhere: bool,
    /// Our own advice, not the runbook's.
    #[serde(default)]
    pub tip: Option<String>,
}

/// The escalation path with what was learned so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// The escalation section's title and summary, as the reply shows them.
    pub title: String,
    pub summary: String,
    /// Title of the section being worked, if any.
    pub topic: Option<String>,
    pub links: Vec<Link>,
    pub facts: BTreeMap<String, Vec<String>>,
    /// (question as asked, answer as given) pairs collected so far.
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
    /// A short status line (reset, stale button, changed flow, the next step in an open topic).
    Notice {
        text: String,
    },
}

/// A question answered in this step, for the edge to mark the question's message answered (a text
/// answer shows like a click: "answered by @bob: Classic", buttons closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answered {
    pub node: String,
    pub question: String,
    /// The label of the option chosen.
    pub choice: String,
}
