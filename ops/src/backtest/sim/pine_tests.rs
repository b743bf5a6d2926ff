//! Pine strategies in the backtest on crafted bars: fills at the next bar's open, at the same
//! bar's close with `process_orders_on_close`, the intrabar rule for an exit's stop and limit in
//! one bar, a limit entry filled exactly on the touch, pyramiding, and `percent_of_equity` sizing
//! with commission (the exact quantity).

use std::sync::Arc;

use keel_core::balance::Balance;
use keel_core::order::Side;
use keel_core::sim::FeeSchedule;
use keel_core::{Decimal, StrategyId, Symbol};
use strategies::pine_host::PineStrategy;

use super::{Backtest, Outcome, SimConfig, StrategySlot, Timeline};

use super::test_bars::{bars, btc_venue, d, H};

/// Runs `body` under `strategy("t"<decl>)` on the bars: tick 0.01, lot step 0.001, no slippage,
/// 0.1% taker fee (a buy's paid in BTC, so a position of 1 bought holds 0.999), 100 000 USDT.
fn run(decl: &str, body: &str, ohlc: &[(&str, &str, &str, &str)]) -> Outcome {
    run_all(&[("p", decl, body)], ohlc)
}

/// [`run`] with several Pine strategies: (id, declaration arguments, body).
fn run_all(scripts: &[(&str, &str, &str)], ohlc: &[(&str, &str, &str, &str)]) -> Outcome {
    run_foreseeing(scripts, ohlc, false)
}

/// [`run_all`], with the strategies handed their bars first when `foresee` ([`Backtest::foreseeing`]).
fn run_foreseeing(scripts: &[(&str, &str, &str)], ohlc: &[(&str, &str, &str, &str)], foresee: bool) -> Outcome {
    let slots = scripts
        .iter()
        .map(|(id, decl, body)| {
            let src = format!("//@version=5\nstrategy(\"t\"{decl})\n{body}");
            let program = pine::compile(&src, Some("t.pine"), &[]).unwrap_or_else(|e| panic!("{e}")).program;
            let strategy =
                PineStrategy::new(Symbol::new("BTCUSDT"), Arc::new(program)).unwrap_or_else(|e| panic!("{e}"));
            StrategySlot { id: StrategyId::new(id), strategy: Box::new(strategy), exits: None }
        })
        .collect();
    let timeline = Timeline::new(vec![(Symbol::new("BTCUSDT"), bars(ohlc))]);
    let config = SimConfig {
        balances: vec![Balance { asset: "USDT".into(), free: Decimal::from(100_000), locked: Decimal::ZERO }],
        fees: FeeSchedule::new(Decimal::ZERO, Decimal::from(10), Default::default()),
        ..btc_venue()
    };
    let backtest = Backtest::new(config, timeline.symbols(), slots);
    let backtest = if foresee { backtest.foreseeing() } else { backtest };
    let outcome = backtest.run(&timeline, &[], |_| {});
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    outcome
}

/// The fills: (side, time stamped, price, quantity).
fn fills(outcome: &Outcome) -> Vec<(Side, i64, Decimal, Decimal)> {
    let mut out = Vec::new();
    outcome.fills.for_each(|f| out.push((f.side, f.ts_ms, f.price, f.qty)));
    out
}

type Ohlc = (&'static str, &'static str, &'static str, &'static str);

/// Bar `h` of a rising series: open 100 + h, high +2, low −2, close +1.
fn rising(n: usize) -> Vec<Ohlc> {
    let s = |x: i64| -> &'static str { Box::leak(x.to_string().into_boxed_str()) };
    (0..n as i64).map(|h| (s(100 + h), s(102 + h), s(98 + h), s(101 + h))).collect()
}

/// `n` bars of a wave around 1000 (about 125 bars a period), so an SMA cross trades every few
/// dozen bars.
fn wave(n: usize) -> Vec<Ohlc> {
    let s = |x: i64| -> &'static str { Box::leak(x.to_string().into_boxed_str()) };
    (0..n)
        .map(|h| {
            let c = 1000 + (50.0 * (h as f64 / 20.0).sin()) as i64 + (h % 7) as i64;
            (s(c - 1), s(c + 3), s(c - 3), s(c))
        })
        .collect()
}

