//! Loading historical bars from CSV files.
//!
//! Two layouts are read:
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

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use keel_core::market::Bar;
use keel_core::{Decimal, Symbol};

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

/// One parsed row, before the symbol and the bar interval are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBar {
    /// Open time (ms since the epoch).
    pub open_time: i64,
    /// Close time if the file has one (Binance klines).
    pub close_time: Option<i64>,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close.
    pub close: Decimal,
    /// Volume (0 when the file has none).
    pub volume: Decimal,
}

/// One file's rows and what was learned about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedFile {
    /// Rows in file order.
    pub rows: Vec<RawBar>,
    /// Rows skipped as bad (only with `skip_bad_rows`).
    pub skipped: usize,
    /// The first skipped rows' `line: reason`, for the operator (at most 5).
    pub skipped_examples: Vec<String>,
    /// Most decimal places seen in a price.
    pub price_scale: u32,
    /// Most decimal places seen in a volume.
    pub qty_scale: u32,
}

/// Bars of one symbol, sorted by time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Symbol.
    pub symbol: Symbol,
    /// Bars, oldest first, no two with the same open time.
    pub bars: Vec<Bar>,
    /// The bar interval (smallest step between open times), in ms.
    pub interval_ms: i64,
    /// Most decimal places seen in a price.
    pub price_scale: u32,
    /// Most decimal places seen in a volume.
    pub qty_scale: u32,
    /// Files the bars came from.
    pub files: Vec<PathBuf>,
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

/// Column positions of a file.
#[derive(Debug, Clone, Copy)]
struct Layout {
    time: usize,
    open: usize,
    high: usize,
    low: usize,
    close: usize,
    volume: Option<usize>,
    close_time: Option<usize>,
    has_header: bool,
}

impl Layout {
    fn needed(&self) -> usize {
        [
            Some(self.time),
            Some(self.open),
            Some(self.high),
            Some(self.low),
            Some(self.close),
            self.volume,
            self.close_time,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0)
            + 1
    }

    /// Binance kline columns (or any headerless `time,open,high,low,close[,volume[,close_time]]`).
    fn headerless(fields: usize) -> Self {
        Self {
            time: 0,
            open: 1,
            high: 2,
            low: 3,
            close: 4,
            volume: (fields > 5).then_some(5),
            close_time: (fields > 6).then_some(6),
            has_header: false,
        }
    }

    fn from_header(names: &[String]) -> Result<Self, String> {
        let find = |wanted: &[&str]| names.iter().position(|n| wanted.contains(&n.as_str()));
        let time = find(&["timestamp", "date", "time", "open_time", "datetime", "opentime", "open time"])
            .or_else(|| names.first().filter(|n| n.is_empty() || n.as_str() == "unnamed: 0").map(|_| 0))
            .ok_or_else(|| {
                format!(
                    "no time column: expected one named timestamp, date, time or open_time, or an unnamed first \
                     column (header: {})",
                    names.join(",")
                )
            })?;
        let need =
            |name: &str| find(&[name]).ok_or_else(|| format!("no `{name}` column (header: {})", names.join(",")));
        Ok(Self {
            time,
            open: need("open")?,
            high: need("high")?,
            low: need("low")?,
            close: need("close")?,
            volume: find(&["volume", "vol"]),
            close_time: find(&["close_time", "closetime", "close time"]),
            has_header: true,
        })
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

fn epoch_to_ms(n: i64) -> i64 {
    if n.abs() >= 100_000_000_000_000 {
        n / 1000
    } else if n.abs() >= 100_000_000_000 {
        n
    } else {
        n.saturating_mul(1000)
    }
}

fn parse_decimal(field: &str, name: &str) -> Result<Decimal, String> {
    let s = field.trim();
    s.parse::<Decimal>().or_else(|_| Decimal::from_scientific(s)).map_err(|_| format!("{name}: `{s}` is not a number"))
}

/// Parses one CSV file's contents. `file` names it in errors.
pub fn parse_csv(input: impl Read, file: &str, skip_bad_rows: bool) -> Result<ParsedFile, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(input);
    let mut out = ParsedFile::default();
    let mut layout: Option<Layout> = None;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                let reason = format!("unreadable CSV: {e}");
                if skip_bad_rows && line > 0 && layout.is_some() {
                    note_skip(&mut out, line, &reason);
                    continue;
                }
                return Err(DataError::BadRow { file: file.to_string(), line, reason });
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        let lay = match layout {
            Some(l) => l,
            None => {
                let first = record.get(0).unwrap_or("");
                let detected = if parse_time(first).is_some() && record.len() >= 5 && first.parse::<i64>().is_ok() {
                    Layout::headerless(record.len())
                } else {
                    let names: Vec<String> = record.iter().map(|n| n.trim().to_ascii_lowercase()).collect();
                    Layout::from_header(&names).map_err(|reason| DataError::file(file, reason))?
                };
                layout = Some(detected);
                if detected.has_header {
                    continue;
                }
                detected
            }
        };
        match parse_row(&record, &lay) {
            Ok((bar, price_scale, qty_scale)) => {
                out.price_scale = out.price_scale.max(price_scale);
                out.qty_scale = out.qty_scale.max(qty_scale);
                out.rows.push(bar);
            }
            Err(reason) if skip_bad_rows => note_skip(&mut out, line, &reason),
            Err(reason) => return Err(DataError::BadRow { file: file.to_string(), line, reason }),
        }
    }
    if layout.is_none() {
        return Err(DataError::file(file, "no rows"));
    }
    Ok(out)
}

