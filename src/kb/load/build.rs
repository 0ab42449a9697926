//! The parts of a load that resolve references: links against the runbook site, the shared slots
//! (options, examples, numeric rules), and each intent's flow (every node reachable, no cycles, every
//! slot and option known), with every problem reported at its file and line.

use indexmap::IndexMap;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

use super::{FlowYaml, LinkYaml, Problems, SlotYaml, Source};
use crate::kb::{CountRule, Flow, FlowExample, Link, Node, RunbookSite, Slot, SlotKind, SlotOption};
use crate::text::Lexicon;

pub(super) fn build_links(links: &[LinkYaml], site: &RunbookSite, src: &Source, problems: &mut Problems) -> Vec<Link> {
    let mut out = Vec::new();
    for l in links {
        let ok_scheme = ["https://", "http://", "./", "/", "#"]
            .iter()
            .any(|p| l.url.starts_with(p));
        if !ok_scheme || l.url.chars().any(char::is_whitespace) || l.url.len() < 2 {
            problems.add(
                src,
                Some(&l.url),
                format!(
                    "broken link `{}`: use an http(s) URL or a ./relative runbook page",
                    l.url
                ),
            );
            continue;
        }
        if l.title.trim().is_empty() {
            problems.add(src, Some(&l.url), format!("link `{}` has no title", l.url));
        }
        out.push(Link {
            title: l.title.clone(),
            url: l.url.clone(),
            resolved: site.resolve(&l.url),
        });
    }
    out
}

pub(super) fn build_slots(
    files: &[(IndexMap<String, SlotYaml>, &Source)],
    lexicon: &Lexicon,
    problems: &mut Problems,
) -> BTreeMap<String, Slot> {
    let mut slots = BTreeMap::new();
    for (map, src) in files {
        for (name, y) in map {
            let kind = match y.kind.as_deref() {
                None | Some("choice") => SlotKind::Choice,
                Some("minutes") => SlotKind::Minutes,
                Some(other) => {
                    problems.add(
                        src,
                        Some(name),
                        format!("slot `{name}`: unknown kind `{other}` (choice or minutes)"),
                    );
                    SlotKind::Choice
                }
            };
            if y.options.is_empty() {
                problems.add(src, Some(name), format!("slot `{name}` has no options"));
            }
            if let Some(a) = &y.any_reply {
                if !y.options.contains_key(a) {
                    problems.add(
                        src,
                        Some(name),
                        format!("slot `{name}`: any_reply names unknown option `{a}`"),
                    );
                }
            }
            let mut options = Vec::new();
            for (id, o) in &y.options {
                // "works now" and "working now" stem alike: each phrase counts once
                let mut words: Vec<Vec<String>> = Vec::new();
                for w in o.words.iter().map(|w| lexicon.words(w)) {
                    if !w.is_empty() && !words.contains(&w) {
                        words.push(w);
                    }
                }
                let bounded = o.at_least.is_some() || o.below.is_some() || o.above.is_some() || o.up_to.is_some();
                let count = o.count.as_deref().and_then(|c| {
                    let parsed = match c.trim().strip_prefix("not ") {
                        Some(n) => n.trim().parse().ok().map(CountRule::IsNot),
                        None => c.trim().parse().ok().map(CountRule::Is),
                    };
                    if parsed.is_none() {
                        problems.add(
                            src,
                            Some(id),
                            format!("slot `{name}` option `{id}`: count `{c}` is not `N` or `not N`"),
                        );
                    }
                    parsed
                });
                let ready = match o.ready.as_deref() {
                    None => None,
                    Some("all") => Some(true),
                    Some("not all") => Some(false),
                    Some(other) => {
                        problems.add(
                            src,
                            Some(id),
                            format!("slot `{name}` option `{id}`: ready `{other}` is not `all` or `not all`"),
                        );
                        None
                    }
                };
                if kind == SlotKind::Minutes && !bounded && words.is_empty() {
                    problems.add(
                        src,
                        Some(id),
                        format!("slot `{name}` option `{id}`: give at_least and/or below (minutes)"),
                    );
                }
                if kind == SlotKind::Choice && words.is_empty() && y.any_reply.as_deref() != Some(id) {
                    problems.add(
                        src,
                        Some(id),
                        format!("slot `{name}` option `{id}` has no words, so no reply can select it"),
                    );
                }
                options.push(SlotOption {
                    id: id.clone(),
                    label: o.label.clone(),
                    words,
                    at_least: o.at_least,
                    below: o.below,
                    above: o.above,
                    up_to: o.up_to,
                    minutes_over: o.minutes_over,
                    minutes_under: o.minutes_under,
                    count,
                    ready,
                    examples: o.examples.clone(),
                    near_misses: o.near_misses.clone(),
                });
            }
            if slots.contains_key(name) {
                problems.add(src, Some(name), format!("slot `{name}` is defined twice"));
            }
            slots.insert(
                name.clone(),
                Slot {
                    name: name.clone(),
                    question: y.question.clone(),
                    kind,
                    only_when_asked: y.only_when_asked,
                    any_reply: y.any_reply.clone(),
                    options,
                    about: y
                        .about
                        .iter()
                        .map(|a| lexicon.words(a))
                        .filter(|a| !a.is_empty())
                        .collect(),
                    find_out: y.find_out.clone(),
                    file: src.name.clone(),
                },
            );
        }
    }
    slots
}

