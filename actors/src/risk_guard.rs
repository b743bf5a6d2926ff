//! RiskGuard: the single gate between strategies and the order router.
//!
//! Every intent passes [`risk::RiskEngine::check_at`] in arrival order, so
//! in-flight exposure is counted before the next intent is judged. The guard
//! applies the portfolio protections on every equity mark, and owns the
//! trading state and the sticky emergency stop: a change is flushed to the
//! store before it is acknowledged or acted on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use keel_core::clock::SharedClock;
use keel_core::order::OrderIntent;
use keel_core::strategy::OrderUpdate;
use keel_core::trading::{EmergencyStop, TradingState, TradingStateRecord};
use keel_core::{Decimal, StrategyId, Symbol};
use risk::protections::ProtectionEvent;
use risk::{ProtectionOutcome, RiskEngine, RiskSnapshot};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::deliver;
use crate::error::EmergencyStopError;
use crate::events::EngineEvent;
use crate::ids::ClientIds;
use crate::messages::{
    BalancesChanged, CancelAll, CancelOrder, EquityMarked, FillRecorded, Flatten, GetRiskStatus, IntentSubmitted,
    OrderAcknowledged, OrderApproved, OrderClosed, OrderUpdated, Resume, SetEmergencyStop, StopOrders, VenueHealth,
};
use crate::metrics::metrics;
use crate::prices::PriceBoard;
use crate::store_writer::StoreWriter;

/// The strategy id used for orders an operator asks for (flatten).
pub const OPERATOR: &str = "operator";

/// The guard's current state, for operators.
#[derive(Debug, Clone, Serialize)]
pub struct RiskStatus {
    /// Effective trading state.
    pub trading_state: TradingState,
    /// Why it is in that state.
    pub reason: String,
    /// The emergency stop record.
    pub emergency_stop: EmergencyStop,
    /// Rejections so far, by reason code.
    pub rejections: BTreeMap<String, u64>,
    /// Orders counted as open or in flight.
    pub in_flight: usize,
    /// Per-order notional limit.
    pub max_order_notional: Decimal,
    /// Per-symbol position notional limit.
    pub max_position_notional: Decimal,
    /// Every limit, its usage and the protections' values.
    pub snapshot: RiskSnapshot,
}

/// How long a flatten waits for the orders on its symbol to become final (the
/// cancels an emergency stop sent) and for a price, before it is judged anyway.
const FLATTEN_WAIT: Duration = Duration::from_secs(30);

/// How often a waiting flatten looks again.
const FLATTEN_RECHECK: Duration = Duration::from_millis(200);

/// Symbols whose flatten waits: resting sells still count against the
/// holding until their cancels are final — a reduce-only order judged before
/// then is refused as not reducing — and a resting buy could still add to it.
struct FlattenWait {
    symbols: BTreeSet<Symbol>,
    deadline: Instant,
}

/// The risk-guard actor.
pub struct RiskGuard {
    engine: RiskEngine,
    flatten_wait: Option<FlattenWait>,
    /// The guard has set the emergency stop because the store failed.
    failed_closed: bool,
    ids: Arc<ClientIds>,
    routes: GuardRoutes,
    prices: Arc<PriceBoard>,
    writer: StoreWriter,
    clock: SharedClock,
    events: broadcast::Sender<EngineEvent>,
    /// Template instances whose symbol left the universe: their orders are
    /// reduce-only, so they may exit but never open or add.
    leaving: BTreeSet<StrategyId>,
}

/// Where the risk guard sends, fixed at construction.
#[derive(Clone)]
pub struct GuardRoutes {
    /// The order router: approved orders.
    pub orders: Recipient<OrderApproved>,
    /// The order router: cancel-all requests.
    pub cancels: Recipient<CancelAll>,
    /// The order router: the emergency stop, set and cleared.
    pub stop: Recipient<StopOrders>,
    /// The order router: a strategy's cancel of one of its orders.
    pub strategy_cancels: Recipient<CancelOrder>,
    /// Each strategy host: refusals of its intents.
    pub hosts: HashMap<StrategyId, Recipient<OrderUpdated>>,
}

