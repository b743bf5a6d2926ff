//! `[futures]`: the futures feed's timings — how often mark prices arrive,
//! how often each symbol's open interest is read, how long after a funding
//! time the settled rate is read — and whether there is a feed at all. The
//! defaults are the feed's ([`FuturesFeedConfig::default`]).

use actors::futures_feed::FuturesFeedConfig;
use keel_core::config::{ConfigError, DurationMs};
use keel_core::futures::MarkPriceSpeed;
use serde::{Deserialize, Serialize};

/// The least `oi_every`: each symbol's open interest costs one request of
/// weight 1 per period, and a universe of 100 symbols read every 10 s is
/// 600 a minute, a quarter of the venue's futures budget.
const MIN_OI_EVERY_MS: i64 = 10_000;

/// The most `settle_delay`: the settled rate is read within the hour after a
/// funding time (a symbol may settle every hour).
const MAX_SETTLE_DELAY_MS: i64 = 3_600_000;

/// The `[futures]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FuturesSection {
    /// False: no futures feed, even where the venue has a futures market
    /// (strategies then see no futures data).
    pub enabled: bool,
    /// Mark-price updates every `"1s"` or `"3s"` (the venue's default).
    pub mark_price_speed: String,
    /// Every symbol's open interest is read once per this period (one
    /// symbol at a time, evenly spread), e.g. `"60s"`.
    pub oi_every: DurationMs,
    /// How long after a funding time the settled rate is read (the venue
    /// publishes it shortly after, not on the dot), e.g. `"60s"`.
    pub settle_delay: DurationMs,
}

impl Default for FuturesSection {
    fn default() -> Self {
        let feed = FuturesFeedConfig::default();
        Self {
            enabled: true,
            mark_price_speed: speed_text(feed.speed).to_string(),
            oi_every: DurationMs(feed.oi_every.as_millis() as i64),
            settle_delay: DurationMs(feed.settle_delay.as_millis() as i64),
        }
    }
}

fn speed_text(speed: MarkPriceSpeed) -> &'static str {
    match speed {
        MarkPriceSpeed::Every1s => "1s",
        MarkPriceSpeed::Every3s => "3s",
    }
}

fn parse_speed(text: &str) -> Option<MarkPriceSpeed> {
    [MarkPriceSpeed::Every1s, MarkPriceSpeed::Every3s].into_iter().find(|s| speed_text(*s) == text)
}

impl FuturesSection {
    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if parse_speed(&self.mark_price_speed).is_none() {
            return Err(ConfigError::new(
                "futures.mark_price_speed",
                format!("`{}` is not a mark-price speed: \"1s\" or \"3s\"", self.mark_price_speed),
            ));
        }
        if self.oi_every.0 < MIN_OI_EVERY_MS {
            return Err(ConfigError::new(
                "futures.oi_every",
                "must be at least 10s (every symbol's open interest costs a request each period)",
            ));
        }
        if !(0..=MAX_SETTLE_DELAY_MS).contains(&self.settle_delay.0) {
            return Err(ConfigError::new("futures.settle_delay", "must be between 0s and 1h"));
        }
        Ok(())
    }

    /// The feed's settings (call after [`FuturesSection::validate`]; an
    /// unknown speed falls back to the default).
    pub fn feed(&self) -> FuturesFeedConfig {
        FuturesFeedConfig {
            speed: parse_speed(&self.mark_price_speed).unwrap_or_default(),
            oi_every: self.oi_every.as_std(),
            settle_delay: self.settle_delay.as_std(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;

    use super::*;

    const SYMBOL: &str = crate::config::btc_symbol_toml!();

    #[test]
    fn absent_is_today_s_feed_and_every_key_is_read() {
        let c = Config::parse(SYMBOL).unwrap();
        assert!(c.futures.enabled);
        assert_eq!(c.futures.feed(), FuturesFeedConfig::default());
        let text = format!(
            "{SYMBOL}\n[futures]\nenabled = false\nmark_price_speed = \"1s\"\noi_every = \"2m\"\nsettle_delay = \"90s\"\n"
        );
        let c = Config::parse(&text).unwrap();
        assert!(!c.futures.enabled);
        let feed = c.futures.feed();
        assert_eq!(feed.speed, MarkPriceSpeed::Every1s);
        assert_eq!((feed.oi_every, feed.settle_delay), (Duration::from_secs(120), Duration::from_secs(90)));
    }

    #[test]
    fn errors_name_the_key() {
        // ([futures] body, the key, part of the reason)
        let cases = [
            ("mark_price_speed = \"2s\"", "futures.mark_price_speed", "\"1s\" or \"3s\""),
            ("mark_price_speed = \"\"", "futures.mark_price_speed", "not a mark-price speed"),
            ("oi_every = \"5s\"", "futures.oi_every", "at least 10s"),
            ("settle_delay = \"2h\"", "futures.settle_delay", "between 0s and 1h"),
        ];
        for (body, key, reason) in cases {
            let e = Config::parse(&format!("{SYMBOL}\n[futures]\n{body}\n")).expect_err(body);
            let text = e.to_string();
            assert!(text.contains(key) && text.contains(reason), "{body}: {text}");
        }
        let e = Config::parse(&format!("{SYMBOL}\n[futures]\nspeed = \"1s\"\n")).expect_err("unknown key");
        assert!(e.to_string().contains("unknown field `speed`"), "{e}");
    }
}
