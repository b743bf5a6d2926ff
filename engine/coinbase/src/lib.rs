//! Keel's Coinbase Advanced Trade adapter (spot).
//!
//! What the adapter and the Coinbase-protocol sandbox both build on: the
//! per-request JWTs ([`auth`]), the REST and WebSocket models ([`model`]),
//! and product ids with their filters ([`symbols`]). The adapter itself:
//! the signing, paced REST client ([`rest`], [`limits`]) and
//! [`CoinbaseVenue`] ([`venue`]), Keel's `Venue` over REST and the two
//! WebSocket streams (`ws`, [`market_stream`] with its level-2 [`book`],
//! and `user_stream`), and the start-up check ([`startup`]). The facts come from
//! `../shared/reference/coinbase-advanced.md`.
//!
//! Depends on `keel-core` only, never on the sandbox (an independent
//! implementation of the other side of the protocol).

pub mod auth;
mod balance_feed;
pub mod book;
pub mod limits;
pub mod market_stream;
pub mod model;
pub mod rest;
pub mod startup;
pub mod symbols;
mod user_stream;
pub mod venue;
mod wire;
mod ws;

pub use wire::rfc3339_ms;

pub use venue::{CoinbaseSettings, CoinbaseVenue};

/// Installs rustls' ring provider once (reqwest with rustls needs one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
