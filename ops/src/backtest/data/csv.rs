//! The CSV parser: bytes straight into columns.
//!
//! It reads blocks of bytes, splits lines with `memchr`, and parses each
//! field in place: epoch times as integers, prices as [`Fixed`] decimals,
//! without a `String` or `Decimal` per field. Lines that need more (quoted
//! fields, spaces around values, exponents, ISO times) take a slower path to
//! the same result. See the module above for the layouts and time formats.

use std::io::Read;

use super::columns::{Fixed, Row};
use super::{epoch_to_ms, parse_time, DataError, ParsedFile};

/// Bytes read at a time.
const BLOCK: usize = 1 << 20;

/// Column positions of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub(super) time: usize,
    pub(super) open: usize,
    pub(super) high: usize,
    pub(super) low: usize,
    pub(super) close: usize,
    pub(super) volume: Option<usize>,
    pub(super) close_time: Option<usize>,
    has_header: bool,
}

impl Layout {
    /// How many fields a row needs.
    fn needed(&self) -> usize {
        self.columns().max().unwrap_or(0) + 1
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

    /// Finds the columns by name (lower-case names, as CSV headers and
    /// Parquet schemas give them).
    pub fn from_header(names: &[String]) -> Result<Self, String> {
        let find = |wanted: &[&str]| names.iter().position(|n| wanted.contains(&n.as_str()));
        // pandas names an unnamed index `__index_level_0__` in Parquet.
        let time = find(&["timestamp", "date", "time", "open_time", "datetime", "opentime", "open time"])
            .or_else(|| find(&["__index_level_0__"]))
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

    /// The indexes of the columns used.
    pub fn columns(&self) -> impl Iterator<Item = usize> {
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
    }
}

/// Parses one CSV file's contents, on every core. `file` names it in errors.
pub fn parse_csv(input: impl Read, file: &str, skip_bad_rows: bool) -> Result<ParsedFile, DataError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    parse_csv_on(input, file, skip_bad_rows, cores)
}

/// [`parse_csv`] on at most `cores` threads.
pub(super) fn parse_csv_on(
    mut input: impl Read,
    file: &str,
    skip_bad_rows: bool,
    cores: usize,
) -> Result<ParsedFile, DataError> {
    let mut parser = Parser::new(file, skip_bad_rows, None);
    let mut buf = vec![0u8; BLOCK];
    let mut filled = 0;
    let mut line = 0u64;
    let mut first = true;
    loop {
        let n = loop {
            match input.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DataError::file(file, format!("cannot read: {e}"))),
            }
        };
        let eof = n == 0;
        filled += n;
        if !eof && filled < buf.len() {
            continue;
        }
        let mut start = 0;
        if first && filled >= 3 {
            first = false;
            if buf.starts_with(b"\xEF\xBB\xBF") {
                start = 3;
            }
        }
        // Whole lines (and at the end whatever is left).
        let end =
            if eof { filled } else { memchr::memrchr(b'\n', &buf[start..filled]).map_or(start, |p| start + p + 1) };
        line = parser.lines(&buf[start..end], line, cores)?;
        if eof {
            break;
        }
        buf.copy_within(end..filled, 0);
        filled -= end;
        if filled == buf.len() {
            // A line longer than the buffer.
            buf.resize(buf.len() * 2, 0);
        }
    }
    if parser.layout.is_none() {
        return Err(DataError::file(file, "no rows"));
    }
    parser.out.bars.shrink_to_fit();
    Ok(parser.out)
}

/// Below this, a block is parsed on one core.
const PARALLEL_MIN: usize = 256 * 1024;

struct Parser<'a> {
    file: &'a str,
    skip_bad_rows: bool,
    layout: Option<Layout>,
    out: ParsedFile,
    /// Field bounds of the current line (reused).
    fields: Vec<(u32, u32)>,
}

impl<'a> Parser<'a> {
    fn new(file: &'a str, skip_bad_rows: bool, layout: Option<Layout>) -> Self {
        Parser { file, skip_bad_rows, layout, out: ParsedFile::default(), fields: Vec::new() }
    }

