//! The Advanced Trade REST client: one fresh JWT per request (its `uri`
//! bound to the method, the host with its port, and the path), the private
//! and public request buckets (reference §7), `429` answered by waiting out
//! `Retry-After` (never a tight loop), the clock offset measured against
//! `GET /time` so tokens carry server time (§2.5), and the classification
//! of every answer into Keel's [`VenueError`] kinds (§8).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use rust_decimal::prelude::ToPrimitive;
use serde::de::DeserializeOwned;
use serde::Serialize;

use keel_core::clock::{Clock, SystemClock};
use keel_core::venue::{VenueAlert, VenueError};
use tokio::sync::broadcast;

use crate::auth::Credentials;
use crate::limits::{Bucket, PRIVATE_PER_S, PUBLIC_PER_S};
use crate::model::{ErrorBody, ServerTime};

/// The path prefix of every Advanced Trade route.
pub const BROKERAGE: &str = "/api/v3/brokerage";

/// How many times a request refused with 429 is tried in all.
const ATTEMPTS_ON_429: usize = 3;

/// The longest a read waits out a `Retry-After` before it gives up (ms).
const MAX_READ_WAIT_MS: u64 = 5_000;

/// The shortest pause after a 429, whatever its Retry-After says (ms).
const MIN_BACKOFF_MS: u64 = 500;

/// Retry-After when a 429 names none (ms).
const DEFAULT_RETRY_AFTER_MS: u64 = 1_000;

/// Whether a request may move money: such a request does not wait long for
/// the rate limit (it is refused as rate limited instead) and its failure
/// after sending is an unknown outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A public read (the 10/s bucket).
    Public,
    /// An authenticated read (the 30/s bucket).
    Read,
    /// An authenticated write: create, cancel (the 30/s bucket).
    Write,
}