impl RiskGuard {
    /// A guard over a risk engine already brought to its start state
    /// (`apply_startup`, positions, open orders and balances restored).
    pub fn new(
        engine: RiskEngine,
        ids: Arc<ClientIds>,
        routes: GuardRoutes,
        prices: Arc<PriceBoard>,
        writer: StoreWriter,
        clock: SharedClock,
        events: broadcast::Sender<EngineEvent>,
    ) -> Self {
        metrics().trading_state.set(engine.state().code());
        metrics().emergency_stop.set(i64::from(engine.emergency_stop()));
        Self {
            engine,
            ids,
            routes,
            prices,
            writer,
            clock,
            events,
            flatten_wait: None,
            failed_closed: false,
            leaving: BTreeSet::new(),
        }
    }

    fn judge(&mut self, mut intent: OrderIntent, ingress: Option<Instant>) {
        let now = self.clock.now_ms();
        if self.leaving.contains(&intent.strategy_id) {
            // Off the universe: exits only (refused as not reducing otherwise).
            intent.reduce_only = true;
        }
        if let Some(p) = self.prices.get(&intent.symbol) {
            // Staleness is judged on arrival time (engine clock), not on the
            // venue's event time, which runs accelerated on simulated venues.
            let arrived_ms = now - p.at.elapsed().as_millis() as i64;
            self.engine.on_market_event(&intent.symbol, p.price, arrived_ms);
        }
        let client_order_id = self.ids.next_id();
        match self.engine.check_at(&intent, &client_order_id, now) {
            Ok(approved) => {
                tracing::debug!(strategy = %intent.strategy_id, symbol = %intent.symbol, client_order_id = %client_order_id, "intent approved");
                deliver::must(&self.routes.orders, OrderApproved { approved, ingress }, "order_router");
            }
            Err(rejection) => {
                let code = rejection.reason.code();
                let reason = rejection.reason.to_string();
                if intent.strategy_id.as_str() == OPERATOR {
                    tracing::error!(symbol = %intent.symbol, side = ?intent.side, qty = %intent.qty, reason_code = code, reason = %reason, "FLATTEN REFUSED by the risk guard: the position is still held");
                } else {
                    tracing::warn!(strategy = %intent.strategy_id, symbol = %intent.symbol, side = ?intent.side, qty = %intent.qty, reason_code = code, reason = %reason, "intent refused by risk guard");
                }
                metrics().risk_rejections_total.with_label_values(&[code]).inc();
                let _ = self.events.send(EngineEvent::RiskRejected {
                    strategy_id: intent.strategy_id.clone(),
                    symbol: intent.symbol.clone(),
                    code: code.to_string(),
                    reason: reason.clone(),
                });
                if let Some(host) = self.routes.hosts.get(&intent.strategy_id) {
                    deliver::must(host, OrderUpdated(OrderUpdate::refused(&intent, &reason)), "strategy_host");
                }
            }
        }
    }

    /// Flattens every holding (or only `only`'s) with reduce-only market
    /// orders, each sized to what the account holds when it is sent. A symbol
    /// with orders still in flight, or without a price
    /// yet, waits for them (up to [`FLATTEN_WAIT`]). Returns how many symbols
    /// are flattened now or after waiting.
    fn flatten(&mut self, only: Option<&Symbol>, ctx: &mut Context<Self>) -> usize {
        let plan = self.engine.flatten_plan(&StrategyId::new(OPERATOR), only);
        for (symbol, dust) in &plan.dust {
            tracing::warn!(symbol = %symbol, dust = %dust, "flatten leaves dust below the lot step (no order can sell it)");
        }
        let n = plan.orders.len();
        if n == 0 {
            tracing::info!(symbol = only.map(|s| s.as_str()).unwrap_or("all"), "flatten: nothing held to sell");
        }
        let mut waiting = Vec::new();
        for intent in plan.orders {
            if self.flatten_ready(&intent) {
                self.send_flatten(intent);
            } else {
                tracing::warn!(symbol = %intent.symbol, qty = %intent.qty, in_flight = self.engine.in_flight_count(), "flatten waits for the orders in flight on its symbol to be final, and a price");
                waiting.push(intent.symbol);
            }
        }
        if !waiting.is_empty() {
            let first = self.flatten_wait.is_none();
            let wait = self.flatten_wait.get_or_insert_with(|| FlattenWait {
                symbols: BTreeSet::new(),
                deadline: Instant::now() + FLATTEN_WAIT,
            });
            wait.symbols.extend(waiting);
            if first {
                ctx.run_later(FLATTEN_RECHECK, |act, ctx| act.recheck_flatten(ctx));
            }
        }
        n
    }

