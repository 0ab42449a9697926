//! Self-tests of the Slack emulator (`netrunbook_testkit::slack_emulator`): a raw WebSocket client
//! and hand-written HTTP requests check the wire format, and slack-morphism's own Socket Mode
//! listener and Web API client check that the library the bot uses gets along with it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use netrunbook_testkit::slack_emulator::{Fault, SlackEmulator, APP_ID, BOT_ID, BOT_USER_ID, DISCONNECT_GRACE};
use serde_json::{json, Value};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for anything that should happen at once; no test waits this long when it passes.
const WAIT: Duration = Duration::from_secs(5);
const APP_TOKEN: &str = "xapp-1-A0EMU-1-selftest";
const BOT_TOKEN: &str = "xoxb-0-selftest";

// ---------------------------------------------------------------------------------------------
// Raw clients

/// The answer to a hand-written HTTP/1.1 request.
struct RawResponse {
    status: u16,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("JSON body ({e}): {}", self.body))
    }
}

/// Sends one request with `Connection: close` and reads the whole answer.
async fn http_request(url: &str, method: &str, headers: &[(&str, &str)], body: &str) -> RawResponse {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);

    let raw = timeout(WAIT, async {
        let mut stream = TcpStream::connect(authority).await.expect("connect to the emulator");
        stream.write_all(request.as_bytes()).await.expect("write the request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read the answer");
        raw
    })
    .await
    .expect("an HTTP answer within 5 s");

    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header/body separator");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a Socket Mode connection the way an app does; returns it with the `hello` frame and the
