//! Binance's public market data for a dry-run ([`PublicFeed`]): closed
//! klines over REST and, on one combined stream per subscription,
//! `<s>@depth20@100ms` (whole top-20 books), `<s>@trade` and
//! `<s>@kline_<interval>`. Closed bars are delivered once each and in order:
//! bars that closed while the stream was down (or before it first came up,
//! after the warm-up [`PublicMarketData::klines`] served) are fetched over
//! REST before the next live one. It holds no key: every request is public, so the
//! venue never sees a signature or an `X-MBX-APIKEY` header.
//!
//! Why partial books rather than the diff stream plus a REST snapshot: each
//! message is a whole book, so nothing is sequenced, a lost message is
//! healed by the next one and a reconnect needs no resynchronisation; the
//! price is 20 levels (a market order beyond them expires its rest).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use keel_core::instrument::Instrument;
use keel_core::market::{Bar, MarketEvent};
use keel_core::symbol::Symbol;
use keel_core::venue::live_paper::{LiveMarket, PartialBook, PublicMarketData};
use keel_core::venue::{MarketFeed, StreamStatus, VenueError, VenueResult};

use super::connection::{Connection, Flow, Liveness, StreamHandler};
use super::model::{CombinedMessage, Depth, StreamEvent};
use super::rest::{Credentials, RestClient};

/// Silence after which a connection is considered dead (books come every 100 ms).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Age at which a connection is renewed, an hour inside Binance's 24-hour limit.
const RECONNECT_AFTER: Duration = Duration::from_secs(23 * 3600);
/// REST timeout.
const TIMEOUT_MS: u64 = 10_000;

/// Binance's public market data at a REST and a stream base URL.
pub struct PublicFeed {
    rest: Arc<RestClient>,
    ws_stream: String,
    /// Per symbol: the open time of the newest closed bar [`Self::klines`]
    /// served without a start (a warm-up), where the stream's bars continue.
    served: Arc<Mutex<HashMap<Symbol, i64>>>,
    /// Age at which a stream connection is renewed.
    reconnect_after: Duration,
}

impl PublicFeed {
    /// A client of the public endpoints at `rest_url` and `ws_stream_url`.
    pub fn new(rest_url: &str, ws_stream_url: &str) -> Result<Self, crate::BinanceError> {
        // No key: the client can only make public requests (a signed one
        // would carry an empty key and fail; nothing here makes one).
        let rest = RestClient::new(rest_url, Credentials::new("", ""), 5_000, TIMEOUT_MS)?;
        Ok(Self {
            rest: Arc::new(rest),
            ws_stream: ws_stream_url.trim_end_matches('/').to_string(),
            served: Arc::new(Mutex::new(HashMap::new())),
            reconnect_after: RECONNECT_AFTER,
        })
    }

    /// Renews stream connections at `age` rather than after 23 hours (a test
    /// sees the renewal in seconds); at least a second.
    pub fn with_reconnect_after(mut self, age: Duration) -> Self {
        self.reconnect_after = age.max(Duration::from_secs(1));
        self
    }

    /// Every listed symbol's instrument and filters (`exchangeInfo`), so the
    /// dry-run refuses what the venue would refuse.
    pub async fn instruments(&self) -> VenueResult<Vec<Instrument>> {
        let info = self.rest.exchange_info().await?;
        Ok(info.symbols.iter().map(super::venue::instrument_of).collect())
    }
}

fn interval(interval_ms: i64) -> VenueResult<&'static str> {
    super::interval_name(interval_ms)
        .ok_or_else(|| VenueError::Rejected { code: -1120, reason: format!("no Binance interval of {interval_ms} ms") })
}

#[async_trait]
impl PublicMarketData for PublicFeed {
    async fn klines(
        &self,
        symbol: &Symbol,
        interval_ms: i64,
        start_ms: Option<i64>,
        limit: usize,
    ) -> VenueResult<Vec<Bar>> {
        let range = KlineRange { start_ms, end_ms: None, closed_before: self.rest.now_ms() };
        let bars = closed_klines(&self.rest, symbol, interval(interval_ms)?, range, limit).await?;
        if let (None, Some(newest)) = (start_ms, bars.last()) {
            let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
            let entry = served.entry(symbol.clone()).or_insert(newest.open_time);
            *entry = (*entry).max(newest.open_time);
        }
        Ok(bars)
    }

