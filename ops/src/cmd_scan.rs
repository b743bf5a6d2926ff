//! `keel scan`: a one-shot ranked table of the configured venue's market —
//! each eligible spot pair's 24-hour quote volume, change and last price,
//! and, where it has a USDⓈ-M perpetual, the funding estimate (annualised on
//! the symbol's own interval), the next funding time, open interest notional
//! and its change over the last 5-minute period. As a table, or as JSON.
//!
//! Eligibility is `keel_core::universe`'s (status TRADING, spot allowed, the
//! quote asset), so the scan ranks what a universe would choose from. The
//! futures side is read with few requests: `premiumIndex` for all symbols
//! once, `fundingInfo` once, and open interest per symbol only for the rows
//! shown (and, to rank by open-interest change, for the most liquid pairs).
//! In mode `sandbox` without an external URL the embedded sandbox is started
//! from the config as `keel run` starts it — but never from or into the data
//! dir (a scan must not move a stopped engine's venue on) — read, and stopped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rust_decimal::Decimal;
use serde::Serialize;

use keel_binance::usdm::UsdmClient;
use keel_binance::{BinanceSettings, BinanceVenue, Credentials, Endpoints, LocalExchange};
use keel_core::clock::{Clock, SystemClock};
use keel_core::futures::{FundingIntervals, FuturesData, MarkPrice, OiHistQuery, OiPeriod};
use keel_core::universe::{Candidate, UniverseRules};
use keel_core::venue::paper::PaperVenue;
use keel_core::venue::Venue;
use keel_core::Symbol;

use crate::config::{Config, Exchange, VenueMode};
use crate::venues::{self, EmbeddedSandbox, StoredAccount};

/// The open-interest period the change is measured over.
pub const OI_PERIOD: OiPeriod = OiPeriod::M5;

/// To rank by open-interest change, the history of this many of the most
/// liquid pairs (or of the top N, if more) is read: one `/futures/data`
/// request each, well inside its 1 000 per 5 minutes.
pub const OI_CHANGE_POOL: usize = 100;

/// `keel scan`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Sort keys, all highest first: volume = 24h quote volume; change = 24h change %; \
                        funding = the absolute funding estimate (the most extreme rates, either sign); \
                        oi_change = the change of open interest between the last two 5m openInterestHist \
                        points (ranked among the 100 most liquid pairs, or the top N if more). \
                        Columns without a USD-M perpetual are empty (null in JSON).")]
pub struct ScanArgs {
    /// Config file (default: ./config.toml, else the built-in default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print a JSON array of objects (every field present; decimals as strings) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// How many rows (1 to 1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: u16,
    /// Rank by: volume, change, funding (by absolute funding, descending) or oi_change.
    #[arg(long, value_enum, default_value_t = SortKey::Volume)]
    pub sort: SortKey,
    /// The quote asset of the pairs scanned.
    #[arg(long, default_value = "USDT", value_parser = parse_quote)]
    pub quote: String,
}

/// What `keel scan` ranks by (highest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    /// 24-hour quote volume.
    Volume,
    /// 24-hour change in percent.
    Change,
    /// The absolute funding estimate.
    Funding,
    /// The open-interest change over the last 5-minute period.
    #[value(name = "oi_change")]
    OiChange,
}

fn parse_quote(s: &str) -> Result<String, String> {
    let q = s.trim();
    if q.is_empty() || !q.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("`{s}` is not an asset name (letters and digits, e.g. USDT)"));
    }
    Ok(q.to_ascii_uppercase())
}

/// One row: the spot pair, and its perpetual's figures where it has one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanRow {
    /// The symbol.
    pub symbol: Symbol,
    /// 24-hour quote volume.
    pub quote_volume: Decimal,
    /// 24-hour change in percent (null without a 24-hour open).
    pub change_pct: Option<Decimal>,
    /// Last price.
    pub last_price: Decimal,
    /// The perpetual's mark price.
    pub mark_price: Option<Decimal>,
    /// The funding estimate for the next settlement (a rate: 0.0001 = 0.01 %).
    pub funding_rate: Option<Decimal>,
    /// Hours between the symbol's settlements (`fundingInfo`, else 8).
    pub funding_interval_hours: Option<u32>,
    /// The funding estimate per year, in percent: rate × 24 / hours × 365 × 100.
    pub funding_annualised_pct: Option<Decimal>,
    /// The next settlement (ms since the epoch).
    pub next_funding_time: Option<i64>,
    /// Open interest in the base asset.
    pub open_interest: Option<Decimal>,
    /// Open interest × mark price, in the quote asset.
    pub open_interest_notional: Option<Decimal>,
    /// The change of open interest between the last two 5-minute points, in percent.
    pub open_interest_change_pct: Option<Decimal>,
}

