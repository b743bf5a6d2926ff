//! The matching core: a synthetic top of book per symbol, accounts with
//! balances, and order matching with maker/taker fees and partial fills.
//!
//! Liquidity model: the touch (best bid/ask) carries `bid_qty`/`ask_qty`; beyond
//! it the book has `depth_levels` further levels, one tick apart, each with the
//! touch quantity. A market order walks those levels; what they cannot fill
//! expires. A resting limit order fills at its own price when the opposite touch
//! reaches it, at most the touch quantity per quote update — so large orders
//! fill partially over several updates. Fees are charged in the quote asset.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::balance::Balance;
use crate::fill::Fill;
use crate::instrument::{FilterViolation, Instrument};
use crate::market::BookTicker;
use crate::order::{OrderStatus, OrderType, Side, TimeInForce};
use crate::symbol::{StrategyId, Symbol};
use crate::venue::OrderReport;

const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

/// Commissions are rounded to this many decimals, as Binance reports them.
const FEE_DP: u32 = 8;

/// Which asset a simulated venue charges its commission in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommissionAsset {
    /// The asset the order receives, as Binance charges without BNB: a buy
    /// pays in the base asset (the account gets less than the executed
    /// quantity), a sell in the quote asset.
    #[default]
    Received,
    /// Always the quote asset, on buys and sells alike.
    Quote,
}

impl CommissionAsset {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Quote => "quote",
        }
    }
}

/// Maker and taker fees in basis points, and the asset they are charged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSchedule {
    /// Fee for resting (maker) fills.
    pub maker_bps: Decimal,
    /// Fee for aggressing (taker) fills.
    pub taker_bps: Decimal,
    /// The asset commissions are charged in.
    #[serde(default)]
    pub commission_asset: CommissionAsset,
}

impl FeeSchedule {
    /// Maker and taker rates, charged in `commission_asset`.
    pub fn new(maker_bps: Decimal, taker_bps: Decimal, commission_asset: CommissionAsset) -> Self {
        Self { maker_bps, taker_bps, commission_asset }
    }

    /// Whether a fill on `side` pays its commission in the base asset.
    pub fn charges_base(&self, side: Side) -> bool {
        self.commission_asset == CommissionAsset::Received && side == Side::Buy
    }

    /// Whether a fill of an order asked for as `asked` on `side` pays its
    /// commission in the base asset (an order may ask for the quote).
    pub fn charges_base_for(&self, side: Side, asked: &OrderAsked) -> bool {
        self.charges_base(side) && !asked.fee_in_quote
    }
}

impl Default for FeeSchedule {
    fn default() -> Self {
        Self::new(Decimal::new(10, 0), Decimal::new(10, 0), CommissionAsset::Received)
    }
}

/// An order as the matching core keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimOrder {
    /// The core's order id.
    pub order_id: u64,
    /// Owning account.
    pub account: u32,
    /// Client order id.
    pub client_order_id: String,
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
    /// Filled quantity.
    pub filled_qty: Decimal,
    /// Filled notional.
    pub filled_quote: Decimal,
    /// Status.
    pub status: OrderStatus,
    /// Why it was rejected or expired.
    pub reason: Option<String>,
    /// Creation time.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
    /// For a stop-limit: whether the stop has triggered.
    pub triggered: bool,
    /// For a stop-limit: the stop lay above the market when it was placed,
    /// so it triggers when the price rises to it (a buy's stop-loss, a
    /// sell's take-profit); below, when the price falls to it.
    #[serde(default)]
    pub trigger_above: bool,
    /// Amount still locked for this order (quote for buys, base for sells).
    pub locked: Decimal,
    /// How the order was asked for, beyond its type and prices.
    #[serde(default)]
    pub asked: OrderAsked,
    /// The order list (OCO) this order is a leg of (see [`list`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<u64>,
}

/// How an order was asked for, beyond its type and prices: what a venue
/// echoes back (Binance's `origQuoteOrderQty`, `LIMIT_MAKER`) although the
/// matching treats the order by its type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderAsked {
    /// A market order sized by a quote amount: that amount (its quantity is
    /// what the amount bought at the touch when it was placed).
    pub quote_order_qty: Option<Decimal>,
    /// A limit order that may only rest (refused when it would take).
    pub post_only: bool,
    /// Pay the commission in the quote asset whatever the schedule's
    /// `commission_asset` says: a second protocol on the same exchange whose
    /// venue always charges the quote (Coinbase) asks for it per order.
    #[serde(default)]
    pub fee_in_quote: bool,
}

impl SimOrder {
    /// Quantity still working.
    pub fn remaining(&self) -> Decimal {
        self.qty - self.filled_qty
    }

    /// The exchange-neutral report of this order.
    pub fn report(&self) -> OrderReport {
        OrderReport {
            client_order_id: self.client_order_id.clone(),
            venue_order_id: self.order_id.to_string(),
            symbol: self.symbol.clone(),
            side: self.side,
            status: self.status,
            qty: self.qty,
            filled_qty: self.filled_qty,
            filled_quote: self.filled_quote,
            reason: self.reason.clone(),
            ts_ms: self.updated_ms,
            oco_leg: None,
        }
    }
}

/// An order to submit to the core.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    /// Account placing it.
    pub account: u32,
    /// Client order id (unique per account among known orders).
    pub client_order_id: String,
    /// Symbol.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// Type and prices.
    pub order_type: OrderType,
    /// Quantity.
    pub qty: Decimal,
    /// Time in force.
    pub tif: TimeInForce,
    /// How it was asked for (echoed back; see [`OrderAsked`]).
    pub asked: OrderAsked,
}

/// Something that happened to an order: a fill, or a status change without one.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// The order after this execution.
    pub order: SimOrder,
    /// The fill, if any (its `strategy_id` is empty: the core does not know strategies).
    pub fill: Option<Fill>,
}

/// One execution as plain values: what [`Fill`] says, without the names a
/// fill repeats (client order id, symbol, assets), which the caller knows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillFacts {
    /// The trade id (from the symbol's tape).
    pub trade_id: u64,
    /// Side of the order.
    pub side: Side,
    /// Execution price.
    pub price: Decimal,
    /// Executed quantity.
    pub qty: Decimal,
    /// Commission charged.
    pub fee: Decimal,
    /// The commission was charged in the base asset (else the quote asset).
    pub fee_in_base: bool,
    /// The order was the resting (maker) side.
    pub is_maker: bool,
    /// Time of the execution.
    pub ts_ms: i64,
}

impl FillFacts {
    /// The fill of order `client_order_id` of `strategy_id` on `instrument`
    /// (no tag: the core does not know them).
    pub fn to_fill(&self, client_order_id: &str, strategy_id: StrategyId, instrument: &Instrument) -> Fill {
        let fee_asset = if self.fee_in_base { &instrument.base_asset } else { &instrument.quote_asset };
        Fill {
            trade_id: self.trade_id.into(),
            client_order_id: client_order_id.to_string(),
            strategy_id,
            symbol: instrument.symbol.clone(),
            side: self.side,
            price: self.price,
            qty: self.qty,
            fee: self.fee,
            fee_asset: fee_asset.clone(),
            is_maker: self.is_maker,
            ts_ms: self.ts_ms,
            tag: None,
        }
    }
}

/// Something that happened to an order, as plain values: the lean form of
/// [`Execution`] for callers that keep their own record of each order (the
/// backtest), so the matching path copies no strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderEvent {
    /// The core's order id.
    pub order_id: u64,
    /// Its status after this event.
    pub status: OrderStatus,
    /// Its filled quantity after this event.
    pub filled_qty: Decimal,
    /// Why it expired, if it did.
    pub reason: Option<&'static str>,
    /// The execution, if any.
    pub fill: Option<FillFacts>,
}

/// An order the core accepted (see [`MatchingCore::submit_events`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    /// The core's order id.
    pub order_id: u64,
    /// Its status once submission is over (open when it rests).
    pub status: OrderStatus,
}

/// Where the matching logic reports each change of an order, right after it.
trait Sink {
    fn record(
        &mut self,
        order: &SimOrder,
        instrument: &Instrument,
        reason: Option<&'static str>,
        fill: Option<FillFacts>,
    );
}

impl Sink for Vec<Execution> {
    fn record(&mut self, order: &SimOrder, instrument: &Instrument, _: Option<&'static str>, fill: Option<FillFacts>) {
        // The core does not know strategies: the strategy id is empty.
        let fill = fill.map(|f| f.to_fill(&order.client_order_id, StrategyId::new(""), instrument));
        self.push(Execution { order: order.clone(), fill });
    }
}

impl Sink for Vec<OrderEvent> {
    fn record(&mut self, order: &SimOrder, _: &Instrument, reason: Option<&'static str>, fill: Option<FillFacts>) {
        self.push(OrderEvent {
            order_id: order.order_id,
            status: order.status,
            filled_qty: order.filled_qty,
            reason,
            fill,
        });
    }
}

/// The outcome of a submission: the order and what happened to it at once.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitResult {
    /// The order after submission.
    pub order: SimOrder,
    /// Immediate fills and status changes, in order.
    pub executions: Vec<Execution>,
}

/// Why the core refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// The symbol is not listed.
    #[error("unknown symbol {0}")]
    UnknownSymbol(String),
    /// The account does not exist.
    #[error("unknown account {0}")]
    UnknownAccount(u32),
    /// The order breaks a filter.
    #[error("filter failure: {0}")]
    Filter(FilterViolation),
    /// Not enough free balance.
    #[error("insufficient balance: need {needed} {asset}, free {free}")]
    InsufficientBalance {
        /// Asset.
        asset: String,
        /// Needed amount.
        needed: Decimal,
        /// Free amount.
        free: Decimal,
    },
    /// The client order id is already used by a known order of the account.
    #[error("duplicate client order id {0}")]
    DuplicateClientOrderId(String),
    /// No such order.
    #[error("unknown order")]
    UnknownOrder,
    /// The order is already final.
    #[error("order is already {0:?}")]
    AlreadyFinal(OrderStatus),
    /// No quote yet for the symbol.
    #[error("no market for {0} yet")]
    NoMarket(String),
    /// An order type the matching core does not execute (also: an order
    /// list whose legs do not straddle the market, [`OCO_BAD_PRICES`]).
    #[error("{0} are not supported")]
    Unsupported(&'static str),
}

