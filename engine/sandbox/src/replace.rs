//! Cancel-replace (`POST /api/v3/order/cancelReplace`, WebSocket API
//! `order.cancelReplace`): cancel an order and place a new one on the same
//! symbol in one request, with Binance's outcome matrix — `200` when both
//! succeed, `409` `-2021` when one of them did, `400` `-2022` when neither
//! did (or the cancel failed under `STOP_ON_FAILURE`), each part's own result
//! or error in `data`.

use serde_json::{json, Value};

use super::exchange::{order_response, Reject};
use super::limits;
use super::rest::{cancel_one, client_id, find_order_by, parse_order, submit, Params};
use super::App;

/// The parameters cancelReplace reads beyond a new order's.
const CANCEL_PARAMS: &[&str] = &[
    "cancelReplaceMode",
    "cancelNewClientOrderId",
    "cancelOrigClientOrderId",
    "cancelOrderId",
    "cancelRestrictions",
    "orderRateLimitExceededMode",
];

/// How a cancel-replace ended when it did not fully succeed.
#[derive(Debug)]
pub(crate) enum Failed {
    /// Refused before anything was done (a parameter, a filter, the order
    /// count): a plain error, with a `Retry-After` (s) for the order count.
    Refused(Reject, Option<u64>),
    /// One or both parts failed: the HTTP status (`409` or `400`), the
    /// error and its `data`.
    Parts { status: u16, error: Reject, data: Value },
}

/// Runs a cancel-replace for `account`; `Ok` is the `200` body.
pub(crate) fn cancel_replace(app: &App, p: &Params, account: u32, now: i64) -> Result<Value, Failed> {
    let refused = |r: Reject| Failed::Refused(r, None);
    let stop_on_failure = match p.req("cancelReplaceMode").map_err(refused)? {
        "STOP_ON_FAILURE" => true,
        "ALLOW_FAILURE" => false,
        _ => return Err(refused(Reject::new(-1100, "Illegal characters found in parameter 'cancelReplaceMode'."))),
    };
    let cancel_only = match p.get("orderRateLimitExceededMode") {
        None | Some("DO_NOTHING") => false,
        Some("CANCEL_ONLY") => true,
        Some(_) => {
            return Err(refused(Reject::new(
                -1100,
                "Illegal characters found in parameter 'orderRateLimitExceededMode'.",
            )))
        }
    };
    if app.ex.keys.values().any(|k| k.id == account && !k.can_trade) {
        return Err(refused(Reject::new(-2010, "This action is disabled on this account.")));
    }
    // Filters and the order count are evaluated before either part runs.
    let parsed = parse_order(app, p, account, CANCEL_PARAMS).map_err(refused)?;
    let cancel_id = p.get("cancelNewClientOrderId").map(|c| client_id("cancelNewClientOrderId", c)).transpose();
    let cancel_id = cancel_id.map_err(refused)?;
    let counted = match app.limits.count_order(account, now) {
        Ok(_) => Ok(()),
        Err((r, wait)) if !cancel_only => return Err(Failed::Refused(r, Some(limits::retry_after_s(wait)))),
        Err((r, _)) => Err(r),
    };

    let cancel = find_order_by(app, p, account, "cancelOrderId", "cancelOrigClientOrderId")
        .map_err(|r| if r.code == -2013 { Reject::new(-2011, "Unknown order sent.") } else { r })
        .and_then(|(symbol, cid)| {
            if symbol != parsed.new.symbol.as_str() {
                return Err(Reject::new(-2011, "Unknown order sent."));
            }
            cancel_one(app, account, &symbol, &cid, cancel_id, p.get("cancelRestrictions"), now)
        });
    let placed = match (&cancel, &counted) {
        (Err(_), _) if stop_on_failure => None,
        (_, Err(r)) => Some(Err(r.clone())),
        _ => {
            Some(submit(app, &parsed, now).map(|(order, execs)| order_response(&order, &execs, &parsed.resp_type, now)))
        }
    };
    let part = |r: &Result<Value, Reject>| match r {
        Ok(v) => v.clone(),
        Err(e) => json!({"code": e.code, "msg": e.msg}),
    };
    let result = |r: &Result<Value, Reject>| if r.is_ok() { "SUCCESS" } else { "FAILURE" };
    let data = json!({
        "cancelResult": result(&cancel),
        "newOrderResult": placed.as_ref().map_or("NOT_ATTEMPTED", result),
        "cancelResponse": part(&cancel),
        "newOrderResponse": placed.as_ref().map_or(Value::Null, part),
    });
    match (cancel.is_ok(), placed.as_ref().is_some_and(Result::is_ok)) {
        (true, true) => Ok(data),
        (true, false) | (false, true) => Err(Failed::Parts {
            status: 409,
            error: Reject::new(-2021, "Order cancel-replace partially failed."),
            data,
        }),
        (false, false) => {
            Err(Failed::Parts { status: 400, error: Reject::new(-2022, "Order cancel-replace failed."), data })
        }
    }
}
