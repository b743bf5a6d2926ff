//! Each `ta.*` state machine against a straightforward whole-array reference computation on
//! seeded bars, including the first bar each one has a value (the reference's warm-up table).

use pine::ta::*;

/// Seeded bars (a small LCG, so no dependency): (open, high, low, close, volume), 2-decimal prices.
fn bars(n: usize, seed: u64) -> Vec<[f64; 5]> {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 33) as f64) / (1u64 << 31) as f64
    };
    let mut close = 100.0;
    (0..n)
        .map(|_| {
            let open = close;
            close = ((open + (next() - 0.5) * 4.0) * 100.0_f64).round() / 100.0;
            let high = ((open.max(close) + next() * 2.0) * 100.0_f64).round() / 100.0;
            let low = ((open.min(close) - next() * 2.0) * 100.0_f64).round() / 100.0;
            [open, high, low, close, (next() * 1000.0).round() + 1.0]
        })
        .collect()
}

fn sma_ref(xs: &[f64], n: usize) -> Vec<f64> {
    (0..xs.len()).map(|i| if i + 1 < n { f64::NAN } else { xs[i + 1 - n..=i].iter().sum::<f64>() / n as f64 }).collect()
}

fn exp_ref(xs: &[f64], n: usize, alpha: f64) -> Vec<f64> {
    let seed = sma_ref(xs, n);
    let mut prev = f64::NAN;
    (0..xs.len())
        .map(|i| {
            prev = if prev.is_nan() { seed[i] } else { alpha * xs[i] + (1.0 - alpha) * prev };
            prev
        })
        .collect()
}

fn window_ref(xs: &[f64], n: usize, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    (0..xs.len())
        .map(
            |i| {
                if i + 1 < n || xs[i + 1 - n..=i].iter().any(|v| v.is_nan()) {
                    f64::NAN
                } else {
                    f(&xs[i + 1 - n..=i])
                }
            },
        )
        .collect()
}

fn run(xs: &[f64], mut f: impl FnMut(f64) -> f64) -> Vec<f64> {
    xs.iter().map(|x| f(*x)).collect()
}

fn first_value(v: &[f64]) -> Option<usize> {
    v.iter().position(|x| !x.is_nan())
}

fn assert_close(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-9 * w.abs().max(1.0);
        assert!(ok, "{name}: bar {i}: got {g}, want {w}");
    }
}

