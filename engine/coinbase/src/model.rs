//! Serde types for the Advanced Trade REST responses (reference §4) and
//! WebSocket messages (§6) the adapter reads, and the request bodies it sends.
//!
//! Money is `Decimal` read from Coinbase's strings (numbers accepted too);
//! `""` where Coinbase leaves a value unset is `None`; times are epoch ms.
//! Unknown fields are ignored: Coinbase adds fields often. Enums that grow
//! (statuses, failure reasons) stay strings, interpreted by methods here.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::wire;

// ---------------------------------------------------------------- accounts

/// An amount in a currency (`available_balance`, `hold`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Money {
    /// The amount.
    #[serde(with = "wire::dec")]
    pub value: Decimal,
    /// Its currency.
    pub currency: String,
}

/// One per-currency account (`GET /accounts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Account UUID.
    pub uuid: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Currency code.
    pub currency: String,
    /// Free to trade.
    pub available_balance: Money,
    /// Reserved by open orders (total = available + hold).
    #[serde(default)]
    pub hold: Option<Money>,
    /// Whether the account is active.
    #[serde(default)]
    pub active: Option<bool>,
    /// Whether it is ready.
    #[serde(default)]
    pub ready: Option<bool>,
    /// Opaque account type (`FIAT`, `ACCOUNT_TYPE_CRYPTO`, …).
    #[serde(default, rename = "type")]
    pub account_type: Option<String>,
    /// Creation time (ms).
    #[serde(default, with = "wire::opt_time_ms")]
    pub created_at: Option<i64>,
    /// Deletion time (ms), `null` while it exists.
    #[serde(default, with = "wire::opt_time_ms")]
    pub deleted_at: Option<i64>,
}

impl Account {
    /// The hold, zero when absent.
    pub fn held(&self) -> Decimal {
        self.hold.as_ref().map_or(Decimal::ZERO, |h| h.value)
    }
}

/// `GET /accounts`: one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountsPage {
    /// The accounts of this page.
    pub accounts: Vec<Account>,
    /// Whether another page follows.
    #[serde(default)]
    pub has_next: bool,
    /// The next page's cursor (`""` at the end).
    #[serde(default)]
    pub cursor: String,
}

/// `GET /accounts/{uuid}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountResponse {
    /// The account.
    pub account: Account,
}

// ---------------------------------------------------------------- products

/// Product metadata (`GET /products`, `/market/products`), the source of an
/// instrument's filters ([`crate::symbols::instrument_of`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// `BASE-QUOTE`, e.g. `BTC-USD`.
    pub product_id: String,
    /// Base currency, e.g. `BTC`.
    pub base_currency_id: String,
    /// Quote currency, e.g. `USD`.
    pub quote_currency_id: String,
    /// Step of `base_size`.
    #[serde(with = "wire::dec")]
    pub base_increment: Decimal,
    /// Step of `quote_size`.
    #[serde(with = "wire::dec")]
    pub quote_increment: Decimal,
    /// Tick of `limit_price`/`stop_price` (falls back to `quote_increment`).
    #[serde(default, with = "wire::opt_dec")]
    pub price_increment: Option<Decimal>,
    /// Smallest `base_size`.
    #[serde(with = "wire::dec")]
    pub base_min_size: Decimal,
    /// Largest `base_size`.
    #[serde(default, with = "wire::opt_dec")]
    pub base_max_size: Option<Decimal>,
    /// Smallest notional / `quote_size`.
    #[serde(default, with = "wire::opt_dec")]
    pub quote_min_size: Option<Decimal>,
    /// Largest notional / `quote_size`.
    #[serde(default, with = "wire::opt_dec")]
    pub quote_max_size: Option<Decimal>,
    /// `online`, `offline`, `delisted`, … (lower case).
    #[serde(default)]
    pub status: String,
    /// Trading is off.
    #[serde(default)]
    pub trading_disabled: bool,
    /// The product is disabled.
    #[serde(default)]
    pub is_disabled: bool,
    /// Only cancels are accepted.
    #[serde(default)]
    pub cancel_only: bool,
    /// Only limit orders are accepted.
    #[serde(default)]
    pub limit_only: bool,
    /// Only post-only orders are accepted.
    #[serde(default)]
    pub post_only: bool,
    /// In an auction.
    #[serde(default)]
    pub auction_mode: bool,
    /// Visible but not tradable for this key (with `get_tradability_status`).
    #[serde(default)]
    pub view_only: Option<bool>,
    /// Last price (can be `""`).
    #[serde(default, with = "wire::opt_dec")]
    pub price: Option<Decimal>,
    /// Mid price (can be `""`).
    #[serde(default, with = "wire::opt_dec")]
    pub mid_market_price: Option<Decimal>,
    /// The product this one aliases (`""` for none).
    #[serde(default)]
    pub alias: Option<String>,
    /// Products that alias this one (`BTC-USD` → `["BTC-USDC"]`).
    #[serde(default)]
    pub alias_to: Vec<String>,
    /// `SPOT`, `FUTURE`, …
    #[serde(default)]
    pub product_type: Option<String>,
}

