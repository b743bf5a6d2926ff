//! Coinbase orders on the shared matching core (§4.8–4.14, §5):
//! create (`market_market_ioc`, `limit_limit_gtc`, `sor_limit_ioc`,
//! `limit_limit_fok`), idempotent by `client_order_id`; order-level
//! rejections answered HTTP 200 `success:false` with the documented reasons,
//! checked in the reference's order (product → trading → sizes → precision
//! → min/max → post-only → funds); cancels queued (`CANCEL_QUEUED`) and
//! done at the next market tick; get, list and fills with cursor paging.
//!
//! Fees are always in the quote currency (each order asks the core for it).
//! A quote-sized market buy includes its fee: it buys
//! `quote_size / (1 + taker rate)` worth at the ask, floored to the step.
//! Holds are the core's: a buy locks `price × size × (1 + fee rate)`.

use axum::http::StatusCode;
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::fill::Fill;
use keel_core::instrument::Instrument;
use keel_core::order::{OrderStatus, OrderType, Side, TimeInForce};
use keel_core::sim::{NewOrder, OrderAsked, SimOrder};

use super::ids::{dec, decimal, entry_id, hashed_uuid, order_id_of, order_uuid, parse_rfc3339, product_id, rfc3339};
use super::rest::{error, instrument_of, invalid_argument, page, reply, unavailable, user_uuid, Query};
use crate::rest::ParsedOrder;
use crate::{App, OrderFault};

/// Most orders or fills a page.
const LIST_MAX: usize = 1000;

/// What a create request asked for, once read.
struct Asked {
    kind: &'static str,
    base_size: Option<Decimal>,
    quote_size: Option<Decimal>,
    limit_price: Option<Decimal>,
    post_only: bool,
}

/// An order-level rejection: HTTP 200, `success:false` (§4.8).
fn rejected(reason: &str, preview: Option<&str>, message: &str, config: &Value) -> Response {
    let mut err = json!({"error": reason, "message": message, "error_details": message,
                         "new_order_failure_reason": reason});
    if let Some(p) = preview {
        err["preview_failure_reason"] = p.into();
    }
    reply(
        StatusCode::OK,
        &json!({"success": false, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "",
                "error_response": err, "order_configuration": config}),
    )
}

/// The order's configuration as Coinbase echoes it.
fn configuration(o: &SimOrder) -> Value {
    let base = dec(o.qty);
    match (o.order_type, o.tif) {
        (OrderType::Market, _) => match o.asked.quote_order_qty {
            Some(q) => json!({"market_market_ioc": {"quote_size": dec(q)}}),
            None => json!({"market_market_ioc": {"base_size": base}}),
        },
        (OrderType::Limit { price }, TimeInForce::Ioc) => {
            json!({"sor_limit_ioc": {"base_size": base, "limit_price": dec(price)}})
        }
        (OrderType::Limit { price }, TimeInForce::Fok) => {
            json!({"limit_limit_fok": {"base_size": base, "limit_price": dec(price)}})
        }
        (t, _) => {
            json!({"limit_limit_gtc": {"base_size": base, "limit_price": dec(t.limit_price().unwrap_or_default()),
                                             "post_only": o.asked.post_only}})
        }
    }
}

fn success(o: &SimOrder, inst: &Instrument) -> Response {
    let id = order_uuid(o.order_id);
    let side = side_str(o.side);
    reply(
        StatusCode::OK,
        &json!({
            "success": true,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": id,
            "success_response": {"order_id": id, "product_id": product_id(inst), "side": side,
                                 "client_order_id": o.client_order_id, "attached_order_id": ""},
            "order_configuration": configuration(o),
        }),
    )
}

