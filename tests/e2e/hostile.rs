//! Hostile text: broadcasts and mentions in user text, a 40 KB paste, binary, right-to-left text and
//! emoji. The bot answers sanely (or says nothing fits) and never pings anyone.

use crate::{buttons, shown_all, spawn_bot, USER};

/// Markup that would notify people if it reached Slack unescaped.
const PINGS: &[&str] = &[
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0OTHER>",
    "<!subteam^S0TEAM>",
];

fn assert_pings_nobody(what: &str, msgs: &[serde_json::Value]) {
    for m in msgs {
        // everything Slack renders (a button's value is data, never rendered)
        let raw = crate::shown(m);
        for p in PINGS {
            assert!(!raw.contains(p), "{what}: {p} went out live in {raw}");
        }
    }
}

#[tokio::test]
async fn hostile_text_gets_a_sane_reply_and_pings_nobody() {
    let bot = spawn_bot().await;
    let mut paste = String::from("coredns lookups fail in pods, log below <!channel>\n");
    while paste.len() < 40 * 1024 {
        paste.push_str("E1126 22:03:00.123 dial udp 172.21.0.10:53: i/o timeout <!here> <@U0OTHER> & <https://x|y>\n");
    }
    let binary: String = String::from_utf8_lossy(&(0u8..=255).cycle().take(3000).collect::<Vec<u8>>()).into_owned();
    let cases: Vec<(&str, String)> = vec![
        (
            "broadcasts",
            "<!channel> <!here> <!everyone> <@U0OTHER> <!subteam^S0TEAM> dns lookups fail in pods".into(),
        ),
        ("40 KB paste", paste),
        ("binary", binary),
        (
            "right-to-left",
            "\u{202e}kcab sserdda \u{05e9}\u{05dc}\u{05d5}\u{05dd} calico-node crashloop \u{200f}".into(),
        ),
        ("emoji", "🔥🔥 calico-node 💥 CrashLoopBackOff :fire: 👩‍💻🏳️‍🌈".into()),
    ];
    for (what, text) in &cases {
        let post = bot.mention("C0HOSTILE", text, None).await;
        let msgs = bot.wait_thread("C0HOSTILE", &post.ts, what, |m| !m.is_empty()).await;
        assert_pings_nobody(what, &msgs);
        assert!(!shown_all(&msgs).trim().is_empty(), "{what}: something readable");
    }
    bot.settle().await;
    for call in bot.emu.calls_to("chat.postMessage") {
        assert!(
            call.param("text").is_some_and(|t| !t.is_empty()),
            "fallback text always set"
        );
    }
    bot.stop().await;
}

#[tokio::test]
async fn quoted_user_text_in_an_escalation_is_escaped() {
    let bot = spawn_bot().await;
    let post = bot
        .mention(
            "C0HOSTILE",
            "<!channel> calico-node pods in CrashLoopBackOff <@U0OTHER> <!here>",
            None,
        )
        .await;
    let msgs = bot
        .wait_thread("C0HOSTILE", &post.ts, "the answer", |m| !m.is_empty())
        .await;
    let (_, action_id, value) = buttons(&msgs[0])
        .into_iter()
        .find(|b| b.0 == "Escalate")
        .expect("an Escalate button");
    let ts = msgs[0]["ts"].as_str().unwrap().to_string();
    bot.emu
        .push_block_action("C0HOSTILE", USER, &ts, Some(&post.ts), &action_id, &value)
        .await;
    let msgs = bot
        .wait_thread("C0HOSTILE", &post.ts, "the escalation", |m| m.len() >= 2)
        .await;
    let shown = shown_all(&msgs);
    assert!(shown.contains("Escalation"), "{shown}");
    assert!(
        shown.contains("&lt;!channel&gt;"),
        "the report is quoted, escaped:\n{shown}"
    );
    assert_pings_nobody("escalation", &msgs);
    bot.stop().await;
}

#[tokio::test]
async fn a_shared_question_is_quoted_escaped() {
    let bot = spawn_bot().await;
    let pushed = bot
        .emu
        .push_slash("C0HOSTILE", USER, "<!channel> <@U0OTHER> coredns lookups fail in pods")
        .await;
    let ack = bot
        .emu
        .wait_ack(&pushed.envelope_id, crate::WAIT)
        .await
        .expect("acknowledged");
    let payload = ack.payload.expect("private answer");
    assert_pings_nobody("private answer", std::slice::from_ref(&payload));
    let (_, action_id, value) = buttons(&payload)
        .into_iter()
        .find(|b| b.0 == "Share in channel")
        .expect("share button");
    let ts = bot.emu.next_ts();
    bot.emu
        .push_block_action("C0HOSTILE", USER, &ts, None, &action_id, &value)
        .await;
    let posts = bot.emu.wait_calls("chat.postMessage", 1, crate::WAIT).await;
    let root = crate::shown(&posts[0].params);
    assert!(
        root.contains("&lt;!channel&gt;"),
        "the question is quoted, escaped:\n{root}"
    );
    bot.settle().await;
    assert_pings_nobody("shared answer", &bot.emu.messages("C0HOSTILE"));
    bot.stop().await;
}
