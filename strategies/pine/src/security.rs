//! `request.security` on higher timeframes of the chart's own symbol: the timeframes Keel accepts,
//! their UTC period boundaries, and the higher-timeframe bars built from the chart's bars.
//!
//! Periods are aligned to UTC as Binance aligns its klines: minutes from 00:00 UTC, days at
//! 00:00 UTC, weeks on Monday 00:00 UTC, months on the 1st at 00:00 UTC. A higher-timeframe bar is
//! complete on the chart bar whose close (open time + the chart's interval) reaches the period's
//! end; when the data skips that bar, it is complete when the first bar of a later period arrives.

use crate::program::Bar;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// A timeframe `request.security` reads: minutes that divide a day, a day, a week or a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeframe {
    /// `"1"` to `"1440"`: a number of minutes that divides a day (`"60"`, `"240"`...).
    Minutes(u32),
    /// `"D"` or `"1D"` (also `"1440"`'s calendar twin): 00:00 to 24:00 UTC.
    Day,
    /// `"W"` or `"1W"`: Monday 00:00 UTC to the next Monday.
    Week,
    /// `"M"` or `"1M"`: the 1st of the month 00:00 UTC to the 1st of the next.
    Month,
}

impl Timeframe {
    /// Parses Pine's timeframe text; `None` for anything else (seconds, multi-day periods, minutes
    /// that do not divide a day), which the compiler refuses.
    pub fn parse(text: &str) -> Option<Timeframe> {
        match text {
            "D" | "1D" => return Some(Timeframe::Day),
            "W" | "1W" => return Some(Timeframe::Week),
            "M" | "1M" => return Some(Timeframe::Month),
            _ => {}
        }
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let m: u32 = text.parse().ok()?;
        (m > 0 && 1440 % m == 0).then_some(Timeframe::Minutes(m))
    }

    /// The period's fixed length in ms (`None` for a month).
    fn fixed_ms(self) -> Option<i64> {
        match self {
            Timeframe::Minutes(m) => Some(i64::from(m) * MINUTE_MS),
            Timeframe::Day => Some(DAY_MS),
            Timeframe::Week => Some(7 * DAY_MS),
            Timeframe::Month => None,
        }
    }

    /// Why the chart's bar interval (ms) cannot build this timeframe, or `None` when it can: the
    /// timeframe must not be lower, and its period boundaries must fall on chart-bar boundaries.
    pub fn unfit_for(self, interval_ms: i64) -> Option<String> {
        if interval_ms <= 0 {
            return Some(format!("the chart's bar interval must be positive, got {interval_ms} ms"));
        }
        let len = self.fixed_ms().unwrap_or(28 * DAY_MS);
        if len < interval_ms {
            return Some(format!(
                "is a lower timeframe than the chart's bars ({}): only higher timeframes of the chart are supported",
                interval_text(interval_ms)
            ));
        }
        let fits = match self {
            Timeframe::Minutes(_) | Timeframe::Day => len % interval_ms == 0,
            // Week and month boundaries are day boundaries: daily or finer bars that divide a day,
            // or exactly weekly bars for a week.
            Timeframe::Week => DAY_MS % interval_ms == 0 || interval_ms == len,
            Timeframe::Month => DAY_MS % interval_ms == 0,
        };
        (!fits).then(|| format!("is not a whole multiple of the chart's bar interval ({})", interval_text(interval_ms)))
    }

    /// How many chart bars of `interval_ms` one period spans at most (a month counts 31 days).
    pub fn chart_bars_per_period(self, interval_ms: i64) -> usize {
        let len = self.fixed_ms().unwrap_or(31 * DAY_MS);
        usize::try_from((len + interval_ms.max(1) - 1) / interval_ms.max(1)).unwrap_or(usize::MAX)
    }

