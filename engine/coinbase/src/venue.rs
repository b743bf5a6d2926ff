//! [`CoinbaseVenue`]: the Coinbase Advanced Trade adapter behind Keel's
//! [`Venue`] trait: REST here, the streams in `market_stream` and `user_stream`.
//!
//! Guarantees, as the Binance adapter's:
//! - Orders are checked against the product's filters and trading flags
//!   before they are sent.
//! - The client id is written ahead: Coinbase's `client_order_id` is Keel's
//!   own id when it fits [`coinbase_client_id`]'s rule, else a UUID derived
//!   from it deterministically, so the same Keel order always carries the
//!   same Coinbase id, also after a restart.
//! - A create whose outcome is unknown (5xx, timeout) is resolved by looking
//!   the client id up; only when the venue does not list it is the create
//!   sent once more with the **same** `client_order_id` — the one
//!   resubmission Coinbase documents as safe (§4.8: a known id returns the
//!   existing order and creates nothing).
//! - `success:false` on HTTP 200 is a rejection, never a success.
//! - A cancel is asynchronous: `CANCEL_QUEUED` is reported as still working
//!   (reason `CANCEL_QUEUED`); the query or the stream confirms the end.
//! - Fills come from `orders/historical/fills`, deduplicated by `trade_id`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use keel_core::balance::Balance;
use keel_core::fill::{Fill, FillCursor, TradeId};
use keel_core::instrument::Instrument;
use keel_core::market::{Bar, BookTicker};
use keel_core::order::{OrderStatus as KeelStatus, OrderType, Side, TimeInForce};
use keel_core::symbol::Symbol;
use keel_core::venue::{MarketFeed, OrderReport, OrderRequest, PlaceResult, UserEvent, Venue, VenueError, VenueResult};

use crate::auth::Credentials;
use crate::model::{
    AccountsPage, BestBidAskResponse, CancelOrdersRequest, CancelOrdersResponse, CandlesResponse, CreateOrderRequest,
    CreateOrderResponse, FillsResponse, GetOrderResponse, ListOrdersResponse, Order, OrderConfiguration, OrderSizing,
    OrderStatus, ProductsPage, ServerTime,
};
use crate::rest::{Kind, RestClient};
use crate::symbols::{instrument_of, restrictions_of, Restrictions};

/// Candles per request: the docs say 350, older answers refused more than
/// 300 (reference §4.5, §11.9); 300 is valid under both.
pub const CANDLES_PER_REQUEST: i64 = 300;

/// Page size of accounts (the documented maximum).
const ACCOUNTS_PAGE: usize = 250;

/// Page size of orders and fills lists.
const LIST_PAGE: usize = 100;

/// Products per page of `GET /products`.
const PRODUCTS_PAGE: usize = 250;

/// How far back an order whose outcome is unknown is looked for (ms before it was signed).
const LOOKUP_MARGIN_MS: i64 = 60_000;

/// How far before a fill cursor a listing of fills starts. Fills reach Keel
/// per order (the user channel reports orders, their fills are read after),
/// so a later fill of one order can be recorded before an earlier one of
/// another — and a cursor at the later one would skip the earlier one after
/// a crash or a stream gap. The store and the claim set drop the ones they
/// have. (Seen: a SIGKILL mid-trading lost grid fills made 0.1–0.7 s before
/// the newest recorded one; ops/tests/coinbase_engine.rs.)
const CURSOR_REWIND_MS: i64 = 60_000;

/// Statuses an open order can have (§5.1).
const OPEN_STATUSES: [&str; 5] = ["OPEN", "PENDING", "QUEUED", "CANCEL_QUEUED", "EDIT_QUEUED"];

/// Where the adapter connects and with what.
#[derive(Debug, Clone)]
pub struct CoinbaseSettings {
    /// REST base URL without `/api/v3/brokerage` (`https://api.coinbase.com`).
    pub rest_url: String,
    /// The CDP key.
    pub credentials: Arc<Credentials>,
    /// Per-request timeout (ms).
    pub request_timeout_ms: u64,
    /// Clock resync period (ms).
    pub time_sync_interval_ms: u64,
    /// The longest a create or cancel waits for the rate limit (ms).
    pub max_order_wait_ms: u64,
    /// Market-data WebSocket (`wss://advanced-trade-ws.coinbase.com`).
    pub ws_market_url: String,
    /// User WebSocket (`wss://advanced-trade-ws-user.coinbase.com`).
    pub ws_user_url: String,
}

impl CoinbaseSettings {
    /// Settings with the defaults: 10 s timeout, clock resync every minute,
    /// orders wait at most 1 s for the rate limit, Coinbase's WebSocket URLs.
    pub fn new(rest_url: &str, credentials: Arc<Credentials>) -> Self {
        Self {
            rest_url: rest_url.to_string(),
            credentials,
            request_timeout_ms: 10_000,
            time_sync_interval_ms: 60_000,
            max_order_wait_ms: 1_000,
            ws_market_url: "wss://advanced-trade-ws.coinbase.com".into(),
            ws_user_url: "wss://advanced-trade-ws-user.coinbase.com".into(),
        }
    }
}

