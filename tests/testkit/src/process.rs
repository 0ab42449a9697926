//! The real `netrunbook serve` as a child process, pointed at an emulator on 127.0.0.1: started,
//! watched (`/proc/PID/status` and `/proc/PID/stat`), signalled (SIGHUP, SIGTERM), killed with
//! SIGKILL, run to its exit. Its standard error is kept in memory, so tests can read the log, wait for
//! a line and count ERROR and WARN lines. The one process harness of `e2e`, `faults` and `load`.
//!
//! The binary is the test binary's `env!("CARGO_BIN_EXE_netrunbook")`, handed over in [`Options`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::slack_emulator::SlackEmulator;

pub const APP_TOKEN: &str = "xapp-1-A0EMU-1-processtoken";
pub const BOT_TOKEN: &str = "xoxb-1-processtoken";

/// How long the log reader may take to drain what a process wrote before it exited.
const DRAIN: Duration = Duration::from_secs(5);

/// How a bot process is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `netrunbook` binary (`env!("CARGO_BIN_EXE_netrunbook")` in a test binary).
    pub binary: PathBuf,
    /// Socket Mode connections (`NETRUNBOOK_CONNECTIONS`).
    pub connections: u16,
    /// `--intents DIR`; the built-in knowledge base when `None`.
    pub intents: Option<PathBuf>,
    /// `RUST_LOG`; the bot's default (`info`) when `None`.
    pub rust_log: Option<String>,
    /// Run under `ulimit -f <blocks>` (RLIMIT_FSIZE, 1 KiB blocks) with SIGXFSZ ignored, so that a write
    /// past the limit fails with EFBIG as on a full disk.
    pub fsize_blocks: Option<u64>,
    /// More environment for the bot (e.g. `MALLOC_ARENA_MAX=2` in an experiment).
    pub env: Vec<(String, String)>,
    /// Run the bot under this command (e.g. `heaptrack -o FILE`, in an experiment). The process
    /// watched is then the wrapper's.
    pub wrapper: Vec<String>,
}

impl Options {
    /// `binary` with two connections, the built-in knowledge base, the bot's default log level.
    pub fn new(binary: impl Into<PathBuf>) -> Options {
        Options {
            binary: binary.into(),
            connections: 2,
            intents: None,
            rust_log: None,
            fsize_blocks: None,
            env: Vec::new(),
            wrapper: Vec::new(),
        }
    }
}

/// The command line of `netrunbook serve` against `emu` with the store in `db`.
pub fn command(emu: &SlackEmulator, db: &Path, opts: &Options) -> Command {
    let mut c = match opts.fsize_blocks {
        Some(blocks) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -f {blocks} && trap '' XFSZ && exec \"$0\" \"$@\""))
                .arg(&opts.binary);
            c
        }
        None if !opts.wrapper.is_empty() => {
            let mut c = Command::new(&opts.wrapper[0]);
            c.args(&opts.wrapper[1..]).arg(&opts.binary);
            c
        }
        None => Command::new(&opts.binary),
    };
    c.arg("serve");
    if let Some(dir) = &opts.intents {
        c.arg("--intents").arg(dir);
    }
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("SLACK_APP_TOKEN", APP_TOKEN)
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLACK_API_URL", emu.api_url())
        .env("NETRUNBOOK_DB", db)
        .env("NETRUNBOOK_CONNECTIONS", opts.connections.to_string())
        // tests run in parallel: each process takes a free port for /healthz, /readyz, /metrics
        .env("NETRUNBOOK_HTTP_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(filter) = &opts.rust_log {
        c.env("RUST_LOG", filter);
    }
    for (k, v) in &opts.env {
        c.env(k, v);
    }
    c
}

/// A running (or exited) bot process.
pub struct BotProcess {
    child: Child,
    pub pid: u32,
    log: Arc<Mutex<String>>,
    /// The task that copies standard error into `log`; it ends at end of file.
    reader: Option<JoinHandle<()>>,
    /// From spawning the process to the emulator seeing its first connection say hello.
    pub start_to_connected: Duration,
    /// ... and all of its connections (slack-morphism opens connection i after i x 1 s).
    pub start_to_all_connected: Duration,
    /// The emulator's numbers of the Socket Mode connections it opened at start (as
    /// [`Pushed::connection`](crate::slack_emulator::Pushed) numbers them), for tests that hand an
    /// envelope to one process of several. Start processes one after the other for these to be
    /// right.
    pub connections: Vec<u64>,
}