fn note_skip(out: &mut ParsedFile, line: u64, reason: &str) {
    out.skipped += 1;
    if out.skipped_examples.len() < 5 {
        out.skipped_examples.push(format!("{line}: {reason}"));
    }
}

fn parse_row(record: &csv::StringRecord, lay: &Layout) -> Result<(RawBar, u32, u32), String> {
    let needed = lay.needed();
    if record.len() < needed {
        return Err(format!("expected at least {needed} fields, found {}", record.len()));
    }
    let field = |i: usize| record.get(i).unwrap_or("");
    let time_text = field(lay.time);
    let open_time = parse_time(time_text)
        .ok_or_else(|| format!("time: `{time_text}` is not an ISO date, ISO date-time or epoch milliseconds"))?;
    let open = parse_decimal(field(lay.open), "open")?;
    let high = parse_decimal(field(lay.high), "high")?;
    let low = parse_decimal(field(lay.low), "low")?;
    let close = parse_decimal(field(lay.close), "close")?;
    let volume = match lay.volume {
        Some(i) if !field(i).is_empty() => parse_decimal(field(i), "volume")?,
        _ => Decimal::ZERO,
    };
    let close_time = match lay.close_time {
        Some(i) => {
            let t = field(i);
            Some(parse_time(t).ok_or_else(|| format!("close_time: `{t}` is not a time"))?)
        }
        None => None,
    };
    if low <= Decimal::ZERO {
        return Err(format!("low {low} is not a positive price"));
    }
    // Prices this large would overflow exact arithmetic (price × quantity).
    let max_price = Decimal::from(1_000_000_000_000_000u64);
    if high > max_price {
        return Err(format!("high {high} is above the largest supported price {max_price}"));
    }
    if high < low {
        return Err(format!("high {high} is below low {low}"));
    }
    for (name, p) in [("open", open), ("close", close)] {
        if p < low || p > high {
            return Err(format!("{name} {p} is outside the bar's range [{low}, {high}]"));
        }
    }
    if volume < Decimal::ZERO {
        return Err(format!("volume {volume} is negative"));
    }
    if let Some(ct) = close_time {
        if ct < open_time {
            return Err(format!("close_time {ct} is before the open time {open_time}"));
        }
    }
    let price_scale = [open, high, low, close].iter().map(|d| d.normalize().scale()).max().unwrap_or(0);
    let bar = RawBar { open_time, close_time, open, high, low, close, volume };
    Ok((bar, price_scale, volume.normalize().scale()))
}

/// The symbol a file name implies: the part before the first `-`, `_`, `.` or
/// space, upper-cased (`BTCUSDT-1h-2024-01.csv` and `btcusdt_daily.csv` are `BTCUSDT`).
pub fn symbol_from_file_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let head = stem.split(['-', '_', '.', ' ']).next()?.to_ascii_uppercase();
    (!head.is_empty() && head.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(head)
}

