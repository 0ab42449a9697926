//! End-to-end scenarios: the real bot (the library's `Application`, or the `netrunbook` binary where a
//! process must die) against the Slack emulator, each test with a fresh emulator, a fresh sled
//! directory and ports the OS picks on 127.0.0.1. Every assertion is about what Slack would show.
//! `emulator` is the emulator's own self-test against slack-morphism. `replicas` runs two binaries
//! on one emulator and one PostgreSQL database (twins and retries across them, turns alternating,
//! a replica killed after its ack, the database restarted).

mod alerts;
mod delivery;
mod emulator;
mod flows;
mod hostile;
mod mentions;
mod ops;
mod outbox;
mod process;
mod replicas;
mod slash;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netrunbook::app::Application;
use netrunbook::bot::Access;
use netrunbook::config::KbArgs;
use netrunbook::config::Settings;
use netrunbook::slack::{RetryPolicy, SocketModeWatch, StopReason, Tuning};
use netrunbook::store::StoreError;
use netrunbook_testkit::process::Options;
use netrunbook_testkit::slack_emulator::{ApiCall, SlackEmulator, UserPost, BOT_ID, BOT_USER_ID};
use secrecy::SecretString;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for anything that should happen promptly; passing tests never wait this long.
pub const WAIT: Duration = Duration::from_secs(8);
/// How long "nothing more happens" is watched for.
pub const QUIET: Duration = Duration::from_millis(400);
pub const USER: &str = "U0ALICE";
pub const OTHER_USER: &str = "U0BOB";
pub const APP_TOKEN: &str = "xapp-1-A0EMU-1-integrationtest";
pub const BOT_TOKEN: &str = "xoxb-1-integrationtest";

/// Timings short enough for tests, and a watch of the bot's own (see [`start_bot`]).
pub fn test_tuning() -> Tuning {
    Tuning {
        connections: 2,
        initial_backoff: Duration::ZERO,
        reconnect_timeout: Duration::from_secs(1),
        ping_every: Duration::from_secs(5),
        dead_after: Duration::from_secs(30),
        worker_idle: Duration::from_secs(2),
        claim_patience: Duration::from_secs(5),
        redeliver_every: Duration::from_millis(500),
        reply_max_age: Duration::from_secs(3600),
        watch: SocketModeWatch::new(),
        retry: RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            timeout: Duration::from_secs(5),
            default_retry_after: Duration::from_millis(500),
        },
    }
}

pub fn settings(emu: &SlackEmulator, db: &Path) -> Settings {
    Settings {
        app_token: SecretString::from(APP_TOKEN),
        bot_token: SecretString::from(BOT_TOKEN),
        db: db.to_path_buf(),
        database: None,
        slack_api_url: emu.api_url(),
        idle_ttl: Duration::from_secs(7 * 86_400),
        shutdown_grace: Duration::from_secs(5),
        kb: KbArgs {
            intents: None,
            runbook_base_url: None,
        },
        tuning: test_tuning(),
        http_addr: "127.0.0.1:0".parse().expect("an address"),
        access: Access::default(),
        alerts: Default::default(),
        feedback_retention: Duration::from_secs(30 * 86_400),
    }
}

/// A running bot with its emulator and store.
pub struct TestBot {
    pub emu: SlackEmulator,
    pub db: PathBuf,
    /// Keeps the sled directory alive as long as the test needs it.
    pub dir: TempDir,
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<StopReason>>,
    /// The bot's watch layer as this thread's subscriber (see [`watch_logs`]).
    _logs: tracing::subscriber::DefaultGuard,
}

/// A fresh emulator, a fresh sled directory, the bot connected.
pub async fn spawn_bot() -> TestBot {
    spawn_bot_with(|_| {}).await
}

/// As [`spawn_bot`], with the settings changed by `configure` first.
pub async fn spawn_bot_with(configure: impl FnOnce(&mut Settings)) -> TestBot {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let before = emu.connects_total();
    let bot = launch(emu, dir, configure).await;
    wait_connected(&bot.emu, before).await;
    bot
}

/// The bot on `emu` with the store in `dir` (a restart when `dir` was used before).
pub async fn start_bot(emu: SlackEmulator, dir: TempDir) -> TestBot {
    let before = emu.connects_total();
    let bot = launch(emu, dir, |_| {}).await;
    wait_connected(&bot.emu, before).await;
    bot
}

