//! The risk engine: trading state, exposure bookkeeping and the pre-trade gate.
//!
//! One [`RiskEngine`] sees every intent in order. Approved orders count as open
//! ("in flight") under their client order id until [`RiskEngine::on_order_final`],
//! so two quick intents cannot both pass a limit only one fits under.
//!
//! Time is passed in (ms since the epoch, from the engine's `Clock`); the engine
//! never reads the wall clock. Time-based checks (stale data, duplicates, order
//! rate) need a time: [`RiskEngine::check_at`] gives one; the older
//! [`RiskEngine::check`] uses the latest time the engine has been told about and
//! skips them while it has been told none.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::config::RiskConfig;
use keel_core::account::{Account, AccountView, AccountWriter, Assets};
use keel_core::balance::{Balance, Balances};
use keel_core::fill::Fill;
use keel_core::instrument::{FilterViolation, Instrument};
use keel_core::order::{Order, OrderIntent, OrderStatus, OrderType, Side};
use keel_core::position::Position;
use keel_core::trading::{EmergencyStop, TradingState, TradingStateRecord};
use keel_core::{Decimal, StrategyId, Symbol};
use serde::{Deserialize, Serialize};

use crate::protections::{severity, ProtectionEvent, ProtectionState, Protections};
use crate::reason::{OpenOrderScope, RejectReason, Rejection};
use crate::windows::{DuplicateGuard, RateLimiter, RateLimits};

/// An order the risk engine approved: the intent rounded to the venue's
/// filters, under the client order id it counts as in flight.
///
/// Only this crate can make one (the fields are private and there is no public
/// constructor), so holding an `Approved` proves the gate passed: the order
/// router accepts nothing else, and no code path can send an intent the risk
/// engine has not seen. Outside this crate an approval cannot be written:
///
/// ```compile_fail
/// use keel_core::order::{OrderIntent, Side};
/// let intent = OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, keel_core::Decimal::ONE);
/// let forged = risk::Approved { order: intent, client_order_id: "k1".into(), reference_price: keel_core::Decimal::ONE };
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Approved<T = OrderIntent> {
    order: T,
    client_order_id: String,
    reference_price: Decimal,
}

impl<T> Approved<T> {
    /// The approved order, as it will be sent.
    pub fn order(&self) -> &T {
        &self.order
    }

    /// The client order id it was approved (and counts as in flight) under.
    pub fn client_order_id(&self) -> &str {
        &self.client_order_id
    }

    /// The price it was valued at (limit price, or last price for a market order).
    pub fn reference_price(&self) -> Decimal {
        self.reference_price
    }

    /// The order and its client order id, for the code that sends it.
    pub fn into_parts(self) -> (T, String) {
        (self.order, self.client_order_id)
    }
}

/// What [`RiskEngine::flatten_plan`] sends, and what it cannot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlattenPlan {
    /// One reduce-only market order per symbol with a tradable holding.
    pub orders: Vec<OrderIntent>,
    /// Per symbol, what stays after those orders: less than the lot step or
    /// the minimum quantity, which no order can sell.
    pub dust: Vec<(Symbol, Decimal)>,
}

/// An order counted as open or in flight.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) strategy: StrategyId,
    pub(crate) symbol: Symbol,
    pub(crate) side: Side,
    pub(crate) remaining: Decimal,
    /// Price it was valued at when approved.
    pub(crate) reference_price: Decimal,
    /// The venue acknowledged it (its funds are locked there, so the next
    /// balance snapshot accounts for it).
    pub(crate) acknowledged: bool,
    /// Its funds are reserved against the free balance by the risk engine.
    pub(crate) reserved: bool,
    /// Orders it is at the venue: an OCO's two legs count against the
    /// symbol's MAX_NUM_ORDERS, as Binance counts them.
    pub(crate) venue_orders: usize,
}

/// How many open orders `order_type` makes at the venue (an OCO lists two).
fn venue_orders(order_type: &OrderType) -> usize {
    match order_type {
        OrderType::Oco { .. } => 2,
        _ => 1,
    }
}

/// What the protections did in one evaluation, for the actor to act on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProtectionOutcome {
    /// What happened (log, notify, publish each).
    pub events: Vec<ProtectionEvent>,
    /// The new effective trading state if it changed: flush it to the store
    /// (`put_trading_state`) before acting on it, and publish `TradingStateChanged`.
    pub state_change: Option<TradingStateRecord>,
    /// A protection configured to do so asks for the emergency stop, with this
    /// reason: call [`crate::emergency::set`], then
    /// [`RiskEngine::set_emergency_stop_record`], and cancel every open order.
    pub emergency_stop: Option<String>,
}

impl ProtectionOutcome {
    /// Who asks for the emergency stop and why: (`protection:<kind>`, reason),
    /// ready for [`crate::emergency::set`].
    pub fn emergency_request(&self) -> Option<(String, String)> {
        self.emergency_stop.as_ref()?;
        self.events.iter().find_map(|e| match e {
            ProtectionEvent::Tripped { protection, emergency_stop: true, reason, .. } => {
                Some((format!("protection:{}", protection.as_str()), reason.clone()))
            }
            _ => None,
        })
    }
}

/// The risk engine's durable state beyond the store's trading-state record and
/// emergency stop: the operator's base state and the protections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskPersisted {
    /// The state set by an operator or the engine (protections and the emergency
    /// stop may require a more severe one on top).
    pub base_state: TradingStateRecord,
    /// The protections' memory.
    pub protections: ProtectionState,
}

/// Per (strategy, symbol) bookkeeping that finds round trips for the
/// consecutive-loss protection.
#[derive(Debug, Clone)]
struct TripBook {
    position: Position,
    pnl: Decimal,
    /// False while the entry price of the open quantity is unknown (restored at
    /// start without it): that round trip is not counted as a win or a loss.
    known_basis: bool,
}

/// Where the risk engine reads positions: the running account (whose one
/// writer, the order router or the backtest's simulator, has already applied
/// each fill), or — for a standalone engine (tools, tests) — an account of
/// its own that [`RiskEngine::on_fill`] writes.
#[derive(Debug)]
pub(crate) struct AccountSource {
    own: Option<AccountWriter>,
    pub(crate) view: AccountView,
}

