//! The exit logic of one strategy: an [`ExitState`] per position, fed by
//! fills, prices, time and the updates of its exit orders; out come exit
//! orders (reduce-only sells), cancels, state changes to persist and
//! [`ExitEvent`]s.
//!
//! Placement `venue`: the stop-loss and take-profit rest at the venue as one
//! exit order (an OCO for both, a stop-market for a stop alone, a GTC limit
//! for a take-profit alone) for the tradable position; the trailing stop,
//! ROI and max hold are engine-side. A leg the venue refuses makes that
//! position's stop-loss and take-profit engine-side; an exit order the risk
//! guard refuses is tried again a minute later at the earliest.
//!
//! On Binance spot a resting leg locks the base balance, so nothing else
//! may sell while it rests: an engine-side trigger cancels the leg first and
//! sends its closing order once the cancel is reported, and a strategy's own
//! sell waits for the leg's cancel the same way (the leg is placed again for
//! what remains once the sell is final).

use rust_decimal::Decimal;
use rustc_hash::{FxHashMap, FxHashSet};

use super::{ExitEvent, ExitLeg, ExitReason, ExitSpec, ExitState, PendingClose, Placement, RestingLeg};
use crate::order::{Order, OrderIntent, OrderStatus, OrderType, Side, TimeInForce};
use crate::strategy::OrderUpdate;
use crate::symbol::{StrategyId, Symbol};

/// How long an exit order the risk guard refused waits before it is tried again.
pub const RISK_RETRY_MS: i64 = 60_000;

/// Where the exit logic writes what it decides, and how it reads the
/// strategy's tradable position.
pub struct ExitIo<'a> {
    /// Intents out (the runner's).
    pub out: &'a mut Vec<OrderIntent>,
    /// Cancels out (client order ids).
    pub cancels: &'a mut Vec<String>,
    /// The strategy's tradable position in a symbol (rounded down to the lot step).
    pub position: &'a dyn Fn(&str) -> Decimal,
    /// The runner's clock.
    pub now_ms: i64,
}

/// A strategy sell fill while exits were active (counted as `signal`).
#[derive(Debug, Clone)]
struct SignalSale {
    symbol: Symbol,
    entry_price: Decimal,
    qty: Decimal,
    quote: Decimal,
}

/// The exit logic of one strategy.
#[derive(Debug, Clone)]
pub struct ExitBook {
    strategy_id: StrategyId,
    default: Option<ExitSpec>,
    states: FxHashMap<Symbol, ExitState>,
    /// Backtest: exits are evaluated on bars by the simulator; no venue
    /// legs, no tick triggers, no state changes kept for a store.
    bar_mode: bool,
    /// Strategy sells waiting for a leg's cancel, per symbol.
    held: FxHashMap<Symbol, Vec<OrderIntent>>,
    /// Strategy sells sent and not final, per symbol: how many and their
    /// quantity (a leg waits for them; a close sells only what they leave).
    /// The quantity is forgotten only when none is left, so it errs on the
    /// side of selling less.
    sells_in_flight: FxHashMap<Symbol, (u32, Decimal)>,
    /// Strategy sell fills by client order id, reported when the order is final.
    signal_sales: FxHashMap<String, SignalSale>,
    /// Exit orders already final (a late report of one is not mistaken for
    /// the next order, whose id is not known yet); the newest ones only.
    finished: FxHashSet<String>,
    /// Symbols whose state changed since the last drain.
    dirty: FxHashSet<Symbol>,
    /// Symbols to bring in line (legs) at the next `sync_all`.
    to_sync: FxHashSet<Symbol>,
    events: Vec<ExitEvent>,
    /// True once the strategy has exits (configured, restored or attached):
    /// until then nothing is evaluated, so a strategy without exits pays
    /// nothing per event.
    armed: bool,
}

impl ExitBook {
    /// The exit logic of `strategy_id` with its configured exits (if any).
    pub fn new(strategy_id: StrategyId, default: Option<ExitSpec>) -> Self {
        Self {
            armed: default.is_some(),
            strategy_id,
            default,
            states: FxHashMap::default(),
            bar_mode: false,
            held: FxHashMap::default(),
            sells_in_flight: FxHashMap::default(),
            signal_sales: FxHashMap::default(),
            finished: FxHashSet::default(),
            dirty: FxHashSet::default(),
            to_sync: FxHashSet::default(),
            events: Vec::new(),
        }
    }

