//! A log output nobody reads (a stalled journald or Docker log driver, a full
//! pipe) must not freeze the engine: it keeps working, counts the log lines
//! it drops, takes an emergency stop, and stops promptly on SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = include_str!("../../config.toml");

/// A port free a moment ago on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// One metric's value from `/metrics`, if the engine answers.
fn metric(port: u16, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
}

/// Sets the emergency stop through the HTTP API; returns the status line.
fn emergency_stop(port: u16, token: &str) -> String {
    let body = r#"{"reason":"test: log output blocked","flatten":false}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the API answers");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let req = format!(
        "POST /api/v1/emergency-stop HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("request sent");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_string()
}

/// Waits (bounded) until `pred` holds for the metric's value.
fn wait_metric(port: u16, name: &str, within: Duration, pred: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = metric(port, name).filter(|v| pred(*v)) {
            return v;
        }
        assert!(Instant::now() < deadline, "{name} never got there (last: {:?})", metric(port, name));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_engine_whose_log_output_nobody_reads_keeps_working_takes_an_emergency_stop_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    let text = CONFIG
        .replace("listen = \"127.0.0.1:9184\"", &format!("listen = \"127.0.0.1:{port}\""))
        .replace("# token_env = \"KEEL_API_TOKEN\"", "token_env = \"KEEL_TEST_API_TOKEN\"");
    std::fs::write(&config, text).unwrap();
    let token = "log-pipe-test-token-0123456789abcdef";
    // Trace level with the transport crates' frame dumps (named, so not
    // capped) fills a pipe in moments; stdout and stderr are pipes this
    // test never reads.
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "trace,tungstenite=trace,tokio_tungstenite=trace,hyper=trace,actix_http=trace")
        .env("KEEL_TEST_API_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keel starts");

    // The pipe is full and lines are being dropped, yet the engine answers…
    wait_metric(port, "keel_log_lines_dropped_total", Duration::from_secs(60), |v| v > 0.0);
    // …and keeps working: market events keep reaching the strategies.
    let before = wait_metric(port, "keel_market_events_total", Duration::from_secs(10), |_| true);
    wait_metric(port, "keel_market_events_total", Duration::from_secs(30), |v| v > before);
    // …and the emergency stop still works.
    let answer = emergency_stop(port, token);
    assert!(answer.contains("200"), "{answer}");
    wait_metric(port, "keel_emergency_stop", Duration::from_secs(10), |v| v == 1.0);

    let sent = Instant::now();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let exited = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("keel was still running 10 s after SIGTERM with its log output blocked");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exited.success(), "a graceful stop: {exited:?}");
}