impl AccountSource {
    fn own(writer: AccountWriter) -> Self {
        Self { view: writer.view(), own: Some(writer) }
    }
}

impl Clone for AccountSource {
    fn clone(&self) -> Self {
        match &self.own {
            // A copy of a standalone engine owns a copy of its account.
            Some(w) => Self::own(w.fork()),
            None => Self { own: None, view: self.view.clone() },
        }
    }
}

/// The risk engine. One instance sees every intent in order.
#[derive(Debug, Clone)]
pub struct RiskEngine {
    pub(crate) config: RiskConfig,
    pub(crate) instruments: FxHashMap<Symbol, Instrument>,
    pub(crate) base_state: TradingStateRecord,
    pub(crate) effective: TradingStateRecord,
    pub(crate) emergency: EmergencyStop,
    pub(crate) venue_healthy: bool,
    pub(crate) account: AccountSource,
    pub(crate) in_flight: FxHashMap<String, InFlight>,
    /// Keys of orders no longer in flight, reused for new ones (so the order
    /// path allocates no string per order).
    spare_ids: Vec<String>,
    pub(crate) last_price: FxHashMap<Symbol, Decimal>,
    pub(crate) last_event_ms: FxHashMap<Symbol, i64>,
    /// Fills since the last balance snapshot, per asset: what the snapshot
    /// does not show yet, spent amounts positive, received amounts negative.
    /// The fill is the truth and the next snapshot reconciles, so coins just
    /// bought can be sold (a flatten right after a buy) before the venue's
    /// balance report arrives. The router delivers reports in venue order
    /// after the fills before them, so a report never predates a fill
    /// counted here.
    pub(crate) unsettled: FxHashMap<String, Decimal>,
    pub(crate) rates: RateLimiter,
    pub(crate) duplicates: DuplicateGuard,
    pub(crate) protections: Protections,
    trips: FxHashMap<(StrategyId, Symbol), TripBook>,
    pending_events: Vec<ProtectionEvent>,
    pub(crate) now_hint: Option<i64>,
    pub(crate) rejections: BTreeMap<&'static str, u64>,
    pub(crate) approved_total: u64,
    /// 1 + the balance fee rate (the config never changes, so once).
    fee_factor: Decimal,
}

fn record(state: TradingState, reason: impl Into<String>, since_ms: i64) -> TradingStateRecord {
    TradingStateRecord { state, reason: reason.into(), since_ms }
}

/// `a × b`, saturating at the largest decimal (a conservative value for limits).
fn mul(a: Decimal, b: Decimal) -> Decimal {
    a.saturating_mul(b)
}

impl RiskEngine {
    /// A risk engine with limits and the instruments' filters, trading `ACTIVE`,
    /// venue healthy. The actor calls [`Self::set_venue_healthy`]`(false)` until
    /// start-up reconciliation is done, and [`Self::apply_startup`] with what the
    /// store says.
    pub fn new(config: RiskConfig, instruments: Vec<Instrument>) -> Self {
        let protections = Protections::new(&config);
        let assets = Assets::of(&instruments);
        let fee_factor = Decimal::ONE
            .saturating_add(config.balance_fee_bps.checked_div(Decimal::new(10_000, 0)).unwrap_or_default());
        Self {
            config,
            instruments: instruments.into_iter().map(|i| (i.symbol.clone(), i)).collect(),
            base_state: record(TradingState::Active, "start", 0),
            effective: record(TradingState::Active, "start", 0),
            emergency: EmergencyStop::default(),
            venue_healthy: true,
            account: AccountSource::own(AccountWriter::new(Account::new(), assets)),
            in_flight: FxHashMap::default(),
            spare_ids: Vec::new(),
            last_price: FxHashMap::default(),
            last_event_ms: FxHashMap::default(),
            unsettled: FxHashMap::default(),
            rates: RateLimiter::default(),
            duplicates: DuplicateGuard::default(),
            protections,
            trips: FxHashMap::default(),
            pending_events: Vec::new(),
            now_hint: None,
            rejections: BTreeMap::new(),
            approved_total: 0,
            fee_factor,
        }
    }

    /// Reads positions from the running account instead of keeping its own:
    /// [`Self::on_fill`] then leaves positions to the account's writer.
    pub fn with_account(mut self, view: AccountView) -> Self {
        self.account = AccountSource { own: None, view };
        self
    }

    /// The limits.
    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    /// Replaces an instrument's filters (after the venue reports them).
    pub fn set_instrument(&mut self, instrument: Instrument) {
        self.instruments.insert(instrument.symbol.clone(), instrument);
    }

    /// An instrument's filters.
    pub fn instrument(&self, symbol: &str) -> Option<&Instrument> {
        self.instruments.get(symbol)
    }

    fn observe_time(&mut self, now_ms: i64) {
        self.now_hint = Some(self.now_hint.map_or(now_ms, |t| t.max(now_ms)));
    }

    fn now_or_zero(&self) -> i64 {
        self.now_hint.unwrap_or(0)
    }

    // ---------------------------------------------------------------- states

    /// The effective trading state: the most severe of the base state, what a
    /// tripped protection requires, and `HALTED` while the emergency stop is set.
    pub fn state(&self) -> TradingState {
        self.effective.state
    }

    /// The effective trading state with its reason and since when.
    pub fn state_record(&self) -> &TradingStateRecord {
        &self.effective
    }

    /// The base state (set by an operator or the engine, without protections).
    pub fn base_state(&self) -> &TradingStateRecord {
        &self.base_state
    }

    /// Sets the base trading state (reason "set by the engine").
    pub fn set_state(&mut self, state: TradingState) {
        let now = self.now_or_zero();
        self.set_state_with(state, "set by the engine", now);
    }

    /// Sets the base trading state with its cause. Returns the new effective
    /// record if it changed (flush it with `put_trading_state`, then publish it).
    pub fn set_state_with(
        &mut self,
        state: TradingState,
        reason: impl Into<String>,
        now_ms: i64,
    ) -> Option<TradingStateRecord> {
        self.observe_time(now_ms);
        self.base_state = record(state, reason, now_ms);
        self.refresh_state(now_ms)
    }

