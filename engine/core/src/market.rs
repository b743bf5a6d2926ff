//! Market events: closed bars, trades and best bid/ask.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::order::Side;
use crate::symbol::Symbol;

/// A closed candle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// Symbol.
    pub symbol: Symbol,
    /// Start of the interval (ms since the epoch).
    pub open_time: i64,
    /// End of the interval (ms since the epoch, inclusive, as Binance reports it).
    pub close_time: i64,
    /// Open price.
    pub open: Decimal,
    /// High price.
    pub high: Decimal,
    /// Low price.
    pub low: Decimal,
    /// Close price.
    pub close: Decimal,
    /// Volume in the base asset.
    pub volume: Decimal,
}

/// Every closed bar of one symbol a backtest will deliver, in order, readable
/// before they are delivered (see [`crate::strategy::Strategy::foresee`]).
/// Shared with other threads, so the bars are read, never copied whole.
pub trait BarSeries: Send + Sync {
    /// Number of bars.
    fn len(&self) -> usize;
    /// True when there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The open time of bar `i` (`i < len`), cheaper than the whole bar.
    fn open_time(&self, i: usize) -> i64;
    /// Writes bar `i` (`i < len`) into `out`, all fields but the symbol.
    fn bar(&self, i: usize, out: &mut Bar);
}

/// A public trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Symbol.
    pub symbol: Symbol,
    /// Venue trade id.
    pub trade_id: u64,
    /// Price.
    pub price: Decimal,
    /// Quantity.
    pub qty: Decimal,
    /// Side of the aggressor (taker).
    pub aggressor: Side,
    /// Trade time (ms since the epoch).
    pub ts_ms: i64,
}

/// Best bid and ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookTicker {
    /// Symbol.
    pub symbol: Symbol,
    /// Best bid price.
    pub bid: Decimal,
    /// Quantity at the best bid.
    pub bid_qty: Decimal,
    /// Best ask price.
    pub ask: Decimal,
    /// Quantity at the best ask.
    pub ask_qty: Decimal,
    /// Time of the update (ms since the epoch).
    pub ts_ms: i64,
}

impl BookTicker {
    /// Mid price.
    pub fn mid(&self) -> Decimal {
        (self.bid + self.ask) / Decimal::TWO
    }
}

/// Any market event a strategy may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketEvent {
    /// A candle closed.
    Bar(Bar),
    /// A public trade printed.
    Trade(Trade),
    /// The best bid/ask changed.
    Book(BookTicker),
}

impl MarketEvent {
    /// The event's symbol.
    pub fn symbol(&self) -> &Symbol {
        match self {
            Self::Bar(b) => &b.symbol,
            Self::Trade(t) => &t.symbol,
            Self::Book(b) => &b.symbol,
        }
    }

    /// The event's time (bar close time, trade time, book update time).
    pub fn ts_ms(&self) -> i64 {
        match self {
            Self::Bar(b) => b.close_time,
            Self::Trade(t) => t.ts_ms,
            Self::Book(b) => b.ts_ms,
        }
    }

    /// The best estimate of the current price this event gives.
    pub fn reference_price(&self) -> Decimal {
        match self {
            Self::Bar(b) => b.close,
            Self::Trade(t) => t.price,
            Self::Book(b) => b.mid(),
        }
    }
}
