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

/// Appends `line` to this test's evidence file (truncated at its first line in this process).
pub fn keep(line: &str) {
    use std::io::Write;
    static STARTED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("evidence");
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| s.split('-').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let test = std::thread::current().name().unwrap_or("main").replace("::", "-");
    let path = dir.join(format!("{binary}-{test}.txt"));
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    let fresh = !started.contains(&path);
    if fresh {
        started.push(path.clone());
    }
    let _ = std::fs::create_dir_all(&dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(!fresh)
        .truncate(fresh)
        .open(&path);
    if let Ok(mut f) = file {
        let _ = writeln!(f, "{line}");
    }
}