/// Coinbase's `client_order_id` for a Keel client order id: the id itself
/// when it is 1–36 characters of `[A-Za-z0-9._:-]` (Keel's ids are, as
/// Binance requires the same), else a UUID-shaped id from SHA-256 of it —
/// deterministic, so a resubmission or a lookup after a restart uses the
/// same id. Coinbase accepts any string (§4.8); the rule keeps ids that log,
/// URL-encode and compare plainly.
pub fn coinbase_client_id(keel_id: &str) -> String {
    let fits = (1..=36).contains(&keel_id.len())
        && keel_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if fits {
        return keel_id.to_string();
    }
    let h = hex::encode(&Sha256::digest(keel_id.as_bytes())[..16]);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Keel's status of a Coinbase order: `CANCEL_QUEUED` and `EDIT_QUEUED` are
/// still working (fills can come); `OPEN` with a fill is partially filled.
pub fn status_of(o: &Order) -> KeelStatus {
    let filled = o.filled_size.unwrap_or_default() > Decimal::ZERO;
    match o.status() {
        OrderStatus::Pending | OrderStatus::Queued => KeelStatus::Submitted,
        OrderStatus::Open | OrderStatus::EditQueued | OrderStatus::CancelQueued if filled => {
            KeelStatus::PartiallyFilled
        }
        OrderStatus::Open | OrderStatus::EditQueued | OrderStatus::CancelQueued => KeelStatus::Accepted,
        OrderStatus::Filled => KeelStatus::Filled,
        OrderStatus::Cancelled => KeelStatus::Canceled,
        OrderStatus::Expired => KeelStatus::Expired,
        OrderStatus::Failed => KeelStatus::Rejected,
        OrderStatus::Unknown(s) => {
            tracing::warn!(order_id = %o.order_id, status = %s, "coinbase: order status Keel does not know; it will be queried");
            KeelStatus::Unknown
        }
    }
}

fn side_of(s: &str) -> Side {
    if s.eq_ignore_ascii_case("SELL") {
        Side::Sell
    } else {
        Side::Buy
    }
}

/// The base size an order asked for, from whichever configuration it has.
fn ordered_qty(o: &Order) -> Decimal {
    let c = o.order_configuration.clone().unwrap_or_default();
    [
        c.market_market_ioc,
        c.sor_limit_ioc,
        c.limit_limit_gtc,
        c.limit_limit_gtd,
        c.limit_limit_fok,
        c.stop_limit_stop_limit_gtc,
        c.stop_limit_stop_limit_gtd,
    ]
    .into_iter()
    .flatten()
    .find_map(|s| s.base_size)
    .unwrap_or_default()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one product allows, as last loaded.
#[derive(Debug, Clone)]
pub(crate) struct ProductRules {
    /// The product as an instrument.
    pub(crate) instrument: Instrument,
    restrictions: Restrictions,
}

/// What the venue and its streams share.
pub(crate) struct Shared {
    pub(crate) rest: RestClient,
    /// The key (WebSocket subscribes sign with it too).
    pub(crate) creds: Arc<Credentials>,
    /// Market-data WebSocket URL.
    pub(crate) ws_market_url: String,
    /// User WebSocket URL.
    pub(crate) ws_user_url: String,
    products: Mutex<HashMap<Symbol, ProductRules>>,
    /// Keel client id → Coinbase order id.
    order_ids: Mutex<HashMap<String, String>>,
    /// Coinbase order id → Keel client id.
    keel_ids: Mutex<HashMap<String, String>>,
    /// Coinbase client id → Keel client id (where they differ).
    derived: Mutex<HashMap<String, String>>,
    /// Fills already handed out (by `trade_id`): each is delivered once,
    /// whether a place answer, the user stream or a reconciliation finds it.
    claimed: Mutex<HashSet<String>>,
    /// Per product, the time from which a reconciliation lists fills: moved
    /// only by a reconciliation's own listing, never by a fill claimed
    /// elsewhere (a place answer's fill is newer than one missed in a gap).
    fill_cursors: Mutex<HashMap<Symbol, FillCursor>>,
    /// Coinbase ids of orders last reported working: a reconciliation reads
    /// those no longer open, so an order that ended during a gap is told
    /// even when the stream never saw it (placed while it was down).
    working: Mutex<HashSet<String>>,
    /// The newest closed bar a warm-up handed out, per (product, interval):
    /// the market stream continues after it.
    bars_served: Mutex<HashMap<(Symbol, i64), i64>>,
    /// Level-2 books the market stream keeps.
    pub(crate) books: Mutex<HashMap<Symbol, crate::book::L2Book>>,
    /// How often a level-2 sequence gap made the market stream resubscribe.
    pub(crate) l2_resyncs: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Marks a fill delivered; false if it already was.
    pub(crate) fn claim_fill(&self, f: &Fill) -> bool {
        lock(&self.claimed).insert(f.trade_id.to_string())
    }

    /// A reconciliation listed (and delivered) a product's fills up to the
    /// newest of `listed` (oldest first): the next one starts there.
    pub(crate) fn fills_listed(&self, symbol: &Symbol, listed: &[Fill]) {
        let Some(newest) = listed.last() else { return };
        let mut cursors = lock(&self.fill_cursors);
        let c = cursors.entry(symbol.clone()).or_insert_with(|| FillCursor::of(newest));
        if newest.ts_ms > c.ts_ms {
            *c = FillCursor::of(newest);
        }
    }

    /// Coinbase ids of the orders last reported working.
    pub(crate) fn working_orders(&self) -> Vec<String> {
        lock(&self.working).iter().cloned().collect()
    }

    /// The Coinbase order id of a Keel client id, when known.
    pub(crate) fn order_id_of(&self, keel_id: &str) -> Option<String> {
        lock(&self.order_ids).get(keel_id).cloned()
    }

    /// Starts listing a product's fills at `ts_ms` in reconciliations, unless it is listed already.
    pub(crate) fn watch_fills(&self, symbol: &Symbol, ts_ms: i64) {
        lock(&self.fill_cursors)
            .entry(symbol.clone())
            .or_insert_with(|| FillCursor { ts_ms, trade_id: TradeId::from("") });
    }

    /// Products with a fill cursor, and their cursors.
    pub(crate) fn fill_cursors(&self) -> Vec<(Symbol, FillCursor)> {
        lock(&self.fill_cursors).iter().map(|(s, c)| (s.clone(), c.clone())).collect()
    }

    /// The newest closed bar a warm-up handed out.
    pub(crate) fn bar_served(&self, symbol: &Symbol, interval_ms: i64) -> Option<i64> {
        lock(&self.bars_served).get(&(symbol.clone(), interval_ms)).copied()
    }

    fn remember(&self, keel_id: &str, order_id: &str) {
        lock(&self.order_ids).insert(keel_id.to_string(), order_id.to_string());
        lock(&self.keel_ids).insert(order_id.to_string(), keel_id.to_string());
    }

    /// Coinbase's client id of a Keel id, remembering the way back when
    /// it is a derived UUID (reports then name the Keel id).
    fn cb_id_for(&self, keel_id: &str) -> String {
        let cb = coinbase_client_id(keel_id);
        if cb != keel_id {
            lock(&self.derived).insert(cb.clone(), keel_id.to_string());
        }
        cb
    }

    fn keel_id_of_cb(&self, cb_client_id: &str) -> String {
        lock(&self.derived).get(cb_client_id).cloned().unwrap_or_else(|| cb_client_id.to_string())
    }

    pub(crate) fn report_of(&self, o: &Order) -> OrderReport {
        let cid = self.keel_id_of_cb(&o.client_order_id);
        self.remember(&cid, &o.order_id);
        let status = o.status();
        if status.is_terminal() {
            lock(&self.working).remove(&o.order_id);
        } else {
            lock(&self.working).insert(o.order_id.clone());
        }
        OrderReport {
            client_order_id: cid,
            venue_order_id: o.order_id.clone(),
            symbol: Symbol::new(&o.product_id),
            side: side_of(&o.side),
            status: status_of(o),
            qty: ordered_qty(o),
            filled_qty: o.filled_size.unwrap_or_default(),
            filled_quote: o.filled_value.unwrap_or_default(),
            reason: match status {
                OrderStatus::CancelQueued => Some("CANCEL_QUEUED".into()),
                OrderStatus::Failed => o.reject_reason.clone(),
                _ => None,
            },
            ts_ms: o.last_fill_time.or(o.created_time).unwrap_or_else(|| self.rest.now_ms()),
            oco_leg: None,
        }
    }

    async fn load_products(&self) -> VenueResult<Vec<Instrument>> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let q = [
                ("product_type", "SPOT".to_string()),
                ("limit", PRODUCTS_PAGE.to_string()),
                ("offset", offset.to_string()),
            ];
            let page: ProductsPage = self.rest.get(Kind::Read, "/products", &q).await?;
            let n = page.products.len();
            let mut map = lock(&self.products);
            for p in &page.products {
                match instrument_of(p) {
                    Ok(i) => {
                        map.insert(
                            i.symbol.clone(),
                            ProductRules { instrument: i.clone(), restrictions: restrictions_of(p) },
                        );
                        out.push(i);
                    }
                    Err(e) => tracing::debug!(error = %e, "coinbase: product skipped"),
                }
            }
            drop(map);
            if n < PRODUCTS_PAGE {
                break;
            }
            offset += n;
        }
        out.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        Ok(out)
    }

    pub(crate) async fn rules(&self, symbol: &Symbol) -> VenueResult<ProductRules> {
        if let Some(r) = lock(&self.products).get(symbol).cloned() {
            return Ok(r);
        }
        self.load_products().await?;
        lock(&self.products).get(symbol).cloned().ok_or_else(|| VenueError::Rejected {
            code: 0,
            reason: format!("INVALID_PRODUCT_ID: {symbol} is not a Coinbase spot product"),
        })
    }

    pub(crate) async fn get_order(&self, order_id: &str) -> VenueResult<Order> {
        let r: GetOrderResponse = self.rest.get(Kind::Read, &format!("/orders/historical/{order_id}"), &[]).await?;
        Ok(r.order)
    }

    /// The order of a Coinbase client id in a product, listing orders
    /// created since `since_ms` (all when `None`), page by page: List Orders
    /// has no client-id filter (§4.13), and Get Order takes order ids only.
    async fn find_by_client_id(
        &self,
        symbol: &Symbol,
        cb_id: &str,
        since_ms: Option<i64>,
    ) -> VenueResult<Option<Order>> {
        let mut cursor = String::new();
        loop {
            let mut q = vec![("product_ids", symbol.to_string()), ("limit", LIST_PAGE.to_string())];
            if let Some(ms) = since_ms {
                if let Some(t) = chrono::DateTime::from_timestamp_millis(ms) {
                    q.push(("start_date", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
                }
            }
            if !cursor.is_empty() {
                q.push(("cursor", cursor.clone()));
            }
            let page: ListOrdersResponse = self.rest.get(Kind::Read, "/orders/historical/batch", &q).await?;
            if let Some(o) = page.orders.into_iter().find(|o| o.client_order_id == cb_id) {
                return Ok(Some(o));
            }
            if !page.has_next || page.cursor.is_empty() {
                return Ok(None);
            }
            cursor = page.cursor;
        }
    }

    async fn order_by_keel_id(&self, symbol: &Symbol, keel_id: &str) -> VenueResult<Option<Order>> {
        let known = lock(&self.order_ids).get(keel_id).cloned();
        if let Some(id) = known {
            return match self.get_order(&id).await {
                Ok(o) => Ok(Some(o)),
                Err(VenueError::NotFound) => Ok(None),
                Err(e) => Err(e),
            };
        }
        self.find_by_client_id(symbol, &self.cb_id_for(keel_id), None).await
    }

    /// The fills of one order (for a place that filled at once).
    async fn fills_of_order(&self, order_id: &str) -> VenueResult<Vec<crate::model::Fill>> {
        // `order_ids` cannot be combined with any other filter (§4.14).
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let mut q = vec![("order_ids", order_id.to_string()), ("limit", LIST_PAGE.to_string())];
            if !cursor.is_empty() {
                q.push(("cursor", cursor.clone()));
            }
            let page: FillsResponse = self.rest.get(Kind::Read, "/orders/historical/fills", &q).await?;
            out.extend(page.fills);
            if page.cursor.is_empty() {
                return Ok(out);
            }
            cursor = page.cursor;
        }
    }

    async fn keel_fill(&self, f: &crate::model::Fill, quote: &str) -> VenueResult<Fill> {
        let known = lock(&self.keel_ids).get(&f.order_id).cloned();
        let cid = match known {
            Some(c) => c,
            None => {
                let o = self.get_order(&f.order_id).await?;
                self.report_of(&o).client_order_id
            }
        };
        Ok(Fill {
            trade_id: TradeId::from(f.trade_id.as_str()),
            client_order_id: cid,
            strategy_id: "".into(),
            symbol: Symbol::new(&f.product_id),
            side: side_of(&f.side),
            price: f.price,
            qty: f.base_size(),
            // Always the quote currency (§5.3): Coinbase names no fee asset.
            fee: f.commission,
            fee_asset: quote.to_string(),
            is_maker: f.liquidity_indicator.as_deref() == Some("MAKER"),
            ts_ms: f.trade_time,
            tag: None,
        })
    }

    /// Fills of one order as Keel's, each trade id once.
    pub(crate) async fn keel_fills_of_order(&self, order_id: &str, quote: &str) -> VenueResult<Vec<Fill>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for f in self.fills_of_order(order_id).await? {
            if seen.insert(f.trade_id.clone()) {
                out.push(self.keel_fill(&f, quote).await?);
            }
        }
        out.sort_by(|a, b| (a.ts_ms, &a.trade_id).cmp(&(b.ts_ms, &b.trade_id)));
        Ok(out)
    }

    async fn create(&self, body: &CreateOrderRequest) -> VenueResult<String> {
        let resp: CreateOrderResponse = self.rest.post(Kind::Write, "/orders", body).await?;
        match resp.outcome() {
            Ok(ok) => Ok(ok.order_id.clone()),
            // HTTP 200 with success:false: refused, certainly not placed.
            Err(f) => Err(VenueError::Rejected {
                code: 200,
                reason: format!("{}: {}", f.reason(), f.message.clone().unwrap_or_default()),
            }),
        }
    }

    /// The report and fills of a placed order, read back (the create answer
    /// carries neither status nor fills, §9).
    async fn placed(&self, request: &OrderRequest, order_id: &str, quote: &str) -> VenueResult<PlaceResult> {
        self.remember(&request.client_order_id, order_id);
        let report = match self.get_order(order_id).await {
            Ok(o) => self.report_of(&o),
            Err(e) => {
                tracing::warn!(error = %e, order_id, "coinbase: placed order not read back; reported as submitted");
                OrderReport {
                    client_order_id: request.client_order_id.clone(),
                    venue_order_id: order_id.to_string(),
                    symbol: request.symbol.clone(),
                    side: request.side,
                    status: KeelStatus::Submitted,
                    qty: request.qty,
                    filled_qty: Decimal::ZERO,
                    filled_quote: Decimal::ZERO,
                    reason: None,
                    ts_ms: self.rest.now_ms(),
                    oco_leg: None,
                }
            }
        };
        // Reconciliations list this product's fills from before the order on.
        self.watch_fills(&report.symbol, report.ts_ms - LOOKUP_MARGIN_MS);
        let mut fills = if report.filled_qty > Decimal::ZERO {
            self.keel_fills_of_order(order_id, quote).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, order_id, "coinbase: fills not read yet; reconciliation will");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        // A fill the user stream already delivered is not delivered twice.
        fills.retain(|f| self.claim_fill(f));
        Ok(PlaceResult { report, fills })
    }

    /// Open orders, of one product or all.
    pub(crate) async fn open_orders(&self, symbol: Option<&Symbol>) -> VenueResult<Vec<OrderReport>> {
        let s = self;
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let mut q: Vec<(&str, String)> = OPEN_STATUSES.iter().map(|st| ("order_status", st.to_string())).collect();
            q.push(("limit", LIST_PAGE.to_string()));
            if let Some(sym) = symbol {
                q.push(("product_ids", sym.to_string()));
            }
            if !cursor.is_empty() {
                q.push(("cursor", cursor.clone()));
            }
            let page: ListOrdersResponse = s.rest.get(Kind::Read, "/orders/historical/batch", &q).await?;
            out.extend(page.orders.iter().filter(|o| !o.status().is_terminal()).map(|o| s.report_of(o)));
            if !page.has_next || page.cursor.is_empty() {
                return Ok(out);
            }
            cursor = page.cursor;
        }
    }

    /// Balances, every page.
    pub(crate) async fn balances(&self) -> VenueResult<Vec<Balance>> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let mut q = vec![("limit", ACCOUNTS_PAGE.to_string())];
            if !cursor.is_empty() {
                q.push(("cursor", cursor.clone()));
            }
            let page: AccountsPage = self.rest.get(Kind::Read, "/accounts", &q).await?;
            out.extend(page.accounts.iter().map(|a| Balance {
                asset: a.currency.clone(),
                free: a.available_balance.value,
                locked: a.held(),
            }));
            if !page.has_next || page.cursor.is_empty() {
                return Ok(out);
            }
            cursor = page.cursor;
        }
    }

    /// Fills of `symbol` from [`CURSOR_REWIND_MS`] before the cursor's time
    /// on (fills the caller has may come back), oldest first, each
    /// `trade_id` once however the pages overlap.
    pub(crate) async fn my_trades(&self, symbol: &Symbol, since: Option<&FillCursor>) -> VenueResult<Vec<Fill>> {
        let s = self;
        let quote = s.rules(symbol).await?.instrument.quote_asset;
        let mut seen = HashSet::new();
        let mut raw = Vec::new();
        let mut cursor = String::new();
        loop {
            let mut q = vec![("product_ids", symbol.to_string()), ("limit", LIST_PAGE.to_string())];
            let start = since.map(|c| c.ts_ms.saturating_sub(CURSOR_REWIND_MS));
            if let Some(t) = start.and_then(chrono::DateTime::from_timestamp_millis) {
                q.push(("start_sequence_timestamp", t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
            }
            if !cursor.is_empty() {
                q.push(("cursor", cursor.clone()));
            }
            let page: FillsResponse = s.rest.get(Kind::Read, "/orders/historical/fills", &q).await?;
            for f in page.fills {
                if f.trade_type.as_deref().is_some_and(|t| t != "FILL") {
                    tracing::warn!(trade_id = %f.trade_id, kind = ?f.trade_type, "coinbase: a fill row that is not a FILL (adjustment) is skipped");
                    continue;
                }
                if seen.insert(f.trade_id.clone()) {
                    raw.push(f);
                }
            }
            if page.cursor.is_empty() {
                break;
            }
            cursor = page.cursor;
        }
        let mut out = Vec::with_capacity(raw.len());
        for f in &raw {
            out.push(s.keel_fill(f, &quote).await?);
        }
        out.sort_by(|a, b| (a.ts_ms, &a.trade_id).cmp(&(b.ts_ms, &b.trade_id)));
        Ok(out)
    }

    /// Resolves a create whose outcome is unknown: look the client id up;
    /// if the venue does not list it, send the create once more with the
    /// same `client_order_id` (idempotent at Coinbase, §4.8, so this can
    /// never make a second order).
    async fn resolve_unknown(
        &self,
        request: &OrderRequest,
        body: &CreateOrderRequest,
        signed_at: i64,
        quote: &str,
        why: &VenueError,
    ) -> VenueResult<PlaceResult> {
        let since = Some(signed_at - LOOKUP_MARGIN_MS);
        match self.find_by_client_id(&request.symbol, &body.client_order_id, since).await {
            Ok(Some(o)) => {
                tracing::info!(client_order_id = %request.client_order_id, "coinbase: order with unknown outcome found");
                return self.placed(request, &o.order_id, quote).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "coinbase: looking up an order with unknown outcome failed");
                return Err(VenueError::OutcomeUnknown(format!(
                    "order {}: {why}; lookup failed: {e}",
                    request.client_order_id
                )));
            }
        }
        tracing::warn!(client_order_id = %request.client_order_id, "coinbase: not listed; resubmitting with the same client_order_id (idempotent)");
        match self.create(body).await {
            Ok(id) => self.placed(request, &id, quote).await,
            Err(e) if e.outcome_unknown() => Err(VenueError::OutcomeUnknown(format!(
                "order {}: {why}; still unresolved: {e}",
                request.client_order_id
            ))),
            Err(e) => Err(e),
        }
    }
}

