//! The sandbox's USDⓈ-M perpetuals (read-only market data): one perpetual
//! per spot symbol, following that symbol's simulated price path, served on
//! `fapi` REST ([`rest`]) and the routed futures streams ([`ws`]).
//!
//! * **Index price** = the spot symbol's last price; **mark price** = index ×
//!   (1 + basis), the basis a slow sine per symbol (`basis_bps` amplitude).
//! * **Funding** settles on each symbol's own interval (`funding_interval_hours`,
//!   default 8; ETHUSDT runs 4 h in the default set), on the market's
//!   simulated clock — the clock of the spot bars — at whole multiples of the
//!   interval. The rate is Binance's formula over the interval's average
//!   premium: `P + clamp(I − P, −0.05 %, 0.05 %)`, clamped to ±`rate_cap`.
//!   The live estimate is the same formula over the interval so far. As on
//!   Binance since 2025-05-02, a settlement at the cap or floor switches the
//!   symbol to hourly settlements from the next hour (`fundingInfo` then
//!   lists it at 1 h), and 16 hourly settlements in a row within ±0.025 %
//!   switch it back to its own interval.
//! * **Open interest** moves with activity: `oi_per_volume` × the base
//!   volume traded in the last hour of bars (account fills included, since
//!   they print on the tape). Its history has one row per period end that
//!   had bars; periods without any are missing, as on Binance.
//!
//! Every futures time (`time`, `E`, `nextFundingTime`, `fundingTime`,
//! `timestamp`) is on the market's clock, so funding times compare with the
//! events that announce them at any `speed`; at speed 1 that is the server
//! clock. Settled rows are made when a request or a stream tick first sees
//! the market past a funding time (what a client sees is the same); after a
//! restart they are made again from the bars the sandbox kept.

pub(crate) mod rest;
pub(crate) mod ws;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use keel_core::market::Bar;

use super::exchange::{d8, ExchangeState, BAR_MS};

const HOUR_MS: i64 = 3_600_000;
/// The basis completes one cycle in this much simulated time (not a
/// multiple of any funding interval, so settled rates differ).
const BASIS_PERIOD_MS: i64 = 6 * HOUR_MS + 7 * 60_000;
/// Binance's interest component per interval (0.01 %).
const INTEREST_RATE: Decimal = Decimal::from_parts(1, 0, 0, false, 4);
/// The clamp of `I − P` in Binance's funding formula (0.05 %).
const INTEREST_CLAMP: f64 = 0.0005;
/// Settled rows kept per symbol.
const SETTLED_KEEP: usize = 5_000;
/// Hourly settlements in a row within [`CALM_RATE`] that end an hourly spell.
const CALM_SETTLEMENTS: u32 = 16;
/// The largest |rate| that counts as calm (0.025 %).
const CALM_RATE: Decimal = Decimal::from_parts(25, 0, 0, false, 5);
/// Open interest counts the volume of this many 1m bars.
const OI_WINDOW_BARS: i64 = 60;

/// `[sandbox.usdm]`: the perpetuals' parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsdmConfig {
    /// Hours between funding settlements by symbol; a symbol not listed
    /// settles every 8 hours (and is not listed by `fundingInfo`).
    pub funding_interval_hours: BTreeMap<String, u32>,
    /// Amplitude of the mark price's basis over the index (basis points).
    pub basis_bps: Decimal,
    /// Cap (and, negated, floor) of a funding rate.
    pub rate_cap: Decimal,
    /// Caps of particular symbols (others: `rate_cap`).
    pub rate_caps: BTreeMap<String, Decimal>,
    /// Open interest per unit of base volume traded in the last hour.
    pub oi_per_volume: Decimal,
    /// fapi `REQUEST_WEIGHT` per minute (its own budget, not spot's).
    pub weight_limit_1m: u64,
    /// Requests per 5 minutes on `fundingRate` + `fundingInfo`.
    pub funding_requests_per_5m: u64,
    /// Requests per 5 minutes on `/futures/data/*`.
    pub futures_data_requests_per_5m: u64,
}

