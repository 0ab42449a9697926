//! Two real `netrunbook serve` processes (replicas) on one emulator and one PostgreSQL database
//! (`--database-url`, a 2 s `--replica-lease`), each with one Socket Mode connection, so the test
//! decides which replica Slack hands an envelope to (`SlackEmulator::push_event_on`):
//!
//! - a mention, its `message` twin and a retry of it, reaching both replicas at once, are answered
//!   once, for twenty posts in a burst;
//! - a conversation whose turns alternate replicas shows what it shows with one replica, in order,
//!   no question asked twice (every flow example of the knowledge base);
//! - a replica SIGKILLed right after acknowledging an event: the other answers it, once, a lease
//!   and a little later;
//! - the database restarted under a stream of mentions (a private PostgreSQL server): `/readyz`
//!   says 503 while it is away and 200 after, the envelopes left unacknowledged meanwhile come back
//!   as Slack's retries, and every post is answered exactly once;
//! - a claim left behind by a failed release does not keep the thread from the other replica;
//! - two replies posted back to back that reach different replicas are read in post order;
//! - a replica paused past its lease in the middle of a turn, resumed, does not answer again (the
//!   commit's fence).
//!
//! "Exactly once" is read from the markers the bot puts on every post (`nrb:<record>:<item>:<part>`
//! as the first block's `block_id`): a post answered twice shows two outbox records, a record
//! delivered twice shows one marker twice. Each test makes its own database and is skipped (or fails,
//! with `NETRUNBOOK_REQUIRE_POSTGRES=1`) without `NETRUNBOOK_TEST_DATABASE_URL`. The replicas log at
//! `info`; `NETRUNBOOK_TEST_REPLICA_LOG` (a `RUST_LOG` filter, e.g. `info,netrunbook=debug`) says
//! more, for a failure's logs.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use netrunbook_testkit::pg::{psql, PrivateCluster, TestDatabase};
use netrunbook_testkit::process::{BotProcess, Options};
use netrunbook_testkit::slack_emulator::{ApiCall, Pushed, SlackEmulator, BOT_ID, BOT_USER_ID};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::flows::{examples, Example};
use crate::{buttons, http_get, metric_value, serve_options, shown, shown_all, USER};

/// `--replica-lease` of every replica here.
const LEASE: Duration = Duration::from_secs(2);
/// A process starts and connects (a debug build, two at once, on a busy machine).
const START: Duration = Duration::from_secs(30);
/// Upper bound for the answers of a whole test to arrive; passing tests never wait this long.
const PATIENCE: Duration = Duration::from_secs(45);
/// After the last answer, how long no more posts may come: past a lease and two beats, so an event
/// taken over or handed back late, and answered again, would show.
const AFTERMATH: Duration = Duration::from_secs(5);

/// What people say, in turn, in the burst and the stream.
const INCIDENTS: [&str; 5] = [
    "coredns lookups fail in pods",
    "LoadBalancer service stuck with pending external IP",
    "calico-node is crashlooping on several workers",
    "pods stuck ContainerCreating, FailedCreatePodSandBox",
    "ingress returns 502 for every route since the upgrade",
];

/// One replica: the process, its one Socket Mode connection (the emulator's number), where it
/// serves `/readyz`.
struct Replica {
    process: BotProcess,
    conn: u64,
    http: SocketAddr,
}

/// `netrunbook serve` on `emu` with its state in the database at `url`, one connection, connected.
async fn replica(emu: &SlackEmulator, url: &str, dir: &TempDir) -> Replica {
    let opts = Options {
        env: vec![
            ("NETRUNBOOK_DATABASE_URL".into(), url.into()),
            ("NETRUNBOOK_REPLICA_LEASE".into(), format!("{}ms", LEASE.as_millis())),
        ],
        rust_log: Some(std::env::var("NETRUNBOOK_TEST_REPLICA_LOG").unwrap_or_else(|_| "info".into())),
        ..serve_options()
    };
    // with a database the sled directory is not used
    let process = BotProcess::start(emu, &dir.path().join("unused"), &opts, START).await;
    assert_eq!(process.connections.len(), 1, "one connection each");
    let log = process.log();
    assert!(
        log.contains("replica="),
        "the replica names itself in its start line:\n{log}"
    );
    let http = process
        .http_addr()
        .unwrap_or_else(|| panic!("the start line names the HTTP address:\n{log}"));
    Replica {
        conn: process.connections[0],
        process,
        http,
    }
}

/// An emulator and two replicas on the database at `url` (started one after the other, so each
/// knows its connection).
async fn two_replicas(url: &str) -> (SlackEmulator, TempDir, Replica, Replica) {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let a = replica(&emu, url, &dir).await;
    let b = replica(&emu, url, &dir).await;
    assert_ne!(a.conn, b.conn);
    (emu, dir, a, b)
}

