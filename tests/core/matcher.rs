//! The matcher on the shipped knowledge base: accuracy on the labelled sets (the quality bar) and a table
//! of characteristic messages checked through one `check` helper.

use netrunbook::dialogue::{step, Input, Reply};
use netrunbook::eval::{evaluate, parse_cases};
use netrunbook::matcher::Verdict;
use netrunbook::slack::blocks::{self, MAX_BLOCKS, SECTION_CHARS};
use netrunbook::vocab::Message;
use serde_json::Value;

use crate::kb;

fn accuracy_on(file: &str) -> f64 {
    let kb = kb();
    let text = std::fs::read_to_string(file).unwrap();
    let cases = parse_cases(&text).unwrap();
    let report = evaluate(kb, &cases);
    for m in &report.misses {
        eprintln!(
            "MISS {}:{}: expected {} got {} ({:.1})",
            file, m.line, m.expected, m.got, m.score
        );
    }
    eprintln!(
        "{file}: accuracy {:.1}% ({}/{})",
        report.accuracy * 100.0,
        report.correct,
        report.total
    );
    report.accuracy
}

#[test]
fn labelled_set_is_big_and_balanced_enough() {
    let kb = kb();
    let text = std::fs::read_to_string("tests/data/labelled.jsonl").unwrap();
    let cases = parse_cases(&text).unwrap();
    assert!(cases.len() >= 300, "{} messages", cases.len());
    let none = cases.iter().filter(|(_, c)| c.section == "NONE").count();
    assert!(none >= 40, "{none} abstentions");
    for intent in &kb.intents {
        let n = cases.iter().filter(|(_, c)| c.section == intent.heading).count();
        assert!(n >= 12, "{} has only {n} messages", intent.heading);
    }
}

#[test]
fn accuracy_on_the_labelled_set_is_at_least_95_percent() {
    let acc = accuracy_on("tests/data/labelled.jsonl");
    assert!(acc >= 0.95, "accuracy {:.1}% < 95%", acc * 100.0);
}

/// Our own sets, all written from the runbook alone by authors who never saw the knowledge base, are
/// also what the learned layer is fit on (`src/learned.rs`), so their bars guard against regressions,
/// not generalisation.
#[test]
fn accuracy_on_our_own_sets_stays_high() {
    for (file, bar) in [
        ("tests/data/holdout.jsonl", 0.95),
        ("tests/data/holdout2.jsonl", 0.95),
        ("tests/data/tuning.jsonl", 0.95),
        ("tests/data/nearmiss_tuning.jsonl", 0.95),
        ("tests/data/tuning3.jsonl", 0.95),
        ("tests/data/tuning4.jsonl", 0.95),
        ("tests/data/tuning5.jsonl", 0.97),
        ("tests/data/tuning6.jsonl", 0.97),
        ("tests/data/tuning7.jsonl", 0.97),
        ("tests/data/tuning8.jsonl", 0.97),
    ] {
        let acc = accuracy_on(file);
        assert!(acc >= bar, "{file}: accuracy {:.1}% < {:.0}%", acc * 100.0, bar * 100.0);
    }
}

/// The blind sets: written from the runbook alone by authors who saw neither the knowledge base nor
/// our sets, and never fit on. A-D have been looked at while tuning (their misses read in sessions 3
/// and 4, and they chose the learned layer's four constants in session 5); E was scored at first sight
/// and only its totals were read since (session 6 too). G (first sight before session 6's work) and H
/// (sealed, scored once after it) were never tuned on and their misses never read. The bars are their
/// figures in the README, rounded down.
#[test]
fn accuracy_on_the_blind_sets_generalises() {
    for (file, bar) in [
        ("tests/data/messages_a.jsonl", 0.96),
        ("tests/data/messages_b.jsonl", 0.97),
        ("tests/data/messages_c.jsonl", 0.97),
        ("tests/data/messages_d.jsonl", 0.97),
        ("tests/data/messages_e.jsonl", 0.97),
        ("tests/data/messages_g.jsonl", 0.97),
        ("tests/data/messages_h.jsonl", 0.98),
    ] {
        let acc = accuracy_on(file);
        println!("{file}: {:.1}%", acc * 100.0);
        assert!(acc >= bar, "{file}: accuracy {:.1}% < {:.0}%", acc * 100.0, bar * 100.0);
    }
}

