//! Binance's order lists on the sandbox: one-cancels-the-other pairs placed
//! through `POST /api/v3/orderList/oco`, cancelled through
//! `DELETE /api/v3/orderList` (or a cancel of either leg), and listed through
//! `GET /api/v3/orderList`, `GET /api/v3/openOrderList` and
//! `GET /api/v3/allOrderList`. The legs are orders with their `orderListId`
//! (in order queries, open orders, trades and execution reports); the user
//! stream tells each list's state as `listStatus`. The matching (one lock,
//! the sibling expired when a leg trades or triggers) is the core's
//! (`keel_core::sim::matching::list`). The deprecated `POST /api/v3/order/oco`
//! is not served, as on the spot testnet.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::instrument::Instrument;
use keel_core::order::{OrderType, Side, TimeInForce};
use keel_core::sim::{Execution, MatchingCore, NewLeg, NewOrderList, SimList, SimOrder};
use keel_core::symbol::Symbol;

use super::exchange::{execution_report, order_json, order_response, Reject, UserMsg};
use super::limits;
use super::rest::{client_id, instrument, self_trade_prevention, Params, TimeWindow};
use super::App;

/// Open order lists an account may have on a symbol (Binance's
/// `MAX_NUM_ORDER_LISTS` filter, shown in exchangeInfo).
pub(crate) const MAX_NUM_ORDER_LISTS: usize = 20;

/// The parameters `POST /api/v3/orderList/oco` reads.
const OCO_PARAMS: &[&str] = &[
    "symbol",
    "listClientOrderId",
    "side",
    "quantity",
    "aboveType",
    "aboveClientOrderId",
    "aboveIcebergQty",
    "abovePrice",
    "aboveStopPrice",
    "aboveTrailingDelta",
    "aboveTimeInForce",
    "aboveStrategyId",
    "aboveStrategyType",
    "abovePegPriceType",
    "abovePegOffsetType",
    "abovePegOffsetValue",
    "belowType",
    "belowClientOrderId",
    "belowIcebergQty",
    "belowPrice",
    "belowStopPrice",
    "belowTrailingDelta",
    "belowTimeInForce",
    "belowStrategyId",
    "belowStrategyType",
    "belowPegPriceType",
    "belowPegOffsetType",
    "belowPegOffsetValue",
    "newOrderRespType",
    "selfTradePreventionMode",
    "recvWindow",
    "timestamp",
    "signature",
];

/// One parsed leg: the order to give the core, and whether it takes the
/// profit (`LIMIT_MAKER`, `TAKE_PROFIT[_LIMIT]`) or stops the loss.
struct Leg {
    leg: NewLeg,
    take_profit: bool,
    limit: bool,
}

