//! The typed messages actors exchange: small, owned, named for what happened or
//! for what is asked.

use std::time::Instant;

use actix::prelude::*;
use keel_core::balance::Balance;
use keel_core::fill::Fill;
use keel_core::market::MarketEvent;
use keel_core::order::{Order, OrderIntent};
use keel_core::strategy::{OrderUpdate, Signal};
use keel_core::venue::UserEvent;
use keel_core::Symbol;

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
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct OrderApproved {
    /// The rounded intent.
    pub intent: OrderIntent,
    /// Its client order id.
    pub client_order_id: String,
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

/// Inject a market event directly (benchmarks and tests bypass the venue feed).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct InjectMarket(pub MarketEvent);