/// An account's balances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Balances by asset.
    pub balances: BTreeMap<String, Balance>,
}

impl Account {
    /// Changes the balance of `asset` (created at zero if new; no string is
    /// copied for an asset the account already has).
    fn update(&mut self, asset: &str, change: impl FnOnce(&mut Balance)) {
        if let Some(b) = self.balances.get_mut(asset) {
            change(b);
            return;
        }
        let mut b = Balance { asset: asset.to_string(), free: Decimal::ZERO, locked: Decimal::ZERO };
        change(&mut b);
        self.balances.insert(asset.to_string(), b);
    }

    fn free(&self, asset: &str) -> Decimal {
        self.balances.get(asset).map(|b| b.free).unwrap_or_default()
    }

    /// Moves `amount` of `asset` from free to locked for a new order (or
    /// order list), or refuses it when not enough is free.
    fn lock(&mut self, asset: &str, amount: Decimal) -> Result<(), MatchError> {
        // One look-up for an asset the account has (every order's, mostly).
        let free = match self.balances.get_mut(asset) {
            Some(b) if b.free >= amount => {
                b.free -= amount;
                b.locked += amount;
                return Ok(());
            }
            Some(b) => b.free,
            None => Decimal::ZERO,
        };
        if free >= amount {
            // An asset it has none of: only a zero amount fits (and records it).
            self.update(asset, |b| {
                b.free -= amount;
                b.locked += amount;
            });
            return Ok(());
        }
        Err(MatchError::InsufficientBalance { asset: asset.to_string(), needed: amount, free })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Book {
    instrument: Instrument,
    quote: Option<BookTicker>,
    last: Option<Decimal>,
    /// Resting order ids in arrival order.
    resting: Vec<u64>,
    next_trade_id: u64,
    /// A live venue's partial book (see [`live`]); `None`: the synthetic
    /// levels around the quote. Market data, so never saved.
    #[serde(skip)]
    depth: Option<live::LiveDepth>,
}

/// The matching core. Deterministic: the same inputs give the same outputs.
///
/// It serializes whole (a venue that keeps its state across restarts saves
/// it); the client-id index is derived from the orders, so it is rebuilt on
/// load rather than stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "StoredCore")]
pub struct MatchingCore {
    fees: FeeSchedule,
    depth_levels: u32,
    books: FxHashMap<Symbol, Book>,
    accounts: BTreeMap<u32, Account>,
    orders: BTreeMap<u64, SimOrder>,
    /// Per account: client order id → the latest order under it.
    #[serde(skip_serializing)]
    by_client: FxHashMap<u32, FxHashMap<String, u64>>,
    fills: BTreeMap<u32, Vec<Fill>>,
    /// Order lists (OCO) by list id; their legs are in `orders`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    lists: BTreeMap<u64, SimList>,
    /// The order of each fill, by symbol and trade id (a client id may be
    /// used again, so a fill's client id alone does not name its order; trade
    /// ids count per symbol, as on Binance, so an id alone does not either).
    trade_orders: TradeOrders,
    next_order_id: u64,
    trade_id_base: u64,
    /// False: final orders and fills are not kept (see [`MatchingCore::without_history`]).
    #[serde(skip_serializing)]
    keep_history: bool,
    #[serde(skip_serializing)]
    scratch: Scratch,
}

/// Working memory the core reuses from call to call (never saved).
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// The resting orders a quote or a bar is matched against (the book's
    /// list changes while they fill).
    ids: Vec<u64>,
    /// Orders that became final during this call: forgotten at its end when
    /// no history is kept.
    finished: Vec<u64>,
    /// Client-id strings of forgotten orders, reused for new ones.
    spare: Vec<String>,
}

/// At most this many client-id strings wait for reuse.
const SPARE_STRINGS: usize = 64;

/// A saved [`MatchingCore`]: everything but the client-id index.
#[derive(Deserialize)]
struct StoredCore {
    fees: FeeSchedule,
    depth_levels: u32,
    books: FxHashMap<Symbol, Book>,
    accounts: BTreeMap<u32, Account>,
    orders: BTreeMap<u64, SimOrder>,
    fills: BTreeMap<u32, Vec<Fill>>,
    #[serde(default)]
    lists: BTreeMap<u64, SimList>,
    trade_orders: SavedTradeOrders,
    next_order_id: u64,
    trade_id_base: u64,
}

/// Symbol → trade id → order id.
type TradeOrders = BTreeMap<Symbol, BTreeMap<u64, u64>>;

/// `trade_orders` as saved: by symbol, or (state saved before trade ids were
/// known to repeat across symbols) by trade id alone. Trade ids are read as
/// the strings JSON keeps map keys in: an untagged enum cannot read integer
/// keys.
#[derive(Deserialize)]
#[serde(untagged)]
enum SavedTradeOrders {
    BySymbol(BTreeMap<Symbol, BTreeMap<String, u64>>),
    ByTradeId(BTreeMap<String, u64>),
}

/// A saved map keyed by trade id, with the keys that are not one left out.
fn by_trade_id(map: BTreeMap<String, u64>) -> BTreeMap<u64, u64> {
    map.into_iter().filter_map(|(t, id)| Some((t.parse().ok()?, id))).collect()
}

impl SavedTradeOrders {
    /// The map by symbol. The old form is rebuilt from the kept fills: a
    /// trade's saved order stands where it is of the fill's symbol, account
    /// and client id; where another symbol's fill overwrote it, the latest
    /// order of that account, symbol and client id is the fill's.
    fn by_symbol(self, fills: &BTreeMap<u32, Vec<Fill>>, orders: &BTreeMap<u64, SimOrder>) -> TradeOrders {
        let flat = match self {
            Self::BySymbol(map) => return map.into_iter().map(|(sym, m)| (sym, by_trade_id(m))).collect(),
            Self::ByTradeId(flat) => by_trade_id(flat),
        };
        let mut out = TradeOrders::new();
        for (account, list) in fills {
            for f in list {
                let Some(t) = f.trade_id.as_u64() else { continue };
                let owns = |o: &SimOrder| {
                    o.account == *account && o.symbol == f.symbol && o.client_order_id == f.client_order_id
                };
                let saved = flat.get(&t).copied().filter(|id| orders.get(id).is_some_and(owns));
                let found = saved.or_else(|| orders.values().rev().find(|o| owns(o)).map(|o| o.order_id));
                if let Some(id) = found {
                    out.entry(f.symbol.clone()).or_default().insert(t, id);
                }
            }
        }
        out
    }
}

impl From<StoredCore> for MatchingCore {
    fn from(s: StoredCore) -> Self {
        let trade_orders = s.trade_orders.by_symbol(&s.fills, &s.orders);
        // In id order, so a client id used again points at its latest order.
        let mut by_client: FxHashMap<u32, FxHashMap<String, u64>> = FxHashMap::default();
        for (id, o) in &s.orders {
            by_client.entry(o.account).or_default().insert(o.client_order_id.clone(), *id);
        }
        Self {
            fees: s.fees,
            depth_levels: s.depth_levels,
            books: s.books,
            accounts: s.accounts,
            orders: s.orders,
            by_client,
            trade_orders,
            fills: s.fills,
            lists: s.lists,
            next_order_id: s.next_order_id,
            trade_id_base: s.trade_id_base,
            keep_history: true,
            scratch: Scratch::default(),
        }
    }
}

impl MatchingCore {
    /// A core with the given fees and `depth_levels` synthetic levels beyond the touch.
    pub fn new(fees: FeeSchedule, depth_levels: u32) -> Self {
        Self {
            fees,
            depth_levels,
            books: FxHashMap::default(),
            accounts: BTreeMap::new(),
            orders: BTreeMap::new(),
            by_client: FxHashMap::default(),
            fills: BTreeMap::new(),
            lists: BTreeMap::new(),
            trade_orders: TradeOrders::new(),
            next_order_id: 1,
            trade_id_base: 1,
            keep_history: true,
            scratch: Scratch::default(),
        }
    }

    /// Keeps no history (a backtest, which records what it needs itself): an
    /// order is forgotten at the end of the call that made it final, and
    /// fills are not kept — so [`Self::order_by_client`], [`Self::all_orders`],
    /// [`Self::fills`] and [`Self::order_of_trade`] know only open orders.
    /// Matching, balances and events are the same.
    pub fn without_history(mut self) -> Self {
        self.keep_history = false;
        self
    }

    /// Starts order and trade ids at `base` (so ids stay unique across restarts
    /// of a venue whose history is not kept).
    pub fn with_id_base(mut self, base: u64) -> Self {
        self.next_order_id = base;
        self.trade_id_base = base;
        for book in self.books.values_mut() {
            book.next_trade_id = base;
        }
        self
    }

    /// The fee schedule.
    pub fn fees(&self) -> FeeSchedule {
        self.fees
    }

    /// Lists an instrument.
    pub fn add_instrument(&mut self, instrument: Instrument) {
        let base = self.trade_id_base;
        self.books.insert(
            instrument.symbol.clone(),
            Book { instrument, quote: None, last: None, resting: Vec::new(), next_trade_id: base, depth: None },
        );
    }

    /// Lists an instrument, or updates the filters and status of one already
    /// listed while keeping its book (quote, resting orders, trade ids).
    pub fn list_instrument(&mut self, instrument: Instrument) {
        match self.books.get_mut(&instrument.symbol) {
            Some(book) => book.instrument = instrument,
            None => self.add_instrument(instrument),
        }
    }

    /// Orders open across all accounts and symbols.
    pub fn open_order_count(&self) -> usize {
        self.orders.values().filter(|o| o.status.is_open()).count()
    }

    /// Whether the core has an account with this id.
    pub fn has_account(&self, id: u32) -> bool {
        self.accounts.contains_key(&id)
    }

    /// The listed instruments.
    pub fn instruments(&self) -> impl Iterator<Item = &Instrument> {
        self.books.values().map(|b| &b.instrument)
    }

    /// An instrument by symbol.
    pub fn instrument(&self, symbol: &str) -> Option<&Instrument> {
        self.books.get(symbol).map(|b| &b.instrument)
    }

