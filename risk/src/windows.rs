//! Time windows over approved orders: the order-rate limiter and the duplicate
//! guard. Time is passed in (ms since the epoch); nothing here reads a clock.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use keel_core::order::{OrderIntent, OrderType, Side};
use keel_core::{Decimal, StrategyId, Symbol};

use crate::reason::{RateScope, RejectReason};

const SECOND_MS: i64 = 1_000;
const MINUTE_MS: i64 = 60_000;

/// Sliding one-second and one-minute windows of order times.
#[derive(Debug, Clone, Default)]
struct Window {
    times: VecDeque<i64>,
}

impl Window {
    fn prune(&mut self, now_ms: i64) {
        while self.times.front().is_some_and(|&t| t <= now_ms.saturating_sub(MINUTE_MS)) {
            self.times.pop_front();
        }
    }

    /// Orders in the last `span_ms` (times in the future, after a clock step
    /// back, count as inside: the conservative choice).
    fn count(&self, now_ms: i64, span_ms: i64) -> usize {
        let from = now_ms.saturating_sub(span_ms);
        self.times.iter().rev().take_while(|&&t| t > from).count()
    }
}

/// Refuses orders beyond the configured per-second and per-minute rates, per
/// strategy and globally. Only approved orders count; refused ones are not queued.
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    global: Window,
    per_strategy: FxHashMap<StrategyId, Window>,
}

/// Per-second and per-minute limits of one scope (0 = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Orders per second.
    pub per_second: u32,
    /// Orders per minute.
    pub per_minute: u32,
}

impl RateLimits {
    fn off(self) -> bool {
        self.per_second == 0 && self.per_minute == 0
    }
}

fn check_window(window: &Window, limits: RateLimits, scope: RateScope, now_ms: i64) -> Result<(), RejectReason> {
    if limits.per_second > 0 && window.count(now_ms, SECOND_MS) >= limits.per_second as usize {
        return Err(RejectReason::RateLimited { scope, window: "second", limit: limits.per_second });
    }
    if limits.per_minute > 0 && window.count(now_ms, MINUTE_MS) >= limits.per_minute as usize {
        return Err(RejectReason::RateLimited { scope, window: "minute", limit: limits.per_minute });
    }
    Ok(())
}

impl RateLimiter {
    /// Would one more order of `strategy` at `now_ms` stay within the limits?
    pub fn check(
        &mut self,
        strategy: &StrategyId,
        now_ms: i64,
        strategy_limits: RateLimits,
        global_limits: RateLimits,
    ) -> Result<(), RejectReason> {
        self.global.prune(now_ms);
        check_window(&self.global, global_limits, RateScope::Global, now_ms)?;
        if strategy_limits.off() {
            return Ok(());
        }
        match self.per_strategy.get_mut(strategy) {
            Some(w) => {
                w.prune(now_ms);
                check_window(w, strategy_limits, RateScope::Strategy, now_ms)
            }
            None => Ok(()),
        }
    }

    /// Counts an approved order.
    pub fn record(&mut self, strategy: &StrategyId, now_ms: i64) {
        self.global.times.push_back(now_ms);
        let w = match self.per_strategy.get_mut(strategy) {
            Some(w) => w,
            None => self.per_strategy.entry(strategy.clone()).or_default(),
        };
        w.prune(now_ms);
        w.times.push_back(now_ms);
        if self.per_strategy.len() > 64 {
            self.per_strategy.retain(|_, w| {
                w.prune(now_ms);
                !w.times.is_empty()
            });
        }
    }

    /// Orders of every strategy in the last second and the last minute.
    pub fn global_usage(&self, now_ms: i64) -> (usize, usize) {
        (self.global.count(now_ms, SECOND_MS), self.global.count(now_ms, MINUTE_MS))
    }

    /// Orders of one strategy in the last second and the last minute.
    pub fn strategy_usage(&self, strategy: &str, now_ms: i64) -> (usize, usize) {
        self.per_strategy
            .get(strategy)
            .map(|w| (w.count(now_ms, SECOND_MS), w.count(now_ms, MINUTE_MS)))
            .unwrap_or((0, 0))
    }

