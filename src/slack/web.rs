//! The Web API side: a slack-morphism client pointed at Slack (or an emulator) that delivers replies
//! with retries (the durable outbox around it is [`crate::outbox`] and the `Engine`). A 429 is waited out for its `Retry-After` and retried for as
//! long as it takes (a reply is never dropped for rate limiting); transient failures (timeouts,
//! connection errors, 5xx, Slack's `internal_error`...) are retried with exponential backoff, a bounded
//! number of times; everything is logged, tokens never, and counted in [`Metrics`] (failed attempts and
//! 429s, by method).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use secrecy::{ExposeSecret, SecretString};
use slack_morphism::errors::*;
use slack_morphism::prelude::*;
use tracing::{error, warn};

use super::blocks::{self, Rendered};
use super::SlackError;
use crate::bot::ThreadReader;
use crate::metrics::Metrics;
use crate::vocab::Identity;

type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

/// How Web API calls are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts for a call that keeps failing transiently (rate limits do not count).
    pub attempts: u32,
    /// First backoff; doubles each time up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// A call that takes longer is abandoned and counts as a transient failure.
    pub timeout: Duration,
    /// Used when a 429 carries no `Retry-After`.
    pub default_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(20),
            default_retry_after: Duration::from_secs(1),
        }
    }
}

/// Pages of a thread [`Web::read_thread`] reads at most (200 messages each).
const MAX_THREAD_PAGES: usize = 25;

/// What [`Web::read_thread`] found in a thread.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ThreadSeen {
    /// The [`crate::outbox`] marks on its messages: the posts that went out.
    pub marks: HashSet<String>,
    /// Per flow node, the `ts` of the newest message of the bot's that asks it with buttons: the
    /// message to mark answered when the question is answered in words.
    pub questions: HashMap<String, String>,
}

impl ThreadSeen {
    fn read(&mut self, m: &SlackHistoryMessage, me: &Identity) {
        let shown = m.content.blocks.as_deref().unwrap_or_default();
        self.marks.extend(
            shown
                .iter()
                .filter_map(blocks::block_id)
                .filter(|id| id.starts_with(crate::outbox::MARKER_PREFIX)),
        );
        let mine = m.sender.user.as_ref().is_some_and(|u| u.0 == me.user_id)
            || m.sender
                .bot_id
                .as_ref()
                .is_some_and(|b| Some(&b.0) == me.bot_id.as_ref());
        if !mine {
            return;
        }
        let ts = &m.origin.ts.0;
        for node in super::buttons::question_nodes(shown) {
            match self.questions.get_mut(&node) {
                Some(newest) if ts_order(newest) >= ts_order(ts) => {}
                Some(newest) => newest.clone_from(ts),
                None => {
                    self.questions.insert(node, ts.clone());
                }
            }
        }
    }
}

/// A message `ts` (`"1700000000.000100"`) as numbers, to order them.
fn ts_order(ts: &str) -> (u64, u64) {
    let (secs, micros) = ts.split_once('.').unwrap_or((ts, "0"));
    (secs.parse().unwrap_or(0), micros.parse().unwrap_or(0))
}

/// How a failed call should be treated.
#[derive(Debug, PartialEq)]
enum Failure {
    RateLimited(Duration),
    Transient,
    Permanent,
}

/// True when a call that failed with `e` may succeed later (Slack unreachable, overloaded or rate
/// limiting), false when Slack refused it for good (`channel_not_found`, `not_in_channel`...).
pub(super) fn is_transient(e: &SlackClientError) -> bool {
    classify(e, &RetryPolicy::default()) != Failure::Permanent
}

fn classify(e: &SlackClientError, policy: &RetryPolicy) -> Failure {
    match e {
        SlackClientError::RateLimitError(r) => {
            Failure::RateLimited(r.retry_after.unwrap_or(policy.default_retry_after))
        }
        SlackClientError::HttpError(h) if h.status_code.as_u16() == 429 => {
            Failure::RateLimited(policy.default_retry_after)
        }
        SlackClientError::HttpError(h) if h.status_code.is_server_error() || h.status_code.as_u16() == 408 => {
            Failure::Transient
        }
        SlackClientError::ApiError(a) if a.code == "ratelimited" => Failure::RateLimited(policy.default_retry_after),
        SlackClientError::ApiError(a)
            if matches!(
                a.code.as_str(),
                "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
            ) =>
        {
            Failure::Transient
        }
        SlackClientError::HttpProtocolError(_)
        | SlackClientError::SystemError(_)
        | SlackClientError::EndOfStream(_) => Failure::Transient,
        _ => Failure::Permanent,
    }
}

