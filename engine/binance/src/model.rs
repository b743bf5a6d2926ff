//! Serde models of the Binance spot payloads Keel reads and the sandbox writes.
//!
//! Prices and quantities are `Decimal` read from JSON strings. Every struct
//! tolerates unknown fields, and optional fields default when missing, because
//! Binance adds fields over time and the documented examples disagree.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /api/v3/time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTime {
    /// Server time, ms since the epoch.
    pub server_time: i64,
}

/// A `{"code":…,"msg":…}` error body (REST) or `error` object (WS API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// Negative Binance error code.
    pub code: i64,
    /// Message.
    #[serde(default)]
    pub msg: String,
    /// Extra data (`retryAfter`, cancelReplace results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// One entry of `rateLimits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// `REQUEST_WEIGHT`, `ORDERS`, `RAW_REQUESTS`, `CONNECTIONS`.
    #[serde(default)]
    pub rate_limit_type: String,
    /// `SECOND`, `MINUTE`, `HOUR`, `DAY`.
    #[serde(default)]
    pub interval: String,
    /// Number of intervals.
    #[serde(default)]
    pub interval_num: u32,
    /// Limit.
    #[serde(default)]
    pub limit: u64,
    /// Current count (WS API responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl RateLimit {
    /// The window length in milliseconds.
    pub fn window_ms(&self) -> u64 {
        let unit: u64 = match self.interval.as_str() {
            "SECOND" => 1_000,
            "MINUTE" => 60_000,
            "HOUR" => 3_600_000,
            "DAY" => 86_400_000,
            _ => 60_000,
        };
        unit * u64::from(self.interval_num.max(1))
    }
}

/// A symbol filter. Filters this build does not use are kept as `Other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "filterType")]
pub enum Filter {
    /// `PRICE_FILTER`.
    #[serde(rename = "PRICE_FILTER", rename_all = "camelCase")]
    PriceFilter {
        /// Minimum price (0 = none).
        #[serde(with = "rust_decimal::serde::str")]
        min_price: Decimal,
        /// Maximum price (0 = none).
        #[serde(with = "rust_decimal::serde::str")]
        max_price: Decimal,
        /// Tick size (0 = none).
        #[serde(with = "rust_decimal::serde::str")]
        tick_size: Decimal,
    },
    /// `LOT_SIZE`.
    #[serde(rename = "LOT_SIZE", rename_all = "camelCase")]
    LotSize {
        /// Minimum quantity.
        #[serde(with = "rust_decimal::serde::str")]
        min_qty: Decimal,
        /// Maximum quantity.
        #[serde(with = "rust_decimal::serde::str")]
        max_qty: Decimal,
        /// Step.
        #[serde(with = "rust_decimal::serde::str")]
        step_size: Decimal,
    },
    /// `MARKET_LOT_SIZE`.
    #[serde(rename = "MARKET_LOT_SIZE", rename_all = "camelCase")]
    MarketLotSize {
        /// Minimum quantity.
        #[serde(with = "rust_decimal::serde::str")]
        min_qty: Decimal,
        /// Maximum quantity.
        #[serde(with = "rust_decimal::serde::str")]
        max_qty: Decimal,
        /// Step.
        #[serde(with = "rust_decimal::serde::str")]
        step_size: Decimal,
    },
    /// `MIN_NOTIONAL`.
    #[serde(rename = "MIN_NOTIONAL", rename_all = "camelCase")]
    MinNotional {
        /// Minimum notional.
        #[serde(with = "rust_decimal::serde::str")]
        min_notional: Decimal,
        /// Applies to market orders.
        #[serde(default)]
        apply_to_market: bool,
        /// Minutes of the average price.
        #[serde(default)]
        avg_price_mins: u32,
    },
    /// `NOTIONAL`.
    #[serde(rename = "NOTIONAL", rename_all = "camelCase")]
    Notional {
        /// Minimum notional.
        #[serde(with = "rust_decimal::serde::str")]
        min_notional: Decimal,
        /// Minimum applies to market orders.
        #[serde(default)]
        apply_min_to_market: bool,
        /// Maximum notional.
        #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
        max_notional: Option<Decimal>,
        /// Maximum applies to market orders.
        #[serde(default)]
        apply_max_to_market: bool,
        /// Minutes of the average price.
        #[serde(default)]
        avg_price_mins: u32,
    },
    /// `MAX_NUM_ORDERS`.
    #[serde(rename = "MAX_NUM_ORDERS", rename_all = "camelCase")]
    MaxNumOrders {
        /// Most open orders per symbol.
        max_num_orders: u32,
    },
    /// `PERCENT_PRICE_BY_SIDE` (parsed, not enforced by Keel).
    #[serde(rename = "PERCENT_PRICE_BY_SIDE", rename_all = "camelCase")]
    PercentPriceBySide {
        /// Bid multiplier up.
        #[serde(with = "rust_decimal::serde::str")]
        bid_multiplier_up: Decimal,
        /// Bid multiplier down.
        #[serde(with = "rust_decimal::serde::str")]
        bid_multiplier_down: Decimal,
        /// Ask multiplier up.
        #[serde(with = "rust_decimal::serde::str")]
        ask_multiplier_up: Decimal,
        /// Ask multiplier down.
        #[serde(with = "rust_decimal::serde::str")]
        ask_multiplier_down: Decimal,
        /// Minutes of the average price.
        #[serde(default)]
        avg_price_mins: u32,
    },
    /// Any other filter.
    #[serde(other)]
    Other,
}

