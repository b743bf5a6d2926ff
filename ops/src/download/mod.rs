//! `keel data download`: Binance klines (REST or the public archives),
//! Coinbase candles ([`coinbase`]) and Binance USDⓈ-M funding /
//! open-interest history ([`futures`]) into the files `keel backtest` reads,
//! resumable and interrupt-safe.
//!
//! - **Klines, `--source rest`**: `GET /api/v3/klines` pages of 1000 from the
//!   file's end, through the Binance adapter's [`RestClient`] (it paces on
//!   `X-MBX-USED-WEIGHT-1M` near the limit); a 429 or 418 waits its
//!   `Retry-After` and tries again.
//! - **Klines, `--source archive`**: whole past months as monthly zips, whole
//!   days as daily zips, each verified against its `.CHECKSUM` (a mismatch
//!   stops the download with one line naming the file); parts of days, and
//!   days the archive has not published (404), come from REST, and the
//!   summary says so.
//! - Only closed bars are taken (the venue's server time).
//! - **Resume**: an existing `DIR/SYMBOL-INTERVAL.parquet|csv` is read, and
//!   only what it lacks is fetched: after its last bar (and before its first
//!   when `--from` is earlier). Every `--checkpoint-pages` pages' worth of
//!   new bars (1000 a page, archive files counting as their bars) the file is
//!   rewritten through a temporary file and a rename, so a kill loses at most
//!   those and never leaves half a file.
//! - **Gaps**: open times missing between two bars (exchange maintenance) are
//!   listed in the summary and stored with the file: Parquet key-value
//!   metadata `gaps` (`FROM/TO` ISO intervals, comma-separated; TO is the
//!   next bar's open time) and `gap_count`; CSV `# gap: FROM .. TO (N bars
//!   missing)` comment lines above the header.

pub mod archive;
pub mod coinbase;
pub mod futures;
pub mod plan;
pub mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use keel_binance::{BinanceError, Credentials, RestClient};
use keel_core::market::Bar;
use keel_core::Symbol;

use self::plan::Span;
use self::write::OutFormat;
use crate::backtest::data::columns::{Fixed, Row};
use crate::backtest::data::{self, Bars, Series};
use crate::backtest::report::iso;

/// Production spot REST.
pub const BINANCE_REST: &str = "https://api.binance.com";

/// Bars per klines page (Binance's maximum).
const PAGE: usize = 1000;

/// Failures other than rate limits tolerated in a row before giving up.
const RETRIES: u32 = 5;

/// Which venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Venue {
    /// Binance spot klines, USDⓈ-M funding and open interest.
    Binance,
    /// Coinbase candles (public REST; no archives, funding or open interest).
    Coinbase,
}

/// Where klines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// The REST klines endpoint.
    Rest,
    /// The public monthly and daily kline archives (REST for the rest).
    Archive,
}

/// What to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Spot candles.
    Klines,
    /// USDⓈ-M settled funding rates.
    Funding,
    /// USDⓈ-M open-interest history (Binance keeps the last 30 days).
    #[value(name = "open_interest")]
    OpenInterest,
}

/// `keel data download`.
#[derive(Debug, Clone, clap::Args)]
pub struct DownloadArgs {
    /// The venue.
    #[arg(long, value_enum)]
    pub venue: Venue,
    /// Symbols, comma-separated (e.g. BTCUSDT,ETHUSDT; Coinbase: BTC-USD,
    /// written as BTCUSD-INTERVAL files).
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
    pub symbols: Vec<String>,
    /// Bar interval as Binance spells it (1m, 1h, 1d …; Coinbase: 1m 5m 15m
    /// 30m 1h 2h 4h 6h 1d); for open_interest the period (5m … 1d). Not used
    /// for funding.
    #[arg(long)]
    pub interval: Option<String>,
    /// First open time: an ISO date (midnight UTC) or date-time, or epoch ms.
    #[arg(long, value_name = "DATE")]
    pub from: String,
    /// End (exclusive): bars opening before it. Default: now (closed bars only).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Directory for the files (created if missing): DIR/SYMBOL-INTERVAL.parquet|csv.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: OutFormat,
    /// Where klines come from.
    #[arg(long, value_enum, default_value = "rest")]
    pub source: Source,
    /// What to download.
    #[arg(long, value_enum, default_value = "klines")]
    pub kind: Kind,
    /// REST base URL (default: https://api.binance.com for klines,
    /// https://fapi.binance.com for funding and open interest,
    /// https://api.coinbase.com for Coinbase).
    #[arg(long, value_name = "URL")]
    pub rest_url: Option<String>,
    /// Archive base URL.
    #[arg(long, value_name = "URL", default_value = archive::BINANCE_ARCHIVE)]
    pub archive_url: String,
    /// Save the file every this many pages' worth of bars (1000 bars a page;
    /// an archive file counts as its bars): a kill loses at most these.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub checkpoint_pages: u32,
}

