//! The Binance-protocol sandbox exchange: a real HTTP + WebSocket server on
//! loopback that speaks the Binance spot protocol (signed REST `/api/v3`,
//! market streams `/ws` and `/stream`, the WebSocket API `/ws-api/v3`), driven
//! by the engine's one matching core ([`keel_core::sim`]).
//!
//! Time: `speed` simulated minutes pass per minute of the server clock. At
//! speed 1 (the default) the market runs in real time — 1m bars close on the
//! minute of `serverTime`, every timestamp comes from that one clock, and
//! history is backdated from now. Above 1 (e.g. 240, the embedded demo's
//! setting) the market's own clock — kline open and close times — starts
//! `sim_start_days_ago` in the past and runs faster; every other timestamp
//! (`serverTime`, trade, ticker and event times, order and fill times) stays
//! on the server clock, as does `recvWindow`.
//!
//! With a `state_dir` the sandbox keeps its state across restarts
//! ([`saved`]), and simulates the time it was down when it starts again.
//!
//! Faults are injected from config ([`FaultConfig`]) or scripted by tests
//! through [`FaultControl`]; prices can be steered through [`MarketControl`].

pub mod archive;
mod auth;
pub mod coinbase;
mod depth;
mod exchange;
mod history;
mod limits;
mod market_rest;
mod order_list;
mod replace;
mod rest;
pub mod saved;
mod streams;
pub mod synthetic;
mod tape;
pub mod test_key;
mod tickers;
pub mod tls;
pub mod usdm;
mod ws;
mod ws_session;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use keel_core::balance::Balance;
use keel_core::clock::{Clock, SystemClock};
use keel_core::config::{ConfigError, SymbolConfig};
use keel_core::market::Bar;
use keel_core::sim::{CommissionAsset, SimOrder};

pub use exchange::{Exchange, BAR_MS};

/// One sandbox account: an HMAC API key/secret pair, optionally an Ed25519
/// API key, and starting balances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxAccountConfig {
    /// API key (sent as `X-MBX-APIKEY`).
    pub api_key: String,
    /// HMAC secret.
    pub api_secret: String,
    /// The public key (PEM, `-----BEGIN PUBLIC KEY-----`) of an Ed25519 API
    /// key of this account, as a user registers it with Binance. The first
    /// account gets a generated test key when it has none (see
    /// [`SandboxConfig::generate_ed25519_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ed25519_public_key: Option<String>,
    /// The id of that Ed25519 API key (what a client sends as its API key);
    /// default: [`SandboxAccountConfig::ed25519_key_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ed25519_api_key: Option<String>,
    /// Starting balances by asset.
    #[serde(default)]
    pub balances: BTreeMap<String, Decimal>,
    /// Whether the key may trade (`canTrade`).
    #[serde(default = "default_true")]
    pub can_trade: bool,
    /// The name (JWT `kid`) of this account's Coinbase API key; default
    /// `organizations/keel-sandbox/apiKeys/account-N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coinbase_key_name: Option<String>,
    /// The public key (PEM; P-256 or Ed25519) of that Coinbase API key. The
    /// first account gets a generated test key when it has none (see
    /// [`SandboxConfig::generate_coinbase_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coinbase_public_key: Option<String>,
}

fn default_true() -> bool {
    true
}

impl SandboxAccountConfig {
    /// The id of the account's Ed25519 API key: `ed25519_api_key`, else the
    /// HMAC key's id followed by `-ed25519` (stable across restarts).
    pub fn ed25519_key_id(&self) -> String {
        self.ed25519_api_key.clone().unwrap_or_else(|| format!("{}-ed25519", self.api_key))
    }
}

/// Faults injected from config (tests script more through [`FaultControl`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Drop every stream and WebSocket API connection every N ms (0 = never).
    pub drop_connections_every_ms: u64,
    /// Send `serverShutdown` on every connection every N ms (0 = never).
    pub server_shutdown_every_ms: u64,
    /// Extra latency on every REST response (ms).
    pub latency_ms: u64,
    /// Server clock skew (ms, may be negative).
    pub clock_skew_ms: i64,
    /// Faults for the first REST requests, in order (a start-up in bad
    /// weather), e.g. `[{ kind = "rate_limited", retry_after_s = 1 }, { kind = "server_error" }]`.
    pub first_requests: Vec<RestFault>,
    /// REST paths below `/api/v3/` (e.g. `myTrades`) that answer 503 `-1001`
    /// to every request: a venue that cannot serve part of a reconciliation.
    pub failing_paths: Vec<String>,
}

