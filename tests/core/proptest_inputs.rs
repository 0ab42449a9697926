//! Hostile input, fuzzed with proptest: the Slack-text normaliser (`clean_slack`, `Lexicon::tokens`),
//! the matcher (`KnowledgeBase::match_text`), the dialogue step (`dialogue::step` over random inputs
//! and random, even nonsensical, states) and the intents loader (`KnowledgeBase::from_sources` over
//! mutated YAML). Every case must finish without a panic and within a time bound far above what a
//! sane input costs, so that anything super-linear (a regex or a loop that blows up) fails.
//!
//! Budget: 2,000 cases per harness (`PROPTEST_CASES` overrides it, e.g.
//! `PROPTEST_CASES=100000 cargo test --release --test core proptest_inputs -- --nocapture`). Each harness
//! prints how many inputs it ran; `PROPTEST_RNG_SEED=<u64>` replays a run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use netrunbook::dialogue::{self, Conversation, Input, Pending, FORMAT_VERSION};
use netrunbook::kb::{builtin_sources, KnowledgeBase, LoadOptions, Node, Source};
use netrunbook::matcher::Verdict;
use netrunbook::text::{clean_slack, MAX_INPUT_BYTES};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRng, TestRunner};

use crate::kb;

/// Cases per harness: 2,000 unless `PROPTEST_CASES` says otherwise.
fn config(default_cases: u32) -> Config {
    let mut c = Config::default(); // reads PROPTEST_* variables
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    c.failure_persistence = None;
    c
}

/// The time a case may take for `bytes` of input: a fixed part plus a per-byte part, both far above
/// what a linear pass costs (measured before the signatures used ASCII word boundaries: about 35 µs
/// per byte in a debug build on the slowest path,
/// non-ASCII text through the signature regexes; 0.7 µs in release). Anything super-linear (the cubic
/// typo search on a 400-letter word took 0.4 s in release, a 1,600-letter one 30 s and 4 GB) fails it.
fn bound(bytes: usize) -> Duration {
    let (fixed_ms, per_byte_us) = if cfg!(debug_assertions) { (150, 100) } else { (30, 10) };
    Duration::from_millis(fixed_ms) + Duration::from_micros(per_byte_us * bytes as u64)
}

/// Prints `line` and keeps it in `<target>/tmp/evidence/core-proptest_inputs-<test>.txt` for
/// `.ci/run`.
fn keep(line: &str) {
    netrunbook_testkit::evidence!("{line}");
}

/// Runs `test` over `strategy` for the configured number of cases; prints and checks the count.
fn fuzz<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = config(cases);
    let want = config.cases as usize;
    let ran = AtomicUsize::new(0);
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |v| {
        ran.fetch_add(1, Ordering::Relaxed);
        test(v)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let ran = ran.into_inner();
    keep(&format!(
        "proptest {name}: {ran} inputs, no panic, every case within its bound ({:.1?} in all)",
        started.elapsed()
    ));
    assert!(ran >= want, "{name}: ran {ran} of {want} cases");
}

