//! OrderRouter: owns every order's life after the risk guard approves it.
//!
//! Write ahead, then act: an order is flushed to the store before it is sent,
//! and a fill is flushed before anyone downstream hears of it. An order whose
//! outcome is unknown (timeout, dropped connection, 5xx) is resolved by querying
//! the venue by client order id — never by sending it again. Fills are
//! deduplicated by venue trade id.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use keel_core::account::AccountWriter;
use keel_core::balance::Balance;
use keel_core::clock::SharedClock;
use keel_core::fill::{Fill, TradeId};
use keel_core::order::{Order, OrderEvent, OrderStatus};
use keel_core::strategy::OrderUpdate;
use keel_core::venue::{
    OrderReport, OrderRequest, PlaceResult, StreamKind, StreamStatus, UserEvent, Venue, VenueError,
};
use keel_core::{StrategyId, Symbol};
use tokio::sync::broadcast;

use crate::deliver;
use crate::events::EngineEvent;
use crate::messages::{
    AttachUserFeed, BalancesChanged, CancelAll, CancelOpen, CancelOrder, FillRecorded, GetOpenOrders,
    OrderAcknowledged, OrderApproved, OrderClosed, OrderUpdated, SetEmergencyStop, StopOrders, VenueHealth,
    VenueUserEvent,
};
use crate::metrics::metrics;
use crate::store_writer::StoreWriter;

/// Strategy id given to fills of orders Keel does not know (placed outside Keel).
pub const EXTERNAL: &str = "external";

/// Where the router delivers what happened, fixed at construction: no route
/// can be missing when the first fill arrives.
#[derive(Clone)]
pub struct RouterRoutes {
    /// The risk guard: fills.
    pub risk_fills: Recipient<FillRecorded>,
    /// The risk guard: closed orders.
    pub risk_closed: Recipient<OrderClosed>,
    /// The risk guard: acknowledged orders (their funds are now locked at the venue).
    pub risk_accepted: Recipient<OrderAcknowledged>,
    /// The risk guard: balances.
    pub risk_balances: Recipient<BalancesChanged>,
    /// The risk guard: venue user-stream health.
    pub venue_health: Recipient<VenueHealth>,
    /// The risk guard: the emergency stop, when the router cannot record
    /// what happened (fail closed).
    pub fail: Recipient<SetEmergencyStop>,
    /// The portfolio: fills.
    pub portfolio_fills: Recipient<FillRecorded>,
    /// The portfolio: balances.
    pub portfolio_balances: Recipient<BalancesChanged>,
    /// Each strategy host: fills (orders of no strategy — the operator's,
    /// external ones — have no host).
    pub host_fills: HashMap<StrategyId, Recipient<FillRecorded>>,
    /// Each strategy host: order updates.
    pub host_updates: HashMap<StrategyId, Recipient<OrderUpdated>>,
}

/// How many recorded fills' trade keys the router remembers.
const RECENT_FILLS: usize = 4096;

/// Trade keys of the fills recorded last: skips a duplicate report (the
/// order response and the user stream tell the same fill) without asking the
/// store. Bounded — the store, which checks every fill before recording it,
/// is the record — so memory does not grow with history.
#[derive(Default)]
struct RecentFills {
    set: HashSet<(Symbol, TradeId)>,
    order: VecDeque<(Symbol, TradeId)>,
}

impl RecentFills {
    fn contains(&self, key: &(Symbol, TradeId)) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: (Symbol, TradeId)) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > RECENT_FILLS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// The order-router actor.
pub struct OrderRouter {
    venue: Arc<dyn Venue>,
    writer: StoreWriter,
    /// The running account's one writer: each fill is applied here once it
    /// is recorded, before anyone hears of it.
    account: AccountWriter,
    clock: SharedClock,
    events: broadcast::Sender<EngineEvent>,
    routes: RouterRoutes,
    orders: HashMap<String, Order>,
    seen_fills: RecentFills,
    fill_queue: VecDeque<Fill>,
    /// The order whose fill is being written, if any.
    fill_writing: Option<String>,
    deferred_reports: HashMap<String, OrderReport>,
    /// Balance updates that arrived while fills were still being written, by
    /// asset (later updates win). The venue sends a trade's balances after the
    /// trade; delivering them before its fill would let the risk guard count
    /// the fill's spending twice (once in the balance, once as unsettled).
    deferred_balances: BTreeMap<String, Balance>,
    restarted: bool,
    /// The emergency stop as last told: while set, only the operator's
    /// reduce-only orders (flatten) leave.
    stopped: bool,
    /// Orders someone asked to cancel that are not final yet. Each is
    /// canceled again when the venue first acknowledges it and retried
    /// until the venue reports it final: a cancel can reach the venue before
    /// the order does.
    /// The value counts the attempts so far (retries slow down with it).
    cancel_wanted: HashMap<String, u32>,
    /// Orders with a cancel request (or its follow-up query) outstanding.
    cancel_sending: HashSet<String>,
    /// Orders with a fill the store could not record: nothing more about
    /// them reaches anyone (the venue keeps the fill; the next start
    /// records it), so no one acts on a fill that is not in the ledger.
    unrecorded: HashSet<String>,
    /// The router has set the emergency stop because the store failed.
    failed_closed: bool,
}

