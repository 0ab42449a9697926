//! `KnowledgeBase::match_text` on any UTF-8 text: no panic, finite scores.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use netrunbook::kb::KnowledgeBase;

static KB: LazyLock<KnowledgeBase> = LazyLock::new(|| KnowledgeBase::builtin().expect("the shipped knowledge base"));

fuzz_target!(|text: &str| {
    let outcome = KB.match_text(text);
    for r in &outcome.ranked {
        assert!(r.score.is_finite());
    }
});