/// URL it was opened with.
async fn open_raw_socket(emulator: &SlackEmulator) -> (RawSocket, Value, String) {
    let opened = http_request(
        &format!("{}/apps.connections.open", emulator.api_url()),
        "POST",
        &[("Authorization", &bearer(APP_TOKEN))],
        "",
    )
    .await;
    assert_eq!(opened.status, 200);
    assert!(opened
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    let url = opened.json()["url"].as_str().expect("a url").to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    let (mut socket, _) = timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .expect("WebSocket handshake within 5 s")
        .expect("WebSocket handshake");
    let hello = next_json(&mut socket).await;
    (socket, hello, url)
}

/// The next text frame as JSON, skipping pings and pongs.
async fn next_json(socket: &mut RawSocket) -> Value {
    loop {
        match timeout(WAIT, socket.next()).await.expect("a frame within 5 s") {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).expect("a JSON frame"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn raw_client_gets_hello_and_an_event_and_its_ack_is_recorded() {
    let emulator = SlackEmulator::start().await;
    let (mut socket, hello, url) = open_raw_socket(&emulator).await;

    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["num_connections"], 1);
    assert_eq!(hello["connection_info"]["app_id"], APP_ID);
    assert!(hello["debug_info"]["host"].is_string());
    assert!(emulator.wait_connected(1, WAIT).await);
    assert_eq!((emulator.connection_count(), emulator.connects_total()), (1, 1));

    let event = SlackEmulator::user_event("app_mention", "C1", "U1", "1700000000.000001", None, "<@UBOT> help");
    let pushed = emulator.push_event(event.clone()).await;
    let envelope = next_json(&mut socket).await;
    assert_eq!(envelope["type"], "events_api");
    assert_eq!(envelope["envelope_id"], pushed.envelope_id.as_str());
    assert_eq!(envelope["accepts_response_payload"], false);
    assert_eq!(envelope["retry_attempt"], 0);
    assert_eq!(envelope["payload"]["type"], "event_callback");
    assert_eq!(envelope["payload"]["event_id"], pushed.event_id.as_deref().unwrap());
    assert_eq!(envelope["payload"]["api_app_id"], APP_ID);
    assert_eq!(envelope["payload"]["event"], event);

    let ack = json!({"envelope_id": pushed.envelope_id}).to_string();
    socket.send(Message::text(ack)).await.expect("send the ack");
    let ack = emulator
        .wait_ack(&pushed.envelope_id, WAIT)
        .await
        .expect("the ack is recorded");
    assert_eq!(ack.connection, pushed.connection);
    assert_eq!(ack.payload, None);
    assert!(ack.at >= pushed.at);

    // Tickets are single-use, as Slack's are.
    let reused = timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .expect("an answer");
    assert!(reused.is_err(), "a used ticket must be refused");

    let opens = emulator.calls_to("apps.connections.open");
    assert_eq!(opens.len(), 1);
    assert_eq!(opens[0].token_kind.as_deref(), Some("xapp"));
    assert_eq!(opens[0].http_method, "POST");
}

#[tokio::test]
async fn disconnect_sends_the_frame_stops_delivery_and_closes_after_the_grace() {
    let emulator = SlackEmulator::start().await;
    let (mut socket, _, _) = open_raw_socket(&emulator).await;
    assert!(emulator.wait_connected(1, WAIT).await);

    let told_at = Instant::now();
    assert_eq!(emulator.disconnect("refresh_requested").await, 1);
    let frame = next_json(&mut socket).await;
    assert_eq!(frame["type"], "disconnect");
    assert_eq!(frame["reason"], "refresh_requested");
    assert!(frame["debug_info"]["host"].is_string());
    assert_eq!(
        emulator.connection_count(),
        0,
        "a disconnected connection gets no more envelopes"
    );

    match timeout(WAIT, socket.next()).await.expect("a close within 5 s") {
        Some(Ok(Message::Close(_))) => {}
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(told_at.elapsed() >= DISCONNECT_GRACE);
}

#[tokio::test]
async fn unacked_events_are_retried_with_the_same_event_id_until_acked() {
    let emulator = SlackEmulator::start().await;
    emulator.retry_unacked_events(Some(Duration::from_millis(200)));
    let (mut socket, _, _) = open_raw_socket(&emulator).await;
    assert!(emulator.wait_connected(1, WAIT).await);

    let event = SlackEmulator::user_event("message", "C1", "U1", "1700000000.000001", None, "hi");
    let pushed = emulator.push_event(event).await;
    let first = next_json(&mut socket).await;
    let retry = next_json(&mut socket).await; // not acking the first one
    assert_eq!(first["envelope_id"], pushed.envelope_id.as_str());
    assert_eq!(retry["payload"]["event_id"], first["payload"]["event_id"]);
    assert_ne!(retry["envelope_id"], first["envelope_id"]);
    assert_eq!(retry["retry_attempt"], 1);
    assert_eq!(retry["retry_reason"], "timeout");

    let ack = json!({"envelope_id": retry["envelope_id"]}).to_string();
    socket.send(Message::text(ack)).await.expect("send the ack");
    let quiet = timeout(Duration::from_millis(600), next_json(&mut socket)).await;
    assert!(quiet.is_err(), "an acked event is not retried: {quiet:?}");
}

#[tokio::test]
async fn an_event_goes_to_the_connection_asked_for_and_retries_follow_the_schedule() {
    let emulator = SlackEmulator::start().await;
    let before = emulator.last_connection();
    let (mut first, _, _) = open_raw_socket(&emulator).await;
    let (mut second, _, _) = open_raw_socket(&emulator).await;
    assert!(emulator.wait_connected(2, WAIT).await);
    let live = emulator.live_connections();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|c| *c > before));
    let (one, two) = (live[0], live[1]);

    // to the connection asked for, however often: no round robin
    let event = SlackEmulator::user_event("message", "C1", "U1", "1700000000.000001", None, "hi");
    for _ in 0..2 {
        let pushed = emulator.push_event_on(two, event.clone()).await;
        assert_eq!(pushed.connection, two);
        assert_eq!(next_json(&mut second).await["envelope_id"], pushed.envelope_id.as_str());
    }
    let retry = emulator
        .push_event_with_id_on(one, "Ev0SCHEDULE", 1, event.clone())
        .await;
    let frame = next_json(&mut first).await;
    assert_eq!(frame["envelope_id"], retry.envelope_id.as_str());
    assert_eq!(
        (frame["payload"]["event_id"].as_str(), frame["retry_attempt"].as_u64()),
        (Some("Ev0SCHEDULE"), Some(1))
    );

    // unacked: retried after each wait of the schedule, round robin, at most three times in all
    let waits = [
        Duration::from_millis(100),
        Duration::from_millis(400),
        Duration::from_millis(100),
    ];
    emulator.retry_unacked_events_after(&waits);
    let pushed = emulator.push_event_on(one, event).await;
    let started = Instant::now();
    assert_eq!(next_json(&mut first).await["envelope_id"], pushed.envelope_id.as_str());
    let mut frames = Vec::new();
    while frames.len() < 3 {
        tokio::select! {
            f = next_json(&mut first) => frames.push((f, Instant::now())),
            f = next_json(&mut second) => frames.push((f, Instant::now())),
        }
    }
    let attempts: Vec<u64> = frames
        .iter()
        .map(|(f, _)| f["retry_attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(frames
        .iter()
        .all(|(f, _)| f["payload"]["event_id"] == pushed.event_id.as_deref().unwrap()));
    assert!(
        frames[1].1 - frames[0].1 >= waits[1],
        "the second wait is the schedule's"
    );
    assert!(frames[0].1 - started >= waits[0]);
    let quiet = tokio::select! {
        f = timeout(Duration::from_millis(600), next_json(&mut first)) => f.is_err(),
        f = timeout(Duration::from_millis(600), next_json(&mut second)) => f.is_err(),
    };
    assert!(quiet, "no fourth retry");
    let retries = emulator.retries();
    assert_eq!(retries.len(), 3);
    let delivered: Vec<String> = emulator.delivered().into_iter().map(|d| d.envelope_id).collect();
    assert_eq!(
        delivered.len(),
        7,
        "three pushes on connections asked for, one more, three retries"
    );
    assert!(retries.iter().all(|r| delivered.contains(&r.envelope_id)));
    assert!(frames
        .iter()
        .all(|(f, _)| retries.iter().any(|r| f["envelope_id"] == r.envelope_id.as_str())));
}

#[tokio::test]
async fn form_encoded_post_is_recorded_stored_and_echoed_as_a_bot_message_event() {
    let emulator = SlackEmulator::start().await;
    emulator.set_echo_bot_messages(true);
    let (mut socket, _, _) = open_raw_socket(&emulator).await;
    assert!(emulator.wait_connected(1, WAIT).await);

    let answer = http_request(
        &format!("{}/chat.postMessage", emulator.api_url()),
        "POST",
        &[
            ("Authorization", &bearer(BOT_TOKEN)),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "channel=C1&text=hello+there%21&thread_ts=1700000000.000001",
    )
    .await
    .json();
    assert_eq!(answer["ok"], true);
    let ts = answer["ts"].as_str().expect("a ts");

    let call = &emulator.calls_to("chat.postMessage")[0];
    assert_eq!(call.param("text"), Some("hello there!"));
    assert_eq!(call.param("thread_ts"), Some("1700000000.000001"));
    assert_eq!(call.token_kind.as_deref(), Some("xoxb"));
    assert!(call.params.get("token").is_none());
    assert_eq!(emulator.messages("C1")[0]["ts"], ts);

    let echoed = next_json(&mut socket).await;
    let event = &echoed["payload"]["event"];
    assert_eq!(event["type"], "message");
    assert_eq!(
        (event["bot_id"].as_str(), event["user"].as_str()),
        (Some(BOT_ID), Some(BOT_USER_ID))
    );
    assert_eq!(
        (event["ts"].as_str(), event["thread_ts"].as_str()),
        (Some(ts), Some("1700000000.000001"))
    );
}

#[tokio::test]
async fn web_api_checks_tokens_methods_and_block_kit_limits() {
    let emulator = SlackEmulator::start().await;
    let api = emulator.api_url();
    let post = |method: &'static str, token: Option<&'static str>, body: Value| {
        let url = format!("{api}/{method}");
        async move {
            let auth = token.map(bearer);
            let mut headers = vec![("Content-Type", "application/json; charset=utf-8")];
            if let Some(auth) = auth.as_deref() {
                headers.push(("Authorization", auth));
            }
            http_request(&url, "POST", &headers, &body.to_string()).await.json()["error"].clone()
        }
    };
    let text = json!({"channel": "C1", "text": "hi"});

    assert_eq!(post("chat.postMessage", None, text.clone()).await, "not_authed");
    assert_eq!(
        post("chat.postMessage", Some("bogus"), text.clone()).await,
        "invalid_auth"
    );
    assert_eq!(
        post("chat.postMessage", Some(APP_TOKEN), text.clone()).await,
        "not_allowed_token_type"
    );
    assert_eq!(
        post("apps.connections.open", Some(BOT_TOKEN), json!({})).await,
        "not_allowed_token_type"
    );
    assert_eq!(
        post("reactions.add", Some(BOT_TOKEN), json!({})).await,
        "unknown_method"
    );
    assert_eq!(
        post("chat.postMessage", Some(BOT_TOKEN), json!({"channel": "C1"})).await,
        "no_text"
    );
    let long_section = json!({"channel": "C1", "text": "x", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "a".repeat(3001)}}
    ]});
    assert_eq!(
        post("chat.postMessage", Some(BOT_TOKEN), long_section).await,
        "invalid_blocks"
    );
    let fine_section = json!({"channel": "C1", "text": "x", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "a".repeat(3000)}}
    ]});
    assert_eq!(
        post("chat.postMessage", Some(BOT_TOKEN), fine_section).await,
        Value::Null
    );

    let invalid = &emulator.calls_to("chat.postMessage")[4];
    assert_eq!(
        invalid.params["blocks"][0]["type"], "section",
        "JSON bodies are recorded parsed"
    );
    assert_eq!(emulator.calls().len(), 8);
}

