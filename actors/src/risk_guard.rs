//! RiskGuard: the single gate between strategies and the order router.
//!
//! Every intent passes [`risk::RiskEngine::check`] in arrival order, so
//! in-flight exposure is counted before the next intent is judged. The guard
//! also owns the trading state and the sticky emergency stop: a change is
//! flushed to the store before it is acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use engine::clock::SharedClock;
use engine::order::{OrderIntent, OrderStatus, Side};
use engine::strategy::OrderUpdate;
use engine::trading::{EmergencyStop, TradingState, TradingStateRecord};
use engine::{Decimal, StrategyId, Symbol};
use risk::RiskEngine;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::events::EngineEvent;
use crate::ids::ClientIds;
use crate::messages::{CancelAll, FillRecorded, IntentSubmitted, OrderApproved, OrderClosed, OrderUpdated};
use crate::metrics::metrics;
use crate::order_router::OrderRouter;
use crate::prices::PriceBoard;
use crate::store_writer::StoreWriter;

/// The strategy id used for orders an operator asks for (flatten).
pub const OPERATOR: &str = "operator";

/// Set the emergency stop: HALTED, cancel all open orders, optionally flatten.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), String>")]
pub struct SetEmergencyStop {
    /// Why.
    pub reason: String,
    /// Who (`operator:cli`, `operator:telegram:<user>`, `venue:418`, `protection:max_drawdown`…).
    pub by: String,
    /// Also close positions with reduce-only market orders.
    pub flatten: bool,
}

/// Clear the emergency stop and return to ACTIVE (operator only).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), String>")]
pub struct Resume {
    /// Who.
    pub by: String,
}

/// Close positions with reduce-only market orders.
#[derive(Message, Debug, Clone)]
#[rtype(result = "usize")]
pub struct Flatten {
    /// Only this symbol.
    pub symbol: Option<Symbol>,
    /// Positions to close (symbol, signed quantity).
    pub positions: Vec<(Symbol, Decimal)>,
}

/// The guard's current state, for operators.
#[derive(Debug, Clone, Serialize)]
pub struct RiskStatus {
    /// Trading state.
    pub trading_state: TradingState,
    /// Why it is in that state.
    pub reason: String,
    /// The emergency stop record.
    pub emergency_stop: EmergencyStop,
    /// Rejections so far, by reason code.
    pub rejections: HashMap<String, u64>,
    /// Orders counted as open or in flight.
    pub in_flight: usize,
    /// Per-order notional limit.
    pub max_order_notional: Decimal,
    /// Per-symbol position notional limit.
    pub max_position_notional: Decimal,
}

/// Asks for the guard's state.
#[derive(Message)]
#[rtype(result = "RiskStatus")]
pub struct GetRiskStatus;

/// The risk-guard actor.
pub struct RiskGuard {
    engine: RiskEngine,
    ids: Arc<ClientIds>,
    router: Addr<OrderRouter>,
    hosts: HashMap<StrategyId, Recipient<OrderUpdated>>,
    prices: Arc<PriceBoard>,
    writer: StoreWriter,
    clock: SharedClock,
    events: broadcast::Sender<EngineEvent>,
    state: TradingStateRecord,
    stop: EmergencyStop,
    rejections: HashMap<String, u64>,
}

impl RiskGuard {
    /// A guard over a prepared risk engine (positions and open orders restored).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: RiskEngine,
        ids: Arc<ClientIds>,
        router: Addr<OrderRouter>,
        hosts: HashMap<StrategyId, Recipient<OrderUpdated>>,
        prices: Arc<PriceBoard>,
        writer: StoreWriter,
        clock: SharedClock,
        events: broadcast::Sender<EngineEvent>,
        state: TradingStateRecord,
        stop: EmergencyStop,
    ) -> Self {
        let mut engine = engine;
        engine.set_state(state.state);
        engine.set_emergency_stop(stop.active);
        metrics().trading_state.set(state.state.code());
        metrics().emergency_stop.set(i64::from(stop.active));
        Self { engine, ids, router, hosts, prices, writer, clock, events, state, stop, rejections: HashMap::new() }
    }

    fn judge(&mut self, intent: OrderIntent, ingress: Option<Instant>) {
        let now = self.clock.now_ms();
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
                self.router.do_send(OrderApproved { intent: approved.intent, client_order_id, ingress });
            }
            Err(rejection) => {
                let code = rejection.reason.code();
                let reason = rejection.reason.to_string();
                tracing::warn!(strategy = %intent.strategy_id, symbol = %intent.symbol, side = ?intent.side, qty = %intent.qty, reason_code = code, reason = %reason, "intent refused by risk guard");
                metrics().risk_rejections_total.with_label_values(&[code]).inc();
                *self.rejections.entry(code.to_string()).or_default() += 1;
                let _ = self.events.send(EngineEvent::RiskRejected {
                    strategy_id: intent.strategy_id.clone(),
                    symbol: intent.symbol.clone(),
                    code: code.to_string(),
                    reason: reason.clone(),
                });
                if let Some(host) = self.hosts.get(&intent.strategy_id) {
                    host.do_send(OrderUpdated(OrderUpdate {
                        client_order_id: None,
                        symbol: intent.symbol,
                        side: intent.side,
                        status: OrderStatus::Rejected,
                        filled_qty: Decimal::ZERO,
                        reason: Some(format!("risk: {reason}")),
                    }));
                }
            }
        }
    }

    fn flatten_intents(&self, positions: &[(Symbol, Decimal)], only: Option<&Symbol>) -> Vec<OrderIntent> {
        positions
            .iter()
            .filter(|(s, q)| !q.is_zero() && only.is_none_or(|o| o == s))
            .map(|(symbol, qty)| {
                let side = if qty.is_sign_positive() { Side::Sell } else { Side::Buy };
                let mut intent = OrderIntent::market(StrategyId::new(OPERATOR), symbol.clone(), side, qty.abs());
                intent.reduce_only = true;
                intent
            })
            .collect()
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

impl Handler<FillRecorded> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: FillRecorded, _ctx: &mut Self::Context) {
        self.engine.on_fill(&msg.0);
    }
}