fn side_str(s: Side) -> &'static str {
    match s {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// Reads `order_configuration`: exactly one supported key.
fn read_config(config: &Value) -> Result<Asked, &'static str> {
    let Some(obj) = config.as_object().filter(|o| o.len() == 1) else {
        return Err("order_configuration must hold exactly one configuration");
    };
    let Some((key, v)) = obj.iter().next() else { return Err("order_configuration is empty") };
    let kind = match key.as_str() {
        "market_market_ioc" => "market_market_ioc",
        "limit_limit_gtc" => "limit_limit_gtc",
        "sor_limit_ioc" => "sor_limit_ioc",
        "limit_limit_fok" => "limit_limit_fok",
        _ => return Err("unsupported"),
    };
    // The gateway takes proto-JSON camelCase too (§3).
    let field = |snake: &str, camel: &str| v.get(snake).or_else(|| v.get(camel)).and_then(decimal);
    Ok(Asked {
        kind,
        base_size: field("base_size", "baseSize"),
        quote_size: field("quote_size", "quoteSize"),
        limit_price: field("limit_price", "limitPrice"),
        post_only: v.get("post_only").or_else(|| v.get("postOnly")).and_then(Value::as_bool).unwrap_or(false),
    })
}

/// `POST /orders` with the order faults scripted through
/// [`crate::FaultControl`]: a 503 before the order reaches the book, a 503
/// after it executed (outcome unknown: the client must reconcile by
/// `client_order_id`), an answer held after or a request held before.
pub(crate) async fn create_with_faults(app: &App, account: u32, body: &str, mut now: i64) -> Response {
    match app.faults.take_before_execute_fault() {
        Some(OrderFault::ErrorBeforeExecute) => return unavailable(),
        Some(OrderFault::DelayBeforeExecute { hold_ms }) => {
            tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
            now = app.faults.server_now_ms();
        }
        _ => {}
    }
    let answer = create(app, account, body, now);
    match app.faults.take_after_execute_fault() {
        Some(OrderFault::ErrorAfterExecute) => unavailable(),
        Some(OrderFault::TimeoutAfterExecute { hold_ms }) => {
            tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
            answer
        }
        _ => answer,
    }
}

/// Why an order (or a preview of one) is refused at the order level: the
/// create-order `new_order_failure_reason` and the preview enum's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// `error_response.error` / `new_order_failure_reason`.
    pub reason: &'static str,
    /// `preview_failure_reason` (a preview's `errs` entry).
    pub preview: Option<&'static str>,
    /// The message.
    pub message: String,
}

impl Refusal {
    fn new(reason: &'static str, preview: Option<&'static str>, message: &str) -> Self {
        Self { reason, preview, message: message.to_string() }
    }

    /// The create-order answer: HTTP 200, `success:false`.
    pub fn answer(&self, config: &Value) -> Response {
        rejected(self.reason, self.preview, &self.message, config)
    }
}

/// A create or preview body that cannot be checked at all (HTTP 400), or
/// an order refused at the order level (HTTP 200).
pub(crate) enum Bad {
    /// HTTP 400 `INVALID_ARGUMENT` with this message.
    Invalid(String),
    /// Refused.
    Refused(Refusal),
}

/// An order read and checked up to what only the book and the balances
/// decide (funds, post-only, liquidity).
pub(crate) struct Checked {
    /// The product.
    pub inst: Instrument,
    /// Side.
    pub side: Side,
    /// Base quantity (for a quote-sized market buy, what the quote buys at
    /// the touch after the fee).
    pub qty: Decimal,
    /// The limit price, or the touch a market order would take.
    pub reference: Decimal,
    /// A market buy's `quote_size`.
    pub quote: Option<Decimal>,
    /// The core's type and time in force.
    pub order_type: OrderType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Post-only.
    pub post_only: bool,
}