// ---------------------------------------------------------------------------------------------
// slack-morphism

/// Where the listener's callbacks report what they saw; read back with `next_seen`.
struct Seen(mpsc::UnboundedSender<String>);

async fn report(states: &SlackClientEventsUserState, what: String) {
    if let Some(Seen(seen)) = states.read().await.get_user_state::<Seen>() {
        let _ = seen.send(what);
    }
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let what = match &event.event {
        SlackEventCallbackBody::AppMention(mention) => format!(
            "mention {} {}",
            event.event_id.value(),
            mention.content.text.as_deref().unwrap_or_default()
        ),
        other => format!("other event {other:?}"),
    };
    report(&states, what).await;
    Ok(())
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let what = format!(
        "command {} {} {}",
        event.command.value(),
        event.text.as_deref().unwrap_or_default(),
        event.response_url.value()
    );
    report(&states, what).await;
    Ok(
        SlackCommandEventResponse::new(SlackMessageContent::new().with_text("on it".into()))
            .with_response_type(SlackMessageResponseType::Ephemeral),
    )
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let what = match &event {
        SlackInteractionEvent::BlockActions(click) => {
            let action = &click.actions.as_ref().expect("actions")[0];
            format!(
                "click {} {} block={} message={}",
                action.action_id.value(),
                action.value.as_deref().unwrap_or_default(),
                action.block_id.as_ref().map(|b| b.value().as_str()).unwrap_or_default(),
                click
                    .message
                    .as_ref()
                    .and_then(|m| m.content.text.as_deref())
                    .unwrap_or_default()
            )
        }
        other => format!("other interaction {other:?}"),
    };
    report(&states, what).await;
    Ok(())
}

