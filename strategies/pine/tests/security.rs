//! `request.security` on higher timeframes of the chart's symbol: values computed by hand over
//! 15-minute bars (confirmed values only, changing on the bar that closes the period, `na` before
//! the first period completes), the expression's own `ta.*` state and history, tuples, `gaps`, and
//! every refusal at its `file:line:col` (table-driven).

use std::sync::Arc;

use pine::{compile, Bar, Runner, StrategyState};

const Q: i64 = 15 * 60_000;
/// 2023-11-13 00:00 UTC (a Monday): hours start on bars 0, 4, 8...
const T0: i64 = 1_699_833_600_000;

fn src(body: &str) -> String {
    format!("//@version=5\nstrategy(\"t\")\n{body}")
}

/// 15-minute bars whose close is `closes[i]`, open the previous close, high/low ±0.5.
fn bars(closes: &[f64]) -> Vec<Bar> {
    let mut prev = closes[0];
    closes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let b = Bar {
                time: T0 + i as i64 * Q,
                open: prev,
                high: prev.max(*c) + 0.5,
                low: prev.min(*c) - 0.5,
                close: *c,
                volume: 1.0 + i as f64,
            };
            prev = *c;
            b
        })
        .collect()
}

/// Runs a script over the bars with the given chart interval; returns the plots per bar.
fn run_with(body: &str, bars: &[Bar], interval: i64) -> Vec<Vec<f64>> {
    let prog = Arc::new(compile(&src(body), Some("t.pine"), &[]).unwrap_or_else(|e| panic!("{e}")).program);
    let mut r = Runner::with_base_interval(prog, interval).unwrap_or_else(|e| panic!("{e}"));
    let state = StrategyState { equity: 1000.0, position_avg_price: f64::NAN, ..Default::default() };
    bars.iter().map(|b| r.step(b, &state).unwrap_or_else(|e| panic!("{e}")).plots.clone()).collect()
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn assert_series(got: &[Vec<f64>], plot: usize, want: &[f64]) {
    let col: Vec<f64> = got.iter().map(|p| p[plot]).collect();
    assert_eq!(col.len(), want.len());
    for (i, (g, w)) in col.iter().zip(want).enumerate() {
        assert!(same(*g, *w), "plot {plot}, bar {i}: got {g}, want {w}\n got {col:?}\nwant {want:?}");
    }
}

const NA: f64 = f64::NAN;

#[test]
fn an_hourly_sma_over_quarter_hours_is_confirmed_and_changes_on_the_closing_bar() {
    // Hour closes (bars 3, 7, 11, 15): 4, 8, 12, 16 -> hourly sma(2): na, 6, 10, 14.
    let closes: Vec<f64> = (1..=16).map(f64::from).collect();
    let got = run_with(
        "h = request.security(syminfo.tickerid, \"60\", ta.sma(close, 2))\nplot(h)\nplot(ta.sma(close, 2))\n",
        &bars(&closes),
        Q,
    );
    #[rustfmt::skip]
    let want = [NA, NA, NA, NA, NA, NA, NA, 6.0, 6.0, 6.0, 6.0, 10.0, 10.0, 10.0, 10.0, 14.0];
    assert_series(&got, 0, &want);
    // The chart's own sma(2) keeps its own state: (c[i-1] + c[i]) / 2.
    let chart: Vec<f64> = (0..16).map(|i| if i == 0 { NA } else { closes[i - 1] / 2.0 + closes[i] / 2.0 }).collect();
    assert_series(&got, 1, &chart);
}

#[test]
fn the_expression_sees_the_higher_timeframe_bar_its_index_and_its_history() {
    let closes: Vec<f64> = (1..=12).map(|i| f64::from(i * 10)).collect();
    let b = bars(&closes);
    let got = run_with(
        "[o, h, l, v] = request.security(syminfo.tickerid, \"60\", [open, high, low, volume])\n\
         plot(o)\nplot(h)\nplot(l)\nplot(v)\n\
         plot(request.security(syminfo.ticker, \"60\", bar_index))\n\
         plot(request.security(syminfo.tickerid, \"60\", close[1]))\n\
         plot(request.security(syminfo.tickerid, \"60\", time))\n",
        &b,
        Q,
    );
    let hour = |k: usize, f: fn(&[Bar]) -> f64| f(&b[4 * k..4 * k + 4]);
    let open = |s: &[Bar]| s[0].open;
    let high = |s: &[Bar]| s.iter().map(|x| x.high).fold(f64::MIN, f64::max);
    let low = |s: &[Bar]| s.iter().map(|x| x.low).fold(f64::MAX, f64::min);
    let vol = |s: &[Bar]| s.iter().map(|x| x.volume).sum();
    // Each value appears on the hour's last quarter (bars 3, 7, 11) and holds until the next.
    let per_bar = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
        (0..12).map(|i| if i < 3 { NA } else { f((i + 1) / 4 - 1) }).collect()
    };
    assert_series(&got, 0, &per_bar(&|k| hour(k, open)));
    assert_series(&got, 1, &per_bar(&|k| hour(k, high)));
    assert_series(&got, 2, &per_bar(&|k| hour(k, low)));
    assert_series(&got, 3, &per_bar(&|k| hour(k, vol)));
    assert_series(&got, 4, &per_bar(&|k| k as f64));
    // close[1] on the hourly series: the previous hour's close (na on the first hour).
    assert_series(&got, 5, &per_bar(&|k| if k == 0 { NA } else { closes[4 * k - 1] }));
    assert_series(&got, 6, &per_bar(&|k| (T0 + k as i64 * 4 * Q) as f64));
}

