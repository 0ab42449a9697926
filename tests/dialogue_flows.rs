//! The follow-up flows driven through the pure dialogue engine with the shipped knowledge base: each
//! flow once by buttons and once by free-text replies, asserting the facts its final guidance must carry.

use netrunbook::dialogue::{step, Conversation, Input, Pending, Reply};
use netrunbook::kb::KnowledgeBase;
use netrunbook::render;

fn kb() -> KnowledgeBase {
    KnowledgeBase::builtin().expect("the shipped knowledge base loads")
}

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

/// A flow: the opening message, then for each question (slot) the button option and an equivalent
/// free-text reply, then substrings the conversation must contain at the end.
struct FlowCase {
    intent: &'static str,
    opening: &'static str,
    answers: &'static [(&'static str, &'static str, &'static str)],
    expect: &'static [&'static str],
    escalation: bool,
}

const FLOWS: &[FlowCase] = &[
    FlowCase {
        intent: "loadbalancer",
        opening: "customer's LoadBalancer service never gets an external IP",
        answers: &[
            ("infra", "vpc", "it's a VPC cluster"),
            ("platform", "openshift", "openshift 4.14"),
            ("docs_solved", "no", "no, still broken after the docs"),
        ],
        expect: &[
            "openshift?topic=openshift-vpc-lbaas",
            "armada-network-vpc-load-balancer-troubleshooting.html",
            "Service YAML",
        ],
        escalation: true,
    },
    FlowCase {
        intent: "loadbalancer",
        opening: "LB service stuck with <pending> external IP",
        answers: &[
            ("infra", "classic", "classic infrastructure"),
            ("platform", "iks", "plain IKS"),
            ("docs_solved", "no", "nope"),
        ],
        expect: &[
            "containers?topic=containers-cs_network_planning",
            "containers?topic=containers-network_policies#block_ingress",
            "armada-network-load-balancer-troubleshooting.html",
        ],
        escalation: true,
    },
    FlowCase {
        intent: "worker-deploy-failures",
        opening: "new VPC workers stuck in provisioning for the new cluster",
        answers: &[
            (
                "deploy_status",
                "endpoint_gateway",
                "status says Pending endpoint gateway creation",
            ),
            ("minutes", "over_20", "about 25 min"),
        ],
        expect: &["armada-network-pending-endpoint-gateway.html"],
        escalation: true,
    },
    FlowCase {
        intent: "worker-deploy-failures",
        opening: "VPC workers for a new cluster don't leave provisioning",
        answers: &[
            ("deploy_status", "security_group", "Pending security group creation"),
            ("minutes", "under_20", "only 10 minutes so far"),
        ],
        expect: &["20"],
        escalation: false,
    },
    FlowCase {
        intent: "network-unavailable",
        opening: "customer reports nodes going into NetworkUnavailable state",
        answers: &[(
            "network_unavailable_behaviour",
            "stuck",
            "restarts keep going up on calico-node",
        )],
        expect: &["armada-network-calico-node-troubleshooting.html"],
        escalation: true,
    },
    FlowCase {
        intent: "network-unavailable",
        opening: "Sysdig keeps alerting on NetworkUnavailable nodes",
        answers: &[(
            "network_unavailable_behaviour",
            "clears",
            "it cleared after a few seconds",
        )],
        expect: &["containers-ts-network-calico-node"],
        escalation: false,
    },
    FlowCase {
        intent: "pods-not-starting",
        opening: "pods stuck in ContainerCreating, kubectl describe pod shows FailedCreatePodSandBox network errors",
        answers: &[
            ("calico_healthy", "yes", "yes, both healthy"),
            (
                "pod_error",
                "ipam",
                "Failed to create pod sandbox: rpc error: failed to request 1 IPv4 addresses. IPAM allocated only 0",
            ),
        ],
        expect: &[
            "armada-network-calico-ipam-cleanup",
            "containers-ts-app-container-start#calico-ips",
            "train",
        ],
        escalation: true,
    },
    FlowCase {
        intent: "pods-not-starting",
        opening: "pods can't start, FailedCreatePodSandBox in kubectl describe pod",
        answers: &[
            ("calico_healthy", "yes", "yep, all running"),
            (
                "pod_error",
                "other",
                "error: failed to mount /run/secrets: permission denied on the node",
            ),
        ],
        expect: &["MustGathers/blob/master/Kubernetes/Networking/networking.md"],
        escalation: true,
    },
    FlowCase {
        intent: "dns",
        opening: "pods can't resolve hostnames inside the cluster",
        answers: &[
            ("platform", "openshift", "it's openshift"),
            ("docs_solved", "yes", "yes that fixed it"),
        ],
        expect: &["access.redhat.com/solutions/3804501"],
        escalation: false,
    },
    FlowCase {
        intent: "dns",
        opening: "coredns lookups failing with NXDOMAIN for service names",
        answers: &[("platform", "iks", "IKS"), ("docs_solved", "no", "still broken")],
        expect: &["dns-debugging-resolution", "containers-coredns_lameduck"],
        escalation: true,
    },
    FlowCase {
        intent: "general-network-errors",
        opening: "customer complains about vague network errors and blames IKS, no details",
        answers: &[(
            "reproducible",
            "no",
            "they can't reproduce it, only happens inside their app",
        )],
        expect: &["MustGathers", "tcpdump"],
        escalation: false,
    },
    FlowCase {
        intent: "out-of-scope",
        opening: "is the haproxy machine in scope for this runbook? who owns it?",
        answers: &[],
        expect: &["Netint"],
        escalation: false,
    },
    FlowCase {
        intent: "roks-vpc-calico-node-after-update",
        opening: "after a worker replace the calico-node pod does not start, apiserver call times out",
        answers: &[
            ("platform", "openshift", "ROKS"),
            ("infra", "vpc", "vpc"),
            ("sysdig_webhook", "yes", "yes it's installed"),
            ("docs_solved", "no", "no, still stuck"),
        ],
        expect: &["cordon", "2 second", "armada-network-calico-node-troubleshooting.html"],
        escalation: true,
    },
];

