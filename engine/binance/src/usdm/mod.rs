//! Binance USDⓈ-M futures market data (read-only): [`UsdmClient`] implements
//! [`keel_core::futures::FuturesData`] over `fapi` REST and the mark-price
//! streams on the routed `/market` path (the unrouted `/ws` and `/stream`
//! paths were decommissioned on 2026-04-23 and deliver no mark prices).
//!
//! Its own limits: the fapi request weight (2 400 per minute on production,
//! learned from `exchangeInfo`, paced from `X-MBX-USED-WEIGHT-1M` and with
//! 429/418 handled by the spot adapter's [`RestClient`]), plus the funding
//! and `/futures/data` buckets ([`buckets`]) that the header does not show.
//! Nothing is signed: no key is needed or read.

pub mod buckets;
pub mod model;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use keel_core::futures::{
    FundingIntervals, FundingQuery, FundingSettlement, FuturesData, FuturesFeed, MarkPrice, MarkPriceSpeed,
    OiHistQuery, OpenInterest, OpenInterestStat,
};
use keel_core::symbol::Symbol;
use keel_core::venue::VenueError;

use crate::error::BinanceError;
use crate::rest::{Credentials, LimitState, RestClient};
use buckets::{Bucket, BUCKET_WINDOW, FUNDING_REQUESTS_PER_5M, FUTURES_DATA_REQUESTS_PER_5M};
use model::{
    FundingInfoRow, FundingRateRow, FuturesExchangeInfo, OpenInterestHistRow, OpenInterestRest, PremiumIndexAnswer,
    Ticker24hr,
};

/// Production fapi REST.
pub const MAINNET_REST: &str = "https://fapi.binance.com";
/// Production futures streams (routes `/public`, `/market`, `/private` below it).
pub const MAINNET_WS: &str = "wss://fstream.binance.com";
/// Binance's futures test venue (Demo Trading) REST, reference §1.
pub const DEMO_REST: &str = "https://demo-fapi.binance.com";
/// Binance's futures test venue (Demo Trading) streams.
pub const DEMO_WS: &str = "wss://demo-fstream.binance.com";
/// The fapi request weight per minute on production (before `exchangeInfo` says).
pub const FAPI_WEIGHT_PER_MINUTE: u64 = 2_400;

/// Where and how the USDⓈ-M client connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsdmConfig {
    /// REST base (without `/fapi/v1`).
    pub rest_url: String,
    /// Stream base (without the `/market` route).
    pub ws_url: String,
    /// Per-request timeout (ms).
    pub request_timeout_ms: u64,
    /// The longest a request waits for room in the funding or
    /// `/futures/data` bucket before it is refused as rate limited (ms).
    pub max_bucket_wait_ms: u64,
    /// Requests per 5 minutes on `fundingRate` + `fundingInfo`.
    pub funding_requests_per_5m: u32,
    /// Requests per 5 minutes on `/futures/data/*`.
    pub futures_data_requests_per_5m: u32,
    /// A connected stream that delivers no mark price this long is
    /// reconnected (a wrong route accepts the subscription and stays silent).
    pub stream_silence_ms: u64,
    /// Reconnect streams proactively after this long (ms; Binance closes at 24 h).
    pub reconnect_after_ms: u64,
}

impl Default for UsdmConfig {
    fn default() -> Self {
        Self {
            rest_url: MAINNET_REST.into(),
            ws_url: MAINNET_WS.into(),
            request_timeout_ms: 10_000,
            max_bucket_wait_ms: 2_000,
            funding_requests_per_5m: FUNDING_REQUESTS_PER_5M,
            futures_data_requests_per_5m: FUTURES_DATA_REQUESTS_PER_5M,
            stream_silence_ms: 30_000,
            reconnect_after_ms: 23 * 3600 * 1000,
        }
    }
}