/// A time flag's value in ms, or an error naming the flag.
fn time_flag(flag: &str, text: &str) -> anyhow::Result<i64> {
    data::parse_time(text)
        .ok_or_else(|| anyhow::anyhow!("{flag} {text:?}: not an ISO date (2024-01-01), date-time or epoch ms"))
}

/// Runs `keel data download`.
pub fn run(args: &DownloadArgs) -> anyhow::Result<()> {
    if args.venue == Venue::Coinbase && args.kind != Kind::Klines {
        anyhow::bail!("--venue coinbase: only --kind klines (funding and open interest are Binance USD-M data)");
    }
    if args.venue == Venue::Coinbase && args.source == Source::Archive {
        anyhow::bail!("--venue coinbase: Coinbase publishes no candle archives; use --source rest");
    }
    let from = time_flag("--from", &args.from)?;
    let to = args.to.as_deref().map(|t| time_flag("--to", t)).transpose()?;
    if to.is_some_and(|t| t <= from) {
        anyhow::bail!("--to must be after --from");
    }
    let symbols: Vec<String> =
        args.symbols.iter().map(|s| s.trim().to_ascii_uppercase()).filter(|s| !s.is_empty()).collect();
    if symbols.is_empty() {
        anyhow::bail!("--symbols: no symbol given");
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let leftovers = write::sweep_leftovers(&args.out, write::STALE_AFTER);
    if leftovers > 0 {
        eprintln!("removed {leftovers} temporary file(s) an interrupted download left in {}", args.out.display());
    }
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        match args.kind {
            Kind::Klines => klines(args, &symbols, from, to).await,
            Kind::Funding | Kind::OpenInterest => futures::download(args, &symbols, from, to).await,
        }
    })
}

