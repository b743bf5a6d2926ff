//! Parquet, written and read with the `parquet` crate's Arrow interface.
//!
//! What Keel writes: `open_time` (timestamp, ms, UTC), `open`, `high`, `low`,
//! `close`, `volume` as exact decimals (`Decimal64(18, scale)`, stored as
//! 64-bit integers with the column's scale: pandas, pyarrow and polars read
//! them as decimals), `close_time` only when the close times are not the
//! open time plus the interval less 1 ms, and key-value metadata `symbol`,
//! `interval` (as Binance names it: `1m`, `1h`, `1d`) and `keel_version`.
//! Delta-encoded (`DELTA_BINARY_PACKED`), uncompressed.
//!
//! What Keel reads: that (decoded without Arrow, row groups in parallel:
//! [`super::parquet_direct`]), and the shapes others write (snappy- or
//! zstd-compressed, as pandas and polars write by default), with columns found by
//! name as in a CSV header (case-insensitive): Freqtrade's `date` timestamp
//! with `float64` prices, `int64` epoch times (ms, µs or s, as in CSV),
//! dates, ISO text; prices as decimals of any precision, floats, integers or
//! text. A float is restored through its shortest round-trip decimal form
//! (Rust's `f64` `Display`), so 50003.09 stored as a float comes back as
//! exactly 50003.09.

use std::path::Path;
use std::sync::Arc;

use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use ::parquet::arrow::{ArrowWriter, ProjectionMask};
use ::parquet::basic::{Compression, Encoding};
use ::parquet::file::metadata::KeyValue;
use ::parquet::file::properties::WriterProperties;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Decimal32Type, Decimal64Type, Float32Type, Float64Type, Int32Type,
    Int64Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, Decimal64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::columns::{CloseTimes, Fixed, Row};
use super::csv::Layout;
use super::{epoch_to_ms, interval_name, parse_time, DataError, ParsedFile, Series};

/// Rows per record batch, reading and writing.
const BATCH: usize = 64 * 1024;

/// Rows per row group written: 8 groups for 1M bars, decoded on every core.
const ROW_GROUP: usize = 128 * 1024;

/// Writes a series as Parquet (see the module doc); returns the bytes written.
pub fn write_parquet(series: &Series, out: impl std::io::Write + Send) -> Result<u64, String> {
    write_groups(series, out, ROW_GROUP, &[])
}

/// [`write_parquet`] with more key-value metadata (e.g. `keel data
/// download`'s `gaps`).
pub fn write_parquet_with(
    series: &Series,
    out: impl std::io::Write + Send,
    extra: &[(String, String)],
) -> Result<u64, String> {
    write_groups(series, out, ROW_GROUP, extra)
}

