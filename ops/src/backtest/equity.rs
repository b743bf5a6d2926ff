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
        let equity = *self.curve.equity.get(self.next)?;
        let ts_ms = self.times.next()?;
        while self.times.next_if_eq(&ts_ms).is_some() {}
        let exposed = self.curve.exposed[self.next / 64] >> (self.next % 64) & 1 == 1;
        self.next += 1;
        Some(EquityPoint { ts_ms, equity, exposed })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.curve.equity.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Points<'_> {}