impl ScanRow {
    fn spot(c: &Candidate) -> Self {
        Self {
            symbol: c.symbol.clone(),
            quote_volume: c.quote_volume,
            change_pct: c.change_pct(),
            last_price: c.last_price,
            mark_price: None,
            funding_rate: None,
            funding_interval_hours: None,
            funding_annualised_pct: None,
            next_funding_time: None,
            open_interest: None,
            open_interest_notional: None,
            open_interest_change_pct: None,
        }
    }

    fn add_mark(&mut self, mark: &MarkPrice, intervals: &FundingIntervals) {
        let hours = intervals.interval_hours(&self.symbol);
        self.mark_price = Some(mark.mark_price);
        self.funding_rate = mark.funding_rate_estimate;
        self.funding_interval_hours = Some(hours);
        // Exact (a JSON decimal), where `keel_core::futures::annualised` is
        // the f64 statistic for ranking.
        self.funding_annualised_pct = mark
            .funding_rate_estimate
            .map(|r| (r * Decimal::from(24 * 365 * 100) / Decimal::from(hours.max(1))).round_dp(4));
        self.next_funding_time = mark.next_funding_time;
    }

    fn is_perpetual(&self) -> bool {
        self.mark_price.is_some()
    }
}

/// Sorts `rows` by `key`, highest first, rows without the figure last; ties
/// keep their order (by volume).
pub fn sort_rows(rows: &mut [ScanRow], key: SortKey) {
    let figure = |r: &ScanRow| -> Option<Decimal> {
        match key {
            SortKey::Volume => Some(r.quote_volume),
            SortKey::Change => r.change_pct,
            SortKey::Funding => r.funding_rate.map(|f| f.abs()),
            SortKey::OiChange => r.open_interest_change_pct,
        }
    };
    rows.sort_by_key(|r| std::cmp::Reverse(figure(r)));
}

/// Where the scan reads from, and what to stop afterwards.
struct Source {
    venue: Arc<dyn Venue>,
    futures: Option<UsdmClient>,
    sandbox: Option<EmbeddedSandbox>,
    /// What the venue is, for the notes.
    label: String,
}

/// Settings for public reads from `base` with the config's URL overrides
/// and timings: no key (exchangeInfo and tickers are public), so a scan of
/// testnet or mainnet needs none.
fn public_settings(config: &Config, base: Endpoints) -> anyhow::Result<BinanceSettings> {
    let local = LocalExchange { endpoints: base, credentials: Credentials::new("", "") };
    config
        .venue
        .binance_config()
        .resolve_with_mode(keel_binance::BinanceMode::Sandbox, Some(&local))
        .map_err(|e| anyhow::anyhow!("config error at `{}`: {}", crate::config::binance_key(&e), e.reason))
}

async fn open(config: &Config) -> anyhow::Result<Source> {
    let mode = config.venue.mode;
    if config.venue.exchange == Exchange::Coinbase && mode != VenueMode::Paper {
        anyhow::bail!(
            "keel scan needs a Binance venue: venue.exchange = \"coinbase\" lists no market universe and has no \
             USD-M futures (use exchange = \"binance\", or mode = \"paper\" for the configured symbols)"
        );
    }
    let now = SystemClock.now_ms();
    let (settings, sandbox) = match mode {
        VenueMode::Paper => {
            let venue = PaperVenue::new(venues::paper_config(config, None, now));
            return Ok(Source { venue, futures: None, sandbox: None, label: "paper".into() });
        }
        VenueMode::Sandbox if config.venue.binance.rest_url.is_none() => {
            let mut sb = venues::embedded_sandbox_config(config, &StoredAccount::default(), now);
            sb.state_dir = None;
            let sandbox = EmbeddedSandbox::start(sb).await?;
            let h = sandbox.handle();
            let base = Endpoints {
                rest: h.rest_url.clone(),
                ws_stream: h.ws_stream_url.clone(),
                ws_api: h.ws_api_url.clone(),
            };
            (public_settings(config, base)?, Some(sandbox))
        }
        VenueMode::Sandbox => {
            let b = &config.venue.binance;
            let base = Endpoints {
                rest: b.rest_url.clone().unwrap_or_default(),
                ws_stream: b.ws_stream_url.clone().unwrap_or_default(),
                ws_api: b.ws_api_url.clone().unwrap_or_default(),
            };
            (public_settings(config, base)?, None)
        }
        VenueMode::Testnet => (public_settings(config, Endpoints::testnet())?, None),
        VenueMode::Mainnet => (public_settings(config, Endpoints::mainnet())?, None),
    };
    keel_binance::install_crypto_provider();
    let rest = settings.endpoints.rest.clone();
    let venue = BinanceVenue::connect(settings)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Binance {} at {rest}: {e}", mode.as_str()))?;
    let futures = crate::futures_data::usdm_client(config, sandbox.as_ref().map(|s| s.handle()))?;
    let label = match &sandbox {
        Some(_) => "binance sandbox (embedded)".to_string(),
        None => format!("binance {} at {rest}", mode.as_str()),
    };
    Ok(Source { venue: Arc::new(venue), futures, sandbox, label })
}

