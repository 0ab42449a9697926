//! End-to-end load: the real `netrunbook serve` (a child process, sled on disk) against the Slack
//! emulator on 127.0.0.1, driven by scripted incident conversations (mention twins, button clicks,
//! plain thread replies, slash commands) from many sessions at once. Prints event->ack and
//! event->reply latency (p50, p99, max), sustained events per second, errors, the bot's memory
//! (`VmRSS`, `VmHWM`) and CPU (utime + stime), and start-to-connected time.
//!
//! The runs that produce the figures in BENCHMARKS.md are `#[ignore]`d (they take minutes); run them
//! on a release build:
//!
//! ```sh
//! cargo test --release --test load -- --ignored --nocapture --test-threads 1
//! cargo test --release --test load load_at_500_events_per_second -- --ignored --nocapture
//! ```
//!
//! `LOAD_CONVERSATIONS`, `LOAD_SESSIONS` and `LOAD_RATE` change the shape of a run (six events per
//! conversation; `LOAD_RATE=0` is unpaced); `LOAD_BOT_ENV="K=V,..."` adds environment to the bot and
//! `LOAD_BOT_WRAPPER="heaptrack -o FILE"` runs it under a tool. `smoke_load` runs in `cargo test` with a small N and asserts no error.
//! Everything is on loopback; every loop is bounded; each run stops by itself. The 10x knowledge base of
//! `load_cost_growth`, to time or profile the bot on by hand, is written by
//! `cargo run --release --example scaled_kb -- OUT_DIR 10`.

#[macro_use]
extern crate netrunbook_testkit;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netrunbook::dialogue::{self, Input};
use netrunbook::kb::KnowledgeBase;
use netrunbook::store::{SledStore, Store};
use netrunbook::vocab::ThreadKey;
use netrunbook_testkit::driver::{self, incident_script, Kind, Load, Report, Tracker};
use netrunbook_testkit::fixtures::{disk_usage, scaled_intents};
use netrunbook_testkit::process::{memory_kib, own_cpu, BotProcess, Options};
use netrunbook_testkit::slack_emulator::{SlackEmulator, TEAM_ID};
use netrunbook_testkit::stats::Summary;

const MIB: f64 = 1024.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What a scenario starts from.
struct Setup {
    /// Printed as the run's title.
    name: &'static str,
    stored: usize,
    kb_factor: usize,
    /// Also read the bot's memory 65 s after the run (its per-thread workers exit after 60 s idle).
    idle_check: bool,
    /// Replicas sharing this PostgreSQL database (`--database-url`), instead of one process on sled.
    postgres: Option<Postgres>,
}

/// Replicas on PostgreSQL.
struct Postgres {
    url: String,
    replicas: usize,
    /// `--database-pool` of each replica.
    pool: usize,
}

impl Setup {
    fn sled(name: &'static str, stored: usize, kb_factor: usize, idle_check: bool) -> Setup {
        Setup {
            name,
            stored,
            kb_factor,
            idle_check,
            postgres: None,
        }
    }
}

/// Everything measured in one scenario.
struct Outcome {
    report: Report,
    /// To the first connection, and to all of them.
    start_to_connected: (Duration, Duration),
    rss_connected_kib: u64,
    rss_max_serving_kib: u64,
    hwm_kib: u64,
    bot_cpu: Duration,
    own_cpu: Duration,
    errors_logged: usize,
    warnings_logged: usize,
    exit: Option<i32>,
    rss_after_idle_kib: Option<u64>,
    /// The sled directory's size (or the database's) after the run.
    store_mib: f64,
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / MIB / MIB);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {mem:.1} GiB memory, load average {}, {} build",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    )
}

