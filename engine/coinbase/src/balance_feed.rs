//! Balances for the user stream. Coinbase's `user` channel reports orders
//! only — no balance changes (Binance's user stream sends them after every
//! execution) — so after a burst of order reports and fills the balances are
//! read by REST and sent behind them. Keel's risk guard checks orders
//! against the venue's free balances: without this, the base asset a buy
//! just received could not be sold until the next reconnect.

use std::sync::Arc;

use tokio::sync::mpsc;

use keel_core::venue::UserEvent;

use crate::venue::Shared;

/// Forwards the user stream's events from `rx` to `tx`; after events that
/// can move balances (order reports, fills), once the burst is forwarded,
/// reads the balances and sends them. Ends when either side is gone.
pub(crate) async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<UserEvent>, tx: mpsc::Sender<UserEvent>) {
    while let Some(first) = rx.recv().await {
        let mut moved = moves_balances(&first);
        if tx.send(first).await.is_err() {
            return;
        }
        // Everything already waiting goes first: one read per burst.
        while let Ok(ev) = rx.try_recv() {
            moved |= moves_balances(&ev);
            if tx.send(ev).await.is_err() {
                return;
            }
        }
        if !moved {
            continue;
        }
        match shared.balances().await {
            Ok(b) => {
                if tx.send(UserEvent::Balances(b)).await.is_err() {
                    return;
                }
            }
            // The next order event (or a reconnect's reconciliation) reads them again.
            Err(e) => tracing::warn!(error = %e, "coinbase: balances not read after an order update"),
        }
    }
}

/// Whether an event can change balances (an order resting locks funds, a
/// cancel frees them, a fill moves them).
fn moves_balances(ev: &UserEvent) -> bool {
    matches!(ev, UserEvent::Order(_) | UserEvent::Fill(_))
}