    /// Opens an account with starting balances (replacing an existing one).
    pub fn add_account(&mut self, id: u32, balances: Vec<Balance>) {
        let account = Account { balances: balances.into_iter().map(|b| (b.asset.clone(), b)).collect() };
        self.accounts.insert(id, account);
    }

    /// An account's balances.
    pub fn balances(&self, account: u32) -> Option<Vec<Balance>> {
        self.accounts.get(&account).map(|a| a.balances.values().cloned().collect())
    }

    /// An account's balances written into `out` (as [`Self::balances`] gives
    /// them), reusing its strings: false, and `out` untouched, when there is
    /// no such account.
    pub fn balances_into(&self, account: u32, out: &mut Vec<Balance>) -> bool {
        let Some(a) = self.accounts.get(&account) else { return false };
        out.truncate(a.balances.len());
        for (i, b) in a.balances.values().enumerate() {
            match out.get_mut(i) {
                Some(o) => {
                    o.asset.clone_from(&b.asset);
                    o.free = b.free;
                    o.locked = b.locked;
                }
                None => out.push(b.clone()),
            }
        }
        true
    }

    /// The current top of book of a symbol.
    pub fn quote(&self, symbol: &str) -> Option<&BookTicker> {
        self.books.get(symbol).and_then(|b| b.quote.as_ref())
    }

    /// The last traded price of a symbol (our fills), or the mid if nothing traded.
    pub fn last_price(&self, symbol: &str) -> Option<Decimal> {
        let book = self.books.get(symbol)?;
        book.last.or_else(|| book.quote.as_ref().map(BookTicker::mid))
    }

    /// Takes the next trade id of a symbol's tape: a venue's public trades
    /// and the core's fills share one sequence, so every trade id is unique
    /// and they interleave in time order.
    pub fn take_trade_id(&mut self, symbol: &str) -> Option<u64> {
        let book = self.books.get_mut(symbol)?;
        let id = book.next_trade_id;
        book.next_trade_id += 1;
        Some(id)
    }

    /// The synthetic levels of one side of a symbol's book, best first:
    /// the asks for `Side::Buy` (what a buyer takes), the bids for `Side::Sell`.
    pub fn synthetic_levels(&self, symbol: &str, side: Side) -> Vec<(Decimal, Decimal)> {
        self.levels(symbol, side).collect()
    }

    /// Resting orders of every account in a symbol, in arrival order
    /// (untriggered stops included: see [`SimOrder::triggered`]).
    pub fn resting_orders(&self, symbol: &str) -> Vec<&SimOrder> {
        self.books
            .get(symbol)
            .map(|b| b.resting.iter().filter_map(|id| self.orders.get(id)).collect())
            .unwrap_or_default()
    }

    /// An order by account and client order id.
    pub fn order_by_client(&self, account: u32, client_order_id: &str) -> Option<&SimOrder> {
        self.orders.get(&self.client_index(account, client_order_id)?)
    }

    /// An order by id.
    pub fn order(&self, order_id: u64) -> Option<&SimOrder> {
        self.orders.get(&order_id)
    }

    /// Open orders of an account, optionally of one symbol, oldest first.
    pub fn open_orders(&self, account: u32, symbol: Option<&str>) -> Vec<SimOrder> {
        self.orders
            .values()
            .filter(|o| o.account == account && o.status.is_open())
            .filter(|o| symbol.is_none_or(|s| o.symbol.as_str() == s))
            .cloned()
            .collect()
    }

    /// Forgets history beyond the newest `keep` final orders and `keep`
    /// fills of each account (a venue that runs for months cannot keep
    /// and save everything; Binance archives too). Open orders and the
    /// orders of kept fills are never forgotten. Runs only once an account
    /// holds twice `keep` of either, so its cost is spread thin.
    pub fn forget_history(&mut self, keep: usize) {
        // Nothing to forget while the whole book is small (no scan at each save).
        let most_fills = self.fills.values().map(Vec::len).max().unwrap_or(0);
        if self.orders.len() <= keep.saturating_mul(2) && most_fills <= keep.saturating_mul(2) {
            return;
        }
        let accounts: Vec<u32> = self.accounts.keys().copied().collect();
        for account in accounts {
            let fills = self.fills.get(&account).map_or(0, Vec::len);
            let finals: Vec<u64> = self
                .orders
                .values()
                .filter(|o| o.account == account && !o.status.is_open())
                .map(|o| o.order_id)
                .collect();
            if fills <= keep.saturating_mul(2) && finals.len() <= keep.saturating_mul(2) {
                continue;
            }
            if let Some(list) = self.fills.get_mut(&account) {
                let cut = list.len().saturating_sub(keep);
                for f in list.drain(..cut) {
                    if let (Some(t), Some(of_symbol)) = (f.trade_id.as_u64(), self.trade_orders.get_mut(&f.symbol)) {
                        of_symbol.remove(&t);
                    }
                }
            }
            let kept_by_fills: std::collections::HashSet<u64> = self
                .fills
                .get(&account)
                .into_iter()
                .flatten()
                .filter_map(|f| f.trade_id.as_u64().and_then(|t| self.order_id_of_trade(&f.symbol, t)))
                .collect();
            // `finals` is in id order, oldest first.
            let cut = finals.len().saturating_sub(keep);
            for id in finals.into_iter().take(cut).filter(|id| !kept_by_fills.contains(id)) {
                self.forget(id);
            }
        }
    }

    /// All orders of an account in a symbol, oldest first.
    pub fn all_orders(&self, account: u32, symbol: &str) -> Vec<SimOrder> {
        self.orders.values().filter(|o| o.account == account && o.symbol.as_str() == symbol).cloned().collect()
    }

