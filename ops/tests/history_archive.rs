//! A store with archived history, the way a long-running engine leaves it:
//! the engine starts from the checkpoint without replaying the archive,
//! `keel state` reads it while the engine runs, and `keel state` writes
//! nothing under the data dir.

mod common;

use common::{keel, listing, spawn_run, state_json};
use keel_core::store::Store;
use keel_store::SledStore;

const CONFIG: &str = include_str!("../../config.toml");

#[test]
fn archived_history_is_not_replayed_and_keel_state_reads_it_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // Any free port: an engine already on the default one (the operator's,
    // another suite's) must not make this run fail to start.
    std::fs::write(&config, CONFIG.replace("listen = \"127.0.0.1:9184\"", "listen = \"127.0.0.1:0\"")).unwrap();
    let data = dir.path().join("data");
    let (config_s, data_s) = (config.to_str().unwrap(), data.to_str().unwrap());
    let out = keel(&["bench", "--history", "3000", "--config", config_s, "--data-dir", data_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(data.join("history").read_dir().unwrap().count() > 0, "the history is in segment files");

    let mut run = spawn_run(&config, &data, &["--exit-after", "60s"], &[]);
    run.wait_for("engine started", 1);
    let brought = run.seen.iter().find(|v| v["message"] == "account brought forward from its checkpoint").cloned();
    let brought = brought.expect("start-up brings the checkpoint forward");
    assert_eq!(brought["replayed"], 0, "nothing after the checkpoint, so nothing replayed: {brought}");
    assert_eq!(brought["to_fill_seq"], 3000);

    // While the engine holds the store.
    let live = state_json(config_s, data_s);
    assert_eq!(live["schema"], 1);
    assert!(live["fills_total"].as_u64().unwrap_or(0) >= 3000, "{live:#}");
    assert!(live["orders_total"].as_u64().unwrap_or(0) >= 3000, "{live:#}");
    assert_eq!(live["store_integrity"]["ok"], true, "{live:#}");

    run.sigterm();
    let (status, stop_lines) = run.finish();
    common::assert_stopped("the run", status, &stop_lines);

    let before = listing(&data);
    let stopped = state_json(config_s, data_s);
    assert_eq!(listing(&data), before, "keel state wrote nothing under the data dir");
    assert!(stopped["fills_total"].as_u64() >= live["fills_total"].as_u64());

    let store = SledStore::open(&data).unwrap();
    let fills = store.fills().unwrap();
    assert_eq!(fills.len(), store.fill_count().unwrap(), "every fill reads back, archived and live");
    assert!(store.archive_mark().fills >= 3000);
    let qty: keel_core::Decimal = stopped["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["symbol"] == "BTCUSDT")
        .and_then(|p| p["qty"].as_str())
        .and_then(|q| q.parse().ok())
        .unwrap();
    let mut account = keel_core::account::Account::default();
    for f in &fills {
        let base = f.symbol.as_str().trim_end_matches("USDT").to_string();
        account.apply_fill(f, &base, "USDT");
    }
    assert_eq!(account.position("BTCUSDT").map(|p| p.qty), Some(qty), "keel state == a replay of every fill");
}
