//! One connection loop for Binance's public market streams: connect,
//! answer pings, drop a connection that went silent, renew it before
//! Binance's 24-hour connection limit and on `serverShutdown`, and
//! reconnect with backoff after anything else; stop at once when the
//! receiver is dropped, also while connecting or waiting to retry. What a
//! message means is the [`StreamHandler`]'s business; the engine's market
//! stream ([`crate::stream`]), the dry-run's public feed ([`crate::public`])
//! and the USDⓈ-M mark prices ([`crate::usdm`]) all run here, so all keep
//! the same connection rules.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use keel_core::venue::StreamStatus;

use super::stream::backoff_delay;

/// The reason a connection renewed before its age limit ends with.
const PROACTIVE: &str = "proactive reconnect before the 24 h limit";

/// What the loop does after a message.
pub(crate) enum Flow {
    /// Keep reading: the message was data (the backoff starts over).
    Read,
    /// Keep reading: nothing usable was in the message (a subscription
    /// answer, say), so it does not count as data for [`Liveness::Data`].
    Skip,
    /// The receiver is gone: stop for good.
    Stop,
    /// Reconnect, for the reason given (`serverShutdown`: at once, without backoff).
    Reconnect(&'static str),
}

/// Reads one stream's messages for its receiver.
pub(crate) trait StreamHandler: Send {
    /// What the receiver takes.
    type Out: Send;
    /// A connection status as the receiver takes it.
    fn status(status: StreamStatus) -> Self::Out;
    /// Handles one text message.
    fn on_text(&mut self, text: &str) -> impl Future<Output = Flow> + Send;
    /// The connection dropped (called before the `Disconnected` status goes out).
    fn on_disconnect(&mut self) {}
}

/// What shows a connection is alive.
pub(crate) enum Liveness {
    /// Any message, a ping too, within this long.
    AnyMessage(Duration),
    /// A message the handler could use within this long: a route that
    /// answers pings but sends nothing (a wrong one) is dead.
    Data(Duration),
}

/// Where and how to connect.
pub(crate) struct Connection {
    /// The combined-stream URL.
    pub url: String,
    /// What the logs call this stream.
    pub name: &'static str,
    /// Silence after which the connection is considered dead.
    pub liveness: Liveness,
    /// Age at which the connection is renewed (23 h against Binance's 24 h limit).
    pub reconnect_after: Duration,
}

impl Connection {
    /// Runs until the receiver behind `tx` is dropped, reconnecting as needed.
    pub(crate) async fn run<H: StreamHandler>(&self, handler: &mut H, tx: &mpsc::Sender<H::Out>) {
        // The receiver is gone: close now, not at the next message, connection or retry.
        tokio::select! {
            _ = tx.closed() => {}
            _ = self.connect_loop(handler, tx) => {}
        }
    }

    async fn connect_loop<H: StreamHandler>(&self, handler: &mut H, tx: &mpsc::Sender<H::Out>) {
        super::install_crypto_provider();
        let mut attempt: u32 = 0;
        loop {
            let reason = match tokio_tungstenite::connect_async(self.url.as_str()).await {
                Err(e) => format!("connect failed: {e}"),
                Ok((mut ws, _)) => {
                    tracing::info!(stream = self.name, "binance stream connected");
                    if tx.send(H::status(StreamStatus::Connected)).await.is_err() {
                        return;
                    }
                    let deadline = tokio::time::sleep(self.reconnect_after);
                    tokio::pin!(deadline);
                    let mut data_at = tokio::time::Instant::now();
                    loop {
                        let wait = match self.liveness {
                            Liveness::AnyMessage(d) => d,
                            Liveness::Data(d) => d.saturating_sub(data_at.elapsed()),
                        };
                        let msg = tokio::select! {
                            _ = &mut deadline => break PROACTIVE.to_string(),
                            m = tokio::time::timeout(wait, ws.next()) => m,
                        };
                        match msg {
                            Err(_) => {
                                break match self.liveness {
                                    Liveness::AnyMessage(_) => "no data or ping for too long".to_string(),
                                    Liveness::Data(d) => format!("no data for {} ms", d.as_millis()),
                                }
                            }
                            Ok(None) => break "closed by server".to_string(),
                            Ok(Some(Err(e))) => break format!("read error: {e}"),
                            Ok(Some(Ok(Message::Ping(p)))) => {
                                if ws.send(Message::Pong(p)).await.is_err() {
                                    break "pong failed".to_string();
                                }
                            }
                            Ok(Some(Ok(Message::Text(t)))) => match handler.on_text(t.as_str()).await {
                                Flow::Read => {
                                    // Data flows: the connection is healthy, so the backoff starts over.
                                    attempt = 0;
                                    data_at = tokio::time::Instant::now();
                                }
                                Flow::Skip => {}
                                Flow::Stop => return,
                                Flow::Reconnect(why) => break why.to_string(),
                            },
                            Ok(Some(Ok(Message::Close(_)))) => break "close frame".to_string(),
                            Ok(Some(Ok(_))) => {}
                        }
                    }
                }
            };
            tracing::warn!(stream = self.name, %reason, "binance stream disconnected; reconnecting");
            handler.on_disconnect();
            let planned = reason == "serverShutdown" || reason == PROACTIVE;
            if tx.send(H::status(StreamStatus::Disconnected { reason })).await.is_err() {
                return;
            }
            if !planned {
                tokio::time::sleep(backoff_delay(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}