/// `GET /products`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductsPage {
    /// The products.
    pub products: Vec<Product>,
    /// How many there are (a number in the docs, a string in real answers).
    #[serde(default, with = "wire::opt_int")]
    pub num_products: Option<i64>,
}

// ---------------------------------------------------------------- market data

/// One aggregated price level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceLevel {
    /// Price.
    #[serde(with = "wire::dec")]
    pub price: Decimal,
    /// Size at that price.
    #[serde(with = "wire::dec")]
    pub size: Decimal,
}

/// A book, best first on each side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceBook {
    /// Product.
    pub product_id: String,
    /// Bids, highest first.
    #[serde(default)]
    pub bids: Vec<PriceLevel>,
    /// Asks, lowest first.
    #[serde(default)]
    pub asks: Vec<PriceLevel>,
    /// Book time (ms).
    #[serde(default, with = "wire::opt_time_ms")]
    pub time: Option<i64>,
}

/// `GET /product_book`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductBookResponse {
    /// The book.
    pub pricebook: PriceBook,
    /// Last trade price.
    #[serde(default, with = "wire::opt_dec")]
    pub last: Option<Decimal>,
    /// Mid price.
    #[serde(default, with = "wire::opt_dec")]
    pub mid_market: Option<Decimal>,
}

/// `GET /best_bid_ask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestBidAskResponse {
    /// One book per product, one level a side.
    pub pricebooks: Vec<PriceBook>,
}

/// One candle (REST; the WebSocket's carries a `product_id` too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    /// Bucket start (ms; sent as UNIX seconds).
    #[serde(rename = "start", with = "wire::unix_s_as_ms")]
    pub start_ms: i64,
    /// Low.
    #[serde(with = "wire::dec")]
    pub low: Decimal,
    /// High.
    #[serde(with = "wire::dec")]
    pub high: Decimal,
    /// Open.
    #[serde(with = "wire::dec")]
    pub open: Decimal,
    /// Close.
    #[serde(with = "wire::dec")]
    pub close: Decimal,
    /// Base volume.
    #[serde(with = "wire::dec")]
    pub volume: Decimal,
    /// Product (WebSocket candles only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
}

/// `GET /products/{id}/candles` (order unspecified: sort by `start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandlesResponse {
    /// The candles.
    pub candles: Vec<Candle>,
}

/// One public trade (REST `…/ticker` and WebSocket `market_trades`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketTrade {
    /// Trade id (numeric-looking or a UUID).
    pub trade_id: String,
    /// Product.
    pub product_id: String,
    /// Price.
    #[serde(with = "wire::dec")]
    pub price: Decimal,
    /// Base size.
    #[serde(with = "wire::dec")]
    pub size: Decimal,
    /// Trade time (ms).
    #[serde(with = "wire::time_ms")]
    pub time: i64,
    /// `BUY`/`SELL` (on the WebSocket: the maker's side), `""` when unset.
    #[serde(default)]
    pub side: String,
}

/// `GET /products/{id}/ticker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketTradesResponse {
    /// Recent trades.
    pub trades: Vec<MarketTrade>,
    /// Best bid.
    #[serde(default, with = "wire::opt_dec")]
    pub best_bid: Option<Decimal>,
    /// Best ask.
    #[serde(default, with = "wire::opt_dec")]
    pub best_ask: Option<Decimal>,
}

/// `GET /time`: camelCase keys, int64s as strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerTime {
    /// RFC 3339 (ms).
    #[serde(default, with = "wire::opt_time_ms")]
    pub iso: Option<i64>,
    /// Seconds since the epoch.
    #[serde(default, rename = "epochSeconds", with = "wire::opt_int")]
    pub epoch_seconds: Option<i64>,
    /// Milliseconds since the epoch.
    #[serde(default, rename = "epochMillis", with = "wire::opt_int")]
    pub epoch_millis: Option<i64>,
    /// Not Coinbase's: Keel's sandbox, running its market faster than the
    /// server clock, says where the market's clock (its candles') is.
    #[serde(default, rename = "keelMarketClock", skip_serializing_if = "Option::is_none")]
    pub market_clock: Option<MarketClock>,
}

/// A market clock that is not the server's (Keel's accelerated sandbox).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketClock {
    /// The market's time (ms) when the server's was the answer's `epochMillis`.
    #[serde(rename = "epochMillis", with = "wire::dec")]
    pub epoch_millis: Decimal,
    /// Market ms per server ms.
    #[serde(with = "wire::dec")]
    pub speed: Decimal,
}

