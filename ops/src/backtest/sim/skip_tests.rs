//! What the replay hands strategies when it converts a bar only as far as it
//! is read, and skips the bars a strategy says it would do nothing on.

use std::sync::{Arc, Mutex};

use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, StrategyId, Symbol};

use super::test_bars::{btc_venue, H};
use super::{Backtest, StrategySlot, Timeline};

/// Records every bar it takes; skips the bars whose index `skips` accepts;
/// buys once at `buy_at` (so orders rest or wait around some bars).
struct Taker {
    seen: Arc<Mutex<Vec<Bar>>>,
    skips: fn(usize) -> bool,
    buy_at: Option<i64>,
}

impl Strategy for Taker {
    fn kind(&self) -> &'static str {
        "taker"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn skip_bar(&mut self, _symbol: &Symbol, index: usize) -> bool {
        (self.skips)(index)
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        self.seen.lock().unwrap().push(bar.clone());
        if self.buy_at == Some(bar.open_time) {
            ctx.market(&bar.symbol, Side::Buy, Decimal::ONE);
        }
    }
}

/// Hourly bars whose fields all differ from bar to bar and from each other.
fn distinct(n: i64) -> Vec<Bar> {
    (0..n)
        .map(|h| Bar {
            symbol: "BTCUSDT".into(),
            open_time: h * H,
            close_time: h * H + H - 1,
            open: Decimal::from(100 + h),
            high: Decimal::from(200 + h),
            low: Decimal::from(50 + h),
            close: Decimal::from(150 + h),
            volume: Decimal::from(1 + h),
        })
        .collect()
}

/// A [`Taker`]: the bars it skips, and when it buys.
type Spec = (fn(usize) -> bool, Option<i64>);

/// The bars each of the strategies took, run side by side on `bars`.
fn taken(bars: &[Bar], strategies: Vec<Spec>) -> Vec<Vec<Bar>> {
    let timeline = Timeline::new(vec![(Symbol::new("BTCUSDT"), bars.to_vec())]);
    let config = btc_venue();
    let seen: Vec<_> = strategies.iter().map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let slots = strategies
        .into_iter()
        .zip(&seen)
        .enumerate()
        .map(|(k, ((skips, buy_at), seen))| StrategySlot {
            id: StrategyId::new(&format!("t{k}")),
            strategy: Box::new(Taker { seen: Arc::clone(seen), skips, buy_at }),
            exits: None,
        })
        .collect();
    let outcome = Backtest::new(config, timeline.symbols(), slots).run(&timeline, &[], |_| {});
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    seen.iter().map(|s| s.lock().unwrap().clone()).collect()
}

#[test]
fn every_bar_a_strategy_takes_is_whole_whether_or_not_anything_else_read_it() {
    let bars = distinct(12);
    let never: fn(usize) -> bool = |_| false;
    // Alone and without orders: nothing but the strategy reads the bars.
    assert_eq!(taken(&bars, vec![(never, None)]), vec![bars.clone()]);
    // An order waits for bar 4's open and fills there: bars read by the fill and bars not.
    assert_eq!(taken(&bars, vec![(never, Some(3 * H))]), vec![bars.clone()]);
}

#[test]
fn a_skipped_bar_is_not_delivered_to_that_strategy_and_the_next_one_takes_it_whole() {
    let bars = distinct(12);
    let even: fn(usize) -> bool = |i| i % 2 == 0;
    let never: fn(usize) -> bool = |_| false;
    let odd_bars: Vec<Bar> = bars.iter().skip(1).step_by(2).cloned().collect();
    // The first skips the even bars; the second, on the same symbol, takes them after it.
    assert_eq!(taken(&bars, vec![(even, None), (never, None)]), vec![odd_bars.clone(), bars.clone()]);
    assert_eq!(taken(&bars, vec![(never, None), (even, Some(5 * H))]), vec![bars.clone(), odd_bars]);
}
