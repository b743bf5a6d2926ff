//! The exits part of `keel state`: each position's exit set as the store
//! keeps it (resting leg, prices, trigger state) and the exits that filled,
//! by reason, from the recorded orders.

use std::collections::BTreeMap;

use keel_core::exits::{ExitLeg, ExitReason, ExitState};
use keel_core::order::{Order, OrderType, Side};
use keel_core::Decimal;
use serde::Serialize;

/// One position's exit set.
#[derive(Debug, Serialize)]
pub struct ExitRow {
    /// The strategy.
    pub strategy: String,
    /// The state as stored (symbol, entry, qty, best price, trailing armed,
    /// the resting leg, a pending close).
    #[serde(flatten)]
    pub state: ExitState,
}

/// The stored exit states as rows.
pub fn rows(states: Vec<(keel_core::StrategyId, ExitState)>) -> Vec<ExitRow> {
    states.into_iter().map(|(s, state)| ExitRow { strategy: s.to_string(), state }).collect()
}

/// Exits that filled, by reason: the exit orders (a resting stop is a
/// stop-loss, a take-profit limit a take-profit, an OCO whichever leg its
/// average price says executed, a close its trigger's reason) and, as
/// `signal`, the sells of strategies with exits configured that were not
/// exit orders.
pub fn by_reason(orders: &[Order], config: &crate::config::Config) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = ExitReason::ALL.iter().map(|r| (r.as_str().to_string(), 0)).collect();
    let with_exits = |strategy: &str| {
        config.strategies.iter().any(|s| {
            s.exits.is_some()
                && (s.id == strategy || strategy.strip_prefix(s.id.as_str()).is_some_and(|r| r.starts_with('@')))
        })
    };
    for o in orders.iter().filter(|o| o.filled_qty > Decimal::ZERO) {
        let reason = match o.exit {
            Some(ExitLeg::Stop) => ExitReason::StopLoss,
            Some(ExitLeg::TakeProfit) => ExitReason::TakeProfit,
            Some(ExitLeg::Close(r)) => r,
            Some(ExitLeg::Oco) => match o.order_type {
                OrderType::Oco { take_profit, .. } if o.filled_quote >= take_profit * o.filled_qty => {
                    ExitReason::TakeProfit
                }
                _ => ExitReason::StopLoss,
            },
            None if o.side == Side::Sell && with_exits(o.strategy_id.as_str()) => ExitReason::Signal,
            None => continue,
        };
        *out.entry(reason.as_str().to_string()).or_default() += 1;
    }
    out
}

/// The human form.
pub fn print(rows: &[ExitRow], by_reason: &BTreeMap<String, u64>) {
    if rows.is_empty() {
        println!("exits         : none set");
    } else {
        println!("exits:");
        for r in rows {
            println!("  {}", line(r));
        }
    }
    let counts: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!("exits by reason: {}", counts.join(", "));
}

/// One position's exit set on a line.
fn line(r: &ExitRow) -> String {
    let s = &r.state;
    let mut t = format!("{} {} qty {} entry {}", r.strategy, s.symbol, s.qty.normalize(), s.entry_price.normalize());
    match &s.leg {
        Some(leg) => {
            let name = match leg.leg {
                ExitLeg::Stop => "stop".to_string(),
                ExitLeg::TakeProfit => "take-profit".to_string(),
                ExitLeg::Oco => "oco".to_string(),
                ExitLeg::Close(reason) => format!("close({reason})"),
            };
            t.push_str(&format!(": {name} qty {}", leg.qty.normalize()));
            if let Some(p) = leg.stop {
                t.push_str(&format!(" stop {}", p.normalize()));
            }
            if let Some(p) = leg.take_profit {
                t.push_str(&format!(" take-profit {}", p.normalize()));
            }
            t.push_str(match (leg.canceling, &leg.client_order_id) {
                (true, _) => " (canceling)",
                (false, Some(_)) => " (at the venue)",
                (false, None) => " (being placed)",
            });
            if let Some(id) = &leg.client_order_id {
                t.push_str(&format!(" {id}"));
            }
        }
        None if s.removed => t.push_str(": exits removed by the strategy"),
        None => t.push_str(": engine-side"),
    }
    t.push_str(&format!("; best {}", s.best_price.normalize()));
    if s.trailing_armed {
        t.push_str(", trailing armed");
    }
    if s.venue_refused {
        t.push_str(", the venue refused its leg (engine-side since)");
    }
    if let Some(c) = &s.pending_close {
        t.push_str(&format!("; closing: {} ({})", c.reason, if c.sent { "sent" } else { "waiting for a cancel" }));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::exits::RestingLeg;
    use keel_core::order::{OrderIntent, OrderStatus};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn a_position_s_exit_set_on_one_line() {
        let mut state = ExitState::open("BTCUSDT".into(), d("60000"), d("0.01"), 0);
        state.best_price = d("61500");
        state.trailing_armed = true;
        state.leg = Some(RestingLeg {
            leg: ExitLeg::Oco,
            client_order_id: Some("k-1".into()),
            qty: d("0.01"),
            stop: Some(d("58200")),
            take_profit: Some(d("63600")),
            canceling: false,
            filled_qty: Decimal::ZERO,
            filled_quote: Decimal::ZERO,
        });
        let row = ExitRow { strategy: "btc_sma".into(), state };
        assert_eq!(
            line(&row),
            "btc_sma BTCUSDT qty 0.01 entry 60000: oco qty 0.01 stop 58200 take-profit 63600 (at the venue) k-1; best 61500, trailing armed"
        );
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!((json["strategy"].as_str(), json["symbol"].as_str()), (Some("btc_sma"), Some("BTCUSDT")));
        assert_eq!(json["leg"]["stop"], "58200");
    }

    #[test]
    fn exits_are_counted_by_reason() {
        let config = crate::config::Config::parse(concat!(
            crate::config::btc_symbol_toml!(),
            "\n[[strategy]]\nid = \"a\"\nkind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = { fast = 5, slow = 20, qty = \"0.01\" }\nexits = { stop_loss = \"3%\" }\n",
        ))
        .unwrap();
        let order = |strategy: &str, side: Side, order_type: OrderType, exit: Option<ExitLeg>, avg: &str| {
            let mut i = OrderIntent::market(strategy.into(), "BTCUSDT".into(), side, d("1"));
            i.order_type = order_type;
            i.exit = exit;
            let mut o = Order::from_intent(&i, format!("{strategy}-{avg}"), 0);
            o.status = OrderStatus::Filled;
            o.filled_qty = d("1");
            o.filled_quote = d(avg);
            o
        };
        let oco = OrderType::Oco { take_profit: d("110"), stop: d("95"), stop_limit: None };
        let orders = [
            order("a", Side::Sell, OrderType::StopMarket { stop: d("95") }, Some(ExitLeg::Stop), "94"),
            order("a", Side::Sell, oco, Some(ExitLeg::Oco), "110"),
            order("a", Side::Sell, oco, Some(ExitLeg::Oco), "93"),
            order("a", Side::Sell, OrderType::Market, Some(ExitLeg::Close(ExitReason::TrailingStop)), "101"),
            order("a", Side::Sell, OrderType::Market, None, "100"),
            order("a", Side::Buy, OrderType::Market, None, "100"),
            order("other", Side::Sell, OrderType::Market, None, "100"),
        ];
        let got = by_reason(&orders, &config);
        let want: BTreeMap<String, u64> =
            [("stop_loss", 2), ("take_profit", 1), ("trailing_stop", 1), ("roi", 0), ("max_hold", 0), ("signal", 1)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        assert_eq!(got, want);
    }
}
