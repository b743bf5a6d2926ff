//! The scanner's conditions, each a small state machine fed bars or
//! futures values, and the throttle that lets an alert through at most once
//! per window per symbol and condition. Pure and deterministic: time is
//! what the caller passes (the strategy's clock, or an event's time).

use std::collections::{HashMap, VecDeque};

use keel_core::futures_board::FuturesSnapshot;
use keel_core::market::Bar;
use keel_core::{Decimal, Symbol};

/// At most one alert per `every_ms` per symbol and condition.
#[derive(Debug, Clone)]
pub struct Throttle {
    every_ms: i64,
    last: HashMap<(Symbol, &'static str), i64>,
}

impl Throttle {
    /// One alert per `every_ms`.
    pub fn new(every_ms: i64) -> Self {
        Self { every_ms, last: HashMap::new() }
    }

    /// Whether an alert of `condition` on `symbol` may go at `now_ms`
    /// (counting it when it may): the first always may, the next once
    /// `every_ms` have passed since the last that went.
    pub fn allow(&mut self, symbol: &Symbol, condition: &'static str, now_ms: i64) -> bool {
        let key = (symbol.clone(), condition);
        match self.last.get(&key) {
            Some(last) if now_ms.saturating_sub(*last) < self.every_ms => false,
            _ => {
                self.last.insert(key, now_ms);
                true
            }
        }
    }
}

/// How far funding must be from zero (either sign) to alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FundingThreshold {
    /// The rate per interval, e.g. `0.0005` (0.05 %).
    Rate(Decimal),
    /// Per cent a year at the symbol's interval, e.g. `50%`.
    AnnualisedPct(f64),
}

impl FundingThreshold {
    /// `"0.0005"` (a rate per interval) or `"50%"` (annualised per cent).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(pct) = t.strip_suffix('%') {
            let v: f64 = pct.trim().parse().map_err(|_| format!("`{text}` is not a percentage such as \"50%\""))?;
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("`{text}` must be a positive percentage"));
            }
            return Ok(Self::AnnualisedPct(v));
        }
        let v: Decimal =
            t.parse().map_err(|_| format!("`{text}` is neither a rate (\"0.0005\") nor a percentage (\"50%\")"))?;
        if v <= Decimal::ZERO {
            return Err(format!("`{text}` must be positive"));
        }
        Ok(Self::Rate(v))
    }

    /// Whether the snapshot's funding estimate is beyond the threshold.
    pub fn exceeded(&self, snap: &FuturesSnapshot) -> bool {
        match self {
            Self::Rate(limit) => snap.funding_rate_estimate.is_some_and(|r| r.abs() >= *limit),
            Self::AnnualisedPct(limit) => snap.funding_annualised().is_some_and(|a| (a * 100.0).abs() >= *limit),
        }
    }

    /// How it reads in an alert.
    pub fn describe(&self) -> String {
        match self {
            Self::Rate(r) => format!("{} %", keel_core::decimal_text::amount(*r * Decimal::ONE_HUNDRED)),
            Self::AnnualisedPct(p) => format!("{p} % a year"),
        }
    }
}

/// Open interest up at least `pct` % over `period_ms`: each measurement is
/// compared with the latest one at least `period_ms` older.
#[derive(Debug, Clone)]
pub struct OiChange {
    pct: Decimal,
    period_ms: i64,
    seen: VecDeque<(i64, Decimal)>,
}

/// What made an open-interest alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OiRise {
    /// The measurement compared with, and its time.
    pub before: Decimal,
    /// Its time (ms).
    pub before_ms: i64,
    /// The change in per cent.
    pub change_pct: Decimal,
}

impl OiChange {
    /// Up `pct` % over `period_ms`.
    pub fn new(pct: Decimal, period_ms: i64) -> Self {
        Self { pct, period_ms, seen: VecDeque::new() }
    }

    /// A past measurement (open-interest history, oldest first): it becomes
    /// part of the baseline later measurements are compared with, and never
    /// raises a rise itself — alerts fire on live data only.
    pub fn seed(&mut self, ts_ms: i64, oi: Decimal) {
        let _ = self.on_measure(ts_ms, oi);
    }

