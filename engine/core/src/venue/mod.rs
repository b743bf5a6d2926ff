//! The exchange-neutral venue interface (ccxt-style) that the rest of Keel uses,
//! and its implementations.
//!
//! A venue adapter speaks one exchange's protocol and translates it into these
//! types; callers never see the protocol. The in-process [`paper::PaperVenue`]
//! and the Binance adapter both implement [`Venue`].

pub mod live_paper;
pub mod oco;
pub mod paper;
mod sim_account;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::balance::Balance;
use crate::fill::{Fill, FillCursor};
use crate::instrument::Instrument;
use crate::market::{Bar, BookTicker, MarketEvent};
use crate::order::{OrderStatus, OrderType, Side, TimeInForce};
use crate::symbol::Symbol;

/// An order as it is sent to a venue: Keel's client order id and the rounded values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Keel's id, unique across restarts.
    pub client_order_id: String,
    /// Symbol.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// Type and prices (already rounded to the tick).
    pub order_type: OrderType,
    /// Quantity (already rounded to the step).
    pub qty: Decimal,
    /// Time in force.
    pub tif: TimeInForce,
}

/// The venue's view of one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderReport {
    /// Keel's client order id.
    pub client_order_id: String,
    /// The venue's order id.
    pub venue_order_id: String,
    /// Symbol.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// Status at the venue.
    pub status: OrderStatus,
    /// Ordered quantity.
    pub qty: Decimal,
    /// Cumulative filled quantity.
    pub filled_qty: Decimal,
    /// Cumulative filled quote amount.
    pub filled_quote: Decimal,
    /// The venue's reason for a reject or expiry.
    pub reason: Option<String>,
    /// Venue time of this report (ms).
    pub ts_ms: i64,
    /// For a one-cancels-the-other order ([`crate::order::OrderType::Oco`],
    /// reported as one order: see [`oco`]): the leg that traded or
    /// triggered, once one did (the other leg then expires, which does not
    /// end the order). `None` for every other order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oco_leg: Option<oco::OcoLeg>,
}

/// What placing an order returned: the order's state and any fills already known
/// (a FULL response reports the fills of a market order at once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceResult {
    /// The order at the venue.
    pub report: OrderReport,
    /// Fills contained in the response.
    pub fills: Vec<Fill>,
}

/// Which stream a connection event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Public market data.
    Market,
    /// Private user data (orders, fills, balances).
    User,
    /// Perpetual-futures mark prices (read-only data for strategies).
    Futures,
}

impl StreamKind {
    /// Its name in events, metrics labels and messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Market => "market",
            Self::User => "user",
            Self::Futures => "futures",
        }
    }
}

/// A change in a stream's connectivity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamStatus {
    /// Connected (or reconnected) and, for user data, reconciled.
    Connected,
    /// Disconnected; the adapter is reconnecting.
    Disconnected {
        /// Why.
        reason: String,
    },
}

/// Alert-level events from the venue that an operator must hear about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VenueAlert {
    /// HTTP 429: too many requests; requests pause until `retry_after_ms`.
    RateLimited {
        /// Wait before the next request.
        retry_after_ms: u64,
    },
    /// HTTP 418: the venue banned this IP; nothing is sent until the ban ends.
    Banned {
        /// How long the ban lasts.
        retry_after_ms: u64,
    },
    /// -1015: too many new orders; none is sent until the window resets.
    OrderRateExceeded {
        /// Until the window resets.
        retry_after_ms: u64,
    },
    /// A venue message Keel could not read (malformed, or a value it does not
    /// know): nothing was guessed from it, and the account is reconciled.
    Malformed {
        /// The stream it came on (`user`, `market`).
        stream: String,
        /// What was wrong with it.
        detail: String,
    },
}

/// An event of the market-data subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketFeed {
    /// A market event.
    Event(MarketEvent),
    /// Connectivity changed.
    Status(StreamStatus),
}

/// An event of the user-data subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    /// An order changed.
    Order(OrderReport),
    /// A fill happened.
    Fill(Fill),
    /// Balances changed (the assets listed).
    Balances(Vec<Balance>),
    /// Connectivity changed. After `Connected` the adapter has reconciled any gap.
    Status(StreamStatus),
    /// Something the operator must know.
    Alert(VenueAlert),
}

