//! `cargo run -- run` on the default config: the default venue is the embedded
//! Binance-protocol sandbox, reached through the real Binance adapter, and it
//! trades. Runs the real binary on a copy of the repository's `config.toml`
//! with a temporary data dir, twice: the second run continues the account.

mod sandbox_support;

use std::process::Command;

use engine::store::{SledStore, Store};
use sandbox_support::spawn_run;

/// The repository's default config, with the HTTP API off (its fixed port
/// may be taken on a shared machine) and JSON logs.
fn default_config_copy(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml")).expect("config.toml");
    assert!(text.contains("\nmode = \"sandbox\""), "config.toml's default venue mode is sandbox");
    let text = text.replace("[http]\nenabled = true", "[http]\nenabled = false");
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn default_config_trades_through_the_binance_adapter_on_the_embedded_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let config = default_config_copy(dir.path());
    let data = dir.path().join("data");

    let mut fills_total = 0;
    for run in 0..2 {
        let mut keel = spawn_run(&config, &data, &["--exit-after", "90s"], &[]);
        keel.wait_for("embedded sandbox exchange started (Binance spot protocol)", 1);
        keel.wait_for("connected to Binance", 1);
        keel.wait_for("store reconciled with the venue", 1);
        keel.wait_for("fill", 2);
        keel.sigterm();
        let (status, lines) = keel.finish();
        assert!(status.success(), "run {run}: graceful stop exits 0: {status:?}");
        let connected = lines.iter().find(|v| v["message"] == "connected to Binance").unwrap();
        assert_eq!(connected["venue"], "sandbox");
        assert_eq!(connected["can_trade"], true);
        assert!(connected["rest"].as_str().unwrap().starts_with("http://127.0.0.1:"));
        let engine = lines.iter().find(|v| v["message"] == "engine started").unwrap();
        assert_eq!(engine["venue"], "binance", "the Binance adapter is the venue");
        if run == 1 {
            let reconciled = lines.iter().find(|v| v["message"] == "store reconciled with the venue").unwrap();
            let started =
                lines.iter().find(|v| v["message"].as_str().unwrap_or("").starts_with("embedded sandbox")).unwrap();
            assert_eq!(started["continued_balances"], true, "the second run continues the stored account");
            assert_eq!(
                reconciled["differences"],
                0,
                "a restarted embedded sandbox agrees with the store: {:#?}",
                lines.iter().filter(|v| v["message"] == "reconciliation").collect::<Vec<_>>()
            );
        }
        let store = SledStore::open(&data).unwrap();
        let now = store.fill_count().unwrap();
        assert!(now >= fills_total + 2, "run {run} recorded its fills ({fills_total} → {now})");
        fills_total = now;
    }

    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["state", "--json", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["fills_total"].as_u64(), Some(fills_total as u64));
    assert!(!state["positions"].as_array().unwrap().is_empty(), "positions are recorded");
}