fn mandatory(name: &str) -> Reject {
    Reject::new(-1102, format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."))
}

fn not_required(name: &str) -> Reject {
    Reject::new(-1106, format!("Parameter '{name}' sent when not required."))
}

/// Parses the `above…` or `below…` leg.
fn parse_leg(app: &App, p: &Params, prefix: &str, inst: &Instrument) -> Result<Leg, Reject> {
    let name = |k: &str| format!("{prefix}{k}");
    let kind = p.get(&name("Type")).ok_or_else(|| mandatory(&name("Type")))?;
    if p.get(&name("IcebergQty")).is_some() {
        return Err(Reject::new(-2010, "Iceberg orders are not supported for this symbol."));
    }
    if p.get(&name("TrailingDelta")).is_some() {
        return Err(Reject::new(-2010, "Trailing stop orders are not supported for this symbol."));
    }
    if ["PegPriceType", "PegOffsetType", "PegOffsetValue"].iter().any(|k| p.get(&name(k)).is_some()) {
        return Err(Reject::new(-2010, "Pegged orders are not supported for this symbol."));
    }
    let price = p.dec(&name("Price"))?;
    let stop = p.dec(&name("StopPrice"))?;
    let tif = match p.get(&name("TimeInForce")) {
        None => None,
        Some("GTC") => Some(TimeInForce::Gtc),
        Some("IOC") => Some(TimeInForce::Ioc),
        Some("FOK") => Some(TimeInForce::Fok),
        Some(_) => return Err(Reject::new(-1115, "Invalid timeInForce.")),
    };
    let need = |v: Option<Decimal>, k: &str| v.ok_or_else(|| mandatory(&name(k)));
    let (order_type, tif, take_profit) = match kind {
        "LIMIT_MAKER" => {
            if stop.is_some() {
                return Err(not_required(&name("StopPrice")));
            }
            (OrderType::Limit { price: need(price, "Price")? }, TimeInForce::Gtc, true)
        }
        "STOP_LOSS" | "TAKE_PROFIT" => {
            if price.is_some() {
                return Err(not_required(&name("Price")));
            }
            if tif.is_some() {
                return Err(not_required(&name("TimeInForce")));
            }
            (OrderType::StopMarket { stop: need(stop, "StopPrice")? }, TimeInForce::Gtc, kind == "TAKE_PROFIT")
        }
        "STOP_LOSS_LIMIT" | "TAKE_PROFIT_LIMIT" => {
            let order_type = OrderType::StopLimit { stop: need(stop, "StopPrice")?, price: need(price, "Price")? };
            let tif = tif.ok_or_else(|| mandatory(&name("TimeInForce")))?;
            (order_type, tif, kind == "TAKE_PROFIT_LIMIT")
        }
        _ => return Err(Reject::new(-1158, "Order type not supported in OCO.")),
    };
    for px in [order_type.limit_price(), order_type.stop_price()].into_iter().flatten() {
        if !inst.tick_size.is_zero() && !(px % inst.tick_size).is_zero() {
            return Err(Reject::new(-1013, "Filter failure: PRICE_FILTER"));
        }
    }
    let client_order_id = match p.get(&name("ClientOrderId")) {
        Some(c) => client_id(&name("ClientOrderId"), c)?.to_string(),
        None => app.ex.lock().auto_client_id(),
    };
    let limit = matches!(order_type, OrderType::Limit { .. });
    Ok(Leg { leg: NewLeg { client_order_id, order_type, tif }, take_profit, limit })
}

/// Where each kind of leg must lie (errors.md `-1165`…`-1199`): for a sell
/// the take-profit above and the stop-loss below, for a buy the other way.
fn check_sides(side: Side, above: &Leg, below: &Leg) -> Result<(), Reject> {
    if above.limit && below.limit {
        return Err(Reject::new(-1168, "At least one OCO order must be contingent."));
    }
    let (profit_side, loss_side, limit_msg, tp_msg, sl_msg) = match side {
        Side::Sell => (
            above,
            below,
            (-1166, "A limit order in a sell OCO must be above."),
            (-1199, "A take profit order in a sell OCO must be above."),
            (-1197, "A stop loss order in a sell OCO must be below."),
        ),
        Side::Buy => (
            below,
            above,
            (-1165, "A limit order in a buy OCO must be below."),
            (-1198, "A take profit order in a buy OCO must be below."),
            (-1196, "A stop loss order in a buy OCO must be above."),
        ),
    };
    let refuse = |(code, msg): (i64, &str)| Err(Reject::new(code, msg));
    if loss_side.limit {
        return refuse(limit_msg);
    }
    if loss_side.take_profit {
        return refuse(tp_msg);
    }
    if !profit_side.take_profit {
        return refuse(sl_msg);
    }
    Ok(())
}

/// A refusal and its `Retry-After` (seconds), if any.
type Refused = (Reject, Option<u64>);

/// `POST /api/v3/orderList/oco`: the list (with its legs' `orderReports`)
/// and the order counts after it.
pub(crate) fn place_oco(app: &App, p: &Params, account: u32, now: i64) -> Result<(Value, (u64, u64)), Refused> {
    let no_wait = |r: Reject| (r, None);
    if app.ex.keys.values().any(|k| k.id == account && !k.can_trade) {
        return Err(no_wait(Reject::new(-2010, "This action is disabled on this account.")));
    }
    p.all_read(OCO_PARAMS).map_err(no_wait)?;
    let symbol = p.req("symbol").map_err(no_wait)?;
    self_trade_prevention(p).map_err(no_wait)?;
    let inst = instrument(app, symbol).map_err(no_wait)?;
    let side = match p.req("side").map_err(no_wait)? {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => return Err(no_wait(Reject::new(-1117, "Invalid side."))),
    };
    let qty = p.dec("quantity").map_err(no_wait)?.ok_or_else(|| no_wait(mandatory("quantity")))?;
    let above = parse_leg(app, p, "above", &inst).map_err(no_wait)?;
    let below = parse_leg(app, p, "below", &inst).map_err(no_wait)?;
    check_sides(side, &above, &below).map_err(no_wait)?;
    if !inst.step_size.is_zero() && !(qty % inst.step_size).is_zero() {
        return Err(no_wait(Reject::new(-1013, "Filter failure: LOT_SIZE")));
    }
    let resp_type = match p.get("newOrderRespType") {
        Some(t @ ("ACK" | "RESULT" | "FULL")) => t.to_string(),
        Some(_) => {
            return Err(no_wait(Reject::new(-1100, "Illegal characters found in parameter 'newOrderRespType'.")))
        }
        None => "FULL".to_string(),
    };
    let list_client_order_id = match p.get("listClientOrderId") {
        Some(c) => client_id("listClientOrderId", c).map_err(no_wait)?.to_string(),
        None => app.ex.lock().auto_client_id(),
    };
    {
        let st = app.ex.lock();
        let core = st.core();
        let open = core.open_orders(account, Some(symbol)).len();
        if inst.max_num_orders > 0 && open + 2 > inst.max_num_orders as usize {
            return Err(no_wait(Reject::new(-1013, "Filter failure: MAX_NUM_ORDERS")));
        }
        let lists = core.lists_of(account).filter(|l| l.symbol.as_str() == symbol && core.list_is_open(l)).count();
        if lists >= MAX_NUM_ORDER_LISTS {
            return Err(no_wait(Reject::new(-1013, "Filter failure: MAX_NUM_ORDER_LISTS")));
        }
    }
    // An OCO adds two orders to the unfilled-order count.
    let mut counts = (0, 0);
    for _ in 0..2 {
        counts = app.limits.count_order(account, now).map_err(|(r, wait)| (r, Some(limits::retry_after_s(wait))))?;
    }
    let new = NewOrderList {
        account,
        list_client_order_id,
        symbol: Symbol::new(symbol),
        side,
        qty,
        above: above.leg,
        below: below.leg,
    };
    let mut st = app.ex.lock();
    let placed = st.place_list(new, now).map_err(no_wait)?;
    // Binance reports each leg as NEW, then the list, then what executed.
    for leg in &placed.legs {
        let mut first = leg.clone();
        first.status = keel_core::order::OrderStatus::Accepted;
        let event = execution_report(&Execution { order: first, fill: None }, now, Some("NEW"));
        let _ = app.ex.user_tx.send(Arc::new(UserMsg { account, event }));
    }
    let event = list_status_event(st.core(), &placed.list, now);
    let _ = app.ex.user_tx.send(Arc::new(UserMsg { account, event }));
    st.publish_executions(&app.ex.user_tx, &placed.executions, now);
    if placed.executions.is_empty() {
        let assets = [inst.base_asset.clone(), inst.quote_asset.clone()];
        st.publish_balances(&app.ex.user_tx, account, &assets, now);
    }
    let legs: Vec<SimOrder> =
        placed.list.legs().iter().filter_map(|id| st.core().order(*id).cloned()).collect::<Vec<_>>();
    let mut v = list_json(st.core(), &placed.list);
    if let Value::Object(m) = &mut v {
        let reports = legs
            .iter()
            .map(|o| {
                let execs: Vec<Execution> =
                    placed.executions.iter().filter(|e| e.order.order_id == o.order_id).cloned().collect();
                order_response(o, &execs, &resp_type, now)
            })
            .collect();
        m.insert("orderReports".into(), Value::Array(reports));
    }
    Ok((v, counts))
}

/// The list an `orderListId` and/or a client id (`id_key`) name, by id
/// first and the client id then checked against it.
fn find_list<'a>(core: &'a MatchingCore, p: &Params, account: u32, cid_key: &str) -> Result<&'a SimList, Reject> {
    let by_id = p.int("orderListId")?;
    let cid = p.get(cid_key);
    let list = match (by_id, cid) {
        (Some(id), _) => core.list(id.max(0) as u64).filter(|l| l.account == account),
        (None, Some(c)) => core.list_by_client(account, c),
        (None, None) => {
            return Err(Reject::new(
                -1102,
                format!("Param '{cid_key}' or 'orderListId' must be sent, but both were empty/null!"),
            ))
        }
    };
    let list = list.ok_or_else(|| Reject::new(-2011, "Unknown order sent."))?;
    if cid.is_some_and(|c| c != list.list_client_order_id) {
        return Err(Reject::new(-2011, "Unknown order sent."));
    }
    Ok(list)
}