/// How long a cancel the venue could not apply waits before it is tried
/// again, times the attempts so far (up to [`CANCEL_RETRY_STEPS`]).
const CANCEL_RETRY: Duration = Duration::from_millis(750);

/// Retries slow down to `CANCEL_RETRY` times this, and the router says
/// loudly, once, that it cannot cancel an order after this many attempts.
const CANCEL_RETRY_STEPS: u32 = 8;

/// Reason recorded on an order the emergency stop kept from leaving.
pub const EMERGENCY_STOP_REASON: &str = "emergency_stop";

impl OrderRouter {
    /// A router; `open_orders` are the orders still open at start (after
    /// reconciliation), `routes` where it reports what happens to them,
    /// `account` the running account it applies recorded fills to. It starts
    /// with the emergency stop clear ([`Self::stopped`] and [`StopOrders`] set it).
    pub fn new(
        venue: Arc<dyn Venue>,
        writer: StoreWriter,
        account: AccountWriter,
        clock: SharedClock,
        events: broadcast::Sender<EngineEvent>,
        open_orders: Vec<Order>,
        routes: RouterRoutes,
    ) -> Self {
        Self {
            venue,
            writer,
            account,
            clock,
            events,
            routes,
            orders: open_orders.into_iter().map(|o| (o.client_order_id.clone(), o)).collect(),
            seen_fills: RecentFills::default(),
            fill_queue: VecDeque::new(),
            fill_writing: None,
            deferred_reports: HashMap::new(),
            deferred_balances: BTreeMap::new(),
            restarted: false,
            stopped: false,
            cancel_wanted: HashMap::new(),
            cancel_sending: HashSet::new(),
            unrecorded: HashSet::new(),
            failed_closed: false,
        }
    }

    /// What happened could not be recorded: stop sending at once and set
    /// the emergency stop (once), so nothing trades on a ledger that is short.
    fn fail_closed(&mut self, what: String) {
        self.stopped = true;
        if self.failed_closed {
            tracing::error!(problem = %what, "store still failing (the emergency stop is already set)");
            return;
        }
        self.failed_closed = true;
        tracing::error!(problem = %what, "FAIL CLOSED: setting the emergency stop");
        deliver::must(
            &self.routes.fail,
            SetEmergencyStop {
                reason: format!("fail closed: {what}"),
                by: "engine:fail_closed".into(),
                flatten: false,
            },
            "risk_guard",
        );
    }

    /// The router of an engine that starts with the emergency stop set.
    pub fn stopped(mut self, active: bool) -> Self {
        self.stopped = active;
        self
    }

    /// True when `order` may not leave now: someone canceled it before it
    /// was sent, or the emergency stop holds and it is not the operator's
    /// reduce-only flatten order.
    fn held_back(&self, order: &Order) -> bool {
        self.cancel_wanted.contains_key(&order.client_order_id)
            || (self.stopped && !(order.reduce_only && order.strategy_id.as_str() == crate::risk_guard::OPERATOR))
    }

