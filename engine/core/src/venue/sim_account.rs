//! The account side of the simulated venues: the matching core behind its
//! lock, the one simulated account, and the user-data deliveries.
//!
//! [`super::paper::PaperVenue`] (a seeded simulated market) and
//! [`super::live_paper::LivePaperVenue`] (a live venue's public market) differ
//! only in where their prices come from; placing, cancelling and querying
//! orders, the balances and the fills are the same and live here once.
//!
//! A one-cancels-the-other order ([`OrderType::Oco`]) is a list of two legs
//! in the core and one order to Keel (see [`super::oco`]): its reports, its
//! fills, its cancel and its place in the open orders are the list's.

use std::sync::{Arc, Mutex, MutexGuard};

use rust_decimal::Decimal;
use tokio::sync::mpsc;

use super::oco::{self, OcoLeg};
use super::{MarketFeed, OrderReport, OrderRequest, PlaceResult, StreamStatus, UserEvent, VenueError, VenueResult};
use crate::balance::Balance;
use crate::fill::{Fill, FillCursor};
use crate::instrument::Instrument;
use crate::market::BookTicker;
use crate::order::OrderType;
use crate::sim::{Execution, MatchError, MatchingCore, NewOrder, NewOrderList, SimList, OCO_BAD_PRICES};
use crate::symbol::Symbol;

/// The one simulated account.
pub(super) const ACCOUNT: u32 = 1;

/// Final orders and fills kept per account when the account is saved (older
/// ones are forgotten, so what is saved stays small; open orders are always
/// kept).
const HISTORY_KEEP: usize = 5_000;

/// Keeps the simulated account (the matching core: balances, open orders,
/// fills, ids) where a restart finds it, so the dry-run venue outlives the
/// process as a real venue does. Called under the venue's lock after every
/// change, before anyone hears of it.
pub trait CoreSaver: Send + Sync {
    /// Saves `core` (whole; it replaces what was saved).
    fn save(&self, core: &MatchingCore);
}

/// User events to send, each with its subscriber (sent after the lock is
/// released: a send may wait).
pub(super) type Deliveries = Vec<(mpsc::Sender<UserEvent>, UserEvent)>;

/// What is behind the account's lock.
pub(super) struct AccountState {
    /// The matching core: instruments, quotes, the account, its orders and fills.
    pub(super) core: MatchingCore,
    user_subs: Vec<mpsc::Sender<UserEvent>>,
    saver: Option<Arc<dyn CoreSaver>>,
}

impl AccountState {
    /// The account changed through `executions`: save it (when a saver is
    /// set and anything happened) and return what the user streams hear.
    pub(super) fn record(&mut self, executions: Vec<Execution>) -> Deliveries {
        if executions.is_empty() {
            return Vec::new();
        }
        if let Some(saver) = &self.saver {
            self.core.forget_history(HISTORY_KEEP);
            saver.save(&self.core);
        }
        self.user_subs.retain(|tx| !tx.is_closed());
        let events = user_events(&self.core, executions);
        self.user_subs.iter().flat_map(|tx| events.iter().map(move |e| (tx.clone(), e.clone()))).collect()
    }
}

/// The simulated account shared by the paper venues (cheap to clone: the
/// clones share one lock).
#[derive(Clone)]
pub(super) struct SimAccount {
    state: Arc<Mutex<AccountState>>,
}

impl SimAccount {
    /// The account kept in `core` (as [`ACCOUNT`]); with a `saver`, every
    /// change is saved.
    pub(super) fn new(core: MatchingCore, saver: Option<Arc<dyn CoreSaver>>) -> Self {
        Self { state: Arc::new(Mutex::new(AccountState { core, user_subs: Vec::new(), saver })) }
    }

    /// The state, locked.
    pub(super) fn lock(&self) -> MutexGuard<'_, AccountState> {
        // A poisoned lock means a panic inside the matching; its state is
        // still the best there is, so keep serving rather than failing forever.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Places an order at venue time `now_ms`; the deliveries are for the
    /// caller to [`deliver`] once its own locks are released.
    pub(super) fn place_at(&self, request: &OrderRequest, now_ms: i64) -> (VenueResult<PlaceResult>, Deliveries) {
        if let OrderType::Oco { take_profit, stop, stop_limit } = request.order_type {
            return self.place_oco(request, (take_profit, stop, stop_limit), now_ms);
        }
        let mut st = self.lock();
        let new = NewOrder {
            account: ACCOUNT,
            client_order_id: request.client_order_id.clone(),
            symbol: request.symbol.clone(),
            side: request.side,
            order_type: request.order_type,
            qty: request.qty,
            tif: request.tif,
            asked: Default::default(),
        };
        match st.core.submit(new, now_ms) {
            Ok(result) => {
                let fills: Vec<Fill> = result.executions.iter().filter_map(|e| e.fill.clone()).collect();
                let mut executions = vec![Execution { order: result.order.clone(), fill: None }];
                executions.extend(result.executions);
                let deliveries = st.record(executions);
                (Ok(PlaceResult { report: result.order.report(), fills }), deliveries)
            }
            Err(e) => (Err(match_error(e)), Vec::new()),
        }
    }

