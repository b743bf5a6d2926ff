//! The USDⓈ-M request buckets that `X-MBX-USED-WEIGHT-1M` does not show:
//! `fundingRate` + `fundingInfo` share 500 requests per 5 minutes per IP,
//! and the `/futures/data/*` endpoints 1000 per 5 minutes (budgeted as one
//! bucket, since the docs do not say whether it is per endpoint). They are
//! counted here, on a sliding window, before each request leaves: a venue
//! 429 on them would pause every request of the IP.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use keel_core::venue::VenueError;

/// Requests per window on the funding endpoints.
pub const FUNDING_REQUESTS_PER_5M: u32 = 500;
/// Requests per window on `/futures/data/*`.
pub const FUTURES_DATA_REQUESTS_PER_5M: u32 = 1000;
/// The window of both buckets.
pub const BUCKET_WINDOW: Duration = Duration::from_secs(300);

/// A sliding-window request counter.
#[derive(Debug)]
pub struct Bucket {
    name: &'static str,
    limit: u32,
    window: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl Bucket {
    /// A bucket of `limit` requests per `window`, named for errors.
    pub fn new(name: &'static str, limit: u32, window: Duration) -> Self {
        Self { name, limit, window, sent: Mutex::new(VecDeque::new()) }
    }

    /// How long until a request may leave (zero: now), counting it when it may.
    fn try_take(&self, now: Instant) -> Duration {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        while sent.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            sent.pop_front();
        }
        if sent.len() < self.limit as usize {
            sent.push_back(now);
            return Duration::ZERO;
        }
        sent.front().map_or(Duration::ZERO, |oldest| (*oldest + self.window).saturating_duration_since(now))
    }

    /// Takes one request from the bucket: at once, after a wait of at most
    /// `max_wait`, or refused as rate limited with the time to wait.
    pub async fn take(&self, max_wait: Duration) -> Result<(), VenueError> {
        loop {
            let wait = self.try_take(Instant::now());
            if wait.is_zero() {
                return Ok(());
            }
            if wait > max_wait {
                tracing::warn!(bucket = self.name, wait_ms = wait.as_millis() as u64, "binance futures bucket full");
                return Err(VenueError::RateLimited { retry_after_ms: wait.as_millis() as u64 });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Requests counted in the current window.
    pub fn used(&self) -> usize {
        let now = Instant::now();
        let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.iter().filter(|t| now.duration_since(**t) < self.window).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_bucket_refuses_with_the_wait_and_frees_after_the_window() {
        let b = Bucket::new("funding", 2, Duration::from_millis(200));
        b.take(Duration::ZERO).await.unwrap();
        b.take(Duration::ZERO).await.unwrap();
        match b.take(Duration::ZERO).await {
            Err(VenueError::RateLimited { retry_after_ms }) => assert!(retry_after_ms <= 200, "{retry_after_ms}"),
            other => panic!("expected rate limited, got {other:?}"),
        }
        assert_eq!(b.used(), 2);
        // Allowed to wait out the window, the third request goes.
        b.take(Duration::from_secs(5)).await.unwrap();
        assert_eq!(b.used(), 1);
    }
}
