//! Scripted incident conversations driven through the Slack emulator, with every event's ack and
//! reply timed by the emulator's own clock.
//!
//! Each conversation runs in a channel of its own, one step at a time, as a person would: a mention
//! (optionally with its `message` twin), a button click, plain replies in the thread, a slash command.
//! A [`Tracker`] follows the emulator's acks and Web API calls (polling `acks_since` / `calls_since`,
//! so following 100,000 of them costs little) and routes calls to their conversation by channel.
//!
//! How many Web API calls each step causes is learnt once ([`Tracker::calibrate`], one conversation
//! with quiet periods between steps); a step is then done when exactly that many calls arrived, and
//! at the end each conversation must have exactly the calibrated total: more is a duplicate reply,
//! fewer a missing one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::slack_emulator::{Ack, ApiCall, Fault, SlackEmulator, BOT_USER_ID};
use crate::stats::Summary;

/// The person talking to the bot.
pub const USER: &str = "U0LOAD";

/// One thing a person does.
#[derive(Clone, Debug)]
pub enum Action {
    /// A top-level mention; with `twins`, Slack sends both `app_mention` and `message` for it.
    Mention { text: &'static str, twins: bool },
    /// A plain reply in the conversation's thread (a `message` event).
    Reply { text: &'static str },
    /// A click on the button labelled `label` of the latest bot message that has one.
    Click { label: &'static str },
    /// `/netrunbook <text>`, answered in the acknowledgement.
    Slash { text: &'static str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Mention,
    Reply,
    Click,
    Slash,
}

impl Action {
    pub fn kind(&self) -> Kind {
        match self {
            Action::Mention { .. } => Kind::Mention,
            Action::Reply { .. } => Kind::Reply,
            Action::Click { .. } => Kind::Click,
            Action::Slash { .. } => Kind::Slash,
        }
    }

    /// Events (envelopes) the action sends.
    pub fn events(&self) -> usize {
        match self {
            Action::Mention { twins: true, .. } => 2,
            _ => 1,
        }
    }
}

/// An on-call engineer working a LoadBalancer incident to its end, then asking a side question:
/// a mention sent as `app_mention` + `message` twins, a button click, two plain replies in the
/// thread, a slash command. Six events, every kind the bot reads.
pub fn incident_script() -> Vec<Action> {
    vec![
        Action::Mention {
            text: "LoadBalancer service stuck with pending external IP",
            twins: true,
        },
        Action::Click { label: "VPC" },
        Action::Reply { text: "iks" },
        Action::Reply {
            text: "no, still broken",
        },
        Action::Slash {
            text: "coredns lookups fail in pods",
        },
    ]
}

/// Calls that are replies shown in Slack (what a duplicate or a missing reply is counted on): calls
/// answered with a fault took no effect, except a hang, which takes effect late.
fn is_reply(call: &ApiCall) -> bool {
    let took_effect = matches!(call.fault, None | Some(Fault::Hang(_)));
    took_effect
        && matches!(
            call.method.as_str(),
            "chat.postMessage" | "chat.update" | "chat.postEphemeral"
        )
}

/// The calls of one channel, with a wake-up for whoever waits on them.
#[derive(Default)]
pub struct ChannelLog {
    calls: Mutex<Vec<ApiCall>>,
    notify: Notify,
}

impl ChannelLog {
    pub fn len(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn calls(&self) -> Vec<ApiCall> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until at least `n` calls arrived; false on timeout.
    async fn wait_len(&self, n: usize, deadline: Instant) -> bool {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.len() >= n;
            }
        }
    }

    /// Waits until no call arrived for `quiet` (at most until `deadline`).
    async fn settle(&self, quiet: Duration, deadline: Instant) {
        let mut n = self.len();
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.len();
            if now == n || Instant::now() > deadline {
                return;
            }
            n = now;
        }
    }
}

#[derive(Default)]
struct Followed {
    acks_seen: usize,
    calls_seen: usize,
    /// First ack of each envelope.
    acks: HashMap<String, Ack>,
    ack_waiters: HashMap<String, Vec<oneshot::Sender<Ack>>>,
    channels: HashMap<String, Arc<ChannelLog>>,
}

/// How events are re-delivered, as Slack does on retries and after reconnects.
#[derive(Clone, Copy, Debug, Default)]
pub struct Redelivery {
    /// Each Events API event is sent this many more times: same `event_id`, a new envelope.
    pub copies: u32,
    /// Wait up to this long (random) before each copy.
    pub max_delay: Duration,
    /// Send the copies right after the original, racing it; otherwise after the step's replies.
    pub before_reply: bool,
}

/// What happened to the events and replies of a run.
#[derive(Default, Debug)]
pub struct Record {
    /// Every envelope pushed: its kind, id and when.
    pub pushed: Vec<(Kind, String, Instant)>,
    /// Event -> first reply, per step.
    pub replies: Vec<(Kind, Duration)>,
    pub errors: Vec<String>,
    pub conversations: usize,
    /// Copies sent (re-deliveries), and of those how many after a reconnect since the original.
    pub copies: usize,
    pub copies_after_reconnect: usize,
    /// Slash commands and clicks done again because the first got no answer.
    pub interactions_redone: usize,
}

impl Record {
    fn merge(&mut self, other: Record) {
        self.pushed.extend(other.pushed);
        self.replies.extend(other.replies);
        self.errors.extend(other.errors);
        self.conversations += other.conversations;
        self.copies += other.copies;
        self.copies_after_reconnect += other.copies_after_reconnect;
        self.interactions_redone += other.interactions_redone;
    }
}

/// Spreads events evenly at `rate` per second across all sessions.
pub struct Pacer {
    start: Instant,
    nanos_per_event: f64,
    issued: AtomicU64,
}

impl Pacer {
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            start: Instant::now(),
            nanos_per_event: 1e9 / rate,
            issued: AtomicU64::new(0),
        }
    }

