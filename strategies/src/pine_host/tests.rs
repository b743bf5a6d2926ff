//! Construction: what a spot host refuses, named at `file:line:col`.

use std::sync::Arc;

use super::*;

fn program(body: &str, decl: &str) -> Arc<Program> {
    let src = format!("//@version=5\nstrategy(\"t\"{decl})\n{body}");
    Arc::new(pine::compile(&src, Some("pine/t.pine"), &[]).unwrap_or_else(|e| panic!("{e}")).program)
}

fn refusal(body: &str, decl: &str) -> String {
    match PineStrategy::new(Symbol::new("BTCUSDT"), program(body, decl)) {
        Ok(_) => panic!("accepted: {body}"),
        Err(e) => {
            assert_eq!(e.key, "script");
            e.reason
        }
    }
}

#[test]
fn what_spot_cannot_do_is_refused_at_its_position() {
    let cases = [
        (
            "if close > open\n    strategy.entry(\"S\", strategy.short)\n",
            "",
            "pine/t.pine:4:5: strategy.entry with a direction other than strategy.long: Keel trades spot, which cannot sell short",
        ),
        (
            "strategy.entry(\"L\", strategy.long)\nstrategy.exit(\"X\", \"L\", stop = close * 0.9, qty_percent = 50)\n",
            "",
            "pine/t.pine:4:1: strategy.exit(..., qty_percent = ...): Keel's exits close the whole position",
        ),
        ("strategy.close(\"L\", qty = 1)\n", "", "pine/t.pine:3:1: strategy.close(..., qty = ...)"),
        (
            "strategy.entry(\"L\", strategy.long)\nstrategy.exit(\"X\", \"L\", loss = 100)\n",
            ", pyramiding = 3",
            "pine/t.pine:4:1: strategy.exit(..., loss = ...) with pyramiding = 3",
        ),
        ("strategy.entry(\"L\", strategy.long)\n", ", initial_capital = 1e400", "is not a number Keel can hold exactly"),
    ];
    for (body, decl, want) in cases {
        let got = refusal(body, decl);
        assert!(got.starts_with(want) || got.contains(want), "{body}: {got}");
    }
}

#[test]
fn long_scripts_with_whole_position_exits_are_accepted() {
    let body = "strategy.entry(\"L\", strategy.long, limit = close - 1)\nstrategy.exit(\"X\", \"L\", loss = 100, profit = 200, trail_points = 50, trail_offset = 10)\nstrategy.close_all()\n";
    let s = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, ", process_orders_on_close = true")).unwrap();
    assert_eq!(s.kind(), "pine");
    assert!(s.orders_on_close());
    let s = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, "")).unwrap();
    assert!(!s.orders_on_close());
}

mod live {
    //! The live path (a runner outside the backtest): an exit issued before its entry filled
    //! rests at the venue as one OCO leg once the entry fills, its levels in ticks from the fill.

    use super::*;
    use keel_core::exits::ExitLeg;
    use keel_core::instrument::Instrument;
    use keel_core::market::MarketEvent;
    use keel_core::order::{OrderStatus, OrderType, Side};
    use keel_core::strategy::StrategyRunner;
    use keel_core::Decimal;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn bar(t: i64, close: &str) -> Bar {
        let p = d(close);
        Bar {
            symbol: "BTCUSDT".into(),
            open_time: t,
            close_time: t + 59_999,
            open: p,
            high: p,
            low: p,
            close: p,
            volume: p,
        }
    }