impl ServerTime {
    /// The server's time in ms: `epochMillis`, else `epochSeconds`, else `iso`.
    pub fn ms(&self) -> Option<i64> {
        self.epoch_millis.or(self.epoch_seconds.map(|s| s.saturating_mul(1000))).or(self.iso)
    }
}

// ---------------------------------------------------------------- orders

/// The sizes and prices of one `order_configuration` variant. One shape for
/// all spot variants: each uses a subset of these fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderSizing {
    /// Size in quote currency (market buys by notional).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "wire::opt_dec")]
    pub quote_size: Option<Decimal>,
    /// Size in base currency. The orders guide spells it `baseSize`.
    #[serde(default, alias = "baseSize", skip_serializing_if = "Option::is_none", with = "wire::opt_dec")]
    pub base_size: Option<Decimal>,
    /// Limit price.
    #[serde(default, alias = "limitPrice", skip_serializing_if = "Option::is_none", with = "wire::opt_dec")]
    pub limit_price: Option<Decimal>,
    /// Stop price (stop-limit).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "wire::opt_dec")]
    pub stop_price: Option<Decimal>,
    /// Stop trigger price (brackets).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "wire::opt_dec")]
    pub stop_trigger_price: Option<Decimal>,
    /// `STOP_DIRECTION_STOP_UP` / `STOP_DIRECTION_STOP_DOWN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_direction: Option<String>,
    /// GTD end time (ms).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "wire::opt_time_ms")]
    pub end_time: Option<i64>,
    /// Post-only (limit GTC/GTD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_only: Option<bool>,
}

/// `order_configuration`: exactly one key is set in a real order. Variants
/// out of scope (TWAP, scaled, perps' FOK market) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderConfiguration {
    /// Market IOC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_market_ioc: Option<OrderSizing>,
    /// Limit IOC (smart order routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sor_limit_ioc: Option<OrderSizing>,
    /// Limit GTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_limit_gtc: Option<OrderSizing>,
    /// Limit GTD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_limit_gtd: Option<OrderSizing>,
    /// Limit FOK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_limit_fok: Option<OrderSizing>,
    /// Stop-limit GTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_limit_stop_limit_gtc: Option<OrderSizing>,
    /// Stop-limit GTD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_limit_stop_limit_gtd: Option<OrderSizing>,
    /// Bracket GTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_bracket_gtc: Option<OrderSizing>,
    /// Bracket GTD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_bracket_gtd: Option<OrderSizing>,
}

/// `POST /orders` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateOrderRequest {
    /// Required; a duplicate returns the existing order (idempotent).
    pub client_order_id: String,
    /// Product.
    pub product_id: String,
    /// `BUY`/`SELL`.
    pub side: String,
    /// Exactly one variant.
    pub order_configuration: OrderConfiguration,
    /// TP/SL attached to a limit entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_order_configuration: Option<OrderConfiguration>,
}

/// `success_response` of `POST /orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateOrderSuccess {
    /// The exchange order id (the only id Get Order and cancel take).
    pub order_id: String,
    /// Product.
    #[serde(default)]
    pub product_id: Option<String>,
    /// Side.
    #[serde(default)]
    pub side: Option<String>,
    /// The client order id sent.
    #[serde(default)]
    pub client_order_id: Option<String>,
}

/// `error_response` of `POST /orders` (answered with HTTP 200).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateOrderFailure {
    /// Deprecated twin of `new_order_failure_reason`.
    #[serde(default)]
    pub error: Option<String>,
    /// Human text.
    #[serde(default)]
    pub message: Option<String>,
    /// More text.
    #[serde(default)]
    pub error_details: Option<String>,
    /// `PREVIEW_*` reason from the pre-trade checks.
    #[serde(default)]
    pub preview_failure_reason: Option<String>,
    /// The reason.
    #[serde(default)]
    pub new_order_failure_reason: Option<String>,
}

/// Whether an enum value says something (not `""`, not a proto `UNKNOWN_*` default).
fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty() && !s.starts_with("UNKNOWN_"))
}

impl CreateOrderFailure {
    /// The reason to classify on (reference §4.8): `new_order_failure_reason`,
    /// then `preview_failure_reason`, then `error`; `UNKNOWN_FAILURE_REASON`
    /// when none says more.
    pub fn reason(&self) -> &str {
        set(&self.new_order_failure_reason)
            .or(set(&self.preview_failure_reason))
            .or(set(&self.error))
            .unwrap_or("UNKNOWN_FAILURE_REASON")
    }
}

