//! Alerts posted by other apps in a channel opted in (`--alert-channels`), and the message shortcut
//! "Find the runbook section", against the emulator: what is answered, where, and what stays silent.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::*;

const ALERTS: &str = "C0ALERTS";
const GENERAL: &str = "C0GENERAL";
const PAGERDUTY: &str = "B0PAGERDUTY";
const WEBHOOK: &str = "B0ALERTMGR";

/// A bot reading alerts in [`ALERTS`], answering at most `limit` per window there.
async fn alert_bot(limit: usize) -> TestBot {
    spawn_bot_with(|s| {
        s.alerts.channels = BTreeSet::from([ALERTS.to_string()]);
        s.alerts.limit = limit;
    })
    .await
}

/// A PagerDuty post: nothing in `text`, the alert in an attachment's title, text, fields and fallback.
fn pagerduty(incident: u32, alert: &str) -> Value {
    json!({
        "username": "PagerDuty",
        "attachments": [{
            "fallback": format!("[Triggered] #{incident} {alert}"),
            "title": format!("[Triggered] #{incident}: {alert} on prod-dal10-carrier105"),
            "text": "Service: Alchemy - Containers Tribe - armada-network · Urgency: high",
            "color": "#d00",
            "fields": [{"title": "Assigned to", "value": "on-call", "short": true}],
        }],
    })
}

/// An Alertmanager post through an incoming webhook (`bot_message`).
fn alertmanager(minutes: u32) -> Value {
    json!({
        "subtype": "bot_message",
        "username": "Alertmanager",
        "attachments": [{
            "title": "[FIRING:1] KubeServiceLoadBalancerPending",
            "text": format!("Service default/web-lb of type LoadBalancer has had no external IP (EXTERNAL-IP <pending>) for {minutes} minutes\nseverity: warning"),
            "fallback": "[FIRING:1] KubeServiceLoadBalancerPending",
        }],
    })
}

