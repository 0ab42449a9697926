//! One conformance test for every `Store` backend (sled and in-memory), conversations and feedback,
//! plus what only sled promises: persistence across reopening, a clear error for a directory another
//! process holds, and dropping records of an unknown format.

use std::collections::BTreeMap;

use netrunbook::dialogue::{Conversation, Pending, FORMAT_VERSION};
use netrunbook::feedback::{Doubt, Unanswered, Vote, VoteKind};
use netrunbook::store::{
    Change, Commit, FeedbackData, FeedbackStore, MemoryStore, PurgedFeedback, SledStore, Store, StoreError, DAY_SECS,
    EVENT_MEMORY_SECS,
};
use netrunbook::vocab::ThreadKey;

pub(crate) fn conversation(intent: &str, updated_at: u64) -> Conversation {
    Conversation {
        format: FORMAT_VERSION,
        kb_version: "test".into(),
        intent: Some(intent.into()),
        pending: Pending::Question { node: "infra".into() },
        slots: BTreeMap::from([("platform".to_string(), "iks".to_string())]),
        details: BTreeMap::new(),
        origin: "LB has no external ip <!channel> \u{202e} 🚒".into(),
        trail: vec![],
        started_at: updated_at,
        updated_at,
        asked: vec![],
    }
}

/// Everything a backend must do, in one place.
pub(crate) fn conformance(store: &dyn Store) {
    let a = ThreadKey::new("T1", "C1", "1700000000.000100");
    let b = ThreadKey::new("T1", "C1", "1700000000.000200");
    let other_team = ThreadKey::new("T2", "C1", "1700000000.000100");

    // get / put / remove, keyed by the whole (team, channel, thread)
    assert_eq!(store.get(&a).unwrap(), None);
    let ca = conversation("loadbalancer", 1_000);
    store.put(&a, &ca).unwrap();
    assert_eq!(store.get(&a).unwrap(), Some(ca.clone()));
    assert_eq!(store.get(&b).unwrap(), None);
    assert_eq!(store.get(&other_team).unwrap(), None);
    let ca2 = conversation("dns", 1_100);
    store.put(&a, &ca2).unwrap();
    assert_eq!(store.get(&a).unwrap(), Some(ca2.clone()), "put replaces");
    store.remove(&a).unwrap();
    assert_eq!(store.get(&a).unwrap(), None);
    store.remove(&a).unwrap(); // removing nothing is fine

    // events: true the first time only
    assert!(store.mark_event_seen("ev:T1:Ev1", 5_000).unwrap());
    assert!(!store.mark_event_seen("ev:T1:Ev1", 5_001).unwrap());
    assert!(store.mark_event_seen("ev:T1:Ev2", 5_001).unwrap());

    // purge: idle conversations and old events go, the rest stays
    store.put(&a, &conversation("dns", 1_000)).unwrap();
    store.put(&b, &conversation("dns", 9_000)).unwrap();
    let purged = store.purge(10_000, 5_000).unwrap();
    assert_eq!(purged.conversations, 1);
    assert_eq!(store.get(&a).unwrap(), None);
    assert!(store.get(&b).unwrap().is_some());
    assert_eq!(purged.events, 0, "events younger than the memory stay");
    assert!(
        !store.mark_event_seen("ev:T1:Ev1", 10_000).unwrap(),
        "still remembered after a purge"
    );
    let purged = store.purge(5_001 + EVENT_MEMORY_SECS + 1, u64::MAX / 2).unwrap();
    assert_eq!(purged.events, 2);
    assert!(
        store.mark_event_seen("ev:T1:Ev1", 20_000).unwrap(),
        "forgotten after the memory"
    );
    store.flush().unwrap();

    commit_conformance(store);
    feedback_conformance(store);
}

