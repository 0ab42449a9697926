//! Delivery: duplicates (events, and clicks Slack sends again) answered once, 429 waited out, reconnects, a restart mid-flow, the messages
//! the bot must not answer, and what stops the listener (`link_disabled`, a rejected app token) or
//! does not (an unreadable envelope).

use std::time::Duration;

use netrunbook::app::Application;
use netrunbook::slack::StopReason;
use netrunbook_testkit::slack_emulator::{Fault, SlackEmulator, BOT_ID, BOT_USER_ID};

use crate::{
    buttons, settings, shown, shown_all, spawn_bot, start_bot, watch_logs, with_button, OTHER_USER, QUIET, USER, WAIT,
};

const NO_FLOW_QUESTION: &str = "who do I page for armada-network";

#[tokio::test]
async fn a_retried_event_is_answered_once() {
    let bot = spawn_bot().await;
    let ts = bot.emu.next_ts();
    let text = format!("<@{BOT_USER_ID}> {NO_FLOW_QUESTION}");
    bot.emu.add_message("C0INC", &ts, None, USER, &text);
    let event = SlackEmulator::user_event("app_mention", "C0INC", USER, &ts, None, &text);
    for attempt in 0..3 {
        // Slack's retry: same event id, new envelope id
        let pushed = bot.emu.push_event_with_id("Ev0RETRIED", attempt, event.clone()).await;
        assert!(
            bot.emu.wait_ack(&pushed.envelope_id, WAIT).await.is_some(),
            "each delivery is acknowledged"
        );
    }
    bot.settle().await;
    assert_eq!(bot.emu.calls_to("chat.postMessage").len(), 1);
    bot.stop().await;
}

#[tokio::test]
async fn a_click_slack_sends_again_on_another_connection_is_handled_once() {
    let bot = spawn_bot().await;
    // 👍 on an answer: one vote, one thanks
    let post = bot.mention("C0INC", NO_FLOW_QUESTION, None).await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "the answer", |m| !m.is_empty())
        .await;
    let (_, id, value) = buttons(&msgs[0])
        .into_iter()
        .find(|(l, _, _)| l == "👍 Helpful")
        .expect("a 👍 button");
    let answer_ts = msgs[0]["ts"].as_str().unwrap().to_string();
    let click = bot
        .emu
        .push_block_action("C0INC", OTHER_USER, &answer_ts, Some(&post.ts), &id, &value)
        .await;
    let again = bot.emu.resend(&click).await;
    assert_ne!(
        click.connection, again.connection,
        "the copy came on the other connection"
    );
    for pushed in [&click, &again] {
        assert!(
            bot.emu.wait_ack(&pushed.envelope_id, WAIT).await.is_some(),
            "each copy is acknowledged"
        );
    }
    bot.wait_ephemeral(OTHER_USER, "Thanks, noted.").await;
    bot.wait_metric("netrunbook_duplicates_dropped_total", 1.0).await;
    bot.settle().await;
    assert_eq!(
        bot.metric("netrunbook_feedback_total{vote=\"up\"}").await,
        Some(1.0),
        "one vote"
    );
    assert_eq!(bot.emu.calls_to("chat.postEphemeral").len(), 1, "one thanks");

    // "Share in channel" on a private answer: one shared post
    let answer = bot.slash("C0INC", USER, "coredns lookups fail in pods").await;
    let (_, id, value) = buttons(&answer)
        .into_iter()
        .find(|(l, _, _)| l == "Share in channel")
        .expect("a Share in channel button");
    let ephemeral_ts = bot.emu.next_ts();
    let share = bot
        .emu
        .push_block_action("C0INC", USER, &ephemeral_ts, None, &id, &value)
        .await;
    let again = bot.emu.resend(&share).await;
    assert_ne!(share.connection, again.connection);
    bot.wait_metric("netrunbook_duplicates_dropped_total", 2.0).await;
    bot.settle().await;
    let roots: Vec<_> = bot
        .emu
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.param("thread_ts").is_none() && shown(&c.params).contains("coredns lookups fail in pods"))
        .collect();
    assert_eq!(roots.len(), 1, "shared once");
    let deleted = bot
        .emu
        .responses()
        .iter()
        .filter(|(_, body)| body["delete_original"] == true)
        .count();
    assert_eq!(deleted, 1, "the private copy is deleted once");
    bot.stop().await;
}

