//! A sweep's results in memory and in files (`--sweep-out`, read back by
//! `--merge`).
//!
//! CSV: a first line `# keel-sweep grid=FINGERPRINT shard=I/N combinations=M`
//! (pandas: `read_csv(path, comment="#")`), then a header `combination`, the
//! swept parameters (`ID.PARAM`), the [`METRICS`], `skipped`, and one row per
//! combination. JSON: an object with `keel_sweep` (the format version),
//! `grid`, `shard`, `combinations`, `parameters`, `metrics` and `rows`, each
//! row a flat object with the same keys as the CSV columns. Combinations are
//! numbered from 1; a skipped one has no metrics and says why in `skipped`.
//! Money is an exact decimal string, as in the report.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context};
use serde::ser::SerializeMap;

use super::metrics::{self, METRICS};

/// The format version in every result file.
const VERSION: u64 = 1;

/// One combination's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its number in the grid, from 0 (written from 1).
    pub combination: usize,
    /// The parameter values, as written into the config.
    pub params: Vec<String>,
    /// The [`METRICS`] (as text), or why the strategies refused the values.
    pub result: Result<Vec<String>, String>,
}

/// Which slice of the grid: shard `index` of `count`, numbered from 1.
/// Shard I takes the combinations whose number (from 1) is I, I+N, I+2N, …
/// so that slow and fast corners of the grid spread over all shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// From 1.
    pub index: usize,
    /// At least 1.
    pub count: usize,
}

impl Shard {
    /// The whole grid.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Parses `--shard I/N`; the error is one line.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let fail = |why: &str| format!("--shard `{text}`: {why}");
        let (i, n) = text.split_once('/').ok_or_else(|| fail("expected I/N, e.g. 1/4 (shards count from 1)"))?;
        let (Ok(index), Ok(count)) = (i.trim().parse::<usize>(), n.trim().parse::<usize>()) else {
            return Err(fail("expected I/N with whole numbers, e.g. 1/4 (shards count from 1)"));
        };
        if count == 0 {
            return Err(fail("N must be at least 1"));
        }
        if index == 0 || index > count {
            return Err(fail(&format!("I must be between 1 and {count} (shards count from 1)")));
        }
        Ok(Shard { index, count })
    }

    /// Whether the combination numbered `combination` (from 0) is in this shard.
    pub fn has(&self, combination: usize) -> bool {
        combination % self.count == self.index - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The results of one sweep, or of one shard of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// The grid's fingerprint (data, config, flags and sweeps).
    pub grid: String,
    /// Which shard these are.
    pub shard: Shard,
    /// Combinations in the whole grid.
    pub combinations: usize,
    /// The swept parameters' names (`ID.PARAM`).
    pub parameters: Vec<String>,
    /// Rows, by combination.
    pub rows: Vec<Row>,
}

/// The file formats, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.csv`
    Csv,
    /// `.json`
    Json,
}

impl Format {
    /// The format of `path` from its extension; `flag` names the flag in the error.
    pub fn of(path: &Path, flag: &str) -> anyhow::Result<Format> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("json") => Ok(Format::Json),
            _ => bail!("{flag} {}: the file name must end in .csv or .json", path.display()),
        }
    }
}

impl Results {
    /// Writes the file (format by extension).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let format = Format::of(path, "--sweep-out")?;
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        match format {
            Format::Csv => self.write_csv(&mut out),
            Format::Json => self.write_json(&mut out),
        }
        .and_then(|()| out.flush().map_err(Into::into))
        .with_context(|| format!("cannot write {}", path.display()))
    }

    fn write_csv(&self, out: &mut impl Write) -> anyhow::Result<()> {
        writeln!(out, "# keel-sweep grid={} shard={} combinations={}", self.grid, self.shard, self.combinations)?;
        let mut w = csv::Writer::from_writer(out);
        let header = std::iter::once("combination")
            .chain(self.parameters.iter().map(String::as_str))
            .chain(METRICS.iter().map(|m| m.name))
            .chain(std::iter::once("skipped"));
        w.write_record(header)?;
        let empty = vec![String::new(); METRICS.len()];
        for row in &self.rows {
            let (metrics, skipped) = match &row.result {
                Ok(m) => (m, ""),
                Err(reason) => (&empty, reason.as_str()),
            };
            let number = (row.combination + 1).to_string();
            let cells = std::iter::once(number.as_str())
                .chain(row.params.iter().map(String::as_str))
                .chain(metrics.iter().map(String::as_str))
                .chain(std::iter::once(skipped));
            w.write_record(cells)?;
        }
        w.flush()?;
        Ok(())
    }

    fn write_json(&self, out: &mut impl Write) -> anyhow::Result<()> {
        let file = serde_json::json!({
            "keel_sweep": VERSION,
            "grid": self.grid,
            "shard": self.shard.to_string(),
            "combinations": self.combinations,
            "parameters": self.parameters,
            "metrics": METRICS.iter().map(|m| m.name).collect::<Vec<_>>(),
            "rows": self.rows.iter().map(|row| JsonRow { row, parameters: &self.parameters }).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut *out, &file)?;
        writeln!(out)?;
        Ok(())
    }

    /// Reads a file written by [`Results::write`]; errors name the file.
    pub fn read(path: &Path) -> anyhow::Result<Results> {
        let label = path.display().to_string();
        let format = Format::of(path, "--merge")?;
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {label}"))?;
        let reader = std::io::BufReader::new(file);
        match format {
            Format::Csv => read_csv(reader),
            Format::Json => read_json(reader),
        }
        .with_context(|| format!("{label} is not a keel sweep result file"))
    }
}

