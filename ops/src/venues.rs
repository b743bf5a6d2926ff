//! Builds the venue the config asks for: the in-process paper venue, or the
//! Binance adapter — connected to the embedded sandbox exchange (`sandbox`),
//! to Binance spot testnet or to mainnet — or, with `exchange = "coinbase"`,
//! the Coinbase adapter ([`coinbase`]).

pub mod coinbase;
pub mod live_paper;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, Exchange, SimulatedClock, VenueMode};
use anyhow::Context;
use keel_binance::{BinanceSettings, BinanceVenue, Credentials, Endpoints, LocalExchange};
use keel_core::balance::{Balance, Balances};
use keel_core::clock::{Clock, SystemClock};
use keel_core::fill::FillCursor;
use keel_core::store::Store;
use keel_core::venue::paper::{PaperConfig, PaperSymbol, PaperVenue};
use keel_core::venue::Venue;
use keel_core::Decimal;
use keel_core::Symbol;
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

/// Bars of simulated history so strategies can warm up at once.
const HISTORY_BARS: usize = 600;

/// The embedded sandbox keeps its state in this folder of the data dir.
pub const EMBEDDED_STATE_DIR: &str = "sandbox";

/// Clock offsets to the venue beyond this are reported (requests still carry
/// the corrected timestamp, but a drifting host clock deserves a look).
const CLOCK_OFFSET_WARN_MS: i64 = 1000;

/// A venue and what keeps it running.
pub struct BuiltVenue {
    /// The venue.
    pub venue: Arc<dyn Venue>,
    /// Background tasks to abort on shutdown.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The embedded sandbox exchange (mode `sandbox`); it stops when dropped.
    pub sandbox: Option<EmbeddedSandbox>,
}

impl BuiltVenue {
    /// Stops the background tasks and the embedded sandbox.
    pub async fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
        drop(self.venue);
        if let Some(sb) = self.sandbox {
            sb.shutdown().await;
        }
    }
}

/// The sandbox exchange running on its own thread and tokio runtime, so the
/// exchange and the engine do not share a thread (as with a real venue).
pub struct EmbeddedSandbox {
    handle: SandboxHandle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl EmbeddedSandbox {
    /// Starts the sandbox on a dedicated thread and returns once it listens.
    pub async fn start(cfg: SandboxConfig) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("keel-sandbox".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start its runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let started = Sandbox::start(cfg).await.map_err(|e| e.to_string());
                    let ok = started.is_ok();
                    if ready_tx.send(started).is_err() || !ok {
                        return;
                    }
                    // Runs the exchange until the owner drops or stops it.
                    let _ = stop_rx.await;
                });
            })
            .context("cannot start the sandbox thread")?;
        let handle = ready_rx
            .await
            .map_err(|_| anyhow::anyhow!("the sandbox thread ended before it started"))?
            .map_err(|e| anyhow::anyhow!("embedded sandbox: {e}"))?;
        Ok(Self { handle, _stop: stop_tx })
    }

    /// The running sandbox (URLs, test key, fault and market control).
    pub fn handle(&self) -> &SandboxHandle {
        &self.handle
    }

    /// Stops the server and its tasks, then its thread.
    pub async fn shutdown(self) {
        let Self { handle, _stop } = self;
        handle.shutdown().await;
    }
}

/// The paper venue's settings from the config: its symbols and price paths,
/// fees and timing, and warm-up history ending at `now_ms`. Balances continue
/// from the store's snapshot when there is one (a restart keeps the account),
/// else the config's starting balances. Ids start from the wall clock, so
/// trade ids stay unique across restarts of a venue that keeps no history.
pub fn paper_config(config: &Config, stored: Option<&Balances>, now_ms: i64) -> PaperConfig {
    let balances = paper_balances(config, stored);
    let interval = config.engine.bar_interval.0;
    PaperConfig {
        symbols: config.symbols.iter().map(PaperSymbol::from_config).collect(),
        balances,
        fees: config.venue.fees(),
        depth_levels: config.venue.depth_levels,
        bar_interval_ms: interval,
        ticks_per_bar: config.venue.ticks_per_bar,
        bar_wall_ms: ((interval as f64 / config.speed(SimulatedClock::Embedded)).round() as u64).max(1),
        history_bars: HISTORY_BARS,
        start_ms: now_ms - HISTORY_BARS as i64 * interval,
        id_base: (now_ms.max(0) as u64).saturating_mul(1000),
    }
}

