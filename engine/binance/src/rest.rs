//! The signed REST client: clock offset, request pacing from the weight and
//! order-count headers, `Retry-After` handling, and typed endpoint helpers.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use keel_core::clock::{Clock, SystemClock};
use keel_core::venue::VenueAlert;

use super::error::BinanceError;
use super::model::{Account, ApiError, BookTickerRest, ExchangeInfo, Kline, MyTrade, OrderInfo, ServerTime};
use super::sign::{encode_component, encode_query, sign_rest};
use ed25519_dalek::SigningKey;

/// An API key and what signs its requests: an HMAC secret, or an Ed25519
/// private key (Binance's recommended key type). `Debug` never prints them.
#[derive(Clone)]
pub struct Credentials {
    api_key: String,
    signer: Signer,
}

#[derive(Clone)]
enum Signer {
    Hmac(String),
    Ed25519(std::sync::Arc<SigningKey>),
}

impl Credentials {
    /// An HMAC key pair.
    pub fn new(api_key: &str, api_secret: &str) -> Self {
        Self { api_key: api_key.to_string(), signer: Signer::Hmac(api_secret.to_string()) }
    }

    /// An Ed25519 key: its id and its private key as PKCS#8 PEM
    /// (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm ed25519`
    /// writes it). The error says what is wrong, never what the key is.
    pub fn ed25519(api_key: &str, private_key_pem: &str) -> Result<Self, String> {
        let key = super::sign::ed25519_private_key(private_key_pem)?;
        Ok(Self { api_key: api_key.to_string(), signer: Signer::Ed25519(std::sync::Arc::new(key)) })
    }

    /// The API key (sent in headers; do not log it).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// True for an Ed25519 key (which may `session.logon`).
    pub fn is_ed25519(&self) -> bool {
        matches!(self.signer, Signer::Ed25519(_))
    }

    /// The key type's name, for logs: `ed25519` or `hmac`.
    pub fn key_type(&self) -> &'static str {
        if self.is_ed25519() {
            "ed25519"
        } else {
            "hmac"
        }
    }

    /// Signs a REST payload (query string then body, as sent): hex HMAC, or
    /// base64 Ed25519 (which the caller percent-encodes into the query).
    pub fn sign_rest(&self, query: &str, body: &str) -> String {
        match &self.signer {
            Signer::Hmac(secret) => sign_rest(secret, query, body),
            Signer::Ed25519(key) => super::sign::sign_ed25519(key, &format!("{query}{body}")),
        }
    }

    /// Signs WebSocket API parameters (sorted canonical form).
    pub fn sign_ws(&self, params: &[(String, String)]) -> String {
        match &self.signer {
            Signer::Hmac(secret) => super::sign::sign_ws(secret, params),
            Signer::Ed25519(key) => super::sign::sign_ed25519(key, &super::sign::ws_payload(params)),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ type: {}, api_key: <redacted>, secret: <redacted> }}", self.key_type())
    }
}

/// How long an order may wait for request weight by default (ms).
pub const DEFAULT_MAX_ORDER_WAIT_MS: u64 = 1_000;

/// Rate-limit state learned from headers and errors.
#[derive(Debug, Clone, Default)]
pub struct LimitState {
    /// Last `X-MBX-USED-WEIGHT-1M`.
    pub used_weight_1m: u64,
    /// `REQUEST_WEIGHT` per minute from exchangeInfo.
    pub weight_limit_1m: u64,
    /// Last `X-MBX-ORDER-COUNT-10S`.
    pub order_count_10s: u64,
    /// `ORDERS` per 10 s from exchangeInfo.
    pub order_limit_10s: u64,
    /// The minute (server time) `used_weight_1m` belongs to.
    weight_minute: i64,
    /// After a 429: no request until then.
    paused_until: Option<Instant>,
    /// After a 418: nothing is sent until then.
    banned_until: Option<Instant>,
    /// After a -1015: no new order until then.
    orders_blocked_until: Option<Instant>,
}

