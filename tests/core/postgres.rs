//! The PostgreSQL backend against a real server: the store conformance test every backend passes,
//! what the database keeps across reopening, migrations (concurrent, and a newer schema refused),
//! the replicas' claims, heartbeats and journal, and TLS (`sslmode` require, verify-ca,
//! verify-full). Each test makes a database of its own (`testkit::pg`); without
//! `NETRUNBOOK_TEST_DATABASE_URL` they are skipped with a line saying so, unless
//! `NETRUNBOOK_REQUIRE_POSTGRES=1` (`.ci/run` sets both).

use std::time::Duration;

use netrunbook::store::replica::Replicas;
use netrunbook::store::{Change, Commit, FeedbackStore, PgStore, Store};
use netrunbook::vocab::{Inbound, InboundKind, ThreadKey};
use netrunbook_testkit::pg::TestDatabase;

use crate::store_conformance::{conformance, conversation};

/// Replicas "replica-a" and "replica-b" of one store on `db`, each with a first heartbeat.
fn two_replicas(db: &TestDatabase, lease: Duration) -> (impl Replicas, impl Replicas) {
    let store = PgStore::open(db.url(), 4).unwrap();
    let (a, b) = (
        store.replicas("replica-a".into(), lease),
        store.replicas("replica-b".into(), lease),
    );
    a.beat().unwrap();
    b.beat().unwrap();
    (a, b)
}

fn event(ts: &str, thread: &str) -> Inbound {
    Inbound {
        event_id: Some(format!("Ev{ts}")),
        team: "T1".into(),
        channel: "C1".into(),
        user: "U1".into(),
        ts: ts.into(),
        thread_ts: Some(thread.into()),
        text: "calico-node is crashlooping".into(),
        mentioned: true,
        is_bot: false,
        bot_id: None,
        edited: false,
        subtype: None,
        kind: InboundKind::Mention,
    }
}

#[test]
fn postgres_store_conforms() {
    let Some(db) = TestDatabase::create("conforms") else {
        return;
    };
    conformance(&PgStore::open(db.url(), 4).unwrap());
}

#[test]
fn postgres_keeps_everything_across_reopening() {
    let Some(db) = TestDatabase::create("reopen") else {
        return;
    };
    let key = ThreadKey::new("T", "C", "1.0");
    let first = {
        let s = PgStore::open(db.url(), 2).unwrap();
        s.count_answer("dns", 7).unwrap();
        s.commit(&Commit {
            thread: &key,
            conversation: Change::Put(&conversation("dns", 7)),
            events: &["ev:T:E1".to_string()],
            outbox: Some(b"replies"),
            now: 7,
        })
        .unwrap()
        .unwrap()
    };
    let s = PgStore::open(db.url(), 2).unwrap();
    assert_eq!(s.get(&key).unwrap(), Some(conversation("dns", 7)));
    assert!(s.was_seen("ev:T:E1").unwrap());
    assert_eq!(s.outbox(&key).unwrap(), vec![(first, b"replies".to_vec())]);
    assert_eq!(s.feedback().unwrap().answers["dns"], 1);
    assert_eq!(s.conversations().unwrap(), vec![(key.clone(), conversation("dns", 7))]);
    let second = s
        .commit(&Commit {
            thread: &key,
            conversation: Change::Keep,
            events: &[],
            outbox: Some(b"later"),
            now: 8,
        })
        .unwrap()
        .unwrap();
    assert!(second > first, "ids grow across reopening: {first} then {second}");
}

#[test]
fn replicas_starting_together_migrate_once() {
    let Some(db) = TestDatabase::create("migrate_once") else {
        return;
    };
    let url = db.url().to_string();
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url, 1).map(drop))
        })
        .collect();
    for t in opened {
        t.join().unwrap().unwrap();
    }
    assert_eq!(db.sql("SELECT count(*), max(version) FROM schema_migrations"), "1|1");
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let Some(db) = TestDatabase::create("newer_schema") else {
        return;
    };
    PgStore::open(db.url(), 1).unwrap();
    db.sql("INSERT INTO schema_migrations (version) VALUES (99)");
    let err = PgStore::open(db.url(), 1).unwrap_err().to_string();
    assert!(err.contains("version 99") && err.contains("newer"), "{err}");
}

