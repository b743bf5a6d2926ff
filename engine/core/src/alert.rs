//! Setup alerts: what a strategy that watches rather than trades (the
//! `scanner` kind) says when a condition holds. An alert is data, stamped
//! with the strategy's clock, so a backtest produces the same alerts as the
//! live engine; the engine publishes them to the notifiers and the console.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::symbol::{StrategyId, Symbol};

/// One alert: which strategy, symbol and condition, a line for people, and
/// the values that triggered it (as text, exact for decimals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupAlert {
    /// The strategy that raised it.
    pub strategy_id: StrategyId,
    /// Symbol.
    pub symbol: Symbol,
    /// The condition's stable name, e.g. `funding_above`.
    pub condition: String,
    /// One line for people.
    pub message: String,
    /// The values that triggered it, by name.
    pub values: BTreeMap<String, String>,
    /// When it was raised, on the strategy's clock (ms since the epoch).
    pub ts_ms: i64,
}
