//! The backtest loop: bars through the live `StrategyRunner`s, the live
//! `RiskEngine` and the one `MatchingCore`, without actors.
//!
//! Fill model, per bar of a symbol:
//! 1. Resting limit orders fill when the bar's range reaches their price: at
//!    their price, or at the open when the bar opened through it (maker fee).
//! 2. Orders decided at an earlier bar's close are submitted at this bar's
//!    open: the book is set to the open ± the slippage (rounded to the tick
//!    away from the trader), so a market order fills there (taker fee), a
//!    marketable limit fills there up to its price, and any other limit rests
//!    and may fill within this bar's range.
//! 3. At the close the risk engine learns the price, strategies see the bar,
//!    and their intents pass the risk engine; what it approves waits for the
//!    next bar's open. After the last bar nothing fills.
//! 4. Except for strategies that fill at the close
//!    ([`Strategy::orders_on_close`], Pine's `process_orders_on_close = true`):
//!    what they decided at this close is submitted at once, with the book at
//!    the close ± the slippage, so a market order fills at that close (taker
//!    fee) and a marketable limit there up to its price; another limit rests
//!    from the next bar on. Live, a market order sent right after the close is
//!    the same thing.
//!
//! Fills are stamped with the bar's open time (those at a close, step 4, with
//! its close time).
//!
//! Futures events (funding settlements, funding intervals, open interest;
//! see [`Backtest::with_futures`]) reach the strategies as live delivers them:
//! live, a bar arrives when it closes and a futures event when it happens. So
//! every futures event stamped at or before a bar's close time is delivered
//! before that bar's close: one stamped before the bar's open before the open
//! (its orders are submitted there, as live), the others after the open. Ties
//! between futures events keep their loaded order (by time, then file order).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use keel_core::account::{Account, AccountWriter, Assets};
use keel_core::balance::Balance;
use keel_core::exits::ExitSpec;
use keel_core::fill::Fill;
use keel_core::futures::FuturesEvent;
use keel_core::instrument::{ceil_to_step, floor_to_step, Instrument};
use keel_core::market::{BarSeries, BookTicker, MarketEvent};
use keel_core::order::{OrderIntent, OrderStatus, OrderTag, OrderType, Side, TimeInForce};
use keel_core::sim::{FeeSchedule, MatchError, MatchingCore, NewOrder, OrderEvent};
use keel_core::strategy::{OrderUpdate, Signal, Strategy, StrategyRunner};
use keel_core::{Decimal, StrategyId, Symbol};
use risk::config::RiskConfig;
use risk::protections::ProtectionEvent;
use risk::RiskEngine;
use serde::Serialize;

use super::data::Bars;
pub use super::equity::{EquityCurve, EquityPoint};
use fills::KeptFill;
pub use fills::{FillFeed, Fills};

const ACCOUNT: u32 = 1;
/// After this many bars in a row taken by the strategy, a quiet run is tried only every this
/// many bars (see `Backtest::quiet_run`).
const QUIET_PROBE: usize = 64;
const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

/// Everything the simulation needs besides the bars and the strategies.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Instruments with their filters (every traded symbol must have one).
    pub instruments: Vec<Instrument>,
    /// Starting balances of the one account all strategies share.
    pub balances: Vec<Balance>,
    /// Maker and taker fees.
    pub fees: FeeSchedule,
    /// Slippage of orders filled at the open, in basis points.
    pub slippage_bps: Decimal,
    /// Risk limits, as live.
    pub risk: RiskConfig,
    /// The currency equity is measured in (a quote asset).
    pub currency: String,
}

/// One strategy instance to run.
pub struct StrategySlot {
    /// Its id.
    pub id: StrategyId,
    /// The strategy.
    pub strategy: Box<dyn Strategy>,
    /// Its exits (validated), evaluated on every bar's path.
    pub exits: Option<ExitSpec>,
}

/// A signal for `webhook` strategies and when it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedSignal {
    /// Arrival time (ms since the epoch).
    pub ts_ms: i64,
    /// The signal.
    pub signal: Signal,
}

/// An order that passed the risk engine, in decision order (for parity checks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderRecord {
    /// Its number `N`: the client order id is `bt-N` (kept as the number, so
    /// recording an order allocates nothing; see [`Self::client_order_id`]).
    pub number: u64,
    /// When it was decided (a bar's close time).
    pub decided_ms: i64,
    /// The approved, rounded intent.
    pub intent: OrderIntent,
}

impl OrderRecord {
    /// The client order id it was sent under (`bt-N`).
    pub fn client_order_id(&self) -> String {
        let mut id = String::new();
        write_client_id(&mut id, self.number);
        id
    }
}

/// Writes the client order id of order number `number` into `buf` (its
/// storage reused).
pub(super) fn write_client_id(buf: &mut String, number: u64) {
    buf.clear();
    buf.push_str("bt-");
    buf.push_str(itoa::Buffer::new().format(number));
}

/// What a simulation produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Equity after each distinct bar close time.
    pub equity: EquityCurve,
    /// Every fill, in order, with its strategy id.
    pub fills: Fills,
    /// Every approved order, in decision order.
    pub orders: Vec<OrderRecord>,
    /// Risk rejections by reason code.
    pub risk_rejections: BTreeMap<String, u64>,
    /// Venue (matching core) rejections by reason.
    pub venue_rejections: BTreeMap<String, u64>,
    /// Orders still open or not yet submitted when the data ended.
    pub unfilled_at_end: usize,
    /// Bars processed.
    pub bars: usize,
    /// Equity before the first bar.
    pub initial_equity: Decimal,
    /// Equity after the last bar.
    pub final_equity: Decimal,
    /// Strategies paused by a panic, with the message.
    pub failures: Vec<String>,
    /// Signals delivered to strategies.
    pub signals_delivered: usize,
    /// Futures events delivered to strategies (one per strategy reached).
    pub futures_delivered: usize,
    /// Setup alerts the strategies raised (a `scanner`), in order, stamped
    /// with the bar time they were raised at.
    pub alerts: Vec<keel_core::alert::SetupAlert>,
    /// What the risk engine's portfolio protections did, in order.
    pub protection_events: Vec<ProtectionRecord>,
    /// Every commission, valued in the quote asset of its symbol (one paid in
    /// the base asset at the fill price).
    pub fees_paid: Decimal,
    /// Exits by reason (`stop_loss`, `take_profit`, ..., `signal`): how many
    /// exit orders (or strategy sells of a position with exits) filled.
    pub exits: BTreeMap<String, u64>,
}

/// One protection event (a trip, a release, a strategy paused or resumed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtectionRecord {
    /// When (a bar's close time).
    pub ts_ms: i64,
    /// The event's code (`tripped`, `cleared`, `strategy_paused`, `strategy_resumed`).
    pub code: String,
    /// What happened.
    pub reason: String,
}

/// The bars of all symbols, in columns, and the order to replay them in:
/// by close time, then symbol. Cheap to clone (shared, read-only).
#[derive(Clone, Default)]
pub struct Timeline(Arc<Replay>);

