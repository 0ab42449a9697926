//! Hostile Socket Mode frames: malformed JSON, unknown envelope types, missing or mistyped fields,
//! absurd nesting and size. Each is logged; one that carries an envelope id is acknowledged (Slack
//! would otherwise re-send it, and it will not parse any better); nothing crashes the bot, and a
//! conversation right after them is answered as usual.

use std::time::Duration;

use netrunbook_testkit::driver::{self, incident_script, Load};
use netrunbook_testkit::process::Options;
use serde_json::json;

use crate::{options, Rig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_envelopes_are_logged_acknowledged_and_survived() {
    let mut rig = Rig::start(Options {
        rust_log: Some("debug".into()),
        ..options()
    })
    .await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let big = json!({"envelope_id": "hostile-big", "type": "events_api", "payload": {"event": {"type": "message", "text": "x".repeat(2_000_000)}}});
    // (frame, envelope id it carries, if any)
    let frames: Vec<(String, Option<&str>)> = vec![
        ("this is not JSON".into(), None),
        ("{".into(), None),
        ("[]".into(), None),
        ("null".into(), None),
        ("\u{0}\u{1}\u{fffd}".into(), None),
        (deep, None),
        (json!({"type": "events_api"}).to_string(), None),
        (json!({"envelope_id": "hostile-1", "type": "events_api"}).to_string(), Some("hostile-1")),
        (json!({"envelope_id": "hostile-2", "type": "events_api", "payload": "a string"}).to_string(), Some("hostile-2")),
        (json!({"envelope_id": "hostile-3", "type": "events_api", "payload": {"event": {"type": "app_mention"}}}).to_string(), Some("hostile-3")),
        (json!({"envelope_id": "hostile-4", "type": "a_type_from_the_future", "payload": {}}).to_string(), Some("hostile-4")),
        (json!({"envelope_id": "hostile-5", "type": "interactive", "payload": {"type": "block_actions", "actions": [{}]}}).to_string(), Some("hostile-5")),
        (json!({"envelope_id": "hostile-6", "type": "interactive", "payload": {"type": "view_submission"}}).to_string(), Some("hostile-6")),
        (json!({"envelope_id": "hostile-7", "type": "slash_commands", "payload": {}}).to_string(), Some("hostile-7")),
        (json!({"envelope_id": "hostile-8", "type": "slash_commands", "payload": {"command": "/netrunbook", "text": 42}}).to_string(), Some("hostile-8")),
        (json!({"envelope_id": 9, "type": "events_api", "payload": {}}).to_string(), None),
        (json!({"envelope_id": "hostile-10", "type": "events_api", "payload": {"type": "event_callback", "event_id": "Ev0HOSTILE", "event": {"type": "message", "channel": "C0H", "user": "U0H", "ts": "not-a-ts", "thread_ts": ["x"]}}}).to_string(), Some("hostile-10")),
        (json!({"envelope_id": "hostile-11", "type": "hello"}).to_string(), None),
        (json!({"type": "disconnect"}).to_string(), None),
        (big.to_string(), Some("hostile-big")),
    ];
    let connects = rig.emu.connects_total();
    for (frame, _) in &frames {
        rig.emu.push_raw(frame.clone()).await;
    }
    // the frames a bot can acknowledge are acknowledged; the bot is still there
    let mut not_acked = Vec::new();
    for (_, id) in &frames {
        if let Some(id) = id {
            if rig.emu.wait_ack(id, Duration::from_secs(10)).await.is_none() {
                not_acked.push(*id);
            }
        }
    }
    assert!(rig.bot().running(), "the bot survives:\n{}", rig.bot().log());
    let reconnects = rig.emu.connects_total() - connects;
    let warnings = rig.bot().log_lines("WARN").len() + rig.bot().log_lines("ERROR").len();
    evidence!(
        "hostile envelopes: {} frames ({} with an envelope id): not acknowledged {:?}; reconnects caused {reconnects}; WARN/ERROR log lines {warnings}",
        frames.len(),
        frames.iter().filter(|f| f.1.is_some()).count(),
        not_acked
    );
    assert!(not_acked.is_empty(), "acknowledged: {not_acked:?}");
    // and it goes on answering
    let script = incident_script();
    let expect = rig
        .tracker
        .calibrate("CHOSTILE-CALIBRATE", &script, Duration::from_secs(20))
        .await;
    let load = Load {
        conversations: 3,
        sessions: 3,
        rate: None,
        timeout: Duration::from_secs(20),
        prefix: "CHOSTILE".into(),
    };
    let r = driver::run(&rig.tracker, &script, &expect, &load).await;
    assert_eq!(r.error_count(), 0, "{:?}", r.errors);
    let log = rig.bot().log();
    assert!(!log.contains("panicked"), "{log}");
    rig.stop().await;
}
