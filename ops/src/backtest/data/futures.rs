//! Funding and open-interest history for `keel backtest --futures`: CSV
//! (also zipped, as data.binance.vision ships it) or Parquet files whose
//! columns say what they hold.
//!
//! Column names are matched case-insensitively and without underscores, so
//! Keel's `funding_time` and Binance's JSON `fundingTime` are one name:
//! - **funding** (Keel's, the fields of Binance's `/fapi/v1/fundingRate`):
//!   `funding_time`, `symbol`, `funding_rate`, optionally `mark_price`;
//! - **funding** (Binance's archive, `SYMBOL-fundingRate-YYYY-MM.csv`):
//!   `calc_time`, `funding_interval_hours`, `last_funding_rate`, the symbol
//!   from the file name as for bars; each row's interval becomes an
//!   [`FuturesEvent::Interval`] where it is first seen or changes;
//! - **open interest** (Keel's, the fields of `openInterestHist`):
//!   `timestamp`, `symbol`, `sum_open_interest`, `sum_open_interest_value`;
//! - **open interest** (Binance's archive, `SYMBOL-metrics-YYYY-MM-DD.csv`):
//!   `create_time` (`YYYY-MM-DD HH:MM:SS`, UTC), `symbol`,
//!   `sum_open_interest`, … (other columns ignored).
//!
//! Times are read as for bars (epoch ms, µs or s, ISO dates and date-times).
//! A file without a `symbol` column takes its symbol from its name. Rates and
//! amounts are exact decimals. The value column of open interest is not
//! carried: strategies read open interest in base units, as the live feed
//! gives it.

use std::path::{Path, PathBuf};

use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use keel_core::futures::{FundingInterval, FundingRateType, FundingSettlement, FuturesEvent, OpenInterest};
use keel_core::{Decimal, Symbol};
use rustc_hash::FxHashMap;

use super::parquet::{Times, Values};
use super::{expand_paths, parse_time, symbol_from_file_name, DataError, Format};

/// Funding and open-interest events loaded from files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FuturesHistory {
    /// The events in delivery order: by time, then file order, then row order.
    pub events: Vec<FuturesEvent>,
    /// Files read.
    pub files: usize,
    /// Bad rows skipped (only with `skip_bad_rows`).
    pub skipped: usize,
    /// The first skipped rows' `file:line: reason` (at most 5).
    pub skipped_examples: Vec<String>,
}

/// What a file holds, told by its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Keel's funding: time, symbol, rate, mark price.
    Funding,
    /// Binance's funding archive: time, interval hours, rate.
    FundingArchive,
    /// Open interest (Keel's or Binance's archive).
    OpenInterest,
}

/// Where a file's columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    kind: Kind,
    time: usize,
    symbol: Option<usize>,
    /// The funding rate or the open interest.
    value: usize,
    /// The mark price (funding) or the interval hours (archive).
    extra: Option<usize>,
}

/// What every header names when it names neither kind.
const NEITHER: &str = "the columns name neither funding (funding_time, symbol, funding_rate[, mark_price], or \
                       Binance's calc_time, funding_interval_hours, last_funding_rate) nor open interest \
                       (timestamp or create_time, symbol, sum_open_interest[, sum_open_interest_value])";

impl Layout {
    /// The layout of a header (names in file order).
    fn of(names: &[String]) -> Result<Self, String> {
        let norm: Vec<String> = names.iter().map(|n| n.trim().to_ascii_lowercase().replace(['_', ' '], "")).collect();
        let find = |name: &str| norm.iter().position(|n| n == name);
        let symbol = find("symbol");
        let missing = |what: &str| format!("no `{what}` column (columns: {})", names.join(","));
        if let Some(value) = find("fundingrate") {
            let time = find("fundingtime").ok_or_else(|| missing("funding_time"))?;
            return Ok(Self { kind: Kind::Funding, time, symbol, value, extra: find("markprice") });
        }
        if let Some(value) = find("lastfundingrate") {
            let time = find("calctime").ok_or_else(|| missing("calc_time"))?;
            let hours = find("fundingintervalhours").ok_or_else(|| missing("funding_interval_hours"))?;
            return Ok(Self { kind: Kind::FundingArchive, time, symbol, value, extra: Some(hours) });
        }
        if let Some(value) = find("sumopeninterest") {
            let time = find("timestamp").or_else(|| find("createtime")).ok_or_else(|| missing("timestamp"))?;
            return Ok(Self { kind: Kind::OpenInterest, time, symbol, value, extra: None });
        }
        Err(format!("{NEITHER}: got {}", names.join(",")))
    }

