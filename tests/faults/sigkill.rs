//! SIGKILL at random points of running dialogues, each followed by a restart on the same sled
//! directory. Six sessions keep LoadBalancer dialogues going (a mention with its `message` twin, then
//! three thread replies, one at a time) while the bot is killed every 100-700 ms; Slack's re-sending
//! of unacknowledged events is on (every 500 ms, three times). A step whose reply does not come within
//! 10 s is a lost reply, classified by whether the event had been acknowledged:
//!
//! - not acknowledged: Slack re-sent it, so its reply must come. A loss here fails the run: the
//!   bot saves the step, the event's "handled" marks and its replies (the outbox) in one write before
//!   posting, and posts what the outbox holds after a restart, so a re-sent event dropped as a
//!   duplicate still gets its reply;
//! - acknowledged: Slack will not re-send it, so the bot must have it: it journals each mention and
//!   message (the inbox) before acknowledging it and, after a restart, handles what the journal
//!   holds. A loss here fails the run too.
//!
//! After a lost reply the person mentions the bot in the thread (which re-asks the pending question,
//! or, when the conversation had already moved on, answers the thread's first message again) and says
//! their answer again. Asserted, always:
//!
//! - every dialogue without a lost reply shows each of the flow's four messages exactly once (no
//!   duplicate reply, no gap);
//! - no dialogue is stuck, and every conversation is in the store, opened after a clean stop,
//!   readable, and a finished one holds the answers given (no conversation lost or corrupted).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netrunbook::dialogue::Pending;
use netrunbook::store::{SledStore, Store};
use netrunbook::vocab::ThreadKey;
use netrunbook_testkit::driver::{Tracker, USER};
use netrunbook_testkit::process::Options;
use netrunbook_testkit::slack_emulator::{SlackEmulator, BOT_USER_ID, TEAM_ID};
use serde_json::Value;
use tokio::time::Instant;

use crate::{n_from_env, options, Rig};

const STEP_WAIT: Duration = Duration::from_secs(10);

/// The dialogue: what the person says, and the bot message each step must end with.
const STEPS: &[(&str, Shows)] = &[
    // questions by their text: once answered in words, a question shows the answer instead of buttons
    (
        "LoadBalancer service stuck with pending external IP",
        Shows::Text("Which infrastructure is the cluster on?"),
    ),
    (
        "vpc",
        Shows::Text("Is it an IKS cluster or a Red Hat OpenShift (ROKS) cluster?"),
    ),
    ("iks", Shows::Text("Did the customer docs solve it?")),
    ("no, still broken", Shows::Text("did not solve it")),
];

