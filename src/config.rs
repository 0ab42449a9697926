//! Configuration of `netrunbook serve`: command-line flags and environment variables ([`ServeArgs`],
//! clap) checked into [`Settings`]. Tokens are secrets from the moment they are read: they are never
//! printed, not even in error messages about them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use crate::alert::AlertPolicy;
use crate::bot::Access;
use crate::kb::{KbError, KnowledgeBase, LoadOptions, Source};
use crate::slack::Tuning;

/// Where `/healthz`, `/readyz` and `/metrics` are served unless told otherwise.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9090";

/// Where the knowledge base comes from.
#[derive(Debug, Clone, Args)]
pub struct KbArgs {
    /// Intents directory; without it the copy compiled into the binary is used
    #[arg(long, env = "NETRUNBOOK_INTENTS")]
    pub intents: Option<PathBuf>,
    /// Runbook site base URL that relative runbook links resolve against (overrides _runbook.yaml)
    #[arg(long, env = "NETRUNBOOK_RUNBOOK_BASE_URL")]
    pub runbook_base_url: Option<String>,
}

impl KbArgs {
    /// The knowledge base's files: those of `--intents`, or the copies compiled into the binary.
    pub(crate) fn sources(&self) -> Result<Vec<Source>, KbError> {
        match &self.intents {
            Some(dir) => crate::kb::read_dir_sources(dir),
            None => Ok(crate::kb::builtin_sources()),
        }
    }

    pub(crate) fn options(&self) -> LoadOptions {
        LoadOptions {
            base_url: self.runbook_base_url.clone(),
        }
    }

    pub fn load(&self) -> Result<KnowledgeBase, KbError> {
        let opts = self.options();
        match &self.intents {
            Some(dir) => KnowledgeBase::load_dir(dir, &opts),
            None => KnowledgeBase::from_sources(crate::kb::builtin_sources(), &opts),
        }
    }

    /// The knowledge base for a long-running process: reloadable when it comes from a directory.
    pub(crate) fn load_live(&self) -> Result<crate::kb::LiveKb, KbError> {
        let kb = self.load()?;
        Ok(match &self.intents {
            Some(dir) => crate::kb::LiveKb::from_dir(kb, dir.clone(), self.options()),
            None => crate::kb::LiveKb::from(std::sync::Arc::new(kb)),
        })
    }

    pub(crate) fn describe(&self) -> String {
        match &self.intents {
            Some(d) => d.display().to_string(),
            None => "built-in intents".to_string(),
        }
    }
}