#[derive(Default)]
struct Replay {
    symbols: Vec<Symbol>,
    bars: Vec<Bars>,
    /// With several symbols, the symbol of each step (2 bytes a bar); empty
    /// with one, whose bars replay in their own order.
    order: Vec<u16>,
    len: usize,
    /// One symbol whose close times all differ: step `k` is also the `k`-th
    /// distinct close time.
    distinct: bool,
    /// With `distinct` bars evenly spaced, each closing a fixed time after it
    /// opens: (the first close time, the spacing), so step `k` closes at
    /// `first + k × spacing` without a look at the columns (the report walks
    /// the close times several times).
    regular: Option<(i64, i64)>,
}

impl Timeline {
    /// Merges series of bars (one `Vec<Bar>` per symbol, each sorted), for
    /// tests and benchmarks.
    ///
    /// # Panics
    /// When a price or volume needs more than 18 digits (see [`Bars`]).
    pub fn new(series: Vec<(Symbol, Vec<keel_core::market::Bar>)>) -> Self {
        Self::from_columns(
            series
                .into_iter()
                .map(|(symbol, bars)| {
                    let columns = Bars::from_bars(&bars).unwrap_or_else(|e| panic!("{symbol}: {e}"));
                    (symbol, columns)
                })
                .collect(),
        )
    }

    /// Merges loaded series (each sorted by open time; at most 65 535 symbols).
    pub fn from_columns(series: Vec<(Symbol, Bars)>) -> Self {
        let mut symbols = Vec::with_capacity(series.len());
        let mut all = Vec::with_capacity(series.len());
        for (symbol, mut bars) in series {
            if bars.close_time(0).is_none() && !bars.is_empty() {
                bars.resolve_close_times(super::data::infer_interval(&bars));
            }
            symbols.push(symbol);
            all.push(bars);
        }
        let len = all.iter().map(Bars::len).sum();
        let mut order = Vec::new();
        if all.len() > 1 {
            assert!(all.len() <= usize::from(u16::MAX) + 1, "at most 65 536 symbols");
            order.reserve_exact(len);
            let close = |s: usize, i: usize| all[s].close_time(i).unwrap_or_else(|| all[s].open_time(i));
            let mut next = vec![0usize; all.len()];
            let mut heap: BinaryHeap<Reverse<(i64, u16)>> =
                (0..all.len()).filter(|s| !all[*s].is_empty()).map(|s| Reverse((close(s, 0), s as u16))).collect();
            while let Some(Reverse((_, s))) = heap.pop() {
                let s = usize::from(s);
                order.push(s as u16);
                next[s] += 1;
                if next[s] < all[s].len() {
                    heap.push(Reverse((close(s, next[s]), s as u16)));
                }
            }
        }
        let distinct = match all.as_slice() {
            [one] => one.close_times_increase(),
            _ => false,
        };
        let regular = match all.as_slice() {
            [one] if distinct && !one.is_empty() && one.time_width() == 0 => match one.close_times() {
                super::data::columns::CloseTimes::Offset(d) => {
                    let spacing = if one.len() > 1 { one.open_time(1) - one.open_time(0) } else { 0 };
                    Some((one.open_time(0) + d, spacing))
                }
                _ => None,
            },
            _ => None,
        };
        Self(Arc::new(Replay { symbols, bars: all, order, len, distinct, regular }))
    }

    /// The `k`-th distinct close time, when that is bar `k`'s (see `Replay::distinct`).
    #[inline]
    pub(super) fn distinct_close_time(&self, k: usize) -> Option<i64> {
        if !self.0.distinct || k >= self.0.len {
            return None;
        }
        if let Some((first, spacing)) = self.0.regular {
            return Some(first + k as i64 * spacing);
        }
        Some(self.close_time(0, k))
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// The first bar from bar `i` on that closes at or after `due` (the number of bars if
    /// none), on a timeline whose every bar closes a time of its own (see `Replay::distinct`):
    /// those times rise, so it is computed when they are evenly spaced and found by halving
    /// otherwise.
    pub(super) fn first_closing_at(&self, i: usize, due: i64) -> usize {
        if let Some((first, spacing)) = self.0.regular.filter(|_| self.0.distinct) {
            // The first k with first + k·spacing ≥ due, in i128 (no overflow for any due).
            let ahead = (i128::from(due) - i128::from(first)).max(0).unsigned_abs();
            let k = ahead.div_ceil(u128::from(spacing.max(1).unsigned_abs()));
            return usize::try_from(k).unwrap_or(usize::MAX).clamp(i, self.0.len.max(i));
        }
        let (mut lo, mut hi) = (i, self.0.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.distinct_close_time(mid) {
                Some(t) if t < due => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// The step between consecutive close times when they are evenly spaced
    /// (see `Replay::regular`).
    pub(super) fn regular_step(&self) -> Option<i64> {
        self.0.regular.map(|(_, spacing)| spacing)
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// The symbols, in index order.
    pub fn symbols(&self) -> &[Symbol] {
        &self.0.symbols
    }

    /// The bars of symbol `s`.
    pub fn bars(&self, s: usize) -> &Bars {
        &self.0.bars[s]
    }

    /// (symbol, bar index) of each step, in replay order.
    pub fn steps(&self) -> Steps<'_> {
        Steps { replay: &self.0, n: 0, next: vec![0; self.0.bars.len()] }
    }

    /// The close time of each step, in replay order.
    pub fn close_times(&self) -> CloseTimes<'_> {
        CloseTimes { steps: self.steps() }
    }

    /// The open time of the first bar replayed.
    pub fn first_open_time(&self) -> Option<i64> {
        self.steps().next().map(|(s, i)| self.0.bars[s].open_time(i))
    }

    #[inline]
    fn close_time(&self, s: usize, i: usize) -> i64 {
        let bars = &self.0.bars[s];
        bars.close_time(i).unwrap_or_else(|| bars.open_time(i))
    }
}

/// Iterator over a [`Timeline`]'s steps: (symbol index, bar index).
#[derive(Clone)]
pub struct Steps<'a> {
    replay: &'a Replay,
    n: usize,
    /// Per symbol, its next bar.
    next: Vec<usize>,
}

impl Iterator for Steps<'_> {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.n >= self.replay.len {
            return None;
        }
        let s = self.replay.order.get(self.n).map_or(0, |s| usize::from(*s));
        self.n += 1;
        let i = self.next[s];
        self.next[s] += 1;
        Some((s, i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.replay.len - self.n;
        (left, Some(left))
    }

    /// With one symbol, step `n` is its bar `n`: skipping steps is an addition (a quiet run skips
    /// thousands at a time).
    fn nth(&mut self, k: usize) -> Option<(usize, usize)> {
        if self.replay.order.is_empty() && self.next.len() == 1 {
            let k = k.min(self.replay.len - self.n);
            self.n += k;
            self.next[0] += k;
            return self.next();
        }
        for _ in 0..k {
            self.next()?;
        }
        self.next()
    }
}

/// Iterator over a [`Timeline`]'s close times, one per step.
#[derive(Clone)]
pub struct CloseTimes<'a> {
    steps: Steps<'a>,
}

impl Iterator for CloseTimes<'_> {
    type Item = i64;

    #[inline]
    fn next(&mut self) -> Option<i64> {
        let (s, i) = self.steps.next()?;
        let bars = &self.steps.replay.bars[s];
        Some(bars.close_time(i).unwrap_or_else(|| bars.open_time(i)))
    }
}