/// `commit`: a step's conversation, its event marks and its outbox record, together; the outbox.
fn commit_conformance(store: &dyn Store) {
    let t = ThreadKey::new("T1", "C2", "1700000000.000300");
    let c = conversation("loadbalancer", 30_000);
    let events = ["ev:T1:Ev9".to_string(), "msg:T1:C2:1700000000.000300".to_string()];
    assert!(!store.was_seen(&events[0]).unwrap());
    let commit = |conversation, events: &[String], outbox: Option<&[u8]>| {
        store
            .commit(&Commit {
                thread: &t,
                conversation,
                events,
                outbox,
                now: 30_000,
            })
            .unwrap()
    };
    let first = commit(Change::Put(&c), &events, Some(b"first replies")).expect("an outbox id");
    assert_eq!(store.get(&t).unwrap(), Some(c.clone()));
    assert!(store.was_seen(&events[0]).unwrap() && store.was_seen(&events[1]).unwrap());
    assert!(
        !store.mark_event_seen(&events[0], 30_001).unwrap(),
        "committed events count as handled"
    );
    // the fence: a step whose event is already handled (by another replica) writes nothing
    let late = store.commit(&Commit {
        thread: &t,
        conversation: Change::Put(&conversation("dns", 30_002)),
        events: &["ev:T1:EvNew".to_string(), events[1].clone()],
        outbox: Some(b"a second answer"),
        now: 30_002,
    });
    assert!(
        matches!(&late, Err(StoreError::AlreadyHandled { event }) if *event == events[1]),
        "{late:?}"
    );
    assert_eq!(store.get(&t).unwrap(), Some(c.clone()), "nothing of it was written");
    assert!(!store.was_seen("ev:T1:EvNew").unwrap());
    assert_eq!(store.outbox(&t).unwrap().len(), 1);
    let second = commit(Change::Keep, &[], Some(b"second")).expect("an outbox id");
    assert!(second > first, "outbox ids grow: {first} then {second}");
    assert_eq!(store.get(&t).unwrap().as_ref(), Some(&c), "Keep keeps");
    assert_eq!(commit(Change::Keep, &[], None), None, "an empty commit");
    assert_eq!(
        store.outbox(&t).unwrap(),
        vec![(first, b"first replies".to_vec()), (second, b"second".to_vec())],
        "oldest first"
    );
    // another thread's records are its own; one whose key extends this one's is not confused with it
    let other = ThreadKey::new("T1", "C2", "1700000000.0003001");
    let theirs = store
        .commit(&Commit {
            thread: &other,
            conversation: Change::Keep,
            events: &[],
            outbox: Some(b"theirs"),
            now: 30_000,
        })
        .unwrap()
        .expect("an outbox id");
    assert_eq!(store.outbox(&other).unwrap(), vec![(theirs, b"theirs".to_vec())]);
    assert_eq!(store.outbox(&t).unwrap().len(), 2);
    let mut threads = store.outbox_threads().unwrap();
    threads.sort();
    assert_eq!(threads, vec![(t.clone(), 2), (other.clone(), 1)]);
    store.set_outbox(&t, first, Some(b"first, one delivered")).unwrap();
    assert_eq!(store.outbox(&t).unwrap()[0], (first, b"first, one delivered".to_vec()));
    store.set_outbox(&t, first, None).unwrap();
    store.set_outbox(&t, second, None).unwrap();
    store.set_outbox(&t, second, None).unwrap(); // removing nothing is fine
    assert!(store.outbox(&t).unwrap().is_empty());
    assert_eq!(store.outbox_threads().unwrap(), vec![(other.clone(), 1)]);
    store.set_outbox(&other, theirs, None).unwrap();
    assert!(store.outbox_threads().unwrap().is_empty());
    assert_eq!(commit(Change::Remove, &[], None), None);
    assert_eq!(store.get(&t).unwrap(), None, "Remove forgets the thread");
    let purged = store.purge(30_000 + EVENT_MEMORY_SECS + 1, u64::MAX / 2).unwrap();
    assert!(purged.events >= 2, "committed events expire like the others");
    assert!(!store.was_seen(&events[0]).unwrap());
}

fn vote(thread: &ThreadKey, intent: &str, user: &str, kind: VoteKind, at: u64) -> Vote {
    Vote {
        thread: thread.clone(),
        intent: intent.into(),
        user: user.into(),
        kind,
        at,
        question: None,
    }
}

