//! Operations: `/healthz`, `/readyz` and `/metrics`; feedback and the report; reloading the knowledge
//! base; who may use the bot where.

use std::path::{Path, PathBuf};
use std::time::Duration;

use netrunbook_testkit::slack_emulator::{Fault, SlackEmulator};
use serde_json::Value;

use crate::{buttons, launch, shown, shown_all, spawn_bot, spawn_bot_with, with_button, OTHER_USER, USER, WAIT};

const DNS_QUESTION: &str = "coredns lookups fail in pods";
const NO_FLOW_QUESTION: &str = "who do I page for armada-network";

/// The intent a posted answer is about, from its 👍 button.
fn answer_intent(answer: &Value) -> String {
    let (_, _, value) = buttons(answer)
        .into_iter()
        .find(|(label, _, _)| label == "👍 Helpful")
        .expect("an answer has a 👍 button");
    let v: Value = serde_json::from_str(&value).unwrap();
    v["i"].as_str().unwrap().to_string()
}

/// The line of the report's table about `intent`.
fn report_row<'r>(report: &'r str, intent: &str) -> &'r str {
    report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(intent))
        .unwrap_or_else(|| panic!("no row for {intent}:\n{report}"))
}

/// The knowledge-base version an answer's footer names.
fn footer_version(m: &Value) -> String {
    let text = shown(m);
    let at = text.find("knowledge base `").expect("a knowledge-base footer") + "knowledge base `".len();
    text[at..].split('`').next().unwrap().to_string()
}

