//! Typo correction: how a word the knowledge base does not know is read. One or two slips of a known
//! word (a deletion index), a word typed without its vowels (consonant skeletons), and a phrase typed
//! as one word, misspelt too ("CustomerOpenVPNSeverUnavailble"). Every correction is reported
//! ([`Correction`]) so the evidence can say a term was found through one.

use super::Lexicon;

/// A word read as another: a typo ("calcio" as "calico") or a word typed without its vowels ("wrkr").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Correction {
    /// As the person typed it (lower case, stemmed).
    pub typed: String,
    /// The knowledge base's word it was read as (its words, space-separated, for a phrase typed as one).
    pub read: String,
}

/// A phrase typed without spaces is read as its words only from this many letters: shorter joins
/// ("noip") are too easily another word.
pub(super) const COMPOUND_MIN: usize = 8;
/// A misspelt compound is looked for among the compounds sharing its first letters (a slip there is
/// rare; comparing with every compound would cost each long unknown word of a paste tens of µs)...
pub(super) const COMPOUND_PREFIX: usize = 5;
/// ...and read as one when at most one letter in this many differs.
pub(super) const COMPOUND_LETTERS_PER_SLIP: usize = 8;

impl Lexicon {
    /// How an unknown word is read: a phrase typed as one word (its words, space-separated), a typo of
    /// a known word or of such a phrase, or nothing.
    pub(super) fn read_unknown(&self, tok: &str) -> Option<String> {
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

    pub(super) fn correct(&self, tok: &str) -> Option<String> {
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
}

/// The first letter and the consonants after it, doubled letters once: "calico" -> "clc",
/// "konnectivity" -> "knctvty".
pub(super) fn skeleton(word: &str) -> String {
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

pub(super) fn max_distance(word: &str) -> usize {
    if word.chars().count() >= 10 {
        2
    } else {
        1
    }
}

/// Calls `f` with every string made by deleting one, or (`n` = 2) two, characters from `word`, in one
/// reused buffer: the lexicon indexes its known words this way, and the typo corrector probes every
/// unknown word of every message. A string reachable in two ways comes twice.
pub(super) fn each_deletion(word: &str, n: usize, f: &mut impl FnMut(&str)) {
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

/// Optimal-string-alignment distance (Levenshtein plus adjacent transpositions).
fn osa_distance(a: &str, b: &str) -> usize {
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

#[cfg(test)]
mod tests {
    use super::super::stem;
    use super::super::tests::lex;
    use super::*;

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
    fn osa_counts_transpositions_as_one() {
        assert_eq!(osa_distance("calcio", "calico"), 1);
        assert_eq!(osa_distance("abc", "abc"), 0);
        assert_eq!(osa_distance("", "abc"), 3);
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