/// A typed, signed REST client for `/api/v3`.
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    creds: Credentials,
    recv_window_ms: u64,
    offset_ms: AtomicI64,
    limits: Mutex<LimitState>,
    alerts: broadcast::Sender<VenueAlert>,
    /// The longest an order may wait for request weight or a `Retry-After`
    /// pause before it is refused as rate limited instead (ms).
    max_order_wait_ms: u64,
}

fn remaining_ms(until: Option<Instant>) -> Option<u64> {
    let until = until?;
    let now = Instant::now();
    (until > now).then(|| (until - now).as_millis() as u64)
}

impl RestClient {
    /// A client for `base` (e.g. `https://api.binance.com`).
    pub fn new(base: &str, creds: Credentials, recv_window_ms: u64, timeout_ms: u64) -> Result<Self, BinanceError> {
        super::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(timeout_ms.min(5000)))
            .build()
            .map_err(|e| BinanceError::NotSent(format!("cannot build HTTP client: {e}")))?;
        let (alerts, _) = broadcast::channel(64);
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            creds,
            recv_window_ms,
            offset_ms: AtomicI64::new(0),
            limits: Mutex::new(LimitState { weight_limit_1m: 6000, order_limit_10s: 50, ..Default::default() }),
            alerts,
            max_order_wait_ms: DEFAULT_MAX_ORDER_WAIT_MS,
        })
    }

    /// Sets how long an order may wait for request weight before it is refused.
    pub fn with_max_order_wait_ms(mut self, ms: u64) -> Self {
        self.max_order_wait_ms = ms;
        self
    }

    /// Alerts raised by the client (429, 418, -1015).
    pub fn alerts(&self) -> broadcast::Receiver<VenueAlert> {
        self.alerts.subscribe()
    }

    /// Raises an alert for the engine (delivered with the user stream's events).
    pub(crate) fn alert(&self, alert: VenueAlert) {
        let _ = self.alerts.send(alert);
    }

    /// The key pair.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// `recvWindow` in ms.
    pub fn recv_window_ms(&self) -> u64 {
        self.recv_window_ms
    }

    /// Estimated server time now.
    pub fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Current estimate of server time minus local time.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// A snapshot of the rate-limit state.
    pub fn limits(&self) -> LimitState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimitState> {
        self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Measures the clock offset with `GET /api/v3/time`:
    /// `offset = serverTime − (t_send + t_recv) / 2`. Returns the offset.
    pub async fn sync_time(&self) -> Result<i64, BinanceError> {
        let t0 = SystemClock.now_ms();
        let st: ServerTime = self.send(Method::GET, "/api/v3/time", Vec::new(), false, false).await?;
        let t1 = SystemClock.now_ms();
        let offset = st.server_time - (t0 + t1) / 2;
        self.offset_ms.store(offset, Ordering::Relaxed);
        tracing::debug!(offset_ms = offset, rtt_ms = t1 - t0, "binance clock synchronised");
        Ok(offset)
    }

    /// Sets the `REQUEST_WEIGHT` per minute: a venue whose budget is not
    /// spot's (USDⓈ-M futures: 2 400) paces against its own.
    pub fn set_weight_limit_1m(&self, limit: u64) {
        self.lock().weight_limit_1m = limit;
    }

    /// Takes the `REQUEST_WEIGHT` and `ORDERS` limits from exchangeInfo.
    pub fn set_limits_from(&self, info: &ExchangeInfo) {
        let mut l = self.lock();
        for r in &info.rate_limits {
            match (r.rate_limit_type.as_str(), r.window_ms()) {
                ("REQUEST_WEIGHT", 60_000) => l.weight_limit_1m = r.limit,
                ("ORDERS", 10_000) => l.order_limit_10s = r.limit,
                _ => {}
            }
        }
    }

    /// Decides whether a request may leave now; sleeps briefly for pacing.
    pub(crate) async fn gate(&self, is_order: bool) -> Result<(), BinanceError> {
        let (ban, pause, orders, pace) = {
            let l = self.lock();
            let minute = self.now_ms().div_euclid(60_000);
            let near_limit =
                l.weight_minute == minute && l.weight_limit_1m > 0 && l.used_weight_1m * 100 >= l.weight_limit_1m * 95;
            let pace = near_limit.then(|| (60_000 - self.now_ms().rem_euclid(60_000)) as u64);
            let order_pace =
                (is_order && l.order_limit_10s > 0 && l.order_count_10s + 1 >= l.order_limit_10s).then_some(1000u64);
            (
                remaining_ms(l.banned_until),
                remaining_ms(l.paused_until),
                remaining_ms(l.orders_blocked_until),
                pace.or(order_pace),
            )
        };
        if let Some(ms) = ban {
            return Err(BinanceError::Api {
                http_status: 418,
                code: -1003,
                msg: "IP banned: waiting for Retry-After".into(),
                retry_after_ms: Some(ms),
            });
        }
        if is_order {
            if let Some(ms) = orders {
                return Err(BinanceError::Api {
                    http_status: 429,
                    code: -1015,
                    msg: "order rate exceeded: waiting for the window to reset".into(),
                    retry_after_ms: Some(ms),
                });
            }
        }
        // An order does not sleep on the hot path: past a short wait it is
        // refused as rate limited, and the strategy hears why.
        if is_order {
            if let Some(ms) = pause.into_iter().chain(pace).max().filter(|ms| *ms > self.max_order_wait_ms) {
                return Err(BinanceError::Api {
                    http_status: 429,
                    code: -1003,
                    msg: format!(
                        "order not sent: request weight is exhausted for {ms} ms (more than venue.binance.max_order_wait_ms = {})",
                        self.max_order_wait_ms
                    ),
                    retry_after_ms: Some(ms),
                });
            }
        }
        if let Some(ms) = pause {
            if ms > 5_000 {
                return Err(BinanceError::Api {
                    http_status: 429,
                    code: -1003,
                    msg: "rate limited: waiting for Retry-After".into(),
                    retry_after_ms: Some(ms),
                });
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(ms) = pace {
            tracing::info!(wait_ms = ms, "binance request weight near the limit; pacing");
            tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
        }
        Ok(())
    }

    fn note_headers(&self, headers: &reqwest::header::HeaderMap) {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let mut l = self.lock();
        if let Some(w) = get("x-mbx-used-weight-1m") {
            l.used_weight_1m = w;
            l.weight_minute = self.now_ms().div_euclid(60_000);
        }
        if let Some(c) = get("x-mbx-order-count-10s") {
            l.order_count_10s = c;
        }
    }

    pub(crate) fn note_error(&self, err: &BinanceError) {
        let BinanceError::Api { http_status, code, retry_after_ms, .. } = err else { return };
        let mut l = self.lock();
        let wait = retry_after_ms.unwrap_or(1000);
        let until = Some(Instant::now() + Duration::from_millis(wait));
        let alert = if err.is_ban() {
            l.banned_until = until;
            Some(VenueAlert::Banned { retry_after_ms: wait })
        } else if *code == super::error::TOO_MANY_ORDERS {
            l.orders_blocked_until = until;
            Some(VenueAlert::OrderRateExceeded { retry_after_ms: wait })
        } else if *http_status == 429 || *code == super::error::TOO_MANY_REQUESTS {
            l.paused_until = until;
            Some(VenueAlert::RateLimited { retry_after_ms: wait })
        } else {
            None
        };
        drop(l);
        if let Some(a) = alert {
            tracing::warn!(alert = ?a, "binance rate limit");
            let _ = self.alerts.send(a);
        }
    }

    /// Sends one request. Signed requests get `recvWindow`, `timestamp` and
    /// the signature over the percent-encoded query exactly as sent.
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        mut params: Vec<(String, String)>,
        signed: bool,
        is_order: bool,
    ) -> Result<T, BinanceError> {
        self.gate(is_order).await?;
        let mut url = format!("{}{}", self.base, path);
        if signed {
            params.push(("recvWindow".into(), self.recv_window_ms.to_string()));
            params.push(("timestamp".into(), self.now_ms().to_string()));
            let query = encode_query(&params);
            // Ed25519 signatures are base64: `+`, `/` and `=` are percent-encoded.
            let sig = self.creds.sign_rest(&query, "");
            url.push('?');
            url.push_str(&query);
            url.push_str("&signature=");
            url.push_str(&encode_component(&sig));
        } else if !params.is_empty() {
            url.push('?');
            url.push_str(&encode_query(&params));
        }
        let mut req = self.http.request(method, &url);
        if signed {
            req = req.header("X-MBX-APIKEY", self.creds.api_key());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_builder() => return Err(BinanceError::NotSent(e.to_string())),
            Err(e) => return Err(BinanceError::NoResponse(e.to_string())),
        };
        self.note_headers(resp.headers());
        let status = resp.status().as_u16();
        let retry_after =
            resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let body = match resp.text().await {
            Ok(b) => b,
            Err(e) => return Err(BinanceError::NoResponse(format!("reading body: {e}"))),
        };
        if (200..300).contains(&status) {
            return serde_json::from_str(&body).map_err(|e| BinanceError::Decode(format!("{path}: {e}")));
        }
        let err = match serde_json::from_str::<ApiError>(&body) {
            Ok(api) => BinanceError::from_api(status, api, retry_after),
            Err(_) => BinanceError::Http { status, body: body.chars().take(200).collect() },
        };
        self.note_error(&err);
        Err(err)
    }

    /// A public (unsigned) GET.
    pub async fn public<T: DeserializeOwned>(
        &self,
        path: &str,
        params: Vec<(String, String)>,
    ) -> Result<T, BinanceError> {
        self.send(Method::GET, path, params, false, false).await
    }

    /// A signed request; on -1021 the clock is resynchronised and the request
    /// retried once (a -1021 request was certainly not executed).
    pub async fn signed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: Vec<(String, String)>,
        is_order: bool,
    ) -> Result<T, BinanceError> {
        match self.send(method.clone(), path, params.clone(), true, is_order).await {
            Err(e) if e.needs_time_resync() => {
                tracing::warn!(error = %e, "binance timestamp rejected; resynchronising the clock and retrying once");
                self.sync_time().await?;
                self.send(method, path, params, true, is_order).await
            }
            other => other,
        }
    }

    /// `GET /api/v3/exchangeInfo` (and learn the rate limits).
    pub async fn exchange_info(&self) -> Result<ExchangeInfo, BinanceError> {
        let info: ExchangeInfo = self.public("/api/v3/exchangeInfo", Vec::new()).await?;
        self.set_limits_from(&info);
        Ok(info)
    }

    /// `GET /api/v3/klines`.
    pub async fn klines(
        &self,
        symbol: &str,
        interval: &str,
        start: Option<i64>,
        end: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Kline>, BinanceError> {
        let mut p = vec![("symbol".into(), symbol.to_string()), ("interval".into(), interval.to_string())];
        if let Some(s) = start {
            p.push(("startTime".into(), s.to_string()));
        }
        if let Some(e) = end {
            p.push(("endTime".into(), e.to_string()));
        }
        p.push(("limit".into(), limit.clamp(1, 1000).to_string()));
        self.public("/api/v3/klines", p).await
    }

    /// `GET /api/v3/ticker/bookTicker` for one symbol.
    pub async fn book_ticker(&self, symbol: &str) -> Result<BookTickerRest, BinanceError> {
        self.public("/api/v3/ticker/bookTicker", vec![("symbol".into(), symbol.to_string())]).await
    }

    /// `POST /api/v3/order`.
    pub async fn new_order(&self, params: Vec<(String, String)>) -> Result<OrderInfo, BinanceError> {
        self.signed(Method::POST, "/api/v3/order", params, true).await
    }

    /// `GET /api/v3/order` by client order id.
    pub async fn query_order(&self, symbol: &str, client_order_id: &str) -> Result<OrderInfo, BinanceError> {
        let p = vec![("symbol".into(), symbol.to_string()), ("origClientOrderId".into(), client_order_id.to_string())];
        self.signed(Method::GET, "/api/v3/order", p, false).await
    }

    /// `GET /api/v3/order` by venue order id.
    pub async fn query_order_by_id(&self, symbol: &str, order_id: u64) -> Result<OrderInfo, BinanceError> {
        let p = vec![("symbol".into(), symbol.to_string()), ("orderId".into(), order_id.to_string())];
        self.signed(Method::GET, "/api/v3/order", p, false).await
    }

    /// `DELETE /api/v3/order` by client order id.
    pub async fn cancel_order(&self, symbol: &str, client_order_id: &str) -> Result<OrderInfo, BinanceError> {
        let p = vec![("symbol".into(), symbol.to_string()), ("origClientOrderId".into(), client_order_id.to_string())];
        self.signed(Method::DELETE, "/api/v3/order", p, false).await
    }

    /// `GET /api/v3/openOrders`.
    pub async fn open_orders(&self, symbol: Option<&str>) -> Result<Vec<OrderInfo>, BinanceError> {
        let p = symbol.map(|s| vec![("symbol".into(), s.to_string())]).unwrap_or_default();
        self.signed(Method::GET, "/api/v3/openOrders", p, false).await
    }

    /// `GET /api/v3/account`.
    pub async fn account(&self) -> Result<Account, BinanceError> {
        self.signed(Method::GET, "/api/v3/account", Vec::new(), false).await
    }

    /// `GET /api/v3/myTrades` from a trade id (inclusive), at most 1000.
    pub async fn my_trades(
        &self,
        symbol: &str,
        from_id: Option<u64>,
        order_id: Option<u64>,
    ) -> Result<Vec<MyTrade>, BinanceError> {
        self.my_trades_limit(symbol, from_id, order_id, 1000).await
    }

    /// `GET /api/v3/myTrades` with an explicit `limit` (1..=1000).
    pub async fn my_trades_limit(
        &self,
        symbol: &str,
        from_id: Option<u64>,
        order_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<MyTrade>, BinanceError> {
        let mut p = vec![("symbol".into(), symbol.to_string())];
        if let Some(id) = order_id {
            p.push(("orderId".into(), id.to_string()));
        }
        if let Some(id) = from_id {
            p.push(("fromId".into(), id.to_string()));
        }
        p.push(("limit".into(), limit.clamp(1, 1000).to_string()));
        self.signed(Method::GET, "/api/v3/myTrades", p, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(max_order_wait_ms: u64) -> RestClient {
        // Never sends anything: only the pacing decision is exercised.
        RestClient::new("http://127.0.0.1:9", Credentials::new("k", "s"), 5000, 1000)
            .unwrap()
            .with_max_order_wait_ms(max_order_wait_ms)
    }

    #[tokio::test]
    async fn an_order_is_refused_rather_than_held_back_for_weight() {
        let c = client(1_000);
        c.lock().paused_until = Some(Instant::now() + Duration::from_secs(3));
        // The order does not wait out the 3 s pause: it is refused at once,
        // saying how long the venue asked to wait.
        let started = Instant::now();
        let err = c.gate(true).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "the order waited");
        assert_eq!(err.to_venue().code(), "rate_limited", "{err}");
        assert!(err.to_string().contains("max_order_wait_ms"), "{err}");

        // A short pause within the allowance is waited out.
        let c = client(1_000);
        c.lock().paused_until = Some(Instant::now() + Duration::from_millis(50));
        assert!(c.gate(true).await.is_ok());
    }
}
