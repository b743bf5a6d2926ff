//! Rate limits as Binance counts them: request weight per IP per minute,
//! shared by REST and the WebSocket API (a WebSocket API connection costs 2);
//! `ORDERS` per account per 10 seconds and per day; and the escalation from
//! `429` to an IP ban (`418`) for a client that keeps sending after a `429`.
//!
//! Every interval is a fixed bucket, as the docs describe: the minute starts
//! at :00, the 10-second interval at :00, :10, :20…, the day at 00:00 UTC.
//! The sandbox serves loopback, so every client counts as one IP.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::exchange::Reject;

const MINUTE_MS: i64 = 60_000;
const TEN_S_MS: i64 = 10_000;
const DAY_MS: i64 = 86_400_000;
/// The longest IP ban Binance documents.
const MAX_BAN_MS: i64 = 3 * DAY_MS;

/// The limits a sandbox enforces (from [`super::SandboxConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    /// `REQUEST_WEIGHT` per minute per IP.
    pub weight_1m: u64,
    /// `ORDERS` per 10 s per account.
    pub orders_10s: u64,
    /// `ORDERS` per day per account.
    pub orders_1d: u64,
    /// Requests answered `429` within one minute after which the IP is banned
    /// (`418`); 0 never bans.
    pub ban_after_429s: u32,
    /// The first ban's length (ms); each later one doubles, up to 3 days.
    pub first_ban_ms: i64,
}

/// What the request-weight gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Within the limit: serve it.
    Pass,
    /// Over the weight limit: `429`, retry after this many ms.
    Limited {
        /// Until the minute ends.
        retry_after_ms: i64,
    },
    /// The IP is banned: `418` until this server time (ms).
    Banned {
        /// When the ban lifts.
        until_ms: i64,
    },
}

#[derive(Debug, Default)]
struct OrderCounts {
    ten_s: (i64, u64),
    day: (i64, u64),
}

#[derive(Debug, Default)]
struct State {
    minute: i64,
    weight: u64,
    limited_in_minute: u32,
    banned_until: i64,
    bans: u32,
    orders: HashMap<u32, OrderCounts>,
}

/// The sandbox's rate-limit counters (one per sandbox, shared by every connection).
#[derive(Debug)]
pub struct Limits {
    cfg: LimitConfig,
    state: Mutex<State>,
}

