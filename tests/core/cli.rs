//! The real `netrunbook` binary: `ask`, `check`, `eval` and `chat`, including the bad inputs a runbook
//! owner or a newcomer will throw at it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netrunbook"));
    c.env_remove("NETRUNBOOK_INTENTS")
        .env_remove("NETRUNBOOK_RUNBOOK_BASE_URL");
    c
}

pub(crate) fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn ask_json_names_the_section_and_its_evidence() {
    let o = run(
        &["ask", "--json", "calico-kube-controllers CrashLoopBackOff on prod"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["section"], "Problems with calico-kube-controllers");
    assert_eq!(v["intent"], "calico-kube-controllers");
    assert!(v["score"].as_f64().unwrap() > 0.0);
    assert!(v["url"]
        .as_str()
        .unwrap()
        .ends_with("#problems-with-calico-kube-controllers"));
    assert!(v["alternatives"].is_array());
    assert!(!v["evidence"].as_array().unwrap().is_empty());
}

#[test]
fn ask_json_abstains_with_a_null_section() {
    let o = run(&["ask", "--json", "what's for lunch?"], None);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["section"].is_null());
    assert_eq!(v["verdict"], "abstain");
}

#[test]
fn ask_reads_standard_input() {
    let o = run(
        &["ask"],
        Some(b"Warning FailedCreatePodSandBox ... IPAM allocated only 0\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Pods Not Starting"), "{}", stdout(&o));
}

#[test]
fn ask_survives_huge_and_binary_input() {
    let mut huge = b"calico-node crash\n".repeat(40_000);
    huge.extend_from_slice(&[0, 159, 146, 150, 255, 254]);
    let o = run(&["ask", "--json"], Some(&huge));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["intent"], "calico-node");
    let bin: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let o = run(&["ask"], Some(&bin));
    assert!(o.status.code().is_some(), "no crash");
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn ask_without_text_is_a_clear_error() {
    let o = run(&["ask"], Some(b"   \n"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nothing to ask"), "{}", stderr(&o));
}

#[test]
fn check_passes_on_the_shipped_intents() {
    let o = run(&["check", "--intents", "intents"], None);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("19 intents"), "{}", stdout(&o));
}

/// A copy of the shipped intents in a temporary directory, with one file replaced.
fn broken_kb(file: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir("intents").unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join(file), text).unwrap();
    dir
}

fn check_dir(dir: &Path) -> (i32, String) {
    let o = run(&["check", "--intents", dir.to_str().unwrap()], None);
    (o.status.code().unwrap(), stdout(&o) + &stderr(&o))
}

#[test]
fn check_names_file_and_line_of_malformed_yaml() {
    let dir = broken_kb(
        "dns.yaml",
        "id: dns\nheading: Customer Reports DNS Issues\ntitle: [unclosed\n",
    );
    let (code, out) = check_dir(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("dns.yaml:3"), "{out}");
}

#[test]
fn check_rejects_unknown_fields_duplicate_ids_bad_regexes_and_dangling_steps() {
    let dns = std::fs::read_to_string("intents/dns.yaml").unwrap();
    let cases = [
        (
            dns.replacen("title:", "colour: blue\ntitle:", 1),
            "unknown field `colour`",
        ),
        (
            dns.replacen("id: dns", "id: loadbalancer", 1),
            "duplicate id `loadbalancer`",
        ),
        (
            dns.replacen("signatures:\n", "signatures:\n    - pattern: '(unclosed'\n", 1),
            "bad regex `(unclosed`",
        ),
        (
            dns.replacen("iks: iks_guides", "iks: nowhere", 1),
            "leads to missing node `nowhere`",
        ),
        (
            dns.replacen("ask: platform", "ask: no_such_slot", 1),
            "unknown slot `no_such_slot`",
        ),
    ];
    for (text, want) in cases {
        assert_ne!(text, dns, "the test's edit must apply for {want}");
        let dir = broken_kb("dns.yaml", &text);
        let (code, out) = check_dir(dir.path());
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(want), "expected `{want}` in:\n{out}");
        assert!(out.contains("dns.yaml"), "the file is named:\n{out}");
    }
}

