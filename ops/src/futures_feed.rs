//! Starts the engine's futures feed where the venue has a futures market
//! (Binance, and the sandbox's fapi): the client from
//! [`crate::futures_data::usdm_client`], restricted to the strategies'
//! symbols that are trading perpetuals there (the feed keeps that filter
//! for universe members joining later), at the `[futures]` timings. Paper
//! and Coinbase have none, which is not an error; `[futures] enabled =
//! false` starts none either.

use std::collections::HashSet;
use std::sync::Arc;

use actors::EngineHandle;

use crate::config::Config;
use crate::venues::BuiltVenue;

/// Starts the futures feed of `config`'s venue for the running engine, if
/// its venue has a futures market and `[futures]` is enabled; true when one
/// started.
pub async fn start(config: &Config, built: &BuiltVenue, handle: &EngineHandle) -> anyhow::Result<bool> {
    if !config.futures.enabled {
        tracing::info!("[futures] enabled = false: no futures data for strategies");
        return Ok(false);
    }
    let sandbox = built.sandbox.as_ref().map(|s| s.handle());
    let Some(client) = crate::futures_data::usdm_client(config, sandbox)? else {
        tracing::debug!("no futures market on this venue: no futures data for strategies");
        return Ok(false);
    };
    // The perpetuals (and the weight limit) from exchangeInfo: a spot symbol
    // without a perpetual gets no futures data rather than a silent stream
    // and an "invalid symbol" every open-interest poll.
    let perpetuals: Option<HashSet<String>> = match client.exchange_info().await {
        Ok(info) => Some(info.symbols.iter().filter(|s| s.is_trading_perpetual()).map(|s| s.symbol.clone()).collect()),
        Err(e) => {
            tracing::warn!(error = %e, "futures exchangeInfo not read; asking for every strategy symbol");
            None
        }
    };
    let keep = move |s: &keel_core::Symbol| perpetuals.as_ref().is_none_or(|p| p.contains(s.as_str()));
    handle.start_futures_feed(Arc::new(client), config.futures.feed(), keep).await?;
    Ok(true)
}
