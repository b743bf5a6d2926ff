//! The Binance spot adapter: signing, REST client, models, error
//! classification, rate limiting, clock sync, the market stream client, the
//! WebSocket API user-data client and [`BinanceVenue`], which implements
//! [`keel_core::venue::Venue`]; and the read-only USDⓈ-M futures market-data
//! client ([`usdm`]), which implements [`keel_core::futures::FuturesData`].
//!
//! The same code talks to mainnet, testnet and any Binance-protocol exchange
//! on this machine (Keel's sandbox, which `ops` starts and points the adapter
//! at); only the URLs and keys differ.
//!
//! Depends on `keel-core` only: never on the sandbox (the exchange side of the
//! protocol is an independent implementation, so a bug here cannot hide behind
//! a shared one there), never on the actor runtime.

mod connection;
pub mod error;
pub mod model;
mod oco;
pub mod public;
pub mod rest;
pub mod sign;
pub mod stream;
pub mod usdm;
pub mod user;
pub mod venue;
mod ws_orders;

use serde::{Deserialize, Serialize};

pub use error::BinanceError;
pub use rest::{Credentials, RestClient};
pub use venue::BinanceVenue;

/// Which Binance environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinanceMode {
    /// A Binance-protocol exchange on this machine (Keel's sandbox): its URLs
    /// and key come from the running exchange.
    #[default]
    Sandbox,
    /// Binance spot testnet.
    Testnet,
    /// Binance spot mainnet (real money; needs `confirm_mainnet = true`).
    Mainnet,
}

/// How orders and cancels reach Binance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderTransport {
    /// The WebSocket API (`order.place`, `order.cancel`), falling back to REST
    /// while its connection is down.
    #[default]
    Ws,
    /// REST (`POST` / `DELETE /api/v3/order`).
    Rest,
}

impl OrderTransport {
    /// The config spelling (`ws` or `rest`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Rest => "rest",
        }
    }
}

/// The Binance venue configuration (`[venue]` for modes sandbox/testnet/mainnet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BinanceConfig {
    /// Environment.
    pub mode: BinanceMode,
    /// Must be true for `mode = "mainnet"`.
    pub confirm_mainnet: bool,
    /// REST base URL override (without `/api/v3`).
    pub rest_url: Option<String>,
    /// Market stream base URL override (without `/stream`).
    pub ws_stream_url: Option<String>,
    /// WebSocket API URL override (full, with `/ws-api/v3`).
    pub ws_api_url: Option<String>,
    /// USDⓈ-M futures REST base URL override (without `/fapi/v1`).
    pub fapi_rest_url: Option<String>,
    /// USDⓈ-M futures stream base URL override (without the `/market` route).
    pub fapi_ws_url: Option<String>,
    /// Name of the environment variable holding the API key.
    pub api_key_env: String,
    /// Name of the environment variable holding the API secret (HMAC keys).
    pub api_secret_env: String,
    /// Name of the environment variable holding the path of the Ed25519
    /// private key (PKCS#8 PEM). When it is set, the key is an Ed25519 key
    /// and the secret variable is not read.
    pub private_key_path_env: String,
    /// How orders and cancels are sent: `ws` (the WebSocket API, the
    /// default) or `rest`.
    pub order_transport: OrderTransport,
    /// `recvWindow` for signed requests (ms, at most 60000).
    pub recv_window_ms: u64,
    /// Per-request timeout (ms).
    pub request_timeout_ms: u64,
    /// Clock resync period (ms).
    pub time_sync_interval_ms: u64,
    /// Reconnect streams proactively after this long (ms; Binance closes at 24 h).
    pub reconnect_after_ms: u64,
    /// Symbols whose fills are reconciled after a user-stream gap (orders placed
    /// through the adapter are added automatically).
    pub symbols: Vec<String>,
    /// The longest an order may wait for request weight (or a `Retry-After`)
    /// before it is refused as `rate_limited` instead of sent late (ms).
    pub max_order_wait_ms: u64,
}

