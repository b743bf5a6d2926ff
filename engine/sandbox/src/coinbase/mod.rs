//! The Coinbase Advanced Trade protocol side of the sandbox: a second
//! protocol over the same exchange (one matching core, one set of accounts,
//! books and balances), not a second exchange. An order placed here rests in
//! the book the Binance protocol shows, and the reverse.
//!
//! Served: REST `/api/v3/brokerage/…` ([`rest`], [`orders`]; order preview
//! in [`preview`], edit and edit preview in [`edit`]) with JWT
//! verification ([`jwt`]) against the keys registered from config and the
//! generated test key ([`test_key`], EC or Ed25519, the latter also as the
//! raw base64 ccxt takes); the market-data and user WebSocket endpoints
//! ([`ws`], with [`feeds`] and [`user_feed`]); and the few Coinbase App
//! `/v2/` routes ccxt loads markets and balances from ([`v2`]).
//! `tools/coinbase_witness.py` drives all of it with ccxt and the official
//! Python SDK. Not served: other order types (stop, bracket, GTD, TWAP),
//! portfolios, futures, conversions and the rest of the v2 API.
//!
//! Time: as on the Binance side, every timestamp is on the server clock
//! except the market's bars. Coinbase has no bar stream, so clients read
//! candles by REST on the market's clock; when it runs faster than the
//! server's (`speed` above 1), `GET /time` adds Keel's extension
//! `keelMarketClock` (`epochMillis`, `speed`, both strings) saying where
//! that clock is. Fault hooks of [`crate::FaultControl`] act on the
//! Coinbase routes too (REST faults, order and cancel faults, latency,
//! skew, dropped connections, `skip_coinbase_l2_sequence`).
//!
//! Like the Binance side, it verifies with its own code and never with the
//! adapter's (`keel-coinbase`): a signing bug in the adapter must fail here
//! as it would at Coinbase.

mod edit;
mod faults;
mod feeds;
pub mod ids;
pub mod jwt;
mod orders;
mod preview;
mod rate;
pub(crate) mod rest;
pub mod test_key;
mod user_feed;
pub(crate) mod v2;
pub mod ws;

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::{SandboxConfig, SandboxError};

/// The Coinbase protocol's own state: the key registry the JWT check reads,
/// the account each key name belongs to, and the rate limits.
#[derive(Debug, Default)]
pub(crate) struct CoinbaseState {
    /// Public keys by key name.
    pub registry: jwt::KeyRegistry,
    /// Core account ids by key name.
    pub accounts: HashMap<String, u32>,
    /// Request counts per second.
    pub rates: rate::RateLimits,
    /// Private requests per second and key (0: unlimited).
    pub private_per_s: u32,
    /// Public requests per second (0: unlimited).
    pub public_per_s: u32,
    /// The accepted edits of each order, oldest first (its `edit_history`).
    edits: Mutex<HashMap<u64, Vec<Value>>>,
}

impl CoinbaseState {
    /// Registers every account's Coinbase key (accounts are numbered from 1
    /// in config order, as the exchange numbers them).
    pub fn from_config(cfg: &SandboxConfig) -> Result<Self, SandboxError> {
        let mut keys = Self {
            private_per_s: cfg.coinbase_private_per_s,
            public_per_s: cfg.coinbase_public_per_s,
            ..Self::default()
        };
        for (i, acc) in cfg.accounts.iter().enumerate() {
            let Some(pem) = &acc.coinbase_public_key else { continue };
            let key = jwt::PublicKey::from_pem(pem)
                .map_err(|e| SandboxError::Config(format!("sandbox.accounts[{i}].coinbase_public_key: {e}")))?;
            let name = acc.coinbase_key_name.clone().unwrap_or_else(|| default_key_name(i));
            if keys.accounts.insert(name.clone(), i as u32 + 1).is_some() {
                return Err(SandboxError::Config(format!(
                    "sandbox.accounts[{i}].coinbase_key_name: the key name `{name}` is used twice"
                )));
            }
            keys.registry.insert(name, key);
        }
        Ok(keys)
    }
}

impl CoinbaseState {
    /// Keeps an accepted edit in the order's `edit_history`.
    pub fn record_edit(&self, order_id: u64, entry: Value) {
        if let Ok(mut edits) = self.edits.lock() {
            edits.entry(order_id).or_default().push(entry);
        }
    }

    /// An order's accepted edits, oldest first.
    pub fn edit_history(&self, order_id: u64) -> Vec<Value> {
        self.edits.lock().ok().and_then(|e| e.get(&order_id).cloned()).unwrap_or_default()
    }
}

/// The key name of account `i` (0-based) when the config names none.
pub(crate) fn default_key_name(i: usize) -> String {
    format!("organizations/keel-sandbox/apiKeys/account-{}", i + 1)
}