fn on_error(
    error: Box<dyn std::error::Error + Send + Sync>,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    eprintln!("slack-morphism listener error: {error}");
    HttpStatusCode::BAD_REQUEST
}

/// slack-morphism's client pointed at the emulator, built as NOTES.md says (plain-HTTP capable).
fn client(emulator: &SlackEmulator) -> Arc<SlackHyperClient> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .expect("native root certificates")
        .https_or_http()
        .enable_http1()
        .build();
    let connector = SlackClientHyperConnector::from(https).with_slack_api_url(&emulator.api_url());
    Arc::new(SlackClient::new(connector))
}

async fn start_listener(
    emulator: &SlackEmulator,
    connections: u32,
) -> (
    SlackClientSocketModeListener<SlackClientHyperHttpsConnector>,
    mpsc::UnboundedReceiver<String>,
) {
    let (seen, reports) = mpsc::unbounded_channel();
    let environment = Arc::new(
        SlackClientEventsListenerEnvironment::new(client(emulator))
            .with_error_handler(on_error)
            .with_user_state(Seen(seen)),
    );
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_push_events(on_push)
        .with_command_events(on_command)
        .with_interaction_events(on_interaction);
    let config = SlackClientSocketModeConfig::new()
        .with_max_connections_count(connections)
        .with_initial_backoff_in_seconds(0);
    let listener = SlackClientSocketModeListener::new(&config, environment, callbacks);
    listener
        .listen_for(&SlackApiToken::new(APP_TOKEN.into()))
        .await
        .expect("register the app token");
    listener.start().await;
    (listener, reports)
}