impl Default for BinanceConfig {
    fn default() -> Self {
        Self {
            mode: BinanceMode::Sandbox,
            confirm_mainnet: false,
            rest_url: None,
            ws_stream_url: None,
            ws_api_url: None,
            fapi_rest_url: None,
            fapi_ws_url: None,
            api_key_env: "KEEL_BINANCE_API_KEY".into(),
            api_secret_env: "KEEL_BINANCE_API_SECRET".into(),
            private_key_path_env: "KEEL_BINANCE_PRIVATE_KEY_PATH".into(),
            order_transport: OrderTransport::Ws,
            recv_window_ms: 5000,
            request_timeout_ms: 10_000,
            time_sync_interval_ms: 60_000,
            reconnect_after_ms: 23 * 3600 * 1000,
            symbols: Vec::new(),
            max_order_wait_ms: rest::DEFAULT_MAX_ORDER_WAIT_MS,
        }
    }
}

/// Resolved URLs of one Binance environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// REST base (`https://api.binance.com`); requests go to `{rest}/api/v3/...`.
    pub rest: String,
    /// Stream base (`wss://stream.binance.com:9443`); `{ws_stream}/stream?streams=`.
    pub ws_stream: String,
    /// WebSocket API (`wss://ws-api.binance.com:443/ws-api/v3`).
    pub ws_api: String,
}

impl Endpoints {
    /// Documented mainnet URLs.
    pub fn mainnet() -> Self {
        Self {
            rest: "https://api.binance.com".into(),
            ws_stream: "wss://stream.binance.com:9443".into(),
            ws_api: "wss://ws-api.binance.com:443/ws-api/v3".into(),
        }
    }

    /// Documented spot testnet URLs.
    pub fn testnet() -> Self {
        Self {
            rest: "https://testnet.binance.vision".into(),
            ws_stream: "wss://stream.testnet.binance.vision".into(),
            ws_api: "wss://ws-api.testnet.binance.vision/ws-api/v3".into(),
        }
    }
}

/// A configuration problem, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("venue.{field}: {reason}")]
pub struct BinanceConfigError {
    /// The offending key.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// A Binance-protocol exchange running on this machine (Keel's sandbox): where
/// it listens and the key it accepts. The composition root fills it in from
/// the running sandbox; the adapter never starts one itself.
#[derive(Debug, Clone)]
pub struct LocalExchange {
    /// Its URLs.
    pub endpoints: Endpoints,
    /// The account key it accepts.
    pub credentials: Credentials,
}

/// Everything [`BinanceVenue::connect`] needs, validated.
#[derive(Debug, Clone)]
pub struct BinanceSettings {
    /// URLs.
    pub endpoints: Endpoints,
    /// Keys.
    pub credentials: Credentials,
    /// `recvWindow` (ms).
    pub recv_window_ms: u64,
    /// Request timeout (ms).
    pub request_timeout_ms: u64,
    /// Clock resync period (ms).
    pub time_sync_interval_ms: u64,
    /// Proactive reconnect age (ms).
    pub reconnect_after_ms: u64,
    /// Symbols to reconcile fills for.
    pub symbols: Vec<String>,
    /// The longest an order may wait for request weight (ms).
    pub max_order_wait_ms: u64,
    /// How orders and cancels are sent.
    pub order_transport: OrderTransport,
}

impl BinanceSettings {
    /// Settings for a local exchange (the sandbox) with the default timings
    /// of [`BinanceConfig`].
    pub fn for_local(local: &LocalExchange) -> Self {
        let d = BinanceConfig::default();
        Self {
            endpoints: local.endpoints.clone(),
            credentials: local.credentials.clone(),
            recv_window_ms: d.recv_window_ms,
            request_timeout_ms: d.request_timeout_ms,
            time_sync_interval_ms: d.time_sync_interval_ms,
            reconnect_after_ms: d.reconnect_after_ms,
            symbols: d.symbols,
            max_order_wait_ms: d.max_order_wait_ms,
            order_transport: d.order_transport,
        }
    }
}

impl BinanceConfig {
    /// Checks values that parse but make no sense (keys in the environment are
    /// checked by [`BinanceConfig::resolve`], when the venue is built).
    pub fn validate(&self) -> Result<(), BinanceConfigError> {
        if self.recv_window_ms == 0 || self.recv_window_ms > 60_000 {
            return Err(BinanceConfigError {
                field: "recv_window_ms",
                reason: format!("{} is not in 1..=60000", self.recv_window_ms),
            });
        }
        for (field, v) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("time_sync_interval_ms", self.time_sync_interval_ms),
            ("reconnect_after_ms", self.reconnect_after_ms),
        ] {
            if v == 0 {
                return Err(BinanceConfigError { field, reason: "must be positive".into() });
            }
        }
        for (field, v) in [
            ("api_key_env", &self.api_key_env),
            ("api_secret_env", &self.api_secret_env),
            ("private_key_path_env", &self.private_key_path_env),
        ] {
            if v.is_empty() || v.contains('=') || v.contains('\0') {
                return Err(BinanceConfigError { field, reason: "must name an environment variable".into() });
            }
        }
        for (field, url, schemes) in [
            ("rest_url", &self.rest_url, ["http://", "https://"]),
            ("ws_stream_url", &self.ws_stream_url, ["ws://", "wss://"]),
            ("ws_api_url", &self.ws_api_url, ["ws://", "wss://"]),
            ("fapi_rest_url", &self.fapi_rest_url, ["http://", "https://"]),
            ("fapi_ws_url", &self.fapi_ws_url, ["ws://", "wss://"]),
        ] {
            if let Some(u) = url {
                if !schemes.iter().any(|s| u.starts_with(s)) {
                    return Err(BinanceConfigError {
                        field,
                        reason: format!("`{u}` must start with {} or {}", schemes[0], schemes[1]),
                    });
                }
            }
        }
        Ok(())
    }

