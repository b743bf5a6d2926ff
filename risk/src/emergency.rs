//! The sticky emergency stop and the fail-closed start, as plain functions over
//! the store (used by the RiskGuard actor and by the `keel halt` / `keel resume`
//! / `keel state` commands on a stopped engine).
//!
//! * [`set`] records the stop (reason, who, when) and `HALTED`, flushed before it
//!   returns: only then may the caller acknowledge it and cancel orders.
//! * [`clear`] is the explicit operator resume: it clears the stop (recording
//!   who and when, keeping the last reason), releases latched protections and
//!   records `ACTIVE`.
//! * [`startup_state`] decides how the engine starts: `HALTED` if the stop is
//!   set, and also if any of it cannot be read (fail closed).

use std::fmt;

use keel_core::store::{Store, StoreResult};
use keel_core::trading::{EmergencyStop, TradingState, TradingStateRecord};
use serde::Serialize;

use crate::engine_core::RiskPersisted;
use crate::persist;
use crate::protections::ProtectionState;

/// Sets the emergency stop and the `HALTED` state, durably. `by` names who or
/// what set it (`operator:cli`, `operator:telegram:<user>`, `protection:max_drawdown`,
/// `venue:418`). Setting it again replaces the reason. A stored record that can
/// no longer be read is overwritten: setting the stop must not fail on it.
pub fn set(store: &dyn Store, reason: &str, by: &str, now_ms: i64) -> StoreResult<EmergencyStop> {
    let mut stop = store.emergency_stop().unwrap_or_default();
    stop.active = true;
    stop.reason = Some(reason.to_string());
    stop.set_by = Some(by.to_string());
    stop.set_at_ms = Some(now_ms);
    store.put_emergency_stop(&stop)?;
    store.put_trading_state(&TradingStateRecord {
        state: TradingState::Halted,
        reason: format!("emergency stop set by {by}: {reason}"),
        since_ms: now_ms,
    })?;
    Ok(stop)
}

/// What an operator resume did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cleared {
    /// The stop as now stored (inactive, with who cleared it and when).
    pub emergency_stop: EmergencyStop,
    /// True if the stop was set before.
    pub was_active: bool,
    /// The trading state now stored (`ACTIVE`).
    pub state: TradingStateRecord,
}

/// The explicit operator resume: clears the emergency stop (recording `by` and
/// `now_ms`), releases every latched protection (the high-water mark and the
/// day's start restart at the next evaluation) and stores `ACTIVE`, all flushed.
/// Strategy pauses are kept. Unreadable old records are overwritten: this is
/// how an operator leaves a fail-closed start.
pub fn clear(store: &dyn Store, by: &str, now_ms: i64) -> StoreResult<Cleared> {
    if let Some(problem) = store.integrity() {
        // A resume would trade on a store that lost data.
        return Err(keel_core::error::StoreError::Integrity(problem));
    }
    let mut stop = store.emergency_stop().unwrap_or_default();
    let was_active = stop.active;
    stop.active = false;
    stop.cleared_by = Some(by.to_string());
    stop.cleared_at_ms = Some(now_ms);
    store.put_emergency_stop(&stop)?;
    let state = TradingStateRecord {
        state: TradingState::Active,
        reason: format!("operator resume by {by}"),
        since_ms: now_ms,
    };
    let mut protections: ProtectionState =
        persist::load(store).ok().flatten().map(|p| p.protections).unwrap_or_default();
    protections.operator_resume(now_ms);
    // Equity stored with the record may be stale (the engine may be stopped):
    // restart the mark and the day's start at the next evaluation.
    protections.reset_pending = true;
    persist::save(store, &RiskPersisted { base_state: state.clone(), protections }, true)?;
    store.put_trading_state(&state)?;
    Ok(Cleared { emergency_stop: stop, was_active, state })
}

/// How the engine starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartupDecision {
    /// The state to start in.
    pub state: TradingState,
    /// Why (shown in logs and `keel state`).
    pub reason: String,
    /// The stored emergency stop (default when unreadable).
    pub emergency_stop: EmergencyStop,
    /// The stored risk state, if any and readable.
    pub persisted: Option<RiskPersisted>,
    /// True when something could not be read and the engine starts `HALTED`
    /// because of it (fail closed).
    pub fail_closed: bool,
}

impl StartupDecision {
    /// The store could not be opened at all: start `HALTED`.
    pub fn store_unavailable(error: &dyn fmt::Display) -> Self {
        Self::fail_closed("the store could not be opened", error)
    }