    /// Sets the configured exits.
    pub fn set_default(&mut self, spec: ExitSpec) {
        self.default = Some(spec);
        self.armed = true;
    }

    /// The configured exits.
    pub fn default_spec(&self) -> Option<&ExitSpec> {
        self.default.as_ref()
    }

    /// Backtest mode (see the field).
    pub fn set_bar_mode(&mut self, on: bool) {
        self.bar_mode = on;
    }

    /// True in backtest mode.
    pub fn bar_mode(&self) -> bool {
        self.bar_mode
    }

    /// True when no position waits to be brought in line: [`Self::sync_all`]
    /// would do nothing (a caller skips it, and what it takes to call it).
    #[inline]
    pub fn in_line(&self) -> bool {
        self.to_sync.is_empty()
    }

    /// True when nothing is to be evaluated (no open position with exits).
    #[inline]
    pub fn is_idle(&self) -> bool {
        !self.armed || (self.states.is_empty() && (self.default.is_none() || self.bar_mode))
    }

    /// The state of a position.
    pub fn state(&self, symbol: &str) -> Option<&ExitState> {
        self.states.get(symbol)
    }

    /// Mutable state of a position (marked changed and to be synced).
    pub fn state_mut(&mut self, symbol: &str) -> Option<&mut ExitState> {
        let st = self.states.get_mut(symbol)?;
        st.band = None;
        self.armed = true;
        self.dirty.insert(st.symbol.clone());
        self.to_sync.insert(st.symbol.clone());
        Some(st)
    }

    /// The exits in force for a position.
    pub fn effective(&self, symbol: &str) -> Option<&ExitSpec> {
        self.states.get(symbol)?.effective(self.default.as_ref())
    }

    /// Every state (a snapshot).
    pub fn states(&self) -> Vec<ExitState> {
        let mut all: Vec<ExitState> = self.states.values().cloned().collect();
        all.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        all
    }

    /// States saved before a restart.
    pub fn restore(&mut self, states: Vec<ExitState>) {
        for st in states {
            self.armed = true;
            self.to_sync.insert(st.symbol.clone());
            self.states.insert(st.symbol.clone(), st);
        }
    }

    /// Takes the changed states: `Some` to put, `None` to delete.
    pub fn drain_changes(&mut self) -> Vec<(Symbol, Option<ExitState>)> {
        if !self.armed {
            self.dirty.clear();
            return Vec::new();
        }
        let mut changed: Vec<Symbol> = self.dirty.drain().collect();
        changed.sort();
        changed.into_iter().map(|s| (s.clone(), self.states.get(&s).cloned())).collect()
    }

    /// Takes the exits that happened.
    pub fn drain_events(&mut self) -> Vec<ExitEvent> {
        std::mem::take(&mut self.events)
    }

    fn touch(&mut self, symbol: &Symbol) {
        if !self.bar_mode && self.armed {
            self.dirty.insert(symbol.clone());
        }
        self.to_sync.insert(symbol.clone());
    }

    /// A fill of this strategy: `delta` is what it changed the position by
    /// (negative for a sell). Opens, adds to or reduces the position's state.
    pub fn on_fill(&mut self, fill: &crate::fill::Fill, delta: Decimal, now_ms: i64) {
        let symbol = fill.symbol.clone();
        if delta > Decimal::ZERO {
            match self.states.get_mut(&symbol) {
                Some(st) if st.qty > Decimal::ZERO => {
                    st.band = None;
                    let total = st.qty + delta;
                    st.entry_price = (st.entry_price * st.qty + fill.price * delta) / total;
                    st.qty = total;
                }
                Some(st) => {
                    // A state kept only for an order still out: a new position.
                    let (leg, pending) = (st.leg.take(), st.pending_close.take());
                    *st = ExitState {
                        leg,
                        pending_close: pending,
                        ..ExitState::open(symbol.clone(), fill.price, delta, now_ms)
                    };
                }
                None => {
                    self.states.insert(symbol.clone(), ExitState::open(symbol.clone(), fill.price, delta, now_ms));
                }
            }
            self.touch(&symbol);
            return;
        }
        let default = self.default.as_ref();
        let Some(st) = self.states.get_mut(&symbol) else { return };
        st.band = None;
        st.qty += delta;
        let cid = fill.client_order_id.as_str();
        let notional = fill.price * fill.qty;
        if let Some(leg) = st.leg.as_mut().filter(|l| l.client_order_id.as_deref() == Some(cid)) {
            leg.filled_qty += fill.qty;
            leg.filled_quote += notional;
        } else if let Some(p) = st.pending_close.as_mut().filter(|p| p.client_order_id.as_deref() == Some(cid)) {
            p.filled_qty += fill.qty;
            p.filled_quote += notional;
        } else if fill.side == Side::Sell && st.effective(default).is_some() {
            let sale = self.signal_sales.entry(fill.client_order_id.clone()).or_insert_with(|| SignalSale {
                symbol: symbol.clone(),
                entry_price: st.entry_price,
                qty: Decimal::ZERO,
                quote: Decimal::ZERO,
            });
            sale.qty += fill.qty;
            sale.quote += notional;
        }
        self.touch(&symbol);
    }

