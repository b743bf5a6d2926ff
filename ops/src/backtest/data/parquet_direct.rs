//! Keel's own Parquet layout decoded straight into columns.
//!
//! `keel data convert` writes 64-bit decimals and millisecond timestamps in
//! row groups of 128k rows (see [`super::parquet`]). Such a file (and any
//! other whose time column is a millisecond timestamp and whose price and
//! volume columns are 64-bit decimals or integers without nulls) is read
//! here without Arrow: every row group is decoded on its own core, a few
//! thousand values at a time into small reused buffers, checked as rows and
//! narrowed into exactly sized final columns (4-byte mantissas where they
//! fit) in the same pass. Nothing is decoded twice and no large buffer is
//! copied or grown.
//!
//! Anything else, and any file with a row that fails a check, goes to the
//! Arrow path, which reads every layout and names the bad row.

use bytes::Bytes;
use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::statistics::Statistics;
use rayon::prelude::*;

use super::columns::{max_price_mantissa, Bars, DecimalColumn, MAX_MANTISSA, MAX_TIME, NARROW_MAX};
use super::csv::Layout;

/// Rows decoded per column at a time: the six buffers stay in the core's cache.
const CHUNK: usize = 4096;

/// Where a value column's mantissas go: 4 bytes each while they fit, else 8.
enum Out<'a> {
    Narrow(&'a mut [i32]),
    Wide(&'a mut [i64]),
}

/// What one row group's decode learned.
#[derive(Clone, Copy)]
struct Group {
    /// Its first open time.
    first: i64,
    /// The step between its open times, if it has two or more and they are evenly spaced.
    step: Option<i64>,
    /// Its open times are evenly spaced (always true for one row).
    regular: bool,
    /// The largest |mantissa| of each value column.
    max_abs: [u64; 5],
}

/// Why a row group could not be taken here.
enum Refused {
    /// A column narrowed to 4 bytes has a larger value: decode again, wide.
    Widen([bool; 5]),
    /// Anything else (a type, a null, a row failing a check, a decode error):
    /// the Arrow path reads the file and says what is wrong.
    Fallback,
}

/// The columns Keel's layout takes, by index: time, open, high, low, close, volume.
struct Plan {
    columns: [usize; 6],
    /// Decimal places of the value columns.
    scales: [u32; 5],
    /// True when a value column declares decimals (they may be finer than needed).
    decimal_declared: bool,
}

/// Reads `bytes` (a whole Parquet file) into bars and the symbol its
/// metadata names, when it has Keel's layout and every row passes; `None`
/// sends it to the Arrow path.
pub(super) fn read(bytes: &Bytes) -> Option<(Bars, Option<String>)> {
    let reader = SerializedFileReader::new(bytes.clone()).ok()?;
    let symbol = super::parquet::symbol_of(reader.metadata().file_metadata());
    let plan = plan(reader.metadata())?;
    let row_groups = reader.metadata().row_groups();
    let sizes: Vec<usize> = row_groups.iter().map(|g| usize::try_from(g.num_rows()).ok()).collect::<Option<_>>()?;
    let total: usize = sizes.iter().sum();
    if total == 0 {
        return None;
    }
    // Width from the statistics where the writer kept them (Keel's does);
    // otherwise 4 bytes, and 8 after a retry if a value needs them.
    let mut wide = [false; 5];
    for (c, w) in wide.iter_mut().enumerate() {
        *w = row_groups.iter().any(|g| match g.column(plan.columns[c + 1]).statistics() {
            Some(Statistics::Int64(s)) => {
                let far = |v: Option<&i64>| v.is_some_and(|v| v.unsigned_abs() > NARROW_MAX);
                far(s.min_opt()) || far(s.max_opt())
            }
            _ => false,
        });
    }
    loop {
        match decode(&reader, &plan, &sizes, total, wide) {
            Ok(bars) => return Some((bars, symbol)),
            Err(Refused::Widen(more)) => {
                if more.iter().zip(&wide).all(|(m, w)| !m || *w) {
                    return None;
                }
                wide.iter_mut().zip(more).for_each(|(w, m)| *w |= m);
            }
            Err(Refused::Fallback) => return None,
        }
    }
}

/// The columns of Keel's layout, if the file has it: found by name as the
/// Arrow path finds them, flat, required or without nulls (checked while
/// decoding), a millisecond timestamp and 64-bit decimals or integers, and
/// no close times (those files take the Arrow path).
fn plan(meta: &ParquetMetaData) -> Option<Plan> {
    let schema = meta.file_metadata().schema_descr();
    let fields = schema.root_schema().get_fields();
    if fields.len() != schema.num_columns() || !fields.iter().all(|f| f.is_primitive()) {
        return None;
    }
    let names: Vec<String> = schema.columns().iter().map(|c| c.name().to_ascii_lowercase()).collect();
    let layout = Layout::from_header(&names).ok()?;
    if layout.close_time.is_some() {
        return None;
    }
    let columns = [layout.time, layout.open, layout.high, layout.low, layout.close, layout.volume?];
    for &c in &columns {
        let d = schema.column(c);
        if d.physical_type() != PhysicalType::INT64 || d.max_rep_level() != 0 {
            return None;
        }
    }
    let time = schema.column(columns[0]);
    let millis = match time.logical_type_ref() {
        Some(LogicalType::Timestamp(t)) => t.unit == TimeUnit::MILLIS,
        _ => time.converted_type() == ConvertedType::TIMESTAMP_MILLIS,
    };
    if !millis {
        return None;
    }
    let mut scales = [0u32; 5];
    let mut decimal_declared = false;
    for (c, s) in scales.iter_mut().enumerate() {
        let d = schema.column(columns[c + 1]);
        *s = match d.converted_type() {
            ConvertedType::DECIMAL => u32::try_from(d.type_scale()).ok().filter(|s| *s <= 18)?,
            ConvertedType::NONE | ConvertedType::INT_64 => 0,
            _ => return None,
        };
        decimal_declared |= c < 4 && *s > 0;
    }
    Some(Plan { columns, scales, decimal_declared })
}

/// Decodes every row group on the cores, into final columns of `wide` widths.
fn decode(
    reader: &SerializedFileReader<Bytes>,
    plan: &Plan,
    sizes: &[usize],
    total: usize,
    wide: [bool; 5],
) -> Result<Bars, Refused> {
    // Zeroed allocations come straight from the kernel: their pages are
    // touched first by the core that decodes into them.
    let mut narrow_cols: Vec<Vec<i32>> = (0..5).map(|c| if wide[c] { Vec::new() } else { vec![0; total] }).collect();
    let mut wide_cols: Vec<Vec<i64>> = (0..5).map(|c| if wide[c] { vec![0; total] } else { Vec::new() }).collect();
    let mut outs: Vec<Vec<Out<'_>>> = sizes.iter().map(|_| Vec::with_capacity(5)).collect();
    for (narrow, wide) in narrow_cols.iter_mut().zip(wide_cols.iter_mut()) {
        let (mut narrow, mut wide) = (narrow.as_mut_slice(), wide.as_mut_slice());
        for (g, &n) in sizes.iter().enumerate() {
            if wide.is_empty() {
                let (part, rest) = std::mem::take(&mut narrow).split_at_mut(n);
                outs[g].push(Out::Narrow(part));
                narrow = rest;
            } else {
                let (part, rest) = std::mem::take(&mut wide).split_at_mut(n);
                outs[g].push(Out::Wide(part));
                wide = rest;
            }
        }
    }
    let groups: Vec<Result<Group, Refused>> = outs
        .into_par_iter()
        .enumerate()
        .map_init(Scratch::default, |scratch, (g, mut out)| {
            let rg = reader.get_row_group(g).map_err(|_| Refused::Fallback)?;
            decode_group(rg.as_ref(), plan, sizes[g], &mut out, scratch)
        })
        .collect();
    let mut widen = [false; 5];
    let mut found = Vec::with_capacity(groups.len());
    for g in groups {
        match g {
            Ok(g) => found.push(g),
            Err(Refused::Widen(w)) => widen.iter_mut().zip(w).for_each(|(a, b)| *a |= b),
            Err(Refused::Fallback) => return Err(Refused::Fallback),
        }
    }
    if widen.iter().any(|w| *w) {
        return Err(Refused::Widen(widen));
    }
    let mut columns = narrow_cols.into_iter().zip(wide_cols).enumerate().map(|(c, (narrow, wide))| {
        let max_abs = found.iter().map(|g| g.max_abs[c]).max().unwrap_or(0);
        if wide.is_empty() {
            DecimalColumn::from_narrow(narrow, plan.scales[c], max_abs)
        } else {
            DecimalColumn::from_wide(wide, plan.scales[c], max_abs)
        }
    });
    let mut next = || columns.next().unwrap_or_default();
    let values = [next(), next(), next(), next(), next()];
    let mut bars = match regular_times(&found, sizes) {
        Some((start, step)) => Bars::with_regular_times(start, step, total, values),
        None => Bars::with_times(open_times(reader, plan, total)?, values),
    };
    if plan.decimal_declared {
        // A declared scale may be finer than the values need (Decimal(38, 18)).
        bars.normalize_scales();
    }
    Ok(bars)
}

/// Start and step when all the row groups' times make one evenly spaced,
/// increasing run (as minute bars without gaps do).
fn regular_times(groups: &[Group], sizes: &[usize]) -> Option<(i64, i64)> {
    let start = groups.first()?.first;
    let step = match (groups[0].step, groups.get(1)) {
        (Some(s), _) => s,
        (None, Some(next)) => next.first - start,
        (None, None) => return Some((start, 0)),
    };
    if step <= 0 {
        return None;
    }
    let mut at = 0i64;
    for (g, &n) in groups.iter().zip(sizes) {
        let expected = at.checked_mul(step).and_then(|d| start.checked_add(d))?;
        if !g.regular || g.first != expected || g.step.is_some_and(|s| s != step) {
            return None;
        }
        at += n as i64;
    }
    Some((start, step))
}

/// Every open time, for files whose times are not one evenly spaced run.
fn open_times(reader: &SerializedFileReader<Bytes>, plan: &Plan, total: usize) -> Result<Vec<i64>, Refused> {
    let mut times = Vec::with_capacity(total);
    let mut def = Vec::new();
    for g in 0..reader.num_row_groups() {
        let rg = reader.get_row_group(g).map_err(|_| Refused::Fallback)?;
        let mut r = int64_reader(rg.as_ref(), plan.columns[0])?;
        let n = usize::try_from(rg.metadata().num_rows()).map_err(|_| Refused::Fallback)?;
        let (records, values, _) =
            r.read_records(n, Some(&mut def), None, &mut times).map_err(|_| Refused::Fallback)?;
        if records != n || values != n {
            return Err(Refused::Fallback);
        }
    }
    Ok(times)
}

/// Buffers a core reuses from row group to row group.
#[derive(Default)]
struct Scratch {
    values: [Vec<i64>; 6],
    def: Vec<i16>,
}

/// A column's typed reader (`Fallback` unless INT64).
fn int64_reader(
    rg: &dyn RowGroupReader,
    column: usize,
) -> Result<parquet::column::reader::ColumnReaderImpl<parquet::data_type::Int64Type>, Refused> {
    match rg.get_column_reader(column) {
        Ok(ColumnReader::Int64ColumnReader(r)) => Ok(r),
        _ => Err(Refused::Fallback),
    }
}

/// Decodes one row group into its part of the final columns, checking each row.
fn decode_group(
    rg: &dyn RowGroupReader,
    plan: &Plan,
    n: usize,
    out: &mut [Out<'_>],
    scratch: &mut Scratch,
) -> Result<Group, Refused> {
    let mut readers = Vec::with_capacity(6);
    for &c in &plan.columns {
        readers.push(int64_reader(rg, c)?);
    }
    let checks = RowChecks::new(&plan.scales);
    let mut group = Group { first: 0, step: None, regular: true, max_abs: [0; 5] };
    let mut widen = [false; 5];
    let mut previous: Option<i64> = None;
    let mut done = 0;
    while done < n {
        let want = CHUNK.min(n - done);
        for (r, buf) in readers.iter_mut().zip(scratch.values.iter_mut()) {
            buf.clear();
            scratch.def.clear();
            let (records, values, _) =
                r.read_records(want, Some(&mut scratch.def), None, buf).map_err(|_| Refused::Fallback)?;
            // A null leaves fewer values than records.
            if records != want || values != want {
                return Err(Refused::Fallback);
            }
        }
        let [t, o, h, l, c, v] = &scratch.values;
        for &time in t.iter() {
            if time.unsigned_abs() > MAX_TIME as u64 {
                return Err(Refused::Fallback);
            }
            match previous {
                None => group.first = time,
                Some(p) => match group.step {
                    None => group.step = Some(time - p),
                    Some(s) => group.regular &= time - p == s,
                },
            }
            previous = Some(time);
        }
        if !checks.rows(o, h, l, c, v) {
            return Err(Refused::Fallback);
        }
        for (k, values) in [o, h, l, c, v].into_iter().enumerate() {
            let max = values.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
            if max > MAX_MANTISSA as u64 {
                return Err(Refused::Fallback);
            }
            group.max_abs[k] = group.max_abs[k].max(max);
            match &mut out[k] {
                Out::Wide(dst) => dst[done..done + want].copy_from_slice(values),
                Out::Narrow(_) if max > NARROW_MAX => widen[k] = true,
                Out::Narrow(dst) => {
                    dst[done..done + want].iter_mut().zip(values).for_each(|(d, x)| *d = *x as i32);
                }
            }
        }
        done += want;
    }
    if widen.iter().any(|w| *w) {
        return Err(Refused::Widen(widen));
    }
    group.regular &= group.step.is_none_or(|s| s > 0);
    Ok(group)
}

/// The checks every row passes ([`super::columns::Row::check`]), on mantissas
/// of columns with their own scales.
struct RowChecks {
    /// Multipliers bringing each price column to the finest price scale.
    align: [i64; 4],
    /// All four price columns share one scale.
    same_scale: bool,
    /// The largest high mantissa accepted.
    max_high: i128,
}

impl RowChecks {
    fn new(scales: &[u32; 5]) -> Self {
        let finest = scales[..4].iter().copied().max().unwrap_or(0);
        let mut align = [1i64; 4];
        for (a, s) in align.iter_mut().zip(scales) {
            *a = 10i64.pow(finest - s);
        }
        // The largest price at the scale the comparisons use.
        Self { align, same_scale: align == [1; 4], max_high: max_price_mantissa(finest) }
    }

    /// True when every row passes: low > 0, high within the largest price,
    /// low ≤ open, close ≤ high, volume ≥ 0.
    #[inline]
    fn rows(&self, o: &[i64], h: &[i64], l: &[i64], c: &[i64], v: &[i64]) -> bool {
        let max_high = self.max_high;
        if self.same_scale {
            let mut ok = true;
            for i in 0..o.len() {
                let (o, h, l, c, v) = (o[i], h[i], l[i], c[i], v[i]);
                ok &= (l > 0) & (i128::from(h) <= max_high) & (l <= o) & (o <= h) & (l <= c) & (c <= h) & (v >= 0);
            }
            return ok;
        }
        let [ko, kh, kl, kc] = self.align.map(i128::from);
        (0..o.len()).all(|i| {
            let (o, h, l, c) = (o[i] as i128 * ko, h[i] as i128 * kh, l[i] as i128 * kl, c[i] as i128 * kc);
            l > 0 && h <= max_high && l <= o && o <= h && l <= c && c <= h && v[i] >= 0
        })
    }
}

#[cfg(test)]
mod tests {
    use keel_core::market::Bar;
    use keel_core::{Decimal, Symbol};

    use super::super::parquet::{read_arrow, write_groups};
    use super::super::Series;
    use super::*;

    const MINUTE: i64 = 60_000;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// `n` bars at `times`, prices from `price(i)` (open, high, low, close, volume as text).
    fn file(times: &[i64], price: impl Fn(usize) -> [String; 5], row_group: usize) -> Bytes {
        let bars: Vec<Bar> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let [open, high, low, close, volume] = price(i).map(|p| d(&p));
                Bar {
                    symbol: Symbol::new("BTCUSDT"),
                    open_time: t,
                    close_time: t + MINUTE - 1,
                    open,
                    high,
                    low,
                    close,
                    volume,
                }
            })
            .collect();
        let bars = Bars::from_bars(&bars).unwrap();
        let series = Series {
            symbol: Symbol::new("BTCUSDT"),
            price_scale: bars.price_scale(),
            qty_scale: bars.qty_scale(),
            bars,
            interval_ms: MINUTE,
            files: Vec::new(),
        };
        let mut out = Vec::new();
        write_groups(&series, &mut out, row_group, &[]).unwrap();
        Bytes::from(out)
    }

    fn walk(i: usize) -> [String; 5] {
        let c = 5_000_000 + (i as i64 * 7919) % 2001 - 1000;
        let p = |m: i64| format!("{}.{:02}", m / 100, m % 100);
        [p(c), p(c + 50), p(c - 50), p(c + 10), format!("{}.{}", i % 97, i % 10)]
    }

    fn minutes(n: usize) -> Vec<i64> {
        (0..n as i64).map(|i| 1_600_000_000_000 + i * MINUTE).collect()
    }

    #[test]
    fn keel_files_decode_as_the_arrow_path_reads_them() {
        struct Case {
            name: &'static str,
            times: Vec<i64>,
            price: fn(usize) -> [String; 5],
            row_group: usize,
            /// Bytes a bar for: open time, close, volume.
            want_widths: (usize, usize, usize),
        }
        let mut gaps = minutes(40);
        gaps.retain(|t| (t / MINUTE) % 5 != 3);
        let mut unsorted = minutes(30);
        unsorted.swap(3, 17);
        let cases = [
            Case {
                name: "even minutes, groups of 7",
                times: minutes(50),
                price: walk,
                row_group: 7,
                want_widths: (0, 4, 4),
            },
            Case { name: "one group", times: minutes(50), price: walk, row_group: 1000, want_widths: (0, 4, 4) },
            Case { name: "one row", times: minutes(1), price: walk, row_group: 7, want_widths: (0, 4, 4) },
            Case { name: "groups of one row", times: minutes(5), price: walk, row_group: 1, want_widths: (0, 4, 4) },
            Case { name: "gaps: on a grid", times: gaps, price: walk, row_group: 7, want_widths: (4, 4, 4) },
            Case { name: "out of order", times: unsorted, price: walk, row_group: 7, want_widths: (4, 4, 4) },
            Case {
                name: "a volume beyond 32 bits",
                times: minutes(20),
                price: |i| {
                    let mut p = walk(i);
                    p[4] = format!("{}.12345678", 1000 + i);
                    p
                },
                row_group: 7,
                want_widths: (0, 4, 8),
            },
            Case {
                name: "columns of different scales",
                times: minutes(20),
                price: |i| {
                    let c = 100 + i as i64;
                    [format!("{c}"), format!("{}", c + 1), format!("{}.5", c - 1), format!("{c}.00001234"), "0".into()]
                },
                row_group: 7,
                want_widths: (0, 8, 4),
            },
        ];
        for c in cases {
            let bytes = file(&c.times, c.price, c.row_group);
            let (direct, symbol) = read(&bytes).unwrap_or_else(|| panic!("{}: not taken", c.name));
            let arrow = read_arrow(bytes, "f.parquet", false).unwrap();
            assert_eq!(direct, arrow.bars, "{}", c.name);
            assert_eq!(symbol.as_deref(), Some("BTCUSDT"), "{}", c.name);
            assert_eq!((direct.time_width(), direct.close.width(), direct.volume.width()), c.want_widths, "{}", c.name);
        }
    }

    #[test]
    fn a_bad_row_goes_to_the_arrow_path_which_names_it() {
        let bytes = file(
            &minutes(20),
            |i| {
                let mut p = walk(i);
                if i == 11 {
                    p[1] = "1.00".into();
                }
                p
            },
            7,
        );
        assert!(read(&bytes).is_none());
        let err = read_arrow(bytes, "f.parquet", false).unwrap_err().to_string();
        assert!(err.starts_with("f.parquet: row 12: high 1.00 is below low"), "{err}");
    }

    #[test]
    fn a_column_guessed_narrow_is_decoded_again_wide() {
        let bytes = file(
            &minutes(20),
            |i| {
                let mut p = walk(i);
                p[4] = if i == 15 { "12345678901.5".into() } else { "1.5".into() };
                p
            },
            7,
        );
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        let plan = plan(reader.metadata()).unwrap();
        let sizes = [7, 7, 6];
        let got = decode(&reader, &plan, &sizes, 20, [false; 5]).map(|_| ()).map_err(|e| match e {
            Refused::Widen(w) => Some(w),
            Refused::Fallback => None,
        });
        assert_eq!(got, Err(Some([false, false, false, false, true])));
        let wide = decode(&reader, &plan, &sizes, 20, [false, false, false, false, true]).ok().unwrap();
        assert_eq!(wide, read_arrow(bytes, "f.parquet", false).unwrap().bars);
    }
}