/// One symbol of `exchangeInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolInfo {
    /// Symbol.
    pub symbol: String,
    /// Status string (`TRADING`, `HALT`, …; unknown ones are kept).
    pub status: String,
    /// Base asset.
    pub base_asset: String,
    /// Quote asset.
    pub quote_asset: String,
    /// Base asset precision.
    #[serde(default)]
    pub base_asset_precision: u32,
    /// Quote asset precision.
    #[serde(default)]
    pub quote_asset_precision: u32,
    /// Allowed order types.
    #[serde(default)]
    pub order_types: Vec<String>,
    /// Spot trading allowed.
    #[serde(default = "yes")]
    pub is_spot_trading_allowed: bool,
    /// Filters (a filter that does not parse is kept as `Other`).
    #[serde(default, deserialize_with = "lenient_filters")]
    pub filters: Vec<Filter>,
    /// Permission sets.
    #[serde(default)]
    pub permission_sets: Vec<Vec<String>>,
    /// Default STP mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_self_trade_prevention_mode: Option<String>,
    /// Allowed STP modes.
    #[serde(default)]
    pub allowed_self_trade_prevention_modes: Vec<String>,
}

fn lenient_filters<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Filter>, D::Error> {
    let raw = Vec::<Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|v| {
            serde_json::from_value(v.clone()).unwrap_or_else(|e| {
                tracing::warn!(filter = %v, error = %e, "unreadable exchangeInfo filter ignored");
                Filter::Other
            })
        })
        .collect())
}

fn yes() -> bool {
    true
}

/// `GET /api/v3/exchangeInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeInfo {
    /// Time zone.
    #[serde(default)]
    pub timezone: String,
    /// Server time.
    #[serde(default)]
    pub server_time: i64,
    /// Limits.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    /// Exchange filters (kept raw).
    #[serde(default)]
    pub exchange_filters: Vec<Value>,
    /// Symbols.
    #[serde(default)]
    pub symbols: Vec<SymbolInfo>,
}

/// One kline as the REST array `[openTime, o, h, l, c, v, closeTime, q, n, V, Q, ignore]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kline {
    /// Open time.
    pub open_time: i64,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close.
    pub close: Decimal,
    /// Base volume.
    pub volume: Decimal,
    /// Close time (inclusive).
    pub close_time: i64,
    /// Quote volume.
    pub quote_volume: Decimal,
    /// Number of trades.
    pub trades: u64,
}

impl Kline {
    /// The engine's bar of `symbol` (REST warm-up, the kline stream and
    /// `keel data download` all convert the same way).
    pub fn into_bar(self, symbol: keel_core::Symbol) -> keel_core::market::Bar {
        keel_core::market::Bar {
            symbol,
            open_time: self.open_time,
            close_time: self.close_time,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
        }
    }
}

fn dec_at(a: &[Value], i: usize) -> Result<Decimal, String> {
    match a.get(i) {
        Some(Value::String(s)) => s.parse().map_err(|e| format!("kline[{i}] {s:?}: {e}")),
        Some(Value::Number(n)) => n.to_string().parse().map_err(|e| format!("kline[{i}] {n}: {e}")),
        other => Err(format!("kline[{i}] missing or not a decimal: {other:?}")),
    }
}