/// The same backtest with the scripts run ahead on threads of their own (over several of their
/// batches), the bars they decide nothing on skipped: the same orders, fills and equity, to the
/// last digit. One script reads strategy state (it runs beside the broker), one does not, one
/// fills at the close, and one sets exits with its entries (the bars its position is open on
/// are not skipped).
#[test]
fn scripts_run_ahead_trade_exactly_as_scripts_run_in_line() {
    let cross = "fast = ta.sma(close, 5)\nslow = ta.sma(close, 13)\nif ta.crossover(fast, slow)\n    strategy.entry(\"L\", strategy.long, qty = 1)\nif ta.crossunder(fast, slow)\n    strategy.close(\"L\")\n";
    let stateful = "if strategy.position_size == 0 and close > ta.ema(close, 9)\n    strategy.entry(\"L\", strategy.long, qty = 1)\nif strategy.position_size > 0 and close < ta.ema(close, 9)\n    strategy.close(\"L\")\n";
    let exits = "fast = ta.sma(close, 5)\nslow = ta.sma(close, 13)\nif ta.crossover(fast, slow)\n    strategy.entry(\"L\", strategy.long, qty = 1)\n    strategy.exit(\"X\", \"L\", profit = 1500, loss = 1000)\n";
    let scripts = [
        ("cross", "", cross),
        ("stateful", "", stateful),
        ("on_close", ", process_orders_on_close = true", cross),
        ("exits", "", exits),
    ];
    let ohlc = wave(10_000);
    let inline = run_foreseeing(&scripts, &ohlc, false);
    let ahead = run_foreseeing(&scripts, &ohlc, true);
    assert!(inline.fills.len() > 300, "the wave trades: {} fills", inline.fills.len());
    let orders = |o: &Outcome| o.orders.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>();
    assert_eq!(orders(&ahead), orders(&inline));
    assert_eq!(fills(&ahead), fills(&inline));
    assert_eq!(ahead.equity.values(), inline.equity.values());
    assert_eq!(ahead.final_equity, inline.final_equity);
}

const ENTER_1_EXIT_3: &str =
    "if bar_index == 1\n    strategy.entry(\"L\", strategy.long, qty = 2)\nif bar_index == 3\n    strategy.close(\"L\")\n";

#[test]
fn orders_decided_at_a_close_fill_at_the_next_open() {
    let out = run("", ENTER_1_EXIT_3, &rising(6));
    assert_eq!(
        fills(&out),
        [(Side::Buy, 2 * H, d("102"), d("2")), (Side::Sell, 4 * H, d("104"), d("1.998"))],
        "bar 2's and bar 4's opens (the buy's 0.1% commission is paid in BTC: the close sells what is held)"
    );
}

#[test]
fn process_orders_on_close_fills_at_that_bars_close() {
    let out = run(", process_orders_on_close = true", ENTER_1_EXIT_3, &rising(6));
    assert_eq!(
        fills(&out),
        [(Side::Buy, 2 * H - 1, d("102"), d("2")), (Side::Sell, 4 * H - 1, d("104"), d("1.998"))],
        "bar 1's and bar 3's closes, stamped with their close times"
    );
    // The script saw the position on the bar after: one entry only (it never re-enters).
    let body = "if strategy.position_size == 0\n    strategy.entry(\"L\", strategy.long, qty = 1)\n";
    let out = run(", process_orders_on_close = true", body, &rising(4));
    assert_eq!(fills(&out), [(Side::Buy, H - 1, d("101"), d("1"))]);
}