    /// `request.security` learns the chart's interval from the first bar (close time inclusive):
    /// the 2-minute close is confirmed on the second one-minute bar, and the entry follows.
    #[test]
    fn a_higher_timeframe_is_built_on_the_interval_of_the_first_bar() {
        let body = "if request.security(syminfo.tickerid, \"2\", close) > 0\n    strategy.entry(\"L\", strategy.long, qty = 1)\n";
        let strategy = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, "")).unwrap();
        let btc = Instrument::with_steps("BTCUSDT".into(), "BTC".into(), "USDT".into(), d("0.01"), d("0.001"));
        let mut runner = StrategyRunner::new("p".into(), Box::new(strategy)).with_instruments(&[btc]);
        runner.on_market(&MarketEvent::Bar(bar(0, "100")), 60_000).unwrap();
        assert_eq!(runner.drain_intents().count(), 0, "the 2-minute bar is not complete after the first minute");
        runner.on_market(&MarketEvent::Bar(bar(60_000, "101")), 120_000).unwrap();
        let intents: Vec<_> = runner.drain_intents().collect();
        assert_eq!(intents.len(), 1, "{intents:?}");
        assert_eq!((intents[0].side, intents[0].qty), (Side::Buy, d("1")));
    }

    #[test]
    fn an_exit_issued_before_the_fill_rests_at_the_venue_once_the_entry_fills() {
        let body = "if bar_index == 0\n    strategy.entry(\"L\", strategy.long, qty = 1)\n    strategy.exit(\"X\", \"L\", loss = 300, profit = 500)\n";
        let strategy = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, "")).unwrap();
        let btc = Instrument::with_steps("BTCUSDT".into(), "BTC".into(), "USDT".into(), d("0.01"), d("0.001"));
        let mut runner = StrategyRunner::new("p".into(), Box::new(strategy)).with_instruments(&[btc]);
        runner.on_market(&MarketEvent::Bar(bar(0, "100")), 60_000).unwrap();
        let intents: Vec<_> = runner.drain_intents().collect();
        assert_eq!(intents.len(), 1, "the entry only: the exit waits for the position");
        let entry = &intents[0];
        assert_eq!((entry.side, entry.order_type, entry.qty), (Side::Buy, OrderType::Market, d("1")));
        let update = OrderUpdate {
            client_order_id: Some("k1".into()),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            status: OrderStatus::Accepted,
            filled_qty: Decimal::ZERO,
            reason: None,
            tag: entry.tag,
            exit: None,
        };
        runner.on_order_update(&update, 60_001).unwrap();
        let fill = keel_core::fill::Fill {
            trade_id: 1u64.into(),
            client_order_id: "k1".into(),
            strategy_id: "p".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            price: d("100.5"),
            qty: d("1"),
            fee: Decimal::ZERO,
            fee_asset: "USDT".into(),
            is_maker: false,
            ts_ms: 60_002,
            tag: entry.tag,
        };
        runner.on_fill(&fill, 60_002).unwrap();
        let legs: Vec<_> = runner.drain_intents().collect();
        assert_eq!(legs.len(), 1, "{legs:?}");
        let leg = &legs[0];
        assert_eq!((leg.side, leg.qty, leg.exit), (Side::Sell, d("1"), Some(ExitLeg::Oco)));
        // 300 and 500 ticks of 0.01 from the fill at 100.50.
        assert_eq!(leg.order_type, OrderType::Oco { take_profit: d("105.50"), stop: d("97.50"), stop_limit: None });
    }

    /// After a restart its tagged entry still open at the venue is its pending entry again: the
    /// same id at another price cancels it (no second order beside it), the same order is left be.
    #[test]
    fn a_restart_adopts_the_open_entry_order_of_its_id() {
        let body = "strategy.entry(\"L\", strategy.long, qty = 1, limit = bar_index == 0 ? 90 : 95)\n";
        let btc = Instrument::with_steps("BTCUSDT".into(), "BTC".into(), "USDT".into(), d("0.01"), d("0.001"));
        let first = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, "")).unwrap();
        let mut runner = StrategyRunner::new("p".into(), Box::new(first)).with_instruments(std::slice::from_ref(&btc));
        runner.on_market(&MarketEvent::Bar(bar(0, "100")), 60_000).unwrap();
        let sent: Vec<_> = runner.drain_intents().collect();
        assert_eq!(sent.len(), 1);
        let open = keel_core::order::Order::from_intent(&sent[0], "k7".into(), 60_001);
        // A new process: the script starts over at bar 0 (limit 90, the order's own), then 95.
        let again = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, "")).unwrap();
        let mut runner = StrategyRunner::new("p".into(), Box::new(again)).with_instruments(&[btc]);
        runner.adopt(std::slice::from_ref(&open), 120_000).unwrap();
        runner.on_market(&MarketEvent::Bar(bar(120_000, "100")), 180_000).unwrap();
        assert_eq!(runner.drain_intents().count(), 0, "its order is already out");
        runner.on_market(&MarketEvent::Bar(bar(180_000, "100")), 240_000).unwrap();
        assert_eq!(runner.drain_cancels().collect::<Vec<_>>(), ["k7"], "replaced: canceled first");
        let sent: Vec<_> = runner.drain_intents().collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].order_type, OrderType::Limit { price: d("95") });
    }
}

