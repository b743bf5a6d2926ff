//! Writing downloaded data: bars as the backtest's Parquet or CSV (with the
//! gaps in the Parquet key-value metadata, or in `#` comment lines at the top
//! of the CSV, which the CSV reader skips), and funding / open-interest rows
//! in the columns `keel backtest --futures` reads. Every file is written to
//! a temporary file in its directory and renamed into place, so a reader (or
//! a download resumed after a kill) never sees half a file.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Decimal128Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use keel_core::market::Bar;
use keel_core::Decimal;

use super::plan::Gap;
use crate::backtest::data::parquet::{write_parquet_with, CountingWriter};
use crate::backtest::data::Series;
use crate::backtest::report::iso;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// The backtest's Parquet (exact decimals).
    Parquet,
    /// CSV text.
    Csv,
}

impl OutFormat {
    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            OutFormat::Parquet => "parquet",
            OutFormat::Csv => "csv",
        }
    }
}

/// Writes `path` through a temporary file in its directory, renamed into
/// place once `write` succeeded and the data is on disk; returns its bytes.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<u64, String>,
) -> anyhow::Result<u64> {
    let label = path.display().to_string();
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".keel-").suffix(".tmp");
    // Readable like any data file (a temporary file is private).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| anyhow::anyhow!("cannot create a temporary file in {}: {e}", dir.display()))?;
    let bytes = {
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        let bytes = write(&mut out).map_err(|e| anyhow::anyhow!("cannot write {label}: {e}"))?;
        out.flush().map_err(|e| anyhow::anyhow!("cannot write {label}: {e}"))?;
        bytes
    };
    tmp.as_file().sync_all().map_err(|e| anyhow::anyhow!("cannot write {label}: {e}"))?;
    tmp.persist(path).map_err(|e| anyhow::anyhow!("cannot write {label}: {}", e.error))?;
    Ok(bytes)
}

