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
