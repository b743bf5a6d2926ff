//! `POST /orders/edit` and `POST /orders/edit_preview` (§4.11): a new
//! price and size for an open GTC limit order (the SDK: "only limit order
//! types, with time in force type of good-till-cancelled can be edited").
//!
//! The body is `{order_id, price, size}`; the docs mark both required, ccxt
//! sends only the one it changes, so a missing one keeps the order's. The
//! answer is HTTP 200 `{success, errors:[{edit_failure_reason,
//! preview_failure_reason}]}` (a preview: the estimate and `errors`). An
//! edit changes the resting order in the matching core
//! ([`keel_core::sim::MatchingCore::amend`]): the hold follows the new
//! price and size, and the order loses its queue priority — the reference
//! finds no word on priority and says to assume it is lost. A marketable
//! new price trades at once. Each accepted edit is kept in the order's
//! `edit_history`.

use axum::http::StatusCode;
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::instrument::Instrument;
use keel_core::order::{OrderType, TimeInForce};
use keel_core::sim::{Execution, SimOrder};

use super::ids::{dec, decimal, order_id_of, rfc3339};
use super::orders::check_limits;
use super::preview::{estimate, Proposed};
use super::rest::{invalid_argument, reply};
use crate::App;

/// "No reason" in each of the two enums.
const NO_EDIT_FAILURE: &str = "UNKNOWN_EDIT_ORDER_FAILURE_REASON";
const NO_PREVIEW_FAILURE: &str = "UNKNOWN_PREVIEW_FAILURE_REASON";

/// Why an edit is refused: the edit enum's reason and the preview enum's.
type Refused = (&'static str, &'static str);

/// An edit that passed the checks.
struct Plan {
    order: SimOrder,
    inst: Instrument,
    price: Decimal,
    size: Decimal,
}

/// Reads the body: the order id, and the new price and size (`None`: keep).
fn read(body: &str) -> Result<(String, Option<Decimal>, Option<Decimal>), String> {
    let req: Value = serde_json::from_str(body).map_err(|_| "the body is not JSON".to_string())?;
    let id = req.get("order_id").and_then(Value::as_str).filter(|s| !s.is_empty());
    let Some(id) = id else { return Err("order_id is required".into()) };
    let field = |k: &str| match req.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v) => decimal(v).map(Some).ok_or_else(|| format!("{k} argument is invalid")),
    };
    let (price, size) = (field("price")?, field("size")?);
    if price.is_none() && size.is_none() {
        return Err("price or size is required".into());
    }
    Ok((id.to_string(), price, size))
}

/// The checks an edit and its preview share, in this order: the order
/// (found, open, a GTC limit), precision, the filled size, a change at
/// all, the product's limits, post-only. Funds are the core's (or the
/// preview's estimate).
fn plan(app: &App, account: u32, id: &str, price: Option<Decimal>, size: Option<Decimal>) -> Result<Plan, Refused> {
    let (order, queued, inst) = {
        let st = app.ex.lock();
        let order = order_id_of(id).and_then(|n| st.core().order(n)).filter(|o| o.account == account).cloned();
        let Some(order) = order else { return Err(("ORDER_NOT_FOUND", NO_PREVIEW_FAILURE)) };
        let inst = st.core().instrument(order.symbol.as_str()).cloned();
        (order.clone(), st.cancel_queued(order.order_id), inst)
    };
    let Some(inst) = inst else { return Err(("ORDER_NOT_FOUND", NO_PREVIEW_FAILURE)) };
    if !order.status.is_open() || queued {
        return Err(("ONLY_OPEN_ORDERS_CAN_BE_EDITED", NO_PREVIEW_FAILURE));
    }
    let OrderType::Limit { price: old_price } = order.order_type else {
        return Err(("ONLY_LIMIT_ORDER_EDITS_SUPPORTED", NO_PREVIEW_FAILURE));
    };
    if order.tif != TimeInForce::Gtc {
        return Err(("ONLY_LIMIT_ORDER_EDITS_SUPPORTED", NO_PREVIEW_FAILURE));
    }
    let (price, size) = (price.unwrap_or(old_price), size.unwrap_or(order.qty));
    let off_grid = |v: Decimal, step: Decimal| v <= Decimal::ZERO || (!step.is_zero() && !(v % step).is_zero());
    if off_grid(price, inst.tick_size) {
        return Err(("INVALID_EDITED_PRICE", "PREVIEW_INVALID_PRICE_PRECISION"));
    }
    if off_grid(size, inst.step_size) {
        return Err(("INVALID_EDITED_SIZE", "PREVIEW_INVALID_SIZE_PRECISION"));
    }
    if size <= order.filled_qty {
        return Err(("CANNOT_EDIT_TO_BELOW_FILLED_SIZE", NO_PREVIEW_FAILURE));
    }
    if price == old_price && size == order.qty {
        return Err(("EDIT_REQUEST_EQUAL_TO_ORIGINAL_REQUEST", NO_PREVIEW_FAILURE));
    }
    check_limits(&inst, Some(size), size * price, size)
        .map_err(|r| (NO_EDIT_FAILURE, r.preview.unwrap_or(NO_PREVIEW_FAILURE)))?;
    Ok(Plan { order, inst, price, size })
}