pub(super) fn build_flow(
    y: &FlowYaml,
    slots: &BTreeMap<String, Slot>,
    site: &RunbookSite,
    src: &Source,
    problems: &mut Problems,
) -> Option<Flow> {
    let before = problems.list.len();
    let mut nodes = BTreeMap::new();
    for (name, n) in &y.nodes {
        let exists = |target: &str| y.nodes.contains_key(target);
        let node = match (&n.ask, &n.say) {
            (Some(slot_name), None) => {
                if n.then.is_some()
                    || !n.links.is_empty()
                    || n.escalate
                    || n.still.is_some()
                    || n.elsewhere
                    || n.tip.is_some()
                {
                    problems.add(
                        src,
                        Some(name),
                        format!("node `{name}` asks: `then`, `links`, `escalate`, `still`, `elsewhere` and `tip` belong on say nodes"),
                    );
                }
                match slots.get(slot_name) {
                    None => problems.add(
                        src,
                        Some(name),
                        format!("node `{name}` asks unknown slot `{slot_name}`"),
                    ),
                    Some(slot) => {
                        for key in n.next.keys() {
                            if key != "default" && !slot.options.iter().any(|o| &o.id == key) {
                                problems.add(
                                    src,
                                    Some(name),
                                    format!("node `{name}`: `{key}` is not an option of slot `{slot_name}`"),
                                );
                            }
                        }
                        if !n.next.contains_key("default") {
                            for o in &slot.options {
                                if !n.next.contains_key(&o.id) {
                                    problems.add(src, Some(name), format!("node `{name}`: option `{}` of slot `{slot_name}` leads nowhere (add it to next, or a default)", o.id));
                                }
                            }
                        }
                    }
                }
                for target in n.next.values() {
                    if !exists(target) {
                        problems.add(
                            src,
                            Some(name),
                            format!("node `{name}` leads to missing node `{target}`"),
                        );
                    }
                }
                Node::Ask {
                    slot: slot_name.clone(),
                    question: n.question.clone(),
                    next: n.next.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                }
            }
            (None, Some(text)) => {
                if !n.next.is_empty() || n.question.is_some() {
                    problems.add(
                        src,
                        Some(name),
                        format!("node `{name}` says: `next` and `question` belong on ask nodes"),
                    );
                }
                if let Some(t) = &n.then {
                    if !exists(t) {
                        problems.add(src, Some(name), format!("node `{name}` goes on to missing node `{t}`"));
                    }
                }
                if let Some(t) = &n.still {
                    if !exists(t) {
                        problems.add(
                            src,
                            Some(name),
                            format!("node `{name}`: `still` names missing node `{t}`"),
                        );
                    }
                }
                if n.escalate && n.elsewhere {
                    problems.add(
                        src,
                        Some(name),
                        format!("node `{name}`: `escalate` and `elsewhere` contradict each other"),
                    );
                }
                Node::Say {
                    text: text.trim_end().to_string(),
                    links: build_links(&n.links, site, src, problems),
                    then: n.then.clone(),
                    escalate: n.escalate,
                    still: n.still.clone(),
                    elsewhere: n.elsewhere,
                    tip: n.tip.as_ref().map(|t| t.trim_end().to_string()),
                }
            }
            _ => {
                problems.add(
                    src,
                    Some(name),
                    format!("node `{name}` needs exactly one of `ask` or `say`"),
                );
                continue;
            }
        };
        nodes.insert(name.clone(), node);
    }
    if !nodes.contains_key(&y.start) {
        problems.add(src, Some("start:"), format!("flow start `{}` is not a node", y.start));
    }
    if problems.list.len() > before {
        return None;
    }
    // reachability and cycles: depth-first from start
    let mut reached = BTreeSet::new();
    let mut on_path = Vec::new();
    if let Some(cycle) = walk(&y.start, &nodes, &mut reached, &mut on_path) {
        problems.add(
            src,
            Some(&cycle),
            format!("flow loops back to node `{cycle}`: flows must not have cycles"),
        );
    }
    for name in nodes.keys() {
        if !reached.contains(name) {
            problems.add(
                src,
                Some(name),
                format!("node `{name}` is unreachable from start `{}`", y.start),
            );
        }
    }
    for ex in &y.examples {
        if !nodes.contains_key(&ex.ends) {
            problems.add(
                src,
                Some(&ex.ends),
                format!("flow example ends on missing node `{}`", ex.ends),
            );
        }
        if ex.say.is_empty() {
            problems.add(
                src,
                Some("examples:"),
                "a flow example needs at least the first message in `say`",
            );
        }
    }
    (problems.list.len() == before).then(|| Flow {
        start: y.start.clone(),
        nodes,
        examples: y
            .examples
            .iter()
            .map(|e| FlowExample {
                say: e.say.clone(),
                ends: e.ends.clone(),
            })
            .collect(),
    })
}

pub(super) fn walk(
    name: &str,
    nodes: &BTreeMap<String, Node>,
    reached: &mut BTreeSet<String>,
    path: &mut Vec<String>,
) -> Option<String> {
    if path.iter().any(|p| p == name) {
        return Some(name.to_string());
    }
    if !reached.insert(name.to_string()) {
        return None;
    }
    path.push(name.to_string());
    let next: Vec<&String> = match nodes.get(name) {
        Some(Node::Ask { next, .. }) => next.values().collect(),
        Some(Node::Say { then, .. }) => then.iter().collect(),
        None => Vec::new(),
    };
    for n in next {
        if let Some(c) = walk(n, nodes, reached, path) {
            return Some(c);
        }
    }
    path.pop();
    None
}