#[test]
fn indicators_match_textbook_formulas_and_warm_up() {
    let b = bars(400, 7);
    let close: Vec<f64> = b.iter().map(|r| r[3]).collect();
    let high: Vec<f64> = b.iter().map(|r| r[1]).collect();
    let low: Vec<f64> = b.iter().map(|r| r[2]).collect();
    let vol: Vec<f64> = b.iter().map(|r| r[4]).collect();
    let n = 14;
    let mean = |w: &[f64]| w.iter().sum::<f64>() / w.len() as f64;
    let sd = |w: &[f64]| {
        let m = mean(w);
        (w.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / w.len() as f64).sqrt()
    };
    // True range with bar 0 = high - low, and its RMA.
    let tr: Vec<f64> = (0..b.len())
        .map(|i| {
            if i == 0 {
                high[0] - low[0]
            } else {
                (high[i] - low[i]).max((high[i] - close[i - 1]).abs()).max((low[i] - close[i - 1]).abs())
            }
        })
        .collect();
    let gains: Vec<f64> =
        (0..b.len()).map(|i| if i == 0 { f64::NAN } else { (close[i] - close[i - 1]).max(0.0) }).collect();
    let losses: Vec<f64> =
        (0..b.len()).map(|i| if i == 0 { f64::NAN } else { (close[i - 1] - close[i]).max(0.0) }).collect();
    let (ug, dl) = (exp_ref(&gains, n, 1.0 / n as f64), exp_ref(&losses, n, 1.0 / n as f64));
    let rsi_ref: Vec<f64> = ug
        .iter()
        .zip(&dl)
        .map(|(u, d)| {
            if u.is_nan() || d.is_nan() {
                f64::NAN
            } else if *d == 0.0 {
                100.0
            } else {
                100.0 - 100.0 / (1.0 + u / d)
            }
        })
        .collect();
    let hh = window_ref(&high, n, |w| w.iter().copied().fold(f64::MIN, f64::max));
    let ll = window_ref(&low, n, |w| w.iter().copied().fold(f64::MAX, f64::min));
    let stoch_raw: Vec<f64> = (0..b.len()).map(|i| 100.0 * (close[i] - ll[i]) / (hh[i] - ll[i])).collect();
    let k_ref = sma_ref(&stoch_raw, 3);
    let d_ref = sma_ref(&k_ref, 3);
    let macd_ref: Vec<f64> =
        exp_ref(&close, 12, 2.0 / 13.0).iter().zip(exp_ref(&close, 26, 2.0 / 27.0)).map(|(a, b)| a - b).collect();
    let signal_ref = exp_ref(&macd_ref, 9, 0.2);
    let wsum = (n * (n + 1) / 2) as f64;
    let xv: Vec<f64> = close.iter().zip(&vol).map(|(c, v)| c * v).collect();

    let mut k = Sma::new(3);
    let mut d = Sma::new(3);
    let mut st = Stoch::new(n);
    let (mut kk, mut dd) = (Vec::new(), Vec::new());
    for i in 0..b.len() {
        let kv = k.update(st.update(close[i], high[i], low[i]));
        kk.push(kv);
        dd.push(d.update(kv));
    }
    let mut macd = Macd::new(12, 26, 9);
    let (mut mm, mut ss) = (Vec::new(), Vec::new());
    for c in &close {
        let [m, s, h] = macd.update(*c);
        assert!(h.is_nan() || (h - (m - s)).abs() < 1e-12);
        mm.push(m);
        ss.push(s);
    }
    let mut bb = Bb::new(20, 2.0);
    let upper: Vec<f64> = close.iter().map(|c| bb.update(*c)[1]).collect();
    let upper_ref: Vec<f64> =
        sma_ref(&close, 20).iter().zip(window_ref(&close, 20, sd)).map(|(m, s)| m + 2.0 * s).collect();
    let atr = {
        let mut a = Atr::new(n);
        (0..b.len()).map(|i| a.update(high[i], low[i], close[i])).collect::<Vec<_>>()
    };
    let vwma = {
        let mut a = Vwma::new(n);
        (0..b.len()).map(|i| a.update(close[i], vol[i])).collect::<Vec<_>>()
    };

    // (name, got, want, first bar with a value)
    let cases: Vec<(&str, Vec<f64>, Vec<f64>, usize)> = vec![
        (
            "sma(14)",
            run(&close, {
                let mut s = Sma::new(n);
                move |x| s.update(x)
            }),
            sma_ref(&close, n),
            13,
        ),
        (
            "ema(14)",
            run(&close, {
                let mut s = Ema::new(n);
                move |x| s.update(x)
            }),
            exp_ref(&close, n, 2.0 / 15.0),
            13,
        ),
        (
            "rma(14)",
            run(&close, {
                let mut s = Ema::rma(n);
                move |x| s.update(x)
            }),
            exp_ref(&close, n, 1.0 / 14.0),
            13,
        ),
        (
            "wma(14)",
            run(&close, {
                let mut s = Wma::new(n);
                move |x| s.update(x)
            }),
            window_ref(&close, n, |w| w.iter().enumerate().map(|(j, v)| v * (j + 1) as f64).sum::<f64>() / wsum),
            13,
        ),
        ("vwma(14)", vwma, sma_ref(&xv, n).iter().zip(sma_ref(&vol, n)).map(|(a, b)| a / b).collect(), 13),
        (
            "rsi(14)",
            run(&close, {
                let mut s = Rsi::new(n);
                move |x| s.update(x)
            }),
            rsi_ref,
            14,
        ),
        ("atr(14)", atr, exp_ref(&tr, n, 1.0 / 14.0), 13),
        ("macd(12,26,9)", mm, macd_ref, 25),
        ("macd signal", ss, signal_ref, 33),
        ("bb(20) upper", upper, upper_ref, 19),
        ("stoch k", kk, k_ref, 15),
        ("stoch d", dd, d_ref, 17),
        (
            "stdev(20)",
            run(&close, {
                let mut s = Stdev::new(20);
                move |x| s.update(x)
            }),
            window_ref(&close, 20, sd),
            19,
        ),
        (
            "cci(20)",
            run(&close, {
                let mut s = Cci::new(20);
                move |x| s.update(x)
            }),
            window_ref(&close, 20, |w| {
                let m = mean(w);
                (w[w.len() - 1] - m) / (0.015 * w.iter().map(|v| (v - m).abs()).sum::<f64>() / w.len() as f64)
            }),
            19,
        ),
        (
            "highest(14)",
            run(&high, {
                let mut s = Extreme::new(n, true);
                move |x| s.update(x)
            }),
            hh,
            13,
        ),
        (
            "sum(5)",
            run(&close, {
                let mut s = Sma::new(5);
                move |x| s.update_sum(x)
            }),
            window_ref(&close, 5, |w| w.iter().sum()),
            4,
        ),
        (
            "change(3)",
            run(&close, {
                let mut s = Lag::new(3, LagKind::Change);
                move |x| s.update(x)
            }),
            (0..close.len()).map(|i| if i < 3 { f64::NAN } else { close[i] - close[i - 3] }).collect(),
            3,
        ),
        (
            "roc(3)",
            run(&close, {
                let mut s = Lag::new(3, LagKind::Roc);
                move |x| s.update(x)
            }),
            (0..close.len())
                .map(|i| if i < 3 { f64::NAN } else { 100.0 * (close[i] - close[i - 3]) / close[i - 3] })
                .collect(),
            3,
        ),
        (
            "rising(2)",
            run(&close, {
                let mut s = Lag::new(2, LagKind::Rising);
                move |x| s.update(x)
            }),
            // Rising for 2 bars long: two consecutive rises, as both independent runtimes count
            // (TradingView's "greater than any previous" wording reads otherwise; the witness found it).
            (0..close.len())
                .map(|i| if i >= 2 && close[i] > close[i - 1] && close[i - 1] > close[i - 2] { 1.0 } else { 0.0 })
                .collect(),
            0,
        ),
        (
            "falling(3)",
            run(&close, {
                let mut s = Lag::new(3, LagKind::Falling);
                move |x| s.update(x)
            }),
            (0..close.len())
                .map(|i| if i >= 3 && (0..3).all(|k| close[i - k] < close[i - k - 1]) { 1.0 } else { 0.0 })
                .collect(),
            0,
        ),
        (
            "cum",
            run(&close, {
                let mut s = Cum::default();
                move |x| s.update(x)
            }),
            close
                .iter()
                .scan(0.0, |t, x| {
                    *t += x;
                    Some(*t)
                })
                .collect(),
            0,
        ),
        (
            "pivothigh(2,2)",
            run(&high, {
                let mut s = Pivot::new(2, 2, true);
                move |x| s.update(x)
            }),
            (0..high.len())
                .map(|i| {
                    if i < 4 {
                        return f64::NAN;
                    }
                    let c = high[i - 2];
                    // Left bars may equal the candidate, right bars must be strictly below.
                    if [i - 4, i - 3].iter().all(|j| high[*j] <= c) && [i - 1, i].iter().all(|j| high[*j] < c) {
                        c
                    } else {
                        f64::NAN
                    }
                })
                .collect(),
            4,
        ),
    ];
    for (name, got, want, first) in cases {
        assert_close(name, &got, &want);
        if name != "pivothigh(2,2)" {
            assert_eq!(first_value(&got), Some(first), "{name}: first bar with a value");
        }
    }
}

