//! One operator notification as every notifier receives it: the plain text
//! (what Telegram sends, unchanged) together with its structure (a title, a
//! severity, named fields, a time, and the symbol a chart could show), which
//! Discord turns into an embed. Built once per event by
//! [`crate::notify::event_notice`], so there is one formatter for both.

use std::sync::Arc;

use keel_core::Symbol;

/// How urgent a notification is; Discord colours its embed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Needs the operator now (emergency stop, HALTED, a protection tripped, a ban).
    Critical,
    /// Something went wrong that Keel handles (a disconnect, a venue rejection, a 429).
    Warning,
    /// Routine (started, resumed, the daily summary).
    Info,
    /// A fill.
    Fill,
}

/// A chart a notifier may attach: the symbol's recent bars with Keel's fills marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartRequest {
    /// The symbol to draw.
    pub symbol: Symbol,
}

/// One notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The whole message as text (what text-only notifiers send).
    pub text: String,
    /// A short title (the embed's title).
    pub title: String,
    /// How urgent it is.
    pub severity: Severity,
    /// Named values (the embed's fields), in order.
    pub fields: Vec<(String, String)>,
    /// When it happened (ms since the epoch, UTC).
    pub at_ms: i64,
    /// A chart worth attaching (fills, the daily summary, setup alerts: the
    /// setup's symbol).
    pub chart: Option<ChartRequest>,
    /// The rendered chart (PNG), filled in by a notifier that draws charts
    /// once before its first attempt, so retries resend the same picture.
    pub image: Option<Arc<Vec<u8>>>,
}

impl Notice {
    /// A notice with a title, no fields and no chart.
    pub fn new(title: impl Into<String>, severity: Severity, text: impl Into<String>, at_ms: i64) -> Self {
        Self { text: text.into(), title: title.into(), severity, fields: Vec::new(), at_ms, chart: None, image: None }
    }

    /// Adds a named field.
    pub fn field(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields.push((name.to_string(), value.into()));
        self
    }

    /// Asks for a chart of `symbol`.
    pub fn with_chart(mut self, symbol: Symbol) -> Self {
        self.chart = Some(ChartRequest { symbol });
        self
    }

    /// Several notices of one coalescing group (`fills`) as one: the text
    /// lists them under "N fills:", as it always has; the chart is the first one's.
    pub fn merge(group: &str, items: Vec<Notice>) -> Notice {
        let n = items.len();
        let mut items = items.into_iter();
        let Some(first) = items.next() else {
            return Notice::from("");
        };
        if n == 1 {
            return first;
        }
        let rest: Vec<Notice> = items.collect();
        let at_ms = rest.last().map_or(first.at_ms, |l| l.at_ms);
        let lines: Vec<&str> =
            std::iter::once(first.text.as_str()).chain(rest.iter().map(|r| r.text.as_str())).collect();
        Notice {
            text: format!("{n} {group}:\n{}", lines.join("\n")),
            title: format!("{n} {group}"),
            severity: first.severity,
            fields: Vec::new(),
            at_ms,
            chart: first.chart.clone(),
            image: None,
        }
    }
}

impl From<&str> for Notice {
    /// A plain informational message, titled "Keel" (its text is the embed's description).
    fn from(text: &str) -> Self {
        Notice::new("Keel", Severity::Info, text, crate::summary::now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_fills_keep_the_old_text_and_the_first_chart() {
        let fill = |i: i64| {
            Notice::new("Fill", Severity::Fill, format!("Fill {i}"), i).with_chart(Symbol::new(if i == 0 {
                "BTCUSDT"
            } else {
                "ETHUSDT"
            }))
        };
        let one = Notice::merge("fills", vec![fill(0)]);
        assert_eq!(one, fill(0));
        let three = Notice::merge("fills", vec![fill(0), fill(1), fill(2)]);
        assert_eq!(three.text, "3 fills:\nFill 0\nFill 1\nFill 2");
        assert_eq!(three.title, "3 fills");
        assert_eq!(three.at_ms, 2);
        assert_eq!(three.chart, Some(ChartRequest { symbol: Symbol::new("BTCUSDT") }));
    }
}