impl BotProcess {
    /// Start the bot and wait (up to `timeout`) until all its connections are open; panics with the
    /// bot's log if they are not.
    pub async fn start(emu: &SlackEmulator, db: &Path, opts: &Options, timeout: Duration) -> BotProcess {
        let before = emu.connects_total();
        let last_before = emu.last_connection();
        let started = Instant::now();
        let mut child = command(emu, db, opts).spawn().expect("netrunbook starts");
        let pid = child.id().expect("a running child has a pid");
        let (log, reader) = capture(&mut child);
        let deadline = started + timeout;
        let mut first = None;
        while emu.connects_total() < before + usize::from(opts.connections) {
            if first.is_none() && emu.connects_total() > before {
                first = Some(started.elapsed());
            }
            if Instant::now() > deadline {
                panic!(
                    "netrunbook did not connect within {timeout:?}; its log:\n{}",
                    log.lock().unwrap()
                );
            }
            if let Ok(Some(status)) = child.try_wait() {
                let _ = tokio::time::timeout(DRAIN, reader).await;
                panic!(
                    "netrunbook exited with {status} before connecting; its log:\n{}",
                    log.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let all = started.elapsed();
        let connections = emu
            .live_connections()
            .into_iter()
            .filter(|id| *id > last_before)
            .collect();
        BotProcess {
            child,
            pid,
            log,
            reader: Some(reader),
            start_to_connected: first.unwrap_or(all),
            start_to_all_connected: all,
            connections,
        }
    }

    /// Run the bot to completion (for start-up failures): exit code and standard error.
    pub async fn run_to_exit(
        emu: &SlackEmulator,
        db: &Path,
        opts: &Options,
        timeout: Duration,
    ) -> (Option<i32>, String) {
        let out = tokio::time::timeout(timeout, command(emu, db, opts).output())
            .await
            .expect("netrunbook exits in time")
            .expect("netrunbook runs");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Where the process serves `/healthz`, `/readyz` and `/metrics`: the `http=` field of its
    /// "netrunbook starting" log line (the harness gives it port 0, so the OS picked the port), or
    /// `None` before that line.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains("netrunbook starting"))?;
        line.split_whitespace()
            .find_map(|field| field.strip_prefix("http="))
            .map(|addr| addr.trim_matches('"'))
            .and_then(|addr| addr.parse().ok())
    }

    /// Lines of the log at this level (`ERROR`, `WARN`).
    pub fn log_lines(&self, level: &str) -> Vec<String> {
        let needle = format!(" {level} ");
        self.log()
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Wait (up to `timeout`) until the log shows `what`; panics with the log if it does not.
    pub async fn wait_log(&self, what: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "the log never showed {what:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Send `signal` (`-HUP`, `-TERM`, as `kill` spells it).
    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([signal, &self.pid.to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "{signal} delivered to {}", self.pid);
    }

    /// Wait (up to `timeout`, else panic) for the process to exit by itself; its exit code and its
    /// whole log.
    pub async fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("netrunbook exits within {timeout:?}; its log:\n{}", self.log()))
            .expect("wait for netrunbook");
        self.drained().await;
        (status.code(), self.log())
    }

    /// SIGKILL: no flush, no goodbye. Waits until the process is gone; returns its whole log.
    pub async fn kill(mut self) -> String {
        self.child.start_kill().expect("SIGKILL the bot");
        let _ = self.child.wait().await;
        self.drained().await;
        self.log()
    }

    /// SIGTERM, then the exit code (panics if it does not exit within `timeout`) and the whole log.
    pub async fn terminate(mut self, timeout: Duration) -> (Option<i32>, String) {
        self.signal("-TERM");
        self.wait_exit(timeout).await
    }

    /// After the exit: wait until the reader has copied everything the process wrote (end of file;
    /// bounded, in case a process the bot started still holds the pipe).
    async fn drained(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(DRAIN, reader).await;
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        memory_kib(self.pid)
    }

    /// CPU time used so far (user + system).
    pub fn cpu(&self) -> Option<Duration> {
        cpu_time(self.pid)
    }
}

/// Copy the child's standard error into a string, until end of file.
fn capture(child: &mut Child) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let log = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().expect("stderr is piped");
    let sink = log.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (log, reader)
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// utime + stime of a process (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is in parentheses and may hold spaces: count from after it
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// `getconf CLK_TCK` (100 on Linux).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU time of this (test) process: the emulator and the load generator.
pub fn own_cpu() -> Option<Duration> {
    cpu_time(std::process::id())
}