/// The Web API client with the bot's and the app's tokens.
pub struct Web {
    client: SlackClient<Connector>,
    /// Kept for the Socket Mode listener, which has an HTTP client of its own (see `socket`).
    api_url: String,
    bot_token: SlackApiToken,
    app_token: SlackApiToken,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
}

/// The TLS connector of every Slack HTTP client; `http://` too, for an emulator.
pub(super) fn https_connector() -> Result<HttpsConnector<HttpConnector>, SlackError> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(SlackError::Tls)?
        .https_or_http()
        .enable_http1()
        .build())
}

impl Web {
    /// A client for the Web API at `api_url` (`https://slack.com/api`, or `http://127.0.0.1:PORT/api`).
    pub(crate) fn new(
        api_url: &str,
        bot_token: &SecretString,
        app_token: &SecretString,
        policy: RetryPolicy,
    ) -> Result<Web, SlackError> {
        let api_url = api_url.trim_end_matches('/').to_string();
        let connector = SlackClientHyperConnector::from(https_connector()?).with_slack_api_url(&api_url);
        let token = |s: &SecretString| SlackApiToken::new(SlackApiTokenValue(s.expose_secret().to_string()));
        Ok(Web {
            client: SlackClient::new(connector),
            api_url,
            bot_token: token(bot_token),
            app_token: token(app_token),
            policy,
            metrics: Arc::new(Metrics::new()),
        })
    }

    /// Count failed calls and rate limits in `metrics`.
    pub(crate) fn with_metrics(self, metrics: Arc<Metrics>) -> Web {
        Web { metrics, ..self }
    }

    fn count(&self, method: &str, failure: &Failure) {
        match failure {
            Failure::RateLimited(_) => self.metrics.slack_rate_limited(method),
            Failure::Transient | Failure::Permanent => self.metrics.slack_api_error(method),
        }
    }

    /// Run `call` until it succeeds, waiting out rate limits and retrying transient failures.
    async fn retry<T, F, Fut>(&self, method: &'static str, call: F) -> Result<T, SlackError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        self.retry_with(method, true, call).await
    }

    /// As [`Web::retry`]; a call that times out is retried only when `retry_timeouts` (a timed-out
    /// `chat.postMessage` may have posted: the outbox checks the thread before posting it again).
    async fn retry_with<T, F, Fut>(
        &self,
        method: &'static str,
        retry_timeouts: bool,
        mut call: F,
    ) -> Result<T, SlackError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let mut failures = 0u32;
        let mut backoff = self.policy.backoff;
        loop {
            let err = match tokio::time::timeout(self.policy.timeout, call()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) if !retry_timeouts => {
                    self.metrics.slack_api_error(method);
                    warn!(
                        method,
                        timeout_ms = self.policy.timeout.as_millis() as u64,
                        "Slack call timed out; it may have taken effect, so it is not repeated blindly"
                    );
                    return Err(SlackError::Timeout(method));
                }
                Err(_) => SlackClientError::SystemError(
                    SlackClientSystemError::new().with_message(format!("no answer within {:?}", self.policy.timeout)),
                ),
            };
            let failure = classify(&err, &self.policy);
            self.count(method, &failure);
            match failure {
                Failure::RateLimited(wait) => {
                    warn!(
                        method,
                        retry_after_ms = wait.as_millis() as u64,
                        "rate limited by Slack; retrying after Retry-After"
                    );
                    tokio::time::sleep(wait).await;
                }
                Failure::Transient if failures + 1 < self.policy.attempts => {
                    failures += 1;
                    warn!(method, attempt = failures, backoff_ms = backoff.as_millis() as u64, error = %err, "Slack call failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                }
                _ => {
                    return Err(SlackError::Api {
                        method,
                        source: Box::new(err),
                    })
                }
            }
        }
    }

    /// `auth.test` with the bot token: the bot's user id, bot id and team.
    pub(crate) async fn auth_test(&self) -> Result<(String, Option<String>, String), SlackError> {
        let r = self
            .retry("auth.test", || {
                let s = self.client.open_session(&self.bot_token);
                async move { s.auth_test().await }
            })
            .await?;
        Ok((r.user_id.0, r.bot_id.map(|b| b.0), r.team_id.0))
    }

    /// The Web API base URL, without a trailing slash.
    pub(super) fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The app-level token (`xapp-`), for Socket Mode.
    pub(super) fn app_token(&self) -> &SlackApiToken {
        &self.app_token
    }