/// The sandbox's configuration (`[sandbox]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Listen address; loopback only by default (`127.0.0.1:0` = any free port).
    pub listen: String,
    /// Simulated minutes per minute of the server clock: 1 (the default) is
    /// real time; e.g. 240 closes a 1m bar every 250 ms.
    pub speed: f64,
    /// Quote updates (and public trades) per bar; must divide 60 000 (ms).
    pub ticks_per_bar: u32,
    /// Where the sandbox keeps its state across restarts (none: it starts
    /// fresh each time).
    pub state_dir: Option<std::path::PathBuf>,
    /// Give the first account a test Ed25519 API key when it has no
    /// `ed25519_public_key`: its private key is read from, or generated into,
    /// [`test_key::KEY_FILE`] in `key_dir`.
    pub generate_ed25519_key: bool,
    /// Where the generated test key's private PEM is kept (mode 0600), and
    /// found again at the next start. Default: `state_dir`; with neither, the
    /// key lives in memory only (and is new at each start). `keel sandbox`
    /// uses its working dir.
    pub key_dir: Option<std::path::PathBuf>,
    /// Give the first account a Coinbase test API key when it has no
    /// `coinbase_public_key` (kept in `key_dir` like the Ed25519 one). Off
    /// by default, so a Binance user's state dir gets no Coinbase key file;
    /// `keel sandbox --protocol coinbase` turns it on.
    pub generate_coinbase_key: bool,
    /// The kind of that key: `ec` (P-256, the default) or `ed25519`.
    pub coinbase_key_type: coinbase::test_key::KeyType,
    /// Coinbase private REST requests per second and key (30, as
    /// documented; 0: unlimited).
    pub coinbase_private_per_s: u32,
    /// Coinbase public REST requests per second (10, as documented; 0:
    /// unlimited).
    pub coinbase_public_per_s: u32,
    /// A Coinbase WebSocket connection with no subscribe this long after
    /// it opened is closed (5 s, as documented; 0: never).
    pub coinbase_ws_subscribe_within_ms: u64,
    /// A Coinbase WebSocket connection that sent nothing for this long is
    /// closed (Coinbase: 60–90 s; 90 s here; 0: never): subscribing to
    /// `heartbeats` keeps it open.
    pub coinbase_ws_idle_close_ms: u64,
    /// Serve HTTPS and WSS with a self-signed certificate (names
    /// `127.0.0.1` and `localhost`) written to `key_dir` as
    /// [`tls::CERT_FILE`], so clients that insist on TLS can trust it.
    pub tls: bool,
    /// Maker fee (basis points).
    pub maker_fee_bps: Decimal,
    /// Taker fee (basis points).
    pub taker_fee_bps: Decimal,
    /// The asset commissions are charged in: `received` (buys pay in the base
    /// asset, sells in the quote asset, as Binance does without BNB) or `quote`.
    pub commission_asset: CommissionAsset,
    /// Synthetic book levels beyond the touch.
    pub depth_levels: u32,
    /// Closed 1m bars generated before start (REST klines history).
    pub history_bars: u32,
    /// Accelerated time only (`speed` above 1): the market's clock starts this
    /// many days before the server clock, so every closed bar stays older
    /// than the server clock for `days × 1440 / (speed − 1)` minutes of wall
    /// time (36 h at speed 240 and the default 365 days).
    pub sim_start_days_ago: u32,
    /// Server ping interval on WebSocket connections (ms).
    pub ping_interval_ms: u64,
    /// `REQUEST_WEIGHT` per minute.
    pub weight_limit_1m: u64,
    /// `ORDERS` per 10 s per account.
    pub order_limit_10s: u64,
    /// `ORDERS` per day per account.
    pub order_limit_1d: u64,
    /// Requests answered `429` within a minute after which the IP is banned
    /// (`418` to every request, REST and WebSocket API, until the ban lifts);
    /// 0 never bans.
    pub ban_after_429s: u32,
    /// The first ban's length in seconds (Binance: from 2 minutes); each later
    /// ban doubles, up to 3 days.
    pub first_ban_s: u64,
    /// `MAX_NUM_ORDERS` of every symbol (open orders per symbol and account).
    pub max_num_orders: u32,
    /// First order id and trade id. 0 (the default) derives it from the wall
    /// clock (ms × 1000), so ids keep growing across restarts of a sandbox
    /// whose state is not kept and never collide with ids a client recorded.
    pub id_base: u64,
    /// Symbol statuses other than `TRADING` (e.g. `BTCUSDT = "HALT"`, `"CANCEL_ONLY"`).
    pub symbol_status: BTreeMap<String, String>,
    /// Listed symbols with their simulated price paths.
    pub symbols: Vec<SymbolConfig>,
    /// Extra USDT pairs listed after `symbols`, with varied prices, volumes
    /// and volatilities and drifting volumes ([`synthetic`]); 0: none.
    pub synthetic_symbols: u32,
    /// Accounts.
    pub accounts: Vec<SandboxAccountConfig>,
    /// Faults from config.
    pub faults: FaultConfig,
    /// Replay these Binance kline CSV files (by symbol) instead of the GBM path:
    /// each simulated minute replays the next row, wrapping around at the end.
    pub replay: BTreeMap<String, std::path::PathBuf>,
    /// The USDⓈ-M perpetuals beside the spot symbols (`[sandbox.usdm]`).
    pub usdm: usdm::UsdmConfig,
    /// Faults of the deterministic past and its kline archives
    /// (`[sandbox.archive]`: wrong checksums, maintenance gaps).
    pub archive: archive::ArchiveConfig,
}

impl SandboxConfig {
    /// The defaults at [`DEMO_SPEED`] instead of real time.
    pub fn demo() -> Self {
        Self { speed: DEMO_SPEED, ..Self::default() }
    }

    /// Checks values that parse but make no sense, naming the `sandbox.*` key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.symbols.is_empty() {
            return Err(ConfigError::new("sandbox.symbols", "the sandbox needs at least one symbol"));
        }
        if self.accounts.is_empty() {
            return Err(ConfigError::new("sandbox.accounts", "the sandbox needs at least one account"));
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, acc) in self.accounts.iter().enumerate() {
            if let Some(pem) = &acc.ed25519_public_key {
                auth::ed25519_public_key(pem)
                    .map_err(|e| ConfigError::new(format!("sandbox.accounts[{i}].ed25519_public_key"), e))?;
            }
            let ed25519 = acc.ed25519_public_key.as_ref().map(|_| acc.ed25519_key_id());
            for id in std::iter::once(acc.api_key.clone()).chain(ed25519) {
                if !ids.insert(id.clone()) {
                    return Err(ConfigError::new(
                        format!("sandbox.accounts[{i}]"),
                        format!("the API key id `{id}` is used twice"),
                    ));
                }
            }
        }
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= MAX_SPEED) {
            return Err(ConfigError::new("sandbox.speed", format!("must be above 0 and at most {MAX_SPEED}")));
        }
        self.usdm.validate()?;
        if self.synthetic_symbols > synthetic::MAX_SYNTHETIC {
            return Err(ConfigError::new(
                "sandbox.synthetic_symbols",
                format!("at most {} synthetic pairs", synthetic::MAX_SYNTHETIC),
            ));
        }
        if self.ticks_per_bar == 0 || 60_000 % self.ticks_per_bar != 0 {
            return Err(ConfigError::new(
                "sandbox.ticks_per_bar",
                "must divide 60000 (ticks fall on whole milliseconds of the minute), e.g. 10, 20 or 60",
            ));
        }
        Ok(())
    }
}

/// The speed of the demo setting (the embedded sandbox's default): one 1m
/// bar every 250 ms, so trading is visible within seconds.
pub const DEMO_SPEED: f64 = 240.0;

/// How often queued Coinbase cancels are carried out (ms).
pub const CANCEL_DELAY_MS: u64 = 50;