#[tokio::test]
async fn healthz_and_readyz_follow_the_socket_mode_connection() {
    let emu = SlackEmulator::start().await;
    // both first connections take a while to open: the bot is up, not ready
    emu.fail_next("apps.connections.open", Fault::Hang(Duration::from_millis(1500)));
    emu.fail_next("apps.connections.open", Fault::Hang(Duration::from_millis(1500)));
    let bot = launch(emu, tempfile::tempdir().unwrap(), |_| {}).await;
    assert_eq!(bot.get("/healthz").await, (200, "ok\n".to_string()));
    let (status, body) = bot.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Socket Mode is not connected"), "{body}");

    assert!(bot.emu.wait_connected(2, WAIT).await);
    bot.wait_metric("netrunbook_socket_connections", 2.0).await;
    let (status, body) = bot.get("/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    // the network goes: every socket reset, and reconnecting fails for a while
    for _ in 0..10 {
        bot.emu.fail_next("apps.connections.open", Fault::Status(503));
    }
    assert_eq!(bot.emu.drop_sockets().await, 2);
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let (status, body) = bot.get("/readyz").await;
        if status == 503 {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "/readyz stayed {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(body.contains("Socket Mode is not connected"), "{body}");
    assert_eq!(bot.get("/healthz").await.0, 200, "alive all along");

    // and comes back
    assert!(bot.emu.wait_connected(2, WAIT).await);
    bot.wait_metric("netrunbook_socket_connections", 2.0).await;
    assert_eq!(bot.get("/readyz").await.0, 200);
    assert_eq!(bot.metric("netrunbook_socket_reconnects_total").await, Some(2.0));
    assert!(
        bot.metric("netrunbook_slack_api_errors_total{method=\"apps.connections.open\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    let http = bot.http;
    bot.stop().await;
    let gone = tokio::task::spawn_blocking(move || {
        netrunbook::http::get(&format!("http://{http}/healthz"), Duration::from_secs(1))
    })
    .await
    .unwrap();
    assert!(gone.is_err(), "the endpoint stops with the bot: {gone:?}");
}

#[tokio::test]
async fn metrics_count_an_answer_by_intent_a_dropped_duplicate_and_the_reply_time() {
    let bot = spawn_bot().await;
    let ts = bot.emu.next_ts();
    let text = format!(
        "<@{}> {NO_FLOW_QUESTION}",
        netrunbook_testkit::slack_emulator::BOT_USER_ID
    );
    bot.emu.add_message("C0INC", &ts, None, USER, &text);
    let event = SlackEmulator::user_event("app_mention", "C0INC", USER, &ts, None, &text);
    bot.emu.push_event_with_id("Ev0METRICS", 0, event.clone()).await;
    let msgs = bot.wait_thread("C0INC", &ts, "the answer", |m| !m.is_empty()).await;
    let intent = answer_intent(&msgs[0]);
    // Slack retries the same event
    let retry = bot.emu.push_event_with_id("Ev0METRICS", 1, event).await;
    bot.emu.wait_ack(&retry.envelope_id, WAIT).await.expect("acked");

    bot.wait_metric("netrunbook_duplicates_dropped_total", 1.0).await;
    let (status, body) = bot.get("/metrics").await;
    assert_eq!(status, 200);
    let series = format!("netrunbook_answers_total{{intent=\"{intent}\"}}");
    assert_eq!(crate::metric_value(&body, &series), Some(1.0), "{body}");
    assert_eq!(
        crate::metric_value(&body, "netrunbook_events_received_total{kind=\"mention\"}"),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        crate::metric_value(&body, "netrunbook_event_reply_seconds_count"),
        Some(1.0),
        "{body}"
    );
    assert!(
        body.contains("# TYPE netrunbook_event_reply_seconds histogram"),
        "{body}"
    );
    assert_eq!(bot.emu.calls_to("chat.postMessage").len(), 1, "answered once");
    bot.stop().await;
}

#[tokio::test]
async fn rate_limits_and_abstentions_are_counted() {
    let bot = spawn_bot().await;
    bot.emu
        .fail_next("chat.postMessage", Fault::RateLimited { retry_after_secs: 1 });
    let post = bot
        .mention("C0INC", "how do I pay the invoice for my billing account", None)
        .await;
    bot.wait_thread("C0INC", &post.ts, "the no-match answer", |m| !m.is_empty())
        .await;
    bot.wait_metric("netrunbook_abstentions_total", 1.0).await;
    assert_eq!(
        bot.metric("netrunbook_slack_rate_limited_total{method=\"chat.postMessage\"}")
            .await,
        Some(1.0)
    );
    bot.stop().await;
}

#[tokio::test]
async fn a_thumbs_up_is_recorded_and_shown_by_the_report() {
    let bot = spawn_bot_with(|s| {
        s.access.admins.insert(USER.into());
    })
    .await;
    let post = bot.mention("C0INC", NO_FLOW_QUESTION, None).await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "the answer", |m| !m.is_empty())
        .await;
    let intent = answer_intent(&msgs[0]);
    let (_, id, value) = buttons(&msgs[0])
        .into_iter()
        .find(|(l, _, _)| l == "👍 Helpful")
        .unwrap();
    let answer_ts = msgs[0]["ts"].as_str().unwrap().to_string();
    bot.emu
        .push_block_action("C0INC", OTHER_USER, &answer_ts, Some(&post.ts), &id, &value)
        .await;
    bot.wait_ephemeral(OTHER_USER, "Thanks, noted.").await;
    bot.wait_metric("netrunbook_feedback_total{vote=\"up\"}", 1.0).await;

    // an admin asks for the report in Slack
    let ack = bot.slash("C0INC", USER, "report").await;
    assert!(shown(&ack).contains("Putting the report together"), "{}", shown(&ack));
    let report = shown(&bot.wait_ephemeral(USER, "netrunbook report").await);
    let row = report_row(&report, &intent);
    let numbers: Vec<&str> = row.split_whitespace().skip(1).take(5).collect();
    assert_eq!(
        numbers,
        ["1", "0", "1", "0", "0"],
        "answers, alerts, up, down, wrong topic:\n{report}"
    );

    // the CLI cannot read the store while the bot holds it, and says so
    let out = report_cli(&bot.db, &["--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by a running `netrunbook serve`") && err.contains("/netrunbook report"),
        "{err}"
    );

    // and reads it once the bot has stopped
    let db = bot.db.clone();
    let (_, _emu, _dir) = bot.stop().await;
    let out = report_cli(&db, &["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = json["intents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["intent"] == intent.as_str())
        .expect("the intent's row");
    assert_eq!((row["answers"].as_u64(), row["up"].as_u64()), (Some(1), Some(1)));
}

fn report_cli(db: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_netrunbook"))
        .arg("report")
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("NETRUNBOOK_DB")
        .output()
        .expect("netrunbook runs")
}

#[tokio::test]
async fn an_abstained_message_appears_redacted_in_the_report() {
    let bot = spawn_bot_with(|s| {
        s.access.admins.insert(USER.into());
    })
    .await;
    let secret =
        "how do I pay the invoice for my billing account 4711? password=hunter2 token xoxb-1234-5678-abcdefghij";
    let post = bot.mention("C0INC", secret, None).await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "the no-match answer", |m| !m.is_empty())
        .await;
    assert!(
        shown_all(&msgs).contains("No runbook section fits"),
        "{}",
        shown_all(&msgs)
    );
    // the same question again, with other numbers: one signature, counted twice
    let again = "How do I pay the invoice for my billing account 815?  password=swordfish token xoxb-99-1-zzzzzz";
    let post = bot.mention("C0INC", again, None).await;
    bot.wait_thread("C0INC", &post.ts, "the second no-match answer", |m| !m.is_empty())
        .await;

    bot.slash("C0INC", USER, "report").await;
    let report = shown(&bot.wait_ephemeral(USER, "Top unanswered questions").await);
    assert!(
        report.contains("2×  abstained") && report.contains("[how do i pay the invoice for my billing account"),
        "{report}"
    );
    assert!(report.contains("password=[REDACTED]"), "{report}");
    assert!(
        !report.contains("hunter2")
            && !report.contains("swordfish")
            && !report.contains("xoxb-")
            && !report.contains("abcdefghij"),
        "secrets never reach the store:\n{report}"
    );
    let db = bot.db.clone();
    let (_, _emu, _dir) = bot.stop().await;
    let out = report_cli(&db, &["--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let u = &json["unanswered"][0];
    assert_eq!((u["count"].as_u64(), u["doubt"].as_str()), (Some(2), Some("abstained")));
    assert!(!out.stdout.windows(7).any(|w| w == b"hunter2"));

    // exported for labelling in the eval format: redacted, unlabelled, and eval skips it saying so
    let file = db.join("export.jsonl");
    let out = report_cli(&db, &["--export", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = std::fs::read_to_string(&file).unwrap();
    let line: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(
        (line["section"].as_str(), line["kind"].as_str()),
        (Some(""), Some("abstained"))
    );
    assert!(
        line["q"].as_str().unwrap().contains("password=[REDACTED]"),
        "{exported}"
    );
    assert!(
        !exported.contains("swordfish") && !exported.contains("xoxb-"),
        "{exported}"
    );
    let eval = std::process::Command::new(env!("CARGO_BIN_EXE_netrunbook"))
        .args(["eval", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&eval.stdout).contains("skipped 1 unlabelled line"),
        "{}",
        String::from_utf8_lossy(&eval.stdout)
    );
}

/// A copy of the repository's `intents/` to edit.
pub fn intents_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("intents");
    std::fs::create_dir(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents");
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    (tmp, dir)
}

/// Put `marker` at the start of the DNS intent's summary.
pub fn edit_dns_summary(intents: &Path, marker: &str) {
    let file = intents.join("dns.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    let edited = yaml.replacen("  Name lookups fail", &format!("  {marker} Name lookups fail"), 1);
    assert_ne!(yaml, edited, "the summary line is where the test expects it");
    std::fs::write(file, edited).unwrap();
}

#[tokio::test]
async fn an_admin_reload_swaps_the_knowledge_base_and_a_broken_one_is_rejected() {
    let (_tmp, intents) = intents_copy();
    let dir = intents.clone();
    let bot = spawn_bot_with(move |s| {
        s.kb.intents = Some(dir);
        s.access.admins.insert(USER.into());
    })
    .await;
    let first = bot.mention("C0INC", DNS_QUESTION, None).await;
    let msgs = bot
        .wait_thread("C0INC", &first.ts, "the first answer", |m| !m.is_empty())
        .await;
    let v1 = footer_version(&msgs[0]);
    assert!(!shown(&msgs[0]).contains("RELOADED-SUMMARY"));
    // a conversation in flight across the reload
    let flow = bot
        .mention("C0INC", "LoadBalancer service stuck with pending external IP", None)
        .await;
    bot.wait_thread("C0INC", &flow.ts, "the first question", |m| {
        with_button(m, 0, "VPC").is_some()
    })
    .await;

    edit_dns_summary(&intents, "RELOADED-SUMMARY");
    let ack = bot.slash("C0INC", USER, "reload").await;
    assert!(shown(&ack).contains("Reloading the knowledge base"), "{}", shown(&ack));
    let done = shown(&bot.wait_ephemeral(USER, "Knowledge base reloaded").await);
    assert!(done.contains(&v1), "{done}");

    let second = bot.mention("C0INC", DNS_QUESTION, None).await;
    let msgs = bot
        .wait_thread("C0INC", &second.ts, "the answer after the reload", |m| !m.is_empty())
        .await;
    assert!(shown(&msgs[0]).contains("RELOADED-SUMMARY"), "{}", shown(&msgs[0]));
    let v2 = footer_version(&msgs[0]);
    assert_ne!(v1, v2, "the footer names the new version");
    assert!(done.contains(&v2), "{done}");

    bot.say("C0INC", USER, "vpc", Some(&flow.ts)).await;
    bot.wait_thread("C0INC", &flow.ts, "the flow going on after the reload", |m| {
        with_button(m, 2, "OpenShift (ROKS)").is_some()
    })
    .await;
    bot.wait_metric("netrunbook_follow_up_steps_total{intent=\"loadbalancer\"}", 1.0)
        .await;

    // a broken knowledge base is refused, with its problems, and the last good one keeps answering
    std::fs::write(intents.join("dns.yaml"), "id: dns\nheading: [unclosed\n").unwrap();
    bot.slash("C0INC", USER, "reload").await;
    let refused = shown(&bot.wait_ephemeral(USER, "was rejected").await);
    assert!(refused.contains("dns.yaml") && refused.contains(&v2), "{refused}");
    let third = bot.mention("C0INC", DNS_QUESTION, None).await;
    let msgs = bot
        .wait_thread("C0INC", &third.ts, "the answer after the refused reload", |m| {
            !m.is_empty()
        })
        .await;
    assert!(shown(&msgs[0]).contains("RELOADED-SUMMARY"));
    assert_eq!(footer_version(&msgs[0]), v2);
    assert_eq!(
        bot.metric("netrunbook_kb_reloads_total{result=\"ok\"}").await,
        Some(1.0)
    );
    assert_eq!(
        bot.metric("netrunbook_kb_reloads_total{result=\"rejected\"}").await,
        Some(1.0)
    );
    bot.stop().await;
}

#[tokio::test]
async fn reload_is_refused_to_non_admins_and_for_the_built_in_knowledge_base() {
    let bot = spawn_bot_with(|s| {
        s.access.admins.insert(USER.into());
    })
    .await;
    let ack = bot.slash("C0INC", OTHER_USER, "reload").await;
    assert!(shown(&ack).contains("Only netrunbook admins"), "{}", shown(&ack));
    let ack = bot.slash("C0INC", OTHER_USER, "report").await;
    assert!(shown(&ack).contains("Only netrunbook admins"), "{}", shown(&ack));
    // the admin may, but the built-in knowledge base cannot be reloaded: the bot says so
    bot.slash("C0INC", USER, "reload").await;
    bot.wait_ephemeral(USER, "built-in knowledge base cannot be reloaded")
        .await;
    bot.settle().await;
    assert!(
        bot.emu
            .calls_to("chat.postEphemeral")
            .iter()
            .all(|c| c.param("user") != Some(OTHER_USER)),
        "nothing ran for the non-admin"
    );
    // exported from the start, and still at 0
    assert_eq!(
        bot.metric("netrunbook_kb_reloads_total{result=\"ok\"}").await,
        Some(0.0)
    );
    bot.stop().await;
}

#[tokio::test]
async fn outside_the_allowed_channels_the_bot_answers_with_a_private_note() {
    let bot = spawn_bot_with(|s| {
        s.access.channels = Some(["C0INC".to_string()].into());
    })
    .await;
    let post = bot.mention("C0RANDOM", DNS_QUESTION, None).await;
    let note = bot.wait_ephemeral(USER, "I do not answer in this channel").await;
    assert_eq!(note["channel"], "C0RANDOM");
    assert!(
        shown(&note).contains("<#C0INC>"),
        "links the allowed channel: {}",
        shown(&note)
    );
    let ack = bot.slash("C0RANDOM", USER, DNS_QUESTION).await;
    assert!(
        shown(&ack).contains("I do not answer in this channel"),
        "{}",
        shown(&ack)
    );
    // in the allowed channel it answers as usual
    let allowed = bot.mention("C0INC", DNS_QUESTION, None).await;
    bot.wait_thread("C0INC", &allowed.ts, "the answer", |m| !m.is_empty())
        .await;
    bot.settle().await;
    assert!(bot.thread("C0RANDOM", &post.ts).is_empty(), "nothing public outside");
    assert!(bot
        .emu
        .calls_to("chat.postMessage")
        .iter()
        .all(|c| c.param("channel") == Some("C0INC")));
    bot.stop().await;
}

#[tokio::test]
async fn wrong_topic_switches_to_the_pick_and_is_counted_against_the_old_intent() {
    let bot = spawn_bot_with(|s| {
        s.access.admins.insert(USER.into());
    })
    .await;
    // a message that scores for more than one section, so the answer offers alternatives
    let post = bot
        .mention("C0INC", "calico-node CrashLoopBackOff and some dns errors", None)
        .await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "an answer with alternatives", |m| {
            m.iter().any(|x| shown(x).contains("Wrong topic?"))
        })
        .await;
    let answer = msgs.iter().find(|m| shown(m).contains("Wrong topic?")).unwrap();
    let from = answer_intent(answer);
    let (label, id, value) = buttons(answer)
        .into_iter()
        .find(|(_, id, _)| id.starts_with("nrb_wrong_topic"))
        .expect("a wrong-topic button");
    let to = serde_json::from_str::<Value>(&value).unwrap()["i"]
        .as_str()
        .unwrap()
        .to_string();
    let before = msgs.len();
    let answer_ts = answer["ts"].as_str().unwrap().to_string();
    bot.emu
        .push_block_action("C0INC", USER, &answer_ts, Some(&post.ts), &id, &value)
        .await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "the answer about the pick", |m| m.len() > before)
        .await;
    let after = shown_all(&msgs[before..]);
    assert!(after.contains(&format!("switching to “{label}”")), "{after}");
    assert_eq!(answer_intent(&msgs[before]), to, "the new answer is about the pick");

    bot.slash("C0INC", USER, "report").await;
    let report = shown(&bot.wait_ephemeral(USER, "netrunbook report").await);
    let row = report_row(&report, &from);
    assert!(row.contains(&format!("→ {to} ×1")), "{row}");
    assert_eq!(row.split_whitespace().nth(5), Some("1"), "one wrong-topic vote: {row}");
    bot.wait_metric("netrunbook_feedback_total{vote=\"wrong_topic\"}", 1.0)
        .await;
    bot.stop().await;
}

#[tokio::test]
async fn netrunbook_health_exits_0_on_a_healthy_bot_and_1_otherwise() {
    let bot = spawn_bot().await;
    let url = format!("http://{}/healthz", bot.http);
    // tokio's Command: the bot answers on this test's runtime while the process runs
    let ok = tokio::process::Command::new(env!("CARGO_BIN_EXE_netrunbook"))
        .args(["health", "--url", &url])
        .output()
        .await
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    // without --url it finds the server through NETRUNBOOK_HTTP_ADDR, as in a container
    let ok = tokio::process::Command::new(env!("CARGO_BIN_EXE_netrunbook"))
        .arg("health")
        .env("NETRUNBOOK_HTTP_ADDR", bot.http.to_string())
        .output()
        .await
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let http = bot.http;
    bot.stop().await;
    assert!(http_get_fails(http).await);
    let down = std::process::Command::new(env!("CARGO_BIN_EXE_netrunbook"))
        .args(["health", "--url", &url])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("unhealthy"),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

async fn http_get_fails(addr: std::net::SocketAddr) -> bool {
    tokio::task::spawn_blocking(move || {
        netrunbook::http::get(&format!("http://{addr}/healthz"), Duration::from_secs(1)).is_err()
    })
    .await
    .unwrap()
}