/// One symbol's bars of a timeline, as a strategy foresees them.
struct SymbolBars {
    timeline: Timeline,
    /// The symbol's index.
    s: usize,
}

impl BarSeries for SymbolBars {
    fn len(&self) -> usize {
        self.timeline.bars(self.s).len()
    }

    fn open_time(&self, i: usize) -> i64 {
        self.timeline.bars(self.s).open_time(i)
    }

    fn bar(&self, i: usize, out: &mut keel_core::market::Bar) {
        self.timeline.bars(self.s).fill(i, out);
    }
}

/// An order waiting for the next open of its symbol.
struct Queued {
    /// Its record in `Outcome::orders` (client order id and intent).
    record: usize,
    runner: usize,
}

/// Whose an order in the matching core is.
#[derive(Debug, Clone, Copy)]
struct Owner {
    runner: usize,
    tag: Option<OrderTag>,
    /// Its record in `Outcome::orders`.
    record: usize,
    /// Its symbol's index.
    symbol: usize,
}

/// How the account's assets are valued in the report currency.
struct Valuation {
    /// Per asset: amount, and the symbol whose close prices it (None: it is the currency, or unpriced).
    assets: Vec<(String, Decimal, Option<usize>)>,
    /// The amounts as `f64`, refreshed from the exact ones after every fill.
    amounts_f64: Vec<f64>,
    /// The assets other than the currency that have a price: (asset, symbol), in asset order.
    priced: Vec<(usize, usize)>,
}

/// The backtest engine.
pub struct Backtest {
    core: MatchingCore,
    /// The account, as live: the simulator writes each fill, the risk engine
    /// and the strategies read it.
    account: AccountWriter,
    risk: RiskEngine,
    runners: Vec<StrategyRunner>,
    /// Per symbol index: the runners that trade it.
    runners_by_symbol: Vec<Vec<usize>>,
    /// Per runner: its orders decided at a close fill at that close ([`Strategy::orders_on_close`]).
    on_close: Vec<bool>,
    /// Per symbol index: some runner trading it fills at the close.
    closes: Vec<bool>,
    symbol_index: FxHashMap<Symbol, usize>,
    instruments: Vec<Option<Instrument>>,
    /// Per symbol: orders to submit at the next open.
    queued: Vec<Vec<Queued>>,
    /// Per symbol: our orders resting in the core.
    resting: Vec<usize>,
    /// Open orders: the core's order id → whose it is.
    owner: FxHashMap<u64, Owner>,
    slippage: Decimal,
    next_id: u64,
    /// Per symbol: (base asset index, quote asset index) in `valuation.assets`.
    legs: Vec<Option<(usize, usize)>>,
    valuation: Valuation,
    last_close: Vec<Decimal>,
    last_close_time: Vec<i64>,
    /// When the protections must look again (see [`Backtest::protect`]).
    gate: ProtectionGate,
    filled_since_eval: bool,
    /// Per symbol: net traded quantity, and whether it is exposed (not flat
    /// for trading; kept, so a fill checks the new quantity only).
    traded: Vec<(Decimal, bool)>,
    exposed_symbols: usize,
    out: Outcome,
    intents: Vec<(usize, OrderIntent)>,
    // Reused from order to order, so the order path allocates no memory of its own:
    /// The core's events of the call being handled.
    events: Vec<OrderEvent>,
    /// The order being submitted.
    new_order: NewOrder,
    /// The update being told to a strategy.
    update: OrderUpdate,
    /// The venue's balances.
    balances: Vec<Balance>,
    /// A client order id being decided or finished.
    id_buf: String,
    /// The timeline's symbols, as interned (see [`intern`]).
    symbols: Vec<Symbol>,
    /// The fill being told (its strings reused).
    fill_buf: Option<Fill>,
    /// Funding and open-interest events, in delivery order.
    futures: Arc<[FuturesEvent]>,
    /// Whether strategies are handed their bars before the run ([`Backtest::foreseeing`]).
    foresee: bool,
}

impl Backtest {
    /// A backtest over `symbols` (the timeline's) with the strategies.
    pub fn new(mut config: SimConfig, symbols: &[Symbol], strategies: Vec<StrategySlot>) -> Self {
        let symbols = intern(symbols, &strategies, &mut config.instruments);
        let symbols = symbols.as_slice();
        // The outcome records every order and fill; the core keeps only open orders.
        let mut core = MatchingCore::new(config.fees, 0).without_history();
        for i in &config.instruments {
            core.add_instrument(i.clone());
        }
        core.add_account(ACCOUNT, config.balances.clone());
        let account = AccountWriter::new(Account::new(), Assets::of(&config.instruments));
        let mut risk = RiskEngine::new(config.risk.clone(), config.instruments.clone()).with_account(account.view());
        account.apply_balances(&config.balances, 0);
        risk.on_balances(&config.balances);
        let symbol_index: FxHashMap<Symbol, usize> = symbols.iter().enumerate().map(|(i, s)| (s.clone(), i)).collect();
        let runners: Vec<StrategyRunner> = strategies
            .into_iter()
            .map(|s| {
                let runner = StrategyRunner::new(s.id, s.strategy)
                    .with_instruments(&config.instruments)
                    .with_account(account.view())
                    .with_bar_exits();
                match s.exits {
                    Some(spec) => runner.with_exits(spec),
                    None => runner,
                }
            })
            .collect();
        let runners_by_symbol = symbols
            .iter()
            .map(|s| runners.iter().enumerate().filter(|(_, r)| r.wants(s)).map(|(i, _)| i).collect())
            .collect();
        let instruments: Vec<Option<Instrument>> =
            symbols.iter().map(|s| config.instruments.iter().find(|i| i.symbol == *s).cloned()).collect();
        let on_close: Vec<bool> = runners.iter().map(StrategyRunner::orders_on_close).collect();
        let closes = symbols.iter().map(|s| runners.iter().any(|r| r.wants(s) && r.orders_on_close())).collect();

        // Assets: the currency first, then every balance and traded leg.
        let mut assets: Vec<(String, Decimal, Option<usize>)> = vec![(config.currency.clone(), Decimal::ZERO, None)];
        let asset_index = |name: &str, assets: &mut Vec<(String, Decimal, Option<usize>)>| -> usize {
            if let Some(i) = assets.iter().position(|a| a.0 == name) {
                return i;
            }
            assets.push((name.to_string(), Decimal::ZERO, None));
            assets.len() - 1
        };
        for b in &config.balances {
            let i = asset_index(&b.asset, &mut assets);
            assets[i].1 += b.free + b.locked;
        }
        let mut legs = Vec::with_capacity(symbols.len());
        for inst in &instruments {
            legs.push(
                inst.as_ref().map(|inst| {
                    (asset_index(&inst.base_asset, &mut assets), asset_index(&inst.quote_asset, &mut assets))
                }),
            );
        }
        // A base asset is priced by a symbol quoted in the currency.
        for (s, inst) in instruments.iter().enumerate() {
            if let (Some(inst), Some((base, _))) = (inst, legs[s]) {
                if inst.quote_asset == config.currency && assets[base].2.is_none() && base != 0 {
                    assets[base].2 = Some(s);
                }
            }
        }
        let n = symbols.len();
        let strategies = runners.iter().map(|r| r.id().clone()).collect();
        Self {
            core,
            account,
            risk,
            runners,
            runners_by_symbol,
            on_close,
            closes,
            symbol_index,
            instruments: instruments.clone(),
            queued: (0..n).map(|_| Vec::new()).collect(),
            resting: vec![0; n],
            owner: FxHashMap::default(),
            slippage: config.slippage_bps / BPS,
            next_id: 1,
            legs,
            valuation: Valuation {
                amounts_f64: assets.iter().map(|a| decimal_f64(a.1)).collect(),
                priced: assets.iter().enumerate().skip(1).filter_map(|(i, a)| Some((i, a.2?))).collect(),
                assets,
            },
            last_close: vec![Decimal::ZERO; n],
            last_close_time: vec![i64::MIN; n],
            gate: ProtectionGate::new(&config.risk),
            filled_since_eval: false,
            traded: vec![(Decimal::ZERO, false); n],
            exposed_symbols: 0,
            out: Outcome { fills: Fills::new(instruments, strategies), ..Outcome::default() },
            intents: Vec::with_capacity(8),
            events: Vec::new(),
            new_order: NewOrder {
                account: ACCOUNT,
                client_order_id: String::new(),
                symbol: symbols.first().cloned().unwrap_or_else(|| Symbol::new("")),
                side: Side::Buy,
                order_type: OrderType::Market,
                qty: Decimal::ZERO,
                tif: TimeInForce::Gtc,
                asked: Default::default(),
            },
            update: OrderUpdate {
                client_order_id: None,
                symbol: Symbol::new(""),
                side: Side::Buy,
                status: OrderStatus::Accepted,
                filled_qty: Decimal::ZERO,
                reason: None,
                tag: None,
                exit: None,
            },
            balances: Vec::new(),
            id_buf: String::new(),
            symbols: symbols.to_vec(),
            fill_buf: None,
            futures: Arc::from(Vec::new()),
            foresee: false,
        }
    }