#[test]
fn check_reports_unreachable_steps() {
    let dns = std::fs::read_to_string("intents/dns.yaml").unwrap();
    let text = dns.replacen("  nodes:\n", "  nodes:\n    orphan:\n      say: nobody gets here\n", 1);
    assert_ne!(text, dns);
    let dir = broken_kb("dns.yaml", &text);
    let (code, out) = check_dir(dir.path());
    assert_eq!(code, 1);
    assert!(out.contains("`orphan` is unreachable"), "{out}");
}

#[test]
fn check_refuses_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check_dir(dir.path());
    assert_eq!(code, 1);
    assert!(out.contains("no intent files"), "{out}");
}

#[test]
fn check_against_a_runbook_finds_uncovered_sections_and_lost_links() {
    let dir = tempfile::tempdir().unwrap();
    let runbook = dir.path().join("runbook.md");
    std::fs::write(
        &runbook,
        "---\nlink: /armada/armada-network-initial-troubleshooting.html\n---\n## Overview\n### Customer Reports DNS Issues\nSee [new guide](https://example.com/new-dns-guide).\n### A Brand New Section\ntext\n",
    )
    .unwrap();
    let o = run(
        &["check", "--intents", "intents", "--runbook", runbook.to_str().unwrap()],
        None,
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("`A Brand New Section` is not covered"), "{out}");
    assert!(out.contains("https://example.com/new-dns-guide"), "{out}");
    assert!(
        out.contains("does not exist in"),
        "intents whose heading vanished are reported:\n{out}"
    );
}

/// The runbook's DNS and Escalation Policy sections, as the runbook writes them.
const DNS_RUNBOOK: &str = "---\nlink: /armada/armada-network-initial-troubleshooting.html\n---\n### Customer Reports DNS Issues\n\nThe following customer documentation should be used to troubleshoot any DNS issues inside the cluster.\n - [General DNS troubleshooting for IKS clusters](https://kubernetes.io/docs/tasks/administer-cluster/dns-debugging-resolution/)\n - [Specific coreDNS troubleshooting for IKS:](https://cloud.ibm.com/docs/containers?topic=containers-coredns_lameduck)\n - [General DNS troubleshooting for Openshift clusters](https://access.redhat.com/solutions/3804501)\n\n## Escalation Policy\n\nUse the escalation steps below to involve the `armada-network` squad:\n\n  * Escalation policy: [Alchemy - Containers Tribe - armada-network](https://ibm.pagerduty.com/escalation_policies#P2MK3WQ)\n  * Slack channel: [#armada-network](https://ibm-argonauts.slack.com/messages/armada-network)\n  * GHE issues: [armada-network](https://github.ibm.com/alchemy-containers/armada-network/issues/)\n";

