//! The offline commands: `ask`, `chat`, `check` and `eval`. Each takes its arguments and streams, so
//! tests can drive them, and returns the process exit code.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use anyhow::Context;
use serde_json::json;

use crate::config::KbArgs;
use crate::dialogue::{self, Conversation, Input, Pending};
use crate::eval;
use crate::kb::{runbook, KnowledgeBase, Problem, Source};
use crate::matcher::Verdict;
use crate::render;
use crate::store::Store;
use crate::text::MAX_INPUT_BYTES;
use crate::vocab::ThreadKey;

/// `netrunbook report`: answers, feedback and the top unanswered questions stored in the sled
/// directory `db`, as a table or one JSON object.
pub fn report(db: &Path, url: Option<&str>, as_json: bool, top: usize, out: &mut impl Write) -> anyhow::Result<i32> {
    let report = crate::report::Report::build(&open_feedback(db, url)?, top);
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", report.to_text())?;
    }
    Ok(0)
}

/// `netrunbook report --export FILE`: the doubtful and wrong-topic messages, redacted, one `eval` line
/// each (an empty `section` where nobody picked one), for a runbook owner to label and add to
/// `tests/data`.
pub fn export(db: &Path, url: Option<&str>, kb: &KbArgs, file: &Path, out: &mut impl Write) -> anyhow::Result<i32> {
    let kb = kb.load()?;
    let lines = crate::report::export(&open_feedback(db, url)?, |id| kb.intent(id).map(|i| i.heading.clone()));
    let mut text = String::new();
    for l in &lines {
        text.push_str(&serde_json::to_string(l)?);
        text.push('\n');
    }
    std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
    let unlabelled = lines.iter().filter(|l| l.section.is_empty()).count();
    writeln!(
        out,
        "wrote {} line(s) to {} ({unlabelled} to label)",
        lines.len(),
        file.display()
    )?;
    Ok(0)
}

/// The stored feedback of the store in `db`, with a clear error when it is missing or in use.
/// `netrunbook migrate --from-db DIR --to URL`: copy a sled store (stopped) into PostgreSQL, with the
/// events its inbox journal still holds; the journal's files are removed once the copy committed.
/// Safe to run again (see [`PgStore::restore`](crate::store::PgStore::restore)).
pub fn migrate(from: &Path, to: &str, out: &mut impl Write) -> anyhow::Result<i32> {
    use crate::store::PgStore;
    let sled = open_sled(from)?;
    let (_, journaled) = crate::inbox::Inbox::open(from.join(crate::inbox::INBOX_DIR))?;
    let dump = sled.dump()?;
    let pg = PgStore::open(to, 2).context("cannot open the database (--to)")?;
    let events: Vec<_> = journaled.iter().map(|(i, _)| i.clone()).collect();
    let done = pg.restore(&dump, &events)?;
    for (_, ticket) in journaled {
        ticket.done();
    }
    writeln!(
        out,
        "migrated {} into {}:\n  conversations: {} of {} written (the others were as new in the database)\n  handled events: {} new of {}\n  undelivered replies: {} of {}\n  answer counters: {}, votes: {}, unanswered: {}\n  journaled events handed to the replicas: {}\n{} can be removed once the replicas run.",
        from.display(),
        pg.target(),
        done.conversations,
        dump.conversations.len(),
        done.events,
        dump.events.len(),
        done.outbox,
        dump.outbox.len(),
        done.counts,
        done.votes,
        done.unanswered,
        done.journaled,
        from.display(),
    )?;
    Ok(0)
}

/// The sled store in `db`, with errors that say what to do.
fn open_sled(db: &Path) -> anyhow::Result<crate::store::SledStore> {
    use crate::store::{SledStore, StoreError};
    if !db.is_dir() {
        anyhow::bail!(
            "there is no store in {}: point --db (or NETRUNBOOK_DB) at the directory `netrunbook serve` uses",
            db.display()
        );
    }
    match SledStore::open(db) {
        Ok(s) => Ok(s),
        Err(StoreError::Locked { dir, .. }) => anyhow::bail!(
            "the store in {} is in use by a running `netrunbook serve` (sled lets one process open a store at a time): stop it and run this again, or ask the bot with `/netrunbook report` in Slack",
            dir.display()
        ),
        Err(e) => Err(e.into()),
    }
}

