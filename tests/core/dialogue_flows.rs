//! The follow-up flows driven through the pure dialogue engine with the shipped knowledge base: the
//! knowledge base's own examples, every button path of every flow, and the flow table
//! (`tests/data/flows.jsonl`, which `e2e` replays through Slack) of free-text answers.

use netrunbook::dialogue::{step, Conversation, Input, Pending, Reply};
use netrunbook::kb::KnowledgeBase;
use netrunbook::render;
use netrunbook_testkit::dialogues::{self, Case};

use crate::kb;

/// One thread's conversation, stepped like the bot steps it.
struct Thread<'k> {
    kb: &'k KnowledgeBase,
    state: Option<Conversation>,
    now: u64,
    /// Everything the bot said, rendered as text.
    said: String,
}

impl<'k> Thread<'k> {
    fn new(kb: &'k KnowledgeBase) -> Self {
        Thread {
            kb,
            state: None,
            now: 1_700_000_000,
            said: String::new(),
        }
    }

    fn input(&mut self, input: Input) -> Vec<Reply> {
        self.now += 30;
        let s = step(self.kb, self.state.as_ref(), &input, self.now);
        // state must survive a round trip through its serialised form, as sled stores it
        self.state = s
            .state
            .map(|c| serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap());
        let text = render::text(&s.replies, &self.kb.version);
        self.said.push_str(&text);
        self.said.push('\n');
        s.replies
    }

    fn say(&mut self, text: &str) -> Vec<Reply> {
        self.input(Input::Message {
            text: text.to_string(),
            addressed: true,
        })
    }

    fn chatter(&mut self, text: &str) -> Vec<Reply> {
        self.input(Input::Message {
            text: text.to_string(),
            addressed: false,
        })
    }

    fn click(&mut self, option: &str) -> Vec<Reply> {
        let node = self.pending_node().expect("a question is pending");
        self.input(Input::Choose {
            node,
            option: option.to_string(),
        })
    }

    fn pending_node(&self) -> Option<String> {
        match &self.state.as_ref()?.pending {
            Pending::Question { node } => Some(node.clone()),
            _ => None,
        }
    }

    fn pending_slot(&self) -> Option<String> {
        let c = self.state.as_ref()?;
        let node = self.pending_node()?;
        let intent = self.kb.intent(c.intent.as_deref()?)?;
        match intent.flow.as_ref()?.nodes.get(&node)? {
            netrunbook::kb::Node::Ask { slot, .. } => Some(slot.clone()),
            _ => None,
        }
    }

    fn intent(&self) -> Option<String> {
        self.state.as_ref()?.intent.clone()
    }
}