async fn next_seen(reports: &mut mpsc::UnboundedReceiver<String>) -> String {
    timeout(WAIT, reports.recv())
        .await
        .expect("a callback within 5 s")
        .expect("the listener is alive")
}

#[tokio::test]
async fn slack_morphism_listener_acks_event_command_and_click_and_reconnects() {
    let emulator = SlackEmulator::start().await;
    let (listener, mut seen) = start_listener(&emulator, 1).await;
    assert!(emulator.wait_connected(1, WAIT).await);
    assert_eq!(
        emulator.calls_to("apps.connections.open")[0].token_kind.as_deref(),
        Some("xapp")
    );

    // A mention.
    let post = emulator
        .post_user_message("C1", "U1", "<@UBOT> my LB is stuck", None, &["app_mention"])
        .await;
    let mention = &post.pushed[0];
    assert_eq!(
        next_seen(&mut seen).await,
        format!(
            "mention {} <@UBOT> my LB is stuck",
            mention.event_id.as_deref().unwrap()
        )
    );
    let ack = emulator
        .wait_ack(&mention.envelope_id, WAIT)
        .await
        .expect("the event is acked");
    assert_eq!(ack.payload, None);

    // A slash command: the ack carries the immediate answer, the response_url reaches us.
    let slash = emulator.push_slash("C1", "U1", "lb pending").await;
    let response_url = emulator.response_url(&slash.envelope_id);
    assert_eq!(
        next_seen(&mut seen).await,
        format!("command /netrunbook lb pending {response_url}")
    );
    let ack = emulator
        .wait_ack(&slash.envelope_id, WAIT)
        .await
        .expect("the command is acked");
    let payload = ack.payload.expect("an ack payload");
    assert_eq!(
        (payload["text"].as_str(), payload["response_type"].as_str()),
        (Some("on it"), Some("ephemeral"))
    );

    let bot = client(&emulator);
    let url: SlackResponseUrl = serde_json::from_value(json!(response_url)).expect("a URL");
    let followup = SlackApiPostWebhookMessageRequest::new(SlackMessageContent::new().with_text("done".into()));
    bot.respond_to_event(&url, &followup)
        .await
        .expect("post to the response_url");
    assert_eq!(
        emulator.responses(),
        vec![(slash.envelope_id.clone(), json!({"text": "done"}))]
    );

    // A click on a button of a message the bot posted with slack-morphism's Block Kit types.
    let token = SlackApiToken::new(BOT_TOKEN.into());
    let button = SlackBlockButtonElement::new("Yes".into())
        .with_action_id("resolve".into())
        .with_value("yes".into());
    let blocks = vec![
        SlackBlock::from(
            SlackSectionBlock::new()
                .with_block_id("question".into())
                .with_text(SlackBlockMarkDownText::new("Is it resolved?".into()).into()),
        ),
        SlackBlock::from(
            SlackActionsBlock::new(vec![SlackActionBlockElement::Button(button)]).with_block_id("answers".into()),
        ),
    ];
    let question = bot
        .open_session(&token)
        .chat_post_message(
            &SlackApiChatPostMessageRequest::new(
                "C1".into(),
                SlackMessageContent::new()
                    .with_text("Is it resolved?".into())
                    .with_blocks(blocks),
            )
            .with_thread_ts(post.ts.clone().into()),
        )
        .await
        .expect("post the question");
    let click = emulator
        .push_block_action("C1", "U1", question.ts.value(), Some(&post.ts), "resolve", "yes")
        .await;
    assert_eq!(
        next_seen(&mut seen).await,
        "click resolve yes block=answers message=Is it resolved?"
    );
    assert!(
        emulator.wait_ack(&click.envelope_id, WAIT).await.is_some(),
        "the click is acked"
    );

    // `disconnect` makes slack-morphism open a new connection at once.
    assert_eq!(emulator.disconnect("refresh_requested").await, 1);
    assert!(emulator.wait_connected(1, WAIT).await, "reconnected after disconnect");
    assert_eq!(emulator.connects_total(), 2);
    let event = SlackEmulator::user_event("app_mention", "C1", "U1", &emulator.next_ts(), None, "<@UBOT> again");
    let again = emulator.push_event(event).await;
    assert!(next_seen(&mut seen).await.ends_with("<@UBOT> again"));
    let ack = emulator
        .wait_ack(&again.envelope_id, WAIT)
        .await
        .expect("acked on the new connection");
    assert_eq!(ack.connection, again.connection);
    assert_ne!(again.connection, mention.connection);

    // So does a connection reset without a close frame.
    assert_eq!(emulator.drop_sockets().await, 1);
    assert!(emulator.wait_connected(1, WAIT).await, "reconnected after a reset");
    assert_eq!(emulator.connects_total(), 3);
    let event = SlackEmulator::user_event("app_mention", "C1", "U1", &emulator.next_ts(), None, "<@UBOT> third");
    let third = emulator.push_event(event).await;
    assert!(next_seen(&mut seen).await.ends_with("<@UBOT> third"));
    assert!(emulator.wait_ack(&third.envelope_id, WAIT).await.is_some());

    listener.shutdown().await;
}

