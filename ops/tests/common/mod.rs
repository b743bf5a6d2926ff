//! Helpers for the tests that drive the real `keel` binary: spawning
//! processes, reading their JSON log lines with deadlines, and the standalone
//! sandbox's printed URLs.

#![allow(dead_code)]

pub mod coinbase;
pub mod engine;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// A running `keel` process whose stderr (JSON log lines) is collected.
pub struct Keel {
    /// The process.
    pub child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    /// Every line read so far.
    pub seen: Vec<serde_json::Value>,
}

/// Spawns `keel run --config CONFIG --data-dir DATA EXTRA…` with `env`.
pub fn spawn_run(config: &Path, data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Keel {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
    cmd.args(["run", "--log-format", "json", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("keel starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "raw": line }));
            if tx.send(value).is_err() {
                break;
            }
        }
    });
    Keel { child, lines: rx, seen: Vec::new() }
}

impl Keel {
    /// Reads log lines until `n` lines with `message` have been seen (bounded).
    pub fn wait_for(&mut self, message: &str, n: usize) {
        self.wait_until(&format!("{n} `{message}` lines"), |k| k.count(message) >= n);
    }

    /// Reads log lines until `done` holds for what has been seen (bounded).
    pub fn wait_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(_) => panic!(
                    "no {what} before the deadline; warnings and errors: {:#?}\nlast lines: {:#?}",
                    self.seen
                        .iter()
                        .filter(|v| v["level"] == "ERROR" || (v["level"] == "WARN" && v["strategy"] != "btc_grid"))
                        .collect::<Vec<_>>(),
                    &self.seen[self.seen.len().saturating_sub(15)..]
                ),
            }
        }
    }

    /// Waits for the `HTTP API and /metrics listening` line and answers the
    /// base URL it names (`http://127.0.0.1:port`).
    pub fn http_base(&mut self) -> String {
        self.wait_for("HTTP API and /metrics listening", 1);
        let line = self.seen.iter().rev().find(|v| v["message"] == "HTTP API and /metrics listening");
        format!("http://{}", line.and_then(|v| v["listen"].as_str()).expect("a listen address"))
    }

    /// Lines with `message` so far.
    pub fn count(&self, message: &str) -> usize {
        self.seen.iter().filter(|v| v["message"] == message).count()
    }

    /// Sends SIGTERM (graceful stop).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `STOP`, `CONT`, …).
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -{name}");
    }

    /// Waits for the process to exit (bounded), then drains its log.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<serde_json::Value>) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("keel did not exit in time");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(v) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(v);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

/// Asserts a graceful stop exited 0; if not, the failure shows the run's errors and warnings and
/// its last lines (what a stop that fails under load needs to be told from the log).
pub fn assert_stopped(what: &str, status: std::process::ExitStatus, lines: &[serde_json::Value]) {
    if status.success() {
        return;
    }
    let notable: Vec<&serde_json::Value> =
        lines.iter().filter(|v| v["level"] == "ERROR" || v["level"] == "WARN").collect();
    panic!(
        "{what}: graceful stop exits 0, got {status:?}; errors and warnings: {notable:#?}\nlast lines: {:#?}",
        &lines[lines.len().saturating_sub(15)..]
    );
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Client order ids of the `order created` log lines.
pub fn created_ids(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|v| v["message"] == "order created")
        .filter_map(|v| v["client_order_id"].as_str().map(str::to_string))
        .collect()
}

/// A standalone `keel sandbox` process and the URLs it printed.
pub struct StandaloneSandbox {
    child: Child,
    /// REST base URL.
    pub rest_url: String,
    /// Market stream base URL.
    pub ws_stream_url: String,
    /// WebSocket API URL.
    pub ws_api_url: String,
    /// Test API key.
    pub api_key: String,
    /// Test API secret.
    pub api_secret: String,
    /// The generated Ed25519 key's id.
    pub ed25519_api_key: String,
    /// Its private key file (written in the config's directory, the
    /// sandbox's working dir).
    pub ed25519_private_key_path: String,
}

