//! The conversation state of one thread: plain data, serialisable, versioned. What the bot stores per
//! thread between two messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the serialised [`Conversation`]. Version 1 records (before `asked`) still load: the new
/// fields default. Bump it when a change cannot be read that way.
pub const FORMAT_VERSION: u32 = 2;

/// The state of one thread's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub format: u32,
    /// Knowledge-base version the conversation was last stepped with.
    pub kb_version: String,
    /// The intent being worked (the thread's topic); `None` while the bot asks which of two sections
    /// was meant, or waits for a description after "no section fits".
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
    /// The questions asked in this thread, in order, with the answer as the person gave it: the
    /// escalation record quotes these, and a click on an earlier question's button corrects it.
    #[serde(default)]
    pub asked: Vec<Asked>,
}

/// A question the bot asked, and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    pub node: String,
    pub slot: String,
    /// The question as it was shown.
    pub question: String,
    /// The reply that answered it, as written (first line, truncated); `None` for a click or while open.
    #[serde(default)]
    pub said: Option<String>,
}

/// What the conversation waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pending {
    /// No question: the flow ended (the topic stays open for follow-ups), or the intent has none.
    Nothing,
    /// An answer to the question of this flow node.
    Question { node: String },
    /// A choice between these intents.
    Clarify { candidates: Vec<String> },
    /// Nothing fitted the last message: the next one in the thread is read as a new question.
    Describe,
}