    /// Strategies with orders in the last minute.
    pub fn strategies(&self) -> impl Iterator<Item = &StrategyId> {
        self.per_strategy.keys()
    }
}

/// What makes two orders "the same" for the duplicate guard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DupKey {
    strategy: StrategyId,
    symbol: Symbol,
    side: Side,
    kind: &'static str,
    price: Option<Decimal>,
    stop: Option<Decimal>,
    qty: Decimal,
}

impl DupKey {
    fn of(intent: &OrderIntent) -> Self {
        let (price, stop) = match intent.order_type {
            OrderType::Market => (None, None),
            OrderType::Limit { price } => (Some(price.normalize()), None),
            OrderType::StopLimit { stop, price } => (Some(price.normalize()), Some(stop.normalize())),
            OrderType::StopMarket { stop } => (None, Some(stop.normalize())),
            OrderType::Oco { take_profit, stop, .. } => (Some(take_profit.normalize()), Some(stop.normalize())),
        };
        Self {
            strategy: intent.strategy_id.clone(),
            symbol: intent.symbol.clone(),
            side: intent.side,
            kind: intent.order_type.label(),
            price,
            stop,
            qty: intent.qty.normalize(),
        }
    }
}

/// Refuses the same strategy sending the same side, symbol, type, price and
/// quantity again within a window.
#[derive(Debug, Clone, Default)]
pub struct DuplicateGuard {
    last: FxHashMap<DupKey, i64>,
}

impl DuplicateGuard {
    /// Refuses `intent` if an identical one was approved less than `window_ms` ago
    /// (exactly `window_ms` later passes). A window of 0 turns the guard off.
    pub fn check(&mut self, intent: &OrderIntent, now_ms: i64, window_ms: i64) -> Result<(), RejectReason> {
        if window_ms <= 0 {
            return Ok(());
        }
        self.last.retain(|_, t| now_ms.saturating_sub(*t) < window_ms);
        match self.last.get(&DupKey::of(intent)) {
            Some(&t) => Err(RejectReason::Duplicate { age_ms: now_ms.saturating_sub(t), window_ms }),
            None => Ok(()),
        }
    }

