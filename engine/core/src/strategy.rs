//! The `Strategy` trait and the runner that drives one strategy instance the same
//! way live and in a backtest.
//!
//! A strategy is plain synchronous code: market events and fills in, order
//! intents out, time from the injected clock. The [`StrategyRunner`] owns the
//! bookkeeping a strategy relies on (its own position and in-flight orders per
//! symbol) and catches a panicking strategy so the rest of the engine keeps
//! trading.

use rustc_hash::FxHashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::account::AccountView;
use crate::alert::SetupAlert;
use crate::exits::{ExitBook, ExitEvent, ExitIo, ExitLeg, ExitSpec, ExitState, PriceTrail};
use crate::fill::Fill;
use crate::futures::FuturesEvent;
use crate::futures_board::{FuturesBoard, FuturesSnapshot};
use crate::instrument::Instrument;
use crate::market::{Bar, BarSeries, BookTicker, MarketEvent, Trade};
use crate::order::{Order, OrderIntent, OrderStatus, OrderTag, Side};
use crate::symbol::{StrategyId, Symbol};

/// What a strategy learns about one of its orders (including a refusal by the
/// risk guard, which has no client order id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderUpdate {
    /// Keel's client order id; `None` when the intent never became an order.
    pub client_order_id: Option<String>,
    /// Symbol.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// New status.
    pub status: OrderStatus,
    /// Quantity filled so far.
    pub filled_qty: Decimal,
    /// Why it was refused, rejected or expired.
    pub reason: Option<String>,
    /// The tag the strategy gave the order (or the refused intent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<OrderTag>,
    /// What the order is for when it is an exit (exit orders' updates go
    /// to the runner's exit logic, not into the strategy's pending count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitLeg>,
}

impl OrderUpdate {
    /// What a strategy hears when the risk guard refused its `intent` (live
    /// and in the backtest alike): no order was made, so there is no client
    /// order id; the reason starts `risk: `, which the exit logic reads.
    pub fn refused(intent: &OrderIntent, reason: impl std::fmt::Display) -> Self {
        Self {
            client_order_id: None,
            symbol: intent.symbol.clone(),
            side: intent.side,
            status: OrderStatus::Rejected,
            filled_qty: Decimal::ZERO,
            reason: Some(format!("risk: {reason}")),
            tag: intent.tag,
            exit: intent.exit,
        }
    }
}

/// An external trading signal (e.g. a TradingView alert) for a `webhook` strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Symbol.
    pub symbol: Symbol,
    /// What to do.
    pub action: SignalAction,
    /// Quantity; the strategy's default when absent.
    pub qty: Option<Decimal>,
}

/// The action of a [`Signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalAction {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
    /// Close the position.
    Close,
}

/// A strategy's own exposure in one symbol, as the runner tracks it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exposure {
    /// Net quantity this strategy's fills put in the account: executed
    /// quantity less commissions paid in the base asset.
    pub qty: Decimal,
    /// Orders sent by this strategy and not yet final.
    pub pending_orders: u32,
}

/// What a strategy can see and do inside one callback.
pub struct StrategyCtx<'a> {
    now_ms: i64,
    strategy_id: &'a StrategyId,
    book: &'a mut FxHashMap<Symbol, Exposure>,
    account: Option<&'a AccountView>,
    lots: &'a FxHashMap<Symbol, Instrument>,
    out: &'a mut Vec<OrderIntent>,
    cancels: &'a mut Vec<String>,
    futures: &'a FuturesBoard,
    alerts: &'a mut Vec<SetupAlert>,
    exits: &'a mut ExitBook,
}

/// A strategy's position in `symbol` as far as it can be traded (see
/// [`StrategyCtx::position`]).
fn tradable_position(
    strategy_id: &StrategyId,
    book: &FxHashMap<Symbol, Exposure>,
    account: Option<&AccountView>,
    lots: &FxHashMap<Symbol, Instrument>,
    symbol: &str,
) -> Decimal {
    let held = match account {
        Some(account) => account.strategy_held_in_account(strategy_id, symbol),
        None => book.get(symbol).map(|e| e.qty).unwrap_or_default(),
    };
    match lots.get(symbol) {
        Some(instrument) => instrument.tradable_qty(held),
        None => held,
    }
}

impl<'a> StrategyCtx<'a> {
    /// Current time from the injected clock (ms since the epoch).
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// This strategy instance's id.
    pub fn strategy_id(&self) -> &StrategyId {
        self.strategy_id
    }

    /// This strategy's position in `symbol` as far as it can be traded: what
    /// its fills put in the account (net of commissions paid in the base
    /// asset), rounded down to the lot step — and, on the running account,
    /// never more than the account holds in all (after an operator's manual
    /// sell, say). An exit of this size is never more than the account holds;
    /// dust below the step or the minimum quantity does not count.
    pub fn position(&self, symbol: &str) -> Decimal {
        tradable_position(self.strategy_id, self.book, self.account, self.lots, symbol)
    }