/// Reads and checks an order body (create and preview), in the reference's
/// order: side → configuration → product → trading → sizes → precision →
/// min/max.
pub(crate) fn check(app: &App, req: &Value) -> Result<Checked, Bad> {
    let text = |k: &str| req.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let config = req.get("order_configuration").cloned().unwrap_or(Value::Null);
    let refuse = |reason, preview, msg: &str| Err(Bad::Refused(Refusal::new(reason, preview, msg)));
    let Some(pid) = text("product_id") else { return Err(Bad::Invalid("product_id is required".into())) };
    let side = match text("side") {
        Some("BUY") => Side::Buy,
        Some("SELL") => Side::Sell,
        _ => return refuse("INVALID_SIDE", None, "side must be BUY or SELL"),
    };
    let asked = match read_config(&config) {
        Ok(a) => a,
        Err("unsupported") => {
            return refuse(
                "UNSUPPORTED_ORDER_CONFIGURATION",
                Some("PREVIEW_INVALID_ORDER_CONFIG"),
                "this order configuration is not supported by the sandbox",
            )
        }
        Err(why) => return Err(Bad::Invalid(why.into())),
    };
    let Some(inst) = instrument_of(app, pid) else {
        return refuse("INVALID_PRODUCT_ID", Some("PREVIEW_INVALID_PRODUCT_ID"), "invalid product_id");
    };
    if !inst.status.is_trading() {
        return refuse("TRADING_DISABLED", None, "trading is disabled for this product");
    }
    let market = asked.kind == "market_market_ioc";
    let size = |reason, preview, msg: &str| Err(Bad::Refused(Refusal::new(reason, Some(preview), msg)));

    // Sizes present, one of them.
    let (base, quote) = (asked.base_size, asked.quote_size);
    if market && base.is_none() && quote.is_none() {
        return refuse("INVALID_REQUEST", None, "Market orders cannot be placed with empty order sizes");
    }
    if base.is_some() && quote.is_some() {
        return Err(Bad::Invalid("only one of base_size and quote_size may be given".into()));
    }
    if !market && (base.is_none() || asked.limit_price.is_none()) {
        return Err(Bad::Invalid("limit orders need base_size and limit_price".into()));
    }
    if quote.is_some() && (!market || side == Side::Sell) {
        return size("UNKNOWN_FAILURE_REASON", "PREVIEW_INVALID_ORDER_CONFIG", "quote_size is for market buys only");
    }

    // Precision.
    if let Some(b) = base {
        if b <= Decimal::ZERO || (!inst.step_size.is_zero() && !(b % inst.step_size).is_zero()) {
            return size("INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION", "Invalid size precision");
        }
    }
    if let Some(q) = quote {
        if q <= Decimal::ZERO || (!inst.tick_size.is_zero() && !(q % inst.tick_size).is_zero()) {
            return size(
                "INVALID_SIZE_PRECISION",
                "PREVIEW_INVALID_QUOTE_SIZE_PRECISION",
                "Invalid quote size precision",
            );
        }
    }
    if let Some(p) = asked.limit_price {
        if p <= Decimal::ZERO || (!inst.tick_size.is_zero() && !(p % inst.tick_size).is_zero()) {
            return size("INVALID_PRICE_PRECISION", "PREVIEW_INVALID_PRICE_PRECISION", "Invalid price precision");
        }
    }

    // Min and max, on size and notional.
    let touch = app.ex.lock().quote(inst.symbol.as_str());
    let reference = asked.limit_price.or_else(|| touch.as_ref().map(|t| if side == Side::Buy { t.ask } else { t.bid }));
    let Some(reference) = reference.filter(|p| !p.is_zero()) else {
        return refuse("INVALID_NO_LIQUIDITY", Some("PREVIEW_INVALID_NO_LIQUIDITY"), "no liquidity");
    };
    let taker = app.ex.fees.taker_bps / Decimal::from(10_000);
    let qty = match (base, quote) {
        (Some(b), _) => b,
        // The fee comes out of quote_size.
        (None, Some(q)) => keel_core::instrument::floor_to_step(q / (Decimal::ONE + taker) / reference, inst.step_size),
        (None, None) => Decimal::ZERO,
    };
    let notional = quote.unwrap_or(qty * reference);
    check_limits(&inst, base, notional, qty).map_err(Bad::Refused)?;

    let (order_type, tif) = match asked.kind {
        "market_market_ioc" => (OrderType::Market, TimeInForce::Ioc),
        "sor_limit_ioc" => (OrderType::Limit { price: reference }, TimeInForce::Ioc),
        "limit_limit_fok" => (OrderType::Limit { price: reference }, TimeInForce::Fok),
        _ => (OrderType::Limit { price: reference }, TimeInForce::Gtc),
    };
    Ok(Checked { inst, side, qty, reference, quote, order_type, tif, post_only: asked.post_only })
}