/// The Coinbase Advanced Trade venue: REST, and the market and user WebSocket streams.
pub struct CoinbaseVenue {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The stream tasks (they end with the venue).
    streams: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for CoinbaseVenue {
    fn drop(&mut self) {
        for t in self.tasks.iter().chain(lock(&self.streams).iter()) {
            t.abort();
        }
    }
}

impl CoinbaseVenue {
    /// Connects: measures the clock against `GET /time` (tokens carry
    /// server time from then on), loads the products, and resynchronises the
    /// clock every `time_sync_interval_ms`.
    pub async fn connect(settings: CoinbaseSettings) -> VenueResult<Self> {
        let rest = RestClient::new(
            &settings.rest_url,
            settings.credentials.clone(),
            settings.request_timeout_ms,
            settings.max_order_wait_ms,
        )?;
        rest.sync_time().await?;
        let shared = Arc::new(Shared {
            rest,
            creds: settings.credentials.clone(),
            ws_market_url: settings.ws_market_url.clone(),
            ws_user_url: settings.ws_user_url.clone(),
            claimed: Mutex::new(HashSet::new()),
            fill_cursors: Mutex::new(HashMap::new()),
            working: Mutex::new(HashSet::new()),
            bars_served: Mutex::new(HashMap::new()),
            books: Mutex::new(HashMap::new()),
            l2_resyncs: Default::default(),
            products: Mutex::new(HashMap::new()),
            order_ids: Mutex::new(HashMap::new()),
            keel_ids: Mutex::new(HashMap::new()),
            derived: Mutex::new(HashMap::new()),
        });
        shared.load_products().await?;
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let every = Duration::from_millis(settings.time_sync_interval_ms.max(1000));
        let sync = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(s) = weak.upgrade() else { return };
                if let Err(e) = s.rest.sync_time().await {
                    tracing::warn!(error = %e, "coinbase clock resync failed");
                }
            }
        });
        Ok(Self { shared, tasks: vec![sync], streams: Mutex::new(Vec::new()) })
    }

    /// Tells the adapter Keel's client ids of orders that may be working
    /// (its store's, at start-up): an id sent as a derived UUID is a hash
    /// and cannot be read back, so without this an order listed before it
    /// is queried would be named by its Coinbase id.
    pub fn remember_client_ids<'a>(&self, keel_ids: impl IntoIterator<Item = &'a str>) {
        for id in keel_ids {
            self.shared.cb_id_for(id);
        }
    }

    /// Continues a product's fill listing from the store's cursor (at
    /// start-up): reconciliations after a user-stream gap list from there,
    /// so a fill made while Keel was down is found even before an order of
    /// this run trades the product.
    pub fn seed_fill_cursor(&self, symbol: &Symbol, cursor: &FillCursor) {
        let mut cursors = lock(&self.shared.fill_cursors);
        let c = cursors.entry(symbol.clone()).or_insert_with(|| cursor.clone());
        if cursor.ts_ms > c.ts_ms {
            *c = cursor.clone();
        }
    }

    /// The level-2 book the market stream keeps of `symbol` (none before
    /// its snapshot, or after a sequence gap until the fresh one).
    pub fn book(&self, symbol: &Symbol) -> Option<crate::book::L2Book> {
        lock(&self.shared.books).get(symbol).cloned()
    }

    /// How often a sequence gap made the market stream resubscribe `level2`.
    pub fn l2_resyncs(&self) -> u64 {
        self.shared.l2_resyncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The REST client (clock offset, the host tokens name).
    pub fn rest(&self) -> &RestClient {
        &self.shared.rest
    }
}