/// Starts `keel sandbox --listen 127.0.0.1:0 [EXTRA…] --config CONFIG` in
/// the config's dir, waits for its `SANDBOX_READY` line and checks it
/// listens on loopback; returns the process and a reader of the line's
/// string fields (a missing one fails the test, naming it).
pub fn spawn_sandbox(config: &Path, extra: &[&str]) -> (Child, impl Fn(&str) -> String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--config")
        .arg(config)
        .current_dir(config.parent().expect("the config is in a dir"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("keel sandbox starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(json) = line.strip_prefix(ops::cmd_sandbox::READY_PREFIX) {
                let _ = tx.send(json.to_string());
            }
        }
    });
    let Ok(ready) = rx.recv_timeout(DEADLINE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("keel sandbox {extra:?} printed no ready line");
    };
    let v: serde_json::Value = serde_json::from_str(&ready).expect("ready line is JSON");
    let field = move |k: &str| v[k].as_str().unwrap_or_else(|| panic!("ready field {k}: {v}")).to_string();
    assert!(field("rest_url").starts_with("http://127.0.0.1:"), "loopback only");
    (child, field)
}

impl StandaloneSandbox {
    /// Starts `keel sandbox --listen 127.0.0.1:0 --config CONFIG` and waits
    /// for its ready line.
    pub fn start(config: &Path) -> Self {
        let (child, s) = spawn_sandbox(config, &[]);
        Self {
            rest_url: s("rest_url"),
            ws_stream_url: s("ws_stream_url"),
            ws_api_url: s("ws_api_url"),
            api_key: s("api_key"),
            api_secret: s("api_secret"),
            ed25519_api_key: s("ed25519_api_key"),
            ed25519_private_key_path: s("ed25519_private_key_path"),
            child,
        }
    }

    /// `[venue.binance]` lines pointing Keel at this sandbox: spot and the
    /// USDⓈ-M futures data too (else a testnet-mode run asks Binance's
    /// Demo Trading hosts for funding and mark prices).
    pub fn binance_section(&self) -> String {
        format!(
            "[venue.binance]\nrest_url = \"{rest}\"\nws_stream_url = \"{ws}\"\nws_api_url = \"{}\"\nfapi_rest_url = \"{rest}\"\nfapi_ws_url = \"{ws}\"\napi_key_env = \"KEEL_TEST_SANDBOX_KEY\"\napi_secret_env = \"KEEL_TEST_SANDBOX_SECRET\"\nprivate_key_path_env = \"KEEL_TEST_SANDBOX_PRIVATE_KEY_PATH\"\n",
            self.ws_api_url,
            rest = self.rest_url,
            ws = self.ws_stream_url
        )
    }

    /// The Binance adapter on this sandbox, for a test's own view of the venue.
    pub async fn venue(&self) -> keel_binance::BinanceVenue {
        let local = keel_binance::LocalExchange {
            endpoints: keel_binance::Endpoints {
                rest: self.rest_url.clone(),
                ws_stream: self.ws_stream_url.clone(),
                ws_api: self.ws_api_url.clone(),
            },
            credentials: keel_binance::Credentials::new(&self.api_key, &self.api_secret),
        };
        keel_binance::BinanceVenue::connect(keel_binance::BinanceSettings::for_local(&local))
            .await
            .expect("the test connects to the sandbox")
    }

