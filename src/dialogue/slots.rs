//! Reading a free-text answer as evidence about one question (a slot). Pure, table-tested.
//!
//! The text is cut into clauses (at punctuation and at "but", "though", "however", ...). In each clause
//! every option phrase found counts for its option, by its length in words; a phrase with a negation
//! just before it ("not openshift", "isn't installed") counts against its option instead, and for a
//! two-option question for the other one. The clause after a contrast counts more ("reproducible, but
//! only inside their app"). A slot that is about a subject (`calico-node`) skips clauses that name
//! another slot's subject and not its own ("calico-node is fine, it's kcc that's pending"). Counts
//! ("2 kcc pods", "on two nodes") and ready ratios ("0/1", "3/3") are evidence for options that
//! declare them. Durations come from [`super::duration`]. Bare "yes"/"no" count only as the answer's
//! first word, idioms ("no worries", "no idea") are never read as answers, and "not sure" is
//! [`Reading::Unsure`]. When two options have comparable evidence the reading is a conflict and the
//! question is asked again: nothing is guessed silently.

use std::sync::LazyLock;

use regex::Regex;

use super::duration::{self, Duration};
use crate::kb::{KnowledgeBase, Slot, SlotKind};
use crate::text::clean_slack;

/// What a message says about one slot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reading {
    /// It selects `option`. `detail` is the value as given when it says more ("25 min"); `sure` is false
    /// when the evidence is thin for a message not addressed to the bot (chatter must not answer).
    Pick {
        option: String,
        detail: Option<String>,
        sure: bool,
    },
    /// The person does not know yet ("not sure", "let me check").
    Unsure,
    /// A time was given but not how long ("for a while", "since this morning").
    Vague,
    /// Evidence for several options that does not settle it.
    Conflict(Vec<String>),
    /// Nothing about this slot.
    Nothing,
}

/// Single words that answer a yes/no question only as the reply's first word or alone in a clause.
const BARE: &[&str] = &[
    "yes", "yeah", "yep", "yup", "ya", "no", "nope", "nah", "ok", "okay", "correct", "right", "sure", "true", "false",
];
/// Words that negate the phrase right after them (within three words).
const NEGATORS: &[&str] = &[
    "not", "no", "never", "t", "without", "nor", "neither", "non", "isnt", "arent", "dont", "doesnt", "didnt", "wasnt",
    "cant", "wont", "hasnt", "havent", "nothing", "none",
];
/// Words that start a clause which counts more than what came before it.
const CONTRAST: &[&str] = &[
    "but", "though", "although", "however", "whereas", "except", "instead", "actually", "rather",
];
/// Phrases that are never answers: removed before reading (also stops "no" in them negating).
const IDIOMS: &[&str] = &[
    "no worries",
    "no worry",
    "no problem",
    "no prob",
    "no rush",
    "no hurry",
    "not a problem",
    "no wait",
    "no idea",
    "no clue",
    "not sure",
    "no no",
    "no doubt",
    "no offense",
    "no pressure",
    "no need",
    "no big deal",
    "not yet",
    "yes but",
];
/// The person does not know the answer yet.
const UNSURE: &[&str] = &[
    "not sure",
    "unsure",
    "no idea",
    "no clue",
    "don't know",
    "dont know",
    "do not know",
    "dunno",
    "idk",
    "let me check",
    "let me see",
    "let me look",
    "will check",
    "i'll check",
    "ill check",
    "need to check",
    "have to check",
    "checking now",
    "checking",
    "let me find out",
    "will find out",
    "will ask",
    "i'll ask",
    "asking the customer",
    "waiting on the customer",
    "waiting for the customer",
    "haven't checked",
    "have not checked",
    "can't tell",
    "cannot tell",
    "hard to say",
    "unclear",
    "unknown",
    "skip",
    "no idea yet",
    "not yet known",
    "not checked yet",
];

static CLAUSE_BREAK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[,;.!?\n()\[\]—–]+|\s-\s|:\s").unwrap());
static RATIO: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?:^|[^\d/])(\d{1,2})/(\d{1,2})(?:$|[^\d/])").unwrap());
static COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)\b(?P<n>\d{1,3}|zero|no|one|a\ single|single|only\ one|exactly\ one|just\ one|two|three|four|five|both|multiple|several|many)\s+
        (?:[\w-]+\s+){0,4}?(?P<what>pods?|replicas?|instances?|copies|nodes?|workers?)\b
        | \b(?P<twice>twice|duplicated?|duplicates)\b",
    )
    .unwrap()
});

