//! Every follow-up flow of the knowledge base driven to its final guidance, once by clicking the
//! buttons and once by replying in the thread in words (without mentioning the bot), asserting the
//! facts the guidance must carry. One table, one driver. Then how an answered question shows: in
//! place, answered in words as by a click, and re-answered by a click on another of its options.

use futures_util::future::join_all;
use serde_json::Value;

use crate::support::slack_emulator::ApiCall;
use crate::{
    as_message, assert_methods_in_manifest, buttons, shown, shown_all, spawn_bot, with_button, TestBot, OTHER_USER,
    USER,
};

/// A flow: the first message, then per question the button to click and the words that say the same,
/// then what the thread must show at the end.
struct Flow {
    intent: &'static str,
    start: &'static str,
    steps: &'static [(&'static str, &'static str)],
    expect: &'static [&'static str],
}

const FLOWS: &[Flow] = &[
    Flow {
        intent: "loadbalancer",
        start: "LoadBalancer service stuck with pending external IP",
        steps: &[
            ("VPC", "it's a vpc cluster"),
            ("IKS", "iks"),
            ("No, still broken", "no, still broken"),
        ],
        expect: &[
            "IKS VPC LB docs",
            "armada-network-vpc-load-balancer-troubleshooting.html",
            "Escalation: Escalate to armada-network",
            "ibm.pagerduty.com/escalation_policies",
        ],
    },
    Flow {
        intent: "worker-deploy-failures",
        start: "new workers stuck in provisioning state",
        steps: &[
            ("Pending endpoint gateway creation", "pending endpoint gateway creation"),
            ("20 minutes or more", "about 45 minutes"),
        ],
        expect: &[
            "Stuck 20+ minutes on Pending endpoint gateway creation",
            "armada-network-pending-endpoint-gateway.html",
            "Escalation: Escalate to armada-network",
        ],
    },
    Flow {
        intent: "network-unavailable",
        start: "nodes show NetworkUnavailable condition",
        steps: &[(
            "Stays stuck / calico-node restarting",
            "it stays stuck, calico-node keeps restarting",
        )],
        expect: &[
            "rising restart count",
            "armada-network-calico-node-troubleshooting.html",
        ],
    },
    Flow {
        intent: "pods-not-starting",
        start: "pods stuck in ContainerCreating with FailedCreatePodSandbox",
        steps: &[
            ("Yes, both healthy", "yes both look healthy"),
            (
                "IPAM / out of pod IPs",
                "failed to request 1 IPv4 addresses. IPAM allocated only 0",
            ),
        ],
        expect: &[
            "Out of pod IPs",
            "armada-network-calico-ipam-cleanup",
            "approved prod train",
            "containers-ts-app-container-start#calico-ips",
        ],
    },
    Flow {
        intent: "dns",
        start: "coredns lookups fail in pods",
        steps: &[
            ("OpenShift (ROKS)", "openshift"),
            ("No, still broken", "no, still broken"),
        ],
        expect: &[
            "access.redhat.com/solutions/3804501",
            "/etc/resolv.conf",
            "armada-network-calico-node-troubleshooting.html",
            "Escalation: Escalate to armada-network",
        ],
    },
    Flow {
        intent: "general-network-errors",
        start: "customer reports general network errors",
        steps: &[("No / only in their app / no specifics", "no, only in their app")],
        expect: &[
            "Network Must-Gather Doc",
            "reproducible case",
            "tcpdump",
            "kubernetes.io/docs/tasks/debug-application-cluster/debug-service/",
        ],
    },
    Flow {
        intent: "out-of-scope",
        start: "is this network problem out of scope for armada-network",
        steps: &[
            (
                "IBM Cloud infrastructure network",
                "looks like an ibm cloud network routing issue",
            ),
            ("IBM service account (carriers/tugboats)", "it hits our carrier"),
        ],
        expect: &[
            "#conductors",
            "#containers-cie",
            "#network_response_team",
            "network Infra team",
        ],
    },
    Flow {
        intent: "roks-vpc-calico-node-after-update",
        start: "calico-node never starts on the new worker after a worker replace on ROKS VPC",
        steps: &[
            ("Yes, it is installed", "yes it is installed"),
            ("No, still broken", "no, still not running"),
        ],
        expect: &[
            "circular dependency",
            "less than 2 seconds",
            "calico-system",
            "armada-network-calico-node-troubleshooting.html",
        ],
    },
    Flow {
        intent: "gateway-enabled-private-workers",
        start: "gateway enabled cluster with private workers",
        steps: &[("Another customer", "another customer")],
        expect: &[
            "end of life",
            "IKS 1.23",
            "OpenShift 4.9",
            "armada-network-gateway-enabled-cluster-troubleshooting.html",
        ],
    },
];