    /// The effective state and its reason (borrowed unless it must be written:
    /// this runs on every evaluation of the protections).
    fn compute_effective(&self) -> (TradingState, Cow<'_, str>) {
        let mut best = (self.base_state.state, Cow::Borrowed(self.base_state.reason.as_str()));
        if let Some((trip, _)) = self.protections.required_state() {
            if severity(trip.state) > severity(best.0) {
                best = (trip.state, Cow::Borrowed(trip.reason.as_str()));
            }
        }
        if self.emergency.active {
            let reason = self.emergency.reason.as_deref().unwrap_or("no reason given");
            let by = self.emergency.set_by.as_deref().unwrap_or("unknown");
            best = (TradingState::Halted, Cow::Owned(format!("emergency stop set by {by}: {reason}")));
        }
        best
    }

    fn refresh_state(&mut self, now_ms: i64) -> Option<TradingStateRecord> {
        let (state, reason) = self.compute_effective();
        if state == self.effective.state && reason == self.effective.reason {
            return None;
        }
        let reason = reason.into_owned();
        let since_ms = if state == self.effective.state { self.effective.since_ms } else { now_ms };
        self.effective = record(state, reason, since_ms);
        Some(self.effective.clone())
    }

    /// True while the emergency stop is set.
    pub fn emergency_stop(&self) -> bool {
        self.emergency.active
    }

    /// The emergency-stop record (reason, who, when; last clear).
    pub fn emergency_stop_record(&self) -> &EmergencyStop {
        &self.emergency
    }

    /// Sets or clears the emergency-stop gate (no reason recorded; prefer
    /// [`Self::set_emergency_stop_record`]).
    pub fn set_emergency_stop(&mut self, active: bool) {
        let now = self.now_or_zero();
        let mut stop = self.emergency.clone();
        stop.active = active;
        self.set_emergency_stop_record(stop, now);
    }

    /// Installs the emergency-stop record as stored (after
    /// [`crate::emergency::set`] or [`crate::emergency::clear`] flushed it).
    /// Returns the new effective state record if it changed.
    pub fn set_emergency_stop_record(&mut self, stop: EmergencyStop, now_ms: i64) -> Option<TradingStateRecord> {
        self.observe_time(now_ms);
        self.emergency = stop;
        self.refresh_state(now_ms)
    }

    /// An explicit operator resume: base state `ACTIVE`, every latched protection
    /// released (high-water mark and day start restart at the current equity),
    /// and the in-memory emergency stop cleared. Persist the cleared stop first
    /// with [`crate::emergency::clear`]; then persist [`Self::persisted`].
    pub fn resume(&mut self, by: &str, now_ms: i64) -> ProtectionOutcome {
        self.observe_time(now_ms);
        let events = self.protections.operator_resume(now_ms);
        if self.emergency.active {
            self.emergency.active = false;
            self.emergency.cleared_by = Some(by.to_string());
            self.emergency.cleared_at_ms = Some(now_ms);
        }
        self.base_state = record(TradingState::Active, format!("operator resume by {by}"), now_ms);
        let state_change = self.refresh_state(now_ms);
        ProtectionOutcome { events, state_change, emergency_stop: None }
    }

    /// Applies the start-up decision (see [`crate::emergency::startup_state`]):
    /// the emergency stop, the persisted base state and protections, or `HALTED`
    /// when the store could not be read. Returns the effective record.
    pub fn apply_startup(&mut self, decision: &crate::emergency::StartupDecision, now_ms: i64) -> TradingStateRecord {
        self.observe_time(now_ms);
        self.emergency = decision.emergency_stop.clone();
        match &decision.persisted {
            Some(p) => {
                self.base_state = p.base_state.clone();
                self.protections.restore(p.protections.clone());
            }
            None => self.base_state = record(decision.state, decision.reason.clone(), now_ms),
        }
        if decision.fail_closed {
            self.base_state = record(TradingState::Halted, decision.reason.clone(), now_ms);
        }
        self.refresh_state(now_ms);
        self.effective.clone()
    }

    /// What to persist (`crate::persist::save`) after a state change, a
    /// protection event, a pause or a resume.
    pub fn persisted(&self) -> RiskPersisted {
        RiskPersisted { base_state: self.base_state.clone(), protections: self.protections.state().clone() }
    }

    /// Restores what [`Self::persisted`] returned before a restart.
    pub fn restore_persisted(&mut self, persisted: RiskPersisted, now_ms: i64) -> Option<TradingStateRecord> {
        self.base_state = persisted.base_state;
        self.protections.restore(persisted.protections);
        self.refresh_state(now_ms)
    }

    /// The protections (read-only).
    pub fn protections(&self) -> &Protections {
        &self.protections
    }

    // ------------------------------------------------------ strategy pauses

    /// Pauses a strategy until resumed (operator command or a strategy failure).
    /// Its reduce-only exits still pass.
    pub fn pause_strategy(&mut self, strategy: &str, by: &str, reason: &str, now_ms: i64) -> ProtectionEvent {
        self.observe_time(now_ms);
        self.protections.pause_strategy(strategy, by, reason, now_ms)
    }

    /// Ends every pause of a strategy (and its losing streak); true if it was paused.
    pub fn resume_strategy(&mut self, strategy: &str) -> bool {
        self.protections.resume_strategy(strategy)
    }

    /// True if `strategy` may not open new orders on `symbol` at `now_ms`.
    pub fn is_strategy_paused(&self, strategy: &str, symbol: &str, now_ms: i64) -> bool {
        self.protections.pause_of(strategy, symbol, Some(now_ms)).is_some()
    }

    // ----------------------------------------------------------- venue health

    /// The venue's user-data stream is connected and start-up (or
    /// re-)reconciliation is done. While false, no new order passes.
    pub fn set_venue_healthy(&mut self, healthy: bool) {
        self.venue_healthy = healthy;
    }

    /// True while the venue is healthy.
    pub fn venue_healthy(&self) -> bool {
        self.venue_healthy
    }

    // ------------------------------------------------------- market and fills

