//! The configuration tree (`config.toml`), composed here where the pieces
//! meet, typed and validated once at start.
//!
//! Each section's types belong to the crate that uses them: `[[symbol]]` and
//! `[[strategy]]` to the core, `[risk]` to the risk crate, `[venue.binance]` to
//! the Binance adapter, `[venue.coinbase]` to ops (`coinbase`: the adapter
//! takes resolved settings), `[sandbox]` to the sandbox, `[http]` and `[notify]` to
//! ops. This module holds the tree, the checks that span sections (a strategy's
//! symbol is configured, the sandbox lists every symbol, the bar interval suits
//! the venue) and the parse errors located by key and line.
//!
//! Parsing rejects unknown keys and wrong types (serde names the key and line);
//! [`Config::validate`] then rejects impossible values, naming the key. Strategy
//! parameters are validated by the strategies crate, which knows each kind.

mod coinbase;
pub mod exits;
pub mod futures;
mod mainnet;
pub mod market_data;
pub mod ops;
pub mod pine_paths;
pub mod universe;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use keel_binance::{BinanceConfig, BinanceMode};
use keel_core::config::non_negative;
use keel_core::instrument::Instrument;
use keel_core::sim::{CommissionAsset, FeeSchedule};
use keel_sandbox::SandboxConfig;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use coinbase::{CoinbaseConfig, CoinbaseEndpoints};
pub use futures::FuturesSection;
pub use keel_core::config::{parse_duration_ms, ConfigError, DurationMs, StrategyConfig, SymbolConfig};
pub use market_data::{LiveSource, MarketData, PaperSection};
pub use ops::{HttpConfig, NotifyConfig};
pub use risk::config::RiskConfig;
pub use universe::UniverseConfig;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Engine-wide settings.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The venue to trade on.
    #[serde(default)]
    pub venue: VenueConfig,
    /// Instruments and their simulated price paths.
    #[serde(default, rename = "symbol")]
    pub symbols: Vec<SymbolConfig>,
    /// Starting balances of simulated venues, by asset.
    #[serde(default)]
    pub balances: BTreeMap<String, Decimal>,
    /// Strategy instances.
    #[serde(default, rename = "strategy")]
    pub strategies: Vec<StrategyConfig>,
    /// Risk limits and protections.
    #[serde(default)]
    pub risk: RiskConfig,
    /// HTTP control API and metrics.
    #[serde(default)]
    pub http: HttpConfig,
    /// Operator notifications and the Telegram bot.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// The sandbox exchange, speaking the Binance and the Coinbase protocols
    /// (`mode = "sandbox"` and `keel sandbox`).
    #[serde(default)]
    pub sandbox: SandboxSection,
    /// What the store keeps beside the trading state.
    #[serde(default)]
    pub store: StoreSection,
    /// The trading universe strategy templates run on (`symbols = "universe"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub universe: Option<UniverseConfig>,
    /// The futures feed's timings, and whether there is one.
    #[serde(default)]
    pub futures: FuturesSection,
}

/// `[store]`: what the store keeps beside the trading state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// How often account equity is added to the equity history, e.g. `1m`
    /// (the newest 43 200 points are kept: 30 days at a minute).
    pub equity_interval: DurationMs,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self { equity_interval: DurationMs(60_000) }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `info,engine=debug`.
    pub log_level: String,
    /// Bar interval strategies trade on, e.g. `1m`.
    pub bar_interval: DurationMs,
    /// How long a start keeps retrying what the venue refuses for a passing
    /// reason (429, 418, 5xx, timeouts) and a reconciliation that cannot
    /// complete, e.g. `2m`; then it exits (or, for the reconciliation,
    /// starts HALTED).
    pub startup_deadline: DurationMs,
    /// Starts within a minute that contact the venue at once; each start
    /// beyond them first waits 5 s longer (up to 30 s): a crash loop cannot
    /// spend the venue's request weight.
    pub free_starts_per_minute: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            bar_interval: DurationMs(60_000),
            startup_deadline: DurationMs(120_000),
            free_starts_per_minute: 10,
        }
    }
}

