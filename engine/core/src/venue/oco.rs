//! A one-cancels-the-other order ([`crate::order::OrderType::Oco`]) as ONE
//! order to the rest of Keel.
//!
//! At a venue an OCO is a list of two legs (a take-profit and a stop), each
//! an order with its own client order id. The router, the store,
//! reconciliation and strategies see one order under the list's client order
//! id: its report is Accepted while both legs work, PartiallyFilled/Filled
//! by the executing leg's fills (the other leg expiring is not an end of the
//! whole), Canceled when canceled, Rejected when refused; its fills carry
//! the list's client order id. Adapters derive the legs' client ids from the
//! list's with [`leg_ids`] (`<list id>_t`, `<list id>_s`) and map a leg's id back with [`leg_of`], so no
//! state is needed to put a leg's report back on its list; [`list_report`]
//! folds the legs' reports into the list's.

use serde::{Deserialize, Serialize};

use super::{OrderReport, VenueError};
use crate::order::OrderStatus;

/// Which leg of an OCO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OcoLeg {
    /// The take-profit limit (`LIMIT_MAKER`).
    TakeProfit,
    /// The stop (`STOP_LOSS` / `STOP_LOSS_LIMIT`).
    Stop,
}

impl OcoLeg {
    /// The suffix that makes the leg's client id from the list's (`_` is in
    /// every id range Binance states and never in Keel's own ids, so a plain
    /// order's id is never read as a leg's).
    const fn suffix(self) -> &'static str {
        match self {
            Self::TakeProfit => "_t",
            Self::Stop => "_s",
        }
    }

    /// Its name in logs and reports (`take_profit`, `stop`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TakeProfit => "take_profit",
            Self::Stop => "stop",
        }
    }
}

/// The longest list client order id: its legs' ids add two characters and
/// must stay within Binance's 36 (Keel's ids are far shorter: see
/// `actors/src/ids.rs`).
pub const MAX_LIST_ID_LEN: usize = 34;

/// The legs' client order ids of the list `list_id`: (take-profit, stop).
/// Refused when the list's id is too long for its legs' ids to fit.
pub fn leg_ids(list_id: &str) -> Result<(String, String), VenueError> {
    if list_id.is_empty() || list_id.len() > MAX_LIST_ID_LEN {
        return Err(VenueError::Rejected {
            code: -1100,
            reason: format!("an OCO's client order id must have 1 to {MAX_LIST_ID_LEN} characters: {list_id:?}"),
        });
    }
    Ok((format!("{list_id}{}", OcoLeg::TakeProfit.suffix()), format!("{list_id}{}", OcoLeg::Stop.suffix())))
}

/// The list's client id and the leg, of a leg's client id made by [`leg_ids`].
pub fn leg_of(leg_id: &str) -> Option<(&str, OcoLeg)> {
    [OcoLeg::TakeProfit, OcoLeg::Stop]
        .into_iter()
        .find_map(|leg| leg_id.strip_suffix(leg.suffix()).filter(|l| !l.is_empty()).map(|l| (l, leg)))
}

