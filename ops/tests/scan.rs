//! `keel scan`, the real binary on loopback: against the embedded sandbox of
//! a config with `[sandbox] synthetic_symbols = 30` (sorted as asked for
//! every `--sort`, every field present, `--top` honoured, a table with a
//! header and N rows, nothing written where it runs); against a paused
//! external sandbox whose own REST it must agree with, figure by figure; on
//! paper (the futures columns null), on Coinbase and with bad flags (one
//! clear error).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use rust_decimal::Decimal;
use serde_json::Value;

use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

/// Every field of a JSON row.
const FIELDS: [&str; 12] = [
    "symbol",
    "quote_volume",
    "change_pct",
    "last_price",
    "mark_price",
    "funding_rate",
    "funding_interval_hours",
    "funding_annualised_pct",
    "next_funding_time",
    "open_interest",
    "open_interest_notional",
    "open_interest_change_pct",
];

fn keel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("keel runs")
}

fn ok_stdout(out: &Output) -> String {
    assert!(out.status.success(), "keel scan failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scan_json(dir: &Path, config: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["scan", "--config", config, "--json"];
    args.extend_from_slice(extra);
    let text = ok_stdout(&keel(dir, &args));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON ({e}): {text}"));
    v.as_array().expect("an array").clone()
}

fn dec(v: &Value) -> Option<Decimal> {
    v.as_str().map(|s| s.parse().unwrap_or_else(|e| panic!("{s:?} is not a decimal: {e}")))
}

/// The figure a sort key ranks by.
fn key_of(row: &Value, sort: &str) -> Option<Decimal> {
    match sort {
        "volume" => dec(&row["quote_volume"]),
        "change" => dec(&row["change_pct"]),
        "funding" => dec(&row["funding_rate"]).map(|f| f.abs()),
        "oi_change" => dec(&row["open_interest_change_pct"]),
        other => panic!("{other}"),
    }
}

fn assert_sorted(rows: &[Value], sort: &str) {
    let keys: Vec<Option<Decimal>> = rows.iter().map(|r| key_of(r, sort)).collect();
    assert!(keys.windows(2).all(|w| w[0] >= w[1]), "--sort {sort}: highest first, missing last: {keys:?}");
}

fn assert_fields(row: &Value) {
    let obj = row.as_object().expect("an object");
    assert_eq!(obj.len(), FIELDS.len(), "{row}");
    for f in FIELDS {
        assert!(obj.contains_key(f), "{f} missing in {row}");
    }
    for f in ["quote_volume", "last_price", "mark_price", "funding_rate", "open_interest", "open_interest_notional"] {
        assert!(dec(&row[f]).is_some(), "{f} is a decimal string (every sandbox pair has a perpetual): {row}");
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    names.sort();
    names
}

/// Four hours of one-tick bars: the 5m open-interest points exist, and a
/// debug build starts the sandbox in a fraction of a second.
const FAST: &str = "history_bars = 240\nticks_per_bar = 1\n";

#[test]
fn scan_of_the_embedded_synthetic_market_sorts_as_asked_and_prints_a_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("scan.toml"),
        format!("[venue]\nmode = \"sandbox\"\n\n[sandbox]\nsynthetic_symbols = 30\n{FAST}"),
    )
    .expect("config");
    for (sort, top) in [("volume", 7usize), ("change", 32), ("funding", 32), ("oi_change", 5)] {
        let rows = scan_json(dir.path(), "scan.toml", &["--sort", sort, "--top", &top.to_string()]);
        assert_eq!(rows.len(), top, "--top {top} of 32 eligible pairs");
        rows.iter().for_each(assert_fields);
        assert!(rows.iter().all(|r| r["symbol"].as_str().is_some_and(|s| s.ends_with("USDT"))));
        assert_sorted(&rows, sort);
        if top == 32 {
            let synthetic = rows.iter().filter(|r| r["symbol"].as_str().is_some_and(|s| s.starts_with('S'))).count();
            assert_eq!(synthetic, 30, "all 30 synthetic pairs are eligible");
        }
    }

    let out = keel(dir.path(), &["scan", "--config", "scan.toml", "--top", "6", "--sort", "funding"]);
    let text = ok_stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "a header and 6 rows:\n{text}");
    for column in ["SYMBOL", "VOL 24h USDT", "CHG 24h %", "FUNDING %", "FUND/YR %", "NEXT FUNDING UTC", "OI Δ5m %"] {
        assert!(lines[0].contains(column), "{column} in the header: {}", lines[0]);
    }
    assert!(lines[1].trim_start().starts_with("1 "), "{}", lines[1]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("absolute funding"), "the ranking is named");
    assert_eq!(files_in(dir.path()), ["scan.toml"], "a scan writes no data dir and no sandbox state");
}