    /// Attaches `spec` to the open position in `symbol`, in place of the
    /// strategy's configured exits (the resting leg is replaced). False
    /// when there is no open position (attach from `on_fill`, after the
    /// entry filled) or `spec` is invalid.
    ///
    /// ```ignore
    /// fn on_fill(&mut self, fill: &Fill, ctx: &mut StrategyCtx<'_>) {
    ///     if fill.side == Side::Buy {
    ///         let spec = ExitSpec { stop_loss: Some(Pct::parse("2%").unwrap()), ..ExitSpec::default() };
    ///         ctx.attach_exits(&fill.symbol, spec);
    ///     }
    /// }
    /// ```
    pub fn attach_exits(&mut self, symbol: &str, mut spec: ExitSpec) -> bool {
        if spec.validate("exits").is_err() {
            return false;
        }
        let Some(st) = self.exits.state_mut(symbol) else { return false };
        st.spec = Some(spec);
        st.removed = false;
        st.trailing_armed = false;
        self.exits.replace_leg(symbol, self.cancels);
        true
    }

    /// Moves the open position's stop to `price` (the resting stop is
    /// replaced; engine-side, the new level holds at once). False without
    /// an open position.
    ///
    /// ```ignore
    /// // Break-even once the price is 2% up.
    /// if let Some(exits) = ctx.exits(&bar.symbol) {
    ///     if bar.close >= exits.entry_price * Decimal::new(102, 2) {
    ///         let entry = exits.entry_price;
    ///         ctx.set_stop(&bar.symbol, entry);
    ///     }
    /// }
    /// ```
    pub fn set_stop(&mut self, symbol: &str, price: Decimal) -> bool {
        let Some(st) = self.exits.state_mut(symbol) else { return false };
        if st.stop_price == Some(price) {
            return true;
        }
        st.stop_price = Some(price);
        self.exits.replace_leg(symbol, self.cancels);
        true
    }

    /// Sets the open position's three price levels at once (a host that
    /// keeps its own exit orders, such as a Pine script's `strategy.exit`):
    /// the stop, the take-profit and a trailing stop in prices (once the best
    /// price since entry reaches `trail.activate`, exit when the price falls
    /// `trail.offset` below the best; engine-side). `None` clears a level.
    /// Exits the strategy removed are in force again. False without an open
    /// position, or with a trail offset not above 0.
    pub fn set_levels(
        &mut self,
        symbol: &str,
        stop: Option<Decimal>,
        take_profit: Option<Decimal>,
        trail: Option<PriceTrail>,
    ) -> bool {
        if trail.is_some_and(|t| t.offset <= Decimal::ZERO) {
            return false;
        }
        let Some(st) = self.exits.state_mut(symbol) else { return false };
        let legs_move = st.stop_price != stop || st.take_profit_price != take_profit;
        (st.stop_price, st.take_profit_price, st.trail, st.removed) = (stop, take_profit, trail, false);
        if legs_move {
            self.exits.replace_leg(symbol, self.cancels);
        }
        true
    }

    /// The instrument `symbol` trades as (tick size, lot step, filters), when known.
    pub fn instrument(&self, symbol: &str) -> Option<&Instrument> {
        self.lots.get(symbol)
    }

    /// Sets the open position's take-profit to `price` (as [`Self::set_stop`]).
    pub fn set_take_profit(&mut self, symbol: &str, price: Decimal) -> bool {
        let Some(st) = self.exits.state_mut(symbol) else { return false };
        if st.take_profit_price == Some(price) {
            return true;
        }
        st.take_profit_price = Some(price);
        self.exits.replace_leg(symbol, self.cancels);
        true
    }

    /// Removes the open position's exits (its resting leg is canceled); the
    /// next position gets the configured exits again. False without an open
    /// position.
    pub fn remove_exits(&mut self, symbol: &str) -> bool {
        let Some(st) = self.exits.state_mut(symbol) else { return false };
        st.removed = true;
        true
    }

    /// The exit state of the open position in `symbol`: entry price, best
    /// price, overrides, the leg resting at the venue.
    pub fn exits(&self, symbol: &str) -> Option<&ExitState> {
        self.exits.state(symbol)
    }

    /// `qty` of `symbol` as far as it can be traded: rounded down to the lot
    /// step, and zero below the minimum quantity.
    pub fn tradable(&self, symbol: &str, qty: Decimal) -> Decimal {
        match self.lots.get(symbol) {
            Some(instrument) => instrument.tradable_qty(qty),
            None => qty,
        }
    }

    /// What `fill` changed this strategy's holding of the base asset by
    /// (negative for a sell): the executed quantity less a commission paid in
    /// the base asset.
    pub fn received(&self, fill: &Fill) -> Decimal {
        let base = self.lots.get(&fill.symbol).map(|i| i.base_asset.as_str()).unwrap_or_default();
        fill.position_delta(base)
    }

    /// Orders of this strategy in `symbol` that are not final yet.
    pub fn pending_orders(&self, symbol: &str) -> u32 {
        self.book.get(symbol).map(|e| e.pending_orders).unwrap_or(0)
    }

    /// True when the strategy holds nothing in `symbol` and has nothing in flight.
    pub fn is_flat(&self, symbol: &str) -> bool {
        self.position(symbol).is_zero() && self.pending_orders(symbol) == 0
    }