/// Flags of `netrunbook serve`; each can also come from the environment variable named.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub kb: KbArgs,
    /// App-level token (xapp-...) with connections:write; prefer the environment variable
    #[arg(long, env = "SLACK_APP_TOKEN", hide_env_values = true)]
    pub app_token: Option<String>,
    /// Bot token (xoxb-...); prefer the environment variable
    #[arg(long, env = "SLACK_BOT_TOKEN", hide_env_values = true)]
    pub bot_token: Option<String>,
    /// Directory of the conversation store (sled) [default: /data in a container, else ./netrunbook.sled]; not used with --database-url
    #[arg(long, env = "NETRUNBOOK_DB")]
    pub db: Option<PathBuf>,
    /// PostgreSQL for two or more replicas (postgres://user:pass@host:5432/db?sslmode=verify-full&sslrootcert=ca.pem): every piece of state there instead of in --db; prefer the environment variable
    #[arg(long, env = "NETRUNBOOK_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Connections each replica keeps to PostgreSQL, at most, for its steps (and as many again for the journal, claims and heartbeats)
    #[arg(long, env = "NETRUNBOOK_DATABASE_POOL", default_value_t = crate::store::postgres::DEFAULT_POOL_SIZE as u16, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub database_pool: u16,
    /// A replica silent for this long (no heartbeat) is dead: its threads and unfinished events are taken over (500ms to 30s)
    #[arg(long, env = "NETRUNBOOK_REPLICA_LEASE", default_value = "30s", value_parser = parse_lease)]
    pub replica_lease: Duration,
    /// Slack Web API base URL
    #[arg(long, env = "SLACK_API_URL", default_value = "https://slack.com/api")]
    pub slack_api_url: String,
    /// Forget a thread's conversation after this long without activity (e.g. 7d, 12h, 90m)
    #[arg(long, env = "NETRUNBOOK_IDLE_TTL", default_value = "7d", value_parser = parse_duration)]
    pub idle_ttl: Duration,
    /// Socket Mode connections to keep open
    #[arg(long, env = "NETRUNBOOK_CONNECTIONS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=10))]
    pub connections: u16,
    /// On SIGTERM, how long in-flight replies may take before the store is flushed and we exit
    #[arg(long, env = "NETRUNBOOK_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Log format
    #[arg(long, env = "NETRUNBOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Address of the HTTP server for /healthz, /readyz and /metrics (port 0: any free port)
    #[arg(long, env = "NETRUNBOOK_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// Channel ids the bot answers in, comma-separated (e.g. C0123ABC,C0456DEF) [default: every channel]
    #[arg(long, env = "NETRUNBOOK_ALLOWED_CHANNELS", value_delimiter = ',', value_parser = parse_channel_id)]
    pub allowed_channels: Vec<String>,
    /// User ids (not names) allowed `/netrunbook reload` and `/netrunbook report`, comma-separated
    #[arg(long, env = "NETRUNBOOK_ADMINS", value_delimiter = ',', value_parser = parse_user_id)]
    pub admins: Vec<String>,
    /// Channel ids where a new top-level post by another app (PagerDuty, Alertmanager...) is read as an alert, comma-separated
    #[arg(long, env = "NETRUNBOOK_ALERT_CHANNELS", value_delimiter = ',', value_parser = parse_channel_id)]
    pub alert_channels: Vec<String>,
    /// Only these bot ids (B...) count as alerting apps, comma-separated [default: every app but this bot]
    #[arg(long, env = "NETRUNBOOK_ALERT_BOTS", value_delimiter = ',', value_parser = parse_bot_id)]
    pub alert_bots: Vec<String>,
    /// At most this many alert answers per channel per --alert-window, then one line holding back
    #[arg(long, env = "NETRUNBOOK_ALERT_LIMIT", default_value_t = 20)]
    pub alert_limit: usize,
    /// The window of --alert-limit (e.g. 10m)
    #[arg(long, env = "NETRUNBOOK_ALERT_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub alert_window: Duration,
    /// Keep feedback, answer counts and unanswered questions this long (e.g. 30d)
    #[arg(long, env = "NETRUNBOOK_FEEDBACK_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub feedback_retention: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// PostgreSQL, for replicas.
#[derive(Debug, Clone)]
pub struct Database {
    /// The URL (it may hold a password).
    pub url: SecretString,
    /// Connections in the pool, at most.
    pub pool: usize,
    /// A replica silent for this long is taken over.
    pub lease: Duration,
}

/// Everything `serve` needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub app_token: SecretString,
    pub bot_token: SecretString,
    pub db: PathBuf,
    /// With a database, state lives there and `db` is not used.
    pub database: Option<Database>,
    pub slack_api_url: String,
    pub idle_ttl: Duration,
    pub shutdown_grace: Duration,
    pub kb: KbArgs,
    pub tuning: Tuning,
    /// Where the health and metrics server listens.
    pub http_addr: SocketAddr,
    pub access: Access,
    pub alerts: AlertPolicy,
    pub feedback_retention: Duration,
}

/// A setting that is missing or malformed. Never contains a token's value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is not set: {what}")]
    Missing { var: &'static str, what: &'static str },
    #[error("{var} is malformed: {what}")]
    Malformed { var: &'static str, what: &'static str },
}

