//! `keel data download --kind funding|open_interest`: USDⓈ-M settled
//! funding (`/fapi/v1/fundingRate`, pages of 1000 by `startTime`) and
//! open-interest history (`/futures/data/openInterestHist`, pages of 500,
//! period = `--interval`; Binance keeps only the last 30 days) through the
//! adapter's [`UsdmClient`], written as `keel backtest --futures` reads them:
//! `DIR/SYMBOL-funding.csv|parquet` (`funding_time,symbol,funding_rate,mark_price`)
//! and `DIR/SYMBOL-open_interest-PERIOD.csv|parquet`
//! (`timestamp,symbol,sum_open_interest,sum_open_interest_value`).
//! Resumable like klines: rows after the file's last time are fetched.

use std::path::Path;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, TimestampMillisecondType};
use arrow_array::Array;
use keel_binance::usdm::{UsdmClient, UsdmConfig, MAINNET_REST};
use keel_core::futures::{FundingQuery, FuturesData, OiHistQuery, OiPeriod};
use keel_core::venue::VenueError;
use keel_core::{Decimal, Symbol};

use super::write::{write_futures, FuturesRows, OutFormat};
use super::{progress, DownloadArgs, Kind};
use crate::backtest::report::iso;

/// Binance keeps open-interest history this long.
const OI_KEPT_MS: i64 = 30 * 86_400_000;

const FUNDING_NAMES: [&str; 4] = ["funding_time", "symbol", "funding_rate", "mark_price"];
const OI_NAMES: [&str; 4] = ["timestamp", "symbol", "sum_open_interest", "sum_open_interest_value"];

/// Downloads funding or open interest for every symbol.
pub async fn download(args: &DownloadArgs, symbols: &[String], from: i64, to: Option<i64>) -> anyhow::Result<()> {
    let rest_url = args.rest_url.clone().unwrap_or_else(|| MAINNET_REST.to_string());
    // A download may wait for the funding and /futures/data buckets.
    let cfg = UsdmConfig { rest_url, max_bucket_wait_ms: 300_000, ..UsdmConfig::default() };
    let client = UsdmClient::new(cfg)?;
    let now = chrono::Utc::now().timestamp_millis();
    let end = to.unwrap_or(now).min(now);
    let period = match args.kind {
        Kind::OpenInterest => {
            let name = args.interval.as_deref().ok_or_else(|| {
                anyhow::anyhow!("--interval is required for open_interest (the period: 5m 15m 30m 1h 2h 4h 6h 12h 1d)")
            })?;
            Some(OiPeriod::parse(name).ok_or_else(|| {
                anyhow::anyhow!("--interval {name:?}: open interest periods are 5m 15m 30m 1h 2h 4h 6h 12h 1d")
            })?)
        }
        _ => None,
    };
    let mut from = from;
    if period.is_some() && from < now - OI_KEPT_MS {
        let kept = now - OI_KEPT_MS;
        eprintln!(
            "note: Binance keeps open-interest history for the last 30 days only: starting at {} instead of --from {}",
            iso(kept),
            iso(from)
        );
        from = kept;
    }
    for symbol in symbols {
        let (path, names) = match period {
            None => (args.out.join(format!("{symbol}-funding.{}", args.format.ext())), FUNDING_NAMES),
            Some(p) => {
                (args.out.join(format!("{symbol}-open_interest-{}.{}", p.as_str(), args.format.ext())), OI_NAMES)
            }
        };
        let mut rows = read_rows(&path, args.format, names)?;
        let had = rows.rows.len();
        let mut cursor = rows.rows.last().map_or(from, |r| (r.0 + 1).max(from));
        let bar =
            progress(&format!("{symbol} {}", if period.is_some() { "open interest" } else { "funding" }), 0, "rows");
        let sym = Symbol::new(symbol);
        let mut pages = 0u32;
        while cursor < end {
            let page = fetch(&client, &sym, period, cursor, end).await?;
            pages += 1;
            let before = rows.rows.len();
            rows.rows.extend(page.into_iter().filter(|r| r.0 >= cursor && r.0 < end));
            let Some(last) = rows.rows.last().map(|r| r.0).filter(|_| rows.rows.len() > before) else { break };
            bar.inc((rows.rows.len() - before) as u64);
            cursor = last + 1;
            if pages.is_multiple_of(args.checkpoint_pages) {
                write_futures(&path, &rows, args.format)?;
                bar.suspend(|| {
                    eprintln!("{symbol}: saved {} rows through {} to {}", rows.rows.len(), iso(last), path.display())
                });
            }
        }
        bar.finish_and_clear();
        let new = rows.rows.len() - had;
        if new > 0 {
            write_futures(&path, &rows, args.format)?;
        }
        match (rows.rows.first(), rows.rows.last()) {
            (Some(first), Some(last)) => println!(
                "{symbol} {}: {} rows in {} ({new} new, {had} there before), {} .. {}; source: rest ({pages} pages)",
                if period.is_some() { "open interest" } else { "funding" },
                rows.rows.len(),
                path.display(),
                iso(first.0),
                iso(last.0)
            ),
            _ => println!("{symbol}: no rows from {} to {}", iso(from), iso(end)),
        }
    }
    Ok(())
}