async fn scenario(setup: &Setup, load: &Load) -> Outcome {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("netrunbook.sled");
    let mut opts = Options::new(env!("CARGO_BIN_EXE_netrunbook"));
    // LOAD_BOT_WRAPPER="heaptrack -o FILE": run the bot under a tool, for experiments
    if let Ok(w) = std::env::var("LOAD_BOT_WRAPPER") {
        println!("  bot wrapper   {w}");
        opts.wrapper = w.split_whitespace().map(str::to_string).collect();
    }
    // LOAD_BOT_ENV="K=V,K2=V2": more environment for the bot, for experiments
    for kv in std::env::var("LOAD_BOT_ENV").unwrap_or_default().split(',') {
        if let Some((k, v)) = kv.split_once('=') {
            println!("  bot env       {k}={v}");
            opts.env.push((k.to_string(), v.to_string()));
        }
    }
    if setup.stored > 0 {
        let took = populate_store(&db, setup.stored);
        evidence!(
            "  store         {} conversations written in {took:.2?} ({:.1} MiB on disk)",
            setup.stored,
            disk_usage(&db) as f64 / MIB / MIB
        );
    }
    if setup.kb_factor > 1 {
        let intents = dir.path().join("intents");
        let n = scaled_kb(&intents, setup.kb_factor);
        evidence!(
            "  knowledge base {n} sections ({}x the shipped one), --intents {}",
            setup.kb_factor,
            intents.display()
        );
        opts.intents = Some(intents);
    }
    if let Some(pg) = &setup.postgres {
        opts.env.push(("NETRUNBOOK_DATABASE_URL".into(), pg.url.clone()));
        opts.env.push(("NETRUNBOOK_DATABASE_POOL".into(), pg.pool.to_string()));
        evidence!(
            "  store         PostgreSQL, {} replicas, {} connections each, pool of {} connections each",
            pg.replicas,
            opts.connections,
            pg.pool
        );
    }
    let mut bots = Vec::new();
    for _ in 0..setup.postgres.as_ref().map_or(1, |pg| pg.replicas) {
        bots.push(BotProcess::start(&emu, &db, &opts, Duration::from_secs(60)).await);
    }
    // memory and CPU are the replicas' sum; start-up is the first replica's
    let sum_rss = |bots: &[BotProcess]| -> Option<(u64, u64)> {
        bots.iter()
            .map(|b| b.memory_kib())
            .try_fold((0, 0), |acc, m| m.map(|(r, h)| (acc.0 + r, acc.1 + h)))
    };
    let sum_cpu = |bots: &[BotProcess]| -> Duration { bots.iter().map(|b| b.cpu().expect("a bot's CPU time")).sum() };
    let (rss_connected_kib, _) = sum_rss(&bots).expect("the bot's memory");
    let start_to_connected = (bots[0].start_to_connected, bots[0].start_to_all_connected);
    let tracker = Tracker::start(emu.clone());
    let script = incident_script();
    let expect = tracker.calibrate("CCALIBRATE", &script, Duration::from_secs(10)).await;
    let cpu_before = sum_cpu(&bots);
    let own_before = own_cpu().expect("our CPU time");

    let pids: Vec<u32> = bots.iter().map(|b| b.pid).collect();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let rss: u64 = pids.iter().filter_map(|p| memory_kib(*p)).map(|m| m.0).sum();
                max = max.max(rss);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            max
        })
    };
    let report = driver::run(&tracker, &script, &expect, load).await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let rss_max_serving_kib = sampler.await.expect("the sampler");
    let bot_cpu = sum_cpu(&bots).saturating_sub(cpu_before);
    let own = own_cpu().expect("our CPU time").saturating_sub(own_before);
    let (_, hwm_kib) = sum_rss(&bots).expect("the bot's memory");
    tracker.stop();
    for bot in &mut bots {
        assert!(bot.running(), "the bot is still up after the run:\n{}", bot.log());
    }
    let rss_after_idle_kib = if setup.idle_check {
        tokio::time::sleep(Duration::from_secs(65)).await;
        sum_rss(&bots).map(|m| m.0)
    } else {
        None
    };
    let errors_logged = bots.iter().map(|b| b.log_lines("ERROR").len()).sum();
    let warnings_logged = bots.iter().map(|b| b.log_lines("WARN").len()).sum();
    for bot in &bots {
        for line in bot.log_lines("ERROR").iter().chain(&bot.log_lines("WARN")).take(5) {
            evidence!("  bot log: {line}");
        }
    }
    let mut exit = Some(0);
    for bot in bots {
        let (code, _) = bot.terminate(Duration::from_secs(30)).await;
        if code != Some(0) {
            exit = code;
        }
    }
    let store_mib = match &setup.postgres {
        Some(pg) => {
            netrunbook_testkit::pg::psql(&pg.url, "SELECT pg_database_size(current_database())")
                .parse::<f64>()
                .unwrap_or(0.0)
                / MIB
                / MIB
        }
        None => disk_usage(&db) as f64 / MIB / MIB,
    };
    Outcome {
        report,
        start_to_connected,
        rss_connected_kib,
        rss_max_serving_kib,
        hwm_kib,
        bot_cpu,
        own_cpu: own,
        errors_logged,
        warnings_logged,
        exit,
        rss_after_idle_kib,
        store_mib,
    }
}

