//! The Coinbase Advanced Trade protocol side of the sandbox. It grows here
//! (REST `/api/v3/brokerage`, the market and user WebSockets) on the same
//! matching core as the Binance protocol; for now it holds the JWT check
//! every authenticated request goes through ([`jwt`]).
//!
//! Like the Binance side, it verifies with its own code and never with the
//! adapter's (`keel-coinbase`): a signing bug in the adapter must fail here
//! as it would at Coinbase.

pub mod jwt;