    /// Validates the config and resolves URLs and keys. For `mode = "sandbox"`,
    /// pass the running local exchange: its URLs and key are used unless the
    /// config overrides them. Keys for testnet/mainnet come from the environment
    /// variables named in the config (never logged).
    pub fn resolve(&self, local: Option<&LocalExchange>) -> Result<BinanceSettings, BinanceConfigError> {
        self.resolve_with_mode(self.mode, local)
    }

    /// Like [`BinanceConfig::resolve`], with the mode given by the caller (for a
    /// config tree that keeps `mode` in its own `[venue]` table and this struct
    /// under `[venue.binance]`).
    pub fn resolve_with_mode(
        &self,
        mode: BinanceMode,
        local: Option<&LocalExchange>,
    ) -> Result<BinanceSettings, BinanceConfigError> {
        self.validate()?;
        let (base, credentials) = match mode {
            BinanceMode::Sandbox => {
                let local = local.ok_or_else(|| BinanceConfigError {
                    field: "mode",
                    reason: "sandbox mode needs the embedded sandbox to be running".into(),
                })?;
                (local.endpoints.clone(), local.credentials.clone())
            }
            BinanceMode::Testnet | BinanceMode::Mainnet => {
                if mode == BinanceMode::Mainnet && !self.confirm_mainnet {
                    return Err(BinanceConfigError {
                        field: "confirm_mainnet",
                        reason: "mode = \"mainnet\" trades real money; set confirm_mainnet = true to allow it".into(),
                    });
                }
                let key = std::env::var(&self.api_key_env).map_err(|_| BinanceConfigError {
                    field: "api_key_env",
                    reason: format!("environment variable {} is not set", self.api_key_env),
                })?;
                if mode == BinanceMode::Mainnet && key.trim().is_empty() {
                    return Err(BinanceConfigError {
                        field: "api_key_env",
                        reason: format!("environment variable {} is empty (mainnet needs a key)", self.api_key_env),
                    });
                }
                let ep = if mode == BinanceMode::Mainnet { Endpoints::mainnet() } else { Endpoints::testnet() };
                (ep, self.credentials_from_env(&key, mode == BinanceMode::Mainnet)?)
            }
        };
        let endpoints = Endpoints {
            rest: self.rest_url.clone().unwrap_or(base.rest).trim_end_matches('/').to_string(),
            ws_stream: self.ws_stream_url.clone().unwrap_or(base.ws_stream).trim_end_matches('/').to_string(),
            ws_api: self.ws_api_url.clone().unwrap_or(base.ws_api),
        };
        Ok(BinanceSettings {
            endpoints,
            credentials,
            recv_window_ms: self.recv_window_ms,
            request_timeout_ms: self.request_timeout_ms,
            time_sync_interval_ms: self.time_sync_interval_ms,
            reconnect_after_ms: self.reconnect_after_ms,
            symbols: self.symbols.clone(),
            max_order_wait_ms: self.max_order_wait_ms,
            order_transport: self.order_transport,
        })
    }