    /// Parses whole lines (the last may lack its newline) following line
    /// `line`; returns the number of the last. Once the layout is known, a
    /// large block is split at a line boundary across `cores` threads and the
    /// parts' columns appended in order.
    fn lines(&mut self, bytes: &[u8], line: u64, cores: usize) -> Result<u64, DataError> {
        let Some(layout) = self.layout.filter(|_| cores > 1 && bytes.len() >= PARALLEL_MIN) else {
            return self.lines_here(bytes, line);
        };
        let mut parts = Vec::with_capacity(cores);
        let mut rest = bytes;
        for k in (1..=cores).rev() {
            let cut = if k == 1 {
                rest.len()
            } else {
                let mid = rest.len() / k;
                memchr::memchr(b'\n', &rest[mid..]).map_or(rest.len(), |p| mid + p + 1)
            };
            let (part, tail) = rest.split_at(cut);
            parts.push(part);
            rest = tail;
        }
        let mut first_lines = Vec::with_capacity(parts.len());
        let mut next = line;
        for part in &parts {
            first_lines.push(next);
            next +=
                memchr::memchr_iter(b'\n', part).count() as u64 + u64::from(!part.ends_with(b"\n") && !part.is_empty());
        }
        let (file, skip) = (self.file, self.skip_bad_rows);
        let others: Vec<(Parser<'_>, Result<u64, DataError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts[1..]
                .iter()
                .zip(&first_lines[1..])
                .map(|(part, first)| {
                    scope.spawn(move || {
                        let mut parser = Parser::new(file, skip, Some(layout));
                        let result = parser.lines_here(part, *first);
                        (parser, result)
                    })
                })
                .collect();
            let mine = self.lines_here(parts[0], line);
            let others = handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            let others: Vec<_> = others.collect();
            mine.map(|_| others)
        })?;
        for ((mut other, result), (part, first)) in others.into_iter().zip(parts[1..].iter().zip(&first_lines[1..])) {
            result?;
            let skipped = std::mem::take(&mut other.out.skipped_examples);
            let count = other.out.skipped;
            if self.out.bars.append(std::mem::take(&mut other.out.bars)).is_err() {
                // The parts' scales do not combine: parse this part again here,
                // so the row that overflows is named.
                self.lines_here(part, *first)?;
                continue;
            }
            self.out.skipped += count;
            for example in skipped {
                if self.out.skipped_examples.len() < 5 {
                    self.out.skipped_examples.push(example);
                }
            }
        }
        Ok(next)
    }

    /// [`Parser::lines`] on this thread.
    fn lines_here(&mut self, bytes: &[u8], mut line: u64) -> Result<u64, DataError> {
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &bytes[start..]) {
            line += 1;
            self.line(&bytes[start..start + pos], line)?;
            start += pos + 1;
        }
        if start < bytes.len() {
            line += 1;
            self.line(&bytes[start..], line)?;
        }
        Ok(line)
    }

    #[inline]
    fn line(&mut self, bytes: &[u8], line: u64) -> Result<(), DataError> {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.is_empty() || bytes[0] == b'#' {
            return Ok(());
        }
        let Some(layout) = self.layout else { return self.first_line(bytes, line) };
        let result = match self.fast_row(bytes, &layout) {
            Some(row) => Ok(row),
            None => slow_row(bytes, &layout),
        };
        let result = result.and_then(|row| self.out.bars.push(&row));
        match result {
            Ok(()) => Ok(()),
            Err(_) if is_blank(bytes) => Ok(()),
            Err(reason) if self.skip_bad_rows => {
                self.out.note_skip(line, &reason);
                Ok(())
            }
            Err(reason) => Err(DataError::BadRow { file: self.file.to_string(), line, reason }),
        }
    }

    /// The first record: a header, or the first row of a headerless file.
    fn first_line(&mut self, bytes: &[u8], line: u64) -> Result<(), DataError> {
        let fields = match split_quoted(bytes) {
            Ok(f) => f,
            Err(reason) => return Err(DataError::BadRow { file: self.file.to_string(), line, reason }),
        };
        if fields.iter().all(|f| f.is_empty()) {
            return Ok(());
        }
        let first = fields[0].as_str();
        let layout = if parse_time(first).is_some() && fields.len() >= 5 && first.parse::<i64>().is_ok() {
            Layout::headerless(fields.len())
        } else {
            let names: Vec<String> = fields.iter().map(|n| n.to_ascii_lowercase()).collect();
            Layout::from_header(&names).map_err(|reason| DataError::file(self.file, reason))?
        };
        self.layout = Some(layout);
        if layout.has_header {
            return Ok(());
        }
        self.line(bytes, line)
    }

    /// A row of plain fields: epoch times and plain decimals, no quotes or
    /// spaces. `None` sends the line to [`slow_row`], which also explains errors.
    #[inline]
    fn fast_row(&mut self, bytes: &[u8], layout: &Layout) -> Option<Row> {
        let needed = layout.needed();
        self.fields.clear();
        let mut start = 0usize;
        while self.fields.len() < needed {
            if bytes.get(start) == Some(&b'"') {
                return None;
            }
            let end = match memchr::memchr(b',', &bytes[start..]) {
                Some(p) => start + p,
                None => bytes.len(),
            };
            self.fields.push((start as u32, end as u32));
            if end == bytes.len() {
                break;
            }
            start = end + 1;
        }
        if self.fields.len() < needed {
            return None;
        }
        let field = |i: usize| {
            let (a, b) = self.fields[i];
            &bytes[a as usize..b as usize]
        };
        let volume = match layout.volume {
            Some(i) if !field(i).is_empty() => Fixed::parse(field(i))?,
            _ => Fixed::ZERO,
        };
        let close_time = match layout.close_time {
            Some(i) => Some(epoch(field(i))?),
            None => None,
        };
        Some(Row {
            open_time: epoch(field(layout.time))?,
            close_time,
            open: Fixed::parse(field(layout.open))?,
            high: Fixed::parse(field(layout.high))?,
            low: Fixed::parse(field(layout.low))?,
            close: Fixed::parse(field(layout.close))?,
            volume,
        })
    }
}