#[test]
fn an_unreachable_database_is_a_transient_error_without_the_password() {
    // port 1 on loopback: nothing listens there
    let err = PgStore::open("postgres://bot:s3cr3t-pw@127.0.0.1:1/nrb?connect_timeout=2", 1).unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
}

#[test]
fn one_replica_at_a_time_works_a_thread_and_a_silent_one_loses_its_claims() {
    let Some(db) = TestDatabase::create("claims") else {
        return;
    };
    let lease = Duration::from_millis(1500);
    let (a, b) = two_replicas(&db, lease);
    let t1 = ThreadKey::new("T1", "C1", "1.1");
    let t2 = ThreadKey::new("T1", "C1", "2.2");
    assert!(a.claim(&t1).unwrap());
    assert!(a.claim(&t1).unwrap(), "the holder may claim again");
    assert!(!b.claim(&t1).unwrap(), "a live replica's claim holds");
    assert!(b.claim(&t2).unwrap(), "other threads are free");
    a.release(&t1);
    assert!(b.claim(&t1).unwrap(), "released");
    b.release(&t1);
    assert!(a.claim(&t1).unwrap());
    // a stops beating; b keeps beating and gets the thread once a's lease ran out
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut waited = Duration::ZERO;
    while !b.claim(&t1).unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "a silent replica's claim never lapsed"
        );
        b.beat().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    assert!(
        waited >= Duration::from_millis(1000),
        "the claim lapsed after {waited:?}, before the lease"
    );
}

#[test]
fn journaled_events_are_handed_back_put_off_and_taken_over_from_a_silent_replica() {
    let Some(db) = TestDatabase::create("journal") else {
        return;
    };
    let lease = Duration::from_millis(1000);
    let (a, b) = two_replicas(&db, lease);
    let done = a.journal(&event("1.1", "1.0")).unwrap();
    let put_off = a.journal(&event("1.2", "1.0")).unwrap();
    let _in_hand = a.journal(&event("1.3", "1.0")).unwrap();
    assert_eq!(db.sql("SELECT count(*) FROM inbox"), "3");
    done.done();
    assert_eq!(
        db.sql("SELECT count(*) FROM inbox"),
        "2",
        "a done event leaves the journal"
    );
    drop(put_off);
    // a's own beat hands back only the entry it put off, not the one in hand
    let back = a.beat().unwrap();
    assert_eq!(back.iter().map(|(i, _)| i.ts.as_str()).collect::<Vec<_>>(), ["1.2"]);
    assert!(b.beat().unwrap().is_empty(), "a live replica's events are not taken");
    drop(back);
    drop(_in_hand);
    // a goes silent: b takes both over, oldest first, once the lease ran out
    std::thread::sleep(Duration::from_millis(1200));
    let taken = b.beat().unwrap();
    assert_eq!(
        taken.iter().map(|(i, _)| i.ts.as_str()).collect::<Vec<_>>(),
        ["1.2", "1.3"]
    );
    assert_eq!(taken[0].0, event("1.2", "1.0"), "the event comes back whole");
    assert_eq!(db.sql("SELECT DISTINCT owner FROM inbox"), "replica-b");
    for (_, t) in taken {
        t.done();
    }
    assert_eq!(db.sql("SELECT count(*) FROM inbox"), "0");
    // leaving removes the heartbeat and the claims at once
    assert!(b.claim(&ThreadKey::new("T1", "C1", "9.9")).unwrap());
    b.leave();
    assert_eq!(db.sql("SELECT count(*) FROM thread_claims"), "0");
    assert_eq!(db.sql("SELECT count(*) FROM replicas WHERE id = 'replica-b'"), "0");
}

