//! Evaluating the matcher on a labelled set (`{"q": ..., "section": heading | "NONE", "kind": ...}` per
//! line): accuracy, per-kind and per-section precision and recall, and the misses. An abstention is correct
//! only for `NONE`. Lines with an empty `section` (as `report --export` writes them, for a person to
//! label) are skipped and counted.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::kb::KnowledgeBase;

/// One labelled message.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub q: String,
    /// The heading, `NONE`, or empty when nobody labelled the line yet.
    #[serde(default)]
    pub section: String,
    /// What sort of message it is (paraphrase, typo, negation, ...), for the per-kind figures.
    #[serde(default)]
    pub kind: Option<String>,
}

/// A wrong answer.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub line: usize,
    pub q: String,
    pub expected: String,
    /// The heading answered, or `NONE` when the matcher abstained.
    pub got: String,
    pub score: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SectionStats {
    pub expected: usize,
    pub predicted: usize,
    pub correct: usize,
    pub precision: f64,
    pub recall: f64,
}

/// Accuracy of one kind of message.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindStats {
    pub total: usize,
    pub correct: usize,
    pub accuracy: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub total: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Lines with no label yet, not counted.
    pub unlabelled: usize,
    pub kinds: BTreeMap<String, KindStats>,
    pub sections: BTreeMap<String, SectionStats>,
    pub misses: Vec<Miss>,
}

/// Parse a JSONL labelled set; errors name the line.
pub fn parse_cases(text: &str) -> Result<Vec<(usize, Case)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: Case = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push((i + 1, case));
    }
    Ok(out)
}

/// Run the matcher over the cases.
pub fn evaluate(kb: &KnowledgeBase, cases: &[(usize, Case)]) -> Report {
    let mut sections: BTreeMap<String, SectionStats> = BTreeMap::new();
    let mut kinds: BTreeMap<String, KindStats> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut correct = 0;
    let unlabelled = cases.iter().filter(|(_, c)| c.section.trim().is_empty()).count();
    let cases: Vec<&(usize, Case)> = cases.iter().filter(|(_, c)| !c.section.trim().is_empty()).collect();
    let headings: HashMap<String, &str> = kb
        .intents
        .iter()
        .map(|i| (crate::kb::heading_key(&i.heading), i.heading.as_str()))
        .collect();
    for (line, case) in cases.iter().map(|c| (&c.0, &c.1)) {
        let outcome = kb.match_text(&case.q);
        let (got, score) = match outcome.best() {
            Some(r) => (kb.intents[r.intent].heading.clone(), r.score),
            None => ("NONE".to_string(), outcome.ranked.first().map_or(0.0, |r| r.score)),
        };
        // headings compare without backticks, quotes and case, so `calico-node` and `` `calico-node` `` meet
        let expected = headings
            .get(&crate::kb::heading_key(&case.section))
            .map_or(case.section.clone(), |h| h.to_string());
        sections.entry(expected.clone()).or_default().expected += 1;
        sections.entry(got.clone()).or_default().predicted += 1;
        let kind = kinds
            .entry(case.kind.clone().unwrap_or_else(|| "-".into()))
            .or_default();
        kind.total += 1;
        if got == expected {
            correct += 1;
            kind.correct += 1;
            sections.entry(got).or_default().correct += 1;
        } else {
            misses.push(Miss {
                line: *line,
                q: case.q.clone(),
                expected,
                got,
                score,
            });
        }
    }
    for s in sections.values_mut() {
        s.precision = ratio(s.correct, s.predicted);
        s.recall = ratio(s.correct, s.expected);
    }
    for k in kinds.values_mut() {
        k.accuracy = ratio(k.correct, k.total);
    }
    Report {
        total: cases.len(),
        correct,
        accuracy: ratio(correct, cases.len()),
        unlabelled,
        kinds,
        sections,
        misses,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}