async fn wait_connected(emu: &SlackEmulator, before: usize) {
    let connections = test_tuning().connections;
    assert!(
        emu.wait_connected(connections, WAIT).await,
        "the bot connects to Socket Mode"
    );
    assert!(emu.connects_total() >= before + connections);
}

/// Build and start the bot without waiting for Socket Mode. A store that a test (or a stopped bot)
/// has just closed may still be held for a moment by sled's background thread: the build is tried
/// again until it is let go.
pub async fn launch(emu: SlackEmulator, dir: TempDir, configure: impl FnOnce(&mut Settings)) -> TestBot {
    let db = dir.path().join("netrunbook.sled");
    let mut s = settings(&emu, &db);
    configure(&mut s);
    let logs = watch_logs(&s.tuning.watch);
    let deadline = tokio::time::Instant::now() + WAIT;
    let app = loop {
        match Application::build(s.clone()).await {
            Ok(app) => break app,
            Err(e) if store_held(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("the bot builds: {e:#}"),
        }
    };
    let http = app.http_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestBot {
        emu,
        db,
        dir,
        http,
        stop: Some(tx),
        task,
        _logs: logs,
    }
}

/// Whether `e` says the store directory is held (by this process's sled, letting go of it).
fn store_held(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| matches!(c.downcast_ref::<StoreError>(), Some(StoreError::Locked { .. })))
}

/// How this binary starts `netrunbook serve` as a process: one connection, the built-in knowledge
/// base, logs at `info`.
pub fn serve_options() -> Options {
    Options {
        connections: 1,
        rust_log: Some("info".into()),
        ..Options::new(env!("CARGO_BIN_EXE_netrunbook"))
    }
}

/// Feed `watch` from slack-morphism's log events on this thread, as `telemetry::init` does for the
/// process. On a current-thread runtime every task of the bot runs on the test's thread, so each test
/// bot sees its own listener's events only.
pub fn watch_logs(watch: &SocketModeWatch) -> tracing::subscriber::DefaultGuard {
    use tracing_subscriber::layer::SubscriberExt;
    tracing::subscriber::set_default(tracing_subscriber::registry().with(watch.layer()))
}

