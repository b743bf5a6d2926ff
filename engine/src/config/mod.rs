//! The configuration tree (`config.toml`), typed and validated once at start.
//!
//! Parsing rejects unknown keys and wrong types (serde names the key and line);
//! [`Config::validate`] then rejects impossible values, naming the key. Strategy
//! parameters are validated by the strategies crate, which knows each kind.

mod duration;
pub mod ops;
pub mod risk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::instrument::{Instrument, SymbolStatus};
use crate::sim::PricePath;
use crate::symbol::{StrategyId, Symbol};

pub use duration::{parse_duration_ms, DurationMs};
pub use ops::{HttpConfig, NotifyConfig};
pub use risk::RiskConfig;

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

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Engine-wide settings.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The venue to trade on.
    #[serde(default)]
    pub venue: VenueConfig,
    /// Instruments and their simulated price paths.
    #[serde(default, rename = "symbol")]
    pub symbols: Vec<SymbolConfig>,
    /// Starting balances of simulated venues, by asset.
    #[serde(default)]
    pub balances: BTreeMap<String, Decimal>,
    /// Strategy instances.
    #[serde(default, rename = "strategy")]
    pub strategies: Vec<StrategyConfig>,
    /// Risk limits and protections.
    #[serde(default)]
    pub risk: RiskConfig,
    /// HTTP control API and metrics.
    #[serde(default)]
    pub http: HttpConfig,
    /// Operator notifications and the Telegram bot.
    #[serde(default)]
    pub notify: NotifyConfig,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `info,engine=debug`.
    pub log_level: String,
    /// Bar interval strategies trade on, e.g. `1m`.
    pub bar_interval: DurationMs,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            bar_interval: DurationMs(60_000),
        }
    }
}

/// Which venue Keel trades on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VenueMode {
    /// The in-process simulated venue.
    #[default]
    Paper,
    /// The embedded Binance-protocol sandbox exchange, through the Binance adapter.
    Sandbox,
    /// Binance spot testnet.
    Testnet,
    /// Binance spot mainnet (real money).
    Mainnet,
}

impl VenueMode {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Sandbox => "sandbox",
            Self::Testnet => "testnet",
            Self::Mainnet => "mainnet",
        }
    }
}

/// The venue section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VenueConfig {
    /// Which venue.
    pub mode: VenueMode,
    /// Simulated venues: wall time per simulated bar (accelerated time).
    pub bar_wall_time: DurationMs,
    /// Simulated venues: quote updates per bar.
    pub ticks_per_bar: u32,
    /// Simulated venues: maker fee in basis points.
    pub maker_fee_bps: Decimal,
    /// Simulated venues: taker fee in basis points.
    pub taker_fee_bps: Decimal,
    /// Simulated venues: synthetic book levels beyond the touch.
    pub depth_levels: u32,
}

impl Default for VenueConfig {
    fn default() -> Self {
        Self {
            mode: VenueMode::Paper,
            bar_wall_time: DurationMs(250),
            ticks_per_bar: 10,
            maker_fee_bps: Decimal::new(10, 0),
            taker_fee_bps: Decimal::new(10, 0),
            depth_levels: 5,
        }
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
    /// Symbol it trades.
    pub symbol: String,
    /// Start paused.
    #[serde(default)]
    pub paused: bool,
    /// Kind-specific parameters.
    #[serde(default)]
    pub params: toml::Table,
}

impl StrategyConfig {
    /// The instance id.
    pub fn strategy_id(&self) -> StrategyId {
        StrategyId::new(&self.id)
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
        Self::parse(&text)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(toml_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.engine.bar_interval.0 <= 0 {
            return Err(ConfigError::new("engine.bar_interval", "must be positive"));
        }
        if self.venue.bar_wall_time.0 <= 0 {
            return Err(ConfigError::new("venue.bar_wall_time", "must be positive"));
        }
        if self.venue.ticks_per_bar == 0 {
            return Err(ConfigError::new("venue.ticks_per_bar", "must be at least 1"));
        }
        non_negative("venue.maker_fee_bps", self.venue.maker_fee_bps)?;
        non_negative("venue.taker_fee_bps", self.venue.taker_fee_bps)?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.symbols.iter().enumerate() {
            let key = |field: &str| format!("symbol[{i}].{field}");
            if s.symbol.is_empty() || !s.symbol.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
                return Err(ConfigError::new(
                    key("symbol"),
                    format!("`{}` is not a venue symbol (A-Z, 0-9)", s.symbol),
                ));
            }
            if !seen.insert(s.symbol.clone()) {
                return Err(ConfigError::new(key("symbol"), format!("`{}` is configured twice", s.symbol)));
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
        }
        for (asset, amount) in &self.balances {
            non_negative(&format!("balances.{asset}"), *amount)?;
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, s) in self.strategies.iter().enumerate() {
            if s.id.is_empty() || !s.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(ConfigError::new(
                    format!("strategy[{i}].id"),
                    "must be non-empty: letters, digits, `_` or `-`",
                ));
            }
            if !ids.insert(s.id.clone()) {
                return Err(ConfigError::new(format!("strategy[{i}].id"), format!("`{}` is used twice", s.id)));
            }
            if !seen.contains(&s.symbol) {
                return Err(ConfigError::new(
                    format!("strategy[{i}].symbol"),
                    format!("`{}` is not a configured symbol (add a [[symbol]] block)", s.symbol),
                ));
            }
        }
        self.risk.validate()?;
        self.http.validate()?;
        self.notify.validate()?;
        Ok(())
    }

    /// The configured instruments.
    pub fn instruments(&self) -> Vec<Instrument> {
        self.symbols.iter().map(SymbolConfig::instrument).collect()
    }

    /// A symbol's block.
    pub fn symbol(&self, symbol: &str) -> Option<&SymbolConfig> {
        self.symbols.iter().find(|s| s.symbol == symbol)
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

fn toml_error(e: toml::de::Error) -> ConfigError {
    let message = e.message().to_string();
    // toml reports the table path in the message for unknown fields; keep the
    // span (line) so the operator finds it.
    let key = e.span().map(|s| format!("byte {}..{}", s.start, s.end)).unwrap_or_else(|| "config".into());
    ConfigError::new(key, message)
}

#[cfg(test)]
mod tests;
