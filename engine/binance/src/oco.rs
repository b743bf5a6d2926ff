//! Keel's one-cancels-the-other order on Binance: ONE order to Keel (see
//! `keel_core::venue::oco`), an order list of two legs at Binance.
//!
//! - Placed with `POST /api/v3/orderList/oco` (always over REST): for a SELL
//!   the leg above is a `LIMIT_MAKER` at the take-profit and the leg below a
//!   `STOP_LOSS` (or `STOP_LOSS_LIMIT`, GTC, at the stop's limit); a BUY
//!   mirrors it. The list's client id is Keel's; the legs' ids derive from
//!   it (`oco::leg_ids`), so every leg report finds its list without state.
//! - Cancelled with `DELETE /api/v3/orderList`, queried with
//!   `GET /api/v3/orderList` and its legs; open orders list it once.
//! - On the user stream each leg's `executionReport` becomes the list's
//!   report (folded with the last known state of the other leg), and its
//!   fills carry the list's client id; `listStatus` ends what is kept of a
//!   list, and a refused list (`REJECT`) is reported Rejected.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::Method;

use keel_core::fill::Fill;
use keel_core::order::{OrderStatus, OrderType, Side};
use keel_core::symbol::Symbol;
use keel_core::venue::oco::{leg_ids, leg_of, list_report, OcoLeg};
use keel_core::venue::{OrderReport, OrderRequest, PlaceResult, VenueError, VenueResult};

use super::error::NO_SUCH_ORDER;
use super::model::{ListStatusEvent, OrderInfo, OrderListInfo};
use super::venue::{report_of, Shared};

/// The last known report of each leg of the lists the user stream tells
/// of, by the list's client id (forgotten when the list is done).
#[derive(Debug, Default)]
pub(crate) struct OcoLegs {
    lists: Mutex<HashMap<String, [Option<OrderReport>; 2]>>,
}

fn slot(leg: OcoLeg) -> usize {
    match leg {
        OcoLeg::TakeProfit => 0,
        OcoLeg::Stop => 1,
    }
}

/// A stand-in for a leg not heard of: working, nothing filled.
fn working_like(other: &OrderReport, leg: OcoLeg, list_cid: &str) -> OrderReport {
    let (tp, stop) = leg_ids(list_cid).unwrap_or_default();
    OrderReport {
        client_order_id: if leg == OcoLeg::TakeProfit { tp } else { stop },
        status: OrderStatus::Accepted,
        filled_qty: Default::default(),
        filled_quote: Default::default(),
        reason: None,
        ..other.clone()
    }
}

impl OcoLegs {
    /// Records a leg's report; the list's report as it now stands.
    fn update(&self, list_cid: &str, list_id: i64, leg: OcoLeg, report: OrderReport) -> OrderReport {
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        let legs = lists.entry(list_cid.to_string()).or_default();
        legs[slot(leg)] = Some(report.clone());
        let other = match leg {
            OcoLeg::TakeProfit => OcoLeg::Stop,
            OcoLeg::Stop => OcoLeg::TakeProfit,
        };
        let sibling = legs[slot(other)].clone().unwrap_or_else(|| working_like(&report, other, list_cid));
        let (tp, stop) = if leg == OcoLeg::TakeProfit { (report, sibling) } else { (sibling, report) };
        let whole = list_report(list_cid, &list_id.to_string(), &tp, &stop);
        if whole.status.is_terminal() {
            lists.remove(list_cid);
        }
        whole
    }

    /// A `listStatus` event: a refused list is reported (from what is known
    /// of its legs), a finished one forgotten.
    fn on_status(&self, ev: &ListStatusEvent) -> Option<OrderReport> {
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        let legs = match ev.list_order_status.as_str() {
            "REJECT" | "ALL_DONE" => lists.remove(&ev.list_client_order_id)?,
            _ => return None,
        };
        let known = legs.iter().flatten().next()?.clone();
        (ev.list_order_status == "REJECT").then(|| OrderReport {
            client_order_id: ev.list_client_order_id.clone(),
            venue_order_id: ev.order_list_id.to_string(),
            status: OrderStatus::Rejected,
            reason: Some(ev.reject_reason.clone()).filter(|r| !r.is_empty() && r != "NONE"),
            ts_ms: ev.transact_time,
            oco_leg: None,
            ..known
        })
    }
}