impl Default for UsdmConfig {
    fn default() -> Self {
        Self {
            funding_interval_hours: [("ETHUSDT".to_string(), 4)].into_iter().collect(),
            basis_bps: Decimal::new(15, 0),
            rate_cap: Decimal::new(2, 2),
            rate_caps: BTreeMap::new(),
            oi_per_volume: Decimal::new(40, 0),
            weight_limit_1m: 2_400,
            funding_requests_per_5m: 500,
            futures_data_requests_per_5m: 1_000,
        }
    }
}

impl UsdmConfig {
    /// Hours between the symbol's settlements.
    pub fn interval_hours(&self, symbol: &str) -> u32 {
        self.funding_interval_hours.get(symbol).copied().unwrap_or(keel_core::futures::DEFAULT_FUNDING_INTERVAL_HOURS)
    }

    /// The symbol's rate cap (and, negated, floor).
    pub fn cap(&self, symbol: &str) -> Decimal {
        self.rate_caps.get(symbol).copied().unwrap_or(self.rate_cap).abs()
    }

    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), keel_core::config::ConfigError> {
        for (key, cap) in std::iter::once(("rate_cap".to_string(), &self.rate_cap))
            .chain(self.rate_caps.iter().map(|(s, c)| (format!("rate_caps.{s}"), c)))
        {
            if *cap <= Decimal::ZERO {
                return Err(keel_core::config::ConfigError::new(format!("sandbox.usdm.{key}"), "must be above 0"));
            }
        }
        for (symbol, hours) in &self.funding_interval_hours {
            if !(1..=24).contains(hours) || 24 % hours != 0 {
                return Err(keel_core::config::ConfigError::new(
                    format!("sandbox.usdm.funding_interval_hours.{symbol}"),
                    "must divide 24 (1, 2, 3, 4, 6, 8, 12 or 24)",
                ));
            }
        }
        Ok(())
    }
}

/// A settled funding row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settled {
    pub rate: Decimal,
    pub funding_time: i64,
    pub mark_price: Decimal,
}

#[derive(Debug, Default)]
struct SymFunding {
    /// The next settlement (simulated ms); 0 until first seen.
    next: i64,
    /// Settling hourly after a settlement at the cap.
    hourly: bool,
    /// Calm hourly settlements in a row.
    calm: u32,
    settled: VecDeque<Settled>,
}

/// The perpetuals' state (settled funding) and request limits beside the exchange.
#[derive(Debug)]
pub(crate) struct Usdm {
    pub(crate) cfg: UsdmConfig,
    pub(crate) limits: rest::FapiLimits,
    funding: Mutex<BTreeMap<String, SymFunding>>,
}

/// The futures routes: `fapi` REST and the routed streams.
pub(crate) fn routes() -> axum::Router<std::sync::Arc<super::App>> {
    use axum::routing::{any, get};
    axum::Router::new()
        .route("/fapi/v1/{*rest}", any(rest::handle))
        .route("/futures/data/{*rest}", any(rest::handle))
        .route("/market/stream", get(ws::market_combined))
        .route("/public/stream", get(ws::public_combined))
        .route("/market/ws", get(ws::market_raw))
        .route("/market/ws/{*tail}", get(ws::market_raw_tail))
        .route("/public/ws", get(ws::public_raw))
        .route("/public/ws/{*tail}", get(ws::public_raw_tail))
}

/// A perpetual's values at one moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    pub symbol: String,
    pub mark: Decimal,
    pub index: Decimal,
    pub estimate: Decimal,
    pub next_funding: i64,
    pub time: i64,
}

impl Snapshot {
    /// The `premiumIndex` object.
    pub fn premium_json(&self) -> Value {
        json!({
            "symbol": self.symbol, "markPrice": d8(self.mark), "indexPrice": d8(self.index),
            "estimatedSettlePrice": d8(self.index), "lastFundingRate": d8(self.estimate),
            "interestRate": d8(interest()), "nextFundingTime": self.next_funding, "time": self.time,
        })
    }