    fn event(
        &mut self,
        symbol: &Symbol,
        reason: ExitReason,
        qty: Decimal,
        quote: Decimal,
        entry: Decimal,
        now_ms: i64,
    ) {
        if qty <= Decimal::ZERO {
            return;
        }
        self.events.push(ExitEvent {
            strategy_id: self.strategy_id.clone(),
            symbol: symbol.clone(),
            reason,
            qty,
            price: quote / qty,
            entry_price: entry,
            ts_ms: now_ms,
        });
    }

    /// An update of one of this strategy's exit orders (`update.exit` is set).
    pub fn on_exit_update(&mut self, update: &OrderUpdate, io: &mut ExitIo<'_>) {
        let Some(kind) = update.exit else { return };
        let symbol = update.symbol.clone();
        let cid = update.client_order_id.clone();
        let terminal = update.status.is_terminal();
        if cid.as_ref().is_some_and(|c| self.finished.contains(c)) {
            return;
        }
        if terminal {
            if let Some(c) = &cid {
                if self.finished.len() >= 1024 {
                    self.finished.clear();
                }
                self.finished.insert(c.clone());
            }
        }
        let Some(st) = self.states.get_mut(&symbol) else {
            // An exit order of a position the logic no longer follows.
            if let (Some(cid), false) = (cid, terminal) {
                io.cancels.push(cid);
            }
            return;
        };
        let refusal = update.status == OrderStatus::Rejected;
        let by_risk = refusal && update.reason.as_deref().is_some_and(|r| r.starts_with("risk:"));
        match kind {
            ExitLeg::Close(reason) => {
                let ours = st.pending_close.as_ref().is_some_and(|p| {
                    p.sent && (p.client_order_id.is_none() || p.client_order_id == cid || cid.is_none())
                });
                if !ours {
                    if let (Some(cid), false) = (cid, terminal) {
                        io.cancels.push(cid);
                    }
                    return;
                }
                let Some(p) = st.pending_close.as_mut() else { return };
                if p.client_order_id.is_none() {
                    p.client_order_id = cid;
                }
                if terminal {
                    let (qty, quote, entry) = (p.filled_qty, p.filled_quote, st.entry_price);
                    st.pending_close = None;
                    if refusal || update.status == OrderStatus::Expired {
                        st.retry_after_ms = Some(io.now_ms + RISK_RETRY_MS);
                    }
                    self.event(&symbol, reason, qty, quote, entry, io.now_ms);
                }
            }
            leg_kind => {
                let ours = st.leg.as_ref().is_some_and(|l| {
                    l.leg == leg_kind && (l.client_order_id.is_none() || l.client_order_id == cid || cid.is_none())
                });
                if !ours {
                    // An extra exit set: one per position.
                    if let (Some(cid), false) = (cid, terminal) {
                        io.cancels.push(cid);
                    }
                    return;
                }
                let Some(leg) = st.leg.as_mut() else { return };
                if leg.client_order_id.is_none() && cid.is_some() {
                    leg.client_order_id = cid.clone();
                    // A cancel asked for before its id was known.
                    if leg.canceling && !terminal {
                        io.cancels.extend(cid);
                    }
                }
                if terminal {
                    let leg = st.leg.take();
                    if refusal {
                        if by_risk {
                            st.retry_after_ms = Some(io.now_ms + RISK_RETRY_MS);
                        } else {
                            st.venue_refused = true;
                        }
                    }
                    if let Some(leg) = leg {
                        let reason = match leg.leg {
                            ExitLeg::Stop => ExitReason::StopLoss,
                            ExitLeg::TakeProfit => ExitReason::TakeProfit,
                            _ => {
                                let avg = if leg.filled_qty.is_zero() {
                                    Decimal::ZERO
                                } else {
                                    leg.filled_quote / leg.filled_qty
                                };
                                if leg.take_profit.is_some_and(|tp| avg >= tp) {
                                    ExitReason::TakeProfit
                                } else {
                                    ExitReason::StopLoss
                                }
                            }
                        };
                        let entry = st.entry_price;
                        self.event(&symbol, reason, leg.filled_qty, leg.filled_quote, entry, io.now_ms);
                    }
                    // What waited for the leg goes now.
                    if let Some(held) = self.held.remove(&symbol) {
                        let flight = self.sells_in_flight.entry(symbol.clone()).or_default();
                        flight.0 += held.len() as u32;
                        flight.1 += held.iter().map(|i| i.qty).sum::<Decimal>();
                        io.out.extend(held);
                    }
                    self.send_pending_close(&symbol, io);
                }
            }
        }
        self.touch(&symbol);
        self.sync(&symbol, io);
    }

