//! Every typed message the actors exchange, in one place: small, owned, named
//! for what happened or for what is asked. This is the convention (see
//! DESIGN.md): an actor module holds the actor and its state, never a message,
//! so the whole vocabulary of the live runtime reads from this file. Replies
//! (`RiskStatus`, `PortfolioSnapshot`, `StrategyStatus`) stay beside the actor
//! that computes them.

use std::time::Instant;

use actix::prelude::*;
use keel_core::balance::Balance;
use keel_core::fill::Fill;
use keel_core::market::MarketEvent;
use keel_core::order::{Order, OrderIntent};
use keel_core::strategy::{OrderUpdate, Signal};
use keel_core::venue::UserEvent;
use keel_core::{Decimal, StrategyId, Symbol};
use risk::Approved;

use crate::error::EmergencyStopError;
use crate::portfolio::PortfolioSnapshot;
use crate::risk_guard::RiskStatus;
use crate::strategy_host::StrategyStatus;

/// A market event for strategies, stamped with its arrival time.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct MarketTick {
    /// The event.
    pub event: MarketEvent,
    /// When it entered the engine.
    pub ingress: Instant,
}

/// A strategy (or the operator) asks for an order.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct IntentSubmitted {
    /// What is asked.
    pub intent: OrderIntent,
    /// Arrival time of the market event that led to it.
    pub ingress: Option<Instant>,
}

/// The risk guard approved an intent: the router persists it, then sends it.
/// Only the risk crate can make the approval it carries.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct OrderApproved {
    /// The rounded intent and its client order id.
    pub approved: Approved<OrderIntent>,
    /// Arrival time of the market event that led to it.
    pub ingress: Option<Instant>,
}

/// A fill recorded durably, for the portfolio, the strategy and the risk guard.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct FillRecorded(pub Fill);

/// An order changed, for the strategy that owns it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct OrderUpdated(pub OrderUpdate);

/// An order reached a final status: the risk guard stops counting it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct OrderClosed(pub Order);

/// An event from the venue's user-data stream.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct VenueUserEvent(pub UserEvent);

/// New balances from the venue.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BalancesChanged(pub Vec<Balance>);

/// Pause or resume a strategy.
#[derive(Message, Debug, Clone)]
#[rtype(result = "bool")]
pub struct SetPaused {
    /// Pause (true) or resume (false).
    pub paused: bool,
    /// Why (logged and published).
    pub reason: String,
}

/// An external signal for a strategy.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SignalReceived(pub Signal);

/// Cancel every open order (optionally of one symbol).
#[derive(Message, Debug, Clone)]
#[rtype(result = "usize")]
pub struct CancelAll {
    /// Only this symbol.
    pub symbol: Option<Symbol>,
    /// Why (logged).
    pub reason: String,
}

/// An operator cancels one open order by its client order id, whatever
/// strategy owns it; the reply says whether it was open (and so asked).
#[derive(Message, Debug, Clone)]
#[rtype(result = "bool")]
pub struct CancelOpen {
    /// The order.
    pub client_order_id: String,
    /// Why (logged).
    pub reason: String,
}

/// The emergency stop, told to the router: while active it sends no order
/// but the operator's reduce-only flatten orders, and cancels locally any
/// order approved before the stop that has not left yet.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopOrders {
    /// True when the stop is set, false when an operator resumed.
    pub active: bool,
}

/// A futures market event (mark price and funding, a settlement, open
/// interest, a funding interval) for the strategies trading its symbol.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct FuturesTick(pub keel_core::futures::FuturesEvent);

/// Inject a market event directly (benchmarks and tests bypass the venue feed).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct InjectMarket(pub MarketEvent);

// Handled by the risk guard.

/// Set the emergency stop: HALTED, cancel all open orders, optionally flatten.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), EmergencyStopError>")]
pub struct SetEmergencyStop {
    /// Why.
    pub reason: String,
    /// Who (`operator:cli`, `operator:telegram:<user>`, `venue:418`, `protection:max_drawdown`…).
    pub by: String,
    /// Also close positions with reduce-only market orders.
    pub flatten: bool,
}

/// Clear the emergency stop and every latched protection, back to ACTIVE (operator only).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), EmergencyStopError>")]
pub struct Resume {
    /// Who.
    pub by: String,
}

/// Close positions with reduce-only market orders.
#[derive(Message, Debug, Clone)]
#[rtype(result = "usize")]
pub struct Flatten {
    /// Only this symbol.
    pub symbol: Option<Symbol>,
}

/// Asks for the guard's state.
#[derive(Message)]
#[rtype(result = "RiskStatus")]
pub struct GetRiskStatus;

// Handled by the order router.

/// The venue acknowledged an order.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct OrderAcknowledged(pub String);

/// A strategy asks to cancel one of its own working orders (sent by its host
/// to the risk guard, which passes it to the router).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CancelOrder {
    /// The strategy asking: only its own orders are canceled.
    pub strategy_id: StrategyId,
    /// The order.
    pub client_order_id: String,
}

/// Attaches the venue's user-data feed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachUserFeed(pub tokio::sync::mpsc::Receiver<UserEvent>);

/// The user-data stream's health changed.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct VenueHealth {
    /// True when connected and reconciled.
    pub healthy: bool,
}

/// Asks for the orders the router is tracking (open ones).
#[derive(Message)]
#[rtype(result = "Vec<Order>")]
pub struct GetOpenOrders;

// Sent by the portfolio, or asked of it.

/// Asks for the portfolio.
#[derive(Message)]
#[rtype(result = "PortfolioSnapshot")]
pub struct GetPortfolio;

/// Equity was re-marked.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct EquityMarked {
    /// Equity in the quote asset.
    pub equity: Decimal,
    /// Realized plus unrealized PnL.
    pub total_pnl: Decimal,
}

// Asked of a strategy host.

/// Asks a host for its status.
#[derive(Message)]
#[rtype(result = "StrategyStatus")]
pub struct GetStrategyStatus;
