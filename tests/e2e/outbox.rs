//! The outbox: replies are saved with the conversation and delivered from there, so they survive a
//! Web API outage longer than the retries and a crash between saving a step and posting it; each
//! arrives once, in order. And the inbox journal: an event acknowledged just before a crash is handled
//! after the restart. The crash cases are set up exactly: the store is written as a crash would
//! leave it (the step saved, its replies not posted, or posted without the record being cleared),
//! then the bot starts on it.

use std::time::Duration;

use netrunbook::dialogue::Reply;
use netrunbook::inbox::Inbox;
use netrunbook::outbox::{self, Parcel};
use netrunbook::store::{Change, Commit, SledStore, Store};
use netrunbook::vocab::{Action, Inbound, InboundKind, Message, Outbound, ThreadKey};
use netrunbook_testkit::slack_emulator::{Fault, SlackEmulator, BOT_ID, BOT_USER_ID, TEAM_ID};
use serde_json::json;
use tempfile::TempDir;

use crate::{buttons, shown, shown_all, spawn_bot, start_bot, USER};

const CHANNEL: &str = "C0OUTBOX";

fn labels(m: &serde_json::Value) -> Vec<String> {
    buttons(m).into_iter().map(|(l, _, _)| l).collect()
}

#[tokio::test]
async fn replies_due_in_a_web_api_outage_arrive_once_in_order_after_it() {
    let bot = spawn_bot().await;
    // longer than the test retry policy (4 attempts, ~0.4 s of backoff)
    bot.emu
        .fail_for("chat.postMessage", Fault::Status(503), Duration::from_secs(3));
    let root = bot
        .mention(CHANNEL, "LoadBalancer service stuck with pending external IP", None)
        .await;
    // the first reply's attempts (4) all fail: it waits in the outbox
    let failed = bot.emu.wait_calls("chat.postMessage", 4, crate::WAIT).await;
    assert!(failed.len() >= 4, "the retries ran into the outage: {failed:?}");
    // the person answers the question they could not see yet (they know it is VPC)
    bot.say(CHANNEL, USER, "it's a vpc cluster", Some(&root.ts)).await;
    assert!(
        bot.thread(CHANNEL, &root.ts).is_empty(),
        "nothing gets through during the outage"
    );
    let with = |msgs: &[serde_json::Value], label: &str| -> Vec<usize> {
        (0..msgs.len())
            .filter(|&i| labels(&msgs[i]).iter().any(|l| l == label))
            .collect()
    };
    bot.wait_thread(CHANNEL, &root.ts, "both steps' replies after the outage", |m| {
        !with(m, "IKS").is_empty()
    })
    .await;
    bot.settle().await;
    let msgs = bot.thread(CHANNEL, &root.ts);
    // the first step answers and asks Classic or VPC; the second marks that question answered (it
    // was posted by then) and asks IKS or OpenShift
    assert_eq!(msgs.len(), 3, "each reply once:\n{}", shown_all(&msgs));
    assert!(shown(&msgs[0]).contains("LoadBalancer"), "{}", shown(&msgs[0]));
    assert!(
        labels(&msgs[1]).is_empty()
            && shown(&msgs[1]).contains("Which infrastructure")
            && shown(&msgs[1]).contains(&format!("✅ *VPC* (answered by <@{USER}>)")),
        "{}",
        shown_all(&msgs)
    );
    assert_eq!(with(&msgs, "IKS"), [2], "in order:\n{}", shown_all(&msgs));
    assert!(bot.metric("netrunbook_replies_redelivered_total").await >= Some(1.0));
    bot.wait_metric("netrunbook_outbox_pending", 0.0).await;
    bot.stop().await;
}

/// The emulator with a person's mention of the bot (`text` after the mention) at the top of
/// [`CHANNEL`], a store directory not used yet, and the mention's `ts`.
async fn a_mention_and_an_empty_store(text: &str) -> (SlackEmulator, TempDir, String) {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ts = emu.next_ts();
    emu.add_message(CHANNEL, &ts, None, USER, &format!("<@{BOT_USER_ID}> {text}"));
    (emu, dir, ts)
}

