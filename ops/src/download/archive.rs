//! Binance's public kline archives (the data.binance.vision layout): one
//! zip per month or day with a `.CHECKSUM` file `"<sha256>  <name>"`; the
//! zip is verified against it before anything in it is read, then read with
//! the backtest's kline zip reader (which takes Binance's microsecond times
//! of 2025 on as well as milliseconds).

use std::path::Path;
use std::time::Duration;

use sha2::Digest;

use super::plan::Piece;
use crate::backtest::data::{zip::read_zip, Bars};

/// Production archive host.
pub const BINANCE_ARCHIVE: &str = "https://data.binance.vision";

/// How often a failed archive request is tried again.
const RETRIES: u32 = 3;

/// The zip name and URL of a monthly or daily piece (none for REST pieces).
pub fn file_of(base: &str, symbol: &str, interval: &str, piece: &Piece) -> Option<(String, String)> {
    let (period, date) = match piece {
        Piece::Monthly { month, .. } => ("monthly", month),
        Piece::Daily { day, .. } => ("daily", day),
        Piece::Rest(_) => return None,
    };
    let name = format!("{symbol}-{interval}-{date}.zip");
    let url = format!("{}/data/spot/{period}/klines/{symbol}/{interval}/{name}", base.trim_end_matches('/'));
    Some((name, url))
}

/// A GET; `None` for 404. Other failures are retried, then an error.
async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let mut attempt = 0;
    loop {
        let outcome = match http.get(url).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => return Ok(None),
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(b) => return Ok(Some(b.to_vec())),
                Err(e) => format!("reading the answer: {e}"),
            },
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        attempt += 1;
        if attempt > RETRIES {
            anyhow::bail!("{url}: {outcome}");
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
    }
}

/// Checks `zip` against its `.CHECKSUM` text; `Err` is one line naming the file.
pub fn verify(name: &str, zip: &[u8], checksum: &str) -> anyhow::Result<()> {
    let mut words = checksum.split_whitespace();
    let (Some(want), listed) = (words.next(), words.next()) else {
        anyhow::bail!("{name}: its .CHECKSUM file is empty; refused");
    };
    if listed.is_some_and(|l| l != name) {
        anyhow::bail!("{name}: its .CHECKSUM names another file ({}); refused", listed.unwrap_or_default());
    }
    let got = hex::encode(sha2::Sha256::digest(zip));
    if !got.eq_ignore_ascii_case(want) {
        anyhow::bail!("{name}: checksum mismatch (.CHECKSUM says {want}, the file's SHA-256 is {got}); refused");
    }
    Ok(())
}

/// Fetches, verifies and reads one archive file into bars; `None` when the
/// archive has no such file (404: not published yet). The zip passes
/// through a temporary file in `dir` (removed afterwards).
pub async fn fetch(http: &reqwest::Client, name: &str, url: &str, dir: &Path) -> anyhow::Result<Option<Bars>> {
    let Some(zip) = get(http, url).await? else { return Ok(None) };
    let Some(checksum) = get(http, &format!("{url}.CHECKSUM")).await? else {
        anyhow::bail!("{name}: the archive has no .CHECKSUM for it; refused");
    };
    verify(name, &zip, &String::from_utf8_lossy(&checksum))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".keel-archive-")
        // Not `.zip`: a file left by a kill must not look like data to `--data DIR`.
        .suffix(".zip.tmp")
        .tempfile_in(dir)
        .map_err(|e| anyhow::anyhow!("cannot create a temporary file in {}: {e}", dir.display()))?;
    std::io::Write::write_all(tmp.as_file_mut(), &zip)
        .map_err(|e| anyhow::anyhow!("cannot write a temporary file in {}: {e}", dir.display()))?;
    let parsed = read_zip(tmp.path(), name, false)?;
    let mut bars = Bars::default();
    for p in parsed {
        bars.append(p.bars).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    bars.sort_and_dedup();
    Ok(Some(bars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_verified_with_one_line_errors() {
        let zip = b"PK fake";
        let good = format!("{}  A.zip\n", hex::encode(sha2::Sha256::digest(zip)));
        struct Case {
            name: &'static str,
            checksum: String,
            want_err: Option<&'static str>,
        }
        let cases = [
            Case { name: "good", checksum: good.clone(), want_err: None },
            Case { name: "upper-case hex", checksum: good.to_uppercase().replace("A.ZIP", "A.zip"), want_err: None },
            Case {
                name: "wrong digest",
                checksum: format!("{}  A.zip\n", "0".repeat(64)),
                want_err: Some("A.zip: checksum mismatch"),
            },
            Case { name: "empty", checksum: String::new(), want_err: Some("A.zip: its .CHECKSUM file is empty") },
            Case {
                name: "another file",
                checksum: good.replace("A.zip", "B.zip"),
                want_err: Some("A.zip: its .CHECKSUM names another file (B.zip)"),
            },
        ];
        for c in cases {
            match (verify("A.zip", zip, &c.checksum), c.want_err) {
                (Ok(()), None) => {}
                (Err(e), Some(want)) => {
                    let e = e.to_string();
                    assert!(e.starts_with(want) && !e.contains('\n'), "{}: {e}", c.name);
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
            }
        }
    }

    #[test]
    fn urls_in_the_binance_layout() {
        let month = Piece::Monthly { month: "2024-01".into(), span: super::super::plan::Span { from: 0, to: 1 } };
        let day = Piece::Daily { day: "2024-02-03".into(), span: super::super::plan::Span { from: 0, to: 1 } };
        assert_eq!(
            file_of("http://h/", "BTCUSDT", "1m", &month),
            Some((
                "BTCUSDT-1m-2024-01.zip".into(),
                "http://h/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip".into()
            ))
        );
        assert_eq!(
            file_of("http://h", "ETHUSDT", "1h", &day).map(|f| f.1),
            Some("http://h/data/spot/daily/klines/ETHUSDT/1h/ETHUSDT-1h-2024-02-03.zip".into())
        );
    }
}