fn print(load: &Load, o: &Outcome) {
    let r = &o.report;
    let kinds = |k: Kind| r.events_by_kind.get(&k).copied().unwrap_or(0);
    evidence!(
        "  shape         {} conversations x 6 events, {} sessions, rate {}",
        load.conversations,
        load.sessions,
        load.rate
            .map_or("unpaced (as fast as replies come)".to_string(), |r| format!(
                "{r:.0}/s target"
            ))
    );
    evidence!(
        "  events        {} (mention {}, thread reply {}, click {}, slash {}) in {:.2} s = {:.1} events/s sustained",
        r.events,
        kinds(Kind::Mention),
        kinds(Kind::Reply),
        kinds(Kind::Click),
        kinds(Kind::Slash),
        r.wall.as_secs_f64(),
        r.events_per_second()
    );
    evidence!("  event->ack    {}", r.ack);
    evidence!("  event->reply  {}", r.reply);
    for (k, s) in &r.reply_by_kind {
        evidence!("    {:<11} {s}", format!("{k:?}").to_lowercase());
    }
    evidence!(
        "  errors        {} (step timeouts {}, unacked {}, duplicate replies {}, missing replies {}); bot log: {} ERROR, {} WARN lines",
        r.error_count(),
        r.errors.len(),
        r.unacked,
        r.duplicates,
        r.missing,
        o.errors_logged,
        o.warnings_logged
    );
    for e in r.errors.iter().take(5) {
        evidence!("    {e}");
    }
    evidence!(
        "  start->connected {:.1} ms (first connection), {:.1} ms (both; the second opens 1 s after the first by design)",
        o.start_to_connected.0.as_secs_f64() * 1000.0,
        o.start_to_connected.1.as_secs_f64() * 1000.0
    );
    evidence!(
        "  bot memory    VmRSS {:.1} MiB when connected, {:.1} MiB max while serving; VmHWM {:.1} MiB",
        o.rss_connected_kib as f64 / MIB,
        o.rss_max_serving_kib as f64 / MIB,
        o.hwm_kib as f64 / MIB
    );
    if let Some(kib) = o.rss_after_idle_kib {
        evidence!(
            "  bot memory    VmRSS {:.1} MiB 65 s after the run (idle workers gone)",
            kib as f64 / MIB
        );
    }
    evidence!(
        "  bot CPU       {:.2} s user+sys over {:.2} s = {:.0}% of one core",
        o.bot_cpu.as_secs_f64(),
        r.wall.as_secs_f64(),
        100.0 * o.bot_cpu.as_secs_f64() / r.wall.as_secs_f64()
    );
    evidence!(
        "  load gen CPU  {:.2} s = {:.0}% of one core (this process: emulator + driver)",
        o.own_cpu.as_secs_f64(),
        100.0 * o.own_cpu.as_secs_f64() / r.wall.as_secs_f64()
    );
    evidence!(
        "  exit          {:?} after SIGTERM; store {:.1} MiB on disk",
        o.exit,
        o.store_mib
    );
}

async fn run_scenario(setup: Setup, load: Load) -> Outcome {
    evidence!("\n[{}] {}", setup.name, machine());
    let o = scenario(&setup, &load).await;
    print(&load, &o);
    o
}

/// Small and fast: checks the load machinery and the bot under concurrency on every `cargo test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_load() {
    let o = run_scenario(
        Setup::sled("smoke", 0, 1, false),
        Load {
            conversations: 40,
            sessions: 8,
            rate: None,
            timeout: Duration::from_secs(15),
            prefix: "CSMOKE".into(),
        },
    )
    .await;
    let r = &o.report;
    assert_eq!(r.conversations, 40, "{:?}", r.errors);
    assert_eq!(r.error_count(), 0, "{:?}", r.errors);
    assert_eq!(r.events, 240);
    assert_eq!(o.errors_logged, 0);
    assert_eq!(o.exit, Some(0));
}

