//! The sandbox's exchange state: the shared matching core, the simulated price
//! paths, bar history, accounts by API key, and the events it broadcasts to
//! stream and WebSocket API connections.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use keel_core::balance::Balance;
use keel_core::config::SymbolConfig;
use keel_core::instrument::{floor_to_step, FilterViolation, Instrument};
use keel_core::market::{Bar, BookTicker};
use keel_core::order::{OrderStatus, OrderType, TimeInForce};
use keel_core::sim::{
    BarBuilder, Execution, FeeSchedule, ListResult, MatchError, MatchingCore, NewOrder, NewOrderList, PriceGen,
    SimOrder, OCO_BAD_PRICES, OCO_SIBLING_EXECUTED,
};
use keel_core::symbol::Symbol;

use super::depth::DepthBook;
use super::saved::{SavedExchange, SavedSymbol, Saver};
use super::tape::{BarStats, PublicTrade, Tape};
use super::SandboxConfig;

/// One simulated minute.
pub const BAR_MS: i64 = 60_000;

/// A state with no order activity is still saved this often (server ms), so
/// prices, bars and the clock continue after a restart.
const SAVE_EVERY_MS: i64 = 1_000;

/// At most this much simulated time is run to catch up (a restart after a
/// long downtime, a server clock jumping ahead): beyond it the market skips
/// ahead without ticks, so catching up never holds the exchange for long.
const MAX_CATCH_UP_MS: i64 = 86_400_000;

/// Final orders and fills kept per account by a sandbox that saves its
/// state (older ones are forgotten, as Binance archives them).
const KEEP_FINAL_HISTORY: usize = 2_000;

/// Closed bars kept in memory (and at most this many are saved).
const HISTORY_KEEP: usize = 5_000;

/// How simulated market time follows the server clock: `speed` simulated ms
/// per server ms from a base point. At speed 1 the two are the same clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    speed: f64,
    base_sim: i64,
    base_server: i64,
}

impl SimClock {
    /// A clock at `speed` on which `base_sim` is simulated time at server time `base_server`.
    pub fn new(speed: f64, base_sim: i64, base_server: i64) -> Self {
        Self { speed, base_sim, base_server }
    }

    /// The simulated time the market should have reached at server time `server_ms`.
    pub fn target(&self, server_ms: i64) -> i64 {
        let elapsed = (server_ms - self.base_server) as f64 * self.speed;
        self.base_sim.saturating_add(elapsed as i64)
    }

    /// The server time at which the market reaches simulated time `sim_ms`.
    pub fn server_at(&self, sim_ms: i64) -> i64 {
        let elapsed = (sim_ms - self.base_sim) as f64 / self.speed;
        self.base_server.saturating_add(elapsed.ceil() as i64)
    }
}

/// A market-data message for stream connections.
#[derive(Debug, Clone)]
pub struct MarketMsg {
    /// Lower-case symbol.
    pub symbol_lower: String,
    /// What happened.
    pub kind: MarketKind,
}

/// The kinds of market-data messages.
#[derive(Debug, Clone)]
pub enum MarketKind {
    /// A 1-minute bar update (`closed` at the end of the minute).
    Bar {
        /// The bar.
        bar: Bar,
        /// Whether it is final.
        closed: bool,
        /// Its trades so far.
        stats: BarStats,
    },
    /// A public trade (raw `trade` event JSON and `aggTrade` JSON).
    Trade {
        /// `trade` payload.
        trade: Value,
        /// `aggTrade` payload.
        agg: Value,
    },
    /// A `bookTicker` payload.
    Book(Value),
    /// A `depthUpdate` event for `@depth@100ms` (`fast`) or `@depth`.
    DepthDiff {
        /// 100 ms stream.
        fast: bool,
        /// The event.
        event: Value,
    },
    /// The top of the book for `@depth<N>[@100ms]`.
    PartialDepth {
        /// 100 ms stream.
        fast: bool,
        /// `lastUpdateId`.
        last_update_id: u64,
        /// Best bids (up to [`super::depth::PARTIAL_MAX`]).
        bids: Vec<(Decimal, Decimal)>,
        /// Best asks.
        asks: Vec<(Decimal, Decimal)>,
    },
    /// A payload for the streams named `<symbol>@<suffix>` (tickers, average price).
    Stream {
        /// The stream name after the `@`.
        suffix: &'static str,
        /// The payload.
        event: Value,
    },
}

/// A user-data event for one account.
#[derive(Debug, Clone)]
pub struct UserMsg {
    /// Account id.
    pub account: u32,
    /// The event object (without the subscription envelope).
    pub event: Value,
}

/// One bar of a replayed kline CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRow {
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
}

/// Reads a Binance kline CSV (`open_time,open,high,low,close,volume,…`, with or
/// without a header line).
pub fn parse_kline_csv(text: &str) -> Result<Vec<ReplayRow>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let dec = |i: usize| -> Result<Decimal, String> {
            let c = cols.get(i).ok_or_else(|| format!("line {}: missing column {}", n + 1, i + 1))?;
            c.parse::<Decimal>().map_err(|e| format!("line {}: column {} {c:?}: {e}", n + 1, i + 1))
        };
        if n == 0 && cols.first().is_some_and(|c| c.parse::<i64>().is_err()) {
            continue; // header
        }
        let row = ReplayRow { open: dec(1)?, high: dec(2)?, low: dec(3)?, close: dec(4)?, volume: dec(5)? };
        if row.low > row.high || row.open <= Decimal::ZERO || row.low <= Decimal::ZERO {
            return Err(format!("line {}: inconsistent bar {row:?}", n + 1));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err("no klines".into());
    }
    Ok(rows)
}

/// A replayed price path: each bar's ticks run open → low → high → close
/// (open → high → low → close for a falling bar); the file wraps around.
struct Replay {
    rows: Vec<ReplayRow>,
    bar: usize,
}

