//! A strategy written outside Keel, in its own crate: [`DonchianBreakout`],
//! registered into the `keel` command line by `src/main.rs` and tested with
//! Keel's harness (`keel_ops::testing`). See README.md.

pub mod donchian;

pub use donchian::DonchianBreakout;