/// The ranked rows: the eligible pairs in `quote`, the top `top` by `sort`.
async fn scan(source: &Source, quote: &str, top: usize, sort: SortKey) -> anyhow::Result<Vec<ScanRow>> {
    let candidates = source.venue.universe_candidates().await.context("reading the market universe")?;
    let rules = UniverseRules {
        quote: quote.to_string(),
        top_n: usize::MAX,
        min_quote_volume: Decimal::ZERO,
        exclude: Vec::new(),
    };
    let by_symbol: HashMap<&Symbol, &Candidate> = candidates.iter().map(|c| (&c.symbol, c)).collect();
    let mut rows: Vec<ScanRow> =
        rules.select(&candidates).members.iter().filter_map(|s| by_symbol.get(s)).map(|c| ScanRow::spot(c)).collect();
    let Some(futures) = source.futures.as_ref() else {
        sort_rows(&mut rows, sort);
        rows.truncate(top);
        return Ok(rows);
    };
    // The perpetuals (all-symbol answers are cut to them), their marks and
    // funding estimates in one request, the intervals in one more.
    futures.exchange_info().await.context("futures exchangeInfo")?;
    let marks: HashMap<Symbol, MarkPrice> = futures
        .premium_index(None)
        .await
        .context("futures premiumIndex")?
        .into_iter()
        .map(|m| (m.symbol.clone(), m))
        .collect();
    let intervals = futures.funding_info().await.context("futures fundingInfo")?;
    for row in &mut rows {
        if let Some(mark) = marks.get(&row.symbol) {
            row.add_mark(mark, &intervals);
        }
    }
    if sort == SortKey::OiChange {
        // Ranked among the most liquid pairs (rows are by volume here).
        for row in rows.iter_mut().filter(|r| r.is_perpetual()).take(OI_CHANGE_POOL.max(top)) {
            row.open_interest_change_pct = oi_change(futures, &row.symbol).await?;
        }
    }
    sort_rows(&mut rows, sort);
    rows.truncate(top);
    for row in rows.iter_mut().filter(|r| r.is_perpetual()) {
        let oi =
            futures.open_interest(&row.symbol).await.with_context(|| format!("open interest of {}", row.symbol))?;
        row.open_interest = Some(oi.open_interest);
        row.open_interest_notional = row.mark_price.map(|m| (oi.open_interest * m).round_dp(2));
        if sort != SortKey::OiChange {
            row.open_interest_change_pct = oi_change(futures, &row.symbol).await?;
        }
    }
    Ok(rows)
}

/// The change of open interest (base units, so price moves do not count)
/// between the last two points of its 5-minute history, in percent; none
/// with fewer than two points or from zero.
async fn oi_change(futures: &UsdmClient, symbol: &Symbol) -> anyhow::Result<Option<Decimal>> {
    let q = OiHistQuery { symbol: symbol.clone(), period: OI_PERIOD, start_ms: None, end_ms: None, limit: Some(2) };
    let hist = futures.open_interest_hist(&q).await.with_context(|| format!("open interest history of {symbol}"))?;
    Ok(match hist.as_slice() {
        [.., before, last] if !before.sum_open_interest.is_zero() => Some(
            ((last.sum_open_interest - before.sum_open_interest) * Decimal::ONE_HUNDRED / before.sum_open_interest)
                .round_dp(3),
        ),
        _ => None,
    })
}

