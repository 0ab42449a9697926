//! Every follow-up flow of the knowledge base driven to its final guidance, once by clicking the
//! buttons and once by replying in the thread in words (without mentioning the bot), asserting the
//! facts the guidance must carry. The flow table (`tests/data/flows.jsonl`, which `core` replays
//! through the dialogue engine) played in Slack, each reply checked as the table says. Then how an
//! answered question shows: in place, answered in words as by a click, and re-answered by a click on
//! another of its options.

use std::path::Path;

use futures_util::future::join_all;
use futures_util::{stream, StreamExt};
use netrunbook::dialogue::{step, Conversation, Input};
use netrunbook::kb::KnowledgeBase;
use netrunbook_testkit::dialogues::{self, Case, Dialogue};
use netrunbook_testkit::slack_emulator::ApiCall;
use serde_json::Value;

use crate::{
    as_message, assert_methods_in_manifest, buttons, shown, shown_all, spawn_bot, with_button, TestBot, OTHER_USER,
    QUIET, USER, WAIT,
};

/// One example dialogue of the knowledge base (`flow.examples` in intents/*.yaml), with what the pure
/// engine makes of it: per reply, the label of the option it answers (when it answers a question), and
/// the node it must end on, with that node's lead and links.
pub(crate) struct Example {
    pub(crate) intent: String,
    pub(crate) say: Vec<String>,
    clicks: Vec<Option<String>>,
    pub(crate) lead: String,
    links: Vec<String>,
}

impl Example {
    /// Whether `shown` (a thread's text as Slack shows it) holds the end node's lead and every link;
    /// Slack escapes `&` in link targets.
    pub(crate) fn guided_in(&self, shown: &str) -> bool {
        shown.contains(&self.lead)
            && self
                .links
                .iter()
                .all(|l| shown.contains(&l.replace('&', "&amp;")) || shown.contains(l.as_str()))
    }
}