    /// Sends an order intent (to the risk guard, live or in a backtest).
    pub fn submit(&mut self, intent: OrderIntent) {
        let entry = self.book.entry(intent.symbol.clone()).or_default();
        entry.pending_orders += 1;
        self.out.push(intent);
    }

    /// Sends a market order for this strategy.
    pub fn market(&mut self, symbol: &Symbol, side: Side, qty: Decimal) {
        let intent = OrderIntent::market(self.strategy_id.clone(), symbol.clone(), side, qty);
        self.submit(intent);
    }

    /// Sends a GTC limit order for this strategy.
    pub fn limit(&mut self, symbol: &Symbol, side: Side, qty: Decimal, price: Decimal) {
        let intent = OrderIntent::limit(self.strategy_id.clone(), symbol.clone(), side, qty, price);
        self.submit(intent);
    }

    /// Sends a GTC limit order carrying `tag`, which comes back with its fills
    /// and updates and with the order at every start.
    pub fn limit_tagged(&mut self, symbol: &Symbol, side: Side, qty: Decimal, price: Decimal, tag: OrderTag) {
        let intent = OrderIntent::limit(self.strategy_id.clone(), symbol.clone(), side, qty, price).with_tag(tag);
        self.submit(intent);
    }

    /// Asks to cancel one of this strategy's working orders. The outcome comes
    /// back as an order update; an order of another strategy, or one already
    /// final, is left alone.
    pub fn cancel(&mut self, client_order_id: &str) {
        self.cancels.push(client_order_id.to_string());
    }

    /// The latest perpetual-futures values of `symbol` (mark, funding,
    /// open interest) from the futures events this strategy received; none
    /// before the first.
    pub fn futures(&self, symbol: &str) -> Option<&FuturesSnapshot> {
        self.futures.get(symbol)
    }

    /// Raises a setup alert for the operator (notifiers and the console):
    /// `condition` is its stable name, `values` what triggered it. Stamped
    /// with the strategy's clock.
    pub fn alert(
        &mut self,
        symbol: &Symbol,
        condition: &str,
        message: String,
        values: std::collections::BTreeMap<String, String>,
    ) {
        self.alerts.push(SetupAlert {
            strategy_id: self.strategy_id.clone(),
            symbol: symbol.clone(),
            condition: condition.to_string(),
            message,
            values,
            ts_ms: self.now_ms,
        });
    }
}