    /// The `markPriceUpdate` event (`st` 1: USDⓈ-M).
    pub fn event_json(&self) -> Value {
        json!({
            "e": "markPriceUpdate", "E": self.time, "s": self.symbol, "p": d8(self.mark), "i": d8(self.index),
            "P": d8(self.index), "r": d8(self.estimate), "ap": d8(self.mark), "T": self.next_funding, "st": 1,
        })
    }
}

fn interest() -> Decimal {
    INTEREST_RATE
}

fn dec(x: f64) -> Decimal {
    Decimal::from_f64(x).unwrap_or_default().round_dp(8)
}

/// A per-symbol phase in [0, 2π) from its name (stable across runs).
fn phase(symbol: &str) -> f64 {
    let h = symbol.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (h % 10_000) as f64 / 10_000.0 * std::f64::consts::TAU
}

/// A symbol's simulated circulating supply (`CMCCirculatingSupply`): a
/// constant per symbol, from its name, between 10 million and 1 billion.
pub(crate) fn circulating_supply(symbol: &str) -> Decimal {
    let h = symbol.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Decimal::from(10_000_000 + h % 990_000_000)
}

/// The last price of a symbol: its last print, or the newest bar's close.
fn last_price(st: &ExchangeState, symbol: &str) -> Option<Decimal> {
    let v = st.market_view(symbol)?;
    v.tape.last().map(|t| t.price).or_else(|| v.current.map(|b| b.close)).or_else(|| v.history.last().map(|b| b.close))
}

/// The bars (closed, then the one in progress) that opened in `[from, to)`,
/// found by bisection: the history is in time order.
fn bars_opened_in<'a>(st: &'a ExchangeState, symbol: &str, from: i64, to: i64) -> Vec<&'a Bar> {
    let Some(v) = st.market_view(symbol) else { return Vec::new() };
    let (lo, hi) = (v.history.partition_point(|b| b.open_time < from), v.history.partition_point(|b| b.open_time < to));
    let current = v.current.filter(|b| b.open_time >= from && b.open_time < to);
    v.history[lo..hi.max(lo)].iter().chain(current).collect()
}

/// The close of the bar that ends at or contains simulated time `t`.
fn price_at(st: &ExchangeState, symbol: &str, t: i64) -> Option<Decimal> {
    let v = st.market_view(symbol)?;
    let open = (t - 1) - (t - 1).rem_euclid(BAR_MS);
    let i = v.history.partition_point(|b| b.open_time < open);
    match v.history.get(i) {
        Some(b) if b.open_time == open => Some(b.close),
        _ if v.current.is_some_and(|c| c.open_time <= open) => v.current.map(|b| b.close),
        _ => None,
    }
}

impl Usdm {
    /// The perpetuals for `cfg`; a client that keeps going after `429`s is
    /// banned as on spot (`ban_after_429s`, `first_ban_ms`).
    pub(crate) fn new(cfg: UsdmConfig, ban_after_429s: u32, first_ban_ms: i64) -> Self {
        let limits = rest::FapiLimits::new(&cfg, ban_after_429s, first_ban_ms);
        Self { cfg, limits, funding: Mutex::new(BTreeMap::new()) }
    }

    fn interval_ms(&self, symbol: &str) -> i64 {
        i64::from(self.cfg.interval_hours(symbol)) * HOUR_MS
    }

    fn amplitude(&self) -> f64 {
        use rust_decimal::prelude::ToPrimitive;
        self.cfg.basis_bps.to_f64().unwrap_or(0.0) / 10_000.0
    }

    /// The basis (mark over index, as a fraction) at simulated time `t`.
    pub fn basis(&self, symbol: &str, t: i64) -> f64 {
        let w = std::f64::consts::TAU / BASIS_PERIOD_MS as f64;
        self.amplitude() * (w * t as f64 + phase(symbol)).sin()
    }

