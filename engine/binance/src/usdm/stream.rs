//! The mark-price stream: one combined connection on the `/market` route
//! (`<symbol>@markPrice[@1s]` per symbol, or `!markPrice@arr[@1s]` for the
//! whole market), COIN-M items of the merged all-market array dropped,
//! ping answering, and reconnect with the spot client's backoff — also when
//! the connection stays open but no mark price arrives (a wrong route fails
//! silently).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use keel_core::futures::{FuturesEvent, FuturesFeed, MarkPriceSpeed};
use keel_core::symbol::Symbol;
use keel_core::venue::StreamStatus;

use super::model::MarkPriceMessage;
use crate::connection::{Connection, Flow, Liveness, StreamHandler};
use crate::model::CombinedMessage;
use crate::rest::RestClient;
use crate::stream::unreadable;

/// The route of the mark-price streams.
pub const MARKET_ROUTE: &str = "/market";

/// The stream names: one per symbol (lower case, once each), or the
/// all-market array when `symbols` is empty.
pub fn stream_names(symbols: &[Symbol], speed: MarkPriceSpeed) -> Vec<String> {
    let tail = match speed {
        MarkPriceSpeed::Every3s => "",
        MarkPriceSpeed::Every1s => "@1s",
    };
    if symbols.is_empty() {
        return vec![format!("!markPrice@arr{tail}")];
    }
    let mut out: Vec<String> = Vec::new();
    for s in symbols {
        let name = format!("{}@markPrice{tail}", s.as_str().to_lowercase());
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// `{base}/market/stream?streams=a/b`.
pub fn mark_price_url(base: &str, symbols: &[Symbol], speed: MarkPriceSpeed) -> String {
    format!("{}{MARKET_ROUTE}/stream?streams={}", base.trim_end_matches('/'), stream_names(symbols, speed).join("/"))
}

/// One subscription's connection.
pub(crate) struct MarkStream {
    pub url: String,
    pub rest: Arc<RestClient>,
    pub silence: Duration,
    pub reconnect_after: Duration,
}

impl MarkStream {
    /// Runs until the receiver is dropped — at once, also while it waits
    /// for a message, a connection or a retry: a replaced subscription's
    /// connection closes then, not at its next message.
    pub async fn run(self, tx: mpsc::Sender<FuturesFeed>) {
        let connection = Connection {
            url: self.url.clone(),
            name: "futures mark price",
            // A route that answers pings but sends no mark price is dead.
            liveness: Liveness::Data(self.silence),
            reconnect_after: self.reconnect_after,
        };
        let mut marks = Marks { all_market: self.url.contains("!markPrice@arr"), stream: self, tx: tx.clone() };
        connection.run(&mut marks, &tx).await;
    }

    /// The USDⓈ-M mark prices of one message; none for a subscription
    /// answer or a message Keel cannot read (which is loud).
    fn read(&self, raw: &str) -> Option<Vec<super::model::MarkPriceUpdate>> {
        let data = match serde_json::from_str::<CombinedMessage>(raw) {
            Ok(c) => c.data,
            Err(e) => {
                let v = serde_json::from_str::<serde_json::Value>(raw).ok();
                let is_ack = v.as_ref().is_some_and(|v| v.get("id").is_some());
                match v {
                    // A raw (uncombined) payload is read as it is.
                    Some(v) if !is_ack && (v.is_array() || v.get("e").is_some()) => v,
                    _ => {
                        if !is_ack {
                            unreadable(&self.rest, raw, &e);
                        }
                        return None;
                    }
                }
            }
        };
        match serde_json::from_value::<MarkPriceMessage>(data) {
            Ok(m) => Some(m.usdm()),
            Err(e) => {
                unreadable(&self.rest, raw, &e);
                None
            }
        }
    }
}

/// The mark prices of one subscription for its receiver.
struct Marks {
    stream: MarkStream,
    /// The all-market array: perpetuals only (delivery items have no funding time).
    all_market: bool,
    tx: mpsc::Sender<FuturesFeed>,
}

impl StreamHandler for Marks {
    type Out = FuturesFeed;

    fn status(status: StreamStatus) -> FuturesFeed {
        FuturesFeed::Status(status)
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let Some(items) = self.stream.read(text) else { return Flow::Skip };
        for u in items.into_iter().filter(|u| !self.all_market || u.next_funding_time.is_some()) {
            if self.tx.send(FuturesFeed::Event(FuturesEvent::Mark(u.to_core()))).await.is_err() {
                return Flow::Stop;
            }
        }
        Flow::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_use_the_market_route() {
        let syms = [Symbol::new("BTCUSDT"), Symbol::new("ETHUSDT"), Symbol::new("BTCUSDT")];
        assert_eq!(
            mark_price_url("wss://fstream.binance.com/", &syms, MarkPriceSpeed::Every1s),
            "wss://fstream.binance.com/market/stream?streams=btcusdt@markPrice@1s/ethusdt@markPrice@1s"
        );
        assert_eq!(
            mark_price_url("ws://127.0.0.1:1", &[], MarkPriceSpeed::Every3s),
            "ws://127.0.0.1:1/market/stream?streams=!markPrice@arr"
        );
    }
}
