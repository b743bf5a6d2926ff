//! The exit levels of a long position and when they are reached: on a
//! price (live) and along a bar's path (backtest).

use rust_decimal::Decimal;

use super::{Band, ExitReason, ExitSpec, ExitState};

impl ExitState {
    /// The stop price: the strategy's, else `entry × (1 − stop_loss)`.
    pub fn stop_level(&self, spec: &ExitSpec) -> Option<Decimal> {
        self.stop_price.or_else(|| spec.stop_loss.map(|p| self.entry_price * (Decimal::ONE - p.fraction())))
    }

    /// The take-profit price: the strategy's, else `entry × (1 + take_profit)`.
    pub fn take_profit_level(&self, spec: &ExitSpec) -> Option<Decimal> {
        self.take_profit_price.or_else(|| spec.take_profit.map(|p| self.entry_price * (Decimal::ONE + p.fraction())))
    }

    /// The trailing stop's price once armed: `best − offset` for the
    /// strategy's trail in prices ([`ExitState::trail`]), else
    /// `best × (1 − distance)`.
    pub fn trailing_level(&self, spec: &ExitSpec) -> Option<Decimal> {
        if !self.trailing_armed {
            return None;
        }
        if let Some(t) = self.trail {
            return Some(self.best_price - t.offset);
        }
        let t = spec.trailing_stop?;
        Some(self.best_price * (Decimal::ONE - t.distance.fraction()))
    }

    /// The minimal-ROI price after holding until `now_ms`: the row with the
    /// largest time held not above the time held gives the profit `p`;
    /// the price is `entry × (1 + p)`.
    pub fn roi_level(&self, spec: &ExitSpec, now_ms: i64) -> Option<Decimal> {
        let held = now_ms.saturating_sub(self.opened_ms);
        // In any order (a spec that was not validated is not sorted).
        let step = spec.roi.iter().filter(|s| s.after.0 <= held).max_by_key(|s| s.after)?;
        Some(self.entry_price * (Decimal::ONE + step.profit.fraction()))
    }

    /// The band within which no exit fires at `now_ms` (see [`Band`]).
    pub fn band(&self, spec: &ExitSpec, now_ms: i64) -> Band {
        let held = now_ms.saturating_sub(self.opened_ms);
        let next_roi =
            spec.roi.iter().filter(|s| s.after.0 > held).map(|s| self.opened_ms.saturating_add(s.after.0)).min();
        let until_ms = next_roi.unwrap_or(i64::MAX).min(self.deadline(spec).unwrap_or(i64::MAX));
        let low = match (self.stop_level(spec), self.trailing_level(spec)) {
            (Some(s), Some(t)) => Some(s.max(t)),
            (s, t) => s.or(t),
        };
        let high = match (self.take_profit_level(spec), self.roi_level(spec, now_ms)) {
            (Some(t), Some(r)) => Some(t.min(r)),
            (t, r) => t.or(r),
        };
        Band { low, high, until_ms, trails: spec.trailing_stop.is_some() || self.trail.is_some() }
    }

    /// When `max_hold` runs out (ms).
    pub fn deadline(&self, spec: &ExitSpec) -> Option<i64> {
        spec.max_hold.map(|m| self.opened_ms.saturating_add(m.0))
    }

    /// Moves the best price up to `price` and arms the trailing stop once
    /// the best reaches `entry × (1 + activate)` (or the trail's activation
    /// price); true when anything changed.
    pub fn see_best(&mut self, spec: &ExitSpec, price: Decimal) -> bool {
        let mut changed = false;
        if price > self.best_price {
            self.best_price = price;
            changed = true;
        }
        let activate = match (self.trail, spec.trailing_stop) {
            (Some(t), _) => Some(t.activate),
            (None, Some(t)) => Some(self.entry_price * (Decimal::ONE + t.activate.fraction())),
            (None, None) => None,
        };
        if let Some(activate) = activate {
            if !self.trailing_armed && self.best_price >= activate {
                self.trailing_armed = true;
                changed = true;
            }
        }
        changed
    }