    /// The average basis over `[a, b]` (the sine's integral).
    fn mean_basis(&self, symbol: &str, a: i64, b: i64) -> f64 {
        if b <= a {
            return self.basis(symbol, b);
        }
        let w = std::f64::consts::TAU / BASIS_PERIOD_MS as f64;
        let (pa, pb) = (w * a as f64 + phase(symbol), w * b as f64 + phase(symbol));
        self.amplitude() * (pa.cos() - pb.cos()) / (w * (b - a) as f64)
    }

    /// Binance's rate for an average premium `p`, clamped to the cap.
    fn rate(&self, symbol: &str, p: f64) -> Decimal {
        use rust_decimal::prelude::ToPrimitive;
        let i = interest().to_f64().unwrap_or(0.0);
        let cap = self.cfg.cap(symbol);
        dec(p + (i - p).clamp(-INTEREST_CLAMP, INTEREST_CLAMP)).clamp(-cap, cap)
    }

    fn mark_of(&self, symbol: &str, index: Decimal, t: i64) -> Decimal {
        (index * (Decimal::ONE + dec(self.basis(symbol, t)))).round_dp(8)
    }

    /// Settles every funding time the market has passed (on first sight of
    /// a symbol: every one since its first bar) and returns each symbol's
    /// next funding time and current interval (ms).
    pub fn settle(&self, st: &ExchangeState) -> BTreeMap<String, (i64, i64)> {
        let now = st.sim_ms;
        let mut all = self.funding.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = BTreeMap::new();
        for (symbol, _) in st.symbols() {
            let own = self.interval_ms(&symbol);
            let cap = self.cfg.cap(&symbol);
            let f = all.entry(symbol.clone()).or_default();
            if f.next == 0 {
                let first_bar = st.market_view(&symbol).and_then(|v| v.history.first().map(|b| b.open_time));
                let from = first_bar.unwrap_or(now);
                f.next = from - from.rem_euclid(own) + own;
            }
            // Far behind (a long skip): settle the last rows kept, not every one.
            let keep_from = now - own * SETTLED_KEEP as i64;
            if f.next < keep_from {
                f.next = keep_from - keep_from.rem_euclid(own) + own;
                f.hourly = false;
            }
            while f.next <= now {
                let t = f.next;
                let interval = if f.hourly { HOUR_MS } else { own };
                let mark = price_at(st, &symbol, t).map(|p| self.mark_of(&symbol, p, t)).unwrap_or_default();
                let rate = self.rate(&symbol, self.mean_basis(&symbol, t - interval, t));
                f.settled.push_back(Settled { rate, funding_time: t, mark_price: mark });
                if f.settled.len() > SETTLED_KEEP {
                    f.settled.pop_front();
                }
                if f.hourly {
                    f.calm = if rate.abs() <= CALM_RATE { f.calm + 1 } else { 0 };
                    if f.calm >= CALM_SETTLEMENTS {
                        f.hourly = false;
                    }
                } else if rate.abs() >= cap {
                    (f.hourly, f.calm) = (true, 0);
                }
                f.next = if f.hourly { t + HOUR_MS } else { t - t.rem_euclid(own) + own };
            }
            next.insert(symbol, (f.next, if f.hourly { HOUR_MS } else { own }));
        }
        next
    }

    /// Each symbol's current funding interval in hours (after settling).
    pub fn interval_hours_now(&self, st: &ExchangeState) -> BTreeMap<String, u32> {
        self.settle(st).into_iter().map(|(s, (_, ms))| (s, u32::try_from(ms / HOUR_MS).unwrap_or(8))).collect()
    }

