//! Tradable instruments and the venue filters every order must satisfy.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::order::Side;
use crate::symbol::Symbol;

/// Whether a symbol takes new orders. Venues add statuses over time
/// (`CANCEL_ONLY` arrived in 2026); an unrecognised one is kept as `Other`
/// and treated as not trading, never as a parse failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SymbolStatus {
    /// Open for new orders.
    Trading,
    /// Closed for new orders; open ones may be canceled.
    Halt,
    /// Trading break.
    Break,
    /// Only cancels are accepted.
    CancelOnly,
    /// End of the trading day.
    EndOfDay,
    /// A status this build does not know.
    Other(String),
}

impl SymbolStatus {
    /// Parses a venue status string, keeping unknown ones.
    pub fn parse(s: &str) -> Self {
        match s {
            "TRADING" => Self::Trading,
            "HALT" => Self::Halt,
            "BREAK" => Self::Break,
            "CANCEL_ONLY" => Self::CancelOnly,
            "END_OF_DAY" => Self::EndOfDay,
            other => Self::Other(other.to_string()),
        }
    }

    /// True only for a status that takes new orders.
    pub fn is_trading(&self) -> bool {
        matches!(self, Self::Trading)
    }
}

/// One tradable instrument with the venue's filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instrument {
    /// Venue symbol, e.g. `BTCUSDT`.
    pub symbol: Symbol,
    /// Base asset, e.g. `BTC`.
    pub base_asset: String,
    /// Quote asset, e.g. `USDT`.
    pub quote_asset: String,
    /// Price increment (PRICE_FILTER tickSize).
    pub tick_size: Decimal,
    /// Lowest price accepted (0 = no minimum).
    pub min_price: Decimal,
    /// Highest price accepted (0 = no maximum).
    pub max_price: Decimal,
    /// Quantity increment for limit orders (LOT_SIZE stepSize).
    pub step_size: Decimal,
    /// Smallest quantity (LOT_SIZE minQty).
    pub min_qty: Decimal,
    /// Largest quantity (LOT_SIZE maxQty; 0 = no maximum).
    pub max_qty: Decimal,
    /// Quantity increment for market orders (MARKET_LOT_SIZE; falls back to `step_size`).
    pub market_step_size: Decimal,
    /// Smallest notional (MIN_NOTIONAL / NOTIONAL minNotional).
    pub min_notional: Decimal,
    /// Largest notional (NOTIONAL maxNotional; 0 = no maximum).
    pub max_notional: Decimal,
    /// Most open orders on this symbol (MAX_NUM_ORDERS; 0 = no limit).
    pub max_num_orders: u32,
    /// Trading status.
    pub status: SymbolStatus,
}

/// Why an order does not fit an instrument's filters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterViolation {
    /// Quantity is zero after rounding down to the step.
    #[error("quantity {qty} rounds to zero at step {step}")]
    QtyRoundsToZero {
        /// Requested quantity.
        qty: Decimal,
        /// Step size.
        step: Decimal,
    },
    /// Quantity below LOT_SIZE minQty.
    #[error("quantity {qty} below minimum {min}")]
    QtyBelowMin {
        /// Rounded quantity.
        qty: Decimal,
        /// Minimum.
        min: Decimal,
    },
    /// Quantity above LOT_SIZE maxQty.
    #[error("quantity {qty} above maximum {max}")]
    QtyAboveMax {
        /// Rounded quantity.
        qty: Decimal,
        /// Maximum.
        max: Decimal,
    },
    /// Price zero or negative after rounding to the tick.
    #[error("price {price} is not positive at tick {tick}")]
    PriceNotPositive {
        /// Requested price.
        price: Decimal,
        /// Tick size.
        tick: Decimal,
    },
    /// Price outside PRICE_FILTER min/max.
    #[error("price {price} outside [{min}, {max}]")]
    PriceOutOfRange {
        /// Rounded price.
        price: Decimal,
        /// Minimum.
        min: Decimal,
        /// Maximum (0 = none).
        max: Decimal,
    },
    /// Notional below the minimum.
    #[error("notional {notional} below minimum {min}")]
    NotionalBelowMin {
        /// Order notional.
        notional: Decimal,
        /// Minimum.
        min: Decimal,
    },
    /// Notional above the maximum.
    #[error("notional {notional} above maximum {max}")]
    NotionalAboveMax {
        /// Order notional.
        notional: Decimal,
        /// Maximum.
        max: Decimal,
    },
    /// Symbol does not take new orders.
    #[error("symbol status {0:?} does not take new orders")]
    NotTrading(SymbolStatus),
}

