//! How long something has been going on, read from free text: one grammar for every form people write
//! ("50 min", "2h", "1h30", "an hour and a half", "over a day", "just 5 minutes", "for hours", "since
//! yesterday"). Pure and table-tested.
//!
//! A unit is a whole word or, right after digits, a single letter (`2h`, `50m`, `3 d`): a letter inside a
//! word ("am", "and") is never a unit, and "a"/"an" count as one only before a spelled unit ("an hour").
//! Vague times ("for a while", "since this morning", "for ages") are reported as [`Duration::Vague`]
//! so the caller asks instead of guessing.

use std::sync::LazyLock;

use regex::Regex;

/// What the text says about a duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Duration {
    /// About this many minutes ("25 min", "about 2h").
    Exact(f64),
    /// At least this many minutes ("over an hour", "for hours", "since yesterday").
    AtLeast(f64),
    /// At most this many minutes ("under 10 minutes", "just now").
    AtMost(f64),
    /// A time was mentioned but its length cannot be told ("for a while", "since this morning").
    Vague,
}

impl Duration {
    /// The minutes to compare with a threshold: a lower bound counts as a hair above itself, so
    /// "over 20 minutes" is more than 20.
    pub(crate) fn minutes(self) -> Option<f64> {
        match self {
            Duration::Exact(m) | Duration::AtMost(m) => Some(m),
            Duration::AtLeast(m) => Some(m + 0.5),
            Duration::Vague => None,
        }
    }

    /// How the value reads in a summary ("25 min", "over 120 min").
    pub(crate) fn describe(self) -> String {
        let fmt = |m: f64| {
            if m.fract() == 0.0 {
                format!("{m:.0} min")
            } else {
                format!("{m:.1} min")
            }
        };
        match self {
            Duration::Exact(m) => fmt(m),
            Duration::AtLeast(m) => format!("over {}", fmt(m)),
            Duration::AtMost(m) => format!("under {}", fmt(m)),
            Duration::Vague => "unclear".into(),
        }
    }
}

const NUMBER_WORDS: &[(&str, f64)] = &[
    ("one", 1.0),
    ("two", 2.0),
    ("three", 3.0),
    ("four", 4.0),
    ("five", 5.0),
    ("six", 6.0),
    ("seven", 7.0),
    ("eight", 8.0),
    ("nine", 9.0),
    ("ten", 10.0),
    ("eleven", 11.0),
    ("twelve", 12.0),
    ("fifteen", 15.0),
    ("twenty", 20.0),
    ("twenty-five", 25.0),
    ("thirty", 30.0),
    ("forty", 40.0),
    ("forty-five", 45.0),
    ("fifty", 50.0),
    ("sixty", 60.0),
    ("ninety", 90.0),
    ("a couple of", 2.0),
    ("couple of", 2.0),
    ("a couple", 2.0),
    ("a few", 3.0),
    ("few", 3.0),
    ("several", 3.0),
    ("half an", 0.5),
    ("half a", 0.5),
    ("an", 1.0),
    ("a", 1.0),
];

static SPELLED_QTY: &str = r"twenty-five|forty-five|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|ninety|a couple of|couple of|a couple|a few|few|several|half an|half a|an|a";

/// `(bound)? (qty) (unit)`, where a one-letter unit needs digits right before it.
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    // verbose mode ignores plain spaces: the quantities' spaces are escaped
    let spelled = SPELLED_QTY.replace(' ', r"\ ");
    Regex::new(&format!(
        r"(?ix)
        (?P<bound>more\ than|longer\ than|over|at\ least|past|almost|nearly|about|around|roughly|approx(?:imately)?|~|>|<|under|less\ than|below|within|only|just)?\s*
        (?:
            (?P<num>\d+(?:\.\d+)?)\s*(?P<short>m|h|d|w|hr|hrs|min|mins)\b
          | \b(?P<qty>\d+(?:\.\d+)?|{spelled})(?P<half1>\s+and\s+a\s+half)?\s*(?P<plus0>\+)?\s*(?P<unit>minutes?|mins?|hours?|hrs?|days?|weeks?|seconds?|secs?)\b
        )
        (?P<half>\s+and\s+a\s+half)?
        (?P<plus>\s*\+|\s+or\s+(?:more|longer|so))?"
    ))
    .unwrap()
});