    /// The engine-side exit `price` reaches at `now_ms`, if any: max hold,
    /// then the stop, the trailing stop, the take-profit and ROI. With
    /// `venue_holds` the stop-loss and take-profit rest at the venue and are
    /// not evaluated here.
    pub fn trigger(&self, spec: &ExitSpec, price: Decimal, now_ms: i64, venue_holds: bool) -> Option<ExitReason> {
        if self.deadline(spec).is_some_and(|d| now_ms >= d) {
            return Some(ExitReason::MaxHold);
        }
        if !venue_holds && self.stop_level(spec).is_some_and(|s| price <= s) {
            return Some(ExitReason::StopLoss);
        }
        if self.trailing_level(spec).is_some_and(|s| price <= s) {
            return Some(ExitReason::TrailingStop);
        }
        if !venue_holds && self.take_profit_level(spec).is_some_and(|t| price >= t) {
            return Some(ExitReason::TakeProfit);
        }
        if self.roi_level(spec, now_ms).is_some_and(|r| price >= r) {
            return Some(ExitReason::Roi);
        }
        None
    }

    /// The exit a bar reaches and its price, following the bar's path (the
    /// backtest; every level is evaluated here, whatever the placement):
    ///
    /// - at the open: `max_hold` once the bar opens at or after the
    ///   deadline; a stop (or armed trailing stop) at or above the open, or a
    ///   take-profit (or ROI price) at or below it, fills at the open (a gap
    ///   fills at the worse price, not at the level);
    /// - then open → high → low → close when the high is nearer the open than
    ///   the low, else open → low → high → close: on the way down the highest
    ///   stop reached fills at its price, on the way up the lowest target;
    ///   the trailing stop's best follows the path.
    ///
    /// ROI uses the time held at the bar's open. The trailing stop's best
    /// sees the open before the path; without an exit, the best price (and
    /// the trailing stop) have moved to the bar's high.
    #[allow(clippy::too_many_arguments)]
    pub fn bar_exit(
        &mut self,
        spec: &ExitSpec,
        open_time: i64,
        open: Decimal,
        high: Decimal,
        low: Decimal,
        close: Decimal,
    ) -> Option<(ExitReason, Decimal)> {
        if self.deadline(spec).is_some_and(|d| open_time >= d) {
            return Some((ExitReason::MaxHold, open));
        }
        let stop = self.stop_level(spec);
        let target = self.take_profit_level(spec);
        let roi = self.roi_level(spec, open_time);
        // The nearest level below / above a price.
        let below = |state: &Self| -> Option<(ExitReason, Decimal)> {
            let trail = state.trailing_level(spec).map(|l| (ExitReason::TrailingStop, l));
            let stop = stop.map(|l| (ExitReason::StopLoss, l));
            match (stop, trail) {
                (Some(s), Some(t)) => Some(if t.1 > s.1 { t } else { s }),
                (s, t) => s.or(t),
            }
        };
        let above = {
            let target = target.map(|l| (ExitReason::TakeProfit, l));
            let roi = roi.map(|l| (ExitReason::Roi, l));
            match (target, roi) {
                (Some(t), Some(r)) => Some(if r.1 < t.1 { r } else { t }),
                (t, r) => t.or(r),
            }
        };
        if let Some((reason, level)) = below(self) {
            if open <= level {
                return Some((reason, open));
            }
        }
        if let Some((reason, level)) = above {
            if open >= level {
                return Some((reason, open));
            }
        }
        // The open is a traded price: the trailing stop's best follows it before the path (a
        // bar that opens above the activation arms the trail there, and the way down from the
        // open can reach it; TradingView's broker emulator as PyneCore measured it).
        self.see_best(spec, open);
        let high_first = high - open < open - low;
        let path = if high_first { [open, high, low, close] } else { [open, low, high, close] };
        for w in path.windows(2) {
            let (from, to) = (w[0], w[1]);
            if to > from {
                if let Some((reason, level)) = above {
                    if to >= level {
                        return Some((reason, level.max(from)));
                    }
                }
                self.see_best(spec, to);
            } else if to < from {
                if let Some((reason, level)) = below(self) {
                    if to <= level {
                        return Some((reason, level.min(from)));
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DurationMs;
    use crate::exits::{Pct, RoiStep, TrailingStop};
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn state() -> ExitState {
        ExitState::open("X".into(), d("100"), d("1"), 0)
    }

    #[test]
    fn levels_follow_the_entry_and_the_overrides() {
        let spec = ExitSpec {
            stop_loss: Some(Pct(d("0.03"))),
            take_profit: Some(Pct(d("0.06"))),
            roi: vec![
                RoiStep { after: DurationMs(0), profit: Pct(d("0.05")) },
                RoiStep { after: DurationMs(1000), profit: Pct(d("0.01")) },
            ],
            max_hold: Some(DurationMs(5000)),
            ..ExitSpec::default()
        };
        let mut s = state();
        assert_eq!(s.stop_level(&spec), Some(d("97")));
        assert_eq!(s.take_profit_level(&spec), Some(d("106")));
        assert_eq!(s.roi_level(&spec, 999), Some(d("105")));
        assert_eq!(s.roi_level(&spec, 1000), Some(d("101")));
        assert_eq!(s.deadline(&spec), Some(5000));
        s.stop_price = Some(d("99"));
        assert_eq!(s.stop_level(&spec), Some(d("99")));
        let cases = [
            (d("99"), 0, false, Some(ExitReason::StopLoss)),
            (d("99"), 0, true, None),
            (d("104"), 0, false, None),
            (d("104"), 1000, false, Some(ExitReason::Roi)),
            (d("106"), 0, false, Some(ExitReason::TakeProfit)),
            (d("100"), 5000, true, Some(ExitReason::MaxHold)),
        ];
        for (price, now, venue, want) in cases {
            assert_eq!(s.trigger(&spec, price, now, venue), want, "{price} at {now}, venue {venue}");
        }
    }

    #[test]
    fn the_trailing_stop_arms_and_follows_the_best() {
        let spec = ExitSpec {
            trailing_stop: Some(TrailingStop { activate: Pct(d("0.02")), distance: Pct(d("0.01")) }),
            ..ExitSpec::default()
        };
        let mut s = state();
        assert!(s.see_best(&spec, d("101")));
        assert_eq!(s.trailing_level(&spec), None, "not armed below 102");
        s.see_best(&spec, d("110"));
        assert_eq!(s.trailing_level(&spec), Some(d("108.90")));
        assert_eq!(s.trigger(&spec, d("108.9"), 0, true), Some(ExitReason::TrailingStop));
        assert_eq!(s.trigger(&spec, d("109"), 0, true), None);
    }

    #[test]
    fn a_trail_in_prices_arms_at_its_price_and_trails_by_its_offset() {
        let spec = crate::exits::LEVELS_ONLY.clone();
        let mut s = state();
        s.trail = Some(crate::exits::PriceTrail { activate: d("105"), offset: d("2.5") });
        assert!(s.see_best(&spec, d("104.99")));
        assert_eq!(s.trailing_level(&spec), None, "not armed below 105");
        assert_eq!(s.trigger(&spec, d("90"), 0, false), None);
        s.see_best(&spec, d("105"));
        assert_eq!(s.trailing_level(&spec), Some(d("102.5")));
        s.see_best(&spec, d("110"));
        assert_eq!(s.trigger(&spec, d("107.51"), 0, false), None);
        assert_eq!(s.trigger(&spec, d("107.5"), 0, false), Some(ExitReason::TrailingStop));
        // Along a bar's path: the low first (nearer the open) with the trail not armed yet, then up
        // to 112 arms it and moves the best, then down to the close through 109.5 fills there.
        let mut s = state();
        s.trail = Some(crate::exits::PriceTrail { activate: d("105"), offset: d("2.5") });
        assert_eq!(s.bar_exit(&spec, 0, d("100"), d("104"), d("99"), d("103")), None);
        let hit = s.bar_exit(&spec, 0, d("103"), d("112"), d("100"), d("101"));
        assert_eq!(hit, Some((ExitReason::TrailingStop, d("109.5"))));
        assert!(s.effective(None).is_some(), "price levels alone are exits in force");
    }

    /// A bar that opens above the activation arms the trail at the open, and the way down to
    /// the low (nearer the open) reaches it (the witness's exits.pine, trade 20: activation
    /// 83.68, offset 0.20, bar O 84.30 H 85.58 L 83.91 C 85.32 exits at 84.10, as PyneCore).
    #[test]
    fn the_open_arms_a_trail_before_the_path() {
        let spec = crate::exits::LEVELS_ONLY.clone();
        let mut s = ExitState::open("X".into(), d("83.50"), d("1"), 0);
        s.trail = Some(crate::exits::PriceTrail { activate: d("83.68"), offset: d("0.20") });
        let hit = s.bar_exit(&spec, 0, d("84.30"), d("85.58"), d("83.91"), d("85.32"));
        assert_eq!(hit, Some((ExitReason::TrailingStop, d("84.10"))));
    }
}