#[test]
fn an_exits_stop_and_limit_in_one_bar_follow_the_intrabar_rule() {
    // Entry at bar 1's open (100); the exit rests from then on: stop 97, limit 104.
    let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long, qty = 1)\n    strategy.exit(\"X\", \"L\", stop = 97, limit = 104)\n";
    let flat = ("100", "100", "100", "100");
    let cases: [(&str, Ohlc, &str); 3] = [
        // The high is nearer the open (3 < 4): open → high → low, the limit first.
        ("high first", ("101", "104", "97", "99"), "104"),
        // The low is nearer the open (2 < 5): open → low → high, the stop first.
        ("low first", ("99", "104", "97", "103"), "97"),
        // A gap below the stop fills at the open, not at the level.
        ("gap", ("95", "96", "94", "95"), "95"),
    ];
    for (name, bar, price) in cases {
        let out = run("", body, &[flat, flat, bar]);
        assert_eq!(
            fills(&out),
            [(Side::Buy, H, d("100"), d("1")), (Side::Sell, 2 * H, d(price), d("0.999"))],
            "{name}"
        );
    }
}

#[test]
fn exits_in_ticks_count_from_the_entry_price_and_the_trail_follows_the_best() {
    let flat = ("100", "100", "100", "100");
    // loss = 250 ticks of 0.01 below the entry at 100: the stop is 97.50.
    let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long, qty = 1)\n    strategy.exit(\"X\", \"L\", loss = 250, profit = 1000)\n";
    let out = run("", body, &[flat, flat, ("99", "99.5", "97", "98")]);
    assert_eq!(fills(&out)[1], (Side::Sell, 2 * H, d("97.5"), d("0.999")));
    // trail_points = 200 arms the trail at 102; trail_offset = 150 trails 1.50 below the best.
    let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long, qty = 1)\n    strategy.exit(\"T\", \"L\", trail_points = 200, trail_offset = 150)\n";
    let out = run("", body, &[flat, flat, ("100", "101", "99.5", "100.5"), ("100.5", "105", "100.4", "101")]);
    // Bar 3: low first (0.1 < 4.5), then up to 105 arms the trail (best 105), then down to 103.50.
    assert_eq!(fills(&out)[1], (Side::Sell, 3 * H, d("103.5"), d("0.999")));
}

#[test]
fn a_limit_entry_fills_exactly_on_the_touch() {
    let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long, qty = 1, limit = 98.004)\n";
    let out = run("", body, &[("100", "100", "100", "100"), ("100", "101", "98.01", "99"), ("99", "99", "98", "98.5")]);
    // 98.004 is rounded to the tick (98.00); bar 1's low stops a tick short, bar 2's touches it.
    assert_eq!(fills(&out), [(Side::Buy, 2 * H, d("98.00"), d("1"))]);
}

#[test]
fn pyramiding_caps_the_open_entries() {
    let body = "strategy.entry(\"L\", strategy.long, qty = 1)\n";
    for (decl, buys) in [("", 1), (", pyramiding = 1", 1), (", pyramiding = 3", 3)] {
        let out = run(decl, body, &rising(8));
        let n = fills(&out).iter().filter(|f| f.0 == Side::Buy).count();
        assert_eq!(n, buys, "{decl}");
    }
    // Two ids on one bar with pyramiding 2: both fill at the next open, and no more after.
    let body = "strategy.entry(\"A\", strategy.long, qty = 1)\nstrategy.entry(\"B\", strategy.long, qty = 2)\n";
    let out = run(", pyramiding = 2", body, &rising(5));
    assert_eq!(fills(&out), [(Side::Buy, H, d("101"), d("1")), (Side::Buy, H, d("101"), d("2"))]);
}

#[test]
fn percent_of_equity_sizes_with_the_commission_rounded_down_to_the_lot_step() {
    let decl = ", initial_capital = 10000, default_qty_type = strategy.percent_of_equity, default_qty_value = 50, commission_type = strategy.commission.percent, commission_value = 0.1";
    let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long)\n";
    let out = run(decl, body, &[("123", "124", "122", "123.45"), ("123.5", "124", "123", "123.9")]);
    // 10 000 × 50% / (123.45 × 1.001) = 40.4618... → 40.461 at the 0.001 step.
    let exact = d("5000") / (d("123.45") * d("1.001"));
    assert!(exact > d("40.461") && exact < d("40.462"), "{exact}");
    assert_eq!(fills(&out), [(Side::Buy, H, d("123.5"), d("40.461"))]);
}

