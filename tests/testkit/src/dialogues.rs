//! Multi-turn dialogues as data: `tests/data/dialogues_a.jsonl` and `dialogues_b.jsonl` (the blind
//! sets) and `tests/data/flows.jsonl` (the flow table: the free-text answers the trust issue found
//! misread, each pinned). One JSON object per line:
//!
//! ```json
//! {"id": "...", "kind": "...", "turns": [{"say": "...", "must": [], "must_any": [], "must_not": []}]}
//! ```
//!
//! The first turn is a mention of the bot; the later ones are replies in its thread that do not
//! mention it. Each turn's checks apply to the bot's reply to that turn: it contains every `must`, at
//! least one `must_any` (when there are any) and no `must_not`. `core` replays the dialogues through
//! the dialogue engine, `e2e` the flow table through Slack; [`Turn::problems`] is the one check.

use std::path::Path;

use serde::Deserialize;

/// One conversation.
#[derive(Clone, Debug, Deserialize)]
pub struct Dialogue {
    pub id: String,
    /// What the dialogue exercises (a set's breakdown groups by it).
    #[serde(default)]
    pub kind: String,
    pub turns: Vec<Turn>,
}

/// One thing the person says, and what the bot's reply to it must (not) show.
#[derive(Clone, Debug, Deserialize)]
pub struct Turn {
    pub say: String,
    #[serde(default)]
    pub must: Vec<String>,
    #[serde(default)]
    pub must_any: Vec<String>,
    #[serde(default)]
    pub must_not: Vec<String>,
}

/// Whether checks compare letter case: the flow table's do, the blind sets' (written by hand, without
/// the bot's wording) do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Exact,
    Folded,
}

impl Turn {
    /// What is wrong with `reply` as the answer to this turn (nothing: empty).
    pub fn problems(&self, reply: &str, case: Case) -> Vec<String> {
        let fold = |s: &str| match case {
            Case::Exact => s.to_string(),
            Case::Folded => s.to_lowercase(),
        };
        let reply = fold(reply);
        let mut out = Vec::new();
        for m in &self.must {
            if !reply.contains(&fold(m)) {
                out.push(format!("lacks {m:?}"));
            }
        }
        if !self.must_any.is_empty() && !self.must_any.iter().any(|m| reply.contains(&fold(m))) {
            out.push(format!("has none of {:?}", self.must_any));
        }
        for m in &self.must_not {
            if reply.contains(&fold(m)) {
                out.push(format!("has {m:?}"));
            }
        }
        out
    }
}

/// Every dialogue of a JSON-lines file (blank lines skipped); panics naming the line of a bad one.
pub fn load(path: &Path) -> Vec<Dialogue> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1)))
        .collect()
}
