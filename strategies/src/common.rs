//! Small helpers the long-only signal strategies share.

use engine::order::Side;
use engine::strategy::StrategyCtx;
use engine::{Decimal, Symbol};
use rust_decimal::prelude::ToPrimitive;

/// A bar's close as `f64` for indicators (NaN if it does not fit, which no
/// indicator comparison treats as a signal).
#[inline]
pub(crate) fn close_f64(close: Decimal) -> f64 {
    close.to_f64().unwrap_or(f64::NAN)
}

/// Buys `qty` at market if the strategy is flat with nothing in flight.
#[inline]
pub(crate) fn enter_long(ctx: &mut StrategyCtx<'_>, symbol: &Symbol, qty: Decimal) {
    if ctx.is_flat(symbol) {
        ctx.market(symbol, Side::Buy, qty);
    }
}

/// Sells the whole long position at market if there is one and nothing is in flight.
#[inline]
pub(crate) fn exit_long(ctx: &mut StrategyCtx<'_>, symbol: &Symbol) {
    let position = ctx.position(symbol);
    if position > Decimal::ZERO && ctx.pending_orders(symbol) == 0 {
        ctx.market(symbol, Side::Sell, position);
    }
}

/// Detects when a condition (e.g. "fast above slow") flips.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cross {
    above: Option<bool>,
}

impl Cross {
    /// Records the condition; returns `Some(new)` when it changed since the last
    /// call (the first call only records it).
    #[inline]
    pub(crate) fn update(&mut self, above: bool) -> Option<bool> {
        let prev = self.above.replace(above);
        match prev {
            Some(p) if p != above => Some(above),
            _ => None,
        }
    }
}
