//! A backtest inside a unit test, for strategies written outside Keel (and
//! inside): [`Harness`] feeds bars to one strategy through the loop `keel
//! backtest` runs ([`crate::backtest::sim::Backtest`]: the live
//! `StrategyRunner`, the live `RiskEngine` and the one `MatchingCore`), and
//! [`Run`] tells which orders passed the risk engine and what filled, by bar.
//!
//! ```
//! use keel_core::market::Bar;
//! use keel_core::order::Side;
//! use keel_core::strategy::{Strategy, StrategyCtx};
//! use keel_core::{Decimal, Symbol};
//! use ops::testing::Harness;
//!
//! /// Buys one unit when a bar closes above 100.
//! struct AboveHundred;
//! impl Strategy for AboveHundred {
//!     fn kind(&self) -> &'static str { "above_hundred" }
//!     fn symbols(&self) -> Vec<Symbol> { vec!["BTCUSDT".into()] }
//!     fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
//!         if bar.close > Decimal::from(100) && ctx.is_flat(&bar.symbol) {
//!             ctx.market(&bar.symbol, Side::Buy, Decimal::ONE);
//!         }
//!     }
//! }
//!
//! let run = Harness::new("BTCUSDT").closes(&["99", "101", "102"]).run(AboveHundred);
//! // Decided at bar 1's close, filled at bar 2's open (bar 1's close, 101).
//! assert_eq!(run.intents()[0].bar, 1);
//! let fill = &run.fills()[0];
//! assert_eq!((fill.bar, fill.side, fill.price), (2, Side::Buy, Decimal::from(101)));
//! assert_eq!(run.position(), Decimal::ONE);
//! ```

use std::fmt;
use std::str::FromStr;

use keel_core::balance::Balance;
use keel_core::config::StrategyConfig;
use keel_core::exits::ExitSpec;
use keel_core::instrument::Instrument;
use keel_core::market::Bar;
use keel_core::order::{OrderType, Side};
use keel_core::sim::FeeSchedule;
use keel_core::strategy::Strategy;
use keel_core::{Decimal, StrategyId, Symbol};
use risk::config::RiskConfig;
use strategies::{StrategyConfigError, StrategyRegistry};

use crate::backtest::sim::{Backtest, Outcome, SimConfig, StrategySlot, Timeline};
use crate::backtest::split_symbol;

/// The open time of the first bar: 2024-01-01T00:00:00Z.
const START_MS: i64 = 1_704_067_200_000;
/// One hour, the bars' interval.
const HOUR_MS: i64 = 3_600_000;
/// The strategy id a harness runs its strategy under.
const ID: &str = "test";

/// Bars of one symbol and the market they trade in, to run a strategy over.
///
/// Defaults: hourly bars from 2024-01-01, a tick of 0.01 and a step of
/// 0.00001, 10 000 of the quote asset, no fees, no slippage, no risk limits.
/// Inputs are the test's own literals, so a malformed one panics with its
/// text (like an assertion), rather than returning an error.
#[derive(Debug, Clone)]
pub struct Harness {
    instrument: Instrument,
    bars: Vec<Bar>,
    balances: Vec<Balance>,
    fee_bps: Decimal,
    slippage_bps: Decimal,
    risk: RiskConfig,
    exits: Option<ExitSpec>,
}

impl Harness {
    /// A market for `symbol` (e.g. `BTCUSDT`: base `BTC`, quote `USDT`) without bars.
    pub fn new(symbol: &str) -> Self {
        let (base, quote) = split_symbol(symbol);
        let instrument =
            Instrument::with_steps(Symbol::new(symbol), base, quote.clone(), Decimal::new(1, 2), Decimal::new(1, 5));
        Self {
            instrument,
            bars: Vec::new(),
            balances: vec![Balance { asset: quote, free: Decimal::from(10_000), locked: Decimal::ZERO }],
            fee_bps: Decimal::ZERO,
            slippage_bps: Decimal::ZERO,
            risk: RiskConfig::unlimited(),
            exits: None,
        }
    }

    /// Appends a bar: open, high, low, close (volume 1).
    ///
    /// # Panics
    /// When a price is not a decimal number.
    pub fn bar(mut self, open: &str, high: &str, low: &str, close: &str) -> Self {
        let open_time = START_MS + self.bars.len() as i64 * HOUR_MS;
        self.bars.push(Bar {
            symbol: self.instrument.symbol.clone(),
            open_time,
            close_time: open_time + HOUR_MS - 1,
            open: decimal(open),
            high: decimal(high),
            low: decimal(low),
            close: decimal(close),
            volume: Decimal::ONE,
        });
        self
    }