#[tokio::test]
async fn a_mention_arriving_as_app_mention_and_message_is_answered_once() {
    let bot = spawn_bot().await;
    let text = format!("<@{BOT_USER_ID}> {NO_FLOW_QUESTION}");
    let post = bot
        .emu
        .post_user_message("C0INC", USER, &text, None, &["app_mention", "message"])
        .await;
    assert_eq!(post.pushed.len(), 2);
    bot.wait_thread("C0INC", &post.ts, "the answer", |m| !m.is_empty())
        .await;
    bot.settle().await;
    assert_eq!(bot.emu.calls_to("chat.postMessage").len(), 1);
    // and a `message` only mention (some Slack-compatible servers send just that) is answered too
    let post = bot
        .emu
        .post_user_message("C0INC", USER, &text, None, &["message"])
        .await;
    bot.wait_thread("C0INC", &post.ts, "the answer to a message-only mention", |m| {
        !m.is_empty()
    })
    .await;
    bot.stop().await;
}

#[tokio::test]
async fn a_rate_limited_reply_arrives_after_retry_after_once() {
    let bot = spawn_bot().await;
    bot.emu
        .fail_next("chat.postMessage", Fault::RateLimited { retry_after_secs: 1 });
    let post = bot.mention("C0INC", NO_FLOW_QUESTION, None).await;
    bot.wait_thread("C0INC", &post.ts, "the answer after the rate limit", |m| !m.is_empty())
        .await;
    bot.settle().await;
    let calls = bot.emu.calls_to("chat.postMessage");
    assert_eq!(calls.len(), 2, "one refused, one accepted");
    assert!(calls[0].fault.is_some() && calls[1].fault.is_none());
    let waited = calls[1].at - calls[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}, before Retry-After"
    );
    assert_eq!(bot.thread("C0INC", &post.ts).len(), 1, "shown once");
    bot.stop().await;
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let bot = spawn_bot().await;
    bot.emu.fail_next("chat.postMessage", Fault::Status(503));
    bot.emu
        .fail_next("chat.postMessage", Fault::SlackError("internal_error".into()));
    let post = bot.mention("C0INC", NO_FLOW_QUESTION, None).await;
    bot.wait_thread("C0INC", &post.ts, "the answer after two failures", |m| !m.is_empty())
        .await;
    assert_eq!(bot.emu.calls_to("chat.postMessage").len(), 3);
    bot.stop().await;
}