/// A progress bar on stderr (drawn only on a terminal) with an ETA.
pub(crate) fn progress(prefix: &str, len: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    let template = format!("{{prefix}} {{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar.set_prefix(prefix.to_string());
    bar
}

/// Downloads klines of every symbol, one after the other.
async fn klines(args: &DownloadArgs, symbols: &[String], from: i64, to: Option<i64>) -> anyhow::Result<()> {
    let interval_name = args.interval.as_deref().ok_or_else(|| anyhow::anyhow!("--interval is required for klines"))?;
    let interval = plan::interval_ms(interval_name).ok_or_else(|| {
        anyhow::anyhow!("--interval {interval_name:?}: not one of 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w")
    })?;
    let (rest, now) = match args.venue {
        Venue::Binance => {
            let base = args.rest_url.as_deref().unwrap_or(BINANCE_REST);
            let rest = RestClient::new(base, Credentials::new("", ""), 5_000, 30_000)?;
            let what = format!("{base}: the server time");
            retrying(&what, &indicatif::ProgressBar::hidden(), || rest.sync_time()).await?;
            let now = rest.now_ms();
            (Rest::Binance(rest), now)
        }
        Venue::Coinbase => {
            if keel_coinbase::venue::granularity_of(interval).is_none() {
                anyhow::bail!("--interval {interval_name:?}: Coinbase candles are 1m 5m 15m 30m 1h 2h 4h 6h 1d");
            }
            let candles = coinbase::Candles::new(args.rest_url.as_deref().unwrap_or(coinbase::COINBASE_REST))?;
            let now = candles.now_ms().await?;
            (Rest::Coinbase(candles), now)
        }
    };
    let end = plan::closed_end(to, now, interval);
    let http =
        reqwest::Client::builder().timeout(Duration::from_secs(120)).build().context("cannot build the HTTP client")?;
    for symbol in symbols {
        // Coinbase products (`BTC-USD`) are files without the dash
        // (`BTCUSD-1m.parquet`), the symbol `--data` reads from the name.
        let file_symbol = symbol.replace('-', "");
        let job = Job {
            product: symbol.clone(),
            symbol: file_symbol.clone(),
            interval,
            interval_name: interval_name.to_string(),
            path: args.out.join(format!("{file_symbol}-{interval_name}.{}", args.format.ext())),
            format: args.format,
            checkpoint_pages: args.checkpoint_pages,
        };
        let summary = job.run(&rest, &http, args, from, end).await?;
        println!("{summary}");
    }
    Ok(())
}

/// Where REST bars come from.
enum Rest {
    /// Binance spot `klines`.
    Binance(RestClient),
    /// Coinbase public candles.
    Coinbase(coinbase::Candles),
}

/// One symbol's kline download.
struct Job {
    /// The symbol as the venue spells it (`BTCUSDT`, `BTC-USD`).
    product: String,
    /// The symbol of the file (`BTCUSD` for `BTC-USD`).
    symbol: String,
    interval: i64,
    interval_name: String,
    path: PathBuf,
    format: OutFormat,
    checkpoint_pages: u32,
}

/// What a symbol's download did, for its summary.
#[derive(Default)]
struct Done {
    new_bars: usize,
    /// Pages fetched by REST.
    pages: usize,
    /// Archive files read.
    archive_files: usize,
    /// Spans fetched by REST instead of the archive, and why.
    fallbacks: Vec<(Span, String)>,
    /// Bars fetched and not yet saved.
    unsaved: usize,
}

impl Job {
    /// The bars already in the file, sorted, if it exists.
    fn existing(&self) -> anyhow::Result<Option<Bars>> {
        if !self.path.exists() {
            return Ok(None);
        }
        let mut bars = Bars::default();
        for parsed in data::read_file(&self.path, false)? {
            bars.append(parsed.bars).map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        }
        bars.sort_and_dedup();
        Ok((!bars.is_empty()).then_some(bars))
    }

    async fn run(
        &self,
        rest: &Rest,
        http: &reqwest::Client,
        args: &DownloadArgs,
        from: i64,
        end: i64,
    ) -> anyhow::Result<String> {
        let existing = self.existing()?;
        let had = existing.as_ref().map_or(0, Bars::len);
        let range = existing.as_ref().map(|b| (b.open_time(0), b.open_time(b.len() - 1)));
        let spans = plan::missing(from, end, range, self.interval);
        let expected: i64 = spans.iter().map(|s| (s.to - s.from + self.interval - 1) / self.interval).sum();
        let bar = progress(&format!("{} {}", self.symbol, self.interval_name), expected.max(0) as u64, "bars");
        let mut acc = Bars::default();
        let mut pending = existing;
        let mut done = Done::default();
        for span in &spans {
            // The part before the file is fetched whole before the file's
            // bars join it; only then may the file be rewritten.
            if pending.as_ref().is_some_and(|ex| span.from >= ex.open_time(0)) {
                self.join(&mut acc, pending.take())?;
            }
            let save = pending.is_none();
            let fetched = match args.source {
                Source::Rest => self.rest_span(rest, *span, &mut acc, &mut done, &bar, save).await,
                Source::Archive => self.archive_span(rest, http, args, *span, &mut acc, &mut done, &bar, save).await,
            };
            if let Err(e) = fetched {
                // What was fetched before the failure is kept (it is contiguous).
                if save && done.unsaved > 0 {
                    self.save(&acc, &bar, &mut done)?;
                }
                bar.abandon();
                return Err(e);
            }
        }
        self.join(&mut acc, pending.take())?;
        bar.finish_and_clear();
        if acc.is_empty() {
            return Ok(format!(
                "{} {}: no closed bars from {} to {}",
                self.symbol,
                self.interval_name,
                iso(from),
                iso(end)
            ));
        }
        let gaps = if done.unsaved > 0 { self.save(&acc, &bar, &mut done)? } else { self.gaps(&acc) };
        Ok(self.summary(&acc, had, &done, &gaps, args.source))
    }

    /// Appends the file's bars after the fetched head.
    fn join(&self, acc: &mut Bars, existing: Option<Bars>) -> anyhow::Result<()> {
        if let Some(ex) = existing {
            acc.append(ex).map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))?;
        }
        Ok(())
    }

    fn gaps(&self, bars: &Bars) -> Vec<plan::Gap> {
        plan::gaps((0..bars.len()).map(|i| bars.open_time(i)), self.interval)
    }

    /// Whether `--checkpoint-pages` pages' worth of bars (1000 a page, an
    /// archive file counting as its bars) wait to be saved.
    fn checkpoint_due(&self, done: &Done) -> bool {
        done.unsaved >= self.checkpoint_pages as usize * PAGE
    }

    /// Rewrites the file with `bars` (temporary file + rename); returns the gaps.
    fn save(&self, bars: &Bars, progress: &indicatif::ProgressBar, done: &mut Done) -> anyhow::Result<Vec<plan::Gap>> {
        let mut bars = bars.clone();
        bars.resolve_close_times(self.interval);
        let gaps = self.gaps(&bars);
        let series = Series {
            symbol: Symbol::new(&self.symbol),
            price_scale: bars.price_scale(),
            qty_scale: bars.qty_scale(),
            interval_ms: self.interval,
            files: Vec::new(),
            bars,
        };
        write::write_bars(&self.path, &series, &gaps, self.format)?;
        done.unsaved = 0;
        let last = series.bars.open_time(series.bars.len() - 1);
        progress.suspend(|| {
            eprintln!(
                "{} {}: saved {} bars through {} to {}",
                self.symbol,
                self.interval_name,
                series.bars.len(),
                iso(last),
                self.path.display()
            )
        });
        Ok(gaps)
    }

    /// Fetches `span` by REST pages into `acc`, saving every `checkpoint_pages`.
    async fn rest_span(
        &self,
        rest: &Rest,
        span: Span,
        acc: &mut Bars,
        done: &mut Done,
        progress: &indicatif::ProgressBar,
        save: bool,
    ) -> anyhow::Result<()> {
        let mut cursor = span.from;
        while cursor < span.to {
            let (page, next) = self.page(rest, cursor, span.to, progress).await?;
            done.pages += 1;
            let mut got = 0u64;
            for k in &page {
                if k.open_time < cursor || k.open_time >= span.to {
                    continue;
                }
                if !acc.is_empty() && acc.open_time(acc.len() - 1) >= k.open_time {
                    continue;
                }
                acc.push(&row(k).map_err(|e| anyhow::anyhow!("{} kline at {}: {e}", self.symbol, iso(k.open_time)))?)
                    .map_err(|e| anyhow::anyhow!("{} kline at {}: {e}", self.symbol, iso(k.open_time)))?;
                got += 1;
            }
            done.new_bars += got as usize;
            done.unsaved += got as usize;
            progress.inc(got);
            if save && self.checkpoint_due(done) {
                self.save(acc, progress, done)?;
            }
            match next {
                Some(n) if n > cursor => cursor = n,
                _ => break,
            }
        }
        Ok(())
    }

    /// One page of bars from `start` (before `end`) and where the next page
    /// starts (none: nothing more). Binance: up to 1000 klines from `start`
    /// (an empty page is the end; see [`retrying`]); Coinbase: a window of
    /// 300 buckets (an empty window may be a long gap, so the next follows).
    async fn page(
        &self,
        rest: &Rest,
        start: i64,
        end: i64,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<(Vec<Bar>, Option<i64>)> {
        match rest {
            Rest::Binance(rest) => {
                let what = format!("{} klines from {}", self.symbol, iso(start));
                let page = retrying(&what, progress, || {
                    rest.klines(&self.product, &self.interval_name, Some(start), Some(end - 1), PAGE)
                })
                .await?;
                let next = page.last().map(|k| k.open_time + self.interval);
                let symbol = Symbol::new(&self.symbol);
                let bars = page.into_iter().map(|k| k.into_bar(symbol.clone())).collect();
                Ok((bars, next))
            }
            Rest::Coinbase(candles) => {
                let (bars, next) = candles.window(&self.product, self.interval, start, end).await?;
                Ok((bars, Some(next)))
            }
        }
    }

    /// Fetches `span` from the archives (REST for parts of days and files
    /// not published).
    #[allow(clippy::too_many_arguments)]
    async fn archive_span(
        &self,
        rest: &Rest,
        http: &reqwest::Client,
        args: &DownloadArgs,
        span: Span,
        acc: &mut Bars,
        done: &mut Done,
        progress: &indicatif::ProgressBar,
        save: bool,
    ) -> anyhow::Result<()> {
        for piece in plan::archive_pieces(span) {
            let Some((name, url)) = archive::file_of(&args.archive_url, &self.symbol, &self.interval_name, &piece)
            else {
                self.rest_span(rest, piece.span(), acc, done, progress, save).await?;
                continue;
            };
            let dir = self.path.parent().unwrap_or(Path::new("."));
            match archive::fetch(http, &name, &url, dir).await? {
                None => {
                    done.fallbacks.push((piece.span(), format!("{name} is not in the archive")));
                    self.rest_span(rest, piece.span(), acc, done, progress, save).await?;
                }
                Some(mut bars) => {
                    let s = piece.span();
                    bars.retain_open_times(s.from, s.to - 1);
                    let after = if acc.is_empty() { i64::MIN } else { acc.open_time(acc.len() - 1) };
                    bars.retain_open_times(after.saturating_add(1), s.to - 1);
                    let n = bars.len();
                    acc.append(bars).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                    done.new_bars += n;
                    done.unsaved += n;
                    done.archive_files += 1;
                    progress.inc(n as u64);
                    if save && self.checkpoint_due(done) {
                        self.save(acc, progress, done)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn summary(&self, bars: &Bars, had: usize, done: &Done, gaps: &[plan::Gap], source: Source) -> String {
        let (first, last) = (bars.open_time(0), bars.open_time(bars.len() - 1));
        let mut out = format!(
            "{} {}: {} bars in {} ({} new, {} there before), {} .. {}; source: {}",
            self.symbol,
            self.interval_name,
            bars.len(),
            self.path.display(),
            done.new_bars,
            had,
            iso(first),
            iso(last),
            match source {
                Source::Rest => format!("rest ({} pages)", done.pages),
                Source::Archive => format!("archive ({} files), rest ({} pages)", done.archive_files, done.pages),
            }
        );
        out.push_str(&format!("\n  gaps: {}", gaps.len()));
        const SHOWN: usize = 20;
        for g in gaps.iter().take(SHOWN) {
            out.push_str(&format!("\n  gap: {} .. {} ({} bars missing)", iso(g.from), iso(g.to), g.missing));
        }
        if gaps.len() > SHOWN {
            out.push_str(&format!("\n  … and {} more gaps (all in the file's metadata)", gaps.len() - SHOWN));
        }
        for (span, why) in &done.fallbacks {
            out.push_str(&format!("\n  rest instead of the archive for {} .. {}: {why}", iso(span.from), iso(span.to)));
        }
        out
    }
}

/// Sends a request until it succeeds: a 429 or 418 waits its
/// `Retry-After` (as often as the venue asks), a failure that may pass (not
/// sent, no answer, 5xx) is tried again [`RETRIES`] times with a growing
/// pause; anything else is the error, naming `what`.
async fn retrying<T, F, Fut>(what: &str, progress: &indicatif::ProgressBar, mut send: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BinanceError>>,
{
    let mut failures = 0;
    loop {
        let err = match send().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let wait = match &err {
            BinanceError::Api { http_status: 429 | 418, retry_after_ms, .. } => {
                let ms = retry_after_ms.unwrap_or(1000).max(100);
                progress.suspend(|| eprintln!("{what}: rate limited ({err}); waiting {ms} ms"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                continue;
            }
            BinanceError::NotSent(_) | BinanceError::NoResponse(_) => 500u64 << failures,
            BinanceError::Http { status, .. } | BinanceError::Api { http_status: status, .. } if *status >= 500 => {
                500u64 << failures
            }
            _ => anyhow::bail!("{what}: {err}"),
        };
        failures += 1;
        if failures > RETRIES {
            anyhow::bail!("{what}: {err}");
        }
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// A bar as a row of exact decimals.
fn row(k: &Bar) -> Result<Row, String> {
    let fixed = |d: keel_core::Decimal, name: &str| {
        Fixed::from_decimal(d).ok_or_else(|| format!("{name} {d} needs more than 18 digits"))
    };
    Ok(Row {
        open_time: k.open_time,
        close_time: Some(k.close_time),
        open: fixed(k.open, "open")?,
        high: fixed(k.high, "high")?,
        low: fixed(k.low, "low")?,
        close: fixed(k.close, "close")?,
        volume: fixed(k.volume, "volume")?,
    })
}