    /// Places an OCO as a list of two legs whose client ids derive from the
    /// request's (see [`oco::leg_ids`]).
    fn place_oco(
        &self,
        request: &OrderRequest,
        prices: (Decimal, Decimal, Option<Decimal>),
        now_ms: i64,
    ) -> (VenueResult<PlaceResult>, Deliveries) {
        let (tp_id, stop_id) = match oco::leg_ids(&request.client_order_id) {
            Ok(ids) => ids,
            Err(e) => return (Err(e), Vec::new()),
        };
        let list = NewOrderList::oco(
            ACCOUNT,
            &request.client_order_id,
            request.symbol.clone(),
            request.side,
            request.qty,
            prices,
            tp_id,
            stop_id,
        );
        let mut st = self.lock();
        match st.core.submit_list(list, now_ms) {
            Ok(result) => {
                let core = &st.core;
                let fills: Vec<Fill> =
                    result.executions.iter().filter_map(|e| e.fill.clone()).map(|f| as_list_fill(core, f)).collect();
                let report = list_report(core, &result.list).unwrap_or_else(|| result.legs[0].report());
                let mut executions =
                    result.legs.iter().map(|o| Execution { order: o.clone(), fill: None }).collect::<Vec<_>>();
                executions.extend(result.executions);
                let deliveries = st.record(executions);
                (Ok(PlaceResult { report, fills }), deliveries)
            }
            Err(e) => (Err(match_error(e)), Vec::new()),
        }
    }

    /// Cancels an order (an OCO: its whole list) at venue time `now_ms`
    /// (deliveries as [`Self::place_at`]).
    pub(super) fn cancel_at(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
        now_ms: i64,
    ) -> (VenueResult<OrderReport>, Deliveries) {
        let mut st = self.lock();
        let plain = st.core.order_by_client(ACCOUNT, client_order_id).is_some();
        let list = st.core.list_by_client(ACCOUNT, client_order_id).filter(|l| l.symbol == *symbol).map(|l| l.list_id);
        if let (false, Some(list_id)) = (plain, list) {
            return match st.core.cancel_list(ACCOUNT, list_id, now_ms) {
                Ok(legs) => {
                    let report = st.core.list(list_id).and_then(|l| list_report(&st.core, l));
                    let d = st.record(legs.into_iter().map(|order| Execution { order, fill: None }).collect());
                    (report.ok_or(VenueError::NotFound), d)
                }
                Err(MatchError::AlreadyFinal(status)) => (Err(already_final(status)), Vec::new()),
                Err(e) => (Err(match_error(e)), Vec::new()),
            };
        }
        match st.core.cancel(ACCOUNT, symbol, client_order_id, now_ms) {
            Ok(order) => {
                let d = st.record(vec![Execution { order: order.clone(), fill: None }]);
                (Ok(order.report()), d)
            }
            Err(MatchError::AlreadyFinal(status)) => (Err(already_final(status)), Vec::new()),
            Err(e) => (Err(match_error(e)), Vec::new()),
        }
    }

    /// Places an order at `now_ms` and tells the user streams.
    pub(super) async fn place(&self, request: &OrderRequest, now_ms: i64) -> VenueResult<PlaceResult> {
        let (result, deliveries) = self.place_at(request, now_ms);
        deliver(Vec::new(), deliveries).await;
        result
    }

    /// Cancels an order at `now_ms` and tells the user streams.
    pub(super) async fn cancel(&self, symbol: &Symbol, client_order_id: &str, now_ms: i64) -> VenueResult<OrderReport> {
        let (result, deliveries) = self.cancel_at(symbol, client_order_id, now_ms);
        deliver(Vec::new(), deliveries).await;
        result
    }

    /// The order with this client order id (the newest, if it was used
    /// again; an OCO as its list).
    pub(super) fn query_order(&self, client_order_id: &str) -> Option<OrderReport> {
        let st = self.lock();
        st.core
            .order_by_client(ACCOUNT, client_order_id)
            .map(|o| o.report())
            .or_else(|| st.core.list_by_client(ACCOUNT, client_order_id).and_then(|l| list_report(&st.core, l)))
    }

    /// Open orders, of one symbol or all, oldest first (an OCO once, as its list).
    pub(super) fn open_orders(&self, symbol: Option<&Symbol>) -> Vec<OrderReport> {
        let st = self.lock();
        let mut open: Vec<(u64, OrderReport)> = Vec::new();
        for o in st.core.open_orders(ACCOUNT, symbol.map(|s| s.as_str())) {
            match o.list_id.and_then(|id| st.core.list(id)) {
                Some(l) if open.iter().any(|(id, _)| *id == l.list_id) => {}
                Some(l) => open.extend(list_report(&st.core, l).map(|r| (l.list_id, r))),
                None => open.push((o.order_id, o.report())),
            }
        }
        open.sort_by_key(|(id, _)| *id);
        open.into_iter().map(|(_, r)| r).collect()
    }