impl Settings {
    pub fn from_args(args: ServeArgs) -> Result<Settings, ConfigError> {
        let kb = args.kb.clone();
        let app_token = token(
            args.app_token,
            "SLACK_APP_TOKEN",
            "xapp-",
            "set it to the app-level token (xapp-..., scope connections:write) from the app's Basic Information page",
        )?;
        let bot_token = token(
            args.bot_token,
            "SLACK_BOT_TOKEN",
            "xoxb-",
            "set it to the bot token (xoxb-...) from the app's OAuth & Permissions page",
        )?;
        let url = args.slack_api_url.trim_end_matches('/').to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::Malformed {
                var: "SLACK_API_URL",
                what: "it must be an http:// or https:// URL such as https://slack.com/api",
            });
        }
        Ok(Settings {
            app_token,
            bot_token,
            db: args.db.unwrap_or_else(default_db_dir),
            database: args
                .database_url
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .map(|url| Database {
                    url: SecretString::from(url),
                    pool: args.database_pool.into(),
                    lease: args.replica_lease,
                }),
            slack_api_url: url,
            idle_ttl: args.idle_ttl,
            shutdown_grace: args.shutdown_grace,
            kb,
            tuning: Tuning {
                connections: args.connections.into(),
                ..Tuning::default()
            },
            http_addr: args.http_addr,
            access: Access {
                channels: (!args.allowed_channels.is_empty()).then(|| args.allowed_channels.into_iter().collect()),
                admins: args.admins.into_iter().collect::<BTreeSet<_>>(),
            },
            alerts: AlertPolicy {
                channels: args.alert_channels.into_iter().collect(),
                bots: (!args.alert_bots.is_empty()).then(|| args.alert_bots.into_iter().collect()),
                limit: args.alert_limit.max(1),
                window_secs: args.alert_window.as_secs().max(1),
            },
            feedback_retention: args.feedback_retention,
        })
    }
}

fn token(
    value: Option<String>,
    var: &'static str,
    prefix: &'static str,
    what: &'static str,
) -> Result<SecretString, ConfigError> {
    let secret = SecretString::from(value.unwrap_or_default().trim().to_string());
    let v = secret.expose_secret();
    if v.is_empty() {
        return Err(ConfigError::Missing { var, what });
    }
    let wellformed =
        v.starts_with(prefix) && v.len() > prefix.len() + 8 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !wellformed {
        let what = match (prefix, v.starts_with(prefix)) {
            (_, true) => "it has the right prefix but is not a whole token: it is too short, or holds characters a token never has (quotes, spaces, line breaks); copy it again",
            ("xapp-", false) => "expected an app-level token starting with xapp- (letters, digits and dashes)",
            (_, false) => "expected a bot token starting with xoxb- (letters, digits and dashes)",
        };
        return Err(ConfigError::Malformed { var, what });
    }
    Ok(secret)
}

/// `/data` when running in a container that mounts it, else `./netrunbook.sled`.
pub fn default_db_dir() -> PathBuf {
    let in_container = Path::new("/.dockerenv").exists()
        || Path::new("/run/.containerenv").exists()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    if in_container && Path::new("/data").is_dir() {
        PathBuf::from("/data")
    } else {
        PathBuf::from("./netrunbook.sled")
    }
}

/// A Slack id: `prefixes` then upper-case letters and digits (what Slack ids look like; display
/// names never do).
fn slack_id(s: &str, prefixes: &[char], what: &str, example: &str) -> Result<String, String> {
    let id = s.trim();
    let ok =
        id.len() >= 3 && id.starts_with(prefixes) && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(id.to_string())
    } else {
        Err(format!(
            "`{id}` is not a Slack {what} id (like {example}): use ids, not names; Slack shows them under the {what}'s details"
        ))
    }
}

/// A channel id (`C…`, `G…` for older private channels, `D…` for direct messages).
pub(crate) fn parse_channel_id(s: &str) -> Result<String, String> {
    slack_id(s, &['C', 'G', 'D'], "channel", "C0123ABCD")
}

/// A bot id (`B…`).
pub(crate) fn parse_bot_id(s: &str) -> Result<String, String> {
    slack_id(s, &['B'], "bot", "B0123ABCD")
}

/// A user id (`U…`, `W…` in Enterprise Grid).
pub(crate) fn parse_user_id(s: &str) -> Result<String, String> {
    slack_id(s, &['U', 'W'], "user", "U0123ABCD")
}

/// `7d`, `12h`, `90m`, `30s`, `250ms`, or a number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: use e.g. 7d, 12h, 90m, 30s"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}` is not a duration: use e.g. 7d, 12h, 90m, 30s")),
    };
    Ok(Duration::from_secs(secs))
}

