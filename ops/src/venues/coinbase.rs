//! Builds the Coinbase venue (`[venue] exchange = "coinbase"`): the
//! Coinbase Advanced Trade adapter connected to the embedded sandbox's
//! Coinbase protocol (`mode = "sandbox"`), to an external `keel sandbox
//! --protocol coinbase` (`mode = "sandbox"` with `[venue.coinbase]` URLs) or
//! to Coinbase (`mode = "mainnet"`). Same start as Binance: connect with
//! the start-up patience, continue the fill cursors the store holds, check
//! clock and key, and say so in one line.

use std::sync::Arc;

use anyhow::Context;
use keel_coinbase::auth::{Algorithm, Credentials};
use keel_coinbase::{CoinbaseSettings, CoinbaseVenue};
use keel_core::store::Store;
use keel_sandbox::{SandboxConfig, SandboxHandle};

use super::{embedded_sandbox_config, BuiltVenue, EmbeddedSandbox, StoredAccount};
use crate::config::{CoinbaseConfig, Config};
use crate::secret::Secret;

/// Builds the Coinbase venue for `config.venue.mode` (sandbox or mainnet;
/// the config check refuses testnet, and paper is built by the caller).
pub async fn build(
    config: &Config,
    stored: &StoredAccount,
    store: Option<&dyn Store>,
    now_ms: i64,
) -> anyhow::Result<BuiltVenue> {
    let cb = &config.venue.coinbase;
    let (settings, sandbox) = match cb.endpoints(config.venue.mode) {
        Some(urls) => {
            let creds = credentials_from_env(cb)?;
            let settings = CoinbaseSettings {
                ws_market_url: urls.ws_market,
                ws_user_url: urls.ws_user,
                ..CoinbaseSettings::new(&urls.rest, Arc::new(creds))
            };
            (settings, None)
        }
        None => {
            let sandbox = EmbeddedSandbox::start(embedded_coinbase_config(config, stored, now_ms)).await?;
            let h = sandbox.handle();
            tracing::info!(
                rest = %h.coinbase_rest_url,
                ws_market = %h.coinbase_ws_market_url,
                ws_user = %h.coinbase_ws_user_url,
                continued_balances = stored.balances.as_ref().is_some_and(|b| !b.assets.is_empty()),
                "embedded sandbox exchange started (Coinbase Advanced Trade protocol)"
            );
            (sandbox_settings(h)?, Some(sandbox))
        }
    };
    let venue = connect(config, settings, stored, store).await?;
    Ok(BuiltVenue { venue, tasks: Vec::new(), sandbox })
}

/// The embedded sandbox's settings with its Coinbase test key (the first
/// account's; kept in its state dir, so a restart signs with the same key).
/// Its products are the configured `[[symbol]]`s, named by base and quote
/// (`BTC-USD`), which the config check makes the symbols themselves.
pub fn embedded_coinbase_config(config: &Config, stored: &StoredAccount, now_ms: i64) -> SandboxConfig {
    let mut sb = embedded_sandbox_config(config, stored, now_ms);
    sb.generate_coinbase_key = true;
    // Only the key this venue signs with is made.
    sb.generate_ed25519_key = false;
    sb
}

/// Adapter settings for a running sandbox's Coinbase protocol: its URLs and
/// its generated test key, handed over directly (as `local_exchange` does
/// for Binance).
pub fn sandbox_settings(sandbox: &SandboxHandle) -> anyhow::Result<CoinbaseSettings> {
    let (Some(name), Some(pem)) = (&sandbox.coinbase_key_name, &sandbox.coinbase_private_key_pem) else {
        anyhow::bail!(
            "the embedded sandbox made no Coinbase test key (its first [[sandbox.accounts]] registers its own \
             coinbase_public_key, whose private key Keel does not have): remove it, or run `keel sandbox \
             --protocol coinbase` and point [venue.coinbase] at it"
        );
    };
    let creds = Credentials::new(name, pem).context("the embedded sandbox's Coinbase test key is unreadable")?;
    Ok(CoinbaseSettings {
        ws_market_url: sandbox.coinbase_ws_market_url.clone(),
        ws_user_url: sandbox.coinbase_ws_user_url.clone(),
        ..CoinbaseSettings::new(&sandbox.coinbase_rest_url, Arc::new(creds))
    })
}

