//! Generated inputs for the cost-growth runs: a knowledge base `factor` times the shipped one (the
//! `load` test and `cargo run --example scaled_kb`), and the size of a store on disk.

use std::path::Path;

use serde_yaml_ng::Value;

/// Write into `out` the intents of `intents` (the shipped `intents/` directory) plus `factor - 1`
/// copies of every section: new ids, headings and titles, and new words in every term and signature
/// (each word gets a suffix of its own per copy, so the vocabulary, the lexicon and the signature set
/// all grow `factor` times). Flows, links and facts are kept. Returns the number of sections written.
/// The caller loads the result with netrunbook to prove it valid.
pub fn scaled_intents(intents: &Path, out: &Path, factor: usize) -> usize {
    std::fs::create_dir_all(out).expect("create the intents directory");
    let mut sections = 0;
    let mut entries: Vec<_> = std::fs::read_dir(intents)
        .expect("read the intents directory")
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