/// The list as one order, from its legs' reports (see the module's
/// contract): the executing leg (the one with fills, else the one still
/// working beside an expired sibling) gives the status and the fills, and
/// is named in [`OrderReport::oco_leg`].
pub fn list_report(
    list_client_order_id: &str,
    venue_list_id: &str,
    take_profit: &OrderReport,
    stop: &OrderReport,
) -> OrderReport {
    let legs = [(OcoLeg::TakeProfit, take_profit), (OcoLeg::Stop, stop)];
    let filled = legs.iter().find(|(_, r)| !r.filled_qty.is_zero());
    let working = legs.iter().filter(|(_, r)| r.status.is_open()).count();
    let (status, executed) = match filled {
        Some((leg, r)) => (r.status, Some(*leg)),
        None if working == 2 => (OrderStatus::Accepted, None),
        // One leg works beside an expired sibling: it triggered (a stop-limit resting at its limit).
        None if working == 1 => (OrderStatus::Accepted, legs.iter().find(|(_, r)| r.status.is_open()).map(|(l, _)| *l)),
        None if legs.iter().all(|(_, r)| r.status == OrderStatus::Canceled) => (OrderStatus::Canceled, None),
        None if legs.iter().any(|(_, r)| r.status == OrderStatus::Rejected) => (OrderStatus::Rejected, None),
        None if legs.iter().any(|(_, r)| r.status == OrderStatus::Canceled) => (OrderStatus::Canceled, None),
        None => (OrderStatus::Expired, None),
    };
    let source = filled.map_or(stop, |(_, r)| *r);
    OrderReport {
        client_order_id: list_client_order_id.to_string(),
        venue_order_id: venue_list_id.to_string(),
        symbol: stop.symbol.clone(),
        side: stop.side,
        status,
        qty: stop.qty,
        filled_qty: source.filled_qty,
        filled_quote: source.filled_quote,
        reason: legs.iter().find_map(|(_, r)| r.reason.clone().filter(|_| r.status == status)),
        ts_ms: take_profit.ts_ms.max(stop.ts_ms),
        oco_leg: executed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Side;
    use rust_decimal::Decimal;

    fn report(cid: &str, status: OrderStatus, filled: &str, ts_ms: i64) -> OrderReport {
        let filled: Decimal = filled.parse().unwrap();
        OrderReport {
            client_order_id: cid.into(),
            venue_order_id: "7".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Sell,
            status,
            qty: Decimal::ONE,
            filled_qty: filled,
            filled_quote: filled * Decimal::from(110),
            reason: None,
            ts_ms,
            oco_leg: None,
        }
    }

    #[test]
    fn leg_ids_round_trip_and_fit_binance() {
        let list = "k".to_string() + &"z".repeat(MAX_LIST_ID_LEN - 1);
        let (tp, stop) = leg_ids(&list).unwrap();
        for id in [&tp, &stop] {
            assert!(id.len() <= 36, "{id}");
            // The strictest range in use: the spot sandbox's `^[a-zA-Z0-9-_]{1,36}$`.
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)), "{id}");
        }
        assert_eq!(leg_of(&tp), Some((list.as_str(), OcoLeg::TakeProfit)));
        assert_eq!(leg_of(&stop), Some((list.as_str(), OcoLeg::Stop)));
        assert_eq!(leg_of("kabc-1"), None, "a plain order is no leg");
        assert_eq!(leg_of("_t"), None);
        assert!(leg_ids(&format!("{list}z")).is_err(), "35 characters do not leave room for the legs");
        assert!(leg_ids("").is_err());
    }

    #[test]
    fn the_list_is_one_order() {
        use OrderStatus::{Accepted, Canceled, Expired, Filled, PartiallyFilled, Rejected};
        let cases = [
            ("both work", (Accepted, "0"), (Accepted, "0"), Accepted, "0", None),
            (
                "take-profit partly filled",
                (PartiallyFilled, "0.4"),
                (Expired, "0"),
                PartiallyFilled,
                "0.4",
                Some(OcoLeg::TakeProfit),
            ),
            ("take-profit filled", (Filled, "1"), (Expired, "0"), Filled, "1", Some(OcoLeg::TakeProfit)),
            ("stop filled", (Expired, "0"), (Filled, "1"), Filled, "1", Some(OcoLeg::Stop)),
            ("stop-limit triggered, resting", (Expired, "0"), (Accepted, "0"), Accepted, "0", Some(OcoLeg::Stop)),
            ("canceled", (Canceled, "0"), (Canceled, "0"), Canceled, "0", None),
            (
                "canceled after a partial fill",
                (Canceled, "0.4"),
                (Expired, "0"),
                Canceled,
                "0.4",
                Some(OcoLeg::TakeProfit),
            ),
            ("refused", (Rejected, "0"), (Rejected, "0"), Rejected, "0", None),
            ("stop expired unfilled", (Expired, "0"), (Expired, "0"), Expired, "0", None),
        ];
        for (what, tp, stop, status, filled, leg) in cases {
            let r = list_report("L", "9", &report("L_t", tp.0, tp.1, 5), &report("L_s", stop.0, stop.1, 6));
            assert_eq!((r.status, r.filled_qty, r.oco_leg), (status, filled.parse().unwrap(), leg), "{what}");
            assert_eq!((r.client_order_id.as_str(), r.venue_order_id.as_str(), r.ts_ms), ("L", "9", 6), "{what}");
        }
    }
}
