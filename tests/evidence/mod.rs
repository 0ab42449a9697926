//! Helpers for the evidence tests (`tests/load`, `tests/faults`): the real `netrunbook serve`
//! process ([`process`]), scripted conversations driven through the Slack emulator and measured
//! ([`driver`]), percentiles ([`stats`]) and generated inputs (a knowledge base ten times larger,
//! a pre-populated store: [`fixtures`]). Each test binary includes them with
//! `#[path = "../evidence/mod.rs"] mod evidence;` next to `mod support;`.

// Each test binary uses only part of these helpers.
#![allow(dead_code)]

pub mod driver;
pub mod fixtures;
pub mod process;
pub mod stats;
