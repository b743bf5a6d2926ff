//! Keel's Coinbase Advanced Trade adapter (spot).
//!
//! This first part holds what the adapter and the Coinbase-protocol sandbox
//! both build on: the per-request JWTs ([`auth`]), the REST and WebSocket
//! models ([`model`]), and product ids with their filters ([`symbols`]). The
//! facts come from `../shared/reference/coinbase-advanced.md`.

pub mod auth;
pub mod model;
pub mod symbols;
mod wire;

pub use wire::rfc3339_ms;
