//! Client order ids: unique across restarts and crashes without a disk write per order.

use std::sync::atomic::{AtomicU64, Ordering};

/// Generates client order ids `k<run>-<n>`. `run` combines the start time with
/// the store's crash-safe id sequence (read once per start), `n` is an in-memory
/// counter: no id repeats after a crash — nor after the data directory is
/// replaced, which the venue would otherwise see as a reused id — and each id
/// fits Binance's 36-character limit.
#[derive(Debug)]
pub struct ClientIds {
    run: String,
    next: AtomicU64,
}

impl ClientIds {
    /// A generator for one engine run.
    pub fn new(start_ms: u64, run: u64) -> Self {
        Self { run: format!("{}{}", to_base36(start_ms), to_base36(run)), next: AtomicU64::new(1) }
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("k{}-{}", self.run, to_base36(n))
    }
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_short() {
        let a = ClientIds::new(u64::MAX, u64::MAX);
        let x = a.next_id();
        let y = a.next_id();
        assert_ne!(x, y);
        assert!(x.len() <= 36, "{x}");
        assert!(x.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_ne!(ClientIds::new(5, 1).next_id(), ClientIds::new(5, 2).next_id());
        assert_ne!(ClientIds::new(5, 0).next_id(), ClientIds::new(6, 0).next_id());
        assert_eq!(to_base36(35), "z");
        assert_eq!(to_base36(36), "10");
    }
}