/// `DELETE /api/v3/orderList`.
pub(crate) fn cancel(app: &App, p: &Params, account: u32, now: i64) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    instrument(app, symbol)?;
    let cancel_id = p.get("newClientOrderId").map(|c| client_id("newClientOrderId", c)).transpose()?;
    let list_id = {
        let st = app.ex.lock();
        let list = find_list(st.core(), p, account, "listClientOrderId")?;
        if list.symbol.as_str() != symbol {
            return Err(Reject::new(-2011, "Unknown order sent."));
        }
        list.list_id
    };
    cancel_by_id(app, account, list_id, cancel_id, now)
}

/// Cancels an open list (both legs) and answers as `DELETE /api/v3/orderList`
/// does; a cancel of either leg through `DELETE /api/v3/order` lands here too.
pub(crate) fn cancel_by_id(
    app: &App,
    account: u32,
    list_id: u64,
    cancel_id: Option<&str>,
    now: i64,
) -> Result<Value, Reject> {
    let mut st = app.ex.lock();
    let cancel_id = cancel_id.map(str::to_string).unwrap_or_else(|| st.auto_client_id());
    let legs = st.cancel_list(account, list_id, now).map_err(|_| Reject::new(-2011, "Unknown order sent."))?;
    let mut reports = Vec::new();
    for o in &legs {
        let mut report = execution_report(&Execution { order: o.clone(), fill: None }, now, Some("CANCELED"));
        if let Value::Object(m) = &mut report {
            m.insert("c".into(), Value::String(cancel_id.clone()));
            m.insert("C".into(), Value::String(o.client_order_id.clone()));
        }
        let _ = app.ex.user_tx.send(Arc::new(UserMsg { account, event: report }));
        let mut v = order_json(o);
        if let Value::Object(m) = &mut v {
            m.insert("origClientOrderId".into(), Value::String(o.client_order_id.clone()));
            m.insert("clientOrderId".into(), Value::String(cancel_id.clone()));
            m.insert("transactTime".into(), json!(now));
            for k in ["icebergQty", "time", "updateTime", "isWorking", "workingTime"] {
                m.remove(k);
            }
        }
        reports.push(v);
    }
    let list = st.core().list(list_id).cloned().ok_or_else(|| Reject::new(-2011, "Unknown order sent."))?;
    let event = list_status_event(st.core(), &list, now);
    let _ = app.ex.user_tx.send(Arc::new(UserMsg { account, event }));
    if let Some(inst) = st.core().instrument(list.symbol.as_str()) {
        let assets = [inst.base_asset.clone(), inst.quote_asset.clone()];
        st.publish_balances(&app.ex.user_tx, account, &assets, now);
    }
    let mut v = list_json(st.core(), &list);
    if let Value::Object(m) = &mut v {
        m.insert("orderReports".into(), Value::Array(reports));
    }
    Ok(v)
}