/// An integer epoch time (ms, µs or s) in plain digits.
#[inline]
fn epoch(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &b in bytes {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + i64::from(d);
    }
    Some(epoch_to_ms(n))
}

/// True for a line of nothing but separators and spaces.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b',' | b' ' | b'\t'))
}

/// Any row: quoted fields, spaces, exponents, ISO times; the errors name the field.
fn slow_row(bytes: &[u8], layout: &Layout) -> Result<Row, String> {
    let fields = split_quoted(bytes)?;
    let needed = layout.needed();
    if fields.len() < needed {
        return Err(format!("expected at least {needed} fields, found {}", fields.len()));
    }
    let field = |i: usize| fields[i].as_str();
    let number = |i: usize, name: &str| -> Result<Fixed, String> {
        Fixed::parse_text(field(i)).map_err(|e| match e {
            None => format!("{name}: `{}` is not a number", field(i)),
            Some(d) if name != "volume" && d > super::columns::MAX_PRICE.to_decimal() => {
                format!("{name} {d} is above the largest supported price {}", super::columns::MAX_PRICE)
            }
            Some(d) => format!("{name}: `{d}` needs more than 18 digits or decimals to hold exactly"),
        })
    };
    let time_text = field(layout.time);
    let open_time = parse_time(time_text)
        .ok_or_else(|| format!("time: `{time_text}` is not an ISO date, ISO date-time or epoch milliseconds"))?;
    let open = number(layout.open, "open")?;
    let high = number(layout.high, "high")?;
    let low = number(layout.low, "low")?;
    let close = number(layout.close, "close")?;
    let volume = match layout.volume {
        Some(i) if !field(i).is_empty() => number(i, "volume")?,
        _ => Fixed::ZERO,
    };
    let close_time = match layout.close_time {
        Some(i) => {
            let t = field(i);
            Some(parse_time(t).ok_or_else(|| format!("close_time: `{t}` is not a time"))?)
        }
        None => None,
    };
    Ok(Row { open_time, close_time, open, high, low, close, volume })
}