fn int_at(a: &[Value], i: usize) -> Result<i64, String> {
    a.get(i).and_then(Value::as_i64).ok_or_else(|| format!("kline[{i}] missing or not an integer"))
}

impl Kline {
    /// Reads the REST array form.
    pub fn from_array(a: &[Value]) -> Result<Self, String> {
        Ok(Self {
            open_time: int_at(a, 0)?,
            open: dec_at(a, 1)?,
            high: dec_at(a, 2)?,
            low: dec_at(a, 3)?,
            close: dec_at(a, 4)?,
            volume: dec_at(a, 5)?,
            close_time: int_at(a, 6)?,
            quote_volume: dec_at(a, 7)?,
            trades: u64::try_from(int_at(a, 8)?).unwrap_or(0),
        })
    }

    /// Writes the REST array form.
    pub fn to_array(&self) -> Value {
        serde_json::json!([
            self.open_time,
            self.open.to_string(),
            self.high.to_string(),
            self.low.to_string(),
            self.close.to_string(),
            self.volume.to_string(),
            self.close_time,
            self.quote_volume.to_string(),
            self.trades,
            "0",
            "0",
            "0"
        ])
    }
}

impl<'de> Deserialize<'de> for Kline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let a = Vec::<Value>::deserialize(d)?;
        Kline::from_array(&a).map_err(serde::de::Error::custom)
    }
}

/// `GET /api/v3/ticker/bookTicker` (one symbol).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookTickerRest {
    /// Symbol.
    pub symbol: String,
    /// Best bid.
    #[serde(with = "rust_decimal::serde::str")]
    pub bid_price: Decimal,
    /// Quantity at the best bid.
    #[serde(with = "rust_decimal::serde::str")]
    pub bid_qty: Decimal,
    /// Best ask.
    #[serde(with = "rust_decimal::serde::str")]
    pub ask_price: Decimal,
    /// Quantity at the best ask.
    #[serde(with = "rust_decimal::serde::str")]
    pub ask_qty: Decimal,
}

/// `GET /api/v3/ticker/price`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceTicker {
    /// Symbol.
    pub symbol: String,
    /// Last price.
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
}

/// `GET /api/v3/avgPrice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvgPrice {
    /// Minutes averaged.
    pub mins: u32,
    /// Average price.
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    /// Time of the last trade.
    #[serde(default)]
    pub close_time: i64,
}

/// `GET /api/v3/depth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Depth {
    /// Book update id.
    pub last_update_id: u64,
    /// Bids `[price, qty]`, best first.
    pub bids: Vec<[String; 2]>,
    /// Asks `[price, qty]`, best first.
    pub asks: Vec<[String; 2]>,
}

/// One fill of a FULL order response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderFill {
    /// Price.
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    /// Quantity.
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    /// Commission.
    #[serde(with = "rust_decimal::serde::str")]
    pub commission: Decimal,
    /// Commission asset.
    pub commission_asset: String,
    /// Trade id.
    pub trade_id: u64,
}

/// An order as returned by `POST /order` (ACK, RESULT or FULL), `GET /order`,
/// `DELETE /order`, `openOrders` and `allOrders`. Fields missing from the
/// shorter shapes are `None` or empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderInfo {
    /// Symbol.
    pub symbol: String,
    /// Venue order id.
    pub order_id: u64,
    /// Order list id (-1 when none).
    #[serde(default = "minus_one")]
    pub order_list_id: i64,
    /// Client order id (for a cancel response: the cancel's id).
    pub client_order_id: String,
    /// The canceled order's client id (cancel responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_client_order_id: Option<String>,
    /// Transaction time (order and cancel responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transact_time: Option<i64>,
    /// Limit price.
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// Ordered quantity.
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub orig_qty: Option<Decimal>,
    /// Executed quantity.
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub executed_qty: Option<Decimal>,
    /// Cumulative quote quantity (Binance's spelling).
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub cummulative_quote_qty: Option<Decimal>,
    /// Original quote order quantity.
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub orig_quote_order_qty: Option<Decimal>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Time in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<String>,
    /// Order type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    /// Side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    /// Stop price.
    #[serde(default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Decimal>,
    /// Creation time (query shapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    /// Last update time (query shapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
    /// On the book.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_working: Option<bool>,
    /// Working time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_time: Option<i64>,
    /// STP mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_trade_prevention_mode: Option<String>,
    /// Expiry reason (2026-03).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_reason: Option<String>,
    /// Fills (FULL only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fills: Vec<OrderFill>,
}