    async fn subscribe(&self, symbols: &[Symbol], interval_ms: i64) -> VenueResult<mpsc::Receiver<LiveMarket>> {
        let interval = interval(interval_ms)?;
        let by_name: HashMap<String, Symbol> = symbols.iter().map(|s| (s.as_str().to_lowercase(), s.clone())).collect();
        let streams: Vec<String> = by_name
            .keys()
            .flat_map(|l| [format!("{l}@depth20@100ms"), format!("{l}@trade"), format!("{l}@kline_{interval}")])
            .collect();
        let connection = Connection {
            url: format!("{}/stream?streams={}", self.ws_stream, streams.join("/")),
            name: "dry-run market data",
            liveness: Liveness::AnyMessage(IDLE_TIMEOUT),
            reconnect_after: self.reconnect_after,
        };
        let (tx, rx) = mpsc::channel(4096);
        let last_open = self.served.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let bars = Bars { rest: self.rest.clone(), interval, interval_ms, last_open };
        let mut run = PublicRun { by_name, bars, tx: tx.clone() };
        tokio::spawn(async move { connection.run(&mut run, &tx).await });
        Ok(rx)
    }
}

/// Which klines to ask for: open times from `start_ms` to `end_ms`, and only
/// bars that closed before `closed_before` (a bar still open is left out).
struct KlineRange {
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    closed_before: i64,
}

/// Closed klines of `symbol` over REST.
async fn closed_klines(
    rest: &RestClient,
    symbol: &Symbol,
    interval: &str,
    range: KlineRange,
    limit: usize,
) -> VenueResult<Vec<Bar>> {
    let list = rest.klines(symbol.as_str(), interval, range.start_ms, range.end_ms, limit).await?;
    Ok(list
        .into_iter()
        .filter(|k| k.close_time < range.closed_before)
        .map(|k| Bar {
            symbol: symbol.clone(),
            open_time: k.open_time,
            close_time: k.close_time,
            open: k.open,
            high: k.high,
            low: k.low,
            close: k.close,
            volume: k.volume,
        })
        .collect())
}

/// Keeps closed bars once each and in order across gaps in the stream.
struct Bars {
    rest: Arc<RestClient>,
    interval: &'static str,
    interval_ms: i64,
    /// Per symbol: the open time of the last bar delivered.
    last_open: HashMap<Symbol, i64>,
}

impl Bars {
    /// The bars to deliver for a live closed `bar`: those REST has between
    /// the last delivered and it, then it; nothing if it was delivered.
    async fn deliver(&mut self, bar: Bar) -> Vec<Bar> {
        let last = self.last_open.get(&bar.symbol).copied();
        if last.is_some_and(|l| bar.open_time <= l) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(last) = last.filter(|l| bar.open_time > l + self.interval_ms) {
            let mut from = last + 1;
            // Paged: at most 1000 bars a request, until the live bar.
            while from < bar.open_time {
                // Every bar before a closed live one has closed.
                let range =
                    KlineRange { start_ms: Some(from), end_ms: Some(bar.open_time - 1), closed_before: bar.open_time };
                let page = closed_klines(&self.rest, &bar.symbol, self.interval, range, 1000).await;
                let page = match page {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(symbol = %bar.symbol, error = %e, "dry-run bar backfill failed; bars are missing");
                        break;
                    }
                };
                let Some(newest) = page.last().map(|b| b.open_time) else { break };
                out.extend(page.into_iter().filter(|b| b.open_time >= from && b.open_time < bar.open_time));
                from = newest + 1;
            }
        }
        self.last_open.insert(bar.symbol.clone(), bar.open_time);
        out.push(bar);
        out
    }
}

/// The levels of a partial book; a level Keel cannot read refuses the book.
fn levels(list: &[[String; 2]]) -> Option<Vec<(Decimal, Decimal)>> {
    list.iter().map(|[p, q]| Some((p.parse().ok()?, q.parse().ok()?))).collect()
}