    fn persist(&self, order: Order, ctx: &mut Context<Self>) {
        let writer = self.writer.clone();
        let cid = order.client_order_id.clone();
        ctx.spawn(async move { writer.run(move |s| s.put_order(&order, false)).await }.into_actor(self).map(
            move |result, act, _ctx| {
                let problem = match result {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                act.fail_closed(format!("an update of order {cid} could not be stored: {problem}"));
            },
        ));
    }

    fn notify_host(&self, order: &Order) {
        if let Some(host) = self.routes.host_updates.get(&order.strategy_id) {
            deliver::must(
                host,
                OrderUpdated(OrderUpdate {
                    client_order_id: Some(order.client_order_id.clone()),
                    symbol: order.symbol.clone(),
                    side: order.side,
                    status: order.status,
                    filled_qty: order.filled_qty,
                    reason: order.reason.clone(),
                    tag: order.tag,
                    exit: order.exit,
                }),
                "strategy_host",
            );
        }
    }

    /// Tells the operator surfaces how an order looks now. A broadcast send
    /// never waits: a subscriber that is behind misses it, not the router.
    fn publish(&self, order: &Order) {
        let _ = self.events.send(EngineEvent::OrderChanged(order.clone()));
    }

    /// Moves an order through the state machine with one event.
    fn transition(&mut self, cid: &str, event: OrderEvent, reason: Option<String>, ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        let Some(order) = self.orders.get_mut(cid) else { return };
        let before = order.status;
        if let Err(e) = order.apply(event, now) {
            // Duplicate or late reports are normal; the order keeps its status.
            tracing::debug!(strategy = %order.strategy_id, symbol = %order.symbol, client_order_id = %cid, error = %e, "ignored order event");
            return;
        }
        if reason.is_some() {
            order.reason = reason;
        }
        self.after_change(cid, before, ctx);
    }

    /// After a status change: persist, tell the strategy, and on a final status
    /// tell the risk guard and stop tracking the order.
    fn after_change(&mut self, cid: &str, before: OrderStatus, ctx: &mut Context<Self>) {
        let Some(order) = self.orders.get(cid) else { return };
        if order.status == before {
            return;
        }
        let order = order.clone();
        tracing::info!(strategy = %order.strategy_id, symbol = %order.symbol, client_order_id = %cid, from = ?before, to = ?order.status, reason = order.reason.as_deref().unwrap_or(""), "order status");
        match order.status {
            OrderStatus::Filled => metrics().orders_filled_total.inc(),
            OrderStatus::Canceled => metrics().orders_canceled_total.inc(),
            _ => {}
        }
        self.persist(order.clone(), ctx);
        self.notify_host(&order);
        self.publish(&order);
        if order.status == OrderStatus::Accepted {
            deliver::must(&self.routes.risk_accepted, OrderAcknowledged(order.client_order_id.clone()), "risk_guard");
        }
        if order.status.is_terminal() {
            deliver::must(&self.routes.risk_closed, OrderClosed(order.clone()), "risk_guard");
            self.orders.remove(cid);
            self.cancel_wanted.remove(cid);
        } else if order.status.is_open() && self.cancel_wanted.contains_key(cid) {
            // Acknowledged after its cancel was asked for (the cancel may have
            // reached the venue first and found nothing): cancel it now.
            self.cancel_one(order.symbol.clone(), cid.to_string(), ctx);
        }
    }

    fn reject(&mut self, cid: &str, label: &str, reason: String, ctx: &mut Context<Self>) {
        metrics().orders_rejected_total.with_label_values(&[label]).inc();
        if let Some(order) = self.orders.get(cid) {
            tracing::warn!(strategy = %order.strategy_id, symbol = %order.symbol, client_order_id = %cid, reason = %reason, "order rejected");
            let _ = self.events.send(EngineEvent::OrderRejected {
                strategy_id: order.strategy_id.clone(),
                symbol: order.symbol.clone(),
                client_order_id: cid.to_string(),
                reason: reason.clone(),
            });
        }
        self.transition(cid, OrderEvent::Reject, Some(reason), ctx);
    }

    fn apply_report(&mut self, report: OrderReport, ctx: &mut Context<Self>) {
        // A report that already counts fills still waiting to be written would
        // tell the strategy "filled" before the fill itself: hold it until they are in.
        if self.fill_pending(&report.client_order_id) {
            self.deferred_reports.insert(report.client_order_id.clone(), report);
            return;
        }
        if self.unrecorded.contains(&report.client_order_id) {
            // Not applied: it would tell of the fill that is not recorded.
            tracing::warn!(client_order_id = %report.client_order_id, status = ?report.status, "report not applied: the order has a fill the store could not record");
            if report.status.is_terminal() {
                self.cancel_wanted.remove(&report.client_order_id);
            }
            return;
        }
        let now = self.clock.now_ms();
        let Some(order) = self.orders.get_mut(&report.client_order_id) else {
            tracing::debug!(client_order_id = %report.client_order_id, status = ?report.status, "report for an order not open here");
            return;
        };
        if order.venue_order_id.is_none() {
            order.venue_order_id = Some(report.venue_order_id.clone());
        }
        if report.status == OrderStatus::Unknown {
            // The venue's answer did not say (or said what Keel cannot read):
            // a sent order is resolved by querying it, never by guessing.
            if matches!(order.status, OrderStatus::Submitted) {
                let cid = report.client_order_id.clone();
                self.transition(
                    &cid,
                    OrderEvent::OutcomeUnknown,
                    Some("venue answer without a known status".into()),
                    ctx,
                );
                ctx.run_later(Duration::from_millis(300), |act, ctx| act.resolve_unknown(ctx));
            }
            return;
        }
        if report.status == OrderStatus::Rejected && !order.status.is_terminal() {
            let reason = report.reason.clone().unwrap_or_else(|| "rejected by venue".into());
            self.reject(&report.client_order_id, "venue_rejected", reason, ctx);
            return;
        }
        let before = order.status;
        if order.sync_to(report.status, now) && report.reason.is_some() {
            order.reason = report.reason.clone();
        }
        self.after_change(&report.client_order_id, before, ctx);
    }

    /// Queues a fill. Fills are written one at a time, in arrival order, each
    /// flushed before anyone downstream hears of it; the router keeps handling
    /// other messages (new orders) meanwhile.
    fn process_fill(&mut self, fill: Fill, ctx: &mut Context<Self>) {
        let key = (fill.symbol.clone(), fill.trade_id.clone());
        if self.seen_fills.contains(&key) || self.fill_queue.iter().any(|f| f.symbol == key.0 && f.trade_id == key.1) {
            return;
        }
        self.fill_queue.push_back(fill);
        if self.fill_writing.is_none() {
            self.write_next_fill(ctx);
        }
    }

    fn fill_pending(&self, client_order_id: &str) -> bool {
        self.fill_writing.as_deref() == Some(client_order_id)
            || self.fill_queue.iter().any(|f| f.client_order_id == client_order_id)
    }

    fn write_next_fill(&mut self, ctx: &mut Context<Self>) {
        let Some(fill) = self.fill_queue.pop_front() else {
            self.fill_writing = None;
            self.release_balances();
            return;
        };
        self.fill_writing = Some(fill.client_order_id.clone());
        let key = (fill.symbol.clone(), fill.trade_id.clone());
        let writer = self.writer.clone();
        let now = self.clock.now_ms();
        ctx.spawn(
            async move { writer.run(move |s| crate::reconcile::record_venue_fill(s, fill, now)).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    match result {
                        Ok(Ok(recorded)) => {
                            act.seen_fills.insert(key.clone());
                            if recorded.inserted && act.unrecorded.contains(&recorded.fill.client_order_id) {
                                // An earlier fill of its order is missing from the
                                // ledger: recorded, told to no one (see `unrecorded`).
                                tracing::warn!(symbol = %key.0, trade_id = %key.1, "fill recorded, not delivered: an earlier fill of its order is not recorded");
                            } else if recorded.inserted {
                                act.after_fill(recorded.fill, recorded.order, ctx);
                            } else {
                                tracing::debug!(symbol = %key.0, trade_id = %key.1, "duplicate fill ignored");
                            }
                        }
                        Ok(Err(e)) => act.fill_not_recorded(&key, e.to_string()),
                        Err(e) => act.fill_not_recorded(&key, e.to_string()),
                    }
                    let cid = act.fill_writing.take();
                    if let Some(cid) = cid {
                        if !act.fill_pending(&cid) {
                            if let Some(report) = act.deferred_reports.remove(&cid) {
                                act.apply_report(report, ctx);
                            }
                        }
                    }
                    act.write_next_fill(ctx);
                }),
        );
    }

