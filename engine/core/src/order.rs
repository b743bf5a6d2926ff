//! Orders: what a strategy intends, what Keel sends, and the state machine that
//! follows each order from creation to a terminal state.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::TransitionError;
use crate::exits::ExitLeg;
use crate::symbol::{StrategyId, Symbol};

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Side {
    /// Buy the base asset.
    Buy,
    /// Sell the base asset.
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }

    /// +1 for a buy, -1 for a sell: the sign of the position change.
    pub fn sign(self) -> Decimal {
        match self {
            Self::Buy => Decimal::ONE,
            Self::Sell => Decimal::NEGATIVE_ONE,
        }
    }

    /// The venue spelling (`BUY` / `SELL`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "BUY",
            Self::Sell => "SELL",
        }
    }
}

/// How long an order stays working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimeInForce {
    /// Good till canceled.
    Gtc,
    /// Immediate or cancel: what does not fill at once is canceled.
    Ioc,
    /// Fill or kill: fills completely at once or not at all.
    Fok,
}

/// The kind of order, with the prices it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderType {
    /// Fill now at the best available prices.
    Market,
    /// Fill at `price` or better.
    Limit {
        /// Limit price.
        price: Decimal,
    },
    /// Becomes a limit order at `price` once the market trades through `stop`.
    StopLimit {
        /// Trigger price.
        stop: Decimal,
        /// Limit price once triggered.
        price: Decimal,
    },
    /// Becomes a market order once the market trades through `stop`
    /// (Binance `STOP_LOSS` / `TAKE_PROFIT`, by which side of the market the
    /// stop lies on).
    StopMarket {
        /// Trigger price.
        stop: Decimal,
    },
    /// One-cancels-the-other: a take-profit limit on one side of the market
    /// and a stop on the other, for the same quantity; when one leg executes
    /// or triggers, the venue expires the other. For a sell the take-profit
    /// lies above the market and the stop below (a buy mirrors it). To Keel
    /// it is ONE order (the list's client order id, its fills, its status);
    /// the venue adapter maps its legs (Binance `orderList/oco`).
    Oco {
        /// The take-profit leg's limit price.
        take_profit: Decimal,
        /// The stop leg's trigger price.
        stop: Decimal,
        /// The stop leg's limit price once triggered (`STOP_LOSS_LIMIT`);
        /// none for a stop that executes as a market order (`STOP_LOSS`).
        stop_limit: Option<Decimal>,
    },
}

impl OrderType {
    /// The limit price, if the order has one (an OCO's: its take-profit).
    pub fn limit_price(&self) -> Option<Decimal> {
        match self {
            Self::Market | Self::StopMarket { .. } => None,
            Self::Limit { price } | Self::StopLimit { price, .. } => Some(*price),
            Self::Oco { take_profit, .. } => Some(*take_profit),
        }
    }

    /// The trigger price, if the order has one (an OCO's: its stop).
    pub fn stop_price(&self) -> Option<Decimal> {
        match self {
            Self::Market | Self::Limit { .. } => None,
            Self::StopLimit { stop, .. } | Self::StopMarket { stop } | Self::Oco { stop, .. } => Some(*stop),
        }
    }

    /// True for a market order.
    pub fn is_market(&self) -> bool {
        matches!(self, Self::Market)
    }

    /// Short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Market => "market",
            Self::Limit { .. } => "limit",
            Self::StopLimit { .. } => "stop_limit",
            Self::StopMarket { .. } => "stop_market",
            Self::Oco { .. } => "oco",
        }
    }
}

/// A strategy's own mark on an order (a grid level, a ladder rung), kept with
/// the order in the store and handed back with its fills and updates, so a
/// strategy knows what each of its orders is for after any restart.
///
/// A small `Copy` value, so the order path stays free of allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderTag(pub u32);

impl std::fmt::Display for OrderTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a strategy asks for. It becomes an [`Order`] only after the risk guard
/// approves it and the router assigns a client order id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderIntent {
    /// The strategy instance asking.
    pub strategy_id: StrategyId,
    /// Symbol to trade.
    pub symbol: Symbol,
    /// Buy or sell.
    pub side: Side,
    /// Market, limit or stop-limit.
    pub order_type: OrderType,
    /// Quantity in the base asset.
    pub qty: Decimal,
    /// Time in force (ignored for market orders).
    pub tif: TimeInForce,
    /// May only reduce an existing position (exits, flattening).
    pub reduce_only: bool,
    /// The strategy's mark for the order, stored with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<OrderTag>,
    /// What the order is for when it is an exit (reduce-only), stored with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitLeg>,
}

impl OrderIntent {
    /// A market order intent.
    pub fn market(strategy_id: StrategyId, symbol: Symbol, side: Side, qty: Decimal) -> Self {
        Self {
            strategy_id,
            symbol,
            side,
            order_type: OrderType::Market,
            qty,
            tif: TimeInForce::Gtc,
            reduce_only: false,
            tag: None,
            exit: None,
        }
    }