/// A limit entry is sized at its own price, rounded down to the tick (a buy limit's rounding),
/// not at the signal bar's close (TradingView's broker as PyneCore measured it).
#[test]
fn a_limit_entry_is_sized_at_its_price_rounded_toward_the_safe_side() {
    let decl = ", initial_capital = 10000, default_qty_type = strategy.percent_of_equity, default_qty_value = 50, commission_type = strategy.commission.percent, commission_value = 0.1";
    let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long, limit = 120.509)\n";
    let out = run(decl, body, &[("123", "124", "122", "123.45"), ("123", "123", "120.5", "121")]);
    // 120.509 → 120.50 (down); 10 000 × 50% / (120.50 × 1.001) = 41.4523... → 41.452.
    let exact = d("5000") / (d("120.50") * d("1.001"));
    assert!(exact > d("41.452") && exact < d("41.453"), "{exact}");
    assert_eq!(fills(&out), [(Side::Buy, H, d("120.50"), d("41.452"))]);
}

#[test]
fn the_script_reads_its_own_accounting_commissions_included() {
    // Buy 1 at 100 (0.1% paid in BTC: 0.999 held, 0.10 USDT of commission), sell the 0.999 at 110
    // (0.10989 USDT): net profit 9.99 − 0.10989 − 0.10 = 9.78011. The script then enters at 50% of
    // equity 10 009.78011 at the close 110: 45.4990005 → 45.499 (without the commissions it would
    // be 45.500, with the sell's only 45.494).
    let decl = ", initial_capital = 10000, default_qty_type = strategy.percent_of_equity, default_qty_value = 50";
    let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long, qty = 1)\nif bar_index == 1\n    strategy.close(\"L\")\nif strategy.closedtrades == 1 and strategy.opentrades == 0 and strategy.position_size == 0 and strategy.netprofit > 9.78010 and strategy.netprofit < 9.78012 and math.abs(strategy.equity - 10009.78011) < 1e-6\n    strategy.entry(\"L2\", strategy.long)\n";
    let flat = |p: &'static str| (p, p, p, p);
    let out = run(decl, body, &[flat("100"), flat("100"), flat("110"), flat("110")]);
    assert_eq!(
        fills(&out),
        [
            (Side::Buy, H, d("100"), d("1")),
            (Side::Sell, 2 * H, d("110"), d("0.999")),
            (Side::Buy, 3 * H, d("110"), d("45.499")),
        ]
    );
}

#[test]
fn an_entry_of_the_same_id_replaces_the_pending_one() {
    // A limit at 95, replaced at 90 on the next bar, then at 85: only the last one rests when bar 3
    // falls to 80 (a replaced order's cancel report must not be taken for its successor's).
    let body = "if bar_index <= 2\n    strategy.entry(\"L\", strategy.long, qty = 1, limit = 95 - 5 * bar_index)\n";
    let quiet = ("100", "100", "99", "100");
    let out = run("", body, &[quiet, quiet, quiet, ("100", "100", "80", "82")]);
    assert_eq!(fills(&out), [(Side::Buy, 3 * H, d("85"), d("1"))]);
    let limits: Vec<Decimal> = out
        .orders
        .iter()
        .filter_map(|o| match o.intent.order_type {
            keel_core::order::OrderType::Limit { price } => Some(price),
            _ => None,
        })
        .collect();
    assert_eq!(limits, [d("95"), d("90"), d("85")]);
}

