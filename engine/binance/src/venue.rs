//! [`BinanceVenue`]: the Binance spot adapter behind the exchange-neutral
//! [`Venue`] trait.
//!
//! Orders are never sent twice: an order whose outcome is unknown (timeout,
//! dropped connection, 5xx, -1006, -1007) is resolved by querying it by client
//! order id, and declared "not sent" only once its `recvWindow` has passed
//! without the venue knowing it. Fills are deduplicated by trade id across the
//! FULL order response, the user stream and REST reconciliation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use keel_core::balance::Balance;
use keel_core::fill::{Fill, FillCursor, TradeId};
use keel_core::instrument::{Instrument, SymbolStatus};
use keel_core::market::{Bar, BookTicker};
use keel_core::order::{OrderStatus, OrderType, Side, TimeInForce};
use keel_core::symbol::Symbol;
use keel_core::universe::Candidate;
use keel_core::venue::oco;
use keel_core::venue::{MarketFeed, OrderReport, OrderRequest, PlaceResult, UserEvent, Venue, VenueError, VenueResult};

use super::error::{BinanceError, NO_SUCH_ORDER};
use super::model::{ExchangeInfo, Filter, MyTrade, OrderInfo, SymbolInfo};
use super::rest::RestClient;
use super::usdm::model::Ticker24hr;
use super::{interval_name, BinanceSettings, OrderTransport};

/// Maps a Binance order status to Keel's; one Keel does not know is an error.
pub fn order_status(s: &str) -> Result<OrderStatus, String> {
    Ok(match s {
        "NEW" | "PENDING_CANCEL" => OrderStatus::Accepted,
        "PENDING_NEW" => OrderStatus::Submitted,
        "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
        "FILLED" => OrderStatus::Filled,
        "CANCELED" => OrderStatus::Canceled,
        "REJECTED" => OrderStatus::Rejected,
        "EXPIRED" | "EXPIRED_IN_MATCH" => OrderStatus::Expired,
        other => return Err(format!("unknown order status {other:?}")),
    })
}

/// Maps a Binance side; one that is neither `BUY` nor `SELL` is an error.
pub fn side_of(s: &str) -> Result<Side, String> {
    match s {
        "BUY" => Ok(Side::Buy),
        "SELL" => Ok(Side::Sell),
        other => Err(format!("unknown side {other:?}")),
    }
}

/// Builds an [`Instrument`] from an exchangeInfo symbol.
pub fn instrument_of(s: &SymbolInfo) -> Instrument {
    let mut i = Instrument {
        symbol: Symbol::new(&s.symbol),
        base_asset: s.base_asset.clone(),
        quote_asset: s.quote_asset.clone(),
        tick_size: Decimal::ZERO,
        min_price: Decimal::ZERO,
        max_price: Decimal::ZERO,
        step_size: Decimal::ZERO,
        min_qty: Decimal::ZERO,
        max_qty: Decimal::ZERO,
        market_step_size: Decimal::ZERO,
        min_notional: Decimal::ZERO,
        max_notional: Decimal::ZERO,
        max_num_orders: 0,
        status: SymbolStatus::parse(&s.status),
    };
    let mut market_step = None;
    for f in &s.filters {
        match f {
            Filter::PriceFilter { min_price, max_price, tick_size } => {
                i.min_price = *min_price;
                i.max_price = *max_price;
                i.tick_size = *tick_size;
            }
            Filter::LotSize { min_qty, max_qty, step_size } => {
                i.min_qty = *min_qty;
                i.max_qty = *max_qty;
                i.step_size = *step_size;
            }
            Filter::MarketLotSize { step_size, .. } => market_step = Some(*step_size),
            Filter::MinNotional { min_notional, .. } => i.min_notional = i.min_notional.max(*min_notional),
            Filter::Notional { min_notional, max_notional, .. } => {
                i.min_notional = i.min_notional.max(*min_notional);
                i.max_notional = max_notional.unwrap_or_default();
            }
            Filter::MaxNumOrders { max_num_orders } => i.max_num_orders = *max_num_orders,
            Filter::PercentPriceBySide { .. } | Filter::Other => {}
        }
    }
    i.market_step_size = market_step.filter(|s| !s.is_zero()).unwrap_or(i.step_size);
    i
}

/// The exchange-neutral report of a Binance order. `client_order_id` is the
/// order's own id (for a cancel response, `origClientOrderId`).
pub fn report_of(o: &OrderInfo, fallback_ts: i64) -> OrderReport {
    let cid = o.orig_client_order_id.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| o.client_order_id.clone());
    // A status that is missing or that Keel does not know is never guessed:
    // it is `Unknown`, which makes the router query the order. A REST
    // answer's side is informational (the router keeps the order's own).
    let status = match o.status.as_deref().map(order_status) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            tracing::warn!(client_order_id = %cid, error = %e, "binance: order status Keel does not know; the order will be queried");
            OrderStatus::Unknown
        }
        None => {
            tracing::warn!(client_order_id = %cid, "binance: order answer without a status; the order will be queried");
            OrderStatus::Unknown
        }
    };
    let side = match o.side.as_deref().map(side_of) {
        Some(Ok(side)) => side,
        other => {
            if let Some(Err(e)) = other {
                tracing::warn!(client_order_id = %cid, error = %e, "binance: order side Keel does not know (the order's own side is kept)");
            }
            Side::Buy
        }
    };
    OrderReport {
        client_order_id: cid,
        venue_order_id: o.order_id.to_string(),
        symbol: Symbol::new(&o.symbol),
        side,
        status,
        qty: o.orig_qty.unwrap_or_default(),
        filled_qty: o.executed_qty.unwrap_or_default(),
        filled_quote: o.cummulative_quote_qty.unwrap_or_default().max(Decimal::ZERO),
        reason: o.expiry_reason.clone().filter(|r| r != "NONE"),
        ts_ms: o.update_time.or(o.transact_time).or(o.time).unwrap_or(fallback_ts),
        oco_leg: None,
    }
}