impl Limits {
    /// Counters for `cfg`, all at zero.
    pub fn new(cfg: LimitConfig) -> Self {
        Self { cfg, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Charges a request's weight and decides whether it is served. A request
    /// over the limit is a `429`; the `ban_after_429s`-th of those in one
    /// minute bans the IP; a banned IP gets `418` until the ban lifts.
    pub fn charge(&self, weight: u64, now_ms: i64) -> Gate {
        let mut st = self.lock();
        roll_minute(&mut st, now_ms);
        if now_ms < st.banned_until {
            return Gate::Banned { until_ms: st.banned_until };
        }
        st.weight += weight;
        if st.weight <= self.cfg.weight_1m {
            return Gate::Pass;
        }
        st.limited_in_minute += 1;
        if self.cfg.ban_after_429s > 0 && st.limited_in_minute > self.cfg.ban_after_429s {
            let length = self.cfg.first_ban_ms.saturating_mul(1 << st.bans.min(20)).min(MAX_BAN_MS);
            st.banned_until = now_ms + length.max(1);
            st.bans += 1;
            st.limited_in_minute = 0;
            return Gate::Banned { until_ms: st.banned_until };
        }
        Gate::Limited { retry_after_ms: MINUTE_MS - now_ms.rem_euclid(MINUTE_MS) }
    }

    /// Gives back a request's weight (a successful order or cancel costs none).
    pub fn refund(&self, weight: u64, now_ms: i64) {
        let mut st = self.lock();
        roll_minute(&mut st, now_ms);
        st.weight = st.weight.saturating_sub(weight);
    }

    /// Weight used in the current minute.
    pub fn used(&self, now_ms: i64) -> u64 {
        let mut st = self.lock();
        roll_minute(&mut st, now_ms);
        st.weight
    }

    /// Counts a new order of `account`; refused with `-1015` and the ms until
    /// the interval that is full resets.
    pub fn count_order(&self, account: u32, now_ms: i64) -> Result<(u64, u64), (Reject, i64)> {
        let cfg = self.cfg;
        let mut st = self.lock();
        let c = st.orders.entry(account).or_default();
        roll(&mut c.ten_s, now_ms, TEN_S_MS);
        roll(&mut c.day, now_ms, DAY_MS);
        if c.ten_s.1 >= cfg.orders_10s {
            let msg = format!("Too many new orders; current limit is {} orders per 10 SECOND.", cfg.orders_10s);
            return Err((Reject::new(-1015, msg), TEN_S_MS - now_ms.rem_euclid(TEN_S_MS)));
        }
        if c.day.1 >= cfg.orders_1d {
            let msg = format!("Too many new orders; current limit is {} orders per DAY.", cfg.orders_1d);
            return Err((Reject::new(-1015, msg), DAY_MS - now_ms.rem_euclid(DAY_MS)));
        }
        c.ten_s.1 += 1;
        c.day.1 += 1;
        Ok((c.ten_s.1, c.day.1))
    }

    /// `account`'s order counts in the current 10 s and day.
    pub fn order_counts(&self, account: u32, now_ms: i64) -> (u64, u64) {
        let mut st = self.lock();
        let c = st.orders.entry(account).or_default();
        roll(&mut c.ten_s, now_ms, TEN_S_MS);
        roll(&mut c.day, now_ms, DAY_MS);
        (c.ten_s.1, c.day.1)
    }

    /// The `REQUEST_WEIGHT` entry of a WebSocket API `rateLimits` array.
    pub fn weight_json(&self, now_ms: i64) -> Value {
        json!({"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
               "limit": self.cfg.weight_1m, "count": self.used(now_ms)})
    }

    /// The two `ORDERS` entries (as `rateLimits` and `GET /api/v3/rateLimit/order` list them).
    pub fn orders_json(&self, account: u32, now_ms: i64) -> [Value; 2] {
        let (ten_s, day) = self.order_counts(account, now_ms);
        [
            json!({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                   "limit": self.cfg.orders_10s, "count": ten_s}),
            json!({"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                   "limit": self.cfg.orders_1d, "count": day}),
        ]
    }

    /// The `-1003` of a request over the weight limit.
    pub fn too_much_weight(&self) -> Reject {
        Reject::new(
            -1003,
            format!(
                "Too much request weight used; current limit is {} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
                self.cfg.weight_1m
            ),
        )
    }
}

/// The `-1003` of a banned IP.
pub fn banned(until_ms: i64) -> Reject {
    Reject::new(
        -1003,
        format!(
            "Way too much request weight used; IP banned until {until_ms}. Please use WebSocket Streams for live updates to avoid bans."
        ),
    )
}

/// Seconds for a `Retry-After` header (rounded up, at least 1).
pub fn retry_after_s(ms: i64) -> u64 {
    (ms.max(1) as u64).div_ceil(1000)
}

fn roll_minute(st: &mut State, now_ms: i64) {
    let minute = now_ms.div_euclid(MINUTE_MS);
    if st.minute != minute {
        st.minute = minute;
        st.weight = 0;
        st.limited_in_minute = 0;
    }
}

fn roll(counter: &mut (i64, u64), now_ms: i64, interval_ms: i64) {
    let bucket = now_ms.div_euclid(interval_ms);
    if counter.0 != bucket {
        *counter = (bucket, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ban_after: u32) -> Limits {
        Limits::new(LimitConfig {
            weight_1m: 10,
            orders_10s: 2,
            orders_1d: 3,
            ban_after_429s: ban_after,
            first_ban_ms: 1000,
        })
    }

    #[test]
    fn weight_resets_on_the_minute_and_refunds() {
        let l = limits(0);
        let t = 120_000 + 59_000;
        assert_eq!(l.charge(10, t), Gate::Pass);
        assert_eq!(l.charge(1, t), Gate::Limited { retry_after_ms: 1_000 });
        l.refund(5, t);
        assert_eq!(l.used(t), 6);
        assert_eq!(l.charge(1, t + 1_000), Gate::Pass, "a new minute starts at zero");
        assert_eq!(l.used(t + 1_000), 1);
    }

    #[test]
    fn repeated_429s_escalate_to_bans_that_double() {
        let l = limits(2);
        let t = 60_000;
        assert_eq!(l.charge(11, t), Gate::Limited { retry_after_ms: 60_000 });
        assert_eq!(l.charge(1, t + 1), Gate::Limited { retry_after_ms: 59_999 });
        assert_eq!(l.charge(1, t + 2), Gate::Banned { until_ms: t + 1_002 }, "the third 429 in a minute bans");
        assert_eq!(l.charge(1, t + 500), Gate::Banned { until_ms: t + 1_002 }, "everything is refused while banned");
        // The next minute: over the limit again, banned for twice as long.
        let t2 = 120_000;
        for i in 0..3 {
            let _ = l.charge(11, t2 + i);
        }
        assert_eq!(l.charge(1, t2 + 10), Gate::Banned { until_ms: t2 + 2 + 2_000 });
    }

    #[test]
    fn orders_count_per_account_in_fixed_intervals() {
        let l = limits(0);
        assert_eq!(l.count_order(1, 10_000), Ok((1, 1)));
        assert_eq!(l.count_order(2, 10_001), Ok((1, 1)), "per account");
        assert_eq!(l.count_order(1, 19_999), Ok((2, 2)));
        let (r, wait) = l.count_order(1, 19_999).unwrap_err();
        assert_eq!((r.code, wait), (-1015, 1));
        assert_eq!(r.msg, "Too many new orders; current limit is 2 orders per 10 SECOND.");
        assert_eq!(l.count_order(1, 20_000), Ok((1, 3)), "the 10 s interval resets at :20");
        let (r, _) = l.count_order(1, 21_000).unwrap_err();
        assert_eq!(r.msg, "Too many new orders; current limit is 3 orders per DAY.");
        assert_eq!(l.order_counts(1, DAY_MS), (0, 0), "the day resets at 00:00 UTC");
    }
}