#[tokio::test]
async fn slack_morphism_acks_unknown_envelopes_and_survives_garbage() {
    let emulator = SlackEmulator::start().await;
    let (listener, mut seen) = start_listener(&emulator, 1).await;
    assert!(emulator.wait_connected(1, WAIT).await);

    emulator.push_raw("this is not JSON").await;
    let unknown = json!({"envelope_id": "raw-1", "type": "bogus", "accepts_response_payload": false, "payload": {}});
    emulator.push_raw(unknown.to_string()).await;
    let ack = emulator.wait_ack("raw-1", WAIT).await;
    assert!(
        ack.is_some(),
        "slack-morphism acks an envelope it cannot parse, so Slack does not resend it"
    );

    // An event type slack-morphism does not model reaches the callback as `Unknown`.
    let pin = json!({"type": "pin_added", "user": "U1", "channel_id": "C1", "event_ts": emulator.next_ts()});
    let pushed = emulator.push_event(pin).await;
    assert!(next_seen(&mut seen).await.starts_with("other event Unknown("));
    assert!(emulator.wait_ack(&pushed.envelope_id, WAIT).await.is_some());
    assert_eq!(emulator.connects_total(), 1, "garbage does not cost the connection");

    listener.shutdown().await;
}

#[tokio::test]
async fn slack_morphism_listener_with_two_connections_gets_envelopes_round_robin() {
    let emulator = SlackEmulator::start().await;
    let (listener, mut seen) = start_listener(&emulator, 2).await;
    assert!(emulator.wait_connected(2, WAIT).await);

    let mut pushed = Vec::new();
    for i in 0..4 {
        let event = SlackEmulator::user_event("app_mention", "C1", "U1", &emulator.next_ts(), None, &format!("#{i}"));
        pushed.push(emulator.push_event(event).await);
    }
    for _ in 0..4 {
        next_seen(&mut seen).await;
    }
    let mut per_connection = std::collections::BTreeMap::new();
    for p in &pushed {
        let ack = emulator.wait_ack(&p.envelope_id, WAIT).await.expect("acked");
        assert_eq!(ack.connection, p.connection, "acked on the connection that carried it");
        *per_connection.entry(p.connection).or_insert(0) += 1;
    }
    assert_eq!(per_connection.values().collect::<Vec<_>>(), vec![&2, &2]);

    listener.shutdown().await;
}