/// Wait until no Web API call arrives, then the `chat.postMessage` calls in `channel`.
async fn posts_in(bot: &TestBot, channel: &str) -> Vec<Value> {
    bot.settle()
        .await
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.param("channel") == Some(channel))
        .map(|c| c.params.clone())
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn alerts_in_attachments_and_from_webhooks_are_answered_in_their_threads_and_the_flow_goes_on() {
    let bot = alert_bot(20).await;
    let pd = bot
        .emu
        .post_app_message(
            ALERTS,
            PAGERDUTY,
            "",
            pagerduty(4821, "armada-network_endpoint_scrape_failure"),
        )
        .await;
    bot.wait_thread(ALERTS, &pd.ts, "the scrape-failure answer in the alert's thread", |m| {
        shown_all(m).contains("Scrape Failure")
    })
    .await;
    let am = bot.emu.post_app_message(ALERTS, WEBHOOK, "", alertmanager(30)).await;
    let asked = bot
        .wait_thread(ALERTS, &am.ts, "the load balancer answer and its first question", |m| {
            m.iter().any(|x| !buttons(x).is_empty())
        })
        .await;
    assert!(shown_all(&asked).contains("Loadbalancer"), "{}", shown_all(&asked));
    // the thread works like a mention's: a reply in words answers the question
    let before = asked.len();
    bot.say(ALERTS, USER, "it's a VPC cluster", Some(&am.ts)).await;
    bot.wait_thread(ALERTS, &am.ts, "the next step after the answer", |m| m.len() > before)
        .await;
    bot.wait_metric(
        "netrunbook_alerts_total{outcome=\"answered\",intent=\"loadbalancer\"}",
        1.0,
    )
    .await;
    bot.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn what_is_not_an_alert_for_the_bot_stays_silent() {
    let bot = alert_bot(20).await;
    // the same alert in a channel not opted in
    bot.emu
        .post_app_message(
            GENERAL,
            PAGERDUTY,
            "",
            pagerduty(4822, "armada-network_endpoint_scrape_failure"),
        )
        .await;
    // an app's post that matches nothing: a deploy notice
    bot.emu
        .post_app_message(
            ALERTS,
            "B0ARGOCD",
            "Deploy of billing-api v2.3.1 to production finished successfully (sync 4f2a1c9, Healthy)",
            json!({}),
        )
        .await;
    // a person's message that does not mention the bot
    bot.say(ALERTS, USER, "calico-node is crash looping on carrier105 again", None)
        .await;
    assert!(posts_in(&bot, GENERAL).await.is_empty());
    assert!(
        posts_in(&bot, ALERTS).await.is_empty(),
        "nothing answered in the alert channel"
    );
    bot.wait_metric(
        "netrunbook_alerts_total{outcome=\"skipped_low_confidence\",intent=\"\"}",
        1.0,
    )
    .await;
    bot.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_refire_gets_a_pointer_a_redelivery_nothing_and_a_storm_one_line() {
    let bot = alert_bot(3).await;
    let first = bot
        .emu
        .post_app_message(
            ALERTS,
            PAGERDUTY,
            "",
            pagerduty(100, "armada-network_endpoint_scrape_failure"),
        )
        .await;
    bot.wait_thread(ALERTS, &first.ts, "the first answer", |m| !m.is_empty())
        .await;
    // Slack sends the same event again: answered once
    let event_id = first.pushed[0].event_id.clone().expect("an event id");
    let again = bot.emu.find_message(ALERTS, &first.ts).expect("the alert is stored");
    bot.emu.push_event_with_id(&event_id, 1, again).await;
    // the same alert fires again (another incident number): one line pointing to the first answer
    let refire = bot
        .emu
        .post_app_message(
            ALERTS,
            PAGERDUTY,
            "",
            pagerduty(101, "armada-network_endpoint_scrape_failure"),
        )
        .await;
    let pointer = bot
        .wait_thread(ALERTS, &refire.ts, "a pointer to the first answer", |m| !m.is_empty())
        .await;
    assert_eq!(pointer.len(), 1, "{}", shown_all(&pointer));
    let link = format!("p{}", first.ts.replace('.', ""));
    assert!(
        shown(&pointer[0]).contains("fired again") && pointer[0].to_string().contains(&link),
        "{}",
        pointer[0]
    );
    // a storm: with two answers in the window (the first and the pointer), one more reaches the
    // limit of 3, the next alert gets one holding-back line, the one after nothing
    let storm: Vec<UserPost> = {
        let mut v = Vec::new();
        for alert in [
            "armada-network-openvpnserver",
            "armada-network-konnectivityserver",
            "armada-network_endpoint_scrape_failure on a new carrier",
        ] {
            v.push(
                bot.emu
                    .post_app_message(ALERTS, PAGERDUTY, "", pagerduty(200, alert))
                    .await,
            );
        }
        v
    };
    let calls = bot.settle().await;
    let in_thread = |ts: &str| {
        calls
            .iter()
            .filter(|c| c.method == "chat.postMessage" && c.param("thread_ts") == Some(ts))
            .map(|c| shown(&c.params))
            .collect::<Vec<_>>()
    };
    assert_eq!(in_thread(&first.ts).len(), 1, "the redelivered alert is answered once");
    // alerts of different threads are handled concurrently: which of the three comes first is not
    // fixed, what they get is
    let mut got: Vec<&str> = storm
        .iter()
        .map(|p| match &in_thread(&p.ts)[..] {
            [] => "silence",
            [one] if one.contains("holding back") => "holding back",
            [_] => "answer",
            more => panic!("more than one post in an alert's thread: {more:?}"),
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, ["answer", "holding back", "silence"]);
    bot.wait_metric("netrunbook_duplicates_dropped_total{cause=\"redelivery\"}", 1.0)
        .await;
    bot.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_shortcut_answers_in_the_messages_thread_naming_who_asked() {
    let bot = spawn_bot_with(|s| s.access.channels = Some(BTreeSet::from([GENERAL.to_string()]))).await;
    let post = bot
        .say(
            GENERAL,
            USER,
            "calico-node keeps restarting on three workers since the update",
            None,
        )
        .await;
    bot.emu
        .push_message_shortcut(GENERAL, OTHER_USER, "find_runbook_section", &post.ts)
        .await;
    let msgs = bot
        .wait_thread(GENERAL, &post.ts, "the answer in the message's thread", |m| {
            m.len() >= 2
        })
        .await;
    let all = shown_all(&msgs);
    assert!(
        all.contains(&format!("<@{OTHER_USER}>")) && all.contains("calico-node"),
        "{all}"
    );
    // outside the allowed channels: the usual private note
    let elsewhere = bot.say("C0RANDOM", USER, "dns lookups fail in pods", None).await;
    bot.emu
        .push_message_shortcut("C0RANDOM", OTHER_USER, "find_runbook_section", &elsewhere.ts)
        .await;
    bot.wait_ephemeral(OTHER_USER, "do not answer in this channel").await;
    assert!(posts_in(&bot, "C0RANDOM").await.is_empty());
    bot.stop().await;
}
