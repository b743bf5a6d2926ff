//! `POST /orders/preview` (§4.9): what an order would cost, from the real
//! book, fee schedule and balances, with nothing placed. The body is a
//! create body without `client_order_id`; the checks are create's
//! ([`super::orders::check`]), and what create leaves to the matching core
//! (funds, post-only, liquidity) is estimated here the way the core would
//! decide it. An order-level refusal is HTTP 200 with its `PREVIEW_*`
//! reason in `errs`; a body that cannot be read is a 400.

use axum::http::StatusCode;
use axum::response::Response;
use rand::RngCore as _;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::instrument::Instrument;
use keel_core::order::{OrderType, Side, TimeInForce};

use super::ids::{dec, hashed_uuid};
use super::orders::{check, Bad, Checked};
use super::rest::{instrument_of, invalid_argument, reply};
use crate::App;

/// The core's commission precision (decimal places).
const FEE_DP: u32 = 8;

/// What an order would do against the book now.
pub(crate) struct Estimate {
    /// Base quantity that would fill (now or, for a resting limit, at its price).
    pub qty: Decimal,
    /// Its notional.
    pub notional: Decimal,
    /// The commission (quote currency).
    pub commission: Decimal,
    /// Average price of `qty` (zero when nothing fills).
    pub avg: Decimal,
    /// Relative distance of `avg` from the touch (taking orders only).
    pub slippage: Decimal,
    /// Best bid and ask.
    pub touch: Option<(Decimal, Decimal)>,
}

/// The touch of a product.
fn touch_of(app: &App, inst: &Instrument) -> Option<(Decimal, Decimal)> {
    app.ex.lock().quote(inst.symbol.as_str()).map(|q| (q.bid, q.ask))
}

/// Walks the side of the book a `side` order takes, up to `qty` and not
/// beyond `limit`: the quantity and notional it would take.
fn walk(app: &App, inst: &Instrument, side: Side, qty: Decimal, limit: Option<Decimal>) -> (Decimal, Decimal) {
    let levels = app.ex.lock().core().synthetic_levels(inst.symbol.as_str(), side);
    let (mut got, mut cost) = (Decimal::ZERO, Decimal::ZERO);
    for (price, size) in levels {
        let beyond = limit.is_some_and(|l| if side == Side::Buy { price > l } else { price < l });
        if beyond || got >= qty {
            break;
        }
        let take = (qty - got).min(size);
        got += take;
        cost += take * price;
    }
    (got, cost)
}

/// An order (or an order as an edit would leave it) to estimate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proposed {
    /// Side.
    pub side: Side,
    /// Base quantity still to fill.
    pub qty: Decimal,
    /// Limit price (none: market).
    pub price: Option<Decimal>,
    /// Time in force.
    pub tif: TimeInForce,
    /// Post-only.
    pub post_only: bool,
    /// What the order locks already (an edit needs only the difference).
    pub locked: Decimal,
}