/// The feedback records of the sled store in `db`, or of the database at `url` when one is given.
fn open_feedback(db: &Path, url: Option<&str>) -> anyhow::Result<crate::store::FeedbackData> {
    use crate::store::FeedbackStore;
    if let Some(url) = url {
        let pg = crate::store::PgStore::open(url, 1).context("cannot open the database (--database-url)")?;
        return Ok(pg.feedback()?);
    }
    Ok(open_sled(db)?.feedback()?)
}

/// Read input as text, keeping the first `MAX_INPUT_BYTES * 4` bytes (the rest is read and dropped, so
/// the writer never sees a broken pipe); invalid UTF-8 is replaced, never fatal.
pub fn read_text(mut r: impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.by_ref().take((MAX_INPUT_BYTES * 4) as u64).read_to_end(&mut buf)?;
    std::io::copy(&mut r, &mut std::io::sink())?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `netrunbook ask`: print the answer as the bot would give it.
pub fn ask(kb: &KnowledgeBase, text: &str, as_json: bool, out: &mut impl Write) -> anyhow::Result<i32> {
    if text.trim().is_empty() {
        anyhow::bail!("nothing to ask: give the question as an argument or on standard input");
    }
    let step = dialogue::step(
        kb,
        None,
        &Input::Message {
            text: text.to_string(),
            addressed: true,
        },
        0,
    );
    if as_json {
        let outcome = step.matched.as_ref();
        let best = outcome.and_then(|o| o.best());
        let intent = best.map(|b| &kb.intents[b.intent]);
        let ranked = outcome.map(|o| o.ranked.as_slice()).unwrap_or_default();
        let alternatives: Vec<_> = ranked
            .iter()
            .filter(|r| best.is_none_or(|b| b.intent != r.intent))
            .map(|r| json!({"intent": kb.intents[r.intent].id, "section": kb.intents[r.intent].heading, "score": round(r.score)}))
            .collect();
        let evidence: Vec<_> = ranked
            .first()
            .map(|r| r.evidence.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                json!({
                    "kind": format!("{:?}", e.kind).to_lowercase(),
                    "label": e.label,
                    "matched": e.matched,
                    "count": e.count,
                    "points": round(e.points),
                    "corrected": e.corrected.iter().map(|c| json!({"typed": c.typed, "read": c.read})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let verdict = match outcome.map(|o| o.verdict) {
            Some(Verdict::Match) => "match",
            Some(Verdict::Ambiguous) => "ambiguous",
            _ => "abstain",
        };
        let doc = json!({
            "section": intent.map(|i| i.heading.clone()),
            "intent": intent.map(|i| i.id.clone()),
            "score": round(best.map_or(ranked.first().map_or(0.0, |r| r.score), |b| b.score)),
            "url": intent.map(|i| i.url.clone()),
            "verdict": verdict,
            "alternatives": alternatives,
            "evidence": evidence,
            "replies": step.replies,
            "kb_version": kb.version,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        writeln!(out, "{}", render::text(&step.replies, &kb.version))?;
    }
    Ok(0)
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The one thread of `chat`: the terminal.
static CHAT_THREAD: LazyLock<ThreadKey> = LazyLock::new(|| ThreadKey::new("terminal", "chat", "0"));

/// `netrunbook chat`: a terminal conversation with the dialogue engine. A pasted block (a fenced
/// code block, or lines that look like `kubectl describe` or log output) is read as one message, up
/// to the closing fence or an empty line; `help` lists the topics.
pub fn chat(
    kb: &KnowledgeBase,
    store: &impl Store,
    input: impl BufRead,
    out: &mut impl Write,
    now: impl Fn() -> u64,
) -> anyhow::Result<i32> {
    writeln!(
        out,
        "netrunbook chat — knowledge base {} ({} sections). Describe the problem or paste an error (end a paste with an empty line).\nAnswer questions with a number or in your own words. help, /escalate, /reset, /quit.",
        kb.version,
        kb.intents.len()
    )?;
    write!(out, "> ")?;
    out.flush()?;
    let mut lines = input.lines().map(|l| match l {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(String::from("\u{fffd}")),
        Err(e) => Err(e),
    });
    while let Some(line) = lines.next() {
        let mut line = line?;
        let trimmed = line.trim().to_string();
        if trimmed == "/quit" || trimmed == "/exit" {
            break;
        }
        if trimmed.is_empty() {
            write!(out, "> ")?;
            out.flush()?;
            continue;
        }
        if trimmed.starts_with("```") || looks_pasted(&line) {
            // a paste: one message until the closing fence, or an empty line
            let fenced = trimmed.starts_with("```") && !(trimmed.len() > 3 && trimmed.ends_with("```"));
            for next in lines.by_ref() {
                let next = next?;
                let end = if fenced {
                    next.trim_start().starts_with("```")
                } else {
                    next.trim().is_empty()
                };
                line.push('\n');
                line.push_str(&next);
                if end {
                    break;
                }
            }
        }
        let current = store.get(&CHAT_THREAD)?;
        if HELP.contains(&trimmed.to_lowercase().as_str()) {
            writeln!(out, "I know these sections of the runbook:")?;
            for (group, titles) in kb.topic_groups() {
                writeln!(out, "  {group}: {}", titles.join(", "))?;
            }
            write!(out, "> ")?;
            out.flush()?;
            continue;
        }
        let input = match trimmed.as_str() {
            "/reset" => Input::Reset,
            "/escalate" => Input::Escalate,
            _ => numbered(kb, current.as_ref(), &trimmed).unwrap_or(Input::Message {
                text: line.clone(),
                addressed: true,
            }),
        };
        let step = dialogue::step(kb, current.as_ref(), &input, now());
        match step.state.as_ref() {
            Some(c) => store.put(&CHAT_THREAD, c)?,
            None => store.remove(&CHAT_THREAD)?,
        }
        store.flush()?;
        writeln!(out, "{}", render::text(&step.replies, &kb.version))?;
        write!(out, "> ")?;
        out.flush()?;
    }
    Ok(0)
}

const HELP: &[&str] = &["help", "/help", "?", "topics"];

static PASTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)^(?:
            \s+\S                                          # indented, as kubectl describe prints
          | (?:Name|Namespace|Events|Conditions|Labels|Annotations|Containers|Status|Node|Type|Reason|Message|Priority|IP|IPs|Controlled\ By):(?:\s|$)
          | (?:Warning|Normal)\s{2,}\S                      # an event row
          | [EIW]\d{4}\s\d                                   # a klog line
          | \d{4}-\d{2}-\d{2}[T\ ]\d{2}:\d{2}              # a timestamped log line
          | NAME\s{2,}                                      # a kubectl get header
          | .*\S\t\S | .*\S\s{3,}\S                        # columns
        )",
    )
    .unwrap()
});

/// A line that starts pasted output rather than a sentence typed at the prompt.
fn looks_pasted(line: &str) -> bool {
    PASTED.is_match(line)
}

/// A bare number picks the numbered option of the pending question or clarification.
fn numbered(kb: &KnowledgeBase, conv: Option<&Conversation>, text: &str) -> Option<Input> {
    let n: usize = text.parse().ok()?;
    let conv = conv?;
    match &conv.pending {
        Pending::Question { node } => {
            let intent = kb.intent(conv.intent.as_deref()?)?;
            let step_q = match intent.flow.as_ref()?.nodes.get(node)? {
                crate::kb::Node::Ask { slot, .. } => kb.slots.get(slot)?,
                _ => return None,
            };
            // "25" answers "for how many minutes?" with minutes, not option 2
            if step_q.kind == crate::kb::SlotKind::Minutes {
                return None;
            }
            let option = step_q.options.get(n.checked_sub(1)?)?;
            Some(Input::Choose {
                node: node.clone(),
                option: option.id.clone(),
            })
        }
        Pending::Clarify { candidates } => Some(Input::Pick {
            intent: candidates.get(n.checked_sub(1)?)?.clone(),
        }),
        Pending::Nothing | Pending::Describe => None,
    }
}

/// `netrunbook check`: validate the knowledge base, replay its own examples, and with a runbook, check
/// its coverage and that it says only what the runbook says.
pub fn check(args: &KbArgs, runbook_file: Option<&Path>, out: &mut impl Write) -> anyhow::Result<i32> {
    let loaded = args
        .sources()
        .and_then(|sources| KnowledgeBase::from_sources(sources.clone(), &args.options()).map(|kb| (kb, sources)));
    let (kb, sources) = match loaded {
        Ok(both) => both,
        Err(e) => {
            for p in e.problems() {
                writeln!(out, "error: {p}")?;
            }
            writeln!(out, "{}: INVALID", args.describe())?;
            return Ok(1);
        }
    };
    let mut problems: Vec<Problem> = dialogue::examples::verify(&kb)
        .into_iter()
        .map(|f| Problem {
            line: line_in(&sources, &f.file, &f.needle),
            file: f.file,
            message: f.message,
        })
        .collect();
    if let Some(path) = runbook_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read runbook {}", path.display()))?;
        let rb = runbook::parse(&text);
        problems.extend(runbook::compare(&kb, &rb, &path.display().to_string()));
        problems.extend(runbook::verify_claims(&kb, &rb, &sources));
    }
    for p in &problems {
        writeln!(out, "error: {p}")?;
    }
    let flows = kb.intents.iter().filter(|i| i.flow.is_some()).count();
    let examples: usize = kb
        .slots
        .values()
        .flat_map(|s| &s.options)
        .map(|o| o.examples.len() + o.near_misses.len())
        .sum::<usize>()
        + kb.intents
            .iter()
            .filter_map(|i| i.flow.as_ref())
            .map(|f| f.examples.len())
            .sum::<usize>();
    if problems.is_empty() {
        writeln!(
            out,
            "{}: OK — {} intents, {} flows, {} slots, {} examples replayed, knowledge base {}{}",
            args.describe(),
            kb.intents.len(),
            flows,
            kb.slots.len(),
            examples,
            kb.version,
            if runbook_file.is_some() {
                ", every runbook section covered, every fact backed by it"
            } else {
                ""
            }
        )?;
        Ok(0)
    } else {
        writeln!(out, "{}: {} problem(s)", args.describe(), problems.len())?;
        Ok(1)
    }
}

/// 1-based line of the first line of `file` that contains `needle` (as written in YAML: the needle's
/// quotes may be escaped or absent there).
fn line_in(sources: &[Source], file: &str, needle: &str) -> Option<usize> {
    let src = sources.iter().find(|s| s.name == file)?;
    let probe = needle.lines().next().unwrap_or(needle).trim();
    let short: String = probe.chars().take(40).collect();
    src.text
        .lines()
        .position(|l| l.contains(probe) || (!short.is_empty() && l.contains(&short)))
        .map(|i| i + 1)
}

/// `netrunbook eval`: accuracy on a labelled set.
pub fn eval(
    kb: &KnowledgeBase,
    file: &Path,
    as_json: bool,
    min_accuracy: Option<f64>,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let cases = eval::parse_cases(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let report = eval::evaluate(kb, &cases);
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        writeln!(out, "{:>5} {:>5} {:>5}  section", "prec", "rec", "n")?;
        for (name, s) in &report.sections {
            writeln!(
                out,
                "{:>5.2} {:>5.2} {:>5}  {}",
                s.precision, s.recall, s.expected, name
            )?;
        }
        for m in &report.misses {
            let q: String = m.q.chars().take(100).collect::<String>().replace('\n', " ");
            writeln!(
                out,
                "MISS line {}: expected `{}`, got `{}` ({:.1}): {}",
                m.line, m.expected, m.got, m.score, q
            )?;
        }
        if report.kinds.len() > 1 || !report.kinds.contains_key("-") {
            for (kind, k) in &report.kinds {
                writeln!(
                    out,
                    "kind {kind:<12} {:>5.1}% ({}/{})",
                    k.accuracy * 100.0,
                    k.correct,
                    k.total
                )?;
            }
        }
        if report.unlabelled > 0 {
            writeln!(out, "skipped {} unlabelled line(s)", report.unlabelled)?;
        }
        writeln!(
            out,
            "accuracy {:.1}% ({}/{}) on {}",
            report.accuracy * 100.0,
            report.correct,
            report.total,
            file.display()
        )?;
    }
    Ok(match min_accuracy {
        Some(min) if report.accuracy < min => 1,
        _ => 0,
    })
}
