//! The operator actions the console needs beside the older ones in the
//! parent module (flatten, cancel one order), who asked for an action
//! (`origin`, `caller`), and the audit log that records them all
//! (`GET /api/v1/audit`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use keel_core::store::AUDIT_KEEP;
use keel_core::Symbol;
use serde_json::json;

use super::{authorize, body_json, limit_of, ApiError, ApiResult, ApiState, CancelAllBody};
use crate::audit::{self, Origin};
use crate::summary;

/// The header the console sends on every call (`X-Keel-Client: web`).
pub const CLIENT_HEADER: &str = "x-keel-client";

/// True when the request comes from the console.
fn from_console(req: &HttpRequest) -> bool {
    req.headers().get(CLIENT_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case("web"))
}

/// Who asks, for the audit log: `web` or `http`, with the peer's `ip:port`.
pub(super) fn origin(req: &HttpRequest) -> Origin {
    Origin { by: if from_console(req) { "web" } else { "http" }, remote: req.peer_addr().map(|a| a.to_string()) }
}

/// Who asks, as the engine records it (the emergency stop's `by`):
/// `web:<ip>` from the console, `operator:http:<ip>` from any other caller.
pub(super) fn caller(req: &HttpRequest) -> String {
    let ip = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into());
    if from_console(req) {
        format!("web:{ip}")
    } else {
        format!("operator:http:{ip}")
    }
}

/// A configured symbol named in a body (any case), or `None` for all.
pub(super) fn symbol_of(state: &ApiState, symbol: Option<String>) -> Result<Option<Symbol>, ApiError> {
    match symbol {
        Some(s) => {
            let s = s.to_ascii_uppercase();
            if state.config.symbol(&s).is_none() {
                return Err(ApiError::bad_request(format!("`{s}` is not a configured symbol")));
            }
            Ok(Some(Symbol::new(&s)))
        }
        None => Ok(None),
    }
}

/// `POST /api/v1/flatten`: closes positions (of one symbol, or all) with
/// reduce-only market orders, which still pass the risk guard.
pub(super) async fn flatten(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let b: CancelAllBody = body_json(&body)?;
    let symbol = symbol_of(&state, b.symbol)?;
    let detail = audit::scope(&symbol);
    let n = audit::outcome(&state.handle, &origin(&req), "flatten", detail, state.handle.flatten(symbol).await).await?;
    Ok(HttpResponse::Ok().json(json!({ "ok": true, "requested": n })))
}

/// `POST /api/v1/orders/{client_order_id}/cancel`: cancels one open order
/// through the order router (as cancel-all does); 404 when it is not open.
pub(super) async fn cancel_order(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let _: super::Empty = body_json(&body)?;
    let id = req.match_info().get("client_order_id").unwrap_or_default().to_string();
    let reason = format!("cancel by {}", caller(&req));
    let asked = state.handle.cancel_order(&id, &reason).await.map_err(ApiError::from).and_then(|open| {
        if open {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("`{id}` is not an open order")))
        }
    });
    audit::outcome(&state.handle, &origin(&req), "cancel_order", id.clone(), asked).await?;
    Ok(HttpResponse::Ok().json(json!({ "ok": true, "client_order_id": id })))
}

/// Audit records answered at once when `limit` is not given.
const DEFAULT_AUDIT: usize = 100;

/// `GET /api/v1/audit?limit=N`: the newest operator actions, newest first.
pub(super) async fn audit_log(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let limit = limit_of(&req, DEFAULT_AUDIT, AUDIT_KEEP)?;
    let records: Vec<_> = state
        .handle
        .audit(limit)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "ts": r.ts_ms,
                "time": summary::rfc3339(r.ts_ms),
                "by": r.by,
                "remote": r.remote,
                "action": r.action,
                "detail": r.detail,
                "ok": r.ok,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "records": records })))
}
