//! `[venue.coinbase]`: where the Coinbase Advanced Trade adapter connects and
//! which environment variables hold its CDP key, for `exchange = "coinbase"`.
//!
//! Modes: `sandbox` is the embedded sandbox's Coinbase protocol, or — when
//! the three URLs are set — an external `keel sandbox --protocol coinbase`
//! (a venue that outlives Keel, as crash tests need; keys then come from
//! the environment); `mainnet` is Coinbase (real money: confirmed, and URL
//! overrides only to Coinbase's own hosts over TLS); `paper` does not use
//! this section. Coinbase has no testnet with WebSockets (its api-sandbox
//! serves static canned answers, reference §1), so `testnet` is refused.

use serde::{Deserialize, Serialize};

use super::{ConfigError, VenueMode};

/// Coinbase's REST base URL (reference §1; paths go under `/api/v3/brokerage`).
pub const MAINNET_REST_URL: &str = "https://api.coinbase.com";
/// Coinbase's market-data WebSocket.
pub const MAINNET_WS_MARKET_URL: &str = "wss://advanced-trade-ws.coinbase.com";
/// Coinbase's user-data WebSocket.
pub const MAINNET_WS_USER_URL: &str = "wss://advanced-trade-ws-user.coinbase.com";

/// `[venue.coinbase]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoinbaseConfig {
    /// The variable holding the CDP key name (`organizations/…/apiKeys/…`).
    pub api_key_name_env: String,
    /// The variable holding the private key itself (PEM, or Ed25519 as raw base64).
    pub private_key_env: String,
    /// The variable holding the path of a PEM file with the private key
    /// (read when `private_key_env`'s variable is unset).
    pub private_key_path_env: String,
    /// REST base URL override (without `/api/v3/brokerage`).
    pub rest_url: Option<String>,
    /// Market-data WebSocket URL override.
    pub ws_market_url: Option<String>,
    /// User-data WebSocket URL override.
    pub ws_user_url: Option<String>,
    /// Must be true (here or in `[venue]`) for `mode = "mainnet"`.
    pub confirm_mainnet: bool,
}

impl Default for CoinbaseConfig {
    fn default() -> Self {
        Self {
            api_key_name_env: "KEEL_COINBASE_API_KEY_NAME".into(),
            private_key_env: "KEEL_COINBASE_PRIVATE_KEY".into(),
            private_key_path_env: "KEEL_COINBASE_PRIVATE_KEY_PATH".into(),
            rest_url: None,
            ws_market_url: None,
            ws_user_url: None,
            confirm_mainnet: false,
        }
    }
}

/// Where the adapter connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoinbaseEndpoints {
    /// REST base URL.
    pub rest: String,
    /// Market-data WebSocket URL.
    pub ws_market: String,
    /// User-data WebSocket URL.
    pub ws_user: String,
}

impl CoinbaseConfig {
    /// The URL overrides with their config keys.
    fn urls(&self) -> [(&'static str, &Option<String>, &'static str); 3] {
        [
            ("rest_url", &self.rest_url, "https://"),
            ("ws_market_url", &self.ws_market_url, "wss://"),
            ("ws_user_url", &self.ws_user_url, "wss://"),
        ]
    }

    /// Whether `mode = "sandbox"` uses an external `keel sandbox --protocol
    /// coinbase` (the URLs are set) rather than starting the embedded one.
    pub fn external_sandbox(&self) -> bool {
        self.urls().iter().any(|(_, url, _)| url.is_some())
    }

    /// The URLs for `mode`: mainnet's defaults unless overridden; for an
    /// external sandbox the overrides (all three, checked by
    /// [`CoinbaseConfig::validate`]). `None` for the embedded sandbox and paper.
    pub fn endpoints(&self, mode: VenueMode) -> Option<CoinbaseEndpoints> {
        let pick = |url: &Option<String>, default: &str| url.clone().unwrap_or_else(|| default.to_string());
        match mode {
            VenueMode::Mainnet => Some(CoinbaseEndpoints {
                rest: pick(&self.rest_url, MAINNET_REST_URL),
                ws_market: pick(&self.ws_market_url, MAINNET_WS_MARKET_URL),
                ws_user: pick(&self.ws_user_url, MAINNET_WS_USER_URL),
            }),
            VenueMode::Sandbox if self.external_sandbox() => Some(CoinbaseEndpoints {
                rest: self.rest_url.clone()?,
                ws_market: self.ws_market_url.clone()?,
                ws_user: self.ws_user_url.clone()?,
            }),
            _ => None,
        }
    }