/// `GET /api/v3/orderList`.
pub(crate) fn query(app: &App, p: &Params, account: u32) -> Result<Value, Reject> {
    let st = app.ex.lock();
    let list = find_list(st.core(), p, account, "origClientOrderId").map_err(|r| {
        if r.code == -2011 {
            Reject::new(-2013, "Order list does not exist.")
        } else {
            r
        }
    })?;
    Ok(list_json(st.core(), list))
}

/// `GET /api/v3/openOrderList`.
pub(crate) fn open(app: &App, account: u32) -> Value {
    let st = app.ex.lock();
    let core = st.core();
    Value::Array(core.lists_of(account).filter(|l| core.list_is_open(l)).map(|l| list_json(core, l)).collect())
}

/// `GET /api/v3/allOrderList`: by first list id, or a time window (not both).
pub(crate) fn all(app: &App, p: &Params, account: u32) -> Result<Value, Reject> {
    let window = TimeWindow::of(p)?;
    let from_id = p.int("fromId")?;
    if window.is_set() && from_id.is_some() {
        return Err(Reject::new(-1128, "Combination of optional parameters invalid."));
    }
    let limit = p.int("limit")?.unwrap_or(500).clamp(1, 1000) as usize;
    let st = app.ex.lock();
    let core = st.core();
    let chosen: Vec<Value> = core
        .lists_of(account)
        .filter(|l| from_id.is_none_or(|id| l.list_id as i64 >= id) && window.holds(l.created_ms))
        .map(|l| list_json(core, l))
        .collect();
    Ok(Value::Array(window.page(chosen, limit, from_id.is_some())))
}

