//! Moving-average crossovers on closed bars: `sma_cross` (simple) and
//! `ema_cross` (exponential), long only.
//!
//! Buys `qty` when the fast average of closes crosses above the slow one while
//! the strategy is flat with nothing in flight; sells its whole position when
//! the fast average crosses below. Equal averages count as "not above".
//!
//! With `max_funding`, a cross up opens no long while the symbol's last
//! settled funding rate (from the futures events it received) is above it:
//! longs are crowded and pay shorts. No settlement known: no filter.

use keel_core::market::Bar;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};

use crate::common::{close_f64, enter_long, exit_long, Cross};
use crate::indicators::{DecimalSma, Ema};
use crate::params::{ParamSpec, Params};
use crate::registry::StrategyConfigError;

/// A moving average a crossover can use.
pub trait MovingAverage: Clone + std::fmt::Debug + Send + 'static {
    /// The strategy kind that crosses two of these.
    const KIND: &'static str;
    /// An average over `period` closes.
    fn with_period(period: usize) -> Self;
    /// Adds a close; true once the average is warm.
    fn push(&mut self, close: Decimal) -> bool;
    /// Whether this (warm) average is strictly above `other`.
    fn above(&self, other: &Self) -> bool;
    /// Closes needed before the first average.
    fn warmup(&self) -> usize;
}

impl MovingAverage for DecimalSma {
    const KIND: &'static str = "sma_cross";
    fn with_period(period: usize) -> Self {
        DecimalSma::new(period)
    }
    #[inline]
    fn push(&mut self, close: Decimal) -> bool {
        self.update(close)
    }
    /// Exact: equal averages are never "above" (see [`DecimalSma`]).
    #[inline]
    fn above(&self, other: &Self) -> bool {
        self.compare(other) == Some(std::cmp::Ordering::Greater)
    }
    fn warmup(&self) -> usize {
        self.period()
    }
}

impl MovingAverage for Ema {
    const KIND: &'static str = "ema_cross";
    fn with_period(period: usize) -> Self {
        Ema::new(period)
    }
    fn push(&mut self, close: Decimal) -> bool {
        self.update(close_f64(close)).is_some()
    }
    fn above(&self, other: &Self) -> bool {
        matches!((self.value(), other.value()), (Some(a), Some(b)) if a > b)
    }
    fn warmup(&self) -> usize {
        self.period()
    }
}

/// A crossover of two moving averages of kind `M`.
#[derive(Debug, Clone)]
pub struct MaCross<M: MovingAverage> {
    symbol: Symbol,
    fast: M,
    slow: M,
    qty: Decimal,
    /// Size each entry by value instead: `notional` in the quote asset at
    /// the bar's close (one template trades pairs priced 0.001 and 30 000).
    notional: Option<Decimal>,
    /// No entry while the last settled funding rate is above this.
    max_funding: Option<Decimal>,
    cross: Cross,
}

/// `sma_cross`: simple moving averages.
pub type SmaCross = MaCross<DecimalSma>;
/// `ema_cross`: exponential moving averages.
pub type EmaCross = MaCross<Ema>;

impl<M: MovingAverage> MaCross<M> {
    /// The parameters it declares (type, default, valid range), which the
    /// registry checks before building it.
    pub fn params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::integer("fast").required().at_least(1),
            ParamSpec::integer("slow").required().at_least(1),
            ParamSpec::decimal("qty").above(0),
            ParamSpec::decimal("notional").above(0),
            ParamSpec::decimal("max_funding"),
        ]
    }

    /// A new instance. `fast` must be shorter than `slow`, `qty` positive.
    pub fn new(symbol: Symbol, fast: usize, slow: usize, qty: Decimal) -> Self {
        Self {
            symbol,
            fast: M::with_period(fast),
            slow: M::with_period(slow),
            qty,
            notional: None,
            max_funding: None,
            cross: Cross::default(),
        }
    }

    /// Builds from config params `fast`, `slow`, and `qty` (base asset) or
    /// `notional` (quote asset per entry), and optionally `max_funding`.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&Self::params())?;
        let fast = p.usize("fast")?;
        let slow = p.usize("slow")?;
        if slow <= fast {
            return Err(p.error("slow", format!("must be greater than fast ({fast}), got {slow}")));
        }
        let (qty, notional) = match (p.positive_decimal_opt("qty")?, p.positive_decimal_opt("notional")?) {
            (Some(qty), None) => (qty, None),
            (None, Some(n)) => (Decimal::ZERO, Some(n)),
            (Some(_), Some(_)) => return Err(p.error("notional", "set either `qty` or `notional`, not both")),
            (None, None) => return Err(p.error("qty", "missing: set `qty` (base asset) or `notional` (quote asset)")),
        };
        let max_funding = p.decimal_opt("max_funding")?;
        Ok(Self { notional, max_funding, ..Self::new(symbol, fast, slow, qty) })
    }

    /// True while the last settled funding rate is above `max_funding`.
    fn funding_too_high(&self, ctx: &StrategyCtx<'_>) -> bool {
        let Some(max) = self.max_funding else { return false };
        let settled = ctx.futures(&self.symbol).and_then(|f| f.last_settlement.as_ref());
        settled.is_some_and(|s| s.rate > max)
    }
}