    /// The account position in a symbol, as the risk engine counts it.
    pub fn position(&self, symbol: &str) -> Decimal {
        self.account.view.held(symbol)
    }

    /// What flattening sends: a reduce-only market order for every symbol the
    /// account holds (or only `only`), sized to what a market order can sell
    /// — the holding rounded down to the lot step — and the dust that stays.
    /// Symbols are covered whether or not they were configured at start.
    pub fn flatten_plan(&self, by: &StrategyId, only: Option<&Symbol>) -> FlattenPlan {
        // Holdings come by symbol, every symbol the account holds.
        let held: Vec<(Symbol, Decimal)> =
            self.account.view.holdings().into_iter().filter(|(s, _)| only.is_none_or(|o| o == s)).collect();
        let mut plan = FlattenPlan::default();
        for (symbol, qty) in held {
            let tradable = match self.instruments.get(&symbol) {
                Some(i) => i.tradable_qty(qty),
                None => qty,
            };
            if tradable != qty {
                plan.dust.push((symbol.clone(), qty - tradable));
            }
            if tradable.is_zero() {
                continue;
            }
            let side = if tradable.is_sign_positive() { Side::Sell } else { Side::Buy };
            let mut intent = OrderIntent::market(by.clone(), symbol.clone(), side, tradable.abs());
            intent.reduce_only = true;
            plan.orders.push(intent);
        }
        plan
    }

    /// Sets a position of a standalone engine (a tool or test starting from a
    /// known holding). An engine on the running account reads it there.
    pub fn restore_position(&mut self, symbol: Symbol, qty: Decimal) {
        if let Some(w) = &self.account.own {
            w.restore_position(&symbol, qty);
        }
    }

    /// Restores a strategy's own position in a symbol at start, so the
    /// consecutive-loss protection sees where its round trip ends. With no entry
    /// price, that round trip is not counted as a win or a loss.
    pub fn restore_strategy_position(
        &mut self,
        strategy: StrategyId,
        symbol: Symbol,
        qty: Decimal,
        avg_price: Option<Decimal>,
    ) {
        let mut position = Position::flat(symbol.clone());
        position.qty = qty;
        position.avg_price = avg_price.unwrap_or_default();
        let known_basis = avg_price.is_some() || qty.is_zero();
        self.trips.insert((strategy, symbol), TripBook { position, pnl: Decimal::ZERO, known_basis });
    }

    /// Counts an order that is open at start as in flight. An order the venue
    /// has acknowledged (accepted, partially filled) is taken as reflected in the
    /// next balance snapshot; others keep their funds reserved.
    pub fn restore_open_order(&mut self, order: &Order) {
        let reference_price =
            order.order_type.limit_price().or_else(|| self.last_price(&order.symbol)).unwrap_or_default();
        let acknowledged = matches!(order.status, OrderStatus::Accepted | OrderStatus::PartiallyFilled);
        self.in_flight.insert(
            order.client_order_id.clone(),
            InFlight {
                strategy: order.strategy_id.clone(),
                symbol: order.symbol.clone(),
                side: order.side,
                remaining: order.remaining_qty(),
                reference_price,
                acknowledged,
                reserved: !acknowledged,
                venue_orders: venue_orders(&order.order_type),
            },
        );
    }

    /// A market price for a symbol (last trade, mid or bar close). Does not
    /// count as fresh market data; prefer [`Self::on_market_event`].
    pub fn on_price(&mut self, symbol: &Symbol, price: Decimal) {
        if let Some(p) = self.last_price.get_mut(symbol) {
            *p = price;
        } else {
            self.last_price.insert(symbol.clone(), price);
        }
    }

    /// A market event for a symbol received at `now_ms` (engine clock, not the
    /// venue's event time): its reference price (last trade, mid or bar close)
    /// and the freshness the stale-data check uses.
    pub fn on_market_event(&mut self, symbol: &Symbol, price: Decimal, now_ms: i64) {
        self.on_price(symbol, price);
        self.observe_time(now_ms);
        match self.last_event_ms.get_mut(symbol) {
            Some(t) => *t = (*t).max(now_ms),
            None => {
                self.last_event_ms.insert(symbol.clone(), now_ms);
            }
        }
    }

    /// A market event received at `now_ms` (engine clock): its reference price
    /// (bar close, trade price or mid) and freshness.
    pub fn on_market(&mut self, event: &keel_core::market::MarketEvent, now_ms: i64) {
        self.on_market_event(event.symbol(), event.reference_price(), now_ms);
    }

    /// The last known price.
    pub fn last_price(&self, symbol: &str) -> Option<Decimal> {
        self.last_price.get(symbol).copied()
    }

    /// A balance update from the venue (snapshot or delta for the listed
    /// assets). Orders the venue has acknowledged stop reserving funds here: the
    /// venue's free balance now accounts for them.
    pub fn on_balances(&mut self, balances: &[Balance]) {
        // A standalone engine keeps the balances in its own account; the
        // running account's writer has applied them already.
        if let Some(w) = &self.account.own {
            w.apply_balances(balances, self.now_or_zero());
        }
        // Zeroed rather than cleared: the next fills find their assets' keys.
        for u in self.unsettled.values_mut() {
            *u = Decimal::ZERO;
        }
        for f in self.in_flight.values_mut() {
            if f.acknowledged {
                f.reserved = false;
            }
        }
    }

    /// The venue acknowledged (accepted) an order: the next balance update
    /// accounts for its locked funds.
    pub fn on_order_accepted(&mut self, client_order_id: &str) {
        if let Some(f) = self.in_flight.get_mut(client_order_id) {
            f.acknowledged = true;
        }
    }

    /// The balances the engine was told about.
    pub fn balances(&self) -> Option<Balances> {
        self.account.view.with_balances(|b| b.cloned())
    }

    /// A fill (call once per newly recorded fill): moves quantity from in
    /// flight into the position and feeds the consecutive-loss protection. Its
    /// events come back with the next [`Self::evaluate_protections`].
    pub fn on_fill(&mut self, fill: &Fill) {
        let events = self.on_fill_at(fill, fill.ts_ms);
        self.pending_events.extend(events);
    }

