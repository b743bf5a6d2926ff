//! StrategyHost: runs one strategy instance live.
//!
//! It feeds the strategy market events, fills and order updates through the
//! same [`StrategyRunner`] the backtest uses, and sends the intents it produces
//! to the risk guard. A panicking strategy is paused by the runner; the host
//! logs it, publishes it and keeps running.
//!
//! The exits the runner keeps for the strategy's positions are persisted
//! after every call (through the store writer, never blocking the actor; a
//! write that fails sets the emergency stop, as every store failure does),
//! and each exit that happened is counted (`keel_exits_total{reason}`) and
//! published for the operator's notices.

use std::collections::HashMap;
use std::time::Instant;

use actix::prelude::*;
use keel_core::clock::SharedClock;
use keel_core::exits::ExitState;
use keel_core::strategy::{StrategyFailure, StrategyRunner};
use keel_core::{StrategyId, Symbol};
use tokio::sync::broadcast;

use crate::deliver;
use crate::events::EngineEvent;
use crate::messages::{
    CancelOrder, FillRecorded, FuturesTick, GetStrategyStatus, IntentSubmitted, MarketTick, OrderUpdated,
    SetEmergencyStop, SetPaused, SignalReceived,
};
use crate::metrics::metrics;
use crate::store_writer::StoreWriter;
use crate::strategy_pnl::StrategyPnl;

/// What a host reports about its strategy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StrategyStatus {
    /// Instance id.
    pub id: StrategyId,
    /// Kind.
    pub kind: String,
    /// Symbols.
    pub symbols: Vec<Symbol>,
    /// True while paused.
    pub paused: bool,
    /// Why it was paused by a failure, if it was.
    pub failure: Option<String>,
    /// Its PnL from the engine's own ledger (filled in by
    /// [`crate::handle::EngineHandle::strategies`], which holds the account
    /// and the prices).
    #[serde(flatten)]
    pub pnl: StrategyPnl,
    /// The exit state of each of its positions (reported under `/status`'s
    /// `exits`, by strategy and symbol).
    #[serde(skip)]
    pub exits: Vec<ExitState>,
}

/// Where a host sends what its strategy asks for, fixed at construction.
pub struct HostRoutes {
    /// The risk guard: order intents.
    pub intents: Recipient<IntentSubmitted>,
    /// The risk guard: cancels of the strategy's own orders.
    pub cancels: Recipient<CancelOrder>,
    /// The risk guard: the emergency stop, when the exit states cannot be stored.
    pub fail: Recipient<SetEmergencyStop>,
    /// Where the exit states go.
    pub writer: StoreWriter,
}

/// The actor hosting one strategy.
pub struct StrategyHost {
    runner: StrategyRunner,
    routes: HostRoutes,
    clock: SharedClock,
    events: broadcast::Sender<EngineEvent>,
    /// Open time of the last bar seen per symbol: a bar is delivered exactly once.
    last_bar: HashMap<Symbol, i64>,
    /// An exit-state write failed and the emergency stop was asked for.
    failed_closed: bool,
}

impl StrategyHost {
    /// A host for a warmed-up runner that has adopted its orders (anything
    /// it asked for then goes out when the host starts).
    pub fn new(
        runner: StrategyRunner,
        routes: HostRoutes,
        clock: SharedClock,
        events: broadcast::Sender<EngineEvent>,
        last_bar: HashMap<Symbol, i64>,
    ) -> Self {
        metrics().strategy_paused.with_label_values(&[runner.id().as_str()]).set(i64::from(runner.is_paused()));
        Self { runner, routes, clock, events, last_bar, failed_closed: false }
    }

    /// What the exit logic changed and did in the last runner call: the
    /// changed states to the store (in order, one job per call), each exit
    /// to the metric and the operator surfaces.
    fn exits(&mut self, ctx: &mut Context<Self>) {
        let changes = self.runner.drain_exit_changes();
        if !changes.is_empty() {
            let strategy = self.runner.id().clone();
            let writer = self.routes.writer.clone();
            ctx.spawn(
                async move { writer.run(move |s| persist_exit_changes(s, &strategy, &changes)).await }
                    .into_actor(self)
                    .map(|result, act, _ctx| {
                        let problem = match result {
                            Ok(Ok(())) => return,
                            Ok(Err(e)) => e.to_string(),
                            Err(e) => e.to_string(),
                        };
                        act.fail_closed(problem);
                    }),
            );
        }
        for event in self.runner.drain_exit_events() {
            tracing::info!(strategy = %event.strategy_id, symbol = %event.symbol, reason = %event.reason, qty = %event.qty, price = %event.price, entry = %event.entry_price, "exit");
            metrics().exits_total.with_label_values(&[event.reason.as_str()]).inc();
            let _ = self.events.send(EngineEvent::Exit(event));
        }
    }

    /// An exit state could not be stored: a restart would not know the
    /// position's exits as they are, so the engine stops (once).
    fn fail_closed(&mut self, problem: String) {
        if self.failed_closed {
            tracing::error!(strategy = %self.runner.id(), problem = %problem, "exit state still not stored (the emergency stop is already asked for)");
            return;
        }
        self.failed_closed = true;
        tracing::error!(strategy = %self.runner.id(), problem = %problem, "FAIL CLOSED: an exit state could not be stored; setting the emergency stop");
        deliver::must(
            &self.routes.fail,
            SetEmergencyStop {
                reason: format!("fail closed: the exit state of {} could not be stored: {problem}", self.runner.id()),
                by: "engine:fail_closed".into(),
                flatten: false,
            },
            "risk_guard",
        );
    }

