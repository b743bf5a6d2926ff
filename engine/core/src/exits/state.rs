//! What the exit logic remembers about one position: durable (the live
//! engine keeps it in the store as JSON), so a restarted engine knows its
//! entry, its best price, its overrides and the exit orders it has out.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{ExitLeg, ExitReason, ExitSpec};
use crate::symbol::{StrategyId, Symbol};

/// Durable exit state of one position (strategy, symbol). Spot positions are
/// long; a flat position has no state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitState {
    /// The position's symbol.
    pub symbol: Symbol,
    /// Average price of the fills that opened and added to the position
    /// (reductions leave it as it is).
    pub entry_price: Decimal,
    /// The position as the exit logic followed it from fills (net of a
    /// commission paid in the base asset).
    pub qty: Decimal,
    /// When the first entry fill arrived (the runner's clock, ms).
    pub opened_ms: i64,
    /// Best price seen since entry (the trailing stop follows it).
    pub best_price: Decimal,
    /// True once the trailing stop's activation profit was reached.
    #[serde(default)]
    pub trailing_armed: bool,
    /// Exits the strategy attached to this position (instead of its
    /// configured ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ExitSpec>,
    /// True when the strategy removed this position's exits.
    #[serde(default)]
    pub removed: bool,
    /// A stop price the strategy set (instead of `entry × (1 − stop_loss)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Decimal>,
    /// A take-profit price the strategy set (instead of `entry × (1 + take_profit)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_profit_price: Option<Decimal>,
    /// A trailing stop in prices the strategy set (instead of the
    /// percentages of `trailing_stop`): Pine's `trail_points`/`trail_offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<PriceTrail>,
    /// The exit order resting at the venue (stop, take-profit or OCO), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<RestingLeg>,
    /// A closing order an engine-side trigger decided on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_close: Option<PendingClose>,
    /// The venue refused a resting leg: this position's stop-loss and
    /// take-profit are evaluated engine-side from then on.
    #[serde(default)]
    pub venue_refused: bool,
    /// The risk guard refused an exit order: nothing is sent for this
    /// position before this time (ms), so a refusal does not loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<i64>,
    /// Backtest cache (never stored): the prices and time within which no
    /// exit can fire, so most bars cost a few comparisons.
    #[serde(skip)]
    pub band: Option<Band>,
}

/// Where a position's exits cannot fire: no bar inside it needs its path
/// followed (see [`ExitState::bar_exit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    /// The highest stop (stop-loss or armed trailing stop), if any.
    pub low: Option<Decimal>,
    /// The lowest target (take-profit or ROI price), if any.
    pub high: Option<Decimal>,
    /// The next time an exit level changes (a ROI row) or `max_hold` runs out.
    pub until_ms: i64,
    /// A trailing stop is configured: a new best price moves (or arms) it.
    pub trails: bool,
}

impl Band {
    /// True when a bar opening at `open_time` within `low..=high` cannot
    /// fire an exit nor move the trailing stop whose best is `best`.
    #[inline]
    pub fn holds(&self, open_time: i64, high: Decimal, low: Decimal, best: Decimal) -> bool {
        open_time < self.until_ms
            && self.low.is_none_or(|l| low > l)
            && self.high.is_none_or(|h| high < h)
            && !(self.trails && high > best)
    }
}

impl ExitState {
    /// The state of a position opened at `price` at `now_ms` with `qty`.
    pub fn open(symbol: Symbol, price: Decimal, qty: Decimal, now_ms: i64) -> Self {
        Self {
            symbol,
            entry_price: price,
            qty,
            opened_ms: now_ms,
            best_price: price,
            trailing_armed: false,
            spec: None,
            removed: false,
            stop_price: None,
            take_profit_price: None,
            trail: None,
            leg: None,
            pending_close: None,
            venue_refused: false,
            retry_after_ms: None,
            band: None,
        }
    }

    /// The exits in force: the strategy's attached ones, else `default`;
    /// none once removed. A position without either whose strategy set a
    /// price level itself ([`Self::has_levels`]) has those levels alone
    /// ([`LEVELS_ONLY`]).
    pub fn effective<'a>(&'a self, default: Option<&'a ExitSpec>) -> Option<&'a ExitSpec> {
        if self.removed {
            return None;
        }
        self.spec.as_ref().or(default).or_else(|| self.levels_only())
    }

    /// True when the strategy set a stop, a take-profit or a trailing stop in prices.
    pub fn has_levels(&self) -> bool {
        self.stop_price.is_some() || self.take_profit_price.is_some() || self.trail.is_some()
    }

    /// [`LEVELS_ONLY`] when the strategy set price levels (see [`Self::effective`]).
    pub(crate) fn levels_only(&self) -> Option<&'static ExitSpec> {
        self.has_levels().then_some(&LEVELS_ONLY)
    }
}

/// The exits of a position whose strategy set only price levels
/// ([`ExitState::stop_price`], [`ExitState::take_profit_price`],
/// [`ExitState::trail`]) and has no configured or attached exits: nothing
/// beyond those levels, kept at the venue where it can hold them.
pub static LEVELS_ONLY: ExitSpec = ExitSpec {
    stop_loss: None,
    take_profit: None,
    trailing_stop: None,
    roi: Vec::new(),
    max_hold: None,
    placement: super::Placement::Venue,
};

/// A trailing stop in prices: once the best price since entry reaches
/// `activate`, exit when the price falls `offset` below the best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceTrail {
    /// The best price that arms it.
    pub activate: Decimal,
    /// How far below the best price it trails (a price distance, above 0).
    pub offset: Decimal,
}

/// An exit order resting (or on its way) at the venue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestingLeg {
    /// What it is.
    pub leg: ExitLeg,
    /// Its client order id, once the router has told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<String>,
    /// Its quantity.
    pub qty: Decimal,
    /// Its stop price (a stop or an OCO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Decimal>,
    /// Its take-profit price (a take-profit limit or an OCO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<Decimal>,
    /// A cancel was asked for (to replace it, close engine-side, or let a
    /// strategy's sell through).
    #[serde(default)]
    pub canceling: bool,
    /// Quantity filled so far.
    #[serde(default)]
    pub filled_qty: Decimal,
    /// Quote amount filled so far.
    #[serde(default)]
    pub filled_quote: Decimal,
}

/// A closing order decided by an engine-side trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingClose {
    /// Why.
    pub reason: ExitReason,
    /// Its client order id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<String>,
    /// True once the order was sent (false while a resting leg is being
    /// canceled first).
    pub sent: bool,
    /// Quantity filled so far.
    #[serde(default)]
    pub filled_qty: Decimal,
    /// Quote amount filled so far.
    #[serde(default)]
    pub filled_quote: Decimal,
}

/// An exit that happened (for metrics, notices, reports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitEvent {
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The symbol.
    pub symbol: Symbol,
    /// Why.
    pub reason: ExitReason,
    /// Quantity sold.
    pub qty: Decimal,
    /// Average price sold at.
    pub price: Decimal,
    /// The position's entry price.
    pub entry_price: Decimal,
    /// When (the runner's clock, ms).
    pub ts_ms: i64,
}

impl ExitEvent {
    /// Profit of the exit in percent of the entry: `(price − entry) / entry × 100` for a long.
    pub fn profit_pct(&self) -> Decimal {
        if self.entry_price.is_zero() {
            return Decimal::ZERO;
        }
        (self.price - self.entry_price) / self.entry_price * Decimal::ONE_HUNDRED
    }
}
