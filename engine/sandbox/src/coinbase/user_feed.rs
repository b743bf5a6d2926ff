//! The `user` channel's order objects (§6.6): an order's whole current
//! state — cumulative quantity, leaves, average price, fees, fill count —
//! never a fill. Built from the same order object REST `get order` answers
//! with, so the two never disagree.

use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::order::Side;
use keel_core::sim::SimOrder;

use super::ids::{dec, order_id_of};
use super::orders::{all_orders, order_json};
use crate::App;

/// Open orders a snapshot message holds at most; the rest follow in more
/// messages of the same kind (§6.6).
pub(crate) const SNAPSHOT_BATCH: usize = 50;

/// "Not applicable" for `start_time` / `end_time`.
const NO_TIME: &str = "0001-01-01T00:00:00Z";

/// The order as the `user` channel shows it.
pub(crate) fn user_order(app: &App, o: &SimOrder) -> Value {
    let r = order_json(app, o);
    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    // Leaves are in the currency the order was sized in (§6.6).
    let leaves = match o.asked.quote_order_qty {
        Some(q) if o.status.is_open() => (q - o.filled_quote).max(Decimal::ZERO),
        Some(_) => Decimal::ZERO,
        None if o.status.is_open() => o.qty - o.filled_qty,
        None => Decimal::ZERO,
    };
    json!({
        "order_id": s("order_id"),
        "client_order_id": s("client_order_id"),
        "product_id": s("product_id"),
        "product_type": "SPOT",
        "order_side": if o.side == Side::Buy { "BUY" } else { "SELL" },
        "order_type": if o.order_type.is_market() { "Market" } else { "Limit" },
        "status": s("status"),
        "time_in_force": s("time_in_force"),
        "cumulative_quantity": s("filled_size"),
        "leaves_quantity": dec(leaves),
        "avg_price": s("average_filled_price"),
        "filled_value": s("filled_value"),
        "number_of_fills": s("number_of_fills"),
        "completion_percentage": s("completion_percentage"),
        "total_fees": s("total_fees"),
        "total_value_after_fees": s("total_value_after_fees"),
        "outstanding_hold_amount": s("outstanding_hold_amount"),
        "limit_price": o.order_type.limit_price().map(dec).unwrap_or_else(|| "0".into()),
        "stop_price": "",
        "post_only": o.asked.post_only.to_string(),
        "trigger_status": "",
        "reject_reason": "",
        "cancel_reason": "",
        "creation_time": s("created_time"),
        "start_time": NO_TIME,
        "end_time": NO_TIME,
        "retail_portfolio_id": "",
        "contract_expiry_type": "UNKNOWN_CONTRACT_EXPIRY_TYPE",
        "risk_managed_by": "UNKNOWN_RISK_MANAGEMENT_TYPE",
    })
}

/// The account's open orders in `products` (empty: all), as the snapshot
/// lists them, oldest first.
pub(crate) fn open_orders(app: &App, account: u32, products: &[String]) -> Vec<Value> {
    let mut open: Vec<SimOrder> = all_orders(app, account).into_iter().filter(|o| o.status.is_open()).collect();
    open.reverse();
    open.iter().map(|o| user_order(app, o)).filter(|v| wanted(v, products)).collect()
}

/// The order an `executionReport` of the shared user stream is about, in
/// its current state, if it belongs to `account` and `products`.
pub(crate) fn changed_order(app: &App, account: u32, event: &Value, products: &[String]) -> Option<(u64, Value)> {
    if event["e"] != "executionReport" {
        return None;
    }
    let id = event["i"].as_u64()?;
    let o = app.ex.lock().core().order(id).cloned().filter(|o| o.account == account)?;
    let v = user_order(app, &o);
    wanted(&v, products).then_some((id, v))
}

/// The core's order id of a user-channel order object.
pub(crate) fn id_of(order: &Value) -> Option<u64> {
    order["order_id"].as_str().and_then(order_id_of)
}

fn wanted(order: &Value, products: &[String]) -> bool {
    products.is_empty() || order["product_id"].as_str().is_some_and(|p| products.iter().any(|w| w == p))
}