/// A trading strategy. Every callback has a default that does nothing, so a
/// strategy implements only what it reacts to. Implementations must not block,
/// read the wall clock or do I/O.
pub trait Strategy: Send {
    /// The strategy's kind, e.g. `sma_cross`.
    fn kind(&self) -> &'static str;
    /// Symbols this strategy trades; it receives only their events.
    fn symbols(&self) -> Vec<Symbol>;
    /// Bars of history it needs before it can decide (warm-up length).
    fn warmup_bars(&self) -> usize {
        0
    }
    /// Bars of history it needs on bars of `interval_ms` (what a live start
    /// preloads): [`Self::warmup_bars`], unless the need depends on the
    /// interval (a Pine script reading a higher timeframe needs that
    /// timeframe's warm-up counted in these bars).
    fn warmup_bars_at(&self, _interval_ms: i64) -> usize {
        self.warmup_bars()
    }
    /// True when the orders it decides at a bar's close fill at that close
    /// (Pine's `process_orders_on_close`) rather than at the next bar's open:
    /// the backtest submits them at the close; live, an order sent right
    /// after the close is the same thing.
    fn orders_on_close(&self) -> bool {
        false
    }
    /// Backtests only, before the first bar: `bars` are every bar of
    /// `symbol` (one of its symbols) the run will deliver, in order. A
    /// strategy whose decision on a bar depends on the bars up to it alone
    /// may work them out ahead, on a thread of its own (a Pine script that
    /// reads no strategy state does); it must then act exactly as it would
    /// have without, also when a bar is not delivered (while paused). Live
    /// runs never call it. The default ignores it.
    fn foresee(&mut self, _symbol: &Symbol, _bars: Arc<dyn BarSeries>) {}
    /// Backtests only, after [`Self::foresee`]: asked before bars `from..upto`
    /// of `symbol`'s foreseen bars would go to [`Self::on_bar`], in order.
    /// The number of them, from `from` on, that the strategy already knows
    /// would change nothing (no intent, cancel or alert, and no state of its
    /// own to update beyond counting the bar as delivered): those bars then
    /// count as delivered and `on_bar` is not called for them (on most bars of
    /// a backtest, nothing happens; this saves their calls, and a run of them
    /// is asked for once). Fewer (0) whenever unsure. The default is 0.
    fn skip_bars(&mut self, _symbol: &Symbol, _from: usize, _upto: usize) -> usize {
        0
    }
    /// Called once at start, before any other callback may act: `open` are
    /// this strategy's orders still working at the venue (after
    /// reconciliation), with their tags. A stateful strategy re-adopts them
    /// here (and may cancel the ones it no longer wants) instead of placing
    /// them again; its position is already restored in `ctx`.
    fn on_start(&mut self, _open: &[Order], _ctx: &mut StrategyCtx<'_>) {}
    /// A candle closed.
    fn on_bar(&mut self, _bar: &Bar, _ctx: &mut StrategyCtx<'_>) {}
    /// A public trade printed.
    fn on_trade(&mut self, _trade: &Trade, _ctx: &mut StrategyCtx<'_>) {}
    /// The best bid/ask changed.
    fn on_book(&mut self, _book: &BookTicker, _ctx: &mut StrategyCtx<'_>) {}
    /// One of its orders filled (partly).
    fn on_fill(&mut self, _fill: &Fill, _ctx: &mut StrategyCtx<'_>) {}
    /// One of its orders changed status, or an intent was refused.
    fn on_order_update(&mut self, _update: &OrderUpdate, _ctx: &mut StrategyCtx<'_>) {}
    /// An external signal arrived.
    fn on_signal(&mut self, _signal: &Signal, _ctx: &mut StrategyCtx<'_>) {}
    /// A futures market event (mark price and funding estimate, a
    /// settlement, open interest, the funding interval) of one of its
    /// symbols; `ctx.futures` already includes it.
    fn on_futures(&mut self, _event: &FuturesEvent, _ctx: &mut StrategyCtx<'_>) {}
}

/// A strategy failed (panicked) and has been paused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("strategy {strategy_id} panicked: {message}")]
pub struct StrategyFailure {
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The panic message.
    pub message: String,
}

/// Drives one strategy instance: keeps its exposure book, collects its intents,
/// and pauses it if it panics. Live actors and the backtest both use this, so a
/// strategy decides the same way in both.
pub struct StrategyRunner {
    id: StrategyId,
    strategy: Box<dyn Strategy>,
    symbols: Vec<Symbol>,
    book: FxHashMap<Symbol, Exposure>,
    /// The running account, when there is one: the strategy's position is
    /// read there (its writer applied each fill before the runner hears of
    /// it); without one (a standalone runner) the book keeps it.
    account: Option<AccountView>,
    lots: FxHashMap<Symbol, Instrument>,
    out: Vec<OrderIntent>,
    cancels: Vec<String>,
    futures: FuturesBoard,
    alerts: Vec<SetupAlert>,
    /// The exit logic of its positions.
    exits: ExitBook,
    /// The strategy's intents of the current call are discarded (warm-up, a
    /// paused strategy's start): the exit logic must not hold them.
    discarding: bool,
    paused: bool,
    failure: Option<String>,
}

impl StrategyRunner {
    /// Wraps a strategy instance.
    pub fn new(id: StrategyId, strategy: Box<dyn Strategy>) -> Self {
        let symbols = strategy.symbols();
        Self {
            exits: ExitBook::new(id.clone(), None),
            discarding: false,
            id,
            strategy,
            symbols,
            book: FxHashMap::default(),
            account: None,
            lots: FxHashMap::default(),
            out: Vec::with_capacity(4),
            cancels: Vec::new(),
            futures: FuturesBoard::default(),
            alerts: Vec::new(),
            paused: false,
            failure: None,
        }
    }

    /// Tells the runner the instruments its symbols trade as: which fills pay
    /// commission in the base asset (and so add less to the position), and the
    /// lot step positions are rounded down to for the strategy.
    pub fn with_instruments(mut self, instruments: &[Instrument]) -> Self {
        for i in instruments.iter().filter(|i| self.symbols.contains(&i.symbol)) {
            self.lots.insert(i.symbol.clone(), i.clone());
        }
        self
    }

    /// Reads the strategy's positions from the running account instead of
    /// keeping them: [`Self::on_fill`] then leaves them to its writer.
    pub fn with_account(mut self, account: AccountView) -> Self {
        self.account = Some(account);
        self
    }

    /// Keeps `spec` (validated) as the exits of every position this
    /// strategy opens: see [`crate::exits`].
    pub fn with_exits(mut self, spec: ExitSpec) -> Self {
        self.exits.set_default(spec);
        self
    }

    /// Backtest: exits are evaluated on each bar's path by the simulator
    /// ([`Self::bar_exit`]); no venue legs, no tick triggers, nothing kept
    /// for a store.
    pub fn with_bar_exits(mut self) -> Self {
        self.exits.set_bar_mode(true);
        self
    }

    /// Exit states saved before a restart (call before [`Self::adopt`]).
    pub fn restore_exits(&mut self, states: Vec<ExitState>) {
        self.exits.restore(states);
    }

    /// Exit states changed since the last call: `Some` to put, `None` to delete.
    pub fn drain_exit_changes(&mut self) -> Vec<(Symbol, Option<ExitState>)> {
        self.exits.drain_changes()
    }

    /// Exits that happened since the last call.
    pub fn drain_exit_events(&mut self) -> Vec<ExitEvent> {
        self.exits.drain_events()
    }

    /// The exit states of its open positions.
    pub fn exit_states(&self) -> Vec<ExitState> {
        self.exits.states()
    }

    /// Backtest: the exit `bar` reaches for this strategy's position in its
    /// symbol, as a reduce-only market sell and the price it fills at.
    pub fn bar_exit(&mut self, bar: &Bar) -> Option<(OrderIntent, Decimal)> {
        if self.exits.is_idle() {
            return None;
        }
        let (id, book, account, lots) = (&self.id, &self.book, self.account.as_ref(), &self.lots);
        self.exits.on_bar(bar, || tradable_position(id, book, account, lots, &bar.symbol))
    }

    /// Runs `f` on the exit logic with the runner's outputs; returns how
    /// many intents and cancels it added.
    fn with_exit_io(&mut self, now_ms: i64, f: impl FnOnce(&mut ExitBook, &mut ExitIo<'_>)) -> usize {
        let before = self.out.len() + self.cancels.len();
        let (id, book, account, lots) = (&self.id, &self.book, self.account.as_ref(), &self.lots);
        let position = |s: &str| tradable_position(id, book, account, lots, s);
        let mut io = ExitIo { out: &mut self.out, cancels: &mut self.cancels, position: &position, now_ms };
        f(&mut self.exits, &mut io);
        (self.out.len() + self.cancels.len()).saturating_sub(before)
    }

    /// The instance id.
    pub fn id(&self) -> &StrategyId {
        &self.id
    }

    /// The strategy's kind.
    pub fn kind(&self) -> &'static str {
        self.strategy.kind()
    }

    /// The symbols it trades.
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// True if it trades `symbol`.
    pub fn wants(&self, symbol: &str) -> bool {
        self.symbols.iter().any(|s| s.as_str() == symbol)
    }

    /// True when its orders decided at a close fill at that close (see
    /// [`Strategy::orders_on_close`]).
    pub fn orders_on_close(&self) -> bool {
        self.strategy.orders_on_close()
    }

    /// Warm-up length in bars of `interval_ms` (see [`Strategy::warmup_bars_at`]).
    pub fn warmup_bars_at(&self, interval_ms: i64) -> usize {
        self.strategy.warmup_bars_at(interval_ms)
    }

    /// True while paused (by an operator, a protection or a panic).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The panic message that paused it, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Hands its strategy the bars of `symbol` a backtest will deliver (see
    /// [`Strategy::foresee`]).
    pub fn foresee(&mut self, symbol: &Symbol, bars: Arc<dyn BarSeries>) {
        self.strategy.foresee(symbol, bars);
    }

    /// How many of bars `from..upto` of `symbol`'s foreseen bars, from `from`
    /// on, may skip [`Self::on_market`]: they would have changed nothing, here
    /// or in the strategy (see [`Strategy::skip_bars`]); the strategy counts
    /// them as delivered. None while paused (a paused strategy is not
    /// delivered its bars, which it must notice) or while its exits would act
    /// on a bar.
    #[inline]
    pub fn skip_bars(&mut self, symbol: &Symbol, from: usize, upto: usize) -> usize {
        // What `on_market` and `call` would do besides the strategy's `on_bar`.
        if self.paused || !(self.exits.is_idle() || self.exits.bar_mode()) || !self.exits.in_line() {
            return 0;
        }
        self.strategy.skip_bars(symbol, from, upto).min(upto.saturating_sub(from))
    }

    /// True when its exit logic has nothing to evaluate on a bar
    /// ([`Self::bar_exit`] returns `None` without reading the bar).
    #[inline]
    pub fn exits_idle(&self) -> bool {
        self.exits.is_idle()
    }

    /// Pauses or resumes it. Resuming clears a recorded failure.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if !paused {
            self.failure = None;
        }
    }

    /// Its exposure in a symbol.
    pub fn exposure(&self, symbol: &str) -> Exposure {
        let mut e = self.book.get(symbol).copied().unwrap_or_default();
        if let Some(account) = &self.account {
            e.qty = account.strategy_held(&self.id, symbol);
        }
        e
    }

    /// Sets the filled position of a standalone runner in a symbol (one on
    /// the running account reads it there).
    pub fn restore_position(&mut self, symbol: Symbol, qty: Decimal) {
        self.book.entry(symbol).or_default().qty = qty;
    }

    /// Hands the strategy its orders still open at start (after its position
    /// is restored): they count as in flight, and the strategy re-adopts them
    /// in [`Strategy::on_start`]. Runs even when paused — adopting is not
    /// trading — so a resumed strategy knows its orders; a paused one's
    /// cancels are kept and its intents discarded.
    pub fn adopt(&mut self, open: &[Order], now_ms: i64) -> Result<usize, StrategyFailure> {
        let (exit_orders, mine): (Vec<Order>, Vec<Order>) = open
            .iter()
            .filter(|o| o.strategy_id == self.id && self.wants(&o.symbol))
            .cloned()
            .partition(|o| o.exit.is_some());
        // Exit orders go to the exit logic: one exit set per position.
        let exits = self.with_exit_io(now_ms, |x, io| x.adopt(&exit_orders, io));
        for o in &mine {
            self.book.entry(o.symbol.clone()).or_default().pending_orders += 1;
        }
        let paused = std::mem::replace(&mut self.paused, false);
        self.discarding = paused;
        let result = self.call(now_ms, |s, ctx| s.on_start(&mine, ctx));
        self.discarding = false;
        if result.is_ok() && paused {
            // A paused strategy may tidy its orders but not trade (its exits still work).
            self.paused = true;
            self.alerts.clear();
            let book = &mut self.book;
            self.out.retain(|intent| {
                if intent.exit.is_some() {
                    return true;
                }
                if let Some(e) = book.get_mut(&intent.symbol) {
                    e.pending_orders = e.pending_orders.saturating_sub(1);
                }
                false
            });
            return Ok(self.cancels.len() + self.out.len());
        }
        result.map(|n| n + exits)
    }

    /// Feeds history without trading: any intent it produces is discarded.
    pub fn warm_up(&mut self, bars: &[Bar], now_ms: i64) -> Result<(), StrategyFailure> {
        for bar in bars {
            self.discarding = true;
            let result = self.call(now_ms, |s, ctx| s.on_bar(bar, ctx));
            self.discarding = false;
            result?;
            // A warm-up intent (or alert) must not leave, and must not count as in flight.
            self.cancels.clear();
            self.alerts.clear();
            let book = &mut self.book;
            self.out.retain(|intent| {
                if intent.exit.is_some() {
                    return true;
                }
                if let Some(e) = book.get_mut(&intent.symbol) {
                    e.pending_orders = e.pending_orders.saturating_sub(1);
                }
                false
            });
        }
        Ok(())
    }

    /// A market event; returns how many intents and cancels it produced (take
    /// them with [`Self::drain_intents`] and [`Self::drain_cancels`]).
    /// Exits are evaluated first (also while paused): on a trade's price, a
    /// book's bid, a live bar's close (its high for the trailing stop's best);
    /// `max_hold` on every event.
    pub fn on_market(&mut self, event: &MarketEvent, now_ms: i64) -> Result<usize, StrategyFailure> {
        let exits = if self.exits.is_idle() || self.exits.bar_mode() {
            0
        } else {
            let (symbol, price, best) = match event {
                MarketEvent::Bar(b) => (&b.symbol, b.close, b.high),
                MarketEvent::Trade(t) => (&t.symbol, t.price, t.price),
                MarketEvent::Book(b) => (&b.symbol, b.bid, b.bid),
            };
            self.with_exit_io(now_ms, |x, io| {
                x.on_price(symbol, price, best, io);
                x.on_time(io);
            })
        };
        let result = match event {
            MarketEvent::Bar(b) => self.call(now_ms, |s, ctx| s.on_bar(b, ctx)),
            MarketEvent::Trade(t) => self.call(now_ms, |s, ctx| s.on_trade(t, ctx)),
            MarketEvent::Book(b) => self.call(now_ms, |s, ctx| s.on_book(b, ctx)),
        };
        result.map(|n| n + exits)
    }

    /// One of its fills: updates its position (net of a commission paid in
    /// the base asset), then tells the strategy.
    /// The exit logic sees it first (so the strategy reads the position's
    /// exit state in its `on_fill`), exit orders' fills included.
    pub fn on_fill(&mut self, fill: &Fill, now_ms: i64) -> Result<usize, StrategyFailure> {
        let base = self.lots.get(&fill.symbol).map(|i| i.base_asset.as_str()).unwrap_or_default();
        let delta = fill.position_delta(base);
        if self.account.is_none() {
            self.book.entry(fill.symbol.clone()).or_default().qty += delta;
        }
        self.exits.on_fill(fill, delta, now_ms);
        let exits = if self.exits.in_line() { 0 } else { self.with_exit_io(now_ms, |x, io| x.sync_all(io)) };
        self.call(now_ms, |s, ctx| s.on_fill(fill, ctx)).map(|n| n + exits)
    }

    /// A status change of one of its orders (or a refusal of an intent).
    /// An exit order's update goes to the exit logic, not to the strategy.
    pub fn on_order_update(&mut self, update: &OrderUpdate, now_ms: i64) -> Result<usize, StrategyFailure> {
        if update.exit.is_some() {
            return Ok(self.with_exit_io(now_ms, |x, io| x.on_exit_update(update, io)));
        }
        if update.status.is_terminal() {
            if let Some(e) = self.book.get_mut(&update.symbol) {
                e.pending_orders = e.pending_orders.saturating_sub(1);
            }
        }
        let exits = self.with_exit_io(now_ms, |x, io| x.on_strategy_update(update, io));
        self.call(now_ms, |s, ctx| s.on_order_update(update, ctx)).map(|n| n + exits)
    }

    /// A futures market event of one of its symbols: folded into the values
    /// `ctx.futures` reads (also while paused, so a resumed strategy reads
    /// current ones), then handed to the strategy. Another symbol's event is
    /// ignored.
    pub fn on_futures(&mut self, event: &FuturesEvent, now_ms: i64) -> Result<usize, StrategyFailure> {
        if !self.wants(event.symbol()) {
            return Ok(0);
        }
        self.futures.apply(event);
        self.call(now_ms, |s, ctx| s.on_futures(event, ctx))
    }

    /// The latest futures values of one of its symbols.
    pub fn futures(&self, symbol: &str) -> Option<&FuturesSnapshot> {
        self.futures.get(symbol)
    }

    /// An external signal.
    pub fn on_signal(&mut self, signal: &Signal, now_ms: i64) -> Result<usize, StrategyFailure> {
        self.call(now_ms, |s, ctx| s.on_signal(signal, ctx))
    }

    /// Takes the intents produced so far.
    pub fn drain_intents(&mut self) -> std::vec::Drain<'_, OrderIntent> {
        self.out.drain(..)
    }

    /// Takes the cancels asked for so far (client order ids).
    pub fn drain_cancels(&mut self) -> std::vec::Drain<'_, String> {
        self.cancels.drain(..)
    }

    /// Takes the setup alerts raised so far.
    pub fn drain_alerts(&mut self) -> std::vec::Drain<'_, SetupAlert> {
        self.alerts.drain(..)
    }

    fn call(
        &mut self,
        now_ms: i64,
        f: impl FnOnce(&mut dyn Strategy, &mut StrategyCtx<'_>),
    ) -> Result<usize, StrategyFailure> {
        if self.paused {
            return Ok(0);
        }
        let (before, cancels_before, alerts_before) = (self.out.len(), self.cancels.len(), self.alerts.len());
        let mut ctx = StrategyCtx {
            now_ms,
            strategy_id: &self.id,
            book: &mut self.book,
            account: self.account.as_ref(),
            lots: &self.lots,
            out: &mut self.out,
            cancels: &mut self.cancels,
            futures: &self.futures,
            alerts: &mut self.alerts,
            exits: &mut self.exits,
        };
        let strategy = &mut *self.strategy;
        match catch_unwind(AssertUnwindSafe(|| f(strategy, &mut ctx))) {
            Ok(()) => {
                // Its sells wait for a resting leg's cancel; exits it changed are placed.
                let discarding = self.discarding;
                // Most calls (a bar without an intent) leave the exit logic
                // nothing to intercept (none in a backtest) or sync: skipped
                // with all it takes to call it.
                let nothing_new = discarding || self.exits.bar_mode() || self.out.len() <= before;
                if !(nothing_new && self.exits.in_line()) {
                    self.with_exit_io(now_ms, |x, io| {
                        if !discarding {
                            x.intercept(before, io);
                        }
                        x.sync_all(io);
                    });
                }
                let (out, cancels) = (self.out.len().saturating_sub(before), self.cancels.len() - cancels_before);
                Ok(out + cancels + self.alerts.len() - alerts_before)
            }
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                // Whatever it produced while failing is not trusted.
                self.cancels.truncate(cancels_before);
                self.alerts.truncate(alerts_before);
                for intent in self.out.drain(before..) {
                    if let Some(e) = self.book.get_mut(&intent.symbol) {
                        e.pending_orders = e.pending_orders.saturating_sub(1);
                    }
                }
                self.paused = true;
                self.failure = Some(message.clone());
                Err(StrategyFailure { strategy_id: self.id.clone(), message })
            }
        }
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Boom {
        symbol: Symbol,
        after: usize,
        seen: usize,
    }

    impl Strategy for Boom {
        fn kind(&self) -> &'static str {
            "boom"
        }
        fn symbols(&self) -> Vec<Symbol> {
            vec![self.symbol.clone()]
        }
        fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
            self.seen += 1;
            ctx.market(&bar.symbol, Side::Buy, Decimal::ONE);
            if self.seen > self.after {
                panic!("boom at bar {}", self.seen);
            }
        }
    }

    fn bar(t: i64) -> Bar {
        let p = Decimal::new(100, 0);
        Bar { symbol: "X".into(), open_time: t, close_time: t + 59_999, open: p, high: p, low: p, close: p, volume: p }
    }

    #[test]
    fn panic_pauses_and_discards_intents() {
        let mut r = StrategyRunner::new("b".into(), Box::new(Boom { symbol: "X".into(), after: 1, seen: 0 }));
        assert_eq!(r.on_market(&MarketEvent::Bar(bar(0)), 0), Ok(1));
        assert_eq!(r.drain_intents().count(), 1);
        assert_eq!(r.exposure("X").pending_orders, 1);
        let err = r.on_market(&MarketEvent::Bar(bar(1)), 0).unwrap_err();
        assert!(err.message.contains("boom at bar 2"), "{err}");
        assert!(r.is_paused());
        assert_eq!(r.drain_intents().count(), 0);
        assert_eq!(r.exposure("X").pending_orders, 1);
        // Paused: further events are ignored.
        assert_eq!(r.on_market(&MarketEvent::Bar(bar(2)), 0), Ok(0));
    }

    /// Alerts when the funding estimate it reads from its context is positive.
    struct Funding;

    impl Strategy for Funding {
        fn kind(&self) -> &'static str {
            "funding"
        }
        fn symbols(&self) -> Vec<Symbol> {
            vec!["X".into()]
        }
        fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
            ctx.alert(&bar.symbol, "bar", "a bar".into(), Default::default());
        }
        fn on_futures(&mut self, event: &FuturesEvent, ctx: &mut StrategyCtx<'_>) {
            let rate = ctx.futures(event.symbol()).and_then(|f| f.funding_rate_estimate);
            if rate.is_some_and(|r| r > Decimal::ZERO) {
                let values = [("rate".to_string(), rate.unwrap_or_default().to_string())].into();
                ctx.alert(event.symbol(), "funding", "funding is positive".into(), values);
            }
        }
    }

