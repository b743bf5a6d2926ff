//! `POST /api/v1/webhook/tradingview`: TradingView-style alerts for `webhook`
//! strategies, with replay protection.
//!
//! An alert is a JSON object. Keel reads `secret`, `strategy_id` (or
//! `strategy`), `symbol` (or `ticker`), `action`, `qty` (or `quantity`), and
//! the optional `id` and `timestamp`; every other field (TradingView's
//! `price`, `time`, `exchange`, `interval`, `volume`, `close`, a `comment`…)
//! is accepted and ignored, and named in the answer's `ignored` list so a
//! misspelt key shows.
//!
//! Replays are refused: an `id` is remembered in the store (so a restart does
//! not forget it) for `[http] webhook_id_window`, and a second alert with that
//! id within the window gets 409 and places no order; an alert whose
//! `timestamp` is further than `[http] webhook_max_age` from now gets 400.

use std::collections::BTreeMap;
use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use keel_core::store::SharedStore;
use keel_core::strategy::{Signal, SignalAction};
use keel_core::{Decimal, Symbol};
use serde_json::{json, Map, Value};

use super::{ApiError, ApiResult, ApiState};
use crate::summary;

/// The store's meta key holding the remembered ids (`{id: first seen ms}`).
const META_KEY: &str = "webhook_alert_ids";
/// At most this many ids are remembered; beyond it the oldest are forgotten
/// first (a bound on the record, far above any alert rate a strategy needs).
const MAX_IDS: usize = 10_000;
/// The longest `id` accepted.
const MAX_ID_LEN: usize = 200;
/// A numeric `timestamp` above this is in milliseconds, below in seconds
/// (1e11 s is the year 5138; 1e11 ms is 1973).
const MS_THRESHOLD: i64 = 100_000_000_000;

/// An alert as Keel reads it.
#[derive(Debug, Default, PartialEq)]
pub struct Alert {
    /// The shared secret (compared in constant time, never echoed).
    pub secret: String,
    /// The `webhook` strategy instance the signal is for.
    pub strategy_id: String,
    /// Symbol as sent (`BTCUSDT`; TradingView's `BINANCE:BTCUSDT` is accepted).
    pub symbol: String,
    /// `buy`, `sell` or `close` (and their synonyms).
    pub action: String,
    /// Quantity in the base asset (string or number); the strategy's default when absent.
    pub qty: Option<Value>,
    /// The alert's id, for replay protection.
    pub id: Option<String>,
    /// When the alert was sent (RFC 3339, or epoch seconds or milliseconds).
    pub timestamp: Option<Value>,
    /// Fields Keel does not read, sorted.
    pub ignored: Vec<String>,
}

/// The first of `names` present as a string (a number is taken as its text).
fn text(map: &mut Map<String, Value>, names: &[&str]) -> Result<Option<String>, ApiError> {
    let mut found = None;
    for name in names {
        match map.remove(*name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => found = found.or(Some(s)),
            Some(Value::Number(n)) => found = found.or(Some(n.to_string())),
            Some(_) => return Err(ApiError::bad_request(format!("`{name}` must be a string"))),
        }
    }
    Ok(found)
}

impl Alert {
    /// Reads an alert from a request body.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(ApiError::bad_request("malformed JSON: the alert must be a JSON object"));
        };
        let missing = |field: &str| ApiError::bad_request(format!("missing field `{field}`"));
        let secret = text(&mut map, &["secret"])?.unwrap_or_default();
        let strategy_id = text(&mut map, &["strategy_id", "strategy"])?.ok_or_else(|| missing("strategy_id"))?;
        let symbol = text(&mut map, &["symbol", "ticker"])?.ok_or_else(|| missing("symbol"))?;
        let action = text(&mut map, &["action"])?.ok_or_else(|| missing("action"))?;
        let qty = ["qty", "quantity"].iter().filter_map(|k| map.remove(*k)).find(|v| !v.is_null());
        let id = text(&mut map, &["id"])?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        if id.as_ref().is_some_and(|s| s.chars().count() > MAX_ID_LEN) {
            return Err(ApiError::bad_request(format!("`id` is longer than {MAX_ID_LEN} characters")));
        }
        let timestamp = map.remove("timestamp").filter(|v| !v.is_null());
        let ignored = map.keys().cloned().collect();
        Ok(Self { secret, strategy_id, symbol, action, qty, id, timestamp, ignored })
    }
}

