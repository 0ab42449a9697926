//! Mentions: in a channel (answer in a new thread), in a thread, bare in an incident thread (answer
//! from the root alert), an ambiguous question (asked which with buttons), and `stop`.

use netrunbook_testkit::slack_emulator::BOT_USER_ID;

use crate::{assert_methods_in_manifest, buttons, shown, shown_all, spawn_bot, with_button, OTHER_USER, USER};

const CALICO_SECTION: &str = "armada-network-initial-troubleshooting.html#problems-with-calico-node";

#[tokio::test]
async fn mention_in_a_channel_is_answered_in_a_thread_with_the_section_link() {
    let bot = spawn_bot().await;
    let post = bot.mention("C0INC", "calico-node pods in CrashLoopBackOff", None).await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "the answer", |m| !m.is_empty())
        .await;
    let answer = &msgs[0];
    assert_eq!(answer["thread_ts"], post.ts.as_str(), "threaded under the mention");
    let seen = shown(answer);
    assert!(seen.contains(CALICO_SECTION), "{seen}");
    assert!(seen.contains("Problems with calico-node"), "{seen}");
    let labels: Vec<String> = buttons(answer).into_iter().map(|b| b.0).collect();
    assert!(
        labels.iter().any(|l| l == "Escalate")
            && labels.iter().any(|l| l.contains("👍"))
            && labels.iter().any(|l| l.contains("👎")),
        "{labels:?}"
    );
    assert!(seen.contains("knowledge base"), "kb version footer: {seen}");
    bot.settle().await;
    assert_eq!(
        bot.thread("C0INC", &post.ts).len(),
        1,
        "one answer, no question for a section without a flow"
    );
    bot.stop().await;
}

#[tokio::test]
async fn mention_in_a_thread_is_answered_in_that_thread() {
    let bot = spawn_bot().await;
    let root = bot
        .say("C0INC", OTHER_USER, "customer ticket TS012345 came in", None)
        .await;
    let post = bot
        .mention("C0INC", "coredns lookups fail in pods", Some(&root.ts))
        .await;
    let msgs = bot
        .wait_thread("C0INC", &root.ts, "the answer and the question", |m| m.len() >= 2)
        .await;
    assert!(
        msgs.iter().all(|m| m["thread_ts"] == root.ts.as_str()),
        "all in the thread"
    );
    assert!(
        shown(&msgs[0]).contains("Customer Reports DNS Issues"),
        "{}",
        shown_all(&msgs)
    );
    assert!(
        with_button(&msgs, 1, "OpenShift (ROKS)").is_some(),
        "the flow's first question with buttons"
    );
    assert_ne!(post.ts, root.ts);
    bot.stop().await;
}

#[tokio::test]
async fn bare_mention_in_an_incident_thread_answers_from_the_root_alert() {
    let bot = spawn_bot().await;
    let alert_ts = bot.emu.next_ts();
    bot.emu.add_message(
        "C0ALERTS",
        &alert_ts,
        None,
        "U0PAGERDUTY",
        "[FIRING:1] calico-node pod not ready on worker 10.242.0.5 (CrashLoopBackOff)",
    );
    bot.mention("C0ALERTS", "", Some(&alert_ts)).await;
    let msgs = bot
        .wait_thread("C0ALERTS", &alert_ts, "an answer", |m| !m.is_empty())
        .await;
    assert!(shown(&msgs[0]).contains(CALICO_SECTION), "{}", shown_all(&msgs));
    assert!(
        !bot.emu.calls_to("conversations.replies").is_empty(),
        "read the thread's root"
    );

    // "what does the runbook say?" works the same
    let alert2 = bot.emu.next_ts();
    bot.emu.add_message(
        "C0ALERTS",
        &alert2,
        None,
        "U0PAGERDUTY",
        "DNS lookups from pods time out (coredns)",
    );
    bot.mention("C0ALERTS", "what does the runbook say?", Some(&alert2))
        .await;
    let msgs = bot
        .wait_thread("C0ALERTS", &alert2, "an answer", |m| !m.is_empty())
        .await;
    assert!(
        shown(&msgs[0]).contains("Customer Reports DNS Issues"),
        "{}",
        shown_all(&msgs)
    );
    assert_methods_in_manifest(&bot.emu);
    bot.stop().await;
}

#[tokio::test]
async fn an_ambiguous_question_asks_which_section_with_buttons() {
    let bot = spawn_bot().await;
    let post = bot
        // two sections named with equal weight: the console and DNS
        .mention("C0INC", "console and dns", None)
        .await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "a clarification", |m| !m.is_empty())
        .await;
    let seen = shown(&msgs[0]);
    assert!(seen.contains("Which one did you mean?"), "{seen}");
    let choices = buttons(&msgs[0]);
    assert!(choices.len() >= 2, "{choices:?}");
    let (label, action_id, value) = choices[0].clone();
    let ts = msgs[0]["ts"].as_str().unwrap().to_string();
    bot.emu
        .push_block_action("C0INC", USER, &ts, Some(&post.ts), &action_id, &value)
        .await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "the picked answer", |m| m.len() >= 2)
        .await;
    let updated = bot
        .emu
        .messages("C0INC")
        .into_iter()
        .find(|m| m["ts"] == ts.as_str())
        .unwrap();
    assert!(
        shown(&updated).contains(&label),
        "updated in place: {}",
        shown(&updated)
    );
    assert!(buttons(&updated).is_empty(), "the buttons are gone after the click");
    assert!(
        shown(&msgs[1]).contains("armada-network-initial-troubleshooting.html#"),
        "{}",
        shown_all(&msgs)
    );
    bot.stop().await;
}

#[tokio::test]
async fn stop_ends_the_conversation() {
    let bot = spawn_bot().await;
    let post = bot
        .mention("C0INC", "LoadBalancer service stuck with pending external IP", None)
        .await;
    bot.wait_thread("C0INC", &post.ts, "the first question", |m| m.len() >= 2)
        .await;
    bot.mention("C0INC", "stop", Some(&post.ts)).await;
    let msgs = bot
        .wait_thread("C0INC", &post.ts, "the reset notice", |m| m.len() >= 3)
        .await;
    assert!(shown(&msgs[2]).contains("Conversation reset"), "{}", shown(&msgs[2]));
    // the question is no longer pending: a plain "vpc" is just chatter now
    bot.say("C0INC", USER, "vpc", Some(&post.ts)).await;
    bot.settle().await;
    assert_eq!(bot.thread("C0INC", &post.ts).len(), 3);
    assert!(!shown_all(&bot.thread("C0INC", &post.ts)).contains(&format!("<@{BOT_USER_ID}>")));
    bot.stop().await;
}
