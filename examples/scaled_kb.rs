//! Writes a knowledge base `FACTOR` times the shipped one (the one `load_cost_growth` in `tests/load`
//! measures), to time or profile the bot on it by hand:
//!
//! ```sh
//! cargo run --release --example scaled_kb -- /tmp/kb10x 10
//! netrunbook serve --intents /tmp/kb10x ...
//! ```
//!
//! `OUT_DIR` defaults to `$LOAD_KB_OUT`, else `netrunbook-kb10x` in the temporary directory; `FACTOR`
//! to 10. The directory is replaced. The result is loaded as the bot loads it before this says so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use netrunbook::kb::KnowledgeBase;
use netrunbook_testkit::fixtures::scaled_intents;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LOAD_KB_OUT").map(PathBuf::from))
        .unwrap_or_else(|| std::env::temp_dir().join("netrunbook-kb10x"));
    let factor = match args.next().map(|f| f.parse::<usize>()) {
        None => 10,
        Some(Ok(f)) if f >= 1 => f,
        Some(_) => {
            eprintln!("usage: scaled_kb [OUT_DIR] [FACTOR >= 1]");
            return ExitCode::from(2);
        }
    };
    let _ = std::fs::remove_dir_all(&out);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents");
    let sections = scaled_intents(&shipped, &out, factor);
    if let Err(e) = KnowledgeBase::load_dir(&out, &Default::default()) {
        eprintln!("the scaled knowledge base in {} does not load: {e}", out.display());
        return ExitCode::FAILURE;
    }
    println!("{sections} sections ({factor}x the shipped ones) in {}", out.display());
    ExitCode::SUCCESS
}