/// Coinbase's granularity of a bar length (no weekly or monthly, §4.5).
pub fn granularity_of(interval_ms: i64) -> Option<&'static str> {
    Some(match interval_ms {
        60_000 => "ONE_MINUTE",
        300_000 => "FIVE_MINUTE",
        900_000 => "FIFTEEN_MINUTE",
        1_800_000 => "THIRTY_MINUTE",
        3_600_000 => "ONE_HOUR",
        7_200_000 => "TWO_HOUR",
        14_400_000 => "FOUR_HOUR",
        21_600_000 => "SIX_HOUR",
        86_400_000 => "ONE_DAY",
        _ => return None,
    })
}

/// Whether `v` is a whole multiple of `step` (Coinbase rejects rather than
/// truncates, §5.4).
fn on_step(v: Decimal, step: Decimal) -> bool {
    step.is_zero() || (v % step).is_zero()
}

#[async_trait]
impl Venue for CoinbaseVenue {
    fn name(&self) -> &str {
        "coinbase"
    }

    async fn instruments(&self) -> VenueResult<Vec<Instrument>> {
        self.shared.load_products().await
    }

    async fn server_time(&self) -> VenueResult<i64> {
        let t: ServerTime = self.shared.rest.get(Kind::Public, "/time", &[]).await?;
        t.ms().ok_or_else(|| VenueError::BadResponse("GET /time: no time in the answer".into()))
    }