/// A live start preloads a higher timeframe's warm-up in chart bars: an hourly SMA of 3 on
/// 15-minute bars needs (3 + 1) × 4 of them beyond the chart's own, on 1-minute bars 60 per hour.
#[test]
fn the_preload_counts_a_higher_timeframe_in_chart_bars() {
    let body = "h = request.security(syminfo.tickerid, \"60\", ta.sma(close, 3))\nplot(h)\n";
    let s = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, "")).unwrap();
    let (m15, m1) = (s.warmup_bars_at(15 * 60_000), s.warmup_bars_at(60_000));
    assert_eq!(m15, s.program().warmup_bars_for(15 * 60_000));
    assert!(m15 >= 16 && m1 >= 4 * 60, "{m15} {m1}");
    assert!(s.warmup_bars_at(15 * 60_000) > s.warmup_bars(), "more than the chart's own warm-up");
}

mod ahead {
    //! A backtest's script run ahead on its own thread acts exactly as the strategy running it
    //! itself: the same intents and alerts bar by bar (over several of the thread's batches), also
    //! around bars not delivered while paused, and the same stop on the same bar.

    use super::*;
    use keel_core::instrument::Instrument;
    use keel_core::market::MarketEvent;
    use keel_core::strategy::StrategyRunner;
    use keel_core::Decimal;

    /// Bars in memory, as a backtest's columns would hand them over.
    struct Series(Vec<Bar>);

    impl BarSeries for Series {
        fn len(&self) -> usize {
            self.0.len()
        }

        fn open_time(&self, i: usize) -> i64 {
            self.0[i].open_time
        }

        fn bar(&self, i: usize, out: &mut Bar) {
            out.clone_from(&self.0[i]);
        }
    }

    /// `n` one-minute bars of a wave around 1000 (about 125 bars a period), so an SMA cross
    /// trades every few dozen bars.
    fn wave(n: usize) -> Vec<Bar> {
        (0..n)
            .map(|h| {
                let c = Decimal::from(1000) + Decimal::from((50.0 * (h as f64 / 20.0).sin()) as i64 + (h % 7) as i64);
                Bar {
                    symbol: "BTCUSDT".into(),
                    open_time: h as i64 * 60_000,
                    close_time: h as i64 * 60_000 + 59_999,
                    open: c - Decimal::ONE,
                    high: c + Decimal::from(3),
                    low: c - Decimal::from(3),
                    close: c,
                    volume: Decimal::from(5),
                }
            })
            .collect()
    }

    const CROSS: &str = "fast = ta.sma(close, 5)\nslow = ta.sma(close, 13)\nif ta.crossover(fast, slow)\n    strategy.entry(\"L\", strategy.long, qty = 1)\n    alert(\"up\")\nif ta.crossunder(fast, slow)\n    strategy.close(\"L\")\n    strategy.cancel(\"L\")\n";