    /// Post each rendered message; returns the `ts` of the first posted. With a `marker` (see
    /// [`crate::outbox::marker`]), part `i` carries `<marker>:<i>` as its first block's `block_id`,
    /// and parts whose mark is in `posted` (found in the thread by [`Web::thread_markers`]) are not
    /// posted again.
    pub(crate) async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        parts: Vec<Rendered>,
        marker: Option<&str>,
        posted: &HashSet<String>,
    ) -> Result<Option<String>, SlackError> {
        let mut first = None;
        for (part, mut r) in parts.into_iter().enumerate() {
            if let Some(m) = marker {
                let mark = format!("{m}:{part}");
                if posted.contains(&mark) {
                    continue;
                }
                blocks::mark(&mut r.blocks, &mark);
            }
            let mut req = SlackApiChatPostMessageRequest::new(SlackChannelId(channel.to_string()), r.content());
            if let Some(t) = thread_ts {
                req = req.with_thread_ts(SlackTs(t.to_string()));
            }
            // with a marker, a timed-out post is left to the outbox, which looks in the thread first
            let resp = self
                .retry_with("chat.postMessage", marker.is_none() || thread_ts.is_none(), || {
                    let s = self.client.open_session(&self.bot_token);
                    let req = &req;
                    async move { s.chat_post_message(req).await }
                })
                .await?;
            first.get_or_insert(resp.ts.0);
        }
        Ok(first)
    }

    /// Post each rendered message, visible to `user` only.
    pub(crate) async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        parts: Vec<Rendered>,
    ) -> Result<(), SlackError> {
        for r in parts {
            let mut req = SlackApiChatPostEphemeralRequest::new(
                SlackChannelId(channel.to_string()),
                SlackUserId(user.to_string()),
                r.content(),
            );
            if let Some(t) = thread_ts {
                req = req.with_thread_ts(SlackTs(t.to_string()));
            }
            self.retry("chat.postEphemeral", || {
                let s = self.client.open_session(&self.bot_token);
                let req = &req;
                async move { s.chat_post_ephemeral(req).await }
            })
            .await?;
        }
        Ok(())
    }

    /// Replace message `ts` with the first rendered message (updates are short by construction).
    pub(crate) async fn update(&self, channel: &str, ts: &str, parts: Vec<Rendered>) -> Result<(), SlackError> {
        let Some(r) = parts.into_iter().next() else {
            return Ok(());
        };
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_string()),
            r.content(),
            SlackTs(ts.to_string()),
        );
        self.retry("chat.update", || {
            let s = self.client.open_session(&self.bot_token);
            let req = &req;
            async move { s.chat_update(req).await }
        })
        .await?;
        Ok(())
    }

    /// Replace the message an interaction came from with the first rendered message, or delete it
    /// when there is none.
    pub(crate) async fn respond(&self, response_url: &str, parts: Vec<Rendered>) -> Result<(), SlackError> {
        let url: url::Url = response_url.parse().map_err(|_| SlackError::BadResponseUrl)?;
        let req = match parts.into_iter().next() {
            Some(Rendered { text, blocks }) => {
                SlackApiPostWebhookMessageRequest::new(SlackMessageContent::new().with_text(text).with_blocks(blocks))
                    .with_replace_original(true)
            }
            None => SlackApiPostWebhookMessageRequest::new(SlackMessageContent::new()).with_delete_original(true),
        };
        let url = SlackResponseUrl(url);
        self.retry("response_url", || {
            let (client, req, url) = (&self.client, &req, &url);
            async move { client.respond_to_event(url, req).await }
        })
        .await?;
        Ok(())
    }

    /// One page of `conversations.replies` for the thread `thread_ts`: at most `limit` messages,
    /// from `cursor` (a previous page's `next_cursor`).
    async fn replies_page(
        &self,
        channel: &str,
        thread_ts: &str,
        limit: u16,
        cursor: Option<SlackCursorId>,
    ) -> Result<SlackApiConversationsRepliesResponse, SlackError> {
        let mut req = SlackApiConversationsRepliesRequest::new(
            SlackChannelId(channel.to_string()),
            SlackTs(thread_ts.to_string()),
        )
        .with_limit(limit);
        if let Some(c) = cursor {
            req = req.with_cursor(c);
        }
        self.retry("conversations.replies", || {
            let s = self.client.open_session(&self.bot_token);
            let req = &req;
            async move { s.conversations_replies(req).await }
        })
        .await
    }

    /// What the messages of a thread show (every page of `conversations.replies`, up to
    /// [`MAX_THREAD_PAGES`] of them): the [`crate::outbox`] marks, and the questions `me` asked
    /// with buttons.
    pub(crate) async fn read_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        me: &Identity,
    ) -> Result<ThreadSeen, SlackError> {
        let mut seen = ThreadSeen::default();
        let mut cursor = None;
        for _ in 0..MAX_THREAD_PAGES {
            let resp = self.replies_page(channel, thread_ts, 200, cursor).await?;
            for m in &resp.messages {
                seen.read(m, me);
            }
            cursor = resp
                .response_metadata
                .and_then(|m| m.next_cursor)
                .filter(|c| !c.0.is_empty());
            if cursor.is_none() {
                break;
            }
        }
        Ok(seen)
    }

    /// The root message of a thread (`conversations.replies`, first page of one).
    pub(crate) async fn thread_root(&self, channel: &str, thread_ts: &str) -> Result<Option<String>, SlackError> {
        let resp = self.replies_page(channel, thread_ts, 1, None).await?;
        Ok(resp
            .messages
            .into_iter()
            .find(|m| m.origin.ts.0 == thread_ts)
            .map(|m| message_text(&m.content)))
    }
}