#[test]
fn journaling_and_claiming_are_signs_of_life_after_the_database_was_away() {
    let Some(db) = TestDatabase::create("signs_of_life") else {
        return;
    };
    let lease = Duration::from_millis(1000);
    let (a, b) = two_replicas(&db, lease);
    // the database was away for longer than the lease: nobody could beat
    db.sql("UPDATE replicas SET seen_at = now() - interval '10 seconds'");
    // back, a journals and claims before its next beat; then b beats first
    let thread = ThreadKey::new("T1", "C1", "5.0");
    let _in_hand = a.journal(&event("5.1", "5.0")).unwrap();
    assert!(a.claim(&thread).unwrap());
    assert!(
        b.beat().unwrap().is_empty(),
        "a live replica's events are not taken over"
    );
    assert_eq!(db.sql("SELECT DISTINCT owner FROM inbox"), "replica-a");
    assert!(!b.claim(&thread).unwrap(), "a live replica's claim holds");
    a.release(&thread);
    assert!(b.claim(&thread).unwrap());
}

#[test]
fn a_claim_whose_release_failed_is_given_back_by_the_next_beat() {
    let Some(db) = TestDatabase::create("left_behind") else {
        return;
    };
    let lease = Duration::from_millis(1000);
    let (a, b) = two_replicas(&db, lease);
    let (left, working) = (ThreadKey::new("T1", "C1", "6.0"), ThreadKey::new("T1", "C1", "7.0"));
    assert!(a.claim(&left).unwrap());
    assert!(a.claim(&working).unwrap());
    // the release fails (the database away at that moment: here a trigger refuses it)
    db.sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;
         CREATE TRIGGER refuse BEFORE DELETE ON thread_claims FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    a.release(&left);
    db.sql("DROP TRIGGER refuse ON thread_claims; DROP FUNCTION refuse()");
    assert!(!b.claim(&left).unwrap(), "left behind, the claim still holds");
    a.beat().unwrap();
    assert!(b.claim(&left).unwrap(), "a's next beat gave it back");
    assert!(!b.claim(&working).unwrap(), "the claim of a thread a is working holds");
}

/// The server's own certificate (Debian's snakeoil, CN and SAN `localhost`), when it has one and TLS on.
fn server_cert(db: &TestDatabase) -> Option<&'static str> {
    let pem = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let on = db.sql("SHOW ssl") == "on";
    let ours = db.sql("SHOW ssl_cert_file") == pem;
    if !(on && ours && std::path::Path::new(pem).exists()) {
        eprintln!("TLS tests skipped: the server has no TLS, or not Debian's snakeoil certificate");
        return None;
    }
    Some(pem)
}

#[test]
fn tls_require_verify_ca_and_verify_full_connect_and_a_wrong_name_is_refused() {
    let Some(db) = TestDatabase::create("tls") else { return };
    let Some(pem) = server_cert(&db) else { return };
    let url = db.url();
    let with = |host: &str, params: &str| {
        let u = url.replacen("127.0.0.1", host, 1);
        let sep = if u.contains('?') { '&' } else { '?' };
        format!("{u}{sep}{params}")
    };
    for ok in [
        with("127.0.0.1", "sslmode=require"),
        with("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={pem}")),
        with("localhost", &format!("sslmode=verify-full&sslrootcert={pem}")),
    ] {
        let s = PgStore::open(&ok, 1).unwrap_or_else(|e| panic!("{ok}: {e:?}"));
        assert!(s.ping(), "{ok}");
        // the session really is encrypted
        let key = ThreadKey::new("T", "C", "1.0");
        s.put(&key, &conversation("dns", 1)).unwrap();
    }
    // the certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca does not care
    let err = PgStore::open(&with("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={pem}")), 1).unwrap_err();
    let chain = format!("{err:?}");
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    let ssl_sessions = db.sql("SELECT count(*) FROM pg_stat_ssl WHERE ssl");
    assert!(ssl_sessions.parse::<u32>().unwrap() >= 1, "{ssl_sessions}");
}