/// A paper account's balances: the store's snapshot when there is one (a
/// restart keeps the account), else the config's starting balances.
pub fn paper_balances(config: &Config, stored: Option<&Balances>) -> Vec<Balance> {
    match stored {
        Some(b) if !b.assets.is_empty() => b.assets.values().cloned().collect(),
        _ => config
            .balances
            .iter()
            .map(|(asset, amount)| Balance { asset: asset.clone(), free: *amount, locked: Decimal::ZERO })
            .collect(),
    }
}

/// What the store remembers that a venue must continue from.
#[derive(Debug, Clone, Default)]
pub struct StoredAccount {
    /// The last balances snapshot.
    pub balances: Option<Balances>,
    /// The fill cursor of every symbol traded: where the venue's listing of
    /// own trades resumes.
    pub cursors: BTreeMap<Symbol, FillCursor>,
}

impl StoredAccount {
    /// Reads the snapshot and the trade-id watermark of every symbol traded.
    /// A record that cannot be read is reported and skipped: start-up
    /// reconciliation then takes the venue's word (and the store's own
    /// fail-closed checks decide whether trading may start).
    pub fn read(store: &dyn Store) -> Self {
        let balances = store.balances().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the stored balances; the venue's are used");
            None
        });
        // Every symbol ever traded, configured or not (flatten sells any holding).
        let cursors = match store.fill_cursors() {
            Ok(c) => c.into_iter().map(|(s, c)| (Symbol::new(&s), c)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the stored fill cursors");
                BTreeMap::new()
            }
        };
        Self { balances, cursors }
    }
}

/// The embedded sandbox's settings: `[sandbox]` resolved against the config
/// (see [`Config::sandbox_config`]) on a free loopback port unless `listen`
/// is set. It keeps its state in the data dir's `sandbox/` folder, so a
/// restart meets the venue it left. A data dir without that folder (a store
/// from a Keel before it was kept) starts the sandbox from the store's
/// balances snapshot, with ids above every recorded trade id (and above the
/// wall-clock base of earlier runs).
pub fn embedded_sandbox_config(config: &Config, stored: &StoredAccount, now_ms: i64) -> SandboxConfig {
    let mut sb = config.sandbox_config(SimulatedClock::Embedded);
    if !config.sandbox.sets("listen") {
        sb.listen = "127.0.0.1:0".into();
    }
    if !config.sandbox.sets("state_dir") {
        // The venue outlives the engine's restarts, as a real one does.
        sb.state_dir = Some(config.engine.data_dir.join(EMBEDDED_STATE_DIR));
    }
    if let Some(b) = stored.balances.as_ref().filter(|b| !b.assets.is_empty()) {
        if let Some(first) = sb.accounts.first_mut() {
            // Only read when the sandbox has no saved state: orders of the
            // previous run do not exist in a fresh sandbox, so their locked
            // funds are free again.
            first.balances = b.assets.iter().map(|(asset, bal)| (asset.clone(), bal.total())).collect();
        }
    }
    if sb.id_base == 0 {
        let above_stored =
            stored.cursors.values().filter_map(|c| c.trade_id.as_u64()).max().map(|m| m.saturating_add(1)).unwrap_or(1);
        sb.id_base = (now_ms.max(1) as u64).saturating_mul(1000).max(above_stored);
    }
    sb
}