/// The fastest simulated clock (a 1m bar every 0.6 ms of wall time).
pub const MAX_SPEED: f64 = 100_000.0;

/// The API key of the default sandbox account.
pub const DEFAULT_API_KEY: &str = "keel-sandbox-api-key";
/// The secret of the default sandbox account.
pub const DEFAULT_API_SECRET: &str = "keel-sandbox-api-secret";

fn d(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

/// The default listed symbols: BTCUSDT and ETHUSDT with Binance-like filters.
pub fn default_symbols() -> Vec<SymbolConfig> {
    vec![
        SymbolConfig {
            symbol: "BTCUSDT".into(),
            base: "BTC".into(),
            quote: "USDT".into(),
            tick_size: d("0.01"),
            step_size: d("0.00001"),
            min_qty: Some(d("0.00001")),
            max_qty: d("9000"),
            min_notional: d("5"),
            max_notional: d("9000000"),
            start_price: d("60000"),
            drift: 0.0,
            volatility: 0.8,
            seed: 7,
            spread_bps: d("2"),
            touch_qty: d("0.05"),
        },
        SymbolConfig {
            symbol: "ETHUSDT".into(),
            base: "ETH".into(),
            quote: "USDT".into(),
            tick_size: d("0.01"),
            step_size: d("0.0001"),
            min_qty: Some(d("0.0001")),
            max_qty: d("9000"),
            min_notional: d("5"),
            max_notional: d("9000000"),
            start_price: d("3000"),
            drift: 0.0,
            volatility: 0.9,
            seed: 11,
            spread_bps: d("2"),
            touch_qty: d("1"),
        },
    ]
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let balances =
            [("USDT", "100000"), ("BTC", "1"), ("ETH", "10")].into_iter().map(|(a, v)| (a.to_string(), d(v))).collect();
        Self {
            listen: "127.0.0.1:0".into(),
            speed: 1.0,
            ticks_per_bar: 10,
            state_dir: None,
            generate_ed25519_key: true,
            key_dir: None,
            generate_coinbase_key: false,
            coinbase_key_type: coinbase::test_key::KeyType::Ec,
            coinbase_private_per_s: 30,
            coinbase_public_per_s: 10,
            coinbase_ws_subscribe_within_ms: 5_000,
            coinbase_ws_idle_close_ms: 90_000,
            tls: false,
            maker_fee_bps: d("10"),
            taker_fee_bps: d("10"),
            commission_asset: CommissionAsset::Received,
            depth_levels: 5,
            history_bars: 500,
            sim_start_days_ago: 365,
            ping_interval_ms: 20_000,
            weight_limit_1m: 6000,
            order_limit_10s: 50,
            order_limit_1d: 160_000,
            ban_after_429s: 10,
            first_ban_s: 120,
            max_num_orders: 200,
            id_base: 0,
            symbol_status: BTreeMap::new(),
            symbols: default_symbols(),
            synthetic_symbols: 0,
            accounts: vec![SandboxAccountConfig {
                api_key: DEFAULT_API_KEY.into(),
                api_secret: DEFAULT_API_SECRET.into(),
                ed25519_public_key: None,
                ed25519_api_key: None,
                balances,
                can_trade: true,
                coinbase_key_name: None,
                coinbase_public_key: None,
            }],
            faults: FaultConfig::default(),
            replay: BTreeMap::new(),
            usdm: usdm::UsdmConfig::default(),
            archive: archive::ArchiveConfig::default(),
        }
    }
}

/// A fault for the next REST request(s), answered before anything executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RestFault {
    /// HTTP 429 `-1003` with `Retry-After`.
    RateLimited {
        /// Seconds.
        retry_after_s: u64,
    },
    /// HTTP 418 `-1003` (IP banned) with `Retry-After`; the ban holds that long.
    Banned {
        /// Seconds.
        retry_after_s: u64,
    },
    /// HTTP 503 without executing anything.
    ServerError,
    /// Hold the request `hold_ms` before handling it (a client with a
    /// shorter timeout gives up first).
    Stall {
        /// How long.
        hold_ms: u64,
    },
}

/// A fault for the next order placement (`POST /api/v3/order` or the
/// WebSocket API's `order.place`): the answer is an error or is lost, before
/// or after the order executes. On the WebSocket API the error is a response
/// with the same status and code; a held answer holds only that response,
/// and a connection dropped while it is held loses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderFault {
    /// HTTP 503 `-1001` without executing (the order never reached the engine).
    ErrorBeforeExecute,
    /// HTTP 503 with `-1007` after executing (execution status unknown).
    ErrorAfterExecute,
    /// Execute, then hold the answer for `hold_ms` (the client times out).
    TimeoutAfterExecute {
        /// How long the answer is held.
        hold_ms: u64,
    },
    /// Hold the request for `hold_ms` before it reaches the matching engine,
    /// then execute and answer: what a congested venue does. A cancel sent
    /// meanwhile finds no such order (`-2011`), as on Binance.
    DelayBeforeExecute {
        /// How long the request waits before it executes.
        hold_ms: u64,
    },
}

impl OrderFault {
    /// Whether it acts before the order (or cancel) executes.
    fn acts_before(&self) -> bool {
        matches!(self, Self::ErrorBeforeExecute | Self::DelayBeforeExecute { .. })
    }
}

/// A command to every WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnCmd {
    /// Close the TCP connection abruptly.
    Drop,
    /// Send `serverShutdown`, then close.
    ServerShutdown,
}

#[derive(Debug, Default)]
struct FaultState {
    rest: VecDeque<RestFault>,
    orders: VecDeque<OrderFault>,
    cancels: VecDeque<OrderFault>,
    banned_until_ms: i64,
    /// Execution reports still to be sent garbled.
    garbled_reports: usize,
    /// Kline messages still to be sent garbled.
    garbled_klines: usize,
    /// User-stream balance reports (`outboundAccountPosition`) are not sent.
    balance_reports_withheld: bool,
    /// REST paths (below `/api/v3/`) that answer 503 until cleared.
    failing_paths: Vec<String>,
    /// Coinbase `l2_data` messages still to be sent after a skipped
    /// `sequence_num`.
    coinbase_l2_gaps: usize,
}