impl Handler<OrderClosed> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: OrderClosed, _ctx: &mut Self::Context) {
        self.engine.on_order_final(&msg.0.client_order_id);
    }
}

impl Handler<SetEmergencyStop> for RiskGuard {
    type Result = AtomicResponse<Self, Result<(), String>>;

    fn handle(&mut self, msg: SetEmergencyStop, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
        // Gate first: from this instant no new order passes, even before the flush.
        self.engine.set_emergency_stop(true);
        self.engine.set_state(TradingState::Halted);
        let stop = EmergencyStop {
            active: true,
            reason: Some(msg.reason.clone()),
            set_by: Some(msg.by.clone()),
            set_at_ms: Some(now),
            cleared_by: self.stop.cleared_by.clone(),
            cleared_at_ms: self.stop.cleared_at_ms,
        };
        let record = TradingStateRecord {
            state: TradingState::Halted,
            reason: format!("emergency stop: {}", msg.reason),
            since_ms: now,
        };
        let writer = self.writer.clone();
        let (stop_w, record_w) = (stop.clone(), record.clone());
        AtomicResponse::new(Box::pin(
            async move {
                writer
                    .run(move |s| s.put_emergency_stop(&stop_w).and_then(|_| s.put_trading_state(&record_w)))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            }
            .into_actor(self)
            .map(move |result, act, _ctx| {
                if let Err(e) = &result {
                    // The gate is closed in memory regardless; say loudly that it is not on disk.
                    tracing::error!(error = %e, "EMERGENCY STOP COULD NOT BE PERSISTED; trading stays halted in memory");
                    return result;
                }
                tracing::error!(reason = %msg.reason, by = %msg.by, flatten = msg.flatten, "EMERGENCY STOP set: trading HALTED, canceling open orders");
                act.stop = stop;
                act.state = record.clone();
                metrics().emergency_stop.set(1);
                metrics().trading_state.set(TradingState::Halted.code());
                let _ = act.events.send(EngineEvent::EmergencyStopSet { reason: msg.reason.clone(), by: msg.by.clone() });
                let _ = act.events.send(EngineEvent::TradingStateChanged { state: TradingState::Halted, reason: record.reason });
                act.router.do_send(CancelAll { symbol: None, reason: format!("emergency stop: {}", msg.reason) });
                Ok(())
            }),
        ))
    }
}

impl Handler<Flatten> for RiskGuard {
    type Result = usize;

    fn handle(&mut self, msg: Flatten, _ctx: &mut Self::Context) -> usize {
        let intents = self.flatten_intents(&msg.positions, msg.symbol.as_ref());
        let n = intents.len();
        for intent in intents {
            tracing::warn!(symbol = %intent.symbol, side = ?intent.side, qty = %intent.qty, "flattening position with a reduce-only market order");
            self.judge(intent, None);
        }
        n
    }
}

impl Handler<Resume> for RiskGuard {
    type Result = AtomicResponse<Self, Result<(), String>>;

    fn handle(&mut self, msg: Resume, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
        let mut stop = self.stop.clone();
        stop.active = false;
        stop.cleared_by = Some(msg.by.clone());
        stop.cleared_at_ms = Some(now);
        let record =
            TradingStateRecord { state: TradingState::Active, reason: format!("resumed by {}", msg.by), since_ms: now };
        let writer = self.writer.clone();
        let (stop_w, record_w) = (stop.clone(), record.clone());
        AtomicResponse::new(Box::pin(
            async move {
                writer
                    .run(move |s| s.put_emergency_stop(&stop_w).and_then(|_| s.put_trading_state(&record_w)))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            }
            .into_actor(self)
            .map(move |result, act, _ctx| {
                result?;
                act.engine.set_emergency_stop(false);
                act.engine.set_state(TradingState::Active);
                act.stop = stop;
                act.state = record.clone();
                metrics().emergency_stop.set(0);
                metrics().trading_state.set(TradingState::Active.code());
                tracing::warn!(by = %msg.by, "emergency stop cleared; trading ACTIVE");
                let _ = act.events.send(EngineEvent::EmergencyStopCleared { by: msg.by.clone() });
                let _ = act
                    .events
                    .send(EngineEvent::TradingStateChanged { state: TradingState::Active, reason: record.reason });
                Ok(())
            }),
        ))
    }
}

impl Handler<GetRiskStatus> for RiskGuard {
    type Result = MessageResult<GetRiskStatus>;

    fn handle(&mut self, _msg: GetRiskStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(RiskStatus {
            trading_state: self.state.state,
            reason: self.state.reason.clone(),
            emergency_stop: self.stop.clone(),
            rejections: self.rejections.clone(),
            in_flight: self.engine.in_flight_count(),
            max_order_notional: self.engine.config().max_order_notional,
            max_position_notional: self.engine.config().max_position_notional,
        })
    }
}

/// Tells the guard where to report refusals (sent once the hosts exist).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRiskHosts(pub HashMap<StrategyId, Recipient<OrderUpdated>>);

impl Handler<SetRiskHosts> for RiskGuard {
    type Result = ();

    fn handle(&mut self, msg: SetRiskHosts, _ctx: &mut Self::Context) {
        self.hosts = msg.0;
    }
}
