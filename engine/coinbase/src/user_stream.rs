//! The user stream: one connection subscribing `heartbeats` and `user`
//! (each with a fresh JWT of server time); reconnect with backoff.
//!
//! The `user` channel reports each order's cumulative state, not fills
//! (§6.6): whenever an order's `cumulative_quantity` or `number_of_fills`
//! grew, its fills are read by REST (`orders/historical/fills`) and each
//! `trade_id` is delivered once (a place answer, this stream and a
//! reconciliation share one claim set). An order's state changes are
//! delivered as order reports read back by REST (`CANCEL_QUEUED` is still
//! working). After every (re)subscribe, and so after any gap — a dropped
//! connection, or a skipped `sequence_num`, which ends the connection — the
//! adapter reconciles by REST: fills since each product's cursor (moved
//! only by these listings, so a newer fill handed out by a place answer
//! never hides one missed in the gap), orders reported working that are no
//! longer open and orders of recovered fills (the stream may never have
//! seen them), open orders, balances. Only then is `Connected` sent.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use keel_core::venue::{StreamStatus, UserEvent, VenueError};

use crate::model::{UserOrder, WsMessage};
use crate::venue::Shared;
use crate::ws::{self, Seq, SeqCheck};

/// The receiver is gone: the stream ends.
struct Gone;

/// Why a session ended.
enum End {
    /// Reconnect, for this reason.
    Reconnect(String),
    /// The receiver is gone.
    Gone,
}

impl From<Gone> for End {
    fn from(_: Gone) -> Self {
        Self::Gone
    }
}

impl From<VenueError> for End {
    fn from(e: VenueError) -> Self {
        Self::Reconnect(format!("REST during the user stream: {e}"))
    }
}

/// What the stream last knew of an order.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    status: String,
    cumulative: Decimal,
    fills: i64,
}

struct UserRun {
    shared: Arc<Shared>,
    tx: mpsc::Sender<UserEvent>,
    /// Coinbase order id → its last known state.
    seen: HashMap<String, Seen>,
}

impl UserRun {
    async fn emit(&self, ev: UserEvent) -> Result<(), Gone> {
        self.tx.send(ev).await.map_err(|_| Gone)
    }

    /// Reads an order's fills and delivers the ones not delivered yet.
    async fn fills_of(&self, order_id: &str, product: &str) -> Result<(), End> {
        let symbol = keel_core::symbol::Symbol::new(product);
        let quote = self.shared.rules(&symbol).await?.instrument.quote_asset;
        for f in self.shared.keel_fills_of_order(order_id, &quote).await? {
            if self.shared.claim_fill(&f) {
                self.emit(UserEvent::Fill(f)).await?;
            }
        }
        Ok(())
    }

    /// One order's state from the channel: its new fills, then its report.
    /// The report is read by REST, which may be ahead of the message: its
    /// fills are read whenever either shows more than was seen, so a report
    /// never runs ahead of the fills delivered.
    async fn on_order(&mut self, o: &UserOrder) -> Result<(), End> {
        let mut now = Seen {
            status: o.status.clone(),
            cumulative: o.cumulative_quantity.unwrap_or_default(),
            fills: o.number_of_fills.unwrap_or(0),
        };
        let before = self.seen.get(&o.order_id).cloned();
        let grew = |now: &Seen| match &before {
            Some(b) => now.cumulative > b.cumulative || now.fills > b.fills,
            None => now.cumulative > Decimal::ZERO || now.fills > 0,
        };
        if before.as_ref().is_some_and(|b| b.status == now.status) && !grew(&now) {
            return Ok(());
        }
        if let Some(t) = o.creation_time {
            self.shared.watch_fills(&keel_core::symbol::Symbol::new(&o.product_id), t - 60_000);
        }
        let order = self.shared.get_order(&o.order_id).await?;
        let report = self.shared.report_of(&order);
        now.cumulative = now.cumulative.max(report.filled_qty);
        if grew(&now) {
            self.fills_of(&o.order_id, &o.product_id).await?;
        }
        self.seen.insert(o.order_id.clone(), now);
        self.emit(UserEvent::Order(report)).await?;
        Ok(())
    }