/// The host a token's `uri` names: the URL's host, with its port when the
/// URL has one (`127.0.0.1:8443`); the default port of the scheme is not
/// written, as clients sign `api.coinbase.com`.
pub fn uri_host(base_url: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(base_url).map_err(|e| format!("`{base_url}` is not a URL: {e}"))?;
    let host = url.host_str().ok_or_else(|| format!("`{base_url}` has no host"))?;
    Ok(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// The typed, JWT-signing REST client for `/api/v3/brokerage`.
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    host: String,
    creds: Arc<Credentials>,
    offset_ms: AtomicI64,
    /// The market's clock when it is not the server's: (market ms, server
    /// ms, market ms per server ms) as `GET /time` last said.
    market: Mutex<Option<(i64, i64, f64)>>,
    private: Bucket,
    public: Bucket,
    paused_until: Mutex<Option<Instant>>,
    max_order_wait_ms: u64,
    alerts: broadcast::Sender<VenueAlert>,
}

impl RestClient {
    /// A client for `base_url` (`https://api.coinbase.com`, or a sandbox's
    /// `http://127.0.0.1:PORT`). `max_order_wait_ms`: the longest a create or
    /// cancel waits for the rate limit before it is refused as rate limited.
    pub fn new(
        base_url: &str,
        creds: Arc<Credentials>,
        timeout_ms: u64,
        max_order_wait_ms: u64,
    ) -> Result<Self, VenueError> {
        crate::install_crypto_provider();
        let host = uri_host(base_url).map_err(VenueError::NotSent)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(timeout_ms.min(5000)))
            .build()
            .map_err(|e| VenueError::NotSent(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            host,
            creds,
            offset_ms: AtomicI64::new(0),
            market: Mutex::new(None),
            private: Bucket::new(PRIVATE_PER_S),
            public: Bucket::new(PUBLIC_PER_S),
            paused_until: Mutex::new(None),
            max_order_wait_ms,
            alerts: broadcast::channel(64).0,
        })
    }

    /// Alerts the operator must hear (a 429 and its wait), for the user
    /// stream to pass on with its events, as the Binance adapter's do.
    pub fn alerts(&self) -> broadcast::Receiver<VenueAlert> {
        self.alerts.subscribe()
    }

    /// The host the tokens name (with the port when the URL has one).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Server minus local clock (ms), as last measured.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// The server's time now, estimated (ms).
    pub fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms()
    }

    /// The market's time now (ms): the server's, as at Coinbase, unless
    /// `GET /time` said the market runs on a clock of its own (Keel's
    /// sandbox faster than real time: its candles are on that clock).
    pub fn market_now_ms(&self) -> i64 {
        let now = self.now_ms();
        match *self.market.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((market, server, speed)) => market + ((now - server) as f64 * speed) as i64,
            None => now,
        }
    }

    /// Market ms per server ms: 1 unless `GET /time` said otherwise.
    pub fn market_speed(&self) -> f64 {
        self.market.lock().unwrap_or_else(|e| e.into_inner()).map_or(1.0, |m| m.2)
    }

    /// Measures the clock offset with `GET /time`:
    /// `offset = server − (t_send + t_recv) / 2`. Tokens signed afterwards
    /// carry server time in `nbf`/`exp`. Returns the offset.
    pub async fn sync_time(&self) -> Result<i64, VenueError> {
        let t0 = SystemClock.now_ms();
        // `GET /time` is public: no token, so no 401 retry (which would
        // measure the clock again); a 429 is waited out as anywhere else.
        let mut attempt = 0;
        let st: ServerTime = loop {
            attempt += 1;
            match self.send_once(Method::GET, Kind::Public, "/time", &[], None::<&()>).await {
                Err(VenueError::RateLimited { .. }) if attempt < ATTEMPTS_ON_429 => continue,
                other => break other?,
            }
        };
        let t1 = SystemClock.now_ms();
        let server = st.ms().ok_or_else(|| VenueError::BadResponse("GET /time: no time in the answer".into()))?;
        let offset = server - (t0 + t1) / 2;
        let market = st.market_clock.as_ref().and_then(|m| {
            let speed = m.speed.to_f64().filter(|v| v.is_finite() && *v > 0.0)?;
            Some((m.epoch_millis.to_i64()?, server, speed))
        });
        *self.market.lock().unwrap_or_else(|e| e.into_inner()) = market;
        let before = self.offset_ms.swap(offset, Ordering::Relaxed);
        if (offset - before).abs() > 2_000 {
            tracing::warn!(offset_ms = offset, "coinbase: the local clock is off the server's; tokens use server time");
        }
        Ok(offset)
    }

    /// A GET of `path` (under [`BROKERAGE`]) with query pairs (repeated keys for arrays).
    pub async fn get<T: DeserializeOwned>(
        &self,
        kind: Kind,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, VenueError> {
        self.call(Method::GET, kind, path, query, None::<&()>).await
    }

    /// A POST of a JSON body to `path` (under [`BROKERAGE`]).
    pub async fn post<B: Serialize + Sync, T: DeserializeOwned>(
        &self,
        kind: Kind,
        path: &str,
        body: &B,
    ) -> Result<T, VenueError> {
        self.call(Method::POST, kind, path, &[], Some(body)).await
    }

    /// Sends with the rate-limit discipline: a 429 pauses every request for
    /// its `Retry-After` and the request is tried again after the pause (at
    /// most [`ATTEMPTS_ON_429`] tries; a 429 certainly executed nothing). A
    /// 401 on an authenticated request may be a clock that drifted: the
    /// clock is measured again and the request tried once more (a 401
    /// executed nothing either).
    async fn call<B: Serialize + Sync, T: DeserializeOwned>(
        &self,
        method: Method,
        kind: Kind,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, VenueError> {
        let mut resynced = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(method.clone(), kind, path, query, body).await {
                Err(VenueError::RateLimited { .. }) if attempt < ATTEMPTS_ON_429 => continue,
                Err(VenueError::Rejected { code: 401, .. }) if kind != Kind::Public && !resynced => {
                    resynced = true;
                    tracing::warn!(path, "coinbase: 401 Unauthorized; measuring the clock again and retrying once");
                    self.sync_time().await?;
                }
                other => return other,
            }
        }
    }

    /// Waits for the bucket and any 429 pause; a write that would wait
    /// longer than `max_order_wait_ms`, or a read longer than 5 s, is
    /// refused as rate limited instead (nothing is sent).
    async fn gate(&self, kind: Kind) -> Result<(), VenueError> {
        let pause = {
            let p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            p.and_then(|until| until.checked_duration_since(Instant::now()))
        };
        let limit = if kind == Kind::Write { self.max_order_wait_ms } else { MAX_READ_WAIT_MS };
        if let Some(wait) = pause {
            let ms = wait.as_millis() as u64;
            if ms > limit {
                return Err(VenueError::RateLimited { retry_after_ms: ms });
            }
            tokio::time::sleep(wait).await;
        }
        let bucket = if kind == Kind::Public { &self.public } else { &self.private };
        bucket.take(Duration::from_millis(limit)).await.map_err(|ms| VenueError::RateLimited { retry_after_ms: ms })
    }

    async fn send_once<B: Serialize + Sync, T: DeserializeOwned>(
        &self,
        method: Method,
        kind: Kind,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, VenueError> {
        self.gate(kind).await?;
        let full = format!("{BROKERAGE}{path}");
        let mut req = self.http.request(method.clone(), format!("{}{full}", self.base));
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        if kind != Kind::Public {
            // A fresh token per request, dated by the server's clock.
            let jwt = self
                .creds
                .rest_jwt(method.as_str(), &self.host, &full, self.now_ms().div_euclid(1000))
                .map_err(|e| VenueError::NotSent(e.to_string()))?;
            req = req.bearer_auth(jwt);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_builder() => return Err(VenueError::NotSent(format!("{full}: {e}"))),
            Err(e) => return Err(VenueError::OutcomeUnknown(format!("{full}: no answer: {e}"))),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s * 1000);
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return Err(VenueError::OutcomeUnknown(format!("{full}: reading the answer: {e}"))),
        };
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| VenueError::BadResponse(format!("{full}: {e}")));
        }
        let err = classify(status, &text, retry_after);
        if let VenueError::RateLimited { retry_after_ms } = err {
            // A `Retry-After: 0` still backs off: never a tight loop.
            let until = Instant::now() + Duration::from_millis(retry_after_ms.max(MIN_BACKOFF_MS));
            *self.paused_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
            tracing::warn!(retry_after_ms, path = %full, "coinbase: 429; pausing requests");
            let _ = self.alerts.send(VenueAlert::RateLimited { retry_after_ms });
        }
        Err(err)
    }
}