impl<M: MovingAverage> Strategy for MaCross<M> {
    fn kind(&self) -> &'static str {
        M::KIND
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn warmup_bars(&self) -> usize {
        self.slow.warmup()
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        let (fast_warm, slow_warm) = (self.fast.push(bar.close), self.slow.push(bar.close));
        if !(fast_warm && slow_warm) {
            return;
        }
        match self.cross.update(self.fast.above(&self.slow)) {
            Some(true) => {
                if self.funding_too_high(ctx) {
                    return;
                }
                let qty = match self.notional {
                    Some(n) if bar.close > Decimal::ZERO => (n / bar.close).round_dp(8),
                    Some(_) => return,
                    None => self.qty,
                };
                enter_long(ctx, &self.symbol, qty)
            }
            Some(false) => exit_long(ctx, &self.symbol),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::market::MarketEvent;
    use keel_core::order::Side;
    use keel_core::strategy::StrategyRunner;

    fn bar(i: i64, close: i64) -> MarketEvent {
        let c = Decimal::from(close);
        MarketEvent::Bar(Bar {
            symbol: "X".into(),
            open_time: i * 60_000,
            close_time: i * 60_000 + 59_999,
            open: c,
            high: c,
            low: c,
            close: c,
            volume: Decimal::ONE,
        })
    }

    #[test]
    fn buys_on_cross_up_and_sells_on_cross_down() {
        let mut r = StrategyRunner::new("s".into(), Box::new(SmaCross::new("X".into(), 2, 3, Decimal::ONE)));
        // Falling, then rising: at bar 4 the averages are equal (8 = 8), at bar 5
        // fast 10.5 > slow 9.33 crosses up; at bar 7 fast 12 < slow 12.67 crosses down.
        let closes = [10, 9, 8, 7, 9, 12, 14, 10, 6, 4];
        let mut intents = Vec::new();
        for (i, c) in closes.iter().enumerate() {
            r.on_market(&bar(i as i64, *c), 0).unwrap();
            for intent in r.drain_intents() {
                intents.push((i, intent.side, intent.qty));
            }
            // Fill each order at once so the position follows.
            if let Some((_, side, qty)) = intents.last().copied().filter(|(at, _, _)| *at == i) {
                let fill = keel_core::fill::Fill {
                    trade_id: (i as u64).into(),
                    client_order_id: "c".into(),
                    strategy_id: "s".into(),
                    symbol: "X".into(),
                    side,
                    price: Decimal::from(closes[i]),
                    qty,
                    fee: Decimal::ZERO,
                    fee_asset: "USDT".into(),
                    is_maker: false,
                    ts_ms: 0,
                    tag: None,
                };
                r.on_fill(&fill, 0).unwrap();
                r.on_order_update(
                    &keel_core::strategy::OrderUpdate {
                        client_order_id: Some("c".into()),
                        symbol: "X".into(),
                        side,
                        status: keel_core::order::OrderStatus::Filled,
                        filled_qty: qty,
                        reason: None,
                        tag: None,
                        exit: None,
                    },
                    0,
                )
                .unwrap();
            }
        }
        assert_eq!(intents, vec![(5, Side::Buy, Decimal::ONE), (7, Side::Sell, Decimal::ONE)]);
    }

    #[test]
    fn notional_sizes_the_entry_at_the_close_and_qty_or_notional_is_required() {
        let table = |text: &str| text.parse::<toml::Table>().unwrap();
        let build = |params: &toml::Table| {
            SmaCross::from_params("X".into(), &crate::params::Params::new(params, "strategy[0].params"))
        };
        let cases = [
            ("fast = 2\nslow = 3\nqty = \"1\"\nnotional = \"5\"", "strategy[0].params.notional", "not both"),
            ("fast = 2\nslow = 3", "strategy[0].params.qty", "missing"),
        ];
        for (text, key, reason) in cases {
            let e = build(&table(text)).expect_err(text);
            assert_eq!(e.key, key, "{text}");
            assert!(e.reason.contains(reason), "{text}: {}", e.reason);
        }
        let s = build(&table("fast = 2\nslow = 3\nnotional = \"24\"")).unwrap();
        let mut r = StrategyRunner::new("s".into(), Box::new(s));
        let mut bought = Vec::new();
        for (i, c) in [10, 9, 8, 7, 9, 12].iter().enumerate() {
            r.on_market(&bar(i as i64, *c), 0).unwrap();
            bought.extend(r.drain_intents().map(|intent| (i, intent.side, intent.qty)));
        }
        assert_eq!(bought, vec![(5, Side::Buy, Decimal::from(2))], "24 USDT at a close of 12");
    }

    #[test]
    fn max_funding_blocks_entries_while_the_last_settled_rate_is_above_it() {
        use keel_core::futures::{FundingRateType, FundingSettlement, FuturesEvent, MarkPrice};
        let settled = |rate: &str, t: i64| {
            FuturesEvent::Funding(FundingSettlement {
                symbol: "X".into(),
                rate: rate.parse().unwrap(),
                funding_time: t,
                mark_price: None,
                rate_type: FundingRateType::Regular,
            })
        };
        // The estimate is not a settlement: it never blocks.
        let estimate = FuturesEvent::Mark(MarkPrice {
            symbol: "X".into(),
            mark_price: Decimal::ONE,
            index_price: None,
            estimated_settle_price: None,
            funding_rate_estimate: Some(Decimal::ONE),
            interest_rate: None,
            next_funding_time: Some(9),
            ts_ms: 3,
        });
        let table = |text: &str| text.parse::<toml::Table>().unwrap();
        let cases: [(&str, Vec<FuturesEvent>, bool); 6] = [
            ("", vec![settled("0.01", 1)], true),
            ("max_funding = \"0.0001\"", vec![], true),
            ("max_funding = \"0.0001\"", vec![estimate], true),
            ("max_funding = \"0.0001\"", vec![settled("0.0001", 1)], true),
            ("max_funding = \"0.0001\"", vec![settled("0.0002", 1)], false),
            ("max_funding = \"-0.0001\"", vec![settled("0.0003", 1), settled("-0.0002", 2)], true),
        ];
        for (param, events, buys) in cases {
            let params = table(&format!("fast = 2\nslow = 3\nqty = \"1\"\n{param}"));
            let s = SmaCross::from_params("X".into(), &crate::params::Params::new(&params, "p")).unwrap();
            let mut r = StrategyRunner::new("s".into(), Box::new(s));
            for e in &events {
                r.on_futures(e, 0).unwrap();
            }
            let mut bought = Vec::new();
            for (i, c) in [10, 9, 8, 7, 9, 12].iter().enumerate() {
                r.on_market(&bar(i as i64, *c), 0).unwrap();
                bought.extend(r.drain_intents().map(|intent| (i, intent.side)));
            }
            let want = if buys { vec![(5, Side::Buy)] } else { vec![] };
            assert_eq!(bought, want, "{param} after {events:?}");
        }
    }

    #[test]
    fn equal_averages_are_not_a_cross_up() {
        // At the last bar SMA(2) = (0.57 + 0.19) / 2 = 0.38 and SMA(3) =
        // (0.38 + 0.57 + 0.19) / 3 = 0.38, after fast was below slow. An f64
        // running sum makes SMA(2) a hair above SMA(3) here and bought.
        let closes = ["0.51", "0.38", "0.57", "0.19"];
        let mut r = StrategyRunner::new("s".into(), Box::new(SmaCross::new("X".into(), 2, 3, Decimal::ONE)));
        let mut intents = 0;
        for (i, c) in closes.iter().enumerate() {
            let c: Decimal = c.parse().unwrap();
            let event = MarketEvent::Bar(Bar {
                symbol: "X".into(),
                open_time: i as i64 * 60_000,
                close_time: i as i64 * 60_000 + 59_999,
                open: c,
                high: c,
                low: c,
                close: c,
                volume: Decimal::ONE,
            });
            intents += r.on_market(&event, 0).unwrap();
        }
        assert_eq!(intents, 0);
    }

    #[test]
    fn params_are_validated() {
        let cases: &[(&str, &str)] = &[
            ("fast = 5\nslow = 5\nqty = \"1\"", "slow"),
            ("fast = 0\nslow = 5\nqty = \"1\"", "fast"),
            ("fast = 2\nslow = 5\nqty = \"-1\"", "qty"),
            ("fast = 2\nslow = 5", "qty"),
            ("fast = 2\nslow = 5\nqty = \"1\"\nfsat = 3", "fsat"),
            ("fast = \"2\"\nslow = 5\nqty = \"1\"", "fast"),
        ];
        for (text, key) in cases {
            let table: toml::Table = text.parse().unwrap();
            let err = SmaCross::from_params("X".into(), &Params::new(&table, "p")).unwrap_err();
            assert_eq!(err.key, format!("p.{key}"), "{text}");
        }
    }
}
