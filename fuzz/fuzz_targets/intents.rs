//! `KnowledgeBase::from_sources`: the shipped intents with one file replaced by the fuzzer's text (the
//! first byte picks the file). Loads or reports problems; never panics.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use netrunbook::kb::{builtin_sources, KnowledgeBase, LoadOptions, Source};

static SOURCES: LazyLock<Vec<Source>> = LazyLock::new(builtin_sources);

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut sources = SOURCES.clone();
    let i = pick as usize % sources.len();
    sources[i].text = text.to_string();
    match KnowledgeBase::from_sources(sources, &LoadOptions::default()) {
        Ok(kb) => {
            let _ = kb.match_text("calico-node CrashLoopBackOff on a VPC cluster");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
