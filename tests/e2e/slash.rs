//! `/netrunbook`: help, a private answer inside the acknowledgement, sharing it in the channel, and
//! a command Slack sends again answered without doing anything twice.

use std::time::Duration;

use serde_json::Value;

use crate::{buttons, shown, spawn_bot, spawn_bot_with, TestBot, USER, WAIT};

/// Slack shows an error to the user when the ack takes longer.
const ACK_DEADLINE: Duration = Duration::from_secs(3);

#[tokio::test]
async fn slash_help_lists_the_topics_by_group() {
    let bot = spawn_bot().await;
    for text in ["", "help"] {
        let pushed = bot.emu.push_slash("C0INC", USER, text).await;
        let ack = bot.emu.wait_ack(&pushed.envelope_id, WAIT).await.expect("acknowledged");
        let payload = ack.payload.expect("the help rides on the ack");
        assert_eq!(payload["response_type"], "ephemeral");
        let seen = shown(&payload);
        for expected in [
            "Calico:",
            "Customer workloads:",
            "PagerDuty alerts:",
            "Scope and escalation:",
            "Workers and nodes:",
            "LoadBalancer service problems",
        ] {
            assert!(seen.contains(expected), "help lacks {expected:?}:\n{seen}");
        }
    }
    assert!(bot.emu.calls_to("chat.postMessage").is_empty(), "help is private");
    bot.stop().await;
}

#[tokio::test]
async fn slash_question_is_answered_privately_within_the_deadline_and_can_be_shared() {
    let bot = spawn_bot().await;
    let pushed = bot.emu.push_slash("C0INC", USER, "coredns lookups fail in pods").await;
    let ack = bot.emu.wait_ack(&pushed.envelope_id, WAIT).await.expect("acknowledged");
    assert!(
        ack.at - pushed.at < ACK_DEADLINE,
        "acked after {:?}",
        ack.at - pushed.at
    );
    let payload: Value = ack.payload.expect("the answer rides on the ack");
    assert_eq!(payload["response_type"], "ephemeral");
    let seen = shown(&payload);
    assert!(seen.contains("Customer Reports DNS Issues"), "{seen}");
    assert!(
        seen.contains("armada-network-initial-troubleshooting.html#"),
        "section link:\n{seen}"
    );
    assert!(
        !payload["text"].as_str().unwrap_or_default().is_empty(),
        "fallback text"
    );
    assert!(bot.emu.calls_to("chat.postMessage").is_empty(), "nothing public yet");

    // Share in channel
    let share = buttons(&payload)
        .into_iter()
        .find(|(label, _, _)| label == "Share in channel")
        .expect("a Share in channel button");
    let ephemeral_ts = bot.emu.next_ts();
    let click = bot
        .emu
        .push_block_action("C0INC", USER, &ephemeral_ts, None, &share.1, &share.2)
        .await;
    bot.emu
        .wait_ack(&click.envelope_id, WAIT)
        .await
        .expect("click acknowledged");
    let posts = bot.emu.wait_calls("chat.postMessage", 2, WAIT).await;
    assert!(posts.len() >= 2, "the answer and its first question");
    assert_eq!(posts[0].param("thread_ts"), None, "the answer is posted in the channel");
    let root = &bot.emu.messages("C0INC")[0];
    assert!(shown(root).contains("coredns lookups fail in pods"), "{}", shown(root));
    let root_ts = root["ts"].as_str().unwrap().to_string();
    assert_eq!(
        posts[1].param("thread_ts"),
        Some(root_ts.as_str()),
        "the flow runs in the answer's thread"
    );
    assert!(
        shown(&posts[1].params).contains("IKS or Red Hat OpenShift"),
        "{}",
        shown(&posts[1].params)
    );
    // the private copy goes away
    let deadline = tokio::time::Instant::now() + WAIT;
    while !bot
        .emu
        .responses()
        .iter()
        .any(|(id, body)| id == &click.envelope_id && body["delete_original"] == true)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "response_url got {:?}",
            bot.emu.responses()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bot.stop().await;
}

/// The payload of the ack of `envelope_id`.
async fn ack_payload(bot: &TestBot, envelope_id: &str) -> Value {
    let ack = bot.emu.wait_ack(envelope_id, WAIT).await.expect("acknowledged");
    ack.payload.expect("the answer rides on the ack")
}

#[tokio::test]
async fn a_slash_command_slack_sends_again_is_answered_once() {
    let bot = spawn_bot_with(|s| {
        s.access.admins.insert(USER.into());
    })
    .await;
    // a question: the copy gets the same private answer, which is counted once
    let first = bot.emu.push_slash("C0INC", USER, "coredns lookups fail in pods").await;
    let again = bot.emu.resend(&first).await;
    assert_ne!(
        first.connection, again.connection,
        "the copy came on the other connection"
    );
    let (one, two) = (
        ack_payload(&bot, &first.envelope_id).await,
        ack_payload(&bot, &again.envelope_id).await,
    );
    assert!(shown(&one).contains("Customer Reports DNS Issues"), "{}", shown(&one));
    assert_eq!(one, two, "the person sees the answer whichever copy Slack shows");
    bot.wait_metric("netrunbook_duplicates_dropped_total", 1.0).await;
    assert_eq!(
        bot.metric("netrunbook_answers_total{intent=\"dns\"}").await,
        Some(1.0),
        "counted once"
    );

    // an admin command: run once
    let first = bot.emu.push_slash("C0INC", USER, "report").await;
    let again = bot.emu.resend(&first).await;
    for pushed in [&first, &again] {
        let payload = ack_payload(&bot, &pushed.envelope_id).await;
        assert!(
            shown(&payload).contains("Putting the report together"),
            "{}",
            shown(&payload)
        );
    }
    bot.wait_ephemeral(USER, "netrunbook report").await;
    bot.settle().await;
    let reports = bot
        .emu
        .calls_to("chat.postEphemeral")
        .into_iter()
        .filter(|c| shown(&c.params).contains("netrunbook report"))
        .count();
    assert_eq!(reports, 1, "one report");
    assert_eq!(bot.metric("netrunbook_duplicates_dropped_total").await, Some(2.0));
    assert!(bot.emu.calls_to("chat.postMessage").is_empty(), "nothing public");
    bot.stop().await;
}