/// A clause of the message: its words (canonical, stop words kept) and whether it follows a contrast.
struct Clause {
    raw: String,
    words: Vec<String>,
    weight: f64,
}

fn clauses(kb: &KnowledgeBase, text: &str) -> Vec<Clause> {
    let mut lower = format!(" {} ", text.to_lowercase());
    for idiom in IDIOMS {
        // keep a break where the idiom was, so "no worries, vpc" stays two clauses
        lower = replace_words(&lower, idiom, " , ");
    }
    let mut out = Vec::new();
    let mut next_weight = 1.0;
    for piece in CLAUSE_BREAK.split(&lower) {
        // a contrast word inside a piece starts a new clause too
        let mut current = String::new();
        let mut weight = next_weight;
        for word in piece.split_whitespace() {
            let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
            if CONTRAST.contains(&bare) && !current.trim().is_empty() {
                push_clause(kb, &mut out, &current, weight);
                current.clear();
                weight = 1.5;
                continue;
            }
            if CONTRAST.contains(&bare) {
                weight = 1.5;
                continue;
            }
            current.push_str(word);
            current.push(' ');
        }
        if !current.trim().is_empty() {
            push_clause(kb, &mut out, &current, weight);
        }
        next_weight = if weight > 1.0 && current.trim().is_empty() {
            weight
        } else {
            1.0
        };
    }
    out
}

fn push_clause(kb: &KnowledgeBase, out: &mut Vec<Clause>, raw: &str, weight: f64) {
    let words = kb.lexicon.words(raw);
    if !words.is_empty() {
        out.push(Clause {
            raw: raw.trim().to_string(),
            words,
            weight,
        });
    }
}

