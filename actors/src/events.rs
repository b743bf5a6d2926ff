//! Events the engine publishes for operator surfaces (notifications, metrics, logs).

use keel_core::fill::Fill;
use keel_core::order::Order;
use keel_core::trading::TradingState;
use keel_core::venue::{StreamKind, VenueAlert};
use keel_core::{StrategyId, Symbol};
use serde::Serialize;

/// Something an operator may want to hear about. Published on a broadcast
/// channel; a slow subscriber misses events rather than slowing trading.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EngineEvent {
    /// The engine finished start-up and strategies may trade.
    Started {
        /// Trading state at start.
        trading_state: TradingState,
    },
    /// The engine is shutting down.
    ShuttingDown,
    /// A fill was recorded.
    Fill(Fill),
    /// The order router changed an order (created, sent, acknowledged, filled
    /// in part or whole, canceled, rejected, unknown): the order as it is now.
    /// For live views; notifiers ignore it (fills and rejections say enough).
    OrderChanged(Order),
    /// The risk guard refused an intent.
    RiskRejected {
        /// Strategy that asked.
        strategy_id: StrategyId,
        /// Symbol.
        symbol: Symbol,
        /// Stable reason code.
        code: String,
        /// Human-readable reason.
        reason: String,
    },
    /// The venue rejected an order.
    OrderRejected {
        /// Strategy.
        strategy_id: StrategyId,
        /// Symbol.
        symbol: Symbol,
        /// Client order id.
        client_order_id: String,
        /// Venue reason.
        reason: String,
    },
    /// The trading state changed.
    TradingStateChanged {
        /// New state.
        state: TradingState,
        /// Why.
        reason: String,
    },
    /// The emergency stop was set.
    EmergencyStopSet {
        /// Why.
        reason: String,
        /// Who set it.
        by: String,
    },
    /// The emergency stop was cleared.
    EmergencyStopCleared {
        /// Who cleared it.
        by: String,
    },
    /// A strategy was paused (by an operator, a protection or a failure).
    StrategyPaused {
        /// Strategy.
        strategy_id: StrategyId,
        /// Why.
        reason: String,
    },
    /// A strategy was resumed.
    StrategyResumed {
        /// Strategy.
        strategy_id: StrategyId,
    },
    /// A venue stream connected or disconnected.
    Connectivity {
        /// Which stream.
        stream: StreamKind,
        /// True when connected.
        connected: bool,
        /// Details.
        detail: String,
    },
    /// The venue raised an alert (429, 418, order rate).
    VenueAlert(VenueAlert),
    /// The universe's members changed (`[universe]`).
    UniverseChanged {
        /// Symbols that joined (their template instances start).
        joined: Vec<Symbol>,
        /// Symbols that left (their instances only exit, then retire).
        left: Vec<Symbol>,
        /// The members now, highest volume first.
        members: Vec<Symbol>,
    },
    /// A template instance whose symbol left the universe is flat and retired.
    UniverseInstanceRetired {
        /// The instance.
        strategy_id: StrategyId,
        /// Its symbol.
        symbol: Symbol,
    },
    /// A strategy raised a setup alert (the `scanner` kind): a condition
    /// held on a symbol, with the values that triggered it.
    SetupAlert(keel_core::alert::SetupAlert),
    /// A strategy's exit closed (or reduced) a position: a stop-loss, a
    /// take-profit, a trailing stop, the minimal ROI, the max hold or its signal.
    Exit(keel_core::exits::ExitEvent),
}
