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
pub use load::{builtin_sources, read_dir_sources, KbError, LoadOptions, Problem, Source};

use crate::matcher::{MatchOutcome, Matcher, Prepared};
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
    pub(crate) fn page_url(&self) -> String {
        format!("{}{}", self.base_url, self.page)
    }

    /// Resolve a link as written in the runbook: absolute URLs stay, `./x` is relative to the page's
    /// directory, `/x` to the site root.
    pub(crate) fn resolve(&self, url: &str) -> String {
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
    /// Ids of intents whose runbook sections also back this one's text (`check --runbook`).
    pub see_also: Vec<String>,
    /// File it came from, for error messages and `check`.
    pub file: String,
}

/// A follow-up dialogue: a graph of nodes starting at `start`.
#[derive(Debug, Clone)]
pub struct Flow {
    pub start: String,
    pub nodes: BTreeMap<String, Node>,
    /// Example dialogues `netrunbook check` replays: they must end on their node.
    pub examples: Vec<FlowExample>,
}

/// A dialogue written into the knowledge base as a test: the first message, the free-text replies,
/// and the node the conversation must end on.
#[derive(Debug, Clone)]
pub struct FlowExample {
    pub say: Vec<String>,
    pub ends: String,
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
        /// The runbook says to hand over to armada-network here.
        escalate: bool,
        /// Where a "still stuck" / "didn't help" after this node leads: an ask node (its answer is
        /// asked again) or a say node. `None`: the escalation path, unless `elsewhere`.
        still: Option<String>,
        /// The problem belongs to another team or to the customer: no armada-network escalation is
        /// offered after this node.
        elsewhere: bool,
        /// Our own advice, not the runbook's, shown marked as such.
        tip: Option<String>,
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
    /// What the question is about (`calico-node`, `calico-kube-controllers`), as word sequences: a
    /// clause that names another slot's subject and not this one says nothing about this slot.
    pub about: Vec<Vec<String>>,
    /// How to find the answer out, for "not sure" (our own advice).
    pub find_out: Option<String>,
    /// File it came from, for `check`.
    pub file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    Choice,
    /// A duration in minutes, bucketed by the options' bounds.
    Minutes,
}

/// A count an option stands for ("exactly one" running, or any other number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountRule {
    Is(u32),
    IsNot(u32),
}

impl CountRule {
    pub(crate) fn accepts(self, n: u32) -> bool {
        match self {
            CountRule::Is(k) => n == k,
            CountRule::IsNot(k) => n != k,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SlotOption {
    pub id: String,
    pub label: String,
    /// Word sequences (stop words kept, so "our account" and "their account" stay apart) that select
    /// this option.
    pub words: Vec<Vec<String>>,
    /// Minutes bounds for `SlotKind::Minutes`: `at_least <= m`, `m < below`, `m > above`, `m <= up_to`.
    pub at_least: Option<f64>,
    pub below: Option<f64>,
    pub above: Option<f64>,
    pub up_to: Option<f64>,
    /// For a choice slot: a duration longer (or shorter) than this many minutes counts for the option
    /// ("over a day" for "stays NetworkUnavailable").
    pub minutes_over: Option<f64>,
    pub minutes_under: Option<f64>,
    /// A count of pods/nodes the option stands for ("2 kcc pods" is not "exactly one").
    pub count: Option<CountRule>,
    /// A ready ratio the option stands for: `Some(true)` all ready ("3/3"), `Some(false)` not ("0/1").
    pub ready: Option<bool>,
    /// Replies that must select this option, and near misses that must not (`netrunbook check`).
    pub examples: Vec<String>,
    pub near_misses: Vec<String>,
}

impl SlotOption {
    /// Whether a duration of `m` minutes falls in this option's bounds.
    pub(crate) fn fits(&self, m: f64) -> bool {
        self.at_least.is_none_or(|a| m >= a)
            && self.below.is_none_or(|b| m < b)
            && self.above.is_none_or(|a| m > a)
            && self.up_to.is_none_or(|u| m <= u)
    }
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
    /// Shared with the thread that fits the learned layer.
    pub lexicon: std::sync::Arc<Lexicon>,
    pub matcher: Matcher,
    /// Every slot's `about` phrases: the subjects questions can be about.
    pub subjects: Vec<Vec<String>>,
}

impl KnowledgeBase {
    pub fn intent(&self, id: &str) -> Option<&Intent> {
        self.intents.iter().find(|i| i.id == id)
    }

    pub(crate) fn escalation_intent(&self) -> &Intent {
        &self.intents[self.escalation]
    }

    /// The knowledge base compiled into the binary from `intents/`.
    /// Normalise a message once, for matching and slot extraction.
    pub(crate) fn prepare(&self, text: &str) -> Prepared {
        Prepared::new(&self.lexicon, text)
    }

    /// Rank the runbook sections for a message.
    pub fn match_text(&self, text: &str) -> MatchOutcome {
        self.matcher.rank(&self.prepare(text))
    }

    /// The topic list: intent titles grouped as the knowledge base groups them, in order of first
    /// appearance.
    pub(crate) fn topic_groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for i in &self.intents {
            match groups.iter_mut().find(|(g, _)| *g == i.group) {
                Some((_, titles)) => titles.push(i.title.clone()),
                None => groups.push((i.group.clone(), vec![i.title.clone()])),
            }
        }
        groups
    }

    pub fn builtin() -> Result<KnowledgeBase, KbError> {
        KnowledgeBase::from_sources(builtin_sources(), &LoadOptions::default())
    }
}

/// A heading as labelled sets may write it: without backticks and quotes, trimmed, lower case, so
/// `calico-node` and `` `calico-node` `` meet.
pub(crate) fn heading_key(heading: &str) -> String {
    heading
        .chars()
        .filter(|c| !matches!(c, '`' | '"'))
        .collect::<String>()
        .trim()
        .to_lowercase()
}

/// The anchor GitHub-flavoured kramdown (Jekyll's default) generates for a heading: lower case, every
/// character that is not a letter, digit, `_`, `-` or space removed, spaces turned into `-`.
pub(crate) fn gfm_anchor(heading: &str) -> String {
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
