//! `cargo run -- run` on the default config: the default venue is the embedded
//! Binance-protocol sandbox, reached through the real Binance adapter, and it
//! trades. Runs the real binary on a copy of the repository's `config.toml`
//! with a temporary data dir, twice: the second run continues the account.

mod common;

use std::process::Command;

use common::spawn_run;
use keel_core::order::OrderStatus;
use keel_core::store::Store;
use keel_store::SledStore;

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
        common::assert_stopped(&format!("run {run}"), status, &lines);
        let connected = lines.iter().find(|v| v["message"] == "connected to Binance").unwrap();
        assert_eq!(connected["venue"], "sandbox");
        assert_eq!(connected["can_trade"], true);
        assert!(connected["rest"].as_str().unwrap().starts_with("http://127.0.0.1:"));
        // The default runs on the sandbox's Ed25519 key, with orders over the WebSocket API.
        assert_eq!(
            (connected["key_type"].as_str(), connected["order_transport"].as_str()),
            (Some("ed25519"), Some("ws"))
        );
        assert!(
            lines.iter().any(|v| v["message"] == "binance WebSocket API connected for order entry"),
            "order entry connected to the WebSocket API"
        );
        assert!(
            !lines.iter().any(|v| v["message"].as_str().is_some_and(|m| m.contains("sent over REST"))),
            "no order fell back to REST"
        );
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

/// Embedded mode after a crash: the embedded sandbox keeps its state in the
/// data dir, so the orders resting when Keel died are still at the venue (or
/// filled while it was down) — reconciliation finds them instead of closing
/// them — and new trade ids never collide with recorded ones.
#[test]
fn embedded_sandbox_restart_after_sigkill_meets_the_venue_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let config = default_config_copy(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[[strategy]]\nid = \"btc_grid\"\nkind = \"grid\"\nsymbol = \"BTCUSDT\"\nparams = { lower = \"62000\", upper = \"68000\", levels = 31, qty = \"0.01\" }\n",
    );
    std::fs::write(&config, text).unwrap();
    let data = dir.path().join("data");

    let mut first = spawn_run(&config, &data, &[], &[]);
    first.wait_for("fill", 2);
    // Wait (bounded) for a grid order to rest at the venue.
    let deadline = std::time::Instant::now() + common::DEADLINE;
    while !first
        .seen
        .iter()
        .any(|v| v["message"] == "order status" && v["strategy"] == "btc_grid" && v["to"] == "Accepted")
    {
        assert!(std::time::Instant::now() < deadline, "no grid order rested");
        first.wait_for("order status", first.count("order status") + 1);
    }
    first.child.kill().expect("SIGKILL");
    let _ = first.finish();
    assert!(data.join("sandbox").join(keel_sandbox::saved::STATE_FILE).exists(), "the venue's state is kept");
    let key_file = data.join("sandbox").join(keel_sandbox::test_key::KEY_FILE);
    let key_before =
        std::fs::read_to_string(&key_file).expect("the embedded sandbox keeps its test key in the data dir");

    let (open_before, max_trade_before) = {
        let store = SledStore::open(&data).unwrap();
        // Orders the venue had acknowledged (one only written ahead when Keel
        // died never reached it, and reconciliation says so).
        let open: Vec<String> = store
            .open_orders()
            .unwrap()
            .into_iter()
            .filter(|o| matches!(o.status, OrderStatus::Accepted | OrderStatus::PartiallyFilled))
            .map(|o| o.client_order_id)
            .collect();
        let max = store.fills().unwrap().iter().filter_map(|f| f.trade_id.as_u64()).max().unwrap_or(0);
        (open, max)
    };
    assert!(!open_before.is_empty(), "orders the venue had acknowledged were open when keel died");

    let mut second = spawn_run(&config, &data, &["--exit-after", "90s"], &[]);
    second.wait_for("sandbox state restored; the time it was down has been simulated", 1);
    second.wait_for("connected to Binance", 1);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key_before, "the same key across restarts");
    second.wait_for("store reconciled with the venue", 1);
    let differences: Vec<String> = second
        .seen
        .iter()
        .filter(|v| v["message"] == "reconciliation")
        .filter_map(|v| v["difference"].as_str().map(str::to_string))
        .collect();
    for cid in &open_before {
        assert!(
            !differences.iter().any(|d| d.contains(cid.as_str())
                && (d.contains("not found at the venue") || d.contains("never reached the venue"))),
            "order {cid}, resting when Keel died, is still known to the venue: {differences:#?}"
        );
    }
    second.wait_for("fill", 2);
    second.sigterm();
    let (status, lines) = second.finish();
    common::assert_stopped("the run", status, &lines);
    let new_ids: Vec<u64> = lines
        .iter()
        .filter(|v| v["message"] == "fill")
        .filter_map(|v| v["trade_id"].as_str().and_then(|t| t.parse::<u64>().ok()))
        .collect();
    assert!(new_ids.len() >= 2);
    assert!(
        new_ids.iter().all(|id| *id > max_trade_before),
        "trade ids after the restart ({new_ids:?}) are above every recorded one ({max_trade_before})"
    );
}