    /// A fill the store could not record: no one hears of it or of its
    /// order again, and the engine fails closed. The venue keeps the fill;
    /// the next start's reconciliation records it.
    fn fill_not_recorded(&mut self, key: &(Symbol, TradeId), problem: String) {
        tracing::error!(error = %problem, symbol = %key.0, trade_id = %key.1, "FILL NOT PERSISTED; nothing downstream hears of it; the next start records it from the venue");
        if let Some(cid) = self.fill_writing.clone() {
            self.deferred_reports.remove(&cid);
            self.unrecorded.insert(cid);
        }
        self.fail_closed(format!("fill {} of {} could not be stored: {problem}", key.1, key.0));
    }

    /// Delivers the balance updates held back while fills were written, now
    /// that every fill before them has been delivered.
    fn release_balances(&mut self) {
        if self.deferred_balances.is_empty() {
            return;
        }
        let b: Vec<Balance> = std::mem::take(&mut self.deferred_balances).into_values().collect();
        // Into the account first, as with fills.
        self.account.apply_balances(&b, self.clock.now_ms());
        deliver::must(&self.routes.risk_balances, BalancesChanged(b.clone()), "risk_guard");
        deliver::must(&self.routes.portfolio_balances, BalancesChanged(b), "portfolio");
    }