/// Runs `keel scan`.
pub fn run(args: ScanArgs, registry: &strategies::StrategyRegistry) -> anyhow::Result<()> {
    let (config, _) = crate::settings::load(args.config.as_deref(), registry)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let (rows, label, futures) = rt.block_on(async {
        let source = open(&config).await?;
        let rows = scan(&source, &args.quote, usize::from(args.top), args.sort).await;
        let (label, futures) = (source.label.clone(), source.futures.is_some());
        let Source { venue, futures: client, sandbox, .. } = source;
        drop((venue, client));
        if let Some(sb) = sandbox {
            sb.shutdown().await;
        }
        rows.map(|r| (r, label, futures))
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).context("encoding JSON")?);
        return Ok(());
    }
    if !futures {
        eprintln!("keel scan: {label} has no USD-M futures market; the futures columns are empty");
    }
    eprintln!(
        "keel scan: {label}: top {} {} pairs by {}",
        rows.len(),
        args.quote,
        match args.sort {
            SortKey::Volume => "24h quote volume",
            SortKey::Change => "24h change",
            SortKey::Funding => "absolute funding estimate",
            SortKey::OiChange => "open-interest change over the last 5m",
        }
    );
    print!("{}", table(&rows, &args.quote));
    Ok(())
}

/// The table: a header line and one line per row.
pub fn table(rows: &[ScanRow], quote: &str) -> String {
    let header: Vec<String> = [
        "#",
        "SYMBOL",
        &format!("VOL 24h {quote}"),
        "CHG 24h %",
        "LAST",
        "FUNDING %",
        "FUND/YR %",
        "NEXT FUNDING UTC",
        &format!("OI {quote}"),
        "OI Δ5m %",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dash = || "-".to_string();
    let body: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                (i + 1).to_string(),
                r.symbol.to_string(),
                compact(r.quote_volume),
                r.change_pct.map_or_else(dash, |c| format!("{:+.2}", c.round_dp(2))),
                r.last_price.normalize().to_string(),
                r.funding_rate.map_or_else(dash, |f| format!("{:+.4}", (f * Decimal::ONE_HUNDRED).round_dp(4))),
                r.funding_annualised_pct.map_or_else(dash, |a| format!("{:+.2}", a.round_dp(2))),
                r.next_funding_time.map_or_else(dash, utc_minute),
                r.open_interest_notional.map_or_else(dash, compact),
                r.open_interest_change_pct.map_or_else(dash, |c| format!("{:+.2}", c.round_dp(2))),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| body.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (c, cell) in cells.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 1 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
            if c + 1 < cells.len() {
                out.push_str("  ");
            }
        }
        out.trim_end().to_string() + "\n"
    };
    std::iter::once(line(&header)).chain(body.iter().map(|r| line(r))).collect()
}

/// 1234567.8 → `1.23M` (K, M, B; rounded half to even), for the table only.
/// (`{:.2}` on a `Decimal` truncates, so each figure is rounded first.)
fn compact(v: Decimal) -> String {
    let units = [(Decimal::from(1_000_000_000), "B"), (Decimal::from(1_000_000), "M"), (Decimal::from(1_000), "K")];
    for (size, unit) in units {
        if v.abs() >= size {
            return format!("{:.2}{unit}", (v / size).round_dp(2));
        }
    }
    format!("{:.2}", v.round_dp(2))
}

/// Epoch ms → `2026-12-06 16:00`.
fn utc_minute(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn row(symbol: &str, volume: &str, change: Option<&str>, funding: Option<&str>, oi: Option<&str>) -> ScanRow {
        ScanRow {
            change_pct: change.map(d),
            funding_rate: funding.map(d),
            open_interest_change_pct: oi.map(d),
            ..ScanRow::spot(&Candidate {
                symbol: Symbol::new(symbol),
                quote_asset: "USDT".into(),
                status: keel_core::instrument::SymbolStatus::Trading,
                spot_allowed: true,
                quote_volume: d(volume),
                last_price: d("1"),
                open_price: d("1"),
            })
        }
    }

    #[test]
    fn sorts_highest_first_with_missing_figures_last() {
        let rows = [
            row("A", "300", Some("-5"), Some("0.0001"), None),
            row("B", "200", Some("7"), Some("-0.0030"), Some("1.5")),
            row("C", "100", None, None, Some("-2")),
            row("D", "50", Some("0.5"), Some("0.0020"), Some("3")),
        ];
        let cases = [
            (SortKey::Volume, ["A", "B", "C", "D"]),
            (SortKey::Change, ["B", "D", "A", "C"]),
            (SortKey::Funding, ["B", "D", "A", "C"]),
            (SortKey::OiChange, ["D", "B", "C", "A"]),
        ];
        for (key, want) in cases {
            let mut r = rows.to_vec();
            sort_rows(&mut r, key);
            assert_eq!(r.iter().map(|r| r.symbol.as_str()).collect::<Vec<_>>(), want, "{key:?}");
        }
    }

    #[test]
    fn compact_figures() {
        let cases = [("999.5", "999.50"), ("1500", "1.50K"), ("12345678", "12.35M"), ("2500000000", "2.50B")];
        for (v, want) in cases {
            assert_eq!(compact(d(v)), want);
        }
    }
}