fn minus_one() -> i64 {
    -1
}

/// One balance of `GET /account`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBalance {
    /// Asset.
    pub asset: String,
    /// Free.
    #[serde(with = "rust_decimal::serde::str")]
    pub free: Decimal,
    /// Locked.
    #[serde(with = "rust_decimal::serde::str")]
    pub locked: Decimal,
}

/// `GET /api/v3/account`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Maker commission (bps).
    #[serde(default)]
    pub maker_commission: i64,
    /// Taker commission (bps).
    #[serde(default)]
    pub taker_commission: i64,
    /// Trading enabled for this key.
    #[serde(default)]
    pub can_trade: bool,
    /// Withdrawals enabled.
    #[serde(default)]
    pub can_withdraw: bool,
    /// Deposits enabled.
    #[serde(default)]
    pub can_deposit: bool,
    /// Last update time.
    #[serde(default)]
    pub update_time: i64,
    /// Account type.
    #[serde(default)]
    pub account_type: String,
    /// Balances.
    #[serde(default)]
    pub balances: Vec<AccountBalance>,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// One entry of `GET /api/v3/myTrades`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MyTrade {
    /// Symbol.
    pub symbol: String,
    /// Trade id.
    pub id: u64,
    /// Order id.
    pub order_id: u64,
    /// Order list id.
    #[serde(default = "minus_one")]
    pub order_list_id: i64,
    /// Price.
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    /// Quantity.
    #[serde(with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    /// Quote quantity.
    #[serde(with = "rust_decimal::serde::str")]
    pub quote_qty: Decimal,
    /// Commission.
    #[serde(with = "rust_decimal::serde::str")]
    pub commission: Decimal,
    /// Commission asset.
    pub commission_asset: String,
    /// Time.
    pub time: i64,
    /// We bought.
    pub is_buyer: bool,
    /// We were the maker.
    pub is_maker: bool,
    /// Best price match.
    #[serde(default)]
    pub is_best_match: bool,
}

/// The `data` of a combined stream message, or a raw stream message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombinedMessage {
    /// Stream name, e.g. `btcusdt@kline_1m`.
    pub stream: String,
    /// The raw event.
    pub data: Value,
}

/// The `k` object of a kline event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsKline {
    /// Open time.
    #[serde(rename = "t")]
    pub open_time: i64,
    /// Close time.
    #[serde(rename = "T")]
    pub close_time: i64,
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Interval, e.g. `1m`.
    #[serde(rename = "i")]
    pub interval: String,
    /// Open.
    #[serde(rename = "o", with = "rust_decimal::serde::str")]
    pub open: Decimal,
    /// Close.
    #[serde(rename = "c", with = "rust_decimal::serde::str")]
    pub close: Decimal,
    /// High.
    #[serde(rename = "h", with = "rust_decimal::serde::str")]
    pub high: Decimal,
    /// Low.
    #[serde(rename = "l", with = "rust_decimal::serde::str")]
    pub low: Decimal,
    /// Base volume.
    #[serde(rename = "v", with = "rust_decimal::serde::str")]
    pub volume: Decimal,
    /// Number of trades.
    #[serde(rename = "n", default)]
    pub trades: u64,
    /// Is this kline closed?
    #[serde(rename = "x")]
    pub closed: bool,
    /// Quote volume.
    #[serde(rename = "q", default, with = "rust_decimal::serde::str_option", skip_serializing_if = "Option::is_none")]
    pub quote_volume: Option<Decimal>,
}

/// A `kline` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsKlineEvent {
    /// Event time.
    #[serde(rename = "E")]
    pub event_time: i64,
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// The kline.
    #[serde(rename = "k")]
    pub kline: WsKline,
}