/// `POST /orders` answer. Only `success`, `success_response` and
/// `error_response` are read (the top-level `order_id`/`failure_reason`
/// were removed in 2024).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateOrderResponse {
    /// Whether the order was accepted.
    pub success: bool,
    /// Present on success.
    #[serde(default)]
    pub success_response: Option<CreateOrderSuccess>,
    /// Present on failure.
    #[serde(default)]
    pub error_response: Option<CreateOrderFailure>,
    /// Echo of the configuration; can be `null`.
    #[serde(default)]
    pub order_configuration: Option<OrderConfiguration>,
}

impl CreateOrderResponse {
    /// The new order's id, or the failure. `success:true` without an id is
    /// a failure with reason `UNKNOWN_FAILURE_REASON` (never guessed as placed).
    pub fn outcome(&self) -> Result<&CreateOrderSuccess, CreateOrderFailure> {
        match (&self.success, &self.success_response) {
            (true, Some(s)) if !s.order_id.is_empty() => Ok(s),
            _ => Err(self.error_response.clone().unwrap_or_default()),
        }
    }
}

/// `POST /orders/batch_cancel` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelOrdersRequest {
    /// Exchange order ids.
    pub order_ids: Vec<String>,
}

/// `POST /orders/edit` (and `edit_preview`) body: all three fields are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditOrderRequest {
    /// Exchange order id (GTC limit orders only).
    pub order_id: String,
    /// New limit price.
    #[serde(with = "wire::dec")]
    pub price: Decimal,
    /// New base size.
    #[serde(with = "wire::dec")]
    pub size: Decimal,
}

/// One entry of a batch cancel answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelResult {
    /// Accepted (not yet cancelled: expect `CANCEL_QUEUED`).
    pub success: bool,
    /// Why not (`UNKNOWN_CANCEL_FAILURE_REASON` when `success`).
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// The order.
    pub order_id: String,
}

/// `POST /orders/batch_cancel` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelOrdersResponse {
    /// One per id sent.
    pub results: Vec<CancelResult>,
}

/// An order's status (reference §5.1). No partially-filled status exists:
/// `Open` with `filled_size > 0` is a partial fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderStatus {
    /// Not yet open.
    Pending,
    /// Queued before the book.
    Queued,
    /// Working (maybe partly filled).
    Open,
    /// An edit is pending.
    EditQueued,
    /// A cancel is pending; fills can still come.
    CancelQueued,
    /// Fully filled (terminal).
    Filled,
    /// Cancelled, maybe partly filled (terminal).
    Cancelled,
    /// Expired (terminal).
    Expired,
    /// Never placed (terminal).
    Failed,
    /// Anything else, `UNKNOWN_ORDER_STATUS` included: query the order.
    Unknown(String),
}

impl OrderStatus {
    /// Reads Coinbase's spelling.
    pub fn parse(s: &str) -> Self {
        match s {
            "PENDING" => Self::Pending,
            "QUEUED" => Self::Queued,
            "OPEN" => Self::Open,
            "EDIT_QUEUED" => Self::EditQueued,
            "CANCEL_QUEUED" => Self::CancelQueued,
            "FILLED" => Self::Filled,
            "CANCELLED" => Self::Cancelled,
            "EXPIRED" => Self::Expired,
            "FAILED" => Self::Failed,
            other => Self::Unknown(other.to_string()),
        }
    }

    /// Whether no further change can come.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Filled | Self::Cancelled | Self::Expired | Self::Failed)
    }
}

/// An order as `GET /orders/historical/…` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Exchange id.
    pub order_id: String,
    /// Client id.
    #[serde(default)]
    pub client_order_id: String,
    /// Product.
    pub product_id: String,
    /// `BUY`/`SELL`.
    #[serde(default)]
    pub side: String,
    /// See [`OrderStatus`].
    pub status: String,
    /// What was submitted.
    #[serde(default)]
    pub order_configuration: Option<OrderConfiguration>,
    /// `GOOD_UNTIL_CANCELLED`, `IMMEDIATE_OR_CANCEL`, …
    #[serde(default)]
    pub time_in_force: Option<String>,
    /// `LIMIT`, `MARKET`, …
    #[serde(default)]
    pub order_type: Option<String>,
    /// Creation time (ms).
    #[serde(default, with = "wire::opt_time_ms")]
    pub created_time: Option<i64>,
    /// Last fill (ms).
    #[serde(default, with = "wire::opt_time_ms")]
    pub last_fill_time: Option<i64>,
    /// Base filled.
    #[serde(default, with = "wire::opt_dec")]
    pub filled_size: Option<Decimal>,
    /// Quote filled, fees excluded.
    #[serde(default, with = "wire::opt_dec")]
    pub filled_value: Option<Decimal>,
    /// Average fill price.
    #[serde(default, with = "wire::opt_dec")]
    pub average_filled_price: Option<Decimal>,
    /// Fill count.
    #[serde(default, with = "wire::opt_int")]
    pub number_of_fills: Option<i64>,
    /// Fees, quote currency.
    #[serde(default, with = "wire::opt_dec")]
    pub total_fees: Option<Decimal>,
    /// Buy: `filled_value + total_fees`.
    #[serde(default, with = "wire::opt_dec")]
    pub total_value_after_fees: Option<Decimal>,
    /// The order was sized in quote currency.
    #[serde(default)]
    pub size_in_quote: Option<bool>,
    /// The quote size includes fees.
    #[serde(default)]
    pub size_inclusive_of_fees: Option<bool>,
    /// A cancel is pending.
    #[serde(default)]
    pub pending_cancel: Option<bool>,
    /// Funds still on hold.
    #[serde(default, with = "wire::opt_dec")]
    pub outstanding_hold_amount: Option<Decimal>,
    /// `REJECT_REASON_UNSPECIFIED` when not rejected.
    #[serde(default)]
    pub reject_reason: Option<String>,
    /// Text (not an error by itself: filled market IOCs say "Internal error").
    #[serde(default)]
    pub cancel_message: Option<String>,
}

