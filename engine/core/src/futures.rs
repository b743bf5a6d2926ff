//! Perpetual-futures market data (read-only): mark and index prices, the
//! funding estimate and the next funding time, settled funding, each
//! symbol's funding interval, open interest and its history — and the
//! [`FuturesData`] capability a venue offers them through.
//!
//! Funding times always come from the venue's data (`nextFundingTime`, the
//! settled rows' `fundingTime`): intervals differ per symbol (8 h, 4 h, 2 h,
//! 1 h after a capped settlement) and change without notice, so nothing here
//! assumes a fixed grid. The estimate before a settlement and the settled
//! rate are different things and have different types.
//!
//! [`FuturesEvent`] is what a strategy will receive beside its
//! [`crate::market::MarketEvent`]s: every variant names its symbol and time.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::symbol::Symbol;
use crate::venue::{StreamStatus, VenueError};

/// The funding interval of a symbol the venue does not list as adjusted.
pub const DEFAULT_FUNDING_INTERVAL_HOURS: u32 = 8;

/// One hour in ms.
const HOUR_MS: i64 = 3_600_000;

/// Mark price, index price and the live funding estimate of one perpetual
/// (`premiumIndex`, the `@markPrice` streams).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkPrice {
    /// Symbol.
    pub symbol: Symbol,
    /// Mark price (what unrealised PnL and liquidation use).
    pub mark_price: Decimal,
    /// Index price (the spot index), when given.
    pub index_price: Option<Decimal>,
    /// Estimated settle price (meaningful for delivery contracts only).
    pub estimated_settle_price: Option<Decimal>,
    /// The live estimate of the rate that settles at `next_funding_time`
    /// (none for delivery contracts).
    pub funding_rate_estimate: Option<Decimal>,
    /// The interest component (none for delivery contracts).
    pub interest_rate: Option<Decimal>,
    /// When the next funding settles (ms since the epoch; none for delivery
    /// contracts, which report 0).
    pub next_funding_time: Option<i64>,
    /// When these values were taken (ms since the epoch).
    pub ts_ms: i64,
}

/// The kind of a settled funding row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FundingRateType {
    /// Ordinary funding (also rows from before the field existed).
    Regular,
    /// An additional rate, e.g. from stock dividends on TradFi perpetuals:
    /// not part of a funding-rate series.
    Special,
    /// A kind this version does not know.
    Other(String),
}

impl FundingRateType {
    /// From the venue's spelling; absent means `Regular`.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            None | Some("Regular") => Self::Regular,
            Some("Special") => Self::Special,
            Some(other) => Self::Other(other.to_string()),
        }
    }
}

/// A settled funding rate (`fundingRate` history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingSettlement {
    /// Symbol.
    pub symbol: Symbol,
    /// The rate that settled (positive: longs pay shorts).
    pub rate: Decimal,
    /// When it settled (ms since the epoch).
    pub funding_time: i64,
    /// The mark price the funding fee was computed at, when given.
    pub mark_price: Option<Decimal>,
    /// Regular or special.
    pub rate_type: FundingRateType,
}

/// A symbol whose funding was specially adjusted (`fundingInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingInfo {
    /// Symbol.
    pub symbol: Symbol,
    /// Hours between settlements.
    pub interval_hours: u32,
    /// Adjusted cap of the rate.
    pub rate_cap: Option<Decimal>,
    /// Adjusted floor of the rate.
    pub rate_floor: Option<Decimal>,
}

/// The funding interval of every symbol: the venue lists only the adjusted
/// ones; every other symbol settles every [`DEFAULT_FUNDING_INTERVAL_HOURS`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingIntervals {
    listed: BTreeMap<Symbol, FundingInfo>,
}

impl FundingIntervals {
    /// From the venue's list (a later entry for a symbol wins).
    pub fn new(list: Vec<FundingInfo>) -> Self {
        Self { listed: list.into_iter().map(|i| (i.symbol.clone(), i)).collect() }
    }

    /// The symbol's entry, when the venue lists it.
    pub fn get(&self, symbol: &Symbol) -> Option<&FundingInfo> {
        self.listed.get(symbol)
    }

    /// Hours between the symbol's settlements: listed, or the default.
    pub fn interval_hours(&self, symbol: &Symbol) -> u32 {
        self.listed.get(symbol).map_or(DEFAULT_FUNDING_INTERVAL_HOURS, |i| i.interval_hours)
    }

    /// The listed symbols.
    pub fn listed(&self) -> impl Iterator<Item = &FundingInfo> {
        self.listed.values()
    }
}

/// A funding rate per year: `rate × (24 / hours) × 365` (f64: a statistic
/// for ranking and display, not money).
pub fn annualised(rate: Decimal, interval_hours: u32) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    let per_day = 24.0 / f64::from(interval_hours.max(1));
    rate.to_f64().unwrap_or(0.0) * per_day * 365.0
}

