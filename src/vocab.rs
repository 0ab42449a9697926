//! The shared vocabulary between Slack and the bot, with no behaviour of its own: what came in
//! ([`Inbound`], [`SlashCommand`]), which thread it belongs to ([`ThreadKey`]), what to show
//! ([`Message`]) and what to do in Slack ([`Outbound`], [`CommandReply`]). `slack/` converts Slack's
//! payloads into these and renders and delivers them; `bot` decides; `store` and `outbox` keep them.
//! This module imports nothing of the crate but the dialogue's reply types, so everything else can
//! import it without a circle.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dialogue::{Conversation, Reply};

/// Something that happened in Slack, in our terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    /// What Slack's re-sent copies of this input share and other inputs do not, for
    /// de-duplication: the Events API `event_id`, or for a click a key `slack/` builds from the
    /// payload (user, `action_ts`, `action_id`). `None` for our own follow-ups (a shared answer).
    pub event_id: Option<String>,
    pub team: String,
    pub channel: String,
    pub user: String,
    /// The message's `ts` (for a click: the clicked message's).
    pub ts: String,
    /// The thread the message is in; `None` for a top-level message.
    pub thread_ts: Option<String>,
    /// The text (mrkdwn), without the mentions of the bot; other mentions stay as `<@U..>`.
    pub text: String,
    /// The bot was mentioned in the text (always for an `app_mention`).
    #[serde(default)]
    pub mentioned: bool,
    /// Posted by an app or a bot (never the bot itself: `slack/` drops its own posts).
    pub is_bot: bool,
    /// The posting app's bot id, when `is_bot`.
    #[serde(default)]
    pub bot_id: Option<String>,
    /// An edit (`message_changed`) or a message that carries an `edited` mark.
    pub edited: bool,
    /// Why this is not a plain new message (Slack's subtype: `channel_join`, `message_changed`, ...);
    /// `None` for a message to read (a plain one, a file share, a thread reply sent to the channel).
    pub subtype: Option<String>,
    pub kind: InboundKind,
}

impl InboundKind {
    /// The kind's name in logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            InboundKind::Mention => "mention",
            InboundKind::Message => "message",
            InboundKind::Action { .. } => "click",
            InboundKind::Shortcut => "shortcut",
            InboundKind::Shared { .. } => "shared",
        }
    }
}

impl Inbound {
    /// The thread this belongs to: its thread, or the thread its own `ts` starts.
    pub(crate) fn thread(&self) -> ThreadKey {
        ThreadKey::new(&self.team, &self.channel, self.thread_ts.as_deref().unwrap_or(&self.ts))
    }
}

/// Which kind of Slack input an [`Inbound`] is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InboundKind {
    /// An `app_mention` event.
    Mention,
    /// A `message` event (a mention of the bot inside it still counts as a mention).
    Message,
    /// A button of one of our messages.
    Action {
        action: Action,
        /// Where to send a reply that replaces or deletes the clicked (ephemeral) message.
        response_url: Option<String>,
    },
    /// The message shortcut "Find the runbook section" on message `ts` (its text in `text`), by
    /// `user`: answered in that message's thread, naming who asked.
    Shortcut,
    /// A shared answer was posted as `ts` in the channel: its thread starts with `state`, the
    /// conversation the question started, and shows `rest`, the replies after the first (which the
    /// shared message shows). Decided when the answer was shared: the question is not matched again.
    Shared {
        state: Option<Box<Conversation>>,
        rest: Vec<Reply>,
    },
}

/// What a button does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Option `option` of the question at flow node `node`.
    Choose { node: String, option: String },
    /// The intent meant, when the bot asked which.
    Pick { intent: String },
    /// Show the escalation path.
    Escalate,
    /// 👍 (`helpful`) or 👎 on an answer about `intent`.
    Feedback { intent: String, helpful: bool },
    /// The answer about `from` was the wrong topic: answer about `to` (one of its alternatives).
    WrongTopic { from: String, to: String },
    /// Post the (ephemeral) answer to `question` in the channel.
    Share { question: String },
}

