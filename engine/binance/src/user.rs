//! The user-data client over the WebSocket API: `session.logon` +
//! `userDataStream.subscribe` with an Ed25519 key, `userDataStream.subscribe.signature`
//! with any other, resubscription after every reconnect, REST reconciliation after any gap
//! (open orders, own trades since the last seen trade id, balances), fills
//! deduplicated by trade id, and rate-limit alerts forwarded as events.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use keel_core::balance::Balance;
use keel_core::fill::Fill;
use keel_core::symbol::Symbol;
use keel_core::venue::{OrderReport, StreamStatus, UserEvent, VenueAlert};

use super::error::{BinanceError, INVALID_TIMESTAMP};
use super::model::{ExecutionReport, UserDataEvent, WsApiMessage};
use super::rest::Credentials;
use super::stream::backoff_delay;
use super::venue::{order_status, side_of, Shared};

const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// The report and fill an `executionReport` carries; a side or status Keel
/// does not know is an error, never a guess.
pub fn translate_execution(er: &ExecutionReport) -> Result<(OrderReport, Option<Fill>), String> {
    let side = side_of(&er.side)?;
    let status = order_status(&er.status)?;
    // For a cancel, `c` is the cancel request's id and `C` the order's own id.
    let cid =
        if !er.orig_client_order_id.is_empty() { er.orig_client_order_id.clone() } else { er.client_order_id.clone() };
    let symbol = Symbol::new(&er.symbol);
    let report = OrderReport {
        client_order_id: cid.clone(),
        venue_order_id: er.order_id.to_string(),
        symbol: symbol.clone(),
        side,
        status,
        qty: er.qty,
        filled_qty: er.cum_qty,
        filled_quote: er.cum_quote.unwrap_or_default(),
        reason: Some(er.reject_reason.clone())
            .filter(|r| !r.is_empty() && r != "NONE")
            .or(er.expiry_reason.clone().filter(|r| r != "NONE")),
        ts_ms: er.transact_time,
        oco_leg: None,
    };
    let fill = (er.execution_type == "TRADE" && er.trade_id >= 0).then(|| Fill {
        trade_id: (er.trade_id as u64).into(),
        client_order_id: cid,
        strategy_id: "".into(),
        symbol,
        side,
        price: er.last_price,
        qty: er.last_qty,
        fee: er.commission.unwrap_or_default(),
        fee_asset: er.commission_asset.clone().unwrap_or_default(),
        is_maker: er.is_maker,
        ts_ms: er.transact_time,
        tag: None,
    });
    Ok((report, fill))
}

/// Builds a signed request `method` with only `apiKey`, `recvWindow` and
/// `timestamp` (`userDataStream.subscribe.signature`, `session.logon`).
pub fn key_request(method: &str, creds: &Credentials, timestamp: i64, recv_window_ms: u64, id: &str) -> Value {
    let params = vec![
        ("apiKey".to_string(), creds.api_key().to_string()),
        ("recvWindow".to_string(), recv_window_ms.to_string()),
        ("timestamp".to_string(), timestamp.to_string()),
    ];
    let signature = creds.sign_ws(&params);
    json!({
        "id": id,
        "method": method,
        "params": {"apiKey": creds.api_key(), "recvWindow": recv_window_ms, "timestamp": timestamp, "signature": signature},
    })
}

struct UserRun {
    shared: Arc<Shared>,
    tx: mpsc::Sender<UserEvent>,
}

impl UserRun {
    async fn emit(&self, ev: UserEvent) -> bool {
        self.tx.send(ev).await.is_ok()
    }

    /// A venue message that could not be read: a warning with its text, an
    /// alert (counted), and a reconciliation, which recovers what it carried
    /// (a fill's trade is listed by `myTrades`). Returns false when the
    /// receiver is gone.
    async fn on_malformed(&self, raw: &str, detail: String) -> bool {
        tracing::warn!(raw = %redact(raw), error = %detail, "binance: user-stream message Keel cannot read; reconciling");
        if !self.emit(UserEvent::Alert(VenueAlert::Malformed { stream: "user".into(), detail })).await {
            return false;
        }
        match self.reconcile().await {
            Ok(alive) => alive,
            Err(e) => {
                tracing::warn!(error = %e, "binance: reconciliation after an unreadable message failed; it runs again at the next reconnect");
                true
            }
        }
    }

