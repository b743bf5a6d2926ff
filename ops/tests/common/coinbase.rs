//! A standalone `keel sandbox --protocol coinbase`: a Coinbase-protocol
//! venue that outlives Keel's runs, its ready line, and what points Keel
//! and a test's own adapter at it.

use std::path::Path;
use std::process::Child;
use std::sync::Arc;

/// Variables the Keel config names for the sandbox's key (set only for `keel run`).
pub const KEY_NAME_ENV: &str = "KEEL_TEST_COINBASE_KEY_NAME";
/// The variable with the path of its private key.
pub const KEY_PATH_ENV: &str = "KEEL_TEST_COINBASE_KEY_PATH";
/// The variable for the PEM itself, left unset: the path is used.
pub const KEY_PEM_ENV: &str = "KEEL_TEST_COINBASE_PEM_UNSET";

/// A running `keel sandbox --protocol coinbase` and what its ready line said.
pub struct CoinbaseSandbox {
    child: Child,
    /// REST base URL (`http://127.0.0.1:PORT`).
    pub rest_url: String,
    /// Market-data WebSocket URL.
    pub ws_market_url: String,
    /// User WebSocket URL.
    pub ws_user_url: String,
    /// The test key's name.
    pub api_key_name: String,
    /// Its private key file (in the sandbox's working dir).
    pub private_key_path: String,
}

impl CoinbaseSandbox {
    /// Starts `keel sandbox --protocol coinbase --listen 127.0.0.1:0 --config
    /// CONFIG` in the config's dir and waits for its ready line.
    pub fn start(config: &Path) -> Self {
        let (child, s) = super::spawn_sandbox(config, &["--protocol", "coinbase"]);
        Self {
            rest_url: s("rest_url"),
            ws_market_url: s("ws_market_url"),
            ws_user_url: s("ws_user_url"),
            api_key_name: s("api_key_name"),
            private_key_path: s("private_key_path"),
            child,
        }
    }

    /// `[venue.coinbase]` lines pointing Keel at this sandbox (an external
    /// one: the three URLs), keys from [`CoinbaseSandbox::env`].
    pub fn section(&self) -> String {
        format!(
            "[venue.coinbase]\nrest_url = \"{}\"\nws_market_url = \"{}\"\nws_user_url = \"{}\"\napi_key_name_env = \"{KEY_NAME_ENV}\"\nprivate_key_env = \"{KEY_PEM_ENV}\"\nprivate_key_path_env = \"{KEY_PATH_ENV}\"\n",
            self.rest_url, self.ws_market_url, self.ws_user_url
        )
    }

    /// The environment holding the key, as an operator sets it.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [(KEY_NAME_ENV, self.api_key_name.clone()), (KEY_PATH_ENV, self.private_key_path.clone())]
    }

    /// The Coinbase adapter on this sandbox with the same key, for a test's
    /// own view of the venue.
    pub async fn venue(&self) -> keel_coinbase::CoinbaseVenue {
        let pem = std::fs::read_to_string(&self.private_key_path).expect("the key file");
        let creds = keel_coinbase::auth::Credentials::new(&self.api_key_name, &pem).expect("the test key loads");
        let settings = keel_coinbase::CoinbaseSettings {
            ws_market_url: self.ws_market_url.clone(),
            ws_user_url: self.ws_user_url.clone(),
            ..keel_coinbase::CoinbaseSettings::new(&self.rest_url, Arc::new(creds))
        };
        keel_coinbase::CoinbaseVenue::connect(settings).await.expect("the test connects to the sandbox")
    }
}

impl Drop for CoinbaseSandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