impl Replay {
    fn price(&self, i: u32, n: u32, tick: Decimal) -> (Decimal, Decimal) {
        let Some(r) = self.rows.get(self.bar % self.rows.len().max(1)) else { return (Decimal::ONE, Decimal::ZERO) };
        let way = if r.close >= r.open { [r.open, r.low, r.high, r.close] } else { [r.open, r.high, r.low, r.close] };
        let n = n.max(2);
        // Position along the three legs, in thirds of the bar.
        let pos = Decimal::from(i.min(n - 1)) * Decimal::from(3) / Decimal::from(n - 1);
        let leg = pos.floor().to_usize().unwrap_or(0).min(2);
        let frac = pos - Decimal::from(leg as u64);
        let p = way[leg] + (way[leg + 1] - way[leg]) * frac;
        (floor_to_step(p, tick).max(tick), r.volume / Decimal::from(n))
    }
}

struct SymState {
    gen: PriceGen,
    replay: Option<Replay>,
    cfg: SymbolConfig,
    builder: BarBuilder,
    history: Vec<Bar>,
    tape: Tape,
    depth: DepthBook,
    /// A synthetic pair's drifting volume ([`super::synthetic`]).
    volume_wave: Option<super::synthetic::VolumeWave>,
    /// Multiplies the traded volume (tests steer a universe's ranking; 1 as configured).
    volume_scale: f64,
}

/// What the market-data views read of one symbol.
pub(crate) struct MarketView<'a> {
    /// Closed 1m bars, oldest first.
    pub history: &'a [Bar],
    /// The bar in progress.
    pub current: Option<&'a Bar>,
    /// The trade tape and bar statistics.
    pub tape: &'a Tape,
    /// The book.
    pub depth: &'a DepthBook,
}

/// An API key of the sandbox: the account it belongs to and how it signs.
#[derive(Debug, Clone)]
pub struct AccountKey {
    /// Core account id.
    pub id: u32,
    /// HMAC secret or Ed25519 public key.
    pub auth: crate::auth::KeyAuth,
    /// May trade.
    pub can_trade: bool,
}

/// Why an order request failed, as a Binance code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Binance code.
    pub code: i64,
    /// Message.
    pub msg: String,
}

impl Reject {
    /// A reject.
    pub fn new(code: i64, msg: impl Into<String>) -> Self {
        Self { code, msg: msg.into() }
    }
}

/// Mutable exchange state behind one lock.
pub struct ExchangeState {
    core: MatchingCore,
    syms: BTreeMap<Symbol, SymState>,
    /// Simulated market time of the last tick (bars are stamped with it).
    pub sim_ms: i64,
    ticks_per_bar: u32,
    tick_in_bar: u32,
    next_auto_id: u64,
    clock: SimClock,
    saver: Option<Saver>,
    /// Where trades printed outside a tick (an order's immediate fills) go.
    market_tx: Option<broadcast::Sender<Arc<MarketMsg>>>,
    /// Orders whose cancel was accepted but not yet done: a protocol whose
    /// cancels are asynchronous (Coinbase's `CANCEL_QUEUED`) queues them,
    /// and they are applied by [`Exchange::apply_queued_cancels`] (fills
    /// may still arrive meanwhile, as at the venue).
    queued_cancels: std::collections::BTreeSet<u64>,
}

/// The shared exchange.
pub struct Exchange {
    /// State.
    pub state: std::sync::Mutex<ExchangeState>,
    /// Accounts by API key.
    pub keys: HashMap<String, AccountKey>,
    /// Market broadcast.
    pub market_tx: broadcast::Sender<Arc<MarketMsg>>,
    /// User-data broadcast.
    pub user_tx: broadcast::Sender<Arc<UserMsg>>,
    /// Fee schedule.
    pub fees: FeeSchedule,
}

/// Sends a printed trade on `@trade` and `@aggTrade`.
fn send_trade(tx: &broadcast::Sender<Arc<MarketMsg>>, lower: &str, symbol: &str, t: &PublicTrade, event_ms: i64) {
    let kind = MarketKind::Trade { trade: t.trade_event(symbol, event_ms), agg: t.agg_event(symbol, event_ms) };
    let _ = tx.send(Arc::new(MarketMsg { symbol_lower: lower.to_string(), kind }));
}

/// Binance spelling of a status.
pub fn status_str(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::New | OrderStatus::Submitted | OrderStatus::Accepted | OrderStatus::Unknown => "NEW",
        OrderStatus::PartiallyFilled => "PARTIALLY_FILLED",
        OrderStatus::Filled => "FILLED",
        OrderStatus::Canceled => "CANCELED",
        OrderStatus::Rejected => "REJECTED",
        OrderStatus::Expired => "EXPIRED",
    }
}

fn type_str(o: &SimOrder) -> &'static str {
    match o.order_type {
        OrderType::Market => "MARKET",
        OrderType::Limit { .. } if o.asked.post_only => "LIMIT_MAKER",
        OrderType::Limit { .. } => "LIMIT",
        // Which side of the market the stop lay on says which it is.
        OrderType::StopLimit { .. } if o.trigger_above == (o.side == keel_core::order::Side::Buy) => "STOP_LOSS_LIMIT",
        OrderType::StopLimit { .. } => "TAKE_PROFIT_LIMIT",
        OrderType::StopMarket { .. } if o.trigger_above == (o.side == keel_core::order::Side::Buy) => "STOP_LOSS",
        OrderType::StopMarket { .. } => "TAKE_PROFIT",
        // The matching core refuses lists before they become orders.
        OrderType::Oco { .. } => "OCO",
    }
}

fn tif_str(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Gtc => "GTC",
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
    }
}

/// Formats a decimal with 8 decimals, as Binance does.
pub fn d8(v: Decimal) -> String {
    let mut v = v;
    v.rescale(8);
    v.to_string()
}

/// The query/openOrders JSON of an order.
pub fn order_json(o: &SimOrder) -> Value {
    let price = o.order_type.limit_price().unwrap_or_default();
    let stop = o.order_type.stop_price().unwrap_or_default();
    json!({
        "symbol": o.symbol.as_str(),
        "orderId": o.order_id,
        "orderListId": list_id_json(o),
        "clientOrderId": o.client_order_id,
        "price": d8(price),
        "origQty": d8(o.qty),
        "executedQty": d8(o.filled_qty),
        "cummulativeQuoteQty": d8(o.filled_quote),
        "status": status_str(o.status),
        "timeInForce": tif_str(o.tif),
        "type": type_str(o),
        "side": o.side.as_str(),
        "stopPrice": d8(stop),
        "icebergQty": d8(Decimal::ZERO),
        "time": o.created_ms,
        "updateTime": o.updated_ms,
        "isWorking": o.status.is_open() && (o.triggered || o.order_type.stop_price().is_none()),
        "workingTime": o.created_ms,
        "origQuoteOrderQty": d8(o.asked.quote_order_qty.unwrap_or_default()),
        "selfTradePreventionMode": "NONE",
    })
}

