//! The real `netrunbook serve` process: SIGKILL mid-dialogue then a restart continues; SIGTERM exits
//! 0 after flushing; `link_disabled` stops it with a clear log line; bad tokens are named, not shown;
//! SIGHUP reloads the knowledge base; debug logs carry the event span and never a token.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::ops::{edit_dns_summary, intents_copy};
use crate::support::slack_emulator::{SlackEmulator, BOT_USER_ID};
use crate::{buttons, shown, shown_all, with_button, APP_TOKEN, BOT_TOKEN, USER, WAIT};

struct Serve {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

fn command(emu: &SlackEmulator, db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netrunbook"));
    c.arg("serve")
        .env_clear()
        .env("SLACK_APP_TOKEN", APP_TOKEN)
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_API_URL", emu.api_url())
        .env("NETRUNBOOK_DB", db)
        .env("NETRUNBOOK_CONNECTIONS", "1")
        // tests run in parallel: each process takes a free port for /healthz, /readyz, /metrics
        .env("NETRUNBOOK_HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

async fn serve(emu: &SlackEmulator, db: &Path) -> Serve {
    serve_with(emu, db, |_| {}).await
}

/// `serve` with the command changed by `configure` (more environment) first.
async fn serve_with(emu: &SlackEmulator, db: &Path, configure: impl FnOnce(&mut Command)) -> Serve {
    let before = emu.connects_total();
    let mut c = command(emu, db);
    configure(&mut c);
    let mut child = c.spawn().expect("netrunbook starts");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while emu.connects_total() <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve connects; stderr:\n{}",
            stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Serve { child, stderr }
}

impl Serve {
    async fn exit_code(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exits in time")
            .unwrap();
        // let the stderr reader catch up
        tokio::time::sleep(Duration::from_millis(100)).await;
        status.code()
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait until the log shows `what`.
    async fn wait_log(&self, what: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.log().contains(what) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log never showed {what:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
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
    let mut first = serve(&emu, &db).await;
    let text = format!("<@{BOT_USER_ID}> LoadBalancer service stuck with pending external IP");
    let post = emu
        .post_user_message("C0INC", USER, &text, None, &["app_mention"])
        .await;
    wait_thread(&emu, "C0INC", &post.ts, |m| with_button(m, 0, "VPC").is_some()).await;
    first.child.start_kill().unwrap(); // SIGKILL: no flush, no goodbye
    first.child.wait().await.unwrap();

    let mut second = serve(&emu, &db).await;
    emu.post_user_message("C0INC", USER, "vpc", Some(&post.ts), &["message"])
        .await;
    let msgs = wait_thread(&emu, "C0INC", &post.ts, |m| with_button(m, 2, "IKS").is_some()).await;
    assert_eq!(
        msgs.len(),
        3,
        "answer, infra question, platform question:\n{}",
        shown_all(&msgs)
    );
    second.signal("-TERM");
    assert_eq!(second.exit_code().await, Some(0), "{}", second.log());
    let log = second.log();
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
    assert_eq!(serve.exit_code().await, Some(3), "{}", serve.log());
    let log = serve.log();
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
    let out = command(&emu, &dir.path().join("db"))
        .env_remove("SLACK_APP_TOKEN")
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SLACK_APP_TOKEN is not set"), "{err}");

    let out = command(&emu, &dir.path().join("db"))
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
    let out = command(&emu, &db).output().await.unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
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
    let mut serve = serve_with(&emu, &dir.path().join("db"), |c| {
        c.env("NETRUNBOOK_INTENTS", &intents);
    })
    .await;
    assert!(!shown(&ask(&emu, dns).await).contains("SIGHUP-SUMMARY"));

    edit_dns_summary(&intents, "SIGHUP-SUMMARY");
    serve.signal("-HUP");
    serve.wait_log("knowledge base reloaded").await;
    assert!(shown(&ask(&emu, dns).await).contains("SIGHUP-SUMMARY"));

    std::fs::write(intents.join("dns.yaml"), "id: dns\nheading: [unclosed\n").unwrap();
    serve.signal("-HUP");
    serve.wait_log("knowledge base reload rejected").await;
    assert!(
        serve.log().contains("dns.yaml"),
        "the log names the problem:\n{}",
        serve.log()
    );
    assert!(
        shown(&ask(&emu, dns).await).contains("SIGHUP-SUMMARY"),
        "the last good knowledge base keeps answering"
    );
    serve.signal("-TERM");
    assert_eq!(serve.exit_code().await, Some(0), "{}", serve.log());
}

#[tokio::test]
async fn debug_logs_carry_the_event_span_and_never_a_token() {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = serve_with(&emu, &dir.path().join("db"), |c| {
        c.env("RUST_LOG", "debug").env("NETRUNBOOK_LOG_FORMAT", "json");
    })
    .await;
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
    serve.signal("-TERM");
    assert_eq!(serve.exit_code().await, Some(0), "{}", serve.log());

    let log = serve.log();
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
