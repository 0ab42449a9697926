//! Which parts of a message count, and how: the clauses that rule a component out ("calico-node is
//! fine, it's the controllers pod", "not a DNS issue"), whose component names count against their
//! sections, and the quiet lines of a pasted log, which are not read beside telling lines.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use rustc_hash::FxHashMap;

use super::{ascii_word_boundaries, Correction, Lexicon};

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

impl Lexicon {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
