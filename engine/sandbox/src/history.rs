//! Deterministic bars before the live window: what `klines` serves for open
//! times older than the first bar the running market kept, and what the
//! kline archives ([`super::archive`]) are built from.
//!
//! The live market is a random walk that starts when the sandbox starts, so
//! its bars differ from run to run. A download of 2024 needs bars that are
//! the same in every request and after every restart: here a bar is a pure
//! function of the symbol's config (its `seed`, `start_price`, `volatility`,
//! tick and step sizes) and the minute. The price level is a sum of sines
//! over periods from minutes to most of a year, with phases drawn from the
//! seed; a 1m bar opens at the level of its minute and closes at the next
//! minute's (so each bar opens where the previous one closed), with wicks and
//! volume from a hash of the seed and the minute. Longer intervals aggregate
//! their minutes, as the live klines do. Over the day before the live window
//! the path bends to meet the live market's first open ([`Seam`]), so a
//! request reaching back across the window's start sees no jump; only those
//! bars depend on when the sandbox started.
//!
//! Configured maintenance gaps (`[[sandbox.archive.gaps]]`) remove the
//! minutes they cover from both REST and the archives: a longer bar over a
//! gap is made of the minutes outside it, and a bar with none is missing, as
//! on Binance.

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;

use keel_core::market::Bar;

use super::archive::ArchiveConfig;
use super::exchange::BAR_MS;
use super::tape::BarStats;
use keel_core::config::SymbolConfig;

/// Most minutes one request may generate (about four years of 1m bars;
/// a `1w` page of 1000 bars is ten million minutes, so it is cut).
const MAX_MINUTES: i64 = 3_000_000;

/// Periods of the level's sines, in minutes: 17 minutes to 250 days.
const PERIODS_MIN: [f64; 8] = [17.0, 73.0, 246.0, 1_141.0, 4_752.0, 18_720.0, 87_840.0, 360_000.0];

/// SplitMix64: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from the seed, a stream and a minute.
fn unit(seed: u64, stream: u64, minute: i64) -> f64 {
    let h = mix(mix(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407)) ^ minute as u64);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The symbol's own price level at minute `minute` (minutes since the epoch).
fn raw_level(sym: &SymbolConfig, minute: i64) -> f64 {
    let start = sym.start_price.to_f64().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let vol = sym.volatility.clamp(0.0, 10.0);
    let longest = PERIODS_MIN[PERIODS_MIN.len() - 1];
    let mut x = 0.0;
    for (k, period) in PERIODS_MIN.iter().enumerate() {
        let phase = unit(sym.seed, 1000 + k as u64, 0) * std::f64::consts::TAU;
        let amplitude = 0.2 * vol * (period / longest).sqrt();
        x += amplitude * (std::f64::consts::TAU * minute as f64 / period + phase).sin();
    }
    start * x.exp()
}

/// `v` as a multiple of `step` (at least one step), rounded as `how` says.
fn to_step(v: f64, step: Decimal, how: Round) -> Decimal {
    let d = Decimal::from_f64(v).unwrap_or(step);
    if step <= Decimal::ZERO {
        return d;
    }
    let n = d / step;
    let n = match how {
        Round::Up => n.ceil(),
        Round::Down => n.floor(),
        Round::Nearest => n.round(),
    };
    (n * step).max(step).normalize()
}

#[derive(Clone, Copy)]
enum Round {
    Up,
    Down,
    Nearest,
}

/// The live window's first 1m bar, where the past must end: over the day
/// before it the path bends to that bar's open, so a chart or a warm-up
/// reaching back across it sees no jump. Older bars are the symbol's own
/// path, the same in every run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seam {
    /// Its open time.
    pub at: i64,
    /// Its open price.
    pub open: f64,
}

impl Seam {
    /// The seam of live 1m bars (none without any).
    pub(crate) fn of(first_live: Option<&Bar>) -> Option<Seam> {
        first_live.map(|b| Seam { at: b.open_time, open: b.open.to_f64().unwrap_or(0.0) })
    }
}

/// The day over which the past bends to the seam.
const BLEND_MS: i64 = 86_400_000;

/// One symbol's past: its config, the configured gaps, and where it meets
/// the live window.
pub(crate) struct Past<'a> {
    /// The symbol.
    pub sym: &'a SymbolConfig,
    /// Gaps (and archive faults).
    pub cfg: &'a ArchiveConfig,
    /// Where the live window starts.
    pub seam: Option<Seam>,
}

