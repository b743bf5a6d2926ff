//! Helpers shared by the tests that drive the real `keel` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Run {
    pub child: Child,
    pub lines: mpsc::Receiver<serde_json::Value>,
    pub seen: Vec<serde_json::Value>,
}

pub fn spawn(config: &Path, data: &Path, extra: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["run", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keel starts");
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
    Run { child, lines: rx, seen: Vec::new() }
}

impl Run {
    /// Reads log lines until `n` lines with `message` have been seen (bounded).
    pub fn wait_for(&mut self, message: &str, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.count(message) < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(_) => panic!(
                    "only {} `{message}` lines before the deadline; log: {:?}",
                    self.count(message),
                    self.seen.last()
                ),
            }
        }
    }

    pub fn count(&self, message: &str) -> usize {
        self.seen.iter().filter(|v| v["message"] == message).count()
    }

    pub fn finish(mut self) -> Vec<serde_json::Value> {
        while let Ok(v) = self.lines.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(v);
        }
        self.seen
    }
}

/// Sends SIGTERM (graceful stop) to a child.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
}

/// Runs `keel` with arguments and returns its output.
pub fn keel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keel")).args(args).env_remove("RUST_LOG").output().expect("keel runs")
}