#[derive(Clone, Copy, Debug)]
enum Mode {
    Buttons,
    Words,
}

async fn drive(bot: &TestBot, flow: &Flow, channel: &str, mode: Mode) {
    let post = bot.mention(channel, flow.start, None).await;
    let thread = post.ts.as_str();
    let mut from = 0;
    for (label, words) in flow.steps {
        let what = format!("{}: the question offering {label:?}", flow.intent);
        let msgs = bot
            .wait_thread(channel, thread, &what, |m| with_button(m, from, label).is_some())
            .await;
        let question = with_button(&msgs, from, label).expect("just waited for it");
        from = msgs.len();
        match mode {
            Mode::Buttons => {
                let (_, action_id, value) = buttons(question).into_iter().find(|b| b.0 == *label).unwrap();
                let ts = question["ts"].as_str().unwrap();
                bot.emu
                    .push_block_action(channel, USER, ts, Some(thread), &action_id, &value)
                    .await;
                // the clicked question shows the choice, without buttons
                bot.wait_thread(
                    channel,
                    thread,
                    &format!("{}: {label:?} shown in place", flow.intent),
                    |m| {
                        m.iter()
                            .any(|x| x["ts"] == ts && buttons(x).is_empty() && crate::shown(x).contains(label))
                    },
                )
                .await;
            }
            Mode::Words => {
                bot.say(channel, USER, words, Some(thread)).await;
            }
        }
    }
    let msgs = bot
        .wait_thread(channel, thread, &format!("{}: the final guidance", flow.intent), |m| {
            let all = shown_all(m);
            flow.expect.iter().all(|e| all.contains(e))
        })
        .await;
    assert!(
        shown_all(&msgs).contains("armada-network-initial-troubleshooting.html#"),
        "the section link"
    );
}