/// `--replica-lease`: a duration from 500 ms to 30 s (a dead replica's work waits this long).
fn parse_lease(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(500) || d > Duration::from_secs(30) {
        return Err(format!("`{s}` is outside 500ms..30s"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(app: Option<&str>, bot: Option<&str>) -> ServeArgs {
        ServeArgs {
            kb: kb(),
            app_token: app.map(str::to_string),
            bot_token: bot.map(str::to_string),
            db: Some("/tmp/x".into()),
            database_url: None,
            database_pool: 8,
            replica_lease: Duration::from_secs(30),
            slack_api_url: "https://slack.com/api/".into(),
            idle_ttl: Duration::from_secs(60),
            connections: 2,
            shutdown_grace: Duration::from_secs(1),
            log_format: LogFormat::Text,
            http_addr: DEFAULT_HTTP_ADDR.parse().unwrap(),
            allowed_channels: vec![],
            admins: vec![],
            alert_channels: vec![],
            alert_bots: vec![],
            alert_limit: 20,
            alert_window: Duration::from_secs(600),
            feedback_retention: Duration::from_secs(30 * 86_400),
        }
    }

    fn kb() -> KbArgs {
        KbArgs {
            intents: None,
            runbook_base_url: None,
        }
    }

    #[test]
    fn tokens_are_checked_without_being_echoed() {
        let e = Settings::from_args(args(None, Some("xoxb-1234567890"))).unwrap_err();
        assert!(e.to_string().starts_with("SLACK_APP_TOKEN is not set"), "{e}");
        let e = Settings::from_args(args(Some("xoxb-secretsecret"), Some("xoxb-1234567890"))).unwrap_err();
        assert!(e.to_string().contains("SLACK_APP_TOKEN is malformed") && !e.to_string().contains("secretsecret"));
        let e = Settings::from_args(args(Some("xapp-1-A1-2-abcdef"), Some("xapp-secretsecret"))).unwrap_err();
        assert!(e.to_string().contains("SLACK_BOT_TOKEN") && !e.to_string().contains("secretsecret"));
        // the right prefix, the wrong shape (a quote pasted with it): says so
        let e = Settings::from_args(args(Some("xapp-1-A1-2-abcdef"), Some("xoxb-1-2-secret\""))).unwrap_err();
        assert!(e.to_string().contains("right prefix but is not a whole token"), "{e}");
        assert!(!e.to_string().contains("secret\""), "{e}");
        let s = Settings::from_args(args(Some("xapp-1-A1-2-abcdef"), Some("xoxb-1-2-abcdefgh"))).unwrap();
        assert_eq!(s.slack_api_url, "https://slack.com/api");
        assert!(!format!("{s:?}").contains("abcdef"), "Debug must not show tokens");
    }

    #[test]
    fn ids_not_names() {
        assert_eq!(parse_channel_id(" C0INC "), Ok("C0INC".into()));
        assert_eq!(parse_user_id("W0ALICE"), Ok("W0ALICE".into()));
        for bad in ["#incidents", "alice", "@alice", "U0alice", "C", ""] {
            assert!(parse_channel_id(bad).is_err() && parse_user_id(bad).is_err(), "{bad}");
        }
        assert!(parse_user_id("C0INC").is_err() && parse_channel_id("U0ALICE").is_err());
        let mut a = args(Some("xapp-1-A1-2-abcdef"), Some("xoxb-1-2-abcdefgh"));
        let open = Settings::from_args(a.clone()).unwrap();
        assert!(open.access.channels.is_none() && open.access.admins.is_empty());
        a.allowed_channels = vec!["C1X".into()];
        a.admins = vec!["U1X".into()];
        let s = Settings::from_args(a).unwrap();
        assert!(s.access.answers_in("C1X") && !s.access.answers_in("C2X"));
        assert!(s.access.is_admin("U1X") && !s.access.is_admin("U2X"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_database_url_is_kept_secret_and_the_lease_bounded() {
        let good = "xoxb-1234567890-abcdefghij";
        let mut a = args(Some("xapp-1-A111-222-abcdef0123"), Some(good));
        a.database_url = Some(" postgres://bot:pw-s3cret@db:5432/nrb ".into());
        let s = Settings::from_args(a.clone()).unwrap();
        let d = s.database.as_ref().expect("a database");
        assert_eq!(d.url.expose_secret(), "postgres://bot:pw-s3cret@db:5432/nrb");
        assert!(!format!("{s:?}").contains("pw-s3cret"), "Debug never shows the URL");
        a.database_url = Some("  ".into());
        assert!(Settings::from_args(a).unwrap().database.is_none(), "blank means sled");
        assert_eq!(parse_lease("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_lease("100ms").is_err());
        assert!(parse_lease("31s").is_err());
    }
}