/// How long a temporary file must have been left alone before a new run
/// takes it for a leftover of an interrupted one (a live download rewrites
/// its file within seconds; another process writing the same folder must
/// not lose its file).
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the temporary files [`write_atomically`] leaves when a download
/// is killed before its rename (`.keel-*.tmp`, untouched for `stale_after`);
/// returns how many went. Never touches any other file.
pub fn sweep_leftovers(dir: &Path, stale_after: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".keel-") && name.ends_with(".tmp")) {
            continue;
        }
        let idle = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= stale_after);
        if idle && entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The gaps as metadata text: `FROM/TO` ISO intervals (TO: the open time
/// of the next bar there is), comma-separated.
pub fn gaps_text(gaps: &[Gap]) -> String {
    gaps.iter().map(|g| format!("{}/{}", iso(g.from), iso(g.to))).collect::<Vec<_>>().join(",")
}

/// Writes bars (with their gaps) in `format`.
pub fn write_bars(path: &Path, series: &Series, gaps: &[Gap], format: OutFormat) -> anyhow::Result<u64> {
    match format {
        OutFormat::Parquet => {
            let extra = [("gaps".to_string(), gaps_text(gaps)), ("gap_count".to_string(), gaps.len().to_string())];
            write_atomically(path, |out| write_parquet_with(series, out, &extra))
        }
        OutFormat::Csv => write_atomically(path, |out| bars_csv(series, gaps, out).map_err(|e| e.to_string())),
    }
}

/// Bars as CSV: `#` lines naming the symbol, interval and each gap, then
/// `open_time,open,high,low,close,volume,close_time` with epoch-ms times.
fn bars_csv(series: &Series, gaps: &[Gap], out: &mut impl Write) -> std::io::Result<u64> {
    let mut out = CountingWriter { inner: out, bytes: 0 };
    let interval = crate::backtest::data::interval_name(series.interval_ms);
    writeln!(out, "# keel data download: {} {interval}, {} gaps", series.symbol, gaps.len())?;
    for g in gaps {
        writeln!(out, "# gap: {} .. {} ({} bars missing)", iso(g.from), iso(g.to), g.missing)?;
    }
    writeln!(out, "open_time,open,high,low,close,volume,close_time")?;
    let z = Decimal::ZERO;
    let mut bar = Bar {
        symbol: series.symbol.clone(),
        open_time: 0,
        close_time: 0,
        open: z,
        high: z,
        low: z,
        close: z,
        volume: z,
    };
    for i in 0..series.bars.len() {
        series.bars.fill(i, &mut bar);
        writeln!(
            out,
            "{},{},{},{},{},{},{}",
            bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.close_time
        )?;
    }
    Ok(out.bytes)
}

/// Rows of funding or open interest, in the columns `keel backtest
/// --futures` reads: a time, the symbol and two decimals (the second may be
/// missing, e.g. a funding row without a mark price).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuturesRows {
    /// Column names: time, symbol, first value, second value.
    pub names: [&'static str; 4],
    /// `(time ms, symbol, value, second value)`, by time.
    pub rows: Vec<(i64, String, Decimal, Option<Decimal>)>,
}

/// Writes futures rows in `format`.
pub fn write_futures(path: &Path, rows: &FuturesRows, format: OutFormat) -> anyhow::Result<u64> {
    match format {
        OutFormat::Csv => write_atomically(path, |out| futures_csv(rows, out).map_err(|e| e.to_string())),
        OutFormat::Parquet => write_atomically(path, |out| futures_parquet(rows, out)),
    }
}

fn futures_csv(rows: &FuturesRows, out: &mut impl Write) -> std::io::Result<u64> {
    let mut out = CountingWriter { inner: out, bytes: 0 };
    writeln!(out, "{}", rows.names.join(","))?;
    for (t, symbol, a, b) in &rows.rows {
        let b = b.map(|b| b.to_string()).unwrap_or_default();
        writeln!(out, "{t},{symbol},{a},{b}")?;
    }
    Ok(out.bytes)
}

/// A decimal column at the largest scale of its values (`Decimal128(38, s)`).
fn decimal_column(values: impl Iterator<Item = Option<Decimal>> + Clone) -> Result<ArrayRef, String> {
    let scale = values.clone().flatten().map(|d| d.scale()).max().unwrap_or(0);
    let mantissas: Vec<Option<i128>> = values
        .map(|v| {
            v.map(|mut d| {
                d.rescale(scale);
                d.mantissa()
            })
        })
        .collect();
    let array =
        Decimal128Array::from(mantissas).with_precision_and_scale(38, scale as i8).map_err(|e| e.to_string())?;
    Ok(Arc::new(array))
}

fn futures_parquet(rows: &FuturesRows, out: &mut (impl Write + Send)) -> Result<u64, String> {
    let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let first = decimal_column(rows.rows.iter().map(|r| Some(r.2)))?;
    let second = decimal_column(rows.rows.iter().map(|r| r.3))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new(rows.names[0], utc, false),
        Field::new(rows.names[1], DataType::Utf8, false),
        Field::new(rows.names[2], first.data_type().clone(), false),
        Field::new(rows.names[3], second.data_type().clone(), true),
    ]));
    let times = TimestampMillisecondArray::from(rows.rows.iter().map(|r| r.0).collect::<Vec<_>>()).with_timezone("UTC");
    let symbols = StringArray::from(rows.rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>());
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(times), Arc::new(symbols), first, second])
        .map_err(|e| e.to_string())?;
    let mut counting = CountingWriter { inner: out, bytes: 0 };
    let mut writer = ::parquet::arrow::ArrowWriter::try_new(&mut counting, schema, None).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(counting.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// Creates `name` in `dir`, last modified `age` ago.
    fn file(dir: &Path, name: &str, age: Duration) -> std::path::PathBuf {
        let path = dir.join(name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    #[test]
    fn only_idle_temporaries_of_an_interrupted_run_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let stale = file(dir.path(), ".keel-a1b2.tmp", hour);
        let live = file(dir.path(), ".keel-c3d4.tmp", Duration::ZERO);
        let data = file(dir.path(), "BTCUSDT-1m.parquet", hour);
        let other = file(dir.path(), ".other.tmp", hour);
        assert_eq!(sweep_leftovers(dir.path(), STALE_AFTER), 1);
        assert!(!stale.exists());
        for kept in [&live, &data, &other] {
            assert!(kept.exists(), "{} must stay", kept.display());
        }
        assert_eq!(sweep_leftovers(&dir.path().join("absent"), STALE_AFTER), 0);
    }
}