/// Builds the configured venue (must run inside a tokio runtime). With a
/// store, balances and trade-id watermarks continue from it.
pub async fn build(config: &Config, store: Option<&dyn Store>) -> anyhow::Result<BuiltVenue> {
    let stored = match store {
        Some(s) => StoredAccount::read(s),
        None => StoredAccount::default(),
    };
    let now = SystemClock.now_ms();
    if config.venue.exchange == Exchange::Coinbase && config.venue.mode != VenueMode::Paper {
        return coinbase::build(config, &stored, store, now).await;
    }
    match config.venue.mode {
        VenueMode::Paper if config.venue.market_data.is_live() => live_paper::build(config, &stored, now).await,
        VenueMode::Paper => {
            let venue = PaperVenue::new(paper_config(config, stored.balances.as_ref(), now));
            let task = venue.spawn_clock();
            Ok(BuiltVenue { venue, tasks: vec![task], sandbox: None })
        }
        VenueMode::Sandbox => {
            let sandbox = EmbeddedSandbox::start(embedded_sandbox_config(config, &stored, now)).await?;
            tracing::info!(
                rest = %sandbox.handle().rest_url,
                ws_streams = %sandbox.handle().ws_stream_url,
                ws_api = %sandbox.handle().ws_api_url,
                continued_balances = stored.balances.as_ref().is_some_and(|b| !b.assets.is_empty()),
                "embedded sandbox exchange started (Binance spot protocol)"
            );
            let settings = resolve(config, Some(sandbox.handle()))?;
            let venue = connect(config, settings, &stored).await?;
            Ok(BuiltVenue { venue, tasks: Vec::new(), sandbox: Some(sandbox) })
        }
        VenueMode::Testnet | VenueMode::Mainnet => {
            let settings = resolve(config, None)?;
            let venue = connect(config, settings, &stored).await?;
            Ok(BuiltVenue { venue, tasks: Vec::new(), sandbox: None })
        }
    }
}

/// The running sandbox as the adapter sees it: a Binance-protocol exchange on
/// loopback, its URLs and a key of its first account — the generated Ed25519
/// key, handed over directly (Binance's recommended key type, which logs on
/// to the WebSocket API), else the HMAC key.
pub fn local_exchange(sandbox: &SandboxHandle) -> LocalExchange {
    let ed25519 = match (&sandbox.ed25519_api_key, &sandbox.ed25519_private_key_pem) {
        (Some(key), Some(pem)) => match Credentials::ed25519(key, pem) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "the sandbox's Ed25519 test key is unreadable; using its HMAC key");
                None
            }
        },
        _ => None,
    };
    LocalExchange {
        endpoints: Endpoints {
            rest: sandbox.rest_url.clone(),
            ws_stream: sandbox.ws_stream_url.clone(),
            ws_api: sandbox.ws_api_url.clone(),
        },
        credentials: ed25519.unwrap_or_else(|| hmac_credentials(sandbox)),
    }
}

/// The sandbox's HMAC test key (its first account's).
pub fn hmac_credentials(sandbox: &SandboxHandle) -> Credentials {
    Credentials::new(&sandbox.api_key, &sandbox.api_secret)
}

/// Adapter settings for a running sandbox, with default timings.
pub fn sandbox_settings(sandbox: &SandboxHandle) -> BinanceSettings {
    BinanceSettings::for_local(&local_exchange(sandbox))
}

/// Adapter settings for a running sandbox on the other transport: its HMAC
/// key and order entry over REST (`order_transport = "rest"`).
pub fn sandbox_settings_hmac_rest(sandbox: &SandboxHandle) -> BinanceSettings {
    BinanceSettings {
        credentials: hmac_credentials(sandbox),
        order_transport: keel_binance::OrderTransport::Rest,
        ..sandbox_settings(sandbox)
    }
}

/// Resolves `[venue.binance]` for `venue.mode`: URLs, and keys from the
/// environment variables it names (never logged).
fn resolve(config: &Config, sandbox: Option<&SandboxHandle>) -> anyhow::Result<BinanceSettings> {
    let mode = config.venue.mode;
    let Some(binance_mode) = mode.binance_mode() else {
        anyhow::bail!("venue mode `{}` does not use the Binance adapter", mode.as_str());
    };
    let local = sandbox.map(local_exchange);
    let mut settings = config
        .venue
        .binance_config()
        .resolve_with_mode(binance_mode, local.as_ref())
        .map_err(|e| anyhow::anyhow!("config error at `{}`: {}", crate::config::binance_key(&e), e.reason))?;
    for s in &config.symbols {
        if !settings.symbols.contains(&s.symbol) {
            settings.symbols.push(s.symbol.clone());
        }
    }
    Ok(settings)
}