#[test]
fn a_component_ruled_out_counts_against_its_section() {
    check(
        "calico-node is fine on every worker, it's the calico-kube-controllers pod that's in CrashLoopBackOff",
        "calico-kube-controllers",
    );
    check("not a DNS issue, the LB never gets an external IP", "loadbalancer");
    check(
        "I don't think it's DNS, the LB never gets an external IP",
        "loadbalancer",
    );
    check(
        "we already ruled out calico-node; kcc is the one crashlooping",
        "calico-kube-controllers",
    );
    let kb = kb();
    let outcome = kb.match_text("calico-node is fine, kcc is the one crashlooping");
    let ruled_out = outcome
        .ranked
        .iter()
        .flat_map(|r| &r.evidence)
        .any(|e| e.kind == netrunbook::matcher::EvidenceKind::RuledOut && e.points < 0.0);
    assert!(ruled_out, "the evidence says calico-node was ruled out: {outcome:#?}");
}

#[test]
fn typos_without_vowels_and_terms_inside_other_scripts_are_found() {
    check("clco nde crshlpbckff on 3 wrkrs", "calico-node");
    check("calico-nodeがCrashLoopBackOffです", "calico-node");
}

#[test]
fn the_evidence_says_which_words_were_read_through_a_correction() {
    let kb = kb();
    let outcome = kb.match_text("calcio-node crshlpbckff on 3 workers");
    let read = |typed: &str| {
        outcome
            .corrections
            .iter()
            .find(|c| c.typed == typed)
            .map(|c| c.read.as_str())
    };
    assert_eq!(read("calcio"), Some("calico"), "{:?}", outcome.corrections);
    assert_eq!(
        read("crshlpbckff"),
        Some("crashloopbackoff"),
        "{:?}",
        outcome.corrections
    );
    let best = outcome.best().expect("a match");
    assert_eq!(kb.intents[best.intent].id, "calico-node");
    let through: Vec<&str> = best
        .evidence
        .iter()
        .flat_map(|e| &e.corrected)
        .map(|c| c.typed.as_str())
        .collect();
    assert!(through.contains(&"calcio"), "{best:#?}");
    // words spelled right are no correction
    let clean = kb.match_text("calico-node crashloopbackoff on 3 workers");
    assert!(clean.corrections.is_empty(), "{:?}", clean.corrections);
    assert!(clean
        .ranked
        .iter()
        .flat_map(|r| &r.evidence)
        .all(|e| e.corrected.is_empty()));
}

#[test]
fn the_learned_layer_shows_in_the_evidence() {
    let kb = kb();
    let outcome = kb.match_text("the per-node calico agent daemonset keeps dying on two workers");
    let best = outcome.best().expect("a match");
    assert_eq!(kb.intents[best.intent].id, "calico-node");
    assert!(
        best.evidence
            .iter()
            .any(|e| e.kind == netrunbook::matcher::EvidenceKind::Learned),
        "{best:#?}"
    );
}

/// `expect` is an intent id, or "NONE" for an abstention.
fn check(text: &str, expect: &str) {
    let kb = kb();
    let outcome = kb.match_text(text);
    let got = outcome.best().map_or("NONE", |r| kb.intents[r.intent].id.as_str());
    assert_eq!(got, expect, "for {text:?}: {outcome:#?}");
}

