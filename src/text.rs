//! Text normalisation shared by the matcher and the dialogue engine: Slack markup removal, noise
//! stripping (timestamps, IPs, UUIDs, pod hashes), tokenising, light stemming, typo correction and
//! vocabulary canonicalisation. Pure: no I/O, cannot fail.
//!
//! The same pipeline turns both the knowledge base's terms and users' messages into token streams, so a
//! term written once in canonical form matches every spelling the vocabulary and the stemmer fold into it.

use std::borrow::Cow;

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::LazyLock;

use regex::Regex;

/// Messages longer than this many bytes are cut (at a char boundary) before matching. A 40 KB paste fits;
/// the cap bounds the work done for anything larger.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// Cut `s` to at most `max` bytes without splitting a character.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

static SLACK_MARKUP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<([^<>\n]+)>").unwrap());
static EMOJI: LazyLock<Regex> = LazyLock::new(|| Regex::new(r":[a-z][a-z0-9_+\-']*:").unwrap());

/// Turn Slack's wire text into what the user saw: mentions and `<!channel>` dropped, channel and link
/// labels kept (with the URL), emoji codes and code fences removed, `&lt;` `&gt;` `&amp;` unescaped.
pub fn clean_slack(raw: &str) -> String {
    let raw = truncate(raw, MAX_INPUT_BYTES);
    let replaced = SLACK_MARKUP.replace_all(raw, |caps: &regex::Captures<'_>| {
        let inner = &caps[1];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        if target.starts_with('@') || target.starts_with('!') {
            // user mention, @channel/@here, dates: none of them carry meaning for routing
            String::from(" ")
        } else if target.starts_with('#') {
            format!(" {} ", label.unwrap_or(""))
        } else {
            match label {
                Some(l) => format!(" {l} {target} "),
                None => format!(" {target} "),
            }
        }
    });
    let no_emoji = EMOJI.replace_all(&replaced, " ");
    no_emoji
        .replace("```", "\n")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A word read as another: a typo ("calcio" as "calico") or a word typed without its vowels ("wrkr").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Correction {
    /// As the person typed it (lower case, stemmed).
    pub typed: String,
    /// The knowledge base's word it was read as (its words, space-separated, for a phrase typed as one).
    pub read: String,
}

/// A line of pasted output that only reports progress or health: klog's `I` lines, `[INFO]`,
/// `level=info` (logfmt or JSON), an `INFO` column, kubectl's `Normal` events.
static QUIET_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        ^\s*I\d{4}\s+\d{1,2}:\d{2}:\d{2}                 # klog: I1130 04:12:31.000001
      | (?:^|\s)Normal\s{2,}\S                          # kubectl describe / get events
      | \[(?:INFO|DEBUG|TRACE)\]
      | (?-u:\b)level=(?:info|debug|trace)(?-u:\b)
      | "level"\s*:\s*"(?:info|debug|trace)"
      | \s(?:INFO|DEBUG|TRACE)\s
    "#,
    )
    .unwrap()
});
/// A paste needs at least this many quiet lines before they are set aside.
const QUIET_LINES_MIN: usize = 3;

/// `cleaned` without its quiet log lines (see [`QUIET_LINE`]) when it also has other lines: in 40 KB of
/// kubelet log, two hundred `Probe succeeded ... ibm-cloud-provider-ip` lines are not evidence that
/// the load balancer is the problem; the one error line and the person's own words are. A paste of
/// quiet lines only is kept whole. Signatures still read the whole text.
pub(crate) fn without_quiet_lines(cleaned: &str) -> Cow<'_, str> {
    if !cleaned.contains('\n') {
        return Cow::Borrowed(cleaned);
    }
    let (mut quiet, mut other) = (0, 0);
    for line in cleaned.lines().filter(|l| !l.trim().is_empty()) {
        if QUIET_LINE.is_match(line) {
            quiet += 1;
        } else {
            other += 1;
        }
    }
    if quiet < QUIET_LINES_MIN || other == 0 {
        return Cow::Borrowed(cleaned);
    }
    let kept: Vec<&str> = cleaned.lines().filter(|l| !QUIET_LINE.is_match(l)).collect();
    Cow::Owned(kept.join("\n"))
}

/// Common English and Kubernetes words that are never typo-corrected into knowledge-base terms, even
/// when they are one letter away from one ("notes" is not "nodes").
const PROTECTED_WORDS: &str = "a about above after again against all also am an and any are as at be \
because been before being below between both but by can cannot could did do does doing down during each \
few for from further had has have having he her here hers him his how i if in into is it its itself just \
me more most my no nor not now of off on once only or other our out over own same she should so some \
such than that the their them then there these they this those through to too under until up very was we \
were what when where which while who whom why will with would you your yours get got getting give gave \
go goes going gone make made need needs see seen seem seems still try tried trying use used using want \
wanted way well work worked working works yes yeah yep nope ok okay please thanks thank hi hello hey \
issue issues problem problems error errors fail failed failing failure help know like look looks looked \
new old one two three four five time times today yesterday tomorrow week day days hour hours minute \
minutes second seconds since ago again back customer customers ticket tickets team teams user users \
notes note mode model modes code codes data date dates case cases name names line lines list lists \
page pages post posts host hosts port ports part parts rate rates role roles rule rules size state states \
status store stores test tests text type types value values version versions watch zone zones region \
reload reboot restart restarted replace replaced update updated upgrade upgraded delete deleted create \
created running pending ready true false none null nil unknown warning info debug normal reason message \
event events kind spec metadata labels annotations namespace namespaces container containers image images \
deploy deployment deployments pod pods node nodes service services cluster clusters worker workers \
public private internal external ingress egress route routes router traffic request requests response \
latency slow fast down up intermittent random sometimes always never anyone someone something anything \
nothing everything thing things right wrong sure maybe because where which whose while";