    async fn on_execution(&self, er: &ExecutionReport, raw: &str) -> bool {
        let (report, fill) = match translate_execution(er) {
            Ok(t) => t,
            Err(detail) => return self.on_malformed(raw, detail).await,
        };
        // A leg of an OCO is reported as its list (one order to Keel).
        let (report, fill) = self.shared.leg_to_list(er.order_list_id, report, fill);
        self.shared.remember_order(&report.symbol, er.order_id, &report.client_order_id);
        self.shared.add_symbol(&report.symbol);
        self.shared.note_report(&report);
        if let Some(f) = fill {
            if self.shared.claim_fill(&f.symbol, &f.trade_id, true) && !self.emit(UserEvent::Fill(f)).await {
                return false;
            }
        }
        self.emit(UserEvent::Order(report)).await
    }

    /// REST reconciliation after a (re)subscribe: open orders, fills above
    /// each symbol's trade-id watermark, balances.
    async fn reconcile(&self) -> Result<bool, BinanceError> {
        let rest = &self.shared.rest;
        let now = rest.now_ms();
        let open = rest.open_orders(None).await?;
        let reports: Vec<(u64, OrderReport)> = self.shared.merge_lists(&open, now);
        let plain: Vec<OrderReport> = reports.iter().map(|(_, r)| r.clone()).collect();
        self.shared.note_open_orders(None, &plain);
        for (order_id, r) in reports {
            self.shared.remember_order(&r.symbol, order_id, &r.client_order_id);
            if !self.emit(UserEvent::Order(r)).await {
                return Ok(false);
            }
        }
        for sym in self.shared.known_symbols() {
            let Some(last) = self.shared.last_trade_id(&sym) else {
                // Nothing known yet: the venue's latest trade becomes the
                // watermark (start-up reconciliation is the caller's).
                self.shared.ensure_watermark(&sym).await?;
                continue;
            };
            let fills = self.shared.trades_since(&sym, Some(last + 1)).await?;
            for f in fills {
                if self.shared.claim_fill(&f.symbol, &f.trade_id, true) {
                    tracing::info!(symbol = %f.symbol, trade_id = %f.trade_id, "recovered a fill missed during a user-stream gap");
                    if !self.emit(UserEvent::Fill(f)).await {
                        return Ok(false);
                    }
                }
            }
        }
        let acc = rest.account().await?;
        let balances =
            acc.balances.into_iter().map(|b| Balance { asset: b.asset, free: b.free, locked: b.locked }).collect();
        Ok(self.emit(UserEvent::Balances(balances)).await)
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Subscribes on a fresh connection. An Ed25519 key logs the session on
/// (`session.logon`) and subscribes its account (`userDataStream.subscribe`);
/// any other key type subscribes with a signature
/// (`userDataStream.subscribe.signature`). A `-1021` resyncs the clock and
/// tries once more.
async fn subscribe(shared: &Shared, ws: &mut Ws, seq: &mut u64) -> Result<(), String> {
    let creds = shared.rest.credentials();
    if creds.is_ed25519() {
        signed_call(shared, ws, seq, "session.logon").await?;
        *seq += 1;
        let id = format!("keel-uds-{seq}");
        let req = json!({"id": id, "method": "userDataStream.subscribe"});
        return match call(ws, &id, &req).await? {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("userDataStream.subscribe refused ({}): {}", e.code, e.msg)),
        };
    }
    signed_call(shared, ws, seq, "userDataStream.subscribe.signature").await
}

/// A request signed with only the key and a timestamp; once more after a
/// clock resync on `-1021`.
async fn signed_call(shared: &Shared, ws: &mut Ws, seq: &mut u64, method: &str) -> Result<(), String> {
    for _try in 0..2 {
        *seq += 1;
        let id = format!("keel-uds-{seq}");
        let creds = shared.rest.credentials();
        let req = key_request(method, creds, shared.rest.now_ms(), shared.rest.recv_window_ms(), &id);
        match call(ws, &id, &req).await? {
            Ok(_) => return Ok(()),
            Err(err) if err.code == INVALID_TIMESTAMP => {
                shared.rest.sync_time().await.map_err(|e| format!("clock resync: {e}"))?;
            }
            Err(err) => return Err(format!("{method} refused ({}): {}", err.code, err.msg)),
        }
    }
    Err(format!("{method} refused twice for the timestamp"))
}

/// Sends one request and waits (10 s at most) for its response, answering
/// pings meanwhile: the result, or the venue's error.
async fn call(ws: &mut Ws, id: &str, req: &Value) -> Result<Result<Option<Value>, super::model::ApiError>, String> {
    let method = req["method"].as_str().unwrap_or("request").to_string();
    ws.send(Message::Text(req.to_string().into())).await.map_err(|e| format!("send {method}: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.map_err(|_| format!("{method} timed out"))?;
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Ping(p))) => {
                let _ = ws.send(Message::Pong(p)).await;
                continue;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err(format!("closed during {method}")),
        };
        let Ok(WsApiMessage::Response(r)) = WsApiMessage::parse(text.as_str()) else { continue };
        if r.id != Value::String(id.to_string()) {
            continue;
        }
        if r.status == 200 {
            return Ok(Ok(r.result));
        }
        return Ok(Err(r.error.unwrap_or(super::model::ApiError { code: 0, msg: "no error body".into(), data: None })));
    }
}

