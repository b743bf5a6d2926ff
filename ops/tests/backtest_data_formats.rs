//! The data formats `keel backtest --data` reads, through the real binary:
//! the same bars as CSV, as Binance's zipped kline CSV (monthly archives,
//! millisecond and microsecond times), as Parquet written by `keel data
//! convert` and as a Freqtrade-shaped Parquet file (float prices) give
//! byte-identical reports; Parquet keeps decimals of any scale exactly; bad
//! inputs fail with one line naming the problem.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use ops::backtest::data;
use rust_decimal::Decimal;

const T0: i64 = 1_706_659_200_000; // 2024-01-31T00:00:00Z
const MINUTE: i64 = 60_000;

/// One bar as the files write it: prices and volume as decimal text.
#[derive(Clone)]
struct Row {
    t: i64,
    o: String,
    h: String,
    l: String,
    c: String,
    v: String,
}

/// Minute bars of a seeded walk around 42 000 with 2-decimal prices,
/// straddling the end of January.
fn rows(n: usize) -> Vec<Row> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    let cents = |x: i64| format!("{}.{:02}", x / 100, x % 100);
    let mut p: i64 = 4_200_000;
    (0..n)
        .map(|i| {
            let o = p;
            p = (p + next(4001) as i64 - 2000).max(100);
            let w = next(1500) as i64;
            let (h, l) = (o.max(p) + w, (o.min(p) - w).max(1));
            let v = next(1_000_000) + 1;
            Row {
                t: T0 + i as i64 * MINUTE,
                o: cents(o),
                h: cents(h),
                l: cents(l),
                c: cents(p),
                v: format!("{}.{:03}", v / 1000, v % 1000),
            }
        })
        .collect()
}

/// CSV with a header, as pandas writes it.
fn write_csv(path: &Path, rows: &[Row]) {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for r in rows {
        text.push_str(&format!("{},{},{},{},{},{}\n", r.t, r.o, r.h, r.l, r.c, r.v));
    }
    std::fs::write(path, text).unwrap();
}

/// Binance's kline CSV (no header, 12 columns, prices padded to 8 decimals)
/// in a zip, times in µs when `micros` (spot files from 2025 on).
fn write_kline_zip(path: &Path, entry: &str, rows: &[Row], micros: bool) {
    let pad = |s: &str| format!("{s}000000");
    let unit = if micros { 1000 } else { 1 };
    let mut text = String::new();
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},0,10,0,0,0\n",
            r.t * unit,
            pad(&r.o),
            pad(&r.h),
            pad(&r.l),
            pad(&r.c),
            r.v,
            (r.t + MINUTE - 1) * unit
        ));
    }
    write_zip(path, &[(entry, text.as_bytes())]);
}

fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// Writes a Parquet file of the given columns with the parquet crate.
fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// What Freqtrade stores: `date` as a UTC timestamp, prices and volume as float64.
fn write_freqtrade_parquet(path: &Path, rows: &[Row]) {
    let float = |f: fn(&Row) -> &String| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(|r| f(r).parse::<f64>().unwrap()).collect::<Vec<_>>()))
    };
    let date: ArrayRef =
        Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.t).collect::<Vec<_>>()).with_timezone("UTC"));
    write_parquet(
        path,
        vec![
            ("date", date),
            ("open", float(|r| &r.o)),
            ("high", float(|r| &r.h)),
            ("low", float(|r| &r.l)),
            ("close", float(|r| &r.c)),
            ("volume", float(|r| &r.v)),
        ],
    );
}

const CONFIG: &str = r#"
[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_notional = "5"
start_price = "42000"
volatility = 0.5
touch_qty = "5"

[balances]
USDT = "100000"

[risk]
max_order_notional = "20000"
max_position_notional = "60000"

[[strategy]]
id = "sma"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20, qty = "0.1" }