#[test]
fn functions_gaps_and_a_skipped_closing_bar() {
    // Bars 0..=6 then 8.. (the first hour's... second hour's last quarter, bar 7, is missing).
    let closes: Vec<f64> = (1..=12).map(f64::from).collect();
    let mut b = bars(&closes);
    b.remove(7);
    let got = run_with(
        "f(n) => ta.ema(close, n)\n\
         plot(request.security(syminfo.tickerid, \"60\", f(2)))\n\
         plot(request.security(syminfo.tickerid, \"60\", close, barmerge.gaps_on, barmerge.lookahead_off))\n",
        &b,
        Q,
    );
    // Hour closes: 4 (bar 3), 7 (the gapped hour completes when bar 8 arrives, at index 7 here),
    // 12 (bar 11, index 10). ema(2) seeds with the sma of 4 and 7 = 5.5, then 12*2/3 + 5.5/3.
    let e2 = 12.0 * (2.0 / 3.0) + 5.5 * (1.0 - 2.0 / 3.0);
    assert_series(&got, 0, &[NA, NA, NA, NA, NA, NA, NA, 5.5, 5.5, 5.5, e2]);
    assert_series(&got, 1, &[NA, NA, NA, 4.0, NA, NA, NA, 7.0, NA, NA, 12.0]);
}

#[test]
fn daily_and_weekly_periods_start_at_utc_midnight_and_monday() {
    // 4-hour bars from Monday 00:00 over 8 days: days close on every 6th bar, the week on bar 41.
    let closes: Vec<f64> = (1..=48).map(f64::from).collect();
    let b: Vec<Bar> = bars(&closes)
        .into_iter()
        .enumerate()
        .map(|(i, mut x)| {
            x.time = T0 + i as i64 * 4 * 3_600_000;
            x
        })
        .collect();
    let got = run_with(
        "plot(request.security(syminfo.tickerid, \"D\", close))\nplot(request.security(syminfo.tickerid, \"W\", close))\n",
        &b,
        4 * 3_600_000,
    );
    let day: Vec<f64> = (0..48).map(|i| if i < 5 { NA } else { closes[(i + 1) / 6 * 6 - 1] }).collect();
    assert_series(&got, 0, &day);
    let week: Vec<f64> = (0..48).map(|i| if i < 41 { NA } else { 42.0 }).collect();
    assert_series(&got, 1, &week);
}

