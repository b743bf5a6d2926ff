//! Paper mode on live market data (`[venue] market_data = "binance"` or
//! `"binance-testnet"`): the core's [`LivePaperVenue`] fed by the Binance
//! adapter's keyless [`PublicFeed`]. Ops is where the two meet: keel-core
//! does not know Binance.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use keel_binance::public::PublicFeed;
use keel_core::sim::MatchingCore;
use keel_core::venue::live_paper::{CoreSaver, LivePaperConfig, LivePaperVenue};

use super::{paper_balances, BuiltVenue, StoredAccount};
use crate::config::Config;

/// The dry-run keeps its simulated account in this folder of the data dir.
pub const STATE_DIR: &str = "dry-run";
/// The file in it: the matching core, whole, as JSON.
const STATE_FILE: &str = "account.json";

/// Saves the dry-run's account to `<data dir>/dry-run/account.json`,
/// replaced atomically (written beside it, then renamed), so a killed
/// process restarts with its open orders, balances and fills. It does not
/// `fsync`: a power loss may take the last writes. The file is small
/// (history is bounded) and written only when the account changes.
struct FileSaver {
    dir: PathBuf,
    failing: AtomicBool,
}

impl CoreSaver for FileSaver {
    fn save(&self, core: &MatchingCore) {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let written = serde_json::to_vec(core)
            .map_err(|e| e.to_string())
            .and_then(|bytes| std::fs::write(&tmp, bytes).map_err(|e| e.to_string()))
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(file = %path.display(), "dry-run account saved again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(file = %path.display(), error = %e, "DRY-RUN ACCOUNT NOT SAVED: a restart would lose what changed since");
                }
            }
        }
    }
}

/// The account a previous run saved in `dir` (`None`: none yet). A file
/// that cannot be read stops the start: starting fresh would forget orders.
fn load(dir: &Path) -> anyhow::Result<Option<MatchingCore>> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read the dry-run account {}: {e}", path.display()),
    };
    let core = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!("{} is not a dry-run account ({e}); move it away to start the dry-run fresh", path.display())
    })?;
    Ok(Some(core))
}

/// Builds the dry-run venue: the configured symbols with the source's
/// filters (`exchangeInfo`; a symbol it does not list stops the start).
/// The account continues from `<data dir>/dry-run/` when a run saved it
/// there; else balances come from the store's snapshot, else `[balances]`,
/// and ids start from the wall clock, as in paper mode.
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
    let dir = config.engine.data_dir.join(STATE_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let saved = load(&dir)?;
    tracing::info!(
        continued = saved.is_some(),
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
            saved,
        },
        Arc::new(feed),
        Some(Arc::new(FileSaver { dir, failing: AtomicBool::new(false) })),
    );
    Ok(BuiltVenue { venue, tasks: Vec::new(), sandbox: None })
}