/// Something to show, rendered by `slack/` (Block Kit) with the knowledge base at hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// The replies of one dialogue step, with their buttons.
    Replies(Vec<Reply>),
    /// A slash command's private answer: `reply` without thread buttons, and a "Share in channel"
    /// button carrying `share` when the answer is worth sharing.
    Private {
        reply: Reply,
        more: bool,
        share: Option<String>,
    },
    /// A shared answer posted in the channel: the question asked and its first reply.
    Shared {
        user: String,
        question: String,
        reply: Reply,
    },
    /// The topic list: runbook section titles by group.
    Help { topics: Vec<(String, Vec<String>)> },
    /// A question after a click: the question and the choice, without buttons.
    Answered {
        question: String,
        choice: String,
        user: String,
    },
    /// A one-line status.
    Notice(String),
    /// Who asked, with the message shortcut, about the message a thread starts with.
    AskedBy { user: String },
    /// The same alert fired again: its answer is in the thread of `first` in `channel`.
    Refire { channel: String, first: String },
    /// The bot does not answer in this channel; it does in these.
    NotHere { channels: Vec<String> },
    /// A title and preformatted text (a report, the problems of a knowledge base).
    Block { title: String, body: String },
}

/// What the bot wants done in Slack, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outbound {
    /// Post in the channel, in the thread when `thread_ts` is set.
    Post {
        channel: String,
        thread_ts: Option<String>,
        message: Message,
    },
    /// Post visible to `user` only.
    Ephemeral {
        channel: String,
        user: String,
        thread_ts: Option<String>,
        message: Message,
    },
    /// Replace a message the bot posted (`chat.update`).
    Update {
        channel: String,
        ts: String,
        message: Message,
    },
    /// A question was answered in words: replace the newest message of the bot's in the thread that
    /// asks the question at flow node `node` with buttons by `message` (a [`Message::Answered`]),
    /// as a click would have. The bot does not know that message's `ts`; `slack/` finds it in the
    /// thread when delivering, and skips this when it finds none.
    MarkAnswered {
        channel: String,
        thread_ts: String,
        node: String,
        message: Message,
    },
    /// Answer through an interaction's `response_url`: replace the original with `message`, or
    /// delete it when `None`.
    Respond {
        response_url: String,
        message: Option<Message>,
    },
    /// Post `message` at the top of the channel, then handle `then` with the new message's `ts` as
    /// its `ts` and `thread_ts` (it starts a thread there).
    PostRoot {
        channel: String,
        message: Message,
        then: Box<Inbound>,
    },
}

/// `/netrunbook <text>` as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlashCommand {
    pub team: String,
    pub channel: String,
    pub user: String,
    pub text: String,
    /// What Slack's re-sent copies of this command share and other commands do not (`slack/`
    /// builds it from the `trigger_id`), for de-duplication; `None`: not de-duplicated.
    pub key: Option<String>,
}

/// How to answer a slash command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CommandReply {
    /// In the acknowledgement.
    Now(Message),
    /// Acknowledge with `ack`, then run `task` off the socket (it reads the disk) and show its
    /// result to the user privately.
    Later { ack: Message, task: AdminTask },
}

/// The admin commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminTask {
    /// Re-read the intents directory.
    Reload,
    /// Answers, feedback and unanswered questions.
    Report,
}

/// One Slack thread: the unit a conversation belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ThreadKey {
    pub team: String,
    pub channel: String,
    /// The `ts` of the thread's root message.
    pub thread_ts: String,
}

impl ThreadKey {
    pub fn new(team: impl Into<String>, channel: impl Into<String>, thread_ts: impl Into<String>) -> ThreadKey {
        ThreadKey {
            team: team.into(),
            channel: channel.into(),
            thread_ts: thread_ts.into(),
        }
    }

    /// The key's bytes in a backend: the three parts joined by NUL, which Slack ids never contain.
    pub(crate) fn encode(&self) -> Vec<u8> {
        format!("{}\0{}\0{}", self.team, self.channel, self.thread_ts).into_bytes()
    }
}

impl fmt::Display for ThreadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.team, self.channel, self.thread_ts)
    }
}

/// Who the bot is in the workspace, to recognise its own messages and mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub user_id: String,
    pub bot_id: Option<String>,
}