/// Which venue Keel trades on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VenueMode {
    /// The in-process simulated venue.
    #[default]
    Paper,
    /// The embedded Binance-protocol sandbox exchange, through the Binance adapter.
    Sandbox,
    /// Binance spot testnet.
    Testnet,
    /// Binance spot mainnet (real money).
    Mainnet,
}

impl VenueMode {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Sandbox => "sandbox",
            Self::Testnet => "testnet",
            Self::Mainnet => "mainnet",
        }
    }

    /// How a person is told which mode runs: upper case, and whether real
    /// money is at stake (start-up lines and message, `/status`).
    pub fn banner(self) -> &'static str {
        match self {
            Self::Paper => "PAPER (simulated in process, no real money)",
            Self::Sandbox => "SANDBOX (embedded exchange, no real money)",
            Self::Testnet => "TESTNET (Binance test network, no real money)",
            Self::Mainnet => "MAINNET (REAL MONEY)",
        }
    }

    /// The Binance environment of this mode (`None` for paper).
    pub fn binance_mode(self) -> Option<BinanceMode> {
        match self {
            Self::Paper => None,
            Self::Sandbox => Some(BinanceMode::Sandbox),
            Self::Testnet => Some(BinanceMode::Testnet),
            Self::Mainnet => Some(BinanceMode::Mainnet),
        }
    }
}

/// Which exchange's protocol and adapter `mode` sandbox and mainnet use
/// (`[venue] exchange`; paper is exchange-neutral).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Exchange {
    /// Binance spot (the default).
    #[default]
    Binance,
    /// Coinbase Advanced Trade (spot).
    Coinbase,
}

impl Exchange {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Binance => "binance",
            Self::Coinbase => "coinbase",
        }
    }
}

impl<'de> Deserialize<'de> for Exchange {
    /// An unknown name is refused naming the key (serde's own message would
    /// only say "unknown variant").
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "binance" => Ok(Self::Binance),
            "coinbase" => Ok(Self::Coinbase),
            other => Err(serde::de::Error::custom(format!(
                "venue.exchange: `{other}` is not a supported exchange (\"binance\" or \"coinbase\")"
            ))),
        }
    }
}

/// The venue section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VenueConfig {
    /// Which exchange (`binance` or `coinbase`) modes sandbox and mainnet trade on.
    pub exchange: Exchange,
    /// Which venue.
    pub mode: VenueMode,
    /// Deprecated alias of `[sandbox] speed` (wall time per simulated 1m bar:
    /// `250ms` is speed 240). Read when `speed` is not set, with a warning.
    pub bar_wall_time: Option<DurationMs>,
    /// Simulated venues: quote updates per bar.
    pub ticks_per_bar: u32,
    /// Simulated venues: maker fee in basis points.
    pub maker_fee_bps: Decimal,
    /// Simulated venues: taker fee in basis points.
    pub taker_fee_bps: Decimal,
    /// Paper venue and backtest: the asset commissions are charged in
    /// (`received`, as Binance does without BNB, or `quote`). The sandbox has
    /// its own `[sandbox] commission_asset`; on sandbox, testnet and mainnet
    /// Keel takes the fee asset from the venue's reports.
    pub commission_asset: CommissionAsset,
    /// Simulated venues: synthetic book levels beyond the touch.
    pub depth_levels: u32,
    /// Must be true for `mode = "mainnet"` (real money).
    pub confirm_mainnet: bool,
    /// The Binance adapter (`[venue.binance]`: URL overrides, key variables,
    /// timeouts) for modes sandbox, testnet and mainnet. Its own `mode` key is
    /// not used: `venue.mode` decides.
    pub binance: BinanceConfig,
    /// The Coinbase adapter (`[venue.coinbase]`: key variables, URL
    /// overrides) for `exchange = "coinbase"`.
    pub coinbase: CoinbaseConfig,
    /// Paper mode's prices: `sandbox` (simulated, offline), or Binance's
    /// public market data (`binance`, `binance-testnet`) for a dry-run.
    pub market_data: MarketData,
    /// The live-data paper venue (`[venue.paper]`: public URL overrides,
    /// latency).
    pub paper: PaperSection,
}

