//! Every reason an order can be refused, with a stable code for logs and metrics.

use engine::instrument::FilterViolation;
use engine::trading::TradingState;
use engine::Decimal;

/// Why the risk guard refused an intent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The emergency stop is set.
    #[error("emergency stop is set")]
    EmergencyStop,
    /// The trading state does not allow this order.
    #[error("trading state {0:?} does not allow this order")]
    TradingState(TradingState),
    /// The symbol is not configured or not listed.
    #[error("unknown symbol {0}")]
    UnknownSymbol(String),
    /// No price is known yet to value the order.
    #[error("no market price known yet for {0}")]
    NoPrice(String),
    /// The order breaks a venue filter.
    #[error("venue filter: {0}")]
    Filter(FilterViolation),
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
    /// A reduce-only order would increase or flip the position.
    #[error("reduce-only order would not reduce the position")]
    NotReducing,
}

impl RejectReason {
    /// Stable snake_case code for logs and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmergencyStop => "emergency_stop",
            Self::TradingState(_) => "trading_state",
            Self::UnknownSymbol(_) => "unknown_symbol",
            Self::NoPrice(_) => "no_price",
            Self::Filter(_) => "venue_filter",
            Self::NotionalAboveMax { .. } => "notional_above_max",
            Self::PositionAboveMax { .. } => "position_above_max",
            Self::NotReducing => "not_reducing",
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

impl From<RejectReason> for Rejection {
    fn from(reason: RejectReason) -> Self {
        Self { reason }
    }
}