    /// An update of one of the strategy's own orders: a final sell lets a
    /// leg be placed again, and a sell that reduced a position with exits is
    /// reported as `signal`.
    pub fn on_strategy_update(&mut self, update: &OrderUpdate, io: &mut ExitIo<'_>) {
        if update.side != Side::Sell || !update.status.is_terminal() {
            return;
        }
        if let Some(flight) = self.sells_in_flight.get_mut(&update.symbol) {
            flight.0 = flight.0.saturating_sub(1);
            if flight.0 == 0 {
                self.sells_in_flight.remove(&update.symbol);
            }
        }
        if let Some(cid) = &update.client_order_id {
            if let Some(sale) = self.signal_sales.remove(cid) {
                self.event(&sale.symbol, ExitReason::Signal, sale.qty, sale.quote, sale.entry_price, io.now_ms);
            }
        }
        self.to_sync.insert(update.symbol.clone());
        self.sync(&update.symbol.clone(), io);
    }

    /// The strategy's new intents (`out[from..]`): a sell of a symbol whose
    /// leg rests waits for the leg's cancel (which is asked for here).
    pub fn intercept(&mut self, from: usize, io: &mut ExitIo<'_>) {
        if self.bar_mode {
            return;
        }
        let mut i = from;
        while i < io.out.len() {
            let intent = &io.out[i];
            if intent.exit.is_some() || intent.side != Side::Sell {
                i += 1;
                continue;
            }
            let symbol = intent.symbol.clone();
            let Some(st) = self.states.get_mut(&symbol) else {
                i += 1;
                continue;
            };
            match st.leg.as_mut() {
                Some(leg) => {
                    let intent = io.out.remove(i);
                    self.held.entry(symbol.clone()).or_default().push(intent);
                    if !leg.canceling {
                        leg.canceling = true;
                        io.cancels.extend(leg.client_order_id.clone());
                    }
                    self.touch(&symbol);
                }
                None => {
                    let flight = self.sells_in_flight.entry(symbol).or_default();
                    flight.0 += 1;
                    flight.1 += intent.qty;
                    i += 1;
                }
            }
        }
    }

    /// A price of `symbol` (`price` to trigger on, `best` for the trailing
    /// stop's best: a live bar's high, else the price).
    pub fn on_price(&mut self, symbol: &Symbol, price: Decimal, best: Decimal, io: &mut ExitIo<'_>) {
        if self.bar_mode {
            return;
        }
        if !self.states.contains_key(symbol) {
            // A position without state (configured exits on a position held
            // before): its entry is taken as the first price seen.
            let held = (io.position)(symbol);
            if self.default.is_none() || held <= Decimal::ZERO {
                return;
            }
            self.states.insert(symbol.clone(), ExitState::open(symbol.clone(), price, held, io.now_ms));
            self.touch(symbol);
        }
        let default = self.default.as_ref();
        let Some(st) = self.states.get_mut(symbol) else { return };
        if st.removed {
            return;
        }
        // The spec is lent out of the state for the call (no clone a tick).
        let own = st.spec.take();
        let (moved, reason) = match own.as_ref().or(default).or_else(|| st.levels_only()) {
            Some(spec) => {
                let moved = st.see_best(spec, best);
                (moved, st.trigger(spec, price, io.now_ms, st.leg.is_some()))
            }
            None => (false, None),
        };
        st.spec = own;
        if moved {
            self.dirty.insert(symbol.clone());
        }
        if let Some(reason) = reason {
            self.fire(symbol, reason, io);
        }
    }