/// A paused sandbox (one tick per 1m bar, six hours of history) the scan reads
/// as an external venue, and the config that points at it.
async fn paused_sandbox(dir: &Path) -> (SandboxHandle, String) {
    // A wide basis (100 bp, not the default 15) settled hourly on the
    // synthetic pairs: the funding estimate averages the basis since the last
    // settlement (a sine of period 6 h 07 m), so over an 8 h interval it
    // depends on the wall clock — at 06:07, 14:07 and 22:07 UTC the window is
    // one whole period and every estimate is the interest rate, when ranking
    // by |funding| could not be told from by sign. An hour's window keeps most
    // of the basis at any hour; BTCUSDT (8 h, unlisted) and ETHUSDT (4 h)
    // keep the defaults, so `fundingInfo` and its fallback are still read.
    let mut usdm = keel_sandbox::usdm::UsdmConfig { basis_bps: Decimal::ONE_HUNDRED, ..Default::default() };
    for (pair, _) in keel_sandbox::synthetic::market(30) {
        usdm.funding_interval_hours.insert(pair.symbol, 1);
    }
    let cfg =
        SandboxConfig { synthetic_symbols: 30, ticks_per_bar: 1, history_bars: 360, usdm, ..SandboxConfig::default() };
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    sb.market.pause();
    let config = format!(
        "[venue]\nmode = \"sandbox\"\n\n[venue.binance]\nrest_url = \"{}\"\nws_stream_url = \"{}\"\nws_api_url = \"{}\"\n",
        sb.rest_url, sb.ws_stream_url, sb.ws_api_url
    );
    std::fs::write(dir.join("external.toml"), config).expect("config");
    (sb, "external.toml".into())
}

async fn rest(sb: &SandboxHandle, path: &str) -> Value {
    let resp = reqwest::get(format!("{}{path}", sb.rest_url)).await.expect("answers");
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    resp.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_of_an_external_sandbox_agrees_with_its_own_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sb, config) = paused_sandbox(dir.path()).await;
    let (path, all_config) = (dir.path().to_path_buf(), config.clone());
    let rows =
        tokio::task::spawn_blocking(move || scan_json(&path, &all_config, &["--top", "32"])).await.expect("scan");
    assert_eq!(rows.len(), 32);

    // The ranking by volume is the spot tickers' own.
    let tickers = rest(&sb, "/api/v3/ticker/24hr").await;
    let mut by_volume: Vec<(Decimal, String)> = tickers
        .as_array()
        .expect("array")
        .iter()
        .map(|t| (dec(&t["quoteVolume"]).expect("volume"), t["symbol"].as_str().expect("symbol").to_string()))
        .collect();
    by_volume.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let scanned: Vec<&str> = rows.iter().map(|r| r["symbol"].as_str().expect("symbol")).collect();
    assert_eq!(scanned, by_volume.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>());

    let marks: BTreeMap<String, Value> = rest(&sb, "/fapi/v1/premiumIndex")
        .await
        .as_array()
        .expect("array")
        .iter()
        .map(|m| (m["symbol"].as_str().expect("symbol").to_string(), m.clone()))
        .collect();
    let listed: BTreeMap<String, u64> = rest(&sb, "/fapi/v1/fundingInfo")
        .await
        .as_array()
        .expect("array")
        .iter()
        .map(|f| {
            (f["symbol"].as_str().expect("symbol").to_string(), f["fundingIntervalHours"].as_u64().expect("hours"))
        })
        .collect();
    assert!(!listed.is_empty(), "the sandbox adjusts some intervals (ETHUSDT: 4h)");
    // Each sort's top 5 is the REST figures' own ranking (ties keep the
    // volume order): funding by its absolute value, open interest by the
    // change between the last two 5m points.
    let mut change_of = BTreeMap::new();
    let mut oi_change_of = BTreeMap::new();
    for (_, symbol) in &by_volume {
        let t = rest(&sb, &format!("/api/v3/ticker/24hr?symbol={symbol}")).await;
        change_of.insert(symbol.clone(), dec(&t["priceChangePercent"]));
        let hist = rest(&sb, &format!("/futures/data/openInterestHist?symbol={symbol}&period=5m&limit=2")).await;
        let points: Vec<Decimal> =
            hist.as_array().expect("array").iter().map(|p| dec(&p["sumOpenInterest"]).expect("sum")).collect();
        assert_eq!(points.len(), 2, "{symbol}: six hours of history have 5m points");
        oi_change_of.insert(symbol.clone(), ((points[1] - points[0]) * Decimal::ONE_HUNDRED / points[0]).round_dp(3));
    }
    let rate_of = |s: &str| dec(&marks[s]["lastFundingRate"]).expect("rate");
    assert!(
        marks.keys().any(|s| rate_of(s) < -Decimal::new(2, 4)),
        "some funding is strongly negative, so ranking by its absolute value differs from by its sign"
    );
    for (sort, key) in [
        ("change", Box::new(|s: &str| change_of[s]) as Box<dyn Fn(&str) -> Option<Decimal>>),
        ("funding", Box::new(|s: &str| Some(rate_of(s).abs()))),
        ("oi_change", Box::new(|s: &str| Some(oi_change_of[s]))),
    ] {
        let mut want: Vec<&str> = by_volume.iter().map(|(_, s)| s.as_str()).collect();
        want.sort_by_key(|s| std::cmp::Reverse(key(s)));
        want.truncate(5);
        let (path, config) = (dir.path().to_path_buf(), config.clone());
        let got = tokio::task::spawn_blocking(move || scan_json(&path, &config, &["--sort", sort, "--top", "5"]))
            .await
            .expect("scan");
        let got: Vec<&str> = got.iter().map(|r| r["symbol"].as_str().expect("symbol")).collect();
        assert_eq!(got, want, "--sort {sort}");
    }

    // Every figure of a few rows, the first (highest volume) among them.
    for row in rows.iter().step_by(7) {
        let symbol = row["symbol"].as_str().expect("symbol");
        let t = rest(&sb, &format!("/api/v3/ticker/24hr?symbol={symbol}")).await;
        assert_eq!(dec(&row["quote_volume"]), dec(&t["quoteVolume"]), "{symbol} volume");
        assert_eq!(dec(&row["last_price"]), dec(&t["lastPrice"]), "{symbol} last");
        assert_eq!(dec(&row["change_pct"]), dec(&t["priceChangePercent"]), "{symbol} change");

        let m = &marks[symbol];
        let mark = dec(&m["markPrice"]).expect("mark");
        let rate = dec(&m["lastFundingRate"]).expect("rate");
        assert_eq!(dec(&row["mark_price"]), Some(mark), "{symbol} mark");
        assert_eq!(dec(&row["funding_rate"]), Some(rate), "{symbol} funding");
        assert_eq!(row["next_funding_time"], m["nextFundingTime"], "{symbol} next funding");
        let hours = listed.get(symbol).copied().unwrap_or(8);
        assert_eq!(row["funding_interval_hours"].as_u64(), Some(hours), "{symbol}: fundingInfo, else 8");
        let yearly = (rate * Decimal::from(24 * 365 * 100) / Decimal::from(hours)).round_dp(4);
        assert_eq!(dec(&row["funding_annualised_pct"]), Some(yearly), "{symbol} annualised");

        let oi = dec(&rest(&sb, &format!("/fapi/v1/openInterest?symbol={symbol}")).await["openInterest"]).expect("oi");
        assert_eq!(dec(&row["open_interest"]), Some(oi), "{symbol} open interest");
        assert_eq!(dec(&row["open_interest_notional"]), Some((oi * mark).round_dp(2)), "{symbol} notional");
        let hist = rest(&sb, &format!("/futures/data/openInterestHist?symbol={symbol}&period=5m&limit=2")).await;
        let points: Vec<Decimal> =
            hist.as_array().expect("array").iter().map(|p| dec(&p["sumOpenInterest"]).expect("sum")).collect();
        assert_eq!(points.len(), 2, "{symbol}: six hours of history have 5m points");
        let change = ((points[1] - points[0]) * Decimal::ONE_HUNDRED / points[0]).round_dp(3);
        assert_eq!(dec(&row["open_interest_change_pct"]), Some(change), "{symbol} OI change");
    }
    sb.shutdown().await;
}

