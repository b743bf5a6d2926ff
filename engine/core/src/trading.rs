//! The engine-wide trading state and the sticky emergency stop, as stored.

use serde::{Deserialize, Serialize};

use crate::order::OrderIntent;

/// Whether new orders may leave Keel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradingState {
    /// Normal trading.
    Active,
    /// Only orders that reduce an existing position (and cancels).
    Reducing,
    /// No new orders; cancels allowed (reduce-only exits if configured).
    Halted,
}

impl TradingState {
    /// The stored and displayed name (`ACTIVE`, `REDUCING`, `HALTED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Reducing => "REDUCING",
            Self::Halted => "HALTED",
        }
    }

    /// A numeric code for metrics: 0 active, 1 reducing, 2 halted.
    pub fn code(self) -> i64 {
        match self {
            Self::Active => 0,
            Self::Reducing => 1,
            Self::Halted => 2,
        }
    }

    /// Whether this state lets `intent` through, given whether it reduces an
    /// existing position and whether halted exits are allowed.
    pub fn is_order_allowed(self, intent: &OrderIntent, reduces_position: bool, halted_exits: bool) -> bool {
        match self {
            Self::Active => true,
            Self::Reducing => reduces_position,
            Self::Halted => halted_exits && intent.reduce_only && reduces_position,
        }
    }
}

/// The stored trading state with why and when it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradingStateRecord {
    /// The state.
    pub state: TradingState,
    /// Why it was entered.
    pub reason: String,
    /// When (ms since the epoch).
    pub since_ms: i64,
}

/// The sticky emergency stop. Once set it survives restarts and is cleared only
/// by an explicit operator resume, which is recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyStop {
    /// True while set.
    pub active: bool,
    /// Why it was set.
    pub reason: Option<String>,
    /// Who or what set it (`operator:cli`, `protection:max_drawdown`, `venue:418`, …).
    pub set_by: Option<String>,
    /// When it was set (ms since the epoch).
    pub set_at_ms: Option<i64>,
    /// Who cleared it last.
    pub cleared_by: Option<String>,
    /// When it was cleared last.
    pub cleared_at_ms: Option<i64>,
}