/// A fill from a `myTrades` entry.
pub fn fill_of_trade(t: &MyTrade, client_order_id: &str) -> Fill {
    Fill {
        trade_id: t.id.into(),
        client_order_id: client_order_id.to_string(),
        strategy_id: "".into(),
        symbol: Symbol::new(&t.symbol),
        side: if t.is_buyer { Side::Buy } else { Side::Sell },
        price: t.price,
        qty: t.qty,
        fee: t.commission,
        fee_asset: t.commission_asset.clone(),
        is_maker: t.is_maker,
        ts_ms: t.time,
        tag: None,
    }
}

/// The universe candidates: each listed symbol with its ticker (a symbol
/// without one has not traded: zero volume and prices).
pub fn candidates_of(info: &ExchangeInfo, tickers: &[Ticker24hr]) -> Vec<Candidate> {
    let by_symbol: HashMap<&str, &Ticker24hr> = tickers.iter().map(|t| (t.symbol.as_str(), t)).collect();
    info.symbols
        .iter()
        .map(|s| {
            let t = by_symbol.get(s.symbol.as_str());
            Candidate {
                symbol: Symbol::new(&s.symbol),
                quote_asset: s.quote_asset.clone(),
                status: SymbolStatus::parse(&s.status),
                spot_allowed: s.is_spot_trading_allowed,
                quote_volume: t.map(|t| t.quote_volume).unwrap_or_default(),
                last_price: t.map(|t| t.last_price).unwrap_or_default(),
                open_price: t.map(|t| t.open_price).unwrap_or_default(),
            }
        })
        .collect()
}

/// exchangeInfo (symbol status, filters) is reloaded in the background this often.
const INSTRUMENTS_MAX_AGE: Duration = Duration::from_secs(600);

/// `instruments()` answers from the last `exchangeInfo` this recent.
const INSTRUMENTS_REUSE: Duration = Duration::from_secs(30);

/// `balances()` answers once from the start-up check's account read this recent.
const ACCOUNT_REUSE: Duration = Duration::from_secs(10);

/// Deduplication memory is pruned above this many entries…
const SEEN_FILLS_MAX: usize = 200_000;
/// …keeping the trade ids within this distance of each symbol's watermark.
const SEEN_FILLS_KEEP: u64 = 50_000;

/// State shared by the venue and its stream tasks.
pub(crate) struct Shared {
    pub rest: RestClient,
    pub settings: BinanceSettings,
    instruments: Mutex<HashMap<Symbol, Instrument>>,
    /// When exchangeInfo was last loaded (statuses and filters change).
    instruments_at: Mutex<Option<std::time::Instant>>,
    /// Balances the start-up check read, for the reconciliation just after
    /// it (taken once, if recent, and dropped by any order or cancel sent
    /// meanwhile): a start-up reads the account once.
    checked_balances: Mutex<Option<(std::time::Instant, Vec<Balance>)>>,
    /// (symbol, trade id) already delivered to the caller.
    seen_fills: Mutex<HashSet<(Symbol, u64)>>,
    /// Per symbol: every own trade at or below this id has been delivered.
    last_trade: Mutex<HashMap<Symbol, u64>>,
    /// (symbol, order id) → client order id.
    order_ids: Mutex<HashMap<(Symbol, u64), String>>,
    /// Open orders per symbol (client ids), to refuse what MAX_NUM_ORDERS would.
    open: Mutex<HashMap<Symbol, HashSet<String>>>,
    /// Symbols whose fills are reconciled after a gap.
    symbols: Mutex<BTreeSet<Symbol>>,
    /// The latest best bid/ask per symbol from the market stream, for the
    /// pre-check of market orders without a REST call.
    books: Mutex<HashMap<Symbol, BookTicker>>,
    /// Symbols whose open orders are being re-read in the background.
    refreshing: Mutex<HashSet<Symbol>>,
    /// Per (symbol, interval): the open time of the newest closed bar handed
    /// out by a "most recent" `klines` (a warm-up). The market stream starts
    /// after it, so a bar that closes between the warm-up and the
    /// subscription is backfilled rather than lost.
    bars_served: Mutex<HashMap<(Symbol, i64), i64>>,
    /// Order entry over the WebSocket API (`order_transport = "ws"`).
    ws_orders: std::sync::OnceLock<super::ws_orders::WsOrders>,
    /// The legs of OCO lists the user stream tells of (see `oco`).
    pub(crate) oco: super::oco::OcoLegs,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Whether a stop order is Binance's stop-loss kind (a buy's stop above
    /// the market, a sell's below it) or its take-profit kind (the other
    /// side): Binance names them apart and refuses one on the wrong side. The
    /// market is the streamed touch, or the REST book ticker before the
    /// stream has one.
    async fn stop_is_loss(&self, request: &OrderRequest, stop: Decimal) -> VenueResult<bool> {
        let streamed = lock(&self.books).get(&request.symbol).map(|t| (t.bid, t.ask));
        let (bid, ask) = match streamed {
            Some(touch) => touch,
            None => {
                let t = self.rest.book_ticker(request.symbol.as_str()).await?;
                (t.bid_price, t.ask_price)
            }
        };
        Ok(match request.side {
            Side::Buy => stop >= ask,
            Side::Sell => stop <= bid,
        })
    }

