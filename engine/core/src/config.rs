//! Configuration types the core owns, and the error every config section
//! reports: the key (dotted path) and the reason.
//!
//! Each crate owns the types of its own section (`[risk]` in the risk crate,
//! `[venue.binance]` in the adapter, `[sandbox]` in the sandbox); the whole
//! `config.toml` tree, its cross-section checks and the line numbers of parse
//! errors are composed in `ops`, where the pieces meet. The core holds what
//! every side shares: instruments with their simulated price paths, strategy
//! instances, durations and the error type.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::exits::ExitSpec;
use crate::instrument::{Instrument, SymbolStatus};
use crate::sim::PricePath;
use crate::symbol::{StrategyId, Symbol};

pub use crate::duration::{parse_duration_ms, DurationMs};

/// A configuration problem: the key (dotted path) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error at `{key}`: {reason}")]
pub struct ConfigError {
    /// The offending key, e.g. `strategy[1].params.slow`.
    pub key: String,
    /// Why it is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A new error.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), reason: reason.into() }
    }
}

/// One instrument: its filters and, for simulated venues, its price path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolConfig {
    /// Symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Base asset.
    pub base: String,
    /// Quote asset.
    pub quote: String,
    /// Price tick.
    pub tick_size: Decimal,
    /// Quantity step.
    pub step_size: Decimal,
    /// Minimum quantity (defaults to the step).
    #[serde(default)]
    pub min_qty: Option<Decimal>,
    /// Maximum quantity (0 = none).
    #[serde(default)]
    pub max_qty: Decimal,
    /// Minimum notional.
    #[serde(default)]
    pub min_notional: Decimal,
    /// Maximum notional (0 = none).
    #[serde(default)]
    pub max_notional: Decimal,
    /// Simulated starting price.
    pub start_price: Decimal,
    /// Simulated annual drift.
    #[serde(default)]
    pub drift: f64,
    /// Simulated annual volatility.
    pub volatility: f64,
    /// Seed of the simulated path.
    #[serde(default)]
    pub seed: u64,
    /// Simulated spread in basis points.
    #[serde(default = "default_spread_bps")]
    pub spread_bps: Decimal,
    /// Simulated quantity at the touch.
    pub touch_qty: Decimal,
}

fn default_spread_bps() -> Decimal {
    Decimal::new(2, 0)
}

impl SymbolConfig {
    /// The instrument this block describes.
    pub fn instrument(&self) -> Instrument {
        Instrument {
            symbol: Symbol::new(&self.symbol),
            base_asset: self.base.clone(),
            quote_asset: self.quote.clone(),
            tick_size: self.tick_size,
            min_price: self.tick_size,
            max_price: Decimal::ZERO,
            step_size: self.step_size,
            min_qty: self.min_qty.unwrap_or(self.step_size),
            max_qty: self.max_qty,
            market_step_size: self.step_size,
            min_notional: self.min_notional,
            max_notional: self.max_notional,
            max_num_orders: 200,
            status: SymbolStatus::Trading,
        }
    }

    /// The simulated price path.
    pub fn price_path(&self) -> PricePath {
        PricePath { start_price: self.start_price, drift: self.drift, volatility: self.volatility, seed: self.seed }
    }
}

/// One strategy instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// Unique id, used in logs, metrics and commands.
    pub id: String,
    /// Kind, e.g. `sma_cross`.
    pub kind: String,
    /// Symbol it trades (empty in a template: see `symbols`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub symbol: String,
    /// `"universe"`: the block is a template, one instance per universe
    /// member (ids `ID@SYMBOL`), instead of one instance on `symbol`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<String>,
    /// Start paused.
    #[serde(default)]
    pub paused: bool,
    /// Kind-specific parameters.
    #[serde(default)]
    pub params: toml::Table,
    /// Exits the engine keeps for the strategy's positions (stop-loss,
    /// take-profit, trailing stop, minimal ROI, max hold); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exits: Option<ExitSpec>,
}

impl StrategyConfig {
    /// The instance id.
    pub fn strategy_id(&self) -> StrategyId {
        StrategyId::new(&self.id)
    }

    /// Whether the block is a template (`symbols = "universe"`).
    pub fn is_template(&self) -> bool {
        self.symbols.is_some()
    }

    /// A template's instance on `symbol`: id `ID@SYMBOL`, the template's
    /// kind, parameters and paused flag.
    pub fn instance(&self, symbol: &str) -> StrategyConfig {
        StrategyConfig { id: instance_id(&self.id, symbol), symbol: symbol.to_string(), symbols: None, ..self.clone() }
    }
}

/// The id of a template's instance on a symbol: `ID@SYMBOL` (the form
/// `--sweep` already uses to address one symbol's block).
pub fn instance_id(template: &str, symbol: &str) -> String {
    format!("{template}@{symbol}")
}

impl SymbolConfig {
    /// Checks values that parse but make no sense; `key` is the block's path
    /// (e.g. `symbol[0]`), so errors name the field as the operator wrote it.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let key = |field: &str| format!("{key}.{field}");
        let s = self;
        // Binance names a pair `BTCUSDT`, Coinbase a product `BTC-USD`.
        let part_ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !s.symbol.split('-').all(part_ok) || s.symbol.matches('-').count() > 1 {
            return Err(ConfigError::new(
                key("symbol"),
                format!(
                    "`{}` is not a venue symbol (A-Z, 0-9, e.g. BTCUSDT, or a product id BASE-QUOTE, e.g. BTC-USD)",
                    s.symbol
                ),
            ));
        }
        positive(&key("tick_size"), s.tick_size)?;
        positive(&key("step_size"), s.step_size)?;
        positive(&key("start_price"), s.start_price)?;
        positive(&key("touch_qty"), s.touch_qty)?;
        non_negative(&key("min_notional"), s.min_notional)?;
        non_negative(&key("max_qty"), s.max_qty)?;
        non_negative(&key("max_notional"), s.max_notional)?;
        non_negative(&key("spread_bps"), s.spread_bps)?;
        if let Some(min) = s.min_qty {
            non_negative(&key("min_qty"), min)?;
        }
        if !(s.volatility.is_finite() && s.volatility >= 0.0) {
            return Err(ConfigError::new(key("volatility"), "must be a finite number ≥ 0"));
        }
        if !s.drift.is_finite() {
            return Err(ConfigError::new(key("drift"), "must be a finite number"));
        }
        Ok(())
    }
}

/// Fails unless `value` > 0.
pub fn positive(key: &str, value: Decimal) -> Result<(), ConfigError> {
    if value <= Decimal::ZERO {
        return Err(ConfigError::new(key, format!("must be positive, got {value}")));
    }
    Ok(())
}

/// Fails if `value` < 0.
pub fn non_negative(key: &str, value: Decimal) -> Result<(), ConfigError> {
    if value < Decimal::ZERO {
        return Err(ConfigError::new(key, format!("must not be negative, got {value}")));
    }
    Ok(())
}