    /// The key's signer from the environment: an Ed25519 private key from the
    /// file named by `private_key_path_env` when that variable is set, else
    /// the HMAC secret in `api_secret_env`. Errors name the variable and the
    /// file, never their content.
    fn credentials_from_env(&self, key: &str, refuse_empty: bool) -> Result<Credentials, BinanceConfigError> {
        if let Some(path) = std::env::var_os(&self.private_key_path_env).filter(|p| !p.is_empty()) {
            let path = std::path::PathBuf::from(path);
            let field = "private_key_path_env";
            let pem = std::fs::read_to_string(&path).map_err(|e| BinanceConfigError {
                field,
                reason: format!("cannot read {} (named by {}): {e}", path.display(), self.private_key_path_env),
            })?;
            return Credentials::ed25519(key, &pem).map_err(|e| BinanceConfigError {
                field,
                reason: format!("{} (named by {}): {e}", path.display(), self.private_key_path_env),
            });
        }
        let secret = std::env::var(&self.api_secret_env).map_err(|_| BinanceConfigError {
            field: "api_secret_env",
            reason: format!(
                "environment variable {} is not set (an HMAC key needs its secret there; an Ed25519 key needs {} naming its private key file)",
                self.api_secret_env, self.private_key_path_env
            ),
        })?;
        if refuse_empty && secret.trim().is_empty() {
            return Err(BinanceConfigError {
                field: "api_secret_env",
                reason: format!(
                    "environment variable {} is empty (mainnet needs the key's secret)",
                    self.api_secret_env
                ),
            });
        }
        Ok(Credentials::new(key, &secret))
    }
}