    /// The store is behind its integrity record: start `HALTED` with the
    /// emergency stop set in memory (the start cancels what rests at the
    /// venue; nothing else is sent), reason `store_integrity`. Only `keel
    /// store accept` lets a resume through.
    pub fn store_integrity(problem: &str) -> Self {
        let reason = format!(
            "store_integrity: {problem}; nothing trades until an operator checks the data dir and runs `keel store accept`"
        );
        Self {
            state: TradingState::Halted,
            reason: reason.clone(),
            emergency_stop: EmergencyStop {
                active: true,
                reason: Some(reason),
                set_by: Some("startup:store_integrity".into()),
                ..Default::default()
            },
            persisted: None,
            fail_closed: true,
        }
    }

    /// This decision, but starting `HALTED` (fail closed) because of
    /// `reason` found after the store was read (a reconciliation that could
    /// not complete); the emergency stop and the risk state are kept.
    pub fn halted_because(mut self, reason: String) -> Self {
        self.state = TradingState::Halted;
        self.reason = format!("fail closed: {reason}; starting HALTED. `keel resume` once the venue answers");
        self.fail_closed = true;
        self
    }

    fn fail_closed(what: &str, error: &dyn fmt::Display) -> Self {
        Self {
            state: TradingState::Halted,
            reason: format!(
                "fail closed: {what} ({error}); starting HALTED. Check the data directory, then `keel resume` to trade"
            ),
            emergency_stop: EmergencyStop::default(),
            persisted: None,
            fail_closed: true,
        }
    }
}

/// Reads the emergency stop, the trading state and the risk state from the
/// store and decides the start state (see [`decide`]).
pub fn startup_state(store: &dyn Store) -> StartupDecision {
    let decision = decide(store.emergency_stop(), store.trading_state(), persist::load(store));
    match store.integrity() {
        Some(problem) => StartupDecision::store_integrity(&problem),
        None => decision,
    }
}

