//! The README's "Run, backtest and sweep it" block, run as written: one bash
//! script in a temp dir holding the example's `config.toml`, with the
//! `my-keel` under test first on the PATH — the kind listed, the config
//! checked, bars downloaded from a `my-keel sandbox`, a backtest, a sweep
//! and a live run on the embedded sandbox. Only the ports (free ones for
//! 8080 and 9184) and the run's length (`--exit-after 2m`) are changed.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The section holding the block.
const SECTION: &str = "## 6. Run, backtest and sweep it\n";
/// How long the whole script may take.
const LIMIT: Duration = Duration::from_secs(120);

/// The section's `sh` block.
fn script(readme: &str) -> String {
    let start = readme.find(SECTION).expect("the README has the section");
    let rest = &readme[start..];
    let block = rest.split("```sh\n").nth(1).expect("an sh block");
    block.split_once("```").expect("a closed block").0.to_string()
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn the_readme_commands_run_offline_as_written() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(here.join("README.md")).expect("README.md");
    let script = script(&readme);
    for step in ["my-keel sandbox", "my-keel data download", "my-keel backtest", "--sweep", "my-keel run"] {
        assert!(script.contains(step), "the block has `{step}`");
    }
    let (exchange, http) = (free_port(), free_port());
    let script = script
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{exchange}"))
        .replace("--exit-after 2m", "--exit-after 4s");
    let script = format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");

    let dir = tempfile::tempdir().expect("temp dir");
    let config = std::fs::read_to_string(here.join("config.toml")).expect("config.toml");
    assert!(config.contains("127.0.0.1:9184"), "the config names the HTTP port");
    let config = config.replace("127.0.0.1:9184", &format!("127.0.0.1:{http}"));
    std::fs::write(dir.path().join("config.toml"), config).expect("config written");
    let bin = Path::new(env!("CARGO_BIN_EXE_my-keel")).parent().expect("the binary's dir");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .env_remove("KEEL_API_TOKEN")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            // The whole group: bash, the sandbox and my-keel run.
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            panic!("the README's commands did not finish within {LIMIT:?}: {}", stderr.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    assert!(status.success(), "the README's commands failed ({status}):\n{out}\n{err}");

    for (what, line) in [
        ("the kind is listed", "\ndonchian_breakout\n  entry "),
        ("the config checks", "config.toml: ok (1 symbols, 1 strategies"),
        ("the download has every bar", "BTCUSDT 1h: 2184 bars in bars/BTCUSDT-1h.parquet"),
        ("the backtest reports", "Strategies         btc_donchian"),
        ("the sweep ranks", "Top 5 of 20 combinations ranked by sharpe"),
    ] {
        assert!(out.contains(line), "{what}: no `{line}` in\n{out}\n{err}");
    }
    let entry = out.lines().find(|l| l.starts_with("  entry ")).unwrap_or_default();
    assert!(entry.contains("integer") && entry.contains("between 2 and 1000"), "the declaration: {entry}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("report.json")).expect("JSON");
    assert!(report["round_trips"].as_u64().unwrap_or(0) > 0, "the backtest trades: {report}");
    assert!(err.contains("keel stopped"), "the run stops at --exit-after:\n{err}");
    assert!(!err.contains(" ERROR "), "no ERROR line:\n{err}");
}