    /// The same intent as an exit order: reduce-only, marked with its leg.
    pub fn as_exit(mut self, leg: ExitLeg) -> Self {
        self.reduce_only = true;
        self.exit = Some(leg);
        self
    }

    /// The same intent carrying the strategy's `tag`.
    pub fn with_tag(mut self, tag: OrderTag) -> Self {
        self.tag = Some(tag);
        self
    }

    /// A GTC limit order intent.
    pub fn limit(strategy_id: StrategyId, symbol: Symbol, side: Side, qty: Decimal, price: Decimal) -> Self {
        Self {
            strategy_id,
            symbol,
            side,
            order_type: OrderType::Limit { price },
            qty,
            tif: TimeInForce::Gtc,
            reduce_only: false,
            tag: None,
            exit: None,
        }
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created and persisted, not yet sent.
    New,
    /// Sent; the venue has not answered yet.
    Submitted,
    /// The venue accepted it and it is working.
    Accepted,
    /// Some quantity filled, the rest still working.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Canceled (possibly after partial fills).
    Canceled,
    /// Refused by the venue (or by a filter before sending).
    Rejected,
    /// Expired by the venue (IOC/FOK remainder, expiry, self-trade prevention).
    Expired,
    /// Its outcome is not known (timeout, dropped connection, 5xx): it must be
    /// resolved by querying the venue, never by sending it again.
    Unknown,
}

/// Something that happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderEvent {
    /// The request left Keel.
    Submit,
    /// The venue acknowledged it.
    Accept,
    /// Part of it filled.
    PartialFill,
    /// The rest of it filled.
    Fill,
    /// It was canceled.
    Cancel,
    /// It was refused.
    Reject,
    /// The venue expired it.
    Expire,
    /// Its outcome became unknown.
    OutcomeUnknown,
}

impl OrderEvent {
    /// The event that brings an order to a status a venue reported.
    pub fn for_reported(status: OrderStatus) -> Option<Self> {
        match status {
            OrderStatus::New | OrderStatus::Submitted | OrderStatus::Accepted => Some(Self::Accept),
            OrderStatus::PartiallyFilled => Some(Self::PartialFill),
            OrderStatus::Filled => Some(Self::Fill),
            OrderStatus::Canceled => Some(Self::Cancel),
            OrderStatus::Rejected => Some(Self::Reject),
            OrderStatus::Expired => Some(Self::Expire),
            OrderStatus::Unknown => None,
        }
    }
}

impl OrderStatus {
    /// True when nothing more can happen to the order.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Filled | Self::Canceled | Self::Rejected | Self::Expired)
    }

    /// True while the order may still fill (including when its fate is unknown).
    pub fn is_open(self) -> bool {
        !self.is_terminal() && self != Self::New
    }

    /// The single place that says which event may follow which status.
    ///
    /// Duplicate reports are normal (an order response and the user stream tell
    /// the same thing), so an `Accept` on an order that is already working keeps
    /// its status instead of failing.
    pub fn apply(self, event: OrderEvent) -> Result<OrderStatus, TransitionError> {
        use OrderEvent as E;
        use OrderStatus as S;
        let next = match (self, event) {
            (S::New, E::Submit) => S::Submitted,
            (S::New, E::Reject) => S::Rejected,
            // Canceled before it was sent (an emergency stop, a strategy's cancel).
            (S::New, E::Cancel) => S::Canceled,
            (S::Submitted | S::Unknown, E::Accept) => S::Accepted,
            (S::Accepted, E::Accept) => S::Accepted,
            (S::PartiallyFilled, E::Accept) => S::PartiallyFilled,
            (S::Submitted | S::Accepted | S::PartiallyFilled | S::Unknown, E::PartialFill) => S::PartiallyFilled,
            (S::Submitted | S::Accepted | S::PartiallyFilled | S::Unknown, E::Fill) => S::Filled,
            (S::Submitted | S::Accepted | S::PartiallyFilled | S::Unknown, E::Cancel) => S::Canceled,
            (S::Submitted | S::Accepted | S::PartiallyFilled | S::Unknown, E::Expire) => S::Expired,
            (S::Submitted | S::Unknown, E::Reject) => S::Rejected,
            (S::Submitted | S::Unknown, E::OutcomeUnknown) => S::Unknown,
            (from, event) => return Err(TransitionError { from, event }),
        };
        Ok(next)
    }
}

