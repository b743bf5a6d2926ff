//! The backtest report: round trips from fills, performance statistics from the
//! equity curve, a readable table, JSON and the trades CSV.
//!
//! Money (equity, PnL, fees, prices) stays `Decimal` and is written as decimal
//! strings; ratios and statistics are `f64`. Returns are simple returns between
//! consecutive equity points; annualisation assumes trading around the clock
//! (365.25 days a year) at the median spacing of the points.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use keel_core::fill::Fill;
use keel_core::instrument::Instrument;
use keel_core::order::Side;
use keel_core::{Decimal, StrategyId, Symbol};
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use super::equity::EquityCurve;
use super::sim::Outcome;

const YEAR_MS: f64 = 365.25 * 86_400_000.0;

/// One flat-to-flat trade of a strategy in a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundTrip {
    /// Strategy id.
    pub strategy: StrategyId,
    /// Symbol.
    pub symbol: Symbol,
    /// `long` or `short`.
    pub direction: &'static str,
    /// First entry fill (ms since the epoch).
    pub entry_time: i64,
    /// Volume-weighted entry price.
    pub entry_price: Decimal,
    /// Last exit fill.
    pub exit_time: i64,
    /// Volume-weighted exit price.
    pub exit_price: Decimal,
    /// Quantity entered (and exited).
    pub qty: Decimal,
    /// PnL after fees.
    pub pnl: Decimal,
    /// Fees of all its fills.
    pub fees: Decimal,
}

#[derive(Default)]
struct Open {
    position: Decimal,
    entry_time: i64,
    entry_qty: Decimal,
    entry_notional: Decimal,
    exit_qty: Decimal,
    exit_notional: Decimal,
    /// Every commission, valued in the quote asset.
    fees: Decimal,
    /// The commissions the notionals do not already show (those not paid in
    /// the base asset).
    pnl_fees: Decimal,
}

/// Groups fills into round trips per (strategy, symbol): a trade opens when the
/// position leaves zero and closes when it returns there; a fill that flips the
/// position closes one trade and opens the next (its fee is split pro rata).
/// A trade still open at the end is not a round trip.
///
/// The position is what the account holds: a commission paid in the base asset
/// (a buy's, as Binance charges it) adds less to it, and what cannot be sold
/// (dust below the instrument's lot step) counts as flat. That commission is
/// valued at the fill price in `fees`; it is already in the PnL, since less
/// was there to sell.
pub fn round_trips(fills: &[Fill], instruments: &[Instrument]) -> Vec<RoundTrip> {
    split_trades(fills, instruments).0
}

/// Round trips, and the entry times of trades still open at the end (in
/// order of strategy id, then symbol).
pub fn split_trades(fills: &[Fill], instruments: &[Instrument]) -> (Vec<RoundTrip>, Vec<i64>) {
    split_each(instruments, |push| fills.iter().for_each(push))
}

/// [`split_trades`] of the fills `each_fill` hands to the function it is
/// given, in fill order (a run's kept fills, a feed of them).
pub fn split_each(
    instruments: &[Instrument],
    each_fill: impl FnOnce(&mut dyn FnMut(&Fill)),
) -> (Vec<RoundTrip>, Vec<i64>) {
    let mut splitter = TradeSplitter::new(instruments);
    each_fill(&mut |f| splitter.push(f));
    splitter.finish()
}

/// [`split_trades`] one fill at a time, so fills can be handed over one by one
/// from a reused buffer (the backtest keeps its fills compact).
///
/// Proportional to the fills, with no allocation per fill: the trades being
/// built are kept in a short list (one per strategy and symbol) and found by
/// comparing ids, which share one `Arc` within a run, so a comparison is
/// usually a pointer comparison; so is finding the fill's instrument again.
pub struct TradeSplitter<'i> {
    instruments: &'i [Instrument],
    open: Vec<(StrategyId, Symbol, Open)>,
    /// The last fill's trade and instrument: the next fill mostly shares them.
    last_trade: usize,
    last_instrument: Option<(Symbol, Option<&'i Instrument>)>,
    out: Vec<RoundTrip>,
}

impl<'i> TradeSplitter<'i> {
    /// A splitter of fills in these instruments.
    pub fn new(instruments: &'i [Instrument]) -> Self {
        Self { instruments, open: Vec::new(), last_trade: 0, last_instrument: None, out: Vec::new() }
    }

