//! What the real `keel` binary writes to its log: a newline inside a logged
//! value cannot forge a line, a pipe gets no colour codes, and no secret
//! appears even at `RUST_LOG=trace` while it trades on a standalone sandbox
//! with an HMAC key, serves an authenticated HTTP request and talks to a
//! Telegram Bot API.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{StandaloneSandbox, DEADLINE};

const TOKEN_ENV: &str = "KEEL_TEST_LOG_API_TOKEN";
const API_TOKEN: &str = "log-hygiene-api-token-0123456789abcdef";
const TG_ENV: &str = "KEEL_TEST_LOG_TG_TOKEN";
const TG_TOKEN: &str = "987654:LOG-hygiene-bot-token-xyz";

/// A `keel run` whose stderr is read raw, line by line, as a log file would get it.
struct Run {
    child: Child,
    lines: mpsc::Receiver<Vec<u8>>,
}

impl Run {
    fn spawn(config: &Path, data: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel"));
        cmd.args(["run", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("keel starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Self { child, lines }
    }

    /// Reads lines (each given to `seen`) until `done` holds for one (bounded).
    fn until(&mut self, what: &str, seen: &mut impl FnMut(&[u8]), done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else { panic!("no {what} before the deadline") };
            seen(&line);
            let text = plain(&String::from_utf8_lossy(&line));
            if done(&text) {
                return text;
            }
        }
    }

    /// SIGTERM, then every line left until the process exits (bounded).
    fn stop(mut self, seen: &mut impl FnMut(&[u8])) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "keel did not stop in time");
            while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                seen(&line);
            }
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            seen(&line);
        }
        status
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `line` without colour codes (matched through; another assertion is about them).
fn plain(line: &str) -> String {
    let mut plain = String::new();
    let mut rest = line;
    while let Some(i) = rest.find('\u{1b}') {
        plain.push_str(&rest[..i]);
        let tail = &rest[i..];
        rest = tail.find('m').map_or("", |m| &tail[m + 1..]);
    }
    plain.push_str(rest);
    plain
}

/// The address in the `HTTP API and /metrics listening listen=…` line.
fn listen_addr(plain: &str) -> String {
    let at = plain.find("listen=").expect("the listening line names the address") + "listen=".len();
    plain[at..].split_whitespace().next().expect("an address").to_string()
}

/// One HTTP/1.1 request with the API token; the status code.
fn request(addr: &str, method: &str, path: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("request sent");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn a_newline_in_a_logged_value_forges_no_line_and_a_pipe_gets_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keel.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[engine]\nlog_format = \"text\"\nlog_level = \"info\"\n\n[http]\nenabled = true\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\n",
            SANDBOX_BASE
        ),
    )
    .unwrap();
    let mut output: Vec<u8> = Vec::new();
    let mut seen = |line: &[u8]| output.extend_from_slice(line);
    let mut run = Run::spawn(&config, &dir.path().join("data"), &[(TOKEN_ENV, API_TOKEN)]);
    let listening = run.until("listening line", &mut seen, |l| l.contains("HTTP API and /metrics listening"));
    let addr = listen_addr(&listening);
    let body = serde_json::json!({ "reason": "drill\nERROR forged line \u{1b}[31mred" }).to_string();
    assert_eq!(request(&addr, "POST", "/api/v1/emergency-stop", &body), 200);
    run.until("emergency stop line", &mut seen, |l| l.contains("forged line"));
    let status = run.stop(&mut seen);
    assert!(status.success(), "keel stops cleanly: {status:?}");

    let text = String::from_utf8_lossy(&output);
    let with_it: Vec<&str> = text.lines().filter(|l| l.contains("forged line")).collect();
    // Three events carry the reason (the stop, the state change, the
    // cancel): one line each, the reason escaped inside it.
    let stop_lines = with_it.iter().filter(|l| l.contains("EMERGENCY STOP set:")).count();
    assert_eq!(stop_lines, 1, "the emergency stop is one line: {with_it:#?}");
    let drill_lines = text.lines().filter(|l| l.contains("drill")).count();
    assert_eq!(with_it.len(), drill_lines, "no line holds the forged text apart from its start: {with_it:#?}");
    for line in &with_it {
        assert!(line.contains("drill\\nERROR forged line \\u001b[31mred"), "escaped in place: {line}");
        assert!(!line.starts_with("ERROR forged line"), "a forged line: {line}");
    }
    assert!(!output.contains(&0x1b), "no ESC byte (colour codes) in a pipe: {text}");
}