/// The USDⓈ-M market-data client (call [`UsdmClient::exchange_info`] once
/// so all-symbol answers keep to the trading perpetuals). Cheap to share behind an `Arc`.
pub struct UsdmClient {
    rest: Arc<RestClient>,
    /// The trading perpetuals of the last `exchangeInfo`: the all-symbol
    /// answers are cut to them (they may carry quarterlies and, since the
    /// 2026 merge, COIN-M symbols).
    perpetuals: std::sync::RwLock<Option<std::collections::HashSet<String>>>,
    funding: Bucket,
    futures_data: Bucket,
    cfg: UsdmConfig,
}

impl UsdmClient {
    /// A client for `cfg`'s URLs.
    pub fn new(cfg: UsdmConfig) -> Result<Self, BinanceError> {
        // Public endpoints only: the key pair is never used to sign.
        let rest = RestClient::new(&cfg.rest_url, Credentials::new("", ""), 5_000, cfg.request_timeout_ms)?;
        rest.set_weight_limit_1m(FAPI_WEIGHT_PER_MINUTE);
        Ok(Self {
            rest: Arc::new(rest),
            perpetuals: std::sync::RwLock::new(None),
            funding: Bucket::new("funding", cfg.funding_requests_per_5m, BUCKET_WINDOW),
            futures_data: Bucket::new("futures_data", cfg.futures_data_requests_per_5m, BUCKET_WINDOW),
            cfg,
        })
    }

    /// Where it connects and its limits.
    pub fn config(&self) -> &UsdmConfig {
        &self.cfg
    }

    /// The weight state learned from the venue's headers and errors.
    pub fn limits(&self) -> LimitState {
        self.rest.limits()
    }

    /// Requests counted in the funding bucket's current window.
    pub fn funding_bucket_used(&self) -> usize {
        self.funding.used()
    }

    /// Requests counted in the `/futures/data` bucket's current window.
    pub fn futures_data_bucket_used(&self) -> usize {
        self.futures_data.used()
    }

    /// A GET, retried (with the spot client's backoff) when the venue could
    /// not answer: these requests read and change nothing, so a 5xx, a
    /// `-1008` overload, a timeout or a refused connection is simply tried
    /// again, [`READ_RETRIES`] times. A 429 or 418 is not (the limiter pauses).
    async fn get<T: DeserializeOwned>(&self, path: &str, params: Vec<(String, String)>) -> Result<T, VenueError> {
        let mut attempt = 0;
        loop {
            match self.rest.public(path, params.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < READ_RETRIES && retryable(&e) => {
                    attempt += 1;
                    tracing::warn!(path, error = %e, attempt, "binance futures read failed; retrying");
                    tokio::time::sleep(crate::stream::backoff_delay(attempt)).await;
                }
                Err(e) => return Err(e.to_venue()),
            }
        }
    }

    fn max_wait(&self) -> Duration {
        Duration::from_millis(self.cfg.max_bucket_wait_ms)
    }

    /// `GET /fapi/v1/exchangeInfo`; takes the request-weight limit from it.
    pub async fn exchange_info(&self) -> Result<FuturesExchangeInfo, VenueError> {
        let info: FuturesExchangeInfo = self.get("/fapi/v1/exchangeInfo", Vec::new()).await?;
        if let Some(r) =
            info.rate_limits.iter().find(|r| r.rate_limit_type == "REQUEST_WEIGHT" && r.window_ms() == 60_000)
        {
            self.rest.set_weight_limit_1m(r.limit);
        }
        let perps = info.symbols.iter().filter(|s| s.is_trading_perpetual()).map(|s| s.symbol.clone()).collect();
        *self.perpetuals.write().unwrap_or_else(|p| p.into_inner()) = Some(perps);
        Ok(info)
    }

    /// `GET /fapi/v1/ticker/24hr` for one symbol or all (weight 40).
    pub async fn ticker_24hr(&self, symbol: Option<&Symbol>) -> Result<Vec<Ticker24hr>, VenueError> {
        match symbol {
            Some(s) => Ok(vec![self.get("/fapi/v1/ticker/24hr", symbol_param(s)).await?]),
            None => self.get("/fapi/v1/ticker/24hr", Vec::new()).await,
        }
    }
}

/// How often a failed read is tried again.
pub const READ_RETRIES: u32 = 2;