    /// True when a flatten order can be judged on what it is meant to sell:
    /// nothing else in flight on its symbol (a resting sell still counts
    /// against the holding, a resting buy could add to it after), and a
    /// price to judge it by.
    fn flatten_ready(&self, intent: &OrderIntent) -> bool {
        let symbol = intent.symbol.as_str();
        self.engine.pending(symbol, keel_core::order::Side::Buy).is_zero()
            && self.engine.pending(symbol, keel_core::order::Side::Sell).is_zero()
            && self.prices.get(&intent.symbol).is_some()
    }

    fn send_flatten(&mut self, intent: OrderIntent) {
        tracing::warn!(symbol = %intent.symbol, side = ?intent.side, qty = %intent.qty, "flattening position with a reduce-only market order");
        self.judge(intent, None);
    }

    /// Flattens the waiting symbols that became ready; past the deadline,
    /// judges the rest anyway (a refusal is logged and alerted as usual).
    fn recheck_flatten(&mut self, ctx: &mut Context<Self>) {
        let Some(mut wait) = self.flatten_wait.take() else { return };
        let late = Instant::now() >= wait.deadline;
        for symbol in std::mem::take(&mut wait.symbols) {
            let plan = self.engine.flatten_plan(&StrategyId::new(OPERATOR), Some(&symbol));
            let Some(intent) = plan.orders.into_iter().next() else { continue };
            if self.flatten_ready(&intent) {
                self.send_flatten(intent);
            } else if late {
                tracing::error!(symbol = %symbol, waited_s = FLATTEN_WAIT.as_secs(), in_flight = self.engine.in_flight_count(), "FLATTEN: orders on its symbol are still not final (or no price); judging it anyway");
                self.send_flatten(intent);
            } else {
                wait.symbols.insert(symbol);
            }
        }
        if !wait.symbols.is_empty() {
            self.flatten_wait = Some(wait);
            ctx.run_later(FLATTEN_RECHECK, |act, ctx| act.recheck_flatten(ctx));
        }
    }

    /// Something the engine must be sure of was not stored (a drawdown HALT
    /// that did not reach the store would come back ACTIVE after a restart):
    /// set the emergency stop, once.
    fn fail_closed(&mut self, what: String, ctx: &mut Context<Self>) {
        if self.failed_closed {
            tracing::error!(problem = %what, "store still failing (the emergency stop is already set)");
            return;
        }
        self.failed_closed = true;
        tracing::error!(problem = %what, "FAIL CLOSED: setting the emergency stop");
        ctx.notify(SetEmergencyStop {
            reason: format!("fail closed: {what}"),
            by: "engine:fail_closed".into(),
            flatten: false,
        });
    }

    fn publish_state(&self, record: &TradingStateRecord) {
        metrics().trading_state.set(record.state.code());
        metrics().emergency_stop.set(i64::from(self.engine.emergency_stop()));
        tracing::warn!(state = record.state.as_str(), reason = %record.reason, "trading state changed");
        let _ =
            self.events.send(EngineEvent::TradingStateChanged { state: record.state, reason: record.reason.clone() });
    }

