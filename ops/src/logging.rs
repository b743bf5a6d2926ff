//! Logging setup: human-readable lines by default, JSON lines on request,
//! written to stderr by a background thread so a stalled log pipe (a stuck
//! journald or Docker log driver, a full pipe nobody reads) never stops the
//! engine: lines that do not fit the bounded buffer are dropped, counted in
//! `keel_log_lines_dropped_total`, and reported once the output takes lines
//! again.

use std::sync::mpsc;
use std::time::Duration;

use crate::config::LogFormat;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// Lines held for a slow log output before new ones are dropped.
pub const BUFFERED_LINES: usize = 16_384;

/// How long exiting waits for buffered lines to reach the log output. A
/// blocked output must not keep a stopping engine alive.
pub const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// How often dropped lines are counted and, once the output recovers, reported.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Keeps the log writer's thread; dropping it flushes what is buffered, for
/// at most [`FLUSH_WAIT`].
#[must_use = "logging stops when the guard is dropped"]
pub struct LogGuard(Option<WorkerGuard>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(guard) = self.0.take() else { return };
        // The writer's own shutdown can block on a stuck output: let it
        // flush on another thread and stop waiting after a while.
        let (done, wait) = mpsc::channel();
        let flusher = std::thread::Builder::new().name("keel-log-flush".into()).spawn(move || {
            drop(guard);
            let _ = done.send(());
        });
        if flusher.is_ok() {
            let _ = wait.recv_timeout(FLUSH_WAIT);
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `level`.
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("keel-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.with_target(false).finish().with(crate::log_feed::LogFeed).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
            .with(crate::log_feed::LogFeed)
            .try_init(),
    };
    match result {
        Ok(()) => {
            report_dropped(dropped);
            LogGuard(Some(guard))
        }
        // A second init (tests) keeps the first subscriber and its writer.
        Err(_) => LogGuard(None),
    }
}

/// Counts dropped lines in the metric as they happen and logs how many were
/// lost once the output takes lines again (a warning while it is blocked
/// would only be dropped too).
fn report_dropped(counter: ErrorCounter) {
    let spawned = std::thread::Builder::new().name("keel-log-drops".into()).spawn(move || {
        let (mut seen, mut unreported) = (0usize, 0usize);
        loop {
            std::thread::sleep(REPORT_EVERY);
            let now = counter.dropped_lines();
            if now > seen {
                actors::metrics::metrics().log_lines_dropped_total.inc_by((now - seen) as u64);
                unreported += now - seen;
                seen = now;
            } else if unreported > 0 {
                tracing::warn!(dropped = unreported, "the log output was blocked: log lines were dropped");
                unreported = 0;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start counting dropped log lines");
    }
}
