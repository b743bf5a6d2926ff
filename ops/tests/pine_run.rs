//! `cargo run -- run --config config.pine.toml` trades a Pine Script strategy offline on the
//! embedded sandbox: the real binary on a copy of the repository's `config.pine.toml` (its script
//! copied beside it at the same relative path, so the path resolves against the config file, not
//! the working directory), awaiting the Pine strategy's fill in its logs.

mod common;

use common::spawn_run;
use keel_core::store::Store;
use keel_store::SledStore;

const SCRIPT: &str = "strategies/pine/examples/ema_cross.pine";

#[test]
fn config_pine_trades_its_pine_strategy_on_the_embedded_sandbox() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(format!("{repo}/config.pine.toml")).expect("config.pine.toml");
    assert!(text.contains("\nmode = \"sandbox\""), "config.pine.toml runs on the sandbox");
    assert!(text.contains(&format!("script = \"{SCRIPT}\"")), "the script is named relative to the config");
    // The HTTP API off: its fixed port may be taken on a shared machine.
    let text = text.replace("[http]\nenabled = true", "[http]\nenabled = false");
    let config = dir.path().join("config.pine.toml");
    std::fs::write(&config, text).unwrap();
    let script = dir.path().join(SCRIPT);
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::copy(format!("{repo}/{SCRIPT}"), &script).unwrap();
    let data = dir.path().join("data");

    // The test runs in the ops crate's directory: the script resolves against the config file.
    let mut keel = spawn_run(&config, &data, &["--exit-after", "90s"], &[]);
    keel.wait_for("embedded sandbox exchange started (Binance spot protocol)", 1);
    keel.wait_until("a fill of the Pine strategy", |k| {
        k.seen.iter().any(|v| v["message"] == "fill" && v["strategy"] == "btc_pine")
    });
    keel.sigterm();
    let (status, lines) = keel.finish();
    common::assert_stopped("the run", status, &lines);
    let fill = lines.iter().find(|v| v["message"] == "fill").unwrap();
    assert_eq!((fill["strategy"].as_str(), fill["side"].as_str()), (Some("btc_pine"), Some("Buy")), "{fill}");
    // 10% of the script's 10 000 initial capital, commission included: about 1 000 USDT of BTC.
    let qty: f64 = fill["qty"].as_str().and_then(|q| q.parse().ok()).expect("qty");
    let price: f64 = fill["price"].as_str().and_then(|p| p.parse().ok()).expect("price");
    assert!((900.0..1_100.0).contains(&(qty * price)), "{fill}");

    let store = SledStore::open(&data).unwrap();
    let fills = store.fills().unwrap();
    assert!(!fills.is_empty() && fills.iter().all(|f| f.strategy_id.as_str() == "btc_pine"), "{fills:?}");
}

/// A script that could sell short is refused before anything runs, by `check-config` and by
/// `run`, naming the block's key and the entry's `file:line:col`.
#[test]
fn a_short_entry_is_refused_at_check_config_and_at_start() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(format!("{repo}/config.pine.toml")).expect("config.pine.toml");
    let text = text.replace("[http]\nenabled = true", "[http]\nenabled = false").replace(
        &format!("script = \"{SCRIPT}\", inputs = {{ \"Fast length\" = 5, slowLen = 13 }}"),
        "script = \"short.pine\"",
    );
    assert!(text.contains("script = \"short.pine\""), "the block was rewritten");
    let config = dir.path().join("config.pine.toml");
    std::fs::write(&config, text).unwrap();
    let script = "//@version=5\nstrategy(\"both ways\")\nif ta.crossunder(close, ta.sma(close, 10))\n    strategy.entry(\"S\", strategy.short)\n";
    std::fs::write(dir.path().join("short.pine"), script).unwrap();
    let want = format!(
        "strategy[0].params.script`: {}:4:5: strategy.entry with a direction other than strategy.long: Keel trades spot, which cannot sell short",
        dir.path().join("short.pine").display()
    );
    for args in [vec!["check-config", "--config"], vec!["run", "--data-dir", "data", "--config"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(&args)
            .arg(&config)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .output()
            .expect("keel runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: refused");
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
    }
}