    /// Time passed: `max_hold` is checked on every event.
    pub fn on_time(&mut self, io: &mut ExitIo<'_>) {
        if self.bar_mode || self.states.is_empty() {
            return;
        }
        let retry: Vec<Symbol> = self
            .states
            .values()
            .filter(|st| st.retry_after_ms.is_some_and(|t| io.now_ms >= t))
            .map(|st| st.symbol.clone())
            .collect();
        for symbol in retry {
            if let Some(st) = self.states.get_mut(&symbol) {
                st.retry_after_ms = None;
            }
            self.touch(&symbol);
            self.sync(&symbol, io);
        }
        let default = self.default.as_ref();
        let due: Vec<Symbol> = self
            .states
            .values()
            .filter(|st| {
                st.effective(default).and_then(|s| st.deadline(s)).is_some_and(|d| io.now_ms >= d)
                    && st.pending_close.is_none()
            })
            .map(|st| st.symbol.clone())
            .collect();
        for symbol in due {
            self.fire(&symbol, ExitReason::MaxHold, io);
        }
    }

    /// An engine-side trigger fired: close now, or cancel the resting leg
    /// first and close when its cancel is reported.
    fn fire(&mut self, symbol: &Symbol, reason: ExitReason, io: &mut ExitIo<'_>) {
        let Some(st) = self.states.get_mut(symbol) else { return };
        if st.pending_close.is_some() || st.retry_after_ms.is_some_and(|t| io.now_ms < t) {
            return;
        }
        if (io.position)(symbol) <= Decimal::ZERO {
            return;
        }
        st.pending_close = Some(PendingClose {
            reason,
            client_order_id: None,
            sent: false,
            filled_qty: Decimal::ZERO,
            filled_quote: Decimal::ZERO,
        });
        match st.leg.as_mut() {
            Some(leg) => {
                if !leg.canceling {
                    leg.canceling = true;
                    io.cancels.extend(leg.client_order_id.clone());
                }
            }
            None => self.send_pending_close(symbol, io),
        }
        self.touch(symbol);
    }

    /// Sends a decided close once no leg rests.
    fn send_pending_close(&mut self, symbol: &Symbol, io: &mut ExitIo<'_>) {
        let Some(st) = self.states.get_mut(symbol) else { return };
        if st.leg.is_some() {
            return;
        }
        let Some(p) = st.pending_close.as_mut().filter(|p| !p.sent) else { return };
        // What the strategy's own sells out there leave.
        let selling = self.sells_in_flight.get(symbol).map_or(Decimal::ZERO, |f| f.1);
        let qty = (io.position)(symbol) - selling;
        if qty <= Decimal::ZERO {
            st.pending_close = None;
            return;
        }
        p.sent = true;
        let intent = OrderIntent::market(self.strategy_id.clone(), symbol.clone(), Side::Sell, qty)
            .as_exit(ExitLeg::Close(p.reason));
        io.out.push(intent);
    }

    /// Cancels a position's resting leg so it is placed again with its
    /// current levels (the strategy moved its stop or target).
    pub fn replace_leg(&mut self, symbol: &str, cancels: &mut Vec<String>) {
        let Some(st) = self.states.get_mut(symbol) else { return };
        let sym = st.symbol.clone();
        if let Some(leg) = st.leg.as_mut().filter(|l| !l.canceling) {
            leg.canceling = true;
            cancels.extend(leg.client_order_id.clone());
        }
        self.touch(&sym);
    }

    /// Brings every position that changed in line.
    pub fn sync_all(&mut self, io: &mut ExitIo<'_>) {
        // Mostly one symbol changed (a fill): no list to collect and sort.
        if self.to_sync.len() <= 1 {
            if let Some(s) = self.to_sync.iter().next().cloned() {
                self.sync(&s, io);
            }
            return;
        }
        let mut symbols: Vec<Symbol> = self.to_sync.iter().cloned().collect();
        symbols.sort();
        for s in symbols {
            self.sync(&s, io);
        }
    }

