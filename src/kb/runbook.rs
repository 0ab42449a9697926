//! Reading the runbook itself (Markdown with Jekyll front matter), so `netrunbook check --runbook` can
//! prove the knowledge base covers every section, names only headings that exist, loses none of the
//! links a section gives, and states no checkable fact (number, command, channel, team, name, URL) its
//! section does not.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{KnowledgeBase, Node, Problem, Source};

/// One `##`/`###` section of the runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub heading: String,
    pub line: usize,
    /// Every URL the section's text names (Markdown links and bare URLs).
    pub urls: Vec<String>,
    /// The lines under the heading up to the next heading, code blocks included: what an intent's facts
    /// are checked against.
    pub body: String,
}

/// The parts of the runbook `check` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Runbook {
    /// The front matter's `link:` value.
    pub link: Option<String>,
    pub sections: Vec<Section>,
}

impl Runbook {
    /// A section's heading and body, the text its intent's facts must come from.
    fn text_of(&self, heading: &str) -> Option<String> {
        self.sections
            .iter()
            .find(|s| s.heading == heading)
            .map(|s| format!("{}\n{}", s.heading, s.body))
    }
}

static MD_LINK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\]\(([^)\s]+)\)").unwrap());
static BARE_URL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"https?://[^\s)\]<>]+").unwrap());

/// Parse the runbook text.
pub(crate) fn parse(text: &str) -> Runbook {
    let mut link = None;
    let mut body_start = 0;
    let lines: Vec<&str> = text.lines().collect();
    if lines.first().map(|l| l.trim()) == Some("---") {
        if let Some(end) = lines.iter().skip(1).position(|l| l.trim() == "---") {
            for l in &lines[1..=end] {
                if let Some(v) = l.strip_prefix("link:") {
                    link = Some(v.trim().trim_matches('"').to_string());
                }
            }
            body_start = end + 2;
        }
    }
    let mut sections: Vec<Section> = Vec::new();
    let mut in_code = false;
    for (i, line) in lines.iter().enumerate().skip(body_start) {
        let fence = line.trim_start().starts_with("```");
        if fence {
            in_code = !in_code;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !fence && !in_code && (2..=3).contains(&hashes) && line[hashes..].starts_with(' ') {
            sections.push(Section {
                heading: line[hashes..].trim().to_string(),
                line: i + 1,
                urls: Vec::new(),
                body: String::new(),
            });
            continue;
        }
        if let Some(s) = sections.last_mut() {
            s.body.push_str(line);
            s.body.push('\n');
            if fence || in_code {
                continue;
            }
            for c in MD_LINK.captures_iter(line) {
                s.urls.push(c[1].to_string());
            }
            for m in BARE_URL.find_iter(line) {
                let u = m.as_str().trim_end_matches(['.', ',']).to_string();
                if !s.urls.contains(&u) {
                    s.urls.push(u);
                }
            }
        }
    }
    Runbook { link, sections }
}

/// Compare the knowledge base with the runbook: every section covered by exactly one intent (structural
/// headings excepted), every intent's heading present, every link of a section kept by its intent, and
/// the page link in `_runbook.yaml` equal to the front matter's.
pub(crate) fn compare(kb: &KnowledgeBase, runbook: &Runbook, runbook_name: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let at = |line: Option<usize>, message: String| Problem {
        file: runbook_name.to_string(),
        line,
        message,
    };
    if let Some(link) = &runbook.link {
        if link != &kb.site.page {
            problems.push(at(
                None,
                format!(
                    "front matter link `{link}` differs from _runbook.yaml page `{}`",
                    kb.site.page
                ),
            ));
        }
    }
    for s in &runbook.sections {
        if kb.site.structural.contains(&s.heading) {
            continue;
        }
        let Some(intent) = kb.intents.iter().find(|i| i.heading == s.heading) else {
            problems.push(at(
                Some(s.line),
                format!("section `{}` is not covered by any intent", s.heading),
            ));
            continue;
        };
        let mut kept: Vec<&str> = intent.links.iter().map(|l| l.url.as_str()).collect();
        for node in intent.flow.iter().flat_map(|f| f.nodes.values()) {
            if let Node::Say { links, .. } = node {
                kept.extend(links.iter().map(|l| l.url.as_str()));
            }
        }
        for url in &s.urls {
            if !kept.iter().any(|k| k == url) {
                problems.push(Problem {
                    file: intent.file.clone(),
                    line: None,
                    message: format!(
                        "section `{}` links {url}, which intent `{}` does not keep",
                        s.heading, intent.id
                    ),
                });
            }
        }
    }
    for i in &kb.intents {
        if !runbook.sections.iter().any(|s| s.heading == i.heading) {
            problems.push(Problem {
                file: i.file.clone(),
                line: None,
                message: format!("heading `{}` does not exist in {runbook_name}", i.heading),
            });
        }
    }
    problems
}

// ---- what intents claim ------------------------------------------------------------------------

/// The kinds of checkable fact an intent's text can state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClaimKind {
    /// A backticked span: a command, pod, alert or error text.
    Code,
    Url,
    /// A Slack channel, `#conductors`.
    Channel,
    /// The name before "team" or "squad": `Netint` in "the Netint team", `VPC IPOps` in "VPC IPOps team".
    Team,
    /// A proper name from [`KNOWN_NAMES`] anywhere in the text.
    Name,
    /// Any other token with a digit: `20`, `1.23`, `6/30/24`, `2s`.
    Number,
}

