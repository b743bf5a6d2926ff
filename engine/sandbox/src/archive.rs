//! Binance's public kline archives, offline: the data.binance.vision layout
//! served from the sandbox's deterministic past ([`super::history`]).
//!
//! - `/data/spot/monthly/klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-YYYY-MM.zip`
//! - `/data/spot/daily/klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-YYYY-MM-DD.zip`
//! - each with `….zip.CHECKSUM`: `"<sha256 hex>  <zip name>\n"`.
//!
//! A zip holds one headerless CSV of Binance's twelve kline columns, the
//! same bars `klines` serves for that period. As in Binance's spot archives
//! since 2025-01-01, files of 2025 and later stamp their times in
//! microseconds. A period that is not wholly older than the live window
//! (today, or the sandbox's own recent bars) has no file yet: 404, as
//! Binance answers for a day not yet published.
//!
//! `[sandbox.archive]` is the test hook: `bad_checksums` lists zip names
//! whose `.CHECKSUM` is wrong, `missing` zip names answered 404, and `gaps`
//! cuts maintenance gaps out of the bars (REST and archives alike).

use std::io::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::exchange::d8;
use super::rest::interval_ms;
use super::App;

/// Spot archives switched to microsecond times from this day (2025-01-01).
const MICROS_FROM_MS: i64 = 1_735_689_600_000;

/// A maintenance gap: no bars of `symbol` open in `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapConfig {
    /// The symbol.
    pub symbol: String,
    /// First missing minute (ms since the epoch).
    pub from_ms: i64,
    /// End of the gap (exclusive, ms).
    pub to_ms: i64,
}

/// `[sandbox.archive]`: faults of the history and its archives, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Zip names (`BTCUSDT-1m-2024-01-02.zip`) whose `.CHECKSUM` names a
    /// wrong digest.
    pub bad_checksums: Vec<String>,
    /// Zip names the archive does not have (404), as for a day Binance has
    /// not published.
    pub missing: Vec<String>,
    /// Maintenance gaps.
    pub gaps: Vec<GapConfig>,
}

/// The archive routes.
pub(crate) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new().route("/data/spot/{period}/klines/{symbol}/{interval}/{file}", axum::routing::get(file))
}

/// What a file name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    zip_name: String,
    checksum: bool,
    from: i64,
    to: i64,
}

/// Parses `SYMBOL-INTERVAL-YYYY-MM[-DD].zip[.CHECKSUM]` for `period`.
fn parse(period: &str, symbol: &str, interval: &str, file: &str) -> Option<Wanted> {
    let (zip_name, checksum) = match file.strip_suffix(".CHECKSUM") {
        Some(z) => (z, true),
        None => (file, false),
    };
    let date = zip_name.strip_suffix(".zip")?.strip_prefix(&format!("{symbol}-{interval}-"))?;
    let (first, next) = match period {
        "daily" => {
            let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
            (d, d.succ_opt()?)
        }
        "monthly" => {
            let d = NaiveDate::parse_from_str(&format!("{date}-01"), "%Y-%m-%d").ok()?;
            let next = if d.month() == 12 {
                NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)?
            };
            (d, next)
        }
        _ => return None,
    };
    let ms = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis());
    Some(Wanted { zip_name: zip_name.to_string(), checksum, from: ms(first)?, to: ms(next)? })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>")
        .into_response()
}

/// The zip (or its checksum line) of one period.
async fn file(
    State(app): State<Arc<App>>,
    Path((period, symbol, interval, file)): Path<(String, String, String, String)>,
) -> Response {
    let Some(step) = interval_ms(&interval) else { return not_found() };
    let Some(wanted) = parse(&period, &symbol, &interval, &file) else { return not_found() };
    if app.cfg.archive.missing.contains(&wanted.zip_name) {
        return not_found();
    }
    let Some(sym) = app.cfg.symbols.iter().find(|s| s.symbol == symbol) else { return not_found() };
    let (live_first, seam) = {
        let st = app.ex.lock();
        let Some(view) = st.market_view(&symbol) else { return not_found() };
        let first = view.history.first().or(view.current);
        (first.map(|b| b.open_time), super::history::Seam::of(first))
    };
    // Published only once the whole period is in the past.
    if live_first.is_none_or(|l| wanted.to > l - l.rem_euclid(step)) {
        return not_found();
    }
    let past = super::history::Past { sym, cfg: &app.cfg.archive, seam };
    let bars = past.bars(step, wanted.from, wanted.to, usize::MAX);
    let micros = wanted.from >= MICROS_FROM_MS;
    let t = |ms: i64| if micros { ms * 1000 } else { ms };
    let mut csv = String::with_capacity(bars.len() * 120);
    for (b, s) in &bars {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},0\n",
            t(b.open_time),
            d8(b.open),
            d8(b.high),
            d8(b.low),
            d8(b.close),
            d8(b.volume),
            t(b.close_time),
            d8(s.quote_volume),
            s.count,
            d8(s.taker_buy_base),
            d8(s.taker_buy_quote),
        ));
    }
    let csv_name = wanted.zip_name.replace(".zip", ".csv");
    let zip = match zip_one(&csv_name, csv.as_bytes()) {
        Ok(z) => z,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    if !wanted.checksum {
        return ([("content-type", "application/zip")], zip).into_response();
    }
    let mut digest = hex::encode(sha2::Sha256::digest(&zip));
    if app.cfg.archive.bad_checksums.iter().any(|n| n == &wanted.zip_name) {
        digest = hex::encode(sha2::Sha256::digest(digest.as_bytes()));
    }
    ([("content-type", "text/plain")], format!("{digest}  {}\n", wanted.zip_name)).into_response()
}

/// A zip of one deflated entry, byte-for-byte the same for the same text
/// (a fixed modification time), so its checksum is stable.
fn zip_one(name: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    out.start_file(name, options).map_err(|e| e.to_string())?;
    out.write_all(bytes).map_err(|e| e.to_string())?;
    Ok(out.finish().map_err(|e| e.to_string())?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_in_the_binance_layout() {
        struct Case {
            period: &'static str,
            file: &'static str,
            want: Option<(bool, &'static str, &'static str)>,
        }
        let cases = [
            Case {
                period: "daily",
                file: "BTCUSDT-1m-2024-01-02.zip",
                want: Some((false, "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z")),
            },
            Case {
                period: "daily",
                file: "BTCUSDT-1m-2024-02-29.zip.CHECKSUM",
                want: Some((true, "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z")),
            },
            Case {
                period: "monthly",
                file: "BTCUSDT-1m-2024-12.zip",
                want: Some((false, "2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z")),
            },
            Case { period: "daily", file: "BTCUSDT-1m-2024-01.zip", want: None },
            Case { period: "monthly", file: "ETHUSDT-1m-2024-01.zip", want: None },
            Case { period: "weekly", file: "BTCUSDT-1m-2024-01.zip", want: None },
            Case { period: "daily", file: "BTCUSDT-1m-2024-01-32.zip", want: None },
        ];
        let ms = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        for c in cases {
            let got = parse(c.period, "BTCUSDT", "1m", c.file).map(|w| (w.checksum, w.from, w.to));
            assert_eq!(got, c.want.map(|(k, f, t)| (k, ms(f), ms(t))), "{} {}", c.period, c.file);
        }
    }

    #[test]
    fn the_same_text_zips_to_the_same_bytes() {
        let a = zip_one("a.csv", b"1,2,3\n").unwrap();
        assert_eq!(a, zip_one("a.csv", b"1,2,3\n").unwrap());
        assert_ne!(a, zip_one("a.csv", b"1,2,4\n").unwrap());
    }
}