    /// The next fill, in fill order.
    pub fn push(&mut self, f: &Fill) {
        let instrument = match &self.last_instrument {
            Some((symbol, instrument)) if *symbol == f.symbol => *instrument,
            _ => {
                let instrument = self.instruments.iter().find(|i| i.symbol == f.symbol);
                self.last_instrument = Some((f.symbol.clone(), instrument));
                instrument
            }
        };
        let flat = |q: Decimal| Instrument::is_flat(instrument, q);
        let base = instrument.map(|i| i.base_asset.as_str()).unwrap_or_default();
        // What the fill adds to the holding, its commission's value, and the
        // part of that value the notionals do not already show.
        let held_qty = f.position_delta(base).abs();
        let fee_value = f.fee_value(base);
        let pnl_fee = if f.fee_asset == base { Decimal::ZERO } else { f.fee };
        let mut qty = held_qty;
        let signed = |q: Decimal| if f.side == Side::Buy { q } else { -q };
        let (open, out) = (&mut self.open, &mut self.out);
        while qty > Decimal::ZERO {
            let mine =
                |(strategy, symbol, _): &(StrategyId, Symbol, Open)| *strategy == f.strategy_id && *symbol == f.symbol;
            if !open.get(self.last_trade).is_some_and(mine) {
                self.last_trade = match open.iter().position(mine) {
                    Some(k) => k,
                    None => {
                        open.push((f.strategy_id.clone(), f.symbol.clone(), Open::default()));
                        open.len() - 1
                    }
                };
            }
            let t = &mut open[self.last_trade].2;
            let part = |amount: Decimal| if held_qty.is_zero() { Decimal::ZERO } else { amount * qty / held_qty };
            if flat(t.position) {
                *t = Open { entry_time: f.ts_ms, ..Open::default() };
            }
            let increasing = t.position.is_zero() || (t.position > Decimal::ZERO) == (f.side == Side::Buy);
            if increasing {
                let gross = part(f.qty);
                t.position += signed(qty);
                t.entry_qty += gross;
                t.entry_notional += gross * f.price;
                t.fees += part(fee_value);
                t.pnl_fees += part(pnl_fee);
                break;
            }
            let closing = qty.min(t.position.abs());
            let share = |amount: Decimal| if held_qty.is_zero() { Decimal::ZERO } else { amount * closing / held_qty };
            t.position += signed(closing);
            t.exit_qty += closing;
            t.exit_notional += closing * f.price;
            t.fees += share(fee_value);
            t.pnl_fees += share(pnl_fee);
            qty -= closing;
            if flat(t.position) {
                let long = f.side == Side::Sell;
                let entry_price = t.entry_notional / t.entry_qty;
                let exit_price = t.exit_notional / t.exit_qty;
                let gross = if long { t.exit_notional - t.entry_notional } else { t.entry_notional - t.exit_notional };
                out.push(RoundTrip {
                    strategy: f.strategy_id.clone(),
                    symbol: f.symbol.clone(),
                    direction: if long { "long" } else { "short" },
                    entry_time: t.entry_time,
                    entry_price: entry_price.round_dp(12).normalize(),
                    exit_time: f.ts_ms,
                    exit_price: exit_price.round_dp(12).normalize(),
                    qty: t.entry_qty,
                    pnl: (gross - t.pnl_fees).normalize(),
                    fees: t.fees.normalize(),
                });
                *t = Open::default();
            }
        }
    }

    /// The round trips, and the entry times of trades still open.
    pub fn finish(mut self) -> (Vec<RoundTrip>, Vec<i64>) {
        self.open.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
        let instruments = self.instruments;
        let still_open = self
            .open
            .iter()
            .filter(|(_, symbol, t)| !Instrument::is_flat(instruments.iter().find(|i| i.symbol == *symbol), t.position))
            .map(|(_, _, t)| t.entry_time)
            .collect();
        (self.out, still_open)
    }
}

/// Round-trip figures of one strategy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategySummary {
    /// Strategy id.
    pub strategy: String,
    /// Round trips.
    pub round_trips: usize,
    /// Share of round trips with PnL > 0.
    pub win_rate: Option<f64>,
    /// Sum of round-trip PnL (after fees).
    pub net_pnl: Decimal,
}

