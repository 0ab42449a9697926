//! The inbox journal: every Slack event that can start or advance a conversation (a mention, a
//! message) is appended to a file here before it is acknowledged, and forgotten once it was handled.
//!
//! Slack re-sends an event it got no acknowledgement for, but not one it did; and the bot acknowledges
//! at once and handles the event a moment later. A crash in that moment would lose the event; with the
//! journal, the next start hands the events it finds back to the bot ([`Inbox::open`] returns them),
//! and the bot's usual de-duplication (the "handled" marks committed with each step) drops those that
//! were handled before the crash.
//!
//! The journal is JSON lines in segment files (`inbox-<start>-<n>.jsonl`) in its own directory. A
//! segment is written with plain `write(2)` calls and never synced: what was written survives the
//! process being killed (it is in the kernel's page cache), not the machine losing power, and costs
//! microseconds, not an fsync per event. Each entry hands out a [`Ticket`]; a new segment starts every
//! [`ROTATE_EVERY`], and a segment's file is deleted when it is no longer written to and every ticket
//! of it was [`Ticket::done`]. A ticket dropped without `done` (work abandoned at shutdown) keeps the
//! file for the next start.
//!
//! Clicks and slash commands are not journaled: a slash command is answered in its acknowledgement,
//! and a click lost in a crash is clicked again (clicks carry no id to tell a replay from a repeat).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, warn};

use crate::vocab::Inbound;

/// Version of a journal line ([`Entry`]); bump it when the line or [`Inbound`] changes in a way an
/// older line would be misread. Lines of another version are skipped with a warning.
pub(crate) const INBOX_FORMAT: u32 = 1;

/// One journal line: an event with the line's format version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Entry {
    pub format: u32,
    pub inbound: Inbound,
}

impl Entry {
    pub(crate) fn encode(inbound: &Inbound) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&Entry {
            format: INBOX_FORMAT,
            inbound: inbound.clone(),
        })
    }

    /// The event of a line: of this format, or a bare event as journals before versioned lines wrote
    /// them; `Err` for anything else.
    pub(crate) fn decode(line: &[u8]) -> Result<Inbound, String> {
        match serde_json::from_slice::<Entry>(line) {
            Ok(e) if e.format == INBOX_FORMAT => Ok(e.inbound),
            Ok(e) => Err(format!("a line of format {}", e.format)),
            Err(e) => serde_json::from_slice::<Inbound>(line).map_err(|_| e.to_string()),
        }
    }
}

/// The inbox journal's directory, inside the sled store's.
pub const INBOX_DIR: &str = "inbox";

/// A segment older than this gets a successor at the next append.
pub(crate) const ROTATE_EVERY: Duration = Duration::from_secs(10);

/// Errors opening the journal.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the inbox journal in {}", dir.display())]
pub struct InboxError {
    dir: PathBuf,
    #[source]
    source: std::io::Error,
}

/// One segment file: deleted when the last handle goes, if every entry in it was handled.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Entries appended and not done yet.
    pending: AtomicUsize,
    /// An entry was dropped without being done: keep the file.
    abandoned: AtomicBool,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if *self.pending.get_mut() == 0 && !*self.abandoned.get_mut() {
            if let Err(e) = std::fs::remove_file(&self.path) {
                warn!(path = %self.path.display(), error = %e, "cannot delete a handled inbox segment");
            }
        }
    }
}

/// The claim of one journaled event: call [`Ticket::done`] once the event was handled (its effects
/// committed, or it was ignored). Dropped without `done` (work abandoned at shutdown, or put off while
/// the database is away), the entry stays journaled and is handed back later.
#[derive(Debug)]
pub struct Ticket {
    claim: Claim,
}

#[derive(Debug)]
enum Claim {
    None,
    /// An entry of a segment file here.
    Segment(Arc<Segment>),
    /// An entry of a journal shared by replicas (see [`crate::store::replica`]).
    Shared(Box<dyn SharedEntry>),
}

/// An entry of a journal kept elsewhere than in this directory: removed when done, left when
/// abandoned.
pub(crate) trait SharedEntry: Send + Sync + std::fmt::Debug {
    fn done(self: Box<Self>);
    fn abandon(self: Box<Self>);
}

impl Ticket {
    /// A ticket for an event that was not journaled.
    pub(crate) fn none() -> Ticket {
        Ticket { claim: Claim::None }
    }

    /// A ticket for an entry of a shared journal.
    pub(crate) fn shared(entry: Box<dyn SharedEntry>) -> Ticket {
        Ticket {
            claim: Claim::Shared(entry),
        }
    }

    /// True when the event is journaled (put off, it comes back).
    pub(crate) fn is_journaled(&self) -> bool {
        !matches!(self.claim, Claim::None)
    }

    pub fn done(mut self) {
        match std::mem::replace(&mut self.claim, Claim::None) {
            Claim::None => {}
            Claim::Segment(s) => {
                s.pending.fetch_sub(1, Ordering::AcqRel);
            }
            Claim::Shared(e) => e.done(),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.claim, Claim::None) {
            Claim::None => {}
            Claim::Segment(s) => s.abandoned.store(true, Ordering::Release),
            Claim::Shared(e) => e.abandon(),
        }
    }
}

struct Current {
    file: File,
    segment: Arc<Segment>,
    started: Instant,
}

