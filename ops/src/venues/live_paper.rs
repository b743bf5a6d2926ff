//! Paper mode on live market data (`[venue] market_data = "binance"` or
//! `"binance-testnet"`): the core's [`LivePaperVenue`] fed by the Binance
//! adapter's keyless [`PublicFeed`]. Ops is where the two meet: keel-core
//! does not know Binance.

use std::sync::Arc;

use keel_binance::public::PublicFeed;
use keel_core::venue::live_paper::{LivePaperConfig, LivePaperVenue};

use super::{paper_balances, BuiltVenue, StoredAccount};
use crate::config::Config;

/// Builds the dry-run venue: the configured symbols with the source's
/// filters (`exchangeInfo`; a symbol it does not list stops the start).
/// Balances continue from the store's snapshot, else `[balances]`; ids start
/// from the wall clock, as in paper mode.
pub async fn build(config: &Config, stored: &StoredAccount, now_ms: i64) -> anyhow::Result<BuiltVenue> {
    let Some(source) = config.venue.paper.live_source(config.venue.market_data) else {
        anyhow::bail!("venue.market_data `{}` is not a live source", config.venue.market_data.as_str());
    };
    let feed = PublicFeed::new(&source.rest_url, &source.ws_stream_url)
        .map_err(|e| anyhow::anyhow!("dry-run market data at {}: {e}", source.rest_url))?;
    // The weather (429, 5xx, timeouts) is waited out up to the deadline.
    let patience = actors::patience::Patience::new(std::time::Duration::from_millis(
        config.engine.startup_deadline.0.max(0) as u64,
    ));
    let listed = actors::patience::retrying(&patience, "exchangeInfo", || feed.instruments())
        .await
        .map_err(|e| anyhow::anyhow!("dry-run market data at {}: cannot read exchangeInfo: {e}", source.rest_url))?;
    let mut instruments = Vec::with_capacity(config.symbols.len());
    for (i, s) in config.symbols.iter().enumerate() {
        let Some(listed) = listed.iter().find(|l| l.symbol.as_str() == s.symbol) else {
            anyhow::bail!(
                "config error at `symbol[{i}].symbol`: `{}` is not listed by the market-data source ({})",
                s.symbol,
                source.rest_url
            );
        };
        instruments.push(listed.clone());
    }
    tracing::info!(
        market_data = source.market_data.as_str(),
        rest = %source.rest_url,
        ws_streams = %source.ws_stream_url,
        latency_ms = source.latency_ms,
        "paper on live Binance market data (public endpoints, no API key)"
    );
    let venue = LivePaperVenue::new(
        LivePaperConfig {
            instruments,
            balances: paper_balances(config, stored.balances.as_ref()),
            fees: config.venue.fees(),
            latency_ms: source.latency_ms,
            id_base: (now_ms.max(0) as u64).saturating_mul(1000),
        },
        Arc::new(feed),
    );
    Ok(BuiltVenue { venue, tasks: Vec::new(), sandbox: None })
}
