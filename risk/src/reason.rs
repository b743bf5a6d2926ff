//! Every reason an order can be refused, with a stable code for logs and metrics.
//!
//! [`RejectReason`] is the one list: a new check adds a variant here, a code in
//! [`RejectReason::code`] and an entry in [`ALL_REJECT_CODES`].

use keel_core::instrument::{FilterViolation, SymbolStatus};
use keel_core::trading::TradingState;
use keel_core::Decimal;
use serde::Serialize;

/// Which orders a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateScope {
    /// Orders of one strategy.
    Strategy,
    /// Orders of every strategy together.
    Global,
}

/// Which open-order limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenOrderScope {
    /// The venue's MAX_NUM_ORDERS filter for the symbol.
    Symbol,
    /// `risk.max_open_orders` across all symbols.
    Global,
}

/// Why the risk guard refused an intent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The emergency stop is set.
    #[error("emergency stop is set")]
    EmergencyStop,
    /// The venue's user-data stream is disconnected or not yet reconciled.
    #[error("venue not healthy (user stream disconnected or not reconciled)")]
    VenueUnhealthy,
    /// The trading state does not allow this order.
    #[error("trading state {} does not allow this order", .0.as_str())]
    TradingState(TradingState),
    /// The strategy is paused (by an operator or a protection's cooldown).
    #[error("strategy {strategy} is paused{}", until_ms.map(|t| format!(" until {}", keel_core::when::utc(t))).unwrap_or_default())]
    StrategyPaused {
        /// The strategy.
        strategy: String,
        /// When the pause ends by itself (ms since the epoch), if it does.
        until_ms: Option<i64>,
    },
    /// The symbol is not configured or not listed.
    #[error("unknown symbol {0}")]
    UnknownSymbol(String),
    /// The venue does not take new orders on the symbol.
    #[error("symbol status {0:?} does not take new orders")]
    SymbolNotTrading(SymbolStatus),
    /// A reduce-only order would increase or flip the position.
    #[error("reduce-only order would not reduce the position")]
    NotReducing,
    /// An exit larger than what its strategy holds (after the strategy's
    /// orders in flight on the same side).
    #[error("exit of {qty} is more than strategy {strategy} can close (it holds {position})")]
    ExitAbovePosition {
        /// The strategy.
        strategy: String,
        /// Its own net position in the symbol.
        position: Decimal,
        /// The exit's quantity.
        qty: Decimal,
    },
    /// No price is known yet to value the order.
    #[error("no market price known yet for {0}")]
    NoPrice(String),
    /// The symbol's last market event is too old.
    #[error("stale market data for {symbol}: last event {} (max age {})", age_ms.map(|a| format!("{} ago", keel_core::when::duration(a.unsigned_abs()))).unwrap_or_else(|| "never".into()), keel_core::when::duration(max_age_ms.unsigned_abs()))]
    StaleData {
        /// Symbol.
        symbol: String,
        /// Age of the last market event, if there was one.
        age_ms: Option<i64>,
        /// Configured maximum age.
        max_age_ms: i64,
    },
    /// The limit price is too far from the last trade or mid (fat finger).
    #[error("limit price {price} is {deviation_pct}% from reference {reference} (band {band_pct}%)")]
    PriceOutsideBand {
        /// Limit (or stop) price.
        price: Decimal,
        /// Last trade or mid price.
        reference: Decimal,
        /// Distance from the reference, in percent (rounded to 4 places).
        deviation_pct: Decimal,
        /// Configured band, in percent.
        band_pct: Decimal,
    },
    /// The order breaks a venue filter (tick, step, quantity, price or notional).
    #[error("venue filter: {0}")]
    Filter(FilterViolation),
    /// A value is too large to compute with (quantity × price overflows).
    #[error("order values too large to compute: {0}")]
    Overflow(String),
    /// Too many orders open or in flight.
    #[error("{open} orders open or in flight ({scope:?} limit {limit})")]
    TooManyOpenOrders {
        /// Which limit.
        scope: OpenOrderScope,
        /// The limit.
        limit: u32,
        /// Orders already open or in flight.
        open: usize,
    },
    /// The order's notional is above the per-order maximum.
    #[error("order notional {requested} above max {limit}")]
    NotionalAboveMax {
        /// Configured limit.
        limit: Decimal,
        /// Requested notional.
        requested: Decimal,
    },
    /// The position (with open and in-flight orders) would exceed the per-symbol maximum.
    #[error("position notional {resulting} would exceed max {limit}")]
    PositionAboveMax {
        /// Configured limit.
        limit: Decimal,
        /// Resulting notional.
        resulting: Decimal,
    },
    /// Gross exposure across symbols (with open and in-flight orders) would exceed the maximum.
    #[error("gross exposure {resulting} would exceed max {limit}")]
    GrossExposureAboveMax {
        /// Configured limit.
        limit: Decimal,
        /// Resulting gross exposure.
        resulting: Decimal,
    },
    /// Not enough free balance (cash account).
    #[error("insufficient {asset}: need {required}, {available} free after in-flight orders")]
    InsufficientBalance {
        /// Asset that is short.
        asset: String,
        /// What the order needs (with fees for buys).
        required: Decimal,
        /// Free balance minus what in-flight orders reserve.
        available: Decimal,
    },
    /// The same order was sent within the duplicate window.
    #[error("duplicate of an order sent {} ago (window {})", keel_core::when::duration(age_ms.unsigned_abs()), keel_core::when::duration(window_ms.unsigned_abs()))]
    Duplicate {
        /// Time since the identical order.
        age_ms: i64,
        /// Configured window.
        window_ms: i64,
    },
    /// An order-rate limit is reached (refused, not queued).
    #[error("order rate limit: {limit} per {window} ({scope:?})")]
    RateLimited {
        /// Strategy or global.
        scope: RateScope,
        /// `second` or `minute`.
        window: &'static str,
        /// The limit.
        limit: u32,
    },
}