fn drive<'k>(kb: &'k KnowledgeBase, case: &FlowCase, by_buttons: bool) -> Thread<'k> {
    let mut t = Thread::new(kb);
    t.say(case.opening);
    assert_eq!(
        t.intent().as_deref(),
        Some(case.intent),
        "{:?} routed elsewhere:\n{}",
        case.opening,
        t.said
    );
    for (slot, option, text) in case.answers {
        let Some(pending) = t.pending_slot() else {
            // answered by the opening message already; nothing to ask
            continue;
        };
        if pending != *slot {
            continue;
        }
        if by_buttons {
            t.click(option);
        } else {
            t.say(text);
        }
        assert_ne!(
            t.pending_slot().as_deref(),
            Some(*slot),
            "`{text}` did not answer {slot}:\n{}",
            t.said
        );
    }
    assert_eq!(t.pending_node(), None, "flow did not finish:\n{}", t.said);
    for e in case.expect {
        assert!(t.said.contains(e), "missing `{e}` in:\n{}", t.said);
    }
    if case.escalation {
        assert!(t.said.contains("Escalation"), "no escalation path in:\n{}", t.said);
        assert!(
            t.said.contains("P2MK3WQ"),
            "escalation lacks the PagerDuty policy:\n{}",
            t.said
        );
    }
    t
}

#[test]
fn every_flow_finishes_by_buttons() {
    let kb = kb();
    for case in FLOWS {
        drive(&kb, case, true);
    }
}

#[test]
fn every_flow_finishes_by_text_replies() {
    let kb = kb();
    for case in FLOWS {
        drive(&kb, case, false);
    }
}

#[test]
fn facts_in_the_first_message_are_never_asked_again() {
    let kb = kb();
    let mut t = Thread::new(&kb);
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
    let mut t = Thread::new(&kb);
    t.say("customer LoadBalancer has no external IP");
    assert_eq!(t.pending_slot().as_deref(), Some("infra"));
    t.say("VPC, OpenShift 4.14");
    assert_eq!(t.pending_slot().as_deref(), Some("docs_solved"), "{}", t.said);
    assert!(t.said.contains("openshift-vpc-lbaas"));
}

#[test]
fn a_reply_that_answers_nothing_reasks_with_the_options() {
    let kb = kb();
    let mut t = Thread::new(&kb);
    t.say("customer LoadBalancer has no external IP");
    let replies = t.say("hmm not sure, let me check");
    assert!(
        matches!(replies.as_slice(), [Reply::Question(q)] if q.reask && q.options.len() == 3),
        "{replies:?}"
    );
    assert_eq!(t.pending_slot().as_deref(), Some("infra"));
}

#[test]
fn humans_chatting_in_the_thread_are_ignored() {
    let kb = kb();
    let mut t = Thread::new(&kb);
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
    let mut t = Thread::new(&kb);
    t.say("customer LoadBalancer has no external IP");
    t.say("actually the real problem: konnectivity server down alert firing");
    assert_eq!(t.intent().as_deref(), Some("konnectivity-server-down"), "{}", t.said);
}

#[test]
fn escalation_carries_the_answers_so_far() {
    let kb = kb();
    let mut t = Thread::new(&kb);
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
    let mut t = Thread::new(&kb);
    t.say("customer LoadBalancer has no external IP");
    let node = t.pending_node().unwrap();
    t.click("vpc");
    let state = t.state.clone();
    let replies = t.input(Input::Choose {
        node,
        option: "classic".into(),
    });
    assert!(matches!(replies.first(), Some(Reply::Notice { .. })), "{replies:?}");
    assert_eq!(t.state.as_ref().map(|c| &c.slots), state.as_ref().map(|c| &c.slots));
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
    let mut t = Thread::new(&kb);
    // force a clarification through the engine's own state, whatever the scores of the day
    t.state = Some(clarifying(&kb, &["dns", "loadbalancer"], "our VPC cluster has trouble"));
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
    let mut t = Thread::new(&kb);
    t.state = Some(clarifying(
        &kb,
        &["calico-node", "calico-kube-controllers"],
        "calico is broken",
    ));
    t.say("2");
    assert_eq!(t.intent().as_deref(), Some("calico-kube-controllers"), "{}", t.said);
}

#[test]
fn reset_forgets_the_thread() {
    let kb = kb();
    let mut t = Thread::new(&kb);
    t.say("customer LoadBalancer has no external IP");
    t.say("<@U0BOT1234> stop");
    assert!(t.state.is_none());
}

#[test]
fn unrelated_questions_get_a_polite_no_match() {
    let kb = kb();
    let mut t = Thread::new(&kb);
    let replies = t.say("how do I resize a PVC on block storage?");
    assert_eq!(replies, vec![Reply::NoMatch]);
    assert!(t.state.is_none());
}