    fn mark(symbol: &str, rate: Decimal) -> FuturesEvent {
        FuturesEvent::Mark(crate::futures::MarkPrice {
            symbol: symbol.into(),
            mark_price: Decimal::ONE_HUNDRED,
            index_price: None,
            estimated_settle_price: None,
            funding_rate_estimate: Some(rate),
            interest_rate: None,
            next_funding_time: Some(8),
            ts_ms: 5,
        })
    }

    #[test]
    fn futures_events_reach_the_context_and_alerts_carry_the_strategy_clock() {
        let mut r = StrategyRunner::new("f".into(), Box::new(Funding));
        assert_eq!(r.on_futures(&mark("Y", Decimal::ONE), 7), Ok(0), "not its symbol");
        assert!(r.futures("Y").is_none());
        assert_eq!(r.on_futures(&mark("X", Decimal::ONE), 7), Ok(1));
        let alerts: Vec<_> = r.drain_alerts().collect();
        assert_eq!((alerts.len(), alerts[0].ts_ms, alerts[0].values["rate"].as_str()), (1, 7, "1"));
        assert_eq!(alerts[0].strategy_id.as_str(), "f");
        assert_eq!(r.on_futures(&mark("X", -Decimal::ONE), 8), Ok(0));
        // Paused: the values stay current, the strategy is not called.
        r.set_paused(true);
        assert_eq!(r.on_futures(&mark("X", Decimal::TWO), 9), Ok(0));
        assert_eq!(r.futures("X").and_then(|f| f.funding_rate_estimate), Some(Decimal::TWO));
        // Warm-up alerts are discarded like warm-up intents.
        r.set_paused(false);
        r.warm_up(&[bar(0)], 0).unwrap();
        assert_eq!(r.drain_alerts().count(), 0);
    }

