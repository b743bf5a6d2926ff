//! One WebSocket API connection's session: who it is logged on as
//! (`session.logon`, Ed25519 keys only), its user-data subscriptions, and how
//! a signed request is authorised — by its own `apiKey` and `signature`, or,
//! after a logon, by the session (the request then omits both and still sends
//! its `timestamp`), as web-socket-api.md "Session Authentication" describes.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::exchange::{order_response, Reject};
use super::rest::{check_timing, place_core, Params};
use super::ws::{err, ok, raw_value, refused, reject};
use super::{App, OrderFault};

/// The API key a connection is logged on with.
struct Logon {
    api_key: String,
    account: u32,
    /// The logon request's `timestamp` (what Binance reports as `authorizedSince`).
    since: i64,
}

/// A connection's session state.
pub(crate) struct Session {
    connected_since: i64,
    logon: Option<Logon>,
    /// Active user-data subscriptions: (subscription id, account id).
    pub subs: Vec<(u64, u32)>,
    /// The subscription `userDataStream.subscribe` opened (the one
    /// `session.logout` closes).
    logon_sub: Option<u64>,
    next_sub: u64,
}

impl Session {
    /// A session of a connection opened at `now`.
    pub(crate) fn new(now: i64) -> Self {
        Self { connected_since: now, logon: None, subs: Vec::new(), logon_sub: None, next_sub: 0 }
    }

    /// The `session.*` result: the logged-on key (or nulls) and whether any
    /// user-data subscription is active.
    fn status(&self, now: i64) -> Value {
        json!({
            "apiKey": self.logon.as_ref().map(|l| l.api_key.clone()),
            "authorizedSince": self.logon.as_ref().map(|l| l.since),
            "connectedSince": self.connected_since,
            "returnRateLimits": true,
            "serverTime": now,
            "userDataStream": !self.subs.is_empty(),
        })
    }

    /// Handles the session and user-data methods; `None` for any other method.
    pub(crate) fn handle(
        &mut self,
        app: &App,
        id: &Value,
        method: &str,
        params: &Map<String, Value>,
        now: i64,
    ) -> Option<(Value, Vec<u64>)> {
        let reply = match method {
            "session.logon" => match logon(app, params, now) {
                Ok(l) => {
                    self.logon = Some(l);
                    ok(app, id, self.status(now))
                }
                Err(r) => reject(app, id, &r),
            },
            "session.status" => ok(app, id, self.status(now)),
            "session.logout" => {
                self.logon = None;
                // Only the logon's own subscription ends (web-socket-api.md).
                let ended: Vec<u64> = self.logon_sub.take().into_iter().collect();
                self.subs.retain(|(s, _)| !ended.contains(s));
                return Some((ok(app, id, self.status(now)), ended));
            }
            "session.subscriptions" => {
                ok(app, id, Value::Array(self.subs.iter().map(|(s, _)| json!({"subscriptionId": s})).collect()))
            }
            "userDataStream.subscribe" => {
                let Some(account) = self.logon.as_ref().map(|l| l.account) else {
                    return Some((
                        err(
                            app,
                            id,
                            400,
                            -1193,
                            "WebSocket session not authenticated. Recommendation: use session.logon",
                        ),
                        Vec::new(),
                    ));
                };
                match self.subscribe(account) {
                    Ok(sid) => {
                        self.logon_sub = Some(sid);
                        ok(app, id, json!({"subscriptionId": sid}))
                    }
                    Err(r) => reject(app, id, &r),
                }
            }
            "userDataStream.subscribe.signature" => {
                match verify_signed(app, params, now).and_then(|(_, acc)| self.subscribe(acc)) {
                    Ok(sid) => ok(app, id, json!({"subscriptionId": sid})),
                    Err(r) => reject(app, id, &r),
                }
            }
            "userDataStream.unsubscribe" => {
                let which = params.get("subscriptionId").and_then(|v| raw_value(v).parse::<u64>().ok());
                let ended: Vec<u64> =
                    self.subs.iter().filter(|(s, _)| which.is_none_or(|w| w == *s)).map(|(s, _)| *s).collect();
                if ended.is_empty() {
                    return Some((err(app, id, 400, -2036, "User Data Stream subscription not active."), Vec::new()));
                }
                self.subs.retain(|(s, _)| !ended.contains(s));
                if self.logon_sub.is_some_and(|s| ended.contains(&s)) {
                    self.logon_sub = None;
                }
                return Some((ok(app, id, json!({})), ended));
            }
            _ => return None,
        };
        Some((reply, Vec::new()))
    }