/// Epoch milliseconds of a `timestamp`: an RFC 3339 string, or epoch seconds
/// or milliseconds as a number or a string of digits.
pub fn timestamp_ms(v: &Value) -> Result<i64, String> {
    let number = |n: i64| if n.abs() >= MS_THRESHOLD { n } else { n.saturating_mul(1000) };
    let bad =
        || format!("`timestamp` {v} is neither RFC 3339 (2025-01-31T12:00:00Z) nor epoch seconds or milliseconds");
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map(number).ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return Ok(number(n));
            }
            chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis()).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// Why an alert is refused as a replay.
#[derive(Debug, PartialEq, Eq)]
pub enum Replayed {
    /// The id was first seen at this time (epoch ms), within the window.
    Seen(i64),
    /// The remembered ids could not be written to the store.
    Store(String),
}

/// The ids seen within the window, kept in the store.
pub struct ReplayGuard {
    store: SharedStore,
    window_ms: i64,
    max_age_ms: i64,
    seen: Mutex<BTreeMap<String, i64>>,
}

impl ReplayGuard {
    /// Loads the remembered ids from `store`. A record that cannot be read is
    /// reported and started afresh (it only ever holds ids).
    pub fn load(store: SharedStore, window_ms: i64, max_age_ms: i64) -> Self {
        let seen = match store.meta_json(META_KEY) {
            Ok(Some(v)) => serde_json::from_value(v).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the remembered webhook alert ids are unreadable; starting without them");
                BTreeMap::new()
            }),
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the remembered webhook alert ids; starting without them");
                BTreeMap::new()
            }
        };
        Self { store, window_ms, max_age_ms, seen: Mutex::new(seen) }
    }

    /// Refuses a `timestamp` further than the max age from `now_ms` (either way:
    /// a clock far ahead is as suspect as an old alert).
    pub fn check_age(&self, sent_ms: i64, now_ms: i64) -> Result<(), String> {
        if self.max_age_ms <= 0 || (now_ms - sent_ms).abs() <= self.max_age_ms {
            return Ok(());
        }
        let age = (now_ms - sent_ms) / 1000;
        let when = if age >= 0 { format!("{age} s old") } else { format!("{} s in the future", -age) };
        Err(format!(
            "alert timestamp {} is {when}, beyond [http] webhook_max_age ({} s): refused, no order placed",
            summary::rfc3339(sent_ms),
            self.max_age_ms / 1000
        ))
    }

    /// Records `id` as seen at `now_ms` (durably, before any order), or
    /// refuses it when it was seen within the window. Blocks on the store.
    pub fn claim(&self, id: &str, now_ms: i64) -> Result<(), Replayed> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, at| now_ms - *at < self.window_ms);
        if let Some(at) = seen.get(id) {
            return Err(Replayed::Seen(*at));
        }
        if self.window_ms <= 0 {
            return Ok(());
        }
        seen.insert(id.to_string(), now_ms);
        while seen.len() > MAX_IDS {
            let oldest = seen.iter().min_by_key(|(_, at)| **at).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                seen.remove(&k);
            }
        }
        let record = serde_json::to_value(&*seen).unwrap_or_default();
        if let Err(e) = self.store.put_meta_json(META_KEY, &record, true) {
            seen.remove(id);
            return Err(Replayed::Store(e.to_string()));
        }
        Ok(())
    }

    /// Forgets `id` (its alert placed nothing, so a retry may).
    pub fn release(&self, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.remove(id).is_some() {
            let record = serde_json::to_value(&*seen).unwrap_or_default();
            if let Err(e) = self.store.put_meta_json(META_KEY, &record, false) {
                tracing::warn!(error = %e, "cannot forget a webhook alert id");
            }
        }
    }
}