    /// The start (ms, UTC) of the period holding `t`.
    pub fn period_start(self, t: i64) -> i64 {
        match self {
            Timeframe::Minutes(_) | Timeframe::Day => {
                let len = self.fixed_ms().unwrap_or(DAY_MS);
                t.div_euclid(len) * len
            }
            Timeframe::Week => {
                // 1970-01-01 was a Thursday: Monday is 3 days before the epoch's weekday 0.
                let day = t.div_euclid(DAY_MS);
                (day - (day + 3).rem_euclid(7)) * DAY_MS
            }
            Timeframe::Month => {
                let (y, m, _) = civil_from_days(t.div_euclid(DAY_MS));
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }

    /// The end (ms, UTC) of the period starting at `start`: the next period's start.
    pub fn period_end(self, start: i64) -> i64 {
        match self.fixed_ms() {
            Some(len) => start + len,
            None => {
                let (y, m, _) = civil_from_days(start.div_euclid(DAY_MS));
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }
}

/// An interval in words for messages (`15 minutes`, `1 day`, `90000 ms`).
fn interval_text(ms: i64) -> String {
    if ms % DAY_MS == 0 {
        format!("{} day(s)", ms / DAY_MS)
    } else if ms % MINUTE_MS == 0 {
        format!("{} minute(s)", ms / MINUTE_MS)
    } else {
        format!("{ms} ms")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01 (the inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The higher-timeframe bar being built from the chart's bars, and how many have completed.
#[derive(Debug, Clone, Default)]
pub(crate) struct HtfBuilder {
    /// The open bar: its time is the period's start.
    open: Option<Bar>,
    /// Completed bars so far: the higher timeframe's `bar_index` of the next completed bar.
    pub(crate) completed: i64,
}

impl HtfBuilder {
    /// Adds a chart bar (open time `bar.time`, lasting `interval_ms`). Returns the bar that
    /// completed before it (a period whose closing chart bar the data skipped) and the bar that it
    /// completes, in that order; either may be absent.
    pub(crate) fn push(&mut self, tf: Timeframe, interval_ms: i64, bar: &Bar) -> (Option<Bar>, Option<Bar>) {
        let start = tf.period_start(bar.time);
        let skipped = match self.open {
            Some(b) if b.time != start => self.open.take(),
            _ => None,
        };
        match &mut self.open {
            Some(b) => {
                b.high = b.high.max(bar.high);
                b.low = b.low.min(bar.low);
                b.close = bar.close;
                b.volume += bar.volume;
            }
            None => self.open = Some(Bar { time: start, ..*bar }),
        }
        let done = if bar.time + interval_ms >= tf.period_end(start) { self.open.take() } else { None };
        (skipped, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    // 2023-11-13 00:00 UTC, a Monday.
    const MONDAY: i64 = 1_699_833_600_000;

    #[test]
    fn timeframes_parse_and_refuse() {
        let cases: &[(&str, Option<Timeframe>)] = &[
            ("60", Some(Timeframe::Minutes(60))),
            ("240", Some(Timeframe::Minutes(240))),
            ("1", Some(Timeframe::Minutes(1))),
            ("1440", Some(Timeframe::Minutes(1440))),
            ("D", Some(Timeframe::Day)),
            ("1D", Some(Timeframe::Day)),
            ("W", Some(Timeframe::Week)),
            ("1W", Some(Timeframe::Week)),
            ("M", Some(Timeframe::Month)),
            ("90", Some(Timeframe::Minutes(90))),
            ("100", None),
            ("0", None),
            ("2D", None),
            ("30S", None),
            ("", None),
            ("-60", None),
        ];
        for (text, want) in cases {
            assert_eq!(Timeframe::parse(text), *want, "{text:?}");
        }
    }

    #[test]
    fn periods_align_to_utc_like_binance() {
        let t = MONDAY + 2 * 86_400_000 + 5 * H + 17 * 60_000; // Wednesday 05:17
        let cases: &[(Timeframe, i64, i64)] = &[
            (Timeframe::Minutes(60), MONDAY + 2 * 86_400_000 + 5 * H, H),
            (Timeframe::Minutes(240), MONDAY + 2 * 86_400_000 + 4 * H, 4 * H),
            (Timeframe::Day, MONDAY + 2 * 86_400_000, 86_400_000),
            (Timeframe::Week, MONDAY, 7 * 86_400_000),
            // November 2023 starts on 2023-11-01 and lasts 30 days.
            (Timeframe::Month, 1_698_796_800_000, 30 * 86_400_000),
        ];
        for (tf, start, len) in cases {
            assert_eq!(tf.period_start(t), *start, "{tf:?}");
            assert_eq!(tf.period_end(*start) - start, *len, "{tf:?}");
        }
        // A Monday belongs to its own week; the Sunday before to the previous one.
        assert_eq!(Timeframe::Week.period_start(MONDAY), MONDAY);
        assert_eq!(Timeframe::Week.period_start(MONDAY - 1), MONDAY - 7 * 86_400_000);
        // December rolls into the next year.
        let dec = days_from_civil(2023, 12, 15) * DAY_MS;
        assert_eq!(
            Timeframe::Month.period_end(Timeframe::Month.period_start(dec)),
            days_from_civil(2024, 1, 1) * DAY_MS
        );
    }

    #[test]
    fn the_chart_interval_must_build_the_timeframe() {
        let m = 60_000;
        let cases: &[(Timeframe, i64, Option<&str>)] = &[
            (Timeframe::Minutes(60), 15 * m, None),
            (Timeframe::Minutes(60), 60 * m, None),
            (Timeframe::Minutes(5), 15 * m, Some("lower timeframe")),
            (Timeframe::Minutes(60), 45 * m, Some("whole multiple")),
            (Timeframe::Day, 4 * H, None),
            (Timeframe::Week, 86_400_000, None),
            (Timeframe::Week, 7 * 86_400_000, None),
            (Timeframe::Month, 86_400_000, None),
            (Timeframe::Day, 7 * 86_400_000, Some("lower timeframe")),
            (Timeframe::Minutes(60), 0, Some("positive")),
        ];
        for (tf, interval, want) in cases {
            let got = tf.unfit_for(*interval);
            match want {
                None => assert_eq!(got, None, "{tf:?} on {interval}"),
                Some(w) => assert!(got.as_deref().is_some_and(|g| g.contains(w)), "{tf:?} on {interval}: {got:?}"),
            }
        }
    }

    #[test]
    fn an_hour_completes_on_its_last_quarter_and_after_a_gap() {
        let q = 15 * 60_000;
        let bar =
            |i: i64, c: f64| Bar { time: MONDAY + i * q, open: c, high: c + 1.0, low: c - 1.0, close: c, volume: 1.0 };
        let mut b = HtfBuilder::default();
        let tf = Timeframe::Minutes(60);
        for i in 0..3 {
            assert_eq!(b.push(tf, q, &bar(i, 10.0 + i as f64)), (None, None));
        }
        let (skipped, done) = b.push(tf, q, &bar(3, 13.0));
        assert_eq!(skipped, None);
        assert_eq!(
            done,
            Some(Bar { time: MONDAY, open: 10.0, high: 14.0, low: 9.0, close: 13.0, volume: 4.0 }),
            "the hour completes on the bar that closes it"
        );
        // The next hour's last quarter is missing: it completes when the following hour starts.
        for i in 4..7 {
            assert_eq!(b.push(tf, q, &bar(i, 20.0)), (None, None));
        }
        let (skipped, done) = b.push(tf, q, &bar(8, 30.0));
        assert_eq!(skipped.map(|s| (s.time, s.close, s.volume)), Some((MONDAY + H, 20.0, 3.0)));
        assert_eq!(done, None);
    }
}
