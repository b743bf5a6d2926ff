//! `keel strategies` lists the registry's kinds with their declared
//! parameters, as text and as JSON, and `keel check-config` refuses what the
//! declarations refuse, naming the key — all through the real binary.

use std::process::Command;

const REPO_CONFIG: &str = include_str!("../../config.toml");
/// The first strategy block of the repository config, replaced by each case.
const FIRST_BLOCK: &str =
    "kind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = { fast = 5, slow = 20, qty = \"0.05\" }";
const KINDS: [&str; 9] =
    ["sma_cross", "ema_cross", "rsi_reversion", "bollinger_breakout", "macd", "grid", "webhook", "scanner", "pine"];

/// `keel ARGS…` in an empty temp dir: (success, stdout, stderr).
fn keel(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("keel runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn strategies_lists_every_kind_with_its_parameters_as_text_and_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, json, stderr) = keel(&["strategies", "--json"], dir.path());
    assert!(ok, "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&json).expect("--json is JSON");
    let kinds: Vec<&str> = list.as_array().expect("an array").iter().filter_map(|k| k["kind"].as_str()).collect();
    assert_eq!(kinds, KINDS);
    let param = |kind: usize, name: &str| -> serde_json::Value {
        list[kind]["params"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    let want = [
        (
            5,
            "levels",
            r#"{"name":"levels","type":"integer","required":false,"default":10,"min":{"value":"2","inclusive":true},"max":{"value":"1000","inclusive":true}}"#,
        ),
        (
            0,
            "fast",
            r#"{"name":"fast","type":"integer","required":true,"default":null,"min":{"value":"1","inclusive":true},"max":null}"#,
        ),
        (
            2,
            "buy_below",
            r#"{"name":"buy_below","type":"number","required":false,"default":30.0,"min":{"value":"0","inclusive":false},"max":{"value":"100","inclusive":false}}"#,
        ),
        (
            6,
            "qty",
            r#"{"name":"qty","type":"decimal","required":true,"default":null,"min":{"value":"0","inclusive":false},"max":null}"#,
        ),
        (
            7,
            "throttle",
            r#"{"name":"throttle","type":"duration","required":false,"default":"1h","min":null,"max":null}"#,
        ),
    ];
    for (kind, name, json) in want {
        let want: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(param(kind, name), want, "{}.{name}", KINDS[kind]);
    }

    // The text gives the same list: a line per kind, then one per parameter
    // with its type and range.
    let (ok, text, stderr) = keel(&["strategies"], dir.path());
    assert!(ok, "{stderr}");
    let mut lines = text.lines();
    for kind in list.as_array().unwrap() {
        assert_eq!(lines.next(), kind["kind"].as_str(), "{text}");
        for p in kind["params"].as_array().unwrap() {
            let line = lines.next().unwrap_or_default();
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words.get(..2), Some(&[p["name"].as_str().unwrap(), p["type"].as_str().unwrap()][..]), "{line}");
        }
    }
    assert_eq!(lines.next(), None, "{text}");
    assert!(text.contains("  levels  integer   default 10      between 2 and 1000\n"), "{text}");
}

#[test]
fn check_config_refuses_what_the_declarations_refuse() {
    let cases = [
        (
            "kind = \"grid\"\nsymbol = \"BTCUSDT\"\nparams = { lower = \"1\", upper = \"2\", qty = \"1\", levels = 1001 }",
            "config error at `strategy[0].params.levels`: must be between 2 and 1000, got 1001",
        ),
        (
            "kind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = { fast = 0, slow = 20, qty = \"1\" }",
            "config error at `strategy[0].params.fast`: must be at least 1, got 0",
        ),
        (
            "kind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = { fast = 5, slow = 20, qty = \"1\", fsat = 3 }",
            "config error at `strategy[0].params.fsat`: unknown parameter (expected one of: fast, slow, qty, notional, max_funding)",
        ),
        (
            "kind = \"martingale\"\nsymbol = \"BTCUSDT\"\nparams = {}",
            "config error at `strategy[0].kind`: unknown strategy kind `martingale` (known: sma_cross, ema_cross, rsi_reversion, bollinger_breakout, macd, grid, webhook, scanner, pine)",
        ),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    assert!(REPO_CONFIG.contains(FIRST_BLOCK), "the repository config changed: update FIRST_BLOCK");
    for (block, want) in cases {
        std::fs::write(&path, REPO_CONFIG.replace(FIRST_BLOCK, block)).expect("config written");
        let (ok, _, stderr) = keel(&["check-config", "--config", "config.toml"], dir.path());
        assert!(!ok, "{block}");
        assert!(stderr.contains(want), "{block}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}
