//! What both WebSocket streams share: connecting (rustls, a 16 MiB message
//! limit since a full `level2` snapshot exceeds 1 MB, §6.1), subscribe
//! messages (one channel per message, each with a fresh JWT carrying
//! server-corrected time, §2.3/§6.2), the per-connection `sequence_num`
//! check (§6.3), and reconnect backoff.

use std::time::Duration;

use rand::Rng;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::model::Subscribe;
use crate::venue::Shared;

/// A connection.
pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Silence after which a connection is dead: `heartbeats` sends one message a second.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest message accepted (the official SDK allows 10 MiB).
const MAX_MESSAGE: usize = 16 << 20;

/// Exponential backoff with full jitter: 100 ms doubling to 30 s.
pub(crate) fn backoff_delay(attempt: u32) -> Duration {
    let cap = 100u64.saturating_mul(1u64 << attempt.min(9)).min(30_000);
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}

/// Opens a connection.
pub(crate) async fn connect(url: &str) -> Result<Ws, String> {
    crate::install_crypto_provider();
    let config = WebSocketConfig::default().max_message_size(Some(MAX_MESSAGE)).max_frame_size(Some(MAX_MESSAGE));
    tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| format!("connect failed: {e}"))
}

/// A subscribe (`subscribe: true`) or unsubscribe of one channel, signed
/// with a JWT of the server's time (the venue's clock offset applied).
pub(crate) fn control(shared: &Shared, subscribe: bool, channel: &str, products: &[String]) -> Result<Message, String> {
    let jwt = shared
        .creds
        .ws_jwt(shared.rest.now_ms().div_euclid(1000))
        .map_err(|e| format!("cannot sign the {channel} subscribe: {e}"))?;
    let msg = Subscribe {
        kind: if subscribe { "subscribe" } else { "unsubscribe" }.into(),
        product_ids: products.to_vec(),
        channel: channel.into(),
        jwt: Some(jwt),
    };
    let text = serde_json::to_string(&msg).map_err(|e| format!("cannot encode the {channel} subscribe: {e}"))?;
    Ok(Message::Text(text.into()))
}

/// The reason to reconnect after an `error` frame. An `authentication
/// failure` may be tokens dated by a clock that is off the server's (its
/// clock jumped, §2.5, and no REST call was refused to notice): the clock is
/// measured again first, so the next subscribes carry the server's time.
pub(crate) async fn venue_error(shared: &Shared, message: &str) -> String {
    if message.contains("authentication failure") {
        if let Err(e) = shared.rest.sync_time().await {
            tracing::warn!(error = %e, "coinbase: clock not measured after a WebSocket authentication failure");
        }
    }
    format!("venue error: {message}")
}

/// What a message's `sequence_num` says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seq {
    /// The next one (or the first).
    Next,
    /// One or more messages were lost before this one.
    Gap {
        /// The number expected.
        expected: u64,
        /// The number received.
        got: u64,
    },
    /// Already seen: ignore the message (§6.3).
    Stale,
}

/// The per-connection sequence check: the counter runs across all
/// channels of a connection and only a new connection resets it.
#[derive(Debug, Default)]
pub(crate) struct SeqCheck {
    last: Option<u64>,
}

impl SeqCheck {
    /// Checks one number and remembers it (unless stale).
    pub(crate) fn check(&mut self, seq: u64) -> Seq {
        let out = match self.last {
            None => Seq::Next,
            Some(l) if seq <= l => return Seq::Stale,
            Some(l) if seq == l + 1 => Seq::Next,
            Some(l) => Seq::Gap { expected: l + 1, got: seq },
        };
        self.last = Some(seq);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_next_gap_and_stale() {
        let mut c = SeqCheck::default();
        let cases = [
            (5, Seq::Next),
            (6, Seq::Next),
            (6, Seq::Stale),
            (3, Seq::Stale),
            (9, Seq::Gap { expected: 7, got: 9 }),
            (10, Seq::Next),
        ];
        for (seq, want) in cases {
            assert_eq!(c.check(seq), want, "{seq}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        for attempt in 0..40 {
            let d = backoff_delay(attempt).as_millis() as u64;
            let cap = (100u64 << attempt.min(9)).min(30_000);
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d} ms");
        }
    }
}