/// The whole report (written as JSON by `--report`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// First bar's open time (ISO 8601, UTC).
    pub start: String,
    /// Last bar's close time.
    pub end: String,
    /// Bars replayed (all symbols).
    pub bars: usize,
    /// Symbols.
    pub symbols: Vec<String>,
    /// Strategy ids.
    pub strategies: Vec<String>,
    /// The currency equity is measured in.
    pub currency: String,
    /// Equity before the first bar.
    pub initial_equity: Decimal,
    /// Equity after the last bar (open positions at the last close).
    pub final_equity: Decimal,
    /// final / initial − 1.
    pub total_return: Option<f64>,
    /// Compound annual growth rate.
    pub cagr: Option<f64>,
    /// Annualised standard deviation of returns.
    pub annualized_volatility: Option<f64>,
    /// Annualised mean / standard deviation of returns (risk-free rate 0).
    pub sharpe: Option<f64>,
    /// Annualised mean / downside deviation of returns (risk-free rate 0).
    pub sortino: Option<f64>,
    /// Largest peak-to-trough fall of equity, as a fraction of the peak.
    pub max_drawdown: f64,
    /// From the peak before the largest drawdown until equity regained it (or the end), ms.
    pub max_drawdown_duration_ms: i64,
    /// The same, readable (`12d 4h`).
    pub max_drawdown_duration: String,
    /// Round trips (flat to flat).
    pub round_trips: usize,
    /// Share of round trips with PnL > 0.
    pub win_rate: Option<f64>,
    /// Mean PnL of winning round trips.
    pub avg_win: Option<Decimal>,
    /// Mean PnL of losing round trips (negative).
    pub avg_loss: Option<Decimal>,
    /// Gross profit / gross loss of round trips.
    pub profit_factor: Option<f64>,
    /// Share of time with an open position.
    pub exposure_time: f64,
    /// Fees paid, in the currency.
    pub fees_paid: Decimal,
    /// Fills.
    pub fills: usize,
    /// Orders that passed the risk engine.
    pub orders: usize,
    /// Intents the risk engine refused, by reason code.
    pub risk_rejections: BTreeMap<String, u64>,
    /// Orders the matching core refused, by reason.
    pub venue_rejections: BTreeMap<String, u64>,
    /// Orders still open or unsent when the data ended.
    pub unfilled_at_end: usize,
    /// Exits by reason (`stop_loss`, `take_profit`, `trailing_stop`, `roi`,
    /// `max_hold`, `signal`): exit orders filled, and strategy sells of
    /// positions that had exits.
    pub exits: BTreeMap<String, u64>,
    /// Per strategy.
    pub per_strategy: Vec<StrategySummary>,
    /// What the risk engine's portfolio protections did (`time code: reason`).
    pub protection_events: Vec<String>,
    /// Strategies paused by a panic.
    pub failures: Vec<String>,
}

/// ISO 8601 UTC for ms since the epoch.
pub fn iso(ms: i64) -> String {
    keel_core::when::utc(ms)
}