/// The CDP key from the variables `[venue.coinbase]` names: the key name,
/// and the private key itself or, when that variable is unset, the path of
/// its PEM file. Each value is redacted from the logs once read; errors name
/// the variable and its config key, never a value.
fn credentials_from_env(cb: &CoinbaseConfig) -> anyhow::Result<Credentials> {
    let name = Secret::from_env(&cb.api_key_name_env).with_context(|| {
        format!(
            "config error at `venue.coinbase.api_key_name_env`: the variable {} (the CDP key name) is not set",
            cb.api_key_name_env
        )
    })?;
    let pem = match Secret::from_env(&cb.private_key_env) {
        Some(pem) => pem,
        None => {
            let path = std::env::var(&cb.private_key_path_env).ok().filter(|p| !p.trim().is_empty());
            let Some(path) = path else {
                anyhow::bail!(
                    "config error at `venue.coinbase.private_key_env`: neither {} (the private key) nor {} (the path of its PEM file) is set",
                    cb.private_key_env,
                    cb.private_key_path_env
                );
            };
            let text = std::fs::read_to_string(path.trim()).with_context(|| {
                format!("cannot read the Coinbase private key file named by {}", cb.private_key_path_env)
            })?;
            crate::log_scrub::register(&text);
            Secret::new(text)
        }
    };
    Credentials::new(name.expose(), pem.expose())
        .map_err(|e| anyhow::anyhow!("the Coinbase key in {} / {}: {e}", cb.api_key_name_env, key_var(cb)))
}

/// The variable the private key came from (for messages).
fn key_var(cb: &CoinbaseConfig) -> &str {
    if std::env::var_os(&cb.private_key_env).is_some() {
        &cb.private_key_env
    } else {
        &cb.private_key_path_env
    }
}

/// How the start-up line names a key type.
fn key_type(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Es256 => "ec",
        Algorithm::EdDsa => "ed25519",
    }
}

/// Connects the adapter with the start-up patience, continues the store's
/// fill cursors and tells it the client ids of orders that may be working,
/// then runs the start-up check: connectivity, clock offset, key
/// permissions. A venue that cannot be reached or refuses the key stops
/// the start; a key that cannot trade is an error line.
async fn connect(
    config: &Config,
    settings: CoinbaseSettings,
    stored: &StoredAccount,
    store: Option<&dyn Store>,
) -> anyhow::Result<Arc<dyn keel_core::venue::Venue>> {
    keel_coinbase::install_crypto_provider();
    let mode = config.venue.mode.as_str();
    let (rest, ws_market, ws_user) =
        (settings.rest_url.clone(), settings.ws_market_url.clone(), settings.ws_user_url.clone());
    let key_type = key_type(settings.credentials.algorithm());
    let patience = actors::patience::Patience::new(std::time::Duration::from_millis(
        config.engine.startup_deadline.0.max(0) as u64,
    ));
    let venue = actors::patience::retrying(&patience, "connect", || CoinbaseVenue::connect(settings.clone()))
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to Coinbase {mode} at {rest}: {e}"))?;
    for (symbol, cursor) in &stored.cursors {
        venue.seed_fill_cursor(symbol, cursor);
    }
    if let Some(store) = store {
        match store.open_orders() {
            Ok(open) => venue.remember_client_ids(open.iter().map(|o| o.client_order_id.as_str())),
            Err(e) => tracing::warn!(error = %e, "cannot read the stored open orders for the Coinbase adapter"),
        }
    }
    let report =
        actors::patience::retrying(&patience, "account check", || venue.startup_check()).await.map_err(|e| {
            anyhow::anyhow!(
                "Coinbase {mode} at {rest}: the key check failed (key name, private key or permissions?): {e}"
            )
        })?;
    let p = &report.permissions;
    tracing::info!(
        venue = mode,
        rest = %rest,
        ws_market = %ws_market,
        ws_user = %ws_user,
        clock_offset_ms = report.clock_offset_ms,
        can_view = p.can_view,
        can_trade = p.can_trade,
        can_transfer = p.can_transfer,
        portfolio_type = %p.portfolio_type,
        products = report.products,
        key_type,
        "connected to Coinbase"
    );
    super::report_startup_problems(
        mode,
        report.clock_offset_ms,
        (!p.can_trade).then_some(("can_trade = false", "give the CDP key the trade permission")),
    );
    if p.can_transfer {
        tracing::warn!(
            "the API key may transfer funds (can_transfer = true): Keel never needs it; a trade-only key is safer"
        );
    }
    Ok(Arc::new(venue))
}
