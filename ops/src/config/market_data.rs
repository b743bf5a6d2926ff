//! Dry-run on live market data: `[venue] market_data` and `[venue.paper]`.
//!
//! Paper mode simulates its own prices by default (`market_data =
//! "sandbox"`, offline). With `"binance"` or `"binance-testnet"` the paper
//! venue follows Binance's public book and trades instead, and its matching
//! core fills Keel's orders against them; only public endpoints are used, so
//! no API key is needed or sent. `[venue.paper]` overrides the public URLs
//! (tests point them at a standalone `keel sandbox`) and sets the simulated
//! order latency.

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, DurationMs, Exchange, VenueMode};

/// How the surfaces name a dry-run (start-up line, `/api/v1/status`
/// `venue_description`, the console, `keel_info{venue_mode}`).
pub const DRY_RUN: &str = "paper on live Binance market data";

impl Config {
    /// Whether this is a dry-run: paper mode on a live market-data source.
    pub fn is_dry_run(&self) -> bool {
        self.venue.mode == VenueMode::Paper && self.venue.market_data.is_live()
    }

    /// The venue mode as the surfaces name it: [`DRY_RUN`] for a dry-run,
    /// else the mode's name (`paper`, `sandbox`, `testnet`, `mainnet`).
    pub fn venue_description(&self) -> &'static str {
        if self.is_dry_run() {
            DRY_RUN
        } else {
            self.venue.mode.as_str()
        }
    }

    /// The start-up banner: the mode's (see [`VenueMode::banner`]), or the
    /// dry-run's.
    pub fn venue_banner(&self) -> &'static str {
        if self.is_dry_run() {
            "PAPER on live Binance market data (simulated fills, no real money, no API key)"
        } else {
            self.venue.mode.banner()
        }
    }
}

/// Binance's data-only hosts: public market data, no trading, no keys.
const MAINNET_REST: &str = "https://data-api.binance.vision";
const MAINNET_WS: &str = "wss://data-stream.binance.vision";
/// Binance spot testnet's public endpoints.
const TESTNET_REST: &str = "https://testnet.binance.vision";
const TESTNET_WS: &str = "wss://stream.testnet.binance.vision";

/// Where the paper venue's prices come from (`[venue] market_data`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketData {
    /// Simulated in process, offline (the paper venue's own price paths).
    #[default]
    #[serde(rename = "sandbox")]
    Sandbox,
    /// Binance spot mainnet's public streams and REST.
    #[serde(rename = "binance")]
    Binance,
    /// Binance spot testnet's public streams and REST.
    #[serde(rename = "binance-testnet")]
    BinanceTestnet,
}

impl MarketData {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Binance => "binance",
            Self::BinanceTestnet => "binance-testnet",
        }
    }

    /// Whether prices come from a live venue rather than the simulation.
    pub fn is_live(self) -> bool {
        self != Self::Sandbox
    }

    /// The default public REST and stream base URLs of a live source.
    fn default_urls(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Sandbox => None,
            Self::Binance => Some((MAINNET_REST, MAINNET_WS)),
            Self::BinanceTestnet => Some((TESTNET_REST, TESTNET_WS)),
        }
    }
}

/// `[venue.paper]`: the live-data paper venue's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaperSection {
    /// Public REST base URL of the market-data source (default: the
    /// source's own, see [`MarketData`]).
    pub rest_url: Option<String>,
    /// Public stream base URL (`…/stream?streams=` is appended).
    pub ws_stream_url: Option<String>,
    /// Simulated time from sending an order to its matching against the
    /// live book (what a round trip to the venue would take).
    pub latency: DurationMs,
}

impl Default for PaperSection {
    fn default() -> Self {
        Self { rest_url: None, ws_stream_url: None, latency: DurationMs(0) }
    }
}

/// The resolved public endpoints of a live market-data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSource {
    /// Which source.
    pub market_data: MarketData,
    /// Public REST base URL.
    pub rest_url: String,
    /// Public stream base URL.
    pub ws_stream_url: String,
    /// Simulated order latency (ms).
    pub latency_ms: u64,
}

impl PaperSection {
    /// The live source's endpoints (`None` for the offline simulation).
    pub fn live_source(&self, market_data: MarketData) -> Option<LiveSource> {
        let (rest, ws) = market_data.default_urls()?;
        Some(LiveSource {
            market_data,
            rest_url: self.rest_url.clone().unwrap_or_else(|| rest.into()),
            ws_stream_url: self.ws_stream_url.clone().unwrap_or_else(|| ws.into()),
            latency_ms: self.latency.0.max(0) as u64,
        })
    }
}

