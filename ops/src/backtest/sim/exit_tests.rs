//! Exits in the backtest on crafted bars: each kind fills at the documented
//! price (a gap through a level at the open, a bar reaching both the stop
//! and the target by the intrabar rule, the trailing best along the path).

use keel_core::exits::ExitSpec;
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::sim::FeeSchedule;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, StrategyId, Symbol};

use super::{Backtest, Outcome, SimConfig, StrategySlot, Timeline};

use super::test_bars::{bars, btc_venue, d, BuyOnce, H};

fn run(exits: Option<&str>, ohlc: &[(&str, &str, &str, &str)]) -> Outcome {
    let exits = exits.map(|text| {
        #[derive(serde::Deserialize)]
        struct H {
            exits: ExitSpec,
        }
        let mut h: H = toml::from_str(&format!("exits = {text}")).unwrap();
        h.exits.validate("exits").unwrap();
        h.exits
    });
    let timeline = Timeline::new(vec![(Symbol::new("BTCUSDT"), bars(ohlc))]);
    let config = SimConfig {
        fees: FeeSchedule::new(Decimal::ZERO, Decimal::from(10), Default::default()),
        slippage_bps: Decimal::from(5),
        ..btc_venue()
    };
    let slot = StrategySlot { id: StrategyId::new("b"), strategy: Box::new(BuyOnce(false)), exits };
    Backtest::new(config, timeline.symbols(), vec![slot]).run(&timeline, &[], |_| {})
}

/// The sells: (reason count key, hour filled, price).
fn sells(outcome: &Outcome) -> Vec<(i64, Decimal)> {
    let mut out = Vec::new();
    outcome.fills.for_each(|f| {
        if f.side == Side::Sell {
            out.push((f.ts_ms / H, f.price));
        }
    });
    out
}

/// A bar as (open, high, low, close).
type Ohlc = (&'static str, &'static str, &'static str, &'static str);