/// Sorted, so backends that iterate in different orders compare equal.
fn sorted(mut d: FeedbackData) -> FeedbackData {
    d.votes
        .sort_by(|a, b| (&a.thread, &a.intent, &a.user).cmp(&(&b.thread, &b.intent, &b.user)));
    d.unanswered.sort_by(|a, b| a.signature.cmp(&b.signature));
    d
}

fn feedback_conformance(store: &dyn Store) {
    let t1 = ThreadKey::new("T1", "C1", "1.0");
    let t2 = ThreadKey::new("T1", "C1", "2.0");
    let day = 20_000 * DAY_SECS;
    assert_eq!(store.feedback().unwrap(), FeedbackData::default(), "starts empty");

    // answers: counted per intent, across days
    store.count_answer("dns", day + 10).unwrap();
    store.count_answer("dns", day + 20).unwrap();
    store.count_answer("dns", day + DAY_SECS + 5).unwrap();
    store.count_answer("loadbalancer", day + 30).unwrap();

    // votes: one per user, intent and thread; the latest wins
    store.put_vote(&vote(&t1, "dns", "U1", VoteKind::Up, day + 40)).unwrap();
    store
        .put_vote(&vote(&t1, "dns", "U1", VoteKind::Down, day + 41))
        .unwrap();
    store.put_vote(&vote(&t1, "dns", "U2", VoteKind::Up, day + 42)).unwrap();
    store.put_vote(&vote(&t2, "dns", "U1", VoteKind::Up, day + 43)).unwrap();
    let wrong = VoteKind::WrongTopic {
        picked: "calico-node".into(),
    };
    store
        .put_vote(&vote(&t2, "loadbalancer", "U3", wrong.clone(), day + 44))
        .unwrap();

    // unanswered: counted per signature, the latest example kept
    let first = Unanswered::new("how do I resize PVC 12", Doubt::Abstained, None, day + 50);
    assert_eq!(store.note_unanswered(&first).unwrap(), 1);
    let again = Unanswered::new("How do I resize PVC 99", Doubt::LowMargin, Some("dns".into()), day + 60);
    assert_eq!(store.note_unanswered(&again).unwrap(), 2);
    let other = Unanswered::new("billing question", Doubt::Abstained, None, day + DAY_SECS + 100);
    assert_eq!(store.note_unanswered(&other).unwrap(), 1);

    let data = sorted(store.feedback().unwrap());
    assert_eq!(
        data.answers,
        BTreeMap::from([("dns".to_string(), 3), ("loadbalancer".to_string(), 1)])
    );
    assert_eq!(
        data.votes,
        vec![
            vote(&t1, "dns", "U1", VoteKind::Down, day + 41),
            vote(&t1, "dns", "U2", VoteKind::Up, day + 42),
            vote(&t2, "dns", "U1", VoteKind::Up, day + 43),
            vote(&t2, "loadbalancer", "U3", wrong, day + 44),
        ]
    );
    assert_eq!(data.unanswered.len(), 2);
    let pvc = &data.unanswered[1];
    assert_eq!(pvc.signature, "how do i resize pvc");
    assert_eq!((pvc.count, pvc.first_at, pvc.last_at), (2, day + 50, day + 60));
    assert_eq!(pvc.example, "How do I resize PVC 99");
    assert_eq!((pvc.doubt, pvc.guess.as_deref()), (Doubt::LowMargin, Some("dns")));

    // retention: answer days that ended, votes cast and signatures last seen before it go
    let purged = store.purge_feedback(day + DAY_SECS + 1, DAY_SECS - 43).unwrap();
    assert_eq!(
        purged,
        PurgedFeedback {
            answer_days: 0,
            votes: 3,
            unanswered: 0
        }
    );
    let purged = store.purge_feedback(day + 2 * DAY_SECS + 1, DAY_SECS - 65).unwrap();
    assert_eq!(
        purged,
        PurgedFeedback {
            answer_days: 2,
            votes: 1,
            unanswered: 1
        }
    );
    let data = sorted(store.feedback().unwrap());
    assert_eq!(
        data.answers,
        BTreeMap::from([("dns".to_string(), 1)]),
        "the later day stays"
    );
    assert!(data.votes.is_empty());
    assert_eq!(data.unanswered.len(), 1);
    assert_eq!(data.unanswered[0].signature, "billing question");
    let purged = store.purge_feedback(u64::MAX / 2, 0).unwrap();
    assert_eq!((purged.answer_days, purged.unanswered), (1, 1));
    assert_eq!(store.feedback().unwrap(), FeedbackData::default());
    store.flush().unwrap();
}