#[test]
fn rsi_edge_cases_and_crosses() {
    // Only rises: the down-average is 0, so RSI is 100; only falls: 0.
    let mut up = Rsi::new(3);
    let rising: Vec<f64> = (0..6).map(|i| up.update(i as f64)).collect();
    assert!(rising[..3].iter().all(|v| v.is_nan()) && rising[3..].iter().all(|v| *v == 100.0), "{rising:?}");
    let mut down = Rsi::new(3);
    let falling: Vec<f64> = (0..6).map(|i| down.update(-(i as f64))).collect();
    assert!(falling[3..].iter().all(|v| *v == 0.0), "{falling:?}");

    let nan = f64::NAN;
    // (name, (a, b) per bar, crossover per bar, crossunder per bar)
    type CrossCase<'a> = (&'a str, &'a [(f64, f64)], &'a [bool], &'a [bool]);
    let cases: &[CrossCase] = &[
        ("cross up", &[(1.0, 2.0), (3.0, 2.0)], &[false, true], &[false, false]),
        ("touch then cross", &[(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)], &[false, false, true], &[false, false, false]),
        ("equal is no cross", &[(2.0, 2.0), (2.0, 2.0)], &[false, false], &[false, false]),
        ("na before", &[(nan, 2.0), (3.0, 2.0)], &[false, false], &[false, false]),
        ("na now", &[(1.0, 2.0), (3.0, nan)], &[false, false], &[false, false]),
        ("cross down", &[(3.0, 2.0), (1.0, 2.0)], &[false, false], &[false, true]),
    ];
    for (name, ab, over, under) in cases {
        let (mut o, mut u, mut any) =
            (Cross::new(CrossKind::Over), Cross::new(CrossKind::Under), Cross::new(CrossKind::Any));
        for (i, (a, b)) in ab.iter().enumerate() {
            assert_eq!(o.update(*a, *b), over[i], "{name}: crossover at {i}");
            assert_eq!(u.update(*a, *b), under[i], "{name}: crossunder at {i}");
            assert_eq!(any.update(*a, *b), over[i] || under[i], "{name}: cross at {i}");
        }
    }

    // Pivot ties: an equal bar on the left keeps the pivot, an equal bar on the right removes it.
    let ties: &[(&str, [f64; 5], bool)] = &[
        ("strict both sides", [1.0, 2.0, 5.0, 2.0, 1.0], true),
        ("equal on the left", [1.0, 5.0, 5.0, 2.0, 1.0], true),
        ("equal on the right", [1.0, 2.0, 5.0, 5.0, 1.0], false),
        ("higher on the left", [1.0, 6.0, 5.0, 2.0, 1.0], false),
    ];
    for (name, xs, pivot) in ties {
        let mut ph = Pivot::new(2, 2, true);
        let mut pl = Pivot::new(2, 2, false);
        let last = xs.iter().map(|x| (ph.update(*x), pl.update(-x))).last().unwrap();
        assert_eq!(!last.0.is_nan(), *pivot, "{name}: pivothigh");
        assert_eq!(!last.1.is_nan(), *pivot, "{name}: pivotlow mirrors it");
        if *pivot {
            assert_eq!(last, (5.0, -5.0), "{name}");
        }
    }

    // barssince and valuewhen.
    let conds = [false, true, false, false, true, false];
    let mut bs = BarsSince::default();
    let got: Vec<f64> = conds.iter().map(|c| bs.update(*c)).collect();
    assert!(got[0].is_nan());
    assert_eq!(&got[1..], &[0.0, 1.0, 2.0, 0.0, 1.0]);
    let mut vw = ValueWhen::new(1);
    let got: Vec<f64> = conds.iter().enumerate().map(|(i, c)| vw.update(*c, i as f64 * 10.0)).collect();
    assert!(got[..4].iter().all(|v| v.is_nan()), "{got:?}");
    assert_eq!(&got[4..], &[10.0, 10.0]);
}