impl Default for VenueConfig {
    fn default() -> Self {
        Self {
            exchange: Exchange::Binance,
            mode: VenueMode::Paper,
            bar_wall_time: None,
            ticks_per_bar: 10,
            maker_fee_bps: Decimal::new(10, 0),
            taker_fee_bps: Decimal::new(10, 0),
            commission_asset: CommissionAsset::Received,
            depth_levels: 5,
            confirm_mainnet: false,
            binance: BinanceConfig::default(),
            coinbase: CoinbaseConfig::default(),
            market_data: MarketData::Sandbox,
            paper: PaperSection::default(),
        }
    }
}

impl VenueConfig {
    /// The simulated venues' fee schedule (paper venue and backtest).
    pub fn fees(&self) -> FeeSchedule {
        FeeSchedule::new(self.maker_fee_bps, self.taker_fee_bps, self.commission_asset)
    }

    /// The Binance adapter settings with `confirm_mainnet` taken from either
    /// `[venue]` or `[venue.binance]` (resolve with `venue.mode`).
    pub fn binance_config(&self) -> BinanceConfig {
        let mut b = self.binance.clone();
        b.confirm_mainnet |= self.confirm_mainnet;
        if let Some(mode) = self.mode.binance_mode() {
            b.mode = mode;
        }
        b
    }
}

/// The speed of simulated time on the embedded sandbox and the paper venue
/// when the config sets none: one 1m bar every 250 ms, so a demo trades within
/// seconds.
pub const EMBEDDED_SPEED: f64 = keel_sandbox::DEMO_SPEED;

/// Which simulated venue a speed is for (their defaults differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimulatedClock {
    /// The sandbox inside `keel run` (mode `sandbox`), and the paper venue.
    Embedded,
    /// `keel sandbox`.
    Standalone,
}

/// The `[sandbox]` section: the sandbox's settings plus which keys the file
/// sets, so unset ones can follow the rest of the config (`[[symbol]]`,
/// `[balances]`, `[venue]` timing and fees) — one source of truth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SandboxSection {
    /// The settings as written (defaults for keys not given).
    pub config: SandboxConfig,
    /// Top-level keys given in `[sandbox]`.
    pub explicit: BTreeSet<String>,
}

impl SandboxSection {
    /// Whether `[sandbox]` sets `key`.
    pub fn sets(&self, key: &str) -> bool {
        self.explicit.contains(key)
    }
}

impl<'de> Deserialize<'de> for SandboxSection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(deserializer)?;
        let explicit = table.keys().cloned().collect();
        let config: SandboxConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| serde::de::Error::custom(format!("sandbox: {}", e.message())))?;
        Ok(Self { config, explicit })
    }
}

impl Serialize for SandboxSection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.config.serialize(serializer)
    }
}

