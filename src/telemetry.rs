//! The tracing subscriber for `serve`: human-readable or JSON lines on standard error, filtered by
//! `RUST_LOG` (default `info`). Message text is logged at `debug` only. Beside it, the layer of the
//! process-wide [`SocketModeWatch`] reads the two slack-morphism events the bot acts on (a
//! `disconnect` reason, a refused `apps.connections.open`); it has a filter of its own, so `RUST_LOG`
//! does not hide those events from it and it prints nothing.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::LogFormat;
use crate::slack::SocketModeWatch;

/// Install the global subscriber; a second call (tests) leaves the first in place.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // colours only for a person at a terminal, never in files or a log collector
    let lines = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let lines = match format {
        LogFormat::Json => lines.json().flatten_event(true).with_current_span(true).boxed(),
        LogFormat::Text => lines.with_target(false).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(SocketModeWatch::global().layer())
        .try_init();
}