    /// Hands each strategy the bars of its symbols before the run
    /// ([`Strategy::foresee`]): a Pine script that reads no strategy state then
    /// runs on a thread of its own, beside the engine. For a run that has the
    /// machine to itself; a sweep's runs already keep every core busy.
    pub fn foreseeing(mut self) -> Self {
        self.foresee = true;
        self
    }

    /// Funding and open-interest events to deliver beside the bars, sorted
    /// by time (see the module doc for when each is delivered). Shared, so a
    /// sweep hands every run the same events without copying them.
    pub fn with_futures(mut self, events: Arc<[FuturesEvent]>) -> Self {
        self.futures = events;
        self
    }

    /// Pauses a strategy (as a `paused = true` config block does live).
    pub fn set_paused(&mut self, id: &str, paused: bool) {
        for r in &mut self.runners {
            if r.id().as_str() == id {
                r.set_paused(paused);
            }
        }
    }

    /// Assets that have no price in the report currency (valued at zero).
    pub fn unpriced_assets(&self) -> Vec<String> {
        self.valuation.assets.iter().skip(1).filter(|a| a.2.is_none()).map(|a| a.0.clone()).collect()
    }

    /// Replays the timeline; `progress` is called with the number of bars done
    /// every 65 536 bars and at the end.
    pub fn run(mut self, timeline: &Timeline, signals: &[TimedSignal], mut progress: impl FnMut(usize)) -> Outcome {
        if self.foresee {
            for (s, runners) in self.runners_by_symbol.iter().enumerate() {
                for &r in runners {
                    if !self.runners[r].is_paused() {
                        let bars = Arc::new(SymbolBars { timeline: timeline.clone(), s });
                        self.runners[r].foresee(&self.symbols[s], bars);
                    }
                }
            }
        }
        self.out.equity = EquityCurve::new(timeline);
        // Room for an order every 8 bars up front: growing the orders by copying touched twice
        // the memory, each fresh page a fault (a tenth of a run's time); room never used is
        // never touched. Fills are kept in chunks, which never move.
        let room = (timeline.len() / 8).min(1 << 20);
        self.out.orders.reserve(room);
        self.out.initial_equity = self.equity();
        self.protect(decimal_f64(self.out.initial_equity), timeline.first_open_time().unwrap_or(0));
        let mut next_signal = 0;
        let futures = self.futures.clone();
        // The next futures event and its time (never, without any): two
        // integer comparisons a bar when there are none.
        let (mut next_future, mut next_future_ts) = (0, futures.first().map_or(i64::MAX, FuturesEvent::ts_ms));
        // One bar event per symbol, overwritten in place at each of its bars.
        let mut events: Vec<MarketEvent> = self
            .symbols
            .iter()
            .map(|symbol| {
                MarketEvent::Bar(keel_core::market::Bar {
                    symbol: symbol.clone(),
                    open_time: 0,
                    close_time: 0,
                    open: Decimal::ZERO,
                    high: Decimal::ZERO,
                    low: Decimal::ZERO,
                    close: Decimal::ZERO,
                    volume: Decimal::ZERO,
                })
            })
            .collect();
        // With one symbol whose close times all differ, every bar is the last of its time.
        let every_bar_closes_a_time = timeline.distinct_close_time(0).is_some();
        // One symbol traded by one strategy: a bar that strategy skips and nothing else acts
        // on is a quiet bar (see `quiet_run`).
        let quiet_runs =
            every_bar_closes_a_time && matches!(self.runners_by_symbol.as_slice(), [only] if only.len() == 1);
        let mut taken_in_a_row = 0;
        let mut steps = timeline.steps().peekable();
        let mut n = 0;
        while let Some((s, i)) = steps.next() {
            // A strategy that keeps taking its bars (one that never skips any) is asked for a
            // quiet run only every `QUIET_PROBE`th bar once it took that many in a row.
            if quiet_runs && (taken_in_a_row < QUIET_PROBE || n % QUIET_PROBE == 0) {
                // The first futures event or signal due ends a quiet run before its bar.
                let due = next_future_ts.min(signals.get(next_signal).map_or(i64::MAX, |x| x.ts_ms));
                match self.quiet_run(s, i, timeline, due, &mut n, &mut progress) {
                    None => taken_in_a_row += 1,
                    Some(0) => {}
                    Some(quiet) => {
                        taken_in_a_row = 0;
                        // Their steps, after this one.
                        if quiet > 1 {
                            steps.nth(quiet - 2);
                        }
                        continue;
                    }
                }
            }
            let columns = timeline.bars(s);
            let MarketEvent::Bar(bar) = &mut events[s] else { continue };
            columns.fill_close(i, bar);
            // The rest of the bar only once something reads it: orders meeting its range, exits,
            // a strategy taking it. Most bars of strategies that foresaw them need none of it.
            let mut whole = self.resting[s] > 0
                || !self.queued[s].is_empty()
                || self.runners_by_symbol[s].iter().any(|&r| !self.runners[r].exits_idle());
            if whole {
                columns.fill_rest(i, bar);
            }
            let bar: &keel_core::market::Bar = bar;
            if next_future_ts < bar.open_time {
                (next_future, next_future_ts) = self.deliver_futures(&futures, next_future, bar.open_time - 1);
            }
            if self.resting[s] > 0 || !self.queued[s].is_empty() {
                self.open_bar(s, bar);
            }
            for k in 0..self.runners_by_symbol[s].len() {
                let r = self.runners_by_symbol[s][k];
                if let Some((intent, price)) = self.runners[r].bar_exit(bar) {
                    self.exit_at(r, s, intent, price, bar.open_time);
                }
            }
            if next_future_ts <= bar.close_time {
                (next_future, next_future_ts) = self.deliver_futures(&futures, next_future, bar.close_time);
            }
            self.last_close[s] = bar.close;
            self.last_close_time[s] = bar.close_time;
            while let Some(ts) = signals.get(next_signal).map(|x| x.ts_ms) {
                if ts > bar.close_time {
                    break;
                }
                self.deliver_signal(&signals[next_signal].signal, bar.close_time);
                next_signal += 1;
            }
            let close_time = bar.close_time;
            for k in 0..self.runners_by_symbol[s].len() {
                let r = self.runners_by_symbol[s][k];
                if self.runners[r].skip_bars(&self.symbols[s], i, i + 1) == 1 {
                    continue;
                }
                if !whole {
                    if let MarketEvent::Bar(bar) = &mut events[s] {
                        columns.fill_rest(i, bar);
                    }
                    whole = true;
                }
                let result = self.runners[r].on_market(&events[s], close_time);
                // Most bars produce nothing to handle.
                if !matches!(result, Ok(0)) {
                    self.after_callback(r, result, close_time);
                }
            }
            let MarketEvent::Bar(bar) = &events[s] else { continue };
            if self.closes[s] && !self.queued[s].is_empty() {
                self.close_bar(s, bar);
            }
            // One equity point per distinct close time, after all symbols closed.
            let last_of_time = every_bar_closes_a_time
                || steps.peek().is_none_or(|&(t, j)| timeline.close_time(t, j) != bar.close_time);
            if last_of_time {
                let equity = self.equity_f64();
                self.out.equity.push(equity, self.exposed_symbols > 0);
                self.protect(equity, bar.close_time);
            }
            n += 1;
            if n & 0xffff == 0 {
                progress(n);
            }
        }
        progress(n);
        for r in &mut self.runners {
            for event in r.drain_exit_events() {
                *self.out.exits.entry(event.reason.as_str().to_string()).or_default() += 1;
            }
        }
        self.out.bars = n;
        self.out.final_equity = self.equity();
        self.out.unfilled_at_end = self.queued.iter().map(Vec::len).sum::<usize>() + self.resting.iter().sum::<usize>();
        self.out.fills.close_feed();
        self.out
    }