#[test]
fn refusals_name_the_construct_at_file_line_col() {
    let cases: &[(&str, &str)] = &[
        (
            "x = request.security(syminfo.tickerid, \"D\", close, lookahead = barmerge.lookahead_on)\n",
            "t.pine:3:64: request.security with lookahead = barmerge.lookahead_on is refused",
        ),
        (
            "x = request.security(syminfo.tickerid, \"D\", close, barmerge.gaps_off, barmerge.lookahead_on)\n",
            "t.pine:3:71: request.security with lookahead = barmerge.lookahead_on is refused",
        ),
        (
            "x = request.security(\"BINANCE:ETHUSDT\", \"D\", close)\n",
            "t.pine:3:22: request.security reads the chart's own symbol only",
        ),
        ("x = request.security(syminfo.tickerid, timeframe.period, close)\n", "t.pine:3:40: the timeframe of request.security must be a constant string"),
        (
            "x = request.security(syminfo.tickerid, close > open ? \"60\" : \"D\", close)\n",
            "t.pine:3:40: the timeframe of request.security must be a constant string",
        ),
        ("x = request.security(syminfo.tickerid, \"2D\", close)\n", "t.pine:3:40: timeframe \"2D\" is outside Keel's Pine subset"),
        ("x = request.security(syminfo.tickerid, \"30S\", close)\n", "t.pine:3:40: timeframe \"30S\" is outside"),
        ("s = ta.sma(close, 3)\nx = request.security(syminfo.tickerid, \"D\", s)\n", "t.pine:4:45: request.security's expression reads 's', a series computed on the chart's bars"),
        ("x = request.security(syminfo.tickerid, \"D\", strategy.position_size)\n", "t.pine:3:45: strategy.position_size inside request.security's expression"),
        ("f() =>\n    strategy.entry(\"L\", strategy.long)\n    1\nx = request.security(syminfo.tickerid, \"D\", f())\n", "t.pine:4:5: strategy.entry() inside request.security's expression"),
        ("x = request.security(syminfo.tickerid, \"D\", request.security(syminfo.tickerid, \"W\", close))\n", "t.pine:3:45: request.security inside another request.security's expression"),
        ("if close > open\n    x = request.security(syminfo.tickerid, \"D\", close)\n", "t.pine:4:9: request.security must be called at global scope"),
        ("x = request.security(syminfo.tickerid, \"D\", close, currency = \"USD\")\n", "t.pine:3:63: request.security() has no argument 'currency'"),
        ("x = request.security(syminfo.tickerid, \"D\", close, gaps = true)\n", "t.pine:3:59: gaps must be barmerge.gaps_off or barmerge.gaps_on"),
        ("x = request.security(syminfo.tickerid, \"D\", [close, open])\n", "t.pine:3:45: a tuple expression needs a tuple declaration"),
        ("[a, b] = request.security(syminfo.tickerid, \"D\", close)\n", "t.pine:3:50: a tuple declaration needs a tuple expression"),
        ("[a, b] = request.security(syminfo.tickerid, \"D\", [close, open, high])\n", "t.pine:3:50: request.security returns 3 values, 2 names given"),
        ("x = request.security_lower_tf(syminfo.tickerid, \"1\", close)\n", "t.pine:3:5: request.security_lower_tf() is outside Keel's Pine subset"),
        ("x = request.security(syminfo.tickerid, \"D\")\n", "t.pine:3:5: request.security() needs its 'expression' argument"),
    ];
    for (body, want) in cases {
        match compile(&src(body), Some("t.pine"), &[]) {
            Ok(_) => panic!("{want}: compiled"),
            Err(e) => assert!(e.to_string().contains(want), "want '{want}', got '{e}'"),
        }
    }
}