    /// A fill at `now_ms` (call once per newly recorded fill). Returns what the
    /// consecutive-loss protection did (a strategy paused after a losing round trip).
    pub fn on_fill_at(&mut self, fill: &Fill, now_ms: i64) -> Vec<ProtectionEvent> {
        let instrument = self.instruments.get(&fill.symbol);
        let (base, quote) = instrument.map_or(("", ""), |i| (i.base_asset.as_str(), i.quote_asset.as_str()));
        // A standalone engine keeps its own account; the running account's
        // writer has applied the fill already.
        if let Some(w) = &self.account.own {
            let _ = w.apply(fill);
        }
        if let Some(f) = self.in_flight.get_mut(&fill.client_order_id) {
            f.remaining = f.remaining.saturating_sub(fill.qty).max(Decimal::ZERO);
        }
        if !base.is_empty() {
            // What the last balance snapshot does not show yet: spent, and
            // received (as a negative spend).
            let notional = mul(fill.qty, fill.price);
            let (spent_asset, spent, got_asset, got) = match fill.side {
                Side::Buy => (quote, notional, base, fill.qty),
                Side::Sell => (base, fill.qty, quote, notional),
            };
            add_unsettled(&mut self.unsettled, spent_asset, spent);
            add_unsettled(&mut self.unsettled, got_asset, -got);
            if fill.fee_asset == quote || fill.fee_asset == base {
                add_unsettled(&mut self.unsettled, &fill.fee_asset, fill.fee);
            }
        }
        // Round trips only feed the consecutive-loss protection.
        if self.config.max_consecutive_losses == 0 {
            return Vec::new();
        }
        match round_trip(&mut self.trips, instrument, fill, base, quote) {
            Some(pnl) => self.protections.on_round_trip(&fill.strategy_id, &fill.symbol, pnl, now_ms),
            None => Vec::new(),
        }
    }

    /// An order reached a final status: it no longer counts as in flight.
    pub fn on_order_final(&mut self, client_order_id: &str) {
        if let Some((key, _)) = self.in_flight.remove_entry(client_order_id) {
            if self.spare_ids.len() < SPARE_IDS {
                self.spare_ids.push(key);
            }
        }
    }

    /// Hands back the client-id string of an [`Approved`] order whose caller
    /// keeps its own record of ids (the backtest numbers its orders), so the
    /// next approval reuses it instead of allocating.
    pub fn recycle_id(&mut self, client_order_id: String) {
        if self.spare_ids.len() < SPARE_IDS {
            self.spare_ids.push(client_order_id);
        }
    }

    /// Number of orders counted as open or in flight.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    // ------------------------------------------------------------ protections

    /// Equity marked to market from the balances and last prices, in the quote
    /// asset most instruments share: that asset at 1, every other asset with an
    /// instrument against it at its last price (assets without one are left
    /// out). `None` until balances are known or while a held asset has no price.
    pub fn mark_to_market_equity(&self) -> Option<Decimal> {
        self.account.view.with_balances(|b| self.equity_of(b?))
    }

    fn equity_of(&self, balances: &Balances) -> Option<Decimal> {
        let mut quotes: BTreeMap<&str, usize> = BTreeMap::new();
        for i in self.instruments.values() {
            *quotes.entry(i.quote_asset.as_str()).or_default() += 1;
        }
        let quote = quotes.into_iter().max_by_key(|(_, n)| *n).map(|(q, _)| q)?;
        let mut equity = Decimal::ZERO;
        for (asset, b) in &balances.assets {
            let total = b.total();
            if asset == quote {
                equity = equity.checked_add(total)?;
            } else if let Some(i) = self.instruments.values().find(|i| &i.base_asset == asset && i.quote_asset == quote)
            {
                if total.is_zero() {
                    continue;
                }
                let price = self.last_price(&i.symbol)?;
                equity = equity.checked_add(total.checked_mul(price)?)?;
            }
        }
        Some(equity)
    }

    /// Evaluates the portfolio protections on `equity` (marked to market) at
    /// `now_ms` — call it on every price update or on a short timer. Applies what
    /// they require (trading state, strategy pauses) and returns it for the
    /// actor to persist, log and publish; also returns events queued by
    /// [`Self::on_fill`].
    pub fn evaluate_protections(&mut self, equity: Decimal, now_ms: i64) -> ProtectionOutcome {
        self.observe_time(now_ms);
        let mut events = std::mem::take(&mut self.pending_events);
        events.extend(self.protections.evaluate(equity, now_ms));
        let emergency_stop = events.iter().find_map(|e| match e {
            ProtectionEvent::Tripped { emergency_stop: true, reason, .. } if !self.emergency.active => {
                Some(reason.clone())
            }
            _ => None,
        });
        let state_change = self.refresh_state(now_ms);
        ProtectionOutcome { events, state_change, emergency_stop }
    }

    // ------------------------------------------------------------------ gate

    /// What is still to fill of the orders in flight on `symbol` and `side`.
    pub fn pending(&self, symbol: &str, side: Side) -> Decimal {
        self.in_flight
            .values()
            .filter(|f| f.symbol.as_str() == symbol && f.side == side)
            .fold(Decimal::ZERO, |acc, f| acc.saturating_add(f.remaining))
    }

    /// Worst-case |position| of a symbol if every open order on one side fills.
    fn worst_qty(position: Decimal, buys: Decimal, sells: Decimal) -> Decimal {
        position.saturating_add(buys).abs().max(position.saturating_sub(sells).abs())
    }

    /// Price used to value a symbol's exposure: last price, else the highest
    /// price an open order on it was valued at.
    fn valuation_price(&self, symbol: &str) -> Decimal {
        self.last_price(symbol).unwrap_or_else(|| {
            self.in_flight
                .values()
                .filter(|f| f.symbol.as_str() == symbol)
                .map(|f| f.reference_price)
                .max()
                .unwrap_or_default()
        })
    }

    /// Gross exposure: Σ over symbols of worst-case |position| (counting open
    /// and in-flight orders) × valuation price.
    pub fn gross_exposure(&self) -> Decimal {
        self.gross_exposure_with(None)
    }