    /// The name of column `i` as the file spells it.
    fn name(names: &[String], i: usize) -> &str {
        names.get(i).map_or("?", String::as_str)
    }
}

/// One row's values.
struct RowValues {
    ts: i64,
    /// From the row's `symbol` column, when there is one.
    symbol: Option<Symbol>,
    value: Decimal,
    extra: Option<Decimal>,
}

/// Collects one file's events.
struct Sink<'a> {
    layout: Layout,
    /// The symbol of rows without one (from the file name).
    default_symbol: Option<Symbol>,
    label: &'a str,
    skip_bad_rows: bool,
    /// Parquet: rows are counted, not lines.
    rows: bool,
    out: &'a mut FuturesHistory,
}

impl Sink<'_> {
    /// Adds a row's events, or handles its error (`line`: the CSV line, or
    /// the Parquet row).
    fn row(&mut self, line: u64, row: Result<RowValues, String>) -> Result<(), DataError> {
        let Err(reason) = row.and_then(|r| self.events(r)) else { return Ok(()) };
        let at = if self.rows { format!("row {line}") } else { line.to_string() };
        if !self.skip_bad_rows {
            return Err(match self.rows {
                true => DataError::file(self.label, format!("{at}: {reason}")),
                false => DataError::BadRow { file: self.label.to_string(), line, reason },
            });
        }
        self.out.skipped += 1;
        if self.out.skipped_examples.len() < 5 {
            self.out.skipped_examples.push(format!("{}:{at}: {reason}", self.label));
        }
        Ok(())
    }

    fn events(&mut self, r: RowValues) -> Result<(), String> {
        let symbol = match r.symbol.or_else(|| self.default_symbol.clone()) {
            Some(s) => s,
            None => return Err("no symbol: the file has no `symbol` column and its name names none".into()),
        };
        let ts = r.ts;
        match self.layout.kind {
            Kind::Funding | Kind::FundingArchive => {
                let mark_price = if self.layout.kind == Kind::Funding { r.extra } else { None };
                let settled = FundingSettlement {
                    symbol: symbol.clone(),
                    rate: r.value,
                    funding_time: ts,
                    mark_price,
                    rate_type: FundingRateType::Regular,
                };
                self.out.events.push(FuturesEvent::Funding(settled));
                if self.layout.kind == Kind::FundingArchive {
                    let hours = r.extra.unwrap_or_default();
                    let interval_hours = u32::try_from(hours.normalize().mantissa())
                        .ok()
                        .filter(|h| *h > 0 && hours.fract().is_zero())
                        .ok_or_else(|| format!("funding_interval_hours: `{hours}` is not a whole number of hours"))?;
                    self.out.events.push(FuturesEvent::Interval(FundingInterval { symbol, interval_hours, ts_ms: ts }));
                }
            }
            Kind::OpenInterest => {
                if r.value < Decimal::ZERO {
                    return Err(format!("sum_open_interest: `{}` is negative", r.value));
                }
                self.out.events.push(FuturesEvent::OpenInterest(OpenInterest {
                    symbol,
                    open_interest: r.value,
                    ts_ms: ts,
                }));
            }
        }
        Ok(())
    }
}

/// Loads funding and open-interest history (directories expanded to their
/// `.csv`, `.zip` and `.parquet` files; a `.zip` is read as its `.csv`
/// entries, as Binance's archives are downloaded), in delivery order.
pub fn load_futures(paths: &[PathBuf], skip_bad_rows: bool) -> Result<FuturesHistory, DataError> {
    let files = expand_paths(paths)?;
    let mut out = FuturesHistory { files: files.len(), ..FuturesHistory::default() };
    for path in &files {
        let label = path.display().to_string();
        match Format::of_file(path) {
            Format::Csv => {
                let file =
                    std::fs::File::open(path).map_err(|e| DataError::file(&label, format!("cannot open: {e}")))?;
                read_csv(file, path, &label, skip_bad_rows, &mut out)?;
            }
            Format::Parquet => read_parquet(path, &label, skip_bad_rows, &mut out)?,
            Format::Zip => {
                let (mut archive, entries) = super::zip::csv_entries(path, &label)?;
                for (name, i) in entries {
                    let entry_label = format!("{label}/{name}");
                    let entry = archive
                        .by_index(i)
                        .map_err(|e| DataError::file(&entry_label, format!("cannot read from the archive ({e})")))?;
                    read_csv(entry, Path::new(&name), &entry_label, skip_bad_rows, &mut out)?;
                }
            }
        }
    }
    order(&mut out.events);
    Ok(out)
}