/// The store as a crash after saving an event's step, before posting its replies, leaves it.
fn crashed_store(dir: &TempDir, thread_ts: &str, events: &[String], text: &str) -> u64 {
    crashed_store_at(dir, thread_ts, events, text, netrunbook::slack::unix_now())
}

/// As [`crashed_store`], for an event handled at `at` (seconds since the epoch).
fn crashed_store_at(dir: &TempDir, thread_ts: &str, events: &[String], text: &str, at: u64) -> u64 {
    crashed_store_with(dir, thread_ts, events, vec![notice(thread_ts, text)], at)
}

/// A post of `text` in the thread `thread_ts`.
fn notice(thread_ts: &str, text: &str) -> Outbound {
    Outbound::Post {
        channel: CHANNEL.into(),
        thread_ts: Some(thread_ts.into()),
        message: Message::Replies(vec![Reply::Notice { text: text.into() }]),
    }
}

/// As [`crashed_store_at`], with the replies `items`.
fn crashed_store_with(dir: &TempDir, thread_ts: &str, events: &[String], items: Vec<Outbound>, at: u64) -> u64 {
    let store = SledStore::open(dir.path().join("netrunbook.sled")).expect("the store opens");
    let thread = ThreadKey::new(TEAM_ID, CHANNEL, thread_ts);
    let parcel = Parcel::new(thread.clone(), at, "test", items);
    let record = parcel.encode();
    let commit = Commit {
        thread: &thread,
        conversation: Change::Keep,
        events,
        outbox: Some(&record),
        now: netrunbook::slack::unix_now(),
    };
    // the bot started next waits for sled to let the directory go (`launch`)
    store.commit(&commit).expect("commit").expect("an outbox id")
}

#[tokio::test]
async fn replies_a_crash_left_unposted_are_posted_once_at_start() {
    let (emu, dir, ts) = a_mention_and_an_empty_store("dns is broken").await;
    crashed_store(&dir, &ts, &[], "reply saved before the crash");
    let bot = start_bot(emu, dir).await;
    let msgs = bot
        .wait_thread(CHANNEL, &ts, "the saved reply", |m| !m.is_empty())
        .await;
    assert!(shown(&msgs[0]).contains("reply saved before the crash"));
    bot.settle().await;
    assert_eq!(bot.thread(CHANNEL, &ts).len(), 1, "posted once");
    bot.wait_metric("netrunbook_outbox_pending", 0.0).await;
    // and not again after another restart: the record is gone
    let (_, emu, dir) = bot.stop().await;
    let bot = start_bot(emu, dir).await;
    bot.settle().await;
    assert_eq!(bot.thread(CHANNEL, &ts).len(), 1, "not posted again");
    bot.stop().await;
}

#[tokio::test]
async fn replies_older_than_the_maximum_age_are_given_up_not_posted() {
    let (emu, dir, ts) = a_mention_and_an_empty_store("dns is broken").await;
    // the test bot gives up after an hour
    let two_hours_ago = netrunbook::slack::unix_now() - 2 * 3600;
    crashed_store_at(&dir, &ts, &[], "a reply two hours late", two_hours_ago);
    let bot = start_bot(emu, dir).await;
    bot.wait_metric("netrunbook_replies_dropped_total", 1.0).await;
    bot.wait_metric("netrunbook_outbox_pending", 0.0).await;
    bot.settle().await;
    assert!(bot.thread(CHANNEL, &ts).is_empty(), "not posted that late");
    bot.stop().await;
}