/// `ta.rising`/`ta.falling` count consecutive moves; a step touching `na` neither extends nor
/// breaks the run (as both independent runtimes do; the witness found the difference).
#[test]
fn rising_and_falling_count_consecutive_moves_across_na() {
    let xs = [1.0, 2.0, f64::NAN, 3.0, 4.0, 3.0, 5.0, 6.0];
    let mut up = Lag::new(2, LagKind::Rising);
    let got: Vec<f64> = xs.iter().map(|x| up.update(*x)).collect();
    assert_eq!(got, [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    // 5 > 4 and 5 > 3 (above every previous value) but 4 -> 3 fell: not rising for 2 bars long.
    let mut up = Lag::new(2, LagKind::Rising);
    let got: Vec<f64> = [4.0, 3.0, 5.0].iter().map(|x| up.update(*x)).collect();
    assert_eq!(got, [0.0, 0.0, 0.0]);
    let mut down = Lag::new(1, LagKind::Falling);
    let got: Vec<f64> = [3.0, 2.0, 2.0, 1.0].iter().map(|x| down.update(*x)).collect();
    assert_eq!(got, [0.0, 1.0, 0.0, 1.0]);
    // A step within Pine's comparison tolerance (1e-10) is no move: it breaks the run.
    let mut up = Lag::new(1, LagKind::Rising);
    let got: Vec<f64> = [1.0, 1.0 + 5e-11, 1.0 + 3e-10].iter().map(|x| up.update(*x)).collect();
    assert_eq!(got, [0.0, 0.0, 1.0]);
}
