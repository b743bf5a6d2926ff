//! Crash-loop protection: Keel counts its own starts (kept in the store) and,
//! after several within a minute, waits before its first venue call. A
//! supervisor restarting a crashing engine every few seconds then cannot
//! spend the venue's request weight and get the address banned.

use std::time::Duration;

use keel_core::store::Store;

/// The store key of the recent start times (ms since the epoch).
const META_STARTS: &str = "recent_starts";

/// Starts within this window count.
const WINDOW_MS: i64 = 60_000;

/// Each start beyond them waits this much longer, up to [`MAX_WAIT`].
const STEP: Duration = Duration::from_secs(5);

/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// How long a start waits given the earlier starts' times, when `free`
/// starts a minute go without waiting (`[engine] free_starts_per_minute`),
/// and the list to keep (those in the window, with this one).
pub fn wait_for(earlier: &[i64], now_ms: i64, free: usize) -> (Duration, Vec<i64>) {
    let mut kept: Vec<i64> = earlier.iter().copied().filter(|t| now_ms - *t < WINDOW_MS && *t <= now_ms).collect();
    kept.push(now_ms);
    let beyond = kept.len().saturating_sub(free) as u32;
    (STEP.saturating_mul(beyond).min(MAX_WAIT), kept)
}

/// Records this start and waits as [`wait_for`] says, logging why. A store
/// that cannot keep the count does not stop the start (the store's own
/// checks decide about the store).
pub async fn pace(store: &dyn Store, now_ms: i64, free: usize) {
    let earlier: Vec<i64> =
        store.meta_json(META_STARTS).ok().flatten().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let (wait, kept) = wait_for(&earlier, now_ms, free);
    if let Err(e) = store.put_meta_json(META_STARTS, &serde_json::json!(kept), true) {
        tracing::warn!(error = %e, "cannot record this start (crash-loop protection)");
    }
    if !wait.is_zero() {
        tracing::warn!(
            starts_last_minute = kept.len(),
            wait_s = wait.as_secs(),
            "crash-loop protection: {} starts in the last minute; waiting before contacting the venue",
            kept.len()
        );
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_beyond_the_free_ones_wait_longer_each_time() {
        let now = 1_000_000;
        let cases: Vec<(Vec<i64>, u64, usize)> = vec![
            (vec![], 0, 1),
            (vec![now - 1000, now - 2000, now - 3000, now - 4000], 0, 5),
            (vec![now - 1000, now - 2000, now - 3000, now - 4000, now - 5000], 5, 6),
            ((1..=20).map(|i| now - i * 1000).collect(), 30, 21),
            // Old starts no longer count.
            (vec![now - 61_000, now - 70_000, now - 90_000, now - 100_000, now - 120_000], 0, 1),
        ];
        for (earlier, wait_s, kept) in cases {
            let (w, k) = wait_for(&earlier, now, 5);
            assert_eq!((w.as_secs(), k.len()), (wait_s, kept), "{earlier:?}");
        }
    }
}
