//! The Slack app manifest (`manifest.yaml`): valid against Slack's published schema
//! (`tests/data/slack-manifest-schema/`, JSON Schema draft 7, MIT), and in step with the code — every event the
//! bot handles is subscribed, every scope it needs is granted, and nothing more.
//!
//! What the schema itself accepts is Slack's business, not tested here; the validity test only makes sure the
//! validator rejects an empty manifest, so that it cannot pass vacuously.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use jsonschema::Validator;
use serde_json::{json, Value};

const MANIFEST: &str = include_str!("../../manifest.yaml");
const SCHEMA: &str = include_str!("../data/slack-manifest-schema/manifest.schema.1.0.0.json");

/// Bot events the code handles, from the code itself.
fn subscribed_events() -> Vec<&'static str> {
    netrunbook::slack::subscribed_events()
}

/// Bot scopes the code needs (its events, its Web API calls, the slash command), from the code itself.
fn required_scopes() -> Vec<&'static str> {
    netrunbook::slack::required_scopes().into_iter().collect()
}

static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the Slack manifest schema is JSON");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    jsonschema::draft7::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the Slack manifest schema compiles")
});

fn manifest() -> Value {
    serde_yaml_ng::from_str(MANIFEST).expect("manifest.yaml is YAML that maps to JSON")
}

/// Every schema violation, as `(instance path, message)`.
fn violations(instance: &Value) -> Vec<(String, String)> {
    VALIDATOR
        .iter_errors(instance)
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect()
}

fn strings(v: &Value) -> BTreeSet<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("expected a string, got {s}")))
        .collect()
}

/// `actual` equals `wanted`; otherwise say what is missing and what is extra.
fn assert_same_set(what: &str, actual: &BTreeSet<&str>, wanted: &[&str]) {
    let wanted: BTreeSet<&str> = wanted.iter().copied().collect();
    let missing: Vec<_> = wanted.difference(actual).collect();
    let extra: Vec<_> = actual.difference(&wanted).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, not needed by the code {extra:?}"
    );
}

#[test]
fn manifest_is_valid_against_slacks_schema() {
    let errors = violations(&manifest());
    assert!(errors.is_empty(), "manifest.yaml violates Slack's schema: {errors:#?}");
    // the validator does validate: an empty manifest lacks the app's name
    let empty = violations(&json!({}));
    assert!(
        empty.iter().any(|(_, msg)| msg.contains("display_information")),
        "the schema accepted an empty manifest: {empty:#?}"
    );
}

#[test]
fn every_handled_event_is_subscribed_and_nothing_more() {
    let m = manifest();
    let events = &m["settings"]["event_subscriptions"];
    assert_same_set(
        "settings.event_subscriptions.bot_events",
        &strings(&events["bot_events"]),
        &subscribed_events(),
    );
    assert!(
        events.get("user_events").is_none(),
        "the bot acts for no user: no user_events"
    );
    assert!(
        events.get("request_url").is_none(),
        "Socket Mode: events come over the socket, no request_url"
    );
}

#[test]
fn every_needed_scope_is_granted_and_nothing_more() {
    let m = manifest();
    let scopes = &m["oauth_config"]["scopes"];
    assert_same_set("oauth_config.scopes.bot", &strings(&scopes["bot"]), &required_scopes());
    for other in ["user", "user_optional", "bot_optional"] {
        assert!(scopes.get(other).is_none(), "no {other} scopes: the bot needs none");
    }
}

#[test]
fn socket_mode_with_interactivity_and_no_request_urls() {
    let m = manifest();
    let settings = &m["settings"];
    assert_eq!(settings["socket_mode_enabled"], true, "settings.socket_mode_enabled");
    assert_eq!(
        settings["interactivity"]["is_enabled"], true,
        "buttons need settings.interactivity.is_enabled"
    );
    assert_eq!(
        settings["token_rotation_enabled"], false,
        "the bot token is long-lived: no rotation"
    );
    for (path, v) in [
        (
            "settings.interactivity.request_url",
            &settings["interactivity"]["request_url"],
        ),
        (
            "settings.interactivity.message_menu_options_url",
            &settings["interactivity"]["message_menu_options_url"],
        ),
        ("oauth_config.redirect_urls", &m["oauth_config"]["redirect_urls"]),
    ] {
        assert!(v.is_null(), "Socket Mode: {path} must not be set, found {v}");
    }
}

#[test]
fn the_slash_command_is_netrunbook_with_a_usage_hint() {
    let m = manifest();
    let commands = m["features"]["slash_commands"]
        .as_array()
        .expect("features.slash_commands");
    assert_eq!(commands.len(), 1, "one slash command: {commands:?}");
    let c = &commands[0];
    assert_eq!(c["command"], netrunbook::slack::SLASH_COMMAND.0);
    assert!(
        c["description"].as_str().is_some_and(|d| !d.trim().is_empty()),
        "a description"
    );
    assert!(
        c["usage_hint"].as_str().is_some_and(|h| !h.trim().is_empty()),
        "a usage hint"
    );
    assert!(
        c.get("url").is_none(),
        "Socket Mode: commands come over the socket, no url"
    );
}

#[test]
fn the_app_has_a_bot_user_and_a_name() {
    let m = manifest();
    assert_eq!(m["display_information"]["name"], "netrunbook");
    assert!(
        m["display_information"]["description"].is_string(),
        "a short description"
    );
    assert!(
        m["features"]["bot_user"]["display_name"].is_string(),
        "a bot user: events and chat:write need one"
    );
}

#[test]
fn the_message_shortcut_is_declared_with_the_callback_the_code_reads() {
    let m = manifest();
    let shortcuts = m["features"]["shortcuts"].as_array().expect("features.shortcuts");
    assert_eq!(shortcuts.len(), 1, "one shortcut: {shortcuts:?}");
    let s = &shortcuts[0];
    assert_eq!(s["type"], "message");
    assert_eq!(s["callback_id"], netrunbook::slack::MESSAGE_SHORTCUT);
    assert_eq!(s["name"], "Find the runbook section");
    assert!(s["description"].as_str().is_some_and(|d| !d.trim().is_empty()));
}
