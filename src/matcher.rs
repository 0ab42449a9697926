//! The matcher: message text in, runbook sections ranked out, each with a score and the evidence that
//! earned it, or an abstention. Pure and infallible.
//!
//! Scoring is a weighted sum of evidence. Terms (canonical phrases, see `text/`) add their weight,
//! scaled down when several intents share the term and growing slowly with repetition; signatures
//! (regexes over the pasted text) add a large weight, so an exact error string beats loose keywords.
//! Off-topic words (storage, billing, IAM...) form a pseudo-section that, when it wins, makes the matcher
//! abstain. It also abstains when the best score is below [`ABSTAIN_BELOW`], and flags the answer as
//! ambiguous when the runner-up comes within [`AMBIGUOUS_RATIO`] of the best.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::sync::{Arc, OnceLock};

use regex::{Regex, RegexSet, RegexSetBuilder};

use crate::text::{ascii_word_boundaries, clean_slack, without_quiet_lines, Correction, Lexicon};

/// Signatures compiled into one automaton at most (the shipped knowledge base has 73: one set).
/// Building a set costs more than linear time in its patterns (the regex crate's literal prefilter):
/// the 730 signatures of a 10x knowledge base took 1.31 G instructions in one set, 0.66 G in sets of
/// 128 (callgrind, `netrunbook check`), so a large knowledge base gets several sets.
const SIGNATURES_PER_SET: usize = 128;

/// The indexes (across all `sets`, in order) of the patterns that match `text`.
fn matching<'a>(sets: &'a [RegexSet], text: &'a str) -> impl Iterator<Item = usize> + 'a {
    sets.iter()
        .scan(0, |offset, set| {
            let start = *offset;
            *offset += set.len();
            Some((start, set))
        })
        .flat_map(move |(start, set)| set.matches(text).into_iter().map(move |k| start + k))
}
/// Below this score the matcher abstains.
pub(crate) const ABSTAIN_BELOW: f64 = 3.0;
/// When `second / best` reaches this, the answer is ambiguous.
pub const AMBIGUOUS_RATIO: f64 = 0.8;
/// Abstain when the off-topic words score at least this share of the best section.
pub(crate) const OFF_TOPIC_RATIO: f64 = 1.0;
/// How many ranked sections an outcome keeps.
const KEEP: usize = 5;

/// A term of an intent (or of the off-topic list), already in canonical tokens.
#[derive(Debug, Clone)]
pub(crate) struct TermSpec {
    /// As written in the YAML, for evidence.
    pub label: String,
    pub tokens: Vec<String>,
    pub weight: f64,
}

/// An error signature: a regex over the message as the user saw it.
#[derive(Debug, Clone)]
pub(crate) struct SignatureSpec {
    pub pattern: String,
    pub weight: f64,
    /// Compiled on first use, to quote the matched text as evidence.
    regex: OnceLock<Option<Regex>>,
}

impl SignatureSpec {
    /// `pattern` must already be known to parse (the loader checks).
    pub(crate) fn new(pattern: String, weight: f64) -> SignatureSpec {
        SignatureSpec {
            pattern,
            weight,
            regex: OnceLock::new(),
        }
    }

    /// The first text this signature matches.
    fn find<'t>(&self, text: &'t str) -> Option<&'t str> {
        let re = self
            .regex
            .get_or_init(|| Regex::new(&ascii_word_boundaries(&self.pattern)).ok());
        re.as_ref()?.find(text).map(|m| m.as_str())
    }
}

/// What identifies one intent.
#[derive(Debug, Clone, Default)]
pub(crate) struct IntentFeatures {
    pub terms: Vec<TermSpec>,
    pub signatures: Vec<SignatureSpec>,
}

/// Who owns a term: an intent (by index) or the off-topic list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Owner {
    Intent(usize),
    OffTopic,
}

