//! Builds strategy instances from `[[strategy]]` config blocks.

use keel_core::config::StrategyConfig;
use keel_core::strategy::Strategy;

use crate::bollinger_breakout::BollingerBreakout;
use crate::grid::Grid;
use crate::ma_cross::{EmaCross, SmaCross};
use crate::macd::MacdCross;
use crate::params::{ParamSpec, Params};
use crate::rsi_reversion::RsiReversion;
use crate::scanner::Scanner;
use crate::webhook::Webhook;

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
    &["sma_cross", "ema_cross", "rsi_reversion", "bollinger_breakout", "macd", "grid", "webhook", "scanner"];

/// The exits of config block number `index`, validated (its ROI table
/// sorted by time); the error names the key (`strategy[0].exits.stop_loss`).
pub fn exits(index: usize, config: &StrategyConfig) -> Result<Option<keel_core::exits::ExitSpec>, StrategyConfigError> {
    let Some(spec) = &config.exits else { return Ok(None) };
    let mut spec = spec.clone();
    spec.validate(&format!("strategy[{index}].exits"))
        .map_err(|e| StrategyConfigError { key: e.key, reason: e.reason })?;
    Ok(Some(spec))
}

/// Builds the strategy of config block number `index` (for error messages);
/// its `exits`, if any, are checked too (see [`exits`]).
pub fn build(index: usize, config: &StrategyConfig) -> Result<Box<dyn Strategy>, StrategyConfigError> {
    exits(index, config)?;
    let params = Params::new(&config.params, format!("strategy[{index}].params"));
    let symbol = keel_core::Symbol::new(&config.symbol);
    match config.kind.as_str() {
        "sma_cross" => Ok(Box::new(SmaCross::from_params(symbol, &params)?)),
        "ema_cross" => Ok(Box::new(EmaCross::from_params(symbol, &params)?)),
        "rsi_reversion" => Ok(Box::new(RsiReversion::from_params(symbol, &params)?)),
        "bollinger_breakout" => Ok(Box::new(BollingerBreakout::from_params(symbol, &params)?)),
        "macd" => Ok(Box::new(MacdCross::from_params(symbol, &params)?)),
        "grid" => Ok(Box::new(Grid::from_params(symbol, &params)?)),
        "webhook" => Ok(Box::new(Webhook::from_params(symbol, &params)?)),
        "scanner" => Ok(Box::new(Scanner::from_params(symbol, &params)?)),
        other => Err(StrategyConfigError {
            key: format!("strategy[{index}].kind"),
            reason: format!("unknown strategy kind `{other}` (known: {})", KINDS.join(", ")),
        }),
    }
}

/// The parameters a strategy kind reads (what its builder accepts), or `None`
/// for a kind this build does not know.
pub fn params(kind: &str) -> Option<&'static [ParamSpec]> {
    match kind {
        "sma_cross" => Some(SmaCross::PARAMS),
        "ema_cross" => Some(EmaCross::PARAMS),
        "rsi_reversion" => Some(RsiReversion::PARAMS),
        "bollinger_breakout" => Some(BollingerBreakout::PARAMS),
        "macd" => Some(MacdCross::PARAMS),
        "grid" => Some(Grid::PARAMS),
        "webhook" => Some(Webhook::PARAMS),
        "scanner" => Some(Scanner::PARAMS),
        _ => None,
    }
}

/// Validates every strategy block by building it.
pub fn validate_all(configs: &[StrategyConfig]) -> Result<(), StrategyConfigError> {
    for (i, c) in configs.iter().enumerate() {
        build(i, c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block's exits are checked where its strategy is built (start-up,
    /// `keel check-config`, `keel backtest`), the error naming the key; a
    /// good table comes back validated (its ROI rows sorted).
    #[test]
    fn exits_are_checked_with_the_strategy() {
        let block = |exits: &str| -> StrategyConfig {
            toml::from_str(&format!(
                "id = \"s\"\nkind = \"webhook\"\nsymbol = \"BTCUSDT\"\nparams = {{ qty = \"1\" }}\n{exits}"
            ))
            .unwrap()
        };
        let err = build(3, &block("exits = { max_hold = \"0s\" }")).err().unwrap();
        assert_eq!(err.key, "strategy[3].exits.max_hold");
        let good = block("exits = { roi = [[\"1h\", \"1%\"], [\"0m\", \"3%\"]] }");
        assert!(build(0, &good).is_ok());
        let spec = exits(0, &good).unwrap().unwrap();
        assert_eq!(spec.roi.iter().map(|r| r.after.0).collect::<Vec<_>>(), [0, 3_600_000]);
        assert_eq!(exits(0, &block("")).unwrap(), None);
    }

    /// Every kind lists its parameters, and a block that sets each listed one
    /// gets past the unknown-parameter check (it may fail on a value, never
    /// on a name).
    #[test]
    fn every_kind_lists_the_parameters_its_builder_accepts() {
        for kind in KINDS {
            let specs = params(kind).unwrap_or_else(|| panic!("{kind} lists no parameters"));
            assert!(!specs.is_empty(), "{kind}");
            let mut table = toml::Table::new();
            for s in specs {
                table.insert(s.name.to_string(), toml::Value::String("x".into()));
            }
            let config = StrategyConfig {
                id: "s".into(),
                kind: kind.to_string(),
                symbol: "BTCUSDT".into(),
                symbols: None,
                paused: false,
                params: table,
                exits: None,
            };
            let err = build(0, &config).err().map(|e| e.reason).unwrap_or_default();
            assert!(!err.contains("unknown parameter"), "{kind}: {err}");
            table = config.params.clone();
            table.insert("nope".into(), toml::Value::Integer(1));
            let err = build(0, &StrategyConfig { params: table, ..config }).err().map(|e| e.reason).unwrap_or_default();
            assert!(err.contains("unknown parameter"), "{kind}: {err}");
        }
        assert!(params("no_such_kind").is_none());
    }
}