/// A duration as `3d 4h 5m` (largest units only).
pub fn human_duration(ms: i64) -> String {
    let mins = ms.max(0) / 60_000;
    let (d, h, m) = (mins / 1440, (mins / 60) % 24, mins % 60);
    match (d, h, m) {
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

/// Drawdown statistics of an equity curve: (max drawdown fraction, its duration in ms).
pub fn drawdown(eq: &EquityCurve) -> (f64, i64) {
    let Some((depth, start, end)) = deepest_drawdown(eq.values()) else { return (0.0, 0) };
    // Two times looked up, not one per point (evenly spaced bars: computed).
    let time = |k: usize| eq.iter().nth(k).map_or(0, |p| p.ts_ms);
    (depth, time(end) - time(start))
}

/// The deepest drawdown of `values`: its depth (a fraction of its peak), the
/// peak's index and the index it ends at (the first point back at or above
/// the peak, else the last point). `None` when nothing falls below a
/// positive peak.
fn deepest_drawdown(values: &[f64]) -> Option<(f64, usize, usize)> {
    let mut peak = f64::MIN;
    let mut peak_at = 0;
    let mut max_dd = 0.0;
    let mut max_peak = None;
    for (k, &e) in values.iter().enumerate() {
        if e >= peak {
            peak = e;
            peak_at = k;
        } else if peak > 0.0 {
            let dd = 1.0 - e / peak;
            if dd > max_dd {
                max_dd = dd;
                max_peak = Some((peak_at, peak));
            }
        }
    }
    let (start, start_equity) = max_peak?;
    // Recovery: the first point after the trough back at or above that peak.
    let end = values[start + 1..].iter().position(|&e| e >= start_equity).map_or(values.len() - 1, |j| start + 1 + j);
    Some((max_dd, start, end))
}

/// What the report reads from the equity curve: the median step between its
/// points, the moments of its returns and its drawdown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveStats {
    median_step: Option<i64>,
    count: usize,
    sum: f64,
    squares: f64,
    downs: f64,
    max_drawdown: f64,
    drawdown_ms: i64,
}

impl CurveStats {
    /// The statistics of `outcome`'s equity curve: three independent passes
    /// over it, run side by side.
    pub fn of(outcome: &Outcome) -> Self {
        let eq = &outcome.equity;
        let initial = f(outcome.initial_equity);
        let (median_step, ((count, sum, squares, downs), (max_drawdown, drawdown_ms))) =
            rayon::join(|| median_step(eq), || rayon::join(|| return_moments(eq, initial), || drawdown(eq)));
        Self { median_step, count, sum, squares, downs, max_drawdown, drawdown_ms }
    }
}

/// The median step between the curve's points, from a count of each step
/// (few distinct ones).
fn median_step(eq: &EquityCurve) -> Option<i64> {
    if let Some(step) = eq.regular_step() {
        // Evenly spaced bars: every step is the spacing.
        return (eq.len() >= 2 && step > 0).then_some(step);
    }
    let mut step_counts: BTreeMap<i64, usize> = BTreeMap::new();
    let mut prev_ts = None;
    // Steps repeat in runs (evenly spaced bars): a run is counted at its end,
    // not with a map look-up per point.
    let mut run: Option<(i64, usize)> = None;
    for p in eq.iter() {
        if let Some(d) = prev_ts.map(|t| p.ts_ms - t).filter(|d| *d > 0) {
            match &mut run {
                Some((step, n)) if *step == d => *n += 1,
                _ => {
                    if let Some((step, n)) = run.replace((d, 1)) {
                        *step_counts.entry(step).or_default() += n;
                    }
                }
            }
        }
        prev_ts = Some(p.ts_ms);
    }
    if let Some((step, n)) = run {
        *step_counts.entry(step).or_default() += n;
    }
    let mut middle = step_counts.values().sum::<usize>() / 2;
    step_counts.iter().find_map(|(step, count)| {
        if middle < *count {
            return Some(*step);
        }
        middle -= count;
        None
    })
}

/// The returns between consecutive points, starting from `initial`: their
/// count, their sum, the sum of squared deviations from their mean and the
/// sum of squared negative returns. Computed on the fly (twice) rather than
/// held, as memory is per bar; each sum adds the same terms in the same
/// order, from -0.0, as `Iterator::sum` (see [`each_return`]).
fn return_moments(eq: &EquityCurve, initial: f64) -> (usize, f64, f64, f64) {
    let values = eq.values();
    let (mut count, mut sum) = (0usize, -0.0);
    each_return(values, initial, |r| {
        count += 1;
        sum += r;
    });
    if count < 2 {
        return (count, sum, -0.0, -0.0);
    }
    let mean = sum / count as f64;
    let (mut squares, mut downs) = (-0.0, -0.0);
    each_return(values, initial, |r| {
        squares += (r - mean).powi(2);
        downs += r.min(0.0).powi(2);
    });
    (count, sum, squares, downs)
}

/// Calls `add` with each return `e / prev - 1` between consecutive values
/// (the first against `initial`), in order, skipping those from a value that
/// is not positive. The returns are computed a block at a time apart from the
/// sums, so the divisions run side by side (the sums, in order, cannot); each
/// is the same `f64` either way.
fn each_return(values: &[f64], initial: f64, mut add: impl FnMut(f64)) {
    const BLOCK: usize = 256;
    let mut returns = [0.0f64; BLOCK];
    let mut prev = initial;
    for block in values.chunks(BLOCK) {
        let n = block.len();
        let returns = &mut returns[..n];
        // Each value over its predecessor: the block's first over the last
        // value before it, the others over their neighbour, on plain slices
        // (which the compiler turns into vector divisions).
        returns[0] = block[0] / prev - 1.0;
        for ((r, &e), &p) in returns[1..].iter_mut().zip(&block[1..]).zip(&block[..n - 1]) {
            *r = e / p - 1.0;
        }
        let all_positive = prev > 0.0 && block[..n - 1].iter().fold(true, |all, &p| all & (p > 0.0));
        if all_positive {
            returns.iter().for_each(|&r| add(r));
        } else {
            let before = std::iter::once(prev).chain(block.iter().copied());
            returns.iter().zip(before).filter(|(_, p)| *p > 0.0).for_each(|(&r, _)| add(r));
        }
        prev = block[n - 1];
    }
}

/// What the report reads from the round trips: one pass over them, apart from
/// the report so that it can run beside the curve's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeStats {
    round_trips: usize,
    wins: usize,
    losses: usize,
    gross_win: Decimal,
    gross_loss: Decimal,
    /// Per strategy: round trips, wins and net PnL.
    per: BTreeMap<String, (usize, usize, Decimal)>,
}

