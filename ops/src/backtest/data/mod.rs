//! Loading historical bars: CSV files, Binance's kline archives (`.zip`
//! holding a CSV) and Parquet files, into columns of exact scaled integers
//! ([`columns`]).
//!
//! Two CSV layouts are read ([`csv`]):
//! - a header row (names case-insensitive) with a time column (`timestamp`,
//!   `date`, `time`, `open_time`, `datetime`, or an unnamed first column as
//!   pandas writes its index) and `open`, `high`, `low`, `close`, and optionally
//!   `volume` and `close_time`;
//! - Binance's kline CSV without a header: open time, open, high, low, close,
//!   volume, close time, and five more columns that are ignored.
//!
//! Times are ISO dates (`2024-01-31`, midnight UTC), ISO date-times (with `T`
//! or a space, optional fraction and offset; no offset means UTC) or epoch
//! numbers: milliseconds, or microseconds when above 10^14 (Binance's newer
//! files), or seconds when below 10^11. A row's time is the bar's open time.
//! Rows may come in any order; they are sorted, and a repeated time keeps the
//! first row. A bad row stops loading with the file, line and reason, or with
//! `skip_bad_rows` is skipped and counted.
//!
//! A `.zip` is read as its `.csv` entries ([`zip`]); a `.parquet` file by
//! column names like a CSV header, with exact decimal, float or integer
//! prices ([`parquet`]). A directory stands for its `.csv`, `.zip` and
//! `.parquet` files, and every file of one symbol makes one series.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use keel_core::Symbol;

pub mod columns;
pub mod csv;
pub mod futures;
pub mod parquet;
mod parquet_direct;
pub mod zip;

pub use self::columns::Bars;
pub use self::csv::parse_csv;

/// Why bars could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// One row is wrong.
    #[error("{file}:{line}: {reason}")]
    BadRow {
        /// The file.
        file: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file as a whole is wrong (unreadable, no time column, no rows).
    #[error("{file}: {reason}")]
    File {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

impl DataError {
    fn file(file: &str, reason: impl Into<String>) -> Self {
        Self::File { file: file.to_string(), reason: reason.into() }
    }
}

/// One file's bars and what was learned about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedFile {
    /// Bars in file order.
    pub bars: Bars,
    /// Rows skipped as bad (only with `skip_bad_rows`).
    pub skipped: usize,
    /// The first skipped rows' `line: reason`, for the operator (at most 5).
    pub skipped_examples: Vec<String>,
    /// The symbol the file says it holds (Parquet metadata), if any.
    pub symbol: Option<String>,
}

impl ParsedFile {
    /// Counts a skipped row; `at` is its line (or ` row N` in Parquet).
    fn note_skip(&mut self, at: impl std::fmt::Display, reason: &str) {
        self.skipped += 1;
        if self.skipped_examples.len() < 5 {
            self.skipped_examples.push(format!("{at}: {reason}"));
        }
    }

    /// Most decimal places of a price.
    pub fn price_scale(&self) -> u32 {
        self.bars.price_scale()
    }

    /// Decimal places of the volume.
    pub fn qty_scale(&self) -> u32 {
        self.bars.qty_scale()
    }
}

/// Bars of one symbol, sorted by time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Symbol.
    pub symbol: Symbol,
    /// Bars, oldest first, no two with the same open time, close times resolved.
    pub bars: Bars,
    /// The bar interval (smallest step between open times), in ms.
    pub interval_ms: i64,
    /// Most decimal places seen in a price.
    pub price_scale: u32,
    /// Most decimal places seen in a volume.
    pub qty_scale: u32,
    /// Files the bars came from.
    pub files: Vec<PathBuf>,
}

impl Series {
    /// The first bar's open time.
    pub fn first_open_time(&self) -> Option<i64> {
        (!self.bars.is_empty()).then(|| self.bars.open_time(0))
    }

    /// The last bar's close time.
    pub fn last_close_time(&self) -> Option<i64> {
        self.bars.len().checked_sub(1).and_then(|i| self.bars.close_time(i))
    }
}

