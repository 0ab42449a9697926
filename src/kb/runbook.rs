//! Reading the runbook itself (Markdown with Jekyll front matter), so `netrunbook check --runbook` can
//! prove the knowledge base covers every section, names only headings that exist, and loses none of the
//! links a section gives.

use super::{KnowledgeBase, Problem};
use std::sync::LazyLock;

use regex::Regex;

/// One `##`/`###` section of the runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub heading: String,
    pub line: usize,
    /// Every URL the section's text names (Markdown links and bare URLs).
    pub urls: Vec<String>,
}

/// The parts of the runbook `check` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runbook {
    /// The front matter's `link:` value.
    pub link: Option<String>,
    pub sections: Vec<Section>,
}

static MD_LINK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\]\(([^)\s]+)\)").unwrap());
static BARE_URL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"https?://[^\s)\]<>]+").unwrap());

/// Parse the runbook text.
pub fn parse(text: &str) -> Runbook {
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
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if (2..=3).contains(&hashes) && line[hashes..].starts_with(' ') {
            sections.push(Section {
                heading: line[hashes..].trim().to_string(),
                line: i + 1,
                urls: Vec::new(),
            });
            continue;
        }
        if let Some(s) = sections.last_mut() {
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
pub fn compare(kb: &KnowledgeBase, runbook: &Runbook, runbook_name: &str) -> Vec<Problem> {
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
            if let super::Node::Say { links, .. } = node {
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
    }
}
