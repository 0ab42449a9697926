//! The knowledge base: intents (one per runbook section), shared vocabulary, slots and flows, loaded from
//! `intents/` and validated into a [`KnowledgeBase`] whose references are known to resolve.
//!
//! Only `load.rs` knows the YAML shapes; everything else sees these parsed types. A `KnowledgeBase` is
//! immutable: a reload builds a new one and swaps it in whole.

mod live;
mod load;
pub mod runbook;

use std::collections::BTreeMap;

pub use live::{LiveKb, ReloadError, Reloaded};
pub use load::{builtin_sources, KbError, LoadOptions, Problem, Source};

use crate::matcher::Matcher;
use crate::text::Lexicon;

/// Where the runbook page lives, for building section links and resolving relative links.
#[derive(Debug, Clone)]
pub struct RunbookSite {
    pub title: String,
    /// Site root, e.g. `https://pages.github.ibm.com/.../runbooks` (no trailing slash).
    pub base_url: String,
    /// The page's `link:` front-matter value, e.g. `/armada/armada-network-initial-troubleshooting.html`.
    pub page: String,
    /// Runbook headings that organise the page but are not sections anyone asks about.
    pub structural: Vec<String>,
}

impl RunbookSite {
    pub fn page_url(&self) -> String {
        format!("{}{}", self.base_url, self.page)
    }

    /// Resolve a link as written in the runbook: absolute URLs stay, `./x` is relative to the page's
    /// directory, `/x` to the site root.
    pub fn resolve(&self, url: &str) -> String {
        if let Some(rest) = url.strip_prefix("./") {
            let dir = self.page.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            format!("{}{}/{}", self.base_url, dir, rest)
        } else if url.starts_with('/') {
            format!("{}{}", self.base_url, url)
        } else if url.starts_with('#') {
            format!("{}{}", self.page_url(), url)
        } else {
            url.to_string()
        }
    }
}

/// A link an intent or flow step names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    pub title: String,
    /// As written in the YAML (may be relative).
    pub url: String,
    /// Absolute URL.
    pub resolved: String,
}

/// One runbook section.
#[derive(Debug, Clone)]
pub struct Intent {
    pub id: String,
    pub heading: String,
    pub anchor: String,
    /// `page_url#anchor`.
    pub url: String,
    pub title: String,
    pub group: String,
    pub summary: String,
    pub links: Vec<Link>,
    /// Teams, channels, alerts, thresholds, errors: everything else the section names.
    pub facts: BTreeMap<String, Vec<String>>,
    pub flow: Option<Flow>,
    /// File it came from, for error messages and `check`.
    pub file: String,
}

/// A follow-up dialogue: a graph of nodes starting at `start`.
#[derive(Debug, Clone)]
pub struct Flow {
    pub start: String,
    pub nodes: BTreeMap<String, Node>,
}

/// A step of a flow.
#[derive(Debug, Clone)]
pub enum Node {
    /// Ask for a slot; each option leads to a node.
    Ask {
        slot: String,
        question: Option<String>,
        next: BTreeMap<String, String>,
    },
    /// Give guidance, then go on to `then` or end the flow.
    Say {
        text: String,
        links: Vec<Link>,
        then: Option<String>,
        escalate: bool,
    },
}

/// A fact a flow can ask for.
#[derive(Debug, Clone)]
pub struct Slot {
    pub name: String,
    pub question: String,
    pub kind: SlotKind,
    /// Filled only by a reply to this very question (yes/no questions).
    pub only_when_asked: bool,
    /// The option a reply selects when it matches no other option.
    pub any_reply: Option<String>,
    pub options: Vec<SlotOption>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    Choice,
    /// A duration in minutes, bucketed by the options' bounds.
    Minutes,
}

#[derive(Debug, Clone)]
pub struct SlotOption {
    pub id: String,
    pub label: String,
    /// Canonical token sequences that select this option.
    pub words: Vec<Vec<String>>,
    /// Minutes bounds (`at_least <= m < below`), for `SlotKind::Minutes`.
    pub at_least: Option<f64>,
    pub below: Option<f64>,
}

/// The validated knowledge base.
#[derive(Debug)]
pub struct KnowledgeBase {
    /// Short hash of every source file: shown with each answer so it can be traced to the intents.
    pub version: String,
    pub site: RunbookSite,
    pub intents: Vec<Intent>,
    pub slots: BTreeMap<String, Slot>,
    /// Index of the escalation intent in `intents`.
    pub escalation: usize,
    pub lexicon: Lexicon,
    pub matcher: Matcher,
}

impl KnowledgeBase {
    pub fn intent(&self, id: &str) -> Option<&Intent> {
        self.intents.iter().find(|i| i.id == id)
    }

    pub fn escalation_intent(&self) -> &Intent {
        &self.intents[self.escalation]
    }

    /// The knowledge base compiled into the binary from `intents/`.
    pub fn builtin() -> Result<KnowledgeBase, KbError> {
        KnowledgeBase::from_sources(builtin_sources(), &LoadOptions::default())
    }
}

/// The anchor GitHub-flavoured kramdown (Jekyll's default) generates for a heading: lower case, every
/// character that is not a letter, digit, `_`, `-` or space removed, spaces turned into `-`.
pub fn gfm_anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_kramdown_gfm() {
        assert_eq!(
            gfm_anchor("PD Alert - Scrape Failure for armada-network"),
            "pd-alert---scrape-failure-for-armada-network"
        );
        assert_eq!(
            gfm_anchor("After Worker Update/Replace, `calico-node` Pod Does not Start on ROKS VPC Cluster"),
            "after-worker-updatereplace-calico-node-pod-does-not-start-on-roks-vpc-cluster"
        );
        assert_eq!(
            gfm_anchor("General Customer Complaints about \"Network Errors\""),
            "general-customer-complaints-about-network-errors"
        );
    }

    #[test]
    fn relative_links_resolve_against_the_page() {
        let site = RunbookSite {
            title: "t".into(),
            base_url: "https://h/docs/runbooks".into(),
            page: "/armada/page.html".into(),
            structural: vec![],
        };
        assert_eq!(site.resolve("./x.html"), "https://h/docs/runbooks/armada/x.html");
        assert_eq!(site.resolve("/y.html"), "https://h/docs/runbooks/y.html");
        assert_eq!(site.resolve("https://a/b"), "https://a/b");
        assert_eq!(site.resolve("#sec"), "https://h/docs/runbooks/armada/page.html#sec");
    }
}