/// Reports what the start-up check found wrong, one line each: a clock
/// offset beyond [`CLOCK_OFFSET_WARN_MS`] (requests carry the venue's time,
/// but a drifting host clock deserves a look) and a key that may not trade
/// (`cannot_trade`: the venue's flag as it reads, and how to fix it).
fn report_startup_problems(mode: &str, clock_offset_ms: i64, cannot_trade: Option<(&str, &str)>) {
    if clock_offset_ms.abs() > CLOCK_OFFSET_WARN_MS {
        tracing::warn!(
            clock_offset_ms,
            "clock offset to the venue is {clock_offset_ms} ms: requests carry the venue's time, but check the host clock (NTP)"
        );
    }
    if let Some((flag, fix)) = cannot_trade {
        tracing::error!(venue = mode, "the API key may not trade ({flag}): every order will be refused; {fix}");
    }
}

/// Connects the Binance adapter, seeds its trade-id watermarks from the store
/// and runs the start-up check: connectivity, clock offset, key permissions.
/// Each problem is one line; a venue that cannot be reached or refuses the key
/// stops the start.
async fn connect(config: &Config, settings: BinanceSettings, stored: &StoredAccount) -> anyhow::Result<Arc<dyn Venue>> {
    keel_binance::install_crypto_provider();
    let mode = config.venue.mode.as_str();
    let rest = settings.endpoints.rest.clone();
    let ws_stream = settings.endpoints.ws_stream.clone();
    let ws_api = settings.endpoints.ws_api.clone();
    let (key_type, order_transport) = (settings.credentials.key_type(), settings.order_transport.as_str());
    // The weather (429, 418, 5xx, timeouts) is waited out up to the deadline.
    let patience = actors::patience::Patience::new(std::time::Duration::from_millis(
        config.engine.startup_deadline.0.max(0) as u64,
    ));
    let venue = actors::patience::retrying(&patience, "connect", || BinanceVenue::connect(settings.clone()))
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to Binance {mode} at {rest}: {e}"))?;
    for (symbol, cursor) in &stored.cursors {
        venue.seed_fill_cursor(symbol, cursor);
    }
    let report =
        actors::patience::retrying(&patience, "account check", || venue.startup_check()).await.map_err(|e| {
            anyhow::anyhow!("Binance {mode} at {rest}: the account check failed (API key or permissions?): {e}")
        })?;
    tracing::info!(
        venue = mode,
        rest = %rest,
        ws_streams = %ws_stream,
        ws_api = %ws_api,
        clock_offset_ms = report.clock_offset_ms,
        can_trade = report.can_trade,
        symbols = report.symbols,
        key_type,
        order_transport,
        "connected to Binance"
    );
    report_startup_problems(
        mode,
        report.clock_offset_ms,
        (!report.can_trade).then_some(("canTrade = false", "enable spot trading for the key")),
    );
    Ok(Arc::new(venue))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[venue]
mode = "sandbox"

[balances]
USDT = "1000"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"
start_price = "50000"
volatility = 0.5
touch_qty = "1"
"#;

    #[test]
    fn a_restarted_embedded_sandbox_continues_the_stored_account_with_fresh_ids() {
        let config = Config::parse(CONFIG).unwrap();
        let now = 1_800_000_000_000;

        let fresh = embedded_sandbox_config(&config, &StoredAccount::default(), now);
        assert_eq!(fresh.listen, "127.0.0.1:0");
        assert_eq!(fresh.accounts[0].balances, config.balances);
        assert_eq!(fresh.symbols, config.symbols);
        assert_eq!(fresh.id_base, now as u64 * 1000);

        let mut balances = Balances::default();
        balances.update(
            &[
                Balance { asset: "USDT".into(), free: Decimal::new(400, 0), locked: Decimal::new(100, 0) },
                Balance { asset: "BTC".into(), free: Decimal::new(1, 2), locked: Decimal::ZERO },
            ],
            now,
        );
        let far_ahead = now as u64 * 1000 + 5;
        let stored = StoredAccount {
            balances: Some(balances),
            cursors: [(Symbol::new("BTCUSDT"), FillCursor { ts_ms: now, trade_id: far_ahead.into() })]
                .into_iter()
                .collect(),
        };
        let restarted = embedded_sandbox_config(&config, &stored, now);
        assert_eq!(restarted.accounts[0].balances["USDT"], Decimal::new(500, 0), "locked funds are free again");
        assert_eq!(restarted.accounts[0].balances["BTC"], Decimal::new(1, 2));
        assert_eq!(restarted.id_base, far_ahead + 1, "ids start above every recorded trade id");
    }
}
