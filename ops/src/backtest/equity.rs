//! The equity curve: one `f64` per distinct bar close time and one bit of
//! exposure, 8⅛ bytes a point. The times are not stored: point `k` is at the
//! `k`-th distinct close time of the timeline it was run on.

use super::sim::Timeline;

/// The equity at one point in time, for statistics and the chart (`f64`;
/// the report's initial and final equity are exact `Decimal`s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EquityPoint {
    /// Time (a bar's close time).
    pub ts_ms: i64,
    /// Equity in the report currency.
    pub equity: f64,
    /// True while some traded position is open.
    pub exposed: bool,
}

/// Equity after each distinct bar close time of a timeline.
#[derive(Clone, Default)]
pub struct EquityCurve {
    timeline: Timeline,
    equity: Vec<f64>,
    /// Exposure, one bit a point.
    exposed: Vec<u64>,
}

impl std::fmt::Debug for EquityCurve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EquityCurve").field("points", &self.equity.len()).field("last", &self.last()).finish()
    }
}

impl EquityCurve {
    /// An empty curve over `timeline`'s close times, with room for all of them.
    pub fn new(timeline: &Timeline) -> Self {
        Self { timeline: timeline.clone(), equity: Vec::with_capacity(timeline.len()), exposed: Vec::new() }
    }

    /// Adds the point of the next distinct close time.
    #[inline]
    pub fn push(&mut self, equity: f64, exposed: bool) {
        let n = self.equity.len();
        if n.is_multiple_of(64) {
            self.exposed.push(0);
        }
        if exposed {
            self.exposed[n / 64] |= 1 << (n % 64);
        }
        self.equity.push(equity);
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.equity.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.equity.is_empty()
    }

    /// The equity values, oldest first.
    pub fn values(&self) -> &[f64] {
        &self.equity
    }

    /// Points with exposure.
    pub fn exposed_count(&self) -> usize {
        self.exposed.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The points, oldest first.
    pub fn iter(&self) -> Points<'_> {
        Points { times: self.timeline.close_times().peekable(), curve: self, next: 0 }
    }

    /// The step between consecutive points when they are evenly spaced (one
    /// symbol's bars at a fixed interval).
    pub fn regular_step(&self) -> Option<i64> {
        self.timeline.regular_step()
    }

    /// Point `k`'s time where the timeline tells it directly (one symbol).
    #[inline]
    fn direct_time(&self, k: usize) -> Option<i64> {
        self.timeline.distinct_close_time(k)
    }

    /// The last point.
    pub fn last(&self) -> Option<EquityPoint> {
        self.iter().last()
    }
}

/// Iterator over an [`EquityCurve`]'s points.
#[derive(Clone)]
pub struct Points<'a> {
    times: std::iter::Peekable<super::sim::CloseTimes<'a>>,
    curve: &'a EquityCurve,
    next: usize,
}

impl Iterator for Points<'_> {
    type Item = EquityPoint;

    #[inline]
    fn next(&mut self) -> Option<EquityPoint> {
        let k = self.next;
        let equity = *self.curve.equity.get(k)?;
        let ts_ms = match self.curve.direct_time(k) {
            Some(t) => t,
            None => {
                let t = self.times.next()?;
                while self.times.next_if_eq(&t).is_some() {}
                t
            }
        };
        let exposed = self.curve.exposed[k / 64] >> (k % 64) & 1 == 1;
        self.next += 1;
        Some(EquityPoint { ts_ms, equity, exposed })
    }

    fn nth(&mut self, n: usize) -> Option<EquityPoint> {
        // One symbol: jump; otherwise walk the merged close times.
        if self.curve.direct_time(self.next).is_some() {
            self.next = self.next.saturating_add(n).min(self.curve.equity.len());
            return self.next();
        }
        for _ in 0..n {
            self.next()?;
        }
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.curve.equity.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Points<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::market::Bar;
    use keel_core::{Decimal, Symbol};

    fn bars(symbol: &str, times: &[(i64, i64)]) -> (Symbol, Vec<Bar>) {
        let symbol = Symbol::new(symbol);
        let one = Decimal::ONE;
        let bars = times
            .iter()
            .map(|&(open_time, close_time)| Bar {
                symbol: symbol.clone(),
                open_time,
                close_time,
                open: one,
                high: one,
                low: one,
                close: one,
                volume: one,
            })
            .collect();
        (symbol, bars)
    }

    #[test]
    fn points_take_the_timelines_distinct_close_times() {
        // Hourly and two-hourly bars: they close together every other hour.
        let timeline = Timeline::new(vec![
            bars("AAA", &[(0, 59), (60, 119), (120, 179), (180, 239)]),
            bars("BBB", &[(0, 119), (120, 239)]),
        ]);
        let steps: Vec<(usize, usize)> = timeline.steps().collect();
        assert_eq!(steps, [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1)], "by close time, then symbol");
        let closes: Vec<i64> = timeline.close_times().collect();
        assert_eq!(closes, [59, 119, 119, 179, 239, 239]);
        let mut curve = EquityCurve::new(&timeline);
        for (k, exposed) in [false, true, true, false].into_iter().enumerate() {
            curve.push(100.0 + k as f64, exposed);
        }
        let points: Vec<(i64, f64, bool)> = curve.iter().map(|p| (p.ts_ms, p.equity, p.exposed)).collect();
        assert_eq!(points, [(59, 100.0, false), (119, 101.0, true), (179, 102.0, true), (239, 103.0, false)]);
        assert_eq!((curve.len(), curve.exposed_count()), (4, 2));
        assert_eq!(curve.last().map(|p| p.ts_ms), Some(239));
    }

    #[test]
    fn exposure_bits_cross_words() {
        let timeline = Timeline::new(vec![bars("AAA", &(0..130).map(|i| (i * 60, i * 60 + 59)).collect::<Vec<_>>())]);
        let mut curve = EquityCurve::new(&timeline);
        for k in 0..130 {
            curve.push(k as f64, k % 3 == 0);
        }
        let exposed: Vec<bool> = curve.iter().map(|p| p.exposed).collect();
        assert_eq!(exposed, (0..130).map(|k| k % 3 == 0).collect::<Vec<_>>());
        assert_eq!(curve.exposed_count(), 44);
    }
}
