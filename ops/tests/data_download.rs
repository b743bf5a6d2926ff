//! `keel data download` through the real binary against a standalone
//! sandbox: a download killed halfway and run again ends with exactly the
//! sandbox's bars; an archive whose checksum is wrong is refused with one
//! line; gaps are reported in the summary and stored with the file; archive
//! and REST give the same bars (across Binance's 2025 switch to microsecond
//! archive times, with an unpublished day fetched by REST); funding
//! downloaded from the sandbox is read by `keel backtest --futures`; Coinbase
//! candles are the same bars as the Binance protocol serves.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{keel, spawn_sandbox, DEADLINE};
use keel_core::market::Bar;
use keel_core::Decimal;
use ops::backtest::data::{parse_time, read_file, Bars};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn ms(t: &str) -> i64 {
    parse_time(t).expect("a time")
}

/// A standalone sandbox with `config` (a `[sandbox]` table) in `dir`.
fn sandbox(dir: &Path, config: &str) -> (std::process::Child, String) {
    let path = dir.join("sandbox.toml");
    std::fs::write(&path, format!("[sandbox]\n{config}")).unwrap();
    let (child, field) = spawn_sandbox(&path, &[]);
    (child, field("rest_url"))
}

/// Kills the sandbox when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (open time, open, high, low, close, volume) of every bar of a file.
fn file_bars(path: &Path) -> Vec<(i64, [Decimal; 5])> {
    let mut bars = Bars::default();
    for parsed in read_file(path, false).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        bars.append(parsed.bars).unwrap();
    }
    as_rows(&bars)
}

fn as_rows(bars: &Bars) -> Vec<(i64, [Decimal; 5])> {
    let z = Decimal::ZERO;
    let mut bar = Bar {
        symbol: keel_core::Symbol::new("X"),
        open_time: 0,
        close_time: 0,
        open: z,
        high: z,
        low: z,
        close: z,
        volume: z,
    };
    (0..bars.len())
        .map(|i| {
            bars.fill(i, &mut bar);
            (bar.open_time, [bar.open, bar.high, bar.low, bar.close, bar.volume])
        })
        .collect()
}

/// The sandbox's klines for `[from, to)`, fetched page by page with the
/// Binance adapter's REST client.
fn sandbox_klines(rest_url: &str, symbol: &str, interval: &str, from: i64, to: i64) -> Vec<(i64, [Decimal; 5])> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let rest =
            keel_binance::RestClient::new(rest_url, keel_binance::Credentials::new("", ""), 5000, 10_000).unwrap();
        let mut out: Vec<(i64, [Decimal; 5])> = Vec::new();
        let mut cursor = from;
        loop {
            let page = rest.klines(symbol, interval, Some(cursor), Some(to - 1), 1000).await.unwrap();
            let Some(last) = page.last().map(|k| k.open_time) else { break };
            out.extend(page.iter().map(|k| (k.open_time, [k.open, k.high, k.low, k.close, k.volume])));
            cursor = last + 1;
        }
        out
    })
}

/// `keel data download --venue VENUE --symbols SYMBOLS --from FROM --out
/// OUT --rest-url URL EXTRA…`.
fn download_args(venue: &str, symbols: &str, from: &str, out: &Path, url: &str, extra: &[&str]) -> Vec<String> {
    let head = [
        "data",
        "download",
        "--venue",
        venue,
        "--symbols",
        symbols,
        "--from",
        from,
        "--out",
        s(out),
        "--rest-url",
        url,
    ];
    head.iter().chain(extra).map(|a| a.to_string()).collect()
}

