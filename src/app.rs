//! `netrunbook serve` as a library: [`Application::build`] opens the store, loads the knowledge base
//! and checks the bot token with Slack; [`Application::run_until_stopped`] keeps the Socket Mode
//! connections open until the shutdown future resolves (or Slack disables Socket Mode), then stops
//! taking events, lets in-flight replies finish and flushes the store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracing::{error, info, warn};

use crate::bot::{error_chain, Bot, Identity};
use crate::config::Settings;
use crate::slack::socket::SocketMode;
use crate::slack::{unix_now, Engine, StopReason, Web};
use crate::store::{SledStore, Store};

/// How often expired conversations and old event ids are purged.
const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// A built, not yet running, bot.
pub struct Application {
    engine: Arc<Engine<SledStore>>,
    store: SledStore,
    idle_ttl: Duration,
    shutdown_grace: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let db = settings.db.clone();
        let store = tokio::task::spawn_blocking(move || SledStore::open(db))
            .await
            .context("opening the conversation store panicked")??;
        let kb = settings
            .kb
            .load()
            .with_context(|| format!("cannot load the knowledge base ({})", settings.kb.describe()))?;
        let web = Web::new(
            &settings.slack_api_url,
            &settings.bot_token,
            &settings.app_token,
            settings.tuning.retry.clone(),
        )?;
        let (user_id, bot_id, team) = web
            .auth_test()
            .await
            .context("SLACK_BOT_TOKEN was not accepted by Slack (auth.test)")?;
        info!(
            bot_user = %user_id,
            team = %team,
            kb_version = %kb.version,
            intents = kb.intents.len(),
            db = %settings.db.display(),
            "netrunbook starting"
        );
        let bot = Bot::new(Arc::new(kb), store.clone(), Identity { user_id, bot_id });
        Ok(Application {
            engine: Engine::new(bot, web, settings.tuning.clone()),
            store,
            idle_ttl: settings.idle_ttl,
            shutdown_grace: settings.shutdown_grace,
        })
    }

    pub fn engine(&self) -> &Arc<Engine<SledStore>> {
        &self.engine
    }

    /// Serve until `shutdown` resolves or Slack makes us stop; returns why it stopped.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<StopReason> {
        let engine = self.engine.clone();
        let socket_mode = SocketMode::start(&engine)
            .await
            .context("cannot start the Socket Mode listener")?;
        let listener = tokio::spawn(socket_mode.run(engine.clone()));
        let purger = tokio::spawn(purge_loop(self.store.clone(), self.idle_ttl));
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
        engine.drain(self.shutdown_grace).await;
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => info!("conversation store flushed"),
            Ok(Err(e)) => error!(error = %error_chain(&e), "cannot flush the conversation store"),
            Err(e) => error!(error = %e, "flushing the conversation store panicked"),
        }
        let reason = engine.stop_reason().unwrap_or(StopReason::Shutdown);
        info!(reason = ?reason, "netrunbook stopped");
        Ok(reason)
    }
}

async fn purge_loop(store: SledStore, idle: Duration) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        every.tick().await;
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.purge(unix_now(), idle.as_secs())).await {
            Ok(Ok(p)) if p.conversations + p.events > 0 => {
                info!(
                    conversations = p.conversations,
                    events = p.events,
                    "purged expired state"
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %error_chain(&e), "purge failed"),
            Err(e) => warn!(error = %e, "purge panicked"),
        }
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