    /// Remembers an approved intent.
    pub fn record(&mut self, intent: &OrderIntent, now_ms: i64, window_ms: i64) {
        if window_ms > 0 {
            self.last.insert(DupKey::of(intent), now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn rate_windows_table() {
        struct Case {
            name: &'static str,
            strategy: RateLimits,
            global: RateLimits,
            /// (strategy, time) of orders already approved.
            history: &'static [(&'static str, i64)],
            now: i64,
            want: Result<(), (&'static str, RateScope)>,
        }
        let off = RateLimits { per_second: 0, per_minute: 0 };
        let cases = [
            Case { name: "off", strategy: off, global: off, history: &[("a", 0); 50], now: 0, want: Ok(()) },
            Case {
                name: "below per-second",
                strategy: RateLimits { per_second: 2, per_minute: 0 },
                global: off,
                history: &[("a", 0)],
                now: 10,
                want: Ok(()),
            },
            Case {
                name: "at per-second",
                strategy: RateLimits { per_second: 2, per_minute: 0 },
                global: off,
                history: &[("a", 0), ("a", 5)],
                now: 10,
                want: Err(("second", RateScope::Strategy)),
            },
            Case {
                name: "second window slides: exactly 1000 ms later is outside",
                strategy: RateLimits { per_second: 2, per_minute: 0 },
                global: off,
                history: &[("a", 0), ("a", 5)],
                now: 1_000,
                want: Ok(()),
            },
            Case {
                name: "999 ms later is still inside",
                strategy: RateLimits { per_second: 1, per_minute: 0 },
                global: off,
                history: &[("a", 1)],
                now: 1_000,
                want: Err(("second", RateScope::Strategy)),
            },
            Case {
                name: "per-minute",
                strategy: RateLimits { per_second: 10, per_minute: 3 },
                global: off,
                history: &[("a", 0), ("a", 20_000), ("a", 40_000)],
                now: 59_999,
                want: Err(("minute", RateScope::Strategy)),
            },
            Case {
                name: "per-minute slides",
                strategy: RateLimits { per_second: 10, per_minute: 3 },
                global: off,
                history: &[("a", 0), ("a", 20_000), ("a", 40_000)],
                now: 60_000,
                want: Ok(()),
            },
            Case {
                name: "other strategies do not count per strategy",
                strategy: RateLimits { per_second: 1, per_minute: 0 },
                global: off,
                history: &[("b", 0), ("c", 0)],
                now: 1,
                want: Ok(()),
            },
            Case {
                name: "global counts everyone",
                strategy: RateLimits { per_second: 1, per_minute: 0 },
                global: RateLimits { per_second: 2, per_minute: 0 },
                history: &[("b", 0), ("c", 0)],
                now: 1,
                want: Err(("second", RateScope::Global)),
            },
            Case {
                name: "clock stepped back: future orders count",
                strategy: RateLimits { per_second: 1, per_minute: 0 },
                global: off,
                history: &[("a", 5_000)],
                now: 1_000,
                want: Err(("second", RateScope::Strategy)),
            },
        ];
        for c in cases {
            let mut r = RateLimiter::default();
            for (s, t) in c.history {
                r.record(&StrategyId::new(s), *t);
            }
            let got = r.check(&"a".into(), c.now, c.strategy, c.global).map_err(|e| match e {
                RejectReason::RateLimited { scope, window, .. } => (window, scope),
                other => panic!("{}: unexpected {other}", c.name),
            });
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn duplicate_table() {
        let buy =
            |qty: &str, price: &str| OrderIntent::limit("s".into(), "BTCUSDT".into(), Side::Buy, d(qty), d(price));
        struct Case {
            name: &'static str,
            first: OrderIntent,
            second: OrderIntent,
            dt: i64,
            window: i64,
            duplicate: bool,
        }
        let mut sell = buy("1", "100");
        sell.side = Side::Sell;
        let mut other_strategy = buy("1", "100");
        other_strategy.strategy_id = "t".into();
        let market = OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, d("1"));
        let cases = [
            Case {
                name: "same within window",
                first: buy("1", "100"),
                second: buy("1", "100"),
                dt: 999,
                window: 1_000,
                duplicate: true,
            },
            Case {
                name: "exactly at window",
                first: buy("1", "100"),
                second: buy("1", "100"),
                dt: 1_000,
                window: 1_000,
                duplicate: false,
            },
            Case {
                name: "same value, other scale",
                first: buy("1", "100"),
                second: buy("1.000", "100.0"),
                dt: 0,
                window: 1_000,
                duplicate: true,
            },
            Case {
                name: "other price",
                first: buy("1", "100"),
                second: buy("1", "100.01"),
                dt: 0,
                window: 1_000,
                duplicate: false,
            },
            Case {
                name: "other qty by 1e-8",
                first: buy("1", "100"),
                second: buy("1.00000001", "100"),
                dt: 0,
                window: 1_000,
                duplicate: false,
            },
            Case { name: "other side", first: buy("1", "100"), second: sell, dt: 0, window: 1_000, duplicate: false },
            Case {
                name: "other strategy",
                first: buy("1", "100"),
                second: other_strategy,
                dt: 0,
                window: 1_000,
                duplicate: false,
            },
            Case {
                name: "market vs limit",
                first: buy("1", "100"),
                second: market.clone(),
                dt: 0,
                window: 1_000,
                duplicate: false,
            },
            Case { name: "two markets", first: market.clone(), second: market, dt: 10, window: 1_000, duplicate: true },
            Case {
                name: "window off",
                first: buy("1", "100"),
                second: buy("1", "100"),
                dt: 0,
                window: 0,
                duplicate: false,
            },
        ];
        for c in cases {
            let mut g = DuplicateGuard::default();
            g.check(&c.first, 0, c.window).unwrap();
            g.record(&c.first, 0, c.window);
            assert_eq!(g.check(&c.second, c.dt, c.window).is_err(), c.duplicate, "{}", c.name);
        }
    }
}