/// The `orderList/oco` parameters of Keel's OCO request.
pub fn oco_params(request: &OrderRequest) -> VenueResult<Vec<(String, String)>> {
    let OrderType::Oco { take_profit, stop, stop_limit } = request.order_type else {
        return Err(VenueError::Rejected { code: -1014, reason: "not an OCO order".into() });
    };
    let (tp_id, stop_id) = leg_ids(&request.client_order_id)?;
    let (tp_at, stop_at) = match request.side {
        Side::Sell => ("above", "below"),
        Side::Buy => ("below", "above"),
    };
    let key = |at: &str, k: &str| format!("{at}{k}");
    let mut p: Vec<(String, String)> = vec![
        ("symbol".into(), request.symbol.to_string()),
        ("side".into(), request.side.as_str().into()),
        ("quantity".into(), request.qty.normalize().to_string()),
        ("listClientOrderId".into(), request.client_order_id.clone()),
        (key(tp_at, "Type"), "LIMIT_MAKER".into()),
        (key(tp_at, "Price"), take_profit.normalize().to_string()),
        (key(tp_at, "ClientOrderId"), tp_id),
        (key(stop_at, "StopPrice"), stop.normalize().to_string()),
        (key(stop_at, "ClientOrderId"), stop_id),
    ];
    match stop_limit {
        Some(limit) => {
            p.push((key(stop_at, "Type"), "STOP_LOSS_LIMIT".into()));
            p.push((key(stop_at, "Price"), limit.normalize().to_string()));
            p.push((key(stop_at, "TimeInForce"), "GTC".into()));
        }
        None => p.push((key(stop_at, "Type"), "STOP_LOSS".into())),
    }
    p.push(("newOrderRespType".into(), "FULL".into()));
    Ok(p)
}

/// The list's report from its legs' answers (a leg not in them: working).
fn report_of_legs(list_cid: &str, list_id: i64, legs: &[OrderInfo], now: i64) -> Option<OrderReport> {
    let mut slots: [Option<OrderReport>; 2] = [None, None];
    for info in legs {
        let r = report_of(info, now);
        if let Some((_, leg)) = leg_of(&r.client_order_id) {
            slots[slot(leg)] = Some(r);
        }
    }
    let known = slots.iter().flatten().next()?.clone();
    let [tp, stop] = slots;
    let tp = tp.unwrap_or_else(|| working_like(&known, OcoLeg::TakeProfit, list_cid));
    let stop = stop.unwrap_or_else(|| working_like(&known, OcoLeg::Stop, list_cid));
    Some(list_report(list_cid, &list_id.to_string(), &tp, &stop))
}

impl Shared {
    /// Remembers a list's legs under the list's client id (their trades then
    /// carry it) and counts the list as one open order.
    fn absorb_list(&self, list: &OrderListInfo, report: &OrderReport) {
        let symbol = Symbol::new(&list.symbol);
        for o in &list.orders {
            self.remember_order(&symbol, o.order_id, &list.list_client_order_id);
        }
        self.note_report(report);
    }

    /// Places Keel's OCO as an order list.
    pub(crate) async fn place_oco(&self, request: &OrderRequest) -> VenueResult<PlaceResult> {
        let params = oco_params(request)?;
        let signed_at = self.rest.now_ms();
        let list: OrderListInfo = match self.rest.signed(Method::POST, "/api/v3/orderList/oco", params, true).await {
            Ok(l) => l,
            Err(e) if e.outcome_unknown() => {
                return Err(VenueError::OutcomeUnknown(format!("OCO {}: {e}", request.client_order_id)))
            }
            Err(e) => return Err(e.to_venue()),
        };
        let mut report = report_of_legs(&list.list_client_order_id, list.order_list_id, &list.order_reports, signed_at)
            .unwrap_or_else(|| accepted(request, list.order_list_id, signed_at));
        report.qty = request.qty;
        self.absorb_list(&list, &report);
        let mut fills = Vec::new();
        for info in &list.order_reports {
            self.response_fills(request, info, signed_at, &mut fills);
        }
        Ok(PlaceResult { report, fills })
    }

    /// Cancels an OCO: its whole list. `Ok(None)` when Binance knows no
    /// list under this id.
    pub(crate) async fn cancel_oco(&self, symbol: &Symbol, list_cid: &str) -> VenueResult<Option<OrderReport>> {
        let p = vec![("symbol".into(), symbol.to_string()), ("listClientOrderId".into(), list_cid.to_string())];
        match self.rest.signed::<OrderListInfo>(Method::DELETE, "/api/v3/orderList", p, false).await {
            Ok(list) => {
                let now = self.rest.now_ms();
                let report = report_of_legs(list_cid, list.order_list_id, &list.order_reports, now);
                if let Some(r) = &report {
                    self.note_report(r);
                }
                Ok(report)
            }
            Err(e) if e.code() == Some(super::error::CANCEL_REJECTED) => Ok(None),
            Err(e) => Err(e.to_venue()),
        }
    }

    /// An OCO as one order: the list and its legs. `Ok(None)` when Binance
    /// knows no list under this id.
    pub(crate) async fn query_oco(&self, symbol: &Symbol, list_cid: &str) -> VenueResult<Option<OrderReport>> {
        let p = vec![("origClientOrderId".into(), list_cid.to_string())];
        let list: OrderListInfo = match self.rest.signed(Method::GET, "/api/v3/orderList", p, false).await {
            Ok(l) => l,
            Err(e) if e.code() == Some(NO_SUCH_ORDER) => return Ok(None),
            Err(e) => return Err(e.to_venue()),
        };
        let mut legs = Vec::new();
        for o in &list.orders {
            legs.push(self.rest.query_order_by_id(symbol.as_str(), o.order_id).await.map_err(|e| e.to_venue())?);
        }
        let report = report_of_legs(list_cid, list.order_list_id, &legs, self.rest.now_ms());
        if let Some(r) = &report {
            self.absorb_list(&list, r);
        }
        Ok(report)
    }

