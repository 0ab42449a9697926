//! The core tests, one binary: the pure stages on the shipped knowledge base (the matcher's bars and
//! table, the dialogue engine's flows and blind dialogue sets, hostile input fuzzed with proptest),
//! every `Store` backend against one conformance test, the `netrunbook` binary's offline commands,
//! and `manifest.yaml` against Slack's schema and the code. No Slack, no network.
//!
//! The knowledge base is loaded once for the whole binary ([`kb`]).

mod cli;
mod dialogue_flows;
mod dialogue_sets;
mod manifest;
mod matcher;
mod postgres;
mod proptest_inputs;
mod store_conformance;

use std::path::PathBuf;
use std::sync::LazyLock;

use netrunbook::kb::KnowledgeBase;

static KB: LazyLock<KnowledgeBase> = LazyLock::new(|| {
    let kb = KnowledgeBase::builtin().expect("the shipped knowledge base loads");
    // the proptest harnesses time each step: let the learned layer finish fitting first
    kb.matcher.wait_learned();
    kb
});

/// The shipped (built-in) knowledge base, loaded once.
pub fn kb() -> &'static KnowledgeBase {
    &KB
}

/// `tests/data/<file>`.
pub fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file)
}