impl Order {
    /// The status, parsed.
    pub fn status(&self) -> OrderStatus {
        OrderStatus::parse(&self.status)
    }
}

/// `GET /orders/historical/{order_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetOrderResponse {
    /// The order.
    pub order: Order,
}

/// `GET /orders/historical/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListOrdersResponse {
    /// This page.
    pub orders: Vec<Order>,
    /// More pages follow.
    #[serde(default)]
    pub has_next: bool,
    /// The next page's cursor.
    #[serde(default)]
    pub cursor: String,
}

/// One execution (`GET /orders/historical/fills`), the only per-fill record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    /// Unique row id.
    #[serde(default)]
    pub entry_id: Option<String>,
    /// Trade id (UUID): the deduplication key.
    pub trade_id: String,
    /// Exchange order id.
    pub order_id: String,
    /// Execution time (ms).
    #[serde(with = "wire::time_ms")]
    pub trade_time: i64,
    /// `FILL`; anything else is an adjustment.
    #[serde(default)]
    pub trade_type: Option<String>,
    /// Price.
    #[serde(with = "wire::dec")]
    pub price: Decimal,
    /// Base units, or quote units when `size_in_quote`.
    #[serde(with = "wire::dec")]
    pub size: Decimal,
    /// Fee in the quote currency.
    #[serde(with = "wire::dec")]
    pub commission: Decimal,
    /// Product.
    pub product_id: String,
    /// Paging key (ms).
    #[serde(default, with = "wire::opt_time_ms")]
    pub sequence_timestamp: Option<i64>,
    /// `MAKER`, `TAKER` or `UNKNOWN_LIQUIDITY_INDICATOR`.
    #[serde(default)]
    pub liquidity_indicator: Option<String>,
    /// `size` is in quote units.
    #[serde(default)]
    pub size_in_quote: bool,
    /// `BUY`/`SELL`.
    #[serde(default)]
    pub side: String,
}

impl Fill {
    /// The base quantity: `size`, or `size / price` when it is in quote units.
    pub fn base_size(&self) -> Decimal {
        if self.size_in_quote && !self.price.is_zero() {
            self.size / self.price
        } else {
            self.size
        }
    }
}

/// `GET /orders/historical/fills`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillsResponse {
    /// This page.
    pub fills: Vec<Fill>,
    /// Next page (`""` at the end).
    #[serde(default)]
    pub cursor: String,
}

/// `fee_tier` of the transaction summary; rates are fractions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeeTier {
    /// Tier name.
    #[serde(default)]
    pub pricing_tier: Option<String>,
    /// Taker rate (`0.008` = 0.8 %).
    #[serde(with = "wire::dec")]
    pub taker_fee_rate: Decimal,
    /// Maker rate.
    #[serde(with = "wire::dec")]
    pub maker_fee_rate: Decimal,
}

/// `GET /transaction_summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionSummary {
    /// The fee tier.
    pub fee_tier: FeeTier,
    /// Fees paid in the window.
    #[serde(default, with = "wire::opt_dec")]
    pub total_fees: Option<Decimal>,
    /// Volume in the window.
    #[serde(default, with = "wire::opt_dec")]
    pub total_volume: Option<Decimal>,
}

/// `POST /orders/preview` (only what a pre-trade check reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewOrderResponse {
    /// `PREVIEW_*` reasons; `UNKNOWN_PREVIEW_FAILURE_REASON` means none.
    #[serde(default)]
    pub errs: Vec<String>,
    /// Total including fees.
    #[serde(default, with = "wire::opt_dec")]
    pub order_total: Option<Decimal>,
    /// Fees.
    #[serde(default, with = "wire::opt_dec")]
    pub commission_total: Option<Decimal>,
    /// Quote size.
    #[serde(default, with = "wire::opt_dec")]
    pub quote_size: Option<Decimal>,
    /// Base size.
    #[serde(default, with = "wire::opt_dec")]
    pub base_size: Option<Decimal>,
}

