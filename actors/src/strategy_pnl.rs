//! One strategy's PnL as the engine keeps it: realized PnL and fees from the
//! account's per-strategy ledger (every fill the strategy made, not a window
//! of recent ones), unrealized PnL marked at the price board like the
//! portfolio's.

use keel_core::account::{AccountView, StrategyLedgers};
use keel_core::Decimal;
use serde::Serialize;

use crate::portfolio::Marked;
use crate::prices::PriceBoard;

/// A strategy's PnL, in the quote asset.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StrategyPnl {
    /// Realized PnL before fees (`None` while the ledger is not yet rebuilt
    /// from an old checkpoint: unknown rather than wrong).
    pub realized_pnl: Option<Decimal>,
    /// Fees paid, valued in the quote asset (`None` as for realized PnL).
    pub fees: Option<Decimal>,
    /// Unrealized PnL of what the strategy holds, at the latest prices.
    pub unrealized_pnl: Decimal,
    /// When realized PnL and fees start counting (ISO-8601 UTC), when that
    /// is not the strategy's first fill: the journal no longer held the
    /// fills before it. `None`: the whole history.
    pub pnl_since: Option<String>,
}

impl StrategyPnl {
    /// `strategy`'s PnL in the running account, marked at `prices`.
    pub fn of(account: &AccountView, prices: &PriceBoard, strategy: &str) -> Self {
        let (ledger, covers) = account.strategy_ledger(strategy);
        let marked = Marked::at(prices, ledger);
        let known = covers != StrategyLedgers::NotRebuilt;
        Self {
            realized_pnl: known.then_some(marked.realized_pnl),
            fees: known.then_some(marked.fees),
            unrealized_pnl: marked.unrealized_pnl,
            pnl_since: match covers {
                StrategyLedgers::Since { ts_ms } => chrono::DateTime::from_timestamp_millis(ts_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                StrategyLedgers::Complete | StrategyLedgers::NotRebuilt => None,
            },
        }
    }
}