/// Splits a line into fields, unquoting `"..."` (with `""` for a quote) and
/// trimming spaces around each.
fn split_quoted(bytes: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unreadable CSV: a quoted field is not closed on its line".into()),
                }
            }
            while chars.next_if(|c| *c != ',').is_some() {}
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                field.push(c);
            }
        }
        fields.push(field.trim().to_string());
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_like_csv() {
        struct Case {
            line: &'static str,
            want: &'static [&'static str],
        }
        let cases = [
            Case { line: "a,b,c", want: &["a", "b", "c"] },
            Case { line: " a , b ,", want: &["a", "b", ""] },
            Case { line: "\"2024-01-01, Monday\",\"1.5\"", want: &["2024-01-01, Monday", "1.5"] },
            Case { line: "\"say \"\"hi\"\"\",x", want: &["say \"hi\"", "x"] },
            Case { line: "", want: &[""] },
        ];
        for c in cases {
            assert_eq!(split_quoted(c.line.as_bytes()).unwrap(), c.want, "{:?}", c.line);
        }
        assert!(split_quoted(b"\"open").is_err());
    }

    #[test]
    fn fast_and_slow_rows_agree() {
        let layout = Layout::headerless(6);
        struct Case {
            line: &'static str,
            fast: bool,
        }
        let cases = [
            Case { line: "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68108", fast: true },
            Case { line: "1704067200000000,1,2,0.5,1.50,0", fast: true },
            Case { line: "1704067200,1,2,0.5,1.5,", fast: true },
            Case { line: "1704067200000, 1 ,2,0.5,1.5,3", fast: false },
            Case { line: "\"1704067200000\",1,2,0.5,1.5,3", fast: false },
            Case { line: "2024-01-01T00:00:00Z,1,2,5e-1,1.5,3", fast: false },
        ];
        let mut parser = Parser::new("f.csv", false, Some(layout));
        for c in cases {
            let fast = parser.fast_row(c.line.as_bytes(), &layout);
            assert_eq!(fast.is_some(), c.fast, "{}", c.line);
            let slow = slow_row(c.line.as_bytes(), &layout).unwrap();
            assert_eq!(slow.open_time, 1_704_067_200_000, "{}", c.line);
            if let Some(fast) = fast {
                assert_eq!(
                    (fast.open_time, fast.open, fast.high, fast.low, fast.close, fast.volume),
                    (slow.open_time, slow.open, slow.high, slow.low, slow.close, slow.volume),
                    "{}",
                    c.line
                );
            }
        }
    }

    /// `n` rows of minute bars after a header; `special` replaces rows (1-based line numbers).
    fn big_csv(n: usize, special: &[(u64, &str)]) -> String {
        let mut text = String::from("timestamp,open,high,low,close,volume\n");
        for i in 0..n {
            let line = i as u64 + 2;
            match special.iter().find(|(l, _)| *l == line) {
                Some((_, row)) => text.push_str(row),
                None => text.push_str(&format!(
                    "{},100.{:02},101,99,100.5,{}.5",
                    1_600_000_000_000i64 + i as i64 * 60_000,
                    i % 100,
                    i % 7
                )),
            }
            text.push('\n');
        }
        text
    }

    #[test]
    fn blocks_parsed_across_cores_match_one_core() {
        // 60 000 rows is 2.5 MB: blocks of 1 MB, each split across threads.
        let n = 60_000;
        let t = |i: u64| 1_600_000_000_000i64 + (i as i64 - 2) * 60_000;
        struct Case {
            name: &'static str,
            special: Vec<(u64, String)>,
            want_err: Option<String>,
        }
        let cases = [
            Case { name: "plain", special: vec![], want_err: None },
            Case {
                name: "a bad row late in a block",
                special: vec![(45_000, format!("{},100,101,x,100,1", t(45_000)))],
                want_err: Some("f.csv:45000: low: `x` is not a number".into()),
            },
            Case {
                name: "two bad rows: the first is named",
                special: vec![
                    (30_001, format!("{},100,99,101,100,1", t(30_001))),
                    (59_000, format!("{},100,101,x,100,1", t(59_000))),
                ],
                want_err: Some("f.csv:30001: high 99 is below low 101".into()),
            },
            Case {
                name: "more decimals late rescale the column",
                special: vec![(50_000, format!("{},100.12345678,101,99,100.5,0.00000001", t(50_000)))],
                want_err: None,
            },
            Case {
                name: "a scale that overflows with an earlier part's values is named",
                special: vec![
                    (3, format!("{},900000000000000,900000000000000,99,100,1", t(3))),
                    (55_000, format!("{},100.0001,101,99,100.5,1", t(55_000))),
                ],
                want_err: Some(
                    "f.csv:55000: open 100.0001 has 4 decimals: with that many the column's largest value, \
                     900000000000000, needs more than 18 digits"
                        .into(),
                ),
            },
        ];
        for c in &cases {
            let special: Vec<(u64, &str)> = c.special.iter().map(|(l, r)| (*l, r.as_str())).collect();
            let text = big_csv(n, &special);
            let one = parse_csv_on(text.as_bytes(), "f.csv", false, 1);
            let two = parse_csv_on(text.as_bytes(), "f.csv", false, 2);
            let three = parse_csv_on(text.as_bytes(), "f.csv", false, 3);
            match &c.want_err {
                Some(want) => {
                    for got in [&one, &two, &three] {
                        assert_eq!(
                            got.as_ref().map(|p| p.bars.len()).map_err(|e| e.to_string()),
                            Err(want.clone()),
                            "{}",
                            c.name
                        );
                    }
                    let skipped_one = parse_csv_on(text.as_bytes(), "f.csv", true, 1).unwrap();
                    let skipped_two = parse_csv_on(text.as_bytes(), "f.csv", true, 2).unwrap();
                    assert_eq!(skipped_one, skipped_two, "{}", c.name);
                    assert_eq!(skipped_two.skipped_examples[0], want.trim_start_matches("f.csv:"), "{}", c.name);
                }
                None => {
                    let (one, two, three) = (one.unwrap(), two.unwrap(), three.unwrap());
                    assert_eq!(one.bars.len(), n, "{}", c.name);
                    assert_eq!(one, two, "{}", c.name);
                    assert_eq!(one, three, "{}", c.name);
                }
            }
        }
    }
}