/// Errors from a venue, classified by what the caller must do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VenueError {
    /// The venue refused the request; it was certainly not executed.
    #[error("rejected by venue ({code}): {reason}")]
    Rejected {
        /// Venue error code.
        code: i64,
        /// Venue message.
        reason: String,
    },
    /// The request may or may not have been executed; query before doing anything else.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The request was not sent or certainly not executed (connect failure, 429, local pacing).
    #[error("not sent: {0}")]
    NotSent(String),
    /// Rate limited: retry after the given time.
    #[error("rate limited, retry after {retry_after_ms} ms")]
    RateLimited {
        /// Wait.
        retry_after_ms: u64,
    },
    /// Banned (418): nothing may be sent until the given time has passed.
    #[error("banned by venue, retry after {retry_after_ms} ms")]
    Banned {
        /// Wait.
        retry_after_ms: u64,
    },
    /// The order does not exist at the venue.
    #[error("order not found at venue")]
    NotFound,
    /// A response could not be understood.
    #[error("bad venue response: {0}")]
    BadResponse(String),
}

impl VenueError {
    /// True when the order may have been executed and must be resolved by a query.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::OutcomeUnknown(_))
    }

    /// True when the same request may be sent again later without risk of duplication.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::NotSent(_) | Self::RateLimited { .. })
    }

    /// Stable snake_case code for logs and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rejected { .. } => "rejected",
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::NotSent(_) => "not_sent",
            Self::RateLimited { .. } => "rate_limited",
            Self::Banned { .. } => "banned",
            Self::NotFound => "not_found",
            Self::BadResponse(_) => "bad_response",
        }
    }
}

/// Result alias for venue calls.
pub type VenueResult<T> = Result<T, VenueError>;

/// A trading venue. Every method is async and cancel-safe from the caller's point
/// of view; an adapter handles signing, pacing and reconnection itself.
#[async_trait]
pub trait Venue: Send + Sync {
    /// Short name for logs and metrics (`paper`, `binance`).
    fn name(&self) -> &str;
    /// Request weight used in the venue's current rate-limit window, where the
    /// venue has one (for `keel_venue_used_weight`).
    fn used_weight(&self) -> Option<u64> {
        None
    }
    /// Instruments with their current filters.
    async fn instruments(&self) -> VenueResult<Vec<Instrument>>;
    /// The venue's clock (ms since the epoch).
    async fn server_time(&self) -> VenueResult<i64>;
    /// Closed klines of `interval_ms`, oldest first, opening at or after `start_ms`.
    async fn klines(
        &self,
        symbol: &Symbol,
        interval_ms: i64,
        start_ms: Option<i64>,
        limit: usize,
    ) -> VenueResult<Vec<Bar>>;
    /// Best bid and ask now.
    async fn best_bid_ask(&self, symbol: &Symbol) -> VenueResult<BookTicker>;
    /// Places an order. An error with [`VenueError::outcome_unknown`] means: query it.
    async fn place_order(&self, request: &OrderRequest) -> VenueResult<PlaceResult>;
    /// Cancels an order by client order id.
    async fn cancel_order(&self, symbol: &Symbol, client_order_id: &str) -> VenueResult<OrderReport>;
    /// Looks an order up by client order id; `Ok(None)` if the venue never saw it.
    async fn query_order(&self, symbol: &Symbol, client_order_id: &str) -> VenueResult<Option<OrderReport>>;
    /// Open orders, of one symbol or all.
    async fn open_orders(&self, symbol: Option<&Symbol>) -> VenueResult<Vec<OrderReport>>;
    /// Account balances.
    async fn balances(&self) -> VenueResult<Vec<Balance>>;
    /// Own fills in `symbol` from `since` on (the cursor's own trade may come
    /// back; the store knows it), oldest first; without a cursor, the most
    /// recent ones. The cursor is the store's, handed back as recorded: each
    /// venue reads from it what its listing resumes from.
    async fn my_trades(&self, symbol: &Symbol, since: Option<&FillCursor>) -> VenueResult<Vec<Fill>>;
    /// Subscribes to closed klines of `interval_ms`, trades and best bid/ask of `symbols`.
    async fn subscribe_market(&self, symbols: &[Symbol], interval_ms: i64) -> VenueResult<mpsc::Receiver<MarketFeed>>;
    /// Subscribes to the account's order updates, fills and balances.
    async fn subscribe_user(&self) -> VenueResult<mpsc::Receiver<UserEvent>>;
    /// Every symbol the venue lists with its status, permissions and 24-hour
    /// ticker, for [`crate::universe`] to rank. A venue without a market
    /// universe refuses (code 501).
    async fn universe_candidates(&self) -> VenueResult<Vec<crate::universe::Candidate>> {
        Err(VenueError::Rejected { code: 501, reason: format!("{} does not list a market universe", self.name()) })
    }
}