    /// Acts on what the protections decided: log and publish each event,
    /// flush a state change before acting on it, set the emergency stop if a
    /// protection asks for it, and persist the protections' state.
    fn act_on(&mut self, outcome: ProtectionOutcome, ctx: &mut Context<Self>) {
        let had_events = !outcome.events.is_empty();
        for event in &outcome.events {
            tracing::warn!(protection_event = event.code(), detail = ?event, "risk protection");
            match event {
                ProtectionEvent::StrategyPaused { strategy, reason, .. } => {
                    let _ = self.events.send(EngineEvent::StrategyPaused {
                        strategy_id: StrategyId::new(strategy),
                        reason: reason.clone(),
                    });
                }
                ProtectionEvent::StrategyResumed { strategy, .. } => {
                    let _ = self.events.send(EngineEvent::StrategyResumed { strategy_id: StrategyId::new(strategy) });
                }
                _ => {}
            }
        }
        let persisted = self.engine.persisted();
        let state_change = outcome.state_change.clone();
        let request = outcome.emergency_request();
        let writer = self.writer.clone();
        ctx.wait(
            async move {
                writer
                    .run(move |s| -> Result<(), keel_core::error::StoreError> {
                        if let Some(record) = &state_change {
                            s.put_trading_state(record)?;
                        }
                        risk::persist::save(s, &persisted, had_events)
                    })
                    .await
            }
            .into_actor(self)
            .map(move |result, act, ctx| {
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => act.fail_closed(format!("the risk state could not be stored: {e}"), ctx),
                    Err(e) => act.fail_closed(format!("the risk state could not be stored: {e}"), ctx),
                }
                if let Some(record) = &outcome.state_change {
                    act.publish_state(record);
                    if record.state == TradingState::Halted {
                        let cancel = CancelAll { symbol: None, reason: format!("HALTED: {}", record.reason) };
                        deliver::must(&act.routes.cancels, cancel, "order_router");
                    }
                }
                if let Some((by, reason)) = request {
                    ctx.notify(SetEmergencyStop { reason, by, flatten: false });
                }
            }),
        );
    }
}

impl Actor for RiskGuard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Supervised for RiskGuard {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!("risk guard restarting; state and emergency stop kept");
    }
}

impl Handler<IntentSubmitted> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: IntentSubmitted, _ctx: &mut Self::Context) {
        let started = Instant::now();
        self.judge(msg.intent, msg.ingress);
        metrics().actor_message_seconds.with_label_values(&["risk_guard"]).observe(started.elapsed().as_secs_f64());
    }
}

/// A strategy's cancel passes straight through: cancelling only lowers risk,
/// so it is allowed in every trading state, HALTED included.
impl Handler<CancelOrder> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: CancelOrder, _ctx: &mut Self::Context) {
        deliver::must(&self.routes.strategy_cancels, msg, "order_router");
    }
}

impl Handler<FillRecorded> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: FillRecorded, ctx: &mut Self::Context) {
        let events = self.engine.on_fill_at(&msg.0, self.clock.now_ms());
        if !events.is_empty() {
            self.act_on(ProtectionOutcome { events, state_change: None, emergency_stop: None }, ctx);
        }
    }
}

impl Handler<OrderClosed> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: OrderClosed, _ctx: &mut Self::Context) {
        self.engine.on_order_final(&msg.0.client_order_id);
    }
}

impl Handler<OrderAcknowledged> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: OrderAcknowledged, _ctx: &mut Self::Context) {
        self.engine.on_order_accepted(&msg.0);
    }
}

impl Handler<BalancesChanged> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: BalancesChanged, _ctx: &mut Self::Context) {
        self.engine.on_balances(&msg.0);
    }
}

impl Handler<VenueHealth> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: VenueHealth, _ctx: &mut Self::Context) {
        if msg.healthy != self.engine.venue_healthy() {
            tracing::warn!(
                healthy = msg.healthy,
                "venue health changed: new orders {}",
                if msg.healthy { "allowed" } else { "refused" }
            );
        }
        self.engine.set_venue_healthy(msg.healthy);
    }
}