    /// Every fill of the run, in order, as the run makes them, for a reader
    /// on another thread (see [`FillFeed`]).
    pub fn feed_fills(&mut self) -> FillFeed {
        self.out.fills.feed()
    }

    /// Replays the quiet bars of symbol `s` from bar `i` on, for as long as they are quiet, and
    /// returns how many there were: `Some(0)` when bar `i` is not quiet for something else than
    /// the strategy, `None` when the strategy takes it. For the timeline's only symbol, traded
    /// by one strategy. A bar is quiet when no order waits for it or rests, the strategy's exits
    /// are idle, no futures event or signal is due by its close (`due`: the time of the first),
    /// and the strategy skips it. Of the loop's steps only the equity point and the protections
    /// then have anything to do, and the close they read: nothing fills, so the equity moves
    /// with the close alone. The bar event is not even written (the next bar taken writes its
    /// own); the last close is written when the protections look, and after the run.
    fn quiet_run(
        &mut self,
        s: usize,
        i: usize,
        timeline: &Timeline,
        due: i64,
        n: &mut usize,
        progress: &mut impl FnMut(usize),
    ) -> Option<usize> {
        let r = self.runners_by_symbol[s][0];
        if self.resting[s] > 0 || !self.queued[s].is_empty() || !self.runners[r].exits_idle() {
            return Some(0);
        }
        // `equity_f64`'s sum, in its order: the currency, then the one asset the symbol prices.
        let amounts = &self.valuation.amounts_f64;
        let currency = if amounts[0] != 0.0 { amounts[0] } else { 0.0 };
        let held = match self.valuation.priced.as_slice() {
            [] => 0.0,
            [(asset, _)] => amounts[*asset],
            // One symbol prices one asset at most.
            _ => return Some(0),
        };
        // The bars before the due event or signal, then those the strategy skips of them.
        let upto = timeline.first_closing_at(i, due);
        if upto == i {
            return Some(0);
        }
        let quiet = self.runners[r].skip_bars(&self.symbols[s], i, upto);
        if quiet == 0 {
            return None;
        }
        let exposed = self.exposed_symbols > 0;
        let columns = timeline.bars(s);
        let mut close_time = 0;
        for k in i..i + quiet {
            // A bar of a timeline whose every bar closes a time of its own (see the caller).
            close_time = timeline.distinct_close_time(k).unwrap_or(close_time);
            let close = columns.close.get_f64(k);
            let equity = if held != 0.0 { currency + held * close } else { currency };
            self.out.equity.push(equity, exposed);
            if self.gate.must_evaluate(equity, close_time, self.filled_since_eval) {
                self.last_close[s] = columns.close.get(k);
                self.last_close_time[s] = close_time;
                self.evaluate_protections(close_time);
            }
            *n += 1;
            if *n & 0xffff == 0 {
                progress(*n);
            }
        }
        self.last_close[s] = columns.close.get(i + quiet - 1);
        self.last_close_time[s] = close_time;
        Some(quiet)
    }

    /// Equity in the report currency at the last closes, as `f64` (per bar;
    /// a close is converted only while something is held in its asset).
    #[inline]
    fn equity_f64(&self) -> f64 {
        // Summed in the order of the assets (the currency first), as `equity`.
        let amounts = &self.valuation.amounts_f64;
        let mut total = 0.0;
        if amounts[0] != 0.0 {
            total += amounts[0];
        }
        for &(i, s) in &self.valuation.priced {
            if amounts[i] != 0.0 {
                total += amounts[i] * decimal_f64(self.last_close[s]);
            }
        }
        total
    }

    /// Equity in the report currency at the last closes, exact.
    fn equity(&self) -> Decimal {
        let mut total = Decimal::ZERO;
        for (i, (_, amount, priced_by)) in self.valuation.assets.iter().enumerate() {
            if amount.is_zero() {
                continue;
            }
            if i == 0 {
                total += *amount;
            } else if let Some(s) = priced_by {
                total += *amount * self.last_close[*s];
            }
        }
        total
    }

    /// Lets the risk engine's portfolio protections see the equity, as live on
    /// a price update — whenever that can change anything (see [`ProtectionGate`]).
    #[inline]
    fn protect(&mut self, equity_f64: f64, now_ms: i64) {
        if self.gate.must_evaluate(equity_f64, now_ms, self.filled_since_eval) {
            self.evaluate_protections(now_ms);
        }
    }

    /// [`Self::protect`] once the gate says so.
    #[inline(never)]
    fn evaluate_protections(&mut self, now_ms: i64) {
        self.filled_since_eval = false;
        let equity = self.equity();
        let outcome = self.risk.evaluate_protections(equity, now_ms);
        for event in outcome.events {
            let reason = match &event {
                ProtectionEvent::Tripped { reason, .. } | ProtectionEvent::Cleared { reason, .. } => reason.clone(),
                ProtectionEvent::StrategyPaused { strategy, reason, .. }
                | ProtectionEvent::StrategyResumed { strategy, reason, .. } => format!("{strategy}: {reason}"),
            };
            self.out.protection_events.push(ProtectionRecord { ts_ms: now_ms, code: event.code().to_string(), reason });
        }
        if let Some(reason) = outcome.emergency_stop {
            self.risk.set_emergency_stop(true);
            self.out.protection_events.push(ProtectionRecord { ts_ms: now_ms, code: "emergency_stop".into(), reason });
        }
    }

