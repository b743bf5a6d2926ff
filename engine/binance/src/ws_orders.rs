//! Order entry and cancels over the WebSocket API (`order.place`,
//! `order.cancel`), on a connection of their own.
//!
//! One task owns the connection: it connects, logs an Ed25519 key on
//! (`session.logon`, so requests carry no signature), then sends requests and
//! matches responses by id, reconnecting with backoff when the connection
//! ends. While it is down a request is refused at once as not sent
//! ([`BinanceError::NotSent`]), and the venue sends it over REST instead.
//! A request that left and got no answer — a timeout, a connection dropped
//! mid-request — is [`BinanceError::NoResponse`]: its outcome is unknown and
//! the venue resolves it by querying the order, never by sending it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::error::{retry_after_from_epoch, BinanceError, INVALID_TIMESTAMP};
use super::model::{OrderInfo, WsApiMessage, WsApiResponse};
use super::stream::backoff_delay;
use super::venue::Shared;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long the first connection may take before orders start on REST.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Where a request's answer goes.
type Reply = oneshot::Sender<Result<WsApiResponse, BinanceError>>;

/// A request for the connection task: the method, its params (signed by the
/// task as the key requires) and where the answer goes.
struct Request {
    method: &'static str,
    params: Vec<(String, String)>,
    reply: Reply,
}

/// The order-entry client: a handle on the connection task.
pub(crate) struct WsOrders {
    tx: mpsc::Sender<Request>,
    up: Arc<AtomicBool>,
    timeout: Duration,
}

impl WsOrders {
    /// Starts the connection task and waits (briefly) for its first
    /// connection, so the first order can use it. Returns the client and the
    /// task to abort with the venue.
    pub(crate) async fn start(shared: Weak<Shared>, timeout_ms: u64) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(256);
        let up = Arc::new(AtomicBool::new(false));
        let (first_tx, first_rx) = oneshot::channel();
        let task = tokio::spawn(run(shared, rx, up.clone(), first_tx));
        if tokio::time::timeout(FIRST_CONNECT_WAIT, first_rx).await.is_err() {
            tracing::warn!("binance WebSocket API not connected yet; orders go over REST until it is");
        }
        (Self { tx, up, timeout: Duration::from_millis(timeout_ms.max(1)) }, task)
    }

    /// Whether the connection is up (logged on when the key is Ed25519).
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// Sends one request and waits for its answer. `NotSent` while the
    /// connection is down; `NoResponse` when it left and no answer came in
    /// time or the connection dropped before one.
    async fn request(
        &self,
        method: &'static str,
        params: Vec<(String, String)>,
    ) -> Result<WsApiResponse, BinanceError> {
        if !self.is_up() {
            return Err(BinanceError::NotSent("the WebSocket API connection is down".into()));
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { method, params, reply })
            .await
            .map_err(|_| BinanceError::NotSent("the WebSocket API client has stopped".into()))?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(BinanceError::NoResponse(format!("{method}: the WebSocket API client stopped"))),
            Err(_) => {
                Err(BinanceError::NoResponse(format!("{method}: no answer within {} ms", self.timeout.as_millis())))
            }
        }
    }

    /// `order.place` with the REST parameters of a new order.
    pub(crate) async fn new_order(
        &self,
        shared: &Shared,
        params: Vec<(String, String)>,
    ) -> Result<OrderInfo, BinanceError> {
        self.call(shared, "order.place", params, true).await
    }

    /// `order.cancel` by client order id.
    pub(crate) async fn cancel_order(
        &self,
        shared: &Shared,
        symbol: &str,
        cid: &str,
    ) -> Result<OrderInfo, BinanceError> {
        let p = vec![("symbol".into(), symbol.to_string()), ("origClientOrderId".into(), cid.to_string())];
        self.call(shared, "order.cancel", p, false).await
    }

    /// A signed call through the REST client's rate-limit gate, whose state
    /// it also feeds; on `-1021` the clock is resynchronised and the request
    /// sent once more (a `-1021` request was certainly not executed).
    async fn call(
        &self,
        shared: &Shared,
        method: &'static str,
        params: Vec<(String, String)>,
        is_order: bool,
    ) -> Result<OrderInfo, BinanceError> {
        let rest = &shared.rest;
        rest.gate(is_order).await?;
        let mut answer = self.request(method, params.clone()).await;
        if matches!(&answer, Err(e) if e.needs_time_resync()) {
            tracing::warn!(
                "binance timestamp rejected on the WebSocket API; resynchronising the clock and retrying once"
            );
            rest.sync_time().await?;
            answer = self.request(method, params).await;
        }
        let resp = answer.inspect_err(|e| rest.note_error(e))?;
        serde_json::from_value(resp.result.unwrap_or(Value::Null))
            .map_err(|e| BinanceError::Decode(format!("{method}: {e}")))
    }
}

/// The error of a response that is not a success.
fn error_of(resp: WsApiResponse, now_ms: i64) -> Result<WsApiResponse, BinanceError> {
    if resp.status == 200 {
        return Ok(resp);
    }
    match resp.error {
        Some(e) => {
            let retry_after_ms = e
                .data
                .as_ref()
                .and_then(|d| d.get("retryAfter"))
                .and_then(Value::as_i64)
                .map(|at| retry_after_from_epoch(at, now_ms));
            Err(BinanceError::Api { http_status: resp.status, code: e.code, msg: e.msg, retry_after_ms })
        }
        None => Err(BinanceError::Http { status: resp.status, body: String::new() }),
    }
}