/// The POST /order response of the given type (ACK, RESULT or FULL).
pub fn order_response(o: &SimOrder, execs: &[Execution], resp_type: &str, transact_ms: i64) -> Value {
    let mut v = json!({
        "symbol": o.symbol.as_str(),
        "orderId": o.order_id,
        "orderListId": list_id_json(o),
        "clientOrderId": o.client_order_id,
        "transactTime": transact_ms,
    });
    if resp_type == "ACK" {
        return v;
    }
    if let (Value::Object(m), Value::Object(full)) = (&mut v, order_json(o)) {
        for k in [
            "price",
            "origQty",
            "executedQty",
            "origQuoteOrderQty",
            "cummulativeQuoteQty",
            "status",
            "timeInForce",
            "type",
            "side",
            "workingTime",
            "selfTradePreventionMode",
        ] {
            if let Some(x) = full.get(k) {
                m.insert(k.to_string(), x.clone());
            }
        }
        if resp_type == "FULL" {
            let fills: Vec<Value> = execs
                .iter()
                .filter_map(|e| e.fill.as_ref())
                .map(|f| {
                    json!({
                        "price": d8(f.price),
                        "qty": d8(f.qty),
                        "commission": d8(f.fee),
                        "commissionAsset": f.fee_asset,
                        "tradeId": f.trade_id,
                    })
                })
                .collect();
            m.insert("fills".into(), Value::Array(fills));
        }
    }
    v
}

/// An `executionReport` for an execution.
pub fn execution_report(e: &Execution, event_ms: i64, exec_type_override: Option<&str>) -> Value {
    let o = &e.order;
    let exec_type = exec_type_override.unwrap_or(match (&e.fill, o.status) {
        (Some(_), _) => "TRADE",
        (None, OrderStatus::Canceled) => "CANCELED",
        (None, OrderStatus::Expired) => "EXPIRED",
        (None, OrderStatus::Rejected) => "REJECTED",
        (None, _) => "NEW",
    });
    let (l, lp, n, na, t, m) = match &e.fill {
        Some(f) => (
            f.qty,
            f.price,
            f.fee,
            Value::String(f.fee_asset.clone()),
            f.trade_id.as_u64().map_or(-1, |t| t as i64),
            f.is_maker,
        ),
        None => (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Value::Null, -1, false),
    };
    let stop = o.order_type.stop_price().unwrap_or_default();
    let mut report = json!({
        "e": "executionReport",
        "E": event_ms,
        "s": o.symbol.as_str(),
        "c": o.client_order_id,
        "S": o.side.as_str(),
        "o": type_str(o),
        "f": tif_str(o.tif),
        "q": d8(o.qty),
        "p": d8(o.order_type.limit_price().unwrap_or_default()),
        "P": d8(stop),
        "F": d8(Decimal::ZERO),
        "g": list_id_json(o),
        "C": "",
        "x": exec_type,
        "X": status_str(o.status),
        "r": "NONE",
        "i": o.order_id,
        "l": d8(l),
        "z": d8(o.filled_qty),
        "L": d8(lp),
        "n": d8(n),
        "N": na,
        "T": o.updated_ms,
        "t": t,
        "I": o.updated_ms,
        "w": o.status.is_open() && (o.triggered || o.order_type.stop_price().is_none()),
        "m": m,
        "M": false,
        "O": o.created_ms,
        "Z": d8(o.filled_quote),
        "Y": d8(l * lp),
        "Q": d8(Decimal::ZERO),
        "W": o.created_ms,
        "V": "NONE",
    });
    // A leg expired because its sibling executed: Binance's expiry reason.
    if o.reason.as_deref() == Some(OCO_SIBLING_EXECUTED) {
        if let Value::Object(m) = &mut report {
            m.insert("eR".into(), Value::String("OCO_TRIGGER".into()));
        }
    }
    report
}

/// An order's `orderListId`: its list's id, or -1.
pub fn list_id_json(o: &SimOrder) -> i64 {
    o.list_id.and_then(|l| i64::try_from(l).ok()).unwrap_or(-1)
}

/// The kline object `k` of a stream event.
pub fn kline_obj(bar: &Bar, interval: &str, closed: bool, stats: &BarStats) -> Value {
    let (first, last) = stats.first_last();
    json!({
        "t": bar.open_time,
        "T": bar.close_time,
        "s": bar.symbol.as_str(),
        "i": interval,
        "f": first,
        "L": last,
        "o": d8(bar.open),
        "c": d8(bar.close),
        "h": d8(bar.high),
        "l": d8(bar.low),
        "v": d8(bar.volume),
        "n": stats.count,
        "x": closed,
        "q": d8(stats.quote_volume),
        "V": d8(stats.taker_buy_base),
        "Q": d8(stats.taker_buy_quote),
        "B": "0",
    })
}

/// Maps a core refusal to Binance's code and message.
pub fn reject_of(e: &MatchError) -> Reject {
    match e {
        MatchError::UnknownSymbol(_) => Reject::new(-1121, "Invalid symbol."),
        MatchError::UnknownAccount(_) => Reject::new(-2015, "Invalid API-key, IP, or permissions for action."),
        MatchError::Filter(v) => {
            let name = match v {
                FilterViolation::QtyRoundsToZero { .. }
                | FilterViolation::QtyBelowMin { .. }
                | FilterViolation::QtyAboveMax { .. } => "LOT_SIZE",
                FilterViolation::PriceNotPositive { .. } | FilterViolation::PriceOutOfRange { .. } => "PRICE_FILTER",
                FilterViolation::NotionalBelowMin { .. } | FilterViolation::NotionalAboveMax { .. } => "NOTIONAL",
                FilterViolation::NotTrading(_) => return Reject::new(-2010, "Market is closed."),
            };
            Reject::new(-1013, format!("Filter failure: {name}"))
        }
        MatchError::InsufficientBalance { .. } => {
            Reject::new(-2010, "Account has insufficient balance for requested action.")
        }
        MatchError::DuplicateClientOrderId(_) => Reject::new(-2010, "Duplicate order sent."),
        MatchError::UnknownOrder => Reject::new(-2011, "Unknown order sent."),
        MatchError::AlreadyFinal(_) => Reject::new(-2011, "Unknown order sent."),
        MatchError::NoMarket(_) => Reject::new(-2010, "Market is closed."),
        MatchError::Unsupported(what) if *what == OCO_BAD_PRICES => {
            Reject::new(-2010, "The relationship of the prices for the orders is not correct.")
        }
        MatchError::Unsupported(_) => Reject::new(-1013, "Unsupported order combination"),
    }
}

