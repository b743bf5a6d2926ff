//! Coinbase's REST rate limits (reference §7): requests per second, per key
//! on private routes (30) and per IP on public ones (10; the sandbox listens
//! on loopback, so one bucket), answered with the `x-ratelimit-*` headers
//! and, past the limit, HTTP 429.

use std::collections::HashMap;
use std::sync::Mutex;

/// One bucket's state after a request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Charged {
    /// The bucket's limit per second.
    pub limit: u32,
    /// Requests left in this second.
    pub remaining: u32,
    /// UNIX second at which the bucket refills.
    pub reset_s: i64,
    /// Whether this request is over the limit.
    pub over: bool,
}

/// Fixed one-second windows by bucket name.
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimits {
    /// Counts a request in `bucket` (limit 0: unlimited, never over).
    pub fn charge(&self, bucket: &str, limit: u32, now_ms: i64) -> Charged {
        let second = now_ms.div_euclid(1000);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let entry = w.entry(bucket.to_string()).or_insert((second, 0));
        if entry.0 != second {
            *entry = (second, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let used = entry.1;
        Charged { limit, remaining: limit.saturating_sub(used), reset_s: second + 1, over: limit > 0 && used > limit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_limit_per_second_and_refills_next_second() {
        let r = RateLimits::default();
        let t = 1_780_000_000_250;
        let got: Vec<bool> = (0..4).map(|_| r.charge("k", 3, t).over).collect();
        assert_eq!(got, [false, false, false, true]);
        assert!(!r.charge("other", 3, t).over, "buckets are separate");
        let next = r.charge("k", 3, t + 800);
        assert_eq!((next.over, next.remaining, next.reset_s), (false, 2, 1_780_000_002));
        assert!(!(0..100).any(|_| r.charge("free", 0, t).over), "0 is unlimited");
    }
}
