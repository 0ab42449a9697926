//! `clean_slack` then `Lexicon::tokens` on any UTF-8 text: no panic (a slow input is a libFuzzer
//! timeout: run with `-timeout=2`).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use netrunbook::kb::KnowledgeBase;
use netrunbook::text::clean_slack;

static KB: LazyLock<KnowledgeBase> = LazyLock::new(|| KnowledgeBase::builtin().expect("the shipped knowledge base"));

fuzz_target!(|text: &str| {
    let cleaned = clean_slack(text);
    for t in KB.lexicon.tokens(&cleaned) {
        assert!(!t.is_empty());
    }
});
