//! Loading `intents/`: the YAML shapes (private to this module), parsing with file and line in every error,
//! and the validation that turns them into a [`KnowledgeBase`] whose references all resolve.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{gfm_anchor, Intent, KnowledgeBase, RunbookSite};
use crate::matcher::{IntentFeatures, Matcher, SignatureSpec, TermSpec};
use crate::text::Lexicon;

mod build;
mod lessons;

use build::{build_flow, build_links, build_slots};
use lessons::{fit_learned, lessons};

/// One file of the knowledge base: its name (for messages) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Options that change how links resolve.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Overrides `_runbook.yaml`'s `base_url`.
    pub base_url: Option<String>,
}

/// One problem found while loading: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why a knowledge base could not be loaded: every problem found, not only the first.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} problem(s) in the knowledge base:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl KbError {
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            KbError::Invalid(p) => p.clone(),
            KbError::Io { path, source } => vec![Problem {
                file: path.clone(),
                line: None,
                message: source.to_string(),
            }],
        }
    }
}

/// The `intents/` files compiled into the binary.
pub fn builtin_sources() -> Vec<Source> {
    const FILES: &[(&str, &str)] = &include!(concat!(env!("OUT_DIR"), "/builtin_intents.rs"));
    FILES
        .iter()
        .map(|(name, text)| Source {
            name: format!("intents/{name}"),
            text: text.to_string(),
        })
        .collect()
}