/// One stream message as what the dry-run needs (`None`: nothing for it).
/// `Err` asks for a reconnect (`serverShutdown`).
pub fn read(raw: &str, by_name: &HashMap<String, Symbol>, now_ms: i64) -> Result<Option<LiveMarket>, &'static str> {
    let Ok(msg) = serde_json::from_str::<CombinedMessage>(raw) else { return Ok(None) };
    if let Some(name) = msg.stream.strip_suffix("@depth20@100ms") {
        let Some(symbol) = by_name.get(name) else { return Ok(None) };
        let Ok(depth) = serde_json::from_value::<Depth>(msg.data) else { return Ok(None) };
        let (Some(bids), Some(asks)) = (levels(&depth.bids), levels(&depth.asks)) else { return Ok(None) };
        return Ok(Some(LiveMarket::Depth(PartialBook { symbol: symbol.clone(), bids, asks, ts_ms: now_ms })));
    }
    Ok(match StreamEvent::parse(&msg.data) {
        Ok(StreamEvent::Trade(t)) => Some(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Trade(t.trade())))),
        Ok(StreamEvent::Kline(k)) if k.kline.closed => {
            Some(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Bar(k.bar()))))
        }
        Ok(StreamEvent::ServerShutdown) => return Err("serverShutdown"),
        _ => None,
    })
}

/// The dry-run's side of one subscription: its messages as the dry-run
/// takes them, closed bars once each and in order.
struct PublicRun {
    by_name: HashMap<String, Symbol>,
    bars: Bars,
    tx: mpsc::Sender<LiveMarket>,
}

impl StreamHandler for PublicRun {
    type Out = LiveMarket;

    fn status(status: StreamStatus) -> LiveMarket {
        LiveMarket::Feed(MarketFeed::Status(status))
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let now = keel_core::clock::Clock::now_ms(&keel_core::clock::SystemClock);
        let bars = match read(text, &self.by_name, now) {
            Ok(Some(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Bar(bar))))) => self.bars.deliver(bar).await,
            Ok(Some(ev)) => return self.send(ev).await,
            Ok(None) => return Flow::Read,
            Err(why) => return Flow::Reconnect(why),
        };
        for bar in bars {
            if let Flow::Stop = self.send(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Bar(bar)))).await {
                return Flow::Stop;
            }
        }
        Flow::Read
    }
}

impl PublicRun {
    /// Hands `ev` to the dry-run; [`Flow::Stop`] when it is gone.
    async fn send(&self, ev: LiveMarket) -> Flow {
        if self.tx.send(ev).await.is_ok() {
            Flow::Read
        } else {
            Flow::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::order::Side;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn stream_messages_become_books_trades_and_closed_bars() {
        let by_name: HashMap<String, Symbol> = [("btcusdt".to_string(), Symbol::new("BTCUSDT"))].into();
        let depth = r#"{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":5,"bids":[["99.5","2"]],"asks":[["100.5","3"],["101","1"]]}}"#;
        let Ok(Some(LiveMarket::Depth(book))) = read(depth, &by_name, 7) else { panic!("a book") };
        assert_eq!(book.symbol.as_str(), "BTCUSDT");
        assert_eq!(book.bids, vec![(d("99.5"), d("2"))]);
        assert_eq!(book.asks, vec![(d("100.5"), d("3")), (d("101"), d("1"))]);
        assert_eq!(book.ts_ms, 7);

        let trade = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":42,"p":"100.1","q":"0.5","T":3,"m":true}}"#;
        let Ok(Some(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Trade(t))))) = read(trade, &by_name, 0) else {
            panic!("a trade")
        };
        assert_eq!((t.trade_id, t.price, t.qty, t.aggressor), (42, d("100.1"), d("0.5"), Side::Sell));

        let kline = |closed: bool| {
            format!(
                r#"{{"stream":"btcusdt@kline_1m","data":{{"e":"kline","E":1,"s":"BTCUSDT","k":{{"t":0,"T":59999,"s":"BTCUSDT","i":"1m","o":"1","c":"2","h":"3","l":"0.5","v":"10","x":{closed}}}}}}}"#
            )
        };
        assert!(matches!(read(&kline(false), &by_name, 0), Ok(None)), "an open bar is not delivered");
        let Ok(Some(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Bar(b))))) = read(&kline(true), &by_name, 0) else {
            panic!("a closed bar")
        };
        assert_eq!((b.open, b.high, b.low, b.close), (d("1"), d("3"), d("0.5"), d("2")));

        let bad = r#"{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":5,"bids":[["x","2"]],"asks":[]}}"#;
        assert!(matches!(read(bad, &by_name, 0), Ok(None)), "an unreadable book is skipped");
        let shutdown = r#"{"stream":"btcusdt@trade","data":{"e":"serverShutdown","E":1}}"#;
        assert!(read(shutdown, &by_name, 0).is_err());
    }
}