impl Exchange {
    /// Builds the exchange from config: with `history_bars` of pre-generated
    /// history, or — given a `state_dir` holding a saved state — continuing
    /// that state, after simulating the time it was down. An unreadable state
    /// file is an error (starting fresh would forget what clients placed).
    pub fn new(cfg: &SandboxConfig, now_ms: i64, mut replays: HashMap<String, Vec<ReplayRow>>) -> Result<Self, String> {
        let fees = FeeSchedule::new(cfg.maker_fee_bps, cfg.taker_fee_bps, cfg.commission_asset);
        // Ids from the wall clock grow across restarts (a restarted sandbox
        // must not reuse trade ids a client has stored); ms × 1000 stays below
        // 2^53, so JSON clients that read numbers as doubles keep them exact.
        let id_base = if cfg.id_base > 0 { cfg.id_base } else { (now_ms.max(1) as u64).saturating_mul(1000) };
        let mut core = MatchingCore::new(fees, cfg.depth_levels).with_id_base(id_base);
        let mut keys = HashMap::new();
        let mut accounts = Vec::new();
        for (i, acc) in cfg.accounts.iter().enumerate() {
            let id = i as u32 + 1;
            let balances: Vec<Balance> = acc
                .balances
                .iter()
                .map(|(asset, amount)| Balance { asset: asset.clone(), free: *amount, locked: Decimal::ZERO })
                .collect();
            core.add_account(id, balances.clone());
            accounts.push((id, balances));
            let hmac = crate::auth::KeyAuth::Hmac(acc.api_secret.clone());
            keys.insert(acc.api_key.clone(), AccountKey { id, auth: hmac, can_trade: acc.can_trade });
            if let Some(pem) = &acc.ed25519_public_key {
                let key = crate::auth::ed25519_public_key(pem)
                    .map_err(|e| format!("sandbox.accounts[{i}].ed25519_public_key: {e}"))?;
                let auth = crate::auth::KeyAuth::Ed25519(key);
                keys.insert(acc.ed25519_key_id(), AccountKey { id, auth, can_trade: acc.can_trade });
            }
        }
        let history_bars = i64::from(cfg.history_bars);
        let ticks = cfg.ticks_per_bar.max(1);
        let dt = BAR_MS / i64::from(ticks);
        let minute = now_ms - now_ms.rem_euclid(BAR_MS);
        // Real time: history ends now. Accelerated time: it starts in the past,
        // so closed bars stay older than the server clock for a long while.
        let accelerated = cfg.speed > 1.0;
        let days_ago = if accelerated { i64::from(cfg.sim_start_days_ago) * 86_400_000 } else { 0 };
        let start = minute - history_bars * BAR_MS - days_ago;
        let mut instruments = Vec::new();
        let mut syms = BTreeMap::new();
        let waves = super::synthetic::waves(cfg.synthetic_symbols);
        for s in &cfg.symbols {
            let mut inst = s.instrument();
            inst.max_num_orders = cfg.max_num_orders;
            if let Some(status) = cfg.symbol_status.get(&s.symbol) {
                inst.status = keel_core::instrument::SymbolStatus::parse(status);
            }
            core.add_instrument(inst.clone());
            instruments.push(inst.clone());
            let gen = PriceGen::new(&s.price_path(), inst.tick_size);
            syms.insert(
                inst.symbol.clone(),
                SymState {
                    gen,
                    replay: replays.remove(&s.symbol).map(|rows| Replay { rows, bar: 0 }),
                    cfg: s.clone(),
                    builder: BarBuilder::new(inst.symbol.clone(), BAR_MS),
                    history: Vec::new(),
                    tape: Tape::default(),
                    depth: DepthBook::new(0),
                    volume_wave: waves.get(&s.symbol).map(|w| w.from_origin(start)),
                    volume_scale: 1.0,
                },
            );
        }
        let (market_tx, _) = broadcast::channel(8192);
        let (user_tx, _) = broadcast::channel(8192);
        let saver = cfg.state_dir.as_deref().map(Saver::open).transpose()?;
        let saved = saver.as_ref().map(Saver::load).transpose()?.flatten();
        let mut state = ExchangeState {
            core,
            syms,
            sim_ms: start,
            ticks_per_bar: ticks,
            tick_in_bar: 0,
            next_auto_id: 1,
            clock: SimClock::new(cfg.speed, start, now_ms),
            saver,
            market_tx: None,
            queued_cancels: std::collections::BTreeSet::new(),
        };
        match saved {
            Some(saved) => {
                let target = if accelerated {
                    SimClock::new(cfg.speed, saved.sim_ms, saved.saved_at_ms).target(now_ms)
                } else {
                    now_ms
                };
                state.restore(saved, &instruments, &accounts);
                let (was, open) = (state.sim_ms, state.core.open_order_count());
                state.clock = SimClock::new(cfg.speed, target, now_ms);
                // The time it was down: resting orders fill against those bars.
                state.catch_up(now_ms, None, None);
                tracing::info!(
                    open_orders = open,
                    downtime_minutes = (state.sim_ms - was) / BAR_MS,
                    "sandbox state restored; the time it was down has been simulated"
                );
            }
            None => {
                // Pre-generate history so strategies can warm up from REST klines;
                // its trades are stamped with the server times the clock
                // continuing from now gives them.
                let pregen = if accelerated { start + history_bars * BAR_MS } else { now_ms - now_ms.rem_euclid(dt) };
                let end = start + (pregen - start).max(0) / dt * dt;
                // In real time the market's clock is the server clock itself
                // (the tick on the minute runs on the minute); accelerated, it
                // continues from the history's end now.
                let clock = if accelerated {
                    SimClock::new(cfg.speed, end, now_ms)
                } else {
                    SimClock::new(cfg.speed, end, end)
                };
                while state.sim_ms + dt <= pregen {
                    state.advance(clock.server_at(state.sim_ms + dt).min(now_ms), None);
                }
                state.clock = clock;
            }
        }
        state.save(now_ms);
        // Diffs start from the book as the server opens: the changes made
        // while generating history (or catching up) are in the snapshot a
        // client fetches, not in a first diff of thousands of levels.
        for s in state.syms.values_mut() {
            s.depth.forget_pending();
        }
        state.market_tx = Some(market_tx.clone());
        Ok(Self { state: std::sync::Mutex::new(state), keys, market_tx, user_tx, fees })
    }