/// The connection task: connect, log on, serve requests, reconnect.
async fn run(shared: Weak<Shared>, mut rx: mpsc::Receiver<Request>, up: Arc<AtomicBool>, first: oneshot::Sender<()>) {
    super::install_crypto_provider();
    let mut first = Some(first);
    let mut attempt: u32 = 0;
    let mut seq: u64 = 0;
    loop {
        let Some(s) = shared.upgrade() else { return };
        let url = s.settings.endpoints.ws_api.clone();
        let reason = match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(e) => format!("connect failed: {e}"),
            Ok((mut ws, _)) => match logon(&s, &mut ws, &mut seq).await {
                Err(e) => e,
                Ok(()) => {
                    drop(s);
                    up.store(true, Ordering::SeqCst);
                    attempt = 0;
                    tracing::info!(url = %url, "binance WebSocket API connected for order entry");
                    if let Some(f) = first.take() {
                        let _ = f.send(());
                    }
                    let reason = serve(&shared, &mut ws, &mut rx, &mut seq).await;
                    up.store(false, Ordering::SeqCst);
                    match reason {
                        Some(r) => r,
                        None => return,
                    }
                }
            },
        };
        if let Some(f) = first.take() {
            let _ = f.send(());
        }
        tracing::warn!(%reason, "binance WebSocket API for order entry is down; orders go over REST until it is back");
        // Requests queued meanwhile never left: refuse them so they go over REST.
        while let Ok(req) = rx.try_recv() {
            let _ = req.reply.send(Err(BinanceError::NotSent("the WebSocket API connection is down".into())));
        }
        tokio::time::sleep(backoff_delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Logs an Ed25519 key on (other key types sign each request instead).
async fn logon(s: &Shared, ws: &mut Ws, seq: &mut u64) -> Result<(), String> {
    let creds = s.rest.credentials();
    if !creds.is_ed25519() {
        return Ok(());
    }
    for _try in 0..2 {
        *seq += 1;
        let id = format!("keel-o-{seq}");
        let req = super::user::key_request("session.logon", creds, s.rest.now_ms(), s.rest.recv_window_ms(), &id);
        ws.send(Message::Text(req.to_string().into())).await.map_err(|e| format!("send session.logon: {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let resp = loop {
            let msg = tokio::time::timeout_at(deadline, ws.next()).await.map_err(|_| "session.logon timed out")?;
            match msg {
                Some(Ok(Message::Text(t))) => match WsApiMessage::parse(t.as_str()) {
                    Ok(WsApiMessage::Response(r)) if r.id == Value::String(id.clone()) => break r,
                    _ => continue,
                },
                Some(Ok(Message::Ping(p))) => {
                    let _ = ws.send(Message::Pong(p)).await;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("closed during session.logon".into()),
            }
        };
        match error_of(resp, s.rest.now_ms()) {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(INVALID_TIMESTAMP) => {
                s.rest.sync_time().await.map_err(|e| format!("clock resync: {e}"))?;
            }
            Err(e) => return Err(format!("session.logon refused: {e}")),
        }
    }
    Err("session.logon refused twice for the timestamp".into())
}

/// Serves requests until the connection ends (the reason) or the venue is
/// gone (`None`). Requests still waiting when it ends get `NoResponse`: they
/// left, and their outcome is unknown.
async fn serve(shared: &Weak<Shared>, ws: &mut Ws, rx: &mut mpsc::Receiver<Request>, seq: &mut u64) -> Option<String> {
    let mut pending: HashMap<String, (&'static str, Reply)> = HashMap::new();
    let reason = loop {
        tokio::select! {
            req = rx.recv() => {
                let req = req?;
                if req.reply.is_closed() {
                    // Its caller gave up before it left: it must never be sent late.
                    continue;
                }
                let s = shared.upgrade()?;
                *seq += 1;
                let id = format!("keel-o-{seq}");
                let params = signed_params(&s, req.params);
                let text = json!({"id": id, "method": req.method, "params": params}).to_string();
                // Answers whose caller gave up (a timeout) are not waited for.
                pending.retain(|_, (_, reply)| !reply.is_closed());
                pending.insert(id, (req.method, req.reply));
                if let Err(e) = ws.send(Message::Text(text.into())).await {
                    break format!("send failed: {e}");
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let Ok(WsApiMessage::Response(r)) = WsApiMessage::parse(t.as_str()) else { continue };
                    let Some(id) = r.id.as_str().map(str::to_string) else { continue };
                    if let Some((_, reply)) = pending.remove(&id) {
                        let now = shared.upgrade().map(|s| s.rest.now_ms()).unwrap_or_default();
                        let _ = reply.send(error_of(r, now));
                    }
                }
                Some(Ok(Message::Ping(p))) => {
                    if ws.send(Message::Pong(p)).await.is_err() {
                        break "pong failed".to_string();
                    }
                }
                Some(Ok(Message::Close(_))) => break "closed by the server".to_string(),
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("read error: {e}"),
                None => break "connection ended".to_string(),
            },
        }
    };
    for (_, (method, reply)) in pending {
        let _ =
            reply.send(Err(BinanceError::NoResponse(format!("{method}: the connection dropped before its answer"))));
    }
    Some(reason)
}

/// The request's params with `recvWindow` and `timestamp`; signed with
/// `apiKey` unless the session is logged on (an Ed25519 key).
fn signed_params(s: &Shared, mut params: Vec<(String, String)>) -> Map<String, Value> {
    params.push(("recvWindow".into(), s.rest.recv_window_ms().to_string()));
    params.push(("timestamp".into(), s.rest.now_ms().to_string()));
    let creds = s.rest.credentials();
    let signature = (!creds.is_ed25519()).then(|| {
        params.push(("apiKey".into(), creds.api_key().to_string()));
        creds.sign_ws(&params)
    });
    let mut out: Map<String, Value> = params.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    if let Some(sig) = signature {
        out.insert("signature".into(), Value::String(sig));
    }
    out
}