/// Runs the user-data subscription until the receiver is dropped. `ready`
/// hears how the first subscription went: the caller reconciles right after
/// it, so that connection skips the adapter's own reconciliation (a start-up
/// pays for one, not two); every later connection reconciles its gap.
pub(crate) async fn run_user(
    shared: Arc<Shared>,
    tx: mpsc::Sender<UserEvent>,
    mut ready: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
) {
    super::install_crypto_provider();
    let url = shared.settings.endpoints.ws_api.clone();
    let reconnect_after = Duration::from_millis(shared.settings.reconnect_after_ms.max(1000));
    let mut alerts = shared.rest.alerts();
    let run = UserRun { shared, tx };
    let mut attempt: u32 = 0;
    let mut seq = 0u64;
    loop {
        if run.tx.is_closed() {
            return;
        }
        let reason = match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(e) => format!("connect failed: {e}"),
            Ok((mut ws, _)) => match subscribe(&run.shared, &mut ws, &mut seq).await {
                Err(e) => e,
                Ok(()) => {
                    let mut pending_reconcile = true;
                    if let Some(first) = ready.take() {
                        pending_reconcile = false;
                        let _ = first.send(Ok(()));
                        if !run.emit(UserEvent::Status(StreamStatus::Connected)).await {
                            return;
                        }
                    }
                    let deadline = tokio::time::sleep(reconnect_after);
                    tokio::pin!(deadline);
                    loop {
                        if pending_reconcile {
                            // Events arriving meanwhile are buffered by the socket and
                            // deduplicated by trade id afterwards.
                            match run.reconcile().await {
                                Ok(true) => {
                                    pending_reconcile = false;
                                    attempt = 0;
                                    if !run.emit(UserEvent::Status(StreamStatus::Connected)).await {
                                        return;
                                    }
                                }
                                Ok(false) => return,
                                Err(e) => break format!("reconciliation failed: {e}"),
                            }
                        }
                        let msg = tokio::select! {
                            _ = &mut deadline => break "proactive reconnect before the 24 h limit".to_string(),
                            a = alerts.recv() => {
                                if let Ok(a) = a {
                                    if !run.emit(UserEvent::Alert(a)).await {
                                        return;
                                    }
                                }
                                continue;
                            }
                            m = tokio::time::timeout(IDLE_TIMEOUT, ws.next()) => m,
                        };
                        match msg {
                            Err(_) => break "no data or ping for too long".to_string(),
                            Ok(None) => break "closed by server".to_string(),
                            Ok(Some(Err(e))) => break format!("read error: {e}"),
                            Ok(Some(Ok(Message::Ping(p)))) => {
                                if ws.send(Message::Pong(p)).await.is_err() {
                                    break "pong failed".to_string();
                                }
                            }
                            Ok(Some(Ok(Message::Text(t)))) => match WsApiMessage::parse(t.as_str()) {
                                Ok(WsApiMessage::Event { event, .. }) => match event {
                                    UserDataEvent::ExecutionReport(er) => {
                                        if !run.on_execution(&er, t.as_str()).await {
                                            return;
                                        }
                                    }
                                    UserDataEvent::AccountPosition(p) => {
                                        let list = p
                                            .balances
                                            .into_iter()
                                            .map(|b| Balance { asset: b.asset, free: b.free, locked: b.locked })
                                            .collect();
                                        if !run.emit(UserEvent::Balances(list)).await {
                                            return;
                                        }
                                    }
                                    UserDataEvent::BalanceUpdate(_) => {
                                        if let Ok(acc) = run.shared.rest.account().await {
                                            let list = acc
                                                .balances
                                                .into_iter()
                                                .map(|b| Balance { asset: b.asset, free: b.free, locked: b.locked })
                                                .collect();
                                            if !run.emit(UserEvent::Balances(list)).await {
                                                return;
                                            }
                                        }
                                    }
                                    UserDataEvent::StreamTerminated => break "eventStreamTerminated".to_string(),
                                    UserDataEvent::ServerShutdown => break "serverShutdown".to_string(),
                                    UserDataEvent::ListStatus(ev) => {
                                        if let Some(r) = run.shared.on_list_status(&ev) {
                                            if !run.emit(UserEvent::Order(r)).await {
                                                return;
                                            }
                                        }
                                    }
                                    UserDataEvent::Other(_) => {}
                                },
                                Ok(WsApiMessage::Response(_)) => {}
                                Err(e) => {
                                    if !run.on_malformed(t.as_str(), e.to_string()).await {
                                        return;
                                    }
                                }
                            },
                            Ok(Some(Ok(Message::Close(_)))) => break "close frame".to_string(),
                            Ok(Some(Ok(_))) => {}
                        }
                    }
                }
            },
        };
        if let Some(first) = ready.take() {
            // The caller decides whether to try again.
            let _ = first.send(Err(reason));
            return;
        }
        tracing::warn!(%reason, "user-data stream disconnected; reconnecting");
        if !run.emit(UserEvent::Status(StreamStatus::Disconnected { reason: reason.clone() })).await {
            return;
        }
        let planned = reason == "serverShutdown" || reason.starts_with("proactive");
        if !planned {
            tokio::time::sleep(backoff_delay(attempt)).await;
            attempt = attempt.saturating_add(1);
        }
    }
}

/// A venue message as it may be logged: credentials masked, at most 2 KiB.
pub(crate) fn redact(raw: &str) -> String {
    let mut out = raw.to_string();
    for key in ["\"apiKey\":\"", "\"signature\":\"", "\"listenKey\":\""] {
        let mut from = 0;
        while let Some(at) = out[from..].find(key) {
            let start = from + at + key.len();
            let end = out[start..].find('"').map_or(out.len(), |e| start + e);
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    if out.len() > 2048 {
        let mut cut = 2048;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn credentials_are_masked_and_long_text_cut() {
        let raw = r#"{"params":{"apiKey":"AbC123","signature":"deadbeef","x":1}}"#;
        assert_eq!(super::redact(raw), r#"{"params":{"apiKey":"***","signature":"***","x":1}}"#);
        let long = "é".repeat(3000);
        let cut = super::redact(&long);
        assert!(cut.len() <= 2048 + '…'.len_utf8() && cut.ends_with('…'));
    }
}