#[tokio::test]
async fn refresh_requested_and_a_dropped_socket_reconnect_and_answering_goes_on() {
    let bot = spawn_bot().await;
    let before = bot.emu.connects_total();
    assert!(bot.emu.disconnect("refresh_requested").await >= 1);
    assert!(
        bot.emu.wait_connected(2, WAIT).await,
        "reconnected after refresh_requested"
    );
    assert!(bot.emu.connects_total() >= before + 2);
    let post = bot.mention("C0INC", NO_FLOW_QUESTION, None).await;
    bot.wait_thread("C0INC", &post.ts, "an answer after the refresh", |m| !m.is_empty())
        .await;

    let before = bot.emu.connects_total();
    assert!(bot.emu.drop_sockets().await >= 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    while bot.emu.connects_total() < before + 2 {
        assert!(tokio::time::Instant::now() < deadline, "reconnected after the reset");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(bot.emu.wait_connected(2, WAIT).await);
    let post = bot.mention("C0INC", NO_FLOW_QUESTION, None).await;
    bot.wait_thread("C0INC", &post.ts, "an answer after the reset", |m| !m.is_empty())
        .await;
    bot.stop().await;
}

#[tokio::test]
async fn a_restart_mid_flow_continues_where_it_was() {
    let bot = spawn_bot().await;
    let post = bot
        .mention("C0INC", "LoadBalancer service stuck with pending external IP", None)
        .await;
    bot.wait_thread("C0INC", &post.ts, "the first question", |m| {
        with_button(m, 0, "VPC").is_some()
    })
    .await;
    let (_, emu, dir) = bot.stop().await;

    let bot = start_bot(emu, dir).await;
    bot.say("C0INC", USER, "vpc", Some(&post.ts)).await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "the next question after the restart", |m| {
            with_button(m, 2, "OpenShift (ROKS)").is_some()
        })
        .await;
    assert!(
        !shown_all(&msgs[2..]).contains("Which infrastructure"),
        "not asked again"
    );
    bot.stop().await;
}

#[tokio::test]
async fn bots_chatter_and_edits_get_no_reply() {
    let bot = spawn_bot().await;
    bot.emu.set_echo_bot_messages(true); // our own posts come back as `message` events
    let post = bot
        .mention("C0INC", "LoadBalancer service stuck with pending external IP", None)
        .await;
    bot.wait_thread("C0INC", &post.ts, "the first question", |m| m.len() >= 2)
        .await;
    bot.settle().await;
    let posted = bot.emu.calls_to("chat.postMessage").len();
    assert_eq!(posted, 2, "own messages echoed back are not answered");

    // people talking to each other in the active thread
    bot.say(
        "C0INC",
        OTHER_USER,
        "I'll ask the customer for the service yaml",
        Some(&post.ts),
    )
    .await;
    bot.say("C0INC", USER, "thanks, ping me when you have it", Some(&post.ts))
        .await;
    // another bot in the thread, even naming an option
    let ts = bot.emu.next_ts();
    let mut other_bot = SlackEmulator::user_event("message", "C0INC", "U0JIRA", &ts, Some(&post.ts), "vpc");
    other_bot["bot_id"] = "B0JIRA".into();
    bot.emu.push_event(other_bot).await;
    // an edit of a mention, a join
    let ts = bot.emu.next_ts();
    let mut edit = SlackEmulator::user_event("message", "C0INC", USER, &ts, None, "");
    edit["subtype"] = "message_changed".into();
    edit["message"] = serde_json::json!({"type":"message","user":USER,"text":format!("<@{BOT_USER_ID}> dns is broken"),"ts":ts,"edited":{"user":USER,"ts":ts}});
    bot.emu.push_event(edit).await;
    let ts = bot.emu.next_ts();
    let mut join = SlackEmulator::user_event(
        "message",
        "C0INC",
        OTHER_USER,
        &ts,
        None,
        &format!("<@{OTHER_USER}> has joined the channel"),
    );
    join["subtype"] = "channel_join".into();
    bot.emu.push_event(join).await;
    // a message in a thread the bot is not in, and a channel message without a mention
    bot.say("C0INC", USER, "dns lookups fail", None).await;
    bot.settle().await;
    assert_eq!(
        bot.emu.calls_to("chat.postMessage").len(),
        posted,
        "{}",
        shown_all(&bot.thread("C0INC", &post.ts))
    );
    assert!(bot.emu.calls_to("chat.postEphemeral").is_empty());
    let own = bot.thread("C0INC", &post.ts);
    assert!(own.iter().all(|m| m["bot_id"] == BOT_ID));
    assert!(
        shown(&own[1]).contains("Which infrastructure"),
        "the question is still pending"
    );
    bot.stop().await;
}

#[tokio::test]
async fn one_thread_is_handled_in_order() {
    let bot = spawn_bot().await;
    let post = bot
        .mention("C0INC", "LoadBalancer service stuck with pending external IP", None)
        .await;
    bot.wait_thread("C0INC", &post.ts, "the first question", |m| {
        with_button(m, 0, "VPC").is_some()
    })
    .await;
    // three answers back to back, each only making sense after the one before: each is sent once
    // Slack has the ack of the one before (Slack itself does not order envelopes across its Socket
    // Mode connections), without waiting for any reply
    for words in ["vpc", "iks", "no, still broken"] {
        let sent = bot.say("C0INC", USER, words, Some(&post.ts)).await;
        for p in &sent.pushed {
            assert!(
                bot.emu.wait_ack(&p.envelope_id, WAIT).await.is_some(),
                "{words:?} acked"
            );
        }
    }
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "the final guidance", |m| {
            shown_all(m).contains("armada-network-vpc-load-balancer-troubleshooting.html")
        })
        .await;
    assert!(!shown_all(&msgs).contains("could not tell"), "{}", shown_all(&msgs));
    bot.stop().await;
}