/// Sorts by time (stable: file and row order break ties) and keeps an
/// interval event only where the symbol's interval is first seen or changes.
fn order(events: &mut Vec<FuturesEvent>) {
    events.sort_by_key(FuturesEvent::ts_ms);
    let mut intervals: FxHashMap<Symbol, u32> = FxHashMap::default();
    events.retain(|e| match e {
        FuturesEvent::Interval(i) => intervals.insert(i.symbol.clone(), i.interval_hours) != Some(i.interval_hours),
        _ => true,
    });
}

/// A number written as text: plain or scientific.
fn decimal_text(text: &str, name: &str) -> Result<Decimal, String> {
    let t = text.trim();
    t.parse::<Decimal>().or_else(|_| Decimal::from_scientific(t)).map_err(|_| format!("{name}: `{t}` is not a number"))
}

/// Reads one CSV file's rows (`path` names the symbol of rows without one).
pub(super) fn read_csv(
    input: impl std::io::Read,
    path: &Path,
    label: &str,
    skip_bad_rows: bool,
    out: &mut FuturesHistory,
) -> Result<(), DataError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(input);
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| DataError::BadRow { file: label.to_string(), line: 1, reason: format!("unreadable header: {e}") })?
        .iter()
        .map(str::to_string)
        .collect();
    let layout = Layout::of(&names).map_err(|reason| DataError::BadRow { file: label.to_string(), line: 1, reason })?;
    let default_symbol = symbol_from_file_name(path).map(|s| Symbol::new(&s));
    let mut sink = Sink { layout, default_symbol, label, skip_bad_rows, rows: false, out };
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                sink.row(line, Err(format!("unreadable CSV: {e}")))?;
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or("");
        let name = |i: usize| Layout::name(&names, i);
        let row = (|| {
            let t = field(layout.time);
            let ts = parse_time(t).ok_or_else(|| format!("{}: `{t}` is not a time", name(layout.time)))?;
            let symbol =
                layout.symbol.map(field).filter(|s| !s.is_empty()).map(|s| Symbol::new(&s.to_ascii_uppercase()));
            let value = decimal_text(field(layout.value), name(layout.value))?;
            let extra = match layout.extra.map(|i| (field(i), name(i))) {
                Some((text, name)) if !text.is_empty() => Some(decimal_text(text, name)?),
                Some((_, name)) if layout.kind == Kind::FundingArchive => return Err(format!("{name}: empty")),
                _ => None,
            };
            Ok(RowValues { ts, symbol, value, extra })
        })();
        sink.row(line, row)?;
    }
    Ok(())
}