    /// Brings one position's resting leg in line with its position and
    /// levels: places, replaces or cancels it; forgets a closed position.
    fn sync(&mut self, symbol: &Symbol, io: &mut ExitIo<'_>) {
        self.to_sync.remove(symbol);
        let default = self.default.as_ref();
        let Some(st) = self.states.get_mut(symbol) else { return };
        // A closed state needs no look at the position (the branch below is
        // taken either way).
        let held = if st.qty <= Decimal::ZERO { Decimal::ZERO } else { (io.position)(symbol) };
        let busy = st.pending_close.is_some() || st.leg.as_ref().is_some_and(|l| l.canceling);
        if held <= Decimal::ZERO || st.qty <= Decimal::ZERO {
            // A leg that filled whole is done; one with something left goes.
            if let Some(leg) = st.leg.as_mut().filter(|l| !l.canceling && l.filled_qty < l.qty) {
                leg.canceling = true;
                io.cancels.extend(leg.client_order_id.clone());
            }
            if st.leg.is_none() && st.pending_close.is_none() && !self.held.contains_key(symbol) {
                self.states.remove(symbol);
                if !self.bar_mode {
                    self.dirty.insert(symbol.clone());
                }
            }
            return;
        }
        if busy {
            return;
        }
        let waiting = self.held.contains_key(symbol)
            || self.sells_in_flight.contains_key(symbol)
            || st.retry_after_ms.is_some_and(|t| io.now_ms < t);
        let desired = match st.effective(default) {
            Some(spec) if !self.bar_mode && spec.placement == Placement::Venue && !st.venue_refused => {
                desired_leg(st, spec, held)
            }
            _ => None,
        };
        match (&mut st.leg, desired) {
            (Some(leg), want) => {
                // Prices change only by the strategy's hand (see `replace_leg`);
                // an adopted leg's prices are the risk guard's rounding of them.
                let same = want.as_ref().is_some_and(|w| w.leg == leg.leg && w.qty == leg.qty - leg.filled_qty);
                if !same {
                    leg.canceling = true;
                    io.cancels.extend(leg.client_order_id.clone());
                    self.dirty.insert(symbol.clone());
                }
            }
            (None, Some(want)) if !waiting => {
                let order_type = match want.leg {
                    ExitLeg::Oco => OrderType::Oco {
                        take_profit: want.take_profit.unwrap_or_default(),
                        stop: want.stop.unwrap_or_default(),
                        stop_limit: None,
                    },
                    ExitLeg::Stop => OrderType::StopMarket { stop: want.stop.unwrap_or_default() },
                    _ => OrderType::Limit { price: want.take_profit.unwrap_or_default() },
                };
                let mut intent = OrderIntent::market(self.strategy_id.clone(), symbol.clone(), Side::Sell, want.qty)
                    .as_exit(want.leg);
                intent.order_type = order_type;
                intent.tif = TimeInForce::Gtc;
                io.out.push(intent);
                st.retry_after_ms = None;
                st.leg = Some(want);
                if !self.bar_mode {
                    self.dirty.insert(symbol.clone());
                }
            }
            _ => {}
        }
    }