fn load_from_env(conversations: usize, sessions: usize, rate: Option<f64>, prefix: &str) -> Load {
    let rate = match std::env::var("LOAD_RATE").ok().and_then(|v| v.parse::<f64>().ok()) {
        Some(r) if r > 0.0 => Some(r),
        Some(_) => None,
        None => rate,
    };
    Load {
        conversations: env_or("LOAD_CONVERSATIONS", conversations),
        sessions: env_or("LOAD_SESSIONS", sessions),
        rate,
        timeout: Duration::from_secs(30),
        prefix: prefix.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes; run with --release --ignored --nocapture"]
async fn load_at_500_events_per_second() {
    run_scenario(
        Setup::sled(
            "paced (500 events/s unless LOAD_RATE), fresh store, shipped knowledge base",
            0,
            1,
            true,
        ),
        load_from_env(2500, 100, Some(500.0), "CRATE"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes; run with --release --ignored --nocapture"]
async fn load_max_throughput() {
    run_scenario(
        Setup::sled("unpaced: as many events/s as the bot sustains", 0, 1, false),
        load_from_env(8000, 128, None, "CMAX"),
    )
    .await;
}

/// One replica on sled, then two replicas sharing PostgreSQL, under the same paced load, one after the
/// other in the same run (BENCHMARKS.md). Needs `NETRUNBOOK_TEST_DATABASE_URL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes; run with --release --ignored --nocapture"]
async fn load_two_replicas_on_postgres_beside_one_on_sled() {
    let Some(db) = netrunbook_testkit::pg::TestDatabase::create("load_replicas") else {
        return;
    };
    let load = || load_from_env(2500, 100, Some(500.0), "CREP");
    let sled = run_scenario(
        Setup::sled(
            "one replica on sled, paced (500 events/s unless LOAD_RATE)",
            0,
            1,
            false,
        ),
        load(),
    )
    .await;
    let pg = run_scenario(
        Setup {
            postgres: Some(Postgres {
                url: db.url().to_string(),
                replicas: 2,
                pool: env_or("LOAD_DB_POOL", 8),
            }),
            ..Setup::sled(
                "two replicas on PostgreSQL, paced (500 events/s unless LOAD_RATE)",
                0,
                1,
                false,
            )
        },
        load(),
    )
    .await;
    for o in [&sled, &pg] {
        assert_eq!(o.report.error_count(), 0, "{:?}", o.report.errors);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes; run with --release --ignored --nocapture"]
async fn load_cost_growth() {
    let setups = [
        ("10 stored conversations", 10, 1),
        ("1,000 stored conversations", 1_000, 1),
        ("100,000 stored conversations", 100_000, 1),
        ("knowledge base 10x (190 sections), 10 stored", 10, 10),
    ];
    for (name, stored, kb_factor) in setups {
        run_scenario(
            Setup::sled(name, stored, kb_factor, false),
            load_from_env(1000, 100, Some(500.0), "CGROW"),
        )
        .await;
    }
}

/// Write into `out` the shipped intents and `factor - 1` copies of every section
/// ([`scaled_intents`]), and load them as the bot will: returns the number of sections.
fn scaled_kb(out: &Path, factor: usize) -> usize {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("intents");
    let sections = scaled_intents(&shipped, out, factor);
    KnowledgeBase::load_dir(out, &Default::default())
        .unwrap_or_else(|e| panic!("the scaled knowledge base loads: {e}"));
    sections
}

/// Write `n` conversations (each waiting for its first follow-up answer, as after a mention) into a
/// new store at `db` with the library's `SledStore`, flushed. Returns how long that took.
pub fn populate_store(db: &Path, n: usize) -> Duration {
    let started = Instant::now();
    let kb = KnowledgeBase::builtin().expect("the shipped knowledge base loads");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let step = dialogue::step(
        &kb,
        None,
        &Input::Message {
            text: "LoadBalancer service stuck with pending external IP on prod-dal10".into(),
            addressed: true,
        },
        now,
    );
    let conversation = step.state.expect("the question starts a conversation");
    let store = SledStore::open(db).expect("open a new store");
    for i in 0..n {
        let key = ThreadKey::new(TEAM_ID, format!("C0OLD{:04}", i % 1000), format!("1600000000.{i:06}"));
        store.put(&key, &conversation).expect("store a conversation");
    }
    store.flush().expect("flush the store");
    drop(store);
    started.elapsed()
}

#[test]
fn stats_are_nearest_rank_percentiles() {
    let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    let s = Summary::of(&v);
    assert_eq!(
        (s.p50, s.p99, s.max),
        (
            Duration::from_millis(50),
            Duration::from_millis(99),
            Duration::from_millis(100)
        )
    );
}
