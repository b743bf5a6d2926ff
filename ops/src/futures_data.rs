//! Where USDⓈ-M futures market data comes from for the configured venue: the
//! embedded (or an external) sandbox's fapi in mode `sandbox`, Binance's
//! futures hosts on testnet (Demo Trading) and mainnet, with the
//! `[venue.binance] fapi_rest_url` / `fapi_ws_url` overrides. Paper and
//! Coinbase have no futures market: none.

use anyhow::Context;
use keel_binance::usdm::{UsdmClient, UsdmConfig, DEMO_REST, DEMO_WS, MAINNET_REST, MAINNET_WS};
use keel_sandbox::SandboxHandle;

use crate::config::{Config, Exchange, VenueMode};

/// The futures client of `config`'s venue, or none where there is no futures
/// market (paper, Coinbase). In mode `sandbox` pass the running embedded
/// sandbox; without one the venue is an external sandbox and its URLs come
/// from `fapi_rest_url` (else `rest_url`: the sandbox serves fapi on its spot
/// port) and `fapi_ws_url` (else `ws_stream_url`). Mainnet overrides are
/// checked (Binance hosts over TLS) when the config is validated.
pub fn usdm_client(config: &Config, sandbox: Option<&SandboxHandle>) -> anyhow::Result<Option<UsdmClient>> {
    if config.venue.exchange == Exchange::Coinbase {
        return Ok(None);
    }
    let b = &config.venue.binance;
    let (rest, ws) = match config.venue.mode {
        VenueMode::Paper => return Ok(None),
        VenueMode::Sandbox => match sandbox {
            Some(sb) => (sb.rest_url.clone(), sb.ws_stream_url.clone()),
            None => {
                let rest = b.fapi_rest_url.clone().or_else(|| b.rest_url.clone()).context(
                    "mode = \"sandbox\" without the embedded sandbox needs venue.binance.fapi_rest_url (or rest_url)",
                )?;
                let ws = b.fapi_ws_url.clone().or_else(|| b.ws_stream_url.clone()).context(
                    "mode = \"sandbox\" without the embedded sandbox needs venue.binance.fapi_ws_url (or ws_stream_url)",
                )?;
                (rest, ws)
            }
        },
        VenueMode::Testnet => (DEMO_REST.to_string(), DEMO_WS.to_string()),
        VenueMode::Mainnet => (MAINNET_REST.to_string(), MAINNET_WS.to_string()),
    };
    // Overrides win in every mode (an embedded sandbox's own URLs too: a
    // test may point the futures side elsewhere).
    let rest = b.fapi_rest_url.clone().unwrap_or(rest);
    let ws = b.fapi_ws_url.clone().unwrap_or(ws);
    keel_binance::install_crypto_provider();
    let cfg = UsdmConfig {
        rest_url: rest.trim_end_matches('/').to_string(),
        ws_url: ws.trim_end_matches('/').to_string(),
        request_timeout_ms: b.request_timeout_ms,
        ..UsdmConfig::default()
    };
    let client = UsdmClient::new(cfg).map_err(|e| anyhow::anyhow!("venue.binance.fapi_rest_url `{rest}`: {e}"))?;
    Ok(Some(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text).expect("config")
    }

    #[test]
    fn no_futures_on_paper_or_coinbase_and_binance_hosts_by_mode() {
        let none = |text: &str| usdm_client(&config(text), None).expect("no error").is_none();
        assert!(none("[venue]\nmode = \"paper\"\n"));
        assert!(none("[venue]\nexchange = \"coinbase\"\nmode = \"sandbox\"\n"));

        let url = |text: &str| {
            let c = usdm_client(&config(text), None).expect("no error").expect("a client");
            c.config().rest_url.clone()
        };
        assert_eq!(url("[venue]\nmode = \"testnet\"\n"), DEMO_REST);
        assert_eq!(url("[venue]\nmode = \"mainnet\"\nconfirm_mainnet = true\n"), MAINNET_REST);
        assert_eq!(
            url("[venue]\nmode = \"mainnet\"\nconfirm_mainnet = true\n[venue.binance]\nfapi_rest_url = \"https://fapi1.binance.com/\"\n"),
            "https://fapi1.binance.com"
        );
        assert_eq!(
            url("[venue]\nmode = \"sandbox\"\n[venue.binance]\nrest_url = \"http://127.0.0.1:9\"\nws_stream_url = \"ws://127.0.0.1:9\"\n"),
            "http://127.0.0.1:9",
            "an external sandbox serves fapi on its spot port"
        );
        let err = usdm_client(&config("[venue]\nmode = \"sandbox\"\n"), None).err().expect("no sandbox, no URL");
        assert!(err.to_string().contains("venue.binance.fapi_rest_url"), "{err}");
    }

    #[test]
    fn mainnet_futures_overrides_must_be_binance_hosts_over_tls() {
        let err = Config::parse(
            "[venue]\nmode = \"mainnet\"\nconfirm_mainnet = true\n[venue.binance]\nfapi_rest_url = \"https://fapi.evil.example\"\n",
        )
        .expect_err("refused");
        assert!(format!("{err:?}").contains("venue.binance.fapi_rest_url"), "{err:?}");
    }
}
