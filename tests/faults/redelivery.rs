//! Every event re-delivered: Slack's retry (same `event_id`, a new envelope, `retry_attempt` 1) of
//! every `app_mention`, its `message` twin and every thread reply, half of them racing the original
//! and half after its reply; the connections reset or refreshed every 150 ms meanwhile, so many
//! copies arrive after a reconnect. Counted per conversation: exactly the calibrated replies.

use std::time::Duration;

use netrunbook_testkit::driver::{self, Action, Load, Redelivery};

use crate::{n_from_env, options, Rig};

/// Four Events API steps, five events: the mention twins and three thread replies.
fn script() -> Vec<Action> {
    vec![
        Action::Mention {
            text: "LoadBalancer service stuck with pending external IP",
            twins: true,
        },
        Action::Reply { text: "vpc" },
        Action::Reply { text: "iks" },
        Action::Reply {
            text: "no, still broken",
        },
    ]
}

async fn redelivered(originals: usize) {
    let mut rig = Rig::start(options()).await;
    // what Slack does with events lost in a reset socket: re-send them
    rig.emu.retry_unacked_events(Some(Duration::from_secs(1)));
    let script = script();
    let expect = rig
        .tracker
        .calibrate("CREDELIVER-CALIBRATE", &script, Duration::from_secs(20))
        .await;
    let per_conversation = 5;
    let conversations = originals.div_ceil(per_conversation);

    // the connections are reset or told to reconnect every 150 ms, for as long as the load runs
    let emu = rig.emu.clone();
    let chaos = tokio::spawn(async move {
        let mut n = 0u32;
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            match n % 3 {
                0 => drop(emu.disconnect("refresh_requested").await),
                1 => drop(emu.drop_sockets().await),
                _ => drop(emu.disconnect("warning").await),
            }
            n += 1;
        }
    });
    let mut reports = Vec::new();
    for (half, before_reply) in [(0, true), (1, false)] {
        *rig.tracker.redelivery.lock().unwrap() = Redelivery {
            copies: 1,
            max_delay: Duration::from_millis(30),
            before_reply,
        };
        let load = Load {
            conversations: conversations / 2 + half * (conversations % 2),
            sessions: 16,
            rate: None,
            timeout: Duration::from_secs(20),
            prefix: format!("CREDELIVER{half}-"),
        };
        reports.push(driver::run(&rig.tracker, &script, &expect, &load).await);
    }
    chaos.abort();
    let originals_sent: usize = reports.iter().map(|r| r.events - r.record.copies).sum();
    let copies: usize = reports.iter().map(|r| r.record.copies).sum();
    let after_reconnect: usize = reports.iter().map(|r| r.record.copies_after_reconnect).sum();
    let duplicates: usize = reports.iter().map(|r| r.duplicates).sum();
    let missing: usize = reports.iter().map(|r| r.missing).sum();
    let errors: Vec<&String> = reports.iter().flat_map(|r| &r.errors).collect();
    evidence!(
        "redelivery: {originals_sent} events, each re-delivered ({copies} copies: {} racing the original, {} after its reply; {after_reconnect} after a reconnect); {} reconnects; duplicate replies {duplicates}, missing replies {missing}, step errors {}",
        reports[0].record.copies,
        reports[1].record.copies,
        rig.emu.connects_total(),
        errors.len()
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(duplicates, 0, "duplicate replies");
    assert_eq!(missing, 0, "missing replies");
    assert!(originals_sent >= originals, "{originals_sent} events sent");
    assert_eq!(copies, originals_sent, "every event re-delivered once");
    assert!(after_reconnect > 0, "some copies arrived after a reconnect");
    assert!(rig.bot().running());
    let log = rig.stop().await;
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_are_answered_once() {
    redelivered(n_from_env("FAULTS_REDELIVERED", 200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 1,000 events"]
async fn a_thousand_redelivered_events_are_answered_once() {
    redelivered(1000).await;
}