/// A row as a flat JSON object, keys in column order.
struct JsonRow<'a> {
    row: &'a Row,
    parameters: &'a [String],
}

impl serde::Serialize for JsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("combination", &(self.row.combination + 1))?;
        for (name, value) in self.parameters.iter().zip(&self.row.params) {
            // Integers as numbers, anything else as its exact text.
            match value.parse::<i64>() {
                Ok(n) => map.serialize_entry(name, &n)?,
                Err(_) => map.serialize_entry(name, value)?,
            }
        }
        for (i, m) in METRICS.iter().enumerate() {
            let cell = self.row.result.as_ref().ok().map(|v| v[i].as_str()).unwrap_or_default();
            map.serialize_entry(m.name, &metrics::json(m, cell))?;
        }
        map.serialize_entry("skipped", &self.row.result.as_ref().err())?;
        map.end()
    }
}

/// `key=value` fields of the CSV's first line.
fn header_field<'a>(line: &'a str, key: &str) -> anyhow::Result<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .with_context(|| format!("its first line has no {key}="))
}

fn number(text: &str, what: &str) -> anyhow::Result<usize> {
    text.parse::<usize>().with_context(|| format!("{what} `{text}` is not a whole number"))
}

fn shard(text: &str) -> anyhow::Result<Shard> {
    Shard::parse(text).map_err(|e| anyhow::anyhow!("shard {}", e.trim_start_matches("--shard ")))
}

fn read_csv(mut reader: impl BufRead) -> anyhow::Result<Results> {
    let mut first = String::new();
    reader.read_line(&mut first)?;
    if !first.starts_with("# keel-sweep ") {
        bail!("its first line is not `# keel-sweep grid=… shard=… combinations=…`");
    }
    let grid = header_field(&first, "grid")?.to_string();
    let shard = shard(header_field(&first, "shard")?)?;
    let combinations = number(header_field(&first, "combinations")?, "combinations")?;
    let mut r = csv::Reader::from_reader(reader);
    let header: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
    let n_params = header.len().checked_sub(2 + METRICS.len()).context("its header has too few columns")?;
    let expected = METRICS.iter().map(|m| m.name).chain(std::iter::once("skipped"));
    if header.first().map(String::as_str) != Some("combination")
        || !header[1 + n_params..].iter().map(String::as_str).eq(expected)
    {
        bail!("its header is not combination, the parameters, the metrics, skipped");
    }
    let mut rows = Vec::new();
    for record in r.records() {
        let record = record?;
        let line = record.position().map(|p| p.line() + 1).unwrap_or(0);
        let cell = |i: usize| record.get(i).unwrap_or_default().to_string();
        let combination = number(&cell(0), &format!("line {line}: combination"))?;
        let params = (1..=n_params).map(cell).collect();
        let skipped = cell(header.len() - 1);
        let result = if skipped.is_empty() {
            Ok((1 + n_params..1 + n_params + METRICS.len()).map(cell).collect())
        } else {
            Err(skipped)
        };
        rows.push(Row { combination: row_index(combination, combinations, &format!("line {line}"))?, params, result });
    }
    Ok(Results { grid, shard, combinations, parameters: header[1..=n_params].to_vec(), rows })
}

/// A combination number from a file (from 1) as an index, checked against the grid.
fn row_index(number: usize, combinations: usize, at: &str) -> anyhow::Result<usize> {
    if number == 0 || number > combinations {
        bail!("{at}: combination {number} is not between 1 and {combinations}");
    }
    Ok(number - 1)
}

