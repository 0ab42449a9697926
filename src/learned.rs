//! The learned layer: a multinomial naive Bayes model over a message's canonical words and word pairs,
//! fit when the knowledge base loads from the knowledge base's own text (headings, titles, summaries,
//! terms, flow examples, off-topic words) and the labelled sets compiled into the binary
//! ([`TRAINING`]). The matcher blends its posterior into the weighted evidence (see `matcher.rs`), so a
//! message described in other words than the runbook's still finds its section, and small talk about
//! storage or a home router leans to "none". Pure and deterministic: the same knowledge base and
//! training text always give the same model.

use rustc_hash::FxHashMap;

/// Labelled messages (`{"q": ..., "section": heading | "NONE"}` per line) the model is fit on,
/// compiled in at build time.
pub(crate) const TRAINING: &[(&str, &str)] = &[
    ("labelled.jsonl", include_str!("../tests/data/labelled.jsonl")),
    ("holdout.jsonl", include_str!("../tests/data/holdout.jsonl")),
    ("holdout2.jsonl", include_str!("../tests/data/holdout2.jsonl")),
    ("tuning.jsonl", include_str!("../tests/data/tuning.jsonl")),
    (
        "nearmiss_tuning.jsonl",
        include_str!("../tests/data/nearmiss_tuning.jsonl"),
    ),
    ("tuning3.jsonl", include_str!("../tests/data/tuning3.jsonl")),
    ("tuning4.jsonl", include_str!("../tests/data/tuning4.jsonl")),
    ("tuning5.jsonl", include_str!("../tests/data/tuning5.jsonl")),
    ("tuning6.jsonl", include_str!("../tests/data/tuning6.jsonl")),
    ("tuning7.jsonl", include_str!("../tests/data/tuning7.jsonl")),
    ("tuning8.jsonl", include_str!("../tests/data/tuning8.jsonl")),
];

/// Additive smoothing of the word counts.
const ALPHA: f64 = 0.2;

/// A fitted model: for each feature, its log-likelihood under each class.
#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    classes: usize,
    /// Feature -> log P(feature | class), per class.
    likelihood: FxHashMap<String, Vec<f32>>,
}

/// The words and adjacent word pairs of a canonical token stream, each once.
pub(crate) fn features(tokens: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tokens.to_vec();
    out.extend(tokens.windows(2).map(|w| format!("{} {}", w[0], w[1])));
    out.sort();
    out.dedup();
    out
}

impl Model {
    /// Fit on `(features, class)` documents over `classes` classes.
    pub(crate) fn fit(docs: &[(Vec<String>, usize)], classes: usize) -> Model {
        let mut counts: FxHashMap<&str, Vec<u32>> = FxHashMap::default();
        let mut totals = vec![0u64; classes];
        for (features, class) in docs {
            for f in features {
                counts.entry(f.as_str()).or_insert_with(|| vec![0; classes])[*class] += 1;
                totals[*class] += 1;
            }
        }
        let vocabulary = counts.len().max(1) as f64;
        let denominators: Vec<f64> = totals.iter().map(|t| *t as f64 + ALPHA * vocabulary).collect();
        let likelihood = counts
            .into_iter()
            .map(|(f, per_class)| {
                let logs = per_class
                    .iter()
                    .zip(&denominators)
                    .map(|(c, d)| ((*c as f64 + ALPHA) / d).ln() as f32)
                    .collect();
                (f.to_string(), logs)
            })
            .collect();
        Model { classes, likelihood }
    }

    /// The posterior over the classes for a message's canonical tokens (its [`features`], uniform
    /// prior); `None` when no feature was seen in training. Builds no feature strings but one buffer.
    pub(crate) fn posterior(&self, tokens: &[String]) -> Option<Vec<f64>> {
        if self.classes == 0 {
            return None;
        }
        let mut log = vec![0.0f64; self.classes];
        let mut seen = 0;
        let mut add = |f: &str| {
            if let Some(l) = self.likelihood.get(f) {
                seen += 1;
                for (acc, x) in log.iter_mut().zip(l) {
                    *acc += f64::from(*x);
                }
            }
        };
        let mut words: Vec<&str> = tokens.iter().map(String::as_str).collect();
        words.sort_unstable();
        words.dedup();
        for w in words {
            add(w);
        }
        let mut pairs: Vec<(&str, &str)> = tokens.windows(2).map(|w| (w[0].as_str(), w[1].as_str())).collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut key = String::new();
        for (a, b) in pairs {
            key.clear();
            key.push_str(a);
            key.push(' ');
            key.push_str(b);
            add(&key);
        }
        if seen == 0 {
            return None;
        }
        let max = log.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = log.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        Some(exp.into_iter().map(|e| e / sum).collect())
    }

    /// How many distinct features the model knows.
    #[cfg(test)]
    pub(crate) fn size(&self) -> usize {
        self.likelihood.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(words: &str, class: usize) -> (Vec<String>, usize) {
        let toks: Vec<String> = words.split_whitespace().map(String::from).collect();
        (features(&toks), class)
    }

    #[test]
    fn it_learns_which_words_point_where() {
        let m = Model::fit(
            &[
                doc("name resolution fails lookup timeout", 0),
                doc("lookup of service names fails", 0),
                doc("external ip pending service", 1),
                doc("no external address for the service", 1),
            ],
            2,
        );
        let p = m.posterior(&["lookup".into(), "fails".into()]).unwrap();
        assert!(p[0] > 0.8, "{p:?}");
        let p = m.posterior(&["external".into(), "address".into()]).unwrap();
        assert!(p[1] > 0.8, "{p:?}");
        assert!(m.posterior(&["unknown".into()]).is_none());
        assert!(m.size() > 10);
    }

    #[test]
    fn the_training_sets_are_compiled_in() {
        assert!(TRAINING.iter().all(|(_, text)| text.lines().count() > 100));
    }
}