    /// Delivers the futures events from `next` on stamped at or before
    /// `until` (each at its own time) to the strategies trading their
    /// symbols; returns the next event's index and time (`i64::MAX`: none).
    #[inline(never)]
    fn deliver_futures(&mut self, events: &[FuturesEvent], mut next: usize, until: i64) -> (usize, i64) {
        while let Some(event) = events.get(next) {
            let ts = event.ts_ms();
            if ts > until {
                return (next, ts);
            }
            next += 1;
            // Symbols without bars were dropped when loading; this is the
            // same check for callers that did not.
            let Some(&s) = self.symbol_index.get(event.symbol()) else { continue };
            for k in 0..self.runners_by_symbol[s].len() {
                let r = self.runners_by_symbol[s][k];
                self.out.futures_delivered += 1;
                let result = self.runners[r].on_futures(event, ts);
                if !matches!(result, Ok(0)) {
                    self.after_callback(r, result, ts);
                }
            }
        }
        (next, i64::MAX)
    }

    fn deliver_signal(&mut self, signal: &Signal, now_ms: i64) {
        let Some(&s) = self.symbol_index.get(&signal.symbol) else { return };
        for k in 0..self.runners_by_symbol[s].len() {
            let r = self.runners_by_symbol[s][k];
            if self.runners[r].kind() != "webhook" {
                continue;
            }
            self.out.signals_delivered += 1;
            let result = self.runners[r].on_signal(signal, now_ms);
            self.after_callback(r, result, now_ms);
        }
    }

    /// Handles a callback's result: records a failure, passes intents to risk.
    fn after_callback(&mut self, r: usize, result: Result<usize, keel_core::strategy::StrategyFailure>, now_ms: i64) {
        match result {
            Ok(0) => {}
            Ok(_) => {
                let alerts: Vec<_> = self.runners[r].drain_alerts().collect();
                self.out.alerts.extend(alerts);
                let cancels: Vec<String> = self.runners[r].drain_cancels().collect();
                for id in cancels {
                    self.cancel(r, &id, now_ms);
                }
                let mut intents = std::mem::take(&mut self.intents);
                intents.extend(self.runners[r].drain_intents().map(|i| (r, i)));
                for (r, intent) in intents.drain(..) {
                    self.decide(r, intent, now_ms);
                }
                self.intents = intents;
            }
            Err(failure) => self.out.failures.push(failure.to_string()),
        }
    }

    /// A strategy's cancel, as the live router does it: only its own orders
    /// still resting; the outcome comes back as an update.
    fn cancel(&mut self, r: usize, id: &str, now_ms: i64) {
        let Some((order_id, symbol)) = self.core.order_by_client(ACCOUNT, id).map(|o| (o.order_id, o.symbol.clone()))
        else {
            return;
        };
        let Some(&owner) = self.owner.get(&order_id) else { return };
        if owner.runner != r {
            return;
        }
        let Ok(order) = self.core.cancel(ACCOUNT, &symbol, id, now_ms) else { return };
        self.owner.remove(&order_id);
        self.risk.on_order_final(id);
        self.resting[owner.symbol] = self.resting[owner.symbol].saturating_sub(1);
        self.update.symbol = symbol;
        self.update.side = order.side;
        self.tell(owner, order.status, order.filled_qty, order.reason, now_ms);
    }

    /// An intent meets the risk engine; approved ones wait for the next open.
    fn decide(&mut self, r: usize, intent: OrderIntent, now_ms: i64) {
        let number = self.next_id;
        write_client_id(&mut self.id_buf, number);
        self.next_id += 1;
        // As the live risk guard does: the symbol's latest price and its arrival
        // time first, then the gate at the engine's time.
        let symbol = self.symbol_index.get(&intent.symbol).copied();
        if let Some(s) = symbol {
            if self.last_close_time[s] != i64::MIN {
                self.risk.on_market_event(&intent.symbol, self.last_close[s], self.last_close_time[s]);
            }
        }
        match self.risk.check_at(&intent, &self.id_buf, now_ms) {
            Ok(approved) => {
                let (intent, client_order_id) = approved.into_parts();
                // The record keeps the number: the string goes back for the next approval.
                self.risk.recycle_id(client_order_id);
                let record = self.out.orders.len();
                self.out.orders.push(OrderRecord { number, decided_ms: now_ms, intent });
                match symbol {
                    Some(s) => self.queued[s].push(Queued { record, runner: r }),
                    // No data for the symbol: it can never fill.
                    None => self.out.unfilled_at_end += 1,
                }
            }
            Err(rejection) => {
                *self.out.risk_rejections.entry(rejection.reason.code().to_string()).or_default() += 1;
                let update = OrderUpdate::refused(&intent, &rejection);
                let result = self.runners[r].on_order_update(&update, now_ms);
                self.after_callback(r, result, now_ms);
            }
        }
    }

    /// An exit the bar's path reached: through the risk engine (a reducing
    /// order) to the matching core at once, filled whole at `price` (rounded
    /// down to the tick) as a taker, without slippage.
    fn exit_at(&mut self, r: usize, s: usize, intent: OrderIntent, price: Decimal, ts: i64) {
        let tick = self.instruments[s].as_ref().map(|i| i.tick_size).unwrap_or_default();
        let price = if tick.is_zero() { price } else { floor_to_step(price, tick) };
        let number = self.next_id;
        write_client_id(&mut self.id_buf, number);
        self.next_id += 1;
        self.risk.on_market_event(&intent.symbol, price, ts);
        let approved = match self.risk.check_at(&intent, &self.id_buf, ts) {
            Ok(approved) => approved,
            Err(rejection) => {
                *self.out.risk_rejections.entry(rejection.reason.code().to_string()).or_default() += 1;
                let update = OrderUpdate::refused(&intent, &rejection);
                let result = self.runners[r].on_order_update(&update, ts);
                self.after_callback(r, result, ts);
                return;
            }
        };
        let (intent, client_order_id) = approved.into_parts();
        self.risk.recycle_id(client_order_id);
        let record = self.out.orders.len();
        let new = &mut self.new_order;
        write_client_id(&mut new.client_order_id, number);
        new.symbol.clone_from(&intent.symbol);
        (new.side, new.order_type, new.qty, new.tif) = (intent.side, intent.order_type, intent.qty, intent.tif);
        self.update.symbol.clone_from(&intent.symbol);
        self.update.side = intent.side;
        self.out.orders.push(OrderRecord { number, decided_ms: ts, intent });
        let owner = Owner { runner: r, tag: None, record, symbol: s };
        // The runner learns the order's id before its fill, as live.
        self.tell(owner, OrderStatus::Submitted, Decimal::ZERO, None, ts);
        let mut events = std::mem::take(&mut self.events);
        match self.core.submit_market_at(&self.new_order, price, ts, &mut events) {
            Ok(placed) => {
                self.risk.on_order_accepted(&self.new_order.client_order_id);
                self.owner.insert(placed.order_id, owner);
                self.apply(s, &mut events, ts, false);
            }
            Err(e) => {
                *self.out.venue_rejections.entry(match_error_code(&e).to_string()).or_default() += 1;
                self.risk.on_order_final(&self.new_order.client_order_id);
                self.update.symbol.clone_from(&self.new_order.symbol);
                self.update.side = self.new_order.side;
                self.tell(owner, OrderStatus::Rejected, Decimal::ZERO, Some(e.to_string()), ts);
            }
        }
        self.events = events;
        self.report_balances();
    }

