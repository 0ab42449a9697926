//! What the running bot counts, for `/metrics`: the Prometheus registry and one typed handle per
//! series. The bot, the engine and the Web API client each hold an `Arc<Metrics>` and call the
//! methods below; nothing else touches `prometheus-client`.
//!
//! The two gauges (`socket_connections`, `store_open`) are also what `/readyz` reads, so readiness and
//! the metrics can never disagree.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the event → reply histogram: a reply normally takes well under a
/// second; a 429 with `Retry-After` pushes it to seconds.
const REPLY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntentLabel {
    intent: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VoteLabel {
    vote: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabel {
    outcome: String,
    intent: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: String,
    kb_version: String,
}

/// What became of an alert.
pub(crate) const ALERT_OUTCOMES: [&str; 5] = [
    "seen",
    "answered",
    "skipped_low_confidence",
    "skipped_refire",
    "skipped_limit",
];

/// Why a duplicate was dropped: the `message` twin of an `app_mention` (expected: Slack sends both for
/// one post), a copy Slack sent again (a retry or a redelivery after a reconnect), a click or a slash
/// command sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duplicate {
    Twin,
    Redelivery,
    Click,
    Command,
}

impl Duplicate {
    fn label(self) -> &'static str {
        match self {
            Duplicate::Twin => "twin",
            Duplicate::Redelivery => "redelivery",
            Duplicate::Click => "click",
            Duplicate::Command => "command",
        }
    }
}

