//! Crafted hourly bars for the backtest's unit tests.

use std::str::FromStr;

use keel_core::market::Bar;
use keel_core::Decimal;

/// An hour in ms.
pub const H: i64 = 3_600_000;

/// `s` as a `Decimal`.
pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Hourly BTCUSDT bars from hour 0: (open, high, low, close), volume 1.
pub fn bars(ohlc: &[(&str, &str, &str, &str)]) -> Vec<Bar> {
    ohlc.iter()
        .enumerate()
        .map(|(h, (o, hi, lo, c))| Bar {
            symbol: "BTCUSDT".into(),
            open_time: h as i64 * H,
            close_time: h as i64 * H + H - 1,
            open: d(o),
            high: d(hi),
            low: d(lo),
            close: d(c),
            volume: Decimal::ONE,
        })
        .collect()
}