impl Config {
    /// Reads, parses and validates a config file. A Pine block's relative
    /// `params.script` is resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
        let mut config = Self::parse(&text)?;
        pine_paths::resolve(&mut config.strategies, path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| toml_error(text, e))?;
        exits::validate(&mut config, text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.engine.startup_deadline.0 <= 0 {
            return Err(ConfigError::new("engine.startup_deadline", "must be positive"));
        }
        if self.engine.bar_interval.0 <= 0 {
            return Err(ConfigError::new("engine.bar_interval", "must be positive"));
        }
        if self.store.equity_interval.0 < 1_000 {
            return Err(ConfigError::new("store.equity_interval", "must be at least 1s"));
        }
        if self.venue.bar_wall_time.is_some_and(|t| t.0 <= 0) {
            return Err(ConfigError::new("venue.bar_wall_time", "must be positive"));
        }
        if self.venue.ticks_per_bar == 0 || 60_000 % self.venue.ticks_per_bar != 0 {
            return Err(ConfigError::new(
                "venue.ticks_per_bar",
                "must divide 60000 (ticks fall on whole milliseconds of the minute), e.g. 10, 20 or 60",
            ));
        }
        for clock in [SimulatedClock::Embedded, SimulatedClock::Standalone] {
            let speed = self.speed(clock);
            if !(speed.is_finite() && speed > 0.0 && speed <= keel_sandbox::MAX_SPEED) {
                let key = if self.sandbox.sets("speed") { "sandbox.speed" } else { "venue.bar_wall_time" };
                return Err(ConfigError::new(
                    key,
                    format!("must give a speed above 0 and at most {}", keel_sandbox::MAX_SPEED),
                ));
            }
        }
        non_negative("venue.maker_fee_bps", self.venue.maker_fee_bps)?;
        non_negative("venue.taker_fee_bps", self.venue.taker_fee_bps)?;
        market_data::validate(self.venue.mode, self.venue.exchange, self.venue.market_data, &self.venue.paper)?;
        match self.venue.exchange {
            Exchange::Binance => self.validate_binance()?,
            Exchange::Coinbase => self.validate_coinbase()?,
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.symbols.iter().enumerate() {
            s.validate(&format!("symbol[{i}]"))?;
            self.validate_symbol_name(i, s)?;
            if !seen.insert(s.symbol.clone()) {
                return Err(ConfigError::new(
                    format!("symbol[{i}].symbol"),
                    format!("`{}` is configured twice", s.symbol),
                ));
            }
        }
        for (asset, amount) in &self.balances {
            non_negative(&format!("balances.{asset}"), *amount)?;
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, s) in self.strategies.iter().enumerate() {
            if s.id.is_empty() || !s.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(ConfigError::new(
                    format!("strategy[{i}].id"),
                    "must be non-empty: letters, digits, `_` or `-`",
                ));
            }
            if !ids.insert(s.id.clone()) {
                return Err(ConfigError::new(format!("strategy[{i}].id"), format!("`{}` is used twice", s.id)));
            }
            universe::validate_strategy_symbols(i, s, self.universe.as_ref())?;
            if !s.is_template() && !seen.contains(&s.symbol) {
                return Err(ConfigError::new(
                    format!("strategy[{i}].symbol"),
                    format!("`{}` is not a configured symbol (add a [[symbol]] block)", s.symbol),
                ));
            }
        }
        if let Some(u) = &self.universe {
            u.validate()?;
            if self.is_dry_run() {
                return Err(ConfigError::new(
                    "universe",
                    "a dry-run trades its configured [[symbol]] blocks; a universe needs paper (simulated) or a Binance mode",
                ));
            }
            if self.venue.exchange == Exchange::Coinbase && self.venue.mode != VenueMode::Paper {
                return Err(ConfigError::new(
                    "universe",
                    "needs a venue that lists a market universe: Binance (sandbox, testnet, mainnet) or paper",
                ));
            }
        }
        self.futures.validate()?;
        self.risk.validate()?;
        self.http.validate()?;
        self.notify.validate()?;
        if self.venue.mode == VenueMode::Sandbox {
            self.validate_sandbox()?;
        }
        Ok(())
    }