#[test]
fn check_against_a_runbook_names_facts_its_section_does_not_state() {
    let dns = std::fs::read_to_string("intents/dns.yaml").unwrap();
    let claim = "  If that fails, wait 30 minutes and ask in #some-channel.\n";
    let text = dns.replacen("summary: |\n", &format!("summary: |\n{claim}"), 1);
    assert_ne!(text, dns, "the test's edit must apply");
    let line = text.lines().position(|l| l == claim.trim_end()).unwrap() + 1;
    let dir = broken_kb("dns.yaml", &text);
    let runbook = dir.path().join("runbook.md");
    std::fs::write(&runbook, DNS_RUNBOOK).unwrap();
    let o = run(
        &[
            "check",
            "--intents",
            dir.path().to_str().unwrap(),
            "--runbook",
            runbook.to_str().unwrap(),
        ],
        None,
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let at = format!("dns.yaml:{line}: intent `dns` says");
    for fact in ["`30` (number)", "`#some-channel` (channel)"] {
        let want = format!("{at} {fact} but section \"Customer Reports DNS Issues\" does not");
        assert!(out.contains(&want), "expected `{want}` in:\n{out}");
    }
}

#[test]
fn check_rejects_see_also_naming_no_intent() {
    let dns = std::fs::read_to_string("intents/dns.yaml").unwrap();
    let text = dns.replacen("title:", "see_also: [self-help-suggestions, no-such-intent]\ntitle:", 1);
    assert_ne!(text, dns);
    let dir = broken_kb("dns.yaml", &text);
    let (code, out) = check_dir(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("dns.yaml:3: see_also names unknown intent `no-such-intent`"),
        "{out}"
    );
    assert!(!out.contains("`self-help-suggestions`"), "{out}");
}

#[test]
fn eval_reports_accuracy_and_misses() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("set.jsonl");
    std::fs::write(
        &f,
        "{\"q\": \"kcc crashlooping\", \"section\": \"Problems with calico-kube-controllers\"}\n{\"q\": \"what's for lunch\", \"section\": \"NONE\"}\n{\"q\": \"coredns failing\", \"section\": \"IKS Loadbalancer Issue\"}\n",
    )
    .unwrap();
    let o = run(&["eval", "--json", f.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["total"], 3);
    assert_eq!(v["correct"], 2);
    assert_eq!(v["misses"][0]["line"], 3);
    let o = run(&["eval", "--min-accuracy", "0.9", f.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn chat_walks_a_flow_with_numbers_and_words() {
    let o = run(
        &["chat"],
        Some(b"our VPC workers are stuck provisioning on a new cluster\n1\nabout 40 minutes\n/quit\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Worker Deploy Failures"), "{out}");
    assert!(out.contains("armada-network-pending-endpoint-gateway.html"), "{out}");
}

#[test]
fn chat_reads_a_pasted_block_as_one_message_and_minutes_as_minutes() {
    let paste = "Events:\n\
  Type     Reason                  Age   From     Message\n\
  ----     ------                  ----  ----     -------\n\
  Warning  FailedCreatePodSandBox  22s   kubelet  Failed to create pod sandbox: rpc error: failed to request 1 IPv4 addresses. IPAM allocated only 0\n\
\n\
/quit\n";
    let o = run(&["chat"], Some(paste.as_bytes()));
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    // the whole block is one message: one section answer, no "no match" line by line
    assert_eq!(out.matches("No runbook section fits").count(), 0, "{out}");
    assert_eq!(out.matches("== Pods Not Starting").count(), 1, "{out}");

    let o = run(
        &["chat"],
        Some(b"new VPC workers show Pending endpoint gateway creation\n2\n/quit\n"),
    );
    let out = stdout(&o);
    // "2" answers "for how many minutes?" as 2 minutes, not as option 2 ("More than 20 minutes")
    assert!(out.contains("Not yet 20 minutes"), "{out}");
    assert!(!out.contains("armada-network-pending-endpoint-gateway.html"), "{out}");
}

#[test]
fn chat_help_lists_the_topics() {
    let o = run(&["chat"], Some(b"help\n/quit\n"));
    let out = stdout(&o);
    assert!(out.contains("I know these sections"), "{out}");
    assert!(out.contains("calico-node problems"), "{out}");
    assert!(!out.contains("No runbook section fits"), "{out}");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    // `eval --json | head -c 1`: the reader goes away after one byte
    let mut child = bin()
        .args(["eval", "tests/data/labelled.jsonl", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    std::io::Read::read_exact(&mut out, &mut one).unwrap();
    drop(out);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(&o));
    assert_eq!(stderr(&o), "");
}

#[test]
fn health_lists_only_its_own_flags_and_every_argument_is_described() {
    let o = run(&["health", "--help"], None);
    let help = stdout(&o);
    assert!(help.contains("--url") && help.contains("--http-addr"), "{help}");
    assert!(!help.contains("--intents"), "{help}");
    for cmd in ["ask", "chat", "serve", "check", "health", "report", "eval"] {
        let help = stdout(&run(&[cmd, "--help"], None));
        // clap prints a description beside the argument, or on the lines below it, more indented
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let arg = line.trim_start();
            if !(arg.starts_with('-') || arg.starts_with('<') || arg.starts_with('[')) || !line.starts_with("  ") {
                continue;
            }
            let beside = arg.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            let indent = line.len() - arg.len();
            let below = lines.get(i + 1).is_some_and(|next| {
                let t = next.trim_start();
                !t.is_empty() && next.len() - t.len() > indent && !t.starts_with('-')
            });
            assert!(beside || below, "`netrunbook {cmd}`: {line:?} has no description");
        }
    }
}