/// Normalises text into canonical tokens: the one pipeline every term, slot word and message goes through.
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    /// Stemmed token sequence of a vocabulary variant -> stemmed tokens of its canonical phrase.
    synonyms: FxHashMap<Vec<String>, Vec<String>>,
    /// Longest variant length in tokens, to bound the synonym scan.
    max_variant_len: usize,
    /// First tokens of every variant: the synonym scan skips every other position at once.
    variant_starts: FxHashSet<String>,
    /// Every stemmed token the knowledge base knows (terms, options, canonical phrases and variants).
    known: FxHashSet<String>,
    /// Words never corrected (stemmed).
    protected: FxHashSet<String>,
    /// Deletion index for typo correction: a word with one or two letters deleted -> known words.
    deletes: FxHashMap<String, Vec<String>>,
    /// Consonant skeletons of the known words ("calico" -> "clc"), and of those with one letter
    /// deleted, -> known words: "clco nde crshlp" is typed without vowels.
    skeletons: FxHashMap<String, Vec<String>>,
    /// Canonical tokens of the components a clause can rule out (see [`Lexicon::ruled_out`]).
    healthy_components: Vec<Vec<String>>,
    negated_components: Vec<Vec<String>>,
    /// Phrases of languages written without spaces, found inside any run of text and read as the
    /// English phrase they stand for (see [`Lexicon::set_translations`]).
    translations: Option<Translations>,
    /// Length in characters of the longest known word: a longer token is more than two slips away
    /// from every known word, so it is never corrected (and never costs the cubic deletion search).
    longest_known: usize,
    /// Phrases of several words typed as one ("calicokubecontrollers", an alert name as Prometheus
    /// names it), as one stemmed token -> the phrase's tokens.
    compounds: FxHashMap<String, Vec<String>>,
    /// The compounds by their first [`COMPOUND_PREFIX`] letters: the candidates a long unknown word is
    /// compared with, so "CustomerOpenVPNSeverUnavailble" is read too.
    compound_prefixes: FxHashMap<String, Vec<String>>,
}

/// A phrase typed without spaces is read as its words only from this many letters: shorter joins
/// ("noip") are too easily another word.
const COMPOUND_MIN: usize = 8;
/// A misspelt compound is looked for among the compounds sharing its first letters (a slip there is
/// rare; comparing with every compound would cost each long unknown word of a paste tens of µs)...
const COMPOUND_PREFIX: usize = 5;
/// ...and read as one when at most one letter in this many differs.
const COMPOUND_LETTERS_PER_SLIP: usize = 8;

/// The automaton over the foreign spellings, and the English (space-padded) of each.
#[derive(Debug, Clone)]
struct Translations {
    automaton: aho_corasick::AhoCorasick,
    english: Vec<String>,
}

