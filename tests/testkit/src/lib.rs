//! netrunbook's test kit: what the integration test binaries (`tests/core`, `tests/e2e`,
//! `tests/faults`, `tests/load`) share, compiled once as a dev-only library.
//!
//! # Layout
//!
//! - [`slack_emulator`]: Slack on 127.0.0.1 (Socket Mode and the Web API, with faults). Its
//!   self-test against slack-morphism is `tests/e2e/emulator.rs`.
//! - [`process`]: the real `netrunbook serve` as a child process pointed at an emulator: started,
//!   signalled, killed, its log kept, its memory and CPU read from `/proc`. The one process harness
//!   of the end-to-end, fault and load tests.
//! - [`driver`]: scripted incident conversations run through the emulator by many sessions at once,
//!   each reply checked and timed (the fault and load tests); [`stats`] summarises the times.
//! - [`dialogues`]: the multi-turn dialogue format of `tests/data/*.jsonl`, among them the flow
//!   table `flows.jsonl` that `core` replays through the dialogue engine and `e2e` through Slack.
//! - [`fixtures`]: generated inputs (a knowledge base N times the shipped one).
//! - [`pg`]: PostgreSQL for the tests: a throwaway database on the machine's server
//!   ([`pg::TestDatabase`]), or a server of one test's own that it may stop and start
//!   ([`pg::PrivateCluster`]); skipped without `NETRUNBOOK_TEST_DATABASE_URL`.
//! - [`evidence!`]: prints a measured line and keeps it for `.ci/run`.
//!
//! The kit does not depend on netrunbook; the binary under test is handed to [`process`] by the
//! test binaries (`env!("CARGO_BIN_EXE_netrunbook")` exists only there).

pub mod dialogues;
pub mod driver;
pub mod evidence;
pub mod fixtures;
pub mod pg;
pub mod process;
pub mod slack_emulator;
pub mod stats;
