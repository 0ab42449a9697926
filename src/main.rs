//! The `netrunbook` binary: parse the command line and run the chosen command. Nothing else lives here.

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use netrunbook::cli;
use netrunbook::config::KbArgs;
use netrunbook::config::{default_db_dir, ServeArgs, Settings, DEFAULT_HTTP_ADDR};
use netrunbook::store::{MemoryStore, SledStore};

#[derive(Parser)]
#[command(
    name = "netrunbook",
    version,
    about = "Routes Kubernetes network incidents to the armada-network runbook"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the answer the bot would give (TEXT, or standard input when absent)
    Ask {
        /// The question, a log line or pasted output
        text: Option<String>,
        /// One JSON object: section, intent, score, url, alternatives, evidence
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        kb: KbArgs,
    },
    /// Talk to the bot in the terminal
    Chat {
        /// Keep the conversation in this sled directory (the store `serve` uses), so it survives restarts
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        kb: KbArgs,
    },
    /// Run the Slack bot (Socket Mode); stops on SIGTERM or Ctrl-C
    Serve(Box<ServeArgs>),
    /// Validate the knowledge base (and its coverage of a runbook)
    Check {
        /// The runbook Markdown file every section of which must be covered
        #[arg(long)]
        runbook: Option<PathBuf>,
        #[command(flatten)]
        kb: KbArgs,
    },
    /// Exit 0 when a running bot's /healthz answers 200, else 1 (for a container HEALTHCHECK)
    Health {
        /// The URL to check [default: /healthz on NETRUNBOOK_HTTP_ADDR, or 127.0.0.1:9090]
        #[arg(long)]
        url: Option<String>,
        /// Where `serve` listens (used when --url is not given)
        #[arg(long, env = "NETRUNBOOK_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
        http_addr: SocketAddr,
    },
    /// Answers, 👍/👎 and wrong-topic counts per intent, and the top unanswered questions, from the
    /// store (while the bot runs it holds the store: use /netrunbook report in Slack)
    Report {
        /// The store's directory [default: as for serve]
        #[arg(long, env = "NETRUNBOOK_DB")]
        db: Option<PathBuf>,
        /// Read the replicas' PostgreSQL database instead of a sled directory
        #[arg(long, env = "NETRUNBOOK_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// One JSON object instead of a table
        #[arg(long)]
        json: bool,
        /// How many unanswered questions to list
        #[arg(long, default_value_t = netrunbook::report::DEFAULT_TOP)]
        top: usize,
        /// Write the doubtful and wrong-topic messages to FILE in the `eval` format, to label
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        #[command(flatten)]
        kb: KbArgs,
    },
    /// Copy a sled store (its bot stopped) into PostgreSQL, for running replicas: conversations,
    /// handled events, undelivered replies, feedback and the events its journal still holds
    Migrate {
        /// The sled store's directory (what `serve --db` used)
        #[arg(long, value_name = "DIR")]
        from_db: PathBuf,
        /// The database (postgres://...), as for `serve --database-url`
        #[arg(long, value_name = "URL", env = "NETRUNBOOK_DATABASE_URL", hide_env_values = true)]
        to: String,
    },
    /// Accuracy on a labelled JSONL set ({"q": ..., "section": ... | "NONE"})
    Eval {
        /// The labelled set, one JSON object per line
        file: PathBuf,
        /// One JSON object: accuracy overall and by kind, and the misses
        #[arg(long)]
        json: bool,
        /// Exit 1 when accuracy is below this fraction (0..1)
        #[arg(long)]
        min_accuracy: Option<f64>,
        #[command(flatten)]
        kb: KbArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        // the reader went away (`report --json | head`): nothing to say to anyone
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("netrunbook: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Check { runbook, kb } => cli::check(&kb, runbook.as_deref(), &mut out),
        Command::Serve(args) => serve(*args),
        Command::Health { url, http_addr } => {
            Ok(health(url.unwrap_or_else(|| netrunbook::http::healthz_url(http_addr))))
        }
        Command::Report {
            db,
            database_url,
            json,
            top,
            export,
            kb,
        } => {
            let db = db.unwrap_or_else(default_db_dir);
            let url = database_url.as_deref().filter(|u| !u.trim().is_empty());
            match export {
                Some(file) => cli::export(&db, url, &kb, &file, &mut out),
                None => cli::report(&db, url, json, top, &mut out),
            }
        }
        Command::Migrate { from_db, to } => cli::migrate(&from_db, &to, &mut out),
        Command::Ask { text, json, kb } => {
            let kb = kb.load()?;
            let text = match text {
                Some(t) => t,
                None if io::stdin().is_terminal() => {
                    anyhow::bail!("nothing to ask: give the question as an argument or on standard input")
                }
                None => cli::read_text(io::stdin().lock())?,
            };
            cli::ask(&kb, &text, json, &mut out)
        }
        Command::Chat { db, kb } => {
            let kb = kb.load()?;
            match db {
                None => cli::chat(&kb, &MemoryStore::new(), io::stdin().lock(), &mut out, now),
                Some(dir) => cli::chat(&kb, &SledStore::open(&dir)?, io::stdin().lock(), &mut out, now),
            }
        }
        Command::Eval {
            file,
            json,
            min_accuracy,
            kb,
        } => {
            // a one-shot command: the operating system frees the knowledge base faster than its
            // destructor walks the maps (about 5 % of an `eval` over a short set)
            let kb = std::mem::ManuallyDrop::new(kb.load()?);
            cli::eval(&kb, &file, json, min_accuracy, &mut out)
        }
    }
}

/// Runtime worker threads of `serve` with `--database-url`.
const DATABASE_WORKERS: usize = 16;

/// `netrunbook serve`: 0 after a requested shutdown, 3 when Slack disabled Socket Mode, 2 on errors.
fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    use netrunbook::slack::StopReason;
    netrunbook::telemetry::init(args.log_format);
    let settings = Settings::from_args(args)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if settings.database.is_some() {
        // every store call is a database round trip that holds its worker thread (see
        // `store::postgres`): more workers, so acks are not queued behind turns waiting on the
        // database (BENCHMARKS.md: 2 workers sustained 345 events/s with 111 ms acks)
        runtime.worker_threads(DATABASE_WORKERS);
    }
    let runtime = runtime.enable_all().build()?;
    let reason = runtime.block_on(async {
        let app = netrunbook::app::Application::build(settings).await?;
        app.run_until_stopped(netrunbook::app::shutdown_signal()).await
    })?;
    Ok(match reason {
        StopReason::Shutdown => 0,
        StopReason::LinkDisabled => {
            eprintln!(
                "netrunbook: Slack disabled Socket Mode for this app (link_disabled); turn it back on and restart"
            );
            3
        }
        StopReason::AppTokenRejected => {
            eprintln!("netrunbook: Slack rejected SLACK_APP_TOKEN (see the log); check the app-level token");
            2
        }
    })
}

/// `netrunbook health`: 0 when `url` answers 200 within a few seconds, else 1.
fn health(url: String) -> i32 {
    match netrunbook::http::get(&url, Duration::from_secs(3)) {
        Ok((200, _)) => {
            println!("healthy: {url} answered 200");
            0
        }
        Ok((status, _)) => {
            eprintln!("netrunbook: unhealthy: {url} answered {status}");
            1
        }
        Err(e) => {
            eprintln!("netrunbook: unhealthy: {e:#}", e = anyhow::Error::from(e));
            1
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