    /// The newest closed bar of `symbol` and `interval_ms` handed out by a
    /// warm-up, if any (see `bars_served`).
    pub(crate) fn bar_served(&self, symbol: &Symbol, interval_ms: i64) -> Option<i64> {
        lock(&self.bars_served).get(&(symbol.clone(), interval_ms)).copied()
    }

    /// The fills an order response (FULL) carries that the user stream has
    /// not delivered already, as Keel's fills of `request` (an OCO's legs'
    /// fills carry the list's id).
    pub(crate) fn response_fills(&self, request: &OrderRequest, info: &OrderInfo, signed_at: i64, out: &mut Vec<Fill>) {
        for f in info.fills.iter().filter(|f| self.claim_fill(&request.symbol, &f.trade_id.into(), false)) {
            out.push(Fill {
                trade_id: f.trade_id.into(),
                client_order_id: request.client_order_id.clone(),
                strategy_id: "".into(),
                symbol: request.symbol.clone(),
                side: request.side,
                price: f.price,
                qty: f.qty,
                fee: f.commission,
                fee_asset: f.commission_asset.clone(),
                is_maker: false,
                ts_ms: info.transact_time.unwrap_or(signed_at),
                tag: None,
            });
        }
    }

    /// Marks a fill delivered; false if it already was.
    ///
    /// `in_order` is true for sources that deliver every own trade in trade-id
    /// order (the user stream while connected, REST reconciliation): only they
    /// advance the watermark below which no fill can be missing. A FULL order
    /// response does not, so a fill missed in a gap just before it is still
    /// recovered.
    pub(crate) fn claim_fill(&self, symbol: &Symbol, trade_id: &TradeId, in_order: bool) -> bool {
        // Binance numbers its trades; an id that is not a number cannot be
        // Binance's own, so it is passed on (the store knows a repeat).
        let Some(trade_id) = trade_id.as_u64() else { return true };
        let fresh = {
            let mut seen = lock(&self.seen_fills);
            let fresh = seen.insert((symbol.clone(), trade_id));
            if seen.len() > SEEN_FILLS_MAX {
                // Keep memory bounded: ids far below the watermark cannot come back.
                let marks = lock(&self.last_trade).clone();
                seen.retain(|(sym, id)| marks.get(sym).is_none_or(|m| id.saturating_add(SEEN_FILLS_KEEP) > *m));
            }
            fresh
        };
        if in_order {
            self.seed_last_trade(symbol, trade_id);
        }
        fresh
    }

    /// Keeps the latest best bid/ask of a symbol from the market stream.
    pub(crate) fn note_book(&self, book: &BookTicker) {
        lock(&self.books).insert(book.symbol.clone(), book.clone());
    }

    pub(crate) fn last_trade_id(&self, symbol: &Symbol) -> Option<u64> {
        lock(&self.last_trade).get(symbol).copied()
    }

    /// Raises the highest known trade id of a symbol (fills at or below it
    /// are not recovered by gap reconciliation).
    pub(crate) fn seed_last_trade(&self, symbol: &Symbol, trade_id: u64) {
        let mut lt = lock(&self.last_trade);
        let e = lt.entry(symbol.clone()).or_insert(trade_id);
        *e = (*e).max(trade_id);
    }

    /// Makes sure a symbol has a trade-id watermark: the latest own trade at
    /// the venue (0 if none). Taken before the first order in the symbol, so
    /// any later fill is above it and gap reconciliation finds it.
    pub(crate) async fn ensure_watermark(&self, symbol: &Symbol) -> Result<(), BinanceError> {
        self.add_symbol(symbol);
        if self.last_trade_id(symbol).is_some() {
            return Ok(());
        }
        let latest = self.rest.my_trades_limit(symbol.as_str(), None, None, 1).await?;
        // Only the first answer sets it: another look-up in flight (the
        // background one, or a reconnect's) may have been answered after an
        // order filled, and raising the watermark to that fill would lose it
        // if the user stream missed it. Fills delivered in order raise it.
        lock(&self.last_trade).entry(symbol.clone()).or_insert(latest.last().map(|t| t.id).unwrap_or(0));
        Ok(())
    }

    /// Takes the watermark of symbols that have none, in the background, so
    /// the first order in a symbol does not wait for `myTrades`.
    pub(crate) fn prime_watermarks(self: &Arc<Self>, symbols: &[Symbol]) {
        let missing: Vec<Symbol> = symbols.iter().filter(|s| self.last_trade_id(s).is_none()).cloned().collect();
        if missing.is_empty() {
            return;
        }
        let shared = Arc::downgrade(self);
        tokio::spawn(async move {
            for symbol in missing {
                let Some(s) = shared.upgrade() else { return };
                if let Err(e) = s.ensure_watermark(&symbol).await {
                    tracing::warn!(symbol = %symbol, error = %e, "binance: cannot take the trade watermark yet; the first order will");
                }
            }
        });
    }

    /// Re-reads a symbol's open orders in the background (one read at a
    /// time per symbol), after the local view said the symbol is full.
    fn refresh_open_orders(self: &Arc<Self>, symbol: &Symbol) {
        if !lock(&self.refreshing).insert(symbol.clone()) {
            return;
        }
        let (shared, symbol) = (Arc::downgrade(self), symbol.clone());
        tokio::spawn(async move {
            let Some(s) = shared.upgrade() else { return };
            match s.rest.open_orders(Some(symbol.as_str())).await {
                Ok(list) => {
                    let now = s.rest.now_ms();
                    for o in &list {
                        s.remember_order(&symbol, o.order_id, &o.client_order_id);
                    }
                    let reports: Vec<OrderReport> = list.iter().map(|o| report_of(o, now)).collect();
                    s.note_open_orders(Some(&symbol), &reports);
                }
                Err(e) => tracing::warn!(symbol = %symbol, error = %e, "binance: cannot re-read open orders"),
            }
            lock(&s.refreshing).remove(&symbol);
        });
    }