/// A case: name, exits, bars, (hour the exit fills, its price).
type Case = (&'static str, &'static str, Vec<Ohlc>, (i64, &'static str));

const FLAT: Ohlc = ("100", "100", "100", "100");

#[test]
fn each_exit_fills_at_its_documented_price() {
    // The entry fills at hour 1's open: 100 plus 5 bps slippage = 100.05.
    let cases: [Case; 12] = [
        ("stop", r#"{ stop_loss = "3%" }"#, vec![FLAT, FLAT, ("100", "100.5", "96", "97")], (2, "97.04")),
        ("gap through the stop", r#"{ stop_loss = "3%" }"#, vec![FLAT, FLAT, ("95", "96", "94", "95")], (2, "95")),
        ("target", r#"{ take_profit = "6%" }"#, vec![FLAT, FLAT, ("104", "107", "103", "106")], (2, "106.05")),
        (
            "gap over the target",
            r#"{ take_profit = "6%" }"#,
            vec![FLAT, FLAT, ("110", "111", "109", "110")],
            (2, "110"),
        ),
        // High nearer the open (4.5 < 6): open → high → low: the target first.
        (
            "both, high first",
            r#"{ stop_loss = "3%", take_profit = "6%" }"#,
            vec![FLAT, FLAT, ("102", "106.5", "96", "100")],
            (2, "106.05"),
        ),
        // Low nearer the open (4.5 < 5.5): open → low → high: the stop first.
        (
            "both, low first",
            r#"{ stop_loss = "3%", take_profit = "6%" }"#,
            vec![FLAT, FLAT, ("101", "106.5", "96.5", "100")],
            (2, "97.04"),
        ),
        // Armed at 105 (≥ 102.05), best 105, level 103.95; the next bar falls through it.
        (
            "trailing over two bars",
            r#"{ trailing_stop = { activate = "2%", distance = "1%" } }"#,
            vec![FLAT, FLAT, ("100", "105", "100", "104"), ("104", "104.5", "103", "103.5")],
            (3, "103.95"),
        ),
        // One bar: open → low → high arms it at 105 → the close at 100 falls through 103.95.
        (
            "trailing along one bar's path",
            r#"{ trailing_stop = { activate = "2%", distance = "1%" } }"#,
            vec![FLAT, FLAT, ("100", "105", "99.5", "100")],
            (2, "103.95"),
        ),
        // Held 1h at hour 2: 5% (105.05) not reached; held 2h at hour 3: 1% = 101.05.
        (
            "roi",
            r#"{ roi = [["0m", "5%"], ["2h", "1%"]] }"#,
            vec![FLAT, FLAT, ("100", "102", "99", "101"), ("100.5", "101.5", "100", "101")],
            (3, "101.05"),
        ),
        (
            "roi gapped",
            r#"{ roi = [["0m", "5%"], ["2h", "1%"]] }"#,
            vec![FLAT, FLAT, ("100", "102", "99", "101"), ("102", "103", "101.5", "102")],
            (3, "102"),
        ),
        // Entered at 1h: the deadline is 3h; exits at the open of the bar opening then.
        ("max hold", r#"{ max_hold = "2h" }"#, vec![FLAT, FLAT, FLAT, ("98", "99", "97", "98")], (3, "98")),
        // A stop from the entry bar on: hour 1 itself reaches it.
        ("stop in the entry bar", r#"{ stop_loss = "3%" }"#, vec![FLAT, ("100", "100", "90", "95")], (1, "97.04")),
    ];
    for (name, spec, ohlc, (hour, price)) in cases {
        let outcome = run(Some(spec), &ohlc);
        assert_eq!(sells(&outcome), [(hour, d(price))], "{name}");
        assert_eq!(outcome.exits.values().sum::<u64>(), 1, "{name}: {:?}", outcome.exits);
    }
}

#[test]
fn exits_are_reported_by_reason_and_pay_the_taker_fee() {
    let cases = [
        (r#"{ stop_loss = "3%" }"#, vec![FLAT, FLAT, ("100", "100.5", "96", "97")], "stop_loss"),
        (r#"{ take_profit = "6%" }"#, vec![FLAT, FLAT, ("104", "107", "103", "106")], "take_profit"),
        (
            r#"{ trailing_stop = { activate = "2%", distance = "1%" } }"#,
            vec![FLAT, FLAT, ("100", "105", "99.5", "100")],
            "trailing_stop",
        ),
        (r#"{ roi = [["0m", "1%"]] }"#, vec![FLAT, FLAT, ("100", "102", "99", "101")], "roi"),
        (r#"{ max_hold = "1h" }"#, vec![FLAT, FLAT, FLAT], "max_hold"),
    ];
    for (spec, ohlc, reason) in cases {
        let outcome = run(Some(spec), &ohlc);
        assert_eq!(outcome.exits.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), [(reason, 1)]);
        let mut fees = Vec::new();
        outcome.fills.for_each(|f| fees.push((f.side, f.fee, f.price * f.qty)));
        let (_, fee, notional) = fees[1];
        assert_eq!(fee, (notional * d("0.001")).round_dp(8), "{reason}: taker fee");
        let exit_order = &outcome.orders[1].intent;
        assert!(exit_order.reduce_only && exit_order.exit.is_some(), "{exit_order:?}");
    }
}

#[test]
fn without_exits_nothing_is_sold() {
    let outcome = run(None, &[FLAT, FLAT, ("95", "96", "50", "60")]);
    assert_eq!(sells(&outcome), []);
    assert!(outcome.exits.is_empty());
}

/// Buys at the first close and sells everything at the third.
struct BuyThenSell(usize);

impl Strategy for BuyThenSell {
    fn kind(&self) -> &'static str {
        "buy_then_sell"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        self.0 += 1;
        match self.0 {
            1 => ctx.market(&bar.symbol, Side::Buy, Decimal::ONE),
            3 => {
                let held = ctx.position(&bar.symbol);
                ctx.market(&bar.symbol, Side::Sell, held);
            }
            _ => {}
        }
    }
}

#[test]
fn a_strategy_selling_a_position_with_exits_counts_as_signal() {
    let spec: ExitSpec =
        toml::from_str::<toml::Table>(r#"take_profit = "50%""#).map(|t| t.try_into().unwrap()).unwrap();
    let timeline = Timeline::new(vec![(Symbol::new("BTCUSDT"), bars(&[FLAT, FLAT, FLAT, FLAT, FLAT]))]);
    let config = btc_venue();
    let slot = StrategySlot { id: StrategyId::new("b"), strategy: Box::new(BuyThenSell(0)), exits: Some(spec) };
    let outcome = Backtest::new(config, timeline.symbols(), vec![slot]).run(&timeline, &[], |_| {});
    assert_eq!(sells(&outcome), [(3, d("100"))]);
    assert_eq!(outcome.exits.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), [("signal", 1)]);
}
