//! The HTTP control API and `/metrics` (actix-web).
//!
//! | Method | Path | Auth | Answer |
//! |---|---|---|---|
//! | GET | `/health` | none | `{"status":"ok","uptime_seconds":N}` |
//! | GET | `/ready` | none | 200 or 503 with `{"ready":bool,"market_stream":bool,"user_stream":bool,"futures_stream":bool\|null,"trading_state":"ACTIVE"}` (`futures_stream` is null without a futures feed, and readiness does not wait on it) |
//! | GET | `/metrics` | none | Prometheus text format 0.0.4 |
//! | GET | `/`, `/console/{file}` | none (the page asks for the token) | the operator console (see [`console`]) |
//! | GET | `/api/v1/status` | bearer | the engine status, with `venue_mode` (`paper`, `sandbox`, `testnet`, `mainnet`), `venue_description` (the mode, or `paper on live Binance market data` for a dry-run) and `market_data` (`sandbox`, `binance`, `binance-testnet`) beside `venue`, `listener` (`listen`, `tls`, `loopback`, `warning`), and `exits` (strategy → symbol → the position's exit state: entry, qty, best price, trailing armed, resting leg, pending close) |
//! | GET | `/api/v1/positions` | bearer | positions with marks |
//! | GET | `/api/v1/orders` | bearer | open orders |
//! | GET | `/api/v1/balances` | bearer | balances and equity |
//! | GET | `/api/v1/strategies` | bearer | strategies |
//! | GET | `/api/v1/trades?limit=N` | bearer | the last N fills (default 100, at most 10000) |
//! | GET | `/api/v1/trades.csv` | bearer | the whole trade journal as CSV |
//! | GET | `/api/v1/events` | bearer | live events, `text/event-stream`: `hello`, `order`, `fill`, `state`, `emergency_stop`, `strategy`, `rejected`, `connectivity`, `alert`, `price`, `log`, `lagged` (see [`events`]) |
//! | GET | `/api/v1/candles?symbol=&interval=1m&limit=300` | bearer | closed klines from the venue, oldest first (see [`candles`]) |
//! | POST | `/api/v1/emergency-stop` | bearer | body `{"reason":"...","flatten":false}` |
//! | POST | `/api/v1/resume` | bearer | clears the emergency stop |
//! | POST | `/api/v1/strategies/{id}/pause` | bearer | pauses a strategy |
//! | POST | `/api/v1/strategies/{id}/resume` | bearer | resumes a strategy (`/start` is the same) |
//! | POST | `/api/v1/orders/cancel-all` | bearer | optional body `{"symbol":"BTCUSDT"}` |
//! | POST | `/api/v1/orders/{client_order_id}/cancel` | bearer | cancels one open order (404 if it is not open) |
//! | POST | `/api/v1/flatten` | bearer | optional body `{"symbol":"BTCUSDT"}`; closes positions, `{"ok":true,"requested":N}` |
//! | GET | `/api/v1/audit?limit=N` | bearer | the newest operator actions, newest first (default 100) (see [`actions`]) |
//! | GET | `/api/v1/equity?limit=N` | bearer | the equity history, oldest first (default 1440 points), peak, drawdown, limit |
//! | GET | `/api/v1/pnl` | bearer | realized PnL and fees today (UTC) and in total, unrealized PnL |
//! | POST | `/api/v1/webhook/tradingview` | secret in body | `{"secret","strategy_id","symbol","action":"buy|sell|close","qty"?,"id"?,"timestamp"?}` (see [`webhook`]) |
//!
//! Every action (emergency stop, resume, flatten, a cancel, a strategy paused
//! or resumed) is logged and kept in the store's audit log with who asked:
//! `web` when the request carries `X-Keel-Client: web` (the console), else
//! `http`, and the caller's address (see [`crate::audit`]).
//!
//! `HEAD` is answered wherever `GET` is; a known path asked with a method it
//! does not serve gets 405 with an `Allow` header.
//!
//! Errors are JSON `{"error": "..."}`: 401 for a missing or wrong token or
//! secret, 400 for malformed JSON (with the parser's reason), 404 for an unknown
//! strategy or path, 429 when an address has failed authentication too often
//! (the right credential still passes) or polls the probes too fast (see
//! [`guard`]), 503 when the
//! engine does not answer. Decimals are JSON strings. Tokens are compared in
//! constant time and never logged or echoed.

