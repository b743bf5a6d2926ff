//! Crafted hourly bars, and a strategy that buys once, for the backtest's unit tests.

use std::str::FromStr;

use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};

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

/// Buys 1 at the first bar's close (filled at the second bar's open), then holds.
pub struct BuyOnce(pub bool);

impl Strategy for BuyOnce {
    fn kind(&self) -> &'static str {
        "buy_once"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if !self.0 {
            self.0 = true;
            ctx.market(&bar.symbol, Side::Buy, Decimal::ONE);
        }
    }
}
