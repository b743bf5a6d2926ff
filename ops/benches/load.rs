//! Loading bars: 1 000 000 one-minute bars (a seeded random walk, prices
//! with 2 decimals, as `/tmp/bt/gen.py` makes them) parsed from CSV text,
//! from the same CSV zipped as Binance ships it, and from Parquet written by
//! `keel data convert`'s writer. Files are written once outside the
//! measurement and read from the page cache.
//!
//! Run: `cargo bench -p keel-ops --bench load`. Figures go to BENCHMARKS.md ("Loading bars").

// criterion's macros generate public functions without doc comments.
#![allow(missing_docs)]

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ops::backtest::data::{self, parquet::write_parquet};

const ROWS: usize = 1_000_000;

/// The CSV text of `/tmp/bt/gen.py`'s walk (xorshift instead of Python's RNG).
fn csv_text(n: usize) -> String {
    let mut out = String::with_capacity(n * 56);
    out.push_str("timestamp,open,high,low,close,volume\n");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    let mut p: i64 = 5_000_000;
    for i in 0..n {
        let o = p;
        p = (p + next(2001) as i64 - 1000).max(100);
        let w = next(301) as i64;
        let (h, l) = (o.max(p) + w, (o.min(p) - w).max(1));
        let v = next(10_000) + 1;
        let t = 1_600_000_000_000i64 + i as i64 * 60_000;
        let c = |x: i64| format!("{}.{:02}", x / 100, x % 100);
        out.push_str(&format!("{t},{},{},{},{},{}.{:02}\n", c(o), c(h), c(l), c(p), v / 100, v % 100));
    }
    out
}

fn write_zip(path: &Path, entry: &str, text: &str) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    zip.start_file(entry, zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(text.as_bytes()).unwrap();
    zip.finish().unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let text = csv_text(ROWS);
    let csv = dir.path().join("BTCUSDT-1m.csv");
    std::fs::write(&csv, &text).unwrap();
    let zip = dir.path().join("BTCUSDT-1m-2020-09.zip");
    write_zip(&zip, "BTCUSDT-1m-2020-09.csv", text.trim_start_matches("timestamp,open,high,low,close,volume\n"));
    let market = data::load(std::slice::from_ref(&csv), None, false).unwrap();
    let parquet = dir.path().join("BTCUSDT-1m.parquet");
    write_parquet(&market.series[0], std::fs::File::create(&parquet).unwrap()).unwrap();
    let size = |p: &PathBuf| std::fs::metadata(p).unwrap().len();
    eprintln!("{ROWS} rows: CSV {} bytes, zip {} bytes, Parquet {} bytes", size(&csv), size(&zip), size(&parquet));

    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("csv_1m_rows", |b| {
        b.iter(|| black_box(data::parse_csv(std::fs::File::open(&csv).unwrap(), "bench.csv", false).unwrap()))
    });
    group.bench_function("zip_1m_rows", |b| b.iter(|| black_box(data::read_file(&zip, false).unwrap())));
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("parquet_1m_rows", |b| b.iter(|| black_box(data::read_file(&parquet, false).unwrap())));
    group.bench_function("load_csv_1m_rows", |b| {
        b.iter(|| black_box(data::load(std::slice::from_ref(&csv), None, false).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