/// As [`fuzz`], with the cases shared out over `parts` runners on threads of their own, for a harness
/// whose cases are slow: run on one thread it would go on long after the rest of the binary has
/// finished. Each runner's random generator is forked from one seed runner's, so
/// `PROPTEST_RNG_SEED` still replays a run.
fn fuzz_split<S: Strategy>(
    name: &str,
    cases: u32,
    parts: u32,
    strategy: impl Fn() -> S + Sync,
    test: impl Fn(S::Value) -> Result<(), TestCaseError> + Sync,
) where
    S::Value: std::fmt::Debug,
{
    let config = config(cases);
    let want = config.cases as usize;
    let ran = AtomicUsize::new(0);
    let started = Instant::now();
    let mut seed = TestRunner::new(config.clone());
    let shares: Vec<(Config, TestRng)> = (0..parts)
        .map(|p| {
            let mut c = config.clone();
            c.cases = config.cases / parts + u32::from(p < config.cases % parts);
            (c, seed.new_rng())
        })
        .collect();
    let (strategy, test, ran_ref) = (&strategy, &test, &ran);
    std::thread::scope(|scope| {
        let runners: Vec<_> = shares
            .into_iter()
            .map(|(c, rng)| {
                scope.spawn(move || {
                    TestRunner::new_with_rng(c, rng)
                        .run(&strategy(), |v| {
                            ran_ref.fetch_add(1, Ordering::Relaxed);
                            test(v)
                        })
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for runner in runners {
            if let Err(e) = runner.join().expect("a runner does not panic") {
                panic!("{name}: {e}");
            }
        }
    });
    let ran = ran.into_inner();
    keep(&format!(
        "proptest {name}: {ran} inputs on {parts} threads, no panic, every case within its bound ({:.1?} in all)",
        started.elapsed()
    ));
    assert!(ran >= want, "{name}: ran {ran} of {want} cases");
}

/// Pieces a hostile Slack message is built from: markup, entities, noise the normaliser strips,
/// words of the knowledge base and their typos, control and right-to-left characters, emoji, and
/// long runs (of letters without digits, which reach the typo corrector; of digits and hex; of
/// markup characters). Runs stay under 600 characters so that a case costs milliseconds;
/// `pathological_large_inputs_stay_fast` covers 40-70 KB inputs.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,12}",
        2 => "[A-Za-z0-9_.:/@#!|<>&;-]{1,20}",
        2 => any::<String>(),
        1 => prop::sample::select(vec![
            "<@U0123ABCD>", "<@UBOT|netrunbook>", "<!channel>", "<!here>", "<!subteam^S1|@team>",
            "<#C123|armada-network>", "<https://cloud.ibm.com/docs|the docs>", "<mailto:a@b.c|a>",
            "<!date^1392734382^{date}|Feb 18>", ":fire:", ":+1:", "```", "`", "&lt;", "&gt;", "&amp;",
            "&lt;@U1&gt;", "<", ">", "<<@U1>>", "<@", "|", "\n", "\t", "\u{202e}", "\u{200f}", "\u{0}",
            "\u{feff}", "🔥", "👩‍💻", "🏳️‍🌈", "calico-node", "calcio-node", "kcc", "CrashLoopBackOff",
            "coredns", "NXDOMAIN", "no such host", "LoadBalancer", "loadbalancr", "konectivity", "VPC",
            "Classic", "ROKS", "openshift 4.14", "25 min", "about 90 minutes", "vpe", "i/o timeout",
            "172.21.0.10:53", "10.242.64.17/26", "3f2a9c1e-1111-2222-3333-444455556666",
            "2024-03-01T10:22:31.123Z", "22:03:00.123", "c9v3k1sd0abcdefgh123", "sha256:0123456789abcdef",
        ])
        .prop_map(str::to_string),
        1 => (prop::sample::select(vec!['a', 'e', 'k', 'z', 'é', 'ß', 'я']), 20usize..600)
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
        1 => "[a-z]{20,600}",
        1 => "[0-9a-f]{20,600}",
        1 => (prop::sample::select(vec!["<", ">", "<@", "&lt;", ":", "`", "|", "-", ".", " "]), 10usize..300)
            .prop_map(|(s, n)| s.repeat(n)),
    ]
}

fn slack_text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..16)
        .prop_flat_map(|pieces| {
            let n = pieces.len();
            (
                Just(pieces),
                prop::collection::vec(prop::sample::select(vec![" ", "", "\n", "-", ", "]), n),
            )
        })
        .prop_map(|(pieces, seps)| {
            let mut s = String::new();
            for (p, sep) in pieces.iter().zip(seps) {
                s.push_str(p);
                s.push_str(sep);
            }
            s
        })
}

#[test]
fn normaliser_never_panics_nor_blows_up() {
    fuzz("clean_slack+Lexicon::tokens", 2000, slack_text(), |text| {
        let start = Instant::now();
        let cleaned = clean_slack(&text);
        let tokens = kb().lexicon.tokens(&cleaned);
        let took = start.elapsed();
        prop_assert!(took < bound(text.len()), "{took:?} for {} bytes", text.len());
        // the input cap holds (markup replacement may add a few spaces per tag, never much more)
        prop_assert!(
            cleaned.len() <= MAX_INPUT_BYTES * 2,
            "cleaned to {} bytes",
            cleaned.len()
        );
        prop_assert!(!cleaned.contains("<@U0123ABCD>") && !cleaned.contains("<!channel>"));
        for t in &tokens {
            prop_assert!(!t.is_empty() && !t.chars().any(char::is_whitespace), "token {t:?}");
        }
        Ok(())
    });
}