/// One reason an edit failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditError {
    /// `ORDER_NOT_FOUND`, …
    #[serde(default)]
    pub edit_failure_reason: Option<String>,
    /// `PREVIEW_*`.
    #[serde(default)]
    pub preview_failure_reason: Option<String>,
}

/// `POST /orders/edit` and `POST /orders/edit_preview` (the shared part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditOrderResponse {
    /// Accepted (`edit` only; absent from `edit_preview`).
    #[serde(default)]
    pub success: Option<bool>,
    /// Why not.
    #[serde(default)]
    pub errors: Vec<EditError>,
}

/// A non-200 JSON body (reference §8): the documented gRPC shape, the
/// observed `{error, error_details, message}` and the legacy `errors[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// gRPC-style code (`INVALID_ARGUMENT`, `NOT_FOUND`, `unknown`, …).
    #[serde(default)]
    pub error: Option<String>,
    /// Numeric code (documented shape).
    #[serde(default)]
    pub code: Option<i64>,
    /// Text.
    #[serde(default)]
    pub message: Option<String>,
    /// Text (repeats `message`).
    #[serde(default)]
    pub error_details: Option<String>,
    /// Legacy v2 errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<LegacyError>,
}

/// One legacy (Coinbase App v2) error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyError {
    /// Id, e.g. `authentication_error`.
    pub id: String,
    /// Text.
    #[serde(default)]
    pub message: String,
}

impl ErrorBody {
    /// The most specific text: `error_details`, `message`, a legacy message, `error`.
    pub fn text(&self) -> &str {
        [&self.error_details, &self.message]
            .into_iter()
            .find_map(|t| t.as_deref().filter(|s| !s.is_empty()))
            .or(self.errors.first().map(|e| e.message.as_str()))
            .or(self.error.as_deref())
            .unwrap_or("")
    }

    /// An unknown order id (matched on the text, as `error` varies).
    pub fn is_order_not_found(&self) -> bool {
        self.text().contains("order with this orderID was not found")
    }
}

// ---------------------------------------------------------------- websocket

/// A subscribe or unsubscribe message (one channel per message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    /// `subscribe` or `unsubscribe`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Products (optional for `heartbeats`, `status`, `user`).
    #[serde(default)]
    pub product_ids: Vec<String>,
    /// Subscribe channel name (`level2`, not `l2_data`).
    pub channel: String,
    /// The WebSocket JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
}

/// A data message: the per-connection `sequence_num` runs across channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<E> {
    /// Message channel (`l2_data`, `user`, …).
    pub channel: String,
    /// `""` in the docs, absent in production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Send time (ms).
    #[serde(default, with = "wire::opt_time_ms")]
    pub timestamp: Option<i64>,
    /// Per-connection sequence; a jump of more than one is a lost message.
    pub sequence_num: u64,
    /// The events.
    pub events: Vec<E>,
}

/// A `level2` event (message channel `l2_data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L2Event {
    /// `snapshot` (replace the book) or `update`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Product.
    pub product_id: String,
    /// Levels with absolute quantities.
    #[serde(default)]
    pub updates: Vec<L2Update>,
}

/// One level: `new_quantity` is the new size there, `0` removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L2Update {
    /// `bid` or `offer`.
    pub side: String,
    /// Engine time (ms; `0` in snapshots).
    #[serde(default, with = "wire::opt_time_ms")]
    pub event_time: Option<i64>,
    /// Price.
    #[serde(with = "wire::dec")]
    pub price_level: Decimal,
    /// Absolute size.
    #[serde(with = "wire::dec")]
    pub new_quantity: Decimal,
}

impl L2Update {
    /// True for the bid side (`offer` is the ask side).
    pub fn is_bid(&self) -> bool {
        self.side.eq_ignore_ascii_case("bid")
    }
}

/// A `user` event: cumulative order states, not fills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserEvent {
    /// `snapshot` or `update`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Orders (batches of 50 in snapshots).
    #[serde(default)]
    pub orders: Vec<UserOrder>,
}