    /// Gross exposure with one more order on `extra.0` (side, qty, valued at
    /// `extra.3` for that symbol).
    fn gross_exposure_with(&self, extra: Option<(&str, Side, Decimal, Decimal)>) -> Decimal {
        let held: Vec<Symbol> = self.account.view.holdings().into_iter().map(|(s, _)| s).collect();
        let mut symbols: Vec<&str> = held.iter().map(|s| s.as_str()).collect();
        symbols.extend(self.in_flight.values().map(|f| f.symbol.as_str()));
        if let Some((s, ..)) = extra {
            symbols.push(s);
        }
        symbols.sort_unstable();
        symbols.dedup();
        let mut total = Decimal::ZERO;
        for s in symbols {
            let mut buys = self.pending(s, Side::Buy);
            let mut sells = self.pending(s, Side::Sell);
            let mut price = self.valuation_price(s);
            if let Some((es, side, qty, p)) = extra {
                if es == s {
                    match side {
                        Side::Buy => buys = buys.saturating_add(qty),
                        Side::Sell => sells = sells.saturating_add(qty),
                    }
                    price = price.max(p);
                }
            }
            total = total.saturating_add(mul(Self::worst_qty(self.position(s), buys, sells), price));
        }
        total
    }

    /// Funds (`asset`, amount) reserved by in-flight orders the balance snapshot
    /// does not show yet, net of fills since the snapshot (negative when they
    /// brought in more of `asset` than is reserved).
    fn reserved(&self, asset: &str) -> Decimal {
        let fee = self.fee_factor();
        let mut total = self.unsettled.get(asset).copied().unwrap_or_default();
        for f in self.in_flight.values().filter(|f| f.reserved) {
            let Some(i) = self.instruments.get(&f.symbol) else { continue };
            let amount = match f.side {
                Side::Buy if i.quote_asset == asset => mul(mul(f.remaining, f.reference_price), fee),
                Side::Sell if i.base_asset == asset => f.remaining,
                _ => continue,
            };
            total = total.saturating_add(amount);
        }
        total
    }

    fn fee_factor(&self) -> Decimal {
        self.fee_factor
    }

    /// The gate with the latest time the engine knows (see the module docs).
    /// On approval the order counts as in flight under `client_order_id` until
    /// [`Self::on_order_final`].
    pub fn check(&mut self, intent: &OrderIntent, client_order_id: &str) -> Result<Approved, Rejection> {
        let now = self.now_hint;
        self.gate(intent, client_order_id, now)
    }

    /// The gate at `now_ms` (engine clock): rounds the intent to the venue's
    /// tick and step and runs every pre-trade check. On approval the order counts
    /// as in flight under `client_order_id` until [`Self::on_order_final`], and
    /// towards the rate limits and the duplicate guard.
    pub fn check_at(
        &mut self,
        intent: &OrderIntent,
        client_order_id: &str,
        now_ms: i64,
    ) -> Result<Approved, Rejection> {
        self.observe_time(now_ms);
        self.gate(intent, client_order_id, Some(now_ms))
    }

    fn gate(&mut self, intent: &OrderIntent, client_order_id: &str, now: Option<i64>) -> Result<Approved, Rejection> {
        match self.evaluate(intent, client_order_id, now) {
            Ok(approved) => {
                self.approved_total = self.approved_total.saturating_add(1);
                Ok(approved)
            }
            Err(reason) => {
                let n = self.rejections.entry(reason.code()).or_default();
                *n = n.saturating_add(1);
                Err(reason.into())
            }
        }
    }

