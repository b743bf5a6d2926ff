//! The `keel` binary works from any directory: without `--config` and without
//! `./config.toml` every command uses the default config compiled into it and
//! says so; `keel config default` prints that config.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const REPO_CONFIG: &str = include_str!("../../config.toml");

/// `keel ARGS…` with its working directory in an empty temp dir (no config.toml).
fn keel_in_empty_dir(args: &[&str]) -> (tempfile::TempDir, std::process::Output) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("keel runs");
    (dir, out)
}

#[test]
fn config_default_prints_the_repository_config() {
    let (_dir, out) = keel_in_empty_dir(&["config", "default"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), REPO_CONFIG);
}

#[test]
fn check_config_and_state_use_the_built_in_default_outside_the_repo() {
    let (_dir, out) = keel_in_empty_dir(&["check-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("the built-in default config: ok"), "{stdout}");

    let (_dir, out) = keel_in_empty_dir(&["state", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).expect("state is JSON");
    assert_eq!(state["orders_total"], 0);
}

#[test]
fn a_named_config_that_is_missing_is_an_error_not_the_default() {
    let (_dir, out) = keel_in_empty_dir(&["check-config", "--config", "nope.toml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope.toml") && stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn run_says_first_that_it_uses_the_built_in_default() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["run", "--log-format", "json", "--exit-after", "60s"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keel starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let first = BufReader::new(stderr).lines().next().expect("a log line").expect("readable");
    // Stop it at once: the point is what it said first, not the trading.
    let _ = child.kill();
    let _ = child.wait();
    let line: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    let message = line["message"].as_str().unwrap_or_default();
    assert!(message.contains("built-in default"), "first line: {first}");
}

#[test]
fn bench_runs_outside_the_repo() {
    let (_dir, out) = keel_in_empty_dir(&["bench", "--events", "2000"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("built-in default"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("market events delivered"));
}

#[test]
fn a_store_from_a_newer_keel_is_refused_in_one_line() {
    use keel_core::store::Store;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    {
        let store = keel_store::SledStore::open(&data).expect("store opens");
        let newer = keel_store::SCHEMA_VERSION + 1;
        store.put_meta_json("schema_version", &serde_json::json!(newer), true).expect("written");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["run", "--exit-after", "5s", "--data-dir"])
        .arg(&data)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("keel runs");
    assert!(!out.status.success(), "refused, not started HALTED");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("keel: ") && last.contains("newer Keel"), "{stderr}");
    assert!(!stderr.contains("engine started"), "{stderr}");
}

const VENUE_CONFIG: &str = r#"
[engine]
bar_interval = "1m"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_notional = "5"
start_price = "60000"
volatility = 0.6
touch_qty = "2"

[venue.binance]
api_key_env = "KEEL_TEST_CHECK_KEY"
api_secret_env = "KEEL_TEST_CHECK_SECRET"
private_key_path_env = "KEEL_TEST_CHECK_PEM"
"#;

/// `keel check-config` on `venue` + VENUE_CONFIG with exactly `env` of the test variables set.
fn check_config(venue: &str, extra: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, format!("[venue]\n{venue}\n{VENUE_CONFIG}{extra}")).expect("config written");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
    cmd.args(["check-config", "--config"]).arg(&path);
    for var in ["KEEL_TEST_CHECK_KEY", "KEEL_TEST_CHECK_SECRET", "KEEL_TEST_CHECK_PEM", "KEEL_API_TOKEN"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("keel runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn check_config_checks_the_secret_variables_without_printing_them() {
    let (ok, _, stderr) = check_config("mode = \"testnet\"", "", &[]);
    assert!(!ok, "missing venue keys pass: {stderr}");
    assert!(stderr.contains("KEEL_TEST_CHECK_KEY (named by venue.binance.api_key_env) is not set"), "{stderr}");
    assert!(stderr.contains("KEEL_TEST_CHECK_SECRET"), "{stderr}");
    assert!(
        stderr.contains("KEEL_API_TOKEN") && stderr.contains("warning"),
        "an unset API token is a warning: {stderr}"
    );

    let env = [("KEEL_TEST_CHECK_KEY", "key-value-9d7c"), ("KEEL_TEST_CHECK_SECRET", "secret-value-4b1a")];
    let (ok, stdout, stderr) = check_config("mode = \"testnet\"", "", &env);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(": ok ("), "{stdout}");
    let (ok, _, stderr) = check_config("mode = \"testnet\"", "", &[env[0], ("KEEL_API_TOKEN", "short-token-7e2f")]);
    assert!(!ok);
    assert!(stderr.contains("KEEL_API_TOKEN (named by http.token_env) is shorter than 32"), "{stderr}");
    for (_, value) in env.iter().chain([&("", "short-token-7e2f")]) {
        assert!(!stderr.contains(value) && !stdout.contains(value), "a secret printed: {stderr}");
    }
}

#[test]
fn mainnet_refuses_test_urls_and_plain_http_in_one_line() {
    let mainnet = "mode = \"mainnet\"\nconfirm_mainnet = true";
    struct Case {
        name: &'static str,
        url: &'static str,
        key: &'static str,
        says: &'static str,
    }
    let cases = [
        Case {
            name: "testnet URL",
            url: "rest_url = \"https://testnet.binance.vision\"",
            key: "venue.binance.rest_url",
            says: "not a Binance mainnet host",
        },
        Case {
            name: "plain http",
            url: "rest_url = \"http://api.binance.com\"",
            key: "venue.binance.rest_url",
            says: "https://",
        },
        Case {
            name: "local stream",
            url: "ws_stream_url = \"ws://127.0.0.1:9000\"",
            key: "venue.binance.ws_stream_url",
            says: "wss://",
        },
    ];
    for c in cases {
        let (ok, _, stderr) = check_config(mainnet, &format!("{}\n", c.url), &[]);
        assert!(!ok, "{}: accepted", c.name);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}: one line: {stderr}", c.name);
        assert!(lines[0].contains(c.key) && lines[0].contains(c.says), "{}: {stderr}", c.name);
    }
    // Testnet keeps its overrides (tests point it at a local sandbox).
    let env = [("KEEL_TEST_CHECK_KEY", "k"), ("KEEL_TEST_CHECK_SECRET", "s")];
    let (ok, _, stderr) = check_config("mode = \"testnet\"", "rest_url = \"http://127.0.0.1:9000\"\n", &env);
    assert!(ok, "testnet with a local URL: {stderr}");
}

/// Times people read are ISO-8601 UTC with how long ago, never epoch
/// milliseconds: `keel halt`, then `keel state` shows when the stop was set.
#[test]
fn keel_state_shows_times_in_utc_not_epoch_milliseconds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keel = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .output()
            .expect("keel runs");
        assert!(out.status.success(), "keel {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    keel(&["halt", "--reason", "drill"]);
    let state = keel(&["state"]);
    let set_line = state
        .lines()
        .find(|l| l.contains("emergency stop: SET by operator:cli at "))
        .unwrap_or_else(|| panic!("the risk section says who set the stop and when:\n{state}"));
    let at = set_line.split(" at ").nth(1).unwrap_or_default();
    let iso = at.get(..20).unwrap_or_default();
    let looks_iso = iso.len() == 20
        && iso.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(looks_iso, "ISO-8601 UTC: {set_line}");
    assert!(at[20..].starts_with(" (") && at.contains(" ago)") || at.contains("(now)"), "how long ago: {set_line}");
    // No epoch milliseconds anywhere (13 digits in a row).
    let digits_in_a_row = state.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0);
    assert!(digits_in_a_row < 13, "an epoch timestamp in `keel state`:\n{state}");
}