    fn forward(&mut self, result: Result<usize, StrategyFailure>, ingress: Option<Instant>, ctx: &mut Context<Self>) {
        self.exits(ctx);
        match result {
            Ok(0) => {}
            Ok(_) => {
                for alert in self.runner.drain_alerts() {
                    tracing::info!(strategy = %alert.strategy_id, symbol = %alert.symbol, condition = %alert.condition, message = %alert.message, "setup alert");
                    metrics().setup_alerts_total.with_label_values(&[alert.condition.as_str()]).inc();
                    let _ = self.events.send(EngineEvent::SetupAlert(alert));
                }
                let strategy_id = self.runner.id().clone();
                for client_order_id in self.runner.drain_cancels() {
                    let msg = CancelOrder { strategy_id: strategy_id.clone(), client_order_id };
                    deliver::must(&self.routes.cancels, msg, "risk_guard");
                }
                let intents: Vec<_> = self.runner.drain_intents().collect();
                for intent in intents {
                    let msg = IntentSubmitted { intent, ingress };
                    // The risk guard's mailbox is bounded; when it is full, wait
                    // for room rather than drop or grow without bound.
                    if let Err(SendError::Full(msg)) = self.routes.intents.try_send(msg) {
                        let risk = self.routes.intents.clone();
                        ctx.wait(
                            async move {
                                let _ = risk.send(msg).await;
                            }
                            .into_actor(self),
                        );
                    }
                }
            }
            Err(failure) => {
                tracing::error!(strategy = %failure.strategy_id, error = %failure.message, "strategy panicked; it is paused, the rest of the engine keeps trading");
                metrics().strategy_failures_total.with_label_values(&[failure.strategy_id.as_str()]).inc();
                metrics().strategy_paused.with_label_values(&[failure.strategy_id.as_str()]).set(1);
                let _ = self.events.send(EngineEvent::StrategyPaused {
                    strategy_id: failure.strategy_id.clone(),
                    reason: format!("panicked: {}", failure.message),
                });
            }
        }
    }
}

/// Writes one runner call's exit-state changes: a state to put, or `None`
/// for a position that went flat.
fn persist_exit_changes(
    store: &dyn keel_core::store::Store,
    strategy: &StrategyId,
    changes: &[(Symbol, Option<ExitState>)],
) -> keel_core::store::StoreResult<()> {
    for (symbol, state) in changes {
        match state {
            Some(state) => store.put_exit_state(strategy, state)?,
            None => store.delete_exit_state(strategy, symbol)?,
        }
    }
    Ok(())
}

impl Actor for StrategyHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        tracing::info!(strategy = %self.runner.id(), kind = self.runner.kind(), paused = self.runner.is_paused(), "strategy host started");
        // What the strategy asked for while adopting its orders at start.
        self.forward(Ok(1), None, ctx);
    }
}

impl Supervised for StrategyHost {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(strategy = %self.runner.id(), "strategy host restarting; its strategy state is kept");
    }
}

impl Handler<MarketTick> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: MarketTick, ctx: &mut Self::Context) {
        if let keel_core::market::MarketEvent::Bar(bar) = &msg.event {
            let last = self.last_bar.entry(bar.symbol.clone()).or_insert(i64::MIN);
            if bar.open_time <= *last {
                return;
            }
            *last = bar.open_time;
        }
        metrics().market_events_total.inc();
        let result = self.runner.on_market(&msg.event, self.clock.now_ms());
        self.forward(result, Some(msg.ingress), ctx);
    }
}

impl Handler<FuturesTick> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: FuturesTick, ctx: &mut Self::Context) {
        let result = self.runner.on_futures(&msg.0, self.clock.now_ms());
        self.forward(result, None, ctx);
    }
}

impl Handler<FillRecorded> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: FillRecorded, ctx: &mut Self::Context) {
        let result = self.runner.on_fill(&msg.0, self.clock.now_ms());
        self.forward(result, None, ctx);
    }
}

impl Handler<OrderUpdated> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: OrderUpdated, ctx: &mut Self::Context) {
        let result = self.runner.on_order_update(&msg.0, self.clock.now_ms());
        self.forward(result, None, ctx);
    }
}

impl Handler<SignalReceived> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: SignalReceived, ctx: &mut Self::Context) {
        let result = self.runner.on_signal(&msg.0, self.clock.now_ms());
        self.forward(result, None, ctx);
    }
}

impl Handler<SetPaused> for StrategyHost {
    type Result = bool;

    fn handle(&mut self, msg: SetPaused, _ctx: &mut Self::Context) -> bool {
        let id = self.runner.id().clone();
        self.runner.set_paused(msg.paused);
        metrics().strategy_paused.with_label_values(&[id.as_str()]).set(i64::from(msg.paused));
        tracing::info!(strategy = %id, paused = msg.paused, reason = %msg.reason, "strategy paused state changed");
        let event = if msg.paused {
            EngineEvent::StrategyPaused { strategy_id: id, reason: msg.reason }
        } else {
            EngineEvent::StrategyResumed { strategy_id: id }
        };
        let _ = self.events.send(event);
        true
    }
}

impl Handler<GetStrategyStatus> for StrategyHost {
    type Result = MessageResult<GetStrategyStatus>;

    fn handle(&mut self, _msg: GetStrategyStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(StrategyStatus {
            id: self.runner.id().clone(),
            kind: self.runner.kind().to_string(),
            symbols: self.runner.symbols().to_vec(),
            paused: self.runner.is_paused(),
            failure: self.runner.failure().map(str::to_string),
            pnl: StrategyPnl::default(),
            exits: self.runner.exit_states(),
        })
    }
}