    async fn klines(
        &self,
        symbol: &Symbol,
        interval_ms: i64,
        start_ms: Option<i64>,
        limit: usize,
    ) -> VenueResult<Vec<Bar>> {
        let gran = granularity_of(interval_ms).ok_or_else(|| VenueError::Rejected {
            code: 400,
            reason: format!("no Coinbase granularity of {interval_ms} ms"),
        })?;
        // The candles' clock: the server's at Coinbase, its own on a faster sandbox.
        let now = self.shared.rest.market_now_ms();
        let limit = limit.max(1) as i64;
        // Only closed bars: the newest one ends at or before now.
        let last_open = now.div_euclid(interval_ms) * interval_ms - interval_ms;
        let first = match start_ms {
            Some(s) => {
                s.div_euclid(interval_ms) * interval_ms + if s.rem_euclid(interval_ms) > 0 { interval_ms } else { 0 }
            }
            None => last_open - (limit - 1) * interval_ms,
        };
        let mut bars: std::collections::BTreeMap<i64, Bar> = Default::default();
        let mut from = first;
        while from <= last_open && (bars.len() as i64) < limit {
            let to = (from + CANDLES_PER_REQUEST * interval_ms).min(last_open + interval_ms);
            let q = [
                ("start", from.div_euclid(1000).to_string()),
                ("end", to.div_euclid(1000).to_string()),
                ("granularity", gran.to_string()),
                ("limit", CANDLES_PER_REQUEST.to_string()),
            ];
            let r: CandlesResponse =
                self.shared.rest.get(Kind::Read, &format!("/products/{symbol}/candles"), &q).await?;
            for c in r.candles {
                if c.start_ms >= first && c.start_ms <= last_open {
                    bars.insert(
                        c.start_ms,
                        Bar {
                            symbol: symbol.clone(),
                            open_time: c.start_ms,
                            close_time: c.start_ms + interval_ms - 1,
                            open: c.open,
                            high: c.high,
                            low: c.low,
                            close: c.close,
                            volume: c.volume,
                        },
                    );
                }
            }
            from = to;
        }
        let out: Vec<Bar> = bars.into_values().take(limit as usize).collect();
        if let Some(newest) = out.last() {
            // The market stream continues after the newest bar a warm-up got.
            let mut served = lock(&self.shared.bars_served);
            let e = served.entry((symbol.clone(), interval_ms)).or_insert(newest.open_time);
            *e = (*e).max(newest.open_time);
        }
        Ok(out)
    }