/// Runs `keel` with `args`.
fn run(args: &[String]) -> std::process::Output {
    keel(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn ok(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "keel failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn a_download_killed_halfway_and_run_again_has_exactly_the_sandbox_bars() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = sandbox(dir.path(), "");
    let _sandbox = Killed(child);
    let out = dir.path().join("data");
    let (from, to) = ("2024-01-01", "2024-02-12");
    let args = download_args(
        "binance",
        "BTCUSDT",
        from,
        &out,
        &url,
        &["--interval", "1m", "--to", to, "--checkpoint-pages", "1"],
    );
    let mut first = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keel starts");
    let stderr = first.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Three pages saved: kill it (SIGKILL, no chance to clean up).
    let mut saved = 0;
    while saved < 3 {
        let line = rx.recv_timeout(DEADLINE).expect("a progress line");
        saved += usize::from(line.contains(": saved "));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let file = out.join("BTCUSDT-1m.parquet");
    let partial = file_bars(&file);
    let total = ((ms(to) - ms(from)) / 60_000) as usize;
    assert!(partial.len() >= 3000 && partial.len() < total, "killed halfway: {} of {total} bars", partial.len());

    let summary = ok(&run(&args));
    assert!(
        summary.contains(&format!("BTCUSDT 1m: {total} bars in "))
            && summary.contains(&format!("({} new, {} there before)", total - partial.len(), partial.len())),
        "{summary}"
    );
    let want = sandbox_klines(&url, "BTCUSDT", "1m", ms(from), ms(to));
    assert_eq!(want.len(), total);
    let got = file_bars(&file);
    assert_eq!(got.len(), want.len(), "no bar doubled or missing");
    assert!(got == want, "the file holds exactly the sandbox's bars");
    // Nothing left to fetch: a third run changes nothing.
    let again = ok(&run(&args));
    assert!(again.contains(&format!("(0 new, {total} there before)")), "{again}");
    assert_eq!(file_bars(&file), want);
}

#[test]
fn an_archive_with_a_wrong_checksum_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = sandbox(dir.path(), "[sandbox.archive]\nbad_checksums = [\"ETHUSDT-1h-2024-01-03.zip\"]\n");
    let _sandbox = Killed(child);
    let out = dir.path().join("data");
    let extra = ["--interval", "1h", "--to", "2024-01-05", "--archive-url", &url, "--source", "archive"];
    let output = run(&download_args("binance", "ETHUSDT", "2024-01-01", &out, &url, &extra));
    assert!(!output.status.success(), "refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains(": saved ")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("keel: ETHUSDT-1h-2024-01-03.zip: checksum mismatch (.CHECKSUM says "),
        "{}",
        lines[0]
    );
    // The verified days before it are kept; nothing of the refused one.
    let got = file_bars(&out.join("ETHUSDT-1h.parquet"));
    assert_eq!(got.len(), 48, "two whole days");
    assert_eq!(got.last().map(|b| b.0), Some(ms("2024-01-02T23:00:00Z")));
}

#[test]
fn gaps_are_reported_and_archive_and_rest_give_the_same_bars() {
    let dir = tempfile::tempdir().unwrap();
    let (gap_from, gap_to) = (ms("2024-12-31T03:00:00Z"), ms("2024-12-31T05:00:00Z"));
    let (child, url) = sandbox(
        dir.path(),
        &format!(
            "[sandbox.archive]\nmissing = [\"BTCUSDT-1h-2025-01-02.zip\"]\n\
             gaps = [{{ symbol = \"BTCUSDT\", from_ms = {gap_from}, to_ms = {gap_to} }}]\n"
        ),
    );
    let _sandbox = Killed(child);
    let download = |source: &str, format: &str, out: &Path| {
        let extra = [
            "--interval",
            "1h",
            "--to",
            "2025-01-03T05:00:00Z",
            "--archive-url",
            &url,
            "--source",
            source,
            "--format",
            format,
        ];
        ok(&run(&download_args("binance", "BTCUSDT", "2024-11-30", out, &url, &extra)))
    };
    let gap_line = "  gap: 2024-12-31T03:00:00Z .. 2024-12-31T05:00:00Z (2 bars missing)";

    let archived = dir.path().join("archive");
    let summary = download("archive", "csv", &archived);
    assert!(summary.contains("source: archive (3 files), rest (2 pages)"), "a day, a month, a day: {summary}");
    assert!(summary.contains(gap_line), "{summary}");
    assert!(
        summary.contains(
            "  rest instead of the archive for 2025-01-02T00:00:00Z .. 2025-01-03T00:00:00Z: \
             BTCUSDT-1h-2025-01-02.zip is not in the archive"
        ),
        "{summary}"
    );
    let csv = std::fs::read_to_string(archived.join("BTCUSDT-1h.csv")).unwrap();
    assert!(csv.contains("\n# gap: 2024-12-31T03:00:00Z .. 2024-12-31T05:00:00Z (2 bars missing)\n"), "{csv}");

    let by_rest = dir.path().join("rest");
    let summary = download("rest", "parquet", &by_rest);
    assert!(summary.contains(gap_line) && summary.contains("  gaps: 1"), "{summary}");
    let parquet = by_rest.join("BTCUSDT-1h.parquet");
    let meta = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&parquet).unwrap()).unwrap();
    let kv = parquet::file::reader::FileReader::metadata(&meta).file_metadata().key_value_metadata().cloned();
    let value = |k: &str| kv.iter().flatten().find(|e| e.key == k).and_then(|e| e.value.clone());
    assert_eq!(value("gaps").as_deref(), Some("2024-12-31T03:00:00Z/2024-12-31T05:00:00Z"));
    assert_eq!(value("gap_count").as_deref(), Some("1"));

    let from_archive = file_bars(&archived.join("BTCUSDT-1h.csv"));
    let from_rest = file_bars(&parquet);
    assert_eq!(from_archive.len(), 34 * 24 + 5 - 2);
    assert!(from_archive == from_rest, "the archives (µs times from 2025) hold the REST bars");
    assert!(from_rest.iter().all(|b| b.0 < gap_from || b.0 >= gap_to));
    assert_eq!(from_rest, sandbox_klines(&url, "BTCUSDT", "1h", ms("2024-11-30"), ms("2025-01-03T05:00:00Z")));
}

#[test]
fn funding_downloaded_from_the_sandbox_is_read_by_backtest_futures() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = sandbox(dir.path(), "history_bars = 3000\n");
    let _sandbox = Killed(child);
    let now = chrono::Utc::now().timestamp_millis();
    let from = now - 2 * 86_400_000;
    let from_text = from.to_string();
    let data = dir.path().join("data");
    let futures = dir.path().join("futures");
    let btc = |out: &Path, extra: &[&str]| run(&download_args("binance", "BTCUSDT", &from_text, out, &url, extra));
    let summary = ok(&btc(&data, &["--interval", "1m", "--format", "csv"]));
    assert!(summary.contains("BTCUSDT 1m: "), "{summary}");
    let summary = ok(&btc(&futures, &["--kind", "funding"]));
    assert!(summary.contains("BTCUSDT funding: "), "{summary}");
    let rows: usize = summary
        .split("BTCUSDT funding: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rows >= 4, "8-hourly settlements over two days: {summary}");
    // Open interest beside it: a --from older than Binance keeps is said,
    // and a second run finds nothing new.
    let month_ago = (now - 40 * 86_400_000).to_string();
    let oi = download_args(
        "binance",
        "BTCUSDT",
        &month_ago,
        &futures,
        &url,
        &["--kind", "open_interest", "--interval", "1h"],
    );
    let first = run(&oi);
    let summary = ok(&first);
    assert!(summary.contains("BTCUSDT open interest: "), "{summary}");
    assert!(
        String::from_utf8_lossy(&first.stderr)
            .contains("note: Binance keeps open-interest history for the last 30 days only: starting at "),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = ok(&run(&oi));
    assert!(again.contains(" (0 new, "), "{again}");

    let config = dir.path().join("config.toml");
    let rest = r#"
[balances]
USDT = "100000"

[risk]
max_order_notional = "20000"
max_position_notional = "60000"

[[strategy]]
id = "sma"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20, qty = "0.01", max_funding = "0" }
"#;
    std::fs::write(&config, common::btc_symbol("60000", 0.5, "5") + rest).unwrap();
    let run = |name: &str, extra: &[&str]| -> serde_json::Value {
        let report = dir.path().join(format!("{name}.json"));
        let args =
            [&["backtest", "--config", s(&config), "--data", s(&data), "--report", s(&report)][..], extra].concat();
        ok(&keel(&args));
        serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap()
    };
    let orders = |r: &serde_json::Value| r["orders"].as_u64().unwrap();
    let without = run("without", &[]);
    let with = run("with", &["--futures", s(&futures)]);
    assert!(orders(&without) > 0, "the downloaded bars make sma_cross trade: {without}");
    assert!(
        orders(&with) < orders(&without),
        "positive settled funding blocks long entries: {} vs {}",
        orders(&with),
        orders(&without)
    );
}

#[test]
fn rate_limits_are_waited_out_and_an_earlier_from_fetches_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = sandbox(
        dir.path(),
        "[sandbox.faults]\nfirst_requests = [{ kind = \"rate_limited\", retry_after_s = 1 }, { kind = \"server_error\" }]\n",
    );
    let _sandbox = Killed(child);
    let out = dir.path().join("data");
    let download = |from: &str| {
        run(&download_args(
            "binance",
            "BTCUSDT",
            from,
            &out,
            &url,
            &["--interval", "1h", "--to", "2024-01-03", "--format", "csv"],
        ))
    };
    let first = download("2024-01-02");
    let summary = ok(&first);
    assert!(summary.contains("BTCUSDT 1h: 24 bars in "), "{summary}");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains("rate limited (binance error -1003 (HTTP 429)"), "the 429 was waited out: {stderr}");

    let summary = ok(&download("2024-01-01"));
    assert!(summary.contains("BTCUSDT 1h: 48 bars in ") && summary.contains("(24 new, 24 there before)"), "{summary}");
    let want = sandbox_klines(&url, "BTCUSDT", "1h", ms("2024-01-01"), ms("2024-01-03"));
    assert_eq!(file_bars(&out.join("BTCUSDT-1h.csv")), want);
}