    /// A measurement at `ts_ms` (out-of-order ones are ignored): a rise
    /// when it is at least `pct` % above the one a period before.
    pub fn on_measure(&mut self, ts_ms: i64, oi: Decimal) -> Option<OiRise> {
        if self.seen.back().is_some_and(|(t, _)| *t >= ts_ms) {
            return None;
        }
        self.seen.push_back((ts_ms, oi));
        let cutoff = ts_ms - self.period_ms;
        // Keep one measurement at or before the cutoff: the base.
        while self.seen.len() > 1 && self.seen[1].0 <= cutoff {
            self.seen.pop_front();
        }
        let (before_ms, before) = *self.seen.front()?;
        if before_ms > cutoff || before <= Decimal::ZERO {
            return None;
        }
        let change_pct = (oi - before) * Decimal::ONE_HUNDRED / before;
        (change_pct >= self.pct).then_some(OiRise { before, before_ms, change_pct })
    }
}

/// A bar's volume at least `factor` × the average of the `bars` before it.
#[derive(Debug, Clone)]
pub struct VolumeSpike {
    factor: Decimal,
    bars: usize,
    window: VecDeque<Decimal>,
    sum: Decimal,
}

/// What made a volume alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spike {
    /// The average volume of the bars before.
    pub average: Decimal,
    /// The bar's volume over the average.
    pub ratio: Decimal,
}

impl VolumeSpike {
    /// `factor` × the average of `bars`.
    pub fn new(factor: Decimal, bars: usize) -> Self {
        Self { factor, bars: bars.max(1), window: VecDeque::new(), sum: Decimal::ZERO }
    }

    /// A closed bar's volume: a spike once `bars` came before it.
    pub fn on_bar(&mut self, volume: Decimal) -> Option<Spike> {
        let spike = if self.window.len() == self.bars {
            let average = self.sum / Decimal::from(self.bars as u64);
            (average > Decimal::ZERO && volume >= average * self.factor)
                .then(|| Spike { average, ratio: volume / average })
        } else {
            None
        };
        self.window.push_back(volume);
        self.sum += volume;
        if self.window.len() > self.bars {
            self.sum -= self.window.pop_front().unwrap_or_default();
        }
        spike
    }
}

/// A close beyond the high or low of the `bars` before it.
#[derive(Debug, Clone)]
pub struct Breakout {
    bars: usize,
    window: VecDeque<(Decimal, Decimal)>,
}

/// Which side broke, and the level it broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// The close is above the highest high.
    High(Decimal),
    /// The close is below the lowest low.
    Low(Decimal),
}

impl Breakout {
    /// Over `bars` bars.
    pub fn new(bars: usize) -> Self {
        Self { bars: bars.max(1), window: VecDeque::new() }
    }