    /// Locks the state (a poisoned lock is recovered: the state stays usable).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, ExchangeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the market up to the server time `now_ms`: every tick due runs
    /// (prices move, quotes update, resting orders fill) and its events go out.
    pub fn tick(&self, now_ms: i64) {
        let mut st = self.lock();
        st.catch_up(now_ms, Some(&self.market_tx), Some(&self.user_tx));
    }

    /// Runs `n` ticks now, due or not, and continues the clock from there
    /// (tests steer the market with it, also while it is paused).
    pub fn step(&self, n: u32, now_ms: i64) {
        let mut st = self.lock();
        for _ in 0..n {
            st.tick_once(now_ms, Some(&self.market_tx), Some(&self.user_tx));
        }
        st.rebase(now_ms);
        drop(st);
        // A test stepping a paused market also moves queued cancels on.
        self.apply_queued_cancels(now_ms);
    }

    /// Carries out the queued cancels of orders still open and publishes
    /// them; returns how many were cancelled.
    pub fn apply_queued_cancels(&self, now_ms: i64) -> usize {
        let mut st = self.lock();
        if st.queued_cancels.is_empty() {
            return 0;
        }
        let ids = std::mem::take(&mut st.queued_cancels);
        let mut execs = Vec::new();
        for id in ids {
            let Some(o) = st.core.order(id).filter(|o| o.status.is_open()).cloned() else { continue };
            if let Ok(done) = st.cancel(o.account, o.symbol.as_str(), &o.client_order_id, now_ms) {
                execs.push(Execution { order: done, fill: None });
            }
        }
        st.publish_executions(&self.user_tx, &execs, now_ms);
        execs.len()
    }

    /// Continues the clock from the market's time at server time `now_ms`
    /// (after a pause, the market resumes where it stopped).
    pub fn rebase(&self, now_ms: i64) {
        self.lock().rebase(now_ms);
    }

    /// Server ms until the next tick is due (at least 1).
    pub fn next_tick_in(&self, now_ms: i64) -> u64 {
        let st = self.lock();
        let due = st.clock.server_at(st.sim_ms + st.dt());
        (due - now_ms).clamp(1, 60_000) as u64
    }

    /// Saves the state now (at shutdown), if it is kept.
    pub fn save(&self, now_ms: i64) {
        self.lock().save(now_ms);
    }
}

impl ExchangeState {
    /// The matching core.
    pub fn core(&self) -> &MatchingCore {
        &self.core
    }

    /// Listed instruments, sorted by symbol.
    pub fn instruments(&self) -> Vec<Instrument> {
        self.syms.keys().filter_map(|s| self.core.instrument(s.as_str()).cloned()).collect()
    }

    /// Forces a symbol's price (tests): the path continues from there.
    pub fn set_price(&mut self, symbol: &str, price: Decimal) -> bool {
        let Some(s) = self.syms.get_mut(symbol) else { return false };
        let mut path = s.cfg.price_path();
        path.start_price = price;
        path.seed = path.seed.wrapping_add(s.depth.last_update_id());
        let tick = s.cfg.tick_size;
        s.gen = PriceGen::new(&path, tick);
        s.gen.set_dynamics(0.0, 0.0);
        s.replay = None;
        true
    }

    /// Lists a new symbol now (a venue listing a pair while clients run):
    /// its market starts at the next tick, with no history before it and its
    /// volume multiplied by `volume_scale`. False when it is listed already.
    pub fn list_symbol(&mut self, cfg: &SymbolConfig, volume_scale: f64) -> bool {
        let symbol = Symbol::new(&cfg.symbol);
        if self.syms.contains_key(&symbol) {
            return false;
        }
        let inst = cfg.instrument();
        self.core.add_instrument(inst.clone());
        let state = SymState {
            gen: PriceGen::new(&cfg.price_path(), inst.tick_size),
            replay: None,
            cfg: cfg.clone(),
            builder: BarBuilder::new(symbol.clone(), BAR_MS),
            history: Vec::new(),
            tape: Tape::default(),
            depth: DepthBook::new(0),
            volume_wave: None,
            volume_scale: volume_scale.max(0.0),
        };
        self.syms.insert(symbol, state);
        true
    }

    /// Multiplies a simulated symbol's traded volume from now on (1 undoes
    /// it). False for an unknown symbol.
    pub fn set_volume_scale(&mut self, symbol: &str, scale: f64) -> bool {
        let Some(s) = self.syms.get_mut(symbol) else { return false };
        s.volume_scale = scale.max(0.0);
        true
    }

    /// Sets a symbol's dynamics (tests: volatility 0 freezes the price).
    pub fn set_dynamics(&mut self, symbol: &str, drift: f64, volatility: f64) -> bool {
        let Some(s) = self.syms.get_mut(symbol) else { return false };
        s.gen.set_dynamics(drift, volatility);
        true
    }

    /// How fast the market's clock runs: simulated ms per server ms (1 is
    /// real time).
    pub fn speed(&self) -> f64 {
        self.clock.speed
    }

    /// Closed 1m bars plus the bar in progress, oldest first.
    pub fn bars(&self, symbol: &str) -> Option<(Vec<Bar>, Option<Bar>)> {
        let s = self.syms.get(symbol)?;
        Some((s.history.clone(), s.builder.current().cloned()))
    }