    /// Open orders as Keel knows them: each list once, from its open legs.
    pub(crate) fn merge_lists(&self, infos: &[OrderInfo], now: i64) -> Vec<(u64, OrderReport)> {
        let mut out: Vec<(u64, OrderReport)> = Vec::new();
        let mut lists: Vec<(String, i64, Vec<OrderInfo>)> = Vec::new();
        for o in infos {
            match leg_of(&o.client_order_id).filter(|_| o.order_list_id >= 0) {
                Some((list_cid, _)) => {
                    self.remember_order(&Symbol::new(&o.symbol), o.order_id, list_cid);
                    match lists.iter_mut().find(|(c, id, _)| c == list_cid && *id == o.order_list_id) {
                        Some((_, _, legs)) => legs.push(o.clone()),
                        None => lists.push((list_cid.to_string(), o.order_list_id, vec![o.clone()])),
                    }
                }
                None => out.push((o.order_id, report_of(o, now))),
            }
        }
        for (list_cid, list_id, legs) in lists {
            let first = legs.iter().map(|o| o.order_id).min().unwrap_or_default();
            out.extend(report_of_legs(&list_cid, list_id, &legs, now).map(|r| (first, r)));
        }
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// A leg's report and fill from the user stream, as the list's.
    pub(crate) fn leg_to_list(
        &self,
        list_id: i64,
        report: OrderReport,
        fill: Option<Fill>,
    ) -> (OrderReport, Option<Fill>) {
        let Some((list_cid, leg)) = leg_of(&report.client_order_id).filter(|_| list_id >= 0) else {
            return (report, fill);
        };
        let list_cid = list_cid.to_string();
        let whole = self.oco.update(&list_cid, list_id, leg, report);
        let fill = fill.map(|f| Fill { client_order_id: list_cid, ..f });
        (whole, fill)
    }

    /// A `listStatus` event: the list's report when it says something the
    /// legs' reports do not (a refused list).
    pub(crate) fn on_list_status(&self, ev: &ListStatusEvent) -> Option<OrderReport> {
        self.oco.on_status(ev)
    }
}

/// An OCO Binance accepted without leg reports (an ACK answer).
fn accepted(request: &OrderRequest, list_id: i64, ts_ms: i64) -> OrderReport {
    OrderReport {
        client_order_id: request.client_order_id.clone(),
        venue_order_id: list_id.to_string(),
        symbol: request.symbol.clone(),
        side: request.side,
        status: OrderStatus::Accepted,
        qty: request.qty,
        filled_qty: Default::default(),
        filled_quote: Default::default(),
        reason: None,
        ts_ms,
        oco_leg: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::order::TimeInForce;

    fn d(s: &str) -> rust_decimal::Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn a_sell_takes_profit_above_and_stops_below_and_a_buy_mirrors_it() {
        let req = |side, stop_limit: Option<&str>| OrderRequest {
            client_order_id: "kx-1".into(),
            symbol: "BTCUSDT".into(),
            side,
            order_type: OrderType::Oco { take_profit: d("61000.00"), stop: d("59000"), stop_limit: stop_limit.map(d) },
            qty: d("0.010"),
            tif: TimeInForce::Gtc,
        };
        let get = |p: &[(String, String)], k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let sell = oco_params(&req(Side::Sell, Some("58900"))).unwrap();
        let want = [
            ("listClientOrderId", "kx-1"),
            ("quantity", "0.01"),
            ("aboveType", "LIMIT_MAKER"),
            ("abovePrice", "61000"),
            ("aboveClientOrderId", "kx-1_t"),
            ("belowType", "STOP_LOSS_LIMIT"),
            ("belowStopPrice", "59000"),
            ("belowPrice", "58900"),
            ("belowTimeInForce", "GTC"),
            ("belowClientOrderId", "kx-1_s"),
        ];
        for (k, v) in want {
            assert_eq!(get(&sell, k).as_deref(), Some(v), "{k}");
        }
        let buy = oco_params(&req(Side::Buy, None)).unwrap();
        assert_eq!(get(&buy, "belowType").as_deref(), Some("LIMIT_MAKER"));
        assert_eq!(get(&buy, "aboveType").as_deref(), Some("STOP_LOSS"));
        assert_eq!(get(&buy, "abovePrice"), None, "a STOP_LOSS has no price");
        assert!(oco_params(&OrderRequest { order_type: OrderType::Market, ..req(Side::Buy, None) }).is_err());
    }
}
