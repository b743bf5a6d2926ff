//! `[universe]`: which symbols strategy templates (`symbols = "universe"`)
//! run on — the venue's spot pairs in one quote asset, ranked by 24-hour
//! quote volume, refreshed on a period. The ranking itself is
//! [`keel_core::universe::UniverseRules`]; this is its configuration.

use keel_core::config::{non_negative, ConfigError, DurationMs, StrategyConfig};
use keel_core::universe::{SymbolPattern, UniverseRules};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The value of a template's `symbols` key.
pub const UNIVERSE: &str = "universe";

/// The `[universe]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniverseConfig {
    /// The quote asset every member is priced in, e.g. `USDT`.
    pub quote: String,
    /// How many members at most, by 24-hour quote volume.
    pub top_n: usize,
    /// The least 24-hour quote volume (in the quote asset) a member has, as
    /// a decimal string, e.g. `"10000000"`.
    #[serde(default)]
    pub min_quote_volume: Decimal,
    /// Symbols matching any of these patterns (`*` any run, `?` one
    /// character) are never members, e.g. `["*UP*", "USDC*"]`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// How often the ranking is taken again, e.g. `4h`.
    #[serde(default = "default_refresh")]
    pub refresh: DurationMs,
    /// A symbol that leaves also has its instance's working exits (orders
    /// that reduce its position) cancelled at once. Working orders that could
    /// open or add are cancelled either way, and new orders are reduce-only:
    /// the instance only exits until it is flat.
    #[serde(default)]
    pub cancel_orders_on_leave: bool,
}

fn default_refresh() -> DurationMs {
    DurationMs(4 * 3_600_000)
}

/// The least refresh period: a refresh costs request weight (on Binance
/// `exchangeInfo` 20 and one `ticker/24hr` for every symbol 80), so every
/// 10 s spends a tenth of the 6 000 a minute at most.
const MIN_REFRESH_MS: i64 = 10_000;

impl UniverseConfig {
    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.quote.is_empty() || !self.quote.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
            return Err(ConfigError::new(
                "universe.quote",
                format!("`{}` is not an asset name (A-Z, 0-9, e.g. USDT)", self.quote),
            ));
        }
        if self.top_n == 0 {
            return Err(ConfigError::new("universe.top_n", "must be at least 1"));
        }
        non_negative("universe.min_quote_volume", self.min_quote_volume)?;
        for (i, p) in self.exclude.iter().enumerate() {
            SymbolPattern::new(p).map_err(|e| ConfigError::new(format!("universe.exclude[{i}]"), e))?;
        }
        if self.refresh.0 < MIN_REFRESH_MS {
            return Err(ConfigError::new(
                "universe.refresh",
                "must be at least 10s (each refresh costs the venue request weight)",
            ));
        }
        Ok(())
    }

    /// The ranking rules (call after [`UniverseConfig::validate`]; a pattern
    /// that does not build is left out).
    pub fn rules(&self) -> UniverseRules {
        UniverseRules {
            quote: self.quote.clone(),
            top_n: self.top_n,
            min_quote_volume: self.min_quote_volume,
            exclude: self.exclude.iter().filter_map(|p| SymbolPattern::new(p).ok()).collect(),
        }
    }
}