impl ClaimKind {
    fn label(self) -> &'static str {
        match self {
            ClaimKind::Code => "backticked",
            ClaimKind::Url => "URL",
            ClaimKind::Channel => "channel",
            ClaimKind::Team => "team",
            ClaimKind::Name => "name",
            ClaimKind::Number => "number",
        }
    }
}

/// A fact an intent's text states that the runbook section must state too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Claim {
    pub kind: ClaimKind,
    /// As written, without backticks, mrkdwn emphasis or trailing punctuation.
    pub text: String,
    /// 0-based line of the intent text it is on, to find it again in the YAML.
    pub line: usize,
}

/// The proper names the runbook uses (teams, the customer with an exception, vendors, tools). Naming one
/// is a claim wherever it appears, and each counts as a team name before "team" or "squad" even in lower
/// case (`armada-network squad`).
pub(crate) const KNOWN_NAMES: &[&str] = &[
    "armada-network",
    "Netint",
    "IPOps",
    "Qualtrics",
    "Clarabridge",
    "Sysdig",
    "Jenkins",
    "PagerDuty",
    "Vyatta",
    "Fortigate",
    "Juniper",
];

static CODE_SPAN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"`([^`]+)`").unwrap());
/// A URL in intent text: mrkdwn links (`<url|title>`) end it at `|` or `>`.
static TEXT_URL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"https?://[^\s)\]<>|`]+").unwrap());
static CHANNEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)(?:^|[\s(\["'*_])(#[a-z][a-z0-9_-]*[a-z0-9])"#).unwrap());
static LIST_MARKER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d+[.)]$").unwrap());

/// Every checkable fact of an intent text, line by line. Each rule blanks what it took, so a number
/// inside a backticked span or a URL is checked as part of that span or URL, and a channel is not
/// also a number. Ordinal list markers at the start of a line (`1.`) are not facts.
pub(crate) fn claims(text: &str) -> Vec<Claim> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line.to_string();
        let mut take = |re: &Regex, group: usize, kind: ClaimKind, rest: &mut String| {
            let found: Vec<(std::ops::Range<usize>, String)> = re
                .captures_iter(rest)
                .filter_map(|c| c.get(group).map(|m| (m.range(), m.as_str().to_string())))
                .collect();
            for (range, raw) in found {
                rest.replace_range(range.clone(), &" ".repeat(range.len()));
                let text = match kind {
                    ClaimKind::Url => raw.trim_end_matches(['.', ',', ';', ':', '!', '?', '*', '_']),
                    _ => raw.trim(),
                };
                if !text.is_empty() {
                    out.push(Claim {
                        kind,
                        text: text.to_string(),
                        line: n,
                    });
                }
            }
        };
        take(&CODE_SPAN, 1, ClaimKind::Code, &mut rest);
        take(&TEXT_URL, 0, ClaimKind::Url, &mut rest);
        take(&CHANNEL, 1, ClaimKind::Channel, &mut rest);
        let teams = teams(&rest);
        let names: Vec<String> = names(&rest)
            .into_iter()
            .filter(|name| !teams.iter().any(|t| contains_whole(&loose(t), &loose(name))))
            .collect();
        let numbers = numbers(&rest);
        for (kind, found) in [
            (ClaimKind::Team, teams),
            (ClaimKind::Name, names),
            (ClaimKind::Number, numbers),
        ] {
            out.extend(found.into_iter().map(|text| Claim { kind, text, line: n }));
        }
    }
    out
}

/// A word as a name: without surrounding mrkdwn and punctuation (`*VPC` is `VPC`).
fn bare(word: &str) -> &str {
    word.trim_matches(|c: char| !c.is_alphanumeric())
}

/// The names before "team(s)" and "squad(s)": the words right before it that are known names or
/// capitalised (a capitalised word that starts a sentence does not count, so "The Netint team" names
/// `Netint`). A word followed by punctuation ends the name.
pub(crate) fn teams(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if !matches!(bare(w).to_lowercase().as_str(), "team" | "teams" | "squad" | "squads") {
            continue;
        }
        let mut name: Vec<&str> = Vec::new();
        for j in (0..i).rev() {
            let word = bare(words[j]);
            let ends_clause = words[j]
                .trim_end_matches(['*', '_', '"', '\''])
                .ends_with([',', '.', ';', ':', ')', '!', '?']);
            let starts_sentence = j == 0
                || words[j - 1]
                    .trim_end_matches(['*', '_'])
                    .ends_with(['.', '!', '?', ':']);
            let known = KNOWN_NAMES.iter().any(|k| k.eq_ignore_ascii_case(word));
            let capitalised = word.starts_with(|c: char| c.is_uppercase()) && !starts_sentence;
            if word.is_empty() || ends_clause || !(known || capitalised) {
                break;
            }
            name.insert(0, word);
        }
        if !name.is_empty() {
            out.push(name.join(" "));
        }
    }
    out
}