#[test]
fn matcher_never_panics_nor_blows_up() {
    fuzz("KnowledgeBase::match_text", 2000, slack_text(), |text| {
        let start = Instant::now();
        let outcome = kb().match_text(&text);
        let took = start.elapsed();
        prop_assert!(took < bound(text.len()), "{took:?} for {} bytes", text.len());
        for r in &outcome.ranked {
            prop_assert!(r.score.is_finite(), "score {}", r.score);
            prop_assert!(r.intent < kb().intents.len(), "unknown intent {}", r.intent);
        }
        if outcome.verdict != Verdict::Abstain {
            prop_assert!(outcome.best().is_some());
        }
        Ok(())
    });
}

/// Inputs big enough to expose anything worse than linear, each within a bound a linear pass meets
/// easily (a 64 KB message is the most the bot reads; a larger one is cut to that).
#[test]
fn pathological_large_inputs_stay_fast() {
    let word: String = (0..70_000)
        .map(|i| (b'a' + ((i * 7 + i / 3) % 26) as u8) as char)
        .collect();
    let cases: Vec<(&str, String)> = vec![
        ("one 70 KB word of letters", word.clone()),
        ("one 70 KB word of one letter", "a".repeat(70_000)),
        ("16 words of 2.5 KB", format!("{} ", &word[..2500]).repeat(16)),
        ("70 KB of '<'", "<".repeat(70_000)),
        ("70 KB of '<@'", "<@".repeat(35_000)),
        ("70 KB of '&lt;'", "&lt;".repeat(17_500)),
        ("70 KB of ':a'", ":a".repeat(35_000)),
        ("70 KB of digits and dots", "1.2.".repeat(17_500)),
        ("70 KB of hex", "0123456789abcdef".repeat(4_400)),
        ("70 KB of '-'", "-".repeat(70_000)),
        (
            "40 KB of typo'd words",
            "calcio-nodee konectivty loadbalancr ".repeat(1100),
        ),
        ("40 KB of non-ASCII words", "ßß éééé ünïcødé ".repeat(1900)),
        (
            "40 KB of log lines",
            "E1126 22:03:00.123 dial udp 172.21.0.10:53: i/o timeout\n".repeat(700),
        ),
    ];
    for (what, text) in &cases {
        let start = Instant::now();
        let _ = kb().match_text(text);
        let took = start.elapsed();
        keep(&format!("large input {what}: {took:.1?}"));
        assert!(took < bound(text.len()), "{what}: {took:?}");
    }
}

/// A conversation built from random parts: intents, nodes, slots and options that exist, mixed with
/// ones that do not (a state written by an older knowledge base, or corrupted).
fn conversation() -> impl Strategy<Value = Conversation> {
    let intents: Vec<String> = kb()
        .intents
        .iter()
        .map(|i| i.id.clone())
        .chain(["gone".to_string(), String::new()])
        .collect();
    let mut nodes: Vec<String> = kb()
        .intents
        .iter()
        .filter_map(|i| i.flow.as_ref())
        .flat_map(|f| f.nodes.keys().cloned())
        .collect();
    nodes.push("no-such-node".into());
    let slots: Vec<String> = kb().slots.keys().cloned().chain(["no-such-slot".to_string()]).collect();
    let options: Vec<String> = kb()
        .slots
        .values()
        .flat_map(|s| s.options.iter().map(|o| o.id.clone()))
        .chain(["no-such-option".to_string()])
        .collect();
    let pending = prop_oneof![
        Just(Pending::Nothing),
        Just(Pending::Describe),
        prop::sample::select(nodes).prop_map(|node| Pending::Question { node }),
        prop::collection::vec(prop::sample::select(intents.clone()), 0..4)
            .prop_map(|candidates| Pending::Clarify { candidates }),
    ];
    (
        prop::option::of(prop::sample::select(intents)),
        pending,
        prop::collection::btree_map(prop::sample::select(slots.clone()), prop::sample::select(options), 0..4),
        prop::collection::btree_map(prop::sample::select(slots), ".{0,20}", 0..3),
        ".{0,200}",
        prop::collection::vec("[a-z-]{1,12}", 0..4),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(intent, pending, slots, details, origin, trail, started_at, updated_at)| Conversation {
                format: FORMAT_VERSION,
                kb_version: "fuzz".into(),
                intent,
                pending,
                slots,
                details,
                origin,
                trail,
                started_at,
                updated_at,
                asked: vec![],
            },
        )
}

