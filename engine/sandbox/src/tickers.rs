//! Rolling 24-hour statistics and the average price: REST `ticker/24hr`,
//! `ticker/price`, `ticker/bookTicker` and `avgPrice`, and the streams
//! `<s>@ticker`, `<s>@miniTicker`, `!miniTicker@arr` and `<s>@avgPrice`,
//! all from the same bars, tape and book, so REST and streams agree.
//!
//! The window is the last 1440 one-minute bars of the market clock (24 hours
//! in real time; fewer server minutes when time is accelerated); `openTime`
//! / `closeTime` (`O`/`C`) are the server clock's last 24 hours, as on
//! Binance, and trade ids and times come from the tape.

use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::market::Bar;

use super::exchange::{d8, ExchangeState, MarketKind, MarketMsg};
use super::tape::BarStats;

/// One-minute bars in the rolling window.
const WINDOW_BARS: usize = 1440;

/// Minutes in the average price (`mins`).
pub const AVG_PRICE_MINS: usize = 5;

const DAY_MS: i64 = 86_400_000;

/// A symbol's statistics over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats24 {
    symbol: String,
    pub(crate) open: Decimal,
    pub(crate) high: Decimal,
    pub(crate) low: Decimal,
    pub(crate) last: Decimal,
    last_qty: Decimal,
    prev_close: Decimal,
    pub(crate) volume: Decimal,
    quote_volume: Decimal,
    trades: BarStats,
    pub(crate) bid: (Decimal, Decimal),
    pub(crate) ask: (Decimal, Decimal),
    open_time: i64,
    close_time: i64,
}

impl Stats24 {
    fn change(&self) -> Decimal {
        self.last - self.open
    }

    fn change_pct(&self) -> String {
        if self.open.is_zero() {
            return "0.000".into();
        }
        let mut p = (self.change() * Decimal::ONE_HUNDRED / self.open).round_dp(3);
        p.rescale(3);
        p.to_string()
    }

    fn weighted_avg(&self) -> Decimal {
        if self.volume.is_zero() {
            self.last
        } else {
            (self.quote_volume / self.volume).round_dp(8)
        }
    }

    /// The REST `ticker/24hr` object (FULL).
    pub fn rest_json(&self) -> Value {
        let (first, last) = self.trades.first_last();
        json!({
            "symbol": self.symbol, "priceChange": d8(self.change()), "priceChangePercent": self.change_pct(),
            "weightedAvgPrice": d8(self.weighted_avg()), "prevClosePrice": d8(self.prev_close),
            "lastPrice": d8(self.last), "lastQty": d8(self.last_qty),
            "bidPrice": d8(self.bid.0), "bidQty": d8(self.bid.1), "askPrice": d8(self.ask.0), "askQty": d8(self.ask.1),
            "openPrice": d8(self.open), "highPrice": d8(self.high), "lowPrice": d8(self.low),
            "volume": d8(self.volume), "quoteVolume": d8(self.quote_volume),
            "openTime": self.open_time, "closeTime": self.close_time,
            "firstId": first, "lastId": last, "count": self.trades.count,
        })
    }

    /// The REST `ticker/24hr` object of `type=MINI`: FULL without the
    /// change, average, previous close, last quantity and the book.
    pub fn rest_mini_json(&self) -> Value {
        let (first, last) = self.trades.first_last();
        json!({
            "symbol": self.symbol, "openPrice": d8(self.open), "highPrice": d8(self.high), "lowPrice": d8(self.low),
            "lastPrice": d8(self.last), "volume": d8(self.volume), "quoteVolume": d8(self.quote_volume),
            "openTime": self.open_time, "closeTime": self.close_time,
            "firstId": first, "lastId": last, "count": self.trades.count,
        })
    }

    /// The `24hrTicker` event.
    pub fn ticker_event(&self, event_ms: i64) -> Value {
        let (first, last) = self.trades.first_last();
        json!({
            "e": "24hrTicker", "E": event_ms, "s": self.symbol, "p": d8(self.change()), "P": self.change_pct(),
            "w": d8(self.weighted_avg()), "x": d8(self.prev_close), "c": d8(self.last), "Q": d8(self.last_qty),
            "b": d8(self.bid.0), "B": d8(self.bid.1), "a": d8(self.ask.0), "A": d8(self.ask.1),
            "o": d8(self.open), "h": d8(self.high), "l": d8(self.low), "v": d8(self.volume), "q": d8(self.quote_volume),
            "O": self.open_time, "C": self.close_time, "F": first, "L": last, "n": self.trades.count,
        })
    }

    /// The `24hrMiniTicker` event.
    pub fn mini_event(&self, event_ms: i64) -> Value {
        json!({
            "e": "24hrMiniTicker", "E": event_ms, "s": self.symbol, "c": d8(self.last), "o": d8(self.open),
            "h": d8(self.high), "l": d8(self.low), "v": d8(self.volume), "q": d8(self.quote_volume),
        })
    }
}

