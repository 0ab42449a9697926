//! The evidence file writer: what the fault, fuzz and load tests measured, kept per test in
//! `<target>/tmp/evidence/` so that `.ci/run` can print it without `--nocapture`.

use std::path::Path;

/// Prints a line and keeps it in `<target>/tmp/evidence/<binary>-<test>.txt` (see [`keep`]). Expands
/// in the test binary, where `CARGO_TARGET_TMPDIR` is set.
#[macro_export]
macro_rules! evidence {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        $crate::evidence::keep(::std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), &line);
    }};
}

/// Appends `line` to this test's `<tmp>/evidence/<binary>-<test>.txt` (truncated at its first line in
/// this process), where `tmp` is the test binary's `CARGO_TARGET_TMPDIR`.
pub fn keep(tmp: &Path, line: &str) {
    use std::io::Write;
    static STARTED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    let dir = tmp.join("evidence");
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
