//! The scripted cancel faults of [`crate::FaultControl::fail_next_cancel`]
//! on Coinbase's `POST /orders/batch_cancel`, as the Binance routes have
//! them: a 503 before the cancels are queued (nothing happened), a 503
//! after (they are queued; the client cannot know), or the request held
//! before, or the answer after.

use std::time::Duration;

use axum::response::Response;

use super::orders;
use super::rest::unavailable;
use crate::{App, OrderFault};

/// `POST /orders/batch_cancel` with the next scripted cancel fault, if any.
pub(crate) async fn batch_cancel_with_faults(app: &App, account: u32, body: &str) -> Response {
    let fault = app.faults.next_cancel_fault();
    match fault {
        Some(OrderFault::ErrorBeforeExecute) => return unavailable(),
        Some(OrderFault::DelayBeforeExecute { hold_ms }) => tokio::time::sleep(Duration::from_millis(hold_ms)).await,
        _ => {}
    }
    let answer = orders::batch_cancel(app, account, body);
    match fault {
        Some(OrderFault::ErrorAfterExecute) => unavailable(),
        Some(OrderFault::TimeoutAfterExecute { hold_ms }) => {
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            answer
        }
        _ => answer,
    }
}
