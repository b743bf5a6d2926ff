//! The market-data events of the Coinbase WebSocket channels (§6.4, §6.5),
//! read from the same book, tape and bars REST answers from: each function
//! gives one channel's `events` entry for one product, or what changed since
//! what the connection last sent.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::instrument::Instrument;
use keel_core::market::Bar;

use super::ids::{dec, product_id, rfc3339};
use crate::App;

/// Seconds in a `candles` bucket: 5 minutes, the only granularity (§6.4).
const CANDLE_S: i64 = 300;

/// Trades a `market_trades` snapshot holds.
const TRADES_SNAPSHOT: usize = 50;

/// One side of a book: quantity by price.
pub(crate) type Side = BTreeMap<Decimal, Decimal>;

/// A book as a connection last sent it (bids, offers).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Book {
    bids: Side,
    offers: Side,
}

/// The product's whole book now (the sandbox's depth model: synthetic
/// levels plus resting orders), as REST `product_book` shows it.
pub(crate) fn book_now(app: &App, inst: &Instrument) -> Book {
    let mut st = app.ex.lock();
    let Some((core, book)) = st.depth_parts(inst.symbol.as_str()) else { return Book::default() };
    book.refresh(core, inst.symbol.as_str());
    let (bids, asks) = book.top(usize::MAX);
    Book { bids: bids.into_iter().collect(), offers: asks.into_iter().collect() }
}

fn l2_entry(side: &str, price: Decimal, qty: Decimal, event_time: &str) -> Value {
    json!({"side": side, "event_time": event_time, "price_level": dec(price), "new_quantity": dec(qty)})
}

/// The `snapshot` event of the whole book (§6.5: snapshot entries carry the
/// epoch as `event_time`).
pub(crate) fn l2_snapshot(pid: &str, book: &Book) -> Value {
    let epoch = "1970-01-01T00:00:00Z";
    let updates: Vec<Value> = book
        .bids
        .iter()
        .rev()
        .map(|(p, q)| l2_entry("bid", *p, *q, epoch))
        .chain(book.offers.iter().map(|(p, q)| l2_entry("offer", *p, *q, epoch)))
        .collect();
    json!({"type": "snapshot", "product_id": pid, "updates": updates})
}

/// The `update` event taking `old` to `new` (`new_quantity` 0 removes a
/// level); none when nothing changed.
pub(crate) fn l2_update(pid: &str, old: &Book, new: &Book, now: i64) -> Option<Value> {
    let t = rfc3339(now);
    let mut updates = Vec::new();
    for (side, o, n) in [("bid", &old.bids, &new.bids), ("offer", &old.offers, &new.offers)] {
        for (p, q) in crate::depth::changes(o, n) {
            updates.push(l2_entry(side, p, q, &t));
        }
    }
    (!updates.is_empty()).then(|| json!({"type": "update", "product_id": pid, "updates": updates}))
}

/// A product's `ticker` object (§6.4) and what it depends on (to send it
/// only when it changed).
pub(crate) fn ticker(app: &App, inst: &Instrument, now: i64) -> Option<Value> {
    let st = app.ex.lock();
    let s = crate::tickers::stats_24h(&st, inst.symbol.as_str(), now)?;
    let pct =
        if s.open.is_zero() { Decimal::ZERO } else { ((s.last - s.open) / s.open * Decimal::ONE_HUNDRED).round_dp(8) };
    Some(json!({
        "type": "ticker",
        "product_id": product_id(inst),
        "price": dec(s.last),
        "volume_24_h": dec(s.volume),
        "low_24_h": dec(s.low),
        "high_24_h": dec(s.high),
        "low_52_w": dec(s.low),
        "high_52_w": dec(s.high),
        "price_percent_chg_24_h": dec(pct),
        "best_bid": dec(s.bid.0),
        "best_bid_quantity": dec(s.bid.1),
        "best_ask": dec(s.ask.0),
        "best_ask_quantity": dec(s.ask.1),
    }))
}