#[derive(Clone, Copy, Debug)]
enum Shows {
    Text(&'static str),
}

impl Shows {
    fn count(&self, thread: &[Value]) -> usize {
        match self {
            Shows::Text(t) => thread.iter().filter(|m| m.to_string().contains(t)).count(),
        }
    }
}

/// The bot's messages in a channel.
fn bot_messages(emu: &SlackEmulator, channel: &str) -> Vec<Value> {
    emu.messages(channel)
        .into_iter()
        .filter(|m| m["bot_id"].is_string())
        .collect()
}

#[derive(Default, Debug)]
struct Tally {
    steps: usize,
    /// Replies lost for events acknowledged before a kill (Slack does not re-send those).
    lost_after_ack: usize,
    /// Replies lost for events that were not acknowledged (Slack re-sent them).
    lost_unacked: Vec<String>,
    /// Channels where a reply was lost and the person had to mention the bot again.
    nudged: HashSet<String>,
    stuck: Vec<String>,
    threads: Vec<(String, String)>,
    /// What the test did, per channel, for diagnosis.
    trace: Vec<(String, Instant, String)>,
}

async fn dialogue(tracker: &Arc<Tracker>, channel: &str, tally: &Mutex<Tally>) {
    let emu = &tracker.emu;
    let mut thread = String::new();
    let note = |what: String| {
        tally
            .lock()
            .unwrap()
            .trace
            .push((channel.to_string(), Instant::now(), what))
    };
    for (k, (text, shows)) in STEPS.iter().enumerate() {
        let post = if k == 0 {
            let text = format!("<@{BOT_USER_ID}> {text}");
            emu.post_user_message(channel, USER, &text, None, &["app_mention", "message"])
                .await
        } else {
            emu.post_user_message(channel, USER, text, Some(&thread), &["message"])
                .await
        };
        if k == 0 {
            thread = post.ts.clone();
            tally
                .lock()
                .unwrap()
                .threads
                .push((channel.to_string(), thread.clone()));
        }
        tally.lock().unwrap().steps += 1;
        note(format!("step {k}: {text} (ts {})", post.ts));
        if wait_shows(emu, channel, *shows, STEP_WAIT).await {
            continue;
        }
        // lost: was the event acknowledged (then Slack does not re-send it)?
        let acked = post.pushed.iter().any(|p| tracker.acked(&p.envelope_id));
        {
            let mut t = tally.lock().unwrap();
            if acked {
                t.lost_after_ack += 1;
            } else {
                t.lost_unacked.push(format!("{channel} step {k} ({text})"));
            }
            t.nudged.insert(channel.to_string());
        }
        note(format!(
            "step {k}: no reply in {STEP_WAIT:?} (acked: {acked}); mentioning the bot"
        ));
        // what a person does when the bot says nothing: mention it in the thread, then, if what it
        // says is not the expected step, say the answer again
        let bare = format!("<@{BOT_USER_ID}>");
        emu.post_user_message(channel, USER, &bare, Some(&thread), &["app_mention", "message"])
            .await;
        if wait_shows(emu, channel, *shows, Duration::from_secs(3)).await {
            continue;
        }
        emu.post_user_message(channel, USER, text, Some(&thread), &["message"])
            .await;
        if !wait_shows(emu, channel, *shows, STEP_WAIT).await {
            // the conversation had moved on before the kill, and the mention started it over from the
            // thread's first message: walk it again from the start
            note(format!("step {k}: still nothing; starting the steps over"));
            for (again, (text, shows)) in STEPS.iter().enumerate().skip(1) {
                emu.post_user_message(channel, USER, text, Some(&thread), &["message"])
                    .await;
                if !wait_stays(emu, channel, *shows, again < k).await {
                    tally.lock().unwrap().stuck.push(format!(
                        "{channel} step {k} ({text}): no {shows:?} even after starting over"
                    ));
                    return;
                }
            }
            return;
        }
    }
}

/// Wait for `shows`; when it was shown before this step (`seen_before`), for a second one.
async fn wait_stays(emu: &SlackEmulator, channel: &str, shows: Shows, seen_before: bool) -> bool {
    let want = if seen_before { 2 } else { 1 };
    let deadline = Instant::now() + STEP_WAIT;
    while Instant::now() < deadline {
        if shows.count(&bot_messages(emu, channel)) >= want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn wait_shows(emu: &SlackEmulator, channel: &str, shows: Shows, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if shows.count(&bot_messages(emu, channel)) > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// `strict`: also fail when a reply was lost for an event Slack re-sent (the fast run prints it).
async fn kill_and_restart(kills: usize, strict: bool) {
    let mut rig = Rig::start(Options {
        // debug: the log says which events were dropped as already handled
        rust_log: Some("info,netrunbook=debug".into()),
        ..options()
    })
    .await;
    rig.emu.retry_unacked_events(Some(Duration::from_millis(500)));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let running = Arc::new(AtomicBool::new(true));
    let next = Arc::new(AtomicUsize::new(0));
    let mut sessions = Vec::new();
    for _ in 0..6 {
        let (tracker, tally, running, next) = (rig.tracker.clone(), tally.clone(), running.clone(), next.clone());
        sessions.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                dialogue(&tracker, &format!("CKILL{n:05}"), &tally).await;
            }
        }));
    }
    let started = Instant::now();
    let mut kill_times = Vec::new();
    for _ in 0..kills {
        let pause = 100 + rig.tracker.random() % 600;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        kill_times.push(Instant::now());
        rig.kill().await;
        rig.restart().await;
    }
    running.store(false, Ordering::Relaxed);
    for s in sessions {
        s.await.expect("a session does not panic");
    }
    let elapsed = started.elapsed();
    // late duplicates would show up now
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tally = std::mem::take(&mut *tally.lock().unwrap());