#[test]
fn migrate_moves_a_stopped_sled_store_into_postgres_and_can_run_again() {
    use netrunbook::feedback::{Doubt, Unanswered, Vote, VoteKind};
    use netrunbook::inbox::Inbox;
    use netrunbook::store::SledStore;

    let Some(db) = TestDatabase::create("migrate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = ThreadKey::new("T1", "C1", "1.0");
    let vote = Vote {
        thread: key.clone(),
        intent: "dns".into(),
        user: "U1".into(),
        kind: VoteKind::Up,
        at: 7,
        question: None,
    };
    {
        let sled = SledStore::open(dir.path()).unwrap();
        sled.commit(&Commit {
            thread: &key,
            conversation: Change::Put(&conversation("dns", 7)),
            events: &["ev:T1:E1".to_string()],
            outbox: Some(b"a reply not delivered yet"),
            now: 7,
        })
        .unwrap();
        sled.count_answer("dns", 7).unwrap();
        sled.count_alert("calico", 7).unwrap();
        sled.put_vote(&vote).unwrap();
        sled.note_unanswered(&Unanswered::new("what is iam", Doubt::Abstained, None, 7))
            .unwrap();
        sled.flush().unwrap();
        // an event acknowledged and not handled when the bot stopped
        let (inbox, _) = Inbox::open(dir.path().join("inbox")).unwrap();
        drop(inbox.append(&event("2.1", "2.0")));
    }
    // sled releases its directory lock shortly after the last handle is dropped
    let dir_arg = dir.path().to_str().unwrap();
    let migrate = || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let o = crate::cli::run(&["migrate", "--from-db", dir_arg, "--to", db.url()], None);
            if o.status.success() || std::time::Instant::now() > deadline {
                return o;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let o = migrate();
    assert!(o.status.success(), "{}", crate::cli::stderr(&o));
    let said = crate::cli::stdout(&o);
    assert!(said.contains("conversations: 1 of 1"), "{said}");
    assert!(said.contains("journaled events handed to the replicas: 1"), "{said}");
    assert!(
        !said.contains("netrunbook:netrunbook@"),
        "the password is never printed: {said}"
    );
    let journal_files = std::fs::read_dir(dir.path().join("inbox")).unwrap().count();
    assert_eq!(journal_files, 0, "the journal's files go once copied");

    let pg = PgStore::open(db.url(), 2).unwrap();
    assert_eq!(pg.get(&key).unwrap(), Some(conversation("dns", 7)));
    assert!(pg.was_seen("ev:T1:E1").unwrap());
    assert_eq!(pg.outbox(&key).unwrap().len(), 1);
    let data = pg.feedback().unwrap();
    assert_eq!(data.answers["dns"], 1);
    assert_eq!(data.alerts["calico"], 1);
    assert_eq!(data.votes, vec![vote]);
    assert_eq!(data.unanswered.len(), 1);

    // again: nothing is doubled
    let o = migrate();
    assert!(o.status.success(), "{}", crate::cli::stderr(&o));
    assert_eq!(pg.outbox(&key).unwrap().len(), 1, "the outbox is not copied twice");
    assert_eq!(pg.feedback().unwrap().answers["dns"], 1, "counts are not added twice");

    // the journaled event goes to the first replica that beats
    let r = pg.replicas("replica-a".into(), Duration::from_secs(5));
    let taken = r.beat().unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].0, event("2.1", "2.0"));
}

#[test]
fn a_threads_earlier_events_are_found_whichever_replica_journaled_them() {
    let Some(db) = TestDatabase::create("earlier") else {
        return;
    };
    let (a, b) = two_replicas(&db, Duration::from_secs(5));
    let first = event("1700000000.000200", "1700000000.000100");
    let second = event("1700000000.000300", "1700000000.000100");
    let other_thread = event("1700000000.000250", "1700000000.000900");
    let _t1 = b.journal(&first).unwrap();
    let _t2 = a.journal(&second).unwrap();
    let _t3 = b.journal(&other_thread).unwrap();
    let earlier = a.earlier(&second).unwrap();
    assert_eq!(
        earlier.iter().map(|(i, _)| i.ts.as_str()).collect::<Vec<_>>(),
        ["1700000000.000200"]
    );
    assert!(a.earlier(&first).unwrap().is_empty(), "nothing before the first");
    for (_, t) in earlier {
        t.done();
    }
    assert!(a.earlier(&second).unwrap().is_empty(), "done: gone from the journal");
}
