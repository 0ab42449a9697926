//! One conformance test for every `Store` backend (sled and in-memory), plus what only sled promises:
//! persistence across reopening, a clear error for a directory another process holds, and dropping
//! records of an unknown format.

use std::collections::BTreeMap;

use netrunbook::dialogue::{Conversation, Pending, FORMAT_VERSION};
use netrunbook::store::{MemoryStore, SledStore, Store, StoreError, ThreadKey, EVENT_MEMORY_SECS};

fn conversation(intent: &str, updated_at: u64) -> Conversation {
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
    }
}

/// Everything a backend must do, in one place.
fn conformance(store: &dyn Store) {
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
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.get(&key).unwrap(), Some(conversation("dns", 7)));
    assert!(!s.mark_event_seen("e", 8).unwrap());
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
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.get(&key).unwrap(), None);
    assert_eq!(s.purge(0, u64::MAX / 2).unwrap().conversations, 1);
}
