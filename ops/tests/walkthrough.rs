//! The README's "From idea to live" walkthrough, run as written: its `sh`
//! blocks, in order, as one bash script in an empty temp dir with the
//! `keel` under test first on the PATH — a standalone sandbox, the download,
//! the backtest, the sweep, the dry-run, the testnet run and the mainnet
//! check. Only the ports (free ones instead of 8080 and 9184) and the run
//! lengths (`--exit-after 2m` becomes seconds) are changed, so a command the
//! README shows that stops working fails this test.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The walkthrough's section of the README.
const SECTION: &str = "## From idea to live\n";
/// How long the whole script may take.
const LIMIT: Duration = Duration::from_secs(150);

/// The `sh` blocks of the README's walkthrough section, joined.
fn walkthrough_script(readme: &str) -> String {
    let start = readme.find(SECTION).expect("the README has the walkthrough");
    let rest = &readme[start + SECTION.len()..];
    let section = rest.find("\n## ").map_or(rest, |end| &rest[..end]);
    let mut script = String::new();
    for block in section.split("```sh\n").skip(1) {
        let (code, _) = block.split_once("```").expect("a closed code block");
        script.push_str(code);
    }
    script
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn the_readme_walkthrough_runs_offline_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README");
    let walkthrough = walkthrough_script(&readme);
    for step in ["keel sandbox", "keel data download", "--sweep", "market_data = \"binance\"", "mode = \"testnet\""] {
        assert!(walkthrough.contains(step), "the walkthrough has `{step}`");
    }
    let (exchange, http) = (free_port(), free_port());
    let script = walkthrough
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{exchange}"))
        .replace("127.0.0.1:9184", &format!("127.0.0.1:{http}"))
        .replace("--exit-after 2m", "--exit-after 8s");
    // Stop at the first failing command; whatever the script leaves running
    // goes with it.
    let script = format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");

    let dir = tempfile::tempdir().expect("temp dir");
    let bin = Path::new(env!("CARGO_BIN_EXE_keel")).parent().expect("the binary's dir");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .env_remove("KEEL_API_TOKEN")
        .env_remove("KEEL_BINANCE_API_KEY")
        .env_remove("KEEL_BINANCE_PRIVATE_KEY_PATH")
        .env_remove("KEEL_BINANCE_API_SECRET")
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
            // The whole group: bash, the sandbox and any keel it started.
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            panic!("the walkthrough did not finish within {LIMIT:?}: {}", stderr.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    assert!(status.success(), "the walkthrough failed ({status}):\n{out}\n{err}");

    for (what, line) in [
        ("the download has every bar", "BTCUSDT 1m: 86400 bars in bars/BTCUSDT-1m.parquet"),
        ("and no gap", "  gaps: 0"),
        ("the backtest reports", "Backtest report"),
        ("the sweep ranks", "Top 5 of 20 combinations ranked by sharpe"),
        ("and checks the winner out of sample", "Out of sample, from 2024-02-01T00:00:00Z"),
        ("the dry-run says so on /status", "\"venue_description\":\"paper on live Binance market data\""),
        ("the testnet run's state", "venue         : testnet"),
        ("the mainnet config is ready", "mainnet.toml: ok"),
    ] {
        assert!(out.contains(line), "{what}: no `{line}` in\n{out}\n{err}");
    }
    assert!(err.contains("PAPER on live Binance market data"), "the dry-run's start-up line:\n{err}");
    assert!(!err.contains(" ERROR "), "no ERROR line:\n{err}");
}
