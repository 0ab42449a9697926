//! netrunbook routes Kubernetes network incident messages (IKS and ROKS on IBM Cloud) to the right
//! section of the armada-network initial troubleshooting runbook, and walks people through the runbook's
//! follow-up questions.
//!
//! # Layout
//!
//! - [`text`]: normalisation shared by everything that reads user text (pure).
//! - [`kb`]: loading and validating `intents/` into a [`kb::KnowledgeBase`].
//! - [`matcher`]: message -> ranked sections with evidence, or abstain (pure).
//! - [`dialogue`]: `step(knowledge, state, input, now) -> (state, replies)` (pure).
//! - [`render`]: replies as terminal text.
//! - [`eval`]: accuracy of the matcher on a labelled set.
//! - [`cli`]: the offline commands (`ask`, `chat`, `check`, `eval`).
//! - [`store`]: conversation state per Slack thread behind a `Store` trait (sled, in-memory,
//!   PostgreSQL), and the outbox records committed with it.
//!   [`store::replica`]: how replicas sharing one database share the work (journal, thread claims,
//!   heartbeats), behind one trait; the one-process case is [`store::replica::Solo`].
//! - [`outbox`]: the outbox record: one handled event's replies until all are delivered.
//! - [`inbox`]: the journal of events acknowledged and not yet handled, handed back after a crash.
//! - [`bot`]: Slack-agnostic glue: `Inbound` -> load, step, commit -> `Outbound`.
//! - [`slack`]: the only user of slack-morphism: Socket Mode, Block Kit, the Web API, delivery from the outbox.
//! - [`feedback`]: votes and doubtful questions as stored; redaction and signatures (pure).
//! - [`report`]: answers, feedback and unanswered questions aggregated for `report` (pure).
//! - [`metrics`]: the Prometheus registry and its typed handles; readiness.
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, and the client behind `netrunbook health`.
//! - [`config`], [`telemetry`], [`app`]: `netrunbook serve` (settings, logs, `Application`).

pub(crate) mod alert;
pub mod app;
pub mod bot;
pub mod cli;
pub mod config;
pub mod dialogue;
pub(crate) mod error;
pub mod eval;
pub mod feedback;
#[cfg(test)]
mod golden;
pub mod http;
pub mod inbox;
pub mod kb;
pub(crate) mod learned;
pub mod matcher;
pub(crate) mod metrics;
pub mod outbox;
pub(crate) mod redact;
pub mod render;
pub mod report;
pub mod slack;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod vocab;
