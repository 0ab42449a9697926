//! What the learned layer is taught at a load: the lessons gathered from the knowledge base and the
//! labelled sets compiled into the binary, and the fit (run in a background thread by the load).

use std::collections::HashMap;

use serde::Deserialize;

use crate::kb::Intent;
use crate::learned;
use crate::matcher::{IntentFeatures, TermSpec};
use crate::text::Lexicon;

/// What the learned layer is fit on: one class per intent and one for "no section" (the last): each
/// intent's own words (heading, title, summary, terms by weight, flow examples), the off-topic words, and
/// the labelled sets compiled into the binary (lines whose section is no intent of this knowledge base
/// are left out). Documents already in canonical tokens, and texts still to tokenise.
pub(super) struct Lessons {
    classes: usize,
    docs: Vec<(Vec<String>, usize)>,
    texts: Vec<(String, usize)>,
}

pub(super) fn lessons(intents: &[Intent], features: &[IntentFeatures], off_topic: &[TermSpec]) -> Lessons {
    let none = intents.len();
    let mut docs: Vec<(Vec<String>, usize)> = Vec::new();
    let mut texts: Vec<(String, usize)> = Vec::new();
    for (i, intent) in intents.iter().enumerate() {
        texts.push((format!("{}. {}", intent.heading, intent.title), i));
        texts.push((intent.summary.clone(), i));
        for t in features.get(i).map(|f| f.terms.as_slice()).unwrap_or_default() {
            if t.weight > 0.0 {
                let f = learned::features(&t.tokens);
                for _ in 0..(t.weight.round() as usize).clamp(1, 5) {
                    docs.push((f.clone(), i));
                }
            }
        }
        for ex in intent.flow.iter().flat_map(|f| &f.examples) {
            if let Some(first) = ex.say.first() {
                texts.push((first.clone(), i));
            }
        }
    }
    for t in off_topic {
        docs.push((learned::features(&t.tokens), none));
    }
    let by_heading: HashMap<String, usize> = intents
        .iter()
        .enumerate()
        .map(|(i, it)| (crate::kb::heading_key(&it.heading), i))
        .collect();
    for (_, text) in learned::TRAINING {
        for line in text.lines() {
            #[derive(Deserialize)]
            struct Labelled {
                q: String,
                #[serde(default)]
                section: String,
            }
            let Ok(l) = serde_json::from_str::<Labelled>(line) else {
                continue;
            };
            let class = if l.section == "NONE" {
                Some(none)
            } else {
                by_heading.get(&crate::kb::heading_key(&l.section)).copied()
            };
            if let Some(c) = class {
                texts.push((l.q, c));
            }
        }
    }
    Lessons {
        classes: none + 1,
        docs,
        texts,
    }
}

/// Fit the learned layer on `lessons`, tokenising its texts across the cores (most of the work).
pub(super) fn fit_learned(lexicon: &Lexicon, lessons: Lessons) -> learned::Model {
    let Lessons {
        classes,
        mut docs,
        texts,
    } = lessons;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let chunk = texts.len().div_ceil(threads).max(1);
    let tokenised: Vec<(Vec<String>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut cache = rustc_hash::FxHashMap::default();
                    part.iter()
                        .map(|(q, c)| {
                            let toks = lexicon.tokens_with(&crate::text::clean_slack(q), &mut cache);
                            (learned::features(&toks), *c)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    docs.extend(tokenised);
    learned::Model::fit(&docs, classes)
}