impl Lexicon {
    /// Build from `(canonical, variants)` pairs and every phrase the knowledge base will match.
    pub(crate) fn new<'a>(
        synonyms: impl IntoIterator<Item = (&'a str, &'a [String])>,
        phrases: impl IntoIterator<Item = &'a str>,
    ) -> Lexicon {
        let mut lex = Lexicon {
            protected: PROTECTED_WORDS.split_whitespace().map(stem).collect(),
            ..Lexicon::default()
        };
        for (canonical, variants) in synonyms {
            let canon = raw_tokens(canonical);
            lex.known.extend(canon.iter().cloned());
            // the canonical phrase maps to itself, so a shorter variant inside it cannot rewrite it
            lex.max_variant_len = lex.max_variant_len.max(canon.len());
            lex.variant_starts.extend(canon.first().cloned());
            lex.synonyms.insert(canon.clone(), canon.clone());
            lex.add_compound(canonical, &canon);
            for v in variants {
                let toks = raw_tokens(v);
                if toks.is_empty() || toks == canon {
                    continue;
                }
                if toks.len() >= 2 {
                    lex.add_compound(v, &canon);
                }
                lex.known.extend(toks.iter().cloned());
                lex.max_variant_len = lex.max_variant_len.max(toks.len());
                lex.variant_starts.insert(toks[0].clone());
                lex.synonyms.insert(toks, canon.clone());
            }
        }
        for p in phrases {
            let toks = raw_tokens(p);
            lex.known.extend(toks.iter().cloned());
            lex.add_compound(p, &toks);
        }
        let known: Vec<String> = lex.known.iter().cloned().collect();
        lex.longest_known = known.iter().map(|w| w.chars().count()).max().unwrap_or(0);
        for word in known {
            if word.chars().count() < 5 || word.chars().any(|c| c.is_ascii_digit()) {
                continue;
            }
            for d in deletions(&word, max_distance(&word)) {
                lex.deletes.entry(d).or_default().push(word.clone());
            }
        }
        for key in lex.compounds.keys() {
            let prefix: String = key.chars().take(COMPOUND_PREFIX).collect();
            lex.compound_prefixes.entry(prefix).or_default().push(key.clone());
        }
        for list in lex.compound_prefixes.values_mut() {
            list.sort();
        }
        for list in lex.deletes.values_mut() {
            list.sort();
            list.dedup();
        }
        for word in lex
            .known
            .iter()
            .filter(|w| w.chars().count() >= 3 && w.chars().all(|c| c.is_ascii_alphabetic()))
        {
            let sk = skeleton(word);
            if sk.chars().count() < 2 {
                continue;
            }
            let mut keys = vec![sk.clone()];
            if sk.chars().count() >= 5 {
                keys.extend(deletions(&sk, 1));
            }
            for k in keys {
                lex.skeletons.entry(k).or_default().push(word.clone());
            }
        }
        for list in lex.skeletons.values_mut() {
            list.sort();
            list.dedup();
        }
        lex
    }

    /// `phrase` (of several words, read as `tokens`) typed as one word is read as `tokens` too.
    fn add_compound(&mut self, phrase: &str, tokens: &[String]) {
        let words = raw_tokens(phrase);
        if words.len() < 2 || words.iter().any(|w| w.chars().any(|c| c.is_ascii_digit())) {
            return;
        }
        let joined: String = phrase.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect();
        if joined.chars().count() >= COMPOUND_MIN && joined.is_ascii() {
            self.compounds.entry(stem(&joined)).or_insert_with(|| tokens.to_vec());
        }
    }

    /// Read each of `translations`' foreign spellings (Japanese, Chinese: no spaces between words) as
    /// its English phrase wherever it appears: "コンソールにアクセスできません" holds "console" and
    /// "access". The longest spelling wins where two overlap.
    pub(crate) fn set_translations<'a>(&mut self, translations: impl IntoIterator<Item = (&'a str, &'a [String])>) {
        let mut patterns = Vec::new();
        let mut english = Vec::new();
        for (phrase, spellings) in translations {
            for s in spellings.iter().filter(|s| !s.trim().is_empty()) {
                patterns.push(s.to_lowercase());
                english.push(format!(" {} ", phrase.to_lowercase()));
            }
        }
        if patterns.is_empty() {
            self.translations = None;
            return;
        }
        let automaton = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("plain string patterns always build");
        self.translations = Some(Translations { automaton, english });
    }

    /// `text` with the translations' spellings replaced by their English (ASCII text is returned as is).
    fn translate(&self, text: String) -> String {
        match &self.translations {
            Some(t) if !text.is_ascii() => t.automaton.replace_all(&text, &t.english),
            _ => text,
        }
    }

    /// Canonical tokens of already-clean text (terms and slot words from the knowledge base).
    pub(crate) fn canonical(&self, text: &str) -> Vec<String> {
        drop_stopwords(self.apply_synonyms(raw_tokens(text)))
    }

    /// Canonical tokens of a user's message: noise stripped and typos corrected first.
    pub fn tokens(&self, cleaned: &str) -> Vec<String> {
        self.tokens_with(cleaned, &mut FxHashMap::default())
    }

    /// [`Lexicon::tokens`], keeping the typo corrections made in `cache` for the next text (fitting the
    /// learned layer reads thousands of messages that share their unknown words).
    pub(crate) fn tokens_with(&self, cleaned: &str, cache: &mut FxHashMap<String, Option<String>>) -> Vec<String> {
        let denoised = self.translate(strip_noise(cleaned));
        let mut out = Vec::new();
        for tok in raw_tokens(&denoised) {
            if tok.chars().any(|c| c.is_ascii_digit()) && tok.chars().any(|c| c.is_alphabetic()) {
                // hashes, ids, zones (7xk2p, dal10): noise unless the knowledge base names them (k8s, ipv4)
                if self.known.contains(&tok) {
                    out.push(tok);
                }
                continue;
            }
            if self.known.contains(&tok) || self.protected.contains(&tok) {
                out.push(tok);
                continue;
            }
            let read = cache.entry(tok.clone()).or_insert_with(|| self.read_unknown(&tok));
            match read {
                Some(words) => out.extend(words.split(' ').map(String::from)),
                None => out.push(tok),
            }
        }
        drop_stopwords(self.apply_synonyms(out))
    }

    /// Canonical tokens with the stop words kept: slot readers need "our account" and "their account",
    /// "just now" and "now", "not them" and "them" to stay apart.
    pub(crate) fn words(&self, cleaned: &str) -> Vec<String> {
        let denoised = self.translate(strip_noise(cleaned));
        let mut out = Vec::new();
        for tok in raw_tokens(&denoised) {
            if self.known.contains(&tok) || self.protected.contains(&tok) || STOPWORD_STEMS.contains(&tok) {
                out.push(tok);
                continue;
            }
            out.push(self.correct(&tok).unwrap_or(tok));
        }
        self.apply_synonyms(out)
    }

    /// The components that clauses like "calico-node is fine" (`healthy`) or "not DNS" (both lists)
    /// rule out.
    pub(crate) fn set_components(&mut self, healthy: &[String], negated: &[String]) {
        let canon = |l: &[String]| -> Vec<Vec<String>> {
            l.iter().map(|c| self.canonical(c)).filter(|c| !c.is_empty()).collect()
        };
        let (h, n) = (canon(healthy), canon(negated));
        self.healthy_components = h;
        self.negated_components = n;
    }

    /// The canonical tokens of `cleaned`, and apart from them the names of the components it rules out
    /// ("calico-node is fine, it's the controllers pod", "not a DNS issue, the LB never gets an IP"):
    /// in a clause that says nothing is wrong, a component called healthy, or negated at the clause's
    /// start. Only the component's name moves; the rest of the clause still counts.
    /// Also the typo corrections it made, as typed and as read, sorted.
    pub(crate) fn ruled_out(&self, cleaned: &str) -> (Vec<String>, Vec<String>, Vec<Correction>) {
        // one cache for all clauses: a pasted log is hundreds of clauses sharing their unknown words;
        // what it holds in the end is every correction made
        let mut cache = FxHashMap::default();
        let corrections = |cache: FxHashMap<String, Option<String>>| {
            let mut c: Vec<Correction> = cache
                .into_iter()
                .filter_map(|(typed, read)| read.map(|read| Correction { typed, read }))
                .collect();
            c.sort();
            c
        };
        if (self.healthy_components.is_empty() && self.negated_components.is_empty())
            || !RULE_OUT_HINT.is_match(cleaned)
        {
            let toks = self.tokens_with(cleaned, &mut cache);
            return (toks, Vec::new(), corrections(cache));
        }
        let (mut kept, mut out) = (Vec::new(), Vec::new());
        for clause in CLAUSE.split(cleaned) {
            let mut toks = self.tokens_with(clause, &mut cache);
            let lower = clause.to_lowercase();
            // "isn't the scrape failure alert" negates its problem words too; "no endpoint gateway
            // created" states a problem
            let strong = NEGATED_START
                .captures(&lower)
                .is_some_and(|c| !c[1].eq_ignore_ascii_case("no"));
            if strong || !PROBLEM.is_match(&lower) {
                let negated = NEGATED_START.is_match(&lower);
                let healthy = HEALTHY.is_match(&lower);
                let lists: Vec<&Vec<String>> = match (negated, healthy) {
                    (true, _) => self.healthy_components.iter().chain(&self.negated_components).collect(),
                    (false, true) => self.healthy_components.iter().collect(),
                    (false, false) => Vec::new(),
                };
                // longest names first, so "calico kube controllers" goes before "calico"
                let mut lists = lists;
                lists.sort_by_key(|c| std::cmp::Reverse(c.len()));
                for c in lists {
                    while let Some(at) = toks.windows(c.len()).position(|w| w == c.as_slice()) {
                        out.extend(toks.drain(at..at + c.len()));
                    }
                }
            }
            kept.extend(toks);
        }
        (kept, out, corrections(cache))
    }

    /// How an unknown word is read: a phrase typed as one word (its words, space-separated), a typo of
    /// a known word or of such a phrase, or nothing.
    fn read_unknown(&self, tok: &str) -> Option<String> {
        let phrase = |key: &str| self.compounds.get(key).map(|words| words.join(" "));
        phrase(tok)
            .or_else(|| self.correct(tok))
            .or_else(|| phrase(self.correct_compound(tok)?))
    }

    /// The compound `tok` is a misspelling of: sharing its first letters, within one slip per
    /// [`COMPOUND_LETTERS_PER_SLIP`] letters, the closest (then the first in order).
    fn correct_compound(&self, tok: &str) -> Option<&str> {
        let len = tok.chars().count();
        if len < 2 * COMPOUND_LETTERS_PER_SLIP || !tok.chars().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let prefix: String = tok.chars().take(COMPOUND_PREFIX).collect();
        let limit = len / COMPOUND_LETTERS_PER_SLIP;
        self.compound_prefixes
            .get(&prefix)?
            .iter()
            .filter(|key| key.len().abs_diff(len) <= limit)
            .map(|key| (osa_distance(tok, key), key))
            .filter(|(d, _)| *d <= limit)
            .min()
            .map(|(_, key)| key.as_str())
    }

    fn correct(&self, tok: &str) -> Option<String> {
        self.correct_slip(tok).or_else(|| self.correct_vowelless(tok))
    }

    /// A word typed without (most of) its vowels: its consonant skeleton is a known word's, or one
    /// letter away from it. Only when exactly one known word fits.
    fn correct_vowelless(&self, tok: &str) -> Option<String> {
        let n = tok.chars().count();
        if !(3..=16).contains(&n) || !tok.chars().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        // short words only when they have no vowel at all after the first letter ("nd", not "var")
        let vowels = tok.chars().skip(1).filter(|c| "aeiou".contains(*c)).count();
        if vowels * 3 > n || (n <= 3 && vowels > 0) {
            return None;
        }
        let sk = skeleton(tok);
        let first = tok.chars().next();
        let mut found: Vec<&String> = Vec::new();
        let mut probe = |p: &str| {
            if let Some(words) = self.skeletons.get(p) {
                found.extend(words.iter().filter(|w| w.chars().next() == first));
            }
        };
        probe(&sk);
        if sk.chars().count() >= 5 {
            each_deletion(&sk, 1, &mut probe);
        }
        found.sort();
        found.dedup();
        match found.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        }
    }

    fn correct_slip(&self, tok: &str) -> Option<String> {
        let len = tok.chars().count();
        // at most two slips: a token longer than every known word by more than that cannot be one
        if len < 5 || len > self.longest_known + 2 || !tok.chars().all(|c| c.is_alphabetic()) {
            return None;
        }
        let limit = max_distance(tok);
        // the knowledge base's words are ASCII: more letters of another script than slips allowed
        // cannot be one of them (40 KB of Cyrillic is thousands of such words)
        if tok.chars().filter(|c| !c.is_ascii()).count() > limit {
            return None;
        }
        let mut best: Option<(usize, &String)> = None;
        let mut probe = |d: &str| {
            if let Some(cands) = self.deletes.get(d) {
                for cand in cands {
                    let dist = osa_distance(tok, cand);
                    // two slips only when the first letter is right: "experienced" is not "experiment"
                    let plausible = dist < 2 || tok.chars().next() == cand.chars().next();
                    if dist <= limit.min(max_distance(cand))
                        && plausible
                        && best.is_none_or(|(b, w)| dist < b || (dist == b && cand < w))
                    {
                        best = Some((dist, cand));
                    }
                }
            }
            if let Some(cands) = self.known.get(d) {
                let dist = osa_distance(tok, cands);
                if dist <= limit
                    && cands.chars().count() >= 5
                    && best.is_none_or(|(b, w)| dist < b || (dist == b && cands < w))
                {
                    best = Some((dist, cands));
                }
            }
        };
        probe(tok);
        each_deletion(tok, limit, &mut probe);
        best.map(|(_, w)| w.clone())
    }

    fn apply_synonyms(&self, mut toks: Vec<String>) -> Vec<String> {
        if self.synonyms.is_empty() {
            return toks;
        }
        let mut out = Vec::with_capacity(toks.len());
        let mut i = 0;
        'outer: while i < toks.len() {
            if !self.variant_starts.contains(&toks[i]) {
                out.push(std::mem::take(&mut toks[i]));
                i += 1;
                continue;
            }
            let longest = self.max_variant_len.min(toks.len() - i);
            for n in (1..=longest).rev() {
                if let Some(canon) = self.synonyms.get(&toks[i..i + n]) {
                    out.extend(canon.iter().cloned());
                    i += n;
                    continue 'outer;
                }
            }
            out.push(std::mem::take(&mut toks[i]));
            i += 1;
        }
        out
    }
}

