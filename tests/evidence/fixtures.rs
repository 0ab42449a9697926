//! Generated inputs for the cost-growth runs: a knowledge base `factor` times the shipped one, and a
//! sled store holding `n` conversations written by the library's own store.

use std::path::Path;
use std::time::{Duration, Instant};

use netrunbook::dialogue::{self, Input};
use netrunbook::kb::KnowledgeBase;
use netrunbook::store::{SledStore, Store};
use netrunbook::vocab::ThreadKey;
use serde_yaml_ng::Value;

use crate::support::slack_emulator::TEAM_ID;

/// The shipped `intents/` directory.
pub fn shipped_intents() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("intents")
}

/// Write into `out` the shipped intents plus `factor - 1` copies of every section: new ids, headings
/// and titles, and new words in every term and signature (each word gets a suffix of its own per
/// copy, so the vocabulary, the lexicon and the signature set all grow `factor` times). Flows, links
/// and facts are kept. Returns the number of sections written.
pub fn scaled_intents(out: &Path, factor: usize) -> usize {
    std::fs::create_dir_all(out).expect("create the intents directory");
    let mut sections = 0;
    let mut entries: Vec<_> = std::fs::read_dir(shipped_intents())
        .expect("read intents/")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("read an intent file");
        std::fs::write(out.join(&name), &text).expect("write an intent file");
        if name.starts_with('_') {
            continue;
        }
        sections += 1;
        for k in 1..factor {
            let mut doc: Value = serde_yaml_ng::from_str(&text).expect("a shipped intent parses");
            let suffix = copy_suffix(k);
            let id = format!("{}-copy{k}", doc["id"].as_str().expect("an id"));
            doc["id"] = Value::String(id.clone());
            for field in ["heading", "title"] {
                if let Some(v) = doc[field].as_str() {
                    doc[field] = Value::String(format!("{v} (copy {k})"));
                }
            }
            if let Some(terms) = doc["match"]["terms"].as_mapping().cloned() {
                let mut renamed = serde_yaml_ng::Mapping::new();
                for (phrase, weight) in terms {
                    // YAML reads some terms as numbers or booleans (`503: 4`); the loader takes them as text
                    let phrase = match phrase {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        other => panic!("a term that is not a scalar: {other:?}"),
                    };
                    let words: Vec<String> = phrase.split_whitespace().map(|w| format!("{w}{suffix}")).collect();
                    renamed.insert(Value::String(words.join(" ")), weight);
                }
                doc["match"]["terms"] = Value::Mapping(renamed);
            }
            if let Some(sigs) = doc["match"]["signatures"].as_sequence_mut() {
                for s in sigs {
                    if let Some(p) = s["pattern"].as_str() {
                        s["pattern"] = Value::String(format!(r"(?:{p})\s*{suffix}"));
                    }
                }
            }
            let yaml = serde_yaml_ng::to_string(&doc).expect("serialise an intent");
            std::fs::write(out.join(format!("{id}.yaml")), yaml).expect("write a copied intent");
            sections += 1;
        }
    }
    KnowledgeBase::load_dir(out, &Default::default())
        .unwrap_or_else(|e| panic!("the scaled knowledge base loads: {e}"));
    sections
}

/// Letters only (`qb`, `qc`, ... `qbz`), so the words stay words to the tokenizer.
fn copy_suffix(k: usize) -> String {
    let mut s = String::from("q");
    let mut n = k;
    loop {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return s;
        }
    }
}

/// Write `n` conversations (each waiting for its first follow-up answer, as after a mention) into a
/// new store at `db` with the library's `SledStore`, flushed. Returns how long that took.
pub fn populate_store(db: &Path, n: usize) -> Duration {
    let started = Instant::now();
    let kb = KnowledgeBase::builtin().expect("the shipped knowledge base loads");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let step = dialogue::step(
        &kb,
        None,
        &Input::Message {
            text: "LoadBalancer service stuck with pending external IP on prod-dal10".into(),
            addressed: true,
        },
        now,
    );
    let conversation = step.state.expect("the question starts a conversation");
    let store = SledStore::open(db).expect("open a new store");
    for i in 0..n {
        let key = ThreadKey::new(TEAM_ID, format!("C0OLD{:04}", i % 1000), format!("1600000000.{i:06}"));
        store.put(&key, &conversation).expect("store a conversation");
    }
    store.flush().expect("flush the store");
    drop(store);
    started.elapsed()
}

/// Bytes on disk under `dir`.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        total += if p.is_dir() {
            disk_usage(&p)
        } else {
            entry.metadata().map(|m| m.len()).unwrap_or(0)
        };
    }
    total
}