    /// Appends a bar per close: each opens at the previous close (the first
    /// at its own), its high and low are its open and close.
    ///
    /// # Panics
    /// When a price is not a decimal number.
    pub fn closes(mut self, closes: &[&str]) -> Self {
        for close in closes {
            let open = self.bars.last().map_or_else(|| decimal(close), |b| b.close);
            let close = decimal(close);
            let (high, low) = (open.max(close).to_string(), open.min(close).to_string());
            self = self.bar(&open.to_string(), &high, &low, &close.to_string());
        }
        self
    }

    /// The price tick and the quantity step (the instrument's filters).
    ///
    /// # Panics
    /// When either is not a decimal number.
    pub fn filters(mut self, tick: &str, step: &str) -> Self {
        let i = &self.instrument;
        self.instrument = Instrument::with_steps(
            i.symbol.clone(),
            i.base_asset.clone(),
            i.quote_asset.clone(),
            decimal(tick),
            decimal(step),
        );
        self
    }

    /// The starting balance of `asset` (replacing any given before).
    ///
    /// # Panics
    /// When `amount` is not a decimal number.
    pub fn balance(mut self, asset: &str, amount: &str) -> Self {
        self.balances.retain(|b| b.asset != asset);
        self.balances.push(Balance { asset: asset.to_string(), free: decimal(amount), locked: Decimal::ZERO });
        self
    }

    /// The maker and taker fee in basis points.
    ///
    /// # Panics
    /// When `bps` is not a decimal number.
    pub fn fee_bps(mut self, bps: &str) -> Self {
        self.fee_bps = decimal(bps);
        self
    }

    /// Slippage in basis points on orders filled at a bar's open.
    ///
    /// # Panics
    /// When `bps` is not a decimal number.
    pub fn slippage_bps(mut self, bps: &str) -> Self {
        self.slippage_bps = decimal(bps);
        self
    }

    /// The risk limits (default: none), as live.
    pub fn risk(mut self, risk: RiskConfig) -> Self {
        self.risk = risk;
        self
    }

    /// Exits kept for the strategy's positions, as a config block's
    /// `exits` table, e.g. `{ stop_loss = "3%" }`.
    ///
    /// # Panics
    /// When the table does not parse or is not valid.
    pub fn exits(mut self, table: &str) -> Self {
        #[derive(serde::Deserialize)]
        struct Block {
            exits: ExitSpec,
        }
        let mut block: Block =
            toml::from_str(&format!("exits = {table}")).unwrap_or_else(|e| panic!("exits {table}: {e}"));
        if let Err(e) = block.exits.validate("exits") {
            panic!("exits {table}: {e:?}");
        }
        self.exits = Some(block.exits);
        self
    }

    /// The bars so far.
    pub fn bars(&self) -> &[Bar] {
        &self.bars
    }

    /// Runs `strategy` over the bars.
    pub fn run(&self, strategy: impl Strategy + 'static) -> Run {
        self.run_boxed(Box::new(strategy))
    }

    /// Builds kind `kind` through `registry` from `params` (the body of a
    /// config block's `params = { ... }`, e.g. `entry = 20, qty = "0.1"`),
    /// checked against the kind's declarations as `keel` checks a config,
    /// and runs it over the bars.
    pub fn run_kind(&self, registry: &StrategyRegistry, kind: &str, params: &str) -> Result<Run, StrategyConfigError> {
        let table = toml::from_str::<toml::Table>(&format!("params = {{ {params} }}"))
            .ok()
            .and_then(|mut t| t.remove("params"))
            .and_then(|v| v.as_table().cloned());
        let Some(table) = table else {
            let reason = format!("`{{ {params} }}` is not a TOML table");
            return Err(StrategyConfigError { key: "strategy[0].params".into(), reason });
        };
        let config = StrategyConfig {
            id: ID.into(),
            kind: kind.into(),
            symbol: self.instrument.symbol.to_string(),
            symbols: None,
            paused: false,
            params: table,
            exits: None,
        };
        Ok(self.run_boxed(registry.build(0, &config)?))
    }

