//! The latest perpetual-futures values per symbol, as a strategy reads them
//! from its context: folded from the [`FuturesEvent`]s it received, in the
//! order it received them, so a backtest that replays the same events sees
//! the same values as the live engine.

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::futures::{annualised, FundingSettlement, FuturesEvent, DEFAULT_FUNDING_INTERVAL_HOURS};
use crate::symbol::Symbol;

/// What is known of one perpetual: mark and index, the live funding
/// estimate and when it settles, the last settlement, open interest and
/// its change since the measurement before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FuturesSnapshot {
    /// Symbol.
    pub symbol: Symbol,
    /// Mark price.
    pub mark_price: Option<Decimal>,
    /// Index price.
    pub index_price: Option<Decimal>,
    /// The live estimate of the rate settling at `next_funding_time`.
    pub funding_rate_estimate: Option<Decimal>,
    /// When the next funding settles (ms since the epoch), as the venue says.
    pub next_funding_time: Option<i64>,
    /// Hours between settlements (the venue's default until told).
    pub interval_hours: u32,
    /// The last settled funding.
    pub last_settlement: Option<FundingSettlement>,
    /// Open interest in base-asset units.
    pub open_interest: Option<Decimal>,
    /// When open interest was last measured (ms since the epoch).
    pub open_interest_ts_ms: Option<i64>,
    /// Open interest less the measurement before (none before two).
    pub open_interest_change: Option<Decimal>,
    /// Time of the last event applied (ms since the epoch).
    pub updated_ms: i64,
}

impl FuturesSnapshot {
    /// Nothing known yet.
    pub fn new(symbol: Symbol) -> Self {
        Self {
            symbol,
            mark_price: None,
            index_price: None,
            funding_rate_estimate: None,
            next_funding_time: None,
            interval_hours: DEFAULT_FUNDING_INTERVAL_HOURS,
            last_settlement: None,
            open_interest: None,
            open_interest_ts_ms: None,
            open_interest_change: None,
            updated_ms: i64::MIN,
        }
    }

    /// Folds one event of this symbol in. A settlement or an open-interest
    /// measurement older than the one held is ignored (a late poll answer).
    pub fn apply(&mut self, event: &FuturesEvent) {
        match event {
            FuturesEvent::Mark(m) => {
                self.mark_price = Some(m.mark_price);
                self.index_price = m.index_price.or(self.index_price);
                self.funding_rate_estimate = m.funding_rate_estimate;
                self.next_funding_time = m.next_funding_time;
            }
            FuturesEvent::Funding(f) => {
                if self.last_settlement.as_ref().is_some_and(|l| l.funding_time >= f.funding_time) {
                    return;
                }
                self.last_settlement = Some(f.clone());
            }
            FuturesEvent::OpenInterest(o) => {
                if !self.measure_open_interest(o.open_interest, o.ts_ms) {
                    return;
                }
            }
            // History is a measurement too (of a period's end): open interest
            // and its change are known before the first live poll.
            FuturesEvent::OpenInterestHistory(o) => {
                if !self.measure_open_interest(o.sum_open_interest, o.ts_ms) {
                    return;
                }
            }
            FuturesEvent::Interval(i) => self.interval_hours = i.interval_hours.max(1),
        }
        self.updated_ms = self.updated_ms.max(event.ts_ms());
    }

    /// Folds an open-interest measurement in; false (and nothing changes)
    /// when it is not newer than the one held (a late poll answer).
    fn measure_open_interest(&mut self, open_interest: Decimal, ts_ms: i64) -> bool {
        if self.open_interest_ts_ms.is_some_and(|t| t >= ts_ms) {
            return false;
        }
        self.open_interest_change = self.open_interest.map(|before| open_interest - before);
        self.open_interest = Some(open_interest);
        self.open_interest_ts_ms = Some(ts_ms);
        true
    }

    /// The funding estimate per year at the symbol's interval (a statistic).
    pub fn funding_annualised(&self) -> Option<f64> {
        self.funding_rate_estimate.map(|r| annualised(r, self.interval_hours))
    }

    /// Open interest in the quote asset: interest × mark price.
    pub fn open_interest_notional(&self) -> Option<Decimal> {
        Some(self.open_interest? * self.mark_price?)
    }

    /// The last change of open interest in per cent of the measurement
    /// before (none before two measurements or from zero).
    pub fn open_interest_change_pct(&self) -> Option<Decimal> {
        let (now, change) = (self.open_interest?, self.open_interest_change?);
        let before = now - change;
        if before.is_zero() {
            return None;
        }
        Some(change * Decimal::ONE_HUNDRED / before)
    }
}

/// The latest [`FuturesSnapshot`] of every symbol seen.
#[derive(Debug, Clone, Default)]
pub struct FuturesBoard {
    symbols: FxHashMap<Symbol, FuturesSnapshot>,
}

