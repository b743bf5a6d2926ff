//! The audit trail of operator actions (emergency stop, resume, flatten, a
//! cancel, a strategy paused or resumed) from every surface: each is logged
//! at INFO and kept in the store's audit log ([`AuditRecord`]) with who did it,
//! from where, and whether it succeeded.

use actors::EngineHandle;
use keel_core::store::AuditRecord;
use keel_core::Symbol;

use crate::summary;

/// Who asks for an operator action, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The surface: `web` (the console), `http` (another API caller) or `telegram`.
    pub by: &'static str,
    /// `ip:port` for HTTP, the user id for Telegram.
    pub remote: Option<String>,
}

/// How an action's symbol reads in the audit log (`all symbols` for none).
pub fn scope(symbol: &Option<Symbol>) -> String {
    symbol.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "all symbols".into())
}

/// Records an action that was attempted: an INFO line, then the store's
/// audit log. A record the store cannot take is said in a WARN line; the
/// action itself stands.
pub async fn record(handle: &EngineHandle, origin: &Origin, action: &str, detail: String, ok: bool) {
    let remote = origin.remote.as_deref().unwrap_or("-");
    tracing::info!(by = origin.by, remote, action, detail = %detail, ok, "operator action");
    let record = AuditRecord {
        ts_ms: summary::now_ms(),
        by: origin.by.to_string(),
        remote: origin.remote.clone(),
        action: action.to_string(),
        detail,
        ok,
    };
    if let Err(e) = handle.record_audit(record).await {
        tracing::warn!(by = origin.by, remote, action, error = %e, "operator action not kept in the audit log");
    }
}

/// Records the outcome of an action and hands it back: `ok` when it
/// succeeded, else the error is added to the detail.
pub async fn outcome<T, E: std::fmt::Display>(
    handle: &EngineHandle,
    origin: &Origin,
    action: &str,
    detail: String,
    result: Result<T, E>,
) -> Result<T, E> {
    match &result {
        Ok(_) => record(handle, origin, action, detail, true).await,
        Err(e) => record(handle, origin, action, format!("{detail}: failed: {e}"), false).await,
    }
    result
}