/// `text` with every whole-word occurrence of `phrase` replaced.
fn replace_words(text: &str, phrase: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(phrase) {
        let before_ok = rest[..i].chars().last().is_none_or(|c| !c.is_alphanumeric())
            && (i > 0 || out.chars().last().is_none_or(|c| !c.is_alphanumeric()));
        let end = i + phrase.len();
        let after_ok = rest[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        out.push_str(&rest[..i]);
        if before_ok && after_ok {
            out.push_str(with);
        } else {
            out.push_str(&rest[i..end]);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn contains(words: &[String], phrase: &[String]) -> bool {
    occurrences(words, phrase).next().is_some()
}

fn occurrences<'a>(words: &'a [String], phrase: &'a [String]) -> impl Iterator<Item = usize> + 'a {
    let n = phrase.len();
    (0..words.len().saturating_sub(n.saturating_sub(1))).filter(move |&i| n > 0 && words[i..i + n] == *phrase)
}

/// Words that may stand between a negation and what it negates ("not *the* endpoint gateway one",
/// "isn't *really* running").
const FILLERS: &[&str] = &[
    "the",
    "a",
    "an",
    "any",
    "really",
    "even",
    "yet",
    "on",
    "in",
    "at",
    "using",
    "it",
    "its",
    "s",
    "is",
    "be",
    "been",
    "look",
    "seem",
    "quite",
    "actually",
    "currently",
    "anymore",
    "exactly",
    "very",
    "all",
    "that",
    "this",
    "so",
];

/// Whether a negation governs the phrase at `at`: it stands right before it, or only filler words lie
/// between them ("not ours, the vyatta" does not negate "vyatta").
fn negated(words: &[String], at: usize) -> bool {
    for w in words[..at].iter().rev().take(4) {
        if NEGATORS.contains(&w.as_str()) {
            return true;
        }
        if !FILLERS.contains(&w.as_str()) {
            return false;
        }
    }
    false
}

/// Small talk between people in the thread: never an answer unless said to the bot.
const CHATTER: &[&str] = &[
    "lunch",
    "coffee",
    "brb",
    "bbl",
    "afk",
    "be right back",
    "bridge",
    "meeting",
    "standup",
    "stand-up",
    "zoom",
    "webex",
    "dinner",
    "break",
    "weekend",
    "burger",
    "pizza",
    "charger",
    "survey",
    "anyone",
    "who's on",
    "who is on",
    "on a call",
    "joining",
    "ping me",
    "later today",
    "tomorrow",
    "vacation",
    "pto",
    "fyi",
    "sync",
    "moved to",
    "heads up",
    "calendar",
    "reminder",
    "out of office",
];

static CLOCK_TIME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b\d{1,2}(?::\d\d)?\s?(?:am|pm)\b").unwrap());

/// Whether the text reads as small talk ("lunch? the classic burger place?", "joining the bridge").
pub(crate) fn is_chatter(text: &str) -> bool {
    let lower = text.to_lowercase();
    CHATTER.iter().any(|p| has_phrase(&lower, p)) || CLOCK_TIME.is_match(&lower)
}

/// Whether the person says they do not know (yet).
pub(crate) fn is_unsure(text: &str) -> bool {
    let lower = clean_slack(text).to_lowercase().replace('’', "'");
    let lower = lower.trim();
    lower == "?" || lower == "??" || UNSURE.iter().any(|p| has_phrase(lower, p))
}

/// Whole-word phrase search on lower-case text.
pub(crate) fn has_phrase(text: &str, phrase: &str) -> bool {
    replace_words(text, phrase, "\u{0}").contains('\u{0}')
}

/// What `text` says about `slot`. `asked`: the text replies to this very question; `addressed`: it was
/// meant for the bot (a mention, the CLI), so thin evidence still counts.
pub(crate) fn read(kb: &KnowledgeBase, slot: &Slot, text: &str, asked: bool, addressed: bool) -> Reading {
    if slot.only_when_asked && !asked {
        return Reading::Nothing;
    }
    let cleaned = clean_slack(text);
    let unsure = asked && is_unsure(&cleaned);
    if slot.kind == SlotKind::Minutes {
        return match duration::read(&cleaned, asked) {
            Some(Duration::Vague) if asked => Reading::Vague,
            Some(d) => match d.minutes().and_then(|m| slot.options.iter().find(|o| o.fits(m))) {
                Some(o) => Reading::Pick {
                    option: o.id.clone(),
                    detail: Some(d.describe()),
                    sure: true,
                },
                None => Reading::Nothing,
            },
            None if unsure => Reading::Unsure,
            None => Reading::Nothing,
        };
    }
    let clauses = clauses(kb, &cleaned);
    let mut score = vec![0.0f64; slot.options.len()];
    let mut strong = false;
    let binary = slot.options.len() == 2;
    let first_word = clauses.first().and_then(|c| c.words.first()).cloned();
    let mut considered = 0usize;
    for (ci, clause) in clauses.iter().enumerate() {
        let mut about_me = false;
        if !slot.about.is_empty() {
            let mine = slot.about.iter().any(|a| contains(&clause.words, a));
            let other = kb
                .subjects
                .iter()
                .filter(|s| !slot.about.contains(s))
                .any(|s| contains(&clause.words, s));
            if !mine && (other || !asked) {
                continue;
            }
            about_me = mine;
        }
        considered += clause.words.len();
        for (oi, o) in slot.options.iter().enumerate() {
            for phrase in &o.words {
                let bare = phrase.len() == 1 && BARE.contains(&phrase[0].as_str());
                for at in occurrences(&clause.words, phrase) {
                    if bare {
                        let leads = ci == 0 && at == 0 && first_word.as_deref() == Some(phrase[0].as_str());
                        if !asked || !(leads || clause.words.len() <= 2) {
                            continue;
                        }
                        // "yep, ..." opening the reply to a yes/no question answers it
                        strong = true;
                    }
                    let weight = phrase.len() as f64 * clause.weight;
                    if phrase.len() >= 2 || about_me {
                        strong = true;
                    }
                    if !bare && negated(&clause.words, at) {
                        // "isn't Qualtrics" is said on purpose
                        strong = true;
                        score[oi] -= weight;
                        if binary {
                            score[1 - oi] += weight;
                        }
                    } else {
                        score[oi] += weight;
                    }
                }
            }
        }
        // a duration says how long only in a reply to the question ("over a day now"); in a first
        // message it often says when ("overnight")
        let said_duration = if asked {
            duration::read(&clause.raw, false)
        } else {
            None
        };
        if let Some(m) = said_duration.and_then(Duration::minutes) {
            for (oi, o) in slot.options.iter().enumerate() {
                if o.minutes_over.is_some_and(|x| m > x) || o.minutes_under.is_some_and(|x| m < x) {
                    score[oi] += 2.0 * clause.weight;
                    strong = true;
                }
            }
        }
        if let Some(n) = count_in(&clause.raw) {
            for (oi, o) in slot.options.iter().enumerate() {
                if o.count.is_some_and(|r| r.accepts(n)) {
                    score[oi] += 3.0 * clause.weight;
                    strong = true;
                }
            }
        }
        if let Some(all_ready) = ratio_in(&clause.raw) {
            for (oi, o) in slot.options.iter().enumerate() {
                if o.ready == Some(all_ready) {
                    score[oi] += 3.0 * clause.weight;
                    strong = true;
                }
            }
        }
    }
    let mut ranked: Vec<(usize, f64)> = score.iter().copied().enumerate().filter(|(_, s)| *s > 0.0).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    match ranked.as_slice() {
        [] => {
            if unsure {
                Reading::Unsure
            } else if asked && addressed_or_answer_like(&clauses, addressed, &cleaned) {
                match &slot.any_reply {
                    Some(a) => Reading::Pick {
                        option: a.clone(),
                        detail: Some(first_line(&cleaned)),
                        sure: true,
                    },
                    None => Reading::Nothing,
                }
            } else {
                Reading::Nothing
            }
        }
        [(best, b), rest @ ..] => {
            if let Some((second, s)) = rest.first() {
                if *b < s * 1.5 {
                    return Reading::Conflict(vec![slot.options[*best].id.clone(), slot.options[*second].id.clone()]);
                }
            }
            if unsure && !strong {
                return Reading::Unsure;
            }
            let content = considered.max(1);
            // chatter among people in the thread: a question back, or a long message that only grazes
            // an option word ("lunch? the classic burger place?")
            // a reply right under the question is an answer, unless it is small talk or a question
            // back ("lunch? the classic burger place?")
            let question_back = cleaned.trim_end().ends_with('?') && content > 2;
            Reading::Pick {
                option: slot.options[*best].id.clone(),
                detail: None,
                sure: addressed || !(question_back || is_chatter(&cleaned)),
            }
        }
    }
}

/// A reply with words in it that could be a free-form answer (an error text, a status), not small
/// talk or a question back.
fn addressed_or_answer_like(clauses: &[Clause], addressed: bool, cleaned: &str) -> bool {
    let words: usize = clauses.iter().map(|c| c.words.len()).sum();
    words > 0 && (addressed || !(is_chatter(cleaned) || cleaned.trim_end().ends_with('?')))
}

fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    line.chars().take(200).collect()
}

/// The number of pods/nodes a clause counts, if it counts any.
fn count_in(raw: &str) -> Option<u32> {
    let c = COUNT.captures(raw)?;
    if c.name("twice").is_some() {
        return Some(2);
    }
    let n = c.name("n")?.as_str().to_lowercase();
    Some(match n.as_str() {
        "zero" | "no" => 0,
        "one" | "a single" | "single" | "only one" | "exactly one" | "just one" => 1,
        "two" | "both" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "multiple" | "several" | "many" => 3,
        d => d.parse().ok()?,
    })
}

/// Whether a ready ratio in the clause ("3/3", "0/1") says every container is ready.
fn ratio_in(raw: &str) -> Option<bool> {
    let c = RATIO.captures(raw)?;
    let a: u32 = c[1].parse().ok()?;
    let b: u32 = c[2].parse().ok()?;
    (b > 0 && a <= b).then_some(a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb() -> KnowledgeBase {
        KnowledgeBase::builtin().expect("the shipped knowledge base loads")
    }

    fn pick(slot: &str, text: &str) -> Option<String> {
        let kb = kb();
        match read(&kb, &kb.slots[slot], text, true, true) {
            Reading::Pick { option, .. } => Some(option),
            _ => None,
        }
    }

    #[test]
    fn counts_and_ratios() {
        assert_eq!(count_in("i see 2 calico kube controllers pods running"), Some(2));
        assert_eq!(count_in("kcc is running on two nodes"), Some(2));
        assert_eq!(count_in("exactly one pod"), Some(1));
        assert_eq!(count_in("it runs twice"), Some(2));
        assert_eq!(count_in("calico is fine"), None);
        assert_eq!(ratio_in("calico-node 0/1 running"), Some(false));
        assert_eq!(ratio_in("3/3 ready"), Some(true));
        assert_eq!(ratio_in("until 6/30/24"), None);
    }

    #[test]
    fn idioms_and_unsure() {
        assert!(is_unsure("no idea yet"));
        assert!(is_unsure("dunno, let me check"));
        assert!(is_unsure("I don’t know"));
        assert!(!is_unsure("no, it is broken"));
        assert!(!is_unsure("skipper"));
    }

    #[test]
    fn negation_picks_the_other_option() {
        assert_eq!(pick("platform", "not openshift, plain IKS").as_deref(), Some("iks"));
        assert_eq!(pick("platform", "it's not openshift").as_deref(), Some("iks"));
    }
}