/// What an HTTP error answer means for the caller (reference §8): 429 →
/// rate limited (any body: JSON, HTML or empty); 401 (plain text) → an auth
/// refusal, certainly not executed; 404 "not found" → not found; 5xx → the
/// outcome is unknown; other 4xx → rejected with Coinbase's `error` code.
pub fn classify(status: u16, text: &str, retry_after_ms: Option<u64>) -> VenueError {
    if status == 429 {
        return VenueError::RateLimited { retry_after_ms: retry_after_ms.unwrap_or(DEFAULT_RETRY_AFTER_MS) };
    }
    let body: Option<ErrorBody> = serde_json::from_str(text).ok();
    let said = body.as_ref().map(ErrorBody::text).unwrap_or_default();
    let said = if said.is_empty() { text.chars().take(200).collect() } else { said.to_string() };
    match status {
        401 => VenueError::Rejected {
            code: 401,
            reason: format!("Unauthorized: the JWT was refused (key, clock or uri): {said}"),
        },
        404 => VenueError::NotFound,
        500..=599 => VenueError::OutcomeUnknown(format!("HTTP {status}: {said}")),
        _ => {
            let code = body.as_ref().and_then(|b| b.error.clone()).unwrap_or_default();
            VenueError::Rejected { code: i64::from(status), reason: format!("{code}: {said}") }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_host_keeps_a_port_only_when_the_url_has_one() {
        let cases = [
            ("http://127.0.0.1:43123", "127.0.0.1:43123"),
            ("http://localhost:8443/", "localhost:8443"),
            ("https://api.coinbase.com", "api.coinbase.com"),
            ("https://api.coinbase.com:443", "api.coinbase.com"),
        ];
        for (url, want) in cases {
            assert_eq!(uri_host(url).unwrap(), want, "{url}");
        }
        assert!(uri_host("not a url").is_err());
    }

    #[test]
    fn http_errors_are_classified_by_what_the_caller_must_do() {
        let cases: [(u16, &str, &str); 7] = [
            (429, "<html>Too Many</html>", "rate_limited"),
            (401, "Unauthorized", "rejected"),
            (404, r#"{"error":"NOT_FOUND","error_details":"order with this orderID was not found"}"#, "not_found"),
            (503, "", "outcome_unknown"),
            (500, r#"{"error":"INTERNAL"}"#, "outcome_unknown"),
            (400, r#"{"error":"INVALID_ARGUMENT","message":"cannot pass order_ids with other filters"}"#, "rejected"),
            (403, r#"{"error":"PERMISSION_DENIED","error_details":"Missing required scopes"}"#, "rejected"),
        ];
        for (status, body, want) in cases {
            assert_eq!(classify(status, body, None).code(), want, "{status} {body}");
        }
        assert_eq!(classify(429, "", Some(2000)), VenueError::RateLimited { retry_after_ms: 2000 });
        let VenueError::Rejected { code, reason } =
            classify(400, r#"{"error":"INVALID_ARGUMENT","message":"bad"}"#, None)
        else {
            panic!("a 400 is a rejection")
        };
        assert_eq!((code, reason.as_str()), (400, "INVALID_ARGUMENT: bad"));
    }
}
