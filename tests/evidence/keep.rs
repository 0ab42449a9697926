//! The evidence file writer, shared by the evidence tests (through `evidence/mod.rs`) and
//! `tests/proptest_inputs.rs` (which includes this file alone, without the emulator).

/// Appends `line` to this test's `<target>/tmp/evidence/<binary>-<test>.txt` (truncated at its first
/// line in this process), so that `.ci/run` can show what the tests measured without `--nocapture`.
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