/// The [`KNOWN_NAMES`] a line names, as written, each as a whole word (`sysdig-admission` is not `Sysdig`).
pub(crate) fn names(line: &str) -> Vec<String> {
    let lower = line.to_lowercase();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_');
    let mut found = Vec::new();
    for name in KNOWN_NAMES {
        let needle = name.to_lowercase();
        for (i, _) in lower.match_indices(&needle) {
            let end = i + needle.len();
            if !word(lower[..i].chars().next_back()) && !word(lower[end..].chars().next()) {
                found.push((i, line.get(i..end).unwrap_or(name).to_string()));
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, name)| name).collect()
}

/// Every token with a digit, without surrounding punctuation (`20+` is `20`, `(2s` is `2s`); a hyphen
/// separates tokens (`20-minute` says `20`). A number opening the line followed by `.` or `)` is a list
/// marker, not a fact.
pub(crate) fn numbers(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (k, token) in line.split_whitespace().enumerate() {
        if k == 0 && LIST_MARKER.is_match(token) {
            continue;
        }
        for part in token.split('-') {
            let part = bare(part);
            if part.chars().any(|c| c.is_ascii_digit()) {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// Lower case, backticks dropped, every run of `-`, `_` and white space one space: how spans and names
/// are compared, so `calico_node` is `calico-node` and `Calico Node`.
fn loose(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars() {
        if c == '`' {
            continue;
        }
        if c == '-' || c == '_' || c.is_whitespace() {
            gap = true;
            continue;
        }
        if gap && !out.is_empty() {
            out.push(' ');
        }
        gap = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// Whether `needle` occurs in `hay` as a whole, not as part of a longer word or number: `20` is not in
/// `2022`, `1.20` or `5/20/24`, while `4.9` is in `through 4.9.` and `2s` in `timeout=2s`.
fn contains_whole(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    // the two characters on one side, nearest first
    let glued = |side: &[char]| match side {
        [c, ..] if c.is_alphanumeric() => true,
        [c, d, ..] => matches!(c, '.' | ',' | '/' | ':') && d.is_ascii_digit(),
        _ => false,
    };
    hay.match_indices(needle).any(|(i, _)| {
        let before: Vec<char> = hay[..i].chars().rev().take(2).collect();
        let after: Vec<char> = hay[i + needle.len()..].chars().take(2).collect();
        !glued(&before) && !glued(&after)
    })
}

/// The runbook text an intent's claims are checked against, prepared once per intent.
struct Backing {
    lower: String,
    loose: String,
}

impl Backing {
    fn new(text: &str) -> Self {
        Backing {
            lower: text.to_lowercase(),
            loose: loose(text),
        }
    }

    /// Whether the text states the claim. A `...` in a backticked span stands for elided text: each part
    /// must be there.
    fn states(&self, claim: &Claim) -> bool {
        match claim.kind {
            ClaimKind::Url => self.lower.contains(&claim.text.to_lowercase()),
            ClaimKind::Number | ClaimKind::Channel => contains_whole(&self.lower, &claim.text.to_lowercase()),
            ClaimKind::Team | ClaimKind::Name => contains_whole(&self.loose, &loose(&claim.text)),
            ClaimKind::Code => claim
                .text
                .split('…')
                .flat_map(|p| p.split("..."))
                .map(loose)
                .filter(|p| !p.is_empty())
                .all(|p| contains_whole(&self.loose, &p)),
        }
    }
}

/// Check that every checkable fact (see [`claims`]) in an intent's summary and `say` steps is stated by
/// its runbook section, by the sections of its `see_also` intents, or by the escalation section (its
/// channel, squad and PagerDuty policy may be named anywhere). Tips and slot hints are our own advice
/// and are not checked. `sources` are the intent files, to find each claim's line; an intent whose
/// heading is missing from the runbook is left to [`compare`].
pub(crate) fn verify_claims(kb: &KnowledgeBase, runbook: &Runbook, sources: &[Source]) -> Vec<Problem> {
    let escalation = runbook.text_of(&kb.escalation_intent().heading).unwrap_or_default();
    let mut problems = Vec::new();
    for intent in &kb.intents {
        let Some(own) = runbook.text_of(&intent.heading) else {
            continue;
        };
        let mut texts = vec![own];
        texts.extend(
            intent
                .see_also
                .iter()
                .filter_map(|id| kb.intent(id))
                .filter_map(|i| runbook.text_of(&i.heading)),
        );
        texts.push(escalation.clone());
        let backing = Backing::new(&texts.join("\n"));
        let also = if intent.see_also.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = intent.see_also.iter().map(|i| format!("`{i}`")).collect();
            format!(", nor do the sections of see_also {}", ids.join(", "))
        };
        let source = sources.iter().find(|s| s.name == intent.file);
        let mut said: Vec<(Vec<&str>, &str)> = vec![(vec!["summary"], &intent.summary)];
        for (name, node) in intent.flow.iter().flat_map(|f| &f.nodes) {
            if let Node::Say { text, .. } = node {
                said.push((vec!["flow", "nodes", name], text));
            }
        }
        for (path, text) in said {
            let lines: Vec<&str> = text.lines().collect();
            let mut reported = HashSet::new();
            for claim in claims(text) {
                if backing.states(&claim) || !reported.insert(claim.clone()) {
                    continue;
                }
                let line = source.and_then(|s| line_in_source(&s.text, &path, lines[claim.line], &claim.text));
                let place = match path.last() {
                    Some(node) if path.len() > 1 => format!("intent `{}` node `{node}`", intent.id),
                    _ => format!("intent `{}`", intent.id),
                };
                problems.push(Problem {
                    file: intent.file.clone(),
                    line,
                    message: format!(
                        "{place} says `{}` ({}) but section \"{}\" does not{also}",
                        claim.text,
                        claim.kind.label(),
                        intent.heading
                    ),
                });
            }
        }
    }
    problems
}

/// The 1-based line of a claim in its YAML file: the keys of `path` are found one after the other
/// (`flow`, `nodes`, the node's name), then the first line after them that holds the claim's line of
/// text, or failing that the claim itself.
fn line_in_source(source: &str, path: &[&str], text_line: &str, claim: &str) -> Option<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let mut start = 0;
    for key in path {
        let key = format!("{key}:");
        if let Some(at) = lines[start..].iter().position(|l| l.trim_start().starts_with(&key)) {
            start += at;
        }
    }
    let find = |needle: &str| {
        let needle = needle.trim();
        if needle.is_empty() {
            return None;
        }
        lines[start..]
            .iter()
            .position(|l| l.contains(needle))
            .map(|i| start + i + 1)
    };
    find(text_line).or_else(|| find(claim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_links_and_front_matter_are_read() {
        let rb = parse("---\nlink: /a/b.html\n---\n## One\nsee [x](./x.html) and https://y.io/z.\n```\n## not a heading\n```\n### Two\n");
        assert_eq!(rb.link.as_deref(), Some("/a/b.html"));
        let headings: Vec<&str> = rb.sections.iter().map(|s| s.heading.as_str()).collect();
        assert_eq!(headings, ["One", "Two"]);
        assert_eq!(rb.sections[0].urls, ["./x.html", "https://y.io/z"]);
        assert_eq!(
            rb.sections[0].body,
            "see [x](./x.html) and https://y.io/z.\n```\n## not a heading\n```\n"
        );
    }

    /// The claims of `text` as `kind text` strings, in the order the rules find them.
    fn check_claims(text: &str, expect: &[&str]) {
        let got: Vec<String> = claims(text)
            .iter()
            .map(|c| format!("{} {}", c.kind.label(), c.text))
            .collect();
        assert_eq!(got, expect, "claims of {text:?}");
    }

    #[test]
    fn claims_are_numbers_spans_channels_teams_names_and_urls() {
        check_claims("Wait 20 minutes.", &["number 20"]);
        check_claims("*Stuck 20+ minutes*: (2s timeout)", &["number 20", "number 2s"]);
        check_claims(
            "IKS 1.23 (unsupported 5/8/23), until 6/30/24; 4.9.",
            &["number 1.23", "number 5/8/23", "number 6/30/24", "number 4.9"],
        );
        check_claims("1. Remove it.\n2) Then 3 more.", &["number 3"]);
        check_claims("a 20-minute wait, FAB-12421", &["number 20", "number 12421"]);
        check_claims(
            "Run `kubectl get pods -n calico-system` on 1.27",
            &["backticked kubectl get pods -n calico-system", "number 1.27"],
        );
        check_claims(
            "see https://x.io/a?b=1&c=2. or <https://y.io/1|the doc>",
            &["URL https://x.io/a?b=1&c=2", "URL https://y.io/1"],
        );
        check_claims(
            "post in #conductors or `#containers-cie`, not in C#",
            &["backticked #containers-cie", "channel #conductors"],
        );
        check_claims("Ask the Netint team.", &["team Netint"]);
        check_claims("ask the *VPC IPOps team* to check", &["team VPC IPOps"]);
        check_claims("the *armada-network* squad", &["team armada-network"]);
        check_claims("The Netint team, or the IKS network teams", &["team Netint"]);
        check_claims(
            "the Sysdig webhook, not `sysdig-admission`; sysdig-agent; Qualtrics (Clarabridge)",
            &[
                "backticked sysdig-admission",
                "name Sysdig",
                "name Qualtrics",
                "name Clarabridge",
            ],
        );
    }

    #[test]
    fn whole_words_and_numbers_only() {
        assert!(contains_whole("more than 20 minutes", "20"));
        assert!(contains_whole("through 4.9.", "4.9"));
        assert!(contains_whole("timeout=2s\"", "2s"));
        assert!(!contains_whole("2022-09-08", "20"));
        assert!(!contains_whole("version 1.20", "20"));
        assert!(!contains_whole("on 5/20/24", "20"));
        assert!(!contains_whole("version 1.23", "1.2"));
        assert!(!contains_whole("#armada-network-x", "#armada-network-"));
    }

    #[test]
    fn spans_compare_loosely() {
        let b = Backing::new("The `calico_node` pod; `sysdig-admission-controller-webhook`.\n```\nFailed to set NetworkUnavailable; will retry (Client.Timeout exceeded)\n```\n");
        let code = |text: &str| Claim {
            kind: ClaimKind::Code,
            text: text.into(),
            line: 0,
        };
        assert!(b.states(&code("calico-node")));
        assert!(b.states(&code("Calico Node")));
        assert!(b.states(&code("Failed to set NetworkUnavailable ... Client.Timeout exceeded")));
        assert!(b.states(&code("calico")), "a whole word of the span");
        assert!(!b.states(&code("calico-kube")));
        assert!(!b.states(&code("Failed to set NetworkUnavailable ... Server.Timeout exceeded")));
        assert!(!b.states(&code("nslookup")));
    }

    fn kb_with(dns: &str) -> (KnowledgeBase, Vec<Source>) {
        let src = |name: &str, text: &str| Source {
            name: format!("intents/{name}"),
            text: text.to_string(),
        };
        let sources = vec![
            src(
                "_runbook.yaml",
                "title: T\nbase_url: https://h/r\npage: /a/p.html\nescalation: esc\n",
            ),
            src(
                "esc.yaml",
                "id: esc\nheading: Escalation Policy\ntitle: Escalate\nsummary: Ask in `#armada-network`.\nmatch:\n  terms: { escalate: 3 }\n",
            ),
            src(
                "lb.yaml",
                "id: lb\nheading: LB\ntitle: LB\nsummary: Run `nslookup`.\nmatch:\n  terms: { load balancer: 3 }\n",
            ),
            src("dns.yaml", dns),
        ];
        let kb = KnowledgeBase::from_sources(sources.clone(), &Default::default()).unwrap();
        (kb, sources)
    }

    const RUNBOOK: &str = "## DNS\nWait 20 minutes, then ask the Netint team.\n## LB\nRun `nslookup`.\n## Escalation Policy\n* Slack channel: [#armada-network](https://x.slack.com/messages/armada-network)\n";

    const DNS: &str = "id: dns\nheading: DNS\ntitle: DNS\nsummary: |\n  Wait 20 minutes, then ask the Netint team.\n  Run `nslookup`, or ask in #armada-network or #conductors.\nmatch:\n  terms: { dns: 3 }\nflow:\n  start: wait\n  nodes:\n    wait:\n      say: Wait 30 seconds.\n      tip: Try `dig` in 5 minutes.\n";

    fn messages(dns: &str) -> Vec<String> {
        let (kb, sources) = kb_with(dns);
        verify_claims(&kb, &parse(RUNBOOK), &sources)
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn claims_the_section_does_not_make_are_reported_with_file_and_line() {
        assert_eq!(
            messages(DNS),
            [
                "intents/dns.yaml:6: intent `dns` says `nslookup` (backticked) but section \"DNS\" does not",
                "intents/dns.yaml:6: intent `dns` says `#conductors` (channel) but section \"DNS\" does not",
                "intents/dns.yaml:13: intent `dns` node `wait` says `30` (number) but section \"DNS\" does not",
            ]
        );
    }

    #[test]
    fn see_also_sections_back_claims_too() {
        let dns = DNS.replacen("title: DNS\n", "title: DNS\nsee_also: [lb]\n", 1);
        assert_eq!(
            messages(&dns),
            [
                "intents/dns.yaml:7: intent `dns` says `#conductors` (channel) but section \"DNS\" does not, nor do the sections of see_also `lb`",
                "intents/dns.yaml:14: intent `dns` node `wait` says `30` (number) but section \"DNS\" does not, nor do the sections of see_also `lb`",
            ]
        );
    }

    #[test]
    fn see_also_must_name_an_intent() {
        let dns = DNS.replacen("title: DNS\n", "title: DNS\nsee_also: [nowhere]\n", 1);
        let err = KnowledgeBase::from_sources(
            kb_with(DNS)
                .1
                .into_iter()
                .filter(|s| !s.name.ends_with("dns.yaml"))
                .chain([Source {
                    name: "intents/dns.yaml".into(),
                    text: dns,
                }])
                .collect(),
            &Default::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.problems().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["intents/dns.yaml:4: see_also names unknown intent `nowhere`"]
        );
    }
}