/// How many REST requests [`FaultControl::rest_requests`] remembers.
const REQUEST_LOG_MAX: usize = 10_000;

/// Scripts faults at run time, and shows tests which REST requests arrived.
/// Cheap to clone.
#[derive(Clone)]
pub struct FaultControl {
    state: Arc<Mutex<FaultState>>,
    latency_ms: Arc<AtomicU64>,
    skew_ms: Arc<AtomicI64>,
    conn_tx: broadcast::Sender<ConnCmd>,
    dropped: Arc<AtomicU64>,
    requests: Arc<Mutex<VecDeque<String>>>,
    signed_requests: Arc<AtomicU64>,
    ws_requests: Arc<Mutex<VecDeque<String>>>,
    ws_api_refused: Arc<AtomicBool>,
    market_refused: Arc<AtomicBool>,
    weight_total: Arc<AtomicU64>,
    futures_streams: Arc<Mutex<BTreeMap<u64, Vec<String>>>>,
    futures_stream_ids: Arc<AtomicU64>,
    market_conns: Arc<MarketConns>,
}

/// Market stream connections: open now, and opened since the start.
#[derive(Default)]
struct MarketConns {
    open: AtomicU64,
    opened: AtomicU64,
}

/// Counts one market stream connection as open until it is dropped.
pub(crate) struct MarketConnGuard(Arc<MarketConns>);

impl Drop for MarketConnGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FaultControl {
    fn new(cfg: &FaultConfig) -> Self {
        let (conn_tx, _) = broadcast::channel(64);
        Self {
            state: Arc::new(Mutex::new(FaultState {
                rest: cfg.first_requests.iter().copied().collect(),
                failing_paths: cfg.failing_paths.clone(),
                ..FaultState::default()
            })),
            latency_ms: Arc::new(AtomicU64::new(cfg.latency_ms)),
            skew_ms: Arc::new(AtomicI64::new(cfg.clock_skew_ms)),
            conn_tx,
            dropped: Arc::new(AtomicU64::new(0)),
            requests: Arc::new(Mutex::new(VecDeque::new())),
            signed_requests: Arc::new(AtomicU64::new(0)),
            ws_requests: Arc::new(Mutex::new(VecDeque::new())),
            ws_api_refused: Arc::new(AtomicBool::new(false)),
            market_refused: Arc::new(AtomicBool::new(false)),
            weight_total: Arc::new(AtomicU64::new(0)),
            futures_streams: Arc::new(Mutex::new(BTreeMap::new())),
            futures_stream_ids: Arc::new(AtomicU64::new(0)),
            market_conns: Arc::new(MarketConns::default()),
        }
    }