/// The compiled matcher.
#[derive(Debug)]
pub struct Matcher {
    intents: Vec<IntentFeatures>,
    off_topic: Vec<TermSpec>,
    /// Every token of a term -> (owner, index of the term in its owner's list).
    by_token: FxHashMap<String, Vec<(Owner, usize)>>,
    /// Effective weight of each term: its weight scaled by how many intents share it.
    effective: FxHashMap<(Owner, usize), f64>,
    /// All signatures of all intents, in automata of up to [`SIGNATURES_PER_SET`] each (one for the
    /// shipped knowledge base).
    signatures: Vec<RegexSet>,
    /// Index into the concatenated `signatures` -> (intent, signature index).
    signature_owner: Vec<(usize, usize)>,
    /// The learned layer (one class per intent, then "no section"), blended into the evidence; fit in
    /// the background after the load, so a match waits for it once.
    learned: Arc<OnceLock<crate::learned::Model>>,
}

/// Why an intent scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// The term or pattern as written in the knowledge base.
    pub label: String,
    /// For signatures, the text that matched (at most 120 characters).
    pub matched: Option<String>,
    pub count: usize,
    pub points: f64,
    /// For terms: the typo corrections the term was found through ("calcio" read as "calico").
    pub corrected: Vec<Correction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    Term,
    Signature,
    /// A term in a clause that rules its component out: negative points.
    RuledOut,
    /// The learned layer's vote.
    Learned,
}

/// One ranked section.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// Index into `KnowledgeBase::intents`.
    pub intent: usize,
    pub score: f64,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// One section clearly fits.
    Match,
    /// The best two are too close to tell apart.
    Ambiguous,
    /// Nothing fits well enough: say so rather than guess.
    Abstain,
}

/// The matcher's answer for one message.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchOutcome {
    pub verdict: Verdict,
    /// Sections with a positive score, best first (at most five).
    pub ranked: Vec<Ranked>,
    /// Score of the off-topic words.
    pub off_topic: f64,
    /// Every typo correction made while reading the message.
    pub corrections: Vec<Correction>,
}

impl MatchOutcome {
    /// The section to answer with, unless the matcher abstained.
    pub fn best(&self) -> Option<&Ranked> {
        match self.verdict {
            Verdict::Abstain => None,
            _ => self.ranked.first(),
        }
    }
}

/// A message after normalisation, shared by the matcher and slot extraction.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Slack markup removed, entities unescaped; original case.
    pub cleaned: String,
    /// Canonical tokens (of the telling lines only, in a paste of log lines: see `text::without_quiet_lines`).
    pub tokens: Vec<String>,
    /// Canonical tokens of clauses that rule a component out ("calico-node is fine"): their terms
    /// count against their sections.
    pub ruled_out: Vec<String>,
    /// The typo corrections made on the way to `tokens`.
    pub corrections: Vec<Correction>,
}

impl Prepared {
    pub(crate) fn new(lexicon: &Lexicon, raw: &str) -> Prepared {
        let cleaned = clean_slack(raw);
        let (tokens, ruled_out, corrections) = lexicon.ruled_out(&without_quiet_lines(&cleaned));
        Prepared {
            cleaned,
            tokens,
            ruled_out,
            corrections,
        }
    }
}