[[strategy]]
id = "grid"
kind = "grid"
symbol = "BTCUSDT"
params = { lower = "40000", upper = "44000", levels = 9, qty = "0.05" }
"#;

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel")).args(args).env_remove("RUST_LOG").output().expect("keel runs")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "keel failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The report JSON of `keel backtest --data DATA...`.
fn report(dir: &Path, name: &str, data: &[&Path]) -> Vec<u8> {
    let out = dir.join(format!("{name}.json"));
    let config = dir.join("config.toml");
    let mut args = vec!["backtest", "--config", s(&config), "--fee-bps", "10", "--slippage-bps", "2"];
    args.extend(["--report", s(&out), "--data"]);
    args.extend(data.iter().map(|p| s(p)));
    ok(&keel(&args));
    std::fs::read(out).unwrap()
}

#[test]
fn csv_zipped_klines_and_parquet_of_the_same_bars_give_identical_reports() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("config.toml"), CONFIG).unwrap();
    let bars = rows(3000);
    let csv = root.join("BTCUSDT-1m.csv");
    write_csv(&csv, &bars);

    // Binance's monthly archives, January with ms times, February with µs.
    let feb = bars.iter().position(|r| r.t >= T0 + 1440 * MINUTE).unwrap();
    let zips = root.join("zips");
    std::fs::create_dir(&zips).unwrap();
    write_kline_zip(&zips.join("BTCUSDT-1m-2024-01.zip"), "BTCUSDT-1m-2024-01.csv", &bars[..feb], false);
    write_kline_zip(&zips.join("BTCUSDT-1m-2024-02.zip"), "BTCUSDT-1m-2024-02.csv", &bars[feb..], true);
    std::fs::write(zips.join("BTCUSDT-1m-2024-01.zip.CHECKSUM"), "ignored").unwrap();

    let converted = root.join("parquet");
    let printed = ok(&keel(&["data", "convert", s(&csv), "--out", s(&converted)]));
    let parquet = converted.join("BTCUSDT-1m.parquet");
    let size = std::fs::metadata(&parquet).unwrap().len();
    assert_eq!(
        printed.trim(),
        format!("{}: 3000 rows, {size} bytes, 2024-01-31T00:00:00Z .. 2024-02-02T01:59:00Z", parquet.display())
    );
    // A directory of monthly zips converts to the same file.
    let from_zips = root.join("from-zips");
    ok(&keel(&["data", "convert", s(&zips), "--out", s(&from_zips)]));
    assert_eq!(std::fs::read(from_zips.join("BTCUSDT-1m.parquet")).unwrap(), std::fs::read(&parquet).unwrap());

    let freqtrade = root.join("BTC_USDT-1m.parquet");
    write_freqtrade_parquet(&freqtrade, &bars);

    let want = report(root, "csv", &[&csv]);
    let parsed: serde_json::Value = serde_json::from_slice(&want).unwrap();
    assert_eq!(parsed["bars"], 3000);
    assert!(parsed["fills"].as_u64().unwrap() > 10, "the strategies trade: {parsed}");
    for (name, data) in [
        ("one zip", vec![zips.join("BTCUSDT-1m-2024-01.zip"), zips.join("BTCUSDT-1m-2024-02.zip")]),
        ("zip directory", vec![zips.clone()]),
        ("parquet", vec![parquet.clone()]),
        ("parquet directory", vec![converted.clone()]),
        ("freqtrade parquet", vec![freqtrade.clone()]),
    ] {
        let data: Vec<&Path> = data.iter().map(PathBuf::as_path).collect();
        let got = report(root, name, &data);
        assert!(
            got == want,
            "{name}: the report differs:\n{}\n---\n{}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }
}

#[test]
fn parquet_keeps_decimals_of_every_scale_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Eight-decimal prices; two-decimal prices whose volume gains decimals
    // mid-file (10, then 10.5, then 0.00000001); a close time that differs.
    let shib = "open_time,open,high,low,close,volume\n\
        1704067200000,0.00001234,0.00001240,0.00001230,0.00001235,123456789012\n\
        1704067260000,0.00001235,0.00001235,0.00001201,0.00001201,5\n";
    let btc = "date,open,high,low,close,volume,close_time\n\
        2024-01-01T00:00:00Z,65000.12,65010,64990.5,65000,10,1704067259999\n\
        2024-01-01T00:01:00Z,65000,65000.99,64000,64000.01,10.5,1704067319999\n\
        2024-01-01T00:02:00Z,64000.01,64000.01,64000.01,64000.01,0.00000001,1704067380000\n";
    let csv_dir = root.join("csv");
    std::fs::create_dir(&csv_dir).unwrap();
    std::fs::write(csv_dir.join("SHIBUSDT-1m.csv"), shib).unwrap();
    std::fs::write(csv_dir.join("BTCUSDT-1m.csv"), btc).unwrap();
    let out = root.join("out");
    let printed = ok(&keel(&["data", "convert", s(&csv_dir), "--out", s(&out)]));
    assert_eq!(printed.lines().count(), 2, "{printed}");

    let from_csv = data::load(std::slice::from_ref(&csv_dir), None, false).unwrap();
    let from_parquet = data::load(std::slice::from_ref(&out), None, false).unwrap();
    assert_eq!(from_csv.series.len(), 2);
    for (a, b) in from_csv.series.iter().zip(&from_parquet.series) {
        assert_eq!(
            (&a.symbol, a.interval_ms, a.price_scale, a.qty_scale),
            (&b.symbol, b.interval_ms, b.price_scale, b.qty_scale)
        );
        assert_eq!(a.bars, b.bars, "{}", a.symbol);
    }
    // The values, against the text.
    let btc_series = &from_parquet.series[0];
    let column = |c: &data::columns::DecimalColumn| (0..3).map(|i| c.get(i).to_string()).collect::<Vec<_>>();
    let want = |v: [&str; 3]| v.iter().map(|s| s.parse::<Decimal>().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(column(&btc_series.bars.open), want(["65000.12", "65000.00", "64000.01"]));
    assert_eq!(column(&btc_series.bars.volume), want(["10.00000000", "10.50000000", "0.00000001"]));
    assert_eq!(btc_series.bars.close_time(2), Some(1_704_067_380_000));
    let shib_series = &from_parquet.series[1];
    assert_eq!(shib_series.bars.low.get(1), "0.00001201".parse::<Decimal>().unwrap());
    assert_eq!(shib_series.bars.volume.get(0), Decimal::from(123_456_789_012u64));

    // What pandas, pyarrow and polars see: 64-bit integers read as decimals
    // with the column's scale; the symbol and interval in the metadata.
    let file = std::fs::File::open(out.join("SHIBUSDT-1m.parquet")).unwrap();
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = builder.schema();
    assert_eq!(
        schema.field_with_name("open_time").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert_eq!(schema.field_with_name("low").unwrap().data_type(), &DataType::Decimal64(18, 8));
    assert_eq!(schema.field_with_name("volume").unwrap().data_type(), &DataType::Decimal64(18, 0));
    assert!(schema.field_with_name("close_time").is_err(), "derived close times are not stored");
    let descr = builder.metadata().file_metadata().schema_descr();
    let low = descr.columns().iter().find(|c| c.name() == "low").unwrap();
    assert_eq!(low.physical_type(), parquet::basic::Type::INT64);
    assert_eq!(low.logical_type_ref(), Some(&parquet::basic::LogicalType::decimal(8, 18)));
    let kv: Vec<(String, String)> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .filter(|k| k.key != "ARROW:schema")
        .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        kv,
        [
            ("symbol".to_string(), "SHIBUSDT".to_string()),
            ("interval".to_string(), "1m".to_string()),
            ("keel_version".to_string(), env!("CARGO_PKG_VERSION").to_string())
        ]
    );
    let btc_file = std::fs::File::open(out.join("BTCUSDT-1m.parquet")).unwrap();
    let btc_schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(btc_file).unwrap();
    assert!(btc_schema.schema().field_with_name("close_time").is_ok(), "close times that differ are kept");

    // Converting the Parquet files again writes the same bytes.
    let again = root.join("again");
    ok(&keel(&["data", "convert", s(&out), "--out", s(&again)]));
    for name in ["SHIBUSDT-1m.parquet", "BTCUSDT-1m.parquet"] {
        assert_eq!(std::fs::read(out.join(name)).unwrap(), std::fs::read(again.join(name)).unwrap(), "{name}");
    }
}

#[test]
fn other_parquet_shapes_read_by_column_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Capitalised names, epoch-ms integers, the time column last.
    let path = root.join("ethusdt.parquet");
    let ints = |v: Vec<i64>| -> ArrayRef { Arc::new(Int64Array::from(v)) };
    let floats = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
    write_parquet(
        &path,
        vec![
            ("Open", floats(vec![2300.5, 2301.25])),
            ("High", floats(vec![2310.0, 2302.0])),
            ("Low", floats(vec![2290.1, 2300.0])),
            ("Close", floats(vec![2301.25, 2300.0])),
            ("Volume", floats(vec![0.1 + 0.2, 7.0])),
            ("Timestamp", ints(vec![1_704_067_200_000, 1_704_070_800_000])),
        ],
    );
    let market = data::load(&[path], None, false).unwrap();
    let eth = &market.series[0];
    assert_eq!(eth.symbol.as_str(), "ETHUSDT");
    assert_eq!(eth.interval_ms, 3_600_000);
    assert_eq!(eth.bars.low.get(0).to_string(), "2290.1");
    // A float restored through its shortest decimal form, exactly.
    assert_eq!(eth.bars.volume.get(0).normalize().to_string(), "0.30000000000000004");
    assert_eq!(eth.bars.open_times(), [1_704_067_200_000, 1_704_070_800_000]);
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("config.toml"), CONFIG).unwrap();
    std::fs::write(root.join("BTCUSDT-corrupt.zip"), b"PK\x03\x04 this is not a zip archive").unwrap();
    write_zip(&root.join("BTCUSDT-nocsv.zip"), &[("README.txt", b"no bars here")]);
    write_zip(
        &root.join("BTCUSDT-1m-2024-01.zip"),
        &[(
            "BTCUSDT-1m-2024-01.csv",
            b"1704067200000,1,2,0.5,1.5,1,1704067259999,0,0,0,0,0\n1704067260000,1,2,5,1.5,1,1704067319999,0,0,0,0,0\n",
        )],
    );
    // Deflate data damaged in the middle of an archive whose directory is intact.
    let kline_rows: String = (0..20_000i64)
        .map(|i| format!("{},1.5,2,1,1.5,10,{},0,0,0,0,0\n", T0 + i * MINUTE, T0 + i * MINUTE + MINUTE - 1))
        .collect();
    let damaged = root.join("BTCUSDT-damaged.zip");
    write_zip(&damaged, &[("BTCUSDT-damaged.csv", kline_rows.as_bytes())]);
    let mut bytes = std::fs::read(&damaged).unwrap();
    for b in &mut bytes[200..260] {
        *b ^= 0x5a;
    }
    std::fs::write(&damaged, bytes).unwrap();
    let ts: ArrayRef = Arc::new(Int64Array::from(vec![1_704_067_200_000]));
    let one: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
    write_parquet(
        &root.join("BTCUSDT-nolow.parquet"),
        vec![("timestamp", ts.clone()), ("open", one.clone()), ("high", one.clone()), ("close", one.clone())],
    );
    std::fs::write(root.join("BTCUSDT-bad.parquet"), b"PAR1 but nothing else").unwrap();
    std::fs::write(
        root.join("BTCUSDT-bad.csv"),
        "date,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,1\n2024-01-02,1,2,zero,1.5,1\n",
    )
    .unwrap();
    struct Case {
        file: &'static str,
        want: &'static str,
    }
    let cases = [
        Case { file: "BTCUSDT-corrupt.zip", want: "BTCUSDT-corrupt.zip: not a readable zip archive (" },
        Case {
            file: "BTCUSDT-nocsv.zip",
            want: "BTCUSDT-nocsv.zip: the archive holds no .csv file (it holds README.txt)",
        },
        Case {
            file: "BTCUSDT-1m-2024-01.zip",
            want: "BTCUSDT-1m-2024-01.zip/BTCUSDT-1m-2024-01.csv:2: high 2 is below low 5",
        },
        Case {
            file: "BTCUSDT-nolow.parquet",
            want: "BTCUSDT-nolow.parquet: no `low` column (header: timestamp,open,high,close)",
        },
        Case { file: "BTCUSDT-bad.parquet", want: "BTCUSDT-bad.parquet: not a readable Parquet file (" },
        Case { file: "BTCUSDT-bad.csv", want: "BTCUSDT-bad.csv:3: low: `zero` is not a number" },
    ];
    let config = root.join("config.toml");
    for c in &cases {
        let path = root.join(c.file);
        let out_dir = root.join("out");
        for args in [
            vec!["backtest", "--config", s(&config), "--data", s(&path)],
            vec!["data", "convert", s(&path), "--out", s(&out_dir)],
        ] {
            let out = keel(&args);
            assert!(!out.status.success(), "{}: {args:?} succeeded", c.file);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("note:")).collect();
            assert_eq!(lines.len(), 1, "{}: one line, got {stderr}", c.file);
            let want = format!("keel: {}{}", root.display(), format_args!("/{}", c.want));
            assert!(lines[0].starts_with(&want), "{}: {args:?}\n got: {}\nwant: {want}", c.file, lines[0]);
        }
        assert!(!root.join("out").join("BTCUSDT-1m.parquet").exists());
    }
    // With --skip-bad-rows the bad row is counted, the rest converts.
    let out =
        keel(&["data", "convert", s(&root.join("BTCUSDT-bad.csv")), "--out", s(&root.join("out")), "--skip-bad-rows"]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: skipped 1 bad rows, e.g. ")
            && stderr.contains("BTCUSDT-bad.csv:3: low: `zero` is not a number"),
        "{stderr}"
    );
    assert!(root.join("out").join("BTCUSDT-1d.parquet").exists());
}