    /// Fills of an account in a symbol with trade id ≥ `from_trade_id`, oldest first.
    pub fn fills(&self, account: u32, symbol: &str, from_trade_id: Option<u64>) -> Vec<Fill> {
        self.fills
            .get(&account)
            .map(|list| {
                list.iter()
                    .filter(|f| {
                        f.symbol.as_str() == symbol
                            && from_trade_id.is_none_or(|id| f.trade_id.as_u64().is_some_and(|t| t >= id))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The order a fill belongs to, by the fill's symbol and trade id.
    pub fn order_of_trade(&self, symbol: &str, trade_id: u64) -> Option<&SimOrder> {
        self.order_id_of_trade(symbol, trade_id).and_then(|id| self.orders.get(&id))
    }

    fn order_id_of_trade(&self, symbol: &str, trade_id: u64) -> Option<u64> {
        self.trade_orders.get(symbol)?.get(&trade_id).copied()
    }

    /// Submits an order: validates it, locks funds, fills what is marketable and
    /// rests the remainder (GTC) or expires it (IOC, FOK, market).
    pub fn submit(&mut self, new: NewOrder, now_ms: i64) -> Result<SubmitResult, MatchError> {
        let mut executions = Vec::new();
        let placed = self.place(&new, now_ms, &mut executions);
        let result = placed.and_then(|id| {
            let order = self.orders.get(&id).cloned().ok_or(MatchError::UnknownOrder)?;
            Ok(SubmitResult { order, executions })
        });
        self.forget_finished();
        result
    }

    /// [`Self::submit`] reporting what happened as [`OrderEvent`]s appended
    /// to `out`, without copying the order.
    pub fn submit_events(
        &mut self,
        new: &NewOrder,
        now_ms: i64,
        out: &mut Vec<OrderEvent>,
    ) -> Result<Placed, MatchError> {
        let placed = self.place(new, now_ms, out).and_then(|id| {
            let order = self.orders.get(&id).ok_or(MatchError::UnknownOrder)?;
            Ok(Placed { order_id: id, status: order.status })
        });
        self.forget_finished();
        placed
    }

    /// A market order filled whole at `price` as a taker, whatever the book
    /// says (the backtest's exits fill at the price their bar's path
    /// reached). The symbol's quote and resting orders are as before.
    pub fn submit_market_at(
        &mut self,
        new: &NewOrder,
        price: Decimal,
        now_ms: i64,
        out: &mut Vec<OrderEvent>,
    ) -> Result<Placed, MatchError> {
        if new.order_type != OrderType::Market {
            return Err(MatchError::Unsupported("an exact price for an order other than a market order"));
        }
        let book = self.books.get_mut(&new.symbol).ok_or_else(|| MatchError::UnknownSymbol(new.symbol.to_string()))?;
        let at = BookTicker {
            symbol: new.symbol.clone(),
            bid: price,
            bid_qty: new.qty,
            ask: price,
            ask_qty: new.qty,
            ts_ms: now_ms,
        };
        let quote = book.quote.replace(at);
        let depth = book.depth.take();
        let placed = self.submit_events(new, now_ms, out);
        if let Some(book) = self.books.get_mut(&new.symbol) {
            (book.quote, book.depth) = (quote, depth);
        }
        placed
    }

    fn place(&mut self, new: &NewOrder, now_ms: i64, out: &mut impl Sink) -> Result<u64, MatchError> {
        let book = self.books.get(&new.symbol).ok_or_else(|| MatchError::UnknownSymbol(new.symbol.to_string()))?;
        if !self.accounts.contains_key(&new.account) {
            return Err(MatchError::UnknownAccount(new.account));
        }
        // A client order id must be unique among open orders only (as on
        // Binance): one of a final order may be used again.
        let in_use = self
            .client_index(new.account, &new.client_order_id)
            .and_then(|id| self.orders.get(&id))
            .is_some_and(|o| o.status.is_open());
        if in_use {
            return Err(MatchError::DuplicateClientOrderId(new.client_order_id.clone()));
        }
        let instrument = &book.instrument;
        let (bid, ask) = match &book.quote {
            Some(q) => (q.bid, q.ask),
            None => return Err(MatchError::NoMarket(new.symbol.to_string())),
        };
        let reference = match new.order_type {
            OrderType::Market => match new.side {
                Side::Buy => ask,
                Side::Sell => bid,
            },
            OrderType::Limit { price } | OrderType::StopLimit { price, .. } => price,
            OrderType::StopMarket { stop } => stop,
            OrderType::Oco { .. } => return Err(MatchError::Unsupported("OCO order lists")),
        };
        instrument.check(new.qty, reference, new.order_type.is_market()).map_err(MatchError::Filter)?;

        // What the order needs up front: market orders are checked against their
        // simulated fill, resting orders lock their full worst-case cost.
        // A buy that pays its commission in the base asset needs no quote for it.
        let taker = if self.fees.charges_base_for(new.side, &new.asked) {
            Decimal::ZERO
        } else {
            self.fees.taker_bps.max(self.fees.maker_bps)
        };
        let lock = match (new.side, new.order_type) {
            (Side::Buy, OrderType::Market) => {
                let (qty, quote_amt) = self.walk(&new.symbol, Side::Buy, new.qty, None);
                if qty.is_zero() {
                    Decimal::ZERO
                } else {
                    quote_amt + quote_amt * taker / BPS
                }
            }
            (Side::Buy, _) => {
                let price = new.order_type.limit_price().unwrap_or(reference);
                let notional = price * new.qty;
                notional + notional * taker / BPS
            }
            (Side::Sell, _) => new.qty,
        };
        let lock_asset =
            if new.side == Side::Buy { instrument.quote_asset.as_str() } else { instrument.base_asset.as_str() };
        self.accounts.get_mut(&new.account).ok_or(MatchError::UnknownAccount(new.account))?.lock(lock_asset, lock)?;

        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let order = SimOrder {
            order_id,
            account: new.account,
            client_order_id: self.string_of(&new.client_order_id),
            symbol: new.symbol.clone(),
            side: new.side,
            order_type: new.order_type,
            tif: new.tif,
            qty: new.qty,
            filled_qty: Decimal::ZERO,
            filled_quote: Decimal::ZERO,
            status: OrderStatus::Accepted,
            reason: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            triggered: false,
            trigger_above: false,
            locked: lock,
            asked: new.asked,
            list_id: None,
        };
        let key = self.string_of(&new.client_order_id);
        self.by_client.entry(new.account).or_default().insert(key, order_id);
        self.orders.insert(order_id, order);

        match new.order_type {
            OrderType::Market => {
                self.take_liquidity(order_id, None, now_ms, out);
                self.finish_unfilled(order_id, "insufficient liquidity", now_ms, out);
            }
            OrderType::Limit { price } => {
                let marketable = match new.side {
                    Side::Buy => price >= ask,
                    Side::Sell => price <= bid,
                };
                if new.tif == TimeInForce::Fok {
                    let (fillable, _) = self.walk(&new.symbol, new.side, new.qty, Some(price));
                    if fillable < new.qty {
                        self.finish_unfilled(order_id, "fill-or-kill not fully fillable", now_ms, out);
                        return Ok(order_id);
                    }
                }
                if marketable {
                    self.take_liquidity(order_id, Some(price), now_ms, out);
                }
                if new.tif == TimeInForce::Gtc {
                    self.rest(order_id);
                } else {
                    self.finish_unfilled(order_id, "immediate-or-cancel remainder", now_ms, out);
                }
            }
            OrderType::StopLimit { stop, .. } | OrderType::StopMarket { stop } => {
                let side_price = match new.side {
                    Side::Buy => ask,
                    Side::Sell => bid,
                };
                if let Some(o) = self.orders.get_mut(&order_id) {
                    o.trigger_above = stop > side_price;
                    // A stop at the market has triggered already.
                    o.triggered = stop == side_price;
                }
                if matches!(new.order_type, OrderType::StopMarket { .. }) && stop == side_price {
                    self.execute_triggered(order_id, now_ms, out);
                } else {
                    self.rest(order_id)
                }
            }
            // Refused before the order was recorded.
            OrderType::Oco { .. } => {}
        }
        Ok(order_id)
    }

    /// The order id under an account's client order id.
    fn client_index(&self, account: u32, client_order_id: &str) -> Option<u64> {
        self.by_client.get(&account)?.get(client_order_id).copied()
    }

    /// `s` as an owned string, reusing one of a forgotten order.
    fn string_of(&mut self, s: &str) -> String {
        match self.scratch.spare.pop() {
            Some(mut spare) => {
                spare.clear();
                spare.push_str(s);
                spare
            }
            None => s.to_string(),
        }
    }

    /// Removes an order, and its client id from the index if it names this
    /// order, keeping their strings for reuse.
    fn forget(&mut self, id: u64) {
        let Some(order) = self.orders.remove(&id) else { return };
        if let Some(list_id) = order.list_id {
            self.forget_list_of(list_id);
        }
        if let Some(index) = self.by_client.get_mut(&order.account) {
            // One look-up: the id names this order but when it was used again
            // by a newer one, which keeps it.
            if let Some((key, latest)) = index.remove_entry(&order.client_order_id) {
                if latest == id {
                    self.scratch.spare.push(key);
                } else {
                    index.insert(key, latest);
                }
            }
        }
        self.scratch.spare.push(order.client_order_id);
        self.scratch.spare.truncate(SPARE_STRINGS);
    }

    /// Without history, forgets the orders that became final in this call.
    fn forget_finished(&mut self) {
        if self.keep_history {
            return;
        }
        let mut finished = std::mem::take(&mut self.scratch.finished);
        for id in finished.drain(..) {
            self.forget(id);
        }
        self.scratch.finished = finished;
    }

    /// Cancels an open order and releases what it locked.
    pub fn cancel(
        &mut self,
        account: u32,
        symbol: &str,
        client_order_id: &str,
        now_ms: i64,
    ) -> Result<SimOrder, MatchError> {
        let id = self.client_index(account, client_order_id).ok_or(MatchError::UnknownOrder)?;
        let order = self.orders.get(&id).ok_or(MatchError::UnknownOrder)?;
        if order.symbol.as_str() != symbol {
            return Err(MatchError::UnknownOrder);
        }
        if order.status.is_terminal() {
            return Err(MatchError::AlreadyFinal(order.status));
        }
        self.close(id, OrderStatus::Canceled, None, now_ms);
        self.cancel_sibling(id, now_ms);
        let order = self.orders.get(&id).cloned().ok_or(MatchError::UnknownOrder);
        self.forget_finished();
        order
    }

    /// Edits an open GTC limit order in place (Coinbase's edit): a new price
    /// and total quantity, checked against the symbol's filters. Its lock
    /// becomes what the new remainder needs (the difference taken from or
    /// returned to free balance), it goes to the back of the resting queue
    /// (an edit loses priority), and a new price that is marketable takes
    /// the book as a new order would. [`MatchError::UnknownOrder`] when
    /// the id names no GTC limit order of the account; a quantity not above
    /// what has filled is [`FilterViolation::QtyBelowMin`] with that as the minimum.
    pub fn amend(
        &mut self,
        account: u32,
        order_id: u64,
        price: Decimal,
        qty: Decimal,
        now_ms: i64,
    ) -> Result<SubmitResult, MatchError> {
        let order = self.orders.get(&order_id).filter(|o| o.account == account).ok_or(MatchError::UnknownOrder)?;
        if order.status.is_terminal() {
            return Err(MatchError::AlreadyFinal(order.status));
        }
        if !matches!(order.order_type, OrderType::Limit { .. }) || order.tif != TimeInForce::Gtc {
            return Err(MatchError::UnknownOrder);
        }
        let book = self.books.get(&order.symbol).ok_or_else(|| MatchError::UnknownSymbol(order.symbol.to_string()))?;
        let instrument = &book.instrument;
        let remaining = qty - order.filled_qty;
        instrument.check(qty, price, false).map_err(MatchError::Filter)?;
        if remaining <= Decimal::ZERO {
            return Err(MatchError::Filter(FilterViolation::QtyBelowMin { qty, min: order.filled_qty }));
        }
        let (bid, ask) = book
            .quote
            .as_ref()
            .map(|q| (q.bid, q.ask))
            .ok_or_else(|| MatchError::NoMarket(order.symbol.to_string()))?;
        let fee = if self.fees.charges_base_for(order.side, &order.asked) {
            Decimal::ZERO
        } else {
            self.fees.taker_bps.max(self.fees.maker_bps)
        };
        let (lock, asset) = match order.side {
            Side::Buy => (price * remaining * (BPS + fee) / BPS, instrument.quote_asset.clone()),
            Side::Sell => (remaining, instrument.base_asset.clone()),
        };
        let (side, symbol, delta) = (order.side, order.symbol.clone(), lock - order.locked);
        let acc = self.accounts.get_mut(&account).ok_or(MatchError::UnknownAccount(account))?;
        let free = acc.free(&asset);
        if delta > free {
            return Err(MatchError::InsufficientBalance { asset, needed: delta, free });
        }
        acc.update(&asset, |b| {
            b.free -= delta;
            b.locked += delta;
        });
        if let Some(o) = self.orders.get_mut(&order_id) {
            o.order_type = OrderType::Limit { price };
            o.qty = qty;
            o.locked = lock;
            o.updated_ms = now_ms;
        }
        if let Some(b) = self.books.get_mut(&symbol) {
            b.resting.retain(|id| *id != order_id);
        }
        let mut executions = Vec::new();
        let marketable = match side {
            Side::Buy => price >= ask,
            Side::Sell => price <= bid,
        };
        if marketable {
            self.take_liquidity(order_id, Some(price), now_ms, &mut executions);
        }
        self.rest(order_id);
        let order = self.orders.get(&order_id).cloned().ok_or(MatchError::UnknownOrder);
        self.forget_finished();
        Ok(SubmitResult { order: order?, executions })
    }

    /// Sets the top of book of a symbol and fills resting orders it reaches.
    pub fn set_quote(&mut self, quote: BookTicker) -> Vec<Execution> {
        let mut executions = Vec::new();
        self.quote_into(quote, &mut executions);
        self.forget_finished();
        executions
    }

    /// [`Self::set_quote`] reporting what happened as [`OrderEvent`]s appended to `out`.
    pub fn set_quote_events(&mut self, quote: BookTicker, out: &mut Vec<OrderEvent>) {
        self.quote_into(quote, out);
        self.forget_finished();
    }

    fn quote_into(&mut self, quote: BookTicker, out: &mut impl Sink) {
        self.quote_matching(quote, true, out);
    }

    /// Sets a symbol's quote and matches its resting orders against it:
    /// stops trigger on it, and with `limits_on_touch` limits fill when it
    /// reaches their price (a live book fills them by trades instead).
    fn quote_matching(&mut self, quote: BookTicker, limits_on_touch: bool, out: &mut impl Sink) {
        let now_ms = quote.ts_ms;
        let Some(book) = self.books.get_mut(&quote.symbol) else {
            return;
        };
        let (mut bid_avail, mut ask_avail) = (quote.bid_qty, quote.ask_qty);
        let (bid, ask) = (quote.bid, quote.ask);
        let symbol = quote.symbol.clone();
        book.quote = Some(quote);
        let mut ids = std::mem::take(&mut self.scratch.ids);
        ids.clear();
        ids.extend_from_slice(&book.resting);
        let mut to_market = Vec::new();
        for &id in &ids {
            // (A leg whose sibling executed earlier in this loop has expired.)
            let Some(order) = self.orders.get_mut(&id).filter(|o| o.status.is_open()) else { continue };
            if let Some(stop) = order.order_type.stop_price() {
                if !order.triggered {
                    let side_price = match order.side {
                        Side::Buy => ask,
                        Side::Sell => bid,
                    };
                    let hit = if order.trigger_above { side_price >= stop } else { side_price <= stop };
                    if !hit {
                        continue;
                    }
                    order.triggered = true;
                    let market = matches!(order.order_type, OrderType::StopMarket { .. });
                    if order.list_id.is_some() {
                        self.activate_leg(id, now_ms, out);
                    }
                    if market {
                        to_market.push(id);
                        continue;
                    }
                }
            }
            let Some(order) = self.orders.get(&id) else { continue };
            let Some(price) = order.order_type.limit_price().filter(|_| limits_on_touch) else { continue };
            let (reached, avail) = match order.side {
                Side::Buy => (ask <= price, &mut ask_avail),
                Side::Sell => (bid >= price, &mut bid_avail),
            };
            if !reached || avail.is_zero() {
                continue;
            }
            let qty = order.remaining().min(*avail);
            *avail -= qty;
            self.fill(id, price, qty, true, now_ms, out);
        }
        self.scratch.ids = ids;
        // Triggered stop-market orders take the book as market orders do.
        for id in to_market {
            self.execute_triggered(id, now_ms, out);
        }
        self.prune_resting(&symbol);
    }

    /// Drops orders no longer open from a symbol's resting list.
    fn prune_resting(&mut self, symbol: &str) {
        if let Some(b) = self.books.get_mut(symbol) {
            let orders = &self.orders;
            b.resting.retain(|id| orders.get(id).is_some_and(|o| o.status.is_open()));
        }
    }

    /// Fills resting orders a bar's range reached (backtest fill model): a limit
    /// fills at its price, or at the open when the bar gapped through it.
    pub fn match_range(
        &mut self,
        symbol: &str,
        open: Decimal,
        high: Decimal,
        low: Decimal,
        now_ms: i64,
    ) -> Vec<Execution> {
        let mut executions = Vec::new();
        self.range_into(symbol, open, high, low, now_ms, &mut executions);
        self.forget_finished();
        executions
    }

    /// [`Self::match_range`] reporting what happened as [`OrderEvent`]s appended to `out`.
    pub fn match_range_events(
        &mut self,
        symbol: &str,
        open: Decimal,
        high: Decimal,
        low: Decimal,
        now_ms: i64,
        out: &mut Vec<OrderEvent>,
    ) {
        self.range_into(symbol, open, high, low, now_ms, out);
        self.forget_finished();
    }

    fn range_into(
        &mut self,
        symbol: &str,
        open: Decimal,
        high: Decimal,
        low: Decimal,
        now_ms: i64,
        out: &mut impl Sink,
    ) {
        let Some(book) = self.books.get(symbol) else {
            return;
        };
        let mut ids = std::mem::take(&mut self.scratch.ids);
        ids.clear();
        ids.extend_from_slice(&book.resting);
        self.lists_in_bar(symbol, open, high, low, now_ms, out);
        for &id in &ids {
            let Some(order) = self.orders.get_mut(&id).filter(|o| o.status.is_open()) else { continue };
            if let Some(stop) = order.order_type.stop_price() {
                if !order.triggered {
                    let hit = if order.trigger_above { high >= stop } else { low <= stop };
                    if !hit {
                        continue;
                    }
                    order.triggered = true;
                    let (market, above, qty, leg) = (
                        matches!(order.order_type, OrderType::StopMarket { .. }),
                        order.trigger_above,
                        order.remaining(),
                        order.list_id.is_some(),
                    );
                    if leg {
                        self.activate_leg(id, now_ms, out);
                    }
                    if market {
                        // A market order at the stop, or at the open when the
                        // bar gapped through it.
                        let price = if above { open.max(stop) } else { open.min(stop) };
                        self.fill(id, price, qty, false, now_ms, out);
                        continue;
                    }
                }
            }
            let Some(order) = self.orders.get(&id) else { continue };
            let Some(price) = order.order_type.limit_price() else { continue };
            let fill_price = match order.side {
                Side::Buy if low <= price => Some(open.min(price)),
                Side::Sell if high >= price => Some(open.max(price)),
                _ => None,
            };
            if let Some(fill_price) = fill_price {
                let qty = order.remaining();
                self.fill(id, fill_price, qty, true, now_ms, out);
            }
        }
        self.scratch.ids = ids;
        self.prune_resting(symbol);
    }

    /// Quantity and quote amount a taker order of `qty` would get against the
    /// synthetic book, up to an optional limit price.
    fn walk(&self, symbol: &str, side: Side, qty: Decimal, limit: Option<Decimal>) -> (Decimal, Decimal) {
        let mut filled = Decimal::ZERO;
        let mut quote_amt = Decimal::ZERO;
        for (price, level_qty) in self.levels(symbol, side) {
            if limit.is_some_and(|l| match side {
                Side::Buy => price > l,
                Side::Sell => price < l,
            }) {
                break;
            }
            let take = (qty - filled).min(level_qty);
            filled += take;
            quote_amt += take * price;
            if filled >= qty {
                break;
            }
        }
        (filled, quote_amt)
    }

    /// The synthetic levels of one side, best first (see [`Self::synthetic_levels`]).
    /// A live book's levels take the place of the synthetic ones.
    fn levels(&self, symbol: &str, side: Side) -> impl Iterator<Item = (Decimal, Decimal)> + '_ {
        let book = self.books.get(symbol);
        let live = book.and_then(|b| b.depth.as_ref()).map(|d| d.side(side).iter().copied());
        let top =
            book.filter(|b| b.depth.is_none()).and_then(|b| b.quote.as_ref().map(|q| (q, b.instrument.tick_size)));
        let synthetic = top
            .into_iter()
            .flat_map(move |(q, tick)| (0..=self.depth_levels).filter_map(move |k| Touch::of(q).level(tick, side, k)));
        live.into_iter().flatten().chain(synthetic)
    }

    fn take_liquidity(&mut self, id: u64, limit: Option<Decimal>, now_ms: i64, out: &mut impl Sink) {
        let Some(order) = self.orders.get(&id) else { return };
        let Some(book) = self.books.get(&order.symbol) else { return };
        if book.depth.is_some() {
            let symbol = order.symbol.clone();
            self.take_live(id, &symbol, limit, now_ms, out);
            return;
        }
        let Some(quote) = &book.quote else { return };
        let (side, tick) = (order.side, book.instrument.tick_size);
        let touch = Touch::of(quote);
        for k in 0..=self.depth_levels {
            let Some((price, level_qty)) = touch.level(tick, side, k) else { continue };
            if limit.is_some_and(|l| match side {
                Side::Buy => price > l,
                Side::Sell => price < l,
            }) {
                break;
            }
            let remaining = self.orders.get(&id).map(SimOrder::remaining).unwrap_or_default();
            if remaining <= Decimal::ZERO {
                break;
            }
            self.fill(id, price, remaining.min(level_qty), false, now_ms, out);
        }
    }

    /// A triggered stop-market order executes as a market order against the
    /// book now. A buy that would cost more than it locked plus the free
    /// balance expires unfilled instead of overdrawing the account.
    fn execute_triggered(&mut self, id: u64, now_ms: i64, out: &mut impl Sink) {
        let Some(order) = self.orders.get(&id) else { return };
        if order.side == Side::Buy && !self.fees.charges_base_for(Side::Buy, &order.asked) {
            let (qty, locked) = (order.remaining(), order.locked);
            let (_, cost) = self.walk(&order.symbol, Side::Buy, qty, None);
            let cost = cost + cost * self.fees.taker_bps / BPS;
            let quote_asset = self.books.get(&order.symbol).map_or("", |b| b.instrument.quote_asset.as_str());
            let free = self.accounts.get(&order.account).map(|a| a.free(quote_asset)).unwrap_or_default();
            if cost > locked + free {
                self.finish_unfilled(id, "insufficient balance when the stop triggered", now_ms, out);
                return;
            }
        }
        self.take_liquidity(id, None, now_ms, out);
        self.finish_unfilled(id, "insufficient liquidity", now_ms, out);
    }

    fn rest(&mut self, id: u64) {
        let Some(order) = self.orders.get(&id) else { return };
        if order.status.is_open() {
            if let Some(book) = self.books.get_mut(&order.symbol) {
                book.resting.push(id);
            }
        }
    }

    fn finish_unfilled(&mut self, id: u64, reason: &'static str, now_ms: i64, out: &mut impl Sink) {
        let Some(order) = self.orders.get(&id) else { return };
        if order.status.is_open() {
            self.close(id, OrderStatus::Expired, Some(reason), now_ms);
            if let Some(order) = self.orders.get(&id) {
                if let Some(book) = self.books.get(&order.symbol) {
                    out.record(order, &book.instrument, Some(reason), None);
                }
            }
        }
    }

    /// Moves an order to a final status and releases what it still locks.
    fn close(&mut self, id: u64, status: OrderStatus, reason: Option<&'static str>, now_ms: i64) {
        let Some(order) = self.orders.get_mut(&id) else { return };
        order.status = status;
        order.reason = reason.map(str::to_string);
        order.updated_ms = now_ms;
        let release = std::mem::take(&mut order.locked);
        if let Some(book) = self.books.get_mut(&order.symbol) {
            book.resting.retain(|o| *o != id);
            let asset =
                if order.side == Side::Buy { &book.instrument.quote_asset } else { &book.instrument.base_asset };
            if let Some(acc) = self.accounts.get_mut(&order.account) {
                acc.update(asset, |e| {
                    e.locked -= release;
                    e.free += release;
                });
            }
        }
        if !self.keep_history {
            self.scratch.finished.push(id);
        }
    }

    fn fill(&mut self, id: u64, price: Decimal, qty: Decimal, maker: bool, now_ms: i64, out: &mut impl Sink) {
        if qty <= Decimal::ZERO {
            return;
        }
        if self.orders.get(&id).is_some_and(|o| o.list_id.is_some()) {
            // A leg that trades expires its sibling and takes over the list's lock.
            self.activate_leg(id, now_ms, out);
        }
        let fee_bps = if maker { self.fees.maker_bps } else { self.fees.taker_bps };
        let Some(order) = self.orders.get_mut(&id) else { return };
        let Some(book) = self.books.get_mut(&order.symbol) else { return };
        let notional = price * qty;
        let in_base = self.fees.charges_base_for(order.side, &order.asked);
        let fee = if in_base { qty * fee_bps / BPS } else { notional * fee_bps / BPS }
            .round_dp_with_strategy(FEE_DP, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        let trade_id = book.next_trade_id;
        book.next_trade_id += 1;
        book.last = Some(price);
        order.filled_qty += qty;
        order.filled_quote += notional;
        order.updated_ms = now_ms;
        let done = order.filled_qty >= order.qty;
        order.status = if done { OrderStatus::Filled } else { OrderStatus::PartiallyFilled };
        let (account_id, side) = (order.account, order.side);
        // Funds come out of the order's lock first; any shortfall (a resting order
        // that locked less than it now costs) comes out of free balance.
        let cost_asset_amount = match side {
            Side::Buy if in_base => notional,
            Side::Buy => notional + fee,
            Side::Sell => qty,
        };
        let from_lock = cost_asset_amount.min(order.locked);
        order.locked -= from_lock;
        let facts = FillFacts { trade_id, side, price, qty, fee, fee_in_base: in_base, is_maker: maker, ts_ms: now_ms };
        let (base, quote_asset) = (&book.instrument.base_asset, &book.instrument.quote_asset);
        if let Some(acc) = self.accounts.get_mut(&account_id) {
            let (spent_asset, got_asset, got) = match side {
                Side::Buy if in_base => (quote_asset, base, qty - fee),
                Side::Buy => (quote_asset, base, qty),
                Side::Sell => (base, quote_asset, notional - fee),
            };
            acc.update(spent_asset, |spent| {
                spent.locked -= from_lock;
                spent.free -= cost_asset_amount - from_lock;
            });
            acc.update(got_asset, |b| b.free += got);
        }
        if self.keep_history {
            self.trade_orders.entry(order.symbol.clone()).or_default().insert(trade_id, id);
            let fill = facts.to_fill(&order.client_order_id, StrategyId::new(""), &book.instrument);
            self.fills.entry(account_id).or_default().push(fill);
        }
        if done {
            self.close(id, OrderStatus::Filled, None, now_ms);
        }
        if let Some(order) = self.orders.get(&id) {
            if let Some(book) = self.books.get(&order.symbol) {
                out.record(order, &book.instrument, None, Some(facts));
            }
        }
    }
}

mod list;
mod live;

pub use list::{ListResult, NewLeg, NewOrderList, SimList, OCO_BAD_PRICES, OCO_SIBLING_EXECUTED};

/// The touch of a quote: what the synthetic levels are built from.
#[derive(Clone, Copy)]
struct Touch {
    bid: Decimal,
    bid_qty: Decimal,
    ask: Decimal,
    ask_qty: Decimal,
}

impl Touch {
    fn of(q: &BookTicker) -> Self {
        Self { bid: q.bid, bid_qty: q.bid_qty, ask: q.ask, ask_qty: q.ask_qty }
    }

    /// Level `k` beyond the touch of one side of the synthetic book (price
    /// and quantity), if its price is positive.
    fn level(self, tick: Decimal, side: Side, k: u32) -> Option<(Decimal, Decimal)> {
        let k = Decimal::from(k);
        let (price, qty) = match side {
            Side::Buy => (self.ask + tick * k, self.ask_qty),
            Side::Sell => (self.bid - tick * k, self.bid_qty),
        };
        (price > Decimal::ZERO).then_some((price, qty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::SymbolStatus;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn instrument() -> Instrument {
        Instrument {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            tick_size: d("0.01"),
            min_price: d("0.01"),
            max_price: d("1000000"),
            step_size: d("0.0001"),
            min_qty: d("0.0001"),
            max_qty: d("1000"),
            market_step_size: d("0.0001"),
            min_notional: d("5"),
            max_notional: Decimal::ZERO,
            max_num_orders: 200,
            status: SymbolStatus::Trading,
        }
    }

    fn core() -> MatchingCore {
        let mut c = MatchingCore::new(FeeSchedule::new(d("10"), d("20"), CommissionAsset::Quote), 2);
        c.add_instrument(instrument());
        c.add_account(
            1,
            vec![
                Balance { asset: "USDT".into(), free: d("100000"), locked: Decimal::ZERO },
                Balance { asset: "BTC".into(), free: d("1"), locked: Decimal::ZERO },
            ],
        );
        c.set_quote(quote("100", "101", "1", 0));
        c
    }

    fn quote(bid: &str, ask: &str, qty: &str, ts: i64) -> BookTicker {
        BookTicker { symbol: "BTCUSDT".into(), bid: d(bid), bid_qty: d(qty), ask: d(ask), ask_qty: d(qty), ts_ms: ts }
    }

    fn order(id: &str, side: Side, order_type: OrderType, qty: &str, tif: TimeInForce) -> NewOrder {
        NewOrder {
            account: 1,
            client_order_id: id.into(),
            symbol: "BTCUSDT".into(),
            side,
            order_type,
            qty: d(qty),
            tif,
            asked: OrderAsked::default(),
        }
    }

    fn bal(c: &MatchingCore, asset: &str) -> (Decimal, Decimal) {
        let b = c.balances(1).unwrap().into_iter().find(|b| b.asset == asset).unwrap();
        (b.free, b.locked)
    }

    #[test]
    fn a_saved_core_continues_with_its_orders_balances_and_client_ids() {
        let mut c = core();
        c.submit(order("rest", Side::Buy, OrderType::Limit { price: d("90") }, "1", TimeInForce::Gtc), 1).unwrap();
        c.submit(order("gone", Side::Buy, OrderType::Market, "0.1", TimeInForce::Gtc), 2).unwrap();
        let saved = serde_json::to_string(&c).unwrap();
        let mut back: MatchingCore = serde_json::from_str(&saved).unwrap();
        assert_eq!(back.balances(1), c.balances(1));
        assert_eq!(back.open_orders(1, Some("BTCUSDT")), c.open_orders(1, Some("BTCUSDT")));
        // The index is rebuilt: the open order's id is still taken, the final one's is free.
        let dup = back.submit(order("rest", Side::Buy, OrderType::Limit { price: d("90") }, "1", TimeInForce::Gtc), 3);
        assert!(matches!(dup, Err(MatchError::DuplicateClientOrderId(_))), "{dup:?}");
        let again = back.submit(order("gone", Side::Buy, OrderType::Market, "0.1", TimeInForce::Gtc), 3).unwrap();
        assert!(again.order.order_id > c.order_by_client(1, "gone").unwrap().order_id, "order ids continue");
        back.cancel(1, "BTCUSDT", "rest", 4).unwrap();
        assert_eq!(bal(&back, "USDT").1, Decimal::ZERO, "the cancel released what the saved order locked");
    }

    #[test]
    fn the_saved_form_has_the_same_keys_as_before() {
        let mut c = core().without_history();
        c.submit(order("rest", Side::Buy, OrderType::Limit { price: d("90") }, "1", TimeInForce::Gtc), 1).unwrap();
        let saved = serde_json::to_value(&c).unwrap();
        let keys: Vec<&str> = saved.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = [
            "accounts",
            "books",
            "depth_levels",
            "fees",
            "fills",
            "next_order_id",
            "orders",
            "trade_id_base",
            "trade_orders",
        ];
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want, "state.json keeps its keys: the working memory and the history flag are not saved");
    }

    /// What a core reports for one step, in a form both report kinds share.
    type Seen = (u64, OrderStatus, Decimal, Option<String>, Option<Fill>);

    fn seen_of_executions(executions: &[Execution]) -> Vec<Seen> {
        executions
            .iter()
            .map(|e| (e.order.order_id, e.order.status, e.order.filled_qty, e.order.reason.clone(), e.fill.clone()))
            .collect()
    }

    fn seen_of_events(core: &MatchingCore, client_ids: &BTreeMap<u64, String>, events: &[OrderEvent]) -> Vec<Seen> {
        let instrument = core.instrument("BTCUSDT").unwrap();
        events
            .iter()
            .map(|e| {
                let fill = e.fill.map(|f| f.to_fill(&client_ids[&e.order_id], StrategyId::new(""), instrument));
                (e.order_id, e.status, e.filled_qty, e.reason.map(str::to_string), fill)
            })
            .collect()
    }

    #[test]
    fn events_without_history_match_executions_with_history() {
        // The same requests to a core that keeps history and reports
        // executions, and to one that keeps none and reports events: the same
        // changes, fills and balances, step by step.
        enum Step {
            Submit(NewOrder),
            Quote(BookTicker),
            Range(&'static str, &'static str, &'static str, i64),
            Cancel(&'static str),
        }
        let limit =
            |id, side, price: &str, qty| order(id, side, OrderType::Limit { price: d(price) }, qty, TimeInForce::Gtc);
        let steps = vec![
            Step::Submit(order("m1", Side::Buy, OrderType::Market, "2.5", TimeInForce::Gtc)),
            Step::Submit(limit("l1", Side::Buy, "99", "1.5")),
            Step::Submit(limit("l2", Side::Sell, "103", "0.5")),
            Step::Submit(order("ioc", Side::Buy, OrderType::Limit { price: d("101") }, "2", TimeInForce::Ioc)),
            Step::Submit(order("fok", Side::Buy, OrderType::Limit { price: d("101") }, "9", TimeInForce::Fok)),
            Step::Submit(order("st", Side::Buy, OrderType::StopMarket { stop: d("104") }, "0.2", TimeInForce::Gtc)),
            Step::Quote(quote("98", "99", "1", 5)),
            Step::Range("100", "105", "98", 6),
            Step::Submit(limit("l3", Side::Buy, "50", "1")),
            Step::Cancel("l3"),
            Step::Submit(limit("l3", Side::Buy, "60", "1")),
            Step::Quote(quote("40", "41", "5", 9)),
        ];
        let (mut full, mut lean) = (core(), core().without_history());
        let mut client_ids = BTreeMap::new();
        let mut events = Vec::new();
        for (n, step) in steps.into_iter().enumerate() {
            events.clear();
            let (want, got) = match step {
                Step::Submit(new) => {
                    let a = full.submit(new.clone(), n as i64);
                    let b = lean.submit_events(&new, n as i64, &mut events);
                    match (a, b) {
                        (Ok(a), Ok(b)) => {
                            assert_eq!((a.order.order_id, a.order.status), (b.order_id, b.status), "step {n}");
                            client_ids.insert(b.order_id, new.client_order_id.clone());
                            (seen_of_executions(&a.executions), seen_of_events(&lean, &client_ids, &events))
                        }
                        (a, b) => {
                            assert_eq!(a.map(|_| ()), b.map(|_| ()), "step {n}");
                            continue;
                        }
                    }
                }
                Step::Quote(q) => {
                    let a = full.set_quote(q.clone());
                    lean.set_quote_events(q, &mut events);
                    (seen_of_executions(&a), seen_of_events(&lean, &client_ids, &events))
                }
                Step::Range(open, high, low, ts) => {
                    let a = full.match_range("BTCUSDT", d(open), d(high), d(low), ts);
                    lean.match_range_events("BTCUSDT", d(open), d(high), d(low), ts, &mut events);
                    (seen_of_executions(&a), seen_of_events(&lean, &client_ids, &events))
                }
                Step::Cancel(id) => {
                    let a = full.cancel(1, "BTCUSDT", id, n as i64).map(|o| (o.order_id, o.status));
                    let b = lean.cancel(1, "BTCUSDT", id, n as i64).map(|o| (o.order_id, o.status));
                    assert_eq!(a, b, "step {n}");
                    (Vec::new(), Vec::new())
                }
            };
            assert_eq!(got, want, "step {n}");
            assert_eq!(lean.balances(1), full.balances(1), "step {n}: balances");
            assert_eq!(lean.open_orders(1, None), full.open_orders(1, None), "step {n}: open orders");
        }
        assert!(!full.fills(1, "BTCUSDT", None).is_empty(), "the scenario fills");
        assert!(lean.fills(1, "BTCUSDT", None).is_empty(), "no history: no fills kept");
        assert_eq!(lean.all_orders(1, "BTCUSDT"), lean.open_orders(1, None), "no history: only open orders kept");
        assert!(lean.order_by_client(1, "m1").is_none() && full.order_by_client(1, "m1").is_some());
    }

    #[test]
    fn each_fill_names_its_order_when_a_client_id_is_used_again() {
        let mut c = core();
        let first = c.submit(order("again", Side::Buy, OrderType::Market, "0.1", TimeInForce::Gtc), 1).unwrap();
        let second = c.submit(order("again", Side::Buy, OrderType::Market, "0.1", TimeInForce::Gtc), 2).unwrap();
        assert_ne!(first.order.order_id, second.order.order_id);
        let fills = c.fills(1, "BTCUSDT", None);
        assert_eq!(fills.len(), 2);
        let owners: Vec<u64> =
            fills.iter().map(|f| c.order_of_trade("BTCUSDT", f.trade_id.as_u64().unwrap()).unwrap().order_id).collect();
        assert_eq!(owners, [first.order.order_id, second.order.order_id]);
    }

    /// Trade ids count per symbol (as on Binance), so the same id names a
    /// different fill in each: a fill's order is found by symbol and id.
    #[test]
    fn trade_ids_of_two_symbols_name_their_own_orders() {
        let mut c = core();
        let eth = Instrument { symbol: "ETHUSDT".into(), base_asset: "ETH".into(), ..instrument() };
        c.add_instrument(eth);
        c.set_quote(BookTicker { symbol: "ETHUSDT".into(), ..quote("10", "11", "5", 0) });
        let btc = c.submit(order("b", Side::Buy, OrderType::Market, "0.1", TimeInForce::Gtc), 1).unwrap();
        let eth = c
            .submit(
                NewOrder {
                    symbol: "ETHUSDT".into(),
                    ..order("e", Side::Buy, OrderType::Market, "1", TimeInForce::Gtc)
                },
                2,
            )
            .unwrap();
        let (btc_fill, eth_fill) = (&c.fills(1, "BTCUSDT", None)[0], &c.fills(1, "ETHUSDT", None)[0]);
        assert_eq!(btc_fill.trade_id, eth_fill.trade_id, "each symbol counts its own trades");
        let t = btc_fill.trade_id.as_u64().unwrap();
        assert_eq!(c.order_of_trade("BTCUSDT", t).map(|o| o.order_id), Some(btc.order.order_id));
        assert_eq!(c.order_of_trade("ETHUSDT", t).map(|o| o.order_id), Some(eth.order.order_id));
        assert!(c.order_of_trade("XRPUSDT", t).is_none());

        // State saved before this kept one order per trade id (the last
        // symbol's): loading it gives each symbol's fill its own order again.
        let mut saved = serde_json::to_value(&c).unwrap();
        saved["trade_orders"] = serde_json::json!({ t.to_string(): eth.order.order_id });
        let back: MatchingCore = serde_json::from_value(saved).unwrap();
        assert_eq!(back.order_of_trade("BTCUSDT", t).map(|o| o.order_id), Some(btc.order.order_id));
        assert_eq!(back.order_of_trade("ETHUSDT", t).map(|o| o.order_id), Some(eth.order.order_id));
        let again: MatchingCore = serde_json::from_value(serde_json::to_value(&back).unwrap()).unwrap();
        assert_eq!(again.order_of_trade("BTCUSDT", t).map(|o| o.order_id), Some(btc.order.order_id));
    }

    #[test]
    fn old_history_is_forgotten_but_open_orders_and_recent_fills_stay() {
        let mut c = core();
        c.submit(order("resting", Side::Buy, OrderType::Limit { price: d("90") }, "1", TimeInForce::Gtc), 1).unwrap();
        for i in 0..9 {
            c.submit(order(&format!("m{i}"), Side::Buy, OrderType::Market, "0.1", TimeInForce::Gtc), 2 + i).unwrap();
        }
        c.forget_history(5);
        assert_eq!(c.fills(1, "BTCUSDT", None).len(), 9, "up to twice the limit nothing goes");
        for i in 9..11 {
            c.submit(order(&format!("m{i}"), Side::Buy, OrderType::Market, "0.1", TimeInForce::Gtc), 20 + i).unwrap();
        }
        c.forget_history(5);
        let fills = c.fills(1, "BTCUSDT", None);
        assert_eq!(fills.len(), 5, "the newest five fills stay");
        assert_eq!(fills[0].client_order_id, "m6");
        for f in &fills {
            let owner = c.order_of_trade("BTCUSDT", f.trade_id.as_u64().unwrap()).expect("a kept fill keeps its order");
            assert_eq!(owner.client_order_id, f.client_order_id);
        }
        assert!(c.order_by_client(1, "resting").is_some_and(|o| o.status.is_open()), "open orders stay");
        assert!(c.order_by_client(1, "m0").is_none(), "old final orders go");
        assert_eq!(c.all_orders(1, "BTCUSDT").len(), 6, "the open one and the five of the kept fills");
    }

    #[test]
    fn market_buy_fills_at_touch_with_taker_fee() {
        let mut c = core();
        let r = c.submit(order("a", Side::Buy, OrderType::Market, "0.5", TimeInForce::Gtc), 1).unwrap();
        assert_eq!(r.order.status, OrderStatus::Filled);
        assert_eq!(r.executions.len(), 1);
        let f = r.executions[0].fill.clone().unwrap();
        assert_eq!((f.price, f.qty, f.fee, f.is_maker), (d("101"), d("0.5"), d("0.101"), false));
        assert_eq!(bal(&c, "USDT"), (d("100000") - d("50.5") - d("0.101"), Decimal::ZERO));
        assert_eq!(bal(&c, "BTC"), (d("1.5"), Decimal::ZERO));
    }

    #[test]
    fn commissions_follow_the_configured_asset() {
        // (commission asset, side) → (fee, fee asset, BTC after, USDT after), from 1 BTC / 100000 USDT.
        struct Case {
            asset: CommissionAsset,
            side: Side,
            /// The order asks for the quote whatever the schedule (Coinbase).
            in_quote: bool,
            want: (&'static str, &'static str, &'static str, &'static str),
        }
        use CommissionAsset::{Quote, Received};
        let cases = [
            // Buy 0.5 at 101 (taker 20 bps): the fee comes out of the BTC received.
            Case { asset: Received, side: Side::Buy, in_quote: false, want: ("0.001", "BTC", "1.499", "99949.5") },
            Case { asset: Quote, side: Side::Buy, in_quote: false, want: ("0.101", "USDT", "1.5", "99949.399") },
            // An order asking for the quote pays there under either schedule.
            Case { asset: Received, side: Side::Buy, in_quote: true, want: ("0.101", "USDT", "1.5", "99949.399") },
            // Sell 0.5 at 100: the fee comes out of the USDT received, either way.
            Case { asset: Received, side: Side::Sell, in_quote: false, want: ("0.1", "USDT", "0.5", "100049.9") },
            Case { asset: Quote, side: Side::Sell, in_quote: false, want: ("0.1", "USDT", "0.5", "100049.9") },
            Case { asset: Received, side: Side::Sell, in_quote: true, want: ("0.1", "USDT", "0.5", "100049.9") },
        ];
        for c in cases {
            let mut core = core();
            core.fees.commission_asset = c.asset;
            let mut new = order("a", c.side, OrderType::Market, "0.5", TimeInForce::Gtc);
            new.asked.fee_in_quote = c.in_quote;
            let r = core.submit(new, 1).unwrap();
            let f = r.executions[0].fill.clone().unwrap();
            let name = format!("{:?} {:?} in_quote={}", c.asset, c.side, c.in_quote);
            assert_eq!((f.fee, f.fee_asset.as_str()), (d(c.want.0), c.want.1), "{name}");
            assert_eq!(bal(&core, "BTC").0, d(c.want.2), "{name}");
            assert_eq!(bal(&core, "USDT").0, d(c.want.3), "{name}");
            assert_eq!(f.position_delta("BTC"), d(c.want.2) - Decimal::ONE, "{name}: the fill moves the holding");
        }
    }

    #[test]
    fn market_order_walks_levels_and_expires_remainder() {
        let mut c = core();
        // touch + 2 levels of 1 each = 3 available.
        let r = c.submit(order("a", Side::Buy, OrderType::Market, "4", TimeInForce::Gtc), 1).unwrap();
        let prices: Vec<_> = r.executions.iter().filter_map(|e| e.fill.as_ref().map(|f| f.price)).collect();
        assert_eq!(prices, vec![d("101"), d("101.01"), d("101.02")]);
        assert_eq!(r.order.status, OrderStatus::Expired);
        assert_eq!(r.order.filled_qty, d("3"));
        assert_eq!(bal(&c, "USDT").1, Decimal::ZERO, "nothing stays locked");
    }

    #[test]
    fn limit_rests_then_fills_partially_then_fully() {
        let mut c = core();
        let r =
            c.submit(order("l", Side::Buy, OrderType::Limit { price: d("99") }, "1.5", TimeInForce::Gtc), 1).unwrap();
        assert_eq!(r.order.status, OrderStatus::Accepted);
        assert!(r.executions.is_empty());
        assert_eq!(bal(&c, "USDT").1, d("148.797"), "locks notional plus worst fee");
        assert!(c.set_quote(quote("99.5", "100", "1", 2)).is_empty());
        let ex = c.set_quote(quote("98", "99", "1", 3));
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].order.status, OrderStatus::PartiallyFilled);
        assert_eq!(ex[0].fill.as_ref().unwrap().qty, d("1"));
        assert!(ex[0].fill.as_ref().unwrap().is_maker);
        let ex = c.set_quote(quote("97", "98", "1", 4));
        assert_eq!(ex[0].order.status, OrderStatus::Filled);
        assert_eq!(ex[0].order.filled_qty, d("1.5"));
        assert_eq!(bal(&c, "USDT").1, Decimal::ZERO);
        assert_eq!(bal(&c, "USDT").0, d("100000") - d("148.5") - d("0.1485"));
        assert!(c.open_orders(1, None).is_empty());
    }

    #[test]
    fn cancel_releases_lock_and_refuses_twice() {
        let mut c = core();
        c.submit(order("l", Side::Sell, OrderType::Limit { price: d("120") }, "0.5", TimeInForce::Gtc), 1).unwrap();
        assert_eq!(bal(&c, "BTC"), (d("0.5"), d("0.5")));
        let o = c.cancel(1, "BTCUSDT", "l", 2).unwrap();
        assert_eq!(o.status, OrderStatus::Canceled);
        assert_eq!(bal(&c, "BTC"), (d("1"), Decimal::ZERO));
        assert_eq!(c.cancel(1, "BTCUSDT", "l", 3), Err(MatchError::AlreadyFinal(OrderStatus::Canceled)));
        assert_eq!(c.cancel(1, "BTCUSDT", "nope", 3), Err(MatchError::UnknownOrder));
    }

    #[test]
    fn amend_relocks_loses_priority_and_takes_when_marketable() {
        let mut c = core();
        let limit = |p: &str| OrderType::Limit { price: d(p) };
        let a = c.submit(order("a", Side::Buy, limit("99"), "1", TimeInForce::Gtc), 1).unwrap().order.order_id;
        let b = c.submit(order("b", Side::Buy, limit("99"), "1", TimeInForce::Gtc), 1).unwrap().order.order_id;
        assert_eq!(bal(&c, "USDT").1, d("198.396"), "two locks of 99 x 1 plus the worst fee");
        // A bigger size at a lower price: the lock follows, `a` goes behind `b`.
        let r = c.amend(1, a, d("98"), d("2"), 2).unwrap();
        assert!(r.executions.is_empty());
        assert_eq!((r.order.qty, r.order.order_type.limit_price()), (d("2"), Some(d("98"))));
        assert_eq!(r.order.locked, d("196.392"));
        assert_eq!(bal(&c, "USDT").1, d("99.198") + d("196.392"));
        let queue: Vec<u64> = c.resting_orders("BTCUSDT").iter().map(|o| o.order_id).collect();
        assert_eq!(queue, vec![b, a], "an edit loses priority");
        // A marketable price takes the book at once, as a new order would.
        let r = c.amend(1, b, d("101"), d("1"), 3).unwrap();
        assert_eq!(r.order.status, OrderStatus::Filled);
        assert_eq!(r.executions.len(), 1);
        assert!(!r.executions[0].fill.as_ref().unwrap().is_maker);
        // Refusals: unknown, another account's, a final order, a size at the filled size, too little money.
        assert_eq!(c.amend(1, 999, d("98"), d("1"), 4).map(|_| ()), Err(MatchError::UnknownOrder));
        assert_eq!(c.amend(2, a, d("98"), d("1"), 4).map(|_| ()), Err(MatchError::UnknownOrder));
        assert_eq!(c.amend(1, b, d("98"), d("1"), 4).map(|_| ()), Err(MatchError::AlreadyFinal(OrderStatus::Filled)));
        assert!(matches!(c.amend(1, a, d("500"), d("1000"), 4), Err(MatchError::InsufficientBalance { .. })));
        let before = c.order(a).cloned();
        assert!(matches!(c.amend(1, a, d("2000000"), d("1"), 4), Err(MatchError::Filter(_))));
        assert_eq!(c.order(a).cloned(), before, "a refused edit changes nothing");
        // Cancelling after an edit releases exactly the new lock.
        c.cancel(1, "BTCUSDT", "a", 5).unwrap();
        assert_eq!(bal(&c, "USDT").1, Decimal::ZERO);
        // Partly filled: not down to what has filled; above it, the lock covers the new remainder.
        let p = c.submit(order("p", Side::Buy, limit("99"), "2", TimeInForce::Gtc), 6).unwrap().order.order_id;
        c.set_quote(quote("98", "99", "1", 7));
        assert_eq!(c.order(p).map(|o| o.filled_qty), Some(d("1")));
        assert_eq!(
            c.amend(1, p, d("99"), d("1"), 8).map(|_| ()),
            Err(MatchError::Filter(FilterViolation::QtyBelowMin { qty: d("1"), min: d("1") }))
        );
        let r = c.amend(1, p, d("97"), d("1.5"), 8).unwrap();
        assert_eq!((r.order.filled_qty, r.order.locked), (d("1"), d("48.597")), "97 x 0.5 plus the worst fee");
        assert_eq!(bal(&c, "USDT").1, d("48.597"));
    }

    #[test]
    fn refusals() {
        let mut c = core();
        let too_big = c.submit(order("x", Side::Sell, OrderType::Market, "2", TimeInForce::Gtc), 1);
        assert!(matches!(too_big, Err(MatchError::InsufficientBalance { .. })));
        let tiny = c.submit(order("y", Side::Buy, OrderType::Limit { price: d("100") }, "0.01", TimeInForce::Gtc), 1);
        assert!(matches!(tiny, Err(MatchError::Filter(FilterViolation::NotionalBelowMin { .. }))));
        c.submit(order("z", Side::Buy, OrderType::Limit { price: d("50") }, "1", TimeInForce::Gtc), 1).unwrap();
        let dup = c.submit(order("z", Side::Buy, OrderType::Limit { price: d("50") }, "1", TimeInForce::Gtc), 1);
        assert_eq!(dup, Err(MatchError::DuplicateClientOrderId("z".into())));
    }

    #[test]
    fn ioc_and_fok() {
        let mut c = core();
        let r =
            c.submit(order("i", Side::Buy, OrderType::Limit { price: d("101") }, "2", TimeInForce::Ioc), 1).unwrap();
        assert_eq!(r.order.status, OrderStatus::Expired);
        assert_eq!(r.order.filled_qty, d("1"));
        let r =
            c.submit(order("f", Side::Buy, OrderType::Limit { price: d("101") }, "2", TimeInForce::Fok), 1).unwrap();
        assert_eq!(r.order.status, OrderStatus::Expired);
        assert_eq!(r.order.filled_qty, Decimal::ZERO);
    }

    #[test]
    fn bar_range_fills_limits_and_gaps_at_open() {
        let mut c = core();
        c.submit(order("b", Side::Buy, OrderType::Limit { price: d("95") }, "0.1", TimeInForce::Gtc), 1).unwrap();
        c.submit(order("s", Side::Sell, OrderType::Limit { price: d("110") }, "0.1", TimeInForce::Gtc), 1).unwrap();
        assert!(c.match_range("BTCUSDT", d("100"), d("105"), d("96"), 10).is_empty());
        let ex = c.match_range("BTCUSDT", d("90"), d("112"), d("89"), 20);
        let prices: Vec<_> = ex.iter().map(|e| e.fill.as_ref().unwrap().price).collect();
        assert_eq!(prices, vec![d("90"), d("110")]);
    }

    #[test]
    fn stop_limit_triggers_then_rests() {
        let mut c = core();
        let stop = OrderType::StopLimit { stop: d("105"), price: d("106") };
        c.submit(order("st", Side::Buy, stop, "0.1", TimeInForce::Gtc), 1).unwrap();
        assert!(c.set_quote(quote("103", "104", "1", 2)).is_empty());
        let ex = c.set_quote(quote("104.5", "105.5", "1", 3));
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].fill.as_ref().unwrap().price, d("106"));
    }
}