/// The registry and its series.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    events: Family<KindLabel, Counter>,
    answers: Family<IntentLabel, Counter>,
    abstentions: Counter,
    clarifications: Counter,
    follow_up_steps: Family<IntentLabel, Counter>,
    feedback: Family<VoteLabel, Counter>,
    duplicates: Family<CauseLabel, Counter>,
    build_info: Family<BuildLabel, Gauge<i64>>,
    alerts: Family<AlertLabel, Counter>,
    slack_errors: Family<MethodLabel, Counter>,
    rate_limited: Family<MethodLabel, Counter>,
    reconnects: Counter,
    reply_seconds: Histogram,
    kb_reloads: Family<ResultLabel, Counter>,
    socket_connections: Gauge<i64>,
    store_open: Gauge<i64>,
    store_write_failures: Counter,
    /// 1 while the last write to the store succeeded (or none was tried).
    store_writable: Gauge<i64>,
    outbox_pending: Gauge<i64>,
    replies_redelivered: Counter,
    replies_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("netrunbook"),
            events: Family::default(),
            answers: Family::default(),
            abstentions: Counter::default(),
            clarifications: Counter::default(),
            follow_up_steps: Family::default(),
            feedback: Family::default(),
            duplicates: Family::default(),
            build_info: Family::default(),
            alerts: Family::default(),
            slack_errors: Family::default(),
            rate_limited: Family::default(),
            reconnects: Counter::default(),
            reply_seconds: Histogram::new(REPLY_BUCKETS),
            kb_reloads: Family::default(),
            socket_connections: Gauge::default(),
            store_open: Gauge::default(),
            store_write_failures: Counter::default(),
            store_writable: Gauge::default(),
            outbox_pending: Gauge::default(),
            replies_redelivered: Counter::default(),
            replies_dropped: Counter::default(),
        };
        m.store_writable.set(1);
        // every series with known labels is exported from the start, at 0
        for kind in ["mention", "message", "click", "shortcut", "command"] {
            let _ = m.events.get_or_create(&KindLabel { kind: kind.into() });
        }
        for vote in ["up", "down", "wrong_topic"] {
            let _ = m.feedback.get_or_create(&VoteLabel { vote: vote.into() });
        }
        for result in ["ok", "rejected", "unavailable"] {
            let _ = m.kb_reloads.get_or_create(&ResultLabel { result: result.into() });
        }
        for outcome in ALERT_OUTCOMES {
            let _ = m.alerts.get_or_create(&AlertLabel {
                outcome: outcome.into(),
                intent: String::new(),
            });
        }
        for d in [
            Duplicate::Twin,
            Duplicate::Redelivery,
            Duplicate::Click,
            Duplicate::Command,
        ] {
            let _ = m.duplicates.get_or_create(&CauseLabel {
                cause: d.label().into(),
            });
        }
        let r = &mut m.registry;
        r.register(
            "events_received",
            "Slack events, clicks and slash commands received, by kind",
            m.events.clone(),
        );
        r.register("answers", "Answers given, by intent", m.answers.clone());
        r.register(
            "abstentions",
            "Messages no runbook section fits (the bot said so)",
            m.abstentions.clone(),
        );
        r.register(
            "clarifications",
            "Messages that could be more than one section (the bot asked which)",
            m.clarifications.clone(),
        );
        r.register(
            "follow_up_steps",
            "Follow-up questions answered (by button or in words), by intent",
            m.follow_up_steps.clone(),
        );
        r.register(
            "feedback",
            "Feedback on answers: up, down, wrong_topic",
            m.feedback.clone(),
        );
        r.register(
            "duplicates_dropped",
            "Events dropped as already handled, by cause: twin (the message twin of an app_mention, expected), redelivery (Slack sent the event again), click, command",
            m.duplicates.clone(),
        );
        r.register(
            "alerts",
            "Alerts by other apps in the channels opted in: seen, answered (by intent), skipped_low_confidence, skipped_refire (a pointer to the first answer), skipped_limit",
            m.alerts.clone(),
        );
        r.register(
            "build_info",
            "1, labelled with the binary's version and the knowledge base version in use",
            m.build_info.clone(),
        );
        r.register(
            "slack_api_errors",
            "Failed Slack Web API call attempts other than rate limits, by method",
            m.slack_errors.clone(),
        );
        r.register(
            "slack_rate_limited",
            "Slack Web API calls answered 429 (waited out and retried), by method",
            m.rate_limited.clone(),
        );
        r.register(
            "socket_reconnects",
            "Socket Mode connections re-established after one was lost or refreshed",
            m.reconnects.clone(),
        );
        r.register(
            "event_reply_seconds",
            "Time from receiving an event to the last of its replies delivered",
            m.reply_seconds.clone(),
        );
        r.register(
            "kb_reloads",
            "Knowledge base reloads: ok, rejected (invalid), unavailable (built-in)",
            m.kb_reloads.clone(),
        );
        r.register(
            "socket_connections",
            "Socket Mode connections open and greeted (hello)",
            m.socket_connections.clone(),
        );
        r.register(
            "store_open",
            "1 while the conversation store is open",
            m.store_open.clone(),
        );
        r.register(
            "store_write_failures",
            "Handled events whose conversation and replies could not be saved (disk full, I/O error)",
            m.store_write_failures.clone(),
        );
        r.register(
            "store_writable",
            "1 while the last write to the conversation store succeeded",
            m.store_writable.clone(),
        );
        r.register(
            "outbox_pending",
            "Handled events whose replies are saved but not yet all delivered to Slack",
            m.outbox_pending.clone(),
        );
        r.register(
            "replies_redelivered",
            "Outbox records (one handled event's replies) delivered after a failed delivery or a restart",
            m.replies_redelivered.clone(),
        );
        r.register(
            "replies_dropped",
            "Saved replies given up on: older than the outbox's maximum age, or refused by Slack for good",
            m.replies_dropped.clone(),
        );
        m
    }

    /// Everything in Prometheus text format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // writing into a String cannot fail
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// An event of `kind` (`mention`, `message`, `click`, `command`) arrived.
    pub(crate) fn event_received(&self, kind: &str) {
        self.events.get_or_create(&KindLabel { kind: kind.into() }).inc();
    }

    pub(crate) fn answered(&self, intent: &str) {
        self.answers.get_or_create(&IntentLabel { intent: intent.into() }).inc();
    }

    pub(crate) fn abstained(&self) {
        self.abstentions.inc();
    }

    pub(crate) fn clarified(&self) {
        self.clarifications.inc();
    }

    pub(crate) fn follow_up_step(&self, intent: &str) {
        self.follow_up_steps
            .get_or_create(&IntentLabel { intent: intent.into() })
            .inc();
    }

    /// `vote` is `up`, `down` or `wrong_topic`.
    pub(crate) fn feedback(&self, vote: &str) {
        self.feedback.get_or_create(&VoteLabel { vote: vote.into() }).inc();
    }

    pub(crate) fn duplicate_dropped(&self, cause: Duplicate) {
        self.duplicates
            .get_or_create(&CauseLabel {
                cause: cause.label().into(),
            })
            .inc();
    }

    /// An alert's `outcome` (one of [`ALERT_OUTCOMES`]), with the intent it was answered or pointed
    /// with, if any.
    pub(crate) fn alert(&self, outcome: &str, intent: Option<&str>) {
        self.alerts
            .get_or_create(&AlertLabel {
                outcome: outcome.into(),
                intent: intent.unwrap_or_default().into(),
            })
            .inc();
    }

    /// The Web API methods the bot calls, so their error and rate-limit series start at 0.
    pub(crate) fn expect_methods<'a>(&self, methods: impl IntoIterator<Item = &'a str>) {
        for method in methods {
            let label = MethodLabel { method: method.into() };
            let _ = self.slack_errors.get_or_create(&label);
            let _ = self.rate_limited.get_or_create(&label);
        }
    }

    /// `netrunbook_build_info{version, kb_version} 1`, for the knowledge base in use now.
    pub(crate) fn set_build_info(&self, kb_version: &str) {
        self.build_info.clear();
        self.build_info
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION").into(),
                kb_version: kb_version.into(),
            })
            .set(1);
    }

    pub(crate) fn slack_api_error(&self, method: &str) {
        self.slack_errors
            .get_or_create(&MethodLabel { method: method.into() })
            .inc();
    }

    pub(crate) fn slack_rate_limited(&self, method: &str) {
        self.rate_limited
            .get_or_create(&MethodLabel { method: method.into() })
            .inc();
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.inc();
    }

    pub(crate) fn replied_after(&self, elapsed: Duration) {
        self.reply_seconds.observe(elapsed.as_secs_f64());
    }

    /// `result` is `ok`, `rejected` or `unavailable`.
    pub(crate) fn kb_reload(&self, result: &str) {
        self.kb_reloads
            .get_or_create(&ResultLabel { result: result.into() })
            .inc();
    }

    pub(crate) fn set_socket_connections(&self, n: usize) {
        self.socket_connections.set(n as i64);
    }

    pub(crate) fn set_store_open(&self, open: bool) {
        self.store_open.set(i64::from(open));
    }

    /// A write to the store succeeded or failed; failures are counted and make `/readyz` fail until a
    /// write succeeds again.
    pub(crate) fn store_write(&self, ok: bool) {
        if !ok {
            self.store_write_failures.inc();
        }
        self.store_writable.set(i64::from(ok));
    }

    pub(crate) fn set_outbox_pending(&self, n: usize) {
        self.outbox_pending.set(n as i64);
    }

    pub(crate) fn reply_redelivered(&self) {
        self.replies_redelivered.inc();
    }

    pub(crate) fn reply_dropped(&self) {
        self.replies_dropped.inc();
    }

    /// Why the bot is not ready to serve, or `None` when it is: Socket Mode connected, the store
    /// open and its last write successful.
    pub(crate) fn not_ready(&self) -> Option<String> {
        let mut missing = Vec::new();
        if self.socket_connections.get() < 1 {
            missing.push("Socket Mode is not connected");
        }
        if self.store_open.get() < 1 {
            missing.push("the conversation store is not open, or its database cannot be reached");
        }
        if self.store_writable.get() < 1 {
            missing.push("the last write to the conversation store failed (disk full?)");
        }
        (!missing.is_empty()).then(|| missing.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_and_labelled_for_prometheus() {
        let m = Metrics::new();
        m.event_received("mention");
        m.answered("dns");
        m.answered("dns");
        m.duplicate_dropped(Duplicate::Twin);
        m.replied_after(Duration::from_millis(70));
        m.expect_methods(["chat.postMessage"]);
        m.set_build_info("kb-1");
        m.set_build_info("kb-2");
        let text = m.encode();
        assert!(
            text.contains("netrunbook_events_received_total{kind=\"mention\"} 1"),
            "{text}"
        );
        assert!(text.contains("netrunbook_answers_total{intent=\"dns\"} 2"), "{text}");
        assert!(
            text.contains("netrunbook_duplicates_dropped_total{cause=\"twin\"} 1"),
            "{text}"
        );
        // series with known labels are exported from the start, at 0
        for zero in [
            "netrunbook_duplicates_dropped_total{cause=\"redelivery\"} 0",
            "netrunbook_events_received_total{kind=\"command\"} 0",
            "netrunbook_feedback_total{vote=\"wrong_topic\"} 0",
            "netrunbook_kb_reloads_total{result=\"rejected\"} 0",
            "{method=\"chat.postMessage\"} 0",
        ] {
            assert!(text.contains(zero), "{zero} missing:\n{text}");
        }
        // one build_info series, for the knowledge base in use now
        assert!(
            text.contains(&format!(
                "netrunbook_build_info{{version=\"{}\",kb_version=\"kb-2\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(!text.contains("kb-1"), "{text}");
        assert!(
            text.contains("netrunbook_event_reply_seconds_bucket{le=\"0.1\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE netrunbook_socket_connections gauge"), "{text}");
    }

    #[test]
    fn readiness_needs_a_connection_and_the_store() {
        let m = Metrics::new();
        assert_eq!(
            m.not_ready().as_deref(),
            Some("Socket Mode is not connected; the conversation store is not open, or its database cannot be reached")
        );
        m.set_store_open(true);
        assert_eq!(m.not_ready().as_deref(), Some("Socket Mode is not connected"));
        m.set_socket_connections(2);
        assert_eq!(m.not_ready(), None);
        m.store_write(false);
        assert_eq!(
            m.not_ready().as_deref(),
            Some("the last write to the conversation store failed (disk full?)")
        );
        assert!(m.encode().contains("netrunbook_store_write_failures_total 1"));
        m.store_write(true);
        assert_eq!(m.not_ready(), None);
        m.set_socket_connections(0);
        assert!(m.not_ready().is_some());
    }
}