/// Function words that carry no meaning for routing. Negations (`no`, `not`, `t` of "can't") stay: they
/// decide yes/no answers.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "to", "of", "in", "on", "at", "for",
    "by", "with", "from", "into", "onto", "my", "our", "your", "their", "his", "her", "its", "it", "this", "that",
    "these", "those", "there", "here", "i", "we", "you", "they", "he", "she", "me", "us", "them", "do", "doe", "did",
    "have", "ha", "had", "will", "would", "shall", "should", "can", "could", "may", "might", "must", "just", "so",
    "very", "really", "please", "also", "too", "then", "than", "as", "if", "or", "and", "but", "about", "any", "some",
    "s", "ll", "ve", "re", "d", "m", "has", "does",
];

static STOPWORD_STEMS: LazyLock<FxHashSet<String>> = LazyLock::new(|| STOPWORDS.iter().map(|w| stem(w)).collect());

fn drop_stopwords(mut toks: Vec<String>) -> Vec<String> {
    toks.retain(|t| !STOPWORD_STEMS.contains(t));
    toks
}

/// The first letter and the consonants after it, doubled letters once: "calico" -> "clc",
/// "konnectivity" -> "knctvty".
fn skeleton(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for (i, c) in word.chars().enumerate() {
        if i > 0 && "aeiou".contains(c) {
            continue;
        }
        if out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    out
}

fn max_distance(word: &str) -> usize {
    if word.chars().count() >= 10 {
        2
    } else {
        1
    }
}

/// Calls `f` with every string made by deleting one, or (`n` = 2) two, characters from `word`, in one
/// reused buffer: the typo corrector probes every unknown word of every message this way. A string
/// reachable in two ways comes twice.
fn each_deletion(word: &str, n: usize, f: &mut impl FnMut(&str)) {
    let chars: Vec<char> = word.chars().collect();
    let mut buf = String::with_capacity(word.len());
    for i in 0..chars.len() {
        buf.clear();
        buf.extend(chars[..i].iter().chain(&chars[i + 1..]));
        f(&buf);
        if n >= 2 {
            for j in i + 1..chars.len() {
                buf.clear();
                buf.extend(chars[..i].iter().chain(&chars[i + 1..j]).chain(&chars[j + 1..]));
                f(&buf);
            }
        }
    }
}

/// Every string made by deleting up to `n` characters from `word`.
/// (Words of 5-9 letters are corrected across one slip, longer words across two.)
fn deletions(word: &str, n: usize) -> Vec<String> {
    let mut frontier = vec![word.to_string()];
    let mut all = Vec::new();
    for _ in 0..n {
        let mut next = Vec::new();
        for w in &frontier {
            let chars: Vec<char> = w.chars().collect();
            for i in 0..chars.len() {
                let d: String = chars[..i].iter().chain(&chars[i + 1..]).collect();
                next.push(d);
            }
        }
        next.sort();
        next.dedup();
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
pub(crate) fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// `\b` becomes `(?-u:\b)`: a Unicode word boundary keeps the regex crate's DFA off any text with a
/// non-ASCII character (40 KB of Cyrillic took 38 ms instead of 1 ms); error signatures and the
/// clause cues here are ASCII anyway.
pub(crate) fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push_str("(?-u:\\b)"),
            Some('B') => out.push_str("(?-u:\\B)"),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

static CLAUSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[.;!?\n]+|[,:]\s|\s[-–—]\s|\s(?:but|though|however|whereas|while|although|instead)\s").unwrap()
});
/// Cheap pre-check: a message with none of these words rules nothing out.
static RULE_OUT_HINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(r"(?i)\b(?:not?|isn|aren|never|nothing|fine|healthy|ok|okay|good|green|normal|unaffected|clean|works?|working|ruled|excluded|unrelated|think|believe|doubt)\b")).unwrap()
});
static HEALTHY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(r"(?i)\b(?:fine|healthy|ok|okay|good|green|normal|unaffected|clean|works?(?:\s+fine)?|working(?:\s+fine)?|running\s+fine|all\s+running|ruled\s+out|not\s+the\s+(?:problem|issue|cause|culprit)|isn'?t\s+the\s+(?:problem|issue|cause|culprit)|no\s+(?:issues?|problems?|errors?))\b")).unwrap()
});
static NEGATED_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(r"(?i)^\s*(?:and\s+|so\s+|also\s+)?(?:(?:i'?m\s+)?(?:pretty\s+|quite\s+|fairly\s+)?sure\s+|definitely\s+|clearly\s+)?(?:it'?s\s+|its\s+|this\s+is\s+|this\s+isn'?t\s+|that'?s\s+)?(not|no|never|isn'?t|nothing\s+(?:wrong\s+)?(?:with|to\s+do\s+with)|unrelated\s+to|i\s+(?:don'?t|do\s+not)\s+(?:think|believe)\s+(?:it'?s|its|this\s+is|that'?s|the\s+issue\s+is|the\s+problem\s+is)|i\s+doubt\s+(?:it'?s|its|this\s+is|that'?s)|(?:we\s+|we'?ve\s+|i\s+|i'?ve\s+)?(?:already\s+)?(?:ruled\s+out|excluded))\b")).unwrap()
});
/// Words that say something is wrong: a clause with one rules nothing out ("calico-node is not ready").
static PROBLEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&ascii_word_boundaries(r"(?i)crash|fail|error|\bdown\b|broken|stuck|pending|time[sd]?\s?out|timing\s+out|unable|can'?t|cannot|won'?t|not\s+(?:working|ready|running|starting|reachable|resolving)|restart|\b0/\d|dropp|refus|unreachable|\bhang|\bno\s+(?:ip|address|external|endpoint|route|connect|access|traffic|response|replicas?)")).unwrap()
});