    pub(crate) fn remember_order(&self, symbol: &Symbol, order_id: u64, client_order_id: &str) {
        lock(&self.order_ids).insert((symbol.clone(), order_id), client_order_id.to_string());
    }

    /// Tracks whether an order is open (for the MAX_NUM_ORDERS pre-check).
    pub(crate) fn note_report(&self, r: &OrderReport) {
        let mut open = lock(&self.open);
        let set = open.entry(r.symbol.clone()).or_default();
        if r.status.is_terminal() {
            set.remove(&r.client_order_id);
        } else {
            set.insert(r.client_order_id.clone());
        }
    }

    /// Replaces the open set of the symbols listed (all when `symbol` is None)
    /// with what the venue reported.
    pub(crate) fn note_open_orders(&self, symbol: Option<&Symbol>, reports: &[OrderReport]) {
        let mut open = lock(&self.open);
        match symbol {
            Some(s) => {
                open.insert(s.clone(), HashSet::new());
            }
            None => open.clear(),
        }
        for r in reports {
            open.entry(r.symbol.clone()).or_default().insert(r.client_order_id.clone());
        }
    }

    fn open_count(&self, symbol: &Symbol) -> usize {
        lock(&self.open).get(symbol).map(HashSet::len).unwrap_or(0)
    }

    pub(crate) fn add_symbol(&self, symbol: &Symbol) {
        lock(&self.symbols).insert(symbol.clone());
    }

    pub(crate) fn known_symbols(&self) -> Vec<Symbol> {
        lock(&self.symbols).iter().cloned().collect()
    }

    /// Client order id of a venue order id (queried and cached when unknown).
    pub(crate) async fn client_id_of(&self, symbol: &Symbol, order_id: u64) -> Result<String, BinanceError> {
        if let Some(c) = lock(&self.order_ids).get(&(symbol.clone(), order_id)).cloned() {
            return Ok(c);
        }
        let info = self.rest.query_order_by_id(symbol.as_str(), order_id).await?;
        // A leg of an OCO: its trades are the list's.
        let cid = match oco::leg_of(&info.client_order_id).filter(|_| info.order_list_id >= 0) {
            Some((list, _)) => list.to_string(),
            None => info.client_order_id,
        };
        self.remember_order(symbol, order_id, &cid);
        Ok(cid)
    }

    /// Sends a new order over the WebSocket API when that is the transport
    /// and its connection is up, else over REST. Only a request that never
    /// left (the connection is down) falls back: one that left and got no
    /// answer has an unknown outcome and is never sent again.
    async fn send_order(&self, params: Vec<(String, String)>) -> Result<OrderInfo, BinanceError> {
        if let Some(ws) = self.ws_orders.get() {
            match ws.new_order(self, params.clone()).await {
                Err(BinanceError::NotSent(why)) => {
                    tracing::warn!(reason = %why, "binance: order sent over REST (the WebSocket API is down)")
                }
                other => return other,
            }
        }
        self.rest.new_order(params).await
    }

    /// Cancels over the WebSocket API when it is the transport and up, else
    /// over REST (the same fallback rule as [`Shared::send_order`]).
    async fn send_cancel(&self, symbol: &Symbol, client_order_id: &str) -> Result<OrderInfo, BinanceError> {
        if let Some(ws) = self.ws_orders.get() {
            match ws.cancel_order(self, symbol.as_str(), client_order_id).await {
                Err(BinanceError::NotSent(why)) => {
                    tracing::warn!(reason = %why, "binance: cancel sent over REST (the WebSocket API is down)")
                }
                other => return other,
            }
        }
        self.rest.cancel_order(symbol.as_str(), client_order_id).await
    }

    /// Own trades from `from_id` (inclusive), all pages, oldest first.
    pub(crate) async fn trades_since(&self, symbol: &Symbol, from_id: Option<u64>) -> Result<Vec<Fill>, BinanceError> {
        let mut out = Vec::new();
        let mut from = from_id;
        loop {
            let page = self.rest.my_trades(symbol.as_str(), from, None).await?;
            let n = page.len();
            for t in &page {
                let cid = self.client_id_of(symbol, t.order_id).await?;
                out.push(fill_of_trade(t, &cid));
            }
            match (from, page.last()) {
                (Some(_), Some(last)) if n >= 1000 => from = Some(last.id + 1),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.trade_id.cmp(&b.trade_id));
        Ok(out)
    }

    /// The instrument as last loaded. Instruments are refreshed in the
    /// background every [`INSTRUMENTS_MAX_AGE`], so an order never waits for
    /// `exchangeInfo`; only a symbol never seen is looked up on the spot.
    async fn instrument(&self, symbol: &Symbol) -> Result<Instrument, VenueError> {
        if let Some(i) = lock(&self.instruments).get(symbol).cloned() {
            return Ok(i);
        }
        let info = self.rest.exchange_info().await.map_err(VenueError::from)?;
        self.store_instruments(&info);
        lock(&self.instruments).get(symbol).cloned().ok_or_else(|| VenueError::Rejected {
            code: -1121,
            reason: format!("Invalid symbol {symbol} (not in exchangeInfo)"),
        })
    }

    fn store_instruments(&self, info: &ExchangeInfo) -> Vec<Instrument> {
        let list: Vec<Instrument> = info.symbols.iter().map(instrument_of).collect();
        *lock(&self.instruments_at) = Some(std::time::Instant::now());
        let mut m = lock(&self.instruments);
        for i in &list {
            m.insert(i.symbol.clone(), i.clone());
        }
        list
    }
}

/// What the start-up check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupReport {
    /// Server minus local clock (ms).
    pub clock_offset_ms: i64,
    /// Whether the key may trade.
    pub can_trade: bool,
    /// Number of listed symbols.
    pub symbols: usize,
}

