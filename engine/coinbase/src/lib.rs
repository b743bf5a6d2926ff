//! Keel's Coinbase Advanced Trade adapter (spot).
//!
//! This first part holds what the adapter and the Coinbase-protocol sandbox
//! both build on: the per-request JWTs ([`auth`]), the REST and WebSocket
//! models ([`model`]), and product ids with their filters ([`symbols`]). The
//! facts come from `../shared/reference/coinbase-advanced.md`.

pub mod auth;
pub mod limits;
pub mod model;
pub mod rest;
pub mod symbols;
pub mod venue;
mod wire;

pub use wire::rfc3339_ms;

pub use venue::{CoinbaseSettings, CoinbaseVenue};

/// Installs rustls' ring provider once (reqwest with rustls needs one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
