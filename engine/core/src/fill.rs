//! Fills: one execution of (part of) an order, as the venue reported it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::order::Side;
use crate::symbol::{StrategyId, Symbol};

/// One execution. Keyed by venue trade id (per symbol), so a fill reported twice
/// (the order response and the user stream) is recorded once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// The venue's trade id, unique per symbol.
    pub trade_id: u64,
    /// The order it belongs to.
    pub client_order_id: String,
    /// The strategy that owns the order.
    pub strategy_id: StrategyId,
    /// Symbol.
    pub symbol: Symbol,
    /// Side of our order.
    pub side: Side,
    /// Execution price.
    pub price: Decimal,
    /// Executed quantity.
    pub qty: Decimal,
    /// Commission charged.
    pub fee: Decimal,
    /// Asset the commission was charged in.
    pub fee_asset: String,
    /// True when our order was the resting (maker) side.
    pub is_maker: bool,
    /// Venue time of the execution (ms since the epoch).
    pub ts_ms: i64,
    /// The owning order's tag, stamped with the strategy id when the fill is
    /// recorded (venues do not know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<crate::order::OrderTag>,
}

impl Fill {
    /// The store key: symbol and zero-padded trade id, so keys sort by trade id per symbol.
    pub fn key(&self) -> String {
        fill_key(&self.symbol, self.trade_id)
    }

    /// Executed notional in the quote asset.
    pub fn notional(&self) -> Decimal {
        self.price * self.qty
    }

    /// The commission's value in the quote asset: a commission paid in the
    /// base asset is valued at the fill price; any other is taken as is.
    pub fn fee_value(&self, base_asset: &str) -> Decimal {
        if self.fee_asset == base_asset {
            self.fee * self.price
        } else {
            self.fee
        }
    }

    /// How much this fill changes the account's holding of `base_asset`: the
    /// executed quantity, signed by side, less a commission charged in the base
    /// asset (Binance charges a buy's commission in what it receives). Every
    /// position Keel keeps moves by exactly this, so they cannot drift apart
    /// from each other or from the venue's balance.
    pub fn position_delta(&self, base_asset: &str) -> Decimal {
        let executed = self.side.sign() * self.qty;
        if self.fee_asset == base_asset {
            executed - self.fee
        } else {
            executed
        }
    }
}

/// The store key of a fill.
pub fn fill_key(symbol: &str, trade_id: u64) -> String {
    format!("{symbol}:{trade_id:020}")
}