/// The Binance spot venue.
pub struct BinanceVenue {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for BinanceVenue {
    fn drop(&mut self) {
        for t in lock(&self.tasks).iter() {
            t.abort();
        }
    }
}

impl BinanceVenue {
    /// Connects: builds the client, synchronises the clock, loads exchangeInfo
    /// (filters and rate limits) and starts periodic clock resync.
    pub async fn connect(settings: BinanceSettings) -> Result<Self, VenueError> {
        let rest = RestClient::new(
            &settings.endpoints.rest,
            settings.credentials.clone(),
            settings.recv_window_ms,
            settings.request_timeout_ms,
        )
        .map_err(VenueError::from)?
        .with_max_order_wait_ms(settings.max_order_wait_ms);
        rest.sync_time().await.map_err(VenueError::from)?;
        let symbols = settings.symbols.iter().map(|s| Symbol::new(s)).collect();
        let shared = Arc::new(Shared {
            rest,
            settings,
            instruments: Mutex::new(HashMap::new()),
            instruments_at: Mutex::new(None),
            checked_balances: Mutex::new(None),
            seen_fills: Mutex::new(HashSet::new()),
            last_trade: Mutex::new(HashMap::new()),
            order_ids: Mutex::new(HashMap::new()),
            open: Mutex::new(HashMap::new()),
            symbols: Mutex::new(symbols),
            books: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashSet::new()),
            bars_served: Mutex::new(HashMap::new()),
            ws_orders: std::sync::OnceLock::new(),
            oco: Default::default(),
        });
        let info = shared.rest.exchange_info().await.map_err(VenueError::from)?;
        shared.store_instruments(&info);
        let refresh = {
            let weak: Weak<Shared> = Arc::downgrade(&shared);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(INSTRUMENTS_MAX_AGE).await;
                    let Some(s) = weak.upgrade() else { return };
                    match s.rest.exchange_info().await {
                        Ok(info) => {
                            s.store_instruments(&info);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "binance exchangeInfo refresh failed; keeping the last one")
                        }
                    }
                }
            })
        };
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let every = Duration::from_millis(shared.settings.time_sync_interval_ms.max(1000));
        let sync = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(s) = weak.upgrade() else { return };
                if let Err(e) = s.rest.sync_time().await {
                    tracing::warn!(error = %e, "binance clock resync failed");
                }
            }
        });
        let mut tasks = vec![sync, refresh];
        if shared.settings.order_transport == OrderTransport::Ws {
            let (ws, task) =
                super::ws_orders::WsOrders::start(Arc::downgrade(&shared), shared.settings.request_timeout_ms).await;
            let _ = shared.ws_orders.set(ws);
            tasks.push(task);
        }
        tracing::info!(
            key_type = shared.rest.credentials().key_type(),
            order_transport = shared.settings.order_transport.as_str(),
            "binance order entry"
        );
        Ok(Self { shared, tasks: Mutex::new(tasks) })
    }

    /// Whether orders go over the WebSocket API now (`order_transport = "ws"`
    /// and its connection is up); otherwise they go over REST.
    pub fn ws_order_entry_up(&self) -> bool {
        self.shared.ws_orders.get().is_some_and(|w| w.is_up())
    }

    /// Checks connectivity, clock offset and trading permission (`canTrade`).
    pub async fn startup_check(&self) -> Result<StartupReport, VenueError> {
        let offset = self.shared.rest.sync_time().await.map_err(VenueError::from)?;
        let account = self.shared.rest.account().await.map_err(VenueError::from)?;
        let balances = account
            .balances
            .iter()
            .map(|b| Balance { asset: b.asset.clone(), free: b.free, locked: b.locked })
            .collect();
        *lock(&self.shared.checked_balances) = Some((std::time::Instant::now(), balances));
        let symbols = lock(&self.shared.instruments).len();
        Ok(StartupReport { clock_offset_ms: offset, can_trade: account.can_trade, symbols })
    }

    /// Tells the adapter the newest fill of `symbol` that the caller has
    /// already recorded (its store's cursor, at start-up): gap reconciliation
    /// then recovers only fills above its trade id. A cursor whose id is not
    /// a number is not Binance's and is ignored.
    pub fn seed_fill_cursor(&self, symbol: &Symbol, cursor: &FillCursor) {
        self.shared.add_symbol(symbol);
        if let Some(id) = cursor.trade_id.as_u64() {
            self.shared.seed_last_trade(symbol, id);
        }
    }

    /// The trade id below which every own trade of `symbol` has been
    /// delivered (`None` until it is taken).
    pub fn trade_watermark(&self, symbol: &Symbol) -> Option<u64> {
        self.shared.last_trade_id(symbol)
    }

    /// The REST client (rate-limit state, clock offset).
    pub fn rest(&self) -> &RestClient {
        &self.shared.rest
    }

    /// Resolves an order whose placement outcome is unknown: query it by
    /// client id; "not found" counts only once `recvWindow` has passed since
    /// it was signed (until then it may still reach the matching engine).
    async fn resolve_unknown(
        &self,
        symbol: &Symbol,
        cid: &str,
        signed_at: i64,
        why: &BinanceError,
    ) -> VenueResult<PlaceResult> {
        let s = &self.shared;
        let deadline = signed_at + s.settings.recv_window_ms as i64 + 1000;
        let mut delay = Duration::from_millis(100);
        for _attempt in 0..12 {
            match s.rest.query_order(symbol.as_str(), cid).await {
                Ok(info) => {
                    s.remember_order(symbol, info.order_id, cid);
                    let trades = s.rest.my_trades(symbol.as_str(), None, Some(info.order_id)).await.unwrap_or_default();
                    let fills = trades
                        .iter()
                        .filter(|t| s.claim_fill(symbol, &t.id.into(), false))
                        .map(|t| fill_of_trade(t, cid))
                        .collect();
                    tracing::info!(client_order_id = cid, "order with unknown outcome found at the venue");
                    let report = report_of(&info, s.rest.now_ms());
                    s.note_report(&report);
                    return Ok(PlaceResult { report, fills });
                }
                Err(e) if e.code() == Some(NO_SUCH_ORDER) => {
                    let now = s.rest.now_ms();
                    if now > deadline {
                        return Err(VenueError::NotSent(format!("order {cid} never reached the venue ({why})")));
                    }
                    delay = Duration::from_millis(((deadline - now) as u64).clamp(50, 1000));
                }
                Err(e) => {
                    tracing::warn!(client_order_id = cid, error = %e, "querying an order with unknown outcome failed")
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Err(VenueError::OutcomeUnknown(format!("order {cid}: {why}; still unresolved")))
    }
}

fn tif_str(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Gtc => "GTC",
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
    }
}

#[async_trait]
impl Venue for BinanceVenue {
    fn name(&self) -> &str {
        "binance"
    }

    fn used_weight(&self) -> Option<u64> {
        Some(self.shared.rest.limits().used_weight_1m)
    }

    async fn instruments(&self) -> VenueResult<Vec<Instrument>> {
        // `connect` has just read them: a start-up does not pay 20 weight twice.
        let fresh = lock(&self.shared.instruments_at).is_some_and(|at| at.elapsed() < INSTRUMENTS_REUSE);
        if fresh {
            let mut list: Vec<Instrument> = lock(&self.shared.instruments).values().cloned().collect();
            list.sort_by(|a, b| a.symbol.cmp(&b.symbol));
            return Ok(list);
        }
        let info = self.shared.rest.exchange_info().await?;
        Ok(self.shared.store_instruments(&info))
    }

    async fn server_time(&self) -> VenueResult<i64> {
        let t: super::model::ServerTime = self.shared.rest.public("/api/v3/time", Vec::new()).await?;
        Ok(t.server_time)
    }

    async fn klines(
        &self,
        symbol: &Symbol,
        interval_ms: i64,
        start_ms: Option<i64>,
        limit: usize,
    ) -> VenueResult<Vec<Bar>> {
        let name = interval_name(interval_ms).ok_or_else(|| VenueError::Rejected {
            code: -1120,
            reason: format!("no Binance interval of {interval_ms} ms"),
        })?;
        let list = self.shared.rest.klines(symbol.as_str(), name, start_ms, None, limit).await?;
        let now = self.shared.rest.now_ms();
        let closed: Vec<_> = list.into_iter().filter(|k| k.close_time < now).collect();
        if let (None, Some(newest)) = (start_ms, closed.last()) {
            let mut served = lock(&self.shared.bars_served);
            let entry = served.entry((symbol.clone(), interval_ms)).or_insert(newest.open_time);
            *entry = (*entry).max(newest.open_time);
        }
        Ok(closed.into_iter().map(|k| k.into_bar(symbol.clone())).collect())
    }

    async fn best_bid_ask(&self, symbol: &Symbol) -> VenueResult<BookTicker> {
        let t = self.shared.rest.book_ticker(symbol.as_str()).await?;
        Ok(BookTicker {
            symbol: symbol.clone(),
            bid: t.bid_price,
            bid_qty: t.bid_qty,
            ask: t.ask_price,
            ask_qty: t.ask_qty,
            ts_ms: self.shared.rest.now_ms(),
        })
    }

    async fn place_order(&self, request: &OrderRequest) -> VenueResult<PlaceResult> {
        // Balances read before an order are no longer the account's.
        lock(&self.shared.checked_balances).take();
        let s = &self.shared;
        let inst = s.instrument(&request.symbol).await?;
        let market = request.order_type.is_market();
        // A market order is pre-checked at the streamed touch; without one
        // (no book stream yet) the venue's own filters decide, after the risk
        // guard's check at its last price. No REST call either way.
        let check_price = match request.order_type.limit_price().or(request.order_type.stop_price()) {
            Some(p) => Some(p),
            None => lock(&s.books).get(&request.symbol).map(|t| if request.side == Side::Buy { t.ask } else { t.bid }),
        };
        if let Some(price) = check_price {
            if let Err(v) = inst.check(request.qty, price, market) {
                return Err(VenueError::Rejected { code: -1013, reason: format!("refused before sending: {v}") });
            }
        }
        let open = s.open_count(&request.symbol);
        if inst.max_num_orders > 0 && !market && open >= inst.max_num_orders as usize {
            // The local view may be stale (fills without a user stream): it
            // is re-read in the background, never while an order waits.
            s.refresh_open_orders(&request.symbol);
            return Err(VenueError::Rejected {
                code: -1013,
                reason: format!("refused before sending: MAX_NUM_ORDERS ({open} open as last seen; re-reading)"),
            });
        }
        if s.last_trade_id(&request.symbol).is_none() {
            // Normally taken at start-up or when the symbol's market data is
            // subscribed; an order that gets here first must wait for it, or
            // a fill lost in a user-stream gap could not be recovered.
            tracing::warn!(symbol = %request.symbol, "binance: first order in a symbol waits for its trade watermark");
            s.ensure_watermark(&request.symbol).await?;
        }
        let mut p: Vec<(String, String)> =
            vec![("symbol".into(), request.symbol.to_string()), ("side".into(), request.side.as_str().into())];
        match request.order_type {
            // An order list, over REST (see `oco`).
            OrderType::Oco { .. } => return s.place_oco(request).await,
            OrderType::Market => p.push(("type".into(), "MARKET".into())),
            OrderType::Limit { price } => {
                p.push(("type".into(), "LIMIT".into()));
                p.push(("timeInForce".into(), tif_str(request.tif).into()));
                p.push(("price".into(), price.normalize().to_string()));
            }
            OrderType::StopLimit { stop, price } => {
                let kind = if s.stop_is_loss(request, stop).await? { "STOP_LOSS_LIMIT" } else { "TAKE_PROFIT_LIMIT" };
                p.push(("type".into(), kind.into()));
                p.push(("timeInForce".into(), tif_str(request.tif).into()));
                p.push(("price".into(), price.normalize().to_string()));
                p.push(("stopPrice".into(), stop.normalize().to_string()));
            }
            OrderType::StopMarket { stop } => {
                let kind = if s.stop_is_loss(request, stop).await? { "STOP_LOSS" } else { "TAKE_PROFIT" };
                p.push(("type".into(), kind.into()));
                p.push(("stopPrice".into(), stop.normalize().to_string()));
            }
        }
        p.push(("quantity".into(), request.qty.normalize().to_string()));
        p.push(("newClientOrderId".into(), request.client_order_id.clone()));
        p.push(("newOrderRespType".into(), "FULL".into()));
        let signed_at = s.rest.now_ms();
        match s.send_order(p).await {
            Ok(info) => {
                s.remember_order(&request.symbol, info.order_id, &request.client_order_id);
                let mut fills = Vec::new();
                s.response_fills(request, &info, signed_at, &mut fills);
                let mut report = report_of(&info, signed_at);
                if info.orig_qty.is_none() {
                    report.qty = request.qty;
                }
                s.note_report(&report);
                Ok(PlaceResult { report, fills })
            }
            Err(e) if e.outcome_unknown() => {
                tracing::warn!(client_order_id = %request.client_order_id, error = %e, "order outcome unknown; querying it");
                self.resolve_unknown(&request.symbol, &request.client_order_id, signed_at, &e).await
            }
            Err(e) => Err(e.to_venue()),
        }
    }

    async fn cancel_order(&self, symbol: &Symbol, client_order_id: &str) -> VenueResult<OrderReport> {
        // A cancel frees what the order locked: the account check's balances are stale.
        lock(&self.shared.checked_balances).take();
        let s = &self.shared;
        let res = match s.send_cancel(symbol, client_order_id).await {
            Ok(info) => Ok(report_of(&info, s.rest.now_ms())),
            // No order under this id: an OCO's list may be.
            Err(e) if e.code() == Some(super::error::CANCEL_REJECTED) && oco::leg_ids(client_order_id).is_ok() => {
                match s.cancel_oco(symbol, client_order_id).await {
                    Ok(Some(r)) => Ok(r),
                    Ok(None) => Err(e.to_venue()),
                    Err(list_err) => Err(list_err),
                }
            }
            Err(e) if e.outcome_unknown() => match s.rest.query_order(symbol.as_str(), client_order_id).await {
                Ok(info) if info.status.as_deref() == Some("CANCELED") => Ok(report_of(&info, s.rest.now_ms())),
                _ => Err(e.to_venue()),
            },
            Err(e) => Err(e.to_venue()),
        };
        if let Ok(r) = &res {
            s.note_report(r);
        }
        res
    }

    async fn query_order(&self, symbol: &Symbol, client_order_id: &str) -> VenueResult<Option<OrderReport>> {
        match self.shared.rest.query_order(symbol.as_str(), client_order_id).await {
            Ok(info) => {
                self.shared.remember_order(symbol, info.order_id, client_order_id);
                let report = report_of(&info, self.shared.rest.now_ms());
                self.shared.note_report(&report);
                Ok(Some(report))
            }
            // No order under this id: an OCO's list may be.
            Err(e) if e.code() == Some(NO_SUCH_ORDER) => match oco::leg_ids(client_order_id) {
                Ok(_) => self.shared.query_oco(symbol, client_order_id).await,
                Err(_) => Ok(None),
            },
            Err(e) => Err(e.to_venue()),
        }
    }

    async fn open_orders(&self, symbol: Option<&Symbol>) -> VenueResult<Vec<OrderReport>> {
        let list = self.shared.rest.open_orders(symbol.map(Symbol::as_str)).await?;
        let now = self.shared.rest.now_ms();
        for o in list.iter().filter(|o| o.order_list_id < 0) {
            self.shared.remember_order(&Symbol::new(&o.symbol), o.order_id, &o.client_order_id);
        }
        // An OCO's legs are reported once, as their list.
        let reports: Vec<OrderReport> = self.shared.merge_lists(&list, now).into_iter().map(|(_, r)| r).collect();
        self.shared.note_open_orders(symbol, &reports);
        Ok(reports)
    }

    async fn balances(&self) -> VenueResult<Vec<Balance>> {
        if let Some((at, list)) = lock(&self.shared.checked_balances).take() {
            if at.elapsed() < ACCOUNT_REUSE {
                return Ok(list);
            }
        }
        let acc = self.shared.rest.account().await?;
        Ok(acc.balances.into_iter().map(|b| Balance { asset: b.asset, free: b.free, locked: b.locked }).collect())
    }

    async fn my_trades(&self, symbol: &Symbol, since: Option<&FillCursor>) -> VenueResult<Vec<Fill>> {
        // Binance lists own trades by numeric id: resume at the cursor's.
        let from_trade_id = since.and_then(|c| c.trade_id.as_u64());
        self.shared.add_symbol(symbol);
        let fills = self.shared.trades_since(symbol, from_trade_id).await?;
        // The caller records what it is given (start-up reconciliation), so
        // these trades are the symbol's watermark: the first order needs no
        // `myTrades` of its own.
        let newest = fills.iter().filter_map(|f| f.trade_id.as_u64()).max();
        self.shared.seed_last_trade(symbol, newest.or(from_trade_id.map(|f| f.saturating_sub(1))).unwrap_or(0));
        Ok(fills)
    }

    async fn subscribe_market(&self, symbols: &[Symbol], interval_ms: i64) -> VenueResult<mpsc::Receiver<MarketFeed>> {
        let name = interval_name(interval_ms).ok_or_else(|| VenueError::Rejected {
            code: -1120,
            reason: format!("no Binance interval of {interval_ms} ms"),
        })?;
        if symbols.is_empty() {
            return Err(VenueError::Rejected { code: -1102, reason: "no symbols to subscribe to".into() });
        }
        for sym in symbols {
            self.shared.add_symbol(sym);
        }
        self.shared.prime_watermarks(symbols);
        let (tx, rx) = mpsc::channel(4096);
        let task =
            tokio::spawn(super::stream::run_market(self.shared.clone(), symbols.to_vec(), interval_ms, name, tx));
        lock(&self.tasks).push(task);
        Ok(rx)
    }

    /// Returns once the subscription is live, so a reconciliation the caller
    /// runs next misses nothing; a first subscription that fails is an error
    /// (nothing keeps running).
    /// `exchangeInfo` (status, spot permission, quote asset; it refreshes the
    /// instruments too) and ONE all-symbol `ticker/24hr?type=MINI` (weight 80,
    /// paced by the client's used-weight gate like every request).
    async fn universe_candidates(&self) -> VenueResult<Vec<Candidate>> {
        let info = self.shared.rest.exchange_info().await?;
        self.shared.store_instruments(&info);
        let tickers: Vec<Ticker24hr> =
            self.shared.rest.public("/api/v3/ticker/24hr", vec![("type".into(), "MINI".into())]).await?;
        Ok(candidates_of(&info, &tickers))
    }

    async fn subscribe_user(&self) -> VenueResult<mpsc::Receiver<UserEvent>> {
        let (tx, rx) = mpsc::channel(4096);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(super::user::run_user(self.shared.clone(), tx, Some(ready_tx)));
        match ready_rx.await {
            Ok(Ok(())) => {
                lock(&self.tasks).push(task);
                Ok(rx)
            }
            Ok(Err(reason)) => Err(VenueError::NotSent(format!("user-data subscription: {reason}"))),
            Err(_) => Err(VenueError::NotSent("user-data subscription ended before it started".into())),
        }
    }
}

/// A signed request through the venue's client (for tools and tests).
pub async fn signed_get<T: serde::de::DeserializeOwned>(
    venue: &BinanceVenue,
    path: &str,
    params: Vec<(String, String)>,
) -> Result<T, BinanceError> {
    venue.shared.rest.signed(Method::GET, path, params, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_never_guesses_a_status() {
        let cases = [
            (r#""status":"NEW","#, OrderStatus::Accepted),
            (r#""status":"PARTIALLY_FILLED","#, OrderStatus::PartiallyFilled),
            (r#""status":"SOMETHING_NEW","#, OrderStatus::Unknown),
            ("", OrderStatus::Unknown),
        ];
        for (status, want) in cases {
            let json = format!(
                r#"{{"symbol":"BTCUSDT","orderId":7,"orderListId":-1,"clientOrderId":"k-1",{status}"side":"SELL"}}"#
            );
            let info: OrderInfo = serde_json::from_str(&json).unwrap();
            let report = report_of(&info, 1);
            assert_eq!((report.status, report.side), (want, Side::Sell), "{json}");
        }
    }

    #[test]
    fn candidates_join_exchange_info_and_mini_tickers() {
        let info: ExchangeInfo = serde_json::from_str(
            r#"{"timezone":"UTC","serverTime":1,"rateLimits":[],"exchangeFilters":[],"symbols":[
              {"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","isSpotTradingAllowed":true,"filters":[]},
              {"symbol":"OLDUSDT","status":"BREAK","baseAsset":"OLD","quoteAsset":"USDT","isSpotTradingAllowed":false,"filters":[]},
              {"symbol":"NEWBTC","status":"TRADING","baseAsset":"NEW","quoteAsset":"BTC","filters":[]}]}"#,
        )
        .unwrap();
        let tickers: Vec<Ticker24hr> = serde_json::from_str(
            r#"[{"symbol":"BTCUSDT","openPrice":"100.0","highPrice":"120","lowPrice":"90","lastPrice":"110.0",
                 "volume":"3","quoteVolume":"330.5","openTime":1,"closeTime":2,"firstId":1,"lastId":3,"count":3},
                {"symbol":"OLDUSDT","openPrice":"1","highPrice":"1","lowPrice":"1","lastPrice":"1",
                 "volume":"0","quoteVolume":"0","openTime":1,"closeTime":2,"firstId":-1,"lastId":-1,"count":0}]"#,
        )
        .unwrap();
        let c = candidates_of(&info, &tickers);
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].symbol.as_str(), c[0].quote_volume, c[0].change_pct()),
            ("BTCUSDT", d("330.5"), Some(d("10")))
        );
        assert!(c[0].status.is_trading() && c[0].spot_allowed);
        assert!(!c[1].status.is_trading() && !c[1].spot_allowed);
        assert_eq!((c[2].quote_asset.as_str(), c[2].quote_volume, c[2].change_pct()), ("BTC", Decimal::ZERO, None));
    }
}