pub mod actions;
pub mod candles;
pub mod console;
pub mod equity;
pub mod events;
pub mod guard;
pub mod secrets;
pub mod tls;
pub mod webhook;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use actix_web::dev::{ServerHandle, Service as _};
use actix_web::guard as method;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actors::handle::CommandError;
use actors::metrics::metrics;
use actors::EngineHandle;
use futures_util::future::Either;
use prometheus::{Encoder, TextEncoder};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::secret::Secret;
use crate::summary;
use actions::caller;

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers share.
pub struct ApiState {
    handle: EngineHandle,
    config: Arc<Config>,
    token: Option<Secret>,
    webhook_secret: Option<Secret>,
    guard: guard::Guard,
    replay: webhook::ReplayGuard,
}

impl ApiState {
    /// State for a running engine; `token` guards `/api/v1/*`, `webhook_secret` the webhook.
    pub fn new(
        handle: EngineHandle,
        config: Arc<Config>,
        token: Option<Secret>,
        webhook_secret: Option<Secret>,
    ) -> Self {
        let guard = guard::Guard::new(&config.http);
        let (window, max_age) = (config.http.webhook_id_window.0, config.http.webhook_max_age.0);
        let replay = webhook::ReplayGuard::load(handle.store().clone(), window, max_age);
        Self { handle, config, token, webhook_secret, guard, replay }
    }
}

/// An API error: a status and a message, answered as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None }
    }

    /// A failed authentication from `peer`: 401, or 429 once the address has
    /// used up its failures (see [`guard`]). Only failures are counted.
    fn unauthorized(state: &ApiState, peer: Option<IpAddr>, message: &str) -> Self {
        match state.guard.failed_auth(peer) {
            Ok(()) => {
                metrics().http_unauthorized_total.inc();
                Self::new(StatusCode::UNAUTHORIZED, message)
            }
            Err(wait) => Self::rate_limited(wait),
        }
    }

    /// The 429 answer (counted), with `Retry-After`.
    fn rate_limited(wait: Duration) -> Self {
        metrics().http_rate_limited_total.inc();
        let secs = wait.as_secs().max(1);
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("rate limit exceeded; retry after {secs} s"),
            retry_after: Some(Duration::from_secs(secs)),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            r.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(wait) = self.retry_after {
            r.insert_header((header::RETRY_AFTER, wait.as_secs().to_string()));
        }
        r.json(json!({ "error": self.message }))
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::UnknownStrategy(_) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            CommandError::Mailbox(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            CommandError::EmergencyStop(_) | CommandError::Failed(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

type ApiResult = Result<HttpResponse, ApiError>;

fn authorize(req: &HttpRequest, state: &ApiState) -> Result<(), ApiError> {
    let peer = req.peer_addr().map(|a| a.ip());
    let Some(token) = &state.token else {
        return Err(ApiError::unauthorized(
            state,
            peer,
            &format!(
                "the API token is not configured: set the environment variable {} and restart",
                state.config.http.token_env
            ),
        ));
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        Some(p) if token.matches(p) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(state, peer, "invalid bearer token")),
        None => Err(ApiError::unauthorized(state, peer, "missing bearer token (Authorization: Bearer <token>)")),
    }
}

/// Parses a JSON body; an empty body gives the type's default.
fn body_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}

async fn health(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "uptime_seconds": state.handle.uptime().as_secs() }))
}