    /// The simulated time of one tick.
    fn dt(&self) -> i64 {
        BAR_MS / i64::from(self.ticks_per_bar)
    }

    fn rebase(&mut self, now_ms: i64) {
        self.clock = SimClock::new(self.clock.speed, self.sim_ms, now_ms);
    }

    /// Continues a saved state: its core (accounts, orders, fills, ids), with
    /// the configured filters and any account the save does not know, and
    /// each saved symbol's market (configured symbols it lacks start fresh).
    fn restore(&mut self, saved: SavedExchange, instruments: &[Instrument], accounts: &[(u32, Vec<Balance>)]) {
        self.core = saved.core;
        for inst in instruments {
            self.core.list_instrument(inst.clone());
        }
        for (id, balances) in accounts {
            if !self.core.has_account(*id) {
                self.core.add_account(*id, balances.clone());
            }
        }
        for (sym, s) in self.syms.iter_mut() {
            let Some(mut kept) = saved.symbols.get(sym.as_str()).cloned() else { continue };
            s.gen = PriceGen::resume(&kept.gen, s.cfg.tick_size);
            if let (Some(r), Some(bar)) = (&mut s.replay, kept.replay_bar) {
                r.bar = bar;
            }
            kept.history.truncate(HISTORY_KEEP);
            s.builder = kept.builder;
            s.history = kept.history;
            s.tape = Tape::restore(kept.tape);
            s.depth = DepthBook::new(kept.book_update);
        }
        self.sim_ms = saved.sim_ms;
        self.tick_in_bar = saved.tick_in_bar;
        self.next_auto_id = saved.next_auto_id;
    }

    /// Saves the state if it is kept.
    fn save(&mut self, now_ms: i64) {
        let Some(mut saver) = self.saver.take() else { return };
        // What is saved at each change stays bounded however long it runs.
        self.core.forget_history(KEEP_FINAL_HISTORY);
        let symbols = self
            .syms
            .iter()
            .map(|(sym, s)| {
                let from = s.history.len().saturating_sub(HISTORY_KEEP);
                let kept = SavedSymbol {
                    gen: s.gen.state(),
                    replay_bar: s.replay.as_ref().map(|r| r.bar),
                    builder: s.builder.clone(),
                    history: s.history[from..].to_vec(),
                    trades_in_bar: s.tape.current_stats().count,
                    next_public_trade: 0,
                    book_update: s.depth.last_update_id(),
                    tape: s.tape.saved(),
                };
                (sym.to_string(), kept)
            })
            .collect();
        let state =
            SavedExchange::new(now_ms, self.sim_ms, self.tick_in_bar, self.next_auto_id, self.core.clone(), symbols);
        saver.save(&state);
        self.saver = Some(saver);
    }

    /// Runs every tick due by server time `now_ms`. Executions are saved
    /// before their reports go out, so a client never learns of a fill the
    /// venue could forget. Further behind than a day, the market skips ahead.
    fn catch_up(
        &mut self,
        now_ms: i64,
        market: Option<&broadcast::Sender<Arc<MarketMsg>>>,
        user: Option<&broadcast::Sender<Arc<UserMsg>>>,
    ) {
        let dt = self.dt();
        let target = self.clock.target(now_ms);
        if target - self.sim_ms > MAX_CATCH_UP_MS {
            let skip_to = target - MAX_CATCH_UP_MS;
            let skip_to = skip_to - skip_to.rem_euclid(BAR_MS);
            tracing::info!(
                minutes = (skip_to - self.sim_ms) / BAR_MS,
                "sandbox market skips ahead (more than a day behind)"
            );
            for s in self.syms.values_mut() {
                if let Some(bar) = s.tape.close_minute(&mut s.builder) {
                    s.history.push(bar);
                }
            }
            self.sim_ms = skip_to;
            self.tick_in_bar = 0;
        }
        while self.sim_ms + dt <= target {
            let event_ms = self.clock.server_at(self.sim_ms + dt).min(now_ms);
            self.tick_once(event_ms, market, user);
        }
        if self.saver.as_ref().is_some_and(|s| now_ms - s.last_ms >= SAVE_EVERY_MS) {
            self.save(now_ms);
        }
    }

    /// One tick, stamped `event_ms`: executions are saved, then reported.
    fn tick_once(
        &mut self,
        event_ms: i64,
        market: Option<&broadcast::Sender<Arc<MarketMsg>>>,
        user: Option<&broadcast::Sender<Arc<UserMsg>>>,
    ) {
        let execs = self.advance(event_ms, market);
        if !execs.is_empty() {
            self.save(event_ms);
            if let Some(utx) = user {
                self.publish_executions(utx, &execs, event_ms);
            }
        }
    }

    /// A fresh order id for requests without `newClientOrderId`.
    pub fn auto_client_id(&mut self) -> String {
        self.next_auto_id += 1;
        format!("sandbox-{}-{}", self.sim_ms, self.next_auto_id)
    }

    fn quote_of(s: &SymState, price: Decimal, now_ms: i64) -> BookTicker {
        let tick = s.cfg.tick_size;
        let half = floor_to_step(price * s.cfg.spread_bps / Decimal::new(20_000, 0), tick).max(tick);
        BookTicker {
            symbol: Symbol::new(&s.cfg.symbol),
            bid: (price - half).max(tick),
            bid_qty: s.cfg.touch_qty,
            ask: price + half,
            ask_qty: s.cfg.touch_qty,
            ts_ms: now_ms,
        }
    }