/// Reads one Parquet file's rows: the same column names as CSV; times and
/// numbers of any type bars accept, the symbol as text.
fn read_parquet(path: &Path, label: &str, skip_bad_rows: bool, out: &mut FuturesHistory) -> Result<(), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::file(label, format!("cannot open: {e}")))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .map_err(|e| DataError::file(label, format!("not a readable Parquet file ({e})")))?;
    let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let layout = Layout::of(&names).map_err(|reason| DataError::file(label, reason))?;
    let default_symbol = symbol_from_file_name(path).map(|s| Symbol::new(&s));
    let reader = builder.build().map_err(|e| DataError::file(label, format!("cannot read ({e})")))?;
    let mut sink = Sink { layout, default_symbol, label, skip_bad_rows, rows: true, out };
    let mut row_number = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| DataError::file(label, format!("cannot read ({e})")))?;
        let column = |i: usize| -> Result<&ArrayRef, DataError> {
            batch
                .column_by_name(&names[i])
                .ok_or_else(|| DataError::file(label, format!("column `{}` is missing from a batch", names[i])))
        };
        let times = Times::of(column(layout.time)?, &names[layout.time]).map_err(|e| DataError::file(label, e))?;
        let values = Values::of(column(layout.value)?, &names[layout.value]).map_err(|e| DataError::file(label, e))?;
        let extra = match layout.extra {
            Some(i) => Some((Values::of(column(i)?, &names[i]).map_err(|e| DataError::file(label, e))?, i)),
            None => None,
        };
        let symbols = match layout.symbol {
            Some(i) => {
                let a = column(i)?;
                if !matches!(a.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
                    return Err(DataError::file(
                        label,
                        format!("column `{}` is {}, not text", names[i], a.data_type()),
                    ));
                }
                Some(a)
            }
            None => None,
        };
        for i in 0..batch.num_rows() {
            row_number += 1;
            let row = (|| {
                let ts = times.get(i, &names[layout.time])?;
                let symbol = symbols.filter(|a| a.is_valid(i)).map(|a| {
                    let s = match a.data_type() {
                        DataType::LargeUtf8 => a.as_string::<i64>().value(i),
                        _ => a.as_string::<i32>().value(i),
                    };
                    Symbol::new(&s.trim().to_ascii_uppercase())
                });
                let value = values.get(i, &names[layout.value])?.to_decimal();
                let extra = match &extra {
                    Some((v, c)) => Some(v.get(i, &names[*c])?.to_decimal()),
                    None => None,
                };
                Ok(RowValues { ts, symbol, value, extra })
            })();
            sink.row(row_number, row)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn parse(name: &str, text: &str, skip: bool) -> Result<FuturesHistory, DataError> {
        let mut out = FuturesHistory::default();
        read_csv(text.as_bytes(), Path::new(name), name, skip, &mut out)?;
        order(&mut out.events);
        Ok(out)
    }

    fn funding(symbol: &str, t: i64, rate: &str, mark: Option<&str>) -> FuturesEvent {
        FuturesEvent::Funding(FundingSettlement {
            symbol: Symbol::new(symbol),
            rate: d(rate),
            funding_time: t,
            mark_price: mark.map(d),
            rate_type: FundingRateType::Regular,
        })
    }

    fn interval(symbol: &str, t: i64, hours: u32) -> FuturesEvent {
        FuturesEvent::Interval(FundingInterval { symbol: Symbol::new(symbol), interval_hours: hours, ts_ms: t })
    }

    fn oi(symbol: &str, t: i64, amount: &str) -> FuturesEvent {
        FuturesEvent::OpenInterest(OpenInterest { symbol: Symbol::new(symbol), open_interest: d(amount), ts_ms: t })
    }

    const H: i64 = 3_600_000;
    const T0: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

    #[test]
    fn each_format_and_header_spelling() {
        let cases: Vec<(&str, &str, &str, Vec<FuturesEvent>)> = vec![
            (
                "keel funding",
                "funding.csv",
                "funding_time,symbol,funding_rate,mark_price\n1704096000000,btcusdt,0.00012,42000.5\n\
                 1704067200000,BTCUSDT,-0.00001000,\n",
                vec![funding("BTCUSDT", T0, "-0.00001", None), funding("BTCUSDT", T0 + 8 * H, "0.00012", Some("42000.5"))],
            ),
            (
                "Binance JSON names, ISO time, exponent",
                "f.csv",
                "fundingTime,symbol,fundingRate,markPrice\n2024-01-01T00:00:00Z,ETHUSDT,1e-4,2300\n",
                vec![funding("ETHUSDT", T0, "0.0001", Some("2300"))],
            ),
            (
                "Binance archive: symbol from the file name, interval when first seen or changed",
                "SOLUSDT-fundingRate-2024-01.csv",
                "calc_time,funding_interval_hours,last_funding_rate\n1704067200000,8,0.00010000\n\
                 1704096000000,8,0.00020000\n1704110400000,4,0.00030000\n",
                vec![
                    funding("SOLUSDT", T0, "0.0001", None),
                    interval("SOLUSDT", T0, 8),
                    funding("SOLUSDT", T0 + 8 * H, "0.0002", None),
                    funding("SOLUSDT", T0 + 12 * H, "0.0003", None),
                    interval("SOLUSDT", T0 + 12 * H, 4),
                ],
            ),
            (
                "keel open interest",
                "oi.csv",
                "timestamp,symbol,sum_open_interest,sum_open_interest_value\n1704067200000,BTCUSDT,81234.5,3400000000\n",
                vec![oi("BTCUSDT", T0, "81234.5")],
            ),
            (
                "openInterestHist names",
                "oi.csv",
                "timestamp,symbol,sumOpenInterest,sumOpenInterestValue\n1704067200000,BTCUSDT,1.5,60000\n",
                vec![oi("BTCUSDT", T0, "1.5")],
            ),
            (
                "Binance metrics archive: extra columns ignored, UTC date-time",
                "BTCUSDT-metrics-2024-01-01.csv",
                "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio\n\
                 2024-01-01 00:05:00,BTCUSDT,80000.123,3400000000.5,1.2\n",
                vec![oi("BTCUSDT", T0 + 300_000, "80000.123")],
            ),
        ];
        for (what, name, text, want) in cases {
            let got = parse(name, text, false).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got.events, want, "{what}");
        }
    }

    #[test]
    fn bad_headers_and_rows_name_file_line_and_column() {
        let cases = [
            ("x.csv", "time,open,high,low,close\n1,2,3,4,5\n", "x.csv:1: the columns name neither funding"),
            ("x.csv", "symbol,funding_rate\nBTCUSDT,0.1\n", "x.csv:1: no `funding_time` column"),
            (
                "x.csv",
                "funding_time,symbol,funding_rate\n1704067200000,BTCUSDT,0.1\nnope,BTCUSDT,0.1\n",
                "x.csv:3: funding_time: `nope` is not a time",
            ),
            (
                "x.csv",
                "funding_time,symbol,funding_rate\n1704067200000,BTCUSDT,high\n",
                "x.csv:2: funding_rate: `high` is not a number",
            ),
            (
                "A-fundingRate.csv",
                "calc_time,funding_interval_hours,last_funding_rate\n1704067200000,1.5,0.1\n",
                "A-fundingRate.csv:2: funding_interval_hours: `1.5` is not a whole number",
            ),
            (
                "oi.csv",
                "timestamp,symbol,sum_open_interest\n1704067200000,BTCUSDT,-1\n",
                "oi.csv:2: sum_open_interest: `-1` is negative",
            ),
            ("-.csv", "funding_time,funding_rate\n1704067200000,0.1\n", "-.csv:2: no symbol"),
        ];
        for (name, text, want) in cases {
            let e = parse(name, text, false).expect_err(text).to_string();
            assert!(e.starts_with(want), "{text}\ngot:  {e}\nwant: {want}");
        }
    }

    #[test]
    fn skip_bad_rows_counts_and_keeps_the_good_ones() {
        let text =
            "funding_time,symbol,funding_rate\n1704067200000,BTCUSDT,0.1\nnope,BTCUSDT,0.1\n1704096000000,BTCUSDT,x\n";
        let got = parse("f.csv", text, true).unwrap();
        assert_eq!(got.events, vec![funding("BTCUSDT", T0, "0.1", None)]);
        assert_eq!(got.skipped, 2);
        assert_eq!(got.skipped_examples[0], "f.csv:3: funding_time: `nope` is not a time");
    }

    #[test]
    fn files_merge_by_time_then_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        std::fs::write(&a, "funding_time,symbol,funding_rate\n1704096000000,BTCUSDT,0.2\n1704067200000,ETHUSDT,0.1\n")
            .unwrap();
        std::fs::write(&b, "timestamp,symbol,sum_open_interest\n1704067200000,BTCUSDT,5\n1704070800000,BTCUSDT,6\n")
            .unwrap();
        let got = load_futures(&[dir.path().to_path_buf()], false).unwrap();
        assert_eq!(got.files, 2);
        assert_eq!(
            got.events,
            vec![
                funding("ETHUSDT", T0, "0.1", None),
                oi("BTCUSDT", T0, "5"),
                oi("BTCUSDT", T0 + H, "6"),
                funding("BTCUSDT", T0 + 8 * H, "0.2", None),
            ]
        );
    }

    #[test]
    fn parquet_uses_the_same_column_names() {
        use arrow_array::{Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray};
        use arrow_schema::{Field, Schema};
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, batch: RecordBatch| {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            let mut w = ::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            path
        };
        let schema = Schema::new(vec![
            Field::new("fundingTime", DataType::Int64, false),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("fundingRate", DataType::Decimal128(18, 8), false),
            Field::new("markPrice", DataType::Float64, true),
        ]);
        let batch = RecordBatch::try_new(
            std::sync::Arc::new(schema),
            vec![
                std::sync::Arc::new(Int64Array::from(vec![T0])),
                std::sync::Arc::new(StringArray::from(vec!["btcusdt"])),
                std::sync::Arc::new(Decimal128Array::from(vec![12_000i128]).with_precision_and_scale(18, 8).unwrap()),
                std::sync::Arc::new(Float64Array::from(vec![Some(42000.1)])),
            ],
        )
        .unwrap();
        let funding_path = write("f.parquet", batch);
        let got = load_futures(&[funding_path], false).unwrap();
        assert_eq!(got.events, vec![funding("BTCUSDT", T0, "0.00012", Some("42000.1"))]);

        let schema = Schema::new(vec![Field::new("open", DataType::Int64, false)]);
        let batch =
            RecordBatch::try_new(std::sync::Arc::new(schema), vec![std::sync::Arc::new(Int64Array::from(vec![1]))])
                .unwrap();
        let neither = write("n.parquet", batch);
        let e = load_futures(&[neither], false).unwrap_err().to_string();
        assert!(e.contains("n.parquet: the columns name neither funding"), "{e}");
    }
}