/// [`write_parquet_with`] with row groups of `row_group` rows.
pub(super) fn write_groups(
    series: &Series,
    out: impl std::io::Write + Send,
    row_group: usize,
    extra: &[(String, String)],
) -> Result<u64, String> {
    let bars = &series.bars;
    let explicit_close = match bars.close_times() {
        CloseTimes::Offset(d) => *d != series.interval_ms - 1,
        CloseTimes::Each(_) => true,
        CloseTimes::Absent => false,
    };
    let utc = || DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let decimal = |scale: u32| DataType::Decimal64(18, scale as i8);
    let mut fields = vec![
        Field::new("open_time", utc(), false),
        Field::new("open", decimal(bars.open.scale()), false),
        Field::new("high", decimal(bars.high.scale()), false),
        Field::new("low", decimal(bars.low.scale()), false),
        Field::new("close", decimal(bars.close.scale()), false),
        Field::new("volume", decimal(bars.volume.scale()), false),
    ];
    if explicit_close {
        fields.push(Field::new("close_time", utc(), false));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut metadata = vec![
        KeyValue::new("symbol".to_string(), series.symbol.to_string()),
        KeyValue::new("interval".to_string(), interval_name(series.interval_ms)),
        KeyValue::new("keel_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ];
    metadata.extend(extra.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())));
    // Delta encoding: regular times and random-walk prices shrink to a few
    // bits a value (7.7 MB for 1M minute bars, against 48 MB plain and 26 MB
    // plain with snappy), and decoding them is faster than decompressing.
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_encoding(Encoding::DELTA_BINARY_PACKED)
        .set_dictionary_enabled(false)
        // Row groups of 128k rows: the reader decodes them on several cores.
        .set_max_row_group_row_count(Some(row_group))
        .set_key_value_metadata(Some(metadata))
        .build();
    let mut counter = CountingWriter { inner: out, bytes: 0 };
    let mut writer = ArrowWriter::try_new(&mut counter, schema.clone(), Some(props)).map_err(|e| e.to_string())?;
    let mut start = 0;
    while start < bars.len() {
        let end = (start + BATCH).min(bars.len());
        let times = || {
            let t: Vec<i64> = (start..end).map(|i| bars.open_time(i)).collect();
            TimestampMillisecondArray::from(t).with_timezone("UTC")
        };
        let column = |c: &super::columns::DecimalColumn| -> Result<ArrayRef, String> {
            let array = Decimal64Array::from(c.values(start..end))
                .with_precision_and_scale(18, c.scale() as i8)
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(array))
        };
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(times()),
            column(&bars.open)?,
            column(&bars.high)?,
            column(&bars.low)?,
            column(&bars.close)?,
            column(&bars.volume)?,
        ];
        if explicit_close {
            let close: Vec<i64> = (start..end).map(|i| bars.close_time(i).unwrap_or(bars.open_time(i))).collect();
            columns.push(Arc::new(TimestampMillisecondArray::from(close).with_timezone("UTC")));
        }
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
        start = end;
    }
    writer.close().map_err(|e| e.to_string())?;
    Ok(counter.bytes)
}

/// Counts what passes through, for the caller's report (also the writers
/// of `keel data download`).
pub(crate) struct CountingWriter<W> {
    /// Where the bytes go.
    pub(crate) inner: W,
    /// How many went.
    pub(crate) bytes: u64,
}

impl<W: std::io::Write> std::io::Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a Parquet file of bars (see the module doc). Bad rows are named by
/// their 1-based row number.
pub fn read_parquet(path: &Path, label: &str, skip_bad_rows: bool) -> Result<ParsedFile, DataError> {
    let bytes = read_whole(path).map_err(|e| DataError::file(label, format!("cannot open: {e}")))?;
    let bytes = bytes::Bytes::from(bytes);
    // Keel's own layout: row groups decoded in parallel, straight into columns.
    if let Some((bars, symbol)) = super::parquet_direct::read(&bytes) {
        // Giving the file's pages back takes a millisecond or so (1M bars): on a pool
        // thread, idle once the columns are decoded, rather than before the run starts.
        rayon::spawn(move || drop(bytes));
        return Ok(ParsedFile { bars, symbol, ..ParsedFile::default() });
    }
    read_arrow(bytes, label, skip_bad_rows)
}

/// Reads a whole file; one of a megabyte or more in two halves on two cores, as reading a
/// cached file is mostly copying it into fresh pages, each a fault.
fn read_whole(path: &Path) -> std::io::Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if let Ok(n) = usize::try_from(len) {
            if n >= 1 << 20 {
                let mut buf = vec![0u8; n];
                let (first, second) = buf.split_at_mut(n / 2);
                let half = first.len() as u64;
                let (a, b) = rayon::join(|| file.read_exact_at(first, 0), || file.read_exact_at(second, half));
                a?;
                b?;
                // A file that changed size while it was read is read again, whole.
                if file.metadata()?.len() == len {
                    return Ok(buf);
                }
            }
        }
    }
    std::fs::read(path)
}

/// The symbol a file's key-value metadata names, if any.
pub(super) fn symbol_of(meta: &::parquet::file::metadata::FileMetaData) -> Option<String> {
    meta.key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "symbol"))
        .and_then(|k| k.value.clone())
        .filter(|s| !s.is_empty())
}