/// Checks `[[strategy]]` block `i`'s choice between `symbol` (one instance)
/// and `symbols = "universe"` (a template): exactly one, and a template only
/// with a `[universe]` section.
pub fn validate_strategy_symbols(
    i: usize,
    s: &StrategyConfig,
    universe: Option<&UniverseConfig>,
) -> Result<(), ConfigError> {
    match (&s.symbols, s.symbol.is_empty()) {
        (None, true) => Err(ConfigError::new(
            format!("strategy[{i}].symbol"),
            "missing: set `symbol = \"BTCUSDT\"` (one instance) or `symbols = \"universe\"` (a template)",
        )),
        (Some(_), false) => Err(ConfigError::new(
            format!("strategy[{i}].symbols"),
            "set either `symbol` (one instance) or `symbols = \"universe\"` (a template), not both",
        )),
        (Some(v), true) if v != UNIVERSE => Err(ConfigError::new(
            format!("strategy[{i}].symbols"),
            format!("`{v}` is not supported: the only value is \"universe\""),
        )),
        (Some(_), true) if universe.is_none() => Err(ConfigError::new(
            format!("strategy[{i}].symbols"),
            "\"universe\" needs a [universe] section (quote, top_n, ...)",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const SYMBOL: &str = crate::config::btc_symbol_toml!();

    const UNIVERSE: &str = r#"
[universe]
quote = "USDT"
top_n = 20
min_quote_volume = "10000000"
exclude = ["*UP*", "*DOWN*", "USDC*", "FDUSD*"]
refresh = "4h"
"#;

    const TEMPLATE: &str = r#"
[[strategy]]
id = "trend"
kind = "sma_cross"
symbols = "universe"
params = { fast = 5, slow = 20, qty = "0.01" }
"#;

    #[test]
    fn the_issue_s_section_parses_with_a_template() {
        let c = Config::parse(&format!("{SYMBOL}{UNIVERSE}{TEMPLATE}")).unwrap();
        let u = c.universe.as_ref().unwrap();
        assert_eq!((u.quote.as_str(), u.top_n, u.refresh.0), ("USDT", 20, 4 * 3_600_000));
        assert_eq!(u.min_quote_volume, "10000000".parse().unwrap());
        assert!(!u.cancel_orders_on_leave, "off unless set");
        let rules = u.rules();
        assert_eq!(rules.exclude.len(), 4);
        assert!(rules.exclude[0].matches("BTCUPUSDT"));
        assert!(c.strategies[0].is_template());
        let i = c.strategies[0].instance("ETHUSDT");
        assert_eq!((i.id.as_str(), i.symbol.as_str(), i.is_template()), ("trend@ETHUSDT", "ETHUSDT", false));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (format!("{SYMBOL}{}", UNIVERSE.replace("top_n = 20", "top_n = 0")), "universe.top_n", "at least 1"),
            (format!("{SYMBOL}{}", UNIVERSE.replace("\"USDT\"", "\"usdt\"")), "universe.quote", "asset name"),
            (
                format!("{SYMBOL}{}", UNIVERSE.replace("\"10000000\"", "\"-1\"")),
                "universe.min_quote_volume",
                "negative",
            ),
            (format!("{SYMBOL}{}", UNIVERSE.replace("\"*DOWN*\"", "\"\"")), "universe.exclude[1]", "empty pattern"),
            (format!("{SYMBOL}{}", UNIVERSE.replace("\"4h\"", "\"9s\"")), "universe.refresh", "at least 10s"),
            (format!("{SYMBOL}{TEMPLATE}"), "strategy[0].symbols", "needs a [universe] section"),
            (
                format!("{SYMBOL}{UNIVERSE}{}", TEMPLATE.replace("symbols = ", "symbol = \"BTCUSDT\"\nsymbols = ")),
                "strategy[0].symbols",
                "not both",
            ),
            (
                format!("{SYMBOL}{UNIVERSE}{}", TEMPLATE.replace("symbols = \"universe\"", "")),
                "strategy[0].symbol",
                "missing",
            ),
            (
                format!("{SYMBOL}{UNIVERSE}{}", TEMPLATE.replace("\"universe\"", "\"all\"")),
                "strategy[0].symbols",
                "only value is \"universe\"",
            ),
            (
                format!("{UNIVERSE}[venue]\nexchange = \"coinbase\"\nmode = \"sandbox\"\n"),
                "universe",
                "lists a market universe",
            ),
        ];
        for (text, key, reason) in cases {
            let e = Config::parse(&text).expect_err(key);
            assert_eq!(e.key, key, "{e}");
            assert!(e.reason.contains(reason), "{key}: {e}");
        }
    }
}