static NOISE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        (?-u:\b)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?-u:\b)   # UUID
      | (?-u:\b)[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt\x20]?[0-9]{0,2}:?[0-9]{0,2}:?[0-9]{0,2}(\.[0-9]+)?(z|[+-][0-9]{2}:?[0-9]{2})?  # ISO timestamps
      | (?-u:\b)[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?(\.[0-9]+)?(?-u:\b)                 # clock times
      | (?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(/[0-9]{1,2})?(:[0-9]+)?(?-u:\b)  # IPv4, CIDR, port
      | (?-u:\b)[0-9a-f]{12,}(?-u:\b)                                             # container ids, digests
      | https?://[^\x20\t\n]+                                                     # URLs (labels are kept)
    ",
    )
    .unwrap()
});

fn strip_noise(text: &str) -> String {
    NOISE.replace_all(&text.to_lowercase(), " ").into_owned()
}

/// Lower-case word tokens, `-`/`_`/punctuation as separators, numbers with dots kept (`4.14`), stemmed.
pub(crate) fn raw_tokens(text: &str) -> Vec<String> {
    // most callers pass text already lower-cased (`strip_noise`)
    let lower: Cow<'_, str> = if text.chars().any(char::is_uppercase) {
        Cow::Owned(text.to_lowercase())
    } else {
        Cow::Borrowed(text)
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut last: Option<char> = None;
    let mut chars = lower.chars().peekable();
    while let Some(c) = chars.next() {
        let keep_dot =
            c == '.' && last.is_some_and(|p| p.is_ascii_digit()) && chars.peek().is_some_and(|n| n.is_ascii_digit());
        // a script change ends a word: "calico-nodeがCrashLoopBackOffです" holds its English terms
        if last.is_some_and(|p| p.is_ascii() != c.is_ascii()) && c.is_alphanumeric() {
            out.push(stem_owned(std::mem::take(&mut cur)));
        }
        if c.is_alphanumeric() || keep_dot {
            cur.push(c);
            last = Some(c);
        } else {
            if !cur.is_empty() {
                out.push(stem_owned(std::mem::take(&mut cur)));
            }
            last = None;
        }
    }
    if !cur.is_empty() {
        out.push(stem_owned(cur));
    }
    out
}

