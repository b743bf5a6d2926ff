//! Logging setup: human-readable lines by default, JSON lines on request,
//! written to stderr by a background thread so a stalled log pipe (a stuck
//! journald or Docker log driver, a full pipe nobody reads) never stops the
//! engine: lines that do not fit the bounded buffer are dropped, counted in
//! `keel_log_lines_dropped_total`, and reported once the output takes lines
//! again. Every line passes [`crate::log_scrub::scrub`] on its way out (no
//! secret, no control character but the final newline), and text lines are
//! coloured only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::Duration;

use crate::config::LogFormat;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
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

/// Transport crates whose trace level dumps frames and headers (keys,
/// tokens, signatures): their trace events are dropped unless the filter
/// names the crate. [`crate::log_scrub`] redacts what gets through either way.
const TRANSPORT_CRATES: [&str; 8] =
    ["tungstenite", "tokio_tungstenite", "hyper", "hyper_util", "h2", "reqwest", "rustls", "actix_http"];

/// Whether an event of `target` at `level` is a transport dump to drop
/// (`named`: the crates the filter names, which keep everything).
fn transport_dump(target: &str, level: &tracing::Level, named: &[&'static str]) -> bool {
    *level == tracing::Level::TRACE
        && TRANSPORT_CRATES.iter().any(|k| {
            let of_crate = target.strip_prefix(k).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"));
            of_crate && !named.contains(k)
        })
}

/// Installs the global subscriber. `RUST_LOG` overrides `level`.
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV).ok().filter(|v| !v.trim().is_empty());
    let directives = directives.unwrap_or_else(|| level.to_string());
    let named: Vec<&'static str> = TRANSPORT_CRATES.into_iter().filter(|k| directives.contains(k)).collect();
    let no_dumps = filter_fn(move |meta| !transport_dump(meta.target(), meta.level(), &named));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("keel-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let colours = format == LogFormat::Text && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(Scrubbed { inner: writer, colours });
    let result = match format {
        LogFormat::Text => builder.with_target(false).finish().with(no_dumps).with(crate::log_feed::LogFeed).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
            .with(no_dumps)
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

/// Makes one [`EventWriter`] per log event.
struct Scrubbed {
    inner: NonBlocking,
    colours: bool,
}

impl<'a> MakeWriter<'a> for Scrubbed {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter { buf: Vec::with_capacity(256), inner: self.inner.clone(), colours: self.colours }
    }
}

/// Collects one formatted event (however many `write` calls it takes) and,
/// when dropped, hands it scrubbed to the log thread as one line: a newline
/// inside a value is escaped, only the event's final one is kept.
struct EventWriter {
    buf: Vec<u8>,
    inner: NonBlocking,
    colours: bool,
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let line = crate::log_scrub::scrub_keeping_colours(&text, self.colours);
        // The lossy writer never fails: a full buffer counts a dropped line.
        let _ = self.inner.write_all(line.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::transport_dump;
    use tracing::Level;

    #[test]
    fn transport_trace_dumps_are_dropped_unless_named() {
        let cases: &[(&str, Level, &[&'static str], bool)] = &[
            ("tungstenite::protocol", Level::TRACE, &[], true),
            ("tungstenite", Level::TRACE, &[], true),
            ("tungstenite::protocol", Level::DEBUG, &[], false),
            ("tungstenite::protocol", Level::TRACE, &["tungstenite"], false),
            ("h2::codec", Level::TRACE, &[], true),
            ("hyper_util::client", Level::TRACE, &["hyper"], true),
            ("hyperion", Level::TRACE, &[], false),
            ("actors::order_router", Level::TRACE, &[], false),
        ];
        for (target, level, named, dropped) in cases {
            assert_eq!(transport_dump(target, level, named), *dropped, "{target} {level} {named:?}");
        }
    }
}