#[test]
fn characteristic_messages() {
    let table = [
        // plain questions and paraphrases
        ("the LB never gets an external IP", "loadbalancer"),
        ("pods can't resolve hostnames", "dns"),
        ("who do I page for armada-network?", "escalation-policy"),
        // alert names typed as one word, and components named by their role
        ("KubernetesEndpointScrapeFailure firing for our network squad", "scrape-failure"),
        ("the tunnel that replaced openvpn is down on the customer master", "konnectivity-server-down"),
        // typos
        ("calcio-node keeps crashing on one worker", "calico-node"),
        ("loadbalancr stuck pending", "loadbalancer"),
        // PagerDuty titles and pasted logs with noise
        ("[#4821337] armada-network-konnectivityserver triggered for c9v3k1sd0abcdefgh123", "konnectivity-server-down"),
        ("FIRING armada-network_endpoint_scrape_failure prod-dal10-carrier105", "scrape-failure"),
        (
            "Warning  FailedCreatePodSandBox  22s (x7 over 21m)  kubelet  Failed to create pod sandbox: rpc error: code = Unknown desc = failed to request 1 IPv4 addresses. IPAM allocated only 0",
            "pods-not-starting",
        ),
        (
            "2022-09-08 07:13:19.719 [WARNING][9] startup/utils.go 228: Failed to set NetworkUnavailable; will retry error=Patch \"https://172.21.0.1:443/api/v1/nodes/10.242.64.17/status?timeout=2s\": net/http: request canceled (Client.Timeout exceeded while awaiting headers)",
            "roks-vpc-calico-node-after-update",
        ),
        ("worker status: Pending endpoint gateway creation for 35 minutes", "worker-deploy-failures"),
        // Slack markup
        ("<@U0123ABCD> :fire: <#C01|armada-network> kcc crashlooping on prod, see <https://x.io/log|log>", "calico-kube-controllers"),
        ("```\nNAME   TYPE   CLUSTER-IP   EXTERNAL-IP   PORT(S)\nweb    LoadBalancer   172.21.4.9   &lt;pending&gt;   80:31234/TCP\n```", "loadbalancer"),
        // unrelated and near misses
        ("hello!", "NONE"),
        ("how do I resize a PVC?", "NONE"),
        ("who approves IAM access group invites?", "NONE"),
        ("thanks, that fixed it", "NONE"),
    ];
    for (text, expect) in table {
        check(text, expect);
    }
}

#[test]
fn exact_signatures_beat_loose_keywords() {
    // mentions load balancers and DNS in passing, but the pasted error is unmistakable
    check(
        "our LB and dns look fine, but new pods fail: cannot allocate new block due to per host block limit",
        "pods-not-starting",
    );
}

/// About 40 KB of kubelet log: healthy lines about the load balancer's pods, each repeated hundreds of
/// times, and one error line (at `at`, a fraction of the way in).
fn kubelet_paste(error: &str, at: f64) -> String {
    let quiet = [
        r#"I1130 04:12:31.000101    2817 prober.go:116] "Probe succeeded" probeType="Readiness" pod="ibm-system/ibm-cloud-provider-ip-169-61-4a1b2c3d-7f9" containerName="ibm-cloud-provider-ip""#,
        r#"I1130 04:12:31.000202    2817 kubelet.go:2214] "SyncLoop (PLEG): event for pod" pod="kube-system/ibm-keepalived-watcher-9zx2k" event={Type:ContainerStarted}"#,
        r#"I1130 04:12:31.000303    2817 reconciler.go:224] "operationExecutor.VerifyControllerAttachedVolume started" volume="kube-api-access-x2kq9" pod="default/web-6c9f8d7b5-x2kq9""#,
    ];
    let mut lines: Vec<&str> = quiet.iter().cycle().take(40 * 1024 / 150).copied().collect();
    lines.insert((lines.len() as f64 * at) as usize, error);
    lines.join("\n")
}

#[test]
fn in_a_pasted_log_the_error_line_outweighs_hundreds_of_healthy_lines() {
    let cases = [
        (
            r#"E1130 04:13:02.000001    2817 pod_workers.go:1298] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"calico-node\" with CrashLoopBackOff" pod="calico-system/calico-node-7xk2p""#,
            "calico-node",
        ),
        (
            "Warning  FailedCreatePodSandBox  kubelet  Failed to create pod sandbox: plugin type=\"calico\" failed (add): failed to request 1 IPv4 addresses. IPAM allocated only 0",
            "pods-not-starting",
        ),
    ];
    for (error, expect) in cases {
        for at in [0.0, 0.5, 1.0] {
            let paste = kubelet_paste(error, at);
            assert!(paste.len() > 35_000, "{}", paste.len());
            check(&paste, expect);
        }
    }
    // the person's own words around the paste still count; a paste of healthy lines alone is kept whole
    check(
        &format!(
            "calico-node keeps restarting on this worker, kubelet says:\n{}",
            kubelet_paste("", 1.0)
        ),
        "calico-node",
    );
    let kb = kb();
    let outcome = kb.match_text(&kubelet_paste("", 0.0));
    assert!(
        outcome.ranked.iter().any(|r| kb.intents[r.intent].id == "loadbalancer"),
        "quiet lines alone are still read: {outcome:#?}"
    );
}

#[test]
fn close_calls_are_flagged_ambiguous() {
    let kb = kb();
    let outcome = kb.match_text("calico-kube-controllers and calico-node both crashlooping");
    assert!(outcome.ranked.len() >= 2);
    if outcome.verdict == Verdict::Match {
        let (a, b) = (outcome.ranked[0].score, outcome.ranked[1].score);
        assert!(b < a * netrunbook::matcher::AMBIGUOUS_RATIO, "{a} vs {b}");
    }
}

