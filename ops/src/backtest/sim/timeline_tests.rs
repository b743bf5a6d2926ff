//! The order a timeline replays its bars in.

use keel_core::market::Bar;
use keel_core::{Decimal, Symbol};

use super::test_bars::hour_bar;
use super::Timeline;

/// Hourly bars of `symbol` closing at hours `hours`.
fn closing_at(symbol: &str, hours: &[i64]) -> (Symbol, Vec<Bar>) {
    (Symbol::new(symbol), hours.iter().map(|&h| hour_bar(symbol, h, [Decimal::ONE; 5])).collect())
}

#[test]
fn skipping_steps_lands_where_stepping_does() {
    let one = Timeline::new(vec![closing_at("BTCUSDT", &[0, 1, 2, 3, 4, 5, 6])]);
    let two = Timeline::new(vec![closing_at("BTCUSDT", &[0, 2, 3, 5]), closing_at("ETHUSDT", &[1, 2, 4])]);
    for timeline in [one, two] {
        let all: Vec<(usize, usize)> = timeline.steps().collect();
        for start in 0..=all.len() {
            for k in 0..=all.len() + 1 {
                let mut skipping = timeline.steps();
                let mut stepping = timeline.steps();
                for _ in 0..start {
                    skipping.next();
                    stepping.next();
                }
                let want = (0..k).try_for_each(|_| stepping.next().map(|_| ())).and_then(|()| stepping.next());
                assert_eq!(skipping.nth(k), want, "nth({k}) after {start} steps");
                // And both go on from the same step.
                assert_eq!(skipping.next(), stepping.next(), "the step after nth({k}) after {start}");
            }
        }
    }
}

/// The first bar closing at or after a time, computed (evenly spaced bars) or found by halving
/// (gaps), is the one a walk from bar `i` finds, for times before, at, between and after the
/// bars' and at the ends of `i64`. Fails when the computation rounds the wrong way or the search
/// stops one bar off.
#[test]
fn the_first_bar_closing_at_a_time_is_the_one_a_walk_finds() {
    let even = Timeline::new(vec![closing_at("BTCUSDT", &[0, 1, 2, 3, 4, 5])]);
    let gaps = Timeline::new(vec![closing_at("BTCUSDT", &[0, 2, 3, 7, 8, 20])]);
    for (name, timeline) in [("even", &even), ("gaps", &gaps)] {
        let len = timeline.len();
        let times: Vec<i64> = (0..len).map(|k| timeline.distinct_close_time(k).unwrap()).collect();
        let mut dues = vec![i64::MIN, i64::MAX, -5, 0];
        for &t in &times {
            dues.extend([t - 1, t, t + 1]);
        }
        for due in dues {
            for i in 0..=len {
                let walk = (i..len).find(|&k| times[k] >= due).unwrap_or(len);
                assert_eq!(timeline.first_closing_at(i, due), walk, "{name}: from bar {i}, due {due}");
            }
        }
    }
}