/// The interval the last two settlements show, in whole hours (none with
/// fewer than two regular rows). Venues stamp settlements a few ms past the
/// hour, so the spacing is rounded to the nearest hour.
pub fn observed_interval_hours(settled: &[FundingSettlement]) -> Option<u32> {
    let mut regular = settled.iter().filter(|s| s.rate_type == FundingRateType::Regular).rev();
    let (last, before) = (regular.next()?, regular.next()?);
    let gap = last.funding_time - before.funding_time;
    let hours = (gap + HOUR_MS / 2).div_euclid(HOUR_MS);
    u32::try_from(hours).ok().filter(|h| *h > 0)
}

/// Current open interest of one perpetual (`openInterest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInterest {
    /// Symbol.
    pub symbol: Symbol,
    /// Open interest in base-asset units (USD-M: 1 contract = 1 base unit).
    pub open_interest: Decimal,
    /// When it was measured (ms since the epoch).
    pub ts_ms: i64,
}

/// Open interest at the end of one period (`openInterestHist`). Periods
/// without trades may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInterestStat {
    /// Symbol.
    pub symbol: Symbol,
    /// Open interest in base-asset units.
    pub sum_open_interest: Decimal,
    /// Its value in the quote asset.
    pub sum_open_interest_value: Decimal,
    /// End of the period (ms since the epoch).
    pub ts_ms: i64,
}

/// The periods of open-interest history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OiPeriod {
    /// 5 minutes.
    M5,
    /// 15 minutes.
    M15,
    /// 30 minutes.
    M30,
    /// 1 hour.
    H1,
    /// 2 hours.
    H2,
    /// 4 hours.
    H4,
    /// 6 hours.
    H6,
    /// 12 hours.
    H12,
    /// 1 day.
    D1,
}

impl OiPeriod {
    /// Every period, shortest first.
    pub const ALL: [OiPeriod; 9] =
        [Self::M5, Self::M15, Self::M30, Self::H1, Self::H2, Self::H4, Self::H6, Self::H12, Self::D1];

    /// The venue's spelling (`5m` … `1d`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::M30 => "30m",
            Self::H1 => "1h",
            Self::H2 => "2h",
            Self::H4 => "4h",
            Self::H6 => "6h",
            Self::H12 => "12h",
            Self::D1 => "1d",
        }
    }

    /// The period's length in ms.
    pub fn ms(self) -> i64 {
        let minutes = match self {
            Self::M5 => 5,
            Self::M15 => 15,
            Self::M30 => 30,
            Self::H1 => 60,
            Self::H2 => 120,
            Self::H4 => 240,
            Self::H6 => 360,
            Self::H12 => 720,
            Self::D1 => 1440,
        };
        minutes * 60_000
    }

    /// From the venue's spelling; none for anything else (there is no `1m`
    /// and no `8h`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A query of settled funding: inclusive times, at most `limit` rows from
/// `start_ms` (the venue's default limit when none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FundingQuery {
    /// One symbol, or every symbol.
    pub symbol: Option<Symbol>,
    /// From (ms, inclusive).
    pub start_ms: Option<i64>,
    /// To (ms, inclusive).
    pub end_ms: Option<i64>,
    /// At most this many rows.
    pub limit: Option<u32>,
}

/// A query of open-interest history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OiHistQuery {
    /// Symbol (required by the venue).
    pub symbol: Symbol,
    /// Period of each row.
    pub period: OiPeriod,
    /// From (ms).
    pub start_ms: Option<i64>,
    /// To (ms).
    pub end_ms: Option<i64>,
    /// At most this many rows.
    pub limit: Option<u32>,
}

/// A futures market event: what strategies will receive beside bars,
/// trades and quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FuturesEvent {
    /// Mark price, index price and funding estimate changed.
    Mark(MarkPrice),
    /// A funding rate settled.
    Funding(FundingSettlement),
    /// Open interest was measured.
    OpenInterest(OpenInterest),
    /// Open interest at the end of a past period: the history a feed seeds
    /// when it starts feeding a symbol (oldest first, before any live
    /// measurement of it), so a change over a period is known from the
    /// first live one. A baseline, not news: a strategy should not act on
    /// it as on a live measurement.
    OpenInterestHistory(OpenInterestStat),
    /// The symbol's funding interval is known or changed (from `fundingInfo`
    /// or the spacing of its settlements): what annualising uses.
    Interval(FundingInterval),
}

/// A symbol's funding interval as of a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingInterval {
    /// Symbol.
    pub symbol: Symbol,
    /// Hours between settlements.
    pub interval_hours: u32,
    /// When it was learned (ms since the epoch).
    pub ts_ms: i64,
}

