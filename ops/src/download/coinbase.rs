//! Coinbase candles for `keel data download --venue coinbase`: the public
//! `GET /api/v3/brokerage/market/products/{id}/candles` (no key needed), in
//! windows of 300 buckets (Coinbase refuses more than 350 a request), paced
//! under the public limit of 10 requests a second and waiting out a 429. The
//! adapter's own REST client signs every request with a key, which a
//! download of public data should neither need nor read, so this reads the
//! public endpoints with the adapter's types ([`CandlesResponse`],
//! [`ServerTime`], [`granularity_of`]).

use std::time::{Duration, Instant};

use keel_coinbase::model::{CandlesResponse, ServerTime};
use keel_coinbase::venue::granularity_of;
use keel_core::market::Bar;
use keel_core::Symbol;

/// Production REST host.
pub const COINBASE_REST: &str = "https://api.coinbase.com";

/// Buckets per request.
pub const WINDOW: i64 = 300;

/// The public limit's spacing between requests (10 a second).
const SPACING: Duration = Duration::from_millis(100);

/// Failures tolerated in a row before giving up.
const RETRIES: u32 = 5;

/// The public candles reader.
pub struct Candles {
    http: reqwest::Client,
    base: String,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Candles {
    /// A reader of `base` (`https://api.coinbase.com` or a sandbox's URL).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_string(), last: std::sync::Mutex::new(None) })
    }

    /// A public GET under `/api/v3/brokerage`, paced and retried.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<T> {
        let url = format!("{}/api/v3/brokerage{path}", self.base);
        let mut failures = 0;
        loop {
            let wait = {
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                let wait = last.map_or(Duration::ZERO, |l| SPACING.saturating_sub(l.elapsed()));
                *last = Some(Instant::now() + wait);
                wait
            };
            tokio::time::sleep(wait).await;
            let problem = match self.http.get(&url).query(query).send().await {
                Ok(r) if r.status().is_success() => {
                    let body = r.text().await.map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
                    return serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("{url}: unexpected answer ({e})"));
                }
                Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                    let s = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
                    let ms = s.map_or(1000, |s| s * 1000);
                    eprintln!("{url}: rate limited (HTTP 429); waiting {ms} ms");
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    continue;
                }
                Ok(r) if r.status().is_server_error() => format!("HTTP {}", r.status()),
                Ok(r) => {
                    let status = r.status();
                    let body: String = r.text().await.unwrap_or_default().chars().take(200).collect();
                    anyhow::bail!("{url}: HTTP {status}: {body}");
                }
                Err(e) => e.to_string(),
            };
            failures += 1;
            if failures > RETRIES {
                anyhow::bail!("{url}: {problem}");
            }
            tokio::time::sleep(Duration::from_millis(500 << failures)).await;
        }
    }

    /// The time candles run on (ms): the server's, or a faster sandbox's
    /// market clock when it says so.
    pub async fn now_ms(&self) -> anyhow::Result<i64> {
        let t: ServerTime = self.get("/time", &[]).await?;
        let market = t.market_clock.as_ref().and_then(|m| rust_decimal::prelude::ToPrimitive::to_i64(&m.epoch_millis));
        market.or(t.ms()).ok_or_else(|| anyhow::anyhow!("{}: GET /time gave no time", self.base))
    }

    /// The candles of `product` opening in `[from, to)` (at most [`WINDOW`]
    /// buckets after `from` are asked for), oldest first, and where the next
    /// window starts.
    pub async fn window(&self, product: &str, interval: i64, from: i64, to: i64) -> anyhow::Result<(Vec<Bar>, i64)> {
        let gran = granularity_of(interval)
            .ok_or_else(|| anyhow::anyhow!("--interval: Coinbase candles are 1m 5m 15m 30m 1h 2h 4h 6h 1d"))?;
        let until = to.min(from + WINDOW * interval);
        let query = [
            ("start", from.div_euclid(1000).to_string()),
            ("end", (until - 1).div_euclid(1000).to_string()),
            ("granularity", gran.to_string()),
            ("limit", WINDOW.to_string()),
        ];
        let r: CandlesResponse = self.get(&format!("/market/products/{product}/candles"), &query).await?;
        let symbol = Symbol::new(&product.replace('-', ""));
        let mut bars: Vec<Bar> = r
            .candles
            .into_iter()
            .filter(|c| c.start_ms >= from && c.start_ms < until)
            .map(|c| Bar {
                symbol: symbol.clone(),
                open_time: c.start_ms,
                close_time: c.start_ms + interval - 1,
                open: c.open,
                high: c.high,
                low: c.low,
                close: c.close,
                volume: c.volume,
            })
            .collect();
        bars.sort_by_key(|b| b.open_time);
        bars.dedup_by_key(|b| b.open_time);
        Ok((bars, until))
    }
}
