//! `GET /api/v1/candles?symbol=BTCUSDT&interval=1m&limit=300`: closed klines
//! from the venue for the console's chart, oldest first, decimals as strings:
//! `{"symbol","interval","candles":[{"t":open_ms,"o","h","l","c","v"}]}`.
//!
//! Answers are kept for [`CACHE_FOR`] per symbol and interval, so page loads
//! and reloads do not spend the venue's request weight (which trading needs).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use keel_core::market::Bar;
use keel_core::venue::{Venue, VenueError};
use keel_core::Symbol;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{authorize, ApiError, ApiResult, ApiState};

/// Candles returned when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 300;

/// The most candles one request may ask for: one venue request (Binance serves
/// 1000 klines a request) holds them and the two extra bars asked around them.
pub const MAX_LIMIT: usize = 998;

/// How long a venue answer is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(5);

/// The intervals served, as written in the query, and their length.
pub const INTERVALS: [(&str, i64); 14] = [
    ("1m", 60_000),
    ("3m", 180_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("30m", 1_800_000),
    ("1h", 3_600_000),
    ("2h", 7_200_000),
    ("4h", 14_400_000),
    ("6h", 21_600_000),
    ("8h", 28_800_000),
    ("12h", 43_200_000),
    ("1d", 86_400_000),
    ("3d", 259_200_000),
    ("1w", 604_800_000),
];

/// An interval's length in ms, or `None` for one not in [`INTERVALS`].
pub fn interval_ms(text: &str) -> Option<i64> {
    INTERVALS.iter().find(|(name, _)| *name == text).map(|(_, ms)| *ms)
}

/// Venue answers kept per symbol and interval (one server's).
#[derive(Debug, Default)]
pub struct CandleCache {
    entries: Mutex<HashMap<(Symbol, i64), Cached>>,
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    /// How many were asked for: an answer for fewer is cut from it.
    limit: usize,
    bars: Vec<Bar>,
}

impl CandleCache {
    /// The last `limit` bars fetched for the key within [`CACHE_FOR`] of `now`, if enough were fetched.
    fn get(&self, key: &(Symbol, i64), limit: usize, now: Instant) -> Option<Vec<Bar>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let c = entries.get(key).filter(|c| now.saturating_duration_since(c.at) < CACHE_FOR && c.limit >= limit)?;
        Some(c.bars[c.bars.len().saturating_sub(limit)..].to_vec())
    }

    fn put(&self, key: (Symbol, i64), limit: usize, bars: Vec<Bar>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the configured symbols × intervals; stale ones go first.
        entries.retain(|_, c| now.saturating_duration_since(c.at) < CACHE_FOR);
        entries.insert(key, Cached { at: now, limit, bars });
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CandlesQuery {
    symbol: Option<String>,
    interval: Option<String>,
    limit: Option<String>,
}

/// The `GET /api/v1/candles` handler.
pub(super) async fn candles(req: HttpRequest, state: web::Data<ApiState>, cache: web::Data<CandleCache>) -> ApiResult {
    authorize(&req, &state)?;
    let query = web::Query::<CandlesQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let symbol = query.symbol.as_deref().unwrap_or_default().to_ascii_uppercase();
    if state.config.symbol(&symbol).is_none() {
        return Err(ApiError::bad_request(format!("symbol: `{symbol}` is not a configured symbol")));
    }
    let interval = query.interval.as_deref().unwrap_or("1m");
    let Some(ms) = interval_ms(interval) else {
        let known: Vec<&str> = INTERVALS.iter().map(|(name, _)| *name).collect();
        return Err(ApiError::bad_request(format!("interval: `{interval}` is not one of {}", known.join(", "))));
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(ApiError::bad_request(format!("limit must be a number from 1 to {MAX_LIMIT}"))),
        },
    };
    let key = (Symbol::new(&symbol), ms);
    let bars = match cache.get(&key, limit, Instant::now()) {
        Some(bars) => bars,
        None => {
            let bars = recent_bars(state.handle.venue().as_ref(), &key.0, ms, limit).await.map_err(venue_error)?;
            cache.put(key, limit, bars.clone(), Instant::now());
            bars
        }
    };
    let candles: Vec<Value> = bars.iter().map(candle_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "symbol": symbol, "interval": interval, "candles": candles })))
}

