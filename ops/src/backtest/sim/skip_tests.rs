//! What the replay hands strategies when it converts a bar only as far as it
//! is read, and skips the bars a strategy says it would do nothing on.

use std::sync::{Arc, Mutex};

use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, StrategyId, Symbol};

use super::test_bars::{btc_venue, hour_bar, H};
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
    fn skip_bars(&mut self, _symbol: &Symbol, from: usize, upto: usize) -> usize {
        (from..upto).take_while(|&i| (self.skips)(i)).count()
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
    (0..n).map(|h| hour_bar("BTCUSDT", h, [100 + h, 200 + h, 50 + h, 150 + h, 1 + h].map(Decimal::from))).collect()
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

/// Trades at the bars of `trades` (index, side, qty), and buys 1 on each signal (as a `webhook`
/// strategy); skips every other bar when `skips`.
struct Trader {
    trades: Vec<(usize, Side, i64)>,
    skips: bool,
    seen: Arc<Mutex<Vec<usize>>>,
}

impl Strategy for Trader {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn skip_bars(&mut self, _symbol: &Symbol, from: usize, upto: usize) -> usize {
        match self.skips {
            true => (from..upto).take_while(|&i| !self.trades.iter().any(|t| t.0 == i)).count(),
            false => 0,
        }
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        let index = (bar.open_time / H) as usize;
        self.seen.lock().unwrap().push(index);
        if let Some(&(_, side, qty)) = self.trades.iter().find(|t| t.0 == index) {
            ctx.market(&bar.symbol, side, Decimal::from(qty));
        }
    }
    fn on_signal(&mut self, signal: &keel_core::strategy::Signal, ctx: &mut StrategyCtx<'_>) {
        ctx.market(&signal.symbol, Side::Buy, Decimal::ONE);
    }
}

#[test]
fn quiet_runs_replay_the_equity_protections_and_orders_of_the_bars_they_skip() {
    // Up to 1 300, down to 600 while 8 BTC are held, up again while 4 are: the equity moves on
    // skipped bars, falls through the drawdown limit on them, and makes new highs on them.
    let closes: Vec<i64> = (0..48)
        .map(|h| {
            if h < 14 {
                1000 + 25 * h
            } else if h < 28 {
                1300 - 50 * (h - 14)
            } else {
                600 + 30 * (h - 28)
            }
        })
        .collect();
    let bars: Vec<Bar> = closes
        .iter()
        .enumerate()
        .map(|(h, &c)| hour_bar("BTCUSDT", h as i64, [c, c + 5, c - 5, c, 1].map(Decimal::from)))
        .collect();
    let timeline = Timeline::new(vec![(Symbol::new("BTCUSDT"), bars)]);
    // A signal at bar 17's close and one at bar 40's (each buying 1 at the next open) end a quiet
    // run before their bars.
    let signal = |h: i64| super::TimedSignal {
        ts_ms: h * H + H - 1,
        signal: keel_core::strategy::Signal {
            symbol: "BTCUSDT".into(),
            action: keel_core::strategy::SignalAction::Buy,
            qty: None,
        },
    };
    let signals = [signal(17), signal(40)];
    let run = |skips: bool, protect: bool| {
        let mut config = btc_venue();
        if protect {
            config.risk.max_drawdown_pct = Decimal::from(10);
            config.risk.daily_loss_limit_pct = Decimal::from(15);
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let trades = vec![(2, Side::Buy, 8), (30, Side::Sell, 4)];
        let slot = StrategySlot {
            id: StrategyId::new("t"),
            strategy: Box::new(Trader { trades, skips, seen: Arc::clone(&seen) }),
            exits: None,
        };
        let outcome = Backtest::new(config, timeline.symbols(), vec![slot]).run(&timeline, &signals, |_| {});
        let seen = seen.lock().unwrap().clone();
        (outcome, seen)
    };
    for protect in [true, false] {
        let ((quiet, taken), (each, all)) = (run(true, protect), run(false, protect));
        assert_eq!(taken, vec![2, 30], "the skipping strategy takes only its trading bars");
        assert_eq!(all.len(), 48);
        assert_eq!(quiet.equity.values(), each.equity.values(), "one equity point a bar, the same");
        assert_eq!(quiet.equity.exposed_count(), each.equity.exposed_count());
        assert_eq!(quiet.protection_events, each.protection_events);
        assert_eq!(quiet.orders, each.orders);
        assert_eq!(quiet.risk_rejections, each.risk_rejections);
        assert_eq!(quiet.final_equity, each.final_equity);
        assert_eq!((quiet.signals_delivered, each.signals_delivered), (2, 2));
        assert_eq!((quiet.bars, each.bars), (48, 48));
        let decided: Vec<i64> = quiet.orders.iter().map(|o| o.decided_ms / H).collect();
        if protect {
            // The drawdown trips on a skipped bar and halts trading: the sell at 30 and the buy at
            // 40 are refused.
            assert!(!quiet.protection_events.is_empty());
            assert_eq!(decided, vec![2, 17], "the first trade and the first signal's buy, at their bars");
            assert_eq!(quiet.risk_rejections.values().sum::<u64>(), 2, "{:?}", quiet.risk_rejections);
        } else {
            assert_eq!(decided, vec![2, 17, 30, 40], "the trades and the signals' buys, at their bars");
        }
    }
}