fn read_json(reader: impl std::io::Read) -> anyhow::Result<Results> {
    let json: serde_json::Value = serde_json::from_reader(reader)?;
    let field = |key: &str| json.get(key).with_context(|| format!("it has no `{key}`"));
    if field("keel_sweep")?.as_u64() != Some(VERSION) {
        bail!("`keel_sweep` is not {VERSION}");
    }
    let grid = field("grid")?.as_str().context("`grid` is not a string")?.to_string();
    let shard = shard(field("shard")?.as_str().context("`shard` is not a string")?)?;
    let combinations = field("combinations")?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .context("`combinations` is not a count")?;
    let parameters: Vec<String> = serde_json::from_value(field("parameters")?.clone())?;
    let rows_json = field("rows")?.as_array().context("`rows` is not a list")?;
    let mut rows = Vec::with_capacity(rows_json.len());
    for (i, row) in rows_json.iter().enumerate() {
        let number = row.get("combination").and_then(|c| c.as_u64()).and_then(|n| usize::try_from(n).ok());
        let number = number.with_context(|| format!("row {}: no combination", i + 1))?;
        let params = parameters.iter().map(|p| metrics::text(row.get(p))).collect();
        let result = match row.get("skipped").and_then(|s| s.as_str()) {
            Some(reason) => Err(reason.to_string()),
            None => Ok(METRICS.iter().map(|m| metrics::text(row.get(m.name))).collect()),
        };
        rows.push(Row { combination: row_index(number, combinations, &format!("row {}", i + 1))?, params, result });
    }
    Ok(Results { grid, shard, combinations, parameters, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let metrics: Vec<String> = METRICS
            .iter()
            .enumerate()
            .map(|(i, m)| match m.name {
                "sharpe" => String::new(),
                "final_equity" => "10012.50".into(),
                // Read back bit for bit only with serde_json's float_roundtrip.
                "max_drawdown" => "0.0010883600159170559".into(),
                _ => format!("{}.25", i),
            })
            .collect();
        Results {
            grid: "0123456789abcdef".into(),
            shard: Shard { index: 2, count: 3 },
            combinations: 9,
            parameters: vec!["sma.fast".into(), "sma.qty".into()],
            rows: vec![
                Row { combination: 1, params: vec!["5".into(), "0.50".into()], result: Ok(metrics) },
                Row {
                    combination: 4,
                    params: vec!["20".into(), "1.5".into()],
                    result: Err("config error at `x`: must be \"greater\", than fast".into()),
                },
            ],
        }
    }

    #[test]
    fn result_files_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["r.csv", "r.json"] {
            let path = dir.path().join(name);
            sample().write(&path).unwrap();
            assert_eq!(Results::read(&path).unwrap(), sample(), "{name}");
        }
        let csv = std::fs::read_to_string(dir.path().join("r.csv")).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("# keel-sweep grid=0123456789abcdef shard=2/3 combinations=9"));
        assert!(lines.next().unwrap().starts_with("combination,sma.fast,sma.qty,final_equity,total_return,"));
        assert!(lines.next().unwrap().starts_with("2,5,0.50,10012.50,1.25,"), "combinations count from 1");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
        let row = &json["rows"][0];
        assert_eq!(row["sma.fast"], serde_json::json!(5), "integers are numbers");
        assert_eq!(row["sma.qty"], serde_json::json!("0.50"), "decimals stay exact");
        assert_eq!(row["final_equity"], serde_json::json!("10012.50"));
        assert_eq!(row["total_return"], serde_json::json!(1.25));
        assert_eq!(row["sharpe"], serde_json::Value::Null);
        assert_eq!(row["skipped"], serde_json::Value::Null);
        assert_eq!(json["rows"][1]["total_return"], serde_json::Value::Null);
    }

    #[test]
    fn unreadable_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("a.csv", "combination,x\n1,2\n", "first line is not `# keel-sweep"),
            ("b.csv", "# keel-sweep shard=1/1 combinations=2\n", "no grid="),
            ("c.csv", "# keel-sweep grid=x shard=3/2 combinations=2\n", "shard `3/2`: I must be between 1 and 2"),
            ("d.json", "{\"keel_sweep\": 2}", "`keel_sweep` is not 1"),
            ("e.txt", "", "must end in .csv or .json"),
        ];
        for (name, text, want) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", Results::read(&path).unwrap_err());
            assert!(err.contains(want), "{name}: {err}");
        }
        let path = dir.path().join("f.csv");
        sample().write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap().replace("\n2,5,", "\n10,5,");
        std::fs::write(&path, text).unwrap();
        let err = format!("{:#}", Results::read(&path).unwrap_err());
        assert!(err.contains("combination 10 is not between 1 and 9"), "{err}");
    }

    #[test]
    fn shards_split_the_grid_and_parse_strictly() {
        let shards: Vec<Shard> = (1..=3).map(|i| Shard::parse(&format!("{i}/3")).unwrap()).collect();
        for c in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.has(c)).count(), 1, "combination {c} is in exactly one shard");
        }
        assert!(shards[0].has(0) && shards[0].has(3) && shards[1].has(1));
        assert!(Shard::WHOLE.has(7));
        for (text, want) in [
            ("0/2", "I must be between 1 and 2"),
            ("3/2", "I must be between 1 and 2"),
            ("1/0", "N must be at least 1"),
            ("1", "expected I/N"),
            ("a/b", "whole numbers"),
        ] {
            let err = Shard::parse(text).unwrap_err();
            assert!(err.starts_with(&format!("--shard `{text}`: ")) && err.contains(want), "{text}: {err}");
        }
    }
}