/// The product's minimum and maximum base size (when sized in base) and
/// notional, and a size that rounds to nothing.
pub(crate) fn check_limits(
    inst: &Instrument,
    base: Option<Decimal>,
    notional: Decimal,
    qty: Decimal,
) -> Result<(), Refusal> {
    let refuse = |preview, msg| Err(Refusal::new("UNKNOWN_FAILURE_REASON", Some(preview), msg));
    if base.is_some_and(|b| b < inst.min_qty) {
        return refuse("PREVIEW_INVALID_BASE_SIZE_TOO_SMALL", "Order size is too small");
    }
    if base.is_some_and(|b| !inst.max_qty.is_zero() && b > inst.max_qty) {
        return refuse("PREVIEW_INVALID_BASE_SIZE_TOO_LARGE", "Order size is too large");
    }
    if notional < inst.min_notional || qty.is_zero() {
        return refuse("PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL", "Order notional is too small");
    }
    if !inst.max_notional.is_zero() && notional > inst.max_notional {
        return refuse("PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE", "Order notional is too large");
    }
    Ok(())
}

/// The refusal of a core error, in the exchange's own wording.
pub(crate) fn refusal_of(msg: &str) -> Refusal {
    if msg.contains("insufficient balance") {
        Refusal::new("INSUFFICIENT_FUND", Some("PREVIEW_INSUFFICIENT_FUND"), "Insufficient balance in source account")
    } else if msg.contains("would immediately match") {
        Refusal::new(
            "INVALID_LIMIT_PRICE_POST_ONLY",
            Some("PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"),
            "Post-only order would cross the book",
        )
    } else if msg.contains("Market is closed") {
        Refusal::new("INVALID_NO_LIQUIDITY", Some("PREVIEW_INVALID_NO_LIQUIDITY"), "no liquidity")
    } else {
        Refusal::new("UNKNOWN_FAILURE_REASON", None, msg)
    }
}

/// `POST /orders`.
fn create(app: &App, account: u32, body: &str, now: i64) -> Response {
    let Ok(req) = serde_json::from_str::<Value>(body) else { return invalid_argument("the body is not JSON") };
    let Some(cid) = req.get("client_order_id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        return invalid_argument("client_order_id is required");
    };
    let config = req.get("order_configuration").cloned().unwrap_or(Value::Null);

    // Idempotent: a known client_order_id returns its order, creates nothing.
    let existing = app.ex.lock().core().order_by_client(account, cid).cloned();
    if let Some(o) = existing {
        if let Some(inst) = app.ex.lock().core().instrument(o.symbol.as_str()).cloned() {
            return success(&o, &inst);
        }
    }
    let c = match check(app, &req) {
        Ok(c) => c,
        Err(Bad::Invalid(why)) => return invalid_argument(&why),
        Err(Bad::Refused(r)) => return r.answer(&config),
    };
    let market = c.order_type.is_market();
    let parsed = ParsedOrder {
        new: NewOrder {
            account,
            client_order_id: cid.to_string(),
            symbol: c.inst.symbol.clone(),
            side: c.side,
            order_type: c.order_type,
            qty: c.qty,
            tif: c.tif,
            asked: OrderAsked { quote_order_qty: c.quote, post_only: c.post_only, fee_in_quote: true },
        },
        resp_type: "FULL".into(),
        kind: if market {
            "MARKET"
        } else if c.post_only {
            "LIMIT_MAKER"
        } else {
            "LIMIT"
        }
        .into(),
    };
    match crate::rest::submit(app, &parsed, now) {
        Ok((order, _)) => success(&order, &c.inst),
        Err(r) => refusal_of(&r.msg).answer(&config),
    }
}

