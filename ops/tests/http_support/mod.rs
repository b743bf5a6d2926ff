//! Shared by the operator-surface tests: runs the real engine in process (the
//! paper venue, a sled store in a temp dir, the configured strategies) the way
//! `keel run` does, with the operator surfaces on loopback.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use actors::{start_engine, EngineHandle};
use keel_core::clock::{SharedClock, SystemClock};
use keel_core::store::SharedStore;
use ops::config::Config;
use ops::surfaces::Surfaces;

/// Instruments, balances, an `sma_cross` and a `webhook` strategy; fast simulated time.
pub const BASE: &str = r#"
[engine]
bar_interval = "1m"
log_level = "warn"

[venue]
mode = "paper"
ticks_per_bar = 2

[sandbox]
speed = 1500

[balances]
USDT = "100000"
BTC = "0"
ETH = "0"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_qty = "0.00001"
max_qty = "9000"
min_notional = "5"
start_price = "65000"
volatility = 0.5
seed = 42
spread_bps = "1"
touch_qty = "2.5"

[[symbol]]
symbol = "ETHUSDT"
base = "ETH"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"
min_qty = "0.0001"
max_qty = "90000"
min_notional = "5"
start_price = "3200"
volatility = 0.5
seed = 7
spread_bps = "1.5"
touch_qty = "40"

[[strategy]]
id = "btc_sma"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20, qty = "0.01" }

[[strategy]]
id = "tv"
kind = "webhook"
symbol = "BTCUSDT"
params = { qty = "0.01" }

[risk]
max_order_notional = "10000"
max_position_notional = "25000"
"#;

/// A running engine with its surfaces.
pub struct Running {
    /// The engine.
    pub handle: EngineHandle,
    /// The surfaces (taken by `stop`).
    pub surfaces: Option<Surfaces>,
    /// The store (to check what was persisted).
    pub store: SharedStore,
    /// The config as parsed.
    pub config: Config,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// `http://127.0.0.1:port` (`https://` with TLS).
    pub fn base_url(&self) -> String {
        self.surfaces.as_ref().and_then(|s| s.http_url()).unwrap_or_default()
    }

    /// Stops like `keel run` does.
    pub async fn stop(mut self) {
        self.handle.shutdown(Duration::from_millis(500)).await;
        if let Some(s) = self.surfaces.take() {
            s.stop().await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let _ = self.store.flush();
    }
}

/// Starts the engine for `config_text` (BASE plus sections) in a temp dir.
pub async fn start(config_text: &str) -> Running {
    start_with(config_text, |_| {}).await
}

/// Like [`start`], with the operator surfaces given the config as changed by
/// `surfaces_config` (the engine and venue keep the parsed one), e.g. to have
/// the API report a venue mode the engine is not trading on.
pub async fn start_with(config_text: &str, surfaces_config: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::parse(config_text).expect("test config is valid");
    config.engine.data_dir = dir.path().join("data");
    let store = ops::cmd_run::open_store(&config.engine.data_dir).expect("store opens");
    let built = ops::venues::build(&config, None).await.expect("paper venue");
    let clock: SharedClock = Arc::new(SystemClock);
    let setup = ops::cmd_run::engine_setup(
        &config,
        store.clone(),
        built.venue.clone(),
        clock,
        &strategies::StrategyRegistry::builtin(),
    )
    .expect("strategies build");
    let handle = start_engine(setup).await.expect("engine starts");
    let mut surface_config = config.clone();
    surfaces_config(&mut surface_config);
    let surfaces = ops::surfaces::start(&surface_config, &handle).await.expect("surfaces start");
    Running { handle, surfaces: Some(surfaces), store, config, tasks: built.tasks, _dir: dir }
}

/// Polls `f` every 50 ms until it is true or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The value of an unlabelled or labelled sample in Prometheus text, e.g.
/// `keel_http_unauthorized_total` or `keel_stream_connected{stream="user"}`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())
    })
}