#[tokio::test]
async fn a_reply_posted_just_before_a_crash_is_not_posted_again() {
    let (emu, dir, ts) = a_mention_and_an_empty_store("dns is broken").await;
    let id = crashed_store(&dir, &ts, &[], "posted, then the crash");
    // Slack took the post; the crash came before the record was cleared
    let posted_ts = emu.next_ts();
    emu.add_raw_message(
        CHANNEL,
        json!({
            "type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "team": TEAM_ID,
            "ts": posted_ts, "thread_ts": ts, "text": "posted, then the crash",
            "blocks": [{"type": "section", "block_id": format!("{}:0", outbox::marker(id, 0)),
                        "text": {"type": "mrkdwn", "text": "posted, then the crash"}}],
        }),
    );
    let bot = start_bot(emu, dir).await;
    bot.wait_metric("netrunbook_outbox_pending", 0.0).await;
    bot.settle().await;
    let msgs = bot.thread(CHANNEL, &ts);
    assert_eq!(msgs.len(), 1, "not posted twice:\n{}", shown_all(&msgs));
    assert!(
        !bot.emu.calls_to("conversations.replies").is_empty(),
        "the bot looked in the thread"
    );
    assert!(bot.emu.calls_to("chat.postMessage").is_empty());
    bot.stop().await;
}

#[tokio::test]
async fn a_question_answered_in_words_before_a_crash_is_marked_answered_once_at_start() {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (id, value) = netrunbook::slack::buttons::encode_action(
        &Action::Choose {
            node: "infra".into(),
            option: "vpc".into(),
        },
        1,
    );
    let question = |ts: &str, thread_ts: &str, open: bool| {
        let mut blocks = vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": "*Which infrastructure is the cluster on?*"}}),
        ];
        if open {
            blocks.push(
                json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "VPC"},
                "action_id": id, "value": value}]}),
            );
        }
        json!({"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "team": TEAM_ID, "ts": ts,
               "thread_ts": thread_ts, "text": "Which infrastructure is the cluster on?", "blocks": blocks})
    };
    let answered = |thread_ts: &str| Outbound::MarkAnswered {
        channel: CHANNEL.into(),
        thread_ts: thread_ts.into(),
        node: "infra".into(),
        message: Message::Answered {
            question: "Which infrastructure is the cluster on?".into(),
            choice: "VPC".into(),
            user: USER.into(),
        },
    };
    // thread 1: the crash came before the update; thread 2: after it, before the record was cleared
    let mut threads = Vec::new();
    for (n, open) in [(1, true), (2, false)] {
        let root = emu.next_ts();
        emu.add_message(CHANNEL, &root, None, USER, &format!("<@{BOT_USER_ID}> lb pending {n}"));
        let q = emu.next_ts();
        emu.add_raw_message(CHANNEL, question(&q, &root, open));
        let items = vec![answered(&root), notice(&root, &format!("after the answer {n}"))];
        crashed_store_with(&dir, &root, &[], items, netrunbook::slack::unix_now());
        threads.push((root, q));
    }
    let bot = start_bot(emu, dir).await;
    bot.wait_metric("netrunbook_outbox_pending", 0.0).await;
    bot.settle().await;
    let updates = bot.emu.calls_to("chat.update");
    assert_eq!(updates.len(), 1, "only the open question is updated: {updates:?}");
    assert_eq!(updates[0].param("ts"), Some(threads[0].1.as_str()));
    for (n, (root, q)) in threads.iter().enumerate() {
        let msgs = bot.thread(CHANNEL, root);
        let marked = msgs.iter().find(|m| m["ts"] == q.as_str()).unwrap();
        assert!(
            buttons(marked).is_empty() && (n == 1 || shown(marked).contains("answered by")),
            "{}",
            shown(marked)
        );
        let after = format!("after the answer {}", n + 1);
        assert_eq!(
            msgs.iter().filter(|m| shown(m).contains(&after)).count(),
            1,
            "the reply after the answer, once:\n{}",
            shown_all(&msgs)
        );
    }
    bot.stop().await;
}

