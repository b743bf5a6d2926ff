//! `donchian_breakout`: the turtle traders' channel breakout, long only,
//! with a volatility filter.
//!
//! - **Buys** `qty` when a bar closes above the highest high of the `entry`
//!   bars before it, unless the average true range of those bars is above
//!   `max_atr_pct` percent of the close (a breakout in a market that already
//!   swings that much is more likely noise), and only when flat with nothing
//!   in flight.
//! - **Sells** everything it holds when a bar closes below the lowest low of
//!   the `exit` bars before it.
//!
//! It decides on closed bars only and keeps the channels itself, so it reads
//! no clock (the bar is the time) and does no I/O: the same object runs in a
//! backtest and live.

use std::collections::VecDeque;

use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};
use keel_strategies::common::close_f64;
use keel_strategies::params::{ParamSpec, Params};
use keel_strategies::registry::DeclaredParams;
use keel_strategies::StrategyConfigError;

/// The Donchian channel breakout.
#[derive(Debug, Clone)]
pub struct DonchianBreakout {
    symbol: Symbol,
    entry: usize,
    exit: usize,
    max_atr_pct: f64,
    qty: Decimal,
    /// Highs of the last `entry` bars, oldest first.
    highs: VecDeque<Decimal>,
    /// Lows of the last `exit` bars, oldest first.
    lows: VecDeque<Decimal>,
    /// True ranges of the last `entry` bars, and their sum.
    ranges: VecDeque<Decimal>,
    range_sum: Decimal,
    prev_close: Option<Decimal>,
}

impl DeclaredParams for DonchianBreakout {
    /// What `keel strategies`, config checks and `--sweep` read.
    fn params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::integer("entry").default_value("20").at_least(2).at_most(1000),
            ParamSpec::integer("exit").default_value("10").at_least(1).at_most(1000),
            ParamSpec::number("max_atr_pct").default_value("5.0").above(0).at_most(100),
            ParamSpec::decimal("qty").required().above(0),
        ]
    }
}

impl DonchianBreakout {
    /// The kind's name in configs.
    pub const KIND: &'static str = "donchian_breakout";

    /// A new instance (see the module documentation for the parameters).
    pub fn new(symbol: Symbol, entry: usize, exit: usize, max_atr_pct: f64, qty: Decimal) -> Self {
        Self {
            symbol,
            entry,
            exit,
            max_atr_pct,
            qty,
            highs: VecDeque::with_capacity(entry + 1),
            lows: VecDeque::with_capacity(exit + 1),
            ranges: VecDeque::with_capacity(entry + 1),
            range_sum: Decimal::ZERO,
            prev_close: None,
        }
    }

    /// Builds from a config block's `params`: `entry` (20), `exit` (10),
    /// `max_atr_pct` (5.0) and `qty`. Values outside the declared ranges are
    /// refused here too, so building it directly is as safe as through the
    /// registry.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        let specs = Self::params();
        let in_range = |name: &str, value: Decimal| match specs.iter().find(|s| s.name == name) {
            Some(spec) => spec.out_of_range(value).map_or(Ok(()), |reason| Err(p.error(name, reason))),
            None => Ok(()),
        };
        p.only(&specs)?;
        let entry = p.usize_or("entry", 20)?;
        in_range("entry", Decimal::from(entry))?;
        let exit = p.usize_or("exit", 10)?;
        in_range("exit", Decimal::from(exit))?;
        let max_atr_pct = p.number_or("max_atr_pct", 5.0)?;
        in_range("max_atr_pct", Decimal::try_from(max_atr_pct).unwrap_or(Decimal::MAX))?;
        let qty = p.positive_decimal("qty")?;
        Ok(Self::new(symbol, entry, exit, max_atr_pct, qty))
    }

    /// The average true range of the last `entry` bars as a percentage of
    /// `close` (an indicator, so `f64`).
    fn atr_pct(&self, close: Decimal) -> f64 {
        let atr = close_f64(self.range_sum) / self.ranges.len() as f64;
        100.0 * atr / close_f64(close)
    }

    /// Adds a bar to the channels, dropping the oldest beyond their lengths.
    fn remember(&mut self, bar: &Bar) {
        let range = match self.prev_close {
            Some(prev) => (bar.high - bar.low).max((bar.high - prev).abs()).max((bar.low - prev).abs()),
            None => bar.high - bar.low,
        };
        self.range_sum += range;
        self.ranges.push_back(range);
        if self.ranges.len() > self.entry {
            self.range_sum -= self.ranges.pop_front().unwrap_or_default();
        }
        self.highs.push_back(bar.high);
        if self.highs.len() > self.entry {
            self.highs.pop_front();
        }
        self.lows.push_back(bar.low);
        if self.lows.len() > self.exit {
            self.lows.pop_front();
        }
        self.prev_close = Some(bar.close);
    }
}