/// A `trade` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsTrade {
    /// Event time.
    #[serde(rename = "E")]
    pub event_time: i64,
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Trade id.
    #[serde(rename = "t")]
    pub trade_id: u64,
    /// Price.
    #[serde(rename = "p", with = "rust_decimal::serde::str")]
    pub price: Decimal,
    /// Quantity.
    #[serde(rename = "q", with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    /// Trade time.
    #[serde(rename = "T")]
    pub trade_time: i64,
    /// Buyer is the maker (so the seller was the aggressor).
    #[serde(rename = "m")]
    pub buyer_is_maker: bool,
}

impl WsKlineEvent {
    /// The engine's bar of this kline (closed or not: the callers look at
    /// `kline.closed`).
    pub fn bar(&self) -> keel_core::market::Bar {
        keel_core::market::Bar {
            symbol: keel_core::Symbol::new(&self.symbol),
            open_time: self.kline.open_time,
            close_time: self.kline.close_time,
            open: self.kline.open,
            high: self.kline.high,
            low: self.kline.low,
            close: self.kline.close,
            volume: self.kline.volume,
        }
    }
}

impl WsTrade {
    /// The engine's trade: the aggressor is the seller when the buyer made
    /// the market.
    pub fn trade(&self) -> keel_core::market::Trade {
        keel_core::market::Trade {
            symbol: keel_core::Symbol::new(&self.symbol),
            trade_id: self.trade_id,
            price: self.price,
            qty: self.qty,
            aggressor: if self.buyer_is_maker { keel_core::order::Side::Sell } else { keel_core::order::Side::Buy },
            ts_ms: self.trade_time,
        }
    }
}

/// An `aggTrade` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsAggTrade {
    /// Event time.
    #[serde(rename = "E")]
    pub event_time: i64,
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Aggregate trade id.
    #[serde(rename = "a")]
    pub agg_id: u64,
    /// Price.
    #[serde(rename = "p", with = "rust_decimal::serde::str")]
    pub price: Decimal,
    /// Quantity.
    #[serde(rename = "q", with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    /// First trade id.
    #[serde(rename = "f")]
    pub first_trade_id: u64,
    /// Last trade id.
    #[serde(rename = "l")]
    pub last_trade_id: u64,
    /// Trade time.
    #[serde(rename = "T")]
    pub trade_time: i64,
    /// Buyer is the maker.
    #[serde(rename = "m")]
    pub buyer_is_maker: bool,
}

/// A `bookTicker` event (no `e`, no `E`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsBookTicker {
    /// Book update id.
    #[serde(rename = "u")]
    pub update_id: u64,
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Best bid.
    #[serde(rename = "b", with = "rust_decimal::serde::str")]
    pub bid: Decimal,
    /// Bid quantity.
    #[serde(rename = "B", with = "rust_decimal::serde::str")]
    pub bid_qty: Decimal,
    /// Best ask.
    #[serde(rename = "a", with = "rust_decimal::serde::str")]
    pub ask: Decimal,
    /// Ask quantity.
    #[serde(rename = "A", with = "rust_decimal::serde::str")]
    pub ask_qty: Decimal,
}

/// A market stream event Keel understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A kline update (closed or not).
    Kline(WsKlineEvent),
    /// A trade.
    Trade(WsTrade),
    /// An aggregate trade.
    AggTrade(WsAggTrade),
    /// Best bid/ask.
    BookTicker(WsBookTicker),
    /// The server will close the connection soon.
    ServerShutdown,
    /// An event this build does not use (kept by type name).
    Other(String),
}

impl StreamEvent {
    /// Reads a raw stream event.
    pub fn parse(data: &Value) -> Result<Self, serde_json::Error> {
        let e = data.get("e").and_then(Value::as_str);
        Ok(match e {
            Some("kline") => Self::Kline(serde_json::from_value(data.clone())?),
            Some("trade") => Self::Trade(serde_json::from_value(data.clone())?),
            Some("aggTrade") => Self::AggTrade(serde_json::from_value(data.clone())?),
            Some("serverShutdown") => Self::ServerShutdown,
            Some(other) => Self::Other(other.to_string()),
            None if data.get("u").is_some() && data.get("b").is_some() && data.get("s").is_some() => {
                Self::BookTicker(serde_json::from_value(data.clone())?)
            }
            None => Self::Other(String::new()),
        })
    }
}