/// Whether `value` is a multiple of `step` that needs no arithmetic to show it:
/// `step` is a power of ten (`0.01`, `1`) and `value` has no more decimals.
/// Rounding such a value gives it back (normalized) without the division,
/// which is the costly part of rounding and the common case on the order path
/// (whole quantities, prices already on the tick, zero).
fn on_step(value: Decimal, step: Decimal) -> bool {
    step.mantissa() == 1 && value.scale() <= step.scale()
}

/// Rounds `value` down to a multiple of `step` (a zero step leaves it unchanged).
pub fn floor_to_step(value: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return value;
    }
    if on_step(value, step) {
        return value.normalize();
    }
    let units = (value / step).round_dp_with_strategy(0, RoundingStrategy::ToZero);
    (units * step).normalize()
}

/// Rounds `value` up to a multiple of `step` (a zero step leaves it unchanged).
pub fn ceil_to_step(value: Decimal, step: Decimal) -> Decimal {
    if step.is_zero() {
        return value;
    }
    if on_step(value, step) {
        return value.normalize();
    }
    let units = (value / step).round_dp_with_strategy(0, RoundingStrategy::AwayFromZero);
    (units * step).normalize()
}

impl Instrument {
    /// A trading instrument with only a tick and a lot step (minimum quantity
    /// one step; no price, notional or order-count limits): what history
    /// files and tests know of a symbol.
    pub fn with_steps(symbol: Symbol, base_asset: String, quote_asset: String, tick: Decimal, step: Decimal) -> Self {
        Self {
            symbol,
            base_asset,
            quote_asset,
            tick_size: tick,
            min_price: Decimal::ZERO,
            max_price: Decimal::ZERO,
            step_size: step,
            min_qty: step,
            max_qty: Decimal::ZERO,
            market_step_size: step,
            min_notional: Decimal::ZERO,
            max_notional: Decimal::ZERO,
            max_num_orders: 0,
            status: SymbolStatus::Trading,
        }
    }

    /// Rounds a limit price to the tick so the order is never more aggressive
    /// than asked: buys round down, sells round up.
    pub fn round_price(&self, price: Decimal, side: Side) -> Decimal {
        match side {
            Side::Buy => floor_to_step(price, self.tick_size),
            Side::Sell => ceil_to_step(price, self.tick_size),
        }
    }

    /// Rounds a quantity down to the step for its order type (never up: rounding
    /// up could exceed a balance or a limit).
    pub fn round_qty(&self, qty: Decimal, market: bool) -> Decimal {
        let step = if market && !self.market_step_size.is_zero() { self.market_step_size } else { self.step_size };
        floor_to_step(qty, step)
    }

    /// The part of a holding a market order can sell: rounded down to the
    /// market lot step, zero below the minimum quantity. What remains is dust
    /// the venue will not take. The sign of `held` is kept.
    pub fn tradable_qty(&self, held: Decimal) -> Decimal {
        // Nothing held rounds to nothing (a flat position, most of the time).
        if held.is_zero() {
            return Decimal::ZERO;
        }
        let t = self.round_qty(held.abs(), true);
        if t.is_zero() || t < self.min_qty {
            Decimal::ZERO
        } else if held.is_sign_negative() {
            -t
        } else {
            t
        }
    }