/// Any input, with ids that exist and ids that do not.
fn input() -> impl Strategy<Value = Input> {
    let intents: Vec<String> = kb()
        .intents
        .iter()
        .map(|i| i.id.clone())
        .chain(["gone".to_string()])
        .collect();
    let mut choices: Vec<(String, String)> = Vec::new();
    for intent in &kb().intents {
        for (name, node) in intent.flow.iter().flat_map(|f| f.nodes.iter()) {
            if let Node::Ask { slot, .. } = node {
                for o in &kb().slots[slot].options {
                    choices.push((name.clone(), o.id.clone()));
                }
                choices.push((name.clone(), "no-such-option".into()));
            }
        }
    }
    choices.push(("no-such-node".into(), "vpc".into()));
    prop_oneof![
        6 => (slack_text(), any::<bool>()).prop_map(|(text, addressed)| Input::Message { text, addressed }),
        3 => prop::sample::select(vec![
            "vpc", "classic", "iks", "openshift", "roks", "yes", "no", "no, still broken", "it's fixed",
            "about 25 min", "2 hours", "1", "2", "3", "idk", "LoadBalancer service stuck with pending external IP",
            "calico-node CrashLoopBackOff", "dns lookups fail", "who do I page",
        ])
        .prop_map(|t| Input::Message { text: t.to_string(), addressed: false }),
        3 => prop::sample::select(choices).prop_map(|(node, option)| Input::Choose { node, option }),
        1 => prop::sample::select(intents).prop_map(|intent| Input::Pick { intent }),
        1 => Just(Input::Escalate),
        1 => Just(Input::Reset),
    ]
}

/// What every state the engine produces from a valid start must satisfy.
fn check_state(c: &Conversation) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.format, FORMAT_VERSION);
    match &c.pending {
        Pending::Nothing => {}
        Pending::Question { node } => {
            let intent = c.intent.as_deref().and_then(|i| kb().intent(i));
            let flow = intent.and_then(|i| i.flow.as_ref());
            prop_assert!(
                flow.is_some_and(|f| matches!(f.nodes.get(node), Some(Node::Ask { .. }))),
                "pending question {node} is not an ask node of {:?}",
                c.intent
            );
        }
        Pending::Clarify { candidates } => {
            prop_assert!(candidates.len() >= 2, "clarify between {candidates:?}");
            for id in candidates {
                prop_assert!(kb().intent(id).is_some(), "clarify candidate {id}");
            }
        }
        Pending::Describe => prop_assert!(c.intent.is_none(), "a described topic waits for no description"),
    }
    for (slot, option) in &c.slots {
        let s = kb().slots.get(slot);
        prop_assert!(
            s.is_some_and(|s| s.options.iter().any(|o| &o.id == option)),
            "slot {slot}={option}"
        );
    }
    // what the store writes reads back the same
    let json = serde_json::to_string(c).expect("serialises");
    let back: Conversation = serde_json::from_str(&json).expect("reads back");
    prop_assert_eq!(&back, c);
    Ok(())
}

#[test]
fn dialogue_from_a_valid_start_stays_valid() {
    let strategy = (prop::collection::vec(input(), 1..10), 0u64..4_000_000_000);
    fuzz(
        "dialogue::step (sequences from no state)",
        2000,
        strategy,
        |(inputs, now)| {
            let mut state: Option<Conversation> = None;
            for (k, input) in inputs.iter().enumerate() {
                let start = Instant::now();
                let step = dialogue::step(kb(), state.as_ref(), input, now + k as u64);
                let took = start.elapsed();
                let bytes = match input {
                    Input::Message { text, .. } => text.len(),
                    _ => 0,
                };
                // a step reads the text more than once (matching, then every slot): three passes allowed
                prop_assert!(took < bound(3 * bytes), "{took:?} for {input:?}");
                if let Some(c) = &step.state {
                    check_state(c)?;
                }
                state = step.state;
            }
            Ok(())
        },
    );
}