/// `POST /orders/batch_cancel`: each id's cancel is queued (`CANCEL_QUEUED`)
/// and done at the next market tick; `success:true` means accepted (§4.10).
pub(crate) fn batch_cancel(app: &App, account: u32, body: &str) -> Response {
    let Ok(req) = serde_json::from_str::<Value>(body) else { return invalid_argument("the body is not JSON") };
    let Some(ids) = req.get("order_ids").and_then(Value::as_array) else {
        return invalid_argument("order_ids is required");
    };
    let mut st = app.ex.lock();
    let results: Vec<Value> = ids
        .iter()
        .map(|v| {
            let uuid = v.as_str().unwrap_or("");
            let order = order_id_of(uuid).and_then(|id| st.core().order(id)).filter(|o| o.account == account).cloned();
            let reason = match order {
                None => Some("UNKNOWN_CANCEL_ORDER"),
                Some(o) if o.status == OrderStatus::Filled => Some("ORDER_IS_FULLY_FILLED"),
                Some(o) if !o.status.is_open() => Some("DUPLICATE_CANCEL_REQUEST"),
                Some(o) => (!st.queue_cancel(o.order_id)).then_some("DUPLICATE_CANCEL_REQUEST"),
            };
            json!({"success": reason.is_none(), "failure_reason": reason.unwrap_or("UNKNOWN_CANCEL_FAILURE_REASON"),
                   "order_id": uuid})
        })
        .collect();
    reply(StatusCode::OK, &json!({"results": results}))
}

/// An order's fills, oldest first.
fn fills_of(app: &App, o: &SimOrder) -> Vec<Fill> {
    let st = app.ex.lock();
    st.core()
        .fills(o.account, o.symbol.as_str(), None)
        .into_iter()
        .filter(|f| f.client_order_id == o.client_order_id)
        .collect()
}

/// Coinbase's status of an order (§5.1): no partially-filled status; the
/// unfilled rest of an IOC or FOK is `CANCELLED`.
fn status_of(o: &SimOrder, queued: bool) -> &'static str {
    match o.status {
        OrderStatus::New | OrderStatus::Submitted | OrderStatus::Accepted | OrderStatus::PartiallyFilled if queued => {
            "CANCEL_QUEUED"
        }
        OrderStatus::New | OrderStatus::Submitted | OrderStatus::Accepted | OrderStatus::PartiallyFilled => "OPEN",
        OrderStatus::Filled => "FILLED",
        OrderStatus::Canceled => "CANCELLED",
        OrderStatus::Expired if o.tif != TimeInForce::Gtc => "CANCELLED",
        OrderStatus::Expired => "EXPIRED",
        OrderStatus::Rejected => "FAILED",
        OrderStatus::Unknown => "UNKNOWN_ORDER_STATUS",
    }
}

/// The `Order` object of get and list (§4.12).
pub(crate) fn order_json(app: &App, o: &SimOrder) -> Value {
    let fills = fills_of(app, o);
    let queued = app.ex.lock().cancel_queued(o.order_id);
    let pid = app.ex.lock().core().instrument(o.symbol.as_str()).map(product_id).unwrap_or_default();
    let fees: Decimal = fills.iter().map(|f| f.fee).sum();
    let avg = if o.filled_qty.is_zero() { Decimal::ZERO } else { o.filled_quote / o.filled_qty };
    let pct = if o.qty.is_zero() { Decimal::ZERO } else { (o.filled_qty / o.qty * Decimal::ONE_HUNDRED).round_dp(2) };
    let after_fees = if o.side == Side::Buy { o.filled_quote + fees } else { o.filled_quote - fees };
    let status = status_of(o, queued);
    let mut j = json!({
        "order_id": order_uuid(o.order_id),
        "product_id": pid,
        "user_id": user_uuid(o.account),
        "order_configuration": configuration(o),
        "side": side_str(o.side),
        "client_order_id": o.client_order_id,
        "status": status,
        "time_in_force": match o.tif {
            TimeInForce::Gtc => "GOOD_UNTIL_CANCELLED",
            TimeInForce::Ioc => "IMMEDIATE_OR_CANCEL",
            TimeInForce::Fok => "FILL_OR_KILL",
        },
        "created_time": rfc3339(o.created_ms),
        "completion_percentage": dec(pct),
        "filled_size": dec(o.filled_qty),
        "average_filled_price": dec(avg),
        "fee": "",
        "number_of_fills": fills.len().to_string(),
        "filled_value": dec(o.filled_quote),
        "pending_cancel": queued && status == "CANCEL_QUEUED",
        "size_in_quote": o.asked.quote_order_qty.is_some(),
        "total_fees": dec(fees),
        "size_inclusive_of_fees": o.asked.quote_order_qty.is_some(),
        "total_value_after_fees": dec(after_fees),
        "trigger_status": "INVALID_ORDER_TYPE",
        "order_type": if o.order_type.is_market() { "MARKET" } else { "LIMIT" },
        "reject_reason": "REJECT_REASON_UNSPECIFIED",
        "settled": !o.status.is_open(),
        "product_type": "SPOT",
        "reject_message": "",
        "cancel_message": "",
        "order_placement_source": "RETAIL_ADVANCED",
        "outstanding_hold_amount": dec(o.locked),
        "last_fill_time": fills.last().map(|f| rfc3339(f.ts_ms)),
        "last_update_time": rfc3339(o.updated_ms),
        "edit_history": app.coinbase.edit_history(o.order_id),
    });
    // Absent rather than null before the first fill.
    if let (Some(map), None) = (j.as_object_mut(), fills.last()) {
        map.remove("last_fill_time");
    }
    j
}