/// The bars of a symbol with their trade statistics, oldest first, the bar
/// in progress last.
fn bars_with_stats(st: &ExchangeState, symbol: &str, last_n: usize) -> Option<Vec<(Bar, BarStats)>> {
    let v = st.market_view(symbol)?;
    let from = v.history.len().saturating_sub(last_n);
    let mut out: Vec<(Bar, BarStats)> =
        v.history[from..].iter().map(|b| (b.clone(), v.tape.stats_of(b.open_time))).collect();
    if let Some(cur) = v.current {
        out.push((cur.clone(), v.tape.current_stats()));
    }
    let skip = out.len().saturating_sub(last_n);
    Some(out.split_off(skip))
}

/// The 24-hour statistics of a symbol at server time `now_ms`.
pub fn stats_24h(st: &ExchangeState, symbol: &str, now_ms: i64) -> Option<Stats24> {
    let v = st.market_view(symbol)?;
    let window = bars_with_stats(st, symbol, WINDOW_BARS)?;
    let (first, _) = window.first()?;
    let (last_bar, _) = window.last()?;
    let mut trades = BarStats::default();
    for (_, s) in &window {
        trades.merge(s);
    }
    // The price before the window: the close of the bar before it.
    let all = v.history.len() + usize::from(v.current.is_some());
    let before = all.checked_sub(window.len() + 1).and_then(|i| v.history.get(i));
    let prev_close = before.map_or(first.open, |b| b.close);
    let last = v.tape.last();
    let ((bid, bid_qty), (ask, ask_qty)) = v.depth.best().unwrap_or_default();
    Some(Stats24 {
        symbol: symbol.to_string(),
        open: first.open,
        high: window.iter().map(|(b, _)| b.high).max().unwrap_or_default(),
        low: window.iter().map(|(b, _)| b.low).min().unwrap_or_default(),
        last: last.map_or(last_bar.close, |t| t.price),
        last_qty: last.map_or(Decimal::ZERO, |t| t.qty),
        prev_close,
        volume: window.iter().map(|(b, _)| b.volume).sum(),
        quote_volume: trades.quote_volume,
        trades,
        bid: (bid, bid_qty),
        ask: (ask, ask_qty),
        open_time: now_ms - DAY_MS,
        close_time: now_ms,
    })
}

/// The average price over the last [`AVG_PRICE_MINS`] minutes (volume
/// weighted) and the time of the last trade.
pub fn avg_price(st: &ExchangeState, symbol: &str) -> Option<(Decimal, i64)> {
    let bars = bars_with_stats(st, symbol, AVG_PRICE_MINS)?;
    let volume: Decimal = bars.iter().map(|(b, _)| b.volume).sum();
    let quote: Decimal = bars.iter().map(|(_, s)| s.quote_volume).sum();
    let v = st.market_view(symbol)?;
    let last_close = bars.last().map(|(b, _)| b.close).unwrap_or_default();
    let price = if volume.is_zero() { last_close } else { (quote / volume).round_dp(8) };
    let time = v.tape.last().map_or(0, |t| t.time);
    Some((price, time))
}

/// The REST `avgPrice` body.
pub fn avg_price_json(st: &ExchangeState, symbol: &str) -> Option<Value> {
    let (price, time) = avg_price(st, symbol)?;
    Some(json!({"mins": AVG_PRICE_MINS, "price": d8(price), "closeTime": time}))
}

/// The REST `ticker/price` object: the last trade's price.
pub fn price_json(st: &ExchangeState, symbol: &str) -> Option<Value> {
    let v = st.market_view(symbol)?;
    let price = match v.tape.last() {
        Some(t) => t.price,
        None => v.current.or(v.history.last())?.close,
    };
    Some(json!({"symbol": symbol, "price": d8(price)}))
}

/// The REST `ticker/bookTicker` object: the top of the book.
pub fn book_json(st: &ExchangeState, symbol: &str) -> Option<Value> {
    let ((b, bq), (a, aq)) = st.market_view(symbol)?.depth.best()?;
    Some(json!({"symbol": symbol, "bidPrice": d8(b), "bidQty": d8(bq), "askPrice": d8(a), "askQty": d8(aq)}))
}

/// The once-a-second stream messages: each symbol's ticker, mini ticker and
/// average price, and the array of every mini ticker.
pub(crate) fn stream_messages(st: &ExchangeState, now_ms: i64) -> Vec<MarketMsg> {
    let mut out = Vec::new();
    let mut minis = Vec::new();
    for (symbol, lower) in st.symbols() {
        let Some(s) = stats_24h(st, &symbol, now_ms) else { continue };
        let mini = s.mini_event(now_ms);
        minis.push(mini.clone());
        let mut push = |suffix: &'static str, event: Value| {
            out.push(MarketMsg { symbol_lower: lower.clone(), kind: MarketKind::Stream { suffix, event } })
        };
        push("ticker", s.ticker_event(now_ms));
        push("miniTicker", mini);
        if let Some((price, time)) = avg_price(st, &symbol) {
            push(
                "avgPrice",
                json!({"e": "avgPrice", "E": now_ms, "s": symbol, "i": format!("{AVG_PRICE_MINS}m"), "w": d8(price), "T": time}),
            );
        }
    }
    if !minis.is_empty() {
        out.push(MarketMsg {
            symbol_lower: ALL_MINI_TICKERS.into(),
            kind: MarketKind::Stream { suffix: "arr", event: Value::Array(minis) },
        });
    }
    out
}

/// The "symbol" part of `!miniTicker@arr`.
pub const ALL_MINI_TICKERS: &str = "!miniTicker";