/// Words that make the amount after them time ahead ("in 30 min", "another 10 minutes").
static AHEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:\bin|\bwithin the next|\banother|\bnext|\bgive it|\bwait|\bfor another|\bremind me in)\s*$")
        .unwrap()
});

/// `1h30`, `1h 30m`, `2 hours 15 minutes`, `1 hour and 20 min`.
static COMPOUND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?ix)\b(?P<h>\d+)\s*(?:h|hr|hrs|hours?)\s*(?:and\s+)?(?P<m>\d+)\s*(?:m|min|mins|minutes?)?\b").unwrap()
});

/// Phrases with no number that still say how long.
const PHRASES: &[(&str, Duration)] = &[
    ("just now", Duration::AtMost(1.0)),
    ("just started", Duration::AtMost(1.0)),
    ("just appeared", Duration::AtMost(1.0)),
    ("a moment ago", Duration::AtMost(1.0)),
    ("a few seconds", Duration::AtMost(1.0)),
    ("few seconds", Duration::AtMost(1.0)),
    ("seconds ago", Duration::AtMost(1.0)),
    ("for hours", Duration::AtLeast(120.0)),
    ("hours now", Duration::AtLeast(120.0)),
    ("hours and hours", Duration::AtLeast(120.0)),
    ("all day", Duration::AtLeast(240.0)),
    ("the whole day", Duration::AtLeast(240.0)),
    ("all night", Duration::AtLeast(240.0)),
    ("overnight", Duration::AtLeast(240.0)),
    ("since yesterday", Duration::AtLeast(240.0)),
    ("since last night", Duration::AtLeast(240.0)),
    ("for days", Duration::AtLeast(1440.0)),
    ("since last week", Duration::AtLeast(1440.0)),
    ("three quarters of an hour", Duration::Exact(45.0)),
    ("quarter of an hour", Duration::Exact(15.0)),
    ("quarter hour", Duration::Exact(15.0)),
    ("an hour and a half", Duration::Exact(90.0)),
    ("hour and a half", Duration::Exact(90.0)),
    ("one and a half hours", Duration::Exact(90.0)),
    ("for a while", Duration::Vague),
    ("a while", Duration::Vague),
    ("since this morning", Duration::Vague),
    ("since this afternoon", Duration::Vague),
    ("since earlier", Duration::Vague),
    ("for ages", Duration::Vague),
    ("forever", Duration::Vague),
    ("a long time", Duration::Vague),
    ("long time", Duration::Vague),
    ("some time", Duration::Vague),
    ("since the cluster was created", Duration::Vague),
];

/// A bare number answering "for how many minutes?".
static BARE_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?P<bound>about|around|roughly|maybe|like|over|more than|almost|nearly|~|>|<|under)?\s*(?P<n>\d{1,5})\s*(?P<plus>\+)?\s*[.!]?\s*$").unwrap()
});

fn bound_of(word: Option<&str>, plus: bool, m: f64) -> Duration {
    match word.map(|w| w.to_lowercase()).as_deref() {
        _ if plus => Duration::AtLeast(m),
        Some("more than" | "longer than" | "over" | "at least" | "past" | ">") => Duration::AtLeast(m),
        Some("under" | "less than" | "below" | "within" | "<") => Duration::AtMost(m),
        _ => Duration::Exact(m),
    }
}

fn unit_minutes(unit: &str) -> f64 {
    let u = unit.to_lowercase();
    if u.starts_with("se") {
        1.0 / 60.0
    } else if u.starts_with('w') {
        7.0 * 1440.0
    } else if u.starts_with('d') {
        1440.0
    } else if u.starts_with('h') {
        60.0
    } else {
        1.0
    }
}

fn quantity(q: &str) -> Option<f64> {
    let q = q.to_lowercase();
    NUMBER_WORDS
        .iter()
        .find(|(w, _)| *w == q)
        .map(|(_, v)| *v)
        .or_else(|| q.parse().ok())
}