/// A person's top-level post in `channel` mentioning the bot (stored for `conversations.replies`);
/// its `ts` and its text.
fn mention_post(emu: &SlackEmulator, channel: &str, what: &str) -> (String, String) {
    let ts = emu.next_ts();
    let text = format!("<@{BOT_USER_ID}> {what}");
    emu.add_message(channel, &ts, None, USER, &text);
    (ts, text)
}

/// The bot's `chat.postMessage` calls into `thread` of `channel`, in order.
fn posts(emu: &SlackEmulator, channel: &str, thread: &str) -> Vec<ApiCall> {
    emu.calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.param("channel") == Some(channel) && c.param("thread_ts") == Some(thread))
        .collect()
}

/// Which of `threads` of `channel` the bot has not posted in yet (one pass over the calls).
fn unanswered<'t>(
    emu: &SlackEmulator,
    channel: &str,
    threads: impl IntoIterator<Item = &'t String>,
) -> Vec<&'t String> {
    let answered: BTreeSet<String> = emu
        .calls_to("chat.postMessage")
        .iter()
        .filter(|c| c.param("channel") == Some(channel))
        .filter_map(|c| c.param("thread_ts").map(str::to_owned))
        .collect();
    threads.into_iter().filter(|t| !answered.contains(*t)).collect()
}

/// The marker of a post: (outbox record, item, part).
fn marker(call: &ApiCall) -> Option<(u64, u64, u64)> {
    let id = call.params["blocks"][0]["block_id"].as_str()?.strip_prefix("nrb:")?;
    let mut parts = id.split(':').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// What is wrong with `calls` as posts that each went out once (each carries a marker, none
/// twice); else the outbox records they came from, one per handled event that said something.
fn records_once(calls: &[ApiCall]) -> Result<BTreeSet<u64>, String> {
    let mut seen = HashMap::new();
    for call in calls {
        let m = marker(call).ok_or_else(|| format!("a post without a marker: {}", call.params))?;
        *seen.entry(m).or_insert(0) += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    if !doubled.is_empty() {
        return Err(format!("posted twice (record, item, part): {doubled:?}"));
    }
    Ok(seen.keys().map(|(record, _, _)| *record).collect())
}

/// What is wrong with `thread` as a thread with exactly one answer: at least one post, all from one
/// outbox record, none twice.
fn once(emu: &SlackEmulator, channel: &str, thread: &str) -> Result<(), String> {
    let calls = posts(emu, channel, thread);
    let shown = || shown_all(&calls.iter().map(|c| c.params.clone()).collect::<Vec<_>>());
    match records_once(&calls) {
        Ok(records) if records.len() == 1 => Ok(()),
        Ok(records) if records.is_empty() => Err("no answer".into()),
        Ok(records) => Err(format!(
            "answered {} times (outbox records {records:?}):\n{}",
            records.len(),
            shown()
        )),
        Err(e) => Err(format!("{e}:\n{}", shown())),
    }
}

/// Checks that each of `threads` of `channel` got exactly one answer (see [`once`]); the failure
/// shows every problem, and the logs of `replicas`.
fn answered_once<'t>(
    emu: &SlackEmulator,
    channel: &str,
    threads: impl IntoIterator<Item = &'t String>,
    replicas: &[&Replica],
) {
    let problems: Vec<String> = threads
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| once(emu, channel, t).err().map(|e| format!("post {i} ({t}): {e}")))
        .collect();
    if !problems.is_empty() {
        let logs: Vec<String> = replicas
            .iter()
            .map(|r| {
                format!(
                    "===== the log of the replica on connection {}:\n{}",
                    r.conn,
                    r.process.log()
                )
            })
            .collect();
        panic!("{}\n{}", problems.join("\n-----\n"), logs.join("\n"));
    }
}

/// Wait (up to `timeout`, else panic with `what()`) until `done()`.
async fn eventually(timeout: Duration, what: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?}: {}", what());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Wait until no `chat.postMessage` arrived for [`AFTERMATH`] (whatever the replicas still had to
/// say has been said), at most [`PATIENCE`].
async fn aftermath(emu: &SlackEmulator) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let n = emu.calls_to("chat.postMessage").len();
        tokio::time::sleep(AFTERMATH).await;
        if emu.calls_to("chat.postMessage").len() == n {
            return;
        }
        assert!(Instant::now() < deadline, "the replicas never stop posting");
    }
}

/// The status of `GET /readyz` on `addr`.
async fn readyz(addr: SocketAddr) -> u16 {
    http_get(addr, "/readyz").await.0
}