    /// The environment holding the test key: the Ed25519 key's id and the
    /// path of its private key, as an operator sets them.
    pub fn key_env(&self) -> [(&'static str, String); 2] {
        [
            ("KEEL_TEST_SANDBOX_KEY", self.ed25519_api_key.clone()),
            ("KEEL_TEST_SANDBOX_PRIVATE_KEY_PATH", self.ed25519_private_key_path.clone()),
        ]
    }

    /// The environment for the sandbox's HMAC key instead (no private key
    /// path: the adapter then reads the secret).
    pub fn hmac_key_env(&self) -> [(&'static str, String); 2] {
        [("KEEL_TEST_SANDBOX_KEY", self.api_key.clone()), ("KEEL_TEST_SANDBOX_SECRET", self.api_secret.clone())]
    }
}

/// A standalone sandbox started on `base`, with a Keel config in the same
/// temp dir that trades on it: `base`, then `strategies`, then the
/// sandbox's `[venue.binance]` section.
pub struct OnSandbox {
    /// The sandbox (it outlives every Keel run of a test).
    pub sb: StandaloneSandbox,
    /// Keel's config.
    pub trading: std::path::PathBuf,
    /// Keel's data dir (not created).
    pub data: std::path::PathBuf,
    key_env: [(&'static str, String); 2],
}

impl OnSandbox {
    /// Writes both configs under `dir` and starts the sandbox; Keel trades
    /// with the Ed25519 key and orders over the WebSocket API (the defaults).
    pub fn start(dir: &Path, base: &str, strategies: &str) -> Self {
        Self::start_keyed(dir, base, strategies, false)
    }

    /// As [`OnSandbox::start`], but Keel trades with the HMAC key and sends
    /// orders over REST (`order_transport = "rest"`).
    pub fn start_hmac_rest(dir: &Path, base: &str, strategies: &str) -> Self {
        Self::start_keyed(dir, base, strategies, true)
    }

    fn start_keyed(dir: &Path, base: &str, strategies: &str, hmac_rest: bool) -> Self {
        let sandbox_config = dir.join("sandbox.toml");
        std::fs::write(&sandbox_config, base).expect("sandbox config written");
        let sb = StandaloneSandbox::start(&sandbox_config);
        let trading = dir.join("keel.toml");
        let transport = if hmac_rest { "order_transport = \"rest\"\n" } else { "" };
        std::fs::write(&trading, format!("{base}{strategies}\n{}{transport}", sb.binance_section()))
            .expect("config written");
        let key_env = if hmac_rest { sb.hmac_key_env() } else { sb.key_env() };
        Self { sb, trading, data: dir.join("data"), key_env }
    }

    /// The environment `keel run` needs for the sandbox's key.
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.key_env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

impl Drop for StandaloneSandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `keel` with arguments and returns its output.
pub fn keel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keel")).args(args).env_remove("RUST_LOG").output().expect("keel runs")
}

/// Every file under `dir` with its modification time and its bytes.
pub fn listing(dir: &std::path::Path) -> Vec<(std::path::PathBuf, std::time::SystemTime, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).expect("readable") {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                let bytes = std::fs::read(e.path()).expect("readable");
                out.push((e.path(), m.modified().expect("mtime"), bytes));
            }
        }
    }
    out.sort();
    out
}

/// `keel state --json` for `config` and `data`, which must succeed.
pub fn state_json(config: &str, data: &str) -> serde_json::Value {
    let out = keel(&["state", "--json", "--config", config, "--data-dir", data]);
    assert!(out.status.success(), "keel state: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("keel state --json")
}

/// A `[[symbol]]` block for BTCUSDT (tick 0.01, lot 0.00001, minimum
/// notional 5) whose simulated path starts at `start_price` with
/// `volatility`, `touch_qty` at the touch.
pub fn btc_symbol(start_price: &str, volatility: f64, touch_qty: &str) -> String {
    format!(
        "\n[[symbol]]\nsymbol = \"BTCUSDT\"\nbase = \"BTC\"\nquote = \"USDT\"\ntick_size = \"0.01\"\nstep_size = \"0.00001\"\n\
         min_notional = \"5\"\nstart_price = \"{start_price}\"\nvolatility = {volatility}\ntouch_qty = \"{touch_qty}\"\n"
    )
}

/// A backtest config on [`btc_symbol`] (30000, volatility 0.5, 5 at the
/// touch): fees 5/10 bps, 100 000 USDT, the notional and rate limits off,
/// then `strategy`, one `[[strategy]]` block.
pub fn backtest_config(strategy: &str) -> String {
    format!(
        "{}\n[venue]\nmaker_fee_bps = \"5\"\ntaker_fee_bps = \"10\"\n\n[balances]\nUSDT = \"100000\"\n\n[risk]\n\
         max_order_notional = \"0\"\nmax_position_notional = \"0\"\nstrategy_orders_per_second = 0\n\
         strategy_orders_per_minute = 0\nglobal_orders_per_second = 0\nglobal_orders_per_minute = 0\n\n{strategy}",
        btc_symbol("30000", 0.5, "5")
    )
}

/// Hourly bars of a deterministic wave plus seeded noise.
pub fn write_bars(path: &std::path::Path, n: usize, seed: u64) {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    let mut state = seed;
    let mut prev = 30_000.0f64;
    for i in 0..n {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let noise = ((state >> 33) % 1000) as f64 / 1000.0 - 0.5;
        let close = 30_000.0 + 2_000.0 * (i as f64 / 40.0).sin() + 600.0 * noise;
        let (open, close) = ((prev * 100.0).round() / 100.0, (close * 100.0).round() / 100.0);
        let (high, low) = (open.max(close) + 20.0, open.min(close) - 20.0);
        let t = 1_704_067_200_000i64 + i as i64 * 3_600_000;
        text.push_str(&format!("{t},{open:.2},{high:.2},{low:.2},{close:.2},{:.3}\n", 10.0 + noise));
        prev = close;
    }
    std::fs::write(path, text).unwrap();
}