/// [`read_parquet`] through Arrow: every layout, row by row where needed.
pub(super) fn read_arrow(bytes: bytes::Bytes, label: &str, skip_bad_rows: bool) -> Result<ParsedFile, DataError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| DataError::file(label, format!("not a readable Parquet file ({e})")))?;
    let schema = builder.schema().clone();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().to_ascii_lowercase()).collect();
    let layout = Layout::from_header(&names).map_err(|reason| DataError::file(label, reason))?;
    let mut roots: Vec<usize> = layout.columns().collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let symbol = symbol_of(builder.metadata().file_metadata());
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH)
        .build()
        .map_err(|e| DataError::file(label, format!("cannot read ({e})")))?;
    let mut out = ParsedFile { symbol, ..ParsedFile::default() };
    let mut decimal_declared = false;
    let mut row_number = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| DataError::file(label, format!("cannot read ({e})")))?;
        let column = |i: usize| {
            batch
                .column_by_name(&names[i])
                .ok_or_else(|| DataError::file(label, format!("column `{}` is missing from a batch", names[i])))
        };
        let times = |i: usize| Times::of(column(i)?, &names[i]).map_err(|e| DataError::file(label, e));
        let values = |i: usize| Values::of(column(i)?, &names[i]).map_err(|e| DataError::file(label, e));
        let open_time = times(layout.time)?;
        let close_time = layout.close_time.map(times).transpose()?;
        let (open, high, low, close) =
            (values(layout.open)?, values(layout.high)?, values(layout.low)?, values(layout.close)?);
        let volume = layout.volume.map(values).transpose()?;
        decimal_declared |= [&open, &high, &low, &close].iter().any(|v| v.is_decimal());
        // Keel's own files: whole batches at once.
        if let (Times::Millis(t), Some(volume)) = (&open_time, &volume) {
            let close_times = match &close_time {
                None => Some(None),
                Some(Times::Millis(c)) => Some(Some(*c)),
                Some(_) => None,
            };
            let plain = [&open, &high, &low, &close, volume].map(Values::plain);
            if let (Some(close_times), [Some(o), Some(h), Some(l), Some(c), Some(v)]) = (close_times, plain) {
                if out.bars.extend(t, close_times, [o, h, l, c, v]) {
                    row_number += t.len() as u64;
                    continue;
                }
            }
        }
        for i in 0..batch.num_rows() {
            row_number += 1;
            let row = || -> Result<Row, String> {
                Ok(Row {
                    open_time: open_time.get(i, "time")?,
                    close_time: close_time.as_ref().map(|c| c.get(i, "close_time")).transpose()?,
                    open: open.get(i, "open")?,
                    high: high.get(i, "high")?,
                    low: low.get(i, "low")?,
                    close: close.get(i, "close")?,
                    volume: volume.as_ref().map(|v| v.get(i, "volume")).transpose()?.unwrap_or(Fixed::ZERO),
                })
            };
            match row().and_then(|r| out.bars.push(&r)) {
                Ok(()) => {}
                Err(reason) if skip_bad_rows => out.note_skip(format!(" row {row_number}"), &reason),
                Err(reason) => return Err(DataError::file(label, format!("row {row_number}: {reason}"))),
            }
        }
    }
    if row_number == 0 {
        return Err(DataError::file(label, "no rows"));
    }
    if decimal_declared {
        // A declared scale may be finer than the values need (Decimal(38, 18)).
        out.bars.normalize_scales();
    }
    out.bars.shrink_to_fit();
    Ok(out)
}

/// How a time column's integers become ms since the epoch.
#[derive(Clone, Copy)]
pub(super) enum TimeUnitOf {
    Seconds,
    Millis,
    Micros,
    Nanos,
    /// An epoch number of unknown unit: as in CSV (see `epoch_to_ms`).
    Epoch,
    Days,
}