    async fn best_bid_ask(&self, symbol: &Symbol) -> VenueResult<BookTicker> {
        let q = [("product_ids", symbol.to_string())];
        let r: BestBidAskResponse = self.shared.rest.get(Kind::Read, "/best_bid_ask", &q).await?;
        let book = r
            .pricebooks
            .into_iter()
            .find(|b| b.product_id == symbol.as_str())
            .ok_or_else(|| VenueError::BadResponse(format!("best_bid_ask: no book for {symbol}")))?;
        let (bid, ask) = match (book.bids.first(), book.asks.first()) {
            (Some(b), Some(a)) => (b.clone(), a.clone()),
            _ => return Err(VenueError::BadResponse(format!("best_bid_ask: {symbol} has an empty side"))),
        };
        Ok(BookTicker {
            symbol: symbol.clone(),
            bid: bid.price,
            bid_qty: bid.size,
            ask: ask.price,
            ask_qty: ask.size,
            ts_ms: book.time.unwrap_or_else(|| self.shared.rest.now_ms()),
        })
    }

    /// Places an order. A one-cancels-the-other order ([`OrderType::Oco`]) is
    /// refused with [`VenueError::Rejected`] before anything is sent: Keel's
    /// Coinbase adapter has no OCO (it does not map one onto Coinbase's
    /// bracket orders), so exits on Coinbase are kept engine-side.
    async fn place_order(&self, request: &OrderRequest) -> VenueResult<PlaceResult> {
        if matches!(request.order_type, OrderType::Oco { .. }) {
            return Err(VenueError::Rejected {
                code: 0,
                reason:
                    "refused before sending: OCO order lists are not supported on Coinbase (exits stay engine-side)"
                        .into(),
            });
        }
        let s = &self.shared;
        let rules = s.rules(&request.symbol).await?;
        let inst = &rules.instrument;
        let refuse = |why: String| VenueError::Rejected { code: 0, reason: format!("refused before sending: {why}") };
        let market = request.order_type.is_market();
        rules.restrictions.check(market, false).map_err(|e| refuse(e.to_string()))?;
        if !on_step(request.qty, inst.step_size) {
            return Err(refuse(format!("quantity {} is not a multiple of {}", request.qty, inst.step_size)));
        }
        for p in [request.order_type.limit_price(), request.order_type.stop_price()].into_iter().flatten() {
            if !on_step(p, inst.tick_size) {
                return Err(refuse(format!("price {p} is not a multiple of {}", inst.tick_size)));
            }
        }
        let price = match request.order_type.limit_price() {
            Some(p) => Some(p),
            None => {
                self.best_bid_ask(&request.symbol)
                    .await
                    .ok()
                    .map(|t| if request.side == Side::Buy { t.ask } else { t.bid })
            }
        };
        match price {
            Some(p) => inst.check(request.qty, p, market).map_err(|v| refuse(v.to_string()))?,
            // No touch to value a market order at: the sizes are checked,
            // the notional is left to the venue.
            None => {
                let too_big = !inst.max_qty.is_zero() && request.qty > inst.max_qty;
                if !inst.status.is_trading() || request.qty < inst.min_qty || too_big {
                    return Err(refuse(format!(
                        "quantity {} outside [{}, {}] or {} not trading",
                        request.qty, inst.min_qty, inst.max_qty, request.symbol
                    )));
                }
            }
        }
        let base = Some(request.qty.normalize());
        let sizing = |limit: Decimal| OrderSizing {
            base_size: base,
            limit_price: Some(limit.normalize()),
            ..Default::default()
        };
        let mut config = OrderConfiguration::default();
        match (request.order_type, request.tif) {
            (OrderType::Market, _) => {
                config.market_market_ioc = Some(OrderSizing { base_size: base, ..Default::default() })
            }
            (OrderType::Limit { price }, TimeInForce::Gtc) => {
                config.limit_limit_gtc = Some(OrderSizing { post_only: Some(false), ..sizing(price) })
            }
            (OrderType::Limit { price }, TimeInForce::Ioc) => config.sor_limit_ioc = Some(sizing(price)),
            (OrderType::Limit { price }, TimeInForce::Fok) => config.limit_limit_fok = Some(sizing(price)),
            (OrderType::StopLimit { stop, price }, _) => {
                let last = self.best_bid_ask(&request.symbol).await?;
                let mid = (last.bid + last.ask) / Decimal::TWO;
                let direction = if stop >= mid { "STOP_DIRECTION_STOP_UP" } else { "STOP_DIRECTION_STOP_DOWN" };
                config.stop_limit_stop_limit_gtc = Some(OrderSizing {
                    stop_price: Some(stop.normalize()),
                    stop_direction: Some(direction.into()),
                    ..sizing(price)
                });
            }
            (OrderType::StopMarket { .. }, _) => {
                return Err(refuse("Coinbase spot has no stop-market orders (use a stop-limit)".into()))
            }
            // Refused at the top of `place_order`.
            (OrderType::Oco { .. }, _) => return Err(refuse("OCO order lists".into())),
        }
        let cb_id = s.cb_id_for(&request.client_order_id);
        let body = CreateOrderRequest {
            client_order_id: cb_id,
            product_id: request.symbol.to_string(),
            side: if request.side == Side::Buy { "BUY" } else { "SELL" }.into(),
            order_configuration: config,
            attached_order_configuration: None,
        };
        let quote = inst.quote_asset.clone();
        let signed_at = s.rest.now_ms();
        match s.create(&body).await {
            Ok(id) => s.placed(request, &id, &quote).await,
            Err(e) if e.outcome_unknown() => {
                tracing::warn!(client_order_id = %request.client_order_id, error = %e, "coinbase: order outcome unknown; looking it up");
                s.resolve_unknown(request, &body, signed_at, &quote, &e).await
            }
            Err(e) => Err(e),
        }
    }

