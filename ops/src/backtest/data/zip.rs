//! Binance's kline archives as downloaded: a `.zip` holding the CSV
//! (`BTCUSDT-1m-2024-01.zip` holds `BTCUSDT-1m-2024-01.csv`, headerless
//! kline columns). Every `.csv` entry is read, in name order, straight from
//! the archive, inflating on one core while parsing on another.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;

use super::csv::parse_csv_on;
use super::{DataError, ParsedFile};

/// Reads the `.csv` entries of a zip archive. Errors name the archive and the
/// entry (`archive.zip/entry.csv:line: reason`).
pub fn read_zip(path: &Path, label: &str, skip_bad_rows: bool) -> Result<Vec<ParsedFile>, DataError> {
    let (mut archive, entries) = csv_entries(path, label)?;
    let mut out = Vec::with_capacity(entries.len());
    for (name, i) in entries {
        let entry_label = format!("{label}/{name}");
        let entry = archive
            .by_index(i)
            .map_err(|e| DataError::file(&entry_label, format!("cannot read from the archive ({e})")))?;
        out.push(parse_pipelined(entry, &entry_label, skip_bad_rows)?);
    }
    Ok(out)
}

/// An open archive of CSV files: the archive and its `.csv` entries (name,
/// index), in name order; an archive without one is an error naming what it
/// holds.
pub(super) type CsvEntries = (::zip::ZipArchive<std::io::BufReader<std::fs::File>>, Vec<(String, usize)>);

/// Opens a zip archive and lists its `.csv` entries (see [`CsvEntries`]).
pub(super) fn csv_entries(path: &Path, label: &str) -> Result<CsvEntries, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::file(label, format!("cannot open: {e}")))?;
    let archive = ::zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| DataError::file(label, format!("not a readable zip archive ({e})")))?;
    let mut entries: Vec<(String, usize)> = Vec::new();
    let mut others = Vec::new();
    for i in 0..archive.len() {
        let Some(Ok(name)) = archive.name_for_index(i) else { continue };
        if name.to_ascii_lowercase().ends_with(".csv") {
            entries.push((name.into_owned(), i));
        } else if !name.ends_with('/') {
            others.push(name.into_owned());
        }
    }
    if entries.is_empty() {
        let held = if others.is_empty() { "nothing".to_string() } else { others.join(", ") };
        return Err(DataError::file(label, format!("the archive holds no .csv file (it holds {held})")));
    }
    entries.sort();
    Ok((archive, entries))
}

/// Bytes inflated at a time.
const CHUNK: usize = 1 << 20;

/// Parses CSV text while it is being inflated: this thread inflates, the
/// others parse (inflating takes about as long as parsing on one core).
fn parse_pipelined(mut input: impl Read, label: &str, skip_bad_rows: bool) -> Result<ParsedFile, DataError> {
    let parsers = std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).max(1);
    let (chunks, received) = mpsc::sync_channel::<Vec<u8>>(2);
    let corrupt = |e: std::io::Error| DataError::file(label, format!("the archive is corrupt ({e})"));
    let (parsed, inflate_error) = std::thread::scope(|scope| {
        let parser = scope.spawn(move || {
            let reader = ChannelReader { chunks: received, current: Vec::new(), at: 0 };
            parse_csv_on(reader, label, skip_bad_rows, parsers)
        });
        let mut inflate_error = None;
        loop {
            let mut chunk = vec![0u8; CHUNK];
            match read_full(&mut input, &mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    // Not sent: the parser stopped early (a bad row) and says why.
                    if chunks.send(chunk).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    inflate_error = Some(e);
                    break;
                }
            }
        }
        drop(chunks);
        (parser.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), inflate_error)
    });
    if let Some(e) = inflate_error {
        return Err(corrupt(e));
    }
    // Deflate notices damage only at the entry's checksum: a bad row may be
    // garbage from a corrupt archive. Inflate the rest to tell which.
    if let Err(DataError::BadRow { .. }) = parsed {
        std::io::copy(&mut input, &mut std::io::sink()).map_err(corrupt)?;
    }
    parsed
}

/// Reads until `buf` is full or the input ends.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The inflated chunks as one stream (it ends early if inflating fails,
/// which the inflating side then reports).
struct ChannelReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
