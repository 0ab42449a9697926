//! Faults, against the real `netrunbook serve` process (default tuning, sled on disk) and the Slack
//! emulator on 127.0.0.1:
//!
//! - [`redelivery`]: every event re-delivered (Slack's retries: same `event_id`, a new envelope;
//!   `message` + `app_mention` twins; re-deliveries after reconnects): no duplicate, no missing reply.
//! - [`sigkill`]: SIGKILLs at random points of running dialogues, each followed by a restart on the
//!   same sled directory: no conversation lost or corrupted, no reply lost for events Slack re-sends,
//!   no duplicate.
//! - [`network`]: socket resets and `disconnect` frames of every kind under load; 429 storms with
//!   `Retry-After`; Web API outages (HTTP 500/503, `internal_error`) and hangs: replies arrive late,
//!   once; the bot stays up.
//! - [`store`]: a sled directory that is unwritable, full or held by another running instance: a clear
//!   error at start-up and a non-zero exit.
//! - [`envelopes`]: malformed JSON, unknown envelope types, missing fields: acknowledged when they
//!   carry an envelope id, never a crash, and the bot goes on answering.
//!
//! The fast versions run in `cargo test`; the long ones are `#[ignore]`d:
//!
//! ```sh
//! cargo test --release --test faults -- --ignored --nocapture --test-threads 1
//! ```

#[macro_use]
extern crate netrunbook_testkit;

mod envelopes;
mod network;
mod redelivery;
mod sigkill;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use netrunbook_testkit::driver::Tracker;
use netrunbook_testkit::process::{BotProcess, Options};
use netrunbook_testkit::slack_emulator::SlackEmulator;
use tempfile::TempDir;

/// Generous bound for a bot start (a debug build on a busy machine).
pub const START: Duration = Duration::from_secs(30);

/// How this binary starts `netrunbook serve`: two connections, the built-in knowledge base.
pub fn options() -> Options {
    Options::new(env!("CARGO_BIN_EXE_netrunbook"))
}

/// An emulator, a sled directory and the bot process on them.
pub struct Rig {
    pub emu: SlackEmulator,
    pub dir: TempDir,
    pub db: PathBuf,
    pub opts: Options,
    pub bot: Option<BotProcess>,
    pub tracker: Arc<Tracker>,
    /// The logs of the processes killed so far, oldest first.
    pub past_logs: Vec<String>,
}

impl Rig {
    pub async fn start(opts: Options) -> Rig {
        let emu = SlackEmulator::start().await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = dir.path().join("netrunbook.sled");
        let bot = BotProcess::start(&emu, &db, &opts, START).await;
        let tracker = Tracker::start(emu.clone());
        Rig {
            emu,
            dir,
            db,
            opts,
            bot: Some(bot),
            tracker,
            past_logs: Vec::new(),
        }
    }

    pub fn bot(&mut self) -> &mut BotProcess {
        self.bot.as_mut().expect("the bot is running")
    }

    /// SIGKILL the bot (no flush, no goodbye).
    pub async fn kill(&mut self) {
        if let Some(bot) = self.bot.take() {
            let log = bot.kill().await;
            self.past_logs.push(log);
        }
    }

    /// Start the bot again on the same store.
    pub async fn restart(&mut self) {
        assert!(self.bot.is_none(), "kill it first");
        self.bot = Some(BotProcess::start(&self.emu, &self.db, &self.opts, START).await);
    }

    /// SIGTERM; asserts a clean exit (0) and returns the log. The emulator and the store stay.
    pub async fn stop(&mut self) -> String {
        self.tracker.stop();
        let bot = self.bot.take().expect("the bot is running");
        let (code, log) = bot.terminate(Duration::from_secs(30)).await;
        assert_eq!(code, Some(0), "clean exit after SIGTERM; log:\n{log}");
        self.past_logs.push(log.clone());
        log
    }

    /// Lines of every process's log (killed ones included) that contain `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        let current = self.bot.as_ref().map(|b| b.log()).unwrap_or_default();
        self.past_logs
            .iter()
            .chain(std::iter::once(&current))
            .flat_map(|l| l.lines())
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

/// How many cases a test runs: `small` in `cargo test`, `full` for the ignored long run.
pub fn n_from_env(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