    let mut duplicates = Vec::new();
    let mut gaps = Vec::new();
    for (channel, _) in tally.threads.iter().filter(|(c, _)| !tally.nudged.contains(c)) {
        let msgs = bot_messages(&rig.emu, channel);
        let finished = STEPS[3].1.count(&msgs) > 0;
        for (_, shows) in STEPS {
            match shows.count(&msgs) {
                0 if finished => gaps.push(format!("{channel}: no {shows:?}")),
                n if n > 1 => duplicates.push(format!("{channel}: {shows:?} shown {n} times")),
                _ => {}
            }
        }
    }
    let threads = tally.threads.clone();
    let log = rig.stop().await;
    assert!(!log.contains("panicked"), "{log}");

    // the store after a clean stop: every conversation there, readable, and a finished one with the
    // answers given
    let store = SledStore::open(&rig.db).expect("the store opens after a clean stop");
    let mut lost = Vec::new();
    let mut corrupt = Vec::new();
    for (channel, thread) in &threads {
        let shown = bot_messages(&rig.emu, channel);
        if shown.is_empty() {
            continue; // the bot never answered (killed first): nothing to keep
        }
        let finished = STEPS[3].1.count(&shown) > 0 && !tally.nudged.contains(channel);
        match store.get(&ThreadKey::new(TEAM_ID, channel.as_str(), thread.as_str())) {
            Ok(Some(c)) => {
                let slot = |s: &str| c.slots.get(s).map(String::as_str);
                if finished
                    && (c.pending != Pending::Nothing
                        || slot("infra") != Some("vpc")
                        || slot("platform") != Some("iks"))
                {
                    corrupt.push(format!(
                        "{channel}: finished in Slack, stored as {:?} {:?}",
                        c.pending, c.slots
                    ));
                }
            }
            Ok(None) => lost.push(channel.clone()),
            Err(e) => corrupt.push(format!("{channel}: {e}")),
        }
    }
    evidence!(
        "sigkill: {kills} SIGKILLs in {elapsed:.1?}, each followed by a restart on the same sled directory; {} dialogues ({} steps); replies lost: {} for acknowledged events, {} for re-sent (unacknowledged) events; dialogues recovered by a mention {}; stuck {}; duplicate replies {}; gaps {}; conversations lost {}, corrupt {}",
        threads.len(),
        tally.steps,
        tally.lost_after_ack,
        tally.lost_unacked.len(),
        tally.nudged.len(),
        tally.stuck.len(),
        duplicates.len(),
        gaps.len(),
        lost.len(),
        corrupt.len()
    );
    let mut explain: Vec<&String> = tally
        .lost_unacked
        .iter()
        .chain(&duplicates)
        .chain(&tally.stuck)
        .collect();
    explain.truncate(4);
    for problem in explain {
        let channel = problem.split([' ', ':']).next().unwrap_or_default();
        evidence!("  {problem}:");
        for (c, at, what) in &tally.trace {
            if c == channel {
                evidence!("    test +{:.3?}: {what}", at.duration_since(started));
            }
        }
        let near: Vec<String> = kill_times
            .iter()
            .map(|k| format!("{:.3?}", k.duration_since(started)))
            .collect();
        evidence!("    kills at +{}", near.join(", +"));
        for line in rig.log_lines_with(channel).iter().filter(|l| !l.contains("text=")) {
            evidence!("    {}", line.chars().take(240).collect::<String>());
        }
    }
    assert!(lost.is_empty(), "conversations lost: {lost:?}");
    assert!(corrupt.is_empty(), "{corrupt:?}");
    assert!(duplicates.is_empty(), "{duplicates:?}");
    assert!(gaps.is_empty(), "{gaps:?}");
    assert!(tally.stuck.is_empty(), "{:?}", tally.stuck);
    assert!(threads.len() >= kills, "dialogues ran throughout");
    if strict {
        assert!(
            tally.lost_unacked.is_empty(),
            "replies lost for events Slack re-sent: {:?}",
            tally.lost_unacked
        );
        assert_eq!(
            tally.lost_after_ack, 0,
            "replies lost for events acknowledged before a kill (the inbox journal hands them back)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_dialogue_loses_no_conversation() {
    kill_and_restart(n_from_env("FAULTS_KILLS", 5), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 50 kills (RELIABILITY.md)"]
async fn fifty_sigkills_lose_no_conversation() {
    kill_and_restart(50, true).await;
}