impl Strategy for DonchianBreakout {
    fn kind(&self) -> &'static str {
        Self::KIND
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn warmup_bars(&self) -> usize {
        self.entry.max(self.exit)
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        // The channels are of the bars before this one: a full window only
        // (nothing during warm-up). A scan of at most 1000 values per bar
        // keeps the example short; a monotonic deque would make it O(1).
        if self.highs.len() == self.entry {
            let upper = self.highs.iter().copied().max().unwrap_or(Decimal::MAX);
            if bar.close > upper && self.atr_pct(bar.close) <= self.max_atr_pct && ctx.is_flat(&self.symbol) {
                ctx.market(&self.symbol, Side::Buy, self.qty);
            }
        }
        if self.lows.len() == self.exit {
            let lower = self.lows.iter().copied().min().unwrap_or(Decimal::MIN);
            let held = ctx.position(&self.symbol);
            if bar.close < lower && held > Decimal::ZERO && ctx.pending_orders(&self.symbol) == 0 {
                ctx.market(&self.symbol, Side::Sell, held);
            }
        }
        self.remember(bar);
    }
}

#[cfg(test)]
mod tests {
    use keel_core::order::OrderType;
    use keel_ops::testing::{Harness, Run};

    use super::*;

    /// Hourly bars, each opening at the previous close: a rise to 102, a
    /// breakout to 105, then a fall through the 2-bar low.
    const CLOSES: [&str; 9] = ["100", "101", "102", "101", "105", "106", "104", "99", "98"];

    fn run(params: &str) -> Run {
        let app = keel_ops::App::new().strategy(DonchianBreakout::KIND, DonchianBreakout::from_params);
        let registry = app.registry().expect("registered");
        Harness::new("BTCUSDT").closes(&CLOSES).run_kind(registry, DonchianBreakout::KIND, params).expect("valid")
    }

    fn d(text: &str) -> Decimal {
        text.parse().expect("a decimal")
    }

    /// Buys when a close clears the 3-bar high (105 over 102 at bar 4; not
    /// 102 over 101 at bar 2, before the channel is full), fills at the next open,
    /// holds through a close above the new high, and sells everything when
    /// a close falls below the 2-bar low (99 < 104 at bar 7).
    #[test]
    fn buys_the_breakout_and_sells_below_the_exit_channel() {
        let run = run("entry = 3, exit = 2, qty = \"0.5\"");
        let intents: Vec<(usize, Side, OrderType, Decimal)> =
            run.intents().into_iter().map(|i| (i.bar, i.side, i.order_type, i.qty)).collect();
        assert_eq!(
            intents,
            [(4, Side::Buy, OrderType::Market, d("0.5")), (7, Side::Sell, OrderType::Market, d("0.5"))]
        );
        let fills: Vec<String> = run.fills().iter().map(ToString::to_string).collect();
        assert_eq!(fills, ["bar 5: buy 0.5 @ 105", "bar 8: sell 0.5 @ 99"]);
        assert_eq!(run.position(), Decimal::ZERO);
        assert_eq!(run.outcome().final_equity - run.outcome().initial_equity, d("-3"));
    }

    /// The volatility filter: the three bars before the breakout each range
    /// 1, an ATR of 1 / 105 = 0.95 % of the close, so a limit below that
    /// skips the trade and one above it takes it.
    #[test]
    fn the_volatility_filter_skips_breakouts_in_wide_markets() {
        let cases = [("0.9", 0), ("0.96", 2), ("5.0", 2)];
        for (limit, intents) in cases {
            let run = run(&format!("entry = 3, exit = 2, qty = \"1\", max_atr_pct = {limit}"));
            assert_eq!(run.intents().len(), intents, "max_atr_pct = {limit}");
        }
    }

    /// Values outside the declared ranges are refused with the key, through
    /// the registry (as `keel` checks a config) and when built directly.
    #[test]
    fn the_declared_ranges_are_enforced() {
        let registry = keel_ops::App::new().strategy(DonchianBreakout::KIND, DonchianBreakout::from_params);
        let registry = registry.registry().expect("registered");
        let harness = Harness::new("BTCUSDT").closes(&CLOSES);
        let cases = [
            ("entry = 1, qty = \"1\"", "entry", "must be between 2 and 1000, got 1"),
            ("exit = 1001, qty = \"1\"", "exit", "must be between 1 and 1000, got 1001"),
            ("max_atr_pct = 0, qty = \"1\"", "max_atr_pct", "must be greater than 0 and at most 100, got 0"),
            ("entry = 5", "qty", "is required"),
            ("qty = \"1\", stop = 3", "stop", "unknown parameter"),
        ];
        for (params, key, reason) in cases {
            let Err(err) = harness.run_kind(registry, DonchianBreakout::KIND, params) else {
                panic!("{params}: accepted")
            };
            assert_eq!(err.key, format!("strategy[0].params.{key}"), "{params}");
            assert!(err.reason.contains(reason), "{params}: {}", err.reason);
            let block: toml::Table = format!("p = {{ {params} }}").parse().expect(params);
            let table = block["p"].as_table().expect("a table");
            let direct = DonchianBreakout::from_params("BTCUSDT".into(), &Params::new(table, "strategy[0].params"));
            assert_eq!(direct.err(), Some(err), "{params}");
        }
    }
}