/// Everything loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketData {
    /// One series per symbol, in symbol order.
    pub series: Vec<Series>,
    /// Files read.
    pub files: usize,
    /// Rows read (good ones).
    pub rows: usize,
    /// Bad rows skipped.
    pub skipped: usize,
    /// Examples of skipped rows (`file:line: reason`).
    pub skipped_examples: Vec<String>,
    /// Rows dropped because an earlier row had the same time.
    pub duplicates: usize,
}

impl MarketData {
    /// What the operator should know about rows that were not loaded.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.skipped > 0 {
            notes.push(format!("skipped {} bad rows, e.g. {}", self.skipped, self.skipped_examples.join("; ")));
        }
        if self.duplicates > 0 {
            notes.push(format!("dropped {} rows repeating an earlier row's time", self.duplicates));
        }
        notes
    }
}

/// Parses an epoch number or an ISO date / date-time into ms since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) || (s.starts_with('-') && s[1..].bytes().all(|b| b.is_ascii_digit())) {
        let n: i64 = s.parse().ok()?;
        return Some(epoch_to_ms(n));
    }
    // "1704067200000.0": an epoch number written as a float.
    if let Some(int) = s.strip_suffix(".0").filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())) {
        return Some(epoch_to_ms(int.parse().ok()?));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.timestamp_millis());
        }
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    None
}

/// An epoch number in ms: µs above 10^14 (Binance's newer files), seconds
/// below 10^11.
#[inline]
pub fn epoch_to_ms(n: i64) -> i64 {
    if n.abs() >= 100_000_000_000_000 {
        n / 1000
    } else if n.abs() >= 100_000_000_000 {
        n
    } else {
        n.saturating_mul(1000)
    }
}

/// The symbol a file name implies: the part before the first `-`, `_`, `.` or
/// space, upper-cased (`BTCUSDT-1h-2024-01.csv` and `btcusdt_daily.csv` are
/// `BTCUSDT`), joined to the next part when that is its quote asset, as
/// Freqtrade names pairs (`BTC_USDT-1m.parquet` is `BTCUSDT`).
pub fn symbol_from_file_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let mut parts = stem.split(['-', '_', '.', ' ']);
    let head = parts.next()?.to_ascii_uppercase();
    if head.is_empty() || !head.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let quote = stem[head.len()..].strip_prefix('_').and(parts.next()).map(str::to_ascii_uppercase);
    if let Some(quote) = quote.filter(|q| !q.is_empty()) {
        let pair = format!("{head}{quote}");
        if super::split_symbol(&pair) == (head.clone(), quote) {
            return Some(pair);
        }
    }
    Some(head)
}

/// What a file holds, by its extension, else by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV text.
    Csv,
    /// A zip archive of CSV files.
    Zip,
    /// Parquet.
    Parquet,
}

impl Format {
    /// The format of a file name's extension, if it is one of ours.
    pub fn of_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "zip" => Some(Format::Zip),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format of a file: its extension, else its magic bytes, else CSV.
    fn of_file(path: &Path) -> Format {
        Format::of_extension(path).unwrap_or_else(|| {
            let mut magic = [0u8; 4];
            let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
            match (read, &magic) {
                (Ok(()), b"PK\x03\x04") => Format::Zip,
                (Ok(()), b"PAR1") => Format::Parquet,
                _ => Format::Csv,
            }
        })
    }
}