/// The journal directory and the segment being written.
pub struct Inbox {
    dir: PathBuf,
    current: Mutex<Option<Current>>,
    /// Distinguishes segments started in the same nanosecond.
    segments: AtomicUsize,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Inbox {
    /// Open the journal in `dir` (created if missing) and read what an earlier process left: the
    /// events in order, each with its ticket.
    pub fn open(dir: impl AsRef<Path>) -> Result<(Inbox, Vec<(Inbound, Ticket)>), InboxError> {
        let dir = dir.as_ref().to_path_buf();
        let fail = |source| InboxError {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(fail)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(fail)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("inbox-") && n.ends_with(".jsonl"))
            })
            .collect();
        // names sort in the order the segments were started
        files.sort();
        let mut left = Vec::new();
        for path in files {
            let entries = read_segment(&path);
            let segment = Arc::new(Segment {
                path,
                pending: AtomicUsize::new(entries.len()),
                abandoned: AtomicBool::new(false),
            });
            for inbound in entries {
                left.push((
                    inbound,
                    Ticket {
                        claim: Claim::Segment(segment.clone()),
                    },
                ));
            }
        }
        let inbox = Inbox {
            dir,
            current: Mutex::new(None),
            segments: AtomicUsize::new(0),
        };
        Ok((inbox, left))
    }

    /// Append `inbound` (before it is acknowledged). A write that fails is logged and the event goes
    /// on unjournaled: it is still handled, only not protected against a crash.
    pub fn append(&self, inbound: &Inbound) -> Ticket {
        let mut line = match Entry::encode(inbound) {
            Ok(l) => l,
            Err(e) => {
                error!(error = %e, "cannot journal an event");
                return Ticket::none();
            }
        };
        line.push(b'\n');
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_none_or(|c| c.started.elapsed() >= ROTATE_EVERY) {
            // the old segment's file goes when its last ticket is done
            *current = match self.start_segment() {
                Ok(c) => Some(c),
                Err(e) => {
                    error!(dir = %self.dir.display(), error = %e, "cannot start an inbox segment; events are not journaled");
                    None
                }
            };
        }
        let Some(c) = current.as_mut() else {
            return Ticket::none();
        };
        if let Err(e) = c.file.write_all(&line) {
            error!(path = %c.segment.path.display(), error = %e, "cannot journal an event");
            return Ticket::none();
        }
        c.segment.pending.fetch_add(1, Ordering::AcqRel);
        Ticket {
            claim: Claim::Segment(c.segment.clone()),
        }
    }

    fn start_segment(&self) -> std::io::Result<Current> {
        let n = self.segments.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = self.dir.join(format!("inbox-{nanos:024}-{n:08}.jsonl"));
        let file = OpenOptions::new().create_new(true).append(true).open(&path)?;
        Ok(Current {
            file,
            segment: Arc::new(Segment {
                path,
                pending: AtomicUsize::new(0),
                abandoned: AtomicBool::new(false),
            }),
            started: Instant::now(),
        })
    }
}

/// The events in a segment file; a line that does not parse (the last one, cut by a crash) is
/// skipped with a warning.
fn read_segment(path: &Path) -> Vec<Inbound> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read an inbox segment");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).split(b'\n').enumerate() {
        let Ok(line) = line else { break };
        if line.is_empty() {
            continue;
        }
        match Entry::decode(&line) {
            Ok(inbound) => out.push(inbound),
            Err(e) => warn!(path = %path.display(), line = n + 1, error = %e, "skipping an unreadable inbox entry"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::InboundKind;

    fn event(ts: &str) -> Inbound {
        Inbound {
            event_id: Some(format!("Ev{ts}")),
            team: "T1".into(),
            channel: "C1".into(),
            user: "U1".into(),
            ts: ts.into(),
            thread_ts: None,
            text: "<@UBOT> dns \u{202e} <!channel> 🚒".into(),
            mentioned: false,
            is_bot: false,
            bot_id: None,
            edited: false,
            subtype: None,
            kind: InboundKind::Mention,
        }
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn events_not_done_are_handed_back_in_order_and_done_ones_are_forgotten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("inbox");
        {
            let (inbox, left) = Inbox::open(&dir).unwrap();
            assert!(left.is_empty());
            let a = inbox.append(&event("1.1"));
            let b = inbox.append(&event("1.2"));
            let c = inbox.append(&event("1.3"));
            a.done();
            c.done();
            // b is in flight when the process "dies": nothing runs Drop on a killed process
            std::mem::forget(b);
            std::mem::forget(inbox);
        }
        let (inbox, left) = Inbox::open(&dir).unwrap();
        let ts: Vec<&str> = left.iter().map(|(i, _)| i.ts.as_str()).collect();
        assert_eq!(ts, ["1.1", "1.2", "1.3"], "the whole segment is handed back, in order");
        assert_eq!(left[0].0, event("1.1"), "entries round-trip");
        for (_, t) in left {
            t.done();
        }
        assert_eq!(files(&dir), 0, "a replayed segment goes once all is done");
        inbox.append(&event("2.1")).done();
        drop(inbox);
        assert_eq!(
            files(&dir),
            0,
            "the current segment goes with the inbox when all is done"
        );
    }

    #[test]
    fn an_abandoned_entry_keeps_its_segment_and_a_torn_line_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("inbox");
        let (inbox, _) = Inbox::open(&dir).unwrap();
        let t = inbox.append(&event("1.1"));
        drop(t);
        drop(inbox);
        assert_eq!(files(&dir), 1, "kept for the next start");
        let path = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"event_id\": \"cut by a cra")
            .unwrap();
        let (_, left) = Inbox::open(&dir).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0.ts, "1.1");
    }

    #[test]
    fn an_unusable_directory_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = Inbox::open(file.join("inbox")).unwrap_err();
        assert!(err.to_string().contains("a-file"), "{err}");
    }
}