    async fn acquire(&self, events: usize) {
        let slot = self.issued.fetch_add(events as u64, Ordering::Relaxed);
        let due = self.start + Duration::from_nanos((slot as f64 * self.nanos_per_event) as u64);
        tokio::time::sleep_until(due).await;
    }
}

/// Follows the emulator's acks and calls.
pub struct Tracker {
    pub emu: SlackEmulator,
    followed: Mutex<Followed>,
    /// One poll at a time (the follower task, or [`Tracker::acked`]).
    polling: Mutex<()>,
    stopped: AtomicBool,
    pub redelivery: Mutex<Redelivery>,
    /// When a slash command or a click gets no answer within this long (its envelope was lost in a
    /// reset socket: Slack does not re-send those, it shows the person an error), do it again once.
    /// Off (`None`) by default: then it is an error.
    pub retry_interactions_after: Mutex<Option<Duration>>,
    seed: AtomicU64,
}

impl Tracker {
    /// Starts following `emu` (every millisecond) until [`Tracker::stop`].
    pub fn start(emu: SlackEmulator) -> Arc<Tracker> {
        let t = Arc::new(Tracker {
            emu,
            followed: Mutex::new(Followed::default()),
            polling: Mutex::new(()),
            stopped: AtomicBool::new(false),
            redelivery: Mutex::new(Redelivery::default()),
            retry_interactions_after: Mutex::new(None),
            seed: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        });
        let follower = t.clone();
        tokio::spawn(async move {
            while !follower.stopped.load(Ordering::Relaxed) {
                follower.poll();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        t
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// A cheap pseudo-random number (xorshift), for delays and kill points.
    pub fn random(&self) -> u64 {
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        x
    }

    fn poll(&self) {
        let _one = self.polling.lock().unwrap();
        let (acks_from, calls_from) = {
            let f = self.followed.lock().unwrap();
            (f.acks_seen, f.calls_seen)
        };
        let acks = self.emu.acks_since(acks_from);
        let calls = self.emu.calls_since(calls_from);
        let mut woken = Vec::new();
        {
            let mut f = self.followed.lock().unwrap();
            f.acks_seen += acks.len();
            f.calls_seen += calls.len();
            for ack in acks {
                if let Some(waiters) = f.ack_waiters.remove(&ack.envelope_id) {
                    for w in waiters {
                        let _ = w.send(ack.clone());
                    }
                }
                f.acks.entry(ack.envelope_id.clone()).or_insert(ack);
            }
            for call in calls.into_iter().filter(is_reply) {
                let Some(channel) = call.param("channel").map(str::to_string) else {
                    continue;
                };
                let log = f.channels.entry(channel).or_default().clone();
                log.calls.lock().unwrap().push(call);
                woken.push(log);
            }
        }
        for log in woken {
            log.notify.notify_waiters();
        }
    }

    pub fn channel(&self, channel: &str) -> Arc<ChannelLog> {
        self.followed
            .lock()
            .unwrap()
            .channels
            .entry(channel.to_string())
            .or_default()
            .clone()
    }

    /// The first ack of `envelope`, waiting until `deadline`.
    pub async fn ack(&self, envelope: &str, deadline: Instant) -> Option<Ack> {
        let rx = {
            let mut f = self.followed.lock().unwrap();
            if let Some(a) = f.acks.get(envelope) {
                return Some(a.clone());
            }
            let (tx, rx) = oneshot::channel();
            f.ack_waiters.entry(envelope.to_string()).or_default().push(tx);
            rx
        };
        tokio::time::timeout_at(deadline, rx).await.ok()?.ok()
    }

    /// Whether `envelope` was acknowledged (as far as followed so far).
    pub fn acked(&self, envelope: &str) -> bool {
        self.poll();
        self.followed.lock().unwrap().acks.contains_key(envelope)
    }

    /// Ack latency of every pushed envelope; envelopes never acked are listed apart.
    pub fn ack_latencies(&self, pushed: &[(Kind, String, Instant)]) -> (Vec<Duration>, Vec<String>) {
        let f = self.followed.lock().unwrap();
        let mut lat = Vec::with_capacity(pushed.len());
        let mut missing = Vec::new();
        for (_, envelope, at) in pushed {
            match f.acks.get(envelope) {
                Some(a) => lat.push(a.at.saturating_duration_since(*at)),
                None => missing.push(envelope.clone()),
            }
        }
        (lat, missing)
    }

    /// Learn how many reply calls each step of `script` causes: one conversation, with a quiet
    /// period after each step.
    pub async fn calibrate(self: &Arc<Self>, channel: &str, script: &[Action], timeout: Duration) -> Vec<usize> {
        let mut rec = Record::default();
        self.conversation(channel, script, None, None, timeout, &mut rec)
            .await
            .unwrap_or_else(|e| panic!("calibration conversation failed: {e}"))
    }

    /// Run one conversation in `channel`. With `expect` (calls per step), each step waits for exactly
    /// that many; without, it waits for the first call and then for a quiet period, and returns what
    /// it counted.
    pub async fn conversation(
        self: &Arc<Self>,
        channel: &str,
        script: &[Action],
        expect: Option<&[usize]>,
        pacer: Option<&Pacer>,
        timeout: Duration,
        rec: &mut Record,
    ) -> Result<Vec<usize>, String> {
        let log = self.channel(channel);
        let mut thread: Option<String> = None;
        let mut counts = Vec::with_capacity(script.len());
        for (k, action) in script.iter().enumerate() {
            let before = log.len();
            if let Some(p) = pacer {
                p.acquire(action.events()).await;
            }
            let deadline = Instant::now() + timeout;
            let (mut pushed, posted_ts) = self.act(channel, action, &mut thread, deadline).await?;
            let first_at = pushed.first().map(|s| s.at).unwrap_or_else(Instant::now);
            for s in &pushed {
                rec.pushed.push((action.kind(), s.envelope.clone(), s.at));
            }
            let redo_after = *self.retry_interactions_after.lock().unwrap();
            if let (Action::Slash { .. } | Action::Click { .. }, Some(after)) = (action, redo_after) {
                let answered = match action {
                    Action::Slash { .. } => self.ack(&pushed[0].envelope, Instant::now() + after).await.is_some(),
                    _ => log.wait_len(before + 1, Instant::now() + after).await,
                };
                if !answered {
                    rec.interactions_redone += 1;
                    (pushed, _) = self.act(channel, action, &mut thread, deadline).await?;
                    for s in &pushed {
                        rec.pushed.push((action.kind(), s.envelope.clone(), s.at));
                    }
                }
            }
            if let Action::Slash { .. } = action {
                let envelope = &pushed[0].envelope;
                let ack = self
                    .ack(envelope, deadline)
                    .await
                    .ok_or_else(|| format!("{channel} step {k} (slash): no ack"))?;
                if ack.payload.is_none() {
                    return Err(format!("{channel} step {k} (slash): the ack carries no answer"));
                }
                rec.replies
                    .push((Kind::Slash, ack.at.saturating_duration_since(first_at)));
                counts.push(0);
                continue;
            }
            let early = self.redelivery.lock().unwrap().before_reply;
            if let (true, Some(ts)) = (early, &posted_ts) {
                self.redeliver(channel, action, &thread, ts, &pushed, rec).await;
            }
            let want = match expect {
                Some(e) => before + e[k],
                None => before + 1,
            };
            if !log.wait_len(want, deadline).await {
                return Err(format!(
                    "{channel} step {k} ({:?}): {} of {} replies within {timeout:?}",
                    action.kind(),
                    log.len() - before,
                    want - before
                ));
            }
            if expect.is_none() {
                log.settle(Duration::from_millis(400), deadline).await;
            }
            let calls = log.calls();
            rec.replies
                .push((action.kind(), calls[before].at.saturating_duration_since(first_at)));
            counts.push(calls.len() - before);
            if let (false, Some(ts)) = (early, &posted_ts) {
                self.redeliver(channel, action, &thread, ts, &pushed, rec).await;
            }
        }
        rec.conversations += 1;
        Ok(counts)
    }

    /// Do `action`; returns the envelopes pushed (id, when, event id) and the posted message's ts.
    async fn act(
        &self,
        channel: &str,
        action: &Action,
        thread: &mut Option<String>,
        deadline: Instant,
    ) -> Result<(Vec<Sent>, Option<String>), String> {
        let sent = |p: crate::slack_emulator::Pushed| Sent {
            envelope: p.envelope_id,
            at: p.at,
            event_id: p.event_id,
        };
        Ok(match action {
            Action::Mention { text, twins } => {
                let kinds: &[&str] = if *twins {
                    &["app_mention", "message"]
                } else {
                    &["app_mention"]
                };
                let text = format!("<@{BOT_USER_ID}> {text}");
                let post = self.emu.post_user_message(channel, USER, &text, None, kinds).await;
                *thread = Some(post.ts.clone());
                (post.pushed.into_iter().map(sent).collect(), Some(post.ts))
            }
            Action::Reply { text } => {
                let post = self
                    .emu
                    .post_user_message(channel, USER, text, thread.as_deref(), &["message"])
                    .await;
                (post.pushed.into_iter().map(sent).collect(), Some(post.ts))
            }
            Action::Click { label } => {
                // the message may be recorded as a call a moment before the emulator stores it
                let (ts, action_id, value) = loop {
                    if let Some(found) = find_button(&self.emu.messages(channel), label) {
                        break found;
                    }
                    if Instant::now() > deadline {
                        return Err(format!("{channel}: no message with a {label:?} button"));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                };
                let p = self
                    .emu
                    .push_block_action(channel, USER, &ts, thread.as_deref(), &action_id, &value)
                    .await;
                (vec![sent(p)], None)
            }
            Action::Slash { text } => {
                let p = self.emu.push_slash(channel, USER, text).await;
                (vec![sent(p)], None)
            }
        })
    }

    /// Re-deliver the step's events as configured (same event id, a new envelope, after a delay).
    async fn redeliver(
        &self,
        channel: &str,
        action: &Action,
        thread: &Option<String>,
        ts: &str,
        pushed: &[Sent],
        rec: &mut Record,
    ) {
        let r = *self.redelivery.lock().unwrap();
        if r.copies == 0 {
            return;
        }
        let (kinds, text, in_thread): (&[&str], String, Option<&str>) = match action {
            Action::Mention { text, twins } => (
                if *twins {
                    &["app_mention", "message"]
                } else {
                    &["app_mention"]
                },
                format!("<@{BOT_USER_ID}> {text}"),
                None,
            ),
            Action::Reply { text } => (&["message"], text.to_string(), thread.as_deref()),
            _ => return,
        };
        let connects_then = self.emu.connects_total();
        for (sent, kind) in pushed.iter().zip(kinds) {
            let Some(event_id) = &sent.event_id else {
                continue;
            };
            let event = SlackEmulator::user_event(kind, channel, USER, ts, in_thread, &text);
            for attempt in 1..=r.copies {
                if !r.max_delay.is_zero() {
                    let wait = self.random() % (r.max_delay.as_micros() as u64 + 1);
                    tokio::time::sleep(Duration::from_micros(wait)).await;
                }
                let copy = self.emu.push_event_with_id(event_id, attempt, event.clone()).await;
                rec.pushed.push((action.kind(), copy.envelope_id, copy.at));
                rec.copies += 1;
                if self.emu.connects_total() > connects_then {
                    rec.copies_after_reconnect += 1;
                }
            }
        }
    }
}

/// An envelope pushed.
struct Sent {
    envelope: String,
    at: Instant,
    event_id: Option<String>,
}

/// The latest bot message with a button labelled `label`: (ts, action_id, value).
pub fn find_button(messages: &[Value], label: &str) -> Option<(String, String, String)> {
    for m in messages.iter().rev().filter(|m| m["bot_id"].is_string()) {
        for block in m["blocks"].as_array().into_iter().flatten() {
            for e in block["elements"].as_array().into_iter().flatten() {
                if e["type"] == "button" && e["text"]["text"] == label {
                    return Some((
                        m["ts"].as_str()?.to_string(),
                        e["action_id"].as_str()?.to_string(),
                        e["value"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
        }
    }
    None
}

/// How a load run is shaped.
#[derive(Clone, Debug)]
pub struct Load {
    pub conversations: usize,
    /// Conversations in flight at once.
    pub sessions: usize,
    /// Events per second across all sessions; as fast as replies come when `None`.
    pub rate: Option<f64>,
    /// Per step.
    pub timeout: Duration,
    /// Channel names are `<prefix><n>`.
    pub prefix: String,
}

/// The figures of a load run.
#[derive(Debug)]
pub struct Report {
    pub events: usize,
    pub events_by_kind: HashMap<Kind, usize>,
    pub ack: Summary,
    pub reply: Summary,
    pub reply_by_kind: Vec<(Kind, Summary)>,
    /// From the first event pushed to the last reply.
    pub wall: Duration,
    pub conversations: usize,
    pub errors: Vec<String>,
    pub unacked: usize,
    pub duplicates: usize,
    pub missing: usize,
    pub record: Record,
}

impl Report {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn error_count(&self) -> usize {
        self.errors.len() + self.unacked + self.duplicates + self.missing
    }
}

/// Run `load.conversations` conversations of `script`, `load.sessions` at a time; then wait for a
/// quiet period and count, per conversation, duplicate and missing replies against `expect`.
pub async fn run(tracker: &Arc<Tracker>, script: &[Action], expect: &[usize], load: &Load) -> Report {
    let script = Arc::new(script.to_vec());
    let expect = Arc::new(expect.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let pacer = load.rate.map(|r| Arc::new(Pacer::new(r)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..load.sessions.max(1) {
        let (tracker, script, expect, next, pacer, load) = (
            tracker.clone(),
            script.clone(),
            expect.clone(),
            next.clone(),
            pacer.clone(),
            load.clone(),
        );
        tasks.spawn(async move {
            let mut rec = Record::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= load.conversations {
                    break;
                }
                let channel = format!("{}{n:06}", load.prefix);
                if let Err(e) = tracker
                    .conversation(
                        &channel,
                        &script,
                        Some(&expect),
                        pacer.as_deref(),
                        load.timeout,
                        &mut rec,
                    )
                    .await
                {
                    rec.errors.push(e);
                }
            }
            rec
        });
    }
    let mut rec = Record::default();
    while let Some(r) = tasks.join_next().await {
        rec.merge(r.expect("a session does not panic"));
    }
    let last_reply = Instant::now();
    let first_push = rec.pushed.iter().map(|p| p.2).min().unwrap_or(started);
    let wall = last_reply.saturating_duration_since(first_push);
    // late duplicates show up after a quiet period
    let total: usize = expect.iter().sum();
    let mut quiet_logs = Vec::new();
    for n in 0..load.conversations {
        quiet_logs.push(tracker.channel(&format!("{}{n:06}", load.prefix)));
    }
    let mut seen = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now: usize = quiet_logs.iter().map(|l| l.len()).sum();
        if now == seen {
            break;
        }
        seen = now;
    }
    let (mut duplicates, mut missing) = (0, 0);
    for log in &quiet_logs {
        let n = log.len();
        duplicates += n.saturating_sub(total);
        missing += total.saturating_sub(n);
    }
    let (ack_lat, unacked) = tracker.ack_latencies(&rec.pushed);
    let mut by_kind: HashMap<Kind, Vec<Duration>> = HashMap::new();
    for (k, d) in &rec.replies {
        by_kind.entry(*k).or_default().push(*d);
    }
    let mut reply_by_kind: Vec<(Kind, Summary)> = by_kind.iter().map(|(k, v)| (*k, Summary::of(v))).collect();
    reply_by_kind.sort_by_key(|(k, _)| *k);
    let mut events_by_kind: HashMap<Kind, usize> = HashMap::new();
    for (k, _, _) in &rec.pushed {
        *events_by_kind.entry(*k).or_default() += 1;
    }
    let all: Vec<Duration> = rec.replies.iter().map(|r| r.1).collect();
    Report {
        events: rec.pushed.len(),
        events_by_kind,
        ack: Summary::of(&ack_lat),
        reply: Summary::of(&all),
        reply_by_kind,
        wall,
        conversations: rec.conversations,
        errors: rec.errors.clone(),
        unacked: unacked.len(),
        duplicates,
        missing,
        record: rec,
    }
}