/// Expands directories into their `.csv` files (sorted by name).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    for path in paths {
        let label = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| DataError::file(&label, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| DataError::file(&label, format!("cannot list: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
                .collect();
            if found.is_empty() {
                return Err(DataError::file(&label, "directory has no .csv files"));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Loads every file (directories expanded) and groups the bars by symbol: the
/// file name's symbol, or `symbol` for all of them when given.
pub fn load(paths: &[PathBuf], symbol: Option<&str>, skip_bad_rows: bool) -> Result<MarketData, DataError> {
    let files = expand_paths(paths)?;
    let mut by_symbol: BTreeMap<String, (Vec<RawBar>, u32, u32, Vec<PathBuf>)> = BTreeMap::new();
    let mut data = MarketData { files: files.len(), ..MarketData::default() };
    for path in &files {
        let label = path.display().to_string();
        let sym = match symbol {
            Some(s) => s.trim().to_ascii_uppercase(),
            None => symbol_from_file_name(path).ok_or_else(|| {
                DataError::file(&label, "cannot tell the symbol from the file name; pass --symbol SYMBOL")
            })?,
        };
        let file = std::fs::File::open(path).map_err(|e| DataError::file(&label, format!("cannot open: {e}")))?;
        let parsed = parse_csv(std::io::BufReader::new(file), &label, skip_bad_rows)?;
        data.rows += parsed.rows.len();
        data.skipped += parsed.skipped;
        for ex in parsed.skipped_examples {
            if data.skipped_examples.len() < 5 {
                data.skipped_examples.push(format!("{label}:{ex}"));
            }
        }
        let entry = by_symbol.entry(sym).or_default();
        entry.0.extend(parsed.rows);
        entry.1 = entry.1.max(parsed.price_scale);
        entry.2 = entry.2.max(parsed.qty_scale);
        entry.3.push(path.clone());
    }
    for (sym, (mut rows, price_scale, qty_scale, files)) in by_symbol {
        rows.sort_by_key(|r| r.open_time);
        let before = rows.len();
        rows.dedup_by_key(|r| r.open_time);
        data.duplicates += before - rows.len();
        if rows.is_empty() {
            continue;
        }
        let interval_ms = infer_interval(&rows);
        let symbol = Symbol::new(&sym);
        let bars = rows
            .into_iter()
            .map(|r| Bar {
                symbol: symbol.clone(),
                open_time: r.open_time,
                close_time: r.close_time.unwrap_or(r.open_time + interval_ms - 1),
                open: r.open,
                high: r.high,
                low: r.low,
                close: r.close,
                volume: r.volume,
            })
            .collect();
        data.series.push(Series { symbol, bars, interval_ms, price_scale, qty_scale, files });
    }
    if data.series.is_empty() {
        return Err(DataError::file(
            &paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            "no bars",
        ));
    }
    Ok(data)
}

/// The bar interval: the smallest positive step between open times (a day
/// when there is a single bar).
pub fn infer_interval(rows: &[RawBar]) -> i64 {
    let step = rows.windows(2).map(|w| w[1].open_time - w[0].open_time).filter(|d| *d > 0).min();
    match (step, rows.first().and_then(|r| r.close_time.map(|c| c - r.open_time + 1))) {
        (Some(s), _) => s,
        (None, Some(from_close)) if from_close > 0 => from_close,
        _ => 86_400_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let times: Vec<i64> = parsed.rows.iter().map(|r| r.open_time).collect();
            assert_eq!(times, c.want_times, "{}", c.name);
            let last = parsed.rows.last().unwrap();
            assert_eq!(last.close, d(c.want_close), "{}", c.name);
            assert_eq!(last.volume, d(c.want_volume), "{}", c.name);
        }
        let kline =
            parse_csv("1704067200000,1,2,0.5,1.5,10,1704070799999,0,0,0,0,0\n".as_bytes(), "k.csv", false).unwrap();
        assert_eq!(kline.rows[0].close_time, Some(T2024 + 3_599_999));
        assert_eq!(kline.price_scale, 1);
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
            assert_eq!((skipped.rows.len(), skipped.skipped), (2, 1), "{}", c.name);
        }
        let err = parse_csv("when,open,high,low,close\n".as_bytes(), "f.csv", false).unwrap_err();
        assert!(err.to_string().starts_with("f.csv: no time column"), "{err}");
        let err = parse_csv("date,open,high,close\n".as_bytes(), "f.csv", false).unwrap_err();
        assert!(err.to_string().starts_with("f.csv: no `low` column"), "{err}");
        let err = parse_csv("".as_bytes(), "f.csv", false).unwrap_err();
        assert_eq!(err.to_string(), "f.csv: no rows");
    }

    #[test]
    fn symbols_from_file_names() {
        for (name, want) in [
            ("data/BTCUSDT-1h-2024-01.csv", Some("BTCUSDT")),
            ("btcusdt_daily.csv", Some("BTCUSDT")),
            ("ETHUSDT.csv", Some("ETHUSDT")),
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
        assert_eq!(btc.bars.iter().map(|b| b.open_time).collect::<Vec<_>>(), vec![T2024, T2024 + DAY, T2024 + 2 * DAY]);
        assert_eq!(btc.interval_ms, DAY);
        assert_eq!(btc.bars[0].close_time, T2024 + DAY - 1);
        assert_eq!(data.duplicates, 1);
        assert_eq!(btc.bars[1].close, d("1.5"), "first file in name order wins a repeated time");
        let one = load(&[dir.path().join("ethusdt.csv")], Some("solusdt"), false).unwrap();
        assert_eq!(one.series[0].symbol.as_str(), "SOLUSDT");
    }
}