    /// The open of a bar: resting orders meet its range, queued orders are submitted.
    fn open_bar(&mut self, s: usize, bar: &keel_core::market::Bar) {
        let ts = bar.open_time;
        let mut events = std::mem::take(&mut self.events);
        if self.resting[s] > 0 {
            self.core.match_range_events(&bar.symbol, bar.open, bar.high, bar.low, ts, &mut events);
            let filled = !events.is_empty();
            self.apply(s, &mut events, ts, true);
            if self.queued[s].is_empty() {
                self.events = events;
                if filled {
                    self.report_balances();
                }
                return;
            }
        }
        let new_resting = self.submit_queued(s, &bar.symbol, bar.open, ts, false, &mut events);
        if new_resting {
            self.core.match_range_events(&bar.symbol, bar.open, bar.high, bar.low, ts, &mut events);
            self.apply(s, &mut events, ts, true);
        }
        self.events = events;
        self.report_balances();
    }

    /// The close of a bar, after the strategies saw it: the orders that strategies filling at the
    /// close (Pine's `process_orders_on_close`) just decided are submitted at the close ± the
    /// slippage, stamped with the close time; a limit that does not fill there rests from the next
    /// bar on. Other strategies' orders wait for the next open.
    fn close_bar(&mut self, s: usize, bar: &keel_core::market::Bar) {
        let ts = bar.close_time;
        let mut events = std::mem::take(&mut self.events);
        self.submit_queued(s, &bar.symbol, bar.close, ts, true, &mut events);
        self.events = events;
        self.report_balances();
    }

    /// Sets the book of symbol `s` to `price` ± the slippage (rounded to the tick away from the
    /// trader) and submits its queued orders there (with `on_close`, only those of strategies
    /// that fill at the close). True when a new limit rests.
    fn submit_queued(
        &mut self,
        s: usize,
        symbol: &Symbol,
        price: Decimal,
        ts: i64,
        on_close: bool,
        events: &mut Vec<OrderEvent>,
    ) -> bool {
        let tick = self.instruments[s].as_ref().map(|i| i.tick_size).unwrap_or_default();
        let big = Decimal::from(1_000_000_000_000u64);
        let bid = floor_to_step(price * (Decimal::ONE - self.slippage), tick);
        let ask = ceil_to_step(price * (Decimal::ONE + self.slippage), tick);
        let quote = BookTicker { symbol: symbol.clone(), bid, bid_qty: big, ask, ask_qty: big, ts_ms: ts };
        self.core.set_quote_events(quote, events);
        self.apply(s, events, ts, true);
        let mut queued = std::mem::take(&mut self.queued[s]);
        let mut waiting = Vec::new();
        let mut new_resting = false;
        for q in queued.drain(..) {
            if on_close && !self.on_close[q.runner] {
                waiting.push(q);
                continue;
            }
            let OrderRecord { number, intent, .. } = &self.out.orders[q.record];
            let new = &mut self.new_order;
            write_client_id(&mut new.client_order_id, *number);
            new.symbol.clone_from(&intent.symbol);
            (new.side, new.order_type, new.qty, new.tif) = (intent.side, intent.order_type, intent.qty, intent.tif);
            let (tag, side) = (intent.tag, intent.side);
            match self.core.submit_events(&self.new_order, ts, events) {
                Ok(placed) => {
                    self.risk.on_order_accepted(&self.new_order.client_order_id);
                    let owner = Owner { runner: q.runner, tag, record: q.record, symbol: s };
                    self.owner.insert(placed.order_id, owner);
                    let open = placed.status.is_open();
                    if open {
                        self.resting[s] += 1;
                        new_resting |= !self.new_order.order_type.is_market();
                    }
                    if events.is_empty() {
                        self.update.symbol.clone_from(&self.new_order.symbol);
                        self.update.side = side;
                        self.tell(owner, placed.status, Decimal::ZERO, None, ts);
                    } else {
                        // The order was counted as resting above only if it still is.
                        self.apply(s, events, ts, open);
                    }
                }
                Err(e) => {
                    *self.out.venue_rejections.entry(match_error_code(&e).to_string()).or_default() += 1;
                    self.risk.on_order_final(&self.new_order.client_order_id);
                    let owner = Owner { runner: q.runner, tag, record: q.record, symbol: s };
                    self.update.symbol.clone_from(&self.new_order.symbol);
                    self.update.side = side;
                    self.tell(owner, OrderStatus::Rejected, Decimal::ZERO, Some(e.to_string()), ts);
                }
            }
        }
        // Orders decided while these were handled wait for the next open.
        waiting.append(&mut self.queued[s]);
        queued.append(&mut waiting);
        self.queued[s] = queued;
        new_resting
    }

    /// The venue's balances after an open with activity, as the live user
    /// stream reports them to the risk guard.
    fn report_balances(&mut self) {
        if self.core.balances_into(ACCOUNT, &mut self.balances) {
            self.account.apply_balances(&self.balances, 0);
            self.risk.on_balances(&self.balances);
        }
    }

    /// Applies (and clears) the core's events for orders of symbol `s`
    /// (`counted`: the order was counted in `resting`).
    fn apply(&mut self, s: usize, events: &mut Vec<OrderEvent>, ts: i64, counted: bool) {
        for ev in events.drain(..) {
            let Some(&owner) = self.owner.get(&ev.order_id) else { continue };
            let r = owner.runner;
            let record = &self.out.orders[owner.record];
            let number = record.number;
            if let (Some(facts), Some(_)) = (ev.fill, self.instruments[s].as_ref()) {
                let kept = KeptFill { facts, order: number, symbol: s as u32, runner: r as u32, tag: owner.tag };
                let fill = match self.fill_buf.take() {
                    Some(mut fill) => {
                        self.out.fills.rewrite(&kept, &mut fill);
                        fill
                    }
                    None => self.out.fills.build(&kept),
                };
                self.filled_since_eval = true;
                self.book_fill(s, &fill, facts.fee_in_base);
                // Into the account first, as the live router does.
                let _ = self.account.apply(&fill);
                self.risk.on_fill(&fill);
                let result = self.runners[r].on_fill(&fill, ts);
                self.out.fills.push(kept);
                self.fill_buf = Some(fill);
                self.after_callback(r, result, ts);
            }
            let record = &self.out.orders[owner.record];
            if ev.status.is_terminal() {
                self.owner.remove(&ev.order_id);
                write_client_id(&mut self.id_buf, number);
                self.risk.on_order_final(&self.id_buf);
                if counted {
                    self.resting[s] = self.resting[s].saturating_sub(1);
                }
            }
            self.update.symbol.clone_from(&record.intent.symbol);
            self.update.side = record.intent.side;
            self.tell(owner, ev.status, ev.filled_qty, ev.reason.map(str::to_string), ts);
        }
    }