    /// The account's balances.
    pub(super) fn balances(&self) -> Vec<Balance> {
        self.lock().core.balances(ACCOUNT).unwrap_or_default()
    }

    /// Own fills in `symbol` from the cursor's trade on.
    pub(super) fn my_trades(&self, symbol: &Symbol, since: Option<&FillCursor>) -> Vec<Fill> {
        let st = self.lock();
        let fills = st.core.fills(ACCOUNT, symbol, since.and_then(|c| c.trade_id.as_u64()));
        fills.into_iter().map(|f| as_list_fill(&st.core, f)).collect()
    }

    /// The instruments and their filters.
    pub(super) fn instruments(&self) -> Vec<Instrument> {
        self.lock().core.instruments().cloned().collect()
    }

    /// The symbol's best bid and ask, or a -1121 reject with `missing` as its reason.
    pub(super) fn best_bid_ask(&self, symbol: &Symbol, missing: impl FnOnce() -> String) -> VenueResult<BookTicker> {
        self.lock().core.quote(symbol).cloned().ok_or_else(|| VenueError::Rejected { code: -1121, reason: missing() })
    }

    /// A new user-data subscription (connected at once: the account is here).
    pub(super) fn subscribe_user(&self) -> mpsc::Receiver<UserEvent> {
        let (tx, rx) = mpsc::channel(4096);
        let _ = tx.try_send(UserEvent::Status(StreamStatus::Connected));
        self.lock().user_subs.push(tx);
        rx
    }
}

/// What the user stream reports of executions: each fill, each order's
/// state, then the account's balances. A leg's fill is its list's; a list's
/// state is reported once, after the last of its legs' executions.
fn user_events(core: &MatchingCore, executions: Vec<Execution>) -> Vec<UserEvent> {
    let mut events = Vec::new();
    let last_of_list = |k: usize, list_id: u64| !executions[k + 1..].iter().any(|e| e.order.list_id == Some(list_id));
    for (k, ex) in executions.iter().enumerate() {
        let list = ex.order.list_id.and_then(|id| core.list(id));
        if let Some(fill) = &ex.fill {
            events.push(UserEvent::Fill(as_list_fill(core, fill.clone())));
        }
        match list {
            Some(l) if last_of_list(k, l.list_id) => events.extend(list_report(core, l).map(UserEvent::Order)),
            Some(_) => {}
            None => events.push(UserEvent::Order(ex.order.report())),
        }
    }
    if let Some(balances) = core.balances(ACCOUNT) {
        events.push(UserEvent::Balances(balances));
    }
    events
}

/// Sends user events, then market events, to their subscribers.
pub(super) async fn deliver(market: Vec<(mpsc::Sender<MarketFeed>, MarketFeed)>, user: Deliveries) {
    // User events first: a fill must never wait behind market data.
    for (tx, ev) in user {
        let _ = tx.send(ev).await;
    }
    for (tx, ev) in market {
        let _ = tx.send(ev).await;
    }
}

/// An OCO's list as one order (see [`oco::list_report`]); `None` when a leg
/// is no longer known.
fn list_report(core: &MatchingCore, list: &SimList) -> Option<OrderReport> {
    let (below, above) = (core.order(list.below)?.report(), core.order(list.above)?.report());
    let above_is_tp = oco::leg_of(&above.client_order_id).is_some_and(|(_, leg)| leg == OcoLeg::TakeProfit);
    let (tp, stop) = if above_is_tp { (above, below) } else { (below, above) };
    Some(oco::list_report(&list.list_client_order_id, &list.list_id.to_string(), &tp, &stop))
}

/// A fill as Keel knows it: a leg's fill carries its list's client order id.
fn as_list_fill(core: &MatchingCore, mut fill: Fill) -> Fill {
    let list = fill
        .trade_id
        .as_u64()
        .and_then(|t| core.order_of_trade(fill.symbol.as_str(), t))
        .and_then(|o| o.list_id)
        .and_then(|id| core.list(id));
    if let Some(l) = list {
        fill.client_order_id.clone_from(&l.list_client_order_id);
    }
    fill
}

/// A cancel of an order that is already final, as Binance refuses it.
fn already_final(status: crate::order::OrderStatus) -> VenueError {
    VenueError::Rejected { code: -2011, reason: format!("Unknown order sent. (order is {status:?})") }
}

/// A matching error as the venue interface reports it (Binance's codes).
fn match_error(e: MatchError) -> VenueError {
    match e {
        MatchError::UnknownOrder => VenueError::NotFound,
        other => {
            let code = match &other {
                MatchError::Filter(_) => -1013,
                MatchError::Unsupported(what) if *what == OCO_BAD_PRICES => {
                    return VenueError::Rejected {
                        code: -2010,
                        reason: "The relationship of the prices for the orders is not correct.".into(),
                    }
                }
                MatchError::UnknownSymbol(_) => -1121,
                _ => -2010,
            };
            VenueError::Rejected { code, reason: other.to_string() }
        }
    }
}
