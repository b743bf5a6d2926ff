//! Who gets throttled, and for what.
//!
//! A token bucket per client address, in two places only:
//! - failed authentications (a missing or wrong bearer token or webhook
//!   secret): after `[http] rate_limit_burst` of them an address answers 429
//!   to further *failed* attempts until its bucket refills. A request with
//!   the right credential is never refused by this lockout, whatever else
//!   came from the same address, so a flood of bad requests cannot lock the
//!   operator out of the emergency stop;
//! - the open probes `/health`, `/ready` and `/metrics`, with their own
//!   generous limit (`[http] probe_rate_limit_*`), so a monitor is never
//!   throttled by the API's traffic and the API never by the monitor's.
//!
//! Authenticated requests are not rate limited: the token holder is the
//! operator, and a dashboard polling several times a second must not see 429.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket per client address.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` events a minute after a burst of `burst` (0 per minute = no limit).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_second: f64::from(per_minute) / 60.0, burst: f64::from(burst.max(1)), buckets: Mutex::default() }
    }

    /// Takes one token for `ip`; `Err(wait)` when the client must wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if buckets.len() > 10_000 {
            // Forget clients whose bucket has refilled, so memory stays bounded.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

/// The paths anyone may call, with their own limit.
pub const PROBES: [&str; 3] = ["/health", "/ready", "/metrics"];

/// The two limits of the API, and the log of what they refuse.
pub struct Guard {
    failures: RateLimiter,
    probes: RateLimiter,
    refusals: RefusalLog,
}

impl Guard {
    /// The limits of `[http]`.
    pub fn new(http: &crate::config::HttpConfig) -> Self {
        Self {
            failures: RateLimiter::new(http.rate_limit_per_minute, http.rate_limit_burst),
            probes: RateLimiter::new(http.probe_rate_limit_per_minute, http.probe_rate_limit_burst),
            refusals: RefusalLog::default(),
        }
    }

    /// Notes an answer: a 401 or 429 gets a WARN line naming the remote
    /// address, the route and the status — never the credential presented —
    /// at most one per address per [`REFUSAL_LOG_EVERY`] (the next line says
    /// how many were not logged), and at most [`REFUSAL_LOG_BURST`] lines for
    /// all addresses together in that time, so a flood cannot flood the log.
    pub fn answered(&self, status: u16, route: &str, ip: Option<IpAddr>) {
        if status == 401 || status == 429 {
            self.refusals.note(status, route, ip);
        }
    }

    /// Counts a failed authentication from `ip`; `Err(wait)` when the address
    /// has used up its failures and is locked out for `wait`.
    pub fn failed_auth(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        ip.map_or(Ok(()), |ip| self.failures.check(ip))
    }

    /// Takes one probe request for `ip` when `path` is a probe; `Err(wait)`
    /// when the address must wait. Every other path passes.
    pub fn probe(&self, path: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        match ip {
            Some(ip) if PROBES.contains(&path) => self.probes.check(ip),
            _ => Ok(()),
        }
    }
}

/// Least time between two refusal lines about one address.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Refusal lines for all addresses together per [`REFUSAL_LOG_EVERY`].
pub const REFUSAL_LOG_BURST: u32 = 20;

/// Per address: when its last line was written and how many refusals since
/// went unlogged; and a bucket bounding the lines for every address.
struct RefusalLog {
    seen: Mutex<HashMap<Option<IpAddr>, (Instant, u64)>>,
    lines: RateLimiter,
}

impl Default for RefusalLog {
    fn default() -> Self {
        let per_minute = REFUSAL_LOG_BURST * 60 / REFUSAL_LOG_EVERY.as_secs().max(1) as u32;
        Self { seen: Mutex::default(), lines: RateLimiter::new(per_minute, REFUSAL_LOG_BURST) }
    }
}

impl RefusalLog {
    fn note(&self, status: u16, route: &str, ip: Option<IpAddr>) {
        let suppressed = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if seen.len() > 10_000 {
                seen.retain(|_, (at, _)| now.duration_since(*at) < REFUSAL_LOG_EVERY);
            }
            match seen.get_mut(&ip) {
                Some((at, skipped)) if now.duration_since(*at) < REFUSAL_LOG_EVERY => {
                    *skipped += 1;
                    return;
                }
                _ => {}
            }
            // All addresses together: the bucket's key is one fixed address.
            if self.lines.check(IpAddr::from([0, 0, 0, 0])).is_err() {
                return;
            }
            seen.insert(ip, (now, 0)).map_or(0, |(_, skipped)| skipped)
        };
        let remote = ip.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        let what = if status == 401 { "authentication failed" } else { "throttled" };
        tracing::warn!(remote = %remote, status, route = %route, not_logged_since = suppressed, "HTTP request refused: {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_a_burst_then_refuses() {
        let l = RateLimiter::new(60, 3);
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(l.check(ip).is_ok());
        assert!(l.check(ip).is_ok());
        assert!(l.check(ip).is_ok());
        assert!(l.check(ip).is_err());
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(l.check(other).is_ok());
        assert!(RateLimiter::new(0, 1).check(ip).is_ok());
    }

    #[test]
    fn probes_and_failures_have_separate_buckets() {
        let http = crate::config::HttpConfig {
            rate_limit_per_minute: 60,
            rate_limit_burst: 1,
            probe_rate_limit_per_minute: 60,
            probe_rate_limit_burst: 1,
            ..Default::default()
        };
        let g = Guard::new(&http);
        let ip = Some([127, 0, 0, 1].into());
        assert!(g.failed_auth(ip).is_ok());
        assert!(g.failed_auth(ip).is_err(), "second failure within the second is locked out");
        assert!(g.probe("/metrics", ip).is_ok(), "a lockout does not touch the probes");
        assert!(g.probe("/health", ip).is_err());
        assert!(g.probe("/api/v1/status", ip).is_ok(), "only probes take from the probe bucket");
    }
}