impl FuturesBoard {
    /// Folds one event in and returns its symbol's snapshot.
    pub fn apply(&mut self, event: &FuturesEvent) -> &FuturesSnapshot {
        let symbol = event.symbol();
        let snap = self.symbols.entry(symbol.clone()).or_insert_with(|| FuturesSnapshot::new(symbol.clone()));
        snap.apply(event);
        snap
    }

    /// The symbol's snapshot, when any event of it arrived.
    pub fn get(&self, symbol: &str) -> Option<&FuturesSnapshot> {
        self.symbols.get(symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::futures::{FundingInterval, FundingRateType, MarkPrice, OpenInterest};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn mark(rate: &str, next: i64, ts: i64) -> FuturesEvent {
        FuturesEvent::Mark(MarkPrice {
            symbol: "BTCUSDT".into(),
            mark_price: d("100"),
            index_price: Some(d("99.5")),
            estimated_settle_price: None,
            funding_rate_estimate: Some(d(rate)),
            interest_rate: Some(d("0.0001")),
            next_funding_time: Some(next),
            ts_ms: ts,
        })
    }

    fn oi(qty: &str, ts: i64) -> FuturesEvent {
        FuturesEvent::OpenInterest(OpenInterest { symbol: "BTCUSDT".into(), open_interest: d(qty), ts_ms: ts })
    }

    fn settled(rate: &str, t: i64) -> FuturesEvent {
        FuturesEvent::Funding(FundingSettlement {
            symbol: "BTCUSDT".into(),
            rate: d(rate),
            funding_time: t,
            mark_price: None,
            rate_type: FundingRateType::Regular,
        })
    }

    #[test]
    fn the_board_folds_marks_settlements_interest_and_intervals() {
        let mut board = FuturesBoard::default();
        assert!(board.get("BTCUSDT").is_none());
        board.apply(&mark("0.0001", 28_800_000, 1_000));
        let s = board.get("BTCUSDT").unwrap();
        assert_eq!((s.mark_price, s.next_funding_time, s.interval_hours), (Some(d("100")), Some(28_800_000), 8));
        assert!((s.funding_annualised().unwrap() - 0.1095).abs() < 1e-9);
        board.apply(&FuturesEvent::Interval(FundingInterval {
            symbol: "BTCUSDT".into(),
            interval_hours: 4,
            ts_ms: 1_500,
        }));
        assert!((board.get("BTCUSDT").unwrap().funding_annualised().unwrap() - 0.219).abs() < 1e-9);

        board.apply(&oi("50", 2_000));
        let s = board.get("BTCUSDT").unwrap();
        assert_eq!((s.open_interest_change, s.open_interest_notional()), (None, Some(d("5000"))));
        board.apply(&oi("60", 3_000));
        board.apply(&oi("10", 2_500)); // a late answer: ignored
        let s = board.get("BTCUSDT").unwrap();
        assert_eq!((s.open_interest, s.open_interest_change), (Some(d("60")), Some(d("10"))));
        assert_eq!(s.open_interest_change_pct(), Some(d("20")));

        board.apply(&settled("0.0003", 28_800_000));
        board.apply(&settled("0.0002", 0)); // older than the one held
        let s = board.get("BTCUSDT").unwrap();
        assert_eq!(s.last_settlement.as_ref().map(|l| l.rate), Some(d("0.0003")));
        assert_eq!(s.updated_ms, 28_800_000);
    }

    #[test]
    fn history_is_a_measurement_a_live_one_follows_and_a_late_one_is_ignored() {
        use crate::futures::OpenInterestStat;
        let hist = |qty: &str, ts: i64| {
            FuturesEvent::OpenInterestHistory(OpenInterestStat {
                symbol: "BTCUSDT".into(),
                sum_open_interest: d(qty),
                sum_open_interest_value: d(qty) * d("100"),
                ts_ms: ts,
            })
        };
        let mut board = FuturesBoard::default();
        board.apply(&hist("40", 1_000));
        board.apply(&hist("50", 2_000));
        let s = board.get("BTCUSDT").unwrap();
        assert_eq!((s.open_interest, s.open_interest_change), (Some(d("50")), Some(d("10"))));
        board.apply(&oi("55", 3_000));
        board.apply(&hist("1", 2_500)); // history older than the live measurement
        let s = board.get("BTCUSDT").unwrap();
        assert_eq!(
            (s.open_interest, s.open_interest_change, s.open_interest_ts_ms),
            (Some(d("55")), Some(d("5")), Some(3_000))
        );
    }

    #[test]
    fn snapshots_round_trip_through_json() {
        let mut board = FuturesBoard::default();
        board.apply(&mark("-0.0002", 10, 1));
        board.apply(&oi("5", 2));
        let s = board.get("BTCUSDT").unwrap().clone();
        let back: FuturesSnapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let e = settled("0.0001", 5);
        let back: FuturesEvent = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
