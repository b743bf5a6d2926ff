//! Mainnet trades real money, so its URL overrides may only point at
//! the venue's own hosts over TLS (Binance's here; Coinbase's in
//! `coinbase.rs` with [`check_url`]): a testnet URL, another host or `http://`
//! under `mode = "mainnet"` is a mistake that would either fail in odd ways
//! or send signed requests somewhere else. Sandbox and testnet keep taking
//! any override (tests point them at local sandboxes).

use keel_binance::BinanceConfig;

use super::ConfigError;

/// Checks `[venue.binance]` URL overrides for mainnet: `https://` or `wss://`
/// and a host that is `binance.com` or under it. One error, naming the key.
pub fn validate_urls(b: &BinanceConfig) -> Result<(), ConfigError> {
    for (field, url, scheme) in [
        ("rest_url", &b.rest_url, "https://"),
        ("ws_stream_url", &b.ws_stream_url, "wss://"),
        ("ws_api_url", &b.ws_api_url, "wss://"),
        ("fapi_rest_url", &b.fapi_rest_url, "https://"),
        ("fapi_ws_url", &b.fapi_ws_url, "wss://"),
    ] {
        if let Some(url) = url {
            check_url(&format!("venue.binance.{field}"), url, scheme, ("Binance", "binance.com"))?;
        }
    }
    Ok(())
}

/// Checks one mainnet URL override (config key `key`): it starts with
/// `scheme` and its host is the venue's `domain` or under it (no user info).
pub fn check_url(key: &str, url: &str, scheme: &str, (venue, domain): (&str, &str)) -> Result<(), ConfigError> {
    let Some(rest) = url.strip_prefix(scheme) else {
        return Err(ConfigError::new(
            key,
            format!("`{url}`: mainnet needs an encrypted {scheme} URL (plain http:// or ws:// would expose signed requests)"),
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h).to_ascii_lowercase();
    let own = !authority.contains('@') && (host == domain || host.ends_with(&format!(".{domain}")));
    if !own {
        return Err(ConfigError::new(
            key,
            format!("`{url}` is not a {venue} mainnet host (*.{domain}); with mode = \"mainnet\" remove the override or fix the mode"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_binance_hosts_over_tls() {
        let cases = [
            ("rest_url", "https://api.binance.com", true),
            ("rest_url", "https://api4.binance.com/", true),
            ("ws_stream_url", "wss://stream.binance.com:9443", true),
            ("ws_api_url", "wss://ws-api.binance.com:443/ws-api/v3", true),
            ("rest_url", "http://api.binance.com", false),
            ("ws_stream_url", "ws://stream.binance.com:9443", false),
            ("rest_url", "https://testnet.binance.vision", false),
            ("ws_api_url", "wss://ws-api.testnet.binance.vision/ws-api/v3", false),
            ("rest_url", "https://127.0.0.1:9000", false),
            ("rest_url", "https://api.binance.com.evil.example", false),
            ("rest_url", "https://evil.example/api.binance.com", false),
            ("rest_url", "https://api.binance.com@evil.example", false),
            ("fapi_rest_url", "https://fapi.binance.com", true),
            ("fapi_ws_url", "wss://fstream.binance.com", true),
            ("fapi_rest_url", "https://demo-fapi.binance.com.evil.example", false),
            ("fapi_rest_url", "http://fapi.binance.com", false),
            ("fapi_ws_url", "ws://fstream.binance.com", false),
        ];
        for (field, url, ok) in cases {
            let mut b = BinanceConfig::default();
            match field {
                "rest_url" => b.rest_url = Some(url.into()),
                "ws_stream_url" => b.ws_stream_url = Some(url.into()),
                "fapi_rest_url" => b.fapi_rest_url = Some(url.into()),
                "fapi_ws_url" => b.fapi_ws_url = Some(url.into()),
                _ => b.ws_api_url = Some(url.into()),
            }
            match validate_urls(&b) {
                Ok(()) => assert!(ok, "{url} accepted"),
                Err(e) => {
                    assert!(!ok, "{url} refused: {e:?}");
                    assert_eq!(e.key, format!("venue.binance.{field}"), "{url}");
                }
            }
        }
    }
}