#[tokio::test]
async fn slack_morphism_client_posts_reads_threads_and_sees_faults() {
    let emulator = SlackEmulator::start().await;
    let bot = client(&emulator);
    let token = SlackApiToken::new(BOT_TOKEN.into());
    let session = bot.open_session(&token);

    let identity = session.auth_test().await.expect("auth.test");
    assert_eq!(
        (
            identity.user_id.value().as_str(),
            identity.bot_id.as_ref().map(|b| b.value().as_str())
        ),
        (BOT_USER_ID, Some(BOT_ID))
    );

    let root = emulator.next_ts();
    emulator.add_message("C1", &root, None, "U1", "my LB is broken");
    let reply = |text: &str| {
        SlackApiChatPostMessageRequest::new("C1".into(), SlackMessageContent::new().with_text(text.into()))
            .with_thread_ts(root.clone().into())
    };
    let posted = session
        .chat_post_message(&reply("Which cluster?"))
        .await
        .expect("chat.postMessage");
    assert!(
        posted.ts.value().as_str() > root.as_str(),
        "ts increase: {} after {root}",
        posted.ts.value()
    );

    let call = &emulator.wait_calls("chat.postMessage", 1, WAIT).await[0];
    assert_eq!(
        (call.param("text"), call.param("thread_ts")),
        (Some("Which cluster?"), Some(root.as_str()))
    );
    assert_eq!(call.token_kind.as_deref(), Some("xoxb"));
    assert!(call
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("application/json")));

    let thread = session
        .conversations_replies(&SlackApiConversationsRepliesRequest::new(
            "C1".into(),
            root.clone().into(),
        ))
        .await
        .expect("conversations.replies");
    let texts: Vec<_> = thread
        .messages
        .iter()
        .map(|m| m.content.text.clone().unwrap_or_default())
        .collect();
    assert_eq!(texts, vec!["my LB is broken", "Which cluster?"]);
    assert_eq!(
        thread.messages[1].sender.bot_id.as_ref().map(|b| b.value().as_str()),
        Some(BOT_ID)
    );

    let updated = session
        .chat_update(&SlackApiChatUpdateRequest::new(
            "C1".into(),
            SlackMessageContent::new().with_text("Which cluster is it?".into()),
            posted.ts.clone(),
        ))
        .await
        .expect("chat.update");
    assert_eq!(updated.ts, posted.ts);
    assert_eq!(emulator.messages("C1")[1]["text"], "Which cluster is it?");

    // 429 with Retry-After: slack-morphism (without rate control) reports it and does not retry.
    emulator.fail_next("chat.postMessage", Fault::RateLimited { retry_after_secs: 1 });
    match session.chat_post_message(&reply("again")).await {
        Err(SlackClientError::RateLimitError(limited)) => {
            assert_eq!(limited.retry_after, Some(Duration::from_secs(1)))
        }
        other => panic!("expected a rate limit error, got {other:?}"),
    }
    emulator.fail_next("chat.postMessage", Fault::RateLimited { retry_after_secs: 1 });
    let raw = http_request(
        &format!("{}/chat.postMessage", emulator.api_url()),
        "POST",
        &[
            ("Authorization", &bearer(BOT_TOKEN)),
            ("Content-Type", "application/json"),
        ],
        r#"{"channel":"C1","text":"raw"}"#,
    )
    .await;
    assert_eq!((raw.status, raw.header("retry-after")), (429, Some("1")));
    assert_eq!(raw.json()["error"], "ratelimited");

    emulator.fail_next("chat.postMessage", Fault::Status(500));
    match session.chat_post_message(&reply("again")).await {
        Err(SlackClientError::HttpError(error)) => assert_eq!(error.status_code.as_u16(), 500),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    emulator.fail_next("chat.postMessage", Fault::SlackError("channel_not_found".into()));
    match session.chat_post_message(&reply("again")).await {
        Err(SlackClientError::ApiError(error)) => assert_eq!(error.code, "channel_not_found"),
        other => panic!("expected an API error, got {other:?}"),
    }
    emulator.fail_next("chat.postMessage", Fault::Hang(Duration::from_millis(300)));
    let started = Instant::now();
    session
        .chat_post_message(&reply("slow"))
        .await
        .expect("a slow post still succeeds");
    assert!(started.elapsed() >= Duration::from_millis(300));

    let faults: Vec<_> = emulator
        .calls_to("chat.postMessage")
        .into_iter()
        .map(|c| c.fault)
        .collect();
    assert_eq!(faults.len(), 6, "faulted calls are recorded too");
    assert_eq!(faults[0], None);
    assert_eq!(faults[5], Some(Fault::Hang(Duration::from_millis(300))));
    let texts: Vec<_> = emulator.messages("C1").iter().map(|m| m["text"].clone()).collect();
    assert_eq!(
        texts,
        vec![json!("my LB is broken"), json!("Which cluster is it?"), json!("slow")]
    );
}