    /// Rejections so far, by reason code.
    pub fn rejection_counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.rejections
    }

    /// Orders approved so far.
    pub fn approved_total(&self) -> u64 {
        self.approved_total
    }

    fn evaluate(
        &mut self,
        intent: &OrderIntent,
        client_order_id: &str,
        now: Option<i64>,
    ) -> Result<Approved, RejectReason> {
        let instrument = self
            .instruments
            .get(&intent.symbol)
            .ok_or_else(|| RejectReason::UnknownSymbol(intent.symbol.to_string()))?;
        let rounded = round_intent(instrument, intent)?;
        let symbol = rounded.symbol.as_str();
        let qty = rounded.qty;
        let position = self.position(symbol);
        let pending_same = self.pending(symbol, rounded.side);
        // A reducing order shrinks |position| even after what is already in flight on its side.
        let reduces = match rounded.side {
            Side::Sell => position.saturating_sub(pending_same) >= qty,
            Side::Buy => -position.saturating_add(pending_same) >= qty,
        };
        // While the emergency stop is set its flatten rule closes positions
        // (`flatten_on_emergency_stop`: the operator's reduce-only orders):
        // a strategy's exit would undo its cancel-all (a resting leg) or wait
        // in the router until a resume (a close), so none passes.
        let emergency_exit = self.emergency.active && rounded.reduce_only && reduces && rounded.exit.is_none();

        // Gates on the whole engine.
        if self.emergency.active && !emergency_exit {
            return Err(RejectReason::EmergencyStop);
        }
        if !self.venue_healthy {
            return Err(RejectReason::VenueUnhealthy);
        }
        if !instrument.status.is_trading() {
            return Err(RejectReason::SymbolNotTrading(instrument.status.clone()));
        }
        if !emergency_exit {
            // The emergency stop is not set here (handled above).
            let state = self.state();
            if !state.is_order_allowed(&rounded, reduces, self.config.halted_reduce_only_exits) {
                return Err(RejectReason::TradingState(state));
            }
        }
        if !(rounded.reduce_only && reduces) {
            if let Some(p) = self.protections.pause_of(&rounded.strategy_id, symbol, now) {
                return Err(RejectReason::StrategyPaused {
                    strategy: rounded.strategy_id.to_string(),
                    until_ms: p.until_ms,
                });
            }
        }
        if rounded.reduce_only && !reduces {
            return Err(RejectReason::NotReducing);
        }
        if rounded.exit.is_some() {
            self.check_exit_size(&rounded)?;
        }

        // Market data.
        if let Some(now) = now {
            let max_age = self.config.stale_data_after.0;
            if max_age > 0 {
                let age = self.last_event_ms.get(symbol).map(|t| now.saturating_sub(*t));
                if age.is_none_or(|a| a > max_age) {
                    return Err(RejectReason::StaleData {
                        symbol: symbol.to_string(),
                        age_ms: age,
                        max_age_ms: max_age,
                    });
                }
            }
        }
        let last = self.last_price(symbol);
        let reference_price = match rounded.order_type.limit_price() {
            Some(p) => p,
            None => last.ok_or_else(|| RejectReason::NoPrice(symbol.to_string()))?,
        };
        let band = self.config.price_band_pct;
        // An exit's prices come from its configured distances (a 6%
        // take-profit rests outside a 5% band by design), and a reduce-only
        // exit at a wrong price at worst closes the position now, which an
        // exit may do anyway: the band guards orders that open positions.
        if !band.is_zero() && rounded.exit.is_none() {
            let prices: [Option<Decimal>; 3] = match rounded.order_type {
                OrderType::Market => [None; 3],
                OrderType::Limit { price } => [Some(price), None, None],
                OrderType::StopLimit { stop, price } => [Some(price), Some(stop), None],
                OrderType::StopMarket { stop } => [Some(stop), None, None],
                OrderType::Oco { take_profit, stop, stop_limit } => [Some(take_profit), Some(stop), stop_limit],
            };
            for price in prices.into_iter().flatten() {
                let reference = last.ok_or_else(|| RejectReason::NoPrice(symbol.to_string()))?;
                let deviation = (price.saturating_sub(reference)).abs();
                if reference <= Decimal::ZERO || crate::protections::pct_exceeds(deviation, reference, band) {
                    let deviation_pct = deviation
                        .checked_mul(Decimal::ONE_HUNDRED)
                        .and_then(|d| d.checked_div(reference))
                        .map(|p| p.round_dp(4).normalize())
                        .unwrap_or(Decimal::MAX);
                    return Err(RejectReason::PriceOutsideBand { price, reference, deviation_pct, band_pct: band });
                }
            }
        }

        // The order itself.
        let notional = qty
            .checked_mul(reference_price)
            .ok_or_else(|| RejectReason::Overflow(format!("{qty} × {reference_price}")))?;
        instrument.check(qty, reference_price, rounded.order_type.is_market()).map_err(RejectReason::Filter)?;
        let open_symbol: usize =
            self.in_flight.values().filter(|f| f.symbol.as_str() == symbol).map(|f| f.venue_orders).sum();
        let new_orders = venue_orders(&rounded.order_type);
        if instrument.max_num_orders > 0 && open_symbol + new_orders > instrument.max_num_orders as usize {
            return Err(RejectReason::TooManyOpenOrders {
                scope: OpenOrderScope::Symbol,
                limit: instrument.max_num_orders,
                open: open_symbol,
            });
        }
        let max_open = self.config.max_open_orders;
        if max_open > 0 && self.in_flight.len() >= max_open as usize {
            return Err(RejectReason::TooManyOpenOrders {
                scope: OpenOrderScope::Global,
                limit: max_open,
                open: self.in_flight.len(),
            });
        }
        let max_notional = self.config.max_order_notional;
        if !max_notional.is_zero() && notional > max_notional {
            return Err(RejectReason::NotionalAboveMax { limit: max_notional, requested: notional });
        }

        // Exposure, counting open and in-flight orders.
        let valuation = last.map_or(reference_price, |l| l.max(reference_price));
        let max_position = self.config.max_position_notional;
        if !max_position.is_zero() && !reduces {
            let resulting_qty = position.saturating_add(mul(rounded.side.sign(), pending_same.saturating_add(qty)));
            let resulting = mul(resulting_qty.abs(), valuation);
            if resulting > max_position {
                return Err(RejectReason::PositionAboveMax { limit: max_position, resulting });
            }
        }
        let max_gross = self.config.max_gross_exposure;
        if !max_gross.is_zero() && !reduces {
            let resulting = self.gross_exposure_with(Some((symbol, rounded.side, qty, valuation)));
            if resulting > max_gross {
                return Err(RejectReason::GrossExposureAboveMax { limit: max_gross, resulting });
            }
        }

        // Cash account: free balance after what in-flight orders reserve.
        if self.config.check_balance {
            let (asset, required) = match rounded.side {
                Side::Buy => (instrument.quote_asset.as_str(), mul(notional, self.fee_factor())),
                Side::Sell => (instrument.base_asset.as_str(), qty),
            };
            if let Some(free) = self.account.view.with_balances(|b| b.map(|b| b.free(asset))) {
                let available = free.saturating_sub(self.reserved(asset));
                if required > available {
                    return Err(RejectReason::InsufficientBalance { asset: asset.to_string(), required, available });
                }
            }
        }

        // Order flow.
        if self.in_flight.contains_key(client_order_id) {
            // The same client order id twice: never send it again.
            return Err(RejectReason::Duplicate { age_ms: 0, window_ms: 0 });
        }
        let window = self.config.duplicate_window.0;
        // The exit logic keeps one exit set per position; re-placing a leg
        // after its cancel (the position shrank, a restart) is not a repeat.
        let dup_window = if rounded.exit.is_some() { 0 } else { window };
        if let Some(now) = now {
            self.duplicates.check(&rounded, now, dup_window)?;
            self.rates.check(
                &rounded.strategy_id,
                now,
                RateLimits {
                    per_second: self.config.strategy_orders_per_second,
                    per_minute: self.config.strategy_orders_per_minute,
                },
                RateLimits {
                    per_second: self.config.global_orders_per_second,
                    per_minute: self.config.global_orders_per_minute,
                },
            )?;
            self.duplicates.record(&rounded, now, dup_window);
            self.rates.record(&rounded.strategy_id, now);
        }
        let key = self.spare_id(client_order_id);
        self.in_flight.insert(
            key,
            InFlight {
                strategy: rounded.strategy_id.clone(),
                symbol: rounded.symbol.clone(),
                side: rounded.side,
                remaining: qty,
                reference_price: valuation,
                acknowledged: false,
                reserved: true,
                venue_orders: new_orders,
            },
        );
        let client_order_id = self.spare_id(client_order_id);
        Ok(Approved { order: rounded, client_order_id, reference_price })
    }

    /// An exit never exceeds the strategy's own position: its quantity, on
    /// the side that shrinks that position, must fit in what the strategy
    /// holds after its orders already in flight on that side.
    fn check_exit_size(&self, exit: &OrderIntent) -> Result<(), RejectReason> {
        let held = self.account.view.strategy_held(&exit.strategy_id, &exit.symbol);
        let pending: Decimal = self
            .in_flight
            .values()
            .filter(|f| f.strategy == exit.strategy_id && f.symbol == exit.symbol && f.side == exit.side)
            .map(|f| f.remaining)
            .sum();
        let closable = match exit.side {
            Side::Sell => held.saturating_sub(pending),
            Side::Buy => (-held).saturating_sub(pending),
        };
        if exit.qty > closable {
            return Err(RejectReason::ExitAbovePosition {
                strategy: exit.strategy_id.to_string(),
                position: held,
                qty: exit.qty,
            });
        }
        Ok(())
    }

    /// `id` as an owned string, reusing a spare one when there is one.
    fn spare_id(&mut self, id: &str) -> String {
        match self.spare_ids.pop() {
            Some(mut key) => {
                key.clear();
                key.push_str(id);
                key
            }
            None => id.to_string(),
        }
    }
}

