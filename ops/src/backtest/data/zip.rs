//! Binance's kline archives as downloaded: a `.zip` holding the CSV
//! (`BTCUSDT-1m-2024-01.zip` holds `BTCUSDT-1m-2024-01.csv`, headerless
//! kline columns). Every `.csv` entry is read, in name order, straight from
//! the archive.

use std::path::Path;

use super::{parse_csv, DataError, ParsedFile};

/// Reads the `.csv` entries of a zip archive. Errors name the archive and the
/// entry (`archive.zip/entry.csv:line: reason`).
pub fn read_zip(path: &Path, label: &str, skip_bad_rows: bool) -> Result<Vec<ParsedFile>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::file(label, format!("cannot open: {e}")))?;
    let mut archive = ::zip::ZipArchive::new(std::io::BufReader::new(file))
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
    let mut out = Vec::with_capacity(entries.len());
    for (name, i) in entries {
        let entry_label = format!("{label}/{name}");
        let entry = archive
            .by_index(i)
            .map_err(|e| DataError::file(&entry_label, format!("cannot read from the archive ({e})")))?;
        out.push(parse_csv(entry, &entry_label, skip_bad_rows)?);
    }
    Ok(out)
}