#[test]
fn the_chart_interval_must_build_the_timeframe_or_the_runner_refuses() {
    let cases: &[(&str, i64, &str)] = &[
        ("x = request.security(syminfo.tickerid, \"5\", close)\n", Q, "t.pine:3:5: request.security timeframe \"5\" is a lower timeframe than the chart's bars (15 minute(s))"),
        ("x = request.security(syminfo.tickerid, \"60\", close)\n", 45 * 60_000, "t.pine:3:5: request.security timeframe \"60\" is not a whole multiple of the chart's bar interval (45 minute(s))"),
        ("plot(close)\nx = request.security(syminfo.tickerid, \"W\", close)\n", 2 * 86_400_000, "t.pine:4:5: request.security timeframe \"W\" is not a whole multiple"),
    ];
    for (body, interval, want) in cases {
        let prog = Arc::new(compile(&src(body), Some("t.pine"), &[]).unwrap_or_else(|e| panic!("{e}")).program);
        match Runner::with_base_interval(prog, *interval) {
            Ok(_) => panic!("{want}: accepted"),
            Err(e) => assert!(e.to_string().contains(want), "want '{want}', got '{e}'"),
        }
    }
    // Without the interval, a script that reads a higher timeframe is refused on its first bar.
    let prog = Arc::new(
        compile(&src("x = request.security(syminfo.tickerid, \"60\", close)\nplot(x)\n"), Some("t.pine"), &[])
            .unwrap()
            .program,
    );
    assert_eq!(prog.security_timeframes(), vec![pine::Timeframe::Minutes(60)]);
    // Warm-up in chart bars: (history 0 + 1 partial period) x 4 quarters for the hour.
    assert_eq!(prog.warmup_bars_for(Q), 4);
    let four = bars(&[1.0, 2.0, 3.0, 4.0]);
    let e = Runner::new(Arc::clone(&prog)).step(&four[0], &StrategyState::default()).unwrap_err();
    assert!(e.to_string().contains("t.pine:3:5: request.security needs the chart's bar interval"), "{e}");
    // A host that learns the interval from its first bar sets it before stepping (checked alike).
    let mut r = Runner::new(prog);
    let e = r.set_base_interval(7 * 60_000).unwrap_err();
    assert!(e.to_string().contains("t.pine:3:5: request.security timeframe \"60\" is not a whole multiple"), "{e}");
    r.set_base_interval(Q).unwrap();
    let last: Vec<f64> = four.iter().map(|b| r.step(b, &StrategyState::default()).unwrap().plots[0]).collect();
    assert!(last[..3].iter().all(|v| v.is_nan()) && last[3] == 4.0, "{last:?}");
}

#[test]
fn the_warm_up_counts_a_higher_timeframes_needs_in_chart_bars() {
    let body = "h = request.security(syminfo.tickerid, \"60\", ta.sma(close, 3)[1])\nplot(h)\nplot(ta.ema(close, 5))\n";
    let prog = compile(&src(body), Some("t.pine"), &[]).unwrap().program;
    // Chart: ema(5). The hour: sma(3) + history 1 + a partial first hour = 5 hours of 4 quarters.
    assert_eq!(prog.warmup_bars_for(Q), 5 + 5 * 4);
    assert_eq!(prog.warmup_bars_for(60 * 60_000), 5 + 5);
    // The unscaled bound counts every call once (as before request.security).
    assert_eq!(prog.warmup_bars(), 3 + 5 + 1);
}

#[test]
fn a_runaway_loop_in_the_expression_stops_the_bar_that_completes_its_period() {
    let body = "spin() =>\n    i = 0\n    while true\n        i += 1\n    i\nx = request.security(syminfo.tickerid, \"60\", spin())\nplot(x)\n";
    let prog = Arc::new(compile(&src(body), Some("t.pine"), &[]).unwrap_or_else(|e| panic!("{e}")).program);
    let mut r = Runner::with_base_interval(prog, Q).unwrap_or_else(|e| panic!("{e}"));
    let state = StrategyState::default();
    let all = bars(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    // The first hour completes on its fourth quarter (bar 3): nothing runs before it.
    for b in &all[..3] {
        r.step(b, &state).unwrap_or_else(|e| panic!("{e}"));
    }
    let e = r.step(&all[3], &state).unwrap_err();
    assert!(e.to_string().starts_with("t.pine:5:5: loop ran more than 1000000 iterations"), "{e}");
}