    fn after_fill(&mut self, fill: Fill, order_after: Option<Order>, ctx: &mut Context<Self>) {
        metrics().fills_total.inc();
        // Into the account first: whoever hears of the fill reads it there.
        if self.account.apply(&fill).is_none() {
            tracing::error!(symbol = %fill.symbol, trade_id = %fill.trade_id, qty = %fill.qty, price = %fill.price, "fill amounts too large to account for: recorded, not applied to positions");
        }
        tracing::info!(strategy = %fill.strategy_id, symbol = %fill.symbol, client_order_id = %fill.client_order_id, trade_id = %fill.trade_id, side = ?fill.side, price = %fill.price, qty = %fill.qty, fee = %fill.fee, "fill");
        let msg = FillRecorded(fill.clone());
        deliver::must(&self.routes.portfolio_fills, msg.clone(), "portfolio");
        deliver::must(&self.routes.risk_fills, msg.clone(), "risk_guard");
        if let Some(h) = self.routes.host_fills.get(&fill.strategy_id) {
            deliver::must(h, msg, "strategy_host");
        }
        let _ = self.events.send(EngineEvent::Fill(fill.clone()));
        if let Some(after) = order_after {
            let cid = after.client_order_id.clone();
            let now = self.clock.now_ms();
            if let Some(o) = self.orders.get_mut(&cid) {
                let before = o.status;
                o.filled_qty = after.filled_qty;
                o.filled_quote = after.filled_quote;
                let target = if o.filled_qty >= o.qty { OrderStatus::Filled } else { OrderStatus::PartiallyFilled };
                o.sync_to(target, now);
                if o.status == before {
                    // Filled further, same status: `after_change` says nothing.
                    let order = o.clone();
                    self.publish(&order);
                }
                self.after_change(&cid, before, ctx);
            }
        }
    }