#[tokio::test]
async fn an_event_slack_resends_after_a_crash_gets_its_saved_reply_once() {
    let (emu, dir, ts) = a_mention_and_an_empty_store("dns lookups time out in pods").await;
    let text = format!("<@{BOT_USER_ID}> dns lookups time out in pods");
    // the step was saved and the event marked handled; its reply never went out
    let events = [
        format!("ev:{TEAM_ID}:Ev0CRASHED"),
        format!("msg:{TEAM_ID}:{CHANNEL}:{ts}"),
    ];
    crashed_store(&dir, &ts, &events, "the reply the crash held back");
    let bot = start_bot(emu, dir).await;
    let event = SlackEmulator::user_event("app_mention", CHANNEL, USER, &ts, None, &text);
    let pushed = bot.emu.push_event_with_id("Ev0CRASHED", 1, event).await;
    assert!(bot.emu.wait_ack(&pushed.envelope_id, crate::WAIT).await.is_some());
    bot.wait_metric("netrunbook_outbox_pending", 0.0).await;
    bot.settle().await;
    let msgs = bot.thread(CHANNEL, &ts);
    assert_eq!(msgs.len(), 1, "the saved reply, once:\n{}", shown_all(&msgs));
    assert!(shown(&msgs[0]).contains("the reply the crash held back"));
    assert_eq!(bot.metric("netrunbook_duplicates_dropped_total").await, Some(1.0));
    bot.stop().await;
}

#[tokio::test]
async fn an_event_acknowledged_just_before_a_crash_is_handled_after_the_restart() {
    let (emu, dir, ts) = a_mention_and_an_empty_store("who do I page for armada-network").await;
    let text = format!("<@{BOT_USER_ID}> who do I page for armada-network");
    {
        // journaled and acknowledged; the process died before handling it (no destructors run)
        let (inbox, left) = Inbox::open(dir.path().join("netrunbook.sled").join("inbox")).unwrap();
        assert!(left.is_empty());
        let inbound = Inbound {
            event_id: Some("Ev0ACKED".into()),
            team: TEAM_ID.into(),
            channel: CHANNEL.into(),
            user: USER.into(),
            ts: ts.clone(),
            thread_ts: None,
            text,
            mentioned: false,
            is_bot: false,
            bot_id: None,
            edited: false,
            subtype: None,
            kind: InboundKind::Mention,
        };
        std::mem::forget(inbox.append(&inbound));
        std::mem::forget(inbox);
    }
    let bot = start_bot(emu, dir).await;
    let msgs = bot
        .wait_thread(CHANNEL, &ts, "the answer to the journaled mention", |m| !m.is_empty())
        .await;
    assert!(shown(&msgs[0]).contains("armada-network"), "{}", shown_all(&msgs));
    bot.settle().await;
    assert_eq!(bot.thread(CHANNEL, &ts).len(), msgs.len(), "answered once");
    // handled: the journal is empty, and another restart answers nothing again
    let (_, emu, dir) = bot.stop().await;
    let inbox_dir = dir.path().join("netrunbook.sled").join("inbox");
    assert_eq!(
        std::fs::read_dir(&inbox_dir).unwrap().count(),
        0,
        "the journal was cleared"
    );
    let n = msgs.len();
    let bot = start_bot(emu, dir).await;
    bot.settle().await;
    assert_eq!(bot.thread(CHANNEL, &ts).len(), n, "not answered again");
    bot.stop().await;
}

#[tokio::test]
async fn a_post_that_times_out_but_took_effect_is_not_posted_twice() {
    let bot = spawn_bot().await;
    // longer than the test call timeout (5 s): Slack posts it, the bot hears nothing back
    bot.emu
        .fail_next("chat.postMessage", Fault::Hang(Duration::from_secs(6)));
    let root = bot.mention(CHANNEL, "who do I page for armada-network", None).await;
    let msgs = bot.wait_thread(CHANNEL, &root.ts, "the reply", |m| !m.is_empty()).await;
    bot.wait_metric("netrunbook_outbox_pending", 0.0).await;
    // past the moment the hung call takes effect (by now, unless the bot posted again at once)
    let hung = bot.emu.calls_to("chat.postMessage")[0].at;
    tokio::time::sleep_until(hung + Duration::from_secs(6)).await;
    bot.settle().await;
    let msgs_now = bot.thread(CHANNEL, &root.ts);
    assert_eq!(msgs_now.len(), 1, "once:\n{}", shown_all(&msgs_now));
    assert_eq!(shown(&msgs[0]), shown(&msgs_now[0]));
    bot.stop().await;
}
