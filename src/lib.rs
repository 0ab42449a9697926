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

pub mod cli;
pub mod dialogue;
pub mod eval;
pub mod kb;
pub mod matcher;
pub mod render;
pub mod text;