#[test]
fn the_knowledge_base_examples_all_land() {
    // every slot option's examples and near misses, every flow's example dialogues (intents/*.yaml)
    let failures = netrunbook::dialogue::examples::verify(kb());
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Click through every path of `intent`'s flow; the say-nodes reached.
fn walk(
    kb: &KnowledgeBase,
    state: Option<Conversation>,
    reached: &mut std::collections::BTreeSet<String>,
    depth: usize,
) {
    assert!(depth < 20, "a flow path does not end");
    let Some(c) = state else { return };
    reached.extend(c.trail.iter().cloned());
    let Pending::Question { node } = &c.pending else { return };
    let intent = kb.intent(c.intent.as_deref().unwrap()).unwrap();
    let Some(netrunbook::kb::Node::Ask { slot, .. }) = intent.flow.as_ref().unwrap().nodes.get(node) else {
        panic!("pending {node} is not a question")
    };
    for o in &kb.slots[slot].options {
        let s = step(
            kb,
            Some(&c),
            &Input::Choose {
                node: node.clone(),
                option: o.id.clone(),
            },
            1,
        );
        assert!(!s.replies.is_empty(), "a click on {node}/{} says nothing", o.id);
        walk(kb, s.state, reached, depth + 1);
    }
}

#[test]
fn every_path_of_every_flow_finishes_by_buttons() {
    let kb = kb();
    for intent in kb.intents.iter().filter(|i| i.flow.is_some()) {
        let s = step(
            kb,
            None,
            &Input::Pick {
                intent: intent.id.clone(),
            },
            1,
        );
        let mut reached = std::collections::BTreeSet::new();
        walk(kb, s.state, &mut reached, 0);
        for (name, node) in &intent.flow.as_ref().unwrap().nodes {
            if matches!(node, netrunbook::kb::Node::Say { .. }) {
                assert!(
                    reached.contains(name),
                    "{}: `{name}` is reached by no button path",
                    intent.id
                );
            }
        }
    }
}

const CALICO_NODE_RB: &str = "armada-network-calico-node-troubleshooting";
const ESCALATION: &str = "P2MK3WQ";

/// Every dialogue of the flow table: the first turn a mention, the rest thread replies not addressed
/// to the bot; each turn's reply checked as the table says.
#[test]
fn free_text_answers_are_read_as_the_runbook_means_them() {
    let table = dialogues::load(&crate::data("flows.jsonl"));
    assert!(table.len() >= 30, "the flow table holds {} dialogues", table.len());
    for d in &table {
        let mut t = Thread::new(kb());
        for (i, turn) in d.turns.iter().enumerate() {
            let replies = if i == 0 { t.say(&turn.say) } else { t.chatter(&turn.say) };
            let reply = render::text(&replies, "x");
            let problems = turn.problems(&reply, Case::Exact);
            assert!(
                problems.is_empty(),
                "{} ({}), turn {}: the reply {}:\n{reply}\n--- whole thread:\n{}",
                d.id,
                d.kind,
                i + 1,
                problems.join(", "),
                t.said
            );
        }
    }
}

#[test]
fn the_first_reply_leads_with_the_action_and_asks_before_variant_links() {
    let kb = kb();
    for intent in &kb.intents {
        let s = step(
            kb,
            None,
            &Input::Pick {
                intent: intent.id.clone(),
            },
            1,
        );
        let Some(Reply::Answer(a)) = s.replies.first() else {
            panic!("{}: {:?}", intent.id, s.replies)
        };
        assert!(
            a.links.len() <= netrunbook::dialogue::FIRST_REPLY_LINKS,
            "{}: {} links",
            intent.id,
            a.links.len()
        );
        assert!(
            a.summary.starts_with('*'),
            "{}: the first line is not the bold next step: {}",
            intent.id,
            a.summary
        );
    }
    let mut t = Thread::new(kb);
    let replies = t.say("LB has no external IP");
    let text = render::text(&replies, "x");
    assert!(text.contains("Which infrastructure"), "{text}");
    assert!(
        !text.contains("vpc-lbaas") && !text.contains("cs_network_planning"),
        "{text}"
    );
}

#[test]
fn after_the_advice_the_thread_keeps_its_topic() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.say("calico-kube-controllers CrashLoopBackOff on prod");
    let r = render::text(&t.say("hmm, interesting"), "x");
    assert!(!r.contains("No runbook section fits"), "{r}");
    assert!(r.contains("Still on"), "{r}");
    let r = render::text(&t.chatter("they tried that, didn't help"), "x");
    assert!(r.contains(ESCALATION), "{r}");
}

#[test]
fn after_no_match_the_next_message_in_the_thread_is_read() {
    let kb = kb();
    let mut t = Thread::new(kb);
    assert_eq!(t.say("anyone around?"), vec![Reply::NoMatch]);
    let r = render::text(&t.chatter("calico-node is CrashLoopBackOff on three workers"), "x");
    assert!(r.contains(CALICO_NODE_RB), "{r}");
}

#[test]
fn facts_in_the_first_message_are_never_asked_again() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.say("our VPC cluster's LB has no external IP");
    assert_eq!(t.intent().as_deref(), Some("loadbalancer"));
    assert_eq!(
        t.pending_slot().as_deref(),
        Some("platform"),
        "infra was given: {}",
        t.said
    );
}

#[test]
fn one_reply_answers_two_questions() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.say("customer LoadBalancer has no external IP");
    assert_eq!(t.pending_slot().as_deref(), Some("infra"));
    t.say("VPC, OpenShift 4.14");
    assert_eq!(t.pending_slot().as_deref(), Some("docs_solved"), "{}", t.said);
    assert!(t.said.contains("openshift-vpc-lbaas"));
}

#[test]
fn a_reply_that_answers_nothing_reasks_with_the_options() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.say("customer LoadBalancer has no external IP");
    let replies = t.say("hmm what?");
    assert!(
        matches!(replies.as_slice(), [Reply::Question(q)] if q.reask && q.options.len() == 3 && q.note.is_some()),
        "{replies:?}"
    );
    assert_eq!(t.pending_slot().as_deref(), Some("infra"));
    // not knowing is not an answer: how to find out, and the question stays
    let replies = t.say("not sure, let me check");
    let text = render::text(&replies, "x");
    assert!(text.contains("ibmcloud ks cluster get"), "{text}");
    assert_eq!(t.pending_slot().as_deref(), Some("infra"));
}

#[test]
fn humans_chatting_in_the_thread_are_ignored() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.say("customer LoadBalancer has no external IP");
    let before = t.state.clone();
    assert!(t.chatter("I'll grab a coffee and look").is_empty());
    assert_eq!(
        t.state.as_ref().map(|c| &c.pending),
        before.as_ref().map(|c| &c.pending)
    );
    // but an un-addressed reply that answers the question is taken
    t.chatter("it's classic");
    assert_eq!(t.pending_slot().as_deref(), Some("platform"));
}