impl FuturesEvent {
    /// The event's symbol.
    pub fn symbol(&self) -> &Symbol {
        match self {
            Self::Mark(m) => &m.symbol,
            Self::Funding(f) => &f.symbol,
            Self::OpenInterest(o) => &o.symbol,
            Self::OpenInterestHistory(o) => &o.symbol,
            Self::Interval(i) => &i.symbol,
        }
    }

    /// The event's time.
    pub fn ts_ms(&self) -> i64 {
        match self {
            Self::Mark(m) => m.ts_ms,
            Self::Funding(f) => f.funding_time,
            Self::OpenInterest(o) => o.ts_ms,
            Self::OpenInterestHistory(o) => o.ts_ms,
            Self::Interval(i) => i.ts_ms,
        }
    }
}

/// What a futures subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FuturesFeed {
    /// An event.
    Event(FuturesEvent),
    /// Connectivity changed.
    Status(StreamStatus),
}

/// How often a mark-price subscription updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MarkPriceSpeed {
    /// Every 3 s (the venue's default).
    #[default]
    Every3s,
    /// Every second (`@1s`).
    Every1s,
}

/// Read-only perpetual-futures market data from a venue.
#[async_trait]
pub trait FuturesData: Send + Sync {
    /// Mark/index prices and the funding estimate: one symbol, or every
    /// perpetual of this venue when `symbol` is none.
    async fn premium_index(&self, symbol: Option<&Symbol>) -> Result<Vec<MarkPrice>, VenueError>;

    /// Settled funding, oldest first.
    async fn funding_history(&self, query: &FundingQuery) -> Result<Vec<FundingSettlement>, VenueError>;

    /// Each symbol's funding interval.
    async fn funding_info(&self) -> Result<FundingIntervals, VenueError>;

    /// Current open interest of a symbol.
    async fn open_interest(&self, symbol: &Symbol) -> Result<OpenInterest, VenueError>;

    /// Open-interest history, oldest first (periods may be missing).
    async fn open_interest_hist(&self, query: &OiHistQuery) -> Result<Vec<OpenInterestStat>, VenueError>;

    /// Mark-price updates of `symbols` (every perpetual of this venue when
    /// empty) with connectivity changes, until the receiver is dropped. The
    /// implementation reconnects on its own.
    async fn subscribe_mark_price(
        &self,
        symbols: &[Symbol],
        speed: MarkPriceSpeed,
    ) -> Result<mpsc::Receiver<FuturesFeed>, VenueError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(t: i64, kind: FundingRateType) -> FundingSettlement {
        FundingSettlement {
            symbol: Symbol::new("BTCUSDT"),
            rate: Decimal::new(1, 4),
            funding_time: t,
            mark_price: None,
            rate_type: kind,
        }
    }

    #[test]
    fn an_unlisted_symbol_settles_every_eight_hours_a_listed_one_on_its_own() {
        let info = FundingIntervals::new(vec![FundingInfo {
            symbol: Symbol::new("ETHUSDT"),
            interval_hours: 4,
            rate_cap: None,
            rate_floor: None,
        }]);
        assert_eq!(info.interval_hours(&Symbol::new("ETHUSDT")), 4);
        assert_eq!(info.interval_hours(&Symbol::new("BTCUSDT")), 8);
    }

    #[test]
    fn the_observed_interval_rounds_the_spacing_and_skips_special_rows() {
        let h = HOUR_MS;
        // Stamped a few ms past the hour, as live rows are.
        let rows = [settled(4 * h + 5, FundingRateType::Regular), settled(8 * h + 3, FundingRateType::Regular)];
        assert_eq!(observed_interval_hours(&rows), Some(4));
        let rows = [
            settled(0, FundingRateType::Regular),
            settled(h, FundingRateType::Regular),
            settled(h + 10, FundingRateType::Special),
        ];
        assert_eq!(observed_interval_hours(&rows), Some(1));
        assert_eq!(observed_interval_hours(&rows[..1]), None);
    }

    #[test]
    fn annualising_uses_the_interval() {
        let r = Decimal::new(1, 4); // 0.01 %
        assert!((annualised(r, 8) - 0.1095).abs() < 1e-9);
        assert!((annualised(r, 4) - 0.219).abs() < 1e-9);
    }

    #[test]
    fn periods_round_trip_and_reject_what_the_venue_lacks() {
        for p in OiPeriod::ALL {
            assert_eq!(OiPeriod::parse(p.as_str()), Some(p));
        }
        assert_eq!(OiPeriod::parse("1m"), None);
        assert_eq!(OiPeriod::parse("8h"), None);
        assert_eq!(OiPeriod::H4.ms(), 4 * HOUR_MS);
    }

    #[test]
    fn rate_types_parse_with_absent_as_regular() {
        assert_eq!(FundingRateType::parse(None), FundingRateType::Regular);
        assert_eq!(FundingRateType::parse(Some("Special")), FundingRateType::Special);
        assert_eq!(FundingRateType::parse(Some("New")), FundingRateType::Other("New".into()));
    }
}