/// Wait (up to `timeout`) until `/readyz` of `r` answers `status`; panics with its log if it does not.
async fn wait_readyz(r: &Replica, status: u16, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = readyz(r.http).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: /readyz stayed {got}, not {status}, for {timeout:?}; the replica's log:\n{}",
            r.process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A series of a replica's `/metrics`, 0 when absent.
async fn metric(r: &Replica, series: &str) -> f64 {
    let (status, body) = http_get(r.http, "/metrics").await;
    assert_eq!(status, 200);
    metric_value(&body, series).unwrap_or(0.0)
}

/// Rows in `table` of the database at `url`.
fn rows(url: &str, table: &str) -> u64 {
    psql(url, &format!("SELECT count(*) FROM {table}"))
        .parse()
        .expect("a count")
}

/// Wait until every journaled event is done and every outbox record delivered: nothing is left
/// for a replica to do.
async fn nothing_left(url: &str) {
    let url2 = url.to_string();
    eventually(
        PATIENCE,
        || {
            format!(
                "work left in the database: inbox {}, outbox {}, claims {}",
                rows(&url2, "inbox"),
                rows(&url2, "outbox"),
                rows(&url2, "thread_claims")
            )
        },
        || rows(url, "inbox") == 0 && rows(url, "outbox") == 0,
    )
    .await;
}

/// Stop both replicas with SIGTERM: each exits 0 and leaves the replicas.
async fn stop(replicas: [Replica; 2]) {
    for r in replicas {
        let (code, log) = r.process.terminate(START).await;
        assert_eq!(code, Some(0), "{log}");
        assert!(log.contains("left the replicas"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_and_retries_reaching_both_replicas_at_once_are_answered_once() {
    let Some(db) = TestDatabase::create("replicas_twins") else {
        return;
    };
    let (emu, _dir, a, b) = two_replicas(db.url()).await;
    const CHANNEL: &str = "C0TWINS";
    const POSTS: usize = 20;
    // each replica answers once first (its first match waits for the learned layer's fit), so
    // neither has a head start in the race
    for (i, r) in [&a, &b].into_iter().enumerate() {
        let (ts, text) = mention_post(&emu, "C0WARM", INCIDENTS[i]);
        emu.push_event_on(
            r.conn,
            SlackEmulator::user_event("app_mention", "C0WARM", USER, &ts, None, &text),
        )
        .await;
        eventually(
            PATIENCE,
            || format!("the warm-up answer {i}"),
            || !posts(&emu, "C0WARM", &ts).is_empty(),
        )
        .await;
    }
    let mut threads = Vec::new();
    let mut envelopes: Vec<Pushed> = Vec::new();
    for i in 0..POSTS {
        // alternate which replica gets the mention and which its twin and the retry
        let (first, other) = if i % 2 == 0 { (a.conn, b.conn) } else { (b.conn, a.conn) };
        let (ts, text) = mention_post(&emu, CHANNEL, INCIDENTS[i % INCIDENTS.len()]);
        let mention = SlackEmulator::user_event("app_mention", CHANNEL, USER, &ts, None, &text);
        let twin = SlackEmulator::user_event("message", CHANNEL, USER, &ts, None, &text);
        let m = emu.push_event_on(first, mention.clone()).await;
        let event_id = m.event_id.clone().expect("an Events API envelope has an event id");
        // the twin and a retry of the mention (a new envelope, the same event id) to the other
        // replica at the same moment
        let (t, r) = tokio::join!(
            emu.push_event_on(other, twin),
            emu.push_event_with_id_on(other, &event_id, 1, mention)
        );
        envelopes.extend([m, t, r]);
        threads.push(ts);
    }
    for e in &envelopes {
        let ack = emu.wait_ack(&e.envelope_id, PATIENCE).await;
        let ack = ack.unwrap_or_else(|| panic!("envelope {} acknowledged", e.envelope_id));
        assert_eq!(ack.connection, e.connection, "acked by the replica it went to");
    }
    eventually(
        PATIENCE,
        || format!("posts never answered: {:?}", unanswered(&emu, CHANNEL, &threads)),
        || unanswered(&emu, CHANNEL, &threads).is_empty(),
    )
    .await;
    aftermath(&emu).await;
    answered_once(&emu, CHANNEL, &threads, &[&a, &b]);
    // per post one turn answered, its twin and the retry dropped as duplicates, across both
    let (mut replied, mut duplicates) = (Vec::new(), 0.0);
    for r in [&a, &b] {
        replied.push(metric(r, "netrunbook_event_reply_seconds_count").await);
        duplicates += metric(r, "netrunbook_duplicates_dropped_total").await;
    }
    assert_eq!(
        replied.iter().sum::<f64>(),
        (POSTS + 2) as f64,
        "turns answered, replica A then B: {replied:?}"
    );
    assert_eq!(duplicates, (2 * POSTS) as f64, "twins and retries dropped");
    eprintln!("twins and retries: answers by replica A and B {replied:?}, {duplicates} duplicates dropped");
    nothing_left(db.url()).await;
    crate::assert_methods_in_manifest(&emu);
    stop([a, b]).await;
}

/// The bot's messages in `thread` as shown, with the thread's own `ts` written `<thread>` (so two
/// threads that say the same read the same).
fn shown_thread(emu: &SlackEmulator, channel: &str, thread: &str) -> Vec<String> {
    let compact = thread.replace('.', "");
    emu.messages(channel)
        .into_iter()
        .filter(|m| m["bot_id"] == BOT_ID && m["thread_ts"] == thread)
        .map(|m| shown(&m).replace(thread, "<thread>").replace(&compact, "<thread>"))
        .collect()
}

/// Whether `done()` came true within `timeout` (checked every 25 ms).
async fn within(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    true
}

/// What [`play`] gives: the thread, or the thread and what did not come.
type Played = Result<String, (String, String)>;

/// Events with this `ts` journaled in the database at `url` and not done yet (handled, and their
/// replies delivered).
fn journaled(url: &str, ts: &str) -> u64 {
    let sql =
        format!("SELECT count(*) FROM inbox WHERE convert_from(entry, 'UTF8')::jsonb #>> '{{inbound,ts}}' = '{ts}'");
    psql(url, &sql).parse().expect("a count")
}

/// Wait until the bot is done with the post `ts` whose envelopes are `pushed`: each acknowledged
/// (so journaled), then no longer in the journal (handled, its replies delivered). False when that
/// did not happen within [`PATIENCE`].
async fn done_with(emu: &SlackEmulator, url: &str, ts: &str, pushed: &[Pushed]) -> bool {
    let deadline = Instant::now() + PATIENCE;
    for p in pushed {
        if emu.wait_ack(&p.envelope_id, PATIENCE).await.is_none() {
            return false;
        }
    }
    loop {
        let (u, t) = (url.to_owned(), ts.to_owned());
        let left = tokio::task::spawn_blocking(move || journaled(&u, &t))
            .await
            .expect("psql runs");
        if left == 0 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Play `ex` in a new thread of `channel` (the database at `url`): the mention on connection
/// `on(0)` (its `message` twin on `twin`), reply `i` on `on(i)`, each once the bot is done with the
/// one before (as people answer after reading); each must get an answer, the last the flow's
/// guidance. The thread, or what did not come (with the thread's `ts`).
async fn play(
    emu: &SlackEmulator,
    url: &str,
    channel: &str,
    ex: &Example,
    twin: u64,
    on: impl Fn(usize) -> u64,
) -> Played {
    let (ts, text) = mention_post(emu, channel, &ex.say[0]);
    let thread = ts.clone();
    let mention = SlackEmulator::user_event("app_mention", channel, USER, &ts, None, &text);
    let message = SlackEmulator::user_event("message", channel, USER, &ts, None, &text);
    let (m, t) = tokio::join!(emu.push_event_on(on(0), mention), emu.push_event_on(twin, message));
    let mut pushed = vec![m, t];
    let mut turn_ts = ts.clone();
    let bot_messages = |emu: &SlackEmulator| shown_thread(emu, channel, &thread).len();
    let failed = |what: String| {
        let shows = shown_thread(emu, channel, &thread).join("\n-----\n");
        let said = ex
            .say
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:?} on connection {}", on(i)));
        let said: Vec<String> = said.collect();
        Err((
            thread.clone(),
            format!(
                "{} in thread {thread} of {channel}: {what} never came (said {said:?}); the thread shows:\n{shows}",
                ex.intent
            ),
        ))
    };
    let mut seen = 0;
    for (i, reply) in ex.say.iter().enumerate() {
        if i > 0 {
            turn_ts = emu.next_ts();
            emu.add_message(channel, &turn_ts, Some(&thread), USER, reply);
            let event = SlackEmulator::user_event("message", channel, USER, &turn_ts, Some(&thread), reply);
            pushed = vec![emu.push_event_on(on(i), event).await];
        }
        if !done_with(emu, url, &turn_ts, &pushed).await {
            return failed(format!("the end of the turn {reply:?}"));
        }
        if bot_messages(emu) <= seen {
            return failed(format!("the answer to {reply:?}"));
        }
        seen = bot_messages(emu);
    }
    let guided = within(PATIENCE, || {
        ex.guided_in(&shown_thread(emu, channel, &thread).join("\n"))
    })
    .await;
    if !guided {
        return failed(format!("the guidance {:?}", ex.lead));
    }
    Ok(thread)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_whose_turns_alternate_replicas_reads_as_with_one() {
    let Some(db) = TestDatabase::create("replicas_flows") else {
        return;
    };
    let (emu, _dir, a, b) = two_replicas(db.url()).await;
    let all: Vec<Example> = examples().into_iter().filter(|ex| ex.say.len() >= 2).collect();
    assert!(all.len() >= 5, "multi-turn flow examples: {}", all.len());
    let (ca, cb, url) = (a.conn, b.conn, db.url());
    let outcomes: Vec<(String, Played, Played)> = stream::iter(all.iter().enumerate())
        .map(|(i, ex)| {
            let emu = emu.clone();
            async move {
                let channel = format!("C0ALT{i}");
                // the same conversation twice at once: every turn on replica A; and turn by
                // turn on A and B by turns (the mention's twin on the other one)
                let (one, alternating) = tokio::join!(
                    play(&emu, url, &channel, ex, ca, |_| ca),
                    play(&emu, url, &channel, ex, cb, |t| if t % 2 == 0 { ca } else { cb })
                );
                (channel, one, alternating)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let stuck: Vec<&(String, String)> = outcomes
        .iter()
        .flat_map(|(_, one, alternating)| [one.as_ref().err(), alternating.as_ref().err()])
        .flatten()
        .collect();
    if !stuck.is_empty() {
        // what the replicas logged about those threads (and every warning)
        let logs: Vec<String> = [&a, &b]
            .iter()
            .map(|r| {
                let log = r.process.log();
                let kept: Vec<&str> = log
                    .lines()
                    .filter(|l| {
                        stuck.iter().any(|(t, _)| l.contains(t.as_str()))
                            || l.contains(" WARN ")
                            || l.contains(" ERROR ")
                    })
                    .collect();
                format!("===== replica on connection {}:\n{}", r.conn, kept.join("\n"))
            })
            .collect();
        let what: Vec<&str> = stuck.iter().map(|(_, w)| w.as_str()).collect();
        panic!("{}\n{}", what.join("\n=========\n"), logs.join("\n"));
    }
    let played: Vec<(String, String, String)> = outcomes
        .into_iter()
        .map(|(c, one, alternating)| (c, one.unwrap(), alternating.unwrap()))
        .collect();
    aftermath(&emu).await;
    let mut problems = Vec::new();
    for (channel, one, alternating) in &played {
        let ex = &all[channel["C0ALT".len()..].parse::<usize>().unwrap()];
        let what = format!("{} ({channel})", ex.intent);
        for thread in [one, alternating] {
            if let Err(e) = records_once(&posts(&emu, channel, thread)) {
                problems.push(format!("{what}, thread {thread}: {e}"));
            }
        }
        let (expected, got) = (
            shown_thread(&emu, channel, one),
            shown_thread(&emu, channel, alternating),
        );
        if expected != got {
            problems.push(format!(
                "{what}: with one replica:\n{}\n===== turns alternating replicas:\n{}",
                expected.join("\n-----\n"),
                got.join("\n-----\n")
            ));
        }
        // the questions asked (posts with buttons), each once
        let questions: Vec<String> = posts(&emu, channel, alternating)
            .iter()
            .filter(|c| !buttons(&c.params).is_empty())
            .map(|c| shown(&c.params))
            .collect();
        let unique: BTreeSet<&String> = questions.iter().collect();
        if unique.len() != questions.len() {
            problems.push(format!(
                "{what}: a question asked twice:\n{}",
                questions.join("\n-----\n")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n=========\n"));
    eprintln!(
        "{} flow examples, {} turns, the same with turns alternating replicas",
        all.len(),
        all.iter().map(|e| e.say.len()).sum::<usize>()
    );
    nothing_left(db.url()).await;
    stop([a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_right_after_acknowledging_is_taken_over_once() {
    let Some(db) = TestDatabase::create("replicas_sigkill") else {
        return;
    };
    const CHANNEL: &str = "C0KILL";
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let b = replica(&emu, db.url(), &dir).await;
    // A may win the race and answer before SIGKILL lands: then that round proves nothing about the
    // take-over, and another A is started
    for round in 1..=3 {
        let a = replica(&emu, db.url(), &dir).await;
        let (ts, text) = mention_post(&emu, CHANNEL, INCIDENTS[round % INCIDENTS.len()]);
        let event = SlackEmulator::user_event("app_mention", CHANNEL, USER, &ts, None, &text);
        let pushed = emu.push_event_on(a.conn, event).await;
        let ack = emu
            .wait_ack(&pushed.envelope_id, PATIENCE)
            .await
            .unwrap_or_else(|| panic!("A acknowledges; its log:\n{}", a.process.log()));
        assert_eq!(ack.connection, a.conn);
        let killed = Instant::now();
        a.process.kill().await;
        eventually(
            LEASE + PATIENCE,
            || {
                format!(
                    "nobody answered the event A acknowledged; B's log:\n{}",
                    b.process.log()
                )
            },
            || !posts(&emu, CHANNEL, &ts).is_empty(),
        )
        .await;
        let answered = posts(&emu, CHANNEL, &ts)[0].at;
        aftermath(&emu).await;
        answered_once(&emu, CHANNEL, [&ts], &[&b]);
        // B can take over only once A's heartbeat is a lease old: A's last beat was at most a third
        // of a lease before the kill
        if answered < killed + LEASE / 3 {
            eprintln!(
                "round {round}: A answered {:?} after its ack, before SIGKILL landed; again",
                answered - ack.at
            );
            continue;
        }
        let after = answered - killed;
        eprintln!("round {round}: B answered the event A acknowledged {after:?} after A was killed");
        assert!(
            after <= LEASE + Duration::from_secs(8),
            "B answered {after:?} after A died (lease {LEASE:?})"
        );
        assert!(
            b.process
                .log()
                .contains("took over events journaled by a replica that stopped beating"),
            "B says it took over:\n{}",
            b.process.log()
        );
        nothing_left(db.url()).await;
        let (code, log) = b.process.terminate(START).await;
        assert_eq!(code, Some(0), "{log}");
        return;
    }
    panic!("A answered before SIGKILL landed in every round");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_stream_loses_and_doubles_nothing() {
    let Some(cluster) = PrivateCluster::create("replicas_restart") else {
        return;
    };
    let url = cluster.url();
    const CHANNEL: &str = "C0RESTART";
    const POSTS: usize = 80;
    /// Posts sent with the database away, at least: the outage lasts that many [`PACE`]s or more.
    const DURING: usize = 30;
    const PACE: Duration = Duration::from_millis(100);
    /// Posts at once just as the database stops.
    const BURST: usize = 20;
    let (emu, _dir, a, b) = two_replicas(&url).await;
    // Slack re-sends an envelope that is not acknowledged: soon, then later, then much later
    emu.retry_unacked_events_after(&[Duration::from_secs(1), Duration::from_secs(4), Duration::from_secs(12)]);
    // a person mentions the bot: Slack hands the `app_mention` to either replica (round robin)
    let mention = |emu: SlackEmulator, i: usize| async move {
        let text = format!("<@{BOT_USER_ID}> {}", INCIDENTS[i % INCIDENTS.len()]);
        let post = emu
            .post_user_message(CHANNEL, USER, &text, None, &["app_mention"])
            .await;
        (post.ts, post.pushed[0].clone())
    };
    let sent = Arc::new(AtomicUsize::new(0));
    let streamer = {
        let (emu, sent) = (emu.clone(), sent.clone());
        tokio::spawn(async move {
            let mut threads = Vec::new();
            for i in 0..POSTS {
                threads.push(mention(emu.clone(), i).await);
                sent.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(PACE).await;
            }
            threads
        })
    };
    eventually(
        PATIENCE,
        || "the stream started".into(),
        || sent.load(Ordering::SeqCst) >= 15,
    )
    .await;
    // and a burst at the moment the database stops, so that some turns are cut short between their
    // acknowledgement and their commit (put off, handed back by a beat once the database is back)
    let burst = futures_util::future::join_all((0..BURST).map(|i| mention(emu.clone(), i))).await;
    let cluster = Arc::new(cluster);
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop())
        .await
        .expect("pg_ctl stop");
    let stopped_at = sent.load(Ordering::SeqCst);
    for (name, r) in [("A", &a), ("B", &b)] {
        wait_readyz(
            r,
            503,
            Duration::from_secs(20),
            &format!("replica {name} with the database stopped"),
        )
        .await;
    }
    // the stream goes on for a few posts with the database away
    eventually(
        PATIENCE,
        || "posts sent during the outage".into(),
        || sent.load(Ordering::SeqCst) >= stopped_at + DURING,
    )
    .await;
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start())
        .await
        .expect("pg_ctl start");
    for (name, r) in [("A", &a), ("B", &b)] {
        wait_readyz(
            r,
            200,
            Duration::from_secs(30),
            &format!("replica {name} with the database back"),
        )
        .await;
    }
    let mut threads = streamer.await.expect("the stream ran");
    threads.extend(burst);
    eventually(
        PATIENCE,
        || {
            format!(
                "posts never answered: {:?}\nA's log:\n{}\nB's log:\n{}",
                unanswered(&emu, CHANNEL, threads.iter().map(|(t, _)| t)),
                a.process.log(),
                b.process.log()
            )
        },
        || unanswered(&emu, CHANNEL, threads.iter().map(|(t, _)| t)).is_empty(),
    )
    .await;
    aftermath(&emu).await;
    answered_once(&emu, CHANNEL, threads.iter().map(|(t, _)| t), &[&a, &b]);
    // the outage left envelopes unacknowledged, and Slack's retries of them were answered too
    let retries = emu.retries();
    assert!(!retries.is_empty(), "no envelope went unacknowledged during the outage");
    let acks: BTreeSet<String> = emu.acks().into_iter().map(|a| a.envelope_id).collect();
    let acked_retries = retries.iter().filter(|r| acks.contains(&r.envelope_id)).count();
    assert!(
        acked_retries > 0,
        "a retry of an envelope unacknowledged in the outage was acknowledged"
    );
    for (t, first) in &threads {
        let event_id = first.event_id.as_deref();
        let acked = emu
            .delivered()
            .iter()
            .any(|d| d.event_id.as_deref() == event_id && acks.contains(&d.envelope_id));
        assert!(acked, "the event of post {t} was acknowledged at last");
    }
    let put_off = [&a, &b]
        .iter()
        .map(|r| r.process.log().matches("this turn is put off").count())
        .sum::<usize>();
    eprintln!(
        "database restart: {} posts, {} retries of unacknowledged envelopes ({acked_retries} acknowledged), \
         {put_off} turns put off (acknowledged, not saved) and handled after",
        threads.len(),
        retries.len()
    );
    for (name, r) in [("A", &a), ("B", &b)] {
        let log = r.process.log();
        assert!(
            log.contains("cannot reach the database") && log.contains("the database is back"),
            "replica {name} says the database went away and came back:\n{log}"
        );
    }
    nothing_left(&url).await;
    stop([a, b]).await;
    drop(cluster);
}

/// A claim whose release failed (the database away at that moment; here a trigger refuses it) does
/// not keep the thread from the other replica while its owner lives: the owner's next heartbeat
/// gives it back, and the next reply in the thread, handed to the other replica, is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_failed_release_does_not_keep_the_thread_from_the_other_replica() {
    let Some(db) = TestDatabase::create("replicas_release") else {
        return;
    };
    const CHANNEL: &str = "C0RELEASE";
    let (emu, _dir, a, b) = two_replicas(db.url()).await;
    let (ts, text) = mention_post(&emu, CHANNEL, "LoadBalancer service stuck with pending external IP");
    db.sql(&format!(
        "CREATE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'the test refuses this release'; END $$;
         CREATE TRIGGER refuse_release BEFORE DELETE ON thread_claims FOR EACH ROW
             WHEN (OLD.thread_ts = '{ts}') EXECUTE FUNCTION refuse_release();"
    ));
    emu.push_event_on(
        a.conn,
        SlackEmulator::user_event("app_mention", CHANNEL, USER, &ts, None, &text),
    )
    .await;
    eventually(
        PATIENCE,
        || {
            format!(
                "A answers and fails to release the thread; A's log:\n{}",
                a.process.log()
            )
        },
        || !posts(&emu, CHANNEL, &ts).is_empty() && a.process.log().contains("cannot release a thread's claim"),
    )
    .await;
    db.sql("DROP TRIGGER refuse_release ON thread_claims; DROP FUNCTION refuse_release()");
    let answered = posts(&emu, CHANNEL, &ts).len();
    // the person answers the bot's question; Slack hands the reply to B
    let reply_ts = emu.next_ts();
    emu.add_message(CHANNEL, &reply_ts, Some(&ts), USER, "it's a vpc cluster");
    let reply = SlackEmulator::user_event("message", CHANNEL, USER, &reply_ts, Some(&ts), "it's a vpc cluster");
    emu.push_event_on(b.conn, reply).await;
    let sent = Instant::now();
    eventually(
        LEASE + Duration::from_secs(10),
        || {
            format!(
                "B never answered the reply (claims: {}); B's log:\n{}",
                db.sql("SELECT owner, since FROM thread_claims"),
                b.process.log()
            )
        },
        || posts(&emu, CHANNEL, &ts).len() > answered,
    )
    .await;
    eprintln!("a claim left behind: B answered {:?} after the reply", sent.elapsed());
    aftermath(&emu).await;
    let calls = posts(&emu, CHANNEL, &ts);
    assert!(
        calls[answered..]
            .iter()
            .any(|c| buttons(&c.params).iter().any(|(l, _, _)| l == "IKS")),
        "the next question:\n{}",
        shown_all(&calls.iter().map(|c| c.params.clone()).collect::<Vec<_>>())
    );
    if let Err(e) = records_once(&calls) {
        panic!("{e}");
    }
    nothing_left(db.url()).await;
    stop([a, b]).await;
}

/// Two replies posted one right after the other in a thread, which Slack hands to different
/// replicas, are read in the order they were posted: the claim makes the replicas take turns, and the
/// replica that gets it handles the thread's earlier journaled events first (`Replicas::earlier`),
/// whichever replica received them (found by this test, which failed before that). Here
/// the replica with the earlier reply is held up for a moment (SIGSTOP, well under the lease: a busy
/// replica), the other reads the later reply first ("yes, fixed" while the bot still waits to hear
/// VPC or Classic: not an answer, let go), then the earlier one is read and the bot asks whether the
/// docs solved it, which it was already told. One replica reads them in order (its thread queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_posted_back_to_back_to_different_replicas_are_read_in_post_order() {
    let Some(db) = TestDatabase::create("replicas_order") else {
        return;
    };
    const CHANNEL: &str = "C0ORDER";
    let (emu, _dir, a, b) = two_replicas(db.url()).await;
    let (thread, text) = mention_post(&emu, CHANNEL, "LB has no external IP");
    let mention = emu
        .push_event_on(
            a.conn,
            SlackEmulator::user_event("app_mention", CHANNEL, USER, &thread, None, &text),
        )
        .await;
    assert!(
        done_with(&emu, db.url(), &thread, &[mention]).await,
        "the mention is answered"
    );
    let reply = |text: &str| {
        let ts = emu.next_ts();
        emu.add_message(CHANNEL, &ts, Some(&thread), USER, text);
        (
            ts.clone(),
            SlackEmulator::user_event("message", CHANNEL, USER, &ts, Some(&thread), text),
        )
    };
    let (first_ts, first) = reply("VPC, OpenShift 4.14");
    let (second_ts, second) = reply("yes, fixed");
    let first = emu.push_event_on(b.conn, first).await;
    emu.wait_ack(&first.envelope_id, PATIENCE)
        .await
        .expect("B acknowledges");
    b.process.signal("-STOP");
    let second = emu.push_event_on(a.conn, second).await;
    let a_done = done_with(&emu, db.url(), &second_ts, &[second]).await;
    b.process.signal("-CONT");
    assert!(a_done, "A is done with the second reply");
    assert!(
        done_with(&emu, db.url(), &first_ts, &[first]).await,
        "B is done with the first reply"
    );
    let shows = shown_thread(&emu, CHANNEL, &thread).join("\n-----\n");
    assert!(
        shows.contains("Good, the docs covered it."),
        "the replies read in the order they were posted end the flow; the thread shows:\n{shows}"
    );
}

/// A replica paused for longer than its lease in the middle of a turn
/// (SIGSTOP here; a frozen VM, a starved container, or a heartbeat held up longer than the lease in
/// real life) is taken over: the other replica answers the event. When the paused one resumes, it
/// finishes its turn; its commit must then find the event handled (`StoreError::AlreadyHandled`, the
/// commit's fence) and write and post nothing, where a second outbox record (whose posts carry
/// another marker) would be a second answer. Whether a round shows it depends on where SIGSTOP lands (after the
/// duplicate check, before the commit): each round stops A a little later after its ack (0 to 36 ms,
/// the span of a turn here), ten rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_paused_past_its_lease_mid_turn_does_not_answer_again() {
    let Some(db) = TestDatabase::create("replicas_pause") else {
        return;
    };
    const CHANNEL: &str = "C0PAUSE";
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let b = replica(&emu, db.url(), &dir).await;
    for round in 1..=10u32 {
        let a = replica(&emu, db.url(), &dir).await;
        let (ts, text) = mention_post(&emu, CHANNEL, INCIDENTS[round as usize % INCIDENTS.len()]);
        let event = SlackEmulator::user_event("app_mention", CHANNEL, USER, &ts, None, &text);
        let pushed = emu.push_event_on(a.conn, event).await;
        emu.wait_ack(&pushed.envelope_id, PATIENCE)
            .await
            .unwrap_or_else(|| panic!("A acknowledges; its log:\n{}", a.process.log()));
        // where in its turn A stops is what the rounds vary
        tokio::time::sleep(Duration::from_millis(4 * u64::from(round - 1))).await;
        a.process.signal("-STOP");
        eventually(
            LEASE + PATIENCE,
            || format!("round {round}: nobody answered; B's log:\n{}", b.process.log()),
            || !posts(&emu, CHANNEL, &ts).is_empty(),
        )
        .await;
        a.process.signal("-CONT");
        aftermath(&emu).await;
        answered_once(&emu, CHANNEL, [&ts], &[&a, &b]);
        a.process.kill().await;
    }
}