    async fn cancel_order(&self, symbol: &Symbol, client_order_id: &str) -> VenueResult<OrderReport> {
        let s = &self.shared;
        let order = s.order_by_keel_id(symbol, client_order_id).await?.ok_or(VenueError::NotFound)?;
        if order.status().is_terminal() {
            return Ok(s.report_of(&order));
        }
        let body = CancelOrdersRequest { order_ids: vec![order.order_id.clone()] };
        let sent: VenueResult<CancelOrdersResponse> = s.rest.post(Kind::Write, "/orders/batch_cancel", &body).await;
        match sent {
            Ok(r) => {
                let result = r.results.into_iter().find(|x| x.order_id == order.order_id);
                match result {
                    Some(x) if x.success => {}
                    Some(x) => {
                        let reason = x.failure_reason.unwrap_or_default();
                        match reason.as_str() {
                            "UNKNOWN_CANCEL_ORDER" => return Err(VenueError::NotFound),
                            // Already done: the order's own state says how.
                            "ORDER_IS_FULLY_FILLED" | "DUPLICATE_CANCEL_REQUEST" => {}
                            _ => return Err(VenueError::Rejected { code: 200, reason }),
                        }
                    }
                    None => return Err(VenueError::BadResponse("batch_cancel: no result for the order".into())),
                }
            }
            Err(e) if e.outcome_unknown() => {
                // Read the order: queued or ended, the cancel took (or no
                // longer matters); still working, the caller hears the cancel
                // may not have arrived and may send it again (a second cancel
                // of a queued one is only a DUPLICATE_CANCEL_REQUEST).
                tracing::warn!(client_order_id, error = %e, "coinbase: cancel outcome unknown; reading the order");
                let now = s.get_order(&order.order_id).await?;
                let st = now.status();
                if st.is_terminal() || st == OrderStatus::CancelQueued {
                    return Ok(s.report_of(&now));
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        // Asynchronous (§4.10): CANCEL_QUEUED comes back as still working,
        // with reason CANCEL_QUEUED, until the query or the stream sees the end.
        let now = s.get_order(&order.order_id).await?;
        Ok(s.report_of(&now))
    }

    async fn query_order(&self, symbol: &Symbol, client_order_id: &str) -> VenueResult<Option<OrderReport>> {
        let s = &self.shared;
        Ok(s.order_by_keel_id(symbol, client_order_id).await?.map(|o| s.report_of(&o)))
    }

    async fn open_orders(&self, symbol: Option<&Symbol>) -> VenueResult<Vec<OrderReport>> {
        self.shared.open_orders(symbol).await
    }

    async fn balances(&self) -> VenueResult<Vec<Balance>> {
        self.shared.balances().await
    }

    /// Fills of `symbol` from [`CURSOR_REWIND_MS`] before the cursor's time
    /// on (fills the caller has may come back), oldest first, each
    /// `trade_id` once however the pages overlap.
    async fn my_trades(&self, symbol: &Symbol, since: Option<&FillCursor>) -> VenueResult<Vec<Fill>> {
        self.shared.my_trades(symbol, since).await
    }

    async fn subscribe_market(&self, symbols: &[Symbol], interval_ms: i64) -> VenueResult<mpsc::Receiver<MarketFeed>> {
        let granularity = granularity_of(interval_ms).ok_or_else(|| VenueError::Rejected {
            code: 400,
            reason: format!("no Coinbase granularity of {interval_ms} ms"),
        })?;
        let (tx, rx) = mpsc::channel(4096);
        let task = crate::market_stream::run(self.shared.clone(), symbols.to_vec(), interval_ms, granularity, tx);
        lock(&self.streams).push(tokio::spawn(task));
        Ok(rx)
    }

    async fn subscribe_user(&self) -> VenueResult<mpsc::Receiver<UserEvent>> {
        let (tx, rx) = mpsc::channel(4096);
        // The channel reports orders only: balances are read behind them.
        let (orders_tx, orders_rx) = mpsc::channel(4096);
        let mut streams = lock(&self.streams);
        streams.push(tokio::spawn(crate::user_stream::run(self.shared.clone(), orders_tx)));
        streams.push(tokio::spawn(crate::balance_feed::run(self.shared.clone(), orders_rx, tx)));
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keel_ids_that_fit_are_sent_as_they_are_and_others_get_a_stable_uuid() {
        for id in ["k-1", "keel.s1:42_x", "0123456789abcdef0123456789abcdef0123"] {
            assert_eq!(coinbase_client_id(id), id);
        }
        for id in ["", "has space", "ö", "0123456789abcdef0123456789abcdef01234"] {
            let cb = coinbase_client_id(id);
            assert_ne!(cb, id);
            assert_eq!(cb, coinbase_client_id(id), "deterministic");
            assert_eq!(cb.len(), 36);
            assert_eq!(cb.matches('-').count(), 4);
        }
        assert_ne!(coinbase_client_id("a b"), coinbase_client_id("a  b"));
    }

    #[test]
    fn statuses_map_with_cancel_queued_still_working() {
        let cases = [
            ("PENDING", "0", KeelStatus::Submitted),
            ("OPEN", "0", KeelStatus::Accepted),
            ("OPEN", "0.1", KeelStatus::PartiallyFilled),
            ("CANCEL_QUEUED", "0", KeelStatus::Accepted),
            ("FILLED", "1", KeelStatus::Filled),
            ("CANCELLED", "0.1", KeelStatus::Canceled),
            ("EXPIRED", "0", KeelStatus::Expired),
            ("FAILED", "0", KeelStatus::Rejected),
            ("UNKNOWN_ORDER_STATUS", "0", KeelStatus::Unknown),
        ];
        for (status, filled, want) in cases {
            let o: Order = serde_json::from_value(serde_json::json!({
                "order_id": "o", "product_id": "BTC-USD", "status": status, "filled_size": filled
            }))
            .unwrap();
            assert_eq!(status_of(&o), want, "{status} {filled}");
        }
    }

    #[test]
    fn granularities_are_coinbase_enum_values_only() {
        assert_eq!(granularity_of(60_000), Some("ONE_MINUTE"));
        assert_eq!(granularity_of(86_400_000), Some("ONE_DAY"));
        assert_eq!(granularity_of(604_800_000), None);
        assert_eq!(granularity_of(180_000), None);
    }
}
