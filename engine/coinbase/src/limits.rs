//! Request pacing (reference §7): Coinbase allows 30 authenticated requests
//! a second per key and 10 public ones a second per IP. A token bucket per
//! surface keeps the adapter under both, so 429s stay the exception.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Authenticated requests per second per key.
pub const PRIVATE_PER_S: u32 = 30;

/// Public requests per second per IP.
pub const PUBLIC_PER_S: u32 = 10;

/// A token bucket refilled at `per_s` a second, holding at most `per_s`
/// (a one-second burst). Tokens are counted as f64: pacing, not money.
pub struct Bucket {
    per_s: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A full bucket of `per_s` tokens.
    pub fn new(per_s: u32) -> Self {
        let per_s = f64::from(per_s.max(1));
        Self { per_s, state: Mutex::new((per_s, Instant::now())) }
    }

    /// How long until a token is free, taking it now if one is (`Duration::ZERO`).
    fn reserve(&self, now: Instant) -> Duration {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = *st;
        let tokens = (tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_s).min(self.per_s);
        if tokens >= 1.0 {
            *st = (tokens - 1.0, now);
            Duration::ZERO
        } else {
            *st = (tokens, now);
            Duration::from_secs_f64((1.0 - tokens) / self.per_s)
        }
    }

    /// Takes a token, waiting for one up to `max_wait`; past that, the wait
    /// it would have needed (ms) is the error and nothing is taken.
    pub async fn take(&self, max_wait: Duration) -> Result<(), u64> {
        loop {
            let wait = self.reserve(Instant::now());
            if wait.is_zero() {
                return Ok(());
            }
            if wait > max_wait {
                return Err(wait.as_millis() as u64);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_spaces_requests_at_its_rate() {
        let b = Bucket::new(10);
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(b.reserve(t0), Duration::ZERO, "request {i} of the burst");
        }
        let wait = b.reserve(t0);
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        // A tenth of a second later one more token has come back.
        assert_eq!(b.reserve(t0 + Duration::from_millis(100)), Duration::ZERO);
        assert!(b.reserve(t0 + Duration::from_millis(100)) > Duration::ZERO);
    }
}