/// Expands directories into their `.csv`, `.zip` and `.parquet` files (sorted by name).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    for path in paths {
        let label = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| DataError::file(&label, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| DataError::file(&label, format!("cannot list: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && Format::of_extension(p).is_some())
                .collect();
            if found.is_empty() {
                return Err(DataError::file(&label, "directory has no .csv, .zip or .parquet files"));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Reads one file: a CSV, each CSV of a zip archive, or a Parquet file.
pub fn read_file(path: &Path, skip_bad_rows: bool) -> Result<Vec<ParsedFile>, DataError> {
    let label = path.display().to_string();
    match Format::of_file(path) {
        Format::Csv => {
            let file = std::fs::File::open(path).map_err(|e| DataError::file(&label, format!("cannot open: {e}")))?;
            Ok(vec![parse_csv(file, &label, skip_bad_rows)?])
        }
        Format::Zip => zip::read_zip(path, &label, skip_bad_rows),
        Format::Parquet => Ok(vec![parquet::read_parquet(path, &label, skip_bad_rows)?]),
    }
}

/// Loads every file (directories expanded) and groups the bars by symbol: the
/// file name's symbol (else a Parquet file's own), or `symbol` for all of
/// them when given.
pub fn load(paths: &[PathBuf], symbol: Option<&str>, skip_bad_rows: bool) -> Result<MarketData, DataError> {
    let files = expand_paths(paths)?;
    let mut by_symbol: BTreeMap<String, (Bars, Vec<PathBuf>)> = BTreeMap::new();
    let mut data = MarketData { files: files.len(), ..MarketData::default() };
    for path in &files {
        let label = path.display().to_string();
        for parsed in read_file(path, skip_bad_rows)? {
            let sym = match symbol {
                Some(s) => s.trim().to_ascii_uppercase(),
                None => symbol_from_file_name(path).or_else(|| parsed.symbol.clone()).ok_or_else(|| {
                    DataError::file(&label, "cannot tell the symbol from the file name; pass --symbol SYMBOL")
                })?,
            };
            data.rows += parsed.bars.len();
            data.skipped += parsed.skipped;
            for ex in parsed.skipped_examples {
                if data.skipped_examples.len() < 5 {
                    data.skipped_examples.push(format!("{label}:{ex}"));
                }
            }
            let entry = by_symbol.entry(sym).or_default();
            entry.0.append(parsed.bars).map_err(|e| DataError::file(&label, e))?;
            if entry.1.last() != Some(path) {
                entry.1.push(path.clone());
            }
        }
    }
    for (sym, (mut bars, files)) in by_symbol {
        data.duplicates += bars.sort_and_dedup();
        if bars.is_empty() {
            continue;
        }
        let interval_ms = infer_interval(&bars);
        bars.resolve_close_times(interval_ms);
        bars.shrink_to_fit();
        data.series.push(Series {
            symbol: Symbol::new(&sym),
            price_scale: bars.price_scale(),
            qty_scale: bars.qty_scale(),
            bars,
            interval_ms,
            files,
        });
    }
    if data.series.is_empty() {
        return Err(DataError::file(
            &paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            "no bars",
        ));
    }
    if data.series.len() > usize::from(u16::MAX) {
        return Err(DataError::file(&files[0].display().to_string(), "more than 65535 symbols in one backtest"));
    }
    Ok(data)
}

/// The bar interval of sorted bars: the smallest positive step between open
/// times (from the close time when there is a single bar, else a day).
pub fn infer_interval(bars: &Bars) -> i64 {
    let step = bars.min_step();
    let from_close = (!bars.is_empty()).then(|| bars.close_time(0).map(|c| c - bars.open_time(0) + 1)).flatten();
    match (step, from_close) {
        (Some(s), _) => s,
        (None, Some(c)) if c > 0 => c,
        _ => 86_400_000,
    }
}

/// The interval as Binance names it (`1m`, `4h`, `1d`, `1w`), else in seconds or ms.
pub fn interval_name(ms: i64) -> String {
    for (unit, name) in [(604_800_000, "w"), (86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")] {
        if ms > 0 && ms % unit == 0 {
            return format!("{}{name}", ms / unit);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::Decimal;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    const DAY: i64 = 86_400_000;
    const T2024: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

    #[test]
    fn time_formats() {
        struct Case {
            text: &'static str,
            want: Option<i64>,
        }
        let cases = [
            Case { text: "2024-01-01", want: Some(T2024) },
            Case { text: "2024-01-02", want: Some(T2024 + DAY) },
            Case { text: "2024-01-01T01:00:00Z", want: Some(T2024 + 3_600_000) },
            Case { text: "2024-01-01T01:00:00", want: Some(T2024 + 3_600_000) },
            Case { text: "2024-01-01 01:00:00", want: Some(T2024 + 3_600_000) },
            Case { text: "2024-01-01 01:00", want: Some(T2024 + 3_600_000) },
            Case { text: "2024-01-01 01:00:00.250", want: Some(T2024 + 3_600_250) },
            Case { text: "2024-01-01 01:00:00+00:00", want: Some(T2024 + 3_600_000) },
            Case { text: "2024-01-01T03:00:00+02:00", want: Some(T2024 + 3_600_000) },
            Case { text: "1704067200000", want: Some(T2024) },
            Case { text: "1704067200000.0", want: Some(T2024) },
            Case { text: "1704067200000000", want: Some(T2024) },
            Case { text: "1704067200", want: Some(T2024) },
            Case { text: "yesterday", want: None },
            Case { text: "2024-13-01", want: None },
            Case { text: "", want: None },
        ];
        for c in cases {
            assert_eq!(parse_time(c.text), c.want, "{}", c.text);
        }
    }

    #[test]
    fn csv_layouts() {
        struct Case {
            name: &'static str,
            text: &'static str,
            want_times: Vec<i64>,
            want_close: &'static str,
            want_volume: &'static str,
        }
        let cases = [
            Case {
                name: "header with timestamp, ISO dates",
                text: "timestamp,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10\n2024-01-02,1.5,2,1,1.75,11\n",
                want_times: vec![T2024, T2024 + DAY],
                want_close: "1.75",
                want_volume: "11",
            },
            Case {
                name: "capitalised names, date column, reordered",
                text: "Date,Close,Open,High,Low,Volume\n2024-01-01,1.5,1,2,0.5,10\n",
                want_times: vec![T2024],
                want_close: "1.5",
                want_volume: "10",
            },
            Case {
                name: "pandas unnamed index with date-times and offsets",
                text: ",open,high,low,close,volume\n2024-01-01 00:00:00+00:00,1,2,0.5,1.5,3.25\n",
                want_times: vec![T2024],
                want_close: "1.5",
                want_volume: "3.25",
            },
            Case {
                name: "open_time as epoch ms, no volume",
                text: "open_time,open,high,low,close\n1704067200000,1,2,0.5,1.5\n",
                want_times: vec![T2024],
                want_close: "1.5",
                want_volume: "0",
            },
            Case {
                name: "binance kline, 12 columns, no header",
                text: "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68108,1704070799999,53957248.9,47134,682.57581,28957416.8,0\n",
                want_times: vec![T2024],
                want_close: "42475.23",
                want_volume: "1271.68108",
            },
            Case {
                name: "blank lines and comments are ignored",
                text: "# exported\ntime,open,high,low,close,volume\n\n2024-01-01T00:00:00Z,1,2,0.5,1.5,1\n",
                want_times: vec![T2024],
                want_close: "1.5",
                want_volume: "1",
            },
        ];
        for c in cases {
            let parsed = parse_csv(c.text.as_bytes(), "f.csv", false).unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert_eq!(parsed.bars.open_times(), c.want_times, "{}", c.name);
            let last = parsed.bars.len() - 1;
            assert_eq!(parsed.bars.close.get(last), d(c.want_close), "{}", c.name);
            assert_eq!(parsed.bars.volume.get(last), d(c.want_volume), "{}", c.name);
        }
        let kline =
            parse_csv("1704067200000,1,2,0.5,1.5,10,1704070799999,0,0,0,0,0\n".as_bytes(), "k.csv", false).unwrap();
        assert_eq!(kline.bars.close_time(0), Some(T2024 + 3_599_999));
        assert_eq!(kline.price_scale(), 1);
    }

    #[test]
    fn bad_rows_name_file_line_and_reason() {
        struct Case {
            name: &'static str,
            text: &'static str,
            want: &'static str,
        }
        let header = "date,open,high,low,close,volume\n";
        let good = "2024-01-01,1,2,0.5,1.5,10\n";
        let cases = [
            Case { name: "not a number", text: "2024-01-02,1,2,x,1.5,10\n", want: "f.csv:3: low: `x` is not a number" },
            Case {
                name: "bad date",
                text: "2024-02-30,1,2,0.5,1.5,10\n",
                want: "f.csv:3: time: `2024-02-30` is not an ISO date, ISO date-time or epoch milliseconds",
            },
            Case {
                name: "too few fields",
                text: "2024-01-02,1,2\n",
                want: "f.csv:3: expected at least 6 fields, found 3",
            },
            Case { name: "high below low", text: "2024-01-02,1,1,2,1.5,10\n", want: "f.csv:3: high 1 is below low 2" },
            Case {
                name: "close outside range",
                text: "2024-01-02,1,2,0.5,3,10\n",
                want: "f.csv:3: close 3 is outside the bar's range [0.5, 2]",
            },
            Case {
                name: "zero price",
                text: "2024-01-02,0,2,0,1,10\n",
                want: "f.csv:3: low 0 is not a positive price",
            },
            Case {
                name: "absurd price",
                text: "2024-01-02,1,2e20,0.5,1.5,10\n",
                want: "f.csv:3: high 200000000000000000000 is above the largest supported price 1000000000000000",
            },
            Case {
                name: "negative volume",
                text: "2024-01-02,1,2,0.5,1.5,-1\n",
                want: "f.csv:3: volume -1 is negative",
            },
        ];
        for c in &cases {
            let text = format!("{header}{good}{}{good}", c.text);
            let err = parse_csv(text.as_bytes(), "f.csv", false).unwrap_err();
            assert_eq!(err.to_string(), c.want, "{}", c.name);
            let skipped = parse_csv(text.as_bytes(), "f.csv", true).unwrap();
            assert_eq!((skipped.bars.len(), skipped.skipped), (2, 1), "{}", c.name);
        }
        let err = parse_csv("when,open,high,low,close\n".as_bytes(), "f.csv", false).unwrap_err();
        assert!(err.to_string().starts_with("f.csv: no time column"), "{err}");
        let err = parse_csv("date,open,high,close\n".as_bytes(), "f.csv", false).unwrap_err();
        assert!(err.to_string().starts_with("f.csv: no `low` column"), "{err}");
        let err = parse_csv("".as_bytes(), "f.csv", false).unwrap_err();
        assert_eq!(err.to_string(), "f.csv: no rows");
    }

    #[test]
    fn interval_names_as_binance_writes_them() {
        for (ms, want) in [
            (1000, "1s"),
            (60_000, "1m"),
            (300_000, "5m"),
            (3_600_000, "1h"),
            (14_400_000, "4h"),
            (DAY, "1d"),
            (3 * DAY, "3d"),
            (7 * DAY, "1w"),
            (90_000, "90s"),
            (1500, "1500ms"),
        ] {
            assert_eq!(interval_name(ms), want, "{ms}");
        }
    }

    #[test]
    fn symbols_from_file_names() {
        for (name, want) in [
            ("data/BTCUSDT-1h-2024-01.csv", Some("BTCUSDT")),
            ("btcusdt_daily.csv", Some("BTCUSDT")),
            ("ETHUSDT.csv", Some("ETHUSDT")),
            ("BTC_USDT-1m.parquet", Some("BTCUSDT")),
            ("eth_btc-1h.feather", Some("ETHBTC")),
            ("BTC_USDT_USDT-1h-futures.parquet", Some("BTCUSDT")),
            ("-weird.csv", None),
        ] {
            assert_eq!(symbol_from_file_name(Path::new(name)).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn directory_of_files_groups_sorts_and_dedups() {
        let dir = tempfile::tempdir().unwrap();
        let header = "date,open,high,low,close,volume\n";
        std::fs::write(
            dir.path().join("BTCUSDT-2.csv"),
            format!("{header}2024-01-03,1,2,0.5,1.5,1\n2024-01-02,1,2,0.5,1.25,1\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("BTCUSDT-1.csv"),
            format!("{header}2024-01-01,1,2,0.5,1.5,1\n2024-01-02,1,2,0.5,1.5,1\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("ethusdt.csv"), format!("{header}2024-01-01,10,20,5,15.5,1\n")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let data = load(&[dir.path().to_path_buf()], None, false).unwrap();
        let names: Vec<&str> = data.series.iter().map(|s| s.symbol.as_str()).collect();
        assert_eq!(names, vec!["BTCUSDT", "ETHUSDT"]);
        let btc = &data.series[0];
        assert_eq!(btc.bars.open_times(), [T2024, T2024 + DAY, T2024 + 2 * DAY]);
        assert_eq!(btc.interval_ms, DAY);
        assert_eq!(btc.bars.close_time(0), Some(T2024 + DAY - 1));
        assert_eq!(data.duplicates, 1);
        assert_eq!(btc.bars.close.get(1), d("1.5"), "first file in name order wins a repeated time");
        let one = load(&[dir.path().join("ethusdt.csv")], Some("solusdt"), false).unwrap();
        assert_eq!(one.series[0].symbol.as_str(), "SOLUSDT");
    }
}
