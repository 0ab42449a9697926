//! `/netrunbook`: help, a private answer inside the acknowledgement, sharing it in the channel.

use std::time::Duration;

use serde_json::Value;

use crate::{buttons, shown, spawn_bot, USER, WAIT};

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
