//! Exits every strategy gets: a stop-loss, a take-profit, a trailing stop, a
//! minimal-ROI table and a maximum holding time, configured per strategy
//! (`exits = { ... }` in its `[[strategy]]` block) instead of written inside
//! each strategy.
//!
//! This module holds what every side shares: the configuration
//! ([`ExitSpec`]), why a position was closed ([`ExitReason`]) and what an
//! exit order is for ([`ExitLeg`], carried by the order through the risk
//! guard, the router and the store, so a restarted engine re-adopts its exit
//! orders instead of placing them twice).

mod book;
mod levels;
mod spec;
mod state;

pub use book::{ExitBook, ExitIo, RISK_RETRY_MS};
pub use spec::{ExitSpec, Pct, Placement, RoiStep, TrailingStop};
pub use state::{Band, ExitEvent, ExitState, PendingClose, PriceTrail, RestingLeg, LEVELS_ONLY};

use serde::{Deserialize, Serialize};

/// Why a position was closed (or reduced): the label of
/// `keel_exits_total{reason}`, of backtest reports, `keel state` and notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The price fell to the stop (for a long).
    StopLoss,
    /// The price reached the target.
    TakeProfit,
    /// The price fell back from its best by the trailing distance.
    TrailingStop,
    /// The minimal-ROI table's profit for the time held was reached.
    Roi,
    /// The position was held for `max_hold`.
    MaxHold,
    /// The strategy itself sold (its own signal).
    Signal,
}

impl ExitReason {
    /// Every reason, in the order reports list them.
    pub const ALL: [ExitReason; 6] =
        [Self::StopLoss, Self::TakeProfit, Self::TrailingStop, Self::Roi, Self::MaxHold, Self::Signal];

    /// Its stable snake_case name (metric label, JSON, reports).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StopLoss => "stop_loss",
            Self::TakeProfit => "take_profit",
            Self::TrailingStop => "trailing_stop",
            Self::Roi => "roi",
            Self::MaxHold => "max_hold",
            Self::Signal => "signal",
        }
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an exit order is for. Every exit order is reduce-only; the mark
/// travels with the intent, the stored order and its updates, so the exit
/// logic knows its own orders (and a strategy's pending-order count does not
/// include them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitLeg {
    /// A stop-loss resting at the venue (Binance `STOP_LOSS` / `STOP_LOSS_LIMIT`).
    Stop,
    /// A take-profit limit resting at the venue.
    TakeProfit,
    /// A stop and a take-profit as one venue order list (one cancels the other).
    Oco,
    /// A closing order sent when an engine-side trigger fired.
    Close(ExitReason),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_have_stable_names() {
        let names: Vec<&str> = ExitReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["stop_loss", "take_profit", "trailing_stop", "roi", "max_hold", "signal"]);
        for r in ExitReason::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{r}\""));
        }
    }

    #[test]
    fn legs_round_trip_through_json() {
        for leg in [ExitLeg::Stop, ExitLeg::TakeProfit, ExitLeg::Oco, ExitLeg::Close(ExitReason::MaxHold)] {
            let json = serde_json::to_string(&leg).unwrap();
            assert_eq!(serde_json::from_str::<ExitLeg>(&json).unwrap(), leg, "{json}");
        }
    }
}

#[cfg(test)]
mod runner_tests;

#[cfg(test)]
mod prop_tests;
