//! WARN and ERROR log lines for the live console (`log` events of
//! `GET /api/v1/events`): a tracing [`Layer`] copies each such line, as text,
//! into a bounded broadcast. Nothing waits on it: with no one listening a line
//! is not even formatted, and a listener that falls behind misses lines (and
//! is told how many) rather than slowing the code that logs.

use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::Serialize;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept for a listener that has not read them yet.
pub const CAPACITY: usize = 256;

/// One WARN or ERROR line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// When it was logged (ms since the epoch).
    pub ts: i64,
    /// `WARN` or `ERROR`.
    pub level: &'static str,
    /// The module that logged it.
    pub target: String,
    /// The message and its fields (`message key=value ...`).
    pub message: String,
}

fn feed() -> &'static broadcast::Sender<LogLine> {
    static FEED: OnceLock<broadcast::Sender<LogLine>> = OnceLock::new();
    FEED.get_or_init(|| broadcast::channel(CAPACITY).0)
}

/// Hears every WARN and ERROR line logged from now on.
pub fn subscribe() -> broadcast::Receiver<LogLine> {
    feed().subscribe()
}

/// The layer that feeds [`subscribe`]rs; installed by [`crate::logging::init`].
#[derive(Debug, Default, Clone, Copy)]
pub struct LogFeed;

impl<S: Subscriber> Layer<S> for LogFeed {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // More verbose levels compare greater: WARN and ERROR are at most WARN.
        if *meta.level() > Level::WARN {
            return;
        }
        let sender = feed();
        if sender.receiver_count() == 0 {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = if *meta.level() == Level::ERROR { "ERROR" } else { "WARN" };
        let line = LogLine {
            ts: crate::summary::now_ms(),
            level,
            target: meta.target().to_string(),
            message: line_text(&fields.message, &fields.pairs),
        };
        // No receiver left since the check: nothing to do.
        let _ = sender.send(line);
    }
}

/// An event's message and its other fields, as recorded.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else {
            self.pairs.push((field.name(), value));
        }
    }
}

/// The one place a log line's text is made for the console: the message,
/// then `key=value` for each field in the order logged, scrubbed like the
/// log output (no registered secret, control characters escaped: see
/// [`crate::log_scrub`]).
pub fn line_text(message: &str, fields: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(message.len() + 16 * fields.len());
    out.push_str(message);
    for (key, value) in fields {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{key}={value}");
    }
    match crate::log_scrub::scrub(&out) {
        std::borrow::Cow::Borrowed(_) => out,
        std::borrow::Cow::Owned(clean) => clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn line_text_puts_fields_after_the_message() {
        type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
        let cases: [Case; 4] = [
            ("plain", vec![], "plain"),
            (
                "refused",
                vec![("remote", "127.0.0.1".into()), ("status", "401".into())],
                "refused remote=127.0.0.1 status=401",
            ),
            ("", vec![("error", "boom".into())], "error=boom"),
            ("", vec![], ""),
        ];
        for (message, fields, want) in cases {
            assert_eq!(line_text(message, &fields), want, "{message:?} {fields:?}");
        }
    }

    #[test]
    fn line_text_carries_no_secret_and_no_raw_control_character() {
        crate::log_scrub::register("feed-secret-0123456789abcdef");
        let text = line_text(
            "refused\nERROR forged",
            &[("token", "feed-secret-0123456789abcdef".into()), ("reason", "a\u{1b}[31mb".into())],
        );
        assert!(!text.contains("feed-secret-0123456789abcdef"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
    }

    #[test]
    fn only_warn_and_error_reach_the_feed_with_their_fields() {
        let mut rx = subscribe();
        let subscriber = tracing_subscriber::registry().with(LogFeed);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "keel::test_feed", "not this one");
            tracing::warn!(target: "keel::test_feed", remote = %"127.0.0.1", status = 401u16, "HTTP request refused: {}", "authentication failed");
            tracing::debug!(target: "keel::test_feed", "nor this");
            tracing::error!(target: "keel::test_feed", error = "disk full", "store write failed");
        });
        // Other tests of this binary may log through the same feed: keep ours.
        let mut got = Vec::new();
        while let Ok(line) = rx.try_recv() {
            if line.target == "keel::test_feed" {
                got.push((line.level, line.message));
            }
        }
        assert_eq!(
            got,
            vec![
                ("WARN", "HTTP request refused: authentication failed remote=127.0.0.1 status=401".to_string()),
                ("ERROR", "store write failed error=disk full".to_string()),
            ]
        );
    }
}
