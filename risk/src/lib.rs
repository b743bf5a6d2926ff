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

pub use engine_core::{Approved, ProtectionOutcome, RiskEngine, RiskPersisted};
pub use protections::{ProtectionEvent, ProtectionState, Protections};
pub use reason::{RejectReason, Rejection, ALL_REJECT_CODES};
pub use snapshot::RiskSnapshot;