    /// REST reconciliation after a (re)subscribe: fills since each
    /// product's cursor, then every order that may have changed unseen
    /// (reported working and no longer open, or owning a recovered fill:
    /// the stream may never have seen it), each with any fill of its own
    /// still undelivered before its report, then the open orders and
    /// balances. The cursors move to the newest fill listed.
    async fn reconcile(&mut self) -> Result<(), End> {
        let open = self.shared.open_orders(None).await?;
        let is_open = |id: &str| open.iter().any(|r| r.venue_order_id == id);
        let mut changed: BTreeSet<String> =
            self.shared.working_orders().into_iter().filter(|id| !is_open(id)).collect();
        for (symbol, cursor) in self.shared.fill_cursors() {
            let listed = self.shared.my_trades(&symbol, Some(&cursor)).await?;
            for f in &listed {
                if self.shared.claim_fill(f) {
                    tracing::info!(%symbol, trade_id = %f.trade_id, "coinbase: recovered a fill missed during a user-stream gap");
                    if let Some(id) = self.shared.order_id_of(&f.client_order_id).filter(|id| !is_open(id)) {
                        changed.insert(id);
                    }
                    self.emit(UserEvent::Fill(f.clone())).await?;
                }
            }
            self.shared.fills_listed(&symbol, &listed);
        }
        for id in changed {
            let order = self.shared.get_order(&id).await?;
            let report = self.shared.report_of(&order);
            if report.filled_qty > Decimal::ZERO {
                self.fills_of(&id, &order.product_id).await?;
            }
            let fills = order.number_of_fills.unwrap_or(0);
            self.seen.insert(id, Seen { status: order.status.clone(), cumulative: report.filled_qty, fills });
            self.emit(UserEvent::Order(report)).await?;
        }
        for r in &open {
            self.emit(UserEvent::Order(r.clone())).await?;
        }
        let balances = self.shared.balances().await?;
        self.emit(UserEvent::Balances(balances)).await?;
        Ok(())
    }

    /// One connection: subscribe, reconcile, then read until it fails.
    async fn session(&mut self, conn: &mut ws::Ws, attempt: &mut u32) -> Result<String, End> {
        for channel in ["heartbeats", "user"] {
            let sent = match ws::control(&self.shared, true, channel, &[]) {
                Ok(m) => conn.send(m).await.map_err(|e| format!("subscribe {channel}: {e}")),
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                return Ok(e);
            }
        }
        // Messages arriving meanwhile wait in the socket; fills are
        // deduplicated by trade id, so reading them afterwards is safe.
        self.reconcile().await?;
        self.emit(UserEvent::Status(StreamStatus::Connected)).await?;
        let mut seq = SeqCheck::default();
        let mut alerts = self.shared.rest.alerts();
        loop {
            let next = tokio::select! {
                a = alerts.recv() => {
                    if let Ok(a) = a {
                        self.emit(UserEvent::Alert(a)).await?;
                    }
                    continue;
                }
                m = tokio::time::timeout(ws::IDLE_TIMEOUT, conn.next()) => m,
            };
            let text = match next {
                Err(_) => return Ok("no message (not even a heartbeat) for too long".into()),
                Ok(None) => return Ok("closed by server".into()),
                Ok(Some(Err(e))) => return Ok(format!("read error: {e}")),
                Ok(Some(Ok(Message::Close(_)))) => return Ok("close frame".into()),
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
            };
            let msg = match WsMessage::parse(text.as_str()) {
                Ok(m) => m,
                // What it carried is recovered by the reconciliation of a new connection.
                Err(e) => return Ok(format!("a user message Keel cannot read: {e}")),
            };
            if let Some(n) = msg.sequence_num() {
                match seq.check(n) {
                    Seq::Stale => continue,
                    Seq::Next => {}
                    Seq::Gap { expected, got } => {
                        return Ok(format!("sequence gap (expected {expected}, got {got})"));
                    }
                }
            }
            *attempt = 0;
            match msg {
                WsMessage::User(env) => {
                    for o in env.events.iter().flat_map(|e| &e.orders) {
                        self.on_order(o).await?;
                    }
                }
                WsMessage::Error(e) => return Ok(ws::venue_error(&self.shared, &e.message).await),
                _ => {}
            }
        }
    }
}

/// Runs the user stream until the receiver is dropped.
pub(crate) async fn run(shared: Arc<Shared>, tx: mpsc::Sender<UserEvent>) {
    let mut run = UserRun { shared, tx, seen: HashMap::new() };
    let mut attempt: u32 = 0;
    loop {
        if run.tx.is_closed() {
            return;
        }
        let url = run.shared.ws_user_url.clone();
        let reason = match ws::connect(&url).await {
            Err(e) => e,
            Ok(mut conn) => match run.session(&mut conn, &mut attempt).await {
                Ok(reason) | Err(End::Reconnect(reason)) => reason,
                Err(End::Gone) => return,
            },
        };
        tracing::warn!(%reason, "coinbase user stream disconnected; reconnecting");
        if run.emit(UserEvent::Status(StreamStatus::Disconnected { reason })).await.is_err() {
            return;
        }
        tokio::time::sleep(ws::backoff_delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}