    /// `[venue.binance]` and the mainnet confirmation (keys in the environment
    /// are checked when the venue is built, not here).
    fn validate_binance(&self) -> Result<(), ConfigError> {
        let b = &self.venue.binance;
        if self.venue.mode == VenueMode::Mainnet && !(self.venue.confirm_mainnet || b.confirm_mainnet) {
            return Err(ConfigError::new(
                "venue.confirm_mainnet",
                "mode = \"mainnet\" trades real money; add confirm_mainnet = true under [venue] to allow it",
            ));
        }
        if b.mode != BinanceMode::Sandbox && Some(b.mode) != self.venue.mode.binance_mode() {
            return Err(ConfigError::new(
                "venue.binance.mode",
                "the mode is set by `venue.mode`; remove it from [venue.binance]",
            ));
        }
        b.validate().map_err(|e| ConfigError::new(binance_key(&e), e.reason))?;
        if self.venue.mode == VenueMode::Mainnet {
            mainnet::validate_urls(b)?;
        }
        if self.venue.mode.binance_mode().is_some() && keel_binance::interval_name(self.engine.bar_interval.0).is_none()
        {
            return Err(ConfigError::new(
                "engine.bar_interval",
                "is not a Binance kline interval (1s, 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w)",
            ));
        }
        Ok(())
    }

    /// `[venue.coinbase]` for `venue.mode`, and a bar interval Coinbase has
    /// candles of.
    fn validate_coinbase(&self) -> Result<(), ConfigError> {
        self.venue.coinbase.validate(self.venue.mode, self.venue.confirm_mainnet)?;
        if self.venue.mode != VenueMode::Paper
            && keel_coinbase::venue::granularity_of(self.engine.bar_interval.0).is_none()
        {
            return Err(ConfigError::new(
                "engine.bar_interval",
                "is not a Coinbase candle granularity (1m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 1d)",
            ));
        }
        Ok(())
    }

    /// A symbol as the exchange names it: Coinbase's product id `BASE-QUOTE`
    /// of the block's `base` and `quote`, Binance's pair without a dash
    /// (paper takes either).
    fn validate_symbol_name(&self, i: usize, s: &SymbolConfig) -> Result<(), ConfigError> {
        if self.venue.mode == VenueMode::Paper {
            return Ok(());
        }
        let key = format!("symbol[{i}].symbol");
        match self.venue.exchange {
            Exchange::Coinbase => {
                let product = keel_coinbase::symbols::product_id(&s.base, &s.quote);
                if s.symbol != product {
                    return Err(ConfigError::new(
                        key,
                        format!(
                            "`{}`: Coinbase names the product of base `{}` and quote `{}` `{product}`",
                            s.symbol, s.base, s.quote
                        ),
                    ));
                }
            }
            Exchange::Binance if s.symbol.contains('-') => {
                return Err(ConfigError::new(
                    key,
                    format!("`{}`: Binance symbols have no `-` (e.g. BTCUSDT); BASE-QUOTE is Coinbase's form (exchange = \"coinbase\")", s.symbol),
                ));
            }
            Exchange::Binance => {}
        }
        Ok(())
    }

    /// The resolved sandbox settings (see [`Config::sandbox_config`]).
    fn validate_sandbox(&self) -> Result<(), ConfigError> {
        let sb = self.sandbox_config(SimulatedClock::Embedded);
        sb.validate()?;
        if self.engine.bar_interval.0 != keel_sandbox::BAR_MS {
            return Err(ConfigError::new(
                "engine.bar_interval",
                "the sandbox simulates 1m bars; set bar_interval = \"1m\" with mode = \"sandbox\"",
            ));
        }
        for s in &self.symbols {
            if !sb.symbols.iter().any(|x| x.symbol == s.symbol) {
                return Err(ConfigError::new(
                    "sandbox.symbols",
                    format!("`{}` is configured in [[symbol]] but not listed by the sandbox", s.symbol),
                ));
            }
        }
        Ok(())
    }

    /// How fast simulated time runs (simulated minutes per minute of wall
    /// time): `[sandbox] speed`; else the deprecated `[venue] bar_wall_time`;
    /// else [`EMBEDDED_SPEED`] for the embedded sandbox and the paper venue (a
    /// demo shows trades in seconds) and real time for `keel sandbox`.
    pub fn speed(&self, clock: SimulatedClock) -> f64 {
        if self.sandbox.sets("speed") {
            return self.sandbox.config.speed;
        }
        match (self.venue.bar_wall_time, clock) {
            (Some(wall), _) => 60_000.0 / wall.0.max(1) as f64,
            (None, SimulatedClock::Embedded) => EMBEDDED_SPEED,
            (None, SimulatedClock::Standalone) => 1.0,
        }
    }

