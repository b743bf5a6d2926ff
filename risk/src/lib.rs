//! Keel's risk rules in plain Rust (no actix, no wall clock): the live RiskGuard
//! actor and the backtest call the very same code.
//!
//! * [`RiskEngine`] is the single gate every order intent passes
//!   ([`RiskEngine::check_at`]): it rounds the intent to the venue's tick and
//!   step and runs every pre-trade check, counting open and in-flight orders so
//!   two quick intents cannot both pass a limit only one fits under. Each refusal
//!   is a typed [`RejectReason`] with a stable code.
//! * [`protections`] watch equity marked to market (max drawdown, daily loss)
//!   and losing streaks per strategy; [`RiskEngine::evaluate_protections`]
//!   applies them.
//! * [`emergency`] sets and clears the sticky emergency stop in the store and
//!   decides the start state (fail closed).
//! * [`RiskSnapshot`] is what the operator surfaces print.
//!
//! Trading states: `ACTIVE` (normal), `REDUCING` (only orders that shrink a
//! position), `HALTED` (no new orders; reduce-only exits if
//! `risk.halted_reduce_only_exits`). The effective state is the most severe of
//! the base state (operator/engine), what a tripped protection requires, and
//! `HALTED` while the emergency stop is set.
//!
//! # Wiring (what the RiskGuard actor calls, and when)
//!
//! Start-up: `emergency::startup_state(store)` (or
//! `StartupDecision::store_unavailable(err)` when the store cannot be opened),
//! then [`RiskEngine::new`] and [`RiskEngine::apply_startup`];
//! `set_venue_healthy(false)` until reconciliation is done; `restore_position`,
//! `restore_open_order`, `restore_strategy_position`, `on_balances`; then
//! `set_venue_healthy(true)`.
//!
//! Live: `on_market_event` for every market event (arrival time on the engine
//! clock); `check_at` for every intent; `on_order_accepted` when the venue
//! acknowledges; `on_fill_at` once per newly recorded fill; `on_order_final`
//! on every terminal status; `on_balances` on every balance update;
//! `set_venue_healthy` on user-stream loss and after re-reconciliation;
//! `evaluate_protections(equity, now)` on price updates or a short timer —
//! act on its [`ProtectionOutcome`]: flush `state_change` with
//! `put_trading_state`, call [`emergency::set`] for `emergency_request()`, save
//! [`RiskEngine::persisted`] with [`persist::save`].
//!
//! Operator: emergency stop = [`emergency::set`] then
//! [`RiskEngine::set_emergency_stop_record`] and cancel everything (flatten with
//! reduce-only market orders if asked or `risk.flatten_on_emergency_stop`);
//! resume = [`emergency::clear`] then [`RiskEngine::resume`] and
//! [`persist::save`]. `keel halt` / `keel resume` on a stopped engine call
//! [`emergency::set`] / [`emergency::clear`] directly. `keel state` builds a
//! [`RiskEngine`], applies [`emergency::startup_state`] and prints
//! [`RiskEngine::snapshot`].

#![warn(missing_docs)]

pub mod config;
pub mod emergency;
pub mod engine_core;
pub mod persist;
pub mod protections;
pub mod reason;
pub mod snapshot;
pub mod windows;

#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod test_store;

pub use engine_core::{Approved, FlattenPlan, ProtectionOutcome, RiskEngine, RiskPersisted};
pub use protections::{ProtectionEvent, ProtectionState, Protections};
pub use reason::{RejectReason, Rejection, ALL_REJECT_CODES};
pub use snapshot::{offline as offline_snapshot, RiskSnapshot};