impl Past<'_> {
    /// The level at minute `minute`, bent towards the seam over the day
    /// before it.
    fn level(&self, minute: i64) -> f64 {
        let own = raw_level(self.sym, minute);
        let Some(seam) = self.seam.filter(|s| s.open > 0.0) else { return own };
        let t = minute * BAR_MS;
        let w = ((t - (seam.at - BLEND_MS)) as f64 / BLEND_MS as f64).clamp(0.0, 1.0);
        if w == 0.0 {
            return own;
        }
        own * (seam.open / raw_level(self.sym, seam.at.div_euclid(BAR_MS))).powf(w)
    }

    /// The 1m bar opening at `open_time` (a whole minute).
    pub(crate) fn minute_bar(&self, open_time: i64) -> (Bar, BarStats) {
        let sym = self.sym;
        let minute = open_time.div_euclid(BAR_MS);
        let (o, c) = (self.level(minute), self.level(minute + 1));
        let wick = 0.0003 * sym.volatility.clamp(0.01, 10.0);
        let high = o.max(c) * (1.0 + wick * unit(sym.seed, 1, minute));
        let low = o.min(c) * (1.0 - wick * unit(sym.seed, 2, minute));
        let tick = sym.tick_size;
        let open = to_step(o, tick, Round::Nearest);
        let close = to_step(c, tick, Round::Nearest);
        let high = to_step(high, tick, Round::Up).max(open).max(close);
        let low = to_step(low, tick, Round::Down).min(open).min(close);
        let base = sym.touch_qty.to_f64().unwrap_or(1.0) * 20.0;
        let volume = to_step(base * (0.25 + 1.5 * unit(sym.seed, 3, minute)), sym.step_size, Round::Down);
        let bar = Bar {
            symbol: keel_core::Symbol::new(&sym.symbol),
            open_time,
            close_time: open_time + BAR_MS - 1,
            open,
            high,
            low,
            close,
            volume,
        };
        let quote = (volume * (open + close) / Decimal::TWO).round_dp(8);
        let stats = BarStats {
            first_id: None,
            last_id: None,
            count: 1 + (unit(sym.seed, 4, minute) * 60.0) as u64,
            quote_volume: quote,
            taker_buy_base: (volume / Decimal::TWO).round_dp(8),
            taker_buy_quote: (quote / Decimal::TWO).round_dp(8),
        };
        (bar, stats)
    }

    /// Where the configured gap holding the minute opening at `t` ends, if one does.
    fn gap_end(&self, t: i64) -> Option<i64> {
        let symbol = &self.sym.symbol;
        self.cfg.gaps.iter().filter(|g| &g.symbol == symbol && g.from_ms <= t && t < g.to_ms).map(|g| g.to_ms).max()
    }

    /// Bars of `interval` from the bucket holding `from` up to (not
    /// including) `to`, at most `max` of them (buckets whose minutes all
    /// fall in a gap are missing; generation stops after [`MAX_MINUTES`]
    /// minutes).
    pub(crate) fn bars(&self, interval: i64, from: i64, to: i64, max: usize) -> Vec<(Bar, BarStats)> {
        let mut out: Vec<(Bar, BarStats)> = Vec::new();
        let mut bucket = from - from.rem_euclid(interval);
        let mut minutes = 0i64;
        while bucket < to && out.len() < max && minutes < MAX_MINUTES {
            let end = (bucket + interval).min(to);
            let mut agg: Option<(Bar, BarStats)> = None;
            let mut t = bucket;
            while t < end {
                if let Some(skip) = self.gap_end(t) {
                    t = skip + (BAR_MS - skip.rem_euclid(BAR_MS)) % BAR_MS;
                    continue;
                }
                minutes += 1;
                let (b, s) = self.minute_bar(t);
                match agg.as_mut() {
                    None => agg = Some((Bar { open_time: bucket, close_time: bucket + interval - 1, ..b }, s)),
                    Some((a, st)) => {
                        a.high = a.high.max(b.high);
                        a.low = a.low.min(b.low);
                        a.close = b.close;
                        a.volume += b.volume;
                        st.merge(&s);
                    }
                }
                t += BAR_MS;
            }
            // A bucket cut by `to` is not complete: it is not served.
            if let Some(a) = agg.filter(|_| end == bucket + interval) {
                out.push(a);
            }
            bucket += interval;
        }
        out
    }

    /// `klines` over the past: `live` (the aggregated live bars, oldest
    /// first) preceded by the past's bars from `start` (or, with only `end`,
    /// the `limit` buckets up to it) until the live window's first bucket.
    pub(crate) fn with_live(
        &self,
        interval: i64,
        start: Option<i64>,
        end: Option<i64>,
        limit: usize,
        live: Vec<(Bar, BarStats)>,
    ) -> Vec<(Bar, BarStats)> {
        let Some(live_first) = live.first().map(|(b, _)| b.open_time) else { return live };
        let stop = end.map_or(live_first, |e| live_first.min(e.saturating_add(1)));
        let from = match (start, end) {
            (Some(s), _) => s,
            (None, Some(e)) if e < live_first => e - e.rem_euclid(interval) - (limit as i64 - 1).max(0) * interval,
            _ => return live,
        };
        if from >= stop {
            return live;
        }
        let mut past = self.bars(interval, from, stop, limit + 1);
        past.extend(live);
        past
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::GapConfig;

    fn btc() -> SymbolConfig {
        crate::default_symbols().remove(0)
    }

    fn bars(
        sym: &SymbolConfig,
        cfg: &ArchiveConfig,
        interval: i64,
        from: i64,
        to: i64,
        max: usize,
    ) -> Vec<(Bar, BarStats)> {
        Past { sym, cfg, seam: None }.bars(interval, from, to, max)
    }

    const T2024: i64 = 1_704_067_200_000;

    #[test]
    fn bars_are_the_same_every_time_and_chain() {
        let cfg = ArchiveConfig::default();
        let a = bars(&btc(), &cfg, BAR_MS, T2024, T2024 + 3 * 3_600_000, 10_000);
        let b = bars(&btc(), &cfg, BAR_MS, T2024, T2024 + 3 * 3_600_000, 10_000);
        assert_eq!(a, b);
        assert_eq!(a.len(), 180);
        for w in a.windows(2) {
            assert_eq!(w[0].0.close, w[1].0.open, "each bar opens at the previous close");
            assert_eq!(w[1].0.open_time - w[0].0.open_time, BAR_MS);
        }
        for (bar, _) in &a {
            assert!(bar.low <= bar.open.min(bar.close) && bar.high >= bar.open.max(bar.close), "{bar:?}");
            assert!(bar.low > Decimal::ZERO && bar.volume > Decimal::ZERO);
        }
        let eth = bars(&crate::default_symbols().remove(1), &cfg, BAR_MS, T2024, T2024 + BAR_MS, 1);
        assert_ne!(eth[0].0.close, a[0].0.close);
    }

    #[test]
    fn hours_aggregate_minutes_and_gaps_remove_them() {
        let gap = GapConfig { symbol: "BTCUSDT".into(), from_ms: T2024 + 3_600_000, to_ms: T2024 + 2 * 3_600_000 };
        let cfg = ArchiveConfig { gaps: vec![gap], ..ArchiveConfig::default() };
        let minutes = bars(&btc(), &ArchiveConfig::default(), BAR_MS, T2024, T2024 + 3_600_000, 100);
        let hours = bars(&btc(), &cfg, 3_600_000, T2024, T2024 + 4 * 3_600_000, 100);
        let times: Vec<i64> = hours.iter().map(|(b, _)| b.open_time).collect();
        assert_eq!(times, [T2024, T2024 + 2 * 3_600_000, T2024 + 3 * 3_600_000], "the hour in the gap is missing");
        assert_eq!(hours[0].0.open, minutes[0].0.open);
        assert_eq!(hours[0].0.close, minutes[59].0.close);
        assert_eq!(hours[0].0.high, minutes.iter().map(|(b, _)| b.high).max().unwrap());
        let in_gap = bars(&btc(), &cfg, BAR_MS, T2024 + 3_590_000, T2024 + 2 * 3_600_000 + 2 * BAR_MS, 100);
        assert_eq!(in_gap.len(), 3, "the minute before the gap and two after it");
    }

    #[test]
    fn paging_with_a_start_reaches_the_live_window_without_a_hole() {
        let cfg = ArchiveConfig::default();
        let live_first = T2024 + 10 * BAR_MS;
        let live = bars(&btc(), &cfg, BAR_MS, live_first, live_first + 5 * BAR_MS, 100);
        let btc = btc();
        let got = Past { sym: &btc, cfg: &cfg, seam: None }.with_live(BAR_MS, Some(T2024), None, 1000, live);
        let times: Vec<i64> = got.iter().map(|(b, _)| b.open_time).collect();
        assert_eq!(times, (0..15).map(|i| T2024 + i * BAR_MS).collect::<Vec<_>>());
    }

    #[test]
    fn the_past_meets_the_live_window_without_a_jump_and_older_bars_stay_the_same() {
        let (sym, cfg) = (btc(), ArchiveConfig::default());
        let at = T2024 + 3 * 86_400_000;
        let seam = Seam { at, open: 12_345.67 };
        let bent = Past { sym: &sym, cfg: &cfg, seam: Some(seam) };
        let own = Past { sym: &sym, cfg: &cfg, seam: None };
        let last = bent.minute_bar(at - BAR_MS).0;
        assert_eq!(last.close, Decimal::new(1_234_567, 2), "the last bar before the live window closes at its open");
        let old = at - BLEND_MS - 10 * BAR_MS;
        assert_eq!(bent.bars(BAR_MS, old, old + 5 * BAR_MS, 10), own.bars(BAR_MS, old, old + 5 * BAR_MS, 10));
        let day = bent.bars(BAR_MS, at - BLEND_MS, at, 2000);
        for w in day.windows(2) {
            assert_eq!(w[0].0.close, w[1].0.open, "still chained while bending");
        }
    }
}