// ---- the YAML shapes ----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunbookYaml {
    title: String,
    base_url: String,
    page: String,
    escalation: String,
    #[serde(default)]
    structural: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VocabularyYaml {
    #[serde(default)]
    synonyms: IndexMap<String, Vec<String>>,
    /// Words that point away from every runbook section (storage, billing, IAM...), with weights.
    #[serde(default)]
    off_topic: IndexMap<String, f64>,
    /// Components people name to rule them out ("calico-node is fine", "not DNS"): terms in such a
    /// clause count against their section.
    #[serde(default)]
    components: ComponentsYaml,
    /// English phrase -> its spellings in languages written without spaces (Japanese, Chinese), read
    /// inside any run of such text.
    #[serde(default)]
    translations: IndexMap<String, Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ComponentsYaml {
    /// Ruled out by "X is fine" and by "not X".
    #[serde(default)]
    healthy: Vec<String>,
    /// Ruled out only by "not X".
    #[serde(default)]
    negated: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotYaml {
    question: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    only_when_asked: bool,
    #[serde(default)]
    any_reply: Option<String>,
    #[serde(default)]
    about: Vec<String>,
    #[serde(default)]
    find_out: Option<String>,
    options: IndexMap<String, OptionYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionYaml {
    label: String,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    at_least: Option<f64>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    up_to: Option<f64>,
    #[serde(default)]
    minutes_over: Option<f64>,
    #[serde(default)]
    minutes_under: Option<f64>,
    /// `1` (exactly one) or `not 1` (any other count).
    #[serde(default)]
    count: Option<String>,
    /// `all` (every container ready: 3/3) or `not all` (0/1).
    #[serde(default)]
    ready: Option<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default, rename = "not")]
    near_misses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentYaml {
    id: String,
    heading: String,
    #[serde(default)]
    anchor: Option<String>,
    title: String,
    #[serde(default)]
    group: Option<String>,
    summary: String,
    #[serde(default)]
    links: Vec<LinkYaml>,
    #[serde(default)]
    facts: BTreeMap<String, Vec<String>>,
    #[serde(rename = "match")]
    matching: MatchYaml,
    #[serde(default)]
    flow: Option<FlowYaml>,
    #[serde(default)]
    see_also: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkYaml {
    title: String,
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchYaml {
    #[serde(default)]
    terms: IndexMap<String, f64>,
    #[serde(default)]
    signatures: Vec<SignatureYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureYaml {
    pattern: String,
    #[serde(default)]
    weight: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowYaml {
    start: String,
    nodes: IndexMap<String, NodeYaml>,
    #[serde(default)]
    examples: Vec<FlowExampleYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowExampleYaml {
    say: Vec<String>,
    ends: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeYaml {
    #[serde(default)]
    ask: Option<String>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    next: IndexMap<String, String>,
    #[serde(default)]
    say: Option<String>,
    #[serde(default)]
    links: Vec<LinkYaml>,
    #[serde(default)]
    then: Option<String>,
    #[serde(default)]
    escalate: bool,
    #[serde(default)]
    still: Option<String>,
    #[serde(default)]
    elsewhere: bool,
    #[serde(default)]
    tip: Option<String>,
}

const DEFAULT_SIGNATURE_WEIGHT: f64 = 8.0;
const MAX_SUMMARY_CHARS: usize = 2500;

/// Collects problems with their file and line.
struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    fn add(&mut self, src: &Source, needle: Option<&str>, message: impl Into<String>) {
        self.list.push(Problem {
            file: src.name.clone(),
            line: needle.and_then(|n| line_of(&src.text, n)),
            message: message.into(),
        });
    }
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    let needle = needle.lines().next().unwrap_or(needle).trim();
    if needle.is_empty() {
        return None;
    }
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

fn parse<T: for<'de> Deserialize<'de>>(src: &Source, problems: &mut Problems) -> Option<T> {
    if src.text.trim().is_empty() {
        problems.add(src, None, "the file is empty");
        return None;
    }
    match serde_yaml_ng::from_str::<T>(&src.text) {
        Ok(v) => Some(v),
        Err(e) => {
            let line = e.location().map(|l| l.line());
            let msg = e.to_string();
            // serde_yaml_ng appends " at line L column C"; we print the line ourselves
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            problems.list.push(Problem {
                file: src.name.clone(),
                line,
                message: msg,
            });
            None
        }
    }
}

/// Every `*.yaml` / `*.yml` file of `dir`, in name order: what [`KnowledgeBase::load_dir`] loads, and
/// what `check` searches for the line of a problem.
pub fn read_dir_sources(dir: &Path) -> Result<Vec<Source>, KbError> {
    let io = |source| KbError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut sources = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if !is_yaml || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|source| KbError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path.display().to_string();
        match String::from_utf8(bytes) {
            Ok(text) => sources.push(Source { name, text }),
            Err(_) => {
                return Err(KbError::Invalid(vec![Problem {
                    file: name,
                    line: None,
                    message: "not UTF-8 text".into(),
                }]))
            }
        }
    }
    if sources.is_empty() {
        return Err(KbError::Invalid(vec![Problem {
            file: dir.display().to_string(),
            line: None,
            message: "no intent files (*.yaml) in this directory".into(),
        }]));
    }
    Ok(sources)
}

impl KnowledgeBase {
    /// Read every `*.yaml` / `*.yml` file of `dir` and load them.
    pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<KnowledgeBase, KbError> {
        KnowledgeBase::from_sources(read_dir_sources(dir)?, opts)
    }

    /// Parse and validate a set of files. Every problem is reported, each with its file and line.
    pub fn from_sources(sources: Vec<Source>, opts: &LoadOptions) -> Result<KnowledgeBase, KbError> {
        let mut problems = Problems { list: Vec::new() };
        let file_name = |s: &Source| {
            Path::new(&s.name)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let stem_of = |s: &Source| {
            file_name(s)
                .trim_end_matches(".yaml")
                .trim_end_matches(".yml")
                .to_string()
        };

        let mut runbook: Option<(RunbookYaml, &Source)> = None;
        let mut vocab = VocabularyYaml::default();
        let mut slots_yaml: Vec<(IndexMap<String, SlotYaml>, &Source)> = Vec::new();
        let mut intents_yaml: Vec<(IntentYaml, &Source)> = Vec::new();
        for src in &sources {
            match stem_of(src).as_str() {
                "_runbook" => runbook = parse(src, &mut problems).map(|r| (r, src)),
                "_vocabulary" => vocab = parse(src, &mut problems).unwrap_or_default(),
                "_slots" => {
                    if let Some(s) = parse(src, &mut problems) {
                        slots_yaml.push((s, src));
                    }
                }
                s if s.starts_with('_') => problems.add(
                    src,
                    None,
                    "unknown shared file (expected _runbook, _vocabulary or _slots)",
                ),
                _ => {
                    if let Some(i) = parse(src, &mut problems) {
                        intents_yaml.push((i, src));
                    }
                }
            }
        }
        let Some((runbook, runbook_src)) = runbook else {
            if !problems.list.iter().any(|p| p.file.contains("_runbook")) {
                problems.list.push(Problem {
                    file: "_runbook.yaml".into(),
                    line: None,
                    message: "missing: it names the runbook page and the escalation intent".into(),
                });
            }
            return Err(KbError::Invalid(problems.list));
        };
        if intents_yaml.is_empty() && problems.list.is_empty() {
            problems.add(
                runbook_src,
                None,
                "no intents: add one <id>.yaml file per runbook section",
            );
        }
        let site = RunbookSite {
            title: runbook.title.clone(),
            base_url: opts
                .base_url
                .clone()
                .unwrap_or(runbook.base_url.clone())
                .trim_end_matches('/')
                .to_string(),
            page: runbook.page.clone(),
            structural: runbook.structural.clone(),
        };
        if !site.base_url.starts_with("http://") && !site.base_url.starts_with("https://") {
            problems.add(
                runbook_src,
                Some("base_url"),
                format!("base_url must be an http(s) URL, got `{}`", site.base_url),
            );
        }
        if !site.page.starts_with('/') {
            problems.add(
                runbook_src,
                Some("page:"),
                "page must start with `/` (the page's `link:` front-matter value)",
            );
        }

        // Every phrase the lexicon must know, so typo correction can reach it.
        let mut phrases: Vec<String> = Vec::new();
        for (i, _) in &intents_yaml {
            phrases.extend(i.matching.terms.keys().cloned());
        }
        for (s, _) in &slots_yaml {
            for slot in s.values() {
                for o in slot.options.values() {
                    phrases.extend(o.words.iter().cloned());
                }
            }
        }
        phrases.extend(vocab.off_topic.keys().cloned());
        let mut lexicon = Lexicon::new(
            vocab.synonyms.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            phrases.iter().map(String::as_str),
        );
        lexicon.set_components(&vocab.components.healthy, &vocab.components.negated);
        lexicon.set_translations(vocab.translations.iter().map(|(k, v)| (k.as_str(), v.as_slice())));

        let slots = build_slots(&slots_yaml, &lexicon, &mut problems);

        let mut seen_ids: HashMap<String, String> = HashMap::new();
        let mut seen_headings: HashMap<String, String> = HashMap::new();
        let mut intents = Vec::new();
        let mut features = Vec::new();
        for (y, src) in intents_yaml {
            let valid_id = !y.id.is_empty()
                && y.id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid_id {
                problems.add(
                    src,
                    Some("id:"),
                    format!("id `{}` must be lower-case letters, digits and `-`", y.id),
                );
            }
            if let Some(other) = seen_ids.insert(y.id.clone(), src.name.clone()) {
                problems.add(src, Some("id:"), format!("duplicate id `{}` (also in {other})", y.id));
            }
            if y.heading.trim().is_empty() {
                problems.add(src, Some("heading:"), "heading is empty");
            } else if let Some(other) = seen_headings.insert(y.heading.clone(), src.name.clone()) {
                problems.add(
                    src,
                    Some("heading:"),
                    format!("heading `{}` is also used by {other}", y.heading),
                );
            }
            if y.title.trim().is_empty() {
                problems.add(src, Some("title:"), "title is empty");
            }
            if y.summary.trim().is_empty() {
                problems.add(src, Some("summary:"), "summary is empty");
            } else if y.summary.chars().count() > MAX_SUMMARY_CHARS {
                problems.add(
                    src,
                    Some("summary:"),
                    format!("summary is longer than {MAX_SUMMARY_CHARS} characters"),
                );
            }
            let links = build_links(&y.links, &site, src, &mut problems);

            let mut terms = Vec::new();
            for (term, weight) in &y.matching.terms {
                if !(weight.is_finite() && *weight != 0.0 && weight.abs() <= 10.0) {
                    problems.add(
                        src,
                        Some(term),
                        format!("term `{term}`: weight must be in [-10, 10] and not 0, got {weight}"),
                    );
                    continue;
                }
                let tokens = lexicon.canonical(term);
                if tokens.is_empty() {
                    problems.add(src, Some(term), format!("term `{term}` has no words"));
                    continue;
                }
                terms.push(TermSpec {
                    label: term.clone(),
                    tokens,
                    weight: *weight,
                });
            }
            if terms.is_empty() && y.matching.signatures.is_empty() {
                problems.add(
                    src,
                    Some("match:"),
                    "no terms and no signatures: nothing can route a message here",
                );
            }
            let mut signatures = Vec::new();
            for sig in &y.matching.signatures {
                let weight = sig.weight.unwrap_or(DEFAULT_SIGNATURE_WEIGHT);
                if !(weight.is_finite() && weight > 0.0 && weight <= 20.0) {
                    problems.add(
                        src,
                        Some(&sig.pattern),
                        format!("signature weight must be in (0, 20], got {weight}"),
                    );
                }
                // parse only: compiling every pattern on its own would double the load time; the
                // matcher compiles them once, together, and each alone only when it has to quote it
                match regex_syntax::ParserBuilder::new().build().parse(&sig.pattern) {
                    Ok(_) => signatures.push(SignatureSpec::new(sig.pattern.clone(), weight)),
                    Err(e) => problems.add(
                        src,
                        Some(&sig.pattern),
                        format!(
                            "bad regex `{}`: {}",
                            sig.pattern,
                            e.to_string().lines().last().unwrap_or("")
                        ),
                    ),
                }
            }
            let flow = y
                .flow
                .as_ref()
                .and_then(|f| build_flow(f, &slots, &site, src, &mut problems));
            let anchor = y.anchor.clone().unwrap_or_else(|| gfm_anchor(&y.heading));
            intents.push(Intent {
                url: format!("{}#{}", site.page_url(), anchor),
                id: y.id,
                heading: y.heading,
                anchor,
                title: y.title,
                group: y.group.unwrap_or_else(|| "Other".into()),
                summary: y.summary.trim_end().to_string(),
                links,
                facts: y.facts,
                flow,
                see_also: y.see_also,
                file: src.name.clone(),
            });
            features.push(IntentFeatures { terms, signatures });
        }

        for i in &intents {
            for id in i.see_also.iter().filter(|id| !intents.iter().any(|o| &o.id == *id)) {
                if let Some(src) = sources.iter().find(|s| s.name == i.file) {
                    problems.add(src, Some("see_also:"), format!("see_also names unknown intent `{id}`"));
                }
            }
        }
        let escalation = intents.iter().position(|i| i.id == runbook.escalation);
        if escalation.is_none() && !intents.is_empty() {
            problems.add(
                runbook_src,
                Some("escalation:"),
                format!("escalation intent `{}` does not exist", runbook.escalation),
            );
        }
        let mut off_topic = Vec::new();
        for (term, weight) in &vocab.off_topic {
            let tokens = lexicon.canonical(term);
            if !tokens.is_empty() && *weight > 0.0 {
                off_topic.push(TermSpec {
                    label: term.clone(),
                    tokens,
                    weight: *weight,
                });
            }
        }
        if !problems.list.is_empty() {
            return Err(KbError::Invalid(problems.list));
        }
        let lessons = lessons(&intents, &features, &off_topic);
        let matcher = match Matcher::new(features, off_topic) {
            Ok(m) => m,
            Err(e) => {
                let file = |i: usize| intents[i].file.clone();
                return Err(KbError::Invalid(
                    e.into_iter()
                        .map(|(i, message)| Problem {
                            file: file(i),
                            line: None,
                            message,
                        })
                        .collect(),
                ));
            }
        };
        // the learned layer is fit in the background: the knowledge base is ready without it, and the
        // first match waits for it (tens of milliseconds after the load)
        let lexicon = Arc::new(lexicon);
        let mut matcher = matcher;
        let model = Arc::new(OnceLock::new());
        matcher.set_learned(model.clone());
        {
            let lexicon = lexicon.clone();
            std::thread::spawn(move || {
                let fitted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fit_learned(&lexicon, lessons)));
                // a model it cannot fit is no model: matching goes on with the evidence alone
                let _ = model.set(fitted.unwrap_or_default());
            });
        }
        let mut hasher = Sha256::new();
        let mut sorted: Vec<&Source> = sources.iter().collect();
        sorted.sort_by_key(|s| file_name(s));
        for s in sorted {
            hasher.update(file_name(s).as_bytes());
            hasher.update([0]);
            hasher.update(s.text.as_bytes());
            hasher.update([0]);
        }
        let digest = hasher.finalize();
        let version: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let mut subjects: Vec<Vec<String>> = slots.values().flat_map(|s| s.about.iter().cloned()).collect();
        subjects.sort();
        subjects.dedup();
        Ok(KnowledgeBase {
            version,
            site,
            intents,
            slots,
            escalation: escalation.unwrap_or(0),
            lexicon,
            matcher,
            subjects,
        })
    }
}