#[test]
fn dialogue_survives_any_state() {
    let strategy = (prop::option::of(conversation()), input(), any::<u64>());
    fuzz(
        "dialogue::step (random states)",
        2000,
        strategy,
        |(state, input, now)| {
            let start = Instant::now();
            let step = dialogue::step(kb(), state.as_ref(), &input, now);
            let took = start.elapsed();
            let bytes = match &input {
                Input::Message { text, .. } => text.len(),
                _ => 0,
            } + state.as_ref().map_or(0, |c| c.origin.len());
            prop_assert!(took < bound(3 * bytes), "{took:?}");
            // a state the engine itself moved on is valid again; one it left alone may stay as it was
            if let Some(c) = &step.state {
                if state.as_ref() != Some(c) {
                    prop_assert_eq!(c.format, FORMAT_VERSION);
                }
            }
            Ok(())
        },
    );
}

/// One edit of one knowledge-base file.
#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
    Insert(usize, String),
    /// Replace the value after the first `: ` on a line.
    ReplaceValue(usize, String),
    Reindent(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let hostile_value = prop_oneof![
        ".{0,40}",
        prop::sample::select(vec![
            "'(a+)+$'",
            "'(a*)*b'",
            "'(?i)(x+x+)+y'",
            "'\\w{1000}{1000}'",
            "'[a-z]{1,65535}{1,65535}'",
            "'(?s).*'",
            "''",
            "'['",
            "'(?P<x>a)(?P<x>b)'",
            "'\\p{Greek}+\\b'",
            "'a{99999999}'",
            "-5",
            "1e309",
            "NaN",
            ".inf",
            "~",
            "null",
            "[]",
            "{}",
            "[1, [2, [3]]]",
            "&a",
            "*a",
            "!!binary aGk=",
            "'\u{0}'",
            "\"\\u0000\"",
            "|",
            ">-",
            "0x10",
            "99999999999999999999999",
        ])
        .prop_map(str::to_string),
    ];
    prop_oneof![
        any::<prop::sample::Index>().prop_map(|i| Mutation::DeleteLine(i.index(usize::MAX))),
        any::<prop::sample::Index>().prop_map(|i| Mutation::DuplicateLine(i.index(usize::MAX))),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop_oneof![".{0,30}", "[:\\-\\[\\]{}&*!|>'\"%@` \n]{1,10}"]
        )
            .prop_map(|(at, s)| Mutation::Insert(at, s)),
        (any::<usize>(), hostile_value).prop_map(|(l, v)| Mutation::ReplaceValue(l, v)),
        (any::<usize>(), 0usize..9).prop_map(|(l, n)| Mutation::Reindent(l, n)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::DeleteLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % n);
            }
        }
        Mutation::DuplicateLine(i) => {
            if !lines.is_empty() {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
        }
        Mutation::SwapLines(a, b) => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
        }
        Mutation::Truncate(at) => {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return text[..at].to_string();
        }
        Mutation::Insert(at, s) => {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return format!("{}{s}{}", &text[..at], &text[at..]);
        }
        Mutation::ReplaceValue(l, v) => {
            let with_value: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].contains(": ")).collect();
            if !with_value.is_empty() {
                let i = with_value[l % with_value.len()];
                let key = lines[i].split(": ").next().unwrap_or_default().to_string();
                lines[i] = format!("{key}: {v}");
            }
        }
        Mutation::Reindent(l, k) => {
            if !lines.is_empty() {
                let t = lines[l % n].trim_start().to_string();
                lines[l % n] = format!("{}{t}", " ".repeat(*k));
            }
        }
    }
    lines.join("\n")
}

