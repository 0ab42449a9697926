//! `netrunbook serve` as a library: [`Application::build`] opens the store, loads the knowledge base,
//! binds the health and metrics endpoint ([`Application::http_addr`]) and checks the bot token with
//! Slack; [`Application::run_until_stopped`] serves `/healthz`, `/readyz` and `/metrics`, reloads the
//! knowledge base on SIGHUP, purges expired state, delivers replies left in the outbox (at start and
//! every `Tuning::redeliver_every`) and keeps the Socket Mode connections open until the
//! shutdown future resolves (or Slack disables Socket Mode), then stops taking events, lets in-flight
//! replies finish and flushes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::bot::Bot;
use crate::config::Settings;
use crate::error::error_chain;
use crate::inbox::{Inbox, Ticket};
use crate::metrics::Metrics;
use crate::slack::socket::SocketMode;
use crate::slack::{unix_now, Engine, StopReason, Web};
use crate::store::replica::{replica_id, Replicas, Solo};
use crate::store::{FeedbackStore, PgStore, SledStore, Store};
use crate::vocab::Identity;
use crate::vocab::Inbound;

/// How often expired conversations and old event ids are purged.
const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// The store every part of the bot shares: sled in a directory, or PostgreSQL for replicas.
type Shared = Arc<dyn Store>;

/// A built, not yet running, bot.
pub struct Application {
    engine: Arc<Engine<Shared>>,
    /// Events an earlier process (or a replica that stopped) acknowledged and did not finish, to
    /// handle first.
    journaled: Vec<(Inbound, Ticket)>,
    store: Shared,
    replicas: Arc<dyn Replicas>,
    metrics: Arc<Metrics>,
    /// Bound at build time, so the port is known (and taken) before anything runs.
    http: TcpListener,
    idle_ttl: Duration,
    feedback_retention: Duration,
    shutdown_grace: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let (store, replicas, journaled, where_) = open_store(&settings).await?;
        let metrics = Arc::new(Metrics::new());
        metrics.set_store_open(true);
        metrics.expect_methods(
            crate::slack::WEB_API_SCOPES
                .iter()
                .map(|(method, _)| *method)
                .chain(["response_url"]),
        );
        let kb = settings
            .kb
            .load_live()
            .with_context(|| format!("cannot load the knowledge base ({})", settings.kb.describe()))?;
        let http = TcpListener::bind(settings.http_addr).await.with_context(|| {
            format!(
                "cannot listen on {} for /healthz, /readyz and /metrics: set --http-addr or NETRUNBOOK_HTTP_ADDR",
                settings.http_addr
            )
        })?;
        let web = Web::new(
            &settings.slack_api_url,
            &settings.bot_token,
            &settings.app_token,
            settings.tuning.retry.clone(),
        )?
        .with_metrics(metrics.clone());
        let (user_id, bot_id, team) = web.auth_test().await.map_err(|e| {
            // a network failure is not a rejected token: say which one it is
            let why = if e.is_transient() {
                format!("cannot reach Slack at {} (auth.test)", settings.slack_api_url)
            } else {
                "SLACK_BOT_TOKEN was not accepted by Slack (auth.test)".to_string()
            };
            anyhow::Error::new(e).context(why)
        })?;
        let current = kb.get();
        info!(
            bot_user = %user_id,
            team = %team,
            kb_version = %current.version,
            intents = current.intents.len(),
            kb_reloadable = kb.dir().is_some(),
            store = %where_,
            replica = %replicas.id(),
            http = %http.local_addr().map_or_else(|_| settings.http_addr.to_string(), |a| a.to_string()),
            allowed_channels = settings.access.channels.as_ref().map_or(0, |c| c.len()),
            admins = settings.access.admins.len(),
            alert_channels = settings.alerts.channels.len(),
            "netrunbook starting"
        );
        let bot = Bot::new(kb, store.clone(), Identity { user_id, bot_id })
            .with_access(settings.access.clone())
            .with_alerts(settings.alerts.clone())
            .with_metrics(metrics.clone());
        Ok(Application {
            engine: Engine::new(bot, web, settings.tuning.clone(), replicas.clone()),
            journaled,
            store,
            replicas,
            metrics,
            http,
            idle_ttl: settings.idle_ttl,
            feedback_retention: settings.feedback_retention,
            shutdown_grace: settings.shutdown_grace,
        })
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("a bound listener has an address")
    }

    /// Serve until `shutdown` resolves or Slack makes us stop; returns why it stopped.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<StopReason> {
        let engine = self.engine.clone();
        let http_stop = CancellationToken::new();
        let http = tokio::spawn(crate::http::serve(
            self.http,
            self.metrics.clone(),
            http_stop.clone().cancelled_owned(),
        ));
        let reloader = reload_on_sighup(engine.clone());
        // replies a crash left in the outbox go out first, then the events it left unhandled, ahead of
        // anything new in their threads
        engine.sweep_outbox();
        engine.replay(self.journaled);
        let redeliverer = tokio::spawn(engine.clone().redeliver_loop());
        let socket_mode = match SocketMode::start(&engine).await {
            Ok(socket_mode) => socket_mode,
            Err(e) => {
                reloader.abort();
                redeliverer.abort();
                http_stop.cancel();
                let _ = http.await;
                return Err(anyhow::Error::new(e).context("cannot start the Socket Mode listener"));
            }
        };
        let listener = tokio::spawn(socket_mode.run(engine.clone()));
        let beater = tokio::spawn(beat_loop(engine.clone(), self.replicas.clone(), self.metrics.clone()));
        let purger = tokio::spawn(purge_loop(self.store.clone(), self.idle_ttl, self.feedback_retention));
        tokio::select! {
            _ = shutdown => {
                info!("shutdown requested: no longer taking events");
                engine.request_stop(StopReason::Shutdown);
            }
            _ = engine.stopped() => {}
        }
        if let Err(e) = listener.await {
            error!(error = %e, "the Socket Mode listener panicked");
        }
        purger.abort();
        reloader.abort();
        redeliverer.abort();
        engine.drain(self.shutdown_grace).await;
        beater.abort();
        let replicas = self.replicas.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || replicas.leave()).await {
            error!(error = %e, "leaving the replicas panicked");
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => info!("conversation store flushed"),
            Ok(Err(e)) => error!(error = %error_chain(&e), "cannot flush the conversation store"),
            Err(e) => error!(error = %e, "flushing the conversation store panicked"),
        }
        self.metrics.set_store_open(false);
        http_stop.cancel();
        let _ = http.await;
        let reason = engine.stop_reason().unwrap_or(StopReason::Shutdown);
        info!(reason = ?reason, "netrunbook stopped");
        Ok(reason)
    }
}