fn parse_qty(v: &Value) -> Result<Option<Decimal>, ApiError> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(ApiError::bad_request("qty must be a decimal number or string")),
    };
    let qty = text
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| ApiError::bad_request(format!("qty `{text}` is not a decimal number")))?;
    if qty <= Decimal::ZERO {
        return Err(ApiError::bad_request("qty must be positive"));
    }
    Ok(Some(qty))
}

/// Claims `id` on a blocking-pool thread (the claim writes the store durably).
async fn claim(state: &web::Data<ApiState>, id: &str) -> Result<(), ApiError> {
    let (state, owned) = (state.clone(), id.to_string());
    let now = summary::now_ms();
    let result = tokio::task::spawn_blocking(move || state.replay.claim(&owned, now))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("webhook id check failed: {e}")))?;
    match result {
        Ok(()) => Ok(()),
        Err(Replayed::Seen(at)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "alert id `{id}` was already received at {} (within [http] webhook_id_window): a replay, no order placed",
                summary::rfc3339(at)
            ),
        )),
        Err(Replayed::Store(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot record alert id `{id}` in the store ({e}): no order placed"),
        )),
    }
}

/// The handler.
pub(super) async fn tradingview(req: HttpRequest, body: web::Bytes, state: web::Data<ApiState>) -> ApiResult {
    let peer = req.peer_addr().map(|a| a.ip());
    let alert = Alert::parse(&body)?;
    let Some(secret) = &state.webhook_secret else {
        return Err(ApiError::unauthorized(
            &state,
            peer,
            &format!(
                "the webhook is disabled: set the environment variable {} and restart",
                state.config.http.webhook_secret_env
            ),
        ));
    };
    if !secret.matches(&alert.secret) {
        return Err(ApiError::unauthorized(&state, peer, "invalid webhook secret"));
    }
    let action = match alert.action.trim().to_ascii_lowercase().as_str() {
        "buy" | "long" => SignalAction::Buy,
        "sell" | "short" => SignalAction::Sell,
        "close" | "exit" | "flat" => SignalAction::Close,
        other => {
            return Err(ApiError::bad_request(format!("action `{other}` is not one of buy, sell, close")));
        }
    };
    let qty = match &alert.qty {
        Some(v) => parse_qty(v)?,
        None => None,
    };
    if let Some(ts) = &alert.timestamp {
        let sent = timestamp_ms(ts).map_err(ApiError::bad_request)?;
        state.replay.check_age(sent, summary::now_ms()).map_err(ApiError::bad_request)?;
    }
    let raw = alert.symbol.trim();
    let symbol = raw.rsplit(':').next().unwrap_or(raw).to_ascii_uppercase();
    let strategies = state.handle.strategies().await?;
    let Some(strategy) = strategies.iter().find(|s| s.id.as_str() == alert.strategy_id) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown strategy `{}`", alert.strategy_id)));
    };
    if strategy.kind != "webhook" {
        return Err(ApiError::bad_request(format!(
            "strategy `{}` is a `{}` strategy, not a `webhook` strategy",
            strategy.id, strategy.kind
        )));
    }
    if !strategy.symbols.iter().any(|s| s.as_str() == symbol) {
        return Err(ApiError::bad_request(format!("strategy `{}` does not trade `{symbol}`", strategy.id)));
    }
    if let Some(id) = &alert.id {
        claim(&state, id).await?;
    }
    let signal = Signal { symbol: Symbol::new(&symbol), action, qty };
    tracing::info!(strategy = %strategy.id, symbol = %symbol, action = ?action, id = ?alert.id, ignored = ?alert.ignored, "webhook signal");
    if let Err(e) = state.handle.signal(&alert.strategy_id, signal).await {
        if let Some(id) = &alert.id {
            state.replay.release(id);
        }
        return Err(e.into());
    }
    Ok(HttpResponse::Accepted().json(json!({
        "ok": true,
        "strategy_id": strategy.id,
        "symbol": symbol,
        "action": action,
        "qty": qty,
        "id": alert.id,
        "ignored": alert.ignored,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn quantities() {
        assert_eq!(parse_qty(&json!("0.5")).ok().flatten(), Some(Decimal::new(5, 1)));
        assert_eq!(parse_qty(&json!(0.25)).ok().flatten(), Some(Decimal::new(25, 2)));
        assert!(parse_qty(&json!(null)).ok().flatten().is_none());
        assert!(parse_qty(&json!("-1")).is_err());
        assert!(parse_qty(&json!("abc")).is_err());
        assert!(parse_qty(&json!([1])).is_err());
    }

    #[test]
    fn timestamps() {
        let cases: [(Value, Option<i64>); 8] = [
            (json!("2025-01-31T12:00:00Z"), Some(1_738_324_800_000)),
            (json!("2025-01-31T13:00:00+01:00"), Some(1_738_324_800_000)),
            (json!(1_738_324_800), Some(1_738_324_800_000)),
            (json!(1_738_324_800_123_i64), Some(1_738_324_800_123)),
            (json!("1738324800"), Some(1_738_324_800_000)),
            (json!("yesterday"), None),
            (json!(true), None),
            (json!("2025-01-31"), None),
        ];
        for (v, want) in cases {
            assert_eq!(timestamp_ms(&v).ok(), want, "{v}");
        }
    }

    #[test]
    fn alerts_keep_what_keel_reads_and_list_the_rest() {
        let body = br#"{"secret":"s","strategy":"tv","ticker":"BINANCE:BTCUSDT","action":"buy","quantity":"0.1",
            "id":"a1","price":65000.5,"time":"2025-01-31T12:00:00Z","exchange":"BINANCE","interval":"5"}"#;
        let a = Alert::parse(body).map_err(|e| e.to_string()).unwrap();
        assert_eq!((a.strategy_id.as_str(), a.symbol.as_str(), a.id.as_deref()), ("tv", "BINANCE:BTCUSDT", Some("a1")));
        assert_eq!(a.qty, Some(json!("0.1")));
        assert_eq!(a.ignored, ["exchange", "interval", "price", "time"]);
        // Both `symbol` and `ticker` (a common template): `symbol` wins.
        let a = Alert::parse(br#"{"strategy_id":"tv","symbol":"BTCUSDT","ticker":"X","action":"sell"}"#);
        assert_eq!(a.map(|a| a.symbol).ok().as_deref(), Some("BTCUSDT"));
        for bad in [
            &br#"[1]"#[..],
            br#"{"strategy_id":"tv","action":"buy"}"#,
            br#"{"strategy_id":"tv","symbol":{},"action":"buy"}"#,
        ] {
            assert!(Alert::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn ids_are_refused_within_the_window_and_kept_in_the_store() {
        let store: SharedStore = Arc::new(keel_store::SledStore::temporary().map_err(|e| e.to_string()).unwrap());
        let guard = ReplayGuard::load(store.clone(), 60_000, 0);
        assert_eq!(guard.claim("a", 1_000), Ok(()));
        assert_eq!(guard.claim("a", 2_700), Err(Replayed::Seen(1_000)));
        assert_eq!(guard.claim("b", 2_700), Ok(()));
        // A new guard on the same store (a restart) remembers both.
        let again = ReplayGuard::load(store.clone(), 60_000, 0);
        assert_eq!(again.claim("a", 30_000), Err(Replayed::Seen(1_000)));
        // After the window the id is free again.
        assert_eq!(again.claim("a", 61_000), Ok(()));
        again.release("b");
        assert_eq!(ReplayGuard::load(store, 60_000, 0).claim("b", 3_000), Ok(()));
    }

    #[test]
    fn ages() {
        let store: SharedStore = Arc::new(keel_store::SledStore::temporary().map_err(|e| e.to_string()).unwrap());
        let guard = ReplayGuard::load(store.clone(), 0, 60_000);
        let now = 1_738_324_800_000;
        assert!(guard.check_age(now - 59_000, now).is_ok());
        assert!(guard.check_age(now + 59_000, now).is_ok());
        assert!(guard.check_age(now - 61_000, now).is_err_and(|e| e.contains("61 s old")));
        assert!(guard.check_age(now + 61_000, now).is_err_and(|e| e.contains("in the future")));
        assert!(ReplayGuard::load(store, 0, 0).check_age(0, now).is_ok(), "0 = no limit");
    }
}