/// One order's full current state on the user channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserOrder {
    /// Exchange id.
    pub order_id: String,
    /// Client id.
    #[serde(default)]
    pub client_order_id: String,
    /// Product.
    pub product_id: String,
    /// `BUY`/`SELL`.
    #[serde(default)]
    pub order_side: String,
    /// `Limit`, `Market`, … (case varies).
    #[serde(default)]
    pub order_type: String,
    /// See [`OrderStatus`].
    pub status: String,
    /// Base filled so far.
    #[serde(default, with = "wire::opt_dec")]
    pub cumulative_quantity: Option<Decimal>,
    /// Left, in the unit the order was sized in.
    #[serde(default, with = "wire::opt_dec")]
    pub leaves_quantity: Option<Decimal>,
    /// Average fill price.
    #[serde(default, with = "wire::opt_dec")]
    pub avg_price: Option<Decimal>,
    /// Quote filled.
    #[serde(default, with = "wire::opt_dec")]
    pub filled_value: Option<Decimal>,
    /// Fills so far.
    #[serde(default, with = "wire::opt_int")]
    pub number_of_fills: Option<i64>,
    /// Fees so far (quote).
    #[serde(default, with = "wire::opt_dec")]
    pub total_fees: Option<Decimal>,
    /// Limit price (`""`/`0` when none).
    #[serde(default, with = "wire::opt_dec")]
    pub limit_price: Option<Decimal>,
    /// Post-only, sent as a string.
    #[serde(default, with = "wire::opt_bool_text")]
    pub post_only: Option<bool>,
    /// Creation (ms).
    #[serde(default, with = "wire::opt_time_ms")]
    pub creation_time: Option<i64>,
}

impl UserOrder {
    /// The status, parsed.
    pub fn status(&self) -> OrderStatus {
        OrderStatus::parse(&self.status)
    }
}

/// A `heartbeats` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatEvent {
    /// Go `time.String()` text, kept as is (not RFC 3339).
    #[serde(default)]
    pub current_time: String,
    /// +1 a second (a string in the docs, an integer in production).
    #[serde(default, with = "wire::opt_int")]
    pub heartbeat_counter: Option<i64>,
}

/// A `ticker` / `ticker_batch` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickerEvent {
    /// `snapshot` or `update`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Tickers.
    #[serde(default)]
    pub tickers: Vec<Ticker>,
}

/// One ticker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticker {
    /// Product.
    pub product_id: String,
    /// Last price.
    #[serde(with = "wire::dec")]
    pub price: Decimal,
    /// 24 h volume.
    #[serde(default, with = "wire::opt_dec")]
    pub volume_24_h: Option<Decimal>,
    /// Best bid (absent from `ticker_batch` at times).
    #[serde(default, with = "wire::opt_dec")]
    pub best_bid: Option<Decimal>,
    /// Size at the best bid.
    #[serde(default, with = "wire::opt_dec")]
    pub best_bid_quantity: Option<Decimal>,
    /// Best ask.
    #[serde(default, with = "wire::opt_dec")]
    pub best_ask: Option<Decimal>,
    /// Size at the best ask.
    #[serde(default, with = "wire::opt_dec")]
    pub best_ask_quantity: Option<Decimal>,
}

/// A `candles` event (5-minute buckets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandlesEvent {
    /// `snapshot` or `update`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Candles, with `product_id`.
    #[serde(default)]
    pub candles: Vec<Candle>,
}

/// A `market_trades` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketTradesEvent {
    /// `snapshot` or `update`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Trades (`side` is the maker's).
    #[serde(default)]
    pub trades: Vec<MarketTrade>,
}

/// A `status` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// `snapshot` or `update`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Products.
    #[serde(default)]
    pub products: Vec<StatusProduct>,
}

/// One product on the `status` channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusProduct {
    /// Product id.
    pub id: String,
    /// `online`, …
    #[serde(default)]
    pub status: String,
    /// Base step.
    #[serde(default, with = "wire::opt_dec")]
    pub base_increment: Option<Decimal>,
    /// Quote step.
    #[serde(default, with = "wire::opt_dec")]
    pub quote_increment: Option<Decimal>,
    /// Smallest market order in quote.
    #[serde(default, with = "wire::opt_dec")]
    pub min_market_funds: Option<Decimal>,
}

/// The `subscriptions` acknowledgement: every subscription on the connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionsEvent {
    /// Channel → products (the user's UUID for `user`).
    pub subscriptions: BTreeMap<String, Vec<String>>,
}

/// `{"type":"error","message":…}` (bad JWT, unknown channel name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WsError {
    /// `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Text, e.g. `authentication failure`.
    #[serde(default)]
    pub message: String,
}

/// Any message from the Advanced Trade WebSocket.
#[derive(Debug, Clone, PartialEq)]
pub enum WsMessage {
    /// `l2_data`.
    L2Data(Envelope<L2Event>),
    /// `user`.
    User(Envelope<UserEvent>),
    /// `heartbeats`.
    Heartbeats(Envelope<HeartbeatEvent>),
    /// `ticker`.
    Ticker(Envelope<TickerEvent>),
    /// `ticker_batch`.
    TickerBatch(Envelope<TickerEvent>),
    /// `candles`.
    Candles(Envelope<CandlesEvent>),
    /// `market_trades`.
    MarketTrades(Envelope<MarketTradesEvent>),
    /// `status`.
    Status(Envelope<StatusEvent>),
    /// `subscriptions`.
    Subscriptions(Envelope<SubscriptionsEvent>),
    /// An error frame.
    Error(WsError),
    /// A channel Keel does not read; its sequence number still counts.
    Other {
        /// Channel.
        channel: String,
        /// Sequence number.
        sequence_num: u64,
    },
}