    #[test]
    fn warm_up_sends_nothing() {
        let mut r = StrategyRunner::new("b".into(), Box::new(Boom { symbol: "X".into(), after: 10, seen: 0 }));
        r.warm_up(&[bar(0), bar(1)], 0).unwrap();
        assert_eq!(r.drain_intents().count(), 0);
        assert_eq!(r.exposure("X").pending_orders, 0);
    }
}

#[cfg(test)]
mod account_tests {
    use super::*;
    use crate::account::{Account, AccountWriter, Assets};
    use std::sync::{Arc, Mutex};

    /// Records what `ctx.position` says while its own fill is delivered.
    struct Watch {
        seen: Arc<Mutex<Vec<Decimal>>>,
    }

    impl Strategy for Watch {
        fn kind(&self) -> &'static str {
            "watch"
        }
        fn symbols(&self) -> Vec<Symbol> {
            vec!["BTCUSDT".into()]
        }
        fn on_bar(&mut self, _bar: &Bar, _ctx: &mut StrategyCtx<'_>) {}
        fn on_fill(&mut self, fill: &Fill, ctx: &mut StrategyCtx<'_>) {
            self.seen.lock().unwrap().push(ctx.position(&fill.symbol));
        }
    }

    fn btc() -> Instrument {
        Instrument::with_steps("BTCUSDT".into(), "BTC".into(), "USDT".into(), Decimal::new(1, 2), Decimal::new(1, 3))
    }