    /// How the strategy meets the bars.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        /// It runs the script itself.
        Alone,
        /// It is handed all the bars first (the script runs ahead) and takes each.
        Ahead,
        /// As `Ahead`, and the bars up to the next pause are first offered to `skip_bars`, as a
        /// backtest's quiet runs do.
        Skipping,
    }

    /// Per bar delivered: the intents, cancels and alerts (as text), or the failure; bars in
    /// `paused` reach a paused runner. Also the number of bars skipped.
    fn decisions_in(body: &str, bars: &[Bar], paused: std::ops::Range<usize>, mode: Mode) -> (Vec<String>, usize) {
        let btc = Instrument::with_steps(
            "BTCUSDT".into(),
            "BTC".into(),
            "USDT".into(),
            "0.01".parse().unwrap(),
            "0.001".parse().unwrap(),
        );
        let mut strategy = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, "")).unwrap();
        if mode != Mode::Alone {
            strategy.foresee(&Symbol::new("BTCUSDT"), Arc::new(Series(bars.to_vec())));
            assert!(strategy.ahead.is_some(), "the script reads no strategy state: it runs ahead");
        }
        let mut runner = StrategyRunner::new("p".into(), Box::new(strategy)).with_instruments(&[btc]);
        let (mut out, mut skipped) = (Vec::new(), 0);
        let mut i = 0;
        while let Some(bar) = bars.get(i) {
            runner.set_paused(paused.contains(&i));
            if mode == Mode::Skipping {
                // As a backtest's quiet run: as many bars as are skipped, up to the next pause.
                let upto = if paused.start > i { paused.start } else { bars.len() };
                let quiet = runner.skip_bars(&bar.symbol, i, upto);
                // What `on_market` gives on a bar with nothing to do.
                out.extend((i..i + quiet).map(|k| format!("{k}: [] [] []")));
                skipped += quiet;
                i += quiet;
                if quiet > 0 {
                    continue;
                }
            }
            match runner.on_market(&MarketEvent::Bar(bar.clone()), bar.close_time) {
                Ok(_) => {
                    let intents: Vec<_> = runner.drain_intents().collect();
                    let cancels: Vec<_> = runner.drain_cancels().collect();
                    let alerts: Vec<_> = runner.drain_alerts().map(|a| format!("{a:?}")).collect();
                    out.push(format!("{i}: {intents:?} {cancels:?} {alerts:?}"));
                }
                Err(failure) => {
                    out.push(format!("{i}: {failure}"));
                    break;
                }
            }
            i += 1;
        }
        (out, skipped)
    }

    /// [`decisions_in`] of a strategy running the script itself, or (`foresee`) handed the bars
    /// first; without skipping.
    fn decisions(body: &str, bars: &[Bar], paused: std::ops::Range<usize>, foresee: bool) -> Vec<String> {
        decisions_in(body, bars, paused, if foresee { Mode::Ahead } else { Mode::Alone }).0
    }

    fn acted(decisions: &[String]) -> usize {
        decisions.iter().filter(|d| d.contains("OrderIntent")).count()
    }

    #[test]
    fn run_ahead_the_script_decides_the_same_on_every_bar() {
        let bars = wave(9_000);
        let alone = decisions(CROSS, &bars, 0..0, false);
        assert!(acted(&alone) > 50, "the wave trades: {}", acted(&alone));
        assert_eq!(decisions(CROSS, &bars, 0..0, true), alone);
    }

    #[test]
    fn bars_not_delivered_while_paused_end_the_thread_and_the_strategy_goes_on_alone_the_same() {
        let bars = wave(9_000);
        let alone = decisions(CROSS, &bars, 5_000..5_100, false);
        let after: Vec<_> = alone[5_100..].to_vec();
        assert!(acted(&after) > 10, "it trades after the pause");
        assert_eq!(decisions(CROSS, &bars, 5_000..5_100, true), alone);
    }

    #[test]
    fn a_script_that_stops_on_a_bar_stops_on_the_same_bar_with_the_same_message() {
        let body = format!("{CROSS}i = 0\nwhile bar_index >= 300\n    i := i + 1\n");
        let bars = wave(400);
        let alone = decisions(&body, &bars, 0..0, false);
        let last = alone.last().unwrap();
        assert!(last.starts_with("300: ") && last.contains("pine script stopped"), "{last}");
        assert_eq!(decisions(&body, &bars, 0..0, true), alone);
    }

    #[test]
    fn bars_the_script_decided_nothing_on_are_skipped_and_the_rest_decide_the_same() {
        let bars = wave(9_000);
        // Alerts only: the broker stays idle, so every bar without one is skipped.
        let alerts =
            "fast = ta.sma(close, 5)\nslow = ta.sma(close, 13)\nif ta.crossover(fast, slow)\n    alert(\"up\")\n";
        let alone = decisions(alerts, &bars, 0..0, false);
        let alerted = alone.iter().filter(|d| d.contains("Alert")).count();
        assert!(alerted > 50, "the wave crosses: {alerted}");
        let (skipping, skipped) = decisions_in(alerts, &bars, 0..0, Mode::Skipping);
        assert_eq!(skipping, alone);
        assert_eq!(skipped, bars.len() - alerted, "every bar but those alerting");
        // Orders: the runner here never sees fills, so the first entry stays pending and the
        // broker is not idle from then on; bars before it are skipped (but for a crossunder's
        // `strategy.close`, a command even with nothing to close).
        let alone = decisions(CROSS, &bars, 0..0, false);
        let (skipping, skipped) = decisions_in(CROSS, &bars, 0..0, Mode::Skipping);
        assert_eq!(skipping, alone);
        let first = alone.iter().position(|d| d.contains("OrderIntent")).unwrap();
        assert!((first - 3..=first).contains(&skipped), "the bars before the first entry: {skipped} of {first}");
    }

    #[test]
    fn no_bar_is_skipped_while_paused_and_the_strategy_goes_on_alone_the_same() {
        let bars = wave(9_000);
        let alone = decisions(CROSS, &bars, 5_000..5_100, false);
        let (skipping, skipped) = decisions_in(CROSS, &bars, 5_000..5_100, Mode::Skipping);
        assert_eq!(skipping, alone);
        let (before, skipped_before) = decisions_in(CROSS, &bars[..5_000], 0..0, Mode::Skipping);
        assert_eq!(before[..], alone[..5_000]);
        // After the pause the strategy runs the script itself: nothing more is skipped.
        assert_eq!(skipped, skipped_before, "skipped only before the pause");
    }

    #[test]
    fn a_script_that_stops_is_not_skipped_on_the_bar_it_stops() {
        let body = format!("{CROSS}i = 0\nwhile bar_index >= 300\n    i := i + 1\n");
        let bars = wave(400);
        let alone = decisions(&body, &bars, 0..0, false);
        assert_eq!(decisions_in(&body, &bars, 0..0, Mode::Skipping).0, alone);
    }

    #[test]
    fn a_script_that_reads_strategy_state_runs_beside_the_broker() {
        let body = "if strategy.position_size == 0\n    strategy.entry(\"L\", strategy.long, qty = 1)\n";
        let mut strategy = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, "")).unwrap();
        strategy.foresee(&Symbol::new("BTCUSDT"), Arc::new(Series(wave(10))));
        assert!(strategy.ahead.is_none());
        let mut plain = PineStrategy::new(Symbol::new("BTCUSDT"), program(CROSS, "")).unwrap();
        plain.foresee(&Symbol::new("ETHUSDT"), Arc::new(Series(wave(10))));
        assert!(plain.ahead.is_none(), "another symbol's bars are not its own");
    }
}
