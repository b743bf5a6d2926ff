//! What the backtest benches share: the bars they replay.

use keel_core::market::Bar;
use keel_core::{Decimal, Symbol};

/// A deterministic random walk (xorshift) like the data: ±10.00 a
/// minute from 50 000.00, wicks up to 3.00, prices with 2 decimals.
pub fn bars(n: usize) -> Vec<Bar> {
    let symbol = Symbol::new("BTCUSDT");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut price: i64 = 5_000_000;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let step = (state % 2001) as i64 - 1000;
            let open = price;
            price = (price + step).max(100);
            let close = price;
            let wick = (state >> 20) as i64 % 301;
            let (hi, lo) = (open.max(close) + wick, (open.min(close) - wick).max(1));
            let t = 1_600_000_000_000 + i as i64 * 60_000;
            Bar {
                symbol: symbol.clone(),
                open_time: t,
                close_time: t + 59_999,
                open: Decimal::new(open, 2),
                high: Decimal::new(hi, 2),
                low: Decimal::new(lo, 2),
                close: Decimal::new(close, 2),
                volume: Decimal::ONE,
            }
        })
        .collect()
}