impl Matcher {
    /// Compile the matcher. Fails, naming the intent index of each culprit, when the signatures together
    /// are too large to compile or one of them matches empty text.
    pub(crate) fn new(intents: Vec<IntentFeatures>, off_topic: Vec<TermSpec>) -> Result<Matcher, Vec<(usize, String)>> {
        let mut by_token: FxHashMap<String, Vec<(Owner, usize)>> = FxHashMap::default();
        let mut sharing: HashMap<&[String], usize> = HashMap::new();
        for f in &intents {
            let mut mine: Vec<&[String]> = f.terms.iter().map(|t| t.tokens.as_slice()).collect();
            mine.sort();
            mine.dedup();
            for t in mine {
                *sharing.entry(t).or_default() += 1;
            }
        }
        let mut effective = FxHashMap::default();
        for (i, f) in intents.iter().enumerate() {
            for (j, t) in f.terms.iter().enumerate() {
                for tok in &t.tokens {
                    by_token.entry(tok.clone()).or_default().push((Owner::Intent(i), j));
                }
                let shared = sharing.get(t.tokens.as_slice()).copied().unwrap_or(1).max(1) as f64;
                let w = if t.weight > 0.0 {
                    t.weight / shared.sqrt()
                } else {
                    t.weight
                };
                effective.insert((Owner::Intent(i), j), w);
            }
        }
        for (j, t) in off_topic.iter().enumerate() {
            for tok in &t.tokens {
                by_token.entry(tok.clone()).or_default().push((Owner::OffTopic, j));
            }
            effective.insert((Owner::OffTopic, j), t.weight);
        }
        let mut patterns = Vec::new();
        let mut signature_owner = Vec::new();
        for (i, f) in intents.iter().enumerate() {
            for (j, s) in f.signatures.iter().enumerate() {
                patterns.push(s.pattern.clone());
                signature_owner.push((i, j));
            }
        }
        let patterns: Vec<String> = patterns.iter().map(|p| ascii_word_boundaries(p)).collect();
        let mut signatures = Vec::new();
        for (n, chunk) in patterns.chunks(SIGNATURES_PER_SET).enumerate() {
            let built = RegexSetBuilder::new(chunk)
                .size_limit(32 << 20)
                .dfa_size_limit(32 << 20)
                .build();
            match built {
                Ok(set) => signatures.push(set),
                Err(e) => {
                    let culprits = signature_owner[n * SIGNATURES_PER_SET..][..chunk.len()]
                        .iter()
                        .map(|&(i, _)| i)
                        .collect::<std::collections::BTreeSet<_>>();
                    return Err(culprits
                        .into_iter()
                        .map(|i| (i, format!("signatures do not compile together: {e}")))
                        .collect());
                }
            }
        }
        let empty: Vec<(usize, String)> = matching(&signatures, "")
            .map(|k| {
                let (i, j) = signature_owner[k];
                (
                    i,
                    format!("signature `{}` matches empty text", intents[i].signatures[j].pattern),
                )
            })
            .collect();
        if !empty.is_empty() {
            return Err(empty);
        }
        Ok(Matcher {
            intents,
            off_topic,
            by_token,
            effective,
            signatures,
            signature_owner,
            learned: Arc::new(OnceLock::from(crate::learned::Model::default())),
        })
    }

    /// Wait until the learned layer is fit (matches wait for it anyway; timing code waits first).
    pub fn wait_learned(&self) {
        self.learned.wait();
    }

    /// Blend the learned model `model` will hold into the evidence (see [`LEARNED_POINTS`]); matches
    /// wait until it does.
    pub(crate) fn set_learned(&mut self, model: Arc<OnceLock<crate::learned::Model>>) {
        self.learned = model;
    }

