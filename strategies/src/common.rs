//! Small helpers the strategies share.

use keel_core::order::Side;
use keel_core::strategy::StrategyCtx;
use keel_core::{Decimal, Symbol};
use rust_decimal::prelude::ToPrimitive;

/// Exact powers of ten as `f64` (10^0 ..= 10^22 are exactly representable).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A price as `f64` for indicators (NaN if it does not fit, which no indicator
/// comparison treats as a signal).
///
/// Fast path for the usual case, a mantissa below 2^53 and at most 22 decimal
/// places: one exact conversion and one correctly rounded division, so the
/// result is the `f64` nearest the decimal. About 5x faster than the generic
/// `to_f64`, which it falls back to otherwise. It runs once per bar.
#[inline]
pub fn close_f64(close: Decimal) -> f64 {
    if let Ok(m) = i64::try_from(close.mantissa()) {
        if let Some(x) = mantissa_f64(m, close.scale()) {
            return x;
        }
    }
    close.to_f64().unwrap_or(f64::NAN)
}

/// [`close_f64`]'s fast path, for a decimal given as its mantissa and scale (as a column of
/// them holds it): `None` where that would fall back.
#[inline]
pub fn mantissa_f64(m: i64, scale: u32) -> Option<f64> {
    let scale = scale as usize;
    (scale < POW10.len() && m.unsigned_abs() < (1u64 << 53)).then(|| m as f64 / POW10[scale])
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

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::prelude::ToPrimitive;

    #[test]
    fn close_f64_is_the_nearest_f64() {
        // Fast path: exactly the nearest f64 (what parsing the decimal text gives).
        for s in ["0", "1", "-2.5", "42475.23", "0.00000001", "9007199254740991", "0.0000000000000000000001"] {
            let d: Decimal = s.parse().unwrap();
            let want: f64 = s.parse().unwrap();
            assert_eq!(close_f64(d), want, "{s}");
        }
        // Fallback (huge mantissa or > 22 places): rust_decimal's conversion.
        for s in ["79228162514264337593543950335", "0.1234567890123456789012345678", "123456789.123456789"] {
            let d: Decimal = s.parse().unwrap();
            let want: f64 = s.parse().unwrap();
            assert!((close_f64(d) - want).abs() <= want.abs() * 1e-15, "{s}");
            assert_eq!(close_f64(d), d.to_f64().unwrap(), "{s}");
        }
    }
}