fn round(m: f64) -> f64 {
    (m * 10.0).round() / 10.0
}

/// "since 9:10", and the time now when the text gives it ("it's 10:05 now").
static SINCE_CLOCK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bsince\s+(?:about\s+|around\s+|~)?(\d{1,2})[:.h](\d{2})\b").unwrap());
static NOW_CLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:\b(?:it'?s|its|it is|now)\s+(?:about\s+|around\s+)?(\d{1,2})[:.h](\d{2})\b)|(?:\b(\d{1,2})[:.h](\d{2})\s+now\b)").unwrap()
});

fn clock_minutes(h: &str, m: &str) -> Option<f64> {
    let h: f64 = h.parse().ok()?;
    let m: f64 = m.parse().ok()?;
    (h < 24.0 && m < 60.0).then_some(h * 60.0 + m)
}

/// "since 9:10 ... it's 10:05 now" is 55 minutes; "since 9:10" alone is vague.
fn since_clock(lower: &str) -> Option<Duration> {
    let since = SINCE_CLOCK.captures(lower)?;
    let from = clock_minutes(&since[1], &since[2])?;
    let rest = &lower[since.get(0)?.end()..];
    let now = NOW_CLOCK
        .captures(rest)
        .or_else(|| NOW_CLOCK.captures(&lower[..since.get(0)?.start()]));
    let Some(now) = now else {
        return Some(Duration::Vague);
    };
    let (h, m) = match (now.get(1), now.get(2), now.get(3), now.get(4)) {
        (Some(h), Some(m), _, _) | (_, _, Some(h), Some(m)) => (h.as_str(), m.as_str()),
        _ => return Some(Duration::Vague),
    };
    let to = clock_minutes(h, m)?;
    let mut d = to - from;
    if d < 0.0 {
        d += 24.0 * 60.0;
    }
    Some(Duration::Exact(d))
}

/// The duration the text names, if any. `answering` is true when the text replies to "for how many
/// minutes?", where a bare number means minutes.
pub(crate) fn read(text: &str, answering: bool) -> Option<Duration> {
    let lower = text.to_lowercase();
    if let Some(d) = since_clock(&lower) {
        return Some(d);
    }
    if let Some(c) = COMPOUND.captures(&lower) {
        let h: f64 = c["h"].parse().ok()?;
        let m: f64 = c["m"].parse().ok()?;
        if m < 60.0 {
            return Some(Duration::Exact(h * 60.0 + m));
        }
    }
    let mut found: Option<(usize, Duration)> = None;
    for (phrase, d) in PHRASES {
        if let Some(at) = find_phrase(&lower, phrase) {
            if found.is_none_or(|(f, _)| at < f) {
                found = Some((at, *d));
            }
        }
    }
    for c in AMOUNT.captures_iter(&lower) {
        let at = c.get(0).map_or(0, |m| m.start());
        // "back in 30 min", "join in 5", "another 10 minutes": time ahead, not time gone by
        if AHEAD.is_match(&lower[..at]) {
            continue;
        }
        let (n, unit) = match (c.name("num"), c.name("short"), c.name("qty"), c.name("unit")) {
            (Some(n), Some(u), _, _) => (n.as_str().parse::<f64>().ok(), u.as_str()),
            (_, _, Some(q), Some(u)) => (quantity(q.as_str()), u.as_str()),
            _ => continue,
        };
        let Some(mut n) = n else { continue };
        if c.name("half").is_some() || c.name("half1").is_some() {
            n += 0.5;
        }
        let m = round(n * unit_minutes(unit));
        let plus = c.name("plus").is_some() || c.name("plus0").is_some();
        let d = bound_of(c.name("bound").map(|b| b.as_str()), plus, m);
        // a phrase that starts inside this amount ("an hour and a half") was already read whole
        if found.is_none_or(|(f, _)| at < f) {
            found = Some((at, d));
        }
        break;
    }
    if let Some((_, d)) = found {
        return Some(d);
    }
    if answering {
        if let Some(c) = BARE_NUMBER.captures(&lower) {
            let n: f64 = c["n"].parse().ok()?;
            return Some(bound_of(
                c.name("bound").map(|b| b.as_str()),
                c.name("plus").is_some(),
                n,
            ));
        }
    }
    None
}

