//! Builds strategy instances from `[[strategy]]` config blocks.

use keel_core::config::StrategyConfig;
use keel_core::strategy::Strategy;

use crate::params::Params;

/// A strategy's config is wrong: the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error at `{key}`: {reason}")]
pub struct StrategyConfigError {
    /// The offending key, e.g. `strategy[0].params.slow`.
    pub key: String,
    /// Why it is wrong.
    pub reason: String,
}

/// The strategy kinds this build knows.
pub const KINDS: &[&str] =
    &["sma_cross", "ema_cross", "rsi_reversion", "bollinger_breakout", "macd", "grid", "webhook"];

/// Builds the strategy of config block number `index` (for error messages).
pub fn build(index: usize, config: &StrategyConfig) -> Result<Box<dyn Strategy>, StrategyConfigError> {
    let params = Params::new(&config.params, format!("strategy[{index}].params"));
    let symbol = keel_core::Symbol::new(&config.symbol);
    match config.kind.as_str() {
        "sma_cross" => Ok(Box::new(crate::ma_cross::SmaCross::from_params(symbol, &params)?)),
        "ema_cross" => Ok(Box::new(crate::ma_cross::EmaCross::from_params(symbol, &params)?)),
        "rsi_reversion" => Ok(Box::new(crate::rsi_reversion::RsiReversion::from_params(symbol, &params)?)),
        "bollinger_breakout" => {
            Ok(Box::new(crate::bollinger_breakout::BollingerBreakout::from_params(symbol, &params)?))
        }
        "macd" => Ok(Box::new(crate::macd::MacdCross::from_params(symbol, &params)?)),
        "grid" => Ok(Box::new(crate::grid::Grid::from_params(symbol, &params)?)),
        "webhook" => Ok(Box::new(crate::webhook::Webhook::from_params(symbol, &params)?)),
        other => Err(StrategyConfigError {
            key: format!("strategy[{index}].kind"),
            reason: format!("unknown strategy kind `{other}` (known: {})", KINDS.join(", ")),
        }),
    }
}

/// Validates every strategy block by building it.
pub fn validate_all(configs: &[StrategyConfig]) -> Result<(), StrategyConfigError> {
    for (i, c) in configs.iter().enumerate() {
        build(i, c)?;
    }
    Ok(())
}
