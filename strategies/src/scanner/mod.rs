//! `scanner`: setup alerts. It never places an order; it tells the operator
//! (Telegram, Discord, the console's event stream) when a configured
//! condition holds on its symbol, with the values that triggered it:
//!
//! - `funding_above`: the funding estimate beyond a threshold either side of
//!   zero — a rate per interval (`"0.0005"`) or per cent a year at the
//!   symbol's own interval (`"50%"`);
//! - `oi_change_pct` (with `oi_period`, default `1h`): open interest up at
//!   least that many per cent on the measurement a period before. The
//!   open-interest history the feed seeds when it starts feeding a symbol
//!   ([`FuturesEvent::OpenInterestHistory`]) is the baseline, so the
//!   condition works from the first live measurement; history itself never
//!   alerts (it already happened), only live measurements do;
//! - `volume_spike` (with `volume_bars`, default 20): a bar's volume at least
//!   that many times the average of the bars before it;
//! - `breakout_bars`: a close above the highest high (`breakout_high`) or
//!   below the lowest low (`breakout_low`) of that many bars before it.
//!
//! Each alert is throttled per symbol and condition (`throttle`, default
//! `1h`, on the strategy's clock), so a condition that keeps holding says
//! so once per window.

pub mod conditions;

use std::collections::BTreeMap;

use keel_core::decimal_text::{amount, percent};
use keel_core::futures::FuturesEvent;
use keel_core::market::Bar;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};

use crate::params::{ParamSpec, Params};
use crate::registry::StrategyConfigError;
use conditions::{Break, Breakout, FundingThreshold, OiChange, Throttle, VolumeSpike};

/// The default throttle window (ms).
pub const DEFAULT_THROTTLE_MS: i64 = 3_600_000;
/// The default open-interest period (ms).
pub const DEFAULT_OI_PERIOD_MS: i64 = 3_600_000;
/// The default number of bars a volume spike is measured against.
pub const DEFAULT_VOLUME_BARS: usize = 20;

/// The scanner strategy.
#[derive(Debug, Clone)]
pub struct Scanner {
    symbol: Symbol,
    funding: Option<FundingThreshold>,
    oi: Option<OiChange>,
    volume: Option<VolumeSpike>,
    volume_bars: usize,
    breakout: Option<Breakout>,
    breakout_bars: usize,
    throttle: Throttle,
}

fn values<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl Scanner {
    /// The parameters it declares (type, default, valid range), which the
    /// registry checks before building it.
    pub fn params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::decimal("funding_above"),
            ParamSpec::decimal("oi_change_pct").above(0),
            ParamSpec::duration("oi_period").default_value("\"1h\""),
            ParamSpec::decimal("volume_spike").above(0),
            ParamSpec::integer("volume_bars").default_value("20").at_least(1),
            ParamSpec::integer("breakout_bars").at_least(1),
            ParamSpec::duration("throttle").default_value("\"1h\""),
        ]
    }

    /// Builds from config params (at least one condition).
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&Self::params())?;
        let funding = match p.text_opt("funding_above")? {
            Some(t) => Some(FundingThreshold::parse(&t).map_err(|e| p.error("funding_above", e))?),
            None => None,
        };
        let oi_period = p.duration_ms_or("oi_period", DEFAULT_OI_PERIOD_MS)?;
        let oi = p.positive_decimal_opt("oi_change_pct")?.map(|pct| OiChange::new(pct, oi_period));
        let volume_bars = p.usize_or("volume_bars", DEFAULT_VOLUME_BARS)?;
        let volume = p.positive_decimal_opt("volume_spike")?.map(|k| VolumeSpike::new(k, volume_bars));
        // Absent: no breakout condition (a present one must be positive).
        let breakout_bars = p.usize_or("breakout_bars", 0)?;
        let breakout = (breakout_bars > 0).then(|| Breakout::new(breakout_bars));
        if funding.is_none() && oi.is_none() && volume.is_none() && breakout.is_none() {
            return Err(p.error(
                "funding_above",
                "a scanner needs at least one condition: funding_above, oi_change_pct, volume_spike or breakout_bars",
            ));
        }
        let throttle = Throttle::new(p.duration_ms_or("throttle", DEFAULT_THROTTLE_MS)?);
        Ok(Self { symbol, funding, oi, volume, volume_bars, breakout, breakout_bars, throttle })
    }

    fn raise(
        &mut self,
        ctx: &mut StrategyCtx<'_>,
        condition: &'static str,
        message: String,
        values: BTreeMap<String, String>,
    ) {
        if self.throttle.allow(&self.symbol, condition, ctx.now_ms()) {
            ctx.alert(&self.symbol, condition, message, values);
        }
    }
}