    fn run_boxed(&self, strategy: Box<dyn Strategy>) -> Run {
        let timeline = Timeline::new(vec![(self.instrument.symbol.clone(), self.bars.clone())]);
        let config = SimConfig {
            instruments: vec![self.instrument.clone()],
            balances: self.balances.clone(),
            fees: FeeSchedule::new(self.fee_bps, self.fee_bps, Default::default()),
            slippage_bps: self.slippage_bps,
            risk: self.risk.clone(),
            currency: self.instrument.quote_asset.clone(),
        };
        let slot = StrategySlot { id: StrategyId::new(ID), strategy, exits: self.exits.clone() };
        let outcome = Backtest::new(config, timeline.symbols(), vec![slot]).run(&timeline, &[], |_| {});
        let open_times = self.bars.iter().map(|b| b.open_time).collect();
        Run { open_times, base_asset: self.instrument.base_asset.clone(), outcome }
    }
}

/// What a [`Harness`] run produced.
#[derive(Debug, Clone)]
pub struct Run {
    open_times: Vec<i64>,
    base_asset: String,
    outcome: Outcome,
}

/// An order that passed the risk engine (rounded to the filters as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The bar at whose close it was decided (0-based).
    pub bar: usize,
    /// Buy or sell.
    pub side: Side,
    /// Market, limit or stop-limit, with its prices.
    pub order_type: OrderType,
    /// Quantity in the base asset.
    pub qty: Decimal,
}

/// A fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    /// The bar it filled in (0-based): at its open, or inside its range.
    pub bar: usize,
    /// Buy or sell.
    pub side: Side,
    /// Price.
    pub price: Decimal,
    /// Quantity in the base asset.
    pub qty: Decimal,
    /// Commission paid.
    pub fee: Decimal,
    /// The asset it was paid in: a buy pays in the base asset by default,
    /// as Binance charges without BNB (so a buy of 1 holds 1 less the fee).
    pub fee_asset: String,
}

impl fmt::Display for Filled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = if self.side == Side::Buy { "buy" } else { "sell" };
        write!(f, "bar {}: {side} {} @ {}", self.bar, self.qty.normalize(), self.price.normalize())
    }
}

impl Run {
    /// The bar a time falls in: the last one opened at or before it.
    fn bar_of(&self, ts_ms: i64) -> usize {
        self.open_times.partition_point(|open| *open <= ts_ms).saturating_sub(1)
    }

    /// Every order that passed the risk engine, in decision order.
    pub fn intents(&self) -> Vec<Intent> {
        self.outcome
            .orders
            .iter()
            .map(|o| Intent {
                bar: self.bar_of(o.decided_ms),
                side: o.intent.side,
                order_type: o.intent.order_type,
                qty: o.intent.qty,
            })
            .collect()
    }

    /// Every fill, in order.
    pub fn fills(&self) -> Vec<Filled> {
        let mut out = Vec::new();
        self.outcome.fills.for_each(|f| {
            out.push(Filled {
                bar: self.bar_of(f.ts_ms),
                side: f.side,
                price: f.price,
                qty: f.qty,
                fee: f.fee,
                fee_asset: f.fee_asset.clone(),
            });
        });
        out
    }

    /// The base asset held at the end: bought, less sold, less fees paid in it.
    pub fn position(&self) -> Decimal {
        let base = &self.base_asset;
        self.fills()
            .iter()
            .map(|f| {
                let fee = if &f.fee_asset == base { f.fee } else { Decimal::ZERO };
                if f.side == Side::Buy {
                    f.qty - fee
                } else {
                    -f.qty - fee
                }
            })
            .sum()
    }

    /// Intents the risk engine refused, by reason code.
    pub fn risk_rejections(&self) -> &std::collections::BTreeMap<String, u64> {
        &self.outcome.risk_rejections
    }

    /// Everything else the simulation produced (equity curve, exits by
    /// reason, fees, strategy failures...).
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }
}

/// A decimal literal of a test.
fn decimal(text: &str) -> Decimal {
    Decimal::from_str(text.trim()).unwrap_or_else(|_| panic!("`{text}` is not a decimal number"))
}

#[cfg(test)]
mod tests {
    use keel_core::strategy::StrategyCtx;

    use super::*;

    /// Buys 1 at the first bar's close, sells what it holds at the third's.
    struct InAndOut(usize);