/// Installs rustls's ring crypto provider for the process (idempotent). The
/// WebSocket client panics at connect time without one.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Binance interval name of a bar length in ms (`60000` → `1m`).
pub fn interval_name(interval_ms: i64) -> Option<&'static str> {
    Some(match interval_ms {
        1_000 => "1s",
        60_000 => "1m",
        180_000 => "3m",
        300_000 => "5m",
        900_000 => "15m",
        1_800_000 => "30m",
        3_600_000 => "1h",
        7_200_000 => "2h",
        14_400_000 => "4h",
        21_600_000 => "6h",
        28_800_000 => "8h",
        43_200_000 => "12h",
        86_400_000 => "1d",
        259_200_000 => "3d",
        604_800_000 => "1w",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainnet_needs_confirmation_and_keys_from_env() {
        let cfg = BinanceConfig {
            mode: BinanceMode::Mainnet,
            api_key_env: "KEEL_TEST_MAINNET_KEY_A".into(),
            api_secret_env: "KEEL_TEST_MAINNET_SECRET_A".into(),
            ..BinanceConfig::default()
        };
        let err = cfg.resolve(None).unwrap_err();
        assert_eq!(err.field, "confirm_mainnet");
        assert!(err.to_string().starts_with("venue.confirm_mainnet: "), "{err}");
        let cfg = BinanceConfig { confirm_mainnet: true, ..cfg };
        let err = cfg.resolve(None).unwrap_err();
        assert_eq!(err.field, "api_key_env");
        assert!(err.reason.contains("KEEL_TEST_MAINNET_KEY_A"));
        std::env::set_var("KEEL_TEST_MAINNET_KEY_A", "");
        std::env::set_var("KEEL_TEST_MAINNET_SECRET_A", "s");
        let err = cfg.resolve(None).unwrap_err();
        assert_eq!(err.field, "api_key_env", "an empty key is refused: {err}");
        assert!(err.reason.contains("KEEL_TEST_MAINNET_KEY_A") && err.reason.contains("empty"), "{err}");
        std::env::set_var("KEEL_TEST_MAINNET_KEY_A", "k");
        std::env::set_var("KEEL_TEST_MAINNET_SECRET_A", " ");
        let err = cfg.resolve(None).unwrap_err();
        assert_eq!(err.field, "api_secret_env", "an empty secret is refused: {err}");
        std::env::set_var("KEEL_TEST_MAINNET_SECRET_A", "s");
        let s = cfg.resolve(None).unwrap();
        assert_eq!(s.endpoints, Endpoints::mainnet());
        assert_eq!(s.credentials.api_key(), "k");
        assert!(!format!("{s:?}").contains("\"s\""), "secrets must not be printed");
    }

    #[test]
    fn testnet_urls_can_be_overridden() {
        std::env::set_var("KEEL_TEST_TESTNET_KEY_B", "k");
        std::env::set_var("KEEL_TEST_TESTNET_SECRET_B", "s");
        let cfg: BinanceConfig = toml::from_str(
            r#"
            mode = "testnet"
            api_key_env = "KEEL_TEST_TESTNET_KEY_B"
            api_secret_env = "KEEL_TEST_TESTNET_SECRET_B"
            ws_api_url = "ws://127.0.0.1:1/ws-api/v3"
            recv_window_ms = 3000
            "#,
        )
        .unwrap();
        let s = cfg.resolve(None).unwrap();
        assert_eq!(s.endpoints.rest, "https://testnet.binance.vision");
        assert_eq!(s.endpoints.ws_stream, "wss://stream.testnet.binance.vision");
        assert_eq!(s.endpoints.ws_api, "ws://127.0.0.1:1/ws-api/v3");
        assert_eq!(s.recv_window_ms, 3000);
        assert!(toml::from_str::<BinanceConfig>("mode = \"testnet\"\nbogus = 1").is_err());
        let bad = BinanceConfig { recv_window_ms: 60_001, ..cfg };
        assert_eq!(bad.resolve(None).unwrap_err().field, "recv_window_ms");
        assert_eq!(BinanceConfig::default().resolve(None).unwrap_err().field, "mode");
    }

    #[test]
    fn an_ed25519_key_comes_from_the_pem_file_the_environment_names() {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let dir = tempfile::tempdir().unwrap();
        let pem = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).to_pkcs8_pem(LineEnding::LF).unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, pem.as_bytes()).unwrap();
        std::env::set_var("KEEL_TEST_ED_KEY_C", "ed-key");
        let cfg = BinanceConfig {
            mode: BinanceMode::Testnet,
            api_key_env: "KEEL_TEST_ED_KEY_C".into(),
            api_secret_env: "KEEL_TEST_ED_SECRET_C".into(),
            private_key_path_env: "KEEL_TEST_ED_PATH_C".into(),
            ..BinanceConfig::default()
        };
        // Neither a secret nor a key file: the error names both variables.
        let err = cfg.resolve(None).unwrap_err();
        assert_eq!(err.field, "api_secret_env");
        assert!(err.reason.contains("KEEL_TEST_ED_PATH_C"), "{err}");
        std::env::set_var("KEEL_TEST_ED_PATH_C", &path);
        let s = cfg.resolve(None).unwrap();
        assert!(s.credentials.is_ed25519());
        assert_eq!(s.credentials.api_key(), "ed-key");
        assert_eq!(s.order_transport, OrderTransport::Ws, "orders go over the WebSocket API by default");
        assert!(!format!("{s:?}").contains("PRIVATE"), "the key is never printed");
        // A file that is not a key: named, its content not echoed.
        std::fs::write(&path, "not-a-key-material").unwrap();
        let err = cfg.resolve(None).unwrap_err();
        assert_eq!(err.field, "private_key_path_env");
        assert!(err.reason.contains("key.pem") && !err.reason.contains("not-a-key-material"), "{err}");
        std::env::set_var("KEEL_TEST_ED_PATH_C", dir.path().join("missing.pem"));
        assert!(cfg.resolve(None).unwrap_err().reason.contains("cannot read"));
        let rest: BinanceConfig = toml::from_str("order_transport = \"rest\"").unwrap();
        assert_eq!(rest.order_transport, OrderTransport::Rest);
        assert!(toml::from_str::<BinanceConfig>("order_transport = \"fix\"").is_err());
    }

    #[test]
    fn interval_names() {
        assert_eq!(interval_name(60_000), Some("1m"));
        assert_eq!(interval_name(3_600_000), Some("1h"));
        assert_eq!(interval_name(61_000), None);
    }
}