#[test]
fn paper_has_no_futures_coinbase_is_refused_and_bad_flags_say_which() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let repo_config = include_str!("../../config.toml");
    assert!(repo_config.contains("\nmode = \"sandbox\""), "the repository config runs the sandbox");
    std::fs::write(d.join("paper.toml"), repo_config.replace("\nmode = \"sandbox\"", "\nmode = \"paper\""))
        .expect("config");
    let rows = scan_json(d, "paper.toml", &["--top", "3"]);
    assert_eq!(rows.len(), 2, "the configured symbols");
    let row = &rows[0];
    assert!(dec(&row["quote_volume"]).is_some_and(|v| v > Decimal::ZERO));
    for f in FIELDS.iter().skip(4) {
        assert!(row[*f].is_null(), "{f} is null without a perpetual: {row}");
    }
    let out = keel(d, &["scan", "--config", "paper.toml", "--top", "3"]);
    assert_eq!(ok_stdout(&out).lines().count(), 3, "a header and the two rows");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no USD-M futures market"));

    std::fs::write(d.join("coinbase.toml"), "[venue]\nexchange = \"coinbase\"\nmode = \"sandbox\"\n").expect("config");
    let out = keel(d, &["scan", "--config", "coinbase.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a Binance venue") && err.contains("venue.exchange"), "{err}");

    for (args, flag) in [
        (&["scan", "--sort", "price"][..], "--sort"),
        (&["scan", "--top", "0"][..], "--top"),
        (&["scan", "--top", "many"][..], "--top"),
        (&["scan", "--quote", "US-DT"][..], "--quote"),
        (&["scan", "--config", "missing.toml"][..], "missing.toml"),
    ] {
        let out = keel(d, args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: the error names {flag}: {err}");
        assert_eq!(err.lines().filter(|l| l.contains("error")).count(), 1, "one error: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
