//! Start-up that rides out the weather: a venue call refused for a reason
//! that passes (429 with its `Retry-After`, a 418 ban, 5xx and `-1001`,
//! timeouts, dropped connections) is tried again with backoff until the
//! start-up deadline; a refusal that does not pass (bad key, unknown
//! symbol) fails at once. Only calls that may be repeated go through here.

use std::future::Future;
use std::time::{Duration, Instant};

use keel_core::venue::VenueError;

/// The start-up deadline, from `[engine] startup_deadline` (2 minutes by default).
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    until: Instant,
    budget: Duration,
}

/// The default start-up deadline.
pub const DEFAULT_STARTUP_DEADLINE: Duration = Duration::from_secs(120);

impl Patience {
    /// Patience for `budget` from now.
    pub fn new(budget: Duration) -> Self {
        Self { until: Instant::now() + budget, budget }
    }

    /// Time left.
    pub fn left(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }

    /// The whole budget.
    pub fn budget(&self) -> Duration {
        self.budget
    }
}

/// The wait before attempt `n + 1` (from 0): 250 ms doubling, at most 10 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << n.min(6))).min(Duration::from_secs(10))
}

/// How long to wait before trying `e` again (attempt `n`, from 0), or
/// `None` when waiting will not help.
pub fn transient_wait(e: &VenueError, n: u32) -> Option<Duration> {
    let backoff = backoff(n);
    match e {
        VenueError::RateLimited { retry_after_ms } | VenueError::Banned { retry_after_ms } => {
            Some(Duration::from_millis(*retry_after_ms).max(backoff))
        }
        VenueError::NotSent(_) | VenueError::OutcomeUnknown(_) | VenueError::BadResponse(_) => Some(backoff),
        VenueError::Rejected { code: -1001 | -1003 | -1007 | -1008, .. } => Some(backoff),
        VenueError::Rejected { .. } | VenueError::NotFound => None,
    }
}

/// Runs `call` until it succeeds, its error will not pass, or waiting again
/// would go past the deadline; logs each retry.
pub async fn retrying<T, F, Fut>(patience: &Patience, what: &str, mut call: F) -> Result<T, VenueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, VenueError>>,
{
    let mut attempt = 0u32;
    loop {
        let e = match call().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(wait) = transient_wait(&e, attempt) else { return Err(e) };
        if wait > patience.left() {
            tracing::error!(what, error = %e, attempts = attempt + 1, deadline_s = patience.budget().as_secs(), "start-up: venue still refusing at the start-up deadline; giving up");
            return Err(e);
        }
        tracing::warn!(what, error = %e, attempt = attempt + 1, retry_in_ms = wait.as_millis() as u64, "start-up: venue call failed; retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_pass_and_how_long_to_wait() {
        let cases: Vec<(VenueError, u32, Option<u64>)> = vec![
            (VenueError::RateLimited { retry_after_ms: 3000 }, 0, Some(3000)),
            (VenueError::Banned { retry_after_ms: 100 }, 2, Some(1000)),
            (VenueError::NotSent("503".into()), 0, Some(250)),
            (VenueError::OutcomeUnknown("timeout".into()), 3, Some(2000)),
            (VenueError::NotSent("x".into()), 30, Some(10_000)),
            (VenueError::Rejected { code: -1001, reason: "internal".into() }, 1, Some(500)),
            (VenueError::Rejected { code: -2015, reason: "Invalid API-key".into() }, 0, None),
            (VenueError::NotFound, 0, None),
        ];
        for (e, n, want) in cases {
            assert_eq!(transient_wait(&e, n).map(|d| d.as_millis() as u64), want, "{e} attempt {n}");
        }
    }

    #[tokio::test]
    async fn retries_until_it_works_and_gives_up_at_the_deadline() {
        let patience = Patience::new(Duration::from_secs(5));
        let mut calls = 0;
        let got = retrying(&patience, "test", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(VenueError::NotSent("503".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got.unwrap(), 3);
        let short = Patience::new(Duration::from_millis(100));
        let got: Result<(), _> =
            retrying(&short, "test", || async { Err(VenueError::RateLimited { retry_after_ms: 60_000 }) }).await;
        assert!(matches!(got, Err(VenueError::RateLimited { .. })), "a wait past the deadline is not taken");
        let got: Result<(), _> =
            retrying(&patience, "test", || async { Err(VenueError::Rejected { code: -2015, reason: "key".into() }) })
                .await;
        assert!(matches!(got, Err(VenueError::Rejected { .. })), "a refusal that will not pass fails at once");
    }
}