/// The order as the edit would leave it, for [`estimate`].
fn proposed(p: &Plan) -> Proposed {
    Proposed {
        side: p.order.side,
        qty: p.size - p.order.filled_qty,
        price: Some(p.price),
        tif: TimeInForce::Gtc,
        post_only: p.order.asked.post_only,
        locked: p.order.locked,
    }
}

fn errors(edit: &str, preview: &str) -> Value {
    json!([{"edit_failure_reason": edit, "preview_failure_reason": preview}])
}

fn failed((edit, preview): Refused) -> Response {
    reply(StatusCode::OK, &json!({"success": false, "errors": errors(edit, preview)}))
}

/// `POST /orders/edit`.
pub(crate) fn edit(app: &App, account: u32, body: &str, now: i64) -> Response {
    let (id, price, size) = match read(body) {
        Ok(r) => r,
        Err(why) => return invalid_argument(&why),
    };
    let p = match plan(app, account, &id, price, size) {
        Ok(p) => p,
        Err(r) => return failed(r),
    };
    // Post-only is the one refusal the core does not make itself.
    if let (_, Some(r @ "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY")) = estimate(app, account, &p.inst, &proposed(&p)) {
        return failed((NO_EDIT_FAILURE, r));
    }
    let mut st = app.ex.lock();
    let (order, execs) = match st.amend(account, p.order.order_id, p.price, p.size, now) {
        Ok(done) => done,
        Err(keel_core::sim::MatchError::InsufficientBalance { .. }) => {
            return failed((NO_EDIT_FAILURE, "PREVIEW_INSUFFICIENT_FUND"))
        }
        Err(e) => {
            tracing::info!(error = %e, "coinbase sandbox: the core refused an edit");
            return failed((NO_EDIT_FAILURE, NO_PREVIEW_FAILURE));
        }
    };
    app.coinbase.record_edit(
        order.order_id,
        json!({"price": dec(p.price), "size": dec(p.size),
                                                   "replace_accept_timestamp": rfc3339(now)}),
    );
    // The order as edited, then what it traded: the user channel re-reads it.
    let mut all = vec![Execution { order, fill: None }];
    all.extend(execs);
    st.publish_executions(&app.ex.user_tx, &all, now);
    reply(StatusCode::OK, &json!({"success": true, "errors": []}))
}

/// `POST /orders/edit_preview`: the edit's checks and estimate, nothing changed.
pub(crate) fn edit_preview(app: &App, account: u32, body: &str) -> Response {
    let (id, price, size) = match read(body) {
        Ok(r) => r,
        Err(why) => return invalid_argument(&why),
    };
    let (p, refused) = match plan(app, account, &id, price, size) {
        Ok(p) => {
            let (est, r) = estimate(app, account, &p.inst, &proposed(&p));
            (Some((p, est)), r.map(|r| (NO_EDIT_FAILURE, r)))
        }
        Err(r) => (None, Some(r)),
    };
    let (edit, preview) = refused.unwrap_or((NO_EDIT_FAILURE, NO_PREVIEW_FAILURE));
    let errs = if refused.is_some() { errors(edit, preview) } else { json!([]) };
    let Some((p, est)) = p else {
        return reply(
            StatusCode::OK,
            &json!({"errors": errs, "slippage": "0", "order_total": "0",
                                            "commission_total": "0", "quote_size": "0", "base_size": "0",
                                            "best_bid": "", "best_ask": "", "average_filled_price": "0"}),
        );
    };
    let total = if p.order.side == keel_core::order::Side::Buy {
        est.notional + est.commission
    } else {
        est.notional - est.commission
    };
    let (bid, ask) = est.touch.map(|(b, a)| (dec(b), dec(a))).unwrap_or_default();
    let commission = dec(est.commission);
    reply(
        StatusCode::OK,
        &json!({
            "errors": errs,
            "slippage": dec(est.slippage),
            "order_total": dec(total),
            "commission_total": commission,
            "quote_size": dec(p.size * p.price),
            "base_size": dec(p.size),
            "best_bid": bid,
            "best_ask": ask,
            "average_filled_price": dec(est.avg),
            "order_margin_total": "0",
            "commission_detail_total": {
                "total_commission": commission, "gst_commission": "0", "withholding_commission": "0",
                "client_commission": "0", "venue_commission": commission, "regulatory_commission": "0",
                "clearing_commission": "0",
            },
        }),
    )
}