    /// Settled rows of a symbol, oldest first.
    pub fn settled(&self, symbol: &str) -> Vec<Settled> {
        let all = self.funding.lock().unwrap_or_else(|p| p.into_inner());
        all.get(symbol).map(|f| f.settled.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every perpetual's values now (settling first), by symbol.
    pub fn snapshots(&self, st: &ExchangeState) -> Vec<Snapshot> {
        let next = self.settle(st);
        let now = st.sim_ms;
        next.into_iter()
            .filter_map(|(symbol, (next_funding, interval))| {
                let index = last_price(st, &symbol)?;
                let estimate = self.rate(&symbol, self.mean_basis(&symbol, next_funding - interval, now));
                Some(Snapshot {
                    mark: self.mark_of(&symbol, index, now),
                    index,
                    estimate,
                    next_funding,
                    time: now,
                    symbol,
                })
            })
            .collect()
    }

    /// Open interest at simulated time `t` from the bars of the hour before;
    /// none when no bar of that hour is known.
    pub fn open_interest_at(&self, st: &ExchangeState, symbol: &str, t: i64) -> Option<Decimal> {
        let bars = bars_opened_in(st, symbol, t - OI_WINDOW_BARS * BAR_MS, t);
        if bars.is_empty() {
            return None;
        }
        let volume: Decimal = bars.iter().map(|b| b.volume).sum();
        Some((volume * self.cfg.oi_per_volume).round_dp(3))
    }

    /// Open interest and its quote value at the end of each period in
    /// `[start, end]` that had bars: the first `limit` from `start`, or the
    /// last `limit` up to `end`.
    pub fn oi_history(
        &self,
        st: &ExchangeState,
        symbol: &str,
        period_ms: i64,
        start: Option<i64>,
        end: i64,
        limit: usize,
    ) -> Vec<(i64, Decimal, Decimal)> {
        let row = |e: i64| {
            // A period with no bar of its own is missing, as on Binance.
            if bars_opened_in(st, symbol, e - period_ms, e).is_empty() {
                return None;
            }
            let oi = self.open_interest_at(st, symbol, e)?;
            let mark = self.mark_of(symbol, price_at(st, symbol, e)?, e);
            Some((e, oi, (oi * mark).round_dp(8)))
        };
        let last_end = end - end.rem_euclid(period_ms);
        let mut out = Vec::new();
        match start {
            Some(s) => {
                let mut e = s - s.rem_euclid(period_ms) + if s.rem_euclid(period_ms) == 0 { 0 } else { period_ms };
                while e <= last_end && out.len() < limit {
                    out.extend(row(e));
                    e += period_ms;
                }
            }
            None => {
                let first_bar = st.market_view(symbol).and_then(|v| v.history.first().map(|b| b.open_time));
                let mut e = last_end;
                while out.len() < limit && first_bar.is_some_and(|f| e > f) {
                    out.extend(row(e));
                    e -= period_ms;
                }
                out.reverse();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_follows_binance_formula_and_the_cap() {
        let u = Usdm::new(UsdmConfig::default(), 0, 1);
        // P + clamp(I − P, −0.05 %, 0.05 %) with I = 0.01 %, capped at 2 %.
        let cases = [(0.0, "0.0001"), (0.0003, "0.0001"), (-0.002, "-0.0015"), (0.003, "0.0025"), (0.5, "0.02")];
        for (p, want) in cases {
            assert_eq!(u.rate("BTCUSDT", p), want.parse::<Decimal>().unwrap(), "premium {p}");
        }
    }

    #[test]
    fn the_mean_basis_integrates_the_sine() {
        let u = Usdm::new(UsdmConfig::default(), 0, 1);
        let (a, b) = (1_000_000, 1_000_060);
        // The mean over a short window is the basis at its middle.
        let (m, mid) = (u.mean_basis("BTCUSDT", a, b), u.basis("BTCUSDT", (a + b) / 2));
        assert!((m - mid).abs() < 1e-12, "{m} {mid}");
        // Over a whole cycle the sine averages out.
        assert!(u.mean_basis("BTCUSDT", 0, BASIS_PERIOD_MS).abs() < 1e-12);
    }

    #[test]
    fn intervals_must_divide_the_day() {
        let mut cfg = UsdmConfig::default();
        assert!(cfg.validate().is_ok());
        cfg.funding_interval_hours.insert("BTCUSDT".into(), 5);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("sandbox.usdm.funding_interval_hours.BTCUSDT"), "{err}");
    }
}