    /// A new subscription for `account`; one per account and connection.
    fn subscribe(&mut self, account: u32) -> Result<u64, Reject> {
        if self.subs.iter().any(|(_, a)| *a == account) {
            return Err(Reject::new(-2035, "User Data Stream subscription already active."));
        }
        let sid = self.next_sub;
        self.next_sub += 1;
        self.subs.push((sid, account));
        Ok(sid)
    }

    /// Authorises a signed request and returns its account: a request that
    /// carries an `apiKey` is verified on its own (an ad hoc key overrides the
    /// session's); without one, a logged-on session authorises it, given a
    /// valid `timestamp`.
    pub(crate) fn authorize(&self, app: &App, params: &Map<String, Value>, now: i64) -> Result<u32, Reject> {
        match &self.logon {
            Some(l) if !params.contains_key("apiKey") => {
                let key = app.ex.keys.get(&l.api_key).ok_or_else(invalid_key)?;
                timing(params, now)?;
                Ok(key.id)
            }
            _ => verify_signed(app, params, now).map(|(_, acc)| acc),
        }
    }
}

fn invalid_key() -> Reject {
    Reject::new(-2015, "Invalid API-key, IP, or permissions for action.")
}

fn mandatory(name: &str) -> Reject {
    Reject::new(-1102, format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."))
}

/// Verifies `apiKey`, `signature` (sorted raw canonical form, HMAC or
/// Ed25519 as the key is), `timestamp` and `recvWindow`; returns the key id
/// and its account.
pub(crate) fn verify_signed(app: &App, params: &Map<String, Value>, now: i64) -> Result<(String, u32), Reject> {
    let key_id = params.get("apiKey").map(raw_value).filter(|k| !k.is_empty()).ok_or_else(|| mandatory("apiKey"))?;
    let key = app.ex.keys.get(&key_id).ok_or_else(invalid_key)?;
    let sig = params.get("signature").map(raw_value).filter(|s| !s.is_empty()).ok_or_else(|| mandatory("signature"))?;
    let pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (k.clone(), raw_value(v))).collect();
    if !key.auth.ws_valid(&pairs, &sig) {
        return Err(Reject::new(-1022, "Signature for this request is not valid."));
    }
    timing(params, now)?;
    Ok((key_id, key.id))
}

/// `timestamp` and `recvWindow` of a signed request.
fn timing(params: &Map<String, Value>, now: i64) -> Result<(), Reject> {
    let ts =
        params.get("timestamp").and_then(|v| raw_value(v).parse::<i64>().ok()).ok_or_else(|| mandatory("timestamp"))?;
    let recv = match params.get("recvWindow") {
        None => rust_decimal::Decimal::new(5000, 0),
        Some(v) => raw_value(v)
            .parse()
            .map_err(|_| Reject::new(-1100, "Illegal characters found in parameter 'recvWindow'."))?,
    };
    if recv <= rust_decimal::Decimal::ZERO || recv > rust_decimal::Decimal::new(60_000, 0) {
        return Err(Reject::new(-1131, "recvWindow must be less than 60000"));
    }
    check_timing(ts, recv, now)
}

/// `session.logon`: a signed request whose key must be Ed25519. Binance
/// documents the method for Ed25519 keys only and answers an HMAC key's
/// logon as a signature it cannot verify (`-1022`), which is what the
/// sandbox answers too.
fn logon(app: &App, params: &Map<String, Value>, now: i64) -> Result<Logon, Reject> {
    let (api_key, account) = verify_signed(app, params, now)?;
    let is_ed25519 = app.ex.keys.get(&api_key).is_some_and(|k| k.auth.is_ed25519());
    if !is_ed25519 {
        return Err(Reject::new(-1022, "Signature for this request is not valid."));
    }
    let since = params.get("timestamp").and_then(|v| raw_value(v).parse::<i64>().ok()).unwrap_or(now);
    Ok(Logon { api_key, account, since })
}