/// `GET /orders/historical/{order_id}`.
pub(crate) fn get(app: &App, account: u32, uuid: &str) -> Response {
    let order =
        order_id_of(uuid).and_then(|id| app.ex.lock().core().order(id).cloned()).filter(|o| o.account == account);
    match order {
        Some(o) => reply(StatusCode::OK, &json!({"order": order_json(app, &o)})),
        None => error(StatusCode::NOT_FOUND, "NOT_FOUND", "order with this orderID was not found"),
    }
}

/// Every order of the account, newest first.
pub(crate) fn all_orders(app: &App, account: u32) -> Vec<SimOrder> {
    let st = app.ex.lock();
    let mut all: Vec<SimOrder> =
        st.symbols().into_iter().flat_map(|(s, _)| st.core().all_orders(account, &s)).collect();
    all.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.order_id.cmp(&a.order_id)));
    all
}

/// `GET /orders/historical/batch`: filters (`order_ids`, `product_ids` or
/// ccxt's singular `product_id`, `order_status`, `order_side`,
/// `order_types`, `time_in_forces`, `start_date`/`end_date`) and cursor paging.
pub(crate) fn list(app: &App, account: u32, q: &Query) -> Response {
    let (limit, cursor) = match (q.limit(100, LIST_MAX), q.cursor()) {
        (Ok(l), Ok(c)) => (l, c),
        (Err(r), _) | (_, Err(r)) => return invalid_argument(&r),
    };
    let date = |k: &str| match q.get(k) {
        None => Ok(None),
        Some(v) => parse_rfc3339(v).map(Some).ok_or_else(|| format!("{k} argument is invalid")),
    };
    let (start, end) = match (date("start_date"), date("end_date")) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(r), _) | (_, Err(r)) => return invalid_argument(&r),
    };
    let ids = q.all("order_ids");
    let mut products = q.all("product_ids");
    products.extend(q.all("product_id"));
    let statuses = q.all("order_status");
    let types = q.all("order_types");
    let tifs = q.all("time_in_forces");
    let side = q.get("order_side");
    let mut rows = Vec::new();
    for o in all_orders(app, account) {
        if start.is_some_and(|s| o.created_ms < s) || end.is_some_and(|e| o.created_ms >= e) {
            continue;
        }
        let j = order_json(app, &o);
        let field = |k: &str| j[k].as_str().unwrap_or("").to_string();
        let keep = (ids.is_empty() || ids.contains(&field("order_id")))
            && (products.is_empty() || products.contains(&field("product_id")))
            && (statuses.is_empty() || statuses.contains(&field("status")))
            && (types.is_empty() || types.contains(&field("order_type")))
            && (tifs.is_empty() || tifs.contains(&field("time_in_force")))
            && side.is_none_or(|s| s == field("side"));
        if keep {
            rows.push(j);
        }
    }
    let (list, next) = page(rows, cursor, limit);
    reply(
        StatusCode::OK,
        &json!({"orders": list, "sequence": "0", "has_next": !next.is_empty(), "cursor": next,
                "proof_token_required": false}),
    )
}