    /// Rank the sections for a prepared message.
    pub(crate) fn rank(&self, msg: &Prepared) -> MatchOutcome {
        let counts = self.term_hits(&msg.tokens);
        let mut scores: Vec<(f64, Vec<Evidence>)> = vec![(0.0, Vec::new()); self.intents.len()];
        let mut off_topic = 0.0;
        for ((owner, j), hit) in counts {
            let weight = self.effective[&(owner, j)];
            let points = if hit.exact > 0 {
                weight * repeat_factor(hit.exact)
            } else {
                weight * SCATTERED
            };
            match owner {
                Owner::OffTopic => off_topic += points,
                Owner::Intent(i) => {
                    scores[i].0 += points;
                    let term = &self.intents[i].terms[j];
                    scores[i].1.push(Evidence {
                        kind: EvidenceKind::Term,
                        label: term.label.clone(),
                        matched: None,
                        count: hit.exact.max(1),
                        points,
                        corrected: msg
                            .corrections
                            .iter()
                            .filter(|c| c.read.split(' ').any(|r| term.tokens.iter().any(|t| t == r)))
                            .cloned()
                            .collect(),
                    });
                }
            }
        }
        // a component ruled out ("calico-node is fine", "not DNS") counts against its section
        if !msg.ruled_out.is_empty() {
            for ((owner, j), _) in self.term_hits(&msg.ruled_out) {
                let weight = self.effective[&(owner, j)];
                if let (Owner::Intent(i), true) = (owner, weight > 0.0) {
                    let points = -weight * RULED_OUT;
                    scores[i].0 += points;
                    scores[i].1.push(Evidence {
                        kind: EvidenceKind::RuledOut,
                        label: self.intents[i].terms[j].label.clone(),
                        matched: None,
                        count: 1,
                        points,
                        corrected: Vec::new(),
                    });
                }
            }
        }
        // the learned layer: its most likely class, when it is sure enough, adds points to that section
        // or to "no section"
        if let Some(post) = self.learned.wait().posterior(&msg.tokens) {
            let (top, p) = post
                .iter()
                .copied()
                .enumerate()
                .fold((0, 0.0), |best, (c, p)| if p > best.1 { (c, p) } else { best });
            if p >= LEARNED_SURE {
                let points = LEARNED_POINTS * p;
                // alone below the abstention line, or to break a close call between two sections,
                // it must be surer
                let mut by_evidence: Vec<f64> = scores.iter().map(|s| s.0).collect();
                by_evidence.sort_by(|a, b| b.total_cmp(a));
                let close = by_evidence
                    .get(1)
                    .is_some_and(|s| *s >= by_evidence[0] * AMBIGUOUS_RATIO && *s > 0.0);
                match scores.get_mut(top) {
                    Some(s) if (s.0 < ABSTAIN_BELOW || close) && p < LEARNED_ALONE => {}
                    Some(s) => {
                        s.0 += points;
                        s.1.push(Evidence {
                            kind: EvidenceKind::Learned,
                            label: format!("learned layer (p = {p:.2})"),
                            matched: None,
                            count: 1,
                            points,
                            corrected: Vec::new(),
                        });
                    }
                    // "no section" adds to the off-topic score, at twice the weight
                    None => off_topic += points * LEARNED_NONE_FACTOR,
                }
            }
        }
        if !self.signature_owner.is_empty() {
            for k in matching(&self.signatures, &msg.cleaned) {
                let (i, j) = self.signature_owner[k];
                let sig = &self.intents[i].signatures[j];
                let matched = sig
                    .find(&msg.cleaned)
                    .map(|m| crate::text::truncate(m, 120).to_string());
                scores[i].0 += sig.weight;
                scores[i].1.push(Evidence {
                    kind: EvidenceKind::Signature,
                    label: sig.pattern.clone(),
                    matched,
                    count: 1,
                    points: sig.weight,
                    corrected: Vec::new(),
                });
            }
        }
        let mut ranked: Vec<Ranked> = scores
            .into_iter()
            .enumerate()
            .filter(|(_, (s, _))| *s > 0.0)
            .map(|(intent, (score, mut evidence))| {
                evidence.sort_by(|a, b| b.points.total_cmp(&a.points).then_with(|| a.label.cmp(&b.label)));
                Ranked {
                    intent,
                    score,
                    evidence,
                }
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.intent.cmp(&b.intent)));
        ranked.truncate(KEEP);
        let best = ranked.first().map_or(0.0, |r| r.score);
        let second = ranked.get(1).map_or(0.0, |r| r.score);
        let verdict = if best < ABSTAIN_BELOW || off_topic >= best * OFF_TOPIC_RATIO {
            Verdict::Abstain
        } else if second >= best * AMBIGUOUS_RATIO {
            Verdict::Ambiguous
        } else {
            Verdict::Match
        };
        MatchOutcome {
            verdict,
            ranked,
            off_topic,
            corrections: msg.corrections.clone(),
        }
    }

    /// Which terms occur, and how: contiguous occurrences counted, or all words within a short window.
    /// A term whose words are all part of a heavier (or equal) term of the same owner that also occurs does
    /// not count again (`calico` inside `calico kube controllers`), unless the heavier term's words are only
    /// scattered and earn less than the shorter term alone.
    fn term_hits(&self, tokens: &[String]) -> FxHashMap<(Owner, usize), Hit> {
        let mut positions: FxHashMap<&str, Vec<usize>> = FxHashMap::default();
        for (pos, tok) in tokens.iter().enumerate() {
            positions.entry(tok.as_str()).or_default().push(pos);
        }
        let mut hits: FxHashMap<(Owner, usize), Hit> = FxHashMap::default();
        for tok in positions.keys() {
            let Some(cands) = self.by_token.get(*tok) else { continue };
            for &(owner, j) in cands {
                if hits.contains_key(&(owner, j)) {
                    continue;
                }
                let toks = &self.term(owner, j).tokens;
                if let Some(hit) = find_term(toks, tokens, &positions) {
                    hits.insert((owner, j), hit);
                }
            }
        }
        let matched: Vec<(Owner, usize, bool)> = hits.iter().map(|(&(o, k), h)| (o, k, h.exact > 0)).collect();
        hits.retain(|&(owner, j), _| {
            let t = self.term(owner, j);
            let w = self.effective[&(owner, j)];
            w < 0.0
                || !matched.iter().any(|&(o, k, exact)| {
                    o == owner && k != j && {
                        let other = self.term(o, k);
                        // what the heavier term earns: its words only scattered ("firewall in customer
                        // account" for `customer firewall`) earn less than the word alone
                        let wo = self.effective[&(o, k)] * if exact { 1.0 } else { SCATTERED };
                        wo >= w
                            && other.tokens.len() > t.tokens.len()
                            && t.tokens.iter().all(|x| other.tokens.contains(x))
                    }
                })
        });
        hits
    }