/// `order.place` over the WebSocket API, with the order faults the REST
/// endpoint has: an error before or after executing (status 503, execution
/// status unknown after), an answer held past the client's timeout, or a
/// request held before it executes — while the connection keeps serving
/// other requests, and a connection dropped meanwhile loses the answer (the
/// order still executes). Returns the answer now, or `None` when a task
/// sends it later on `later`.
pub(crate) fn place_order(
    app: &Arc<App>,
    id: &Value,
    p: Params,
    account: u32,
    now: i64,
    later: &mpsc::UnboundedSender<Value>,
) -> Option<Value> {
    let before = app.faults.take_before_execute_fault();
    let (faults, rid) = (app.faults.clone(), id.clone());
    let act = move |app: &App, now: i64| execute(app, &rid, &p, account, now);
    with_fault(app, id, now, later, before, move || faults.take_after_execute_fault(), act)
}

/// `order.cancel` with any scripted cancel fault (see
/// [`super::FaultControl::fail_next_cancel`]); `None` when the answer is
/// held and follows on `later`.
pub(crate) fn cancel_order(
    app: &Arc<App>,
    id: &Value,
    p: Params,
    account: u32,
    now: i64,
    later: &mpsc::UnboundedSender<Value>,
) -> Option<Value> {
    let fault = app.faults.next_cancel_fault();
    let before = fault.filter(OrderFault::acts_before);
    let after = move || fault.filter(|f| !f.acts_before());
    let rid = id.clone();
    // A refused cancel is an answer like any other: an after-fault still hides it.
    let act = move |app: &App, now: i64| {
        Ok(match super::rest::cancel_order(app, &p, account, now) {
            Ok(v) => ok(app, &rid, v),
            Err(r) => reject(app, &rid, &r),
        })
    };
    with_fault(app, id, now, later, before, after, act)
}

/// Runs one request under a scripted fault: `before` (an error, or the
/// request held) and then, once it ran without being refused, the fault
/// `after` gives (an error with the outcome unknown, or the answer held).
/// `act` answers the request (`Err`: a refusal, answered at once). `None`
/// when a task sends the answer later on `later`.
fn with_fault(
    app: &Arc<App>,
    id: &Value,
    now: i64,
    later: &mpsc::UnboundedSender<Value>,
    before: Option<OrderFault>,
    after: impl FnOnce() -> Option<OrderFault>,
    act: impl Fn(&App, i64) -> Result<Value, Value> + Send + 'static,
) -> Option<Value> {
    match before {
        Some(OrderFault::ErrorBeforeExecute) => {
            return Some(err(app, id, 503, -1001, "Internal error; unable to process your request. Please try again."))
        }
        Some(OrderFault::DelayBeforeExecute { hold_ms }) => {
            let (app, later) = (app.clone(), later.clone());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
                let now = app.faults.server_now_ms();
                let _ = later.send(act(&app, now).unwrap_or_else(|refused| refused));
            });
            return None;
        }
        _ => {}
    }
    let reply = match act(app, now) {
        Ok(v) => v,
        Err(refused) => return Some(refused),
    };
    match after() {
        Some(OrderFault::ErrorAfterExecute) => Some(err(
            app,
            id,
            503,
            -1007,
            "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
        )),
        Some(OrderFault::TimeoutAfterExecute { hold_ms }) => {
            let later = later.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
                let _ = later.send(reply);
            });
            None
        }
        _ => Some(reply),
    }
}

/// Places the order: the answer, or the refusal as an answer.
fn execute(app: &App, id: &Value, p: &Params, account: u32, now: i64) -> Result<Value, Value> {
    place_core(app, p, account, now)
        .map(|pl| ok(app, id, order_response(&pl.order, &pl.execs, &pl.resp_type, now)))
        .map_err(|(r, wait_s)| match wait_s {
            // Over the order count: 429 with the documented `retryAfter`.
            Some(s) => {
                refused(app, id, 429, &r, now.saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(0)))
            }
            None => reject(app, id, &r),
        })
}