/// Whether a failed read may simply be sent again.
fn retryable(e: &BinanceError) -> bool {
    match e {
        BinanceError::NotSent(_) | BinanceError::NoResponse(_) => true,
        BinanceError::Decode(_) => false,
        BinanceError::Api { code: -1008, .. } => true,
        other => other.outcome_unknown() && !other.is_ban(),
    }
}

fn symbol_param(s: &Symbol) -> Vec<(String, String)> {
    vec![("symbol".into(), s.as_str().to_string())]
}

fn push_opt(p: &mut Vec<(String, String)>, key: &str, v: Option<impl ToString>) {
    if let Some(v) = v {
        p.push((key.to_string(), v.to_string()));
    }
}

#[async_trait]
impl FuturesData for UsdmClient {
    async fn premium_index(&self, symbol: Option<&Symbol>) -> Result<Vec<MarkPrice>, VenueError> {
        let params = symbol.map(symbol_param).unwrap_or_default();
        let answer: PremiumIndexAnswer = self.get("/fapi/v1/premiumIndex", params).await?;
        let all = answer.into_vec();
        if symbol.is_some() {
            return Ok(all.iter().map(|p| p.to_core()).collect());
        }
        let perps = self.perpetuals.read().unwrap_or_else(|p| p.into_inner());
        Ok(model::perpetuals_only(all, perps.as_ref()).iter().map(|p| p.to_core()).collect())
    }

    async fn funding_history(&self, q: &FundingQuery) -> Result<Vec<FundingSettlement>, VenueError> {
        self.funding.take(self.max_wait()).await?;
        let mut p = q.symbol.as_ref().map(symbol_param).unwrap_or_default();
        push_opt(&mut p, "startTime", q.start_ms);
        push_opt(&mut p, "endTime", q.end_ms);
        push_opt(&mut p, "limit", q.limit.map(|l| l.clamp(1, 1000)));
        let rows: Vec<FundingRateRow> = self.get("/fapi/v1/fundingRate", p).await?;
        Ok(rows.iter().map(FundingRateRow::to_core).collect())
    }

    async fn funding_info(&self) -> Result<FundingIntervals, VenueError> {
        self.funding.take(self.max_wait()).await?;
        let rows: Vec<FundingInfoRow> = self.get("/fapi/v1/fundingInfo", Vec::new()).await?;
        Ok(FundingIntervals::new(rows.iter().map(FundingInfoRow::to_core).collect()))
    }

    async fn open_interest(&self, symbol: &Symbol) -> Result<OpenInterest, VenueError> {
        let oi: OpenInterestRest = self.get("/fapi/v1/openInterest", symbol_param(symbol)).await?;
        Ok(oi.to_core())
    }

    async fn open_interest_hist(&self, q: &OiHistQuery) -> Result<Vec<OpenInterestStat>, VenueError> {
        self.futures_data.take(self.max_wait()).await?;
        let mut p = symbol_param(&q.symbol);
        p.push(("period".into(), q.period.as_str().into()));
        push_opt(&mut p, "startTime", q.start_ms);
        push_opt(&mut p, "endTime", q.end_ms);
        push_opt(&mut p, "limit", q.limit.map(|l| l.clamp(1, 500)));
        let rows: Vec<OpenInterestHistRow> = self.get("/futures/data/openInterestHist", p).await?;
        Ok(rows.iter().map(OpenInterestHistRow::to_core).collect())
    }

    async fn subscribe_mark_price(
        &self,
        symbols: &[Symbol],
        speed: MarkPriceSpeed,
    ) -> Result<mpsc::Receiver<FuturesFeed>, VenueError> {
        let url = stream::mark_price_url(&self.cfg.ws_url, symbols, speed);
        let (tx, rx) = mpsc::channel(1024);
        let run = stream::MarkStream {
            url,
            rest: self.rest.clone(),
            silence: Duration::from_millis(self.cfg.stream_silence_ms.max(1)),
            reconnect_after: Duration::from_millis(self.cfg.reconnect_after_ms.max(1000)),
        };
        tokio::spawn(run.run(tx));
        Ok(rx)
    }
}