    /// Whether a holding of `held` is flat for trading: nothing a market order
    /// could sell. Without an instrument, only zero is flat.
    pub fn is_flat(instrument: Option<&Instrument>, held: Decimal) -> bool {
        match instrument {
            Some(i) => i.tradable_qty(held).is_zero(),
            None => held.is_zero(),
        }
    }

    /// Checks an already rounded order against the filters. `price` is the limit
    /// price, or the reference price (last or touch) for a market order.
    pub fn check(&self, qty: Decimal, price: Decimal, market: bool) -> Result<(), FilterViolation> {
        if !self.status.is_trading() {
            return Err(FilterViolation::NotTrading(self.status.clone()));
        }
        // Every order of every backtest passes here twice (risk, matching): signs and
        // same-scale mantissas are compared without rescaling.
        if not_positive(qty) {
            let step = if market { self.market_step_size } else { self.step_size };
            return Err(FilterViolation::QtyRoundsToZero { qty, step });
        }
        if less(qty, self.min_qty) {
            return Err(FilterViolation::QtyBelowMin { qty, min: self.min_qty });
        }
        if !self.max_qty.is_zero() && less(self.max_qty, qty) {
            return Err(FilterViolation::QtyAboveMax { qty, max: self.max_qty });
        }
        if not_positive(price) {
            return Err(FilterViolation::PriceNotPositive { price, tick: self.tick_size });
        }
        if !market && (less(price, self.min_price) || (!self.max_price.is_zero() && less(self.max_price, price))) {
            return Err(FilterViolation::PriceOutOfRange { price, min: self.min_price, max: self.max_price });
        }
        let notional = qty * price;
        if less(notional, self.min_notional) {
            return Err(FilterViolation::NotionalBelowMin { notional, min: self.min_notional });
        }
        if !self.max_notional.is_zero() && less(self.max_notional, notional) {
            return Err(FilterViolation::NotionalAboveMax { notional, max: self.max_notional });
        }
        Ok(())
    }
}

/// `d <= 0` (negative zero included), without a comparison.
#[inline]
fn not_positive(d: Decimal) -> bool {
    d.is_zero() || d.is_sign_negative()
}