async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    let (market, user) = summary::streams();
    let risk = tokio::time::timeout(Duration::from_secs(2), state.handle.risk()).await;
    let (answering, trading_state) = match risk {
        Ok(Ok(r)) => (true, Some(r.trading_state.as_str())),
        _ => (false, None),
    };
    let is_ready = market && user && answering;
    let body = json!({
        "ready": is_ready,
        "market_stream": market,
        "user_stream": user,
        "futures_stream": summary::futures_stream(),
        "engine_answering": answering,
        "trading_state": trading_state,
    });
    if is_ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The metrics text, as `/metrics` serves it.
pub fn metrics_text() -> Result<Vec<u8>, prometheus::Error> {
    let families = metrics().registry.gather();
    let mut out = Vec::new();
    TextEncoder::new().encode(&families, &mut out)?;
    Ok(out)
}

async fn metrics_endpoint() -> HttpResponse {
    match metrics_text() {
        Ok(body) => HttpResponse::Ok().insert_header((header::CONTENT_TYPE, METRICS_CONTENT_TYPE)).body(body),
        Err(e) => HttpResponse::InternalServerError().json(json!({ "error": format!("encoding metrics: {e}") })),
    }
}

async fn status(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let mut body = serde_json::to_value(state.handle.status().await?)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("status: {e}")))?;
    if let Some(o) = body.as_object_mut() {
        o.insert("venue_mode".into(), json!(state.config.venue.mode.as_str()));
        o.insert("venue_description".into(), json!(state.config.venue_description()));
        o.insert("market_data".into(), json!(state.config.venue.market_data.as_str()));
        o.insert("exchange".into(), json!(state.config.exchange_in_use().map(|e| e.as_str())));
        o.insert("listener".into(), console::listener_status(&state.config.http));
    }
    Ok(HttpResponse::Ok().json(body))
}

async fn positions(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let p = state.handle.portfolio().await?;
    Ok(HttpResponse::Ok().json(p.positions))
}

async fn orders(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    Ok(HttpResponse::Ok().json(state.handle.open_orders().await?))
}

async fn balances(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let p = state.handle.portfolio().await?;
    Ok(HttpResponse::Ok().json(json!({
        "balances": p.balances.assets.values().collect::<Vec<_>>(),
        "equity": p.equity,
        "quote_asset": p.quote_asset,
        "ts_ms": p.balances.ts_ms,
    })))
}

async fn strategies(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    Ok(HttpResponse::Ok().json(state.handle.strategies().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<String>,
}

/// The `?limit=N` of a listing (`default` without one); 400 for anything
/// but a number from 1 to `max`, or another parameter.
fn limit_of(req: &HttpRequest, default: usize, max: usize) -> Result<usize, ApiError> {
    let query = web::Query::<LimitQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    match query.limit.as_deref() {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!("limit must be a number from 1 to {max}"))),
        },
    }
}

const MAX_TRADES: usize = 10_000;

async fn trades(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let limit = limit_of(&req, 100, MAX_TRADES)?;
    let fills = state.handle.recent_fills(limit).await?;
    let out: Vec<_> = fills.iter().map(summary::fill_json).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn trades_csv(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let fills = state.handle.recent_fills(usize::MAX).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "time",
        "ts_ms",
        "trade_id",
        "strategy_id",
        "symbol",
        "side",
        "price",
        "qty",
        "notional",
        "fee",
        "fee_asset",
        "is_maker",
        "client_order_id",
    ];
    let csv_err = |e: csv::Error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("csv: {e}"));
    w.write_record(header).map_err(csv_err)?;
    for f in &fills {
        let side = match f.side {
            keel_core::order::Side::Buy => "BUY",
            keel_core::order::Side::Sell => "SELL",
        };
        w.write_record([
            summary::rfc3339(f.ts_ms),
            f.ts_ms.to_string(),
            f.trade_id.to_string(),
            f.strategy_id.to_string(),
            f.symbol.to_string(),
            side.to_string(),
            f.price.normalize().to_string(),
            f.qty.normalize().to_string(),
            f.notional().normalize().to_string(),
            f.fee.normalize().to_string(),
            f.fee_asset.clone(),
            f.is_maker.to_string(),
            f.client_order_id.clone(),
        ])
        .map_err(csv_err)?;
    }
    let body = w.into_inner().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("csv: {e}")))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"trades.csv\""))
        .body(body))
}