#[test]
fn memory_store_conforms() {
    conformance(&MemoryStore::new());
}

#[test]
fn sled_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&SledStore::open(dir.path().join("db")).unwrap());
}

/// Open a sled store that a dropped `SledStore` held a moment ago: sled's background flusher
/// releases the directory's lock shortly after the last handle is dropped, not at once.
fn reopen(dir: &std::path::Path) -> SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(dir) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other.unwrap(),
        }
    }
}

#[test]
fn sled_keeps_the_outbox_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = ThreadKey::new("T", "C", "1.0");
    let first = {
        let s = SledStore::open(dir.path()).unwrap();
        let commit = Commit {
            thread: &key,
            conversation: Change::Put(&conversation("dns", 7)),
            events: &["ev:T:E1".to_string()],
            outbox: Some(b"replies"),
            now: 7,
        };
        // commit flushes by itself: no flush here
        s.commit(&commit).unwrap().unwrap()
    };
    let s = reopen(dir.path());
    assert_eq!(s.get(&key).unwrap(), Some(conversation("dns", 7)));
    assert!(s.was_seen("ev:T:E1").unwrap());
    assert_eq!(s.outbox(&key).unwrap(), vec![(first, b"replies".to_vec())]);
    assert_eq!(s.outbox_threads().unwrap(), vec![(key.clone(), 1)]);
    let commit = Commit {
        thread: &key,
        conversation: Change::Keep,
        events: &[],
        outbox: Some(b"later"),
        now: 8,
    };
    let second = s.commit(&commit).unwrap().unwrap();
    assert!(second > first, "ids grow across reopening: {first} then {second}");
}

#[test]
fn sled_keeps_conversations_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = ThreadKey::new("T", "C", "1.0");
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.put(&key, &conversation("dns", 7)).unwrap();
        assert!(s.mark_event_seen("e", 7).unwrap());
        s.flush().unwrap();
    }
    let s = reopen(dir.path());
    assert_eq!(s.get(&key).unwrap(), Some(conversation("dns", 7)));
    assert!(!s.mark_event_seen("e", 8).unwrap());
}

#[test]
fn sled_keeps_feedback_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = ThreadKey::new("T", "C", "1.0");
    {
        let s = SledStore::open(dir.path()).unwrap();
        s.count_answer("dns", 7).unwrap();
        s.put_vote(&vote(&key, "dns", "U1", VoteKind::Up, 7)).unwrap();
        s.note_unanswered(&Unanswered::new("what is iam", Doubt::Abstained, None, 7))
            .unwrap();
        s.flush().unwrap();
    }
    let data = reopen(dir.path()).feedback().unwrap();
    assert_eq!(data.answers["dns"], 1);
    assert_eq!(data.votes, vec![vote(&key, "dns", "U1", VoteKind::Up, 7)]);
    assert_eq!(data.unanswered[0].count, 1);
}

#[test]
fn a_held_directory_gives_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStore::open(dir.path()).unwrap();
    let err = SledStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains("another process"), "{msg}");
}

#[test]
fn records_of_an_unknown_format_are_dropped_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let key = ThreadKey::new("T", "C", "1.0");
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("conversations").unwrap();
        tree.insert(
            b"T\0C\x001.0",
            br#"{"format":999,"conversation":{"whatever":true}}"#.to_vec(),
        )
        .unwrap();
        db.flush().unwrap();
    }
    let s = reopen(dir.path());
    assert_eq!(s.get(&key).unwrap(), None);
    assert_eq!(s.purge(0, u64::MAX / 2).unwrap().conversations, 1);
}