/// One page of rows from `start`, waiting out rate limits.
async fn fetch(
    client: &UsdmClient,
    symbol: &Symbol,
    period: Option<OiPeriod>,
    start: i64,
    end: i64,
) -> anyhow::Result<Vec<(i64, String, Decimal, Option<Decimal>)>> {
    let mut limited = 0;
    loop {
        let answer = match period {
            None => client
                .funding_history(&FundingQuery {
                    symbol: Some(symbol.clone()),
                    start_ms: Some(start),
                    end_ms: Some(end),
                    limit: Some(1000),
                })
                .await
                .map(|rows| {
                    rows.into_iter().map(|r| (r.funding_time, r.symbol.to_string(), r.rate, r.mark_price)).collect()
                }),
            Some(p) => client
                .open_interest_hist(&OiHistQuery {
                    symbol: symbol.clone(),
                    period: p,
                    start_ms: Some(start),
                    end_ms: Some(end),
                    limit: Some(500),
                })
                .await
                .map(|rows| {
                    rows.into_iter()
                        .map(|r| (r.ts_ms, r.symbol.to_string(), r.sum_open_interest, Some(r.sum_open_interest_value)))
                        .collect()
                }),
        };
        match answer {
            Ok(rows) => return Ok(rows),
            Err(VenueError::RateLimited { retry_after_ms } | VenueError::Banned { retry_after_ms }) if limited < 20 => {
                limited += 1;
                eprintln!("{symbol}: rate limited; waiting {retry_after_ms} ms");
                tokio::time::sleep(Duration::from_millis(retry_after_ms.max(100))).await;
            }
            Err(e) => anyhow::bail!("{symbol} from {}: {e}", iso(start)),
        }
    }
}

/// The rows of a file this command wrote before (none if it does not exist).
fn read_rows(path: &Path, format: OutFormat, names: [&'static str; 4]) -> anyhow::Result<FuturesRows> {
    let mut out = FuturesRows { names, rows: Vec::new() };
    if !path.exists() {
        return Ok(out);
    }
    let label = path.display().to_string();
    let bad = |line: usize, what: &str| anyhow::anyhow!("{label}:{line}: {what} (delete the file to start over)");
    match format {
        OutFormat::Csv => {
            let mut reader = csv::Reader::from_path(path).map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            for (i, record) in reader.records().enumerate() {
                let line = i + 2;
                let r = record.map_err(|e| bad(line, &e.to_string()))?;
                let t = r.get(0).and_then(|t| t.parse::<i64>().ok()).ok_or_else(|| bad(line, "bad time"))?;
                let a = r.get(2).and_then(|v| v.parse::<Decimal>().ok()).ok_or_else(|| bad(line, "bad value"))?;
                let b = r.get(3).filter(|v| !v.is_empty()).map(|v| v.parse::<Decimal>()).transpose();
                let b = b.map_err(|_| bad(line, "bad second value"))?;
                out.rows.push((t, r.get(1).unwrap_or_default().to_string(), a, b));
            }
        }
        OutFormat::Parquet => {
            let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            let reader =
                ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                    .and_then(|b| b.build())
                    .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
            for batch in reader {
                let batch = batch.map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
                let col = |i: usize| {
                    batch.column_by_name(names[i]).ok_or_else(|| bad(0, &format!("no `{}` column", names[i])))
                };
                let times = col(0)?
                    .as_primitive_opt::<TimestampMillisecondType>()
                    .ok_or_else(|| bad(0, "times are not ms timestamps"))?;
                let symbols = col(1)?.as_string_opt::<i32>().ok_or_else(|| bad(0, "symbols are not text"))?;
                let a =
                    col(2)?.as_primitive_opt::<Decimal128Type>().ok_or_else(|| bad(0, "values are not decimals"))?;
                let b =
                    col(3)?.as_primitive_opt::<Decimal128Type>().ok_or_else(|| bad(0, "values are not decimals"))?;
                let dec = |m: i128, scale: i8| Decimal::try_from_i128_with_scale(m, scale.max(0) as u32).ok();
                for i in 0..batch.num_rows() {
                    let first = dec(a.value(i), a.scale()).ok_or_else(|| bad(i + 1, "value out of range"))?;
                    let second = if b.is_valid(i) { dec(b.value(i), b.scale()) } else { None };
                    out.rows.push((times.value(i), symbols.value(i).to_string(), first, second));
                }
            }
        }
    }
    out.rows.sort_by_key(|r| r.0);
    Ok(out)
}