/// Coinbase candles (public endpoint, windows of 300) from a Coinbase-protocol
/// sandbox: the same bars as the Binance-protocol sandbox's klines, since the
/// past is a function of each symbol's seed, in another process.
#[test]
fn coinbase_candles_are_the_same_bars_as_the_binance_sandbox_serves() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sandbox.toml");
    std::fs::write(&config, "[sandbox]\n").unwrap();
    let (child, field) = spawn_sandbox(&config, &["--protocol", "coinbase"]);
    let _coinbase = Killed(child);
    let coinbase_url = field("rest_url");
    let (child, binance_url) = sandbox(dir.path(), "");
    let _binance = Killed(child);
    let out = dir.path().join("data");
    let download = |source: &str| {
        let extra = ["--interval", "1h", "--to", "2024-01-20", "--source", source];
        run(&download_args("coinbase", "BTC-USDT", "2024-01-01", &out, &coinbase_url, &extra))
    };
    let summary = ok(&download("rest"));
    assert!(summary.contains("BTCUSDT 1h: 456 bars in ") && summary.contains("rest (2 pages)"), "{summary}");
    let want = sandbox_klines(&binance_url, "BTCUSDT", "1h", ms("2024-01-01"), ms("2024-01-20"));
    assert_eq!(file_bars(&out.join("BTCUSDT-1h.parquet")), want);

    let refused = download("archive");
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim(),
        "keel: --venue coinbase: Coinbase publishes no candle archives; use --source rest"
    );
}