/// The newest `limit` closed bars, asked from a start time on the venue's own
/// clock. Never a "most recent" request (no start): the Binance adapter takes
/// those as a strategy's warm-up and moves the mark its market stream
/// backfills from, so a console page loaded while the stream resubscribes
/// could make the strategy skip bars. The Discord charts use it too.
pub(crate) async fn recent_bars(
    venue: &dyn Venue,
    symbol: &Symbol,
    interval_ms: i64,
    limit: usize,
) -> Result<Vec<Bar>, VenueError> {
    let now = venue.server_time().await?;
    // `limit` whole bars back plus the one still open (dropped as not closed).
    let start = now - interval_ms * (limit as i64 + 1);
    let mut bars = venue.klines(symbol, interval_ms, Some(start), limit + 2).await?;
    let extra = bars.len().saturating_sub(limit);
    bars.drain(..extra);
    Ok(bars)
}

fn candle_json(bar: &Bar) -> Value {
    let s = |v: keel_core::Decimal| v.normalize().to_string();
    json!({ "t": bar.open_time, "o": s(bar.open), "h": s(bar.high), "l": s(bar.low), "c": s(bar.close), "v": s(bar.volume) })
}

/// A venue that refuses the request (an interval it does not serve) is the
/// caller's 400; a venue that fails is a 502.
fn venue_error(e: VenueError) -> ApiError {
    match e {
        VenueError::Rejected { code, reason } => {
            ApiError::bad_request(format!("the venue refused these candles ({code}): {reason}"))
        }
        e => ApiError::new(StatusCode::BAD_GATEWAY, format!("the venue did not answer for candles: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_from_the_list_only() {
        let cases = [
            ("1m", Some(60_000)),
            ("5m", Some(300_000)),
            ("15m", Some(900_000)),
            ("1h", Some(3_600_000)),
            ("4h", Some(14_400_000)),
            ("1d", Some(86_400_000)),
            ("7m", None),
            ("1M", None),
            ("", None),
            ("60s", None),
        ];
        for (text, want) in cases {
            assert_eq!(interval_ms(text), want, "{text:?}");
        }
    }

    fn bar(t: i64) -> Bar {
        let p: keel_core::Decimal = "1.50".parse().unwrap_or_default();
        Bar {
            symbol: Symbol::new("BTCUSDT"),
            open_time: t,
            close_time: t + 59_999,
            open: p,
            high: p,
            low: p,
            close: p,
            volume: p,
        }
    }

    #[test]
    fn the_cache_serves_fewer_fresh_bars_and_nothing_stale_or_longer() {
        let cache = CandleCache::default();
        let t0 = Instant::now();
        let key = (Symbol::new("BTCUSDT"), 60_000);
        cache.put(key.clone(), 3, vec![bar(0), bar(60_000), bar(120_000)], t0);
        let times = |bars: Option<Vec<Bar>>| bars.map(|b| b.iter().map(|b| b.open_time).collect::<Vec<_>>());
        assert_eq!(times(cache.get(&key, 2, t0)), Some(vec![60_000, 120_000]), "the newest two");
        assert_eq!(times(cache.get(&key, 3, t0 + CACHE_FOR / 2)), Some(vec![0, 60_000, 120_000]));
        assert_eq!(times(cache.get(&key, 4, t0)), None, "more than was fetched");
        assert_eq!(times(cache.get(&key, 2, t0 + CACHE_FOR)), None, "stale");
        assert_eq!(times(cache.get(&(Symbol::new("ETHUSDT"), 60_000), 1, t0)), None, "another symbol");
    }

    #[test]
    fn a_candle_has_string_decimals_without_trailing_zeros() {
        assert_eq!(
            candle_json(&bar(60_000)),
            json!({ "t": 60_000, "o": "1.5", "h": "1.5", "l": "1.5", "c": "1.5", "v": "1.5" })
        );
    }
}