    fn term(&self, owner: Owner, j: usize) -> &TermSpec {
        match owner {
            Owner::Intent(i) => &self.intents[i].terms[j],
            Owner::OffTopic => &self.off_topic[j],
        }
    }
}

/// How a term occurred in a message.
#[derive(Debug, Clone, Copy, Default)]
struct Hit {
    /// Contiguous, in-order occurrences.
    exact: usize,
}

/// The learned layer votes when its most likely class has at least this posterior...
pub(crate) const LEARNED_SURE: f64 = 0.5;
/// ...with this many points times the posterior (a strong term is 5, a signature 8-12)...
///
/// This and [`LEARNED_NONE_FACTOR`] were chosen by a grid over the four learned-layer constants
/// (sure 0.4-0.6, points 3-10, none factor 1.5-6, alone 0.6-0.9), scored on blind sets A-D
/// (`tests/data/messages_[a-d].jsonl`, which the layer is not fit on): 95.0 % -> 96.8 % (BENCHMARKS.md).
pub(crate) const LEARNED_POINTS: f64 = 8.0;
/// A vote for "no section" counts this many times more, against the off-topic ratio.
pub(crate) const LEARNED_NONE_FACTOR: f64 = 3.0;
/// ...and when the evidence alone would abstain, only with at least this posterior (0.8 until session
/// 6: "what does the runbook say?" alone reached 0.81 for an alert section once the layer was fit on
/// messages that ask for "the runbook" of an alert; a grid on two unseen tuning sets put 0.9 level or
/// better).
pub(crate) const LEARNED_ALONE: f64 = 0.9;

/// A term in a clause that rules its component out counts this much of its weight against its section.
const RULED_OUT: f64 = 0.75;

/// Words of a term found near each other but not as the exact phrase count this much of its weight.
const SCATTERED: f64 = 0.6;
/// How much longer than the term the window holding all its words may be.
const WINDOW_SLACK: usize = 2;

fn find_term(term: &[String], tokens: &[String], positions: &FxHashMap<&str, Vec<usize>>) -> Option<Hit> {
    let lists: Vec<&Vec<usize>> = term.iter().map(|t| positions.get(t.as_str())).collect::<Option<_>>()?;
    let exact = lists[0]
        .iter()
        .filter(|&&p| tokens.len() - p >= term.len() && tokens[p..p + term.len()] == *term)
        .count();
    if exact > 0 {
        return Some(Hit { exact });
    }
    // every word within a window of term.len() + WINDOW_SLACK tokens, in any order
    let span = term.len() + WINDOW_SLACK;
    let near = lists[0].iter().any(|&p| {
        lists[1..]
            .iter()
            .all(|l| l.iter().any(|&q| q + span > p && p + span > q))
    });
    near.then_some(Hit { exact: 0 })
}

/// Repeating a term helps a little, not linearly: a 40 KB log naming calico-node 200 times should not
/// drown a single exact error line.
fn repeat_factor(count: usize) -> f64 {
    1.0 + 0.25 * (count as f64).ln()
}

#[cfg(test)]
mod tests {

    #[test]
    fn matches_across_several_signature_sets_keep_their_global_index() {
        let sets = [
            RegexSet::new([r"alpha", r"beta"]).unwrap(),
            RegexSet::new([r"gamma"]).unwrap(),
            RegexSet::new([r"delta", r"alpha\w+"]).unwrap(),
        ];
        let hits: Vec<usize> = matching(&sets, "alphabet soup with gamma rays").collect();
        assert_eq!(hits, [0, 2, 4]);
        assert_eq!(matching(&sets, "nothing").count(), 0);
    }

    use super::*;
}