impl TradeStats {
    /// The statistics of `trips`, with a line for each of `strategies` (and
    /// for any other strategy that traded).
    pub fn of(trips: &[RoundTrip], strategies: &[String]) -> Self {
        let mut per: BTreeMap<String, (usize, usize, Decimal)> =
            strategies.iter().map(|s| (s.clone(), (0, 0, Decimal::ZERO))).collect();
        let (mut wins, mut losses, mut gross_win, mut gross_loss) = (0, 0, Decimal::ZERO, Decimal::ZERO);
        // A run's trips mostly follow each other by strategy: its line is
        // looked up when the strategy changes.
        let mut line: Option<(&str, (usize, usize, Decimal))> = None;
        for t in trips {
            let won = t.pnl > Decimal::ZERO;
            if won {
                wins += 1;
                gross_win += t.pnl;
            } else {
                losses += 1;
                gross_loss += t.pnl;
            }
            let strategy = t.strategy.as_str();
            if line.as_ref().is_some_and(|(s, _)| *s != strategy) {
                if let Some((s, counts)) = line.take() {
                    per.insert(s.to_string(), counts);
                }
            }
            let (_, e) = line.get_or_insert_with(|| (strategy, per.get(strategy).copied().unwrap_or_default()));
            e.0 += 1;
            e.1 += usize::from(won);
            e.2 += t.pnl;
        }
        if let Some((s, counts)) = line {
            per.insert(s.to_string(), counts);
        }
        Self { round_trips: trips.len(), wins, losses, gross_win, gross_loss, per }
    }
}

/// Builds the report.
///
/// `trades` is [`TradeStats::of`] the round trips and `curve` is
/// [`CurveStats::of`] the outcome: computed apart so that they can run side
/// by side; the last argument is the period's first and last time.
pub fn build(
    outcome: &Outcome,
    trades: TradeStats,
    curve: CurveStats,
    symbols: Vec<String>,
    strategies: Vec<String>,
    currency: &str,
    (start_ms, end_ms): (i64, i64),
) -> Report {
    let eq = &outcome.equity;
    let initial = f(outcome.initial_equity);
    let final_ = f(outcome.final_equity);
    let total_return = (initial > 0.0).then(|| final_ / initial - 1.0);
    let years = (end_ms - start_ms) as f64 / YEAR_MS;
    let cagr = total_return.filter(|_| years > 0.0 && final_ > 0.0).map(|_| (final_ / initial).powf(1.0 / years) - 1.0);

    let CurveStats { median_step, count, sum, squares, downs, max_drawdown: max_dd, drawdown_ms: dd_ms } = curve;
    let periods_per_year = median_step.map(|s| YEAR_MS / s as f64);
    let n = count as f64;
    let (vol, sharpe, sortino) = match periods_per_year {
        Some(ppy) if count >= 2 => {
            let mean = sum / n;
            let var = squares / (n - 1.0);
            let sd = var.sqrt();
            let downside = (downs / n).sqrt();
            let ann = ppy.sqrt();
            (Some(sd * ann), (sd > 0.0).then(|| mean / sd * ann), (downside > 0.0).then(|| mean / downside * ann))
        }
        _ => (None, None, None),
    };
    let exposure = if eq.is_empty() { 0.0 } else { eq.exposed_count() as f64 / eq.len() as f64 };

    let TradeStats { round_trips, wins, losses, gross_win, gross_loss, per } = trades;
    // The same sum over the same trips, in the same order, as the gross figures.
    let mean = |sum: Decimal, n: usize| (n > 0).then(|| (sum / Decimal::from(n)).round_dp(8));
    Report {
        start: iso(start_ms),
        end: iso(end_ms),
        bars: outcome.bars,
        symbols,
        strategies,
        currency: currency.to_string(),
        initial_equity: outcome.initial_equity.normalize(),
        final_equity: outcome.final_equity.round_dp(8).normalize(),
        total_return,
        cagr,
        annualized_volatility: vol,
        sharpe,
        sortino,
        max_drawdown: max_dd,
        max_drawdown_duration_ms: dd_ms,
        max_drawdown_duration: human_duration(dd_ms),
        round_trips,
        win_rate: (round_trips > 0).then(|| wins as f64 / round_trips as f64),
        avg_win: mean(gross_win, wins),
        avg_loss: mean(gross_loss, losses),
        profit_factor: (!gross_loss.is_zero()).then(|| f(gross_win) / f(-gross_loss)),
        exposure_time: exposure,
        fees_paid: outcome.fees_paid.normalize(),
        fills: outcome.fills.len(),
        orders: outcome.orders.len(),
        risk_rejections: outcome.risk_rejections.clone(),
        venue_rejections: outcome.venue_rejections.clone(),
        unfilled_at_end: outcome.unfilled_at_end,
        exits: outcome.exits.clone(),
        per_strategy: per
            .into_iter()
            .map(|(strategy, (n, w, pnl))| StrategySummary {
                strategy,
                round_trips: n,
                win_rate: (n > 0).then(|| w as f64 / n as f64),
                net_pnl: pnl.normalize(),
            })
            .collect(),
        protection_events: outcome
            .protection_events
            .iter()
            .map(|e| format!("{} {}: {}", iso(e.ts_ms), e.code, e.reason))
            .collect(),
        failures: outcome.failures.clone(),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}%", x * 100.0)).unwrap_or_else(|| "n/a".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into())
}