impl Handler<EquityMarked> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: EquityMarked, ctx: &mut Self::Context) {
        let outcome = self.engine.evaluate_protections(msg.equity, self.clock.now_ms());
        if let Some(dd) = self.engine.protections().drawdown_pct() {
            use rust_decimal::prelude::ToPrimitive;
            metrics().drawdown_ratio.set((dd / Decimal::ONE_HUNDRED).to_f64().unwrap_or(0.0));
        }
        if !outcome.events.is_empty() || outcome.state_change.is_some() || outcome.emergency_stop.is_some() {
            self.act_on(outcome, ctx);
        } else {
            // Keep the high-water mark across restarts without a flush per mark.
            let persisted = self.engine.persisted();
            let writer = self.writer.clone();
            ctx.spawn(
                async move { writer.run(move |s| risk::persist::save(s, &persisted, false)).await }
                    .into_actor(self)
                    .map(|result, act, ctx| match result {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => act.fail_closed(format!("the protections' state could not be stored: {e}"), ctx),
                        Err(e) => act.fail_closed(format!("the protections' state could not be stored: {e}"), ctx),
                    }),
            );
        }
    }
}

/// Logs an emergency stop that holds in memory only, and returns the error.
fn not_persisted(e: EmergencyStopError) -> EmergencyStopError {
    tracing::error!(error = %e, "EMERGENCY STOP COULD NOT BE PERSISTED; trading stays halted in memory");
    e
}

impl Handler<SetEmergencyStop> for RiskGuard {
    type Result = AtomicResponse<Self, Result<(), EmergencyStopError>>;

    fn handle(&mut self, msg: SetEmergencyStop, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
        // Gate first: from this instant no new order passes, even before the
        // flush, and the router lets nothing out that was approved before.
        self.engine.set_emergency_stop(true);
        deliver::must(&self.routes.stop, StopOrders { active: true }, "order_router");
        let writer = self.writer.clone();
        let (reason, by) = (msg.reason.clone(), msg.by.clone());
        AtomicResponse::new(Box::pin(
            async move { writer.run(move |s| risk::emergency::set(s, &reason, &by, now)).await }.into_actor(self).map(
                move |result, act, ctx| {
                    // Not persisted (disk full, store writer gone): the stop
                    // still holds in memory and everything below still happens —
                    // failing closed must not depend on the store.
                    let (stop, outcome) = match result {
                        Ok(Ok(stop)) => (stop, Ok(())),
                        Ok(Err(e)) => {
                            (in_memory_stop(&msg, now), Err(not_persisted(EmergencyStopError::NotPersisted(Arc::new(e)))))
                        }
                        // The store thread is gone (it panicked): write the stop
                        // from here, blocking this once — a stop that is not on
                        // disk would be forgotten by the next start.
                        Err(gone) => match risk::emergency::set(act.writer.store().as_ref(), &msg.reason, &msg.by, now) {
                            Ok(stop) => {
                                tracing::error!(error = %gone, "store writer gone: the emergency stop was written directly");
                                (stop, Ok(()))
                            }
                            Err(_) => (in_memory_stop(&msg, now), Err(not_persisted(EmergencyStopError::StoreGone(gone)))),
                        },
                    };
                    tracing::error!(reason = %msg.reason, by = %msg.by, flatten = msg.flatten, "EMERGENCY STOP set: trading HALTED, canceling open orders");
                    let change = act.engine.set_emergency_stop_record(stop, now);
                    metrics().emergency_stop.set(1);
                    let _ = act.events.send(EngineEvent::EmergencyStopSet { reason: msg.reason.clone(), by: msg.by.clone() });
                    if let Some(record) = change {
                        act.publish_state(&record);
                    }
                    metrics().trading_state.set(act.engine.state().code());
                    let cancel = CancelAll { symbol: None, reason: format!("emergency stop: {}", msg.reason) };
                    deliver::must(&act.routes.cancels, cancel, "order_router");
                    if msg.flatten || act.engine.config().flatten_on_emergency_stop {
                        act.flatten(None, ctx);
                    }
                    outcome
                },
            ),
        ))
    }
}

