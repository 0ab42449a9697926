//! Golden tests of every format the bot keeps on disk: a thread's conversation, an outbox record, an
//! inbox journal line, and the feedback records (a vote, an unanswered question). Each file under
//! `tests/data/golden/` holds bytes as a released binary wrote them; the test reads them with the
//! real decoder and writes the value back with the real encoder, and the two must agree. A change to
//! a stored type (a reply, a conversation field) therefore fails here until someone decides: the old
//! bytes still read (then re-bless), or the format's version is bumped (and the old records are
//! dropped, as documented at each `*_FORMAT`).
//!
//! Re-bless after a deliberate change: `NETRUNBOOK_BLESS=1 cargo test --lib golden` writes the files
//! from the samples below; review the diff like code.

use std::path::PathBuf;

use serde_json::Value;

use crate::dialogue::{self, Conversation, Input};
use crate::feedback::{Doubt, Unanswered, Vote, VoteKind};
use crate::inbox::Entry;
use crate::kb::KnowledgeBase;
use crate::outbox::Parcel;
use crate::store::{decode_record, encode_record, Stored};
use crate::vocab::{Action, Inbound, InboundKind, Message, Outbound, ThreadKey};

fn file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(name)
}

/// Compare `encoded` (what the encoder writes for the value decoded from the golden file) with the
/// file; with `NETRUNBOOK_BLESS=1`, write `sample` there instead.
fn check(name: &str, sample: impl FnOnce() -> Vec<u8>, roundtrip: impl FnOnce(&[u8]) -> Vec<u8>) {
    let path = file(name);
    if std::env::var_os("NETRUNBOOK_BLESS").is_some() {
        let v: Value = serde_json::from_slice(&sample()).expect("a sample is JSON");
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("the golden folder");
        std::fs::write(&path, serde_json::to_string_pretty(&v).expect("JSON") + "\n").expect("a golden file");
        return;
    }
    let pinned = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // the stored bytes are compact JSON; the pinned file is pretty for review
    let compact = serde_json::to_vec(&serde_json::from_slice::<Value>(&pinned).expect("golden JSON")).expect("JSON");
    let again: Value = serde_json::from_slice(&roundtrip(&compact)).expect("the encoder writes JSON");
    let want: Value = serde_json::from_slice(&pinned).expect("golden JSON");
    assert_eq!(
        again, want,
        "{name}: the stored format changed. If old records must still read, keep them readable and \
         re-bless (NETRUNBOOK_BLESS=1); otherwise bump the format's version"
    );
}

fn kb() -> KnowledgeBase {
    KnowledgeBase::builtin().expect("built-in knowledge base")
}

fn thread() -> ThreadKey {
    ThreadKey::new("T1", "C1", "1700000000.000100")
}

/// A conversation two steps in: a question asked and answered, the next one pending.
fn conversation(kb: &KnowledgeBase) -> Conversation {
    let say = |text: &str| Input::Message {
        text: text.into(),
        addressed: true,
    };
    let first = dialogue::step(kb, None, &say("LoadBalancer service stuck pending, no external IP"), 10);
    let second = dialogue::step(kb, first.state.as_ref(), &say("VPC, IKS"), 20);
    second.state.or(first.state).expect("a conversation")
}

fn inbound() -> Inbound {
    Inbound {
        event_id: Some("Ev01".into()),
        team: "T1".into(),
        channel: "C1".into(),
        user: "U1".into(),
        ts: "1700000000.000200".into(),
        thread_ts: Some("1700000000.000100".into()),
        text: "calico-node is in CrashLoopBackOff".into(),
        mentioned: true,
        is_bot: false,
        bot_id: None,
        edited: false,
        subtype: None,
        kind: InboundKind::Mention,
    }
}

#[test]
fn a_stored_conversation_reads_and_writes_as_pinned() {
    check(
        "conversation.json",
        || Stored::encode(&conversation(&kb())).expect("encodes"),
        |bytes| {
            let c = Stored::decode(&thread(), bytes).expect("reads").expect("this format");
            Stored::encode(&c).expect("encodes")
        },
    );
}

#[test]
fn an_outbox_record_reads_and_writes_as_pinned() {
    check(
        "outbox.json",
        || {
            let kb = kb();
            let step = dialogue::step(
                &kb,
                None,
                &Input::Message {
                    text: "LoadBalancer service stuck pending, no external IP".into(),
                    addressed: true,
                },
                10,
            );
            let escalation = dialogue::step(&kb, step.state.as_ref(), &Input::Escalate, 11);
            let mut replies = step.replies;
            replies.extend(escalation.replies);
            let items = vec![
                Outbound::MarkAnswered {
                    channel: "C1".into(),
                    thread_ts: "1700000000.000100".into(),
                    node: "infra".into(),
                    message: Message::Answered {
                        question: "Classic or VPC?".into(),
                        choice: "VPC".into(),
                        user: "U1".into(),
                    },
                },
                Outbound::Post {
                    channel: "C1".into(),
                    thread_ts: Some("1700000000.000100".into()),
                    message: Message::Replies(replies),
                },
                Outbound::Post {
                    channel: "C1".into(),
                    thread_ts: Some("1700000000.000100".into()),
                    message: Message::Help {
                        topics: kb.topic_groups(),
                    },
                },
                Outbound::Respond {
                    response_url: "https://hooks.slack.com/actions/T1/1/x".into(),
                    message: None,
                },
                Outbound::PostRoot {
                    channel: "C1".into(),
                    message: Message::Notice("shared".into()),
                    then: Box::new(Inbound {
                        kind: InboundKind::Action {
                            action: Action::Feedback {
                                intent: "dns".into(),
                                helpful: true,
                            },
                            response_url: None,
                        },
                        ..inbound()
                    }),
                },
            ];
            Parcel::new(thread(), 10, &kb.version, items).encode()
        },
        |bytes| Parcel::decode(1, bytes).expect("reads").encode(),
    );
}

#[test]
fn an_inbox_line_reads_and_writes_as_pinned() {
    check(
        "inbox.json",
        || Entry::encode(&inbound()).expect("encodes"),
        |bytes| Entry::encode(&Entry::decode(bytes).expect("reads")).expect("encodes"),
    );
}

#[test]
fn feedback_records_read_and_write_as_pinned() {
    check(
        "vote.json",
        || {
            encode_record(&Vote {
                thread: thread(),
                intent: "lb".into(),
                user: "U1".into(),
                kind: VoteKind::WrongTopic { picked: "dns".into() },
                at: 30,
                question: Some("LB pending".into()),
            })
        },
        |bytes| encode_record(&decode_record::<Vote>("votes", bytes).expect("reads")),
    );
    check(
        "unanswered.json",
        || {
            encode_record(&Unanswered::new(
                "how do I pay my invoice? token=abc",
                Doubt::Abstained,
                None,
                40,
            ))
        },
        |bytes| encode_record(&decode_record::<Unanswered>("unanswered", bytes).expect("reads")),
    );
}