/// Public trades after trade id `after` (none: the latest
/// [`TRADES_SNAPSHOT`]), oldest first, with the id of the last one. `side`
/// is the maker's (§6.4). Times are on the server clock, as on the Binance
/// side; clients follow the market's clock by `GET /time`'s
/// `keelMarketClock`.
pub(crate) fn trades(app: &App, inst: &Instrument, after: Option<u64>) -> (Vec<Value>, Option<u64>) {
    let st = app.ex.lock();
    let Some(view) = st.market_view(inst.symbol.as_str()) else { return (Vec::new(), after) };
    let list = match after {
        Some(id) => view.tape.since_id(id + 1, usize::MAX),
        None => view.tape.recent(TRADES_SNAPSHOT),
    };
    let pid = product_id(inst);
    let last = list.last().map(|t| t.id).or(after);
    let out = list
        .iter()
        .map(|t| {
            json!({"trade_id": t.id.to_string(), "product_id": pid, "price": dec(t.price), "size": dec(t.qty),
                   "side": if t.buyer_maker { "BUY" } else { "SELL" }, "time": rfc3339(t.time)})
        })
        .collect();
    (out, last)
}

/// The 5-minute candle in progress (from the 1m bars), as `candles` sends it.
pub(crate) fn candle(app: &App, inst: &Instrument) -> Option<Value> {
    let st = app.ex.lock();
    let view = st.market_view(inst.symbol.as_str())?;
    let latest = view.current.or(view.history.last())?;
    let bucket = latest.open_time.div_euclid(1000).div_euclid(CANDLE_S) * CANDLE_S;
    let in_bucket = |b: &&Bar| b.open_time.div_euclid(1000).div_euclid(CANDLE_S) * CANDLE_S == bucket;
    let recent = &view.history[view.history.len().saturating_sub(5)..];
    let bars: Vec<&Bar> = recent.iter().chain(view.current).filter(in_bucket).collect();
    let first = bars.first()?;
    let high = bars.iter().map(|b| b.high).max()?;
    let low = bars.iter().map(|b| b.low).min()?;
    let volume: Decimal = bars.iter().map(|b| b.volume).sum();
    Some(json!({"start": bucket.to_string(), "high": dec(high), "low": dec(low), "open": dec(first.open),
                "close": dec(latest.close), "volume": dec(volume), "product_id": product_id(inst)}))
}

/// A product as the `status` channel lists it.
pub(crate) fn status_product(inst: &Instrument) -> Value {
    let trading = inst.status.is_trading();
    json!({
        "product_type": "SPOT",
        "id": product_id(inst),
        "base_currency": inst.base_asset,
        "quote_currency": inst.quote_asset,
        "base_increment": dec(inst.step_size),
        "quote_increment": dec(inst.tick_size),
        "display_name": product_id(inst),
        "status": if trading { "online" } else { "offline" },
        "status_message": "",
        "min_market_funds": dec(inst.min_notional),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(bids: &[(&str, &str)], offers: &[(&str, &str)]) -> Book {
        let side = |l: &[(&str, &str)]| l.iter().map(|(p, q)| (p.parse().unwrap(), q.parse().unwrap())).collect();
        Book { bids: side(bids), offers: side(offers) }
    }

    fn entries(ev: &Value) -> Vec<(String, String, String)> {
        let mut out: Vec<(String, String, String)> = ev["updates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let s = |k: &str| u[k].as_str().unwrap().to_string();
                (s("side"), s("price_level"), s("new_quantity"))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn level2_snapshots_list_both_sides_and_updates_carry_new_quantities() {
        let old = book(&[("100", "1"), ("99", "2")], &[("101", "1")]);
        let snap = l2_snapshot("BTC-USD", &old);
        assert_eq!(snap["type"], "snapshot");
        assert!(snap["updates"].as_array().unwrap().iter().all(|u| u["event_time"] == "1970-01-01T00:00:00Z"));
        let e = |s: &str, p: &str, q: &str| (s.to_string(), p.to_string(), q.to_string());
        assert_eq!(entries(&snap), vec![e("bid", "100", "1"), e("bid", "99", "2"), e("offer", "101", "1")]);
        let cases = [
            (book(&[("100", "1"), ("99", "2")], &[("101", "1")]), vec![]),
            (book(&[("100", "3"), ("99", "2")], &[("101", "1")]), vec![e("bid", "100", "3")]),
            (book(&[("99", "2")], &[("101", "1"), ("102", "5")]), vec![e("bid", "100", "0"), e("offer", "102", "5")]),
        ];
        for (new, want) in cases {
            let got = l2_update("BTC-USD", &old, &new, 0).map(|ev| entries(&ev)).unwrap_or_default();
            assert_eq!(got, want);
        }
    }
}