/// Byte offset of `phrase` in `text` as whole words.
fn find_phrase(text: &str, phrase: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(phrase) {
        let at = from + i;
        let end = at + phrase.len();
        let before_ok = text[..at].chars().last().is_none_or(|c| !c.is_alphanumeric());
        let after_ok = text[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            return Some(at);
        }
        from = at + phrase.len().max(1);
        if from >= text.len() {
            break;
        }
        while !text.is_char_boundary(from) {
            from += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use Duration::*;

    #[test]
    fn durations_in_every_common_form() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("about 25 min", Some(Exact(25.0))),
            ("50 min", Some(Exact(50.0))),
            ("50m", Some(Exact(50.0))),
            ("2h now", Some(Exact(120.0))),
            ("2 h", Some(Exact(120.0))),
            ("it's been 2 hours", Some(Exact(120.0))),
            ("stuck for half an hour", Some(Exact(30.0))),
            ("an hour and a half", Some(Exact(90.0))),
            ("1.5 hours", Some(Exact(90.0))),
            ("2 and a half hours", Some(Exact(150.0))),
            ("two and a half hours", Some(Exact(150.0))),
            ("1h30", Some(Exact(90.0))),
            ("1h 30m", Some(Exact(90.0))),
            ("1 hour 20 minutes", Some(Exact(80.0))),
            ("over a day", Some(AtLeast(1440.0))),
            ("more than 20 minutes", Some(AtLeast(20.0))),
            ("20+ min", Some(AtLeast(20.0))),
            ("30 minutes or more", Some(AtLeast(30.0))),
            ("just 5 minutes", Some(Exact(5.0))),
            ("under 10 minutes", Some(AtMost(10.0))),
            ("a few hours", Some(Exact(180.0))),
            ("a couple of minutes", Some(Exact(2.0))),
            ("for 3 days", Some(Exact(4320.0))),
            ("since 45 minutes", Some(Exact(45.0))),
            ("twenty minutes", Some(Exact(20.0))),
            ("for hours", Some(AtLeast(120.0))),
            ("all day", Some(AtLeast(240.0))),
            ("since yesterday", Some(AtLeast(240.0))),
            ("just now", Some(AtMost(1.0))),
            ("it just started", Some(AtMost(1.0))),
            ("for a while", Some(Vague)),
            ("since this morning", Some(Vague)),
            ("openshift 4.14", None),
            ("I am seeing it", None),
            ("VPC and OpenShift", None),
            (
                "I am seeing Pending endpoint gateway creation on the new VPC workers, it's been 2 hours",
                Some(Exact(120.0)),
            ),
            ("workers show Pending security group creation and nothing else", None),
            ("3 workers, 2 zones", None),
            ("an admission webhook", None),
            ("quarter of an hour maybe", Some(Exact(15.0))),
            ("brb grabbing coffee, back in 30 min", None),
            ("no worries, I will join the bridge in 5", None),
            ("give it another 10 minutes", None),
            (
                "customer says it's been like that since 9:10, it's 10:05 now",
                Some(Exact(55.0)),
            ),
            ("since 9:10", Some(Vague)),
        ];
        for (text, want) in cases {
            assert_eq!(read(text, false), *want, "{text}");
        }
    }

    #[test]
    fn a_bare_number_is_minutes_only_as_an_answer() {
        assert_eq!(read("25", true), Some(Exact(25.0)));
        assert_eq!(read("25", false), None);
        assert_eq!(read("~ 40", true), Some(Exact(40.0)));
        assert_eq!(read("over 30", true), Some(AtLeast(30.0)));
        assert_eq!(read("2", true), Some(Exact(2.0)));
    }

    #[test]
    fn a_lower_bound_passes_its_own_threshold() {
        assert!(AtLeast(20.0).minutes().unwrap() > 20.0);
        assert_eq!(Exact(20.0).minutes(), Some(20.0));
        assert_eq!(Vague.minutes(), None);
    }
}