    /// Advances simulated time by one tick (1/ticks_per_bar of a minute):
    /// prices move, bars close on the minute, quotes update and resting
    /// orders fill. Market events go out at once, stamped `now_ms`; the
    /// executions are returned for the caller to save and report.
    fn advance(&mut self, now_ms: i64, market: Option<&broadcast::Sender<Arc<MarketMsg>>>) -> Vec<Execution> {
        let dt = self.dt();
        self.sim_ms += dt;
        self.tick_in_bar = (self.tick_in_bar + 1) % self.ticks_per_bar;
        let sim_ms = self.sim_ms;
        let mut all_execs = Vec::new();
        let symbols: Vec<Symbol> = self.syms.keys().cloned().collect();
        for sym in symbols {
            let Some(s) = self.syms.get_mut(&sym) else { continue };
            let n = self.ticks_per_bar;
            // Index of this tick within its bar (the bar's last tick has tick_in_bar 0).
            let i = (self.tick_in_bar + n - 1) % n;
            let (price, volume) = match &mut s.replay {
                Some(r) => {
                    let (p, v) = r.price(i, n, s.cfg.tick_size);
                    if i == n - 1 {
                        r.bar += 1;
                    }
                    (p, floor_to_step(v, s.cfg.step_size).max(s.cfg.step_size))
                }
                None => {
                    let p = s.gen.step(dt);
                    let wave = s.volume_wave.map_or(1.0, |w| w.factor(sim_ms)) * s.volume_scale;
                    let v = floor_to_step(
                        s.cfg.touch_qty * Decimal::new(((s.gen.unit() * wave * 100.0) as i64).max(1), 2),
                        s.cfg.step_size,
                    )
                    .max(s.cfg.step_size);
                    (p, v)
                }
            };
            let Some(trade_id) = self.core.take_trade_id(sym.as_str()) else { continue };
            let buyer_maker = self.tick_in_bar.is_multiple_of(2);
            // The tick at sim_ms covers (sim_ms - dt, sim_ms], so it belongs to
            // the bar containing sim_ms - 1; the bar's last tick lands on the
            // minute and closes it then. Its trade is stamped a millisecond
            // before the tick, so on the minute it lies inside the bar it is
            // counted in (k.T), not at the next bar's open: a client matching
            // trades to klines by time finds them where Binance puts them.
            let printed = PublicTrade { id: trade_id, price, qty: volume, time: now_ms - 1, buyer_maker };
            let (trade, closed_by_trade) = s.tape.print(&mut s.builder, sim_ms - 1, printed);
            let mut closed: Vec<Bar> = closed_by_trade.into_iter().collect();
            if sim_ms.rem_euclid(BAR_MS) == 0 {
                closed.extend(s.tape.close_minute(&mut s.builder));
            }
            let quote = Self::quote_of(s, price, now_ms);
            s.history.extend(closed.iter().cloned());
            if s.history.len() > HISTORY_KEEP {
                s.history.drain(..1000);
            }
            let lower = sym.as_str().to_lowercase();
            if let Some(tx) = market {
                for bar in closed {
                    let stats = s.tape.stats_of(bar.open_time);
                    let msg =
                        MarketMsg { symbol_lower: lower.clone(), kind: MarketKind::Bar { bar, closed: true, stats } };
                    let _ = tx.send(Arc::new(msg));
                }
                send_trade(tx, &lower, sym.as_str(), &trade, now_ms);
            }
            // Resting orders the new quote reaches fill, and print on the tape too.
            let execs = self.core.set_quote(quote);
            self.print_fills(&execs, market);
            all_execs.extend(execs);
            let Some(s) = self.syms.get_mut(&sym) else { continue };
            s.depth.refresh(&self.core, sym.as_str());
            let Some(tx) = market else { continue };
            if let Some(bar) = s.builder.current().cloned() {
                let stats = s.tape.current_stats();
                let msg =
                    MarketMsg { symbol_lower: lower.clone(), kind: MarketKind::Bar { bar, closed: false, stats } };
                let _ = tx.send(Arc::new(msg));
            }
            if let Some(book) = s.depth.book_ticker(sym.as_str()) {
                let _ = tx.send(Arc::new(MarketMsg { symbol_lower: lower, kind: MarketKind::Book(book) }));
            }
        }
        all_execs
    }

    /// Prints the accounts' fills on the public tape (the buyer is the maker
    /// when the account bought as maker or sold as taker), in their bars,
    /// and sends them on the trade streams (`market`, or the exchange's own
    /// sender for fills outside a tick).
    fn print_fills(&mut self, execs: &[Execution], market: Option<&broadcast::Sender<Arc<MarketMsg>>>) {
        let sim_ms = self.sim_ms;
        let tx = market.or(self.market_tx.as_ref()).cloned();
        for f in execs.iter().filter_map(|e| e.fill.as_ref()) {
            let Some(s) = self.syms.get_mut(&f.symbol) else { continue };
            let Some(id) = f.trade_id.as_u64() else { continue };
            let buyer_maker = (f.side == keel_core::order::Side::Buy) == f.is_maker;
            let printed = PublicTrade { id, price: f.price, qty: f.qty, time: f.ts_ms, buyer_maker };
            // A fill belongs to the bar in progress: simulated time `sim_ms`
            // starts it when the last tick closed the previous one.
            let (trade, closed) = s.tape.print(&mut s.builder, sim_ms, printed);
            let lower = f.symbol.as_str().to_lowercase();
            if let Some(bar) = closed {
                s.history.push(bar.clone());
                let stats = s.tape.stats_of(bar.open_time);
                if let Some(tx) = &tx {
                    let msg =
                        MarketMsg { symbol_lower: lower.clone(), kind: MarketKind::Bar { bar, closed: true, stats } };
                    let _ = tx.send(Arc::new(msg));
                }
            }
            if let Some(tx) = &tx {
                send_trade(tx, &lower, f.symbol.as_str(), &trade, trade.time);
            }
        }
    }

    /// The names of the listed symbols, as written and in lower case.
    pub(crate) fn symbols(&self) -> Vec<(String, String)> {
        self.syms.keys().map(|s| (s.to_string(), s.as_str().to_lowercase())).collect()
    }

    /// The core and a symbol's book, to refresh the book from the core.
    pub(crate) fn depth_parts(&mut self, symbol: &str) -> Option<(&MatchingCore, &mut DepthBook)> {
        let s = self.syms.get_mut(symbol)?;
        Some((&self.core, &mut s.depth))
    }

    /// The REST `depth` body of a symbol, refreshed from the core first.
    pub(crate) fn depth_snapshot(&mut self, symbol: &str, limit: usize) -> Option<Value> {
        let (core, book) = self.depth_parts(symbol)?;
        book.refresh(core, symbol);
        Some(book.snapshot_json(limit))
    }

