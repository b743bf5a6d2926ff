//! Keel's risk rules in plain Rust (no actix): the live RiskGuard actor and the
//! backtest call the very same code.
//!
//! [`RiskEngine::check`] is the single gate every order intent passes. It rounds
//! the intent to the venue's tick and step, applies the trading state and the
//! emergency stop, and checks limits counting open and in-flight orders, so two
//! quick intents cannot both pass a limit only one fits under.

pub mod engine_core;
pub mod reason;

pub use engine_core::{Approved, RiskEngine};
pub use reason::{RejectReason, Rejection};