/// A list's `listStatusType` and `listOrderStatus`: executing until a leg
/// executed or both ended.
fn statuses(core: &MatchingCore, list: &SimList) -> (&'static str, &'static str) {
    if list.executed.is_none() && core.list_is_open(list) {
        ("EXEC_STARTED", "EXECUTING")
    } else {
        ("ALL_DONE", "ALL_DONE")
    }
}

/// The legs as a list names them: below first.
fn leg_refs(core: &MatchingCore, list: &SimList, keys: [&str; 3]) -> Vec<Value> {
    list.legs()
        .iter()
        .filter_map(|id| core.order(*id))
        .map(|o| json!({keys[0]: o.symbol.as_str(), keys[1]: o.order_id, keys[2]: o.client_order_id}))
        .collect()
}

/// A list as the REST API shows it (without `orderReports`).
pub(crate) fn list_json(core: &MatchingCore, list: &SimList) -> Value {
    let (status_type, order_status) = statuses(core, list);
    json!({
        "orderListId": list.list_id,
        "contingencyType": "OCO",
        "listStatusType": status_type,
        "listOrderStatus": order_status,
        "listClientOrderId": list.list_client_order_id,
        "transactionTime": list.updated_ms,
        "symbol": list.symbol.as_str(),
        "orders": leg_refs(core, list, ["symbol", "orderId", "clientOrderId"]),
    })
}

/// The user stream's `listStatus` event of a list.
pub(crate) fn list_status_event(core: &MatchingCore, list: &SimList, now_ms: i64) -> Value {
    let (status_type, order_status) = statuses(core, list);
    json!({
        "e": "listStatus",
        "E": now_ms,
        "s": list.symbol.as_str(),
        "g": list.list_id,
        "c": "OCO",
        "l": status_type,
        "L": order_status,
        "r": "NONE",
        "C": list.list_client_order_id,
        "T": list.updated_ms,
        "O": leg_refs(core, list, ["s", "i", "c"]),
    })
}