    fn on_placed(
        &mut self,
        cid: String,
        result: Result<PlaceResult, VenueError>,
        started: Instant,
        ctx: &mut Context<Self>,
    ) {
        metrics().order_ack_seconds.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(placed) => {
                for fill in placed.fills {
                    self.process_fill(fill, ctx);
                }
                self.apply_report(placed.report, ctx);
            }
            Err(e) if e.outcome_unknown() || matches!(e, VenueError::BadResponse(_)) => {
                tracing::warn!(client_order_id = %cid, error = %e, "order outcome unknown; will query the venue, never resend");
                self.transition(&cid, OrderEvent::OutcomeUnknown, Some(e.to_string()), ctx);
                ctx.run_later(Duration::from_millis(300), |act, ctx| act.resolve_unknown(ctx));
            }
            Err(VenueError::Rejected { code, reason }) => {
                self.reject(&cid, "venue_rejected", format!("venue {code}: {reason}"), ctx);
            }
            Err(e) => {
                // Certainly not executed (not sent, rate limited, banned): the
                // intent is dropped, not retried; the strategy decides again.
                if let VenueError::Banned { retry_after_ms } = e {
                    let _ = self
                        .events
                        .send(EngineEvent::VenueAlert(keel_core::venue::VenueAlert::Banned { retry_after_ms }));
                }
                self.reject(&cid, e.code(), e.to_string(), ctx);
            }
        }
    }

    /// Cancels one order at the venue; the report that comes back moves it.
    /// The order stays wanted canceled until it is final: a cancel the venue
    /// could not apply (the order not there yet, a transient error) is tried
    /// again, and one not yet sent (`New`) is canceled before it leaves.
    fn cancel_one(&mut self, symbol: Symbol, cid: String, ctx: &mut Context<Self>) {
        let attempts = self.cancel_wanted.entry(cid.clone()).or_insert(0);
        *attempts += 1;
        if *attempts == CANCEL_RETRY_STEPS {
            tracing::error!(client_order_id = %cid, attempts = CANCEL_RETRY_STEPS, "CANNOT CANCEL an order yet; still trying — check it at the venue");
        }
        if self.orders.get(&cid).is_none_or(|o| o.status == OrderStatus::New) {
            // Not sent yet: `OrderApproved` cancels it locally once it is written.
            return;
        }
        if !self.cancel_sending.insert(cid.clone()) {
            return;
        }
        let venue = self.venue.clone();
        ctx.spawn(async move { (cid.clone(), venue.cancel_order(&symbol, &cid).await) }.into_actor(self).map(
            |(cid, result), act, ctx| match result {
                Ok(report) => {
                    act.cancel_sending.remove(&cid);
                    act.apply_report(report, ctx);
                    act.retry_cancel_later(cid, ctx);
                }
                Err(e) => {
                    // Unknown to the venue or already final: the query settles it.
                    tracing::warn!(client_order_id = %cid, error = %e, "cancel failed; querying the order");
                    let Some(symbol) = act.orders.get(&cid).map(|o| o.symbol.clone()) else {
                        act.cancel_sending.remove(&cid);
                        return;
                    };
                    let venue = act.venue.clone();
                    ctx.spawn(async move { (cid.clone(), venue.query_order(&symbol, &cid).await) }.into_actor(act).map(
                        |(cid, r), act, ctx| {
                            act.cancel_sending.remove(&cid);
                            match r {
                                Ok(Some(report)) => act.apply_report(report, ctx),
                                Ok(None) => {
                                    tracing::warn!(client_order_id = %cid, "order to cancel not at the venue yet; will cancel again")
                                }
                                Err(e) => {
                                    tracing::warn!(client_order_id = %cid, error = %e, "cannot query an order to cancel yet; will cancel again")
                                }
                            }
                            act.retry_cancel_later(cid, ctx);
                        },
                    ));
                }
            },
        ));
    }

    /// Cancels `cid` again after a pause if it is still not final.
    fn retry_cancel_later(&mut self, cid: String, ctx: &mut Context<Self>) {
        let steps = self.cancel_wanted.get(&cid).copied().unwrap_or(1).clamp(1, CANCEL_RETRY_STEPS);
        ctx.run_later(CANCEL_RETRY * steps, move |act, ctx| {
            if !act.cancel_wanted.contains_key(&cid) || act.cancel_sending.contains(&cid) {
                return;
            }
            match act.orders.get(&cid) {
                Some(o) if o.status.is_open() => {
                    let symbol = o.symbol.clone();
                    act.cancel_one(symbol, cid, ctx);
                }
                Some(_) => {}
                None => {
                    act.cancel_wanted.remove(&cid);
                }
            }
        });
    }

    /// Queries every order whose outcome is unknown.
    fn resolve_unknown(&mut self, ctx: &mut Context<Self>) {
        let unknown: Vec<(Symbol, String)> = self
            .orders
            .values()
            .filter(|o| o.status == OrderStatus::Unknown)
            .map(|o| (o.symbol.clone(), o.client_order_id.clone()))
            .collect();
        for (symbol, cid) in unknown {
            let venue = self.venue.clone();
            ctx.spawn(async move { (cid.clone(), venue.query_order(&symbol, &cid).await) }.into_actor(self).map(
                |(cid, result), act, ctx| match result {
                    Ok(Some(report)) => act.apply_report(report, ctx),
                    Ok(None) => act.reject(&cid, "not_received", "the venue never received the order".into(), ctx),
                    Err(e) => {
                        tracing::warn!(client_order_id = %cid, error = %e, "cannot resolve order yet; will retry")
                    }
                },
            ));
        }
    }
}

impl Actor for OrderRouter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        if self.restarted {
            // The old context's user feed died with it: subscribe again. The
            // venue adapter reconciles any gap and reports `Connected` after.
            let venue = self.venue.clone();
            ctx.spawn(async move { venue.subscribe_user().await }.into_actor(self).map(
                |result, _act, ctx| match result {
                    Ok(feed) => {
                        ctx.add_stream(tokio_stream::wrappers::ReceiverStream::new(feed).map(VenueUserEvent));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot resubscribe to user data; restarting");
                        ctx.stop();
                    }
                },
            ));
        }
        ctx.run_interval(Duration::from_secs(2), |act, ctx| act.resolve_unknown(ctx));
    }
}

impl Supervised for OrderRouter {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Orders are kept in memory across a restart; anything unknown is
        // re-queried by the interval the new context starts.
        tracing::warn!(open_orders = self.orders.len(), "order router restarting");
        self.restarted = true;
    }
}

use tokio_stream::StreamExt as _;

impl Handler<AttachUserFeed> for OrderRouter {
    type Result = ();

    fn handle(&mut self, msg: AttachUserFeed, ctx: &mut Self::Context) {
        ctx.add_stream(tokio_stream::wrappers::ReceiverStream::new(msg.0).map(VenueUserEvent));
    }
}

impl Handler<OrderApproved> for OrderRouter {
    type Result = ();