#[derive(Deserialize)]
struct Peek {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    sequence_num: u64,
}

impl WsMessage {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let peek: Peek = serde_json::from_str(text)?;
        if peek.kind.as_deref() == Some("error") {
            return serde_json::from_str(text).map(Self::Error);
        }
        let Some(channel) = peek.channel else {
            return Err(serde::de::Error::custom("a message with neither `channel` nor `type: error`"));
        };
        Ok(match channel.as_str() {
            "l2_data" => Self::L2Data(serde_json::from_str(text)?),
            "user" => Self::User(serde_json::from_str(text)?),
            "heartbeats" => Self::Heartbeats(serde_json::from_str(text)?),
            "ticker" => Self::Ticker(serde_json::from_str(text)?),
            "ticker_batch" => Self::TickerBatch(serde_json::from_str(text)?),
            "candles" => Self::Candles(serde_json::from_str(text)?),
            "market_trades" => Self::MarketTrades(serde_json::from_str(text)?),
            "status" => Self::Status(serde_json::from_str(text)?),
            "subscriptions" => Self::Subscriptions(serde_json::from_str(text)?),
            _ => Self::Other { channel, sequence_num: peek.sequence_num },
        })
    }

    /// The connection sequence number (none for error frames).
    pub fn sequence_num(&self) -> Option<u64> {
        Some(match self {
            Self::L2Data(e) => e.sequence_num,
            Self::User(e) => e.sequence_num,
            Self::Heartbeats(e) => e.sequence_num,
            Self::Ticker(e) | Self::TickerBatch(e) => e.sequence_num,
            Self::Candles(e) => e.sequence_num,
            Self::MarketTrades(e) => e.sequence_num,
            Self::Status(e) => e.sequence_num,
            Self::Subscriptions(e) => e.sequence_num,
            Self::Other { sequence_num, .. } => *sequence_num,
            Self::Error(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_order_outcomes() {
        let ok: CreateOrderResponse =
            serde_json::from_str(r#"{"success":true,"success_response":{"order_id":"o1"},"order_configuration":null}"#)
                .unwrap();
        assert_eq!(ok.outcome().unwrap().order_id, "o1");
        let no_id: CreateOrderResponse = serde_json::from_str(r#"{"success":true}"#).unwrap();
        assert_eq!(no_id.outcome().unwrap_err().reason(), "UNKNOWN_FAILURE_REASON");
        let cases = [
            (r#"{"new_order_failure_reason":"INSUFFICIENT_FUND","error":"X"}"#, "INSUFFICIENT_FUND"),
            (
                r#"{"new_order_failure_reason":"UNKNOWN_FAILURE_REASON","preview_failure_reason":"PREVIEW_INVALID_SIZE_PRECISION"}"#,
                "PREVIEW_INVALID_SIZE_PRECISION",
            ),
            (
                r#"{"error":"INVALID_LIMIT_PRICE_POST_ONLY","preview_failure_reason":""}"#,
                "INVALID_LIMIT_PRICE_POST_ONLY",
            ),
            (r#"{}"#, "UNKNOWN_FAILURE_REASON"),
        ];
        for (body, want) in cases {
            let f: CreateOrderFailure = serde_json::from_str(body).unwrap();
            assert_eq!(f.reason(), want, "{body}");
        }
    }

    #[test]
    fn statuses_and_terminality() {
        let cases = [
            ("OPEN", false),
            ("CANCEL_QUEUED", false),
            ("FILLED", true),
            ("CANCELLED", true),
            ("EXPIRED", true),
            ("FAILED", true),
            ("UNKNOWN_ORDER_STATUS", false),
        ];
        for (s, terminal) in cases {
            assert_eq!(OrderStatus::parse(s).is_terminal(), terminal, "{s}");
        }
        assert_eq!(OrderStatus::parse("CANCELED"), OrderStatus::Unknown("CANCELED".into()));
    }

    #[test]
    fn a_bad_decimal_names_the_field() {
        let err = serde_json::from_str::<PriceLevel>(r#"{"price":"1.2.3","size":"1"}"#).unwrap_err().to_string();
        assert!(err.contains("1.2.3"), "{err}");
        let ws = WsMessage::parse(r#"{"sequence_num":1}"#).unwrap_err().to_string();
        assert!(ws.contains("channel"), "{ws}");
    }
}