fn money(v: Option<Decimal>, currency: &str) -> String {
    v.map(|x| format!("{} {currency}", x.round_dp(2))).unwrap_or_else(|| "n/a".into())
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
}

impl Report {
    /// The report as an aligned two-column table.
    pub fn table(&self) -> String {
        let c = &self.currency;
        let rows: Vec<(&str, String)> = vec![
            ("Period", format!("{} → {}", self.start, self.end)),
            ("Bars", format!("{} ({})", self.bars, self.symbols.join(", "))),
            ("Strategies", self.strategies.join(", ")),
            ("Initial equity", money(Some(self.initial_equity), c)),
            ("Final equity", money(Some(self.final_equity), c)),
            ("Total return", pct(self.total_return)),
            ("CAGR", pct(self.cagr)),
            ("Volatility (ann.)", pct(self.annualized_volatility)),
            ("Sharpe", num(self.sharpe)),
            ("Sortino", num(self.sortino)),
            ("Max drawdown", format!("{:.2}% over {}", self.max_drawdown * 100.0, self.max_drawdown_duration)),
            ("Round trips", self.round_trips.to_string()),
            ("Win rate", pct(self.win_rate)),
            ("Avg win", money(self.avg_win, c)),
            ("Avg loss", money(self.avg_loss, c)),
            ("Profit factor", num(self.profit_factor)),
            ("Exposure time", pct(Some(self.exposure_time))),
            ("Fees paid", money(Some(self.fees_paid), c)),
            ("Orders / fills", format!("{} / {}", self.orders, self.fills)),
            ("Risk rejections", counts(&self.risk_rejections)),
            ("Venue rejections", counts(&self.venue_rejections)),
            ("Unfilled at end", self.unfilled_at_end.to_string()),
            ("Exits", counts(&self.exits)),
            ("Protection events", self.protection_events.len().to_string()),
        ];
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        let _ = writeln!(out, "Backtest report");
        let _ = writeln!(out, "{}", "─".repeat(width + 40));
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        if self.per_strategy.len() > 1 {
            let _ = writeln!(out, "{}", "─".repeat(width + 40));
            for s in &self.per_strategy {
                let _ = writeln!(
                    out,
                    "{:<width$}  {} round trips, win rate {}, net {} {c}",
                    s.strategy,
                    s.round_trips,
                    pct(s.win_rate),
                    s.net_pnl.round_dp(2)
                );
            }
        }
        for e in self.protection_events.iter().take(10) {
            let _ = writeln!(out, "  {e}");
        }
        if self.protection_events.len() > 10 {
            let _ = writeln!(out, "  … {} more in the JSON report", self.protection_events.len() - 10);
        }
        for f in &self.failures {
            let _ = writeln!(out, "FAILED: {f}");
        }
        out
    }
}