/// `POST /api/v1/emergency-stop` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyStopBody {
    /// Why (recorded with the stop).
    #[serde(default)]
    pub reason: Option<String>,
    /// Also close positions with reduce-only market orders.
    #[serde(default)]
    pub flatten: bool,
}

async fn emergency_stop(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let b: EmergencyStopBody = body_json(&body)?;
    let reason = b.reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "emergency stop from the HTTP API".into());
    if reason.chars().count() > 500 {
        return Err(ApiError::bad_request("reason is longer than 500 characters"));
    }
    let detail = if b.flatten { format!("{reason} (and flatten)") } else { reason.clone() };
    let done = state.handle.emergency_stop(&reason, &caller(&req), b.flatten).await;
    crate::audit::outcome(&state.handle, &actions::origin(&req), "emergency_stop", detail, done).await?;
    let r = state.handle.risk().await?;
    Ok(HttpResponse::Ok().json(json!({
        "ok": true,
        "trading_state": r.trading_state,
        "emergency_stop": r.emergency_stop,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn resume(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let _: Empty = body_json(&body)?;
    let done = state.handle.resume(&caller(&req)).await;
    crate::audit::outcome(&state.handle, &actions::origin(&req), "resume", "emergency stop cleared".into(), done)
        .await?;
    let r = state.handle.risk().await?;
    Ok(HttpResponse::Ok().json(json!({
        "ok": true,
        "trading_state": r.trading_state,
        "reason": r.reason,
        "emergency_stop": r.emergency_stop,
    })))
}

async fn set_paused(req: HttpRequest, state: web::Data<ApiState>, paused: bool) -> ApiResult {
    authorize(&req, &state)?;
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    let (verb, action) = if paused { ("paused", "pause_strategy") } else { ("resumed", "resume_strategy") };
    let done = state.handle.set_paused(&id, paused, &format!("{verb} by {}", caller(&req))).await;
    crate::audit::outcome(&state.handle, &actions::origin(&req), action, id.clone(), done).await?;
    Ok(HttpResponse::Ok().json(json!({ "ok": true, "strategy": id, "paused": paused })))
}

async fn pause_strategy(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    set_paused(req, state, true).await
}

async fn start_strategy(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    set_paused(req, state, false).await
}

/// `POST /api/v1/orders/cancel-all` and `POST /api/v1/flatten` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelAllBody {
    /// Only this symbol.
    #[serde(default)]
    pub symbol: Option<String>,
}

async fn cancel_all(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let b: CancelAllBody = body_json(&body)?;
    let symbol = actions::symbol_of(&state, b.symbol)?;
    let detail = crate::audit::scope(&symbol);
    let done = state.handle.cancel_all(symbol, &format!("cancel-all by {}", caller(&req))).await;
    let n = crate::audit::outcome(&state.handle, &actions::origin(&req), "cancel_all", detail, done).await?;
    Ok(HttpResponse::Ok().json(json!({ "ok": true, "requested": n })))
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": "no such endpoint" }))
}

/// 405 for a known path asked with a method it does not serve.
fn method_not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow))
        .json(json!({ "error": format!("method not allowed; this endpoint answers {allow}") }))
}

/// `path` served by `handler` for GET and HEAD; any other method gets 405.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::route().guard(method::Any(method::Get()).or(method::Head())).to(handler))
        .default_service(web::to(|| async { method_not_allowed("GET, HEAD") }))
}

/// `path` served by `handler` for POST; any other method gets 405.
fn post<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path).route(web::post().to(handler)).default_service(web::to(|| async { method_not_allowed("POST") }))
}