#[tokio::test]
async fn a_rate_limited_thread_does_not_hold_up_another() {
    let bot = spawn_bot().await;
    bot.emu
        .fail_next("chat.postMessage", Fault::RateLimited { retry_after_secs: 2 });
    let slow = bot.mention("C0INC", NO_FLOW_QUESTION, None).await;
    assert_eq!(bot.emu.wait_calls("chat.postMessage", 1, WAIT).await.len(), 1);
    let fast = bot.mention("C0OTHER", NO_FLOW_QUESTION, None).await;
    bot.wait_thread("C0OTHER", &fast.ts, "the other thread's answer", |m| !m.is_empty())
        .await;
    assert!(
        bot.thread("C0INC", &slow.ts).is_empty(),
        "the rate-limited reply is still waiting"
    );
    bot.wait_thread("C0INC", &slow.ts, "the rate-limited answer", |m| !m.is_empty())
        .await;
    bot.stop().await;
}

#[tokio::test]
async fn link_disabled_stops_an_in_process_bot_without_reconnecting() {
    let bot = spawn_bot().await;
    let connects = bot.emu.connects_total();
    let opens = bot.emu.calls_to("apps.connections.open").len();
    assert_eq!(bot.emu.disconnect("link_disabled").await, 2);
    let (reason, emu, _dir) = bot.stopped().await;
    assert_eq!(reason, StopReason::LinkDisabled);
    tokio::time::sleep(QUIET).await;
    assert_eq!(emu.connects_total(), connects, "did not reconnect");
    assert_eq!(
        emu.calls_to("apps.connections.open").len(),
        opens,
        "the reconnect slack-morphism starts never reaches Slack"
    );
}

#[tokio::test]
async fn a_rejected_app_token_stops_the_bot() {
    let emu = SlackEmulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        emu.fail_next("apps.connections.open", Fault::SlackError("invalid_auth".into()));
    }
    let settings = settings(&emu, &dir.path().join("db"));
    let _logs = watch_logs(&settings.tuning.watch);
    let app = Application::build(settings).await.expect("the bot builds");
    let reason = tokio::time::timeout(WAIT, app.run_until_stopped(std::future::pending()))
        .await
        .expect("the bot stops by itself")
        .expect("without error");
    assert_eq!(reason, StopReason::AppTokenRejected);
    assert_eq!(emu.connects_total(), 0);
}

#[tokio::test]
async fn an_unreadable_envelope_is_acknowledged_and_answering_goes_on() {
    let bot = spawn_bot().await;
    bot.emu
        .push_raw(r#"{"envelope_id":"emu-unreadable","type":"events_api","payload":{"nonsense":true}}"#)
        .await;
    bot.emu.push_raw("this is not JSON").await;
    assert!(
        bot.emu.wait_ack("emu-unreadable", WAIT).await.is_some(),
        "acknowledged, so Slack does not re-send it"
    );
    let post = bot.mention("C0INC", NO_FLOW_QUESTION, None).await;
    bot.wait_thread("C0INC", &post.ts, "an answer after the unreadable frames", |m| {
        !m.is_empty()
    })
    .await;
    bot.stop().await;
}