/// A fill as `/orders/historical/fills` lists it (§4.14): a UUID trade id,
/// the commission in the quote currency, `size` in quote units for a
/// quote-sized order.
fn fill_json(o: &SimOrder, pid: &str, f: &Fill) -> Value {
    let order_id = order_uuid(o.order_id);
    let trade_id = hashed_uuid(&["trade", o.symbol.as_str(), &f.trade_id.to_string(), &order_id]);
    let in_quote = o.asked.quote_order_qty.is_some();
    json!({
        "entry_id": entry_id(&["fill", &trade_id]),
        "trade_id": trade_id,
        "order_id": order_id,
        "trade_time": rfc3339(f.ts_ms),
        "trade_type": "FILL",
        "price": dec(f.price),
        "size": dec(if in_quote { f.price * f.qty } else { f.qty }),
        "commission": dec(f.fee),
        "product_id": pid,
        "sequence_timestamp": rfc3339(f.ts_ms),
        "liquidity_indicator": if f.is_maker { "MAKER" } else { "TAKER" },
        "size_in_quote": in_quote,
        "user_id": user_uuid(o.account),
        "side": side_str(f.side),
        "retail_portfolio_id": "",
    })
}

/// Every fill of the account with its order, newest first.
fn all_fills(app: &App, account: u32) -> Vec<(SimOrder, String, Fill)> {
    let st = app.ex.lock();
    let mut out = Vec::new();
    for (symbol, _) in st.symbols() {
        let pid = st.core().instrument(&symbol).map(product_id).unwrap_or_default();
        for f in st.core().fills(account, &symbol, None) {
            if let Some(o) = st.core().order_by_client(account, &f.client_order_id) {
                out.push((o.clone(), pid.clone(), f));
            }
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.2.ts_ms));
    out
}

/// `GET /orders/historical/fills`: `order_ids` alone, or `trade_ids`,
/// `product_ids` and the sequence-time window; cursor paging.
pub(crate) fn fills(app: &App, account: u32, q: &Query) -> Response {
    let (limit, cursor) = match (q.limit(100, LIST_MAX), q.cursor()) {
        (Ok(l), Ok(c)) => (l, c),
        (Err(r), _) | (_, Err(r)) => return invalid_argument(&r),
    };
    let ids = q.all("order_ids");
    let trades = q.all("trade_ids");
    let mut products = q.all("product_ids");
    products.extend(q.all("product_id"));
    let date = |k: &str| q.get(k).and_then(parse_rfc3339);
    let (start, end) = (date("start_sequence_timestamp"), date("end_sequence_timestamp"));
    if !ids.is_empty() && (!trades.is_empty() || !products.is_empty() || start.is_some() || end.is_some()) {
        return invalid_argument("cannot pass order_ids with other filters");
    }
    let rows: Vec<Value> = all_fills(app, account)
        .iter()
        .filter(|(_, _, f)| start.is_none_or(|s| f.ts_ms >= s) && end.is_none_or(|e| f.ts_ms < e))
        .map(|(o, pid, f)| fill_json(o, pid, f))
        .filter(|j| {
            let field = |k: &str| j[k].as_str().unwrap_or("").to_string();
            (ids.is_empty() || ids.contains(&field("order_id")))
                && (trades.is_empty() || trades.contains(&field("trade_id")))
                && (products.is_empty() || products.contains(&field("product_id")))
        })
        .collect();
    let (list, next) = page(rows, cursor, limit);
    reply(StatusCode::OK, &json!({"fills": list, "cursor": next, "has_next": !next.is_empty()}))
}

/// The account's traded notional and fees (quote units summed across
/// products, as the sandbox has no USD conversion).
pub(crate) fn totals(app: &App, account: u32) -> (Decimal, Decimal) {
    all_fills(app, account)
        .iter()
        .fold((Decimal::ZERO, Decimal::ZERO), |(v, fee), (_, _, f)| (v + f.price * f.qty, fee + f.fee))
}