impl Strategy for Scanner {
    fn kind(&self) -> &'static str {
        "scanner"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn warmup_bars(&self) -> usize {
        let volume = if self.volume.is_some() { self.volume_bars } else { 0 };
        volume.max(self.breakout_bars)
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        let spike = self.volume.as_mut().and_then(|v| v.on_bar(bar.volume));
        if let Some(s) = spike {
            let message = format!(
                "{} volume spike: {} is {}× the average {} of the last {} bars",
                self.symbol,
                amount(bar.volume),
                percent(s.ratio),
                amount(s.average),
                self.volume_bars
            );
            let values = values([
                ("volume", amount(bar.volume)),
                ("average", amount(s.average)),
                ("ratio", percent(s.ratio)),
                ("bars", self.volume_bars.to_string()),
                ("close", amount(bar.close)),
            ]);
            self.raise(ctx, "volume_spike", message, values);
        }
        let broke = self.breakout.as_mut().and_then(|b| b.on_bar(bar));
        if let Some(b) = broke {
            let (condition, side, level) = match b {
                Break::High(l) => ("breakout_high", "above the high", l),
                Break::Low(l) => ("breakout_low", "below the low", l),
            };
            let message = format!(
                "{} closed at {} {side} {} of the last {} bars",
                self.symbol,
                amount(bar.close),
                amount(level),
                self.breakout_bars
            );
            let values = values([
                ("close", amount(bar.close)),
                ("level", amount(level)),
                ("bars", self.breakout_bars.to_string()),
            ]);
            self.raise(ctx, condition, message, values);
        }
    }