/// An `executionReport` user-data event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionReport {
    /// Event time.
    #[serde(rename = "E")]
    pub event_time: i64,
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Client order id (for a cancel: the cancel's id).
    #[serde(rename = "c")]
    pub client_order_id: String,
    /// Side.
    #[serde(rename = "S")]
    pub side: String,
    /// Order type.
    #[serde(rename = "o")]
    pub order_type: String,
    /// Time in force.
    #[serde(rename = "f", default)]
    pub time_in_force: String,
    /// Order quantity.
    #[serde(rename = "q", with = "rust_decimal::serde::str")]
    pub qty: Decimal,
    /// Order price.
    #[serde(rename = "p", with = "rust_decimal::serde::str")]
    pub price: Decimal,
    /// Original client order id of a canceled order ("" otherwise).
    #[serde(rename = "C", default)]
    pub orig_client_order_id: String,
    /// Execution type.
    #[serde(rename = "x")]
    pub execution_type: String,
    /// Order status.
    #[serde(rename = "X")]
    pub status: String,
    /// Reject reason.
    #[serde(rename = "r", default)]
    pub reject_reason: String,
    /// Order id.
    #[serde(rename = "i")]
    pub order_id: u64,
    /// Last executed quantity.
    #[serde(rename = "l", with = "rust_decimal::serde::str")]
    pub last_qty: Decimal,
    /// Cumulative filled quantity.
    #[serde(rename = "z", with = "rust_decimal::serde::str")]
    pub cum_qty: Decimal,
    /// Last executed price.
    #[serde(rename = "L", with = "rust_decimal::serde::str")]
    pub last_price: Decimal,
    /// Commission of this execution.
    #[serde(rename = "n", default, with = "rust_decimal::serde::str_option")]
    pub commission: Option<Decimal>,
    /// Commission asset (null when no trade).
    #[serde(rename = "N", default)]
    pub commission_asset: Option<String>,
    /// Transaction time.
    #[serde(rename = "T")]
    pub transact_time: i64,
    /// Trade id (-1 when no trade).
    #[serde(rename = "t")]
    pub trade_id: i64,
    /// Maker side.
    #[serde(rename = "m", default)]
    pub is_maker: bool,
    /// Cumulative quote quantity.
    #[serde(rename = "Z", default, with = "rust_decimal::serde::str_option")]
    pub cum_quote: Option<Decimal>,
    /// Order creation time.
    #[serde(rename = "O", default)]
    pub created_time: i64,
    /// Expiry reason.
    #[serde(rename = "eR", default, skip_serializing_if = "Option::is_none")]
    pub expiry_reason: Option<String>,
    /// The order list (OCO) the order is a leg of (-1 when none).
    #[serde(rename = "g", default = "minus_one")]
    pub order_list_id: i64,
}

/// One asset of `outboundAccountPosition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsBalance {
    /// Asset.
    #[serde(rename = "a")]
    pub asset: String,
    /// Free.
    #[serde(rename = "f", with = "rust_decimal::serde::str")]
    pub free: Decimal,
    /// Locked.
    #[serde(rename = "l", with = "rust_decimal::serde::str")]
    pub locked: Decimal,
}

/// `outboundAccountPosition`: the changed assets after an account update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPosition {
    /// Event time.
    #[serde(rename = "E")]
    pub event_time: i64,
    /// Time of the last account update.
    #[serde(rename = "u", default)]
    pub last_update: i64,
    /// Changed balances.
    #[serde(rename = "B")]
    pub balances: Vec<WsBalance>,
}

/// `balanceUpdate`: a deposit, withdrawal or transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceUpdate {
    /// Event time.
    #[serde(rename = "E")]
    pub event_time: i64,
    /// Asset.
    #[serde(rename = "a")]
    pub asset: String,
    /// Delta.
    #[serde(rename = "d", with = "rust_decimal::serde::str")]
    pub delta: Decimal,
    /// Clear time.
    #[serde(rename = "T", default)]
    pub clear_time: i64,
}

/// A user-data event Keel understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserDataEvent {
    /// An order changed.
    ExecutionReport(Box<ExecutionReport>),
    /// Balances changed.
    AccountPosition(AccountPosition),
    /// Deposit/withdrawal/transfer.
    BalanceUpdate(BalanceUpdate),
    /// The subscription ended (after unsubscribe or logout).
    StreamTerminated,
    /// The server will close the connection soon.
    ServerShutdown,
    /// An order list (OCO) changed.
    ListStatus(ListStatusEvent),
    /// An event this build does not use (by type name).
    Other(String),
}