/// An order Keel created: persisted before it is sent, updated by every report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Keel's id for the order, unique across restarts; the venue's `newClientOrderId`.
    pub client_order_id: String,
    /// The venue's id once known.
    pub venue_order_id: Option<String>,
    /// The strategy that asked for it (or `operator` for manual orders).
    pub strategy_id: StrategyId,
    /// Symbol.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// Type and prices.
    pub order_type: OrderType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Ordered quantity.
    pub qty: Decimal,
    /// Reduce-only (exits and flattening).
    pub reduce_only: bool,
    /// The strategy's mark for the order (absent in stores from before tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<OrderTag>,
    /// What the order is for when it is an exit (absent in stores from
    /// before exits, and on every other order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitLeg>,
    /// Current status.
    pub status: OrderStatus,
    /// Filled quantity so far.
    pub filled_qty: Decimal,
    /// Filled notional so far (price × quantity summed over fills).
    pub filled_quote: Decimal,
    /// The venue's reason when rejected, or why the outcome is unknown.
    pub reason: Option<String>,
    /// When it was created (ms since the epoch, engine clock).
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
}

impl Order {
    /// A new order from an approved intent.
    pub fn from_intent(intent: &OrderIntent, client_order_id: String, now_ms: i64) -> Self {
        Self {
            client_order_id,
            venue_order_id: None,
            strategy_id: intent.strategy_id.clone(),
            symbol: intent.symbol.clone(),
            side: intent.side,
            order_type: intent.order_type,
            tif: intent.tif,
            qty: intent.qty,
            reduce_only: intent.reduce_only,
            tag: intent.tag,
            exit: intent.exit,
            status: OrderStatus::New,
            filled_qty: Decimal::ZERO,
            filled_quote: Decimal::ZERO,
            reason: None,
            created_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// Applies an event through the state machine; an illegal one leaves the order unchanged.
    pub fn apply(&mut self, event: OrderEvent, now_ms: i64) -> Result<OrderStatus, TransitionError> {
        let next = self.status.apply(event)?;
        self.status = next;
        self.updated_ms = now_ms;
        Ok(next)
    }

    /// Moves the order towards a status a venue reported, through the state
    /// machine (recording the acknowledgement first when needed). Returns true if
    /// the status changed; a report the machine does not allow (late, duplicate)
    /// leaves the order unchanged.
    pub fn sync_to(&mut self, reported: OrderStatus, now_ms: i64) -> bool {
        let before = self.status;
        let Some(event) = OrderEvent::for_reported(reported) else { return false };
        if matches!(self.status, OrderStatus::Submitted | OrderStatus::Unknown | OrderStatus::New)
            && !matches!(event, OrderEvent::Accept | OrderEvent::Reject)
        {
            if self.status == OrderStatus::New {
                let _ = self.apply(OrderEvent::Submit, now_ms);
            }
            let _ = self.apply(OrderEvent::Accept, now_ms);
        }
        if self.status == OrderStatus::New && event == OrderEvent::Accept {
            let _ = self.apply(OrderEvent::Submit, now_ms);
        }
        let _ = self.apply(event, now_ms);
        self.status != before
    }

    /// Quantity still working.
    pub fn remaining_qty(&self) -> Decimal {
        (self.qty - self.filled_qty).max(Decimal::ZERO)
    }

    /// Average fill price, if anything filled.
    pub fn avg_fill_price(&self) -> Option<Decimal> {
        if self.filled_qty.is_zero() {
            None
        } else {
            Some(self.filled_quote / self.filled_qty)
        }
    }

    /// Records a fill's quantity and returns the event it implies for the status
    /// (`PartialFill` or `Fill`); the caller applies it unless the order is terminal.
    pub fn record_fill(&mut self, price: Decimal, qty: Decimal, now_ms: i64) -> OrderEvent {
        self.filled_qty += qty;
        self.filled_quote += price * qty;
        self.updated_ms = now_ms;
        if self.filled_qty >= self.qty {
            OrderEvent::Fill
        } else {
            OrderEvent::PartialFill
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_STATUSES: [OrderStatus; 9] = [
        OrderStatus::New,
        OrderStatus::Submitted,
        OrderStatus::Accepted,
        OrderStatus::PartiallyFilled,
        OrderStatus::Filled,
        OrderStatus::Canceled,
        OrderStatus::Rejected,
        OrderStatus::Expired,
        OrderStatus::Unknown,
    ];
    const ALL_EVENTS: [OrderEvent; 8] = [
        OrderEvent::Submit,
        OrderEvent::Accept,
        OrderEvent::PartialFill,
        OrderEvent::Fill,
        OrderEvent::Cancel,
        OrderEvent::Reject,
        OrderEvent::Expire,
        OrderEvent::OutcomeUnknown,
    ];

    /// Every legal transition; every (status, event) pair not listed must be refused.
    fn legal() -> Vec<(OrderStatus, OrderEvent, OrderStatus)> {
        use OrderEvent as E;
        use OrderStatus as S;
        vec![
            (S::New, E::Submit, S::Submitted),
            (S::New, E::Reject, S::Rejected),
            (S::New, E::Cancel, S::Canceled),
            (S::Submitted, E::Accept, S::Accepted),
            (S::Submitted, E::PartialFill, S::PartiallyFilled),
            (S::Submitted, E::Fill, S::Filled),
            (S::Submitted, E::Cancel, S::Canceled),
            (S::Submitted, E::Reject, S::Rejected),
            (S::Submitted, E::Expire, S::Expired),
            (S::Submitted, E::OutcomeUnknown, S::Unknown),
            (S::Accepted, E::Accept, S::Accepted),
            (S::Accepted, E::PartialFill, S::PartiallyFilled),
            (S::Accepted, E::Fill, S::Filled),
            (S::Accepted, E::Cancel, S::Canceled),
            (S::Accepted, E::Expire, S::Expired),
            (S::PartiallyFilled, E::Accept, S::PartiallyFilled),
            (S::PartiallyFilled, E::PartialFill, S::PartiallyFilled),
            (S::PartiallyFilled, E::Fill, S::Filled),
            (S::PartiallyFilled, E::Cancel, S::Canceled),
            (S::PartiallyFilled, E::Expire, S::Expired),
            (S::Unknown, E::Accept, S::Accepted),
            (S::Unknown, E::PartialFill, S::PartiallyFilled),
            (S::Unknown, E::Fill, S::Filled),
            (S::Unknown, E::Cancel, S::Canceled),
            (S::Unknown, E::Reject, S::Rejected),
            (S::Unknown, E::Expire, S::Expired),
            (S::Unknown, E::OutcomeUnknown, S::Unknown),
        ]
    }

    #[test]
    fn every_transition_is_legal_or_an_error() {
        let legal = legal();
        let mut checked = 0;
        for from in ALL_STATUSES {
            for event in ALL_EVENTS {
                let want = legal.iter().find(|(f, e, _)| *f == from && *e == event).map(|(_, _, to)| *to);
                match (from.apply(event), want) {
                    (Ok(got), Some(to)) => assert_eq!(got, to, "{from:?} --{event:?}"),
                    (Err(err), None) => {
                        assert_eq!(err, TransitionError { from, event });
                    }
                    (got, want) => panic!("{from:?} --{event:?}: got {got:?}, want {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 72);
    }

    #[test]
    fn terminal_states_refuse_everything() {
        for from in ALL_STATUSES.into_iter().filter(|s| s.is_terminal()) {
            for event in ALL_EVENTS {
                assert!(from.apply(event).is_err(), "{from:?} accepted {event:?}");
            }
        }
    }

    #[test]
    fn sync_to_reported_status() {
        let intent = OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, Decimal::ONE);
        let cases = [
            (OrderStatus::New, OrderStatus::Filled, OrderStatus::Filled),
            (OrderStatus::Submitted, OrderStatus::Canceled, OrderStatus::Canceled),
            (OrderStatus::Unknown, OrderStatus::PartiallyFilled, OrderStatus::PartiallyFilled),
            (OrderStatus::Submitted, OrderStatus::Rejected, OrderStatus::Rejected),
            (OrderStatus::New, OrderStatus::Accepted, OrderStatus::Accepted),
            (OrderStatus::Filled, OrderStatus::Canceled, OrderStatus::Filled),
            (OrderStatus::Accepted, OrderStatus::Unknown, OrderStatus::Accepted),
        ];
        for (from, reported, want) in cases {
            let mut order = Order::from_intent(&intent, "k".into(), 0);
            order.status = from;
            order.sync_to(reported, 1);
            assert_eq!(order.status, want, "{from:?} reported {reported:?}");
        }
    }

    #[test]
    fn illegal_event_leaves_order_unchanged() {
        let intent = OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, Decimal::ONE);
        let mut order = Order::from_intent(&intent, "k1".into(), 1);
        assert!(order.apply(OrderEvent::Fill, 2).is_err());
        assert_eq!(order.status, OrderStatus::New);
        assert_eq!(order.updated_ms, 1);
        order.apply(OrderEvent::Submit, 3).unwrap();
        let ev = order.record_fill(Decimal::new(100, 0), Decimal::new(4, 1), 4);
        assert_eq!(ev, OrderEvent::PartialFill);
        order.apply(ev, 4).unwrap();
        let ev = order.record_fill(Decimal::new(110, 0), Decimal::new(6, 1), 5);
        assert_eq!(ev, OrderEvent::Fill);
        order.apply(ev, 5).unwrap();
        assert_eq!(order.status, OrderStatus::Filled);
        assert_eq!(order.avg_fill_price(), Some(Decimal::new(106, 0)));
        assert_eq!(order.remaining_qty(), Decimal::ZERO);
    }
}