    /// A closed bar: a break once `bars` came before it.
    pub fn on_bar(&mut self, bar: &Bar) -> Option<Break> {
        let out = if self.window.len() == self.bars {
            let high = self.window.iter().map(|(h, _)| *h).max().unwrap_or_default();
            let low = self.window.iter().map(|(_, l)| *l).min().unwrap_or_default();
            if bar.close > high {
                Some(Break::High(high))
            } else if bar.close < low {
                Some(Break::Low(low))
            } else {
                None
            }
        } else {
            None
        };
        self.window.push_back((bar.high, bar.low));
        if self.window.len() > self.bars {
            self.window.pop_front();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::futures::{FundingInterval, FuturesEvent, MarkPrice};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn bar(i: i64, high: &str, low: &str, close: &str, volume: &str) -> Bar {
        Bar {
            symbol: "BTCUSDT".into(),
            open_time: i * 60_000,
            close_time: i * 60_000 + 59_999,
            open: d(close),
            high: d(high),
            low: d(low),
            close: d(close),
            volume: d(volume),
        }
    }

    #[test]
    fn the_throttle_lets_one_alert_through_per_window_per_symbol_and_condition() {
        let mut t = Throttle::new(1_000);
        let (a, b) = (Symbol::new("A"), Symbol::new("B"));
        let cases: &[(&Symbol, &'static str, i64, bool)] = &[
            (&a, "x", 0, true),
            (&a, "x", 999, false),
            (&a, "y", 999, true), // another condition
            (&b, "x", 999, true), // another symbol
            (&a, "x", 1_000, true),
            (&a, "x", 1_500, false),
            (&a, "x", 2_000, true),
        ];
        for (i, (symbol, condition, now, want)) in cases.iter().enumerate() {
            assert_eq!(t.allow(symbol, condition, *now), *want, "case {i}");
        }
    }

    #[test]
    fn funding_thresholds_parse_and_compare_by_rate_or_annualised() {
        let snap = |rate: &str, hours: u32| {
            let mut s = FuturesSnapshot::new("BTCUSDT".into());
            s.apply(&FuturesEvent::Mark(MarkPrice {
                symbol: "BTCUSDT".into(),
                mark_price: d("100"),
                index_price: None,
                estimated_settle_price: None,
                funding_rate_estimate: Some(d(rate)),
                interest_rate: None,
                next_funding_time: Some(1),
                ts_ms: 0,
            }));
            s.apply(&FuturesEvent::Interval(FundingInterval {
                symbol: "BTCUSDT".into(),
                interval_hours: hours,
                ts_ms: 0,
            }));
            s
        };
        // (threshold, rate, interval hours, exceeded)
        let cases = [
            ("0.0005", "0.0005", 8, true),
            ("0.0005", "-0.0006", 8, true),
            ("0.0005", "0.0004", 8, false),
            // 0.0001 per 8 h is 10.95 % a year; per 4 h 21.9 %.
            ("15%", "0.0001", 8, false),
            ("15%", "0.0001", 4, true),
            ("15%", "-0.0001", 4, true),
        ];
        for (threshold, rate, hours, want) in cases {
            let t = FundingThreshold::parse(threshold).unwrap();
            assert_eq!(t.exceeded(&snap(rate, hours)), want, "{threshold} {rate} {hours}h");
        }
        assert!(!FundingThreshold::parse("1%").unwrap().exceeded(&FuturesSnapshot::new("X".into())));
        for bad in ["", "abc", "-1", "0", "x%", "-5%"] {
            assert!(FundingThreshold::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(FundingThreshold::parse("0.0005").unwrap().describe(), "0.05 %");
    }

    #[test]
    fn open_interest_compares_with_the_measurement_a_period_before() {
        let mut c = OiChange::new(d("10"), 60_000);
        // (time, open interest): none is up 10 % on the one a period before.
        let quiet: &[(i64, &str)] = &[
            (0, "100"),
            (30_000, "130"), // less than a period of history
            (60_000, "109"), // +9 % on the one at 0
            (90_000, "125"), // the base is now the one at 30 s (130): down
        ];
        for (t, oi) in quiet {
            assert_eq!(c.on_measure(*t, d(oi)), None, "at {t}");
        }
        // At 150 s the base is the latest one at least a period older: 125 at 90 s.
        let rise = c.on_measure(150_000, d("138")).expect("up 10.4 % on the 125 at 90 s");
        assert_eq!((rise.before, rise.before_ms, rise.change_pct), (d("125"), 90_000, d("10.4")));
        assert_eq!(c.on_measure(140_000, d("500")), None, "out of order");
    }

    #[test]
    fn a_volume_spike_is_against_the_average_of_the_bars_before() {
        let mut v = VolumeSpike::new(d("3"), 3);
        // (volume, spike ratio)
        let cases: &[(&str, Option<&str>)] = &[
            ("10", None),
            ("10", None),
            ("10", None),
            ("30", Some("3")),  // 3 × 10
            ("29", None),       // average now 50/3
            ("100", Some("4")), // average (10+30+29)/3 = 23 → 100/23 ≈ 4.35
            ("0", None),
        ];
        for (i, (vol, want)) in cases.iter().enumerate() {
            let got = v.on_bar(d(vol));
            match want {
                None => assert_eq!(got, None, "bar {i}"),
                Some(r) => {
                    let got = got.unwrap_or_else(|| panic!("bar {i}: no spike"));
                    assert_eq!(got.ratio.trunc(), d(r), "bar {i}");
                }
            }
        }
    }

    #[test]
    fn a_breakout_is_a_close_beyond_the_range_of_the_bars_before() {
        let mut b = Breakout::new(2);
        let cases = [
            (bar(0, "10", "8", "9", "1"), None),
            (bar(1, "11", "9", "10", "1"), None),
            (bar(2, "12", "9", "11.5", "1"), Some(Break::High(d("11")))),
            (bar(3, "12", "9", "11", "1"), None), // within 9..12
            (bar(4, "10", "7", "8.5", "1"), Some(Break::Low(d("9")))),
        ];
        for (i, (bar, want)) in cases.iter().enumerate() {
            assert_eq!(b.on_bar(bar), *want, "bar {i}");
        }
    }
}