/// Open the store `settings` name: PostgreSQL with `--database-url` (migrated, this replica's first
/// heartbeat given, the events of replicas that stopped taken over), else sled in `--db` with the
/// inbox journal beside it. Also returns where it is, for the log.
async fn open_store(
    settings: &Settings,
) -> anyhow::Result<(Shared, Arc<dyn Replicas>, Vec<(Inbound, Ticket)>, String)> {
    if let Some(database) = &settings.database {
        let url = secrecy::ExposeSecret::expose_secret(&database.url).to_string();
        let (pool, lease) = (database.pool, database.lease);
        let pg = tokio::task::spawn_blocking(move || PgStore::open(&url, pool))
            .await
            .context("opening the database panicked")?
            .context("cannot open the database (--database-url)")?;
        let where_ = pg.target().to_string();
        let replicas: Arc<dyn Replicas> = Arc::new(pg.replicas(replica_id(), lease));
        let r = replicas.clone();
        let journaled = tokio::task::spawn_blocking(move || r.beat())
            .await
            .context("joining the replicas panicked")?
            .context("cannot join the replicas in the database")?;
        return Ok((Arc::new(pg), replicas, journaled, where_));
    }
    let db = settings.db.clone();
    let sled = tokio::task::spawn_blocking(move || SledStore::open(db))
        .await
        .context("opening the conversation store panicked")??;
    let (inbox, journaled) = Inbox::open(settings.db.join(crate::inbox::INBOX_DIR))?;
    let where_ = settings.db.display().to_string();
    Ok((Arc::new(sled), Arc::new(Solo::new(Some(inbox))), journaled, where_))
}

/// Beat every [`Replicas::beat_every`] (replicas only): readiness follows whether the beat reached
/// the database, and the events it hands over (a stopped replica's, or this one's put off while the
/// database was away) go to their threads.
async fn beat_loop<S: Store + 'static>(engine: Arc<Engine<S>>, replicas: Arc<dyn Replicas>, metrics: Arc<Metrics>) {
    let Some(every) = replicas.beat_every() else {
        return;
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = true;
    loop {
        ticks.tick().await;
        let r = replicas.clone();
        match tokio::task::spawn_blocking(move || r.beat()).await {
            Ok(Ok(left)) => {
                if !was_up {
                    info!("the database is back");
                }
                was_up = true;
                metrics.set_store_open(true);
                // the heartbeat is a write: a write that failed while the database was away is past
                metrics.store_write(true);
                engine.replay(left);
            }
            Ok(Err(e)) => {
                if was_up {
                    error!(error = %error_chain(&e), "cannot reach the database: not ready until it is back");
                }
                was_up = false;
                metrics.set_store_open(false);
            }
            Err(e) => error!(error = %e, "the heartbeat panicked"),
        }
    }
}

async fn purge_loop(store: Shared, idle: Duration, retention: Duration) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        every.tick().await;
        let s = store.clone();
        let purged = tokio::task::spawn_blocking(move || {
            let now = unix_now();
            Ok::<_, crate::store::StoreError>((
                s.purge(now, idle.as_secs())?,
                s.purge_feedback(now, retention.as_secs())?,
            ))
        })
        .await;
        match purged {
            Ok(Ok((p, f))) if p.conversations + p.events + f.answer_days + f.votes + f.unanswered > 0 => {
                info!(
                    conversations = p.conversations,
                    events = p.events,
                    answer_days = f.answer_days,
                    votes = f.votes,
                    unanswered = f.unanswered,
                    "purged expired state"
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %error_chain(&e), "purge failed"),
            Err(e) => warn!(error = %e, "purge panicked"),
        }
    }
}

/// Reload the knowledge base on every SIGHUP (Unix only). The handler is installed before this
/// returns, so a SIGHUP sent once the bot is up never takes the default action (exit).
fn reload_on_sighup(engine: Arc<Engine<Shared>>) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    info!("SIGHUP: reloading the knowledge base");
                    engine.reload_kb("SIGHUP").await;
                }
            }),
            Err(e) => {
                error!(error = %e, "cannot listen for SIGHUP; reload with /netrunbook reload instead");
                tokio::spawn(async {})
            }
        }
    }
    #[cfg(not(unix))]
    {
        drop(engine);
        tokio::spawn(async {})
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