#[test]
fn intents_loader_survives_mutated_yaml() {
    let sources = builtin_sources();
    let files = sources.len();
    let strategy = || prop::collection::vec((0..files, mutation()), 1..4);
    // fewer cases: each one compiles a whole knowledge base (70-200 ms in a debug build), on two
    // threads: the slowest harness of the binary
    fuzz_split(
        "KnowledgeBase::from_sources (mutated YAML)",
        300,
        2,
        strategy,
        |edits| {
            let mut mutated: Vec<Source> = sources.clone();
            for (file, m) in &edits {
                mutated[*file].text = apply(&mutated[*file].text, m);
            }
            let names: Vec<String> = mutated.iter().map(|s| s.name.clone()).collect();
            let start = Instant::now();
            let result = KnowledgeBase::from_sources(mutated, &LoadOptions::default());
            let took = start.elapsed();
            prop_assert!(took < bound(60_000), "{took:?}");
            match result {
                Ok(kb) => {
                    // whatever loads must still answer
                    let _ = kb.match_text("calico-node CrashLoopBackOff on a VPC cluster");
                    prop_assert!(!kb.intents.is_empty());
                }
                Err(e) => {
                    // every problem names a file of the set, and says something
                    for p in e.problems() {
                        prop_assert!(!p.message.trim().is_empty(), "empty problem message");
                        prop_assert!(
                            names
                                .iter()
                                .any(|n| n.ends_with(p.file.as_str()) || p.file.ends_with(n.as_str())),
                            "problem names an unknown file: {p} (files: {names:?})"
                        );
                    }
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            Ok(())
        },
    );
}

/// Hostile signatures in an otherwise valid knowledge base: rejected (or accepted and fast), never a
/// hang at load or at match time.
#[test]
fn hostile_signatures_are_rejected_or_harmless() {
    let hostile = [
        r"(a+)+$",
        r"(a*)*b",
        r"(x+x+)+y",
        r"\w{1000}{1000}",
        r"[a-z]{1,65535}{1,65535}",
        r"(?s).*",
        r"a{99999999}",
        r"(((((((((((((((((((((a)))))))))))))))))))))*",
        r"(\w+\s?)+$",
        r"(?i)(?:a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q|r|s|t|u|v|w|x|y|z){64}",
    ];
    let base = builtin_sources();
    let dns = base
        .iter()
        .position(|s| s.name.ends_with("dns.yaml"))
        .expect("dns.yaml is shipped");
    let probe = format!("{} {}", "a".repeat(30_000), "x".repeat(30_000));
    let mut rejected = 0;
    for pattern in hostile {
        let mut sources = base.clone();
        let quoted = pattern.replace('\'', "''");
        sources[dns].text = sources[dns].text.replacen(
            "  signatures:\n",
            &format!("  signatures:\n    - pattern: '{quoted}'\n      weight: 3\n"),
            1,
        );
        let start = Instant::now();
        let loaded = KnowledgeBase::from_sources(sources, &LoadOptions::default());
        let load = start.elapsed();
        assert!(load < bound(60_000), "{pattern}: load took {load:?}");
        match loaded {
            Err(e) => {
                rejected += 1;
                assert!(
                    e.to_string().contains("dns.yaml"),
                    "{pattern}: the error names the file: {e}"
                );
                keep(&format!(
                    "hostile signature {pattern:?}: rejected at load in {load:.1?}"
                ));
            }
            Ok(kb) => {
                let start = Instant::now();
                let _ = kb.match_text(&probe);
                let took = start.elapsed();
                keep(&format!(
                    "hostile signature {pattern:?}: accepted; 60 KB probe matched in {took:.1?}"
                ));
                assert!(took < bound(probe.len()), "{pattern}: match took {took:?}");
            }
        }
    }
    assert!(
        rejected >= 3,
        "empty-matching and oversized patterns are refused ({rejected})"
    );
}

#[test]
fn mutations_change_the_text() {
    // the loader harness is only as good as its mutations: check they do edit
    let text = "a: 1\nb: 2\n  c: 3";
    assert_ne!(apply(text, &Mutation::DeleteLine(0)), text);
    assert_ne!(apply(text, &Mutation::ReplaceValue(1, "'['".into())), text);
    assert_eq!(apply(text, &Mutation::Truncate(2)), "a:");
    let mut seen = BTreeMap::new();
    for m in [
        Mutation::DuplicateLine(1),
        Mutation::Reindent(2, 0),
        Mutation::Insert(3, "x".into()),
    ] {
        seen.insert(format!("{m:?}"), apply(text, &m) != text);
    }
    assert!(seen.values().all(|changed| *changed), "{seen:?}");
}