/// The stop as it holds in memory when it could not be stored.
fn in_memory_stop(msg: &SetEmergencyStop, now_ms: i64) -> EmergencyStop {
    EmergencyStop {
        active: true,
        reason: Some(msg.reason.clone()),
        set_by: Some(msg.by.clone()),
        set_at_ms: Some(now_ms),
        ..Default::default()
    }
}

impl Handler<Flatten> for RiskGuard {
    type Result = usize;

    fn handle(&mut self, msg: Flatten, ctx: &mut Self::Context) -> usize {
        self.flatten(msg.symbol.as_ref(), ctx)
    }
}

impl Handler<Resume> for RiskGuard {
    type Result = AtomicResponse<Self, Result<(), EmergencyStopError>>;

    fn handle(&mut self, msg: Resume, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
        let writer = self.writer.clone();
        let by = msg.by.clone();
        AtomicResponse::new(Box::pin(
            async move { writer.run(move |s| risk::emergency::clear(s, &by, now)).await }.into_actor(self).map(
                move |result, act, ctx| {
                    let cleared = match result {
                        Ok(Ok(c)) => c,
                        Ok(Err(e)) => return Err(EmergencyStopError::ResumeNotPersisted(Arc::new(e))),
                        Err(gone) => return Err(EmergencyStopError::StoreGone(gone)),
                    };
                    let outcome = act.engine.resume(&msg.by, now);
                    deliver::must(&act.routes.stop, StopOrders { active: false }, "order_router");
                    metrics().emergency_stop.set(0);
                    tracing::warn!(by = %msg.by, was_set = cleared.was_active, "operator resume: emergency stop and protections cleared; trading ACTIVE");
                    let _ = act.events.send(EngineEvent::EmergencyStopCleared { by: msg.by.clone() });
                    let record = outcome.state_change.clone().unwrap_or(cleared.state);
                    act.publish_state(&record);
                    act.act_on(ProtectionOutcome { events: outcome.events, state_change: None, emergency_stop: None }, ctx);
                    Ok(())
                },
            ),
        ))
    }
}

impl Handler<GetRiskStatus> for RiskGuard {
    type Result = MessageResult<GetRiskStatus>;

    fn handle(&mut self, _msg: GetRiskStatus, _ctx: &mut Self::Context) -> Self::Result {
        let snapshot = self.engine.snapshot(Some(self.clock.now_ms()));
        MessageResult(RiskStatus {
            trading_state: snapshot.trading_state,
            reason: snapshot.state_reason.clone(),
            emergency_stop: snapshot.emergency_stop.clone(),
            rejections: snapshot.rejections.clone(),
            in_flight: self.engine.in_flight_count(),
            max_order_notional: self.engine.config().max_order_notional,
            max_position_notional: self.engine.config().max_position_notional,
            snapshot,
        })
    }
}

impl Handler<crate::universe::HostJoined> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::HostJoined, _ctx: &mut Self::Context) {
        self.routes.hosts.insert(msg.id, msg.host.recipient());
    }
}

impl Handler<crate::universe::HostRetired> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::HostRetired, _ctx: &mut Self::Context) {
        self.routes.hosts.remove(&msg.id);
        self.leaving.remove(&msg.id);
    }
}

impl Handler<crate::universe::InstanceLeaving> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::InstanceLeaving, _ctx: &mut Self::Context) {
        if msg.leaving {
            tracing::info!(strategy = %msg.id, "universe: its symbol left; its orders are reduce-only until it retires");
            self.leaving.insert(msg.id);
        } else {
            self.leaving.remove(&msg.id);
        }
    }
}

impl Handler<crate::universe::InstrumentsListed> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::InstrumentsListed, _ctx: &mut Self::Context) {
        for i in msg.0 {
            self.engine.set_instrument(i);
        }
    }
}