    /// The open futures stream connections (`/market`, `/public`), each as
    /// the streams it carries now, in the order they were opened: how a
    /// client's subscriptions can be counted (a replaced subscription's
    /// connection is gone once it closed).
    pub fn futures_stream_connections(&self) -> Vec<Vec<String>> {
        self.futures_streams.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Registers an open futures stream connection; it counts until the
    /// returned guard drops.
    pub(crate) fn open_futures_stream(&self, streams: &[String]) -> FuturesStreamGuard {
        let id = self.futures_stream_ids.fetch_add(1, Ordering::Relaxed);
        self.futures_streams.lock().unwrap_or_else(|p| p.into_inner()).insert(id, streams.to_vec());
        FuturesStreamGuard { id, streams: self.futures_streams.clone() }
    }

    /// Market stream connections (`/ws…`, `/stream…`) open now: a client
    /// whose connections multiply as its symbols change shows here.
    pub fn market_connections(&self) -> u64 {
        self.market_conns.open.load(Ordering::Relaxed)
    }

    /// Market stream connections opened since the sandbox started.
    pub fn market_connections_opened(&self) -> u64 {
        self.market_conns.opened.load(Ordering::Relaxed)
    }

    /// Counts a market stream connection open for the guard's life.
    pub(crate) fn market_connection(&self) -> MarketConnGuard {
        self.market_conns.open.fetch_add(1, Ordering::Relaxed);
        self.market_conns.opened.fetch_add(1, Ordering::Relaxed);
        MarketConnGuard(self.market_conns.clone())
    }

    /// REST request weight charged since the sandbox started, over every
    /// minute window (what a client's start-up costs, whatever the clock).
    pub fn weight_total(&self) -> u64 {
        self.weight_total.load(Ordering::Relaxed)
    }

    pub(crate) fn charge_weight(&self, weight: u64) {
        self.weight_total.fetch_add(weight, Ordering::Relaxed);
    }

    /// The REST requests received so far (the latest [`REQUEST_LOG_MAX`]), as
    /// `METHOD /api/v3/path`, oldest first.
    pub fn rest_requests(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// How many REST requests carried a key or a signature (an
    /// `X-MBX-APIKEY` header or a `signature` parameter), counted whether or
    /// not they were accepted: a public-data client must send none.
    pub fn signed_rest_requests(&self) -> u64 {
        self.signed_requests.load(Ordering::Relaxed)
    }

    pub(crate) fn note_signed_request(&self) {
        self.signed_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_request(&self, method: &str, path: &str) {
        let mut log = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= REQUEST_LOG_MAX {
            log.pop_front();
        }
        log.push_back(format!("{method} /api/v3/{path}"));
    }

    /// The WebSocket API requests received so far (the latest
    /// [`REQUEST_LOG_MAX`]), by method, oldest first.
    pub fn ws_api_requests(&self) -> Vec<String> {
        self.ws_requests.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    pub(crate) fn note_ws_request(&self, method: &str) {
        let mut log = self.ws_requests.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= REQUEST_LOG_MAX {
            log.pop_front();
        }
        log.push_back(method.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers the next `count` REST requests with `fault`.
    pub fn fail_next_requests(&self, fault: RestFault, count: usize) {
        let mut st = self.lock();
        for _ in 0..count {
            st.rest.push_back(fault);
        }
    }

    /// Applies `fault` to the next order placement.
    pub fn fail_next_order(&self, fault: OrderFault) {
        self.lock().orders.push_back(fault);
    }

    /// Applies `fault` to the next cancel of one order (`DELETE
    /// /api/v3/order`, WebSocket API `order.cancel`, Coinbase `POST
    /// /orders/batch_cancel`): an error or a held answer before or after
    /// the order is canceled (Coinbase: its cancel queued).
    pub fn fail_next_cancel(&self, fault: OrderFault) {
        self.lock().cancels.push_back(fault);
    }

    fn next_cancel_fault(&self) -> Option<OrderFault> {
        self.lock().cancels.pop_front()
    }

    /// Sends the next `count` user-stream execution reports with a side no
    /// Binance client knows (`"S": "SIDEWAYS"`), as a corrupted or changed
    /// venue message would arrive.
    pub fn garble_next_execution_reports(&self, count: usize) {
        self.lock().garbled_reports += count;
    }

    /// While `withhold` is true, the user stream sends no balance report
    /// (`outboundAccountPosition`): a venue whose report lags its fills, as
    /// Binance's may. Execution reports still arrive; REST `account` still
    /// answers with the current balances. Reports withheld are not sent later
    /// (each report carries absolute balances, so the next one catches up).
    pub fn withhold_balance_reports(&self, withhold: bool) {
        self.lock().balance_reports_withheld = withhold;
    }

    /// True while balance reports are withheld.
    pub(crate) fn balance_reports_withheld(&self) -> bool {
        self.lock().balance_reports_withheld
    }

    /// Sends the next `count` kline messages (to every subscriber) with a
    /// kline body no Binance client can read.
    pub fn garble_next_klines(&self, count: usize) {
        self.lock().garbled_klines += count;
    }

    /// True if this kline message is to be garbled (counts it).
    pub(crate) fn take_garbled_kline(&self) -> bool {
        take_one(&mut self.lock().garbled_klines)
    }

    /// Skips one `sequence_num` before each of the next `count` Coinbase
    /// `l2_data` messages (on whichever connection sends one first): a
    /// message lost in transport, which a client must answer by
    /// resubscribing for a fresh snapshot.
    pub fn skip_coinbase_l2_sequence(&self, count: usize) {
        self.lock().coinbase_l2_gaps += count;
    }

    /// True if this `l2_data` message is to follow a skipped sequence
    /// number (counts it).
    pub(crate) fn take_coinbase_l2_gap(&self) -> bool {
        take_one(&mut self.lock().coinbase_l2_gaps)
    }

    /// True if this execution report is to be garbled (counts it).
    pub(crate) fn take_garbled_report(&self) -> bool {
        take_one(&mut self.lock().garbled_reports)
    }

    /// Makes every request to these REST paths (below `/api/v3/`) answer
    /// 503 `-1001` until called again with other paths (or none).
    pub fn fail_paths(&self, paths: &[&str]) {
        self.lock().failing_paths = paths.iter().map(|p| p.to_string()).collect();
    }

    pub(crate) fn path_fails(&self, path: &str) -> bool {
        self.lock().failing_paths.iter().any(|p| p == path)
    }

    /// While true, new WebSocket API connections, and new Coinbase WebSocket
    /// connections, are refused (HTTP 503 to the upgrade): with
    /// [`FaultControl::drop_connections`], the WebSocket API is down while
    /// REST (and Binance's market streams) still answer.
    pub fn refuse_ws_api(&self, refuse: bool) {
        self.ws_api_refused.store(refuse, Ordering::SeqCst);
    }

    pub(crate) fn ws_api_refused(&self) -> bool {
        self.ws_api_refused.load(Ordering::SeqCst)
    }

    /// While true, new Binance market-stream connections are refused (HTTP
    /// 503 to the upgrade): with [`FaultControl::drop_connections`], the
    /// market streams stay down for as long as a test needs (bars closing
    /// meanwhile must come back over REST), whatever the client's backoff.
    pub fn refuse_market_streams(&self, refuse: bool) {
        self.market_refused.store(refuse, Ordering::SeqCst);
    }

    pub(crate) fn market_streams_refused(&self) -> bool {
        self.market_refused.load(Ordering::SeqCst)
    }

    /// Adds latency to every REST response.
    pub fn set_latency_ms(&self, ms: u64) {
        self.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// Skews the server clock (ms; positive = server ahead).
    pub fn set_clock_skew_ms(&self, ms: i64) {
        self.skew_ms.store(ms, Ordering::Relaxed);
    }

    /// Drops every open stream and WebSocket API connection now.
    pub fn drop_connections(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let _ = self.conn_tx.send(ConnCmd::Drop);
    }

    /// Sends `serverShutdown` on every connection, then closes them.
    pub fn server_shutdown(&self) {
        let _ = self.conn_tx.send(ConnCmd::ServerShutdown);
    }

    /// The server's clock now (wall clock plus skew).
    pub fn server_now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.skew_ms.load(Ordering::Relaxed)
    }

    fn latency(&self) -> u64 {
        self.latency_ms.load(Ordering::Relaxed)
    }

    fn subscribe(&self) -> broadcast::Receiver<ConnCmd> {
        self.conn_tx.subscribe()
    }

    fn next_rest_fault(&self, now_ms: i64) -> Option<RestFault> {
        let mut st = self.lock();
        if st.banned_until_ms > now_ms {
            let left = (st.banned_until_ms - now_ms) as u64;
            return Some(RestFault::Banned { retry_after_s: left.div_ceil(1000) });
        }
        let f = st.rest.pop_front();
        if let Some(RestFault::Banned { retry_after_s }) = f {
            st.banned_until_ms = now_ms + retry_after_s as i64 * 1000;
        }
        f
    }

    /// Takes the next order fault if it acts before execution (an error or
    /// a held request); one that acts after belongs to this order's answer.
    fn take_before_execute_fault(&self) -> Option<OrderFault> {
        self.take_order_fault(OrderFault::acts_before)
    }

    /// Takes the next order fault if it acts after execution (an error or a
    /// held answer); one that acts before may belong to the next order.
    fn take_after_execute_fault(&self) -> Option<OrderFault> {
        self.take_order_fault(|f| !f.acts_before())
    }

    fn take_order_fault(&self, wanted: impl Fn(&OrderFault) -> bool) -> Option<OrderFault> {
        let mut st = self.lock();
        let f = st.orders.front().copied().filter(wanted)?;
        st.orders.pop_front();
        Some(f)
    }
}

/// An open futures stream connection, as [`FaultControl::futures_stream_connections`]
/// lists it; dropping it (the connection ended) removes it.
pub(crate) struct FuturesStreamGuard {
    id: u64,
    streams: Arc<Mutex<BTreeMap<u64, Vec<String>>>>,
}

impl FuturesStreamGuard {
    /// The connection's streams changed (`SUBSCRIBE`, `UNSUBSCRIBE`).
    pub(crate) fn set(&self, streams: &[String]) {
        self.streams.lock().unwrap_or_else(|p| p.into_inner()).insert(self.id, streams.to_vec());
    }
}

impl Drop for FuturesStreamGuard {
    fn drop(&mut self) {
        self.streams.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

/// Steers the simulated market (tests and demos).
#[derive(Clone)]
pub struct MarketControl {
    ex: Arc<Exchange>,
    paused: Arc<AtomicBool>,
    faults: FaultControl,
}

impl MarketControl {
    /// Stops the automatic ticking (prices freeze, no bars close).
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Resumes automatic ticking from where the market stopped.
    pub fn resume(&self) {
        self.ex.rebase(self.faults.server_now_ms());
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Runs `n` ticks now (works while paused); the clock continues from there.
    pub fn step(&self, n: u32) {
        self.ex.step(n, self.faults.server_now_ms());
    }

    /// Moves a symbol's price to `price` and freezes its volatility at 0 until
    /// [`MarketControl::set_dynamics`] changes it. False for an unknown symbol.
    pub fn set_price(&self, symbol: &str, price: Decimal) -> bool {
        self.ex.lock().set_price(symbol, price)
    }

    /// Sets a symbol's annual drift and volatility.
    pub fn set_dynamics(&self, symbol: &str, drift: f64, volatility: f64) -> bool {
        self.ex.lock().set_dynamics(symbol, drift, volatility)
    }

    /// Multiplies a simulated symbol's traded volume from now on, so its 24h
    /// quote volume (and its rank in a universe) moves within seconds; 1
    /// undoes it. False for an unknown symbol.
    pub fn set_volume_scale(&self, symbol: &str, scale: f64) -> bool {
        self.ex.lock().set_volume_scale(symbol, scale)
    }

    /// Lists a new spot pair while the sandbox runs (status `TRADING`, spot
    /// permission), its traded volume multiplied by `volume_scale`; it is in
    /// `exchangeInfo`, the tickers and the streams from the next tick. False
    /// when the symbol is listed already.
    pub fn list_symbol(&self, symbol: &SymbolConfig, volume_scale: f64) -> bool {
        self.ex.lock().list_symbol(symbol, volume_scale)
    }

    /// Closed 1m bars of a symbol (oldest first).
    pub fn closed_bars(&self, symbol: &str) -> Vec<Bar> {
        self.ex.lock().bars(symbol).map(|(h, _)| h).unwrap_or_default()
    }

    /// All orders of the account with `api_key` in `symbol`.
    pub fn orders(&self, api_key: &str, symbol: &str) -> Vec<SimOrder> {
        let Some(acc) = self.ex.keys.get(api_key) else { return Vec::new() };
        self.ex.lock().core().all_orders(acc.id, symbol)
    }

    /// Balances of the account with `api_key`.
    pub fn balances(&self, api_key: &str) -> Vec<Balance> {
        let Some(acc) = self.ex.keys.get(api_key) else { return Vec::new() };
        self.ex.lock().balances(acc.id)
    }

    /// Fills of the account with `api_key` in `symbol`.
    pub fn fills(&self, api_key: &str, symbol: &str) -> Vec<keel_core::fill::Fill> {
        let Some(acc) = self.ex.keys.get(api_key) else { return Vec::new() };
        self.ex.lock().core().fills(acc.id, symbol, None)
    }
}

/// Errors starting the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The listen address is invalid or busy.
    #[error("sandbox cannot listen on {addr}: {reason}")]
    Listen {
        /// Address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The configuration is unusable.
    #[error("sandbox config: {0}")]
    Config(String),
    /// The kept state cannot be read or written.
    #[error("sandbox state: {0}")]
    State(String),
}

/// A running sandbox. Dropping it stops the server.
pub struct SandboxHandle {
    /// Bound address.
    pub addr: SocketAddr,
    /// REST base URL (`http://127.0.0.1:PORT`, `https://` with TLS;
    /// endpoints are under `/api/v3`).
    pub rest_url: String,
    /// Market stream base URL (`ws://127.0.0.1:PORT`; `/ws/<stream>`, `/stream?streams=`).
    pub ws_stream_url: String,
    /// WebSocket API URL (`ws://127.0.0.1:PORT/ws-api/v3`).
    pub ws_api_url: String,
    /// API key of the first account.
    pub api_key: String,
    /// Secret of the first account.
    pub api_secret: String,
    /// The Ed25519 API key of the first account, when it has one.
    pub ed25519_api_key: Option<String>,
    /// The generated test key's private key (PKCS#8 PEM), when the sandbox
    /// made or read one: test data for a client on this machine, never
    /// printed (the file in [`SandboxHandle::ed25519_private_key_path`] is
    /// what an operator is shown).
    pub ed25519_private_key_pem: Option<String>,
    /// Where that private key is kept (none: in memory only).
    pub ed25519_private_key_path: Option<std::path::PathBuf>,
    /// The Coinbase protocol's REST base URL (`http://127.0.0.1:PORT`;
    /// endpoints are under `/api/v3/brokerage`).
    pub coinbase_rest_url: String,
    /// The Coinbase market-data WebSocket URL (`ws://127.0.0.1:PORT/coinbase/ws`).
    pub coinbase_ws_market_url: String,
    /// The Coinbase user-data WebSocket URL (`ws://127.0.0.1:PORT/coinbase/ws-user`).
    pub coinbase_ws_user_url: String,
    /// The self-signed certificate (PEM) when the sandbox serves TLS; a
    /// client trusts it as its CA.
    pub ca_cert_pem: Option<String>,
    /// Where that certificate was written (none: no `key_dir`).
    pub ca_cert_path: Option<std::path::PathBuf>,
    /// The Coinbase API key name (JWT `kid`) of the first account, when it
    /// has a Coinbase key.
    pub coinbase_key_name: Option<String>,
    /// The generated Coinbase test key's private PEM (SEC1 EC or PKCS#8
    /// Ed25519): test data for a client on this machine, never printed.
    pub coinbase_private_key_pem: Option<String>,
    /// Where that private key is kept (none: in memory only).
    pub coinbase_private_key_path: Option<std::path::PathBuf>,
    /// An Ed25519 test key's raw base64 form (seed and public key, as the
    /// CDP portal issues it; what ccxt takes), kept beside the PEM.
    pub coinbase_private_key_base64_path: Option<std::path::PathBuf>,
    /// Fault injection.
    pub faults: FaultControl,
    /// Market steering.
    pub market: MarketControl,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SandboxHandle {
    /// A few lines for an operator: the URLs and the test keys (the secret of
    /// a sandbox account is test data, not a credential; the Ed25519 private
    /// key is shown by its file, not its content).
    pub fn describe(&self) -> String {
        let mut out = format!(
            "Keel sandbox exchange (Binance spot protocol)\n  REST:        {}/api/v3\n  streams:     {}/ws/<stream>, {}/stream?streams=\n  WS API:      {}\n  API key:     {}\n  API secret:  {}",
            self.rest_url, self.ws_stream_url, self.ws_stream_url, self.ws_api_url, self.api_key, self.api_secret
        );
        if let Some(key) = &self.ed25519_api_key {
            out.push_str(&format!("\n  Ed25519 API key:     {key}"));
            match &self.ed25519_private_key_path {
                Some(path) => out.push_str(&format!("\n  Ed25519 private key: {}", path.display())),
                None if self.ed25519_private_key_pem.is_some() => {
                    out.push_str("\n  Ed25519 private key: in memory only (set [sandbox] key_dir to keep it)")
                }
                None => {}
            }
        }
        if let Some(name) = &self.coinbase_key_name {
            out.push_str(&format!(
                "\nCoinbase Advanced Trade protocol\n  REST:        {}/api/v3/brokerage\n  WS market:   {}\n  WS user:     {}\n  key name:    {name}",
                self.coinbase_rest_url, self.coinbase_ws_market_url, self.coinbase_ws_user_url
            ));
            match &self.coinbase_private_key_path {
                Some(path) => out.push_str(&format!("\n  private key: {}", path.display())),
                None if self.coinbase_private_key_pem.is_some() => {
                    out.push_str("\n  private key: in memory only (set [sandbox] key_dir to keep it)")
                }
                None => {}
            }
        }
        if let Some(path) = &self.ca_cert_path {
            out.push_str(&format!("\n  TLS certificate (trust it as the CA): {}", path.display()));
        }
        out
    }

    /// Stops the server and its tasks, waits for them, and saves the state
    /// (when it is kept).
    pub async fn shutdown(mut self) {
        let _ = self.stop_tx.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.market.ex.save(self.faults.server_now_ms());
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        let _ = self.stop_tx.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Shared server state.
pub(crate) struct App {
    pub ex: Arc<Exchange>,
    pub faults: FaultControl,
    pub cfg: SandboxConfig,
    pub limits: limits::Limits,
    /// Set while tests hold the market still ([`MarketControl::pause`]).
    pub paused: Arc<AtomicBool>,
    /// The Coinbase protocol's API keys.
    pub coinbase: coinbase::CoinbaseState,
    /// The USDⓈ-M perpetuals and their limits.
    pub usdm: usdm::Usdm,
}

impl App {
    /// Runs the market ticks due by server time `now_ms` before a request is
    /// served, so an answer never shows the market behind the server clock
    /// (the ticking task may wake a little late) — unless a test holds it.
    pub fn catch_up(&self, now_ms: i64) {
        if !self.paused.load(Ordering::SeqCst) {
            self.ex.tick(now_ms);
        }
    }
}

/// The sandbox exchange.
pub struct Sandbox;

impl Sandbox {
    /// Starts the sandbox on its configured address and returns its handle.
    /// Must run inside a tokio runtime.
    pub async fn start(mut cfg: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        let test_key = test_key::prepare(&mut cfg)?;
        let coinbase_key = coinbase::test_key::prepare(&mut cfg)?;
        let coinbase_keys = coinbase::CoinbaseState::from_config(&cfg)?;
        synthetic::extend(&mut cfg.symbols, cfg.synthetic_symbols);
        if cfg.symbols.is_empty() {
            return Err(SandboxError::Config("at least one symbol is needed".into()));
        }
        if cfg.accounts.is_empty() {
            return Err(SandboxError::Config("at least one account is needed".into()));
        }
        cfg.validate().map_err(|e| SandboxError::Config(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|e| SandboxError::Listen { addr: cfg.listen.clone(), reason: e.to_string() })?;
        let addr = listener
            .local_addr()
            .map_err(|e| SandboxError::Listen { addr: cfg.listen.clone(), reason: e.to_string() })?;
        let mut replays = std::collections::HashMap::new();
        for (symbol, path) in &cfg.replay {
            if !cfg.symbols.iter().any(|s| &s.symbol == symbol) {
                return Err(SandboxError::Config(format!("replay.{symbol}: not a listed symbol")));
            }
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| SandboxError::Config(format!("replay.{symbol}: cannot read {}: {e}", path.display())))?;
            let rows = exchange::parse_kline_csv(&text)
                .map_err(|e| SandboxError::Config(format!("replay.{symbol}: {}: {e}", path.display())))?;
            replays.insert(symbol.clone(), rows);
        }
        let faults = FaultControl::new(&cfg.faults);
        let ex = Arc::new(Exchange::new(&cfg, faults.server_now_ms(), replays).map_err(SandboxError::State)?);
        let paused = Arc::new(AtomicBool::new(false));
        let app = Arc::new(App {
            ex: ex.clone(),
            faults: faults.clone(),
            cfg: cfg.clone(),
            limits: limits::Limits::new(limits::LimitConfig {
                weight_1m: cfg.weight_limit_1m,
                orders_10s: cfg.order_limit_10s,
                orders_1d: cfg.order_limit_1d,
                ban_after_429s: cfg.ban_after_429s,
                first_ban_ms: i64::try_from(cfg.first_ban_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            }),
            paused: paused.clone(),
            coinbase: coinbase_keys,
            usdm: usdm::Usdm::new(
                cfg.usdm.clone(),
                cfg.ban_after_429s,
                i64::try_from(cfg.first_ban_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            ),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let router = axum::Router::new()
            .route("/ws", axum::routing::get(ws::raw_root))
            .route("/ws/{stream}", axum::routing::get(ws::raw_stream))
            .route("/stream", axum::routing::get(ws::combined))
            .route("/ws-api/v3", axum::routing::get(ws::ws_api))
            .route("/api/v3/brokerage/{*rest}", axum::routing::any(coinbase::rest::handle))
            .route("/v2/{*rest}", axum::routing::any(coinbase::v2::handle))
            .route(coinbase::ws::MARKET_PATH, axum::routing::get(coinbase::ws::market))
            .route(coinbase::ws::USER_PATH, axum::routing::get(coinbase::ws::user))
            .merge(usdm::routes())
            .merge(archive::routes())
            .fallback(rest::handle)
            .with_state(app.clone());
        let mut srv_stop = stop_rx.clone();
        let shutdown = async move {
            let _ = srv_stop.wait_for(|s| *s).await;
        };
        let cert = if cfg.tls {
            let dir = cfg.key_dir.clone().or_else(|| cfg.state_dir.clone());
            Some(tls::Certificate::generate(dir.as_deref())?)
        } else {
            None
        };
        tasks.push(match &cert {
            Some(cert) => {
                let listener = cert
                    .listener(listener)
                    .map_err(|e| SandboxError::Listen { addr: cfg.listen.clone(), reason: e.to_string() })?;
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                        tracing::warn!(error = %e, "sandbox server stopped");
                    }
                })
            }
            None => tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                    tracing::warn!(error = %e, "sandbox server stopped");
                }
            }),
        });
        let (http, ws) = if cert.is_some() { ("https", "wss") } else { ("http", "ws") };

        // The market clock: each tick runs when the server clock reaches it.
        let (tex, tpaused, tfaults) = (ex.clone(), paused.clone(), faults.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let wait = tex.next_tick_in(tfaults.server_now_ms());
                tokio::time::sleep(Duration::from_millis(wait)).await;
                if !tpaused.load(Ordering::SeqCst) {
                    tex.tick(tfaults.server_now_ms());
                }
            }
        }));

        // Coinbase cancels are queued (`CANCEL_QUEUED`) and done shortly
        // after; while a test holds the market, only its steps do them.
        let (cex, cpaused, cfaults) = (ex.clone(), paused.clone(), faults.clone());
        tasks.push(tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(CANCEL_DELAY_MS));
            loop {
                iv.tick().await;
                if !cpaused.load(Ordering::SeqCst) {
                    cex.apply_queued_cancels(cfaults.server_now_ms());
                }
            }
        }));

        // Depth, ticker and average price streams.
        tasks.push(tokio::spawn(depth::publish_loop(ex.clone(), faults.clone())));

        // Periodic faults from config.
        for (every, cmd) in [
            (cfg.faults.drop_connections_every_ms, ConnCmd::Drop),
            (cfg.faults.server_shutdown_every_ms, ConnCmd::ServerShutdown),
        ] {
            if every > 0 {
                let f = faults.clone();
                tasks.push(tokio::spawn(async move {
                    let mut iv = tokio::time::interval(Duration::from_millis(every));
                    iv.tick().await;
                    loop {
                        iv.tick().await;
                        let _ = f.conn_tx.send(cmd);
                    }
                }));
            }
        }

        let first = &cfg.accounts[0];
        Ok(SandboxHandle {
            addr,
            rest_url: format!("{http}://{addr}"),
            ws_stream_url: format!("{ws}://{addr}"),
            ws_api_url: format!("{ws}://{addr}/ws-api/v3"),
            api_key: first.api_key.clone(),
            api_secret: first.api_secret.clone(),
            ed25519_api_key: first.ed25519_public_key.as_ref().map(|_| first.ed25519_key_id()),
            ed25519_private_key_pem: test_key.as_ref().map(|k| k.private_key_pem.clone()),
            ed25519_private_key_path: test_key.and_then(|k| k.path),
            coinbase_rest_url: format!("{http}://{addr}"),
            coinbase_ws_market_url: format!("{ws}://{addr}{}", coinbase::ws::MARKET_PATH),
            coinbase_ws_user_url: format!("{ws}://{addr}{}", coinbase::ws::USER_PATH),
            ca_cert_pem: cert.as_ref().map(|c| c.cert_pem.clone()),
            ca_cert_path: cert.and_then(|c| c.path),
            coinbase_key_name: first
                .coinbase_public_key
                .as_ref()
                .map(|_| first.coinbase_key_name.clone().unwrap_or_else(|| coinbase::default_key_name(0))),
            coinbase_private_key_pem: coinbase_key.as_ref().map(|k| k.private_key_pem.clone()),
            coinbase_private_key_base64_path: coinbase_key.as_ref().and_then(|k| k.base64_path.clone()),
            coinbase_private_key_path: coinbase_key.and_then(|k| k.path),
            market: MarketControl { ex, paused, faults: faults.clone() },
            faults,
            stop_tx,
            tasks,
        })
    }
}

/// Takes one from a count of faults still to inject; false when none is left.
fn take_one(left: &mut usize) -> bool {
    let some = *left > 0;
    *left = left.saturating_sub(1);
    some
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_from_toml_with_defaults() {
        let cfg: SandboxConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:9999"
            speed = 240
            [faults]
            drop_connections_every_ms = 5000
            [[accounts]]
            api_key = "k"
            api_secret = "s"
            balances = { USDT = "1000" }
            "#,
        )
        .unwrap();
        assert_eq!(cfg.speed, 240.0);
        assert_eq!(cfg.symbols.len(), 2);
        assert_eq!(cfg.accounts[0].balances["USDT"], d("1000"));
        assert!(cfg.accounts[0].can_trade);
        assert_eq!(cfg.faults.drop_connections_every_ms, 5000);
        assert!(toml::from_str::<SandboxConfig>("nope = 1").is_err());
    }
}