    /// Settings that still work but will go: one line each, for the log and
    /// `keel check-config`.
    pub fn deprecations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(wall) = self.venue.bar_wall_time {
            let speed = 60_000.0 / wall.0.max(1) as f64;
            out.push(if self.sandbox.sets("speed") {
                "venue.bar_wall_time is deprecated and ignored: [sandbox] speed is set".to_string()
            } else {
                format!("venue.bar_wall_time is deprecated: write [sandbox] speed = {speed} instead")
            });
        }
        out
    }

    /// The sandbox's settings: `[sandbox]`, where every key it does not set
    /// follows the rest of the config — symbols from `[[symbol]]`, the first
    /// account's balances from `[balances]`, ticks, fees and depth from
    /// `[venue]`, and the speed from [`Config::speed`].
    pub fn sandbox_config(&self, clock: SimulatedClock) -> SandboxConfig {
        let section = &self.sandbox;
        let mut sb = section.config.clone();
        if !section.sets("symbols") && !self.symbols.is_empty() {
            sb.symbols = self.symbols.clone();
        }
        if !section.sets("accounts") && !self.balances.is_empty() {
            if let Some(first) = sb.accounts.first_mut() {
                first.balances = self.balances.clone();
            }
        }
        sb.speed = self.speed(clock);
        if !section.sets("ticks_per_bar") {
            sb.ticks_per_bar = self.venue.ticks_per_bar;
        }
        if !section.sets("maker_fee_bps") {
            sb.maker_fee_bps = self.venue.maker_fee_bps;
        }
        if !section.sets("taker_fee_bps") {
            sb.taker_fee_bps = self.venue.taker_fee_bps;
        }
        if !section.sets("depth_levels") {
            sb.depth_levels = self.venue.depth_levels;
        }
        sb
    }

    /// The exchange whose adapter runs: `[venue] exchange`, except in
    /// paper mode (exchange-neutral, `None`).
    pub fn exchange_in_use(&self) -> Option<Exchange> {
        (self.venue.mode != VenueMode::Paper).then_some(self.venue.exchange)
    }

    /// The configured instruments.
    pub fn instruments(&self) -> Vec<Instrument> {
        self.symbols.iter().map(SymbolConfig::instrument).collect()
    }

    /// A symbol's block.
    pub fn symbol(&self, symbol: &str) -> Option<&SymbolConfig> {
        self.symbols.iter().find(|s| s.symbol == symbol)
    }
}

/// The config key of a Binance adapter config error (`[venue.binance]`,
/// except the two keys the tree keeps in `[venue]`).
pub fn binance_key(e: &keel_binance::BinanceConfigError) -> String {
    match e.field {
        "confirm_mainnet" => "venue.confirm_mainnet".into(),
        "mode" => "venue.mode".into(),
        f => format!("venue.binance.{f}"),
    }
}

/// A parse error located by line and the key written there, so the operator
/// finds it (serde names the field in the message: "unknown field `x`").
fn toml_error(text: &str, e: toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let key = match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let line_no = text[..start].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            let written = line.split('=').next().unwrap_or("").trim();
            if written.is_empty() || written.starts_with('[') {
                format!("line {line_no}")
            } else {
                format!("{written} (line {line_no})")
            }
        }
        None => "config".into(),
    };
    ConfigError::new(key, message)
}

/// The one `[[symbol]]` block (BTCUSDT) the config unit tests build on, as
/// a literal so tests can `concat!` their own sections after it.
#[cfg(test)]
macro_rules! btc_symbol_toml {
    () => {
        r#"
[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_notional = "5"
start_price = "60000"
volatility = 0.6
touch_qty = "2"
"#
    };
}
#[cfg(test)]
pub(crate) use btc_symbol_toml;

#[cfg(test)]
mod tests;