/// A time column of any supported type.
pub(super) enum Times<'a> {
    /// Millisecond timestamps without nulls.
    Millis(&'a [i64]),
    Int64(arrow_array::PrimitiveArray<Int64Type>, TimeUnitOf),
    Int32(arrow_array::PrimitiveArray<Int32Type>, TimeUnitOf),
    Text(&'a dyn Array),
}

impl<'a> Times<'a> {
    /// The column `name`, when it holds times.
    pub(super) fn of(a: &'a ArrayRef, name: &str) -> Result<Self, String> {
        use TimeUnitOf::*;
        let int64 = |unit| Times::Int64(a.as_primitive::<Int64Type>().clone(), unit);
        Ok(match a.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) if a.null_count() == 0 => {
                Times::Millis(a.as_primitive::<TimestampMillisecondType>().values())
            }
            DataType::Timestamp(TimeUnit::Second, _) => {
                Times::Int64(a.as_primitive::<TimestampSecondType>().reinterpret_cast(), Seconds)
            }
            DataType::Timestamp(unit, _) => {
                let unit = match unit {
                    TimeUnit::Millisecond => Millis,
                    TimeUnit::Microsecond => Micros,
                    _ => Nanos,
                };
                let ints = match a.data_type() {
                    DataType::Timestamp(TimeUnit::Millisecond, _) => {
                        a.as_primitive::<TimestampMillisecondType>().reinterpret_cast()
                    }
                    DataType::Timestamp(TimeUnit::Microsecond, _) => {
                        a.as_primitive::<TimestampMicrosecondType>().reinterpret_cast()
                    }
                    _ => a.as_primitive::<TimestampNanosecondType>().reinterpret_cast(),
                };
                Times::Int64(ints, unit)
            }
            DataType::Int64 => int64(Epoch),
            DataType::Int32 => Times::Int32(a.as_primitive::<Int32Type>().clone(), Epoch),
            DataType::Date32 => Times::Int32(a.as_primitive::<Date32Type>().reinterpret_cast(), Days),
            DataType::Date64 => Times::Int64(a.as_primitive::<Date64Type>().reinterpret_cast(), Millis),
            DataType::Utf8 | DataType::LargeUtf8 => Times::Text(a.as_ref()),
            other => {
                return Err(format!("column `{name}` is {other}, not a time (timestamp, integer epoch, date or text)"))
            }
        })
    }

    /// Row `i`'s time in ms.
    #[inline]
    pub(super) fn get(&self, i: usize, name: &str) -> Result<i64, String> {
        let convert = |v: i64, unit: TimeUnitOf| match unit {
            TimeUnitOf::Seconds => v.saturating_mul(1000),
            TimeUnitOf::Millis => v,
            TimeUnitOf::Micros => v.div_euclid(1000),
            TimeUnitOf::Nanos => v.div_euclid(1_000_000),
            TimeUnitOf::Epoch => epoch_to_ms(v),
            TimeUnitOf::Days => v.saturating_mul(86_400_000),
        };
        match self {
            Times::Millis(v) => Ok(v[i]),
            Times::Int64(a, unit) if a.is_valid(i) => Ok(convert(a.value(i), *unit)),
            Times::Int32(a, unit) if a.is_valid(i) => Ok(convert(a.value(i).into(), *unit)),
            Times::Text(a) if a.is_valid(i) => {
                let t = match a.data_type() {
                    DataType::LargeUtf8 => a.as_string::<i64>().value(i),
                    _ => a.as_string::<i32>().value(i),
                };
                parse_time(t).ok_or_else(|| format!("{name}: `{t}` is not a time"))
            }
            _ => Err(format!("{name}: empty")),
        }
    }
}