/// Checks `market_data` against the mode and exchange, and `[venue.paper]`:
/// one error naming the key.
pub fn validate(
    mode: VenueMode,
    exchange: Exchange,
    market_data: MarketData,
    paper: &PaperSection,
) -> Result<(), ConfigError> {
    if market_data.is_live() && mode != VenueMode::Paper {
        return Err(ConfigError::new(
            "venue.market_data",
            format!(
                "`{}` is for mode = \"paper\" (dry-run); mode `{}` takes its prices from its own venue",
                market_data.as_str(),
                mode.as_str()
            ),
        ));
    }
    if market_data.is_live() && exchange != Exchange::Binance {
        return Err(ConfigError::new(
            "venue.market_data",
            format!("`{}` follows Binance; set exchange = \"binance\" or remove it", market_data.as_str()),
        ));
    }
    if paper.latency.0 < 0 {
        return Err(ConfigError::new("venue.paper.latency", "must not be negative"));
    }
    for (field, url, schemes) in [
        ("rest_url", &paper.rest_url, ["http://", "https://"]),
        ("ws_stream_url", &paper.ws_stream_url, ["ws://", "wss://"]),
    ] {
        let Some(url) = url else { continue };
        if !market_data.is_live() {
            return Err(ConfigError::new(
                format!("venue.paper.{field}"),
                "is only used with market_data = \"binance\" or \"binance-testnet\"",
            ));
        }
        if !schemes.iter().any(|s| url.starts_with(s)) {
            return Err(ConfigError::new(
                format!("venue.paper.{field}"),
                format!("`{url}` must start with {} or {}", schemes[0], schemes[1]),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{btc_symbol_toml, Config};
    use super::*;

    fn parse(venue: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{}\n{venue}\n", btc_symbol_toml!()))
    }

    #[test]
    fn live_sources_resolve_to_public_hosts_or_the_overrides() {
        struct Case {
            venue: &'static str,
            want: Option<(&'static str, &'static str, u64)>,
        }
        let cases = [
            Case { venue: "[venue]\nmode = \"paper\"\n", want: None },
            Case {
                venue: "[venue]\nmarket_data = \"binance\"\n",
                want: Some((MAINNET_REST, MAINNET_WS, 0)),
            },
            Case {
                venue: "[venue]\nmarket_data = \"binance-testnet\"\n",
                want: Some((TESTNET_REST, TESTNET_WS, 0)),
            },
            Case {
                venue: "[venue]\nmarket_data = \"binance\"\n[venue.paper]\nrest_url = \"http://127.0.0.1:9\"\nws_stream_url = \"ws://127.0.0.1:9\"\nlatency = \"50ms\"\n",
                want: Some(("http://127.0.0.1:9", "ws://127.0.0.1:9", 50)),
            },
        ];
        for c in cases {
            let config = parse(c.venue).unwrap_or_else(|e| panic!("{}: {e}", c.venue));
            let got = config.venue.paper.live_source(config.venue.market_data);
            let got = got.as_ref().map(|s| (s.rest_url.as_str(), s.ws_stream_url.as_str(), s.latency_ms));
            assert_eq!(got, c.want, "{}", c.venue);
        }
    }

    #[test]
    fn misplaced_live_data_settings_are_refused_naming_the_key() {
        let cases = [
            (
                "[venue]\nmode = \"sandbox\"\nmarket_data = \"binance\"\n",
                "venue.market_data",
                "is for mode = \"paper\"",
            ),
            ("[venue]\nexchange = \"coinbase\"\nmarket_data = \"binance\"\n", "venue.market_data", "follows Binance"),
            ("[venue.paper]\nrest_url = \"http://127.0.0.1:9\"\n", "venue.paper.rest_url", "only used with"),
            (
                "[venue]\nmarket_data = \"binance\"\n[venue.paper]\nws_stream_url = \"http://127.0.0.1:9\"\n",
                "venue.paper.ws_stream_url",
                "must start with ws://",
            ),
        ];
        for (venue, key, reason) in cases {
            let e = parse(venue).expect_err(venue);
            assert_eq!(e.key, key, "{venue}: {e}");
            assert!(e.to_string().contains(reason), "{venue}: {e}");
        }
        let universe = "[venue]\nmarket_data = \"binance\"\n[universe]\nquote = \"USDT\"\ntop_n = 5\n";
        let e = parse(universe).expect_err("a universe in a dry-run");
        assert_eq!(e.key, "universe", "{e}");
        assert!(e.reason.contains("a dry-run trades its configured"), "{e}");
        let e = parse("[venue]\nmarket_data = \"kraken\"\n").expect_err("unknown source");
        assert!(e.to_string().contains("unknown variant `kraken`"), "{e}");
    }
}