/// A `listStatus` user-data event: an order list's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStatusEvent {
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Order list id.
    #[serde(rename = "g")]
    pub order_list_id: i64,
    /// Contingency type (`OCO`).
    #[serde(rename = "c")]
    pub contingency_type: String,
    /// List status type (`RESPONSE`, `EXEC_STARTED`, `UPDATED`, `ALL_DONE`).
    #[serde(rename = "l")]
    pub list_status_type: String,
    /// List order status (`EXECUTING`, `ALL_DONE`, `REJECT`).
    #[serde(rename = "L")]
    pub list_order_status: String,
    /// Reject reason (`NONE` unless refused).
    #[serde(rename = "r", default)]
    pub reject_reason: String,
    /// The list's client order id.
    #[serde(rename = "C")]
    pub list_client_order_id: String,
    /// Transaction time.
    #[serde(rename = "T")]
    pub transact_time: i64,
    /// The legs.
    #[serde(rename = "O", default)]
    pub orders: Vec<ListStatusOrder>,
}

/// A leg named in a `listStatus` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStatusOrder {
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Order id.
    #[serde(rename = "i")]
    pub order_id: u64,
    /// Client order id.
    #[serde(rename = "c")]
    pub client_order_id: String,
}

/// An order list as the REST API answers it (`orderList/oco`, `orderList`,
/// `openOrderList`); `orderReports` only in placement and cancel answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderListInfo {
    /// Order list id.
    pub order_list_id: i64,
    /// Contingency type (`OCO`).
    pub contingency_type: String,
    /// List status type.
    pub list_status_type: String,
    /// List order status.
    pub list_order_status: String,
    /// The list's client order id.
    pub list_client_order_id: String,
    /// Transaction time.
    pub transaction_time: i64,
    /// Symbol.
    pub symbol: String,
    /// The legs.
    pub orders: Vec<ListOrder>,
    /// The legs' order reports.
    #[serde(default)]
    pub order_reports: Vec<OrderInfo>,
}

/// A leg named in a REST order list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOrder {
    /// Symbol.
    pub symbol: String,
    /// Order id.
    pub order_id: u64,
    /// Client order id.
    pub client_order_id: String,
}

impl UserDataEvent {
    /// Reads the inner `event` object.
    pub fn parse(event: &Value) -> Result<Self, serde_json::Error> {
        Ok(match event.get("e").and_then(Value::as_str) {
            Some("executionReport") => Self::ExecutionReport(Box::new(serde_json::from_value(event.clone())?)),
            Some("outboundAccountPosition") => Self::AccountPosition(serde_json::from_value(event.clone())?),
            Some("balanceUpdate") => Self::BalanceUpdate(serde_json::from_value(event.clone())?),
            Some("eventStreamTerminated") => Self::StreamTerminated,
            Some("serverShutdown") => Self::ServerShutdown,
            Some("listStatus") => Self::ListStatus(serde_json::from_value(event.clone())?),
            Some(other) => Self::Other(other.to_string()),
            None => Self::Other(String::new()),
        })
    }
}

/// A WebSocket API response `{id, status, result | error, rateLimits}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsApiResponse {
    /// Request id echoed (string, number or null).
    #[serde(default)]
    pub id: Value,
    /// HTTP-like status.
    pub status: u16,
    /// Result on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Error on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// Rate limit counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<RateLimit>>,
}

/// Anything arriving on a WebSocket API connection.
#[derive(Debug, Clone, PartialEq)]
pub enum WsApiMessage {
    /// A response to a request.
    Response(WsApiResponse),
    /// A user-data event (with its subscription id, absent for connection-level events).
    Event {
        /// Subscription id.
        subscription_id: Option<u64>,
        /// The event.
        event: UserDataEvent,
    },
}

impl WsApiMessage {
    /// Reads a text frame of the WebSocket API.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let v: Value = serde_json::from_str(text)?;
        if let Some(event) = v.get("event") {
            let subscription_id = v.get("subscriptionId").and_then(Value::as_u64);
            return Ok(Self::Event { subscription_id, event: UserDataEvent::parse(event)? });
        }
        Ok(Self::Response(serde_json::from_value(v)?))
    }
}