/// At most this many keys of final orders wait for reuse.
const SPARE_IDS: usize = 64;

/// Adds `amount` to what `asset` has unsettled (copying its name only the
/// first time).
fn add_unsettled(unsettled: &mut FxHashMap<String, Decimal>, asset: &str, amount: Decimal) {
    match unsettled.get_mut(asset) {
        Some(u) => *u = u.saturating_add(amount),
        None => {
            unsettled.insert(asset.to_string(), Decimal::ZERO.saturating_add(amount));
        }
    }
}

/// Tracks a strategy's own position in a symbol (`trips`, keyed by strategy
/// and symbol); returns the round trip's PnL (realized, after fees) when it
/// goes back to flat or flips.
fn round_trip(
    trips: &mut FxHashMap<(StrategyId, Symbol), TripBook>,
    instrument: Option<&Instrument>,
    fill: &Fill,
    base: &str,
    quote: &str,
) -> Option<Decimal> {
    let key = (fill.strategy_id.clone(), fill.symbol.clone());
    let book = trips.entry(key.clone()).or_insert_with(|| TripBook {
        position: Position::flat(fill.symbol.clone()),
        pnl: Decimal::ZERO,
        known_basis: true,
    });
    // Position arithmetic panics on overflow: values this large are not a
    // real account, so stop tracking this book rather than risk it.
    if !book.position.fits(fill) {
        trips.remove(&key);
        return None;
    }
    let before = book.position.qty;
    let fees_before = book.position.fees;
    let realized = book.position.apply_fill(fill, base, quote);
    let fees = book.position.fees.saturating_sub(fees_before);
    book.pnl = book.pnl.saturating_add(realized).saturating_sub(fees);
    let after = book.position.qty;
    // Dust a base-asset commission leaves below the lot step cannot be sold:
    // the round trip is over when nothing tradable is left.
    let flat = |q: Decimal| Instrument::is_flat(instrument, q);
    let closed = !flat(before) && (flat(after) || after.is_sign_positive() != before.is_sign_positive());
    if closed {
        let pnl = book.pnl;
        let counted = book.known_basis;
        book.pnl = Decimal::ZERO;
        book.known_basis = true;
        counted.then_some(pnl)
    } else {
        None
    }
}

/// Rounds an intent to the instrument's tick and step, refusing values too large
/// to round and quantities that are not positive.
fn round_intent(instrument: &Instrument, intent: &OrderIntent) -> Result<OrderIntent, RejectReason> {
    let market = intent.order_type.is_market();
    let step = if market && !instrument.market_step_size.is_zero() {
        instrument.market_step_size
    } else {
        instrument.step_size
    };
    // Rounding divides by the step and may add one step: both must fit.
    // The quotient is at most |mantissa| × 10^(step's scale): below 2^63 × 10^9
    // it cannot overflow (the largest decimal is about 7.9 × 10^28), so the
    // usual case needs no trial division.
    let quotient_fits = |value: Decimal, step: Decimal| {
        (value.mantissa().unsigned_abs() < 1 << 63 && step.scale() <= 9) || value.checked_div(step).is_some()
    };
    let fits = |value: Decimal, step: Decimal| {
        step.is_zero() || (quotient_fits(value, step) && value.abs().checked_add(step).is_some())
    };
    if !fits(intent.qty, step) {
        return Err(RejectReason::Overflow(format!("quantity {}", intent.qty)));
    }
    let stop_limit = match intent.order_type {
        OrderType::Oco { stop_limit, .. } => stop_limit,
        _ => None,
    };
    for price in [intent.order_type.limit_price(), intent.order_type.stop_price(), stop_limit].into_iter().flatten() {
        if !fits(price, instrument.tick_size) {
            return Err(RejectReason::Overflow(format!("price {price}")));
        }
    }
    let mut rounded = intent.clone();
    rounded.qty = instrument.round_qty(intent.qty, market);
    if rounded.qty <= Decimal::ZERO {
        return Err(RejectReason::Filter(FilterViolation::QtyRoundsToZero { qty: intent.qty, step }));
    }
    rounded.order_type = match intent.order_type {
        OrderType::Market => OrderType::Market,
        OrderType::Limit { price } => OrderType::Limit { price: instrument.round_price(price, intent.side) },
        OrderType::StopLimit { stop, price } => OrderType::StopLimit {
            stop: instrument.round_price(stop, intent.side.opposite()),
            price: instrument.round_price(price, intent.side),
        },
        OrderType::StopMarket { stop } => {
            OrderType::StopMarket { stop: instrument.round_price(stop, intent.side.opposite()) }
        }
        OrderType::Oco { take_profit, stop, stop_limit } => OrderType::Oco {
            take_profit: instrument.round_price(take_profit, intent.side),
            stop: instrument.round_price(stop, intent.side.opposite()),
            stop_limit: stop_limit.map(|p| instrument.round_price(p, intent.side)),
        },
    };
    Ok(rounded)
}