    /// Tells a strategy of a change of its order: `self.update`'s symbol and
    /// side are set, the rest is filled in here (its strings reused).
    fn tell(&mut self, owner: Owner, status: OrderStatus, filled_qty: Decimal, reason: Option<String>, ts: i64) {
        let number = self.out.orders[owner.record].number;
        let update = &mut self.update;
        write_client_id(update.client_order_id.get_or_insert_with(String::new), number);
        update.status = status;
        update.filled_qty = filled_qty;
        update.reason = reason;
        update.tag = owner.tag;
        update.exit = self.out.orders[owner.record].intent.exit;
        let result = self.runners[owner.runner].on_order_update(&self.update, ts);
        self.after_callback(owner.runner, result, ts);
    }

    /// Moves a fill into the valuation ledger and the exposure count
    /// (`fee_in_base`: its commission was paid in the base asset, else the quote).
    fn book_fill(&mut self, s: usize, fill: &Fill, fee_in_base: bool) {
        if let Some((base, quote)) = self.legs[s] {
            let notional = fill.price * fill.qty;
            let assets = &mut self.valuation.assets;
            match fill.side {
                Side::Buy => {
                    assets[base].1 += fill.qty;
                    assets[quote].1 -= notional;
                }
                Side::Sell => {
                    assets[base].1 -= fill.qty;
                    assets[quote].1 += notional;
                }
            }
            let fee_leg = if fee_in_base { base } else { quote };
            assets[fee_leg].1 -= fill.fee;
            // Only the amounts this fill moved change their `f64`.
            for i in [base, quote] {
                self.valuation.amounts_f64[i] = decimal_f64(self.valuation.assets[i].1);
            }
        }
        // Exposed while the strategies hold a tradable quantity (dust below the
        // lot step left by base-asset commissions does not count).
        let instrument = self.instruments[s].as_ref();
        let base = instrument.map(|i| i.base_asset.as_str()).unwrap_or_default();
        self.out.fees_paid += fill.fee_value(base);
        let (traded, exposed) = &mut self.traded[s];
        *traded += fill.position_delta(base);
        let (was, is) = (*exposed, !Instrument::is_flat(instrument, *traded));
        *exposed = is;
        match (was, is) {
            (false, true) => self.exposed_symbols += 1,
            (true, false) => self.exposed_symbols -= 1,
            _ => {}
        }
    }
}

/// Decides when the risk engine's portfolio protections must see the equity.
///
/// Evaluating them costs more than the rest of a bar, and between fills the
/// only inputs that can change their outcome are a new high-water mark, a new
/// UTC day, or equity falling towards a limit. So they are evaluated (with the
/// exact `Decimal` equity) on the first bar, after any fill, on a new UTC day,
/// on a new high, and on every bar whose equity has fallen past half of the
/// drawdown or daily-loss limit; the protections then decide whether they
/// trip. The gate itself compares `f64`s: with a margin of half the limit,
/// rounding cannot hide a trip. Strategy pauses end by time at the risk gate
/// and need no evaluation.
#[derive(Debug, Clone)]
struct ProtectionGate {
    drawdown_half: f64,
    daily_abs_half: f64,
    daily_pct_half: f64,
    started: bool,
    /// The current UTC day, as [start, end) in ms.
    day: (i64, i64),
    high: f64,
    /// Equity at or below this is within reach of a limit.
    floor: f64,
    day_floor: f64,
}

impl ProtectionGate {
    fn new(risk: &RiskConfig) -> Self {
        Self {
            drawdown_half: decimal_f64(risk.max_drawdown_pct) / 200.0,
            daily_abs_half: decimal_f64(risk.daily_loss_limit) / 2.0,
            daily_pct_half: decimal_f64(risk.daily_loss_limit_pct) / 200.0,
            started: false,
            day: (0, 0),
            high: f64::MIN,
            floor: f64::MIN,
            day_floor: f64::MIN,
        }
    }

    #[inline]
    fn must_evaluate(&mut self, equity: f64, now_ms: i64, filled: bool) -> bool {
        let mut due = filled || !equity.is_finite();
        // A range check per bar rather than a division.
        if !self.started || now_ms < self.day.0 || now_ms >= self.day.1 {
            const DAY_MS: i64 = 86_400_000;
            let start = now_ms.div_euclid(DAY_MS).saturating_mul(DAY_MS);
            self.started = true;
            self.day = (start, start.saturating_add(DAY_MS));
            due = true;
            let mut floor = f64::MIN;
            if self.daily_abs_half > 0.0 {
                floor = floor.max(equity - self.daily_abs_half);
            }
            if self.daily_pct_half > 0.0 {
                floor = floor.max(equity - equity.abs() * self.daily_pct_half);
            }
            self.day_floor = floor;
        }
        if equity > self.high {
            self.high = equity;
            self.floor = if self.drawdown_half > 0.0 { equity - equity.abs() * self.drawdown_half } else { f64::MIN };
            due = true;
        }
        due || equity <= self.floor || equity <= self.day_floor
    }
}

/// One `Arc` per symbol: the timeline's symbols and the instruments' take
/// those of the strategies that trade them, so the symbol comparisons of every
/// bar and order (a strategy checking a bar's symbol, map lookups in the
/// runner, risk engine and matching core) are pointer comparisons rather than
/// byte comparisons of equal text. Returns the timeline's symbols, interned.
fn intern(symbols: &[Symbol], strategies: &[StrategySlot], instruments: &mut [Instrument]) -> Vec<Symbol> {
    let theirs: Vec<Symbol> = strategies.iter().flat_map(|s| s.strategy.symbols()).collect();
    let canonical = |s: &Symbol| theirs.iter().find(|t| *t == s).unwrap_or(s).clone();
    let symbols: Vec<Symbol> = symbols.iter().map(canonical).collect();
    for i in instruments {
        if let Some(s) = symbols.iter().chain(&theirs).find(|s| **s == i.symbol) {
            i.symbol = s.clone();
        }
    }
    symbols
}

/// A decimal as `f64` for statistics.
fn decimal_f64(d: Decimal) -> f64 {
    strategies::common::close_f64(d)
}

/// A stable code for a matching-core refusal.
fn match_error_code(e: &MatchError) -> &'static str {
    match e {
        MatchError::UnknownSymbol(_) => "unknown_symbol",
        MatchError::UnknownAccount(_) => "unknown_account",
        MatchError::Filter(_) => "venue_filter",
        MatchError::InsufficientBalance { .. } => "insufficient_balance",
        MatchError::DuplicateClientOrderId(_) => "duplicate_client_order_id",
        MatchError::UnknownOrder => "unknown_order",
        MatchError::AlreadyFinal(_) => "already_final",
        MatchError::NoMarket(_) => "no_market",
        MatchError::Unsupported(_) => "unsupported",
    }
}

mod fills;

#[cfg(test)]
mod futures_order_tests;

#[cfg(test)]
mod exit_tests;
#[cfg(test)]
pub(crate) mod test_bars;

#[cfg(test)]
mod pine_tests;

#[cfg(test)]
mod skip_tests;
#[cfg(test)]
mod timeline_tests;
