//! Text normalisation shared by the matcher and the dialogue engine: Slack markup removal, noise
//! stripping (timestamps, IPs, UUIDs, pod hashes), tokenising, light stemming and vocabulary
//! canonicalisation; typo correction in [`correct`], and which parts of a message count (clauses that
//! rule a component out, the quiet lines of a pasted log) in [`scope`]. Pure: no I/O, cannot fail.
//!
//! The same pipeline turns both the knowledge base's terms and users' messages into token streams, so a
//! term written once in canonical form matches every spelling the vocabulary and the stemmer fold into it.

use std::borrow::Cow;

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::LazyLock;

use regex::Regex;

mod correct;
mod scope;

pub use correct::Correction;
use correct::{each_deletion, max_distance, skeleton, COMPOUND_MIN, COMPOUND_PREFIX};
pub(crate) use scope::without_quiet_lines;

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
            // a string reachable in two ways is pushed twice: the lists are deduplicated below
            each_deletion(&word, max_distance(&word), &mut |d| {
                lex.deletes.entry(d.to_string()).or_default().push(word.clone());
            });
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
            let mut add = |k: &str| lex.skeletons.entry(k.to_string()).or_default().push(word.clone());
            add(&sk);
            if sk.chars().count() >= 5 {
                each_deletion(&sk, 1, &mut add);
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

    /// A small lexicon the tests of this module and of `correct` share.
    pub(super) fn lex() -> Lexicon {
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
    fn noise_is_dropped() {
        let l = lex();
        let t = l.tokens("2022-09-08 07:13:19.719 calico-node-7xk2p 10.242.64.17 3f2a9c1e-1111-2222-3333-444455556666 c9v3k1sd0abcdefgh123");
        assert_eq!(t, l.canonical("calico node"));
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
}