    fn fill(strategy: &str, trade_id: u64, qty: Decimal, fee: Decimal) -> Fill {
        Fill {
            trade_id: trade_id.into(),
            client_order_id: format!("k{trade_id}"),
            strategy_id: strategy.into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            price: Decimal::new(100, 0),
            qty,
            fee,
            fee_asset: "BTC".into(),
            is_maker: false,
            ts_ms: 0,
            tag: None,
        }
    }

    #[test]
    fn a_runner_on_the_running_account_reads_its_own_share_of_it() {
        let account = AccountWriter::new(Account::new(), Assets::of(&[btc()]));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut runner = StrategyRunner::new("w".into(), Box::new(Watch { seen: seen.clone() }))
            .with_instruments(&[btc()])
            .with_account(account.view());
        let ours = fill("w", 1, Decimal::new(15, 1), Decimal::new(15, 4));
        let theirs = fill("other", 2, Decimal::ONE, Decimal::ZERO);
        for f in [&ours, &theirs] {
            account.apply(f);
        }
        runner.on_fill(&ours, 0).unwrap();
        // 1.5 less the 0.0015 BTC commission, rounded down to the 0.001 step;
        // another strategy's fill is not this strategy's position.
        assert_eq!(*seen.lock().unwrap(), [Decimal::new(1498, 3)]);
        assert_eq!(runner.exposure("BTCUSDT").qty, Decimal::new(14985, 4), "applied once, by the writer");
        assert_eq!(account.view().held("BTCUSDT"), Decimal::new(24985, 4));

        // Someone else sells 2 of the 2.4985 held (an operator's manual order):
        // the strategy may no longer sell its full share, only what is left.
        let mut manual = fill("operator", 3, Decimal::from(2), Decimal::ZERO);
        manual.side = Side::Sell;
        account.apply(&manual);
        runner.on_fill(&ours, 0).unwrap();
        assert_eq!(seen.lock().unwrap()[1], Decimal::new(498, 3), "never more than the account holds");
    }
}