/// Builds the routes (shared by the server and tests).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/health", health))
        .service(get("/ready", ready))
        .service(get("/metrics", metrics_endpoint))
        .configure(console::routes)
        .service(
            web::scope("/api/v1")
                .service(get("/status", status))
                .service(get("/positions", positions))
                .service(get("/orders", orders))
                .service(get("/balances", balances))
                .service(get("/strategies", strategies))
                .service(get("/trades", trades))
                .service(get("/trades.csv", trades_csv))
                .service(get("/events", events::events))
                .service(get("/candles", candles::candles))
                .service(post("/emergency-stop", emergency_stop))
                .service(post("/resume", resume))
                .service(post("/strategies/{id}/pause", pause_strategy))
                .service(post("/strategies/{id}/start", start_strategy))
                .service(post("/strategies/{id}/resume", start_strategy))
                .service(post("/orders/cancel-all", cancel_all))
                .service(post("/orders/{client_order_id}/cancel", actions::cancel_order))
                .service(post("/flatten", actions::flatten))
                .service(get("/audit", actions::audit_log))
                .service(get("/equity", equity::equity))
                .service(get("/pnl", equity::pnl))
                .service(post("/webhook/tradingview", webhook::tradingview)),
        )
        .default_service(web::to(not_found));
}

/// A running HTTP server.
pub struct RunningHttp {
    /// The bound address (the configured one, or the port the OS chose for `:0`).
    pub addr: SocketAddr,
    /// Whether it serves HTTPS.
    pub tls: bool,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<()>,
    streams: web::Data<events::Streams>,
}

impl RunningHttp {
    /// Stops accepting, lets requests in flight finish (bounded), then returns.
    pub async fn stop(self) {
        self.streams.close();
        let stop = self.handle.stop(true);
        if tokio::time::timeout(Duration::from_secs(5), stop).await.is_err() {
            tracing::warn!("http server did not stop within 5 s");
        }
        self.task.abort();
    }
}

/// Binds and starts the server (inside an actix / tokio runtime).
pub fn start(state: ApiState, listen: &str) -> anyhow::Result<RunningHttp> {
    let tls = match (&state.config.http.tls_cert, &state.config.http.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let state = web::Data::new(state);
    let streams = web::Data::new(events::Streams::new(events::MAX_STREAMS));
    let (app_streams, candle_cache) = (streams.clone(), web::Data::new(candles::CandleCache::default()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(app_streams.clone())
            .app_data(candle_cache.clone())
            .app_data(web::PayloadConfig::new(64 * 1024))
            .wrap_fn(|req, srv| {
                let peer = req.peer_addr().map(|a| a.ip());
                let state = req.app_data::<web::Data<ApiState>>().cloned();
                match state.as_ref().and_then(|s| s.guard.probe(req.path(), peer).err()) {
                    Some(wait) => {
                        metrics().http_requests_total.with_label_values(&[req.path(), "429"]).inc();
                        if let Some(state) = &state {
                            state.guard.answered(429, req.path(), peer);
                        }
                        let e: actix_web::Error = ApiError::rate_limited(wait).into();
                        Either::Left(async move { Err(e) })
                    }
                    None => {
                        let fut = srv.call(req);
                        Either::Right(async move {
                            let res = fut.await?;
                            let route = res.request().match_pattern().filter(|r| r.starts_with('/'));
                            let route = route.unwrap_or_else(|| "unmatched".into());
                            metrics()
                                .http_requests_total
                                .with_label_values(&[route.as_str(), res.status().as_str()])
                                .inc();
                            if let Some(state) = &state {
                                state.guard.answered(res.status().as_u16(), &route, peer);
                            }
                            Ok(res)
                        })
                    }
                }
            })
            .configure(configure)
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5);
    let encrypted = tls.is_some();
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(listen, tls),
        None => server.bind(listen),
    }
    .map_err(|e| anyhow::anyhow!("http.listen `{listen}`: cannot bind: {e}"))?;
    let addr = server.addrs().first().copied().ok_or_else(|| anyhow::anyhow!("http.listen `{listen}`: no address"))?;
    if let Some(warning) = tls::plain_http_warning(addr, encrypted) {
        tracing::warn!("{warning}");
    }
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "http server failed");
        }
    });
    Ok(RunningHttp { addr, tls: encrypted, handle, task, streams })
}