impl TestBot {
    /// Ask the bot to stop as SIGTERM would; returns why it stopped, the emulator and the store dir.
    pub async fn stop(mut self) -> (StopReason, SlackEmulator, TempDir) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.stopped().await
    }

    /// Wait for the bot to stop by itself (Slack made it); returns as [`TestBot::stop`] does.
    pub async fn stopped(self) -> (StopReason, SlackEmulator, TempDir) {
        let reason = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the bot stops in time")
            .expect("the bot task does not panic")
            .expect("the bot stops without error");
        (reason, self.emu, self.dir)
    }

    /// `GET path` on the bot's HTTP endpoint: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path).await
    }

    /// The value of one series on `/metrics` (the line `series value`), if present.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        metric_value(&body, series)
    }

    /// Wait until `series` on `/metrics` reads `want`.
    pub async fn wait_metric(&self, series: &str, want: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.metric(series).await;
            if got == Some(want) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let (_, body) = self.get("/metrics").await;
                panic!("{series} is {got:?}, not {want}; /metrics:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `user` types `/netrunbook text` in `channel`; returns the acknowledgement's payload.
    pub async fn slash(&self, channel: &str, user: &str, text: &str) -> Value {
        let pushed = self.emu.push_slash(channel, user, text).await;
        let ack = self
            .emu
            .wait_ack(&pushed.envelope_id, WAIT)
            .await
            .expect("acknowledged");
        ack.payload.expect("the answer rides on the ack")
    }

    /// Wait for a private message to `user` that shows `what`; returns it (as `chat.postEphemeral`
    /// params).
    pub async fn wait_ephemeral(&self, user: &str, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let calls = self.emu.calls_to("chat.postEphemeral");
            if let Some(c) = calls
                .iter()
                .find(|c| c.param("user") == Some(user) && shown(&c.params).contains(what))
            {
                return c.params.clone();
            }
            if tokio::time::Instant::now() > deadline {
                let seen: Vec<String> = calls.iter().map(|c| shown(&c.params)).collect();
                panic!(
                    "no private message to {user} showing {what:?}; there were:\n{}",
                    seen.join("\n-----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `USER` mentions the bot in `channel` (in `thread`, if any); Slack sends `app_mention`.
    pub async fn mention(&self, channel: &str, text: &str, thread: Option<&str>) -> UserPost {
        let text = format!("<@{BOT_USER_ID}> {text}");
        self.emu
            .post_user_message(channel, USER, &text, thread, &["app_mention"])
            .await
    }

    /// `user` posts `text` without mentioning the bot; Slack sends `message`.
    pub async fn say(&self, channel: &str, user: &str, text: &str, thread: Option<&str>) -> UserPost {
        self.emu
            .post_user_message(channel, user, text, thread, &["message"])
            .await
    }

    /// The bot's own messages in `thread` (root included when it is the bot's; another app's, such as
    /// an alert, is not), oldest first, as shown.
    pub fn thread(&self, channel: &str, thread: &str) -> Vec<Value> {
        self.emu
            .messages(channel)
            .into_iter()
            .filter(|m| m["bot_id"] == BOT_ID)
            .filter(|m| m["thread_ts"] == thread || m["ts"] == thread)
            .collect()
    }

    /// Wait until the bot's messages in `thread` satisfy `done`; returns them (or panics saying what
    /// was there).
    pub async fn wait_thread(
        &self,
        channel: &str,
        thread: &str,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msgs = self.thread(channel, thread);
            if done(&msgs) {
                return msgs;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; the thread shows:\n{}", shown_all(&msgs));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Wait until no Web API call arrives for [`QUIET`]; returns all calls so far.
    pub async fn settle(&self) -> Vec<ApiCall> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut n = self.emu.calls().len();
        loop {
            tokio::time::sleep(QUIET).await;
            let now = self.emu.calls().len();
            if now == n || tokio::time::Instant::now() > deadline {
                return self.emu.calls();
            }
            n = now;
        }
    }
}

/// `GET path` on `addr`: status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    tokio::task::spawn_blocking(move || netrunbook::http::get(&url, Duration::from_secs(5)))
        .await
        .expect("the HTTP client does not panic")
        .expect("an HTTP answer")
}

/// The value of `series` (name with labels, exactly as exposed) in a `/metrics` body.
pub fn metric_value(body: &str, series: &str) -> Option<f64> {
    // `name{labels}` is one series; a bare name sums every series of that name (all label sets)
    let values: Vec<f64> = body
        .lines()
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let matches = if series.contains('{') {
                name == series
            } else {
                name == series || name.strip_prefix(series).is_some_and(|rest| rest.starts_with('{'))
            };
            matches.then(|| value.trim().parse::<f64>().ok()).flatten()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Every piece of text a message shows: fallback, section and context text, button labels.
pub fn shown(m: &Value) -> String {
    let mut out = vec![m["text"].as_str().unwrap_or_default().to_string()];
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(t)) = o.get("text") {
                    out.push(t.clone());
                }
                for (k, x) in o {
                    if k != "value" && k != "action_id" {
                        walk(x, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&m["blocks"], &mut out);
    out.join("\n")
}

pub fn shown_all(msgs: &[Value]) -> String {
    msgs.iter().map(shown).collect::<Vec<_>>().join("\n-----\n")
}

/// The buttons of a message: (label, action_id, value).
pub fn buttons(m: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for block in m["blocks"].as_array().into_iter().flatten() {
        for e in block["elements"].as_array().into_iter().flatten() {
            if e["type"] == "button" {
                out.push((
                    e["text"]["text"].as_str().unwrap_or_default().to_string(),
                    e["action_id"].as_str().unwrap_or_default().to_string(),
                    e["value"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    out
}

/// The params of a call as a message (`text` + `blocks`), for [`shown`] and [`buttons`].
pub fn as_message(call: &ApiCall) -> Value {
    call.params.clone()
}

/// The latest message among `msgs[from..]` that has a button labelled `label`.
pub fn with_button<'m>(msgs: &'m [Value], from: usize, label: &str) -> Option<&'m Value> {
    msgs.iter()
        .skip(from)
        .rev()
        .find(|m| buttons(m).iter().any(|(l, _, _)| l == label))
}

/// Every Web API method the bot called is one the code declares, so its scopes are in `manifest.yaml`
/// (`tests/core/manifest.rs` checks the manifest against the declaration).
pub fn assert_methods_in_manifest(emu: &SlackEmulator) {
    for call in emu.calls() {
        if call.method == "apps.connections.open" {
            continue; // the app-level token's connections:write, not a bot scope
        }
        assert!(
            netrunbook::slack::WEB_API_SCOPES.iter().any(|(m, _)| *m == call.method),
            "the bot called {} but netrunbook::slack::WEB_API_SCOPES does not declare it",
            call.method
        );
    }
}