    /// What the market-data views read of a symbol.
    pub(crate) fn market_view(&self, symbol: &str) -> Option<MarketView<'_>> {
        let s = self.syms.get(symbol)?;
        Some(MarketView { history: &s.history, current: s.builder.current(), tape: &s.tape, depth: &s.depth })
    }

    /// Sends execution reports and the balance changes they imply.
    pub fn publish_executions(&self, utx: &broadcast::Sender<Arc<UserMsg>>, execs: &[Execution], now_ms: i64) {
        for e in execs {
            let _ = utx.send(Arc::new(UserMsg { account: e.order.account, event: execution_report(e, now_ms, None) }));
        }
        // A list whose leg expired because its sibling executed is done.
        for e in execs.iter().filter(|e| e.order.reason.as_deref() == Some(OCO_SIBLING_EXECUTED)) {
            if let Some(list) = e.order.list_id.and_then(|id| self.core.list(id)) {
                let event = super::order_list::list_status_event(&self.core, list, now_ms);
                let _ = utx.send(Arc::new(UserMsg { account: list.account, event }));
            }
        }
        let mut touched: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for e in execs {
            if let Some(inst) = self.core.instrument(e.order.symbol.as_str()) {
                let list = touched.entry(e.order.account).or_default();
                for a in [&inst.base_asset, &inst.quote_asset] {
                    if !list.contains(a) {
                        list.push(a.clone());
                    }
                }
            }
        }
        for (account, assets) in touched {
            self.publish_balances(utx, account, &assets, now_ms);
        }
    }

    /// Sends `outboundAccountPosition` for the given assets.
    pub fn publish_balances(
        &self,
        utx: &broadcast::Sender<Arc<UserMsg>>,
        account: u32,
        assets: &[String],
        now_ms: i64,
    ) {
        let balances = self.core.balances(account).unwrap_or_default();
        let b: Vec<Value> = balances
            .iter()
            .filter(|b| assets.contains(&b.asset))
            .map(|b| json!({"a": b.asset, "f": d8(b.free), "l": d8(b.locked)}))
            .collect();
        if !b.is_empty() {
            let _ = utx.send(Arc::new(UserMsg {
                account,
                event: json!({"e":"outboundAccountPosition","E":now_ms,"u":now_ms,"B":b}),
            }));
        }
    }

    /// Places an order; returns the order and its immediate executions.
    /// Saved (when kept) before the caller answers.
    pub fn place(&mut self, new: NewOrder, now_ms: i64) -> Result<(SimOrder, Vec<Execution>), Reject> {
        let res = self.core.submit(new, now_ms).map_err(|e| reject_of(&e))?;
        self.print_fills(&res.executions, None);
        self.save(now_ms);
        Ok((res.order, res.executions))
    }

    /// Places an order list (OCO); returns it with its legs and their
    /// immediate executions. Saved (when kept) before the caller answers.
    pub fn place_list(&mut self, new: NewOrderList, now_ms: i64) -> Result<ListResult, Reject> {
        let res = self.core.submit_list(new, now_ms).map_err(|e| reject_of(&e))?;
        self.print_fills(&res.executions, None);
        self.save(now_ms);
        Ok(res)
    }

    /// Cancels an open order list (both legs); saved (when kept) before the
    /// caller answers.
    pub fn cancel_list(&mut self, account: u32, list_id: u64, now_ms: i64) -> Result<[SimOrder; 2], Reject> {
        let legs = self.core.cancel_list(account, list_id, now_ms).map_err(|e| reject_of(&e))?;
        self.save(now_ms);
        Ok(legs)
    }

    /// Cancels an order by client id; saved (when kept) before the caller answers.
    pub fn cancel(
        &mut self,
        account: u32,
        symbol: &str,
        client_order_id: &str,
        now_ms: i64,
    ) -> Result<SimOrder, Reject> {
        let o = self.core.cancel(account, symbol, client_order_id, now_ms).map_err(|e| reject_of(&e))?;
        self.save(now_ms);
        Ok(o)
    }

    /// Edits an open GTC limit order's price and size (see
    /// [`MatchingCore::amend`]); saved (when kept) before the caller answers.
    pub fn amend(
        &mut self,
        account: u32,
        order_id: u64,
        price: Decimal,
        qty: Decimal,
        now_ms: i64,
    ) -> Result<(SimOrder, Vec<Execution>), MatchError> {
        let res = self.core.amend(account, order_id, price, qty, now_ms)?;
        self.print_fills(&res.executions, None);
        self.save(now_ms);
        Ok((res.order, res.executions))
    }

    /// Queues the cancel of an open order (see `queued_cancels`); false
    /// when it was queued already.
    pub fn queue_cancel(&mut self, order_id: u64) -> bool {
        self.queued_cancels.insert(order_id)
    }

    /// Whether an order's cancel is queued and not yet done.
    pub fn cancel_queued(&self, order_id: u64) -> bool {
        self.queued_cancels.contains(&order_id)
    }

    /// Resolves an order id to its client id (account-checked).
    pub fn client_id_of(&self, account: u32, order_id: u64) -> Option<String> {
        self.core.order(order_id).filter(|o| o.account == account).map(|o| o.client_order_id.clone())
    }

    /// The current quote of a symbol.
    pub fn quote(&self, symbol: &str) -> Option<BookTicker> {
        self.core.quote(symbol).cloned()
    }

    /// Balances of an account.
    pub fn balances(&self, account: u32) -> Vec<Balance> {
        self.core.balances(account).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kline_csv_parses_and_replays_each_bar() {
        let csv = "open_time,open,high,low,close,volume\n1,100,110,90,105,10\n2,105,106,95,96,5\n";
        let rows = parse_kline_csv(csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(parse_kline_csv("1,100,90,95,99,1").is_err(), "low above high");
        assert!(parse_kline_csv("").is_err());
        let r = Replay { rows, bar: 0 };
        let tick = Decimal::new(1, 2);
        let path: Vec<Decimal> = (0..10).map(|i| r.price(i, 10, tick).0).collect();
        assert_eq!(path[0], Decimal::from(100));
        assert_eq!(*path.iter().max().unwrap(), Decimal::from(110));
        assert_eq!(*path.iter().min().unwrap(), Decimal::from(90));
        assert_eq!(path[9], Decimal::from(105));
    }
}