/// The readable text of a message: its text and its attachments' (alert bots often use those).
fn message_text(c: &SlackMessageContent) -> String {
    let mut parts: Vec<String> = c.text.iter().cloned().collect();
    for a in c.attachments.iter().flatten() {
        parts.extend(a.title.iter().cloned());
        parts.extend(a.text.iter().cloned());
        if a.text.is_none() {
            parts.extend(a.fallback.iter().cloned());
        }
        for f in a.fields.iter().flatten() {
            parts.extend(f.title.iter().cloned());
            parts.extend(f.value.iter().cloned());
        }
    }
    parts.join("\n")
}

impl ThreadReader for Web {
    async fn root_text(&self, channel: &str, thread_ts: &str) -> Option<String> {
        match self.thread_root(channel, thread_ts).await {
            Ok(t) => t,
            Err(e) => {
                error!(channel, thread = thread_ts, error = %crate::error::error_chain(&e), "cannot read the thread's root message");
                None
            }
        }
    }
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified() {
        let p = RetryPolicy::default();
        let rl = SlackClientError::RateLimitError(SlackRateLimitError::new().with_retry_after(Duration::from_secs(3)));
        assert_eq!(classify(&rl, &p), Failure::RateLimited(Duration::from_secs(3)));
        let api = |code: &str| SlackClientError::ApiError(SlackClientApiError::new(code.to_string()));
        assert_eq!(classify(&api("internal_error"), &p), Failure::Transient);
        assert_eq!(classify(&api("channel_not_found"), &p), Failure::Permanent);
    }

    #[test]
    fn a_thread_read_finds_our_newest_question_per_node_and_the_marks() {
        use crate::vocab::Action;
        let me = Identity {
            user_id: "UBOT".into(),
            bot_id: Some("BBOT".into()),
        };
        let message = |ts: &str, user: &str, bot_id: Option<&str>, node: Option<&str>| -> SlackHistoryMessage {
            let mut blocks = vec![serde_json::json!({"type":"section","block_id":format!("nrb:1:0:{ts}"),
                "text":{"type":"mrkdwn","text":"q"}})];
            if let Some(node) = node {
                let (id, value) = crate::slack::buttons::encode_action(
                    &Action::Choose {
                        node: node.into(),
                        option: "vpc".into(),
                    },
                    1,
                );
                blocks.push(serde_json::json!({"type":"actions","elements":[
                    {"type":"button","text":{"type":"plain_text","text":"VPC"},"action_id":id,"value":value}]}));
            }
            serde_json::from_value(serde_json::json!({"type":"message","ts":ts,"user":user,"bot_id":bot_id,
                "text":"q","blocks":blocks}))
            .unwrap()
        };
        let mut seen = ThreadSeen::default();
        for m in [
            message("1.000200", "UBOT", Some("BBOT"), Some("infra")),
            message("1.001000", "UBOT", Some("BBOT"), Some("infra")),
            message("1.000900", "UBOT", Some("BBOT"), Some("platform")),
            // someone else's buttons for the same node, posted later
            message("2.0", "UOTHER", Some("BOTHER"), Some("infra")),
            message("3.0", "UHUMAN", None, None),
        ] {
            seen.read(&m, &me);
        }
        assert_eq!(seen.questions.get("infra").map(String::as_str), Some("1.001000"));
        assert_eq!(seen.questions.get("platform").map(String::as_str), Some("1.000900"));
        assert_eq!(seen.questions.len(), 2);
        assert!(seen.marks.contains("nrb:1:0:1.000200") && seen.marks.contains("nrb:1:0:3.0"));
    }
}