    impl Strategy for InAndOut {
        fn kind(&self) -> &'static str {
            "in_and_out"
        }
        fn symbols(&self) -> Vec<Symbol> {
            vec!["ETHUSDT".into()]
        }
        fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
            match self.0 {
                0 => ctx.market(&bar.symbol, Side::Buy, Decimal::ONE),
                2 => {
                    let held = ctx.position(&bar.symbol);
                    ctx.market(&bar.symbol, Side::Sell, held);
                }
                _ => {}
            }
            self.0 += 1;
        }
    }

    fn d(text: &str) -> Decimal {
        decimal(text)
    }

    /// Orders decided at a close fill at the next open, with slippage and
    /// fees as `keel backtest` applies them, and the run tells it by bar.
    #[test]
    fn a_run_reports_intents_and_fills_by_bar() {
        let harness = Harness::new("ETHUSDT").closes(&["100", "110", "120", "130"]).fee_bps("10").slippage_bps("100");
        let run = harness.run(InAndOut(0));
        let intents = run.intents();
        assert_eq!(intents.iter().map(|i| (i.bar, i.side)).collect::<Vec<_>>(), [(0, Side::Buy), (2, Side::Sell)]);
        assert_eq!(intents[0].order_type, OrderType::Market);
        let fills: Vec<String> = run.fills().iter().map(ToString::to_string).collect();
        // Bar 1 opens at 100 (+1% slippage), bar 3 at 120 (-1%); the buy's
        // fee (10 bps) is paid in BTC, so 0.999 is left to sell.
        assert_eq!(fills, ["bar 1: buy 1 @ 101", "bar 3: sell 0.999 @ 118.8"]);
        let fees: Vec<(Decimal, String)> = run.fills().into_iter().map(|f| (f.fee, f.fee_asset)).collect();
        assert_eq!(fees, [(d("0.001"), "ETH".to_string()), (d("0.1186812"), "USDT".to_string())]);
        assert_eq!(run.position(), Decimal::ZERO);
        assert!(run.risk_rejections().is_empty());
    }

    /// The harness's bars: `closes` opens each bar at the previous close.
    #[test]
    fn closes_open_at_the_previous_close() {
        let h = Harness::new("BTCUSDT").closes(&["10", "12", "9"]);
        let ohlc: Vec<[Decimal; 4]> = h.bars().iter().map(|b| [b.open, b.high, b.low, b.close]).collect();
        assert_eq!(
            ohlc,
            [
                [d("10"), d("10"), d("10"), d("10")],
                [d("10"), d("12"), d("10"), d("12")],
                [d("12"), d("12"), d("9"), d("9")]
            ]
        );
        assert_eq!(h.bars()[1].open_time - h.bars()[0].open_time, HOUR_MS);
    }

    /// A kind built through the registry has its declared ranges checked
    /// first, then trades as configured.
    #[test]
    fn kinds_run_through_the_registry() {
        let registry = StrategyRegistry::builtin();
        let h = Harness::new("BTCUSDT").closes(&["100", "99", "98", "101", "102"]);
        let err = h.run_kind(&registry, "sma_cross", "fast = 0, slow = 2, qty = \"1\"").err().map(|e| e.key);
        assert_eq!(err.as_deref(), Some("strategy[0].params.fast"));
        let err = h.run_kind(&registry, "sma_cross", "fast = ").err().map(|e| e.reason).unwrap_or_default();
        assert!(err.contains("is not a TOML table"), "{err}");
        let run = h.run_kind(&registry, "sma_cross", "fast = 1, slow = 2, qty = \"1\"").unwrap();
        // The close of 101 lifts the 1-bar mean over the 2-bar one (99.5).
        let fills: Vec<String> = run.fills().iter().map(ToString::to_string).collect();
        assert_eq!(fills, ["bar 4: buy 1 @ 101"]);
    }

    /// Exits given to the harness are kept for the strategy's position.
    #[test]
    fn exits_are_kept_for_the_position() {
        let run = Harness::new("BTCUSDT")
            .closes(&["100", "101"])
            .bar("101", "101", "90", "95")
            .exits(r#"{ stop_loss = "5%" }"#)
            .run(crate::backtest::sim::test_bars::BuyOnce(false));
        let fills: Vec<String> = run.fills().iter().map(ToString::to_string).collect();
        assert_eq!(fills, ["bar 1: buy 1 @ 100", "bar 2: sell 1 @ 95"]);
        assert_eq!(run.outcome().exits.get("stop_loss"), Some(&1));
    }
}
