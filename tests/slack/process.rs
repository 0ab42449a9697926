//! The real `netrunbook serve` process: SIGKILL mid-dialogue then a restart continues; SIGTERM exits
//! 0 after flushing; `link_disabled` stops it with a clear log line; bad tokens are named, not shown.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::support::slack_emulator::{SlackEmulator, BOT_USER_ID};
use crate::{shown_all, with_button, APP_TOKEN, BOT_TOKEN, USER, WAIT};

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
    let before = emu.connects_total();
    let mut child = command(emu, db).spawn().expect("netrunbook starts");
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