/// `--futures`: funding (Binance's zipped archive, symbol from the file name) and
/// open interest (Keel's CSV, a symbol without bars) through the real binary:
/// a `max_funding` filter changes the trades only when the funding is loaded,
/// a sweep sees the same events, and bad files fail with one line.
#[test]
fn funding_history_changes_the_trades_of_a_funding_filtered_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = CONFIG
        .replace("qty = \"0.1\" }", "qty = \"0.1\", max_funding = \"0.0001\" }")
        .replace("[[strategy]]\nid = \"grid\"", "[[strategy]]\npaused = true\nid = \"grid\"");
    assert!(config.contains("max_funding"), "{config}");
    std::fs::write(root.join("config.toml"), &config).unwrap();
    let bars = rows(3000);
    let csv = root.join("BTCUSDT-1m.csv");
    write_csv(&csv, &bars);
    // Settlements every hour, crowded (above 0.0001) two hours in three.
    let futures = root.join("futures");
    std::fs::create_dir(&futures).unwrap();
    let funding: String = (0..bars.len() as i64 / 60)
        .map(|h| format!("{},1,{}\n", T0 + h * 60 * MINUTE, if h % 3 == 2 { "0.00001000" } else { "0.00030000" }))
        .collect();
    // Zipped, as data.binance.vision ships it.
    let archive = format!("calc_time,funding_interval_hours,last_funding_rate\n{funding}");
    write_zip(
        &futures.join("BTCUSDT-fundingRate-2024-01.zip"),
        &[("BTCUSDT-fundingRate-2024-01.csv", archive.as_bytes())],
    );
    std::fs::write(
        futures.join("oi.csv"),
        format!("timestamp,symbol,sum_open_interest,sum_open_interest_value\n{T0},ETHUSDT,100,320000\n"),
    )
    .unwrap();
    let config = root.join("config.toml");
    let run = |name: &str, extra: &[&str]| -> (serde_json::Value, String) {
        let out = root.join(format!("{name}.json"));
        let mut args = vec!["backtest", "--config", s(&config), "--data", s(&csv), "--report", s(&out)];
        args.extend(extra);
        let output = keel(&args);
        ok(&output);
        let report = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
        (report, String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (without, _) = run("without", &[]);
    let (with, stderr) = run("with", &["--futures", s(&futures)]);
    let orders = |r: &serde_json::Value| r["orders"].as_u64().unwrap();
    assert!(orders(&without) >= 10, "the bars make sma_cross trade: {without}");
    assert!(orders(&with) > 0, "entries pass while funding is calm: {with}");
    assert!(
        orders(&with) < orders(&without),
        "crowded funding blocks entries: {} vs {}",
        orders(&with),
        orders(&without)
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("ETHUSDT")).collect::<Vec<_>>(),
        vec!["warning: --futures: ignoring the events of ETHUSDT (no bars for them; data: BTCUSDT)"],
        "{stderr}"
    );
    // --to before the first settlement: nothing is filtered.
    let (early, _) = run("early", &["--futures", s(&futures), "--to", "2024-01-31T00:30:00Z"]);
    let (early_without, _) = run("early_without", &["--to", "2024-01-31T00:30:00Z"]);
    assert_eq!(orders(&early), orders(&early_without));

    // A sweep's runs get the events too: a threshold no rate reaches trades as without funding.
    let sweep_out = root.join("sweep.csv");
    let out = keel(&[
        "backtest",
        "--config",
        s(&config),
        "--data",
        s(&csv),
        "--futures",
        s(&futures),
        "--sweep",
        "sma.max_funding=0.0001,1",
        "--sweep-out",
        s(&sweep_out),
    ]);
    ok(&out);
    let text = std::fs::read_to_string(&sweep_out).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
    let (param, trips) = (col("sma.max_funding"), col("round_trips"));
    let by_param: Vec<(String, String)> =
        lines.map(|l| l.split(',').collect::<Vec<_>>()).map(|f| (f[param].to_string(), f[trips].to_string())).collect();
    let trips_of = |v: &str| by_param.iter().find(|(p, _)| p == v).map(|(_, t)| t.clone()).unwrap();
    let trips = |r: &serde_json::Value| r["round_trips"].as_u64().unwrap().to_string();
    assert_eq!(trips_of("0.0001"), trips(&with), "{text}");
    assert_eq!(trips_of("1"), trips(&without), "{text}");

    // Bad files: one line naming the file and line (or the columns).
    std::fs::write(
        root.join("bad.csv"),
        "funding_time,symbol,funding_rate\n1706659200000,BTCUSDT,0.1\nsoon,BTCUSDT,0.2\n",
    )
    .unwrap();
    std::fs::write(root.join("neither.csv"), "time,open\n1,2\n").unwrap();
    for (file, want) in [
        ("bad.csv", "bad.csv:3: funding_time: `soon` is not a time".to_string()),
        ("neither.csv", "neither.csv:1: the columns name neither funding".to_string()),
    ] {
        let path = root.join(file);
        let out = keel(&["backtest", "--config", s(&config), "--data", s(&csv), "--futures", s(&path)]);
        assert!(!out.status.success(), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("note:")).collect();
        assert_eq!(lines.len(), 1, "{file}: {stderr}");
        let want = format!("keel: {}/{want}", root.display());
        assert!(lines[0].starts_with(&want), "{file}\n got: {}\nwant: {want}", lines[0]);
    }
    let out = keel(&[
        "backtest",
        "--config",
        s(&config),
        "--data",
        s(&csv),
        "--futures",
        s(&root.join("bad.csv")),
        "--skip-bad-rows",
    ]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("note: --futures: skipped 1 bad rows, e.g. "), "{stderr}");
}