/// The start decision from what reading the store gave:
/// an unreadable record → `HALTED` (fail closed, with the error);
/// the stop set → `HALTED`; otherwise the stored state (with the persisted risk
/// state, protections recompute it), or `ACTIVE` on a fresh store.
pub fn decide(
    stop: StoreResult<EmergencyStop>,
    state: StoreResult<Option<TradingStateRecord>>,
    persisted: StoreResult<Option<RiskPersisted>>,
) -> StartupDecision {
    let stop = match stop {
        Ok(s) => s,
        Err(e) => return StartupDecision::fail_closed("the emergency-stop flag could not be read", &e),
    };
    let state = match state {
        Ok(s) => s,
        Err(e) => {
            let mut d = StartupDecision::fail_closed("the trading state could not be read", &e);
            d.emergency_stop = stop;
            return d;
        }
    };
    let persisted = match persisted {
        Ok(p) => p,
        Err(e) => {
            let mut d = StartupDecision::fail_closed("the risk state could not be read", &e);
            d.emergency_stop = stop;
            return d;
        }
    };
    if stop.active {
        let reason = format!(
            "emergency stop set by {} at {}: {}; only an operator resume clears it",
            stop.set_by.as_deref().unwrap_or("unknown"),
            stop.set_at_ms.map(keel_core::when::utc).unwrap_or_else(|| "?".into()),
            stop.reason.as_deref().unwrap_or("no reason given"),
        );
        return StartupDecision {
            state: TradingState::Halted,
            reason,
            emergency_stop: stop,
            persisted,
            fail_closed: false,
        };
    }
    let (state, reason) = match state {
        Some(r) => (r.state, format!("restored: {}", r.reason)),
        None => (TradingState::Active, "fresh start".to_string()),
    };
    StartupDecision { state, reason, emergency_stop: stop, persisted, fail_closed: false }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::config::RiskConfig;
    use keel_core::order::{OrderIntent, Side};
    use keel_core::Decimal;
    use keel_store::SledStore;

    use super::*;
    use crate::test_store::MemStore;
    use crate::RiskEngine;

    const T: i64 = 1_700_000_000_000;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn engine() -> RiskEngine {
        let mut config = RiskConfig::unlimited();
        config.max_drawdown_pct = d("10");
        let instrument = keel_core::instrument::Instrument {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            tick_size: d("0.01"),
            min_price: d("0.01"),
            max_price: Decimal::ZERO,
            step_size: d("0.001"),
            min_qty: d("0.001"),
            max_qty: Decimal::ZERO,
            market_step_size: d("0.001"),
            min_notional: d("10"),
            max_notional: Decimal::ZERO,
            max_num_orders: 0,
            status: keel_core::instrument::SymbolStatus::Trading,
        };
        let mut e = RiskEngine::new(config, vec![instrument]);
        e.on_market_event(&"BTCUSDT".into(), d("1000"), T);
        e
    }

    fn buy() -> OrderIntent {
        OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, d("0.1"))
    }

    #[test]
    fn startup_decision_table() {
        fn broken<T>() -> StoreResult<T> {
            Err(keel_core::error::StoreError::Encode("disk on fire".into()))
        }
        let set = EmergencyStop {
            active: true,
            reason: Some("fat finger".into()),
            set_by: Some("operator:cli".into()),
            set_at_ms: Some(T),
            ..Default::default()
        };
        let halted_record =
            TradingStateRecord { state: TradingState::Reducing, reason: "drawdown".into(), since_ms: T };
        struct Case {
            name: &'static str,
            stop: StoreResult<EmergencyStop>,
            state: StoreResult<Option<TradingStateRecord>>,
            persisted: StoreResult<Option<RiskPersisted>>,
            want: TradingState,
            fail_closed: bool,
            reason: &'static str,
        }
        let cases = vec![
            Case {
                name: "fresh store",
                stop: Ok(EmergencyStop::default()),
                state: Ok(None),
                persisted: Ok(None),
                want: TradingState::Active,
                fail_closed: false,
                reason: "fresh start",
            },
            Case {
                name: "stop set",
                stop: Ok(set.clone()),
                state: Ok(None),
                persisted: Ok(None),
                want: TradingState::Halted,
                fail_closed: false,
                reason: "fat finger",
            },
            Case {
                name: "stop unreadable",
                stop: broken(),
                state: Ok(None),
                persisted: Ok(None),
                want: TradingState::Halted,
                fail_closed: true,
                reason: "disk on fire",
            },
            Case {
                name: "state unreadable",
                stop: Ok(EmergencyStop::default()),
                state: broken(),
                persisted: Ok(None),
                want: TradingState::Halted,
                fail_closed: true,
                reason: "trading state could not be read",
            },
            Case {
                name: "risk state unreadable",
                stop: Ok(EmergencyStop::default()),
                state: Ok(None),
                persisted: broken(),
                want: TradingState::Halted,
                fail_closed: true,
                reason: "risk state could not be read",
            },
            Case {
                name: "stop set and state unreadable",
                stop: Ok(set),
                state: broken(),
                persisted: Ok(None),
                want: TradingState::Halted,
                fail_closed: true,
                reason: "fail closed",
            },
            Case {
                name: "stored state restored",
                stop: Ok(EmergencyStop::default()),
                state: Ok(Some(halted_record)),
                persisted: Ok(None),
                want: TradingState::Reducing,
                fail_closed: false,
                reason: "restored: drawdown",
            },
        ];
        for c in cases {
            let got = decide(c.stop, c.state, c.persisted);
            assert_eq!(got.state, c.want, "{}", c.name);
            assert_eq!(got.fail_closed, c.fail_closed, "{}", c.name);
            assert!(got.reason.contains(c.reason), "{}: {}", c.name, got.reason);
            let mut e = engine();
            let record = e.apply_startup(&got, T);
            assert_eq!(record.state, c.want, "{}: engine state", c.name);
            assert_eq!(e.check_at(&buy(), "a", T).is_ok(), c.want == TradingState::Active, "{}", c.name);
        }
        let unavailable = StartupDecision::store_unavailable(&"locked");
        assert_eq!(unavailable.state, TradingState::Halted);
        assert!(unavailable.reason.contains("keel resume"));
    }

    #[test]
    fn set_is_flushed_sticky_and_cleared_only_by_resume() {
        let store = MemStore::default();
        let stop = set(&store, "operator says so", "operator:cli", T).unwrap();
        assert!(stop.active);
        assert_eq!(*store.flushes.lock().unwrap(), 2, "stop and state flushed");
        let start = startup_state(&store);
        assert_eq!(start.state, TradingState::Halted);
        let mut e = engine();
        e.apply_startup(&start, T);
        assert_eq!(e.check_at(&buy(), "a", T).unwrap_err().code(), "emergency_stop");
        assert!(e.state_record().reason.contains("operator says so"));
        // Restarting again changes nothing: it is sticky.
        assert_eq!(startup_state(&store).state, TradingState::Halted);

        let cleared = clear(&store, "operator:alice", T + 10).unwrap();
        assert!(cleared.was_active);
        assert_eq!(cleared.emergency_stop.cleared_by.as_deref(), Some("operator:alice"));
        assert_eq!(cleared.emergency_stop.cleared_at_ms, Some(T + 10));
        assert_eq!(cleared.emergency_stop.reason.as_deref(), Some("operator says so"), "history kept");
        let start = startup_state(&store);
        assert_eq!(start.state, TradingState::Active);
        let mut e = engine();
        e.apply_startup(&start, T + 11);
        assert!(e.check_at(&buy(), "b", T + 11).is_ok());
    }

    #[test]
    fn set_overwrites_an_unreadable_record_and_fails_on_a_failed_write() {
        let store = MemStore::default();
        store.fail_reads.store(true, Ordering::Relaxed);
        assert!(set(&store, "x", "venue:418", T).is_ok());
        assert_eq!(startup_state(&store).state, TradingState::Halted, "unreadable: fail closed");
        store.fail_reads.store(false, Ordering::Relaxed);
        assert!(startup_state(&store).emergency_stop.active);
        store.fail_writes.store(true, Ordering::Relaxed);
        assert!(set(&store, "x", "venue:418", T).is_err(), "an unflushed stop is never acknowledged");
        assert!(clear(&store, "operator:cli", T).is_err());
    }

    #[test]
    fn tripped_protection_survives_restart_until_resume_on_sled() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let mut e = engine();
            e.apply_startup(&startup_state(&store), T);
            e.evaluate_protections(d("10000"), T);
            let out = e.evaluate_protections(d("8000"), T + 1);
            let change = out.state_change.expect("drawdown trips");
            crate::persist::save(&store, &e.persisted(), true).unwrap();
            store.put_trading_state(&change).unwrap();
        }
        {
            // Restart: still HALTED, and the latch comes back with the risk state.
            let store = SledStore::open(dir.path()).unwrap();
            let start = startup_state(&store);
            assert_eq!(start.state, TradingState::Halted);
            let mut e = engine();
            assert_eq!(e.apply_startup(&start, T + 2).state, TradingState::Halted);
            assert!(e.evaluate_protections(d("12000"), T + 3).state_change.is_none(), "a recovery does not release it");
            assert_eq!(e.check_at(&buy(), "a", T + 3).unwrap_err().code(), "trading_state");
            // `keel resume` on the stopped engine.
            drop(e);
            clear(&store, "operator:cli", T + 4).unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let start = startup_state(&store);
        assert_eq!(start.state, TradingState::Active);
        let mut e = engine();
        assert_eq!(e.apply_startup(&start, T + 5).state, TradingState::Active);
        assert!(e.check_at(&buy(), "b", T + 5).is_ok());
        assert!(e.evaluate_protections(d("7000"), T + 6).state_change.is_none(), "mark restarts at the next equity");
        assert!(e.evaluate_protections(d("6299"), T + 7).state_change.is_some());
    }

    #[test]
    fn offline_snapshot_shows_the_stop_and_the_latched_protection() {
        let store = MemStore::default();
        let mut e = engine();
        e.evaluate_protections(d("1000"), T);
        e.evaluate_protections(d("850"), T + 1);
        crate::persist::save(&store, &e.persisted(), true).unwrap();
        set(&store, "manual", "operator:cli", T + 2).unwrap();
        let snap = crate::snapshot::offline(e.config().clone(), Vec::new(), &store, T + 3);
        assert_eq!(snap.trading_state, TradingState::Halted);
        assert!(snap.emergency_stop.active);
        assert!(snap.state_reason.contains("manual"), "{}", snap.state_reason);
        assert!(snap.protections.drawdown_trip.is_some());
        assert_eq!(snap.protections.drawdown_pct, Some(d("15")));
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["emergency_stop"]["reason"], "manual");
    }

    #[test]
    fn corrupt_risk_state_fails_closed() {
        let store = MemStore::default();
        store.put_meta_json(crate::persist::META_KEY, &serde_json::json!({"base_state": 5}), true).unwrap();
        let start = startup_state(&store);
        assert!(start.fail_closed);
        assert_eq!(start.state, TradingState::Halted);
        assert!(start.reason.contains("risk_state"), "{}", start.reason);
        // An operator resume overwrites it.
        clear(&store, "operator:cli", T).unwrap();
        assert!(!startup_state(&store).fail_closed);
    }
}