/// Every code [`RejectReason::code`] can return, for pre-registering metric labels.
pub const ALL_REJECT_CODES: &[&str] = &[
    "emergency_stop",
    "venue_unhealthy",
    "trading_state",
    "strategy_paused",
    "unknown_symbol",
    "symbol_not_trading",
    "not_reducing",
    "exit_above_position",
    "no_price",
    "stale_data",
    "price_outside_band",
    "venue_filter",
    "overflow",
    "max_open_orders",
    "notional_above_max",
    "position_above_max",
    "gross_exposure_above_max",
    "insufficient_balance",
    "duplicate",
    "rate_limited",
];

impl RejectReason {
    /// Stable snake_case code for logs and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmergencyStop => "emergency_stop",
            Self::VenueUnhealthy => "venue_unhealthy",
            Self::TradingState(_) => "trading_state",
            Self::StrategyPaused { .. } => "strategy_paused",
            Self::UnknownSymbol(_) => "unknown_symbol",
            Self::SymbolNotTrading(_) => "symbol_not_trading",
            Self::NotReducing => "not_reducing",
            Self::ExitAbovePosition { .. } => "exit_above_position",
            Self::NoPrice(_) => "no_price",
            Self::StaleData { .. } => "stale_data",
            Self::PriceOutsideBand { .. } => "price_outside_band",
            Self::Filter(_) => "venue_filter",
            Self::Overflow(_) => "overflow",
            Self::TooManyOpenOrders { .. } => "max_open_orders",
            Self::NotionalAboveMax { .. } => "notional_above_max",
            Self::PositionAboveMax { .. } => "position_above_max",
            Self::GrossExposureAboveMax { .. } => "gross_exposure_above_max",
            Self::InsufficientBalance { .. } => "insufficient_balance",
            Self::Duplicate { .. } => "duplicate",
            Self::RateLimited { .. } => "rate_limited",
        }
    }
}

/// A refused intent and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    /// The reason.
    pub reason: RejectReason,
}

impl Rejection {
    /// The reason's stable code.
    pub fn code(&self) -> &'static str {
        self.reason.code()
    }
}

impl From<RejectReason> for Rejection {
    fn from(reason: RejectReason) -> Self {
        Self { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_once_and_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ALL_REJECT_CODES {
            assert!(seen.insert(*code), "{code} listed twice");
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
        }
        let samples = [
            RejectReason::EmergencyStop,
            RejectReason::VenueUnhealthy,
            RejectReason::TradingState(TradingState::Halted),
            RejectReason::StrategyPaused { strategy: "s".into(), until_ms: Some(5) },
            RejectReason::UnknownSymbol("X".into()),
            RejectReason::SymbolNotTrading(SymbolStatus::Halt),
            RejectReason::NotReducing,
            RejectReason::ExitAbovePosition { strategy: "s".into(), position: Decimal::ONE, qty: Decimal::TWO },
            RejectReason::NoPrice("X".into()),
            RejectReason::StaleData { symbol: "X".into(), age_ms: None, max_age_ms: 1 },
            RejectReason::PriceOutsideBand {
                price: Decimal::ONE,
                reference: Decimal::TWO,
                deviation_pct: Decimal::ONE,
                band_pct: Decimal::ONE,
            },
            RejectReason::Filter(FilterViolation::NotTrading(SymbolStatus::Halt)),
            RejectReason::Overflow("x".into()),
            RejectReason::TooManyOpenOrders { scope: OpenOrderScope::Global, limit: 1, open: 1 },
            RejectReason::NotionalAboveMax { limit: Decimal::ONE, requested: Decimal::TWO },
            RejectReason::PositionAboveMax { limit: Decimal::ONE, resulting: Decimal::TWO },
            RejectReason::GrossExposureAboveMax { limit: Decimal::ONE, resulting: Decimal::TWO },
            RejectReason::InsufficientBalance { asset: "USDT".into(), required: Decimal::TWO, available: Decimal::ONE },
            RejectReason::Duplicate { age_ms: 1, window_ms: 2 },
            RejectReason::RateLimited { scope: RateScope::Strategy, window: "second", limit: 1 },
        ];
        assert_eq!(samples.len(), ALL_REJECT_CODES.len());
        for r in samples {
            assert!(ALL_REJECT_CODES.contains(&r.code()), "{} not listed", r.code());
            assert!(!r.to_string().is_empty());
        }
    }

    #[test]
    fn times_and_durations_read_as_people_read_them() {
        let cases: Vec<(RejectReason, &str)> = vec![
            (
                RejectReason::StrategyPaused { strategy: "s".into(), until_ms: Some(1_796_543_100_000) },
                "strategy s is paused until 2026-12-06T07:45:00Z",
            ),
            (RejectReason::StrategyPaused { strategy: "s".into(), until_ms: None }, "strategy s is paused"),
            (
                RejectReason::StaleData { symbol: "X".into(), age_ms: Some(2_500), max_age_ms: 60_000 },
                "stale market data for X: last event 2.5 s ago (max age 1 min)",
            ),
            (
                RejectReason::Duplicate { age_ms: 300, window_ms: 1_000 },
                "duplicate of an order sent 300 ms ago (window 1 s)",
            ),
        ];
        for (reason, want) in cases {
            assert_eq!(reason.to_string(), want);
        }
    }
}
