//! The mark-price stream: one combined connection on the `/market` route
//! (`<symbol>@markPrice[@1s]` per symbol, or `!markPrice@arr[@1s]` for the
//! whole market), COIN-M items of the merged all-market array dropped,
//! ping answering, and reconnect with the spot client's backoff — also when
//! the connection stays open but no mark price arrives (a wrong route fails
//! silently).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use keel_core::futures::{FuturesEvent, FuturesFeed, MarkPriceSpeed};
use keel_core::symbol::Symbol;
use keel_core::venue::StreamStatus;

use super::model::MarkPriceMessage;
use crate::model::CombinedMessage;
use crate::rest::RestClient;
use crate::stream::{backoff_delay, unreadable};

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

/// One subscription's connection loop.
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
        let closed = tx.clone();
        tokio::select! {
            _ = closed.closed() => {}
            _ = self.connect_loop(tx) => {}
        }
    }

    async fn connect_loop(self, tx: mpsc::Sender<FuturesFeed>) {
        crate::install_crypto_provider();
        let mut attempt: u32 = 0;
        loop {
            if tx.is_closed() {
                return;
            }
            let reason = match tokio_tungstenite::connect_async(self.url.as_str()).await {
                Err(e) => format!("connect failed: {e}"),
                Ok((mut ws, _)) => {
                    tracing::info!(url = %self.url, "binance futures mark-price stream connected");
                    if tx.send(FuturesFeed::Status(StreamStatus::Connected)).await.is_err() {
                        return;
                    }
                    let deadline = tokio::time::sleep(self.reconnect_after);
                    tokio::pin!(deadline);
                    let mut silent_since = tokio::time::Instant::now();
                    loop {
                        let left = self.silence.saturating_sub(silent_since.elapsed());
                        let msg = tokio::select! {
                            _ = &mut deadline => break "proactive reconnect before the 24 h limit".to_string(),
                            m = tokio::time::timeout(left, ws.next()) => m,
                        };
                        match msg {
                            Err(_) => break format!("no mark price for {} ms", self.silence.as_millis()),
                            Ok(None) => break "closed by server".to_string(),
                            Ok(Some(Err(e))) => break format!("read error: {e}"),
                            Ok(Some(Ok(Message::Ping(p)))) => {
                                if ws.send(Message::Pong(p)).await.is_err() {
                                    break "pong failed".to_string();
                                }
                            }
                            Ok(Some(Ok(Message::Text(t)))) => {
                                let Some(items) = self.read(t.as_str()) else { continue };
                                attempt = 0;
                                silent_since = tokio::time::Instant::now();
                                // The all-market array: perpetuals only (delivery items have no funding time).
                                let all_market = self.url.contains("!markPrice@arr");
                                for u in items.into_iter().filter(|u| !all_market || u.next_funding_time.is_some()) {
                                    let ev = FuturesFeed::Event(FuturesEvent::Mark(u.to_core()));
                                    if tx.send(ev).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Ok(Some(Ok(Message::Close(_)))) => break "close frame".to_string(),
                            Ok(Some(Ok(_))) => {}
                        }
                    }
                }
            };
            tracing::warn!(%reason, "binance futures mark-price stream disconnected; reconnecting");
            if tx.send(FuturesFeed::Status(StreamStatus::Disconnected { reason: reason.clone() })).await.is_err() {
                return;
            }
            if !reason.starts_with("proactive") {
                tokio::time::sleep(backoff_delay(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
        }
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