/// A price or volume column of any supported type.
pub(super) enum Values<'a> {
    /// 64-bit decimals (or integers) without nulls: the mantissas as they are
    /// (beyond 18 digits the column refuses a value, naming it).
    Plain(&'a [i64], u32),
    /// Anything else, converted value by value.
    Any(&'a dyn Array, u32),
}

impl<'a> Values<'a> {
    /// The column `name`, when it holds numbers.
    pub(super) fn of(a: &'a ArrayRef, name: &str) -> Result<Self, String> {
        let scale = |s: i8| u32::try_from(s).map_err(|_| format!("column `{name}` has a negative decimal scale {s}"));
        let plain = a.null_count() == 0;
        Ok(match a.data_type() {
            DataType::Decimal64(_, s) if plain => Values::Plain(a.as_primitive::<Decimal64Type>().values(), scale(*s)?),
            DataType::Int64 if plain => Values::Plain(a.as_primitive::<Int64Type>().values(), 0),
            DataType::Decimal32(_, s) | DataType::Decimal64(_, s) | DataType::Decimal128(_, s) => {
                Values::Any(a.as_ref(), scale(*s)?)
            }
            DataType::Float64 | DataType::Float32 | DataType::Int64 | DataType::Int32 => Values::Any(a.as_ref(), 0),
            DataType::Utf8 | DataType::LargeUtf8 => Values::Any(a.as_ref(), 0),
            other => return Err(format!("column `{name}` is {other}, not a number (decimal, float, integer or text)")),
        })
    }

    /// The mantissas and scale of a plain column.
    fn plain(&self) -> Option<(&'a [i64], u32)> {
        match self {
            Values::Plain(v, s) => Some((v, *s)),
            Values::Any(..) => None,
        }
    }

    /// True for a decimal column with a declared scale.
    fn is_decimal(&self) -> bool {
        match self {
            Values::Plain(_, scale) => *scale > 0,
            Values::Any(a, _) => a.data_type().is_decimal(),
        }
    }

    /// Row `i`'s number, exact.
    #[inline]
    pub(super) fn get(&self, i: usize, name: &str) -> Result<Fixed, String> {
        let (a, scale) = match self {
            Values::Plain(v, scale) => return Ok(Fixed { mantissa: v[i], scale: *scale }),
            Values::Any(a, scale) => (*a, *scale),
        };
        if a.is_null(i) {
            return Err(format!("{name}: empty"));
        }
        let too_big =
            |shown: String| format!("{name}: `{shown}` needs more than 18 digits or decimals to hold exactly");
        let exact = |m: i128, shown: &dyn Fn() -> String| decimal(m, scale).ok_or_else(|| too_big(shown()));
        match a.data_type() {
            DataType::Decimal32(..) => {
                let a = a.as_primitive::<Decimal32Type>();
                exact(a.value(i).into(), &|| a.value_as_string(i))
            }
            DataType::Decimal64(..) => {
                let a = a.as_primitive::<Decimal64Type>();
                exact(a.value(i).into(), &|| a.value_as_string(i))
            }
            DataType::Decimal128(..) => {
                let a = a.as_primitive::<Decimal128Type>();
                exact(a.value(i), &|| a.value_as_string(i))
            }
            DataType::Int64 => {
                let v = a.as_primitive::<Int64Type>().value(i);
                exact(v.into(), &|| v.to_string())
            }
            DataType::Int32 => Ok(Fixed { mantissa: a.as_primitive::<Int32Type>().value(i).into(), scale: 0 }),
            DataType::Float64 => float(a.as_primitive::<Float64Type>().value(i), name),
            DataType::Float32 => float(a.as_primitive::<Float32Type>().value(i), name),
            DataType::LargeUtf8 => text(a.as_string::<i64>().value(i), name),
            _ => text(a.as_string::<i32>().value(i), name),
        }
    }
}

/// A number written as text.
fn text(text: &str, name: &str) -> Result<Fixed, String> {
    Fixed::parse_text(text).map_err(|e| match e {
        None => format!("{name}: `{text}` is not a number"),
        Some(_) => format!("{name}: `{text}` needs more than 18 digits or decimals to hold exactly"),
    })
}

/// A decimal mantissa at `scale`, trailing zeros dropped if it has too many digits.
#[inline]
fn decimal(mut m: i128, mut scale: u32) -> Option<Fixed> {
    const LIMIT: i128 = 1_000_000_000_000_000_000;
    while m.abs() >= LIMIT && scale > 0 && m % 10 == 0 {
        m /= 10;
        scale -= 1;
    }
    while scale > super::columns::MAX_DIGITS && m % 10 == 0 {
        m /= 10;
        scale -= 1;
    }
    (m.abs() < LIMIT && scale <= super::columns::MAX_DIGITS).then_some(Fixed { mantissa: m as i64, scale })
}

/// A float through its shortest round-trip decimal text.
fn float(v: impl Into<f64> + std::fmt::Display + Copy, name: &str) -> Result<Fixed, String> {
    if !v.into().is_finite() {
        return Err(format!("{name}: {v} is not a number"));
    }
    let mut buf = [0u8; 400];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    std::io::Write::write_fmt(&mut cursor, format_args!("{v}")).map_err(|_| format!("{name}: {v} is too long"))?;
    let len = cursor.position() as usize;
    let text = &buf[..len];
    Fixed::parse(text).ok_or_else(|| format!("{name}: {v} needs more than 18 digits or decimals to hold exactly"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_read_in_halves_is_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // Below the size read in halves, at it, and an odd size above it.
        for len in [1000, 1 << 20, (3 << 20) + 7] {
            let bytes: Vec<u8> = (0..len).map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).unwrap();
            assert!(read_whole(&path).unwrap() == bytes, "{len} bytes");
        }
        assert!(read_whole(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn floats_come_back_as_their_shortest_decimal() {
        struct Case {
            value: f64,
            want: Result<(i64, u32), &'static str>,
        }
        let cases = [
            Case { value: 50003.09, want: Ok((5_000_309, 2)) },
            Case { value: 4.1, want: Ok((41, 1)) },
            Case { value: 65000.0, want: Ok((65_000, 0)) },
            Case { value: 0.00001234, want: Ok((1234, 8)) },
            Case { value: 0.1 + 0.2, want: Ok((30_000_000_000_000_004, 17)) },
            Case { value: 1e-7, want: Ok((1, 7)) },
            Case { value: -2.5, want: Ok((-25, 1)) },
            Case { value: f64::NAN, want: Err("open: NaN is not a number") },
            Case { value: f64::INFINITY, want: Err("open: inf is not a number") },
            Case {
                value: 1e20,
                want: Err("open: 100000000000000000000 needs more than 18 digits or decimals to hold exactly"),
            },
            Case { value: 1.0 / 3.0, want: Ok((3_333_333_333_333_333, 16)) },
        ];
        for c in cases {
            let got = float(c.value, "open").map(|f| (f.mantissa, f.scale));
            assert_eq!(got, c.want.map_err(str::to_string), "{}", c.value);
        }
    }

    #[test]
    fn declared_decimals_lose_only_trailing_zeros() {
        struct Case {
            mantissa: i128,
            scale: u32,
            want: Option<(i64, u32)>,
        }
        let cases = [
            Case { mantissa: 500_031_000, scale: 4, want: Some((500_031_000, 4)) },
            // Decimal(38, 18): 50003.09 needs 23 digits as declared; dropping
            // zeros down to 18 digits is enough (the column drops the rest).
            Case { mantissa: 50_003_090_000_000_000_000_000, scale: 18, want: Some((500_030_900_000_000_000, 13)) },
            Case { mantissa: 1, scale: 30, want: None },
            Case { mantissa: 10_000_000_000_000, scale: 30, want: Some((10, 18)) },
            Case { mantissa: 12_345_678_901_234_567_890, scale: 2, want: None },
            Case { mantissa: -7, scale: 0, want: Some((-7, 0)) },
        ];
        for c in cases {
            let got = decimal(c.mantissa, c.scale).map(|f| (f.mantissa, f.scale));
            assert_eq!(got, c.want, "{} e-{}", c.mantissa, c.scale);
        }
    }
}