    /// The open exit orders of this strategy at start: known ones are kept,
    /// unknown ones adopted (one exit set per position), extras canceled; a
    /// leg the state remembers that is no longer open is placed again.
    pub fn adopt(&mut self, open: &[Order], io: &mut ExitIo<'_>) {
        let mut seen: FxHashSet<Symbol> = FxHashSet::default();
        for st in self.states.values_mut() {
            let leg_open = st.leg.as_ref().is_some_and(|l| {
                open.iter().any(|o| o.client_order_id.as_str() == l.client_order_id.as_deref().unwrap_or("-"))
            });
            if !leg_open {
                st.leg = None;
            }
            let close_open = st.pending_close.as_ref().is_some_and(|p| {
                open.iter().any(|o| o.client_order_id.as_str() == p.client_order_id.as_deref().unwrap_or("-"))
            });
            if !close_open {
                st.pending_close = None;
            }
            self.dirty.insert(st.symbol.clone());
            self.to_sync.insert(st.symbol.clone());
        }
        for o in open.iter().filter(|o| o.exit.is_some()) {
            let Some(kind) = o.exit else { continue };
            let Some(st) = self.states.get_mut(&o.symbol) else {
                io.cancels.push(o.client_order_id.clone());
                continue;
            };
            let cid = Some(o.client_order_id.clone());
            match kind {
                ExitLeg::Close(reason) => match &st.pending_close {
                    Some(p) if p.client_order_id == cid => {}
                    None => {
                        st.pending_close = Some(PendingClose {
                            reason,
                            client_order_id: cid,
                            sent: true,
                            filled_qty: Decimal::ZERO,
                            filled_quote: Decimal::ZERO,
                        })
                    }
                    Some(_) => io.cancels.push(o.client_order_id.clone()),
                },
                leg => match &st.leg {
                    Some(l) if l.client_order_id == cid => {
                        seen.insert(o.symbol.clone());
                    }
                    None if !seen.contains(&o.symbol) => {
                        seen.insert(o.symbol.clone());
                        st.leg = Some(RestingLeg {
                            leg,
                            client_order_id: cid,
                            qty: o.qty - o.filled_qty,
                            stop: o.order_type.stop_price(),
                            take_profit: match o.order_type {
                                OrderType::Limit { price } => Some(price),
                                OrderType::Oco { take_profit, .. } => Some(take_profit),
                                _ => None,
                            },
                            canceling: false,
                            filled_qty: Decimal::ZERO,
                            filled_quote: Decimal::ZERO,
                        });
                    }
                    _ => io.cancels.push(o.client_order_id.clone()),
                },
            }
        }
        self.sync_all(io);
    }
}

/// The leg a position wants at the venue: its stop and take-profit.
fn desired_leg(st: &ExitState, spec: &ExitSpec, qty: Decimal) -> Option<RestingLeg> {
    let stop = st.stop_level(spec);
    let take_profit = st.take_profit_level(spec);
    let leg = match (stop, take_profit) {
        (Some(_), Some(_)) => ExitLeg::Oco,
        (Some(_), None) => ExitLeg::Stop,
        (None, Some(_)) => ExitLeg::TakeProfit,
        (None, None) => return None,
    };
    Some(RestingLeg {
        leg,
        client_order_id: None,
        qty,
        stop,
        take_profit,
        canceling: false,
        filled_qty: Decimal::ZERO,
        filled_quote: Decimal::ZERO,
    })
}

impl ExitBook {
    /// Backtest: the exit a bar of `bar.symbol` reaches on its path (see
    /// [`ExitState::bar_exit`]) for the tradable position `held`, as a
    /// reduce-only market sell and the price it fills at; the close is
    /// pending until its update. Without an exit the best price moved on.
    pub fn on_bar(
        &mut self,
        bar: &crate::market::Bar,
        held: impl FnOnce() -> Decimal,
    ) -> Option<(OrderIntent, Decimal)> {
        let default = self.default.as_ref();
        let st = self.states.get_mut(&bar.symbol)?;
        // Most bars stay within the band where nothing can fire.
        if st.band.is_some_and(|b| b.holds(bar.open_time, bar.high, bar.low, st.best_price)) {
            if bar.high > st.best_price {
                st.best_price = bar.high;
            }
            return None;
        }
        if st.removed || st.pending_close.is_some() || st.retry_after_ms.is_some_and(|t| bar.open_time < t) {
            return None;
        }
        // The spec is lent out of the state for the call (no clone a bar).
        let own = st.spec.take();
        let hit = match own.as_ref().or(default).or_else(|| st.levels_only()) {
            Some(spec) => {
                let hit = st.bar_exit(spec, bar.open_time, bar.open, bar.high, bar.low, bar.close);
                // For the next bar (the best price may have moved).
                st.band = hit.is_none().then(|| st.band(spec, bar.open_time.saturating_add(1)));
                hit
            }
            None => None,
        };
        st.spec = own;
        let (reason, price) = hit?;
        let held = held();
        if held <= Decimal::ZERO {
            return None;
        }
        st.pending_close = Some(PendingClose {
            reason,
            client_order_id: None,
            sent: true,
            filled_qty: Decimal::ZERO,
            filled_quote: Decimal::ZERO,
        });
        let intent = OrderIntent::market(self.strategy_id.clone(), bar.symbol.clone(), Side::Sell, held)
            .as_exit(ExitLeg::Close(reason));
        Some((intent, price))
    }
}