/// `a < b`; at one scale (a filter and a value rounded to it) by the mantissas alone.
#[inline]
fn less(a: Decimal, b: Decimal) -> bool {
    if a.scale() == b.scale() {
        a.mantissa() < b.mantissa()
    } else {
        a < b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn btc() -> Instrument {
        Instrument {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            tick_size: d("0.01"),
            min_price: d("0.01"),
            max_price: d("1000000"),
            step_size: d("0.00001"),
            min_qty: d("0.00001"),
            max_qty: d("9000"),
            market_step_size: d("0.001"),
            min_notional: d("5"),
            max_notional: d("9000000"),
            max_num_orders: 200,
            status: SymbolStatus::Trading,
        }
    }

    #[test]
    fn less_and_not_positive_agree_with_decimal_ordering() {
        let values = [
            "0",
            "-0",
            "0.00",
            "-0.00",
            "1",
            "1.0",
            "0.99999",
            "-1",
            "-1.5",
            "5",
            "5.00000",
            "4.99",
            "9000",
            "9000.00001",
        ];
        for a in values {
            for b in values {
                assert_eq!(less(d(a), d(b)), d(a) < d(b), "{a} < {b}");
            }
            assert_eq!(not_positive(d(a)), d(a) <= Decimal::ZERO, "{a} <= 0");
        }
    }

    #[test]
    fn rounding_table() {
        struct Case {
            name: &'static str,
            value: &'static str,
            step: &'static str,
            floor: &'static str,
            ceil: &'static str,
        }
        let cases = [
            Case { name: "on grid", value: "1.23", step: "0.01", floor: "1.23", ceil: "1.23" },
            Case { name: "between", value: "1.234", step: "0.01", floor: "1.23", ceil: "1.24" },
            Case { name: "zero step", value: "1.234", step: "0", floor: "1.234", ceil: "1.234" },
            Case { name: "below step", value: "0.004", step: "0.01", floor: "0", ceil: "0.01" },
            Case { name: "zero", value: "0", step: "0.5", floor: "0", ceil: "0" },
            Case { name: "coarse step", value: "17", step: "5", floor: "15", ceil: "20" },
            Case {
                name: "fine precision",
                value: "0.123456789",
                step: "0.00000001",
                floor: "0.12345678",
                ceil: "0.12345679",
            },
            Case { name: "large", value: "123456789.987", step: "0.1", floor: "123456789.9", ceil: "123456790" },
        ];
        for c in cases {
            assert_eq!(floor_to_step(d(c.value), d(c.step)), d(c.floor), "floor: {}", c.name);
            assert_eq!(ceil_to_step(d(c.value), d(c.step)), d(c.ceil), "ceil: {}", c.name);
        }
    }

    #[test]
    fn rounding_on_the_step_skips_the_division_and_gives_the_same_decimal() {
        // The rounding by division, as it always was: the fast path must give
        // the same number with the same scale (what Display shows).
        let slow = |value: Decimal, step: Decimal, strategy| {
            ((value / step).round_dp_with_strategy(0, strategy) * step).normalize()
        };
        let steps = ["1", "0.1", "0.01", "0.00001", "0.00000001", "0.5", "5", "0.25", "0.010"];
        let values = [
            "0", "0.000", "-0", "-0.00", "1", "1.0", "1.00000", "50000.00", "-3.2", "0.12345", "17", "1.234", "-0.001",
        ];
        for step in steps.map(d) {
            for value in values.map(d) {
                let floor = floor_to_step(value, step);
                let ceil = ceil_to_step(value, step);
                let want_floor = slow(value, step, RoundingStrategy::ToZero);
                let want_ceil = slow(value, step, RoundingStrategy::AwayFromZero);
                assert_eq!(floor.to_string(), want_floor.to_string(), "floor {value} to {step}");
                assert_eq!(ceil.to_string(), want_ceil.to_string(), "ceil {value} to {step}");
                assert_eq!(floor.is_sign_negative(), want_floor.is_sign_negative(), "floor sign {value} to {step}");
            }
        }
    }

    #[test]
    fn price_rounds_away_from_aggression() {
        let i = btc();
        assert_eq!(i.round_price(d("100.019"), Side::Buy), d("100.01"));
        assert_eq!(i.round_price(d("100.011"), Side::Sell), d("100.02"));
        assert_eq!(i.round_qty(d("0.123456"), false), d("0.12345"));
        assert_eq!(i.round_qty(d("0.123456"), true), d("0.123"));
    }

    #[test]
    fn filter_table() {
        struct Case {
            name: &'static str,
            qty: &'static str,
            price: &'static str,
            market: bool,
            ok: bool,
        }
        let cases = [
            Case { name: "fine", qty: "0.001", price: "10000", market: false, ok: true },
            Case { name: "exactly min notional", qty: "0.0005", price: "10000", market: false, ok: true },
            Case { name: "below min notional", qty: "0.00049", price: "10000", market: false, ok: false },
            Case { name: "zero qty", qty: "0", price: "10000", market: false, ok: false },
            Case { name: "above max qty", qty: "9000.00001", price: "1", market: false, ok: false },
            Case { name: "above max price", qty: "1", price: "1000000.01", market: false, ok: false },
            Case { name: "market ignores price range", qty: "1", price: "1000000.01", market: true, ok: true },
            Case { name: "zero price", qty: "1", price: "0", market: false, ok: false },
        ];
        let i = btc();
        for c in cases {
            assert_eq!(i.check(d(c.qty), d(c.price), c.market).is_ok(), c.ok, "{}", c.name);
        }
        let mut halted = btc();
        halted.status = SymbolStatus::parse("SOMETHING_NEW");
        assert!(matches!(halted.check(Decimal::ONE, d("100"), false), Err(FilterViolation::NotTrading(_))));
    }
}
