//! `[sandbox] synthetic_symbols`: a whole market offline. The extra USDT
//! pairs are listed (spot and perpetual), their prices and 24 h quote volumes
//! lie orders of magnitude apart, and as the market runs the ranking by 24 h
//! quote volume — what a universe is built from — changes, in spot
//! `ticker/24hr`.

use rust_decimal::Decimal;
use serde_json::Value;

use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

async fn get(sb: &SandboxHandle, path: &str) -> Value {
    let resp = reqwest::get(format!("{}{path}", sb.rest_url)).await.expect("answers");
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    resp.json().await.expect("JSON")
}

fn dec(v: &Value) -> Decimal {
    v.as_str().expect("a string").parse().expect("a decimal")
}

/// Symbols by 24 h quote volume, highest first.
async fn ranking(sb: &SandboxHandle) -> Vec<String> {
    let tickers = get(sb, "/api/v3/ticker/24hr").await;
    let mut rows: Vec<(Decimal, String)> = tickers
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| (dec(&t["quoteVolume"]), t["symbol"].as_str().expect("symbol").to_string()))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.into_iter().map(|(_, s)| s).collect()
}

#[tokio::test]
async fn synthetic_pairs_are_listed_varied_and_their_volume_ranking_changes() {
    // One tick per bar (a step is a minute) and a full day of history.
    let cfg = SandboxConfig { synthetic_symbols: 30, ticks_per_bar: 1, history_bars: 1440, ..SandboxConfig::default() };
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    sb.market.pause();

    let info = get(&sb, "/api/v3/exchangeInfo").await;
    let listed: Vec<&str> = info["symbols"].as_array().unwrap().iter().map(|s| s["symbol"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 32, "{listed:?}");
    assert!(listed.contains(&"S001USDT") && listed.contains(&"S030USDT"));
    let perps = get(&sb, "/fapi/v1/premiumIndex").await;
    assert_eq!(perps.as_array().unwrap().len(), 32, "a perpetual per pair");

    let tickers = get(&sb, "/api/v3/ticker/24hr").await;
    let synthetic: Vec<&Value> =
        tickers.as_array().unwrap().iter().filter(|t| t["symbol"].as_str().unwrap().starts_with('S')).collect();
    let spread = |key: &str| {
        let v: Vec<Decimal> = synthetic.iter().map(|t| dec(&t[key])).collect();
        let (lo, hi) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
        assert!(lo > Decimal::ZERO, "{key}: {lo}");
        hi / lo
    };
    assert!(spread("lastPrice") > Decimal::from(1000), "prices lie orders of magnitude apart");
    assert!(spread("quoteVolume") > Decimal::from(10), "so do volumes");

    // The waves start with the history, so this market is the same at every run.
    let before = ranking(&sb).await;
    sb.market.step(24 * 60);
    let after = ranking(&sb).await;
    assert_eq!(after.len(), 32);
    let top = |r: &[String]| {
        let mut t = r[..5].to_vec();
        t.sort();
        t
    };
    assert_ne!(top(&before), top(&after), "a day on, the top five by quote volume are not the same five");
    let moved = before
        .iter()
        .enumerate()
        .filter(|(i, s)| after.iter().position(|a| a == *s).is_some_and(|j| j.abs_diff(*i) >= 3))
        .count();
    assert!(moved >= 5, "{moved} symbols moved 3 places or more: {before:?} -> {after:?}");
}

#[tokio::test]
async fn ticker_24hr_type_mini_lists_every_symbol_with_the_mini_fields() {
    let cfg = SandboxConfig { synthetic_symbols: 30, ticks_per_bar: 1, history_bars: 120, ..SandboxConfig::default() };
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    sb.market.pause();
    let full = get(&sb, "/api/v3/ticker/24hr").await;
    let mini = get(&sb, "/api/v3/ticker/24hr?type=MINI").await;
    let (full, mini) = (full.as_array().unwrap(), mini.as_array().unwrap());
    assert_eq!(mini.len(), 32, "every listed symbol");
    for (f, m) in full.iter().zip(mini) {
        assert_eq!(f["symbol"], m["symbol"]);
        for key in ["openPrice", "lastPrice", "quoteVolume", "volume", "highPrice", "lowPrice", "count"] {
            assert_eq!(f[key], m[key], "{key} of {}", m["symbol"]);
        }
        for key in ["priceChange", "priceChangePercent", "bidPrice", "lastQty", "prevClosePrice"] {
            assert!(m.get(key).is_none(), "MINI has no {key}");
        }
    }
    let resp = reqwest::get(format!("{}/api/v3/ticker/24hr?type=HALF", sb.rest_url)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], -1100, "{body}");
}