#[test]
fn trace_logs_carry_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox_config = dir.path().join("sandbox.toml");
    std::fs::write(&sandbox_config, TESTNET_BASE).unwrap();
    let sb = StandaloneSandbox::start(&sandbox_config);
    let bot_api = fake_bot_api();
    let config = dir.path().join("keel.toml");
    std::fs::write(
        &config,
        format!(
            r#"{TESTNET_BASE}
[[strategy]]
id = "eth_fast"
kind = "sma_cross"
symbol = "ETHUSDT"
params = {{ fast = 2, slow = 3, qty = "0.5" }}

[http]
enabled = true
listen = "127.0.0.1:0"
token_env = "{TOKEN_ENV}"

[notify.telegram]
enabled = true
token_env = "{TG_ENV}"
allowed_chat_ids = [1001]
allowed_user_ids = [1001]
api_url = "{bot_api}"
poll_timeout = "1s"

{}"#,
            sb.binance_section()
        ),
    )
    .unwrap();
    let [(key_var, key), (secret_var, secret)] = sb.hmac_key_env();
    let secrets = [
        ("API key", key.clone()),
        ("API secret", secret.clone()),
        ("API token", API_TOKEN.into()),
        ("bot token", TG_TOKEN.into()),
    ];
    // Trace everywhere (the transport crates' frame dumps are capped), then
    // with those crates named, so their dumps are written and must be redacted.
    let filters = ["trace", "trace,tungstenite=trace,hyper=trace,h2=trace,reqwest=trace,rustls=trace,actix_http=trace"];
    for (i, filter) in filters.into_iter().enumerate() {
        let mut lines = 0usize;
        let mut leaks: Vec<String> = Vec::new();
        let mut redacted = 0usize;
        let mut seen = |line: &[u8]| {
            lines += 1;
            let text = String::from_utf8_lossy(line);
            redacted += usize::from(text.contains("<redacted>"));
            for (what, value) in &secrets {
                if text.contains(value.as_str()) && leaks.len() < 5 {
                    leaks.push(format!("{what}: {}", text.trim_end()));
                }
            }
        };
        let env = [
            (key_var, key.as_str()),
            (secret_var, secret.as_str()),
            (TOKEN_ENV, API_TOKEN),
            (TG_ENV, TG_TOKEN),
            ("RUST_LOG", filter),
        ];
        let mut run = Run::spawn(&config, &dir.path().join(format!("data{i}")), &env);
        let listening = run.until("listening line", &mut seen, |l| l.contains("HTTP API and /metrics listening"));
        let addr = listen_addr(&listening);
        assert_eq!(request(&addr, "GET", "/api/v1/status", ""), 200);
        run.until("an order", &mut seen, |l| l.contains("order created"));
        run.until("a fill", &mut seen, |l| l.contains("fill strategy="));
        let _ = run.stop(&mut seen);
        assert!(lines > 1000, "trace level was on ({filter}): {lines} lines");
        assert!(leaks.is_empty(), "secrets in the log at {filter}:\n{}", leaks.join("\n"));
        if i == 1 {
            assert!(redacted > 0, "the named crates' frame dumps were written, with the key redacted");
        }
    }
}

/// Just enough of the Telegram Bot API for the bot to start, poll and send:
/// every request carries the token in its path.
fn fake_bot_api() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || answer_bot(stream));
        }
    });
    format!("http://{addr}")
}

fn answer_bot(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let path = request_line.to_ascii_lowercase();
    let result = if path.contains("/getme") {
        serde_json::json!({"id": 42, "is_bot": true, "first_name": "Keel", "username": "keel_log_bot"})
    } else if path.contains("/getupdates") {
        std::thread::sleep(Duration::from_millis(200));
        serde_json::json!([])
    } else if path.contains("/sendmessage") {
        serde_json::json!({"message_id": 1, "date": 1_700_000_000, "chat": {"id": 1001, "type": "private", "first_name": "U"}, "text": "ok"})
    } else {
        serde_json::json!(true)
    };
    let body = serde_json::json!({"ok": true, "result": result}).to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The embedded sandbox, fast, no strategy.
const SANDBOX_BASE: &str = r#"
[venue]
mode = "sandbox"
ticks_per_bar = 2

[sandbox]
speed = 600

[balances]
USDT = "100000"
BTC = "0"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"
min_notional = "5"
start_price = "50000"
volatility = 0.5
seed = 3
touch_qty = "3"
"#;

/// Keel on a standalone sandbox as on the testnet (URLs overridden, keys from the environment).
const TESTNET_BASE: &str = r#"
[engine]
log_format = "text"

[venue]
mode = "testnet"
ticks_per_bar = 4

[sandbox]
speed = 1200

[balances]
USDT = "1000000"
ETH = "0"

[[symbol]]
symbol = "ETHUSDT"
base = "ETH"
quote = "USDT"
tick_size = "0.01"
step_size = "0.001"
min_notional = "5"
start_price = "3000"
volatility = 2.0
seed = 12
touch_qty = "30"

[risk]
max_order_notional = "100000"
max_position_notional = "100000"
"#;
