//! The sled directory: held by another running instance, unwritable, or full. Each must stop the bot
//! at start-up with a non-zero exit and a message naming the directory and the cause, before it
//! talks to Slack; the instance that holds a directory keeps serving. A disk that fills while the
//! bot serves is logged at ERROR for every conversation it cannot save (never silently) and the bot
//! stays up.
//!
//! We run as root, so permission bits stop nothing: "unwritable" is a path under a regular file, a
//! path under `/proc`, and (where `mount` is permitted) a read-only tmpfs. "Full" is RLIMIT_FSIZE on
//! the bot (`ulimit -f`, SIGXFSZ ignored: writes fail with EFBIG) and (where `mount` is permitted) a
//! full 256 KiB tmpfs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use netrunbook_testkit::driver::{self, incident_script, Load};
use netrunbook_testkit::process::{BotProcess, Options};
use netrunbook_testkit::slack_emulator::SlackEmulator;

use crate::{options, Rig};

const EXIT: Duration = Duration::from_secs(30);

/// Start the bot on `db`; it must exit non-zero, say `needles` and nothing alarming, and not have
/// talked to Slack. Returns its standard error.
async fn refuses(what: &str, db: &Path, opts: &Options, needles: &[&str]) -> String {
    let emu = SlackEmulator::start().await;
    let (code, err) = BotProcess::run_to_exit(&emu, db, opts, EXIT).await;
    evidence!("{what}: exit {code:?}: {}", err.lines().last().unwrap_or_default());
    assert!(code.is_some_and(|c| c != 0), "{what}: exit {code:?}\n{err}");
    for n in needles {
        assert!(err.contains(n), "{what}: the message says {n:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(
        emu.calls_to("apps.connections.open").is_empty(),
        "{what}: it did not connect to Slack"
    );
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_held_by_another_running_instance_is_a_clear_error() {
    let mut rig = Rig::start(options()).await;
    let script = incident_script();
    let expect = rig
        .tracker
        .calibrate("CSTORE-CALIBRATE", &script, Duration::from_secs(20))
        .await;
    let db = rig.db.display().to_string();
    refuses(
        "a second instance on the same directory",
        &rig.db,
        &options(),
        &[&db, "another process", "one process"],
    )
    .await;
    // the first instance never noticed: it answers, and its store is intact
    let load = Load {
        conversations: 5,
        sessions: 5,
        rate: None,
        timeout: Duration::from_secs(20),
        prefix: "CSTORE".into(),
    };
    let r = driver::run(&rig.tracker, &script, &expect, &load).await;
    assert_eq!(r.error_count(), 0, "{:?}", r.errors);
    assert!(rig.bot().running());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_store_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let under_file = file.join("netrunbook.sled");
    refuses(
        "a path under a regular file",
        &under_file,
        &options(),
        &["cannot open the conversation store", &under_file.display().to_string()],
    )
    .await;
    let proc_path = PathBuf::from("/proc/netrunbook-evidence/netrunbook.sled");
    refuses(
        "a path under /proc",
        &proc_path,
        &options(),
        &["cannot open the conversation store", &proc_path.display().to_string()],
    )
    .await;
    // a read-only file system, with and without an existing store, where mount is permitted
    let Some(ro) = Mount::tmpfs(dir.path(), "ro", "size=1m") else {
        evidence!("read-only tmpfs: skipped (mount not permitted here)");
        return;
    };
    refuses(
        "a new store on a read-only file system",
        &ro.path.join("netrunbook.sled"),
        &options(),
        &["cannot open the conversation store", "Read-only file system"],
    )
    .await;
    drop(ro);
    let rw = Mount::tmpfs(dir.path(), "was-rw", "size=4m").expect("mount worked a moment ago");
    let db = rw.path.join("netrunbook.sled");
    netrunbook::store::SledStore::open(&db).expect("a store on the tmpfs");
    rw.remount_read_only();
    refuses(
        "an existing store on a file system remounted read-only",
        &db,
        &options(),
        &["cannot open the conversation store", "Read-only file system"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_at_start_up_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("netrunbook.sled");
    let err = refuses(
        "RLIMIT_FSIZE 0 (no byte can be written)",
        &db,
        &Options {
            fsize_blocks: Some(0),
            ..options()
        },
        &["cannot open the conversation store", &db.display().to_string()],
    )
    .await;
    assert!(err.contains("File too large"), "the cause is named: {err}");
    let Some(small) = Mount::tmpfs(dir.path(), "full", "size=256k") else {
        evidence!("full tmpfs: skipped (mount not permitted here)");
        return;
    };
    // fill it
    let filler = small.path.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1024 * 1024]);
    refuses(
        "a full 256 KiB tmpfs",
        &small.path.join("netrunbook.sled"),
        &options(),
        &["cannot open the conversation store", "No space left on device"],
    )
    .await;
}

/// The disk fills while the bot serves (RLIMIT_FSIZE 16 KiB on every file): conversations that
/// cannot be saved are logged at ERROR, naming the cause; the person is told in the reply that the
/// conversation could not be saved; `/readyz` answers 503 and the failures are counted; the bot stays
/// up and keeps acknowledging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filling_while_serving_is_logged_and_survived() {
    let mut rig = Rig::start(Options {
        fsize_blocks: Some(16),
        ..options()
    })
    .await;
    let script = incident_script();
    let expect = rig
        .tracker
        .calibrate("CFULL-CALIBRATE", &script, Duration::from_secs(20))
        .await;
    let load = Load {
        conversations: 12,
        sessions: 6,
        rate: None,
        timeout: Duration::from_secs(3),
        prefix: "CFULL".into(),
    };
    let r = driver::run(&rig.tracker, &script, &expect, &load).await;
    let bot = rig.bot();
    assert!(bot.running(), "the bot stays up:\n{}", bot.log());
    let errors = bot.log_lines("ERROR");
    let cannot_save = errors
        .iter()
        .filter(|l| l.contains("cannot save the conversation"))
        .count();
    let cannot_record = errors.iter().filter(|l| l.contains("handled event")).count();
    evidence!(
        "disk full while serving (16 KiB file size limit): {} conversations completed, {} stopped part way (their answers could not be saved); unacknowledged envelopes {}; bot ERROR lines {} ({} 'cannot save the conversation', {} 'cannot record a handled event')",
        r.conversations,
        r.errors.len(),
        r.unacked,
        errors.len(),
        cannot_save,
        cannot_record
    );
    if let Some(l) = errors.first() {
        evidence!("  first: {l}");
    }
    assert!(cannot_save > 0, "the failed saves are logged:\n{}", errors.join("\n"));
    // the people asking are told, and readiness says the store fails
    let warned = rig
        .emu
        .calls_to("chat.postMessage")
        .iter()
        .filter(|c| c.params.to_string().contains("could not save this conversation"))
        .count();
    evidence!("  replies that told the person the conversation could not be saved: {warned}");
    assert!(warned > 0, "the person is told their conversation was not saved");
    let log = rig.bot().log();
    let http = log
        .split("http=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the start-up line names the HTTP address")
        .trim_matches('"')
        .to_string();
    let readyz = std::process::Command::new(options().binary)
        .args(["health", "--url", &format!("http://{http}/readyz")])
        .output()
        .expect("netrunbook health runs");
    let said = String::from_utf8_lossy(&readyz.stderr).to_string();
    evidence!("  /readyz: {}", said.trim());
    assert!(
        !readyz.status.success() && said.contains("503"),
        "/readyz fails: {said}"
    );
    assert!(
        errors.iter().all(|l| l.contains("File too large")),
        "each names the cause"
    );
    assert_eq!(r.unacked, 0, "every envelope is still acknowledged");
    rig.stop().await;
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Mount {
    path: PathBuf,
}

impl Mount {
    /// `mount -t tmpfs -o <size>[,ro] tmpfs <parent>/<name>`; `None` when mounting is not permitted.
    fn tmpfs(parent: &Path, name: &str, size: &str) -> Option<Mount> {
        let path = parent.join(name);
        std::fs::create_dir_all(&path).ok()?;
        let mut opts = size.to_string();
        if name == "ro" {
            opts.push_str(",ro");
        }
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Mount { path })
    }

    fn remount_read_only(&self) {
        let ok = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount read-only");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.path).status();
    }
}