pub(crate) fn examples() -> Vec<Example> {
    use netrunbook::dialogue::{step, Input};
    let kb = netrunbook::kb::KnowledgeBase::builtin().unwrap();
    let mut out = Vec::new();
    for intent in &kb.intents {
        let Some(flow) = &intent.flow else { continue };
        assert!(
            !flow.examples.is_empty(),
            "the flow of {} has no example dialogue",
            intent.id
        );
        for ex in &flow.examples {
            let mut state = None;
            let mut clicks = Vec::new();
            for (i, text) in ex.say.iter().enumerate() {
                let before = state
                    .as_ref()
                    .map_or(0, |c: &netrunbook::dialogue::Conversation| c.slots.len());
                let s = step(
                    &kb,
                    state.as_ref(),
                    &Input::Message {
                        text: text.clone(),
                        addressed: i == 0,
                    },
                    1,
                );
                let after = s.state.as_ref().map_or(0, |c| c.slots.len());
                if i > 0 {
                    // a reply that answers exactly one question, and nothing more, can be a click instead
                    clicks.push(match s.answered.as_slice() {
                        [one] if after == before + 1 => Some(one.choice.clone()),
                        _ => None,
                    });
                }
                state = s.state;
            }
            let Some(netrunbook::kb::Node::Say { text, links, .. }) = flow.nodes.get(&ex.ends) else {
                panic!("{} ends on a question", intent.id)
            };
            out.push(Example {
                intent: intent.id.clone(),
                say: ex.say.clone(),
                clicks,
                lead: netrunbook::dialogue::lead(text),
                links: links.iter().map(|l| l.resolved.clone()).collect(),
            });
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Buttons,
    Words,
}

/// Play one example in `channel`: each reply once the bot has answered the one before (by a click on
/// the question's button when `Buttons` and the reply answers one question), then wait for the node's
/// guidance and links.
async fn drive(bot: &TestBot, ex: &Example, channel: &str, mode: Mode) {
    let post = bot.mention(channel, &ex.say[0], None).await;
    let thread = post.ts.as_str();
    let mut seen = bot
        .wait_thread(channel, thread, &format!("{}: the first answer", ex.intent), |m| {
            !m.is_empty()
        })
        .await
        .len();
    for (words, click) in ex.say[1..].iter().zip(&ex.clicks) {
        match (mode, click) {
            (Mode::Buttons, Some(label)) => {
                let what = format!("{}: the question offering {label:?}", ex.intent);
                let msgs = bot
                    .wait_thread(channel, thread, &what, |m| with_button(m, 0, label).is_some())
                    .await;
                let question = with_button(&msgs, 0, label).expect("just waited for it");
                let (_, action_id, value) = buttons(question).into_iter().find(|b| &b.0 == label).unwrap();
                let ts = question["ts"].as_str().unwrap().to_string();
                bot.emu
                    .push_block_action(channel, USER, &ts, Some(thread), &action_id, &value)
                    .await;
                // the clicked question shows the choice, without buttons
                bot.wait_thread(
                    channel,
                    thread,
                    &format!("{}: {label:?} shown in place", ex.intent),
                    |m| {
                        m.iter().any(|x| {
                            x["ts"] == ts.as_str() && buttons(x).is_empty() && crate::shown(x).contains(label.as_str())
                        })
                    },
                )
                .await;
            }
            _ => {
                bot.say(channel, USER, words, Some(thread)).await;
            }
        }
        // people answer after reading: the next reply waits for the bot's answer to this one
        seen = bot
            .wait_thread(
                channel,
                thread,
                &format!("{}: the answer to {words:?}", ex.intent),
                |m| m.len() > seen,
            )
            .await
            .len();
    }
    let msgs = bot
        .wait_thread(
            channel,
            thread,
            &format!("{}: the guidance of {:?}", ex.intent, ex.lead),
            |m| ex.guided_in(&shown_all(m)),
        )
        .await;
    assert!(
        shown_all(&msgs).contains("armada-network-initial-troubleshooting.html#"),
        "the section link"
    );
}

async fn every_flow(mode: Mode) {
    let bot = spawn_bot().await;
    let all = examples();
    let channels: Vec<String> = (0..all.len()).map(|i| format!("C0FLOW{i}")).collect();
    join_all(all.iter().zip(&channels).map(|(ex, c)| drive(&bot, ex, c, mode))).await;
    assert_methods_in_manifest(&bot.emu);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_reaches_its_guidance_by_buttons() {
    every_flow(Mode::Buttons).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_reaches_its_guidance_by_replies_in_words() {
    every_flow(Mode::Words).await;
}

/// The flow table in Slack: each dialogue in a channel of its own, ten at once; the first turn a
/// mention, the others replies in its thread that do not mention the bot, each sent once the bot is
/// done with the one before; each turn's checks against the messages the bot posted after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_table_reads_the_same_in_slack() {
    let table = dialogues::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows.jsonl"));
    let kb = KnowledgeBase::builtin().expect("the shipped knowledge base loads");
    let bot = spawn_bot().await;
    let channels: Vec<String> = (0..table.len()).map(|i| format!("C0TABLE{i}")).collect();
    // ten at a time: the other tests of the binary run beside this one on two cores
    let problems: Vec<String> = stream::iter(table.iter().zip(&channels))
        .map(|(d, c)| play(&bot, &kb, d, c))
        .buffer_unordered(10)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n-----\n"));
    assert_methods_in_manifest(&bot.emu);
    bot.stop().await;
}

/// Which turns of `d` the dialogue engine answers (those the bot is waited for).
fn answered_turns(kb: &KnowledgeBase, d: &Dialogue) -> Vec<bool> {
    let mut state: Option<Conversation> = None;
    let mut out = Vec::new();
    for (i, turn) in d.turns.iter().enumerate() {
        let input = Input::Message {
            text: turn.say.clone(),
            addressed: i == 0,
        };
        let s = step(kb, state.as_ref(), &input, 1_700_000_000 + 30 * i as u64);
        out.push(!s.replies.is_empty());
        state = s.state;
    }
    out
}

/// Play `d` in `channel`; what the bot's replies got wrong, turn by turn.
async fn play(bot: &TestBot, kb: &KnowledgeBase, d: &Dialogue, channel: &str) -> Vec<String> {
    let answered = answered_turns(kb, d);
    let mut thread: Option<String> = None;
    let mut problems = Vec::new();
    for (i, turn) in d.turns.iter().enumerate() {
        let before = thread.as_ref().map_or(0, |t| bot.thread(channel, t).len());
        let post = match &thread {
            None => bot.mention(channel, &turn.say, None).await,
            Some(t) => bot.say(channel, USER, &turn.say, Some(t)).await,
        };
        let t = thread.get_or_insert(post.ts).clone();
        for p in &post.pushed {
            assert!(
                bot.emu.wait_ack(&p.envelope_id, WAIT).await.is_some(),
                "{}: acked",
                d.id
            );
        }
        if answered[i] {
            let what = format!("{}: the answer to {:?}", d.id, turn.say);
            bot.wait_thread(channel, &t, &what, |m| m.len() > before).await;
        }
        quiet(bot, channel).await;
        let msgs = bot.thread(channel, &t);
        let reply = shown_all(&msgs[before.min(msgs.len())..]);
        for p in turn.problems(&reply, Case::Exact) {
            problems.push(format!(
                "{} ({}), turn {}: the reply {p}:\n{reply}",
                d.id,
                d.kind,
                i + 1
            ));
        }
    }
    problems
}

/// Wait until no Web API call about `channel` arrives for [`QUIET`].
async fn quiet(bot: &TestBot, channel: &str) {
    let calls = || {
        bot.emu
            .calls()
            .iter()
            .filter(|c| c.param("channel") == Some(channel))
            .count()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = calls();
    loop {
        tokio::time::sleep(QUIET).await;
        let now = calls();
        if now == n || tokio::time::Instant::now() > deadline {
            return;
        }
        n = now;
    }
}

const LB_START: &str = "LoadBalancer service stuck with pending external IP";

/// The button labelled `label` of `message`: (action_id, value).
fn button(message: &Value, label: &str) -> (String, String) {
    let (_, id, value) = buttons(message)
        .into_iter()
        .find(|b| b.0 == label)
        .unwrap_or_else(|| panic!("no {label:?} button in:\n{}", shown(message)));
    (id, value)
}

/// The question after the `from`-th message of the bot's in `thread` that offers `label`.
async fn question(bot: &TestBot, channel: &str, thread: &str, from: usize, label: &str) -> Value {
    let msgs = bot
        .wait_thread(channel, thread, &format!("the question offering {label:?}"), |m| {
            with_button(m, from, label).is_some()
        })
        .await;
    with_button(&msgs, from, label).expect("just waited for it").clone()
}

/// Wait until the message `ts` shows `choice` answered by `user`, without buttons; returns it.
async fn answered_in_place(bot: &TestBot, channel: &str, thread: &str, ts: &str, choice: &str, user: &str) -> Value {
    let by = format!("answered by <@{user}>");
    let msgs = bot
        .wait_thread(channel, thread, &format!("{choice:?} {by} shown in place"), |m| {
            m.iter()
                .any(|x| x["ts"] == ts && buttons(x).is_empty() && shown(x).contains(choice) && shown(x).contains(&by))
        })
        .await;
    msgs.into_iter().find(|x| x["ts"] == ts).expect("just waited for it")
}

/// Where in `calls` the first call matching `what` is.
fn position(calls: &[ApiCall], what: impl Fn(&ApiCall) -> bool) -> Option<usize> {
    calls.iter().position(what)
}

#[tokio::test]
async fn a_question_answered_in_words_shows_the_answer_in_place_like_a_click() {
    let bot = spawn_bot().await;
    let post = bot.mention("C0WORDS", LB_START, None).await;
    let thread = post.ts.as_str();
    let infra = question(&bot, "C0WORDS", thread, 0, "VPC").await;
    let infra_ts = infra["ts"].as_str().unwrap();

    // Bob answers in the thread, in words, without mentioning the bot
    bot.say("C0WORDS", OTHER_USER, "it's a vpc cluster", Some(thread)).await;
    let marked = answered_in_place(&bot, "C0WORDS", thread, infra_ts, "VPC", OTHER_USER).await;
    assert!(
        shown(&marked).contains("Which infrastructure is the cluster on?"),
        "the question stays readable: {}",
        shown(&marked)
    );
    // and the flow goes on below it
    question(&bot, "C0WORDS", thread, 0, "IKS").await;
    let calls = bot.settle().await;
    let update = position(&calls, |c| c.method == "chat.update" && c.param("ts") == Some(infra_ts))
        .expect("the question was updated");
    let next = position(&calls, |c| {
        c.method == "chat.postMessage" && buttons(&as_message(c)).iter().any(|b| b.0 == "IKS")
    })
    .expect("the next question was posted");
    assert!(update < next, "the question is closed before the next one is asked");
    assert_eq!(
        calls.iter().filter(|c| c.method == "chat.update").count(),
        1,
        "one update, of the answered question only"
    );
    assert_methods_in_manifest(&bot.emu);
    bot.stop().await;
}

#[tokio::test]
async fn a_click_on_another_option_of_an_earlier_question_re_answers_it() {
    let bot = spawn_bot().await;
    let post = bot.mention("C0FIX", LB_START, None).await;
    let thread = post.ts.as_str();
    let infra = question(&bot, "C0FIX", thread, 0, "Classic").await;
    let infra_ts = infra["ts"].as_str().unwrap().to_string();
    // the buttons as the question showed them before it was answered
    let (classic_id, classic_value) = button(&infra, "Classic");
    let (vpc_id, vpc_value) = button(&infra, "VPC");
    bot.emu
        .push_block_action("C0FIX", USER, &infra_ts, Some(thread), &classic_id, &classic_value)
        .await;
    answered_in_place(&bot, "C0FIX", thread, &infra_ts, "Classic", USER).await;
    let platform = question(&bot, "C0FIX", thread, 0, "IKS").await;
    let (iks_id, iks_value) = button(&platform, "IKS");
    let platform_ts = platform["ts"].as_str().unwrap();
    bot.emu
        .push_block_action("C0FIX", USER, platform_ts, Some(thread), &iks_id, &iks_value)
        .await;
    let msgs = bot
        .wait_thread("C0FIX", thread, "the Classic IKS guidance", |m| {
            shown_all(m).contains("containers-cs_network_planning")
        })
        .await;
    assert!(
        !shown_all(&msgs).contains("containers-vpc-lbaas"),
        "{}",
        shown_all(&msgs)
    );
    let before = msgs.len();

    // it was VPC after all: a click on the first question's other option (still on screen for
    // someone whose client had not refreshed)
    bot.emu
        .push_block_action("C0FIX", OTHER_USER, &infra_ts, Some(thread), &vpc_id, &vpc_value)
        .await;
    answered_in_place(&bot, "C0FIX", thread, &infra_ts, "VPC", OTHER_USER).await;
    let msgs = bot
        .wait_thread("C0FIX", thread, "the IKS VPC guidance", |m| {
            shown_all(&m[before.min(m.len())..]).contains("containers-vpc-lbaas")
        })
        .await;
    let after = shown_all(&msgs[before..]);
    assert!(after.contains("Corrected"), "{after}");
    assert!(after.contains("IKS VPC"), "the platform answer still holds: {after}");
    assert!(!after.contains("Is it an IKS cluster"), "not asked again: {after}");
    assert_methods_in_manifest(&bot.emu);
    bot.stop().await;
}