    fn handle(&mut self, msg: OrderApproved, ctx: &mut Self::Context) {
        let received = Instant::now();
        if let Some(ingress) = msg.ingress {
            metrics().observe_tick_to_order(received.duration_since(ingress).as_secs_f64());
        }
        let now = self.clock.now_ms();
        let (intent, cid) = msg.approved.into_parts();
        let order = Order::from_intent(&intent, cid.clone(), now);
        tracing::info!(strategy = %order.strategy_id, symbol = %order.symbol, client_order_id = %cid, side = ?order.side, order_type = order.order_type.label(), qty = %order.qty, price = ?order.order_type.limit_price(), "order created");
        self.orders.insert(cid.clone(), order.clone());
        self.publish(&order);
        let writer = self.writer.clone();
        let request = OrderRequest {
            client_order_id: cid.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            order_type: order.order_type,
            qty: order.qty,
            tif: order.tif,
        };
        ctx.spawn(async move { writer.run(move |s| s.put_order(&order, true)).await }.into_actor(self).then(
            move |stored, act, ctx| {
                let mut ok = matches!(stored, Ok(Ok(())));
                if ok && act.orders.get(&cid).is_some_and(|o| act.held_back(o)) {
                    // Canceled, or the emergency stop came, while it was being
                    // written: it never leaves.
                    tracing::warn!(client_order_id = %cid, stopped = act.stopped, "order canceled before it was sent");
                    let reason = if act.stopped { EMERGENCY_STOP_REASON } else { "canceled before it was sent" };
                    act.transition(&cid, OrderEvent::Cancel, Some(reason.into()), ctx);
                    ok = false;
                }
                if ok {
                    let now = act.clock.now_ms();
                    if let Some(o) = act.orders.get_mut(&cid) {
                        if o.apply(OrderEvent::Submit, now).is_ok() {
                            let order = o.clone();
                            act.publish(&order);
                        }
                    }
                    metrics().orders_submitted_total.inc();
                }
                let venue = act.venue.clone();
                let stored_ok = matches!(stored, Ok(Ok(())));
                async move {
                    if !ok {
                        return (cid, None);
                    }
                    let result = venue.place_order(&request).await;
                    (cid, Some(result))
                }
                .into_actor(act)
                .map(move |(cid, result), act, ctx| match result {
                    Some(result) => act.on_placed(cid, result, received, ctx),
                    // Held back above: already final.
                    None if stored_ok => {}
                    None => {
                        act.reject(
                            &cid,
                            "store_failed",
                            "the order could not be persisted, so it was not sent".into(),
                            ctx,
                        );
                        act.fail_closed(format!("order {cid} could not be stored before sending"));
                    }
                })
            },
        ));
    }
}

impl StreamHandler<VenueUserEvent> for OrderRouter {
    fn handle(&mut self, msg: VenueUserEvent, ctx: &mut Self::Context) {
        let started = Instant::now();
        match msg.0 {
            UserEvent::Order(report) => self.apply_report(report, ctx),
            UserEvent::Fill(fill) => self.process_fill(fill, ctx),
            UserEvent::Balances(b) => {
                for balance in b {
                    self.deferred_balances.insert(balance.asset.clone(), balance);
                }
                if self.fill_writing.is_none() && self.fill_queue.is_empty() {
                    self.release_balances();
                }
            }
            UserEvent::Status(status) => {
                let (connected, detail) = match status {
                    StreamStatus::Connected => (true, "connected and reconciled".to_string()),
                    StreamStatus::Disconnected { reason } => (false, reason),
                };
                if connected {
                    tracing::info!(stream = "user", "user data connected");
                    self.resolve_unknown(ctx);
                } else {
                    tracing::warn!(stream = "user", reason = %detail, "user data disconnected");
                    metrics().stream_reconnects_total.with_label_values(&["user"]).inc();
                }
                metrics().stream_connected.with_label_values(&["user"]).set(i64::from(connected));
                deliver::must(&self.routes.venue_health, VenueHealth { healthy: connected }, "risk_guard");
                let _ = self.events.send(EngineEvent::Connectivity { stream: StreamKind::User, connected, detail });
            }
            UserEvent::Alert(alert) => {
                if let keel_core::venue::VenueAlert::Malformed { stream, .. } = &alert {
                    metrics().venue_parse_errors_total.with_label_values(&[stream.as_str()]).inc();
                }
                tracing::error!(alert = ?alert, "venue alert");
                let _ = self.events.send(EngineEvent::VenueAlert(alert));
            }
        }
        metrics().actor_message_seconds.with_label_values(&["order_router"]).observe(started.elapsed().as_secs_f64());
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        tracing::error!(stream = "user", "user data feed ended");
        metrics().stream_connected.with_label_values(&["user"]).set(0);
        deliver::must(&self.routes.venue_health, VenueHealth { healthy: false }, "risk_guard");
    }
}