async fn every_flow(mode: Mode) {
    let bot = spawn_bot().await;
    let kb = netrunbook::kb::KnowledgeBase::builtin().unwrap();
    let with_flows: Vec<&str> = kb
        .intents
        .iter()
        .filter(|i| i.flow.is_some())
        .map(|i| i.id.as_str())
        .collect();
    for id in &with_flows {
        assert!(FLOWS.iter().any(|f| f.intent == *id), "no test drives the flow of {id}");
    }
    let channels: Vec<String> = (0..FLOWS.len()).map(|i| format!("C0FLOW{i}")).collect();
    join_all(FLOWS.iter().zip(&channels).map(|(f, c)| drive(&bot, f, c, mode))).await;
    assert_methods_in_manifest(&bot.emu);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_reaches_its_guidance_by_buttons() {
    every_flow(Mode::Buttons).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_reaches_its_guidance_by_replies_in_words() {
    every_flow(Mode::Words).await;
}

const LB_START: &str = "LoadBalancer service stuck with pending external IP";

/// The button labelled `label` of `message`: (action_id, value).
fn button(message: &Value, label: &str) -> (String, String) {
    let (_, id, value) = buttons(message)
        .into_iter()
        .find(|b| b.0 == label)
        .unwrap_or_else(|| panic!("no {label:?} button in:\n{}", shown(message)));
    (id, value)
}

/// The question after the `from`-th message of the bot's in `thread` that offers `label`.
async fn question(bot: &TestBot, channel: &str, thread: &str, from: usize, label: &str) -> Value {
    let msgs = bot
        .wait_thread(channel, thread, &format!("the question offering {label:?}"), |m| {
            with_button(m, from, label).is_some()
        })
        .await;
    with_button(&msgs, from, label).expect("just waited for it").clone()
}

/// Wait until the message `ts` shows `choice` answered by `user`, without buttons; returns it.
async fn answered_in_place(bot: &TestBot, channel: &str, thread: &str, ts: &str, choice: &str, user: &str) -> Value {
    let by = format!("answered by <@{user}>");
    let msgs = bot
        .wait_thread(channel, thread, &format!("{choice:?} {by} shown in place"), |m| {
            m.iter()
                .any(|x| x["ts"] == ts && buttons(x).is_empty() && shown(x).contains(choice) && shown(x).contains(&by))
        })
        .await;
    msgs.into_iter().find(|x| x["ts"] == ts).expect("just waited for it")
}

/// Where in `calls` the first call matching `what` is.
fn position(calls: &[ApiCall], what: impl Fn(&ApiCall) -> bool) -> Option<usize> {
    calls.iter().position(what)
}

#[tokio::test]
async fn a_question_answered_in_words_shows_the_answer_in_place_like_a_click() {
    let bot = spawn_bot().await;
    let post = bot.mention("C0WORDS", LB_START, None).await;
    let thread = post.ts.as_str();
    let infra = question(&bot, "C0WORDS", thread, 0, "VPC").await;
    let infra_ts = infra["ts"].as_str().unwrap();

    // Bob answers in the thread, in words, without mentioning the bot
    bot.say("C0WORDS", OTHER_USER, "it's a vpc cluster", Some(thread)).await;
    let marked = answered_in_place(&bot, "C0WORDS", thread, infra_ts, "VPC", OTHER_USER).await;
    assert!(
        shown(&marked).contains("Which infrastructure is the cluster on?"),
        "the question stays readable: {}",
        shown(&marked)
    );
    // and the flow goes on below it
    question(&bot, "C0WORDS", thread, 0, "IKS").await;
    let calls = bot.settle().await;
    let update = position(&calls, |c| c.method == "chat.update" && c.param("ts") == Some(infra_ts))
        .expect("the question was updated");
    let next = position(&calls, |c| {
        c.method == "chat.postMessage" && buttons(&as_message(c)).iter().any(|b| b.0 == "IKS")
    })
    .expect("the next question was posted");
    assert!(update < next, "the question is closed before the next one is asked");
    assert_eq!(
        calls.iter().filter(|c| c.method == "chat.update").count(),
        1,
        "one update, of the answered question only"
    );
    assert_methods_in_manifest(&bot.emu);
    bot.stop().await;
}

#[tokio::test]
async fn a_click_on_another_option_of_an_earlier_question_re_answers_it() {
    let bot = spawn_bot().await;
    let post = bot.mention("C0FIX", LB_START, None).await;
    let thread = post.ts.as_str();
    let infra = question(&bot, "C0FIX", thread, 0, "Classic").await;
    let infra_ts = infra["ts"].as_str().unwrap().to_string();
    // the buttons as the question showed them before it was answered
    let (classic_id, classic_value) = button(&infra, "Classic");
    let (vpc_id, vpc_value) = button(&infra, "VPC");
    bot.emu
        .push_block_action("C0FIX", USER, &infra_ts, Some(thread), &classic_id, &classic_value)
        .await;
    answered_in_place(&bot, "C0FIX", thread, &infra_ts, "Classic", USER).await;
    let platform = question(&bot, "C0FIX", thread, 0, "IKS").await;
    let (iks_id, iks_value) = button(&platform, "IKS");
    let platform_ts = platform["ts"].as_str().unwrap();
    bot.emu
        .push_block_action("C0FIX", USER, platform_ts, Some(thread), &iks_id, &iks_value)
        .await;
    let msgs = bot
        .wait_thread("C0FIX", thread, "the Classic IKS guidance", |m| {
            shown_all(m).contains("containers-cs_network_planning")
        })
        .await;
    assert!(
        !shown_all(&msgs).contains("containers-vpc-lbaas"),
        "{}",
        shown_all(&msgs)
    );
    let before = msgs.len();

    // it was VPC after all: a click on the first question's other option (still on screen for
    // someone whose client had not refreshed)
    bot.emu
        .push_block_action("C0FIX", OTHER_USER, &infra_ts, Some(thread), &vpc_id, &vpc_value)
        .await;
    answered_in_place(&bot, "C0FIX", thread, &infra_ts, "VPC", OTHER_USER).await;
    let msgs = bot
        .wait_thread("C0FIX", thread, "the IKS VPC guidance", |m| {
            shown_all(&m[before.min(m.len())..]).contains("containers-vpc-lbaas")
        })
        .await;
    let after = shown_all(&msgs[before..]);
    assert!(after.contains("Corrected"), "{after}");
    assert!(after.contains("IKS VPC"), "the platform answer still holds: {after}");
    assert!(!after.contains("Is it an IKS cluster"), "not asked again: {after}");
    assert_methods_in_manifest(&bot.emu);
    bot.stop().await;
}
