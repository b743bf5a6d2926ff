//! Crafted hourly bars, a venue for them, and a strategy that buys once, for the backtest's
//! unit tests.

use std::str::FromStr;

use keel_core::balance::Balance;
use keel_core::instrument::Instrument;
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::sim::FeeSchedule;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};
use risk::config::RiskConfig;

use super::SimConfig;

/// An hour in ms.
pub const H: i64 = 3_600_000;

/// `s` as a `Decimal`.
pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// BTCUSDT (tick 0.01, lot 0.001) with 10 000 USDT, no fees, no slippage, no risk limits;
/// tests change what they need with `..btc_venue()`.
pub fn btc_venue() -> SimConfig {
    SimConfig {
        instruments: vec![Instrument::with_steps("BTCUSDT".into(), "BTC".into(), "USDT".into(), d("0.01"), d("0.001"))],
        balances: vec![Balance { asset: "USDT".into(), free: Decimal::from(10_000), locked: Decimal::ZERO }],
        fees: FeeSchedule::default(),
        slippage_bps: Decimal::ZERO,
        risk: RiskConfig::unlimited(),
        currency: "USDT".into(),
    }
}

/// The bar of `symbol` opening at hour `h` (closing a millisecond before the next hour), with
/// its open, high, low, close and volume.
pub fn hour_bar(symbol: &str, h: i64, [open, high, low, close, volume]: [Decimal; 5]) -> Bar {
    Bar { symbol: symbol.into(), open_time: h * H, close_time: h * H + H - 1, open, high, low, close, volume }
}

/// Hourly BTCUSDT bars from hour 0: (open, high, low, close), volume 1.
pub fn bars(ohlc: &[(&str, &str, &str, &str)]) -> Vec<Bar> {
    ohlc.iter()
        .enumerate()
        .map(|(h, (o, hi, lo, c))| hour_bar("BTCUSDT", h as i64, [d(o), d(hi), d(lo), d(c), Decimal::ONE]))
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