/// Estimates a [`Proposed`] order as the core would fill it: the
/// marketable part as a taker at the book's levels, the rest of a GTC limit
/// as a maker at its price; checks post-only, liquidity and the account's
/// free funds. The refusal is a `PREVIEW_*` reason; the estimate comes with
/// it where one could be made.
pub(crate) fn estimate(app: &App, account: u32, inst: &Instrument, o: &Proposed) -> (Estimate, Option<&'static str>) {
    let Proposed { side, qty, price, tif, post_only, locked: already_locked } = *o;
    let bps = Decimal::from(10_000);
    let (taker, maker) = (app.ex.fees.taker_bps / bps, app.ex.fees.maker_bps / bps);
    let touch = touch_of(app, inst);
    let marketable = match (price, touch) {
        (None, _) => true,
        (Some(p), Some((bid, ask))) => {
            if side == Side::Buy {
                p >= ask
            } else {
                p <= bid
            }
        }
        (Some(_), None) => false,
    };
    let (taken, taken_cost) =
        if marketable { walk(app, inst, side, qty, price) } else { (Decimal::ZERO, Decimal::ZERO) };
    let rests = price.filter(|_| tif == TimeInForce::Gtc);
    let (rest_qty, rest_cost) = match rests {
        Some(p) => (qty - taken, (qty - taken) * p),
        None => (Decimal::ZERO, Decimal::ZERO),
    };
    let (filled, notional) = (taken + rest_qty, taken_cost + rest_cost);
    let commission = (taken_cost * taker + rest_cost * maker)
        .round_dp_with_strategy(FEE_DP, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let avg = if filled.is_zero() { Decimal::ZERO } else { notional / filled };
    let best = touch.map(|(bid, ask)| if side == Side::Buy { ask } else { bid });
    let slippage = match (best, taken.is_zero()) {
        (Some(b), false) if !b.is_zero() => ((taken_cost / taken - b).abs() / b).round_dp(8),
        _ => Decimal::ZERO,
    };
    let est = Estimate { qty: filled, notional, commission, avg, slippage, touch };

    let refusal = if post_only && price.is_some() && marketable {
        Some("PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY")
    } else if filled.is_zero() || (tif == TimeInForce::Fok && taken < qty) {
        Some("PREVIEW_INVALID_NO_LIQUIDITY")
    } else {
        // What the core locks: a buy its worst-case cost, a sell its size.
        let (asset, needed) = match (side, price) {
            (Side::Buy, None) => (&inst.quote_asset, taken_cost * (Decimal::ONE + taker)),
            (Side::Buy, Some(p)) => (&inst.quote_asset, p * qty * (Decimal::ONE + taker.max(maker))),
            (Side::Sell, _) => (&inst.base_asset, qty),
        };
        let free = app.ex.lock().balances(account).into_iter().find(|b| &b.asset == asset).map(|b| b.free);
        let free = free.unwrap_or_default();
        (needed - already_locked > free).then_some("PREVIEW_INSUFFICIENT_FUND")
    };
    (est, refusal)
}

/// The preview answer's numbers (§4.9), with the reasons in `errs`.
fn preview_json(side: Side, est: &Estimate, quote_size: Option<Decimal>, errs: &[&str]) -> Value {
    let total = if side == Side::Buy { est.notional + est.commission } else { est.notional - est.commission };
    let (bid, ask) = est.touch.map(|(b, a)| (dec(b), dec(a))).unwrap_or_default();
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let commission = dec(est.commission);
    json!({
        "order_total": dec(total),
        "commission_total": commission,
        "errs": errs,
        "warning": [],
        "quote_size": dec(quote_size.unwrap_or(est.notional)),
        "base_size": dec(est.qty),
        "best_bid": bid,
        "best_ask": ask,
        "is_max": false,
        "order_margin_total": "0",
        "leverage": "1",
        "long_leverage": "1",
        "short_leverage": "1",
        "slippage": dec(est.slippage),
        "preview_id": hashed_uuid(&["preview", &hex::encode(nonce)]),
        "est_average_filled_price": dec(est.avg),
        "commission_detail_total": {
            "total_commission": commission,
            "gst_commission": "0",
            "withholding_commission": "0",
            "client_commission": "0",
            "venue_commission": commission,
            "regulatory_commission": "0",
            "clearing_commission": "0",
        },
    })
}

/// `POST /orders/preview`.
pub(crate) fn preview(app: &App, account: u32, body: &str) -> Response {
    let Ok(req) = serde_json::from_str::<Value>(body) else { return invalid_argument("the body is not JSON") };
    match check(app, &req) {
        Ok(c) => {
            let (est, refusal) = estimate_checked(app, account, &c);
            let errs: Vec<&str> = refusal.into_iter().collect();
            reply(StatusCode::OK, &preview_json(c.side, &est, c.quote, &errs))
        }
        Err(Bad::Invalid(why)) => invalid_argument(&why),
        Err(Bad::Refused(r)) => {
            // Nothing to estimate: the touch, and the reason.
            let inst = req.get("product_id").and_then(Value::as_str).and_then(|p| instrument_of(app, p));
            let side = if req.get("side").and_then(Value::as_str) == Some("SELL") { Side::Sell } else { Side::Buy };
            let est = Estimate {
                qty: Decimal::ZERO,
                notional: Decimal::ZERO,
                commission: Decimal::ZERO,
                avg: Decimal::ZERO,
                slippage: Decimal::ZERO,
                touch: inst.and_then(|i| touch_of(app, &i)),
            };
            reply(StatusCode::OK, &preview_json(side, &est, None, &[r.preview.unwrap_or(r.reason)]))
        }
    }
}

/// [`estimate`] for a checked create body.
fn estimate_checked(app: &App, account: u32, c: &Checked) -> (Estimate, Option<&'static str>) {
    let price = match c.order_type {
        OrderType::Market => None,
        _ => Some(c.reference),
    };
    let o = Proposed { side: c.side, qty: c.qty, price, tif: c.tif, post_only: c.post_only, locked: Decimal::ZERO };
    estimate(app, account, &c.inst, &o)
}