#[test]
fn cancel_withdraws_a_pending_entry_and_close_sells_that_entry_first() {
    // A limit at 90 canceled on the next bar never fills, though bar 3 falls through it.
    let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long, qty = 1, limit = 90)\nif bar_index == 1\n    strategy.cancel(\"L\")\n";
    let quiet = ("100", "100", "99", "100");
    let out = run("", body, &[quiet, quiet, quiet, ("100", "100", "80", "82")]);
    assert!(fills(&out).is_empty(), "{:?}", fills(&out));
    // Two entries (pyramiding 2), then close("B"): only B's 2 (1.998 held) are sold.
    let body = "if bar_index == 0\n    strategy.entry(\"A\", strategy.long, qty = 1)\n    strategy.entry(\"B\", strategy.long, qty = 2)\nif bar_index == 2\n    strategy.close(\"B\")\nif bar_index == 4 and strategy.opentrades == 1 and strategy.closedtrades == 1\n    strategy.close_all()\n";
    let out = run(", pyramiding = 2", body, &rising(7));
    let sells: Vec<_> = fills(&out).into_iter().filter(|f| f.0 == Side::Sell).map(|f| (f.1, f.3)).collect();
    assert_eq!(sells, [(3 * H, d("1.998")), (5 * H, d("0.999"))]);
}

#[test]
fn alerts_become_setup_alerts_of_the_strategy() {
    let body =
        "if bar_index == 1\n    alert(\"crossed\")\nalertcondition(bar_index == 2, \"Third bar\", \"the third bar\")\n";
    let out = run("", body, &rising(4));
    let alerts: Vec<(&str, &str, i64)> =
        out.alerts.iter().map(|a| (a.condition.as_str(), a.message.as_str(), a.ts_ms)).collect();
    assert_eq!(alerts, [("alert", "crossed", 2 * H - 1), ("Third bar", "the third bar", 3 * H - 1)]);
    assert!(out.alerts.iter().all(|a| a.strategy_id.as_str() == "p" && a.symbol.as_str() == "BTCUSDT"));
}

#[test]
fn closing_every_entry_sells_the_dust_earlier_commissions_left() {
    // 1.5 bought holds 1.4985 (0.1% in BTC): the close sells 1.498 (the lot step is 0.001) and
    // 0.0005 stays. The second round trip holds 1.499 in all: its close sells all of it.
    let body = "if bar_index == 0 or bar_index == 2\n    strategy.entry(\"L\", strategy.long, qty = 1.5)\nif bar_index == 1 or bar_index == 3\n    strategy.close(\"L\")\n";
    let out = run("", body, &rising(5));
    let sells: Vec<Decimal> = fills(&out).into_iter().filter(|f| f.0 == Side::Sell).map(|f| f.3).collect();
    assert_eq!(sells, [d("1.498"), d("1.499")]);
}

#[test]
fn a_stop_entry_buys_when_the_price_rises_through_it() {
    let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long, qty = 1, stop = 104.996)\n";
    let quiet = ("100", "101", "99", "100");
    let out = run("", body, &[quiet, quiet, ("101", "106", "100", "105.5"), quiet]);
    assert_eq!(fills(&out), [(Side::Buy, 2 * H, d("105"), d("1"))], "at the stop, rounded to the tick");
    let out = run("", body, &[quiet, quiet, ("107", "108", "106", "107"), quiet]);
    assert_eq!(fills(&out), [(Side::Buy, 2 * H, d("107"), d("1"))], "a gap over the stop fills at the open");
}

#[test]
fn only_the_strategies_that_fill_on_close_do_so() {
    // Two strategies on one symbol decide the same entry on bar 1: the one with
    // process_orders_on_close fills at that close, the other at bar 2's open.
    let body = "if bar_index == 1\n    strategy.entry(\"L\", strategy.long, qty = 1)\n";
    let scripts = [("next", "", body), ("close", ", process_orders_on_close = true", body)];
    let out = run_all(&scripts, &rising(4));
    let mut got = Vec::new();
    out.fills.for_each(|f| got.push((f.strategy_id.as_str().to_string(), f.ts_ms, f.price)));
    assert_eq!(got, [("close".to_string(), 2 * H - 1, d("102")), ("next".to_string(), 2 * H, d("102"))]);
}