    fn on_futures(&mut self, event: &FuturesEvent, ctx: &mut StrategyCtx<'_>) {
        if event.symbol() != &self.symbol {
            return;
        }
        match event {
            FuturesEvent::Mark(_) => {
                let Some(threshold) = self.funding else { return };
                let Some(snap) = ctx.futures(&self.symbol).cloned() else { return };
                if !threshold.exceeded(&snap) {
                    return;
                }
                let rate = snap.funding_rate_estimate.unwrap_or_default();
                let yearly = snap.funding_annualised().unwrap_or_default() * 100.0;
                let message = format!(
                    "{} funding estimate {} % per {} h ({:.2} % a year) is beyond {}",
                    self.symbol,
                    amount(rate * Decimal::ONE_HUNDRED),
                    snap.interval_hours,
                    yearly,
                    threshold.describe()
                );
                let mut v = values([
                    ("funding_rate", amount(rate)),
                    ("annualised_pct", format!("{yearly:.2}")),
                    ("interval_hours", snap.interval_hours.to_string()),
                    ("threshold", threshold.describe()),
                ]);
                if let Some(t) = snap.next_funding_time {
                    v.insert("next_funding_time".into(), t.to_string());
                }
                if let Some(m) = snap.mark_price {
                    v.insert("mark_price".into(), amount(m));
                }
                self.raise(ctx, "funding_above", message, v);
            }
            FuturesEvent::OpenInterest(o) => {
                let Some(rise) = self.oi.as_mut().and_then(|c| c.on_measure(o.ts_ms, o.open_interest)) else {
                    return;
                };
                let message = format!(
                    "{} open interest up {} % to {} since {}",
                    self.symbol,
                    percent(rise.change_pct),
                    amount(o.open_interest),
                    keel_core::when::utc(rise.before_ms),
                );
                let mut v = values([
                    ("open_interest", amount(o.open_interest)),
                    ("before", amount(rise.before)),
                    ("before_ms", rise.before_ms.to_string()),
                    ("change_pct", percent(rise.change_pct)),
                ]);
                if let Some(n) = ctx.futures(&self.symbol).and_then(|s| s.open_interest_notional()) {
                    v.insert("notional".into(), amount(n));
                }
                self.raise(ctx, "oi_change_pct", message, v);
            }
            // History seeds the baseline: no alert for what already happened.
            FuturesEvent::OpenInterestHistory(h) => {
                if let Some(c) = self.oi.as_mut() {
                    c.seed(h.ts_ms, h.sum_open_interest);
                }
            }
            FuturesEvent::Funding(_) | FuturesEvent::Interval(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::futures::{MarkPrice, OpenInterest};
    use keel_core::market::MarketEvent;
    use keel_core::strategy::StrategyRunner;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn scanner(params: &str) -> StrategyRunner {
        let table: toml::Table = toml::from_str(params).unwrap();
        let s = Scanner::from_params("BTCUSDT".into(), &Params::new(&table, "strategy[0].params")).unwrap();
        StrategyRunner::new("scan".into(), Box::new(s))
    }

    fn mark(rate: &str, ts: i64) -> FuturesEvent {
        FuturesEvent::Mark(MarkPrice {
            symbol: "BTCUSDT".into(),
            mark_price: d("100"),
            index_price: Some(d("100")),
            estimated_settle_price: None,
            funding_rate_estimate: Some(d(rate)),
            interest_rate: None,
            next_funding_time: Some(28_800_000),
            ts_ms: ts,
        })
    }

    /// Seeded bars: a steady range with one volume spike and one breakout.
    fn bars() -> Vec<Bar> {
        (0..30)
            .map(|i: i64| {
                let (close, volume) = match i {
                    25 => ("120", "50"), // above every high, on 5× the volume
                    _ => ("100", "10"),
                };
                Bar {
                    symbol: "BTCUSDT".into(),
                    open_time: i * 60_000,
                    close_time: i * 60_000 + 59_999,
                    open: d("100"),
                    high: d(close).max(d("101")),
                    low: d("99"),
                    close: d(close),
                    volume: d(volume),
                }
            })
            .collect()
    }

    #[test]
    fn funding_alerts_once_per_throttle_window_with_its_values() {
        let mut r = scanner("funding_above = \"0.0005\"\nthrottle = \"10m\"");
        // (strategy clock, rate, alerts)
        let cases = [
            (0, "0.0006", 1),
            (60_000, "0.0009", 0),
            (599_999, "-0.0007", 0),
            (600_000, "-0.0007", 1),
            (700_000, "0.0001", 0),
        ];
        for (now, rate, want) in cases {
            r.on_futures(&mark(rate, now), now).unwrap();
            let alerts: Vec<_> = r.drain_alerts().collect();
            assert_eq!(alerts.len(), want, "at {now}");
            if let Some(a) = alerts.first() {
                assert_eq!((a.condition.as_str(), a.ts_ms), ("funding_above", now));
                assert_eq!(a.values["funding_rate"], amount(d(rate)));
                assert_eq!(a.values["next_funding_time"], "28800000");
            }
        }
        assert_eq!(r.drain_intents().count(), 0, "a scanner never orders");
    }

    #[test]
    fn bars_raise_volume_and_breakout_alerts_and_open_interest_its_own() {
        let mut r = scanner(
            "volume_spike = \"3\"\nvolume_bars = 10\nbreakout_bars = 20\noi_change_pct = 5\noi_period = \"2m\"",
        );
        let mut seen = Vec::new();
        for b in bars() {
            r.on_market(&MarketEvent::Bar(b.clone()), b.close_time).unwrap();
            seen.extend(r.drain_alerts().map(|a| (a.condition, a.values.get("level").cloned())));
        }
        assert_eq!(seen, [("volume_spike".to_string(), None), ("breakout_high".to_string(), Some("101".to_string()))]);
        // Open interest: 100, 103, then 106 two minutes after the first (+6 %).
        for (t, oi) in [(0, "100"), (60_000, "103"), (120_000, "106")] {
            let e =
                FuturesEvent::OpenInterest(OpenInterest { symbol: "BTCUSDT".into(), open_interest: d(oi), ts_ms: t });
            r.on_futures(&e, t).unwrap();
        }
        let alerts: Vec<_> = r.drain_alerts().collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!((alerts[0].condition.as_str(), alerts[0].values["change_pct"].as_str()), ("oi_change_pct", "6"));
        assert_eq!(r.drain_intents().count(), 0);
    }

    #[test]
    fn open_interest_history_is_the_baseline_and_never_alerts_itself() {
        use keel_core::futures::OpenInterestStat;
        let mut r = scanner("oi_change_pct = 10\noi_period = \"1h\"");
        let min = 60_000;
        let hist = |t: i64, oi: &str| {
            FuturesEvent::OpenInterestHistory(OpenInterestStat {
                symbol: "BTCUSDT".into(),
                sum_open_interest: d(oi),
                sum_open_interest_value: d(oi) * d("100"),
                ts_ms: t,
            })
        };
        let live = |t: i64, oi: &str| {
            FuturesEvent::OpenInterest(OpenInterest { symbol: "BTCUSDT".into(), open_interest: d(oi), ts_ms: t })
        };
        // Two hours of 5-minute history, rising 50 % within the last hour, with
        // the periods between 30 and 50 min missing (no trades): nothing fires.
        let now = 120 * min;
        for m in (0..=115).step_by(5).filter(|m| !(30..=50).contains(m)) {
            let oi = if m < 60 { "100" } else { "150" };
            r.on_futures(&hist(m * min, oi), now).unwrap();
        }
        assert_eq!(r.drain_alerts().count(), 0, "history already happened: no alert");
        // The first live measurement compares with the latest history at least
        // a period before it: 150 at 60 min (+10.7 %).
        r.on_futures(&live(now, "166"), now).unwrap();
        let alerts: Vec<_> = r.drain_alerts().collect();
        assert_eq!(alerts.len(), 1, "the first live measurement alerts against the seeded baseline");
        assert_eq!(alerts[0].values["before"], "150");
        assert_eq!(alerts[0].values["before_ms"], (60 * min).to_string());
        assert_eq!(alerts[0].values["change_pct"], percent(d("16") * d("100") / d("150")));
        // A history row older than what is held is ignored.
        r.on_futures(&hist(now - min, "1"), now).unwrap();
        assert_eq!(r.drain_alerts().count(), 0);
        let snap = r.futures("BTCUSDT").unwrap();
        assert_eq!((snap.open_interest, snap.open_interest_ts_ms), (Some(d("166")), Some(now)));
    }

    #[test]
    fn a_scanner_needs_a_condition_and_valid_values() {
        // (params, the key the error names)
        let cases = [
            ("", "funding_above"),
            ("funding_above = \"lots\"", "funding_above"),
            ("funding_above = \"50%\"\nthrottle = \"soon\"", "throttle"),
            ("oi_change_pct = \"5\"\noi_period = \"0s\"", "oi_period"),
            ("breakout_bars = 0", "breakout_bars"),
        ];
        for (params, key) in cases {
            let table: toml::Table = toml::from_str(params).unwrap();
            let err = Scanner::from_params("X".into(), &Params::new(&table, "p")).unwrap_err();
            assert_eq!(err.key, format!("p.{key}"), "{params}: {err}");
        }
    }
}