#[test]
fn a_clear_new_question_starts_over() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.say("customer LoadBalancer has no external IP");
    t.say("actually the real problem: konnectivity server down alert firing");
    assert_eq!(t.intent().as_deref(), Some("konnectivity-server-down"), "{}", t.said);
}

#[test]
fn escalation_carries_the_answers_so_far() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.say("new VPC workers stuck provisioning");
    t.click("endpoint_gateway");
    t.say("about 45 min");
    let replies = t.input(Input::Escalate);
    let Some(Reply::Escalation(e)) = replies.first() else {
        panic!("{replies:?}")
    };
    let collected: Vec<String> = e.collected.iter().map(|(q, a)| format!("{q} {a}")).collect();
    let all = collected.join("\n");
    assert!(all.contains("Pending endpoint gateway creation"), "{all}");
    assert!(all.contains("45 min"), "{all}");
    assert!(e.links.iter().any(|l| l.url.contains("P2MK3WQ")));
    assert!(e.links.iter().any(|l| l.url.contains("messages/armada-network")));
    assert!(e.links.iter().any(|l| l.url.contains("armada-network/issues")));
}

#[test]
fn stale_buttons_do_not_change_the_conversation() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.say("customer LoadBalancer has no external IP");
    let node = t.pending_node().unwrap();
    t.click("vpc");
    let state = t.state.clone();
    // the same answer again changes nothing
    let replies = t.input(Input::Choose {
        node: node.clone(),
        option: "vpc".into(),
    });
    assert!(matches!(replies.first(), Some(Reply::Notice { .. })), "{replies:?}");
    assert_eq!(t.state.as_ref().map(|c| &c.slots), state.as_ref().map(|c| &c.slots));
    // a button of a question never asked in this thread changes nothing either
    let replies = t.input(Input::Choose {
        node: "classic_solved".into(),
        option: "yes".into(),
    });
    assert!(matches!(replies.first(), Some(Reply::Notice { .. })), "{replies:?}");
    assert_eq!(t.state.as_ref().map(|c| &c.slots), state.as_ref().map(|c| &c.slots));
    // another option of an answered question corrects it
    let replies = t.input(Input::Choose {
        node,
        option: "classic".into(),
    });
    let text = render::text(&replies, "x");
    assert!(text.contains("Corrected"), "{text}");
    assert_eq!(
        t.state.as_ref().and_then(|c| c.slots.get("infra")).map(String::as_str),
        Some("classic")
    );
}

/// A conversation waiting for the user to pick one of `candidates`.
fn clarifying(kb: &KnowledgeBase, candidates: &[&str], origin: &str) -> Conversation {
    Conversation {
        format: netrunbook::dialogue::FORMAT_VERSION,
        kb_version: kb.version.clone(),
        intent: None,
        pending: Pending::Clarify {
            candidates: candidates.iter().map(|c| c.to_string()).collect(),
        },
        slots: Default::default(),
        details: Default::default(),
        origin: origin.into(),
        trail: vec![],
        started_at: 0,
        updated_at: 0,
        asked: vec![],
    }
}

#[test]
fn a_close_call_asks_which_section_and_the_pick_starts_its_flow() {
    let kb = kb();
    let mut t = Thread::new(kb);
    // force a clarification through the engine's own state, whatever the scores of the day
    t.state = Some(clarifying(kb, &["dns", "loadbalancer"], "our VPC cluster has trouble"));
    t.input(Input::Pick {
        intent: "loadbalancer".into(),
    });
    assert_eq!(t.intent().as_deref(), Some("loadbalancer"));
    // the original message said VPC: that question is skipped
    assert_eq!(t.pending_slot().as_deref(), Some("platform"), "{}", t.said);
}

#[test]
fn a_numbered_reply_picks_from_a_clarification() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.state = Some(clarifying(
        kb,
        &["calico-node", "calico-kube-controllers"],
        "calico is broken",
    ));
    t.say("2");
    assert_eq!(t.intent().as_deref(), Some("calico-kube-controllers"), "{}", t.said);
}

#[test]
fn reset_forgets_the_thread() {
    let kb = kb();
    let mut t = Thread::new(kb);
    t.say("customer LoadBalancer has no external IP");
    t.say("<@U0BOT1234> stop");
    assert!(t.state.is_none());
}

#[test]
fn unrelated_questions_get_a_polite_no_match() {
    let kb = kb();
    let mut t = Thread::new(kb);
    let replies = t.say("how do I resize a PVC on block storage?");
    assert_eq!(replies, vec![Reply::NoMatch]);
    assert_eq!(t.state.as_ref().map(|c| &c.pending), Some(&Pending::Describe));
}