#[test]
fn evidence_explains_the_choice() {
    let kb = kb();
    let outcome = kb.match_text("konnectivity server down");
    let best = outcome.best().expect("a match");
    assert!(!best.evidence.is_empty());
    let points: f64 = best.evidence.iter().map(|e| e.points).sum();
    assert!((points - best.score).abs() < 1e-9, "evidence adds up to the score");
}

/// Markup that would notify people if it reached Slack unescaped.
const PINGS: &[&str] = &["<!channel>", "<!here>", "<@U123>"];

/// Every string a rendered message shows (fallback and block texts), as Slack receives it.
fn texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(t)) = o.get("text") {
                out.push(t.clone());
            }
            o.values().for_each(|x| texts(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
        _ => {}
    }
}

/// Hostile text (empty, control characters, right-to-left script, emoji, broadcasts, a 50 KB log, a
/// 200 KB word, 10,000 angle brackets): the matcher's outcome adds up, the first reply is an answer
/// about the section the text is about or the polite no-match, and that reply rendered for Slack is
/// within Slack's limits and pings nobody.
#[test]
fn hostile_text_gets_an_answer_or_a_polite_no_match_within_slacks_limits() {
    let kb = kb();
    let big = "calico-node log line 10.0.0.1 2024-01-01T00:00:00Z\n".repeat(1000);
    // (what, text, the section it is about; "NONE" for the no-match)
    let inputs = [
        ("empty", String::new(), "NONE"),
        ("control characters", "\u{0}\u{1}\u{2}\u{fffd}".repeat(100), "NONE"),
        ("right-to-left", "שלום, ה-DNS לא עובד בקלאסטר".to_string(), "dns"),
        ("emoji", "🔥🔥🔥 🚨".repeat(50), "NONE"),
        (
            "broadcasts and links",
            "<!channel> <!here> <@U123> <#C1|x> <https://a|b>".to_string(),
            "NONE",
        ),
        ("a 50 KB log", big, "calico-node"),
        ("a 200 KB word", "a".repeat(200_000), "NONE"),
        ("angle brackets", "<".repeat(5000) + &">".repeat(5000), "NONE"),
    ];
    for (what, text, about) in inputs {
        let outcome = kb.match_text(&text);
        for r in &outcome.ranked {
            let points: f64 = r.evidence.iter().map(|e| e.points).sum();
            assert!(
                r.score.is_finite() && (points - r.score).abs() < 1e-6,
                "{what}: the evidence adds up to the score: {r:#?}"
            );
        }
        assert!(
            outcome.ranked.windows(2).all(|w| w[0].score >= w[1].score),
            "{what}: ranked best first"
        );
        let got = outcome.best().map_or("NONE", |r| kb.intents[r.intent].id.as_str());
        assert_eq!(got, about, "{what}: {outcome:#?}");

        let replies = step(
            kb,
            None,
            &Input::Message {
                text: text.clone(),
                addressed: true,
            },
            1_700_000_000,
        )
        .replies;
        match (about, replies.first()) {
            ("NONE", Some(Reply::NoMatch)) => {}
            (id, Some(Reply::Answer(a))) if a.intent == id => {}
            _ => panic!("{what}: about {about}, the bot says {replies:#?}"),
        }
        let rendered = blocks::render(&Message::Replies(replies), &kb.version);
        assert!(!rendered.is_empty(), "{what}: nothing to post");
        for r in &rendered {
            assert!(!r.text.trim().is_empty(), "{what}: a notification fallback");
            assert!(
                r.blocks.len() <= MAX_BLOCKS,
                "{what}: {} blocks, Slack takes {MAX_BLOCKS}",
                r.blocks.len()
            );
            let blocks = serde_json::to_value(&r.blocks).expect("blocks serialise");
            let mut shown = vec![r.text.clone()];
            texts(&blocks, &mut shown);
            for t in &shown {
                assert!(
                    t.chars().count() <= SECTION_CHARS,
                    "{what}: a text of {} characters, Slack takes {SECTION_CHARS}",
                    t.chars().count()
                );
                for p in PINGS {
                    assert!(!t.contains(p), "{what}: {p} would go out live in {t}");
                }
            }
        }
    }
}
