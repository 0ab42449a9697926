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

/// Prints a line and keeps it in `<target>/tmp/evidence/<binary>-<test>.txt`, so that `.ci/run` can
/// show what the evidence tests measured without `--nocapture`.
macro_rules! evidence {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        $crate::evidence::keep(&line);
    }};
}

#[path = "keep.rs"]
mod keep_file;
pub use keep_file::keep;