impl Handler<CancelAll> for OrderRouter {
    type Result = usize;

    fn handle(&mut self, msg: CancelAll, ctx: &mut Self::Context) -> usize {
        let targets: Vec<(Symbol, String)> = self
            .orders
            .values()
            .filter(|o| !o.status.is_terminal() && msg.symbol.as_ref().is_none_or(|s| *s == o.symbol))
            .map(|o| (o.symbol.clone(), o.client_order_id.clone()))
            .collect();
        tracing::warn!(count = targets.len(), reason = %msg.reason, "canceling open orders");
        let n = targets.len();
        for (symbol, cid) in targets {
            self.cancel_one(symbol, cid, ctx);
        }
        n
    }
}

impl Handler<CancelOpen> for OrderRouter {
    type Result = bool;

    fn handle(&mut self, msg: CancelOpen, ctx: &mut Self::Context) -> bool {
        let Some(o) = self.orders.get(&msg.client_order_id).filter(|o| !o.status.is_terminal()) else {
            return false;
        };
        tracing::warn!(symbol = %o.symbol, client_order_id = %msg.client_order_id, reason = %msg.reason, "canceling an open order");
        let symbol = o.symbol.clone();
        self.cancel_one(symbol, msg.client_order_id, ctx);
        true
    }
}

impl Handler<CancelOrder> for OrderRouter {
    type Result = ();

    fn handle(&mut self, msg: CancelOrder, ctx: &mut Self::Context) {
        match self.orders.get(&msg.client_order_id) {
            Some(o) if o.strategy_id == msg.strategy_id && !o.status.is_terminal() => {
                tracing::info!(strategy = %msg.strategy_id, symbol = %o.symbol, client_order_id = %msg.client_order_id, "strategy cancels its order");
                let symbol = o.symbol.clone();
                self.cancel_one(symbol, msg.client_order_id, ctx);
            }
            Some(o) if o.strategy_id != msg.strategy_id => {
                tracing::warn!(strategy = %msg.strategy_id, owner = %o.strategy_id, client_order_id = %msg.client_order_id, "a strategy asked to cancel another's order; left alone");
            }
            _ => {
                tracing::debug!(strategy = %msg.strategy_id, client_order_id = %msg.client_order_id, "cancel of an order that is not working; nothing to do");
            }
        }
    }
}

impl Handler<StopOrders> for OrderRouter {
    type Result = ();

    fn handle(&mut self, msg: StopOrders, _ctx: &mut Self::Context) {
        if msg.active != self.stopped {
            tracing::warn!(
                active = msg.active,
                "order router: emergency stop {}",
                if msg.active { "set; sending nothing but flatten orders" } else { "cleared" }
            );
        }
        self.stopped = msg.active;
    }
}

impl Handler<GetOpenOrders> for OrderRouter {
    type Result = MessageResult<GetOpenOrders>;

    fn handle(&mut self, _msg: GetOpenOrders, _ctx: &mut Self::Context) -> Self::Result {
        let mut list: Vec<Order> = self.orders.values().cloned().collect();
        list.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.client_order_id.cmp(&b.client_order_id)));
        MessageResult(list)
    }
}

impl Handler<crate::universe::HostJoined> for OrderRouter {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::HostJoined, _ctx: &mut Self::Context) {
        self.routes.host_fills.insert(msg.id.clone(), msg.host.clone().recipient());
        self.routes.host_updates.insert(msg.id, msg.host.recipient());
    }
}

impl Handler<crate::universe::HostRetired> for OrderRouter {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::HostRetired, _ctx: &mut Self::Context) {
        self.routes.host_fills.remove(&msg.id);
        self.routes.host_updates.remove(&msg.id);
    }
}

impl Handler<crate::universe::InstrumentsListed> for OrderRouter {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::InstrumentsListed, _ctx: &mut Self::Context) {
        for i in &msg.0 {
            self.account.add_instrument(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_fills_forget_the_oldest_beyond_the_bound() {
        let mut recent = RecentFills::default();
        let key = |i: u64| (Symbol::new("BTCUSDT"), TradeId::from(i));
        for i in 0..(RECENT_FILLS as u64 + 10) {
            recent.insert(key(i));
            recent.insert(key(i));
        }
        assert_eq!((recent.set.len(), recent.order.len()), (RECENT_FILLS, RECENT_FILLS));
        assert!(
            !recent.contains(&key(9)) && recent.contains(&key(10)) && recent.contains(&key(RECENT_FILLS as u64 + 9))
        );
    }
}
