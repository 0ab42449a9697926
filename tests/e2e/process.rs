//! The real `netrunbook serve` process: SIGKILL mid-dialogue then a restart continues; SIGTERM exits
//! 0 after flushing; `link_disabled` stops it with a clear log line; bad tokens are named, not shown;
//! SIGHUP reloads the knowledge base; debug logs carry the event span and never a token.

use std::path::Path;
use std::time::Duration;

use netrunbook_testkit::process::{command, BotProcess, Options, APP_TOKEN, BOT_TOKEN};
use netrunbook_testkit::slack_emulator::{SlackEmulator, BOT_USER_ID};

use crate::ops::{edit_dns_summary, intents_copy};
use crate::{buttons, serve_options, shown, shown_all, with_button, USER, WAIT};

/// Generous bound for a process to start, or to stop after SIGTERM (a debug build on a busy machine).
const START: Duration = Duration::from_secs(30);

/// `netrunbook serve` against `emu` with the store in `db`, connected.
async fn serve(emu: &SlackEmulator, db: &Path) -> BotProcess {
    serve_with(emu, db, serve_options()).await
}

async fn serve_with(emu: &SlackEmulator, db: &Path, opts: Options) -> BotProcess {
    BotProcess::start(emu, db, &opts, START).await
}

async fn wait_thread(
    emu: &SlackEmulator,
    channel: &str,
    thread: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msgs: Vec<_> = emu
            .messages(channel)
            .into_iter()
            .filter(|m| m["bot_id"].is_string() && m["thread_ts"] == thread)
            .collect();
        if done(&msgs) {
            return msgs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out; thread:\n{}",
            shown_all(&msgs)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn sigkill_mid_dialogue_then_restart_continues() {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let first = serve(&emu, &db).await;
    let text = format!("<@{BOT_USER_ID}> LoadBalancer service stuck with pending external IP");
    let post = emu
        .post_user_message("C0INC", USER, &text, None, &["app_mention"])
        .await;
    wait_thread(&emu, "C0INC", &post.ts, |m| with_button(m, 0, "VPC").is_some()).await;
    first.kill().await; // SIGKILL: no flush, no goodbye

    let second = serve(&emu, &db).await;
    emu.post_user_message("C0INC", USER, "vpc", Some(&post.ts), &["message"])
        .await;
    let msgs = wait_thread(&emu, "C0INC", &post.ts, |m| with_button(m, 2, "IKS").is_some()).await;
    assert_eq!(
        msgs.len(),
        3,
        "answer, infra question, platform question:\n{}",
        shown_all(&msgs)
    );
    let (code, log) = second.terminate(START).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("conversation store flushed"), "{log}");
    assert!(
        !log.contains(APP_TOKEN) && !log.contains(BOT_TOKEN),
        "tokens never logged"
    );
}

#[tokio::test]
async fn link_disabled_stops_the_listener_with_a_clear_log_line() {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = serve(&emu, &dir.path().join("db")).await;
    assert!(emu.wait_connected(1, WAIT).await);
    let connects = emu.connects_total();
    assert_eq!(emu.disconnect("link_disabled").await, 1);
    let (code, log) = serve.wait_exit(WAIT).await;
    assert_eq!(code, Some(3), "{log}");
    assert!(
        log.contains("link_disabled") && log.contains("not reconnecting"),
        "{log}"
    );
    assert_eq!(emu.connects_total(), connects, "did not reconnect");
    assert!(emu.calls_to("apps.connections.open").len() <= connects);
}

#[tokio::test]
async fn missing_or_malformed_tokens_are_named_and_never_shown() {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = command(&emu, &dir.path().join("db"), &serve_options())
        .env_remove("SLACK_APP_TOKEN")
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SLACK_APP_TOKEN is not set"), "{err}");

    let out = command(&emu, &dir.path().join("db"), &serve_options())
        .env("SLACK_BOT_TOKEN", "xapp-looks-like-the-wrong-secret-123")
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SLACK_BOT_TOKEN is malformed"), "{err}");
    assert!(!err.contains("wrong-secret"), "the value is not echoed: {err}");
    assert!(emu.calls().is_empty(), "nothing was sent to Slack");
}

#[tokio::test]
async fn a_store_held_by_another_process_is_a_clear_error() {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let _held = netrunbook::store::SledStore::open(&db).unwrap();
    let (code, err) = BotProcess::run_to_exit(&emu, &db, &serve_options(), START).await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains(&db.display().to_string()) && err.contains("another process"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Mention the bot with `text` in a new thread; returns the first message it posts there.
async fn ask(emu: &SlackEmulator, text: &str) -> serde_json::Value {
    let post = emu
        .post_user_message(
            "C0INC",
            USER,
            &format!("<@{BOT_USER_ID}> {text}"),
            None,
            &["app_mention"],
        )
        .await;
    wait_thread(emu, "C0INC", &post.ts, |m| !m.is_empty()).await[0].clone()
}

#[tokio::test]
async fn sighup_reloads_the_knowledge_base_and_a_broken_one_is_not_taken() {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_tmp, intents) = intents_copy();
    let dns = "coredns lookups fail in pods";
    let opts = Options {
        intents: Some(intents.clone()),
        ..serve_options()
    };
    let serve = serve_with(&emu, &dir.path().join("db"), opts).await;
    assert!(!shown(&ask(&emu, dns).await).contains("SIGHUP-SUMMARY"));

    edit_dns_summary(&intents, "SIGHUP-SUMMARY");
    serve.signal("-HUP");
    serve.wait_log("knowledge base reloaded", WAIT).await;
    assert!(shown(&ask(&emu, dns).await).contains("SIGHUP-SUMMARY"));

    std::fs::write(intents.join("dns.yaml"), "id: dns\nheading: [unclosed\n").unwrap();
    serve.signal("-HUP");
    serve.wait_log("knowledge base reload rejected", WAIT).await;
    assert!(
        serve.log().contains("dns.yaml"),
        "the log names the problem:\n{}",
        serve.log()
    );
    assert!(
        shown(&ask(&emu, dns).await).contains("SIGHUP-SUMMARY"),
        "the last good knowledge base keeps answering"
    );
    let (code, log) = serve.terminate(START).await;
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test]
async fn debug_logs_carry_the_event_span_and_never_a_token() {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        rust_log: Some("debug".into()),
        env: vec![("NETRUNBOOK_LOG_FORMAT".into(), "json".into())],
        ..serve_options()
    };
    let serve = serve_with(&emu, &dir.path().join("db"), opts).await;
    let question = "LoadBalancer service stuck with pending external IP";
    let post = emu
        .post_user_message(
            "C0INC",
            USER,
            &format!("<@{BOT_USER_ID}> {question}"),
            None,
            &["app_mention"],
        )
        .await;
    let msgs = wait_thread(&emu, "C0INC", &post.ts, |m| with_button(m, 0, "VPC").is_some()).await;
    let q = with_button(&msgs, 0, "VPC").unwrap();
    let (_, id, value) = buttons(q).into_iter().find(|(l, _, _)| l == "VPC").unwrap();
    let q_ts = q["ts"].as_str().unwrap().to_string();
    emu.push_block_action("C0INC", USER, &q_ts, Some(&post.ts), &id, &value)
        .await;
    wait_thread(&emu, "C0INC", &post.ts, |m| with_button(m, 2, "IKS").is_some()).await;
    let slash = emu.push_slash("C0INC", USER, "coredns lookups fail in pods").await;
    emu.wait_ack(&slash.envelope_id, WAIT).await.expect("acked");
    let (code, log) = serve.terminate(START).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        !log.contains("xoxb-") && !log.contains("xapp-"),
        "a token in the debug log:\n{log}"
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let in_event = |l: &&serde_json::Value| {
        l["span"]["name"] == "slack_event"
            && l["span"]["channel"] == "C0INC"
            && l["span"]["thread"] == post.ts.as_str()
            && l["span"]["intent"] == "loadbalancer"
    };
    assert!(
        lines.iter().any(|l| in_event(&l)),
        "no line inside the event's span with channel, thread and intent:\n{log}"
    );
    let with_text: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l.to_string().contains("pending external IP"))
        .collect();
    assert!(!with_text.is_empty(), "debug shows the message text");
    assert!(
        with_text.iter().all(|l| l["level"] == "DEBUG"),
        "message text only at debug: {with_text:?}"
    );
}