    /// Checks the section for `mode` (`confirmed`: `[venue] confirm_mainnet`).
    /// Keys in the environment are checked when the venue is built.
    pub fn validate(&self, mode: VenueMode, confirmed: bool) -> Result<(), ConfigError> {
        for (field, var) in [
            ("api_key_name_env", &self.api_key_name_env),
            ("private_key_env", &self.private_key_env),
            ("private_key_path_env", &self.private_key_path_env),
        ] {
            if var.trim().is_empty() {
                return Err(ConfigError::new(format!("venue.coinbase.{field}"), "must name an environment variable"));
            }
        }
        match mode {
            VenueMode::Testnet => {
                return Err(ConfigError::new(
                    "venue.mode",
                    "Coinbase has no testnet (its api-sandbox serves static canned answers and no WebSockets); \
                     use mode = \"sandbox\" (the embedded Coinbase-protocol sandbox) or \"mainnet\"",
                ))
            }
            VenueMode::Mainnet if !(confirmed || self.confirm_mainnet) => {
                return Err(ConfigError::new(
                    "venue.confirm_mainnet",
                    "mode = \"mainnet\" trades real money; add confirm_mainnet = true under [venue] to allow it",
                ))
            }
            VenueMode::Mainnet => {
                for (field, url, scheme) in self.urls() {
                    if let Some(url) = url {
                        super::mainnet::check_url(
                            &format!("venue.coinbase.{field}"),
                            url,
                            scheme,
                            ("Coinbase", "coinbase.com"),
                        )?;
                    }
                }
            }
            VenueMode::Sandbox if self.external_sandbox() => {
                for (field, url, _) in self.urls() {
                    let key = format!("venue.coinbase.{field}");
                    let Some(url) = url else {
                        return Err(ConfigError::new(
                            key,
                            "an external sandbox needs rest_url, ws_market_url and ws_user_url together \
                             (or none of them, for the embedded sandbox)",
                        ));
                    };
                    let schemes: &[&str] = if field == "rest_url" { &["http", "https"] } else { &["ws", "wss"] };
                    let ok = reqwest::Url::parse(url).is_ok_and(|u| schemes.contains(&u.scheme()) && u.has_host());
                    if !ok {
                        return Err(ConfigError::new(
                            key,
                            format!("`{url}` is not a {} URL with a host", schemes.join(" or ")),
                        ));
                    }
                }
            }
            VenueMode::Sandbox | VenueMode::Paper => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_checks_what_it_uses() {
        let external = CoinbaseConfig {
            rest_url: Some("http://127.0.0.1:9000".into()),
            ws_market_url: Some("ws://127.0.0.1:9000/coinbase/ws".into()),
            ws_user_url: Some("ws://127.0.0.1:9000/coinbase/ws-user".into()),
            ..CoinbaseConfig::default()
        };
        let half = CoinbaseConfig { ws_user_url: None, ..external.clone() };
        let bad_scheme = CoinbaseConfig { rest_url: Some("ws://127.0.0.1:9000".into()), ..external.clone() };
        let evil =
            CoinbaseConfig { rest_url: Some("https://api.coinbase.com.evil.example".into()), ..Default::default() };
        let own_host = CoinbaseConfig { rest_url: Some("https://api.coinbase.com/".into()), ..Default::default() };
        let plain = CoinbaseConfig {
            ws_user_url: Some("ws://advanced-trade-ws-user.coinbase.com".into()),
            ..Default::default()
        };
        let no_var = CoinbaseConfig { private_key_env: " ".into(), ..Default::default() };
        let cases: [(&CoinbaseConfig, VenueMode, bool, Option<&str>); 11] = [
            (&CoinbaseConfig::default(), VenueMode::Sandbox, false, None),
            (&external, VenueMode::Sandbox, false, None),
            (&half, VenueMode::Sandbox, false, Some("venue.coinbase.ws_user_url")),
            (&bad_scheme, VenueMode::Sandbox, false, Some("venue.coinbase.rest_url")),
            (&CoinbaseConfig::default(), VenueMode::Testnet, false, Some("venue.mode")),
            (&CoinbaseConfig::default(), VenueMode::Mainnet, false, Some("venue.confirm_mainnet")),
            (&CoinbaseConfig { confirm_mainnet: true, ..Default::default() }, VenueMode::Mainnet, false, None),
            (&own_host, VenueMode::Mainnet, true, None),
            (&evil, VenueMode::Mainnet, true, Some("venue.coinbase.rest_url")),
            (&plain, VenueMode::Mainnet, true, Some("venue.coinbase.ws_user_url")),
            (&no_var, VenueMode::Sandbox, false, Some("venue.coinbase.private_key_env")),
        ];
        for (i, (cfg, mode, confirmed, want)) in cases.into_iter().enumerate() {
            let got = cfg.validate(mode, confirmed).err().map(|e| e.key);
            assert_eq!(got.as_deref(), want, "case {i}");
        }
    }

    #[test]
    fn endpoints_default_to_coinbase_on_mainnet_and_to_the_overrides_on_an_external_sandbox() {
        let d = CoinbaseConfig::default();
        let main = d.endpoints(VenueMode::Mainnet).unwrap();
        assert_eq!((main.rest.as_str(), main.ws_market.as_str()), (MAINNET_REST_URL, MAINNET_WS_MARKET_URL));
        assert_eq!(d.endpoints(VenueMode::Sandbox), None, "embedded");
        let ext = CoinbaseConfig {
            rest_url: Some("http://127.0.0.1:1".into()),
            ws_market_url: Some("ws://127.0.0.1:1/m".into()),
            ws_user_url: Some("ws://127.0.0.1:1/u".into()),
            ..d
        };
        assert_eq!(ext.endpoints(VenueMode::Sandbox).unwrap().ws_user, "ws://127.0.0.1:1/u");
    }
}
