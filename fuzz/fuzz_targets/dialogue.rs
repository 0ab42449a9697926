//! `dialogue::step` over a sequence of inputs read from the bytes (a tag byte, then text up to a NUL):
//! messages addressed or not, button choices, picks, escalate, reset. No panic, and every state it
//! produces serialises and reads back.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use netrunbook::dialogue::{self, Conversation, Input};
use netrunbook::kb::KnowledgeBase;

static KB: LazyLock<KnowledgeBase> = LazyLock::new(|| KnowledgeBase::builtin().expect("the shipped knowledge base"));

fuzz_target!(|data: &[u8]| {
    let mut state: Option<Conversation> = None;
    for (k, chunk) in data.split(|b| *b == 0).take(12).enumerate() {
        let Some((&tag, rest)) = chunk.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest).into_owned();
        let (a, b) = text.split_once(' ').unwrap_or((&text, ""));
        let input = match tag % 6 {
            0 => Input::Message { text, addressed: true },
            1 => Input::Message { text, addressed: false },
            2 => Input::Choose {
                node: a.to_string(),
                option: b.to_string(),
            },
            3 => Input::Pick { intent: text },
            4 => Input::Escalate,
            _ => Input::Reset,
        };
        let step = dialogue::step(&KB, state.as_ref(), &input, 1_700_000_000 + k as u64);
        if let Some(c) = &step.state {
            let json = serde_json::to_string(c).expect("serialises");
            let back: Conversation = serde_json::from_str(&json).expect("reads back");
            assert_eq!(&back, c);
        }
        state = step.state;
    }
});