/// Writes round trips as CSV.
pub fn write_trades(out: impl Write, trips: &[RoundTrip]) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "strategy",
        "symbol",
        "direction",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "qty",
        "pnl",
        "fees",
    ])?;
    for t in trips {
        w.write_record([
            t.strategy.to_string(),
            t.symbol.to_string(),
            t.direction.to_string(),
            iso(t.entry_time),
            t.entry_price.to_string(),
            iso(t.exit_time),
            t.exit_price.to_string(),
            t.qty.to_string(),
            t.pnl.to_string(),
            t.fees.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn fill(side: Side, price: &str, qty: &str, fee: &str, ts: i64) -> Fill {
        Fill {
            trade_id: (ts as u64).into(),
            client_order_id: "c".into(),
            strategy_id: "s".into(),
            symbol: "X".into(),
            side,
            price: d(price),
            qty: d(qty),
            fee: d(fee),
            fee_asset: "USDT".into(),
            is_maker: false,
            ts_ms: ts,
            tag: None,
        }
    }

    #[test]
    fn round_trip_table() {
        struct Case {
            name: &'static str,
            fills: Vec<Fill>,
            want: Vec<(&'static str, &'static str, &'static str, &'static str, &'static str)>,
        }
        let cases = vec![
            Case {
                name: "one long trade",
                fills: vec![fill(Side::Buy, "100", "2", "0.2", 1), fill(Side::Sell, "110", "2", "0.22", 2)],
                want: vec![("long", "100", "110", "2", "19.58")],
            },
            Case {
                name: "scale in, scale out",
                fills: vec![
                    fill(Side::Buy, "100", "1", "0", 1),
                    fill(Side::Buy, "200", "1", "0", 2),
                    fill(Side::Sell, "150", "1", "0", 3),
                    fill(Side::Sell, "250", "1", "0", 4),
                ],
                want: vec![("long", "150", "200", "2", "100")],
            },
            Case {
                name: "flip splits the fill and its fee",
                fills: vec![
                    fill(Side::Buy, "100", "1", "0", 1),
                    fill(Side::Sell, "90", "2", "2", 2),
                    fill(Side::Buy, "80", "1", "0", 3),
                ],
                want: vec![("long", "100", "90", "1", "-11"), ("short", "90", "80", "1", "9")],
            },
            Case {
                name: "open at the end is not a round trip",
                fills: vec![fill(Side::Buy, "100", "1", "0", 1)],
                want: vec![],
            },
        ];
        for c in cases {
            let got: Vec<_> = round_trips(&c.fills, &[])
                .into_iter()
                .map(|t| (t.direction, t.entry_price, t.exit_price, t.qty, t.pnl))
                .collect();
            let want: Vec<_> = c.want.iter().map(|w| (w.0, d(w.1), d(w.2), d(w.3), d(w.4))).collect();
            assert_eq!(got, want, "{}", c.name);
        }
    }

    #[test]
    fn a_commission_in_the_base_asset_leaves_dust_and_is_valued() {
        let instrument = Instrument {
            symbol: "X".into(),
            base_asset: "B".into(),
            quote_asset: "USDT".into(),
            tick_size: d("0.01"),
            min_price: d("0.01"),
            max_price: Decimal::ZERO,
            step_size: d("0.01"),
            min_qty: d("0.01"),
            max_qty: Decimal::ZERO,
            market_step_size: d("0.01"),
            min_notional: Decimal::ZERO,
            max_notional: Decimal::ZERO,
            max_num_orders: 200,
            status: keel_core::instrument::SymbolStatus::Trading,
        };
        // Buy 1 paying 0.001 B: 0.999 held, 0.99 can be sold, 0.009 is dust.
        let buy = Fill { fee_asset: "B".into(), ..fill(Side::Buy, "100", "1", "0.001", 1) };
        let sell = fill(Side::Sell, "110", "0.99", "0.1089", 2);
        let trips = round_trips(&[buy.clone(), sell.clone()], std::slice::from_ref(&instrument));
        assert_eq!(trips.len(), 1, "selling all that can be sold ends the trade: {trips:?}");
        let t = &trips[0];
        assert_eq!((t.qty, t.exit_price), (d("1"), d("110")));
        // Paid 100, got 108.9 less the quote fee; the base fee is in the smaller sale.
        assert_eq!(t.pnl, d("8.7911"));
        assert_eq!(t.fees, d("0.2089"), "0.001 B at 100 plus 0.1089 USDT");
        // Without the instrument the dust keeps the trade open.
        assert!(round_trips(&[buy, sell], &[]).is_empty());
    }

    /// The returns and their sums, as the plain walk over the curve computes them.
    fn plain_moments(values: &[f64], initial: f64) -> (Vec<u64>, (usize, f64, f64, f64)) {
        let returns: Vec<f64> = std::iter::once(initial)
            .chain(values.iter().copied())
            .zip(values)
            .filter(|&(p, _)| p > 0.0)
            .map(|(p, &e)| e / p - 1.0)
            .collect();
        let (count, sum) = (returns.len(), returns.iter().sum::<f64>());
        let bits = returns.iter().map(|r| r.to_bits()).collect();
        if count < 2 {
            return (bits, (count, sum, -0.0, -0.0));
        }
        let mean = sum / count as f64;
        let squares = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>();
        let downs = returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>();
        (bits, (count, sum, squares, downs))
    }

    #[test]
    fn returns_by_block_are_the_plain_walks_bit_for_bit() {
        // A seeded walk, with points that are not positive placed across block edges.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut walk = |n: usize| -> Vec<f64> {
            let mut v = 1000.0;
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v *= 1.0 + ((x % 2001) as f64 - 1000.0) / 1e5;
                    v
                })
                .collect()
        };
        for (n, bad, initial) in [
            (0, vec![], 1000.0),
            (1, vec![], 1000.0),
            (2, vec![], 0.0),
            (255, vec![], 1000.0),
            (256, vec![255], 1000.0),
            (257, vec![0, 256], -5.0),
            (1000, vec![3, 255, 256, 511, 512, 999], 1000.0),
            (5000, (0..5000).step_by(7).collect(), 1000.0),
        ] {
            let mut values = walk(n);
            for (k, &i) in bad.iter().enumerate() {
                values[i] = if k % 2 == 0 { 0.0 } else { -1.5 };
            }
            let mut got = Vec::new();
            each_return(&values, initial, |r| got.push(r.to_bits()));
            let (want, moments) = plain_moments(&values, initial);
            assert_eq!(got, want, "{n} points, not positive at {bad:?}");
            let mut eq = EquityCurve::default();
            values.iter().for_each(|&v| eq.push(v, false));
            let (count, sum, squares, downs) = return_moments(&eq, initial);
            let bits = |m: (usize, f64, f64, f64)| (m.0, m.1.to_bits(), m.2.to_bits(), m.3.to_bits());
            assert_eq!(bits((count, sum, squares, downs)), bits(moments), "{n} points, not positive at {bad:?}");
        }
    }

    #[test]
    fn trade_stats_are_the_trips_counted_one_by_one() {
        let trip = |strategy: &str, pnl: &str| RoundTrip {
            strategy: strategy.into(),
            symbol: "X".into(),
            direction: "long",
            entry_time: 0,
            entry_price: d("1"),
            exit_time: 1,
            exit_price: d("1"),
            qty: d("1"),
            pnl: d(pnl),
            fees: Decimal::ZERO,
        };
        let strategies = vec!["a".to_string(), "b".to_string(), "idle".to_string()];
        let pnls = ["1.5", "-0.25", "0", "2.125", "-3", "0.0000001", "-0.5", "4"];
        // Runs of one strategy, strategies taking turns, and one missing from the list.
        let owners = ["a", "a", "b", "a", "c", "c", "b", "a"];
        let trips: Vec<RoundTrip> = owners.iter().zip(pnls).map(|(s, p)| trip(s, p)).collect();
        let stats = TradeStats::of(&trips, &strategies);
        let (wins, losses): (Vec<&RoundTrip>, Vec<&RoundTrip>) = trips.iter().partition(|t| t.pnl > Decimal::ZERO);
        assert_eq!((stats.round_trips, stats.wins, stats.losses), (8, wins.len(), losses.len()));
        assert_eq!(stats.gross_win, wins.iter().map(|t| t.pnl).sum::<Decimal>());
        assert_eq!(stats.gross_loss, losses.iter().map(|t| t.pnl).sum::<Decimal>());
        let line = |s: &str| {
            let of: Vec<&RoundTrip> = trips.iter().filter(|t| t.strategy.as_str() == s).collect();
            (of.len(), of.iter().filter(|t| t.pnl > Decimal::ZERO).count(), of.iter().map(|t| t.pnl).sum::<Decimal>())
        };
        let want: BTreeMap<String, _> = ["a", "b", "c", "idle"].iter().map(|s| (s.to_string(), line(s))).collect();
        assert_eq!(stats.per, want);
        assert_eq!(TradeStats::of(&[], &strategies).per.len(), 3, "a line for each strategy, even without trips");
    }

    #[test]
    fn drawdown_and_duration() {
        let values = [100.0, 120.0, 90.0, 110.0, 121.0, 115.0];
        let (dd, peak, end) = deepest_drawdown(&values).unwrap();
        assert!((dd - 0.25).abs() < 1e-12, "{dd}");
        assert_eq!((peak, end), (1, 4), "from the peak at 120 to the recovery at 121");
        let (dd, peak, end) = deepest_drawdown(&[100.0, 120.0, 90.0, 110.0]).unwrap();
        assert_eq!((dd, peak, end), (0.25, 1, 3), "not recovered: to the last point");
        assert_eq!(deepest_drawdown(&[100.0, 101.0, 101.0]), None);
        assert_eq!(human_duration(90 * 60_000), "1h 30m");
        assert_eq!(human_duration(3 * 86_400_000 + 5 * 3_600_000), "3d 5h");
    }
}