/// A deliberately small stemmer: folds plurals and -ing/-ed/-e so that `resolve`, `resolving`,
/// `resolved` and `resolves` meet. It only has to be consistent, not linguistically right.
pub(crate) fn stem(word: &str) -> String {
    stem_owned(word.to_string())
}

/// [`stem`] in place.
fn stem_owned(mut w: String) -> String {
    let n = w.chars().count();
    if n <= 3 || w.chars().any(|c| c.is_ascii_digit()) || !w.is_ascii() {
        return w;
    }
    let len = w.len();
    if w.ends_with("ing") && len >= 6 {
        w.truncate(len - 3);
    } else if w.ends_with("ied") && len >= 5 {
        w.truncate(len - 3);
        w.push('y');
    } else if w.ends_with("ed") && len >= 5 {
        w.truncate(len - 2);
    } else if w.ends_with("ies") && len >= 5 {
        w.truncate(len - 3);
        w.push('y');
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.pop();
    }
    if w.len() > 3 && w.ends_with('e') {
        w.pop();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex() -> Lexicon {
        let lb = vec!["lb".to_string(), "loadbalancer".to_string()];
        let kcc = vec!["kcc".to_string()];
        Lexicon::new(
            [
                ("load balancer", lb.as_slice()),
                ("calico kube controllers", kcc.as_slice()),
            ],
            ["calico node", "konnectivity", "provisioning", "resolve hostnames"],
        )
    }

    #[test]
    fn a_variant_inside_a_canonical_phrase_does_not_rewrite_it() {
        let kc = vec!["kcc".to_string(), "kube controllers".to_string()];
        let l = Lexicon::new([("calico kube controllers", kc.as_slice())], []);
        assert_eq!(
            l.tokens("calico-kube-controllers"),
            l.canonical("calico kube controllers")
        );
        assert_eq!(l.tokens("kcc"), l.canonical("calico kube controllers"));
        assert_eq!(l.canonical("calico kube controllers").len(), 3);
    }

    #[test]
    fn a_phrase_typed_as_one_word_is_read_as_its_words_even_misspelt() {
        let l = Lexicon::new(
            [("calico kube controllers", &[][..])],
            ["customer openvpn server unavailable", "calico node", "no ip"],
        );
        assert_eq!(
            l.tokens("calicokubecontrollers"),
            l.canonical("calico kube controllers")
        );
        assert_eq!(l.tokens("CalicoNode pod"), l.canonical("calico node pod"));
        let alert = l.canonical("customer openvpn server unavailable");
        assert_eq!(l.tokens("CustomerOpenVPNServerUnavailable"), alert);
        // one slip per 8 letters: two in 30
        assert_eq!(l.tokens("CustomerOpenVPNSeverUnavailble"), alert);
        assert_ne!(l.tokens("CustomerOpenVPNSvrUnvlbl"), alert, "too far");
        // short joins are another word too easily
        assert_eq!(l.tokens("noip"), vec!["noip".to_string()]);
        let (_, _, corrections) = l.ruled_out("CustomerOpenVPNSeverUnavailble");
        assert_eq!(corrections.len(), 1);
        assert_eq!(corrections[0].read, alert.join(" "));
    }

    #[test]
    fn slack_markup_is_removed_and_labels_kept() {
        let c = clean_slack(
            "<@U123> see <#C1|armada-network> and <https://x.io/a|the docs> :fire: &lt;pending&gt; <!channel>",
        );
        assert!(!c.contains("U123"));
        assert!(c.contains("armada-network"));
        assert!(c.contains("the docs"));
        assert!(!c.contains(":fire:"));
        assert!(c.contains("<pending>"));
        assert!(!c.contains("channel"));
    }

    #[test]
    fn separators_stems_and_synonyms_meet() {
        let l = lex();
        assert_eq!(l.tokens("calico_node"), l.canonical("calico node"));
        assert_eq!(l.tokens("LB"), l.canonical("load balancer"));
        assert_eq!(l.tokens("load-balancers"), l.canonical("load balancer"));
        assert_eq!(l.tokens("kcc"), l.canonical("calico kube controllers"));
        assert_eq!(stem("resolving"), stem("resolve"));
        assert_eq!(stem("resolved"), stem("resolves"));
    }

    #[test]
    fn typos_are_corrected_but_common_words_are_not() {
        let l = lex();
        assert_eq!(l.tokens("calcio-node"), l.canonical("calico node"));
        assert_eq!(l.tokens("loadbalancr"), l.canonical("load balancer"));
        assert_eq!(l.tokens("konectivity"), l.canonical("konnectivity"));
        assert_eq!(l.tokens("provisoning"), l.canonical("provisioning"));
        assert_eq!(l.tokens("notes"), vec![stem("notes")]);
    }

    #[test]
    fn a_huge_word_is_not_typo_corrected() {
        // the deletion search is cubic in the word's length: a 70 KB word must not reach it
        let l = lex();
        let word = "calico".repeat(12_000);
        let start = std::time::Instant::now();
        assert_eq!(l.tokens(&word), vec![stem(&word)]);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            l.tokens("calcio-node"),
            l.canonical("calico node"),
            "typos are still corrected"
        );
    }

    #[test]
    fn noise_is_dropped() {
        let l = lex();
        let t = l.tokens("2022-09-08 07:13:19.719 calico-node-7xk2p 10.242.64.17 3f2a9c1e-1111-2222-3333-444455556666 c9v3k1sd0abcdefgh123");
        assert_eq!(t, l.canonical("calico node"));
    }

    #[test]
    fn quiet_log_lines_are_set_aside_only_beside_telling_ones() {
        let quiet = "I1130 04:12:31.000101 2817 prober.go:116] Probe succeeded pod=ibm-cloud-provider-ip\n\
                     2024-03-01 [INFO][72] felix/int_dataplane.go 1234: Applying dataplane updates\n\
                     ts=2024-03-01 level=info msg=\"synced\"\n\
                     {\"level\":\"debug\",\"msg\":\"tick\"}\n\
                     \x20 Normal   Scheduled  2m  default-scheduler  Successfully assigned default/web";
        assert_eq!(without_quiet_lines(quiet), quiet, "nothing else to read: kept whole");
        let mixed = format!("{quiet}\nE1130 04:13:02.1 2817 pod_workers.go:1298] calico-node CrashLoopBackOff\nwhy?");
        assert_eq!(
            without_quiet_lines(&mixed),
            "E1130 04:13:02.1 2817 pod_workers.go:1298] calico-node CrashLoopBackOff\nwhy?"
        );
        // prose is not a log line, whatever its words
        let prose = "the info page says normal\nlevel of info is low\nI think it's DNS\nwhy?";
        assert_eq!(without_quiet_lines(prose), prose);
    }

    #[test]
    fn word_boundaries_become_ascii_and_still_match() {
        assert_eq!(
            ascii_word_boundaries(r"(?i)\bipam\b \d+ \\b"),
            r"(?i)(?-u:\b)ipam(?-u:\b) \d+ \\b"
        );
        let re = Regex::new(&ascii_word_boundaries(r"(?i)\bIPAM allocated only 0\b")).unwrap();
        assert!(re.is_match("Привет: IPAM allocated only 0 — ошибка"));
        assert!(!re.is_match("xIPAM allocated only 0"));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "aé€😀";
        for max in 0..=s.len() {
            assert!(truncate(s, max).len() <= max);
        }
    }

    #[test]
    fn osa_counts_transpositions_as_one() {
        assert_eq!(osa_distance("calcio", "calico"), 1);
        assert_eq!(osa_distance("abc", "abc"), 0);
        assert_eq!(osa_distance("", "abc"), 3);
    }

    #[test]
    fn english_terms_inside_other_scripts_are_found() {
        assert_eq!(
            raw_tokens("calico-nodeがCrashLoopBackOffです"),
            vec!["calico", "nod", "が", "crashloopbackoff", "です"]
        );
    }

    #[test]
    fn japanese_and_chinese_spellings_read_as_their_english_inside_unspaced_text() {
        let mut l = lex();
        let console = vec!["コンソール".to_string(), "控制台".to_string()];
        let lb = vec![
            "ロードバランサー".to_string(),
            "ロードバランサ".to_string(),
            "负载均衡".to_string(),
        ];
        l.set_translations([("console", console.as_slice()), ("lb", lb.as_slice())]);
        // the longest spelling wins, and the English then goes through the synonyms
        assert_eq!(l.tokens("ロードバランサーが落ちた"), l.tokens("load balancer が落ちた"));
        assert!(l
            .tokens("OpenShiftのコンソールに入れない")
            .contains(&"consol".to_string()));
        let t = l.tokens("负载均衡没有外部IP");
        assert!(
            t.windows(2).any(|w| w == l.canonical("load balancer").as_slice()),
            "{t:?}"
        );
        // ASCII text is left alone
        assert_eq!(l.tokens("the console is slow"), lex().tokens("the console is slow"));
    }

    #[test]
    fn words_typed_without_vowels_are_corrected() {
        let l = lex();
        assert_eq!(l.tokens("clco"), l.canonical("calico"));
        assert_eq!(l.tokens("var"), vec!["var"]);
        assert_eq!(
            l.tokens("calico-nodeがCrashLoopBackOffです")[..2],
            l.canonical("calico node")[..]
        );
        assert_eq!(l.tokens("knctvty"), l.canonical("konnectivity"));
        assert_eq!(l.tokens("prvsnng"), l.canonical("provisioning"));
    }
}
