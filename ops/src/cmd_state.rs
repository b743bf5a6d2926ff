//! `keel state`, `keel halt` and `keel resume`: work on the store of a stopped engine.

use std::path::Path;

use keel_core::clock::{Clock, SystemClock};
use keel_core::error::StoreError;
use keel_core::order::Order;
use keel_core::position::Position;
use keel_core::store::Store;
use keel_core::trading::{EmergencyStop, TradingState};
use keel_store::SledStore;
use serde::Serialize;

use crate::cli::{HaltArgs, ResumeArgs, StateArgs};
use crate::settings;

/// What `keel state --json` prints.
#[derive(Debug, Serialize)]
pub struct StateReport {
    /// `ACTIVE`, `REDUCING` or `HALTED`.
    pub trading_state: TradingState,
    /// Why the engine is in that state.
    pub trading_state_reason: String,
    /// True while the emergency stop is set.
    pub emergency_stop: bool,
    /// Why it was set.
    pub emergency_stop_reason: Option<String>,
    /// Full emergency-stop record (who set or cleared it, when).
    pub emergency_stop_record: EmergencyStop,
    /// Positions recomputed from the recorded fills.
    pub positions: Vec<PositionRow>,
    /// Orders not yet final.
    pub open_orders: Vec<Order>,
    /// Number of orders ever created.
    pub orders_total: usize,
    /// Number of fills recorded.
    pub fills_total: usize,
    /// Limits, their usage and the protections' current values (when the config is readable).
    pub risk: Option<risk::RiskSnapshot>,
}

/// One position line.
#[derive(Debug, Serialize)]
pub struct PositionRow {
    /// Symbol.
    pub symbol: String,
    /// Net quantity.
    pub qty: String,
    /// Average entry price.
    pub avg_price: String,
    /// Realized PnL before fees.
    pub realized_pnl: String,
    /// Fees paid.
    pub fees: String,
}

fn open(dir: &Path) -> anyhow::Result<SledStore> {
    match SledStore::open(dir) {
        Ok(s) => Ok(s),
        Err(StoreError::Locked { path }) => {
            anyhow::bail!(
                "the engine is running on {path} (its store is locked): use the HTTP API or Telegram, or stop it first"
            )
        }
        Err(e) => anyhow::bail!("cannot read the store at {}: {e}", dir.display()),
    }
}

/// Reads the state report from a store.
pub fn report(store: &dyn Store, config: Option<&crate::config::Config>) -> anyhow::Result<StateReport> {
    let stop = store.emergency_stop()?;
    let state = store.trading_state()?;
    let (trading_state, reason) = match (&stop, state) {
        (s, _) if s.active => {
            (TradingState::Halted, format!("emergency stop: {}", s.reason.clone().unwrap_or_default()))
        }
        (_, Some(r)) => (r.state, r.reason),
        (_, None) => (TradingState::Active, "never started".into()),
    };
    let fills = store.fills()?;
    // Positions are derived from the fills: the store's position cache is only a cache.
    let mut positions: std::collections::BTreeMap<String, Position> = Default::default();
    let cached = store.positions()?;
    for fill in &fills {
        let p = positions.entry(fill.symbol.to_string()).or_insert_with(|| Position::flat(fill.symbol.clone()));
        let (base, quote) = split_assets(&fill.symbol, &fill.fee_asset);
        p.apply_fill(fill, &base, &quote);
    }
    for c in cached {
        positions.entry(c.symbol.to_string()).or_insert(c);
    }
    Ok(StateReport {
        trading_state,
        trading_state_reason: reason,
        emergency_stop: stop.active,
        emergency_stop_reason: stop.reason.clone(),
        emergency_stop_record: stop,
        positions: positions
            .into_values()
            .map(|p| PositionRow {
                symbol: p.symbol.to_string(),
                qty: p.qty.normalize().to_string(),
                avg_price: p.avg_price.round_dp(8).normalize().to_string(),
                realized_pnl: p.realized_pnl.normalize().to_string(),
                fees: p.fees.normalize().to_string(),
            })
            .collect(),
        open_orders: store.open_orders()?,
        orders_total: store.order_count()?,
        fills_total: fills.len(),
        risk: config.map(|c| risk::offline_snapshot(c.risk.clone(), c.instruments(), store, SystemClock.now_ms())),
    })
}

/// Base and quote assets of a symbol, using the fee asset as the quote hint
/// (fees are charged in the quote asset on the venues Keel simulates).
fn split_assets(symbol: &str, fee_asset: &str) -> (String, String) {
    for quote in [fee_asset, "USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR"] {
        if !quote.is_empty() && symbol.len() > quote.len() && symbol.ends_with(quote) {
            return (symbol[..symbol.len() - quote.len()].to_string(), quote.to_string());
        }
    }
    (String::new(), fee_asset.to_string())
}

/// `keel state`.
pub fn state(args: StateArgs) -> anyhow::Result<()> {
    let (config, _) = settings::load(args.config.as_deref())?;
    let dir = settings::data_dir(&config, args.data_dir.as_ref());
    let config = Some(config);
    let store = open(&dir)?;
    let r = report(&store, config.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("trading state : {} ({})", r.trading_state.as_str(), r.trading_state_reason);
    match (&r.emergency_stop, &r.emergency_stop_record) {
        (true, rec) => println!(
            "emergency stop: SET — {} (by {}, at {})",
            rec.reason.as_deref().unwrap_or("?"),
            rec.set_by.as_deref().unwrap_or("?"),
            rec.set_at_ms.map(format_ms).unwrap_or_default()
        ),
        (false, rec) => match (&rec.cleared_by, rec.cleared_at_ms) {
            (Some(by), Some(at)) => println!("emergency stop: clear (last cleared by {by} at {})", format_ms(at)),
            _ => println!("emergency stop: clear"),
        },
    }
    println!("orders        : {} total, {} open", r.orders_total, r.open_orders.len());
    println!("fills         : {}", r.fills_total);
    if r.positions.is_empty() {
        println!("positions     : none");
    } else {
        println!("positions:");
        println!("  {:<12} {:>16} {:>16} {:>16} {:>12}", "symbol", "qty", "avg_price", "realized_pnl", "fees");
        for p in &r.positions {
            println!("  {:<12} {:>16} {:>16} {:>16} {:>12}", p.symbol, p.qty, p.avg_price, p.realized_pnl, p.fees);
        }
    }
    if let Some(risk) = &r.risk {
        println!("risk:");
        for line in risk.to_string().lines() {
            println!("  {line}");
        }
    }
    if !r.open_orders.is_empty() {
        println!("open orders:");
        for o in &r.open_orders {
            println!(
                "  {} {} {} {} {} qty {} filled {} ({:?})",
                o.client_order_id,
                o.strategy_id,
                o.symbol,
                o.side.as_str(),
                o.order_type.label(),
                o.qty,
                o.filled_qty,
                o.status
            );
        }
    }
    Ok(())
}

fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `keel halt`.
pub fn halt(args: HaltArgs) -> anyhow::Result<()> {
    if args.reason.trim().is_empty() {
        anyhow::bail!("--reason must not be empty");
    }
    let dir = settings::data_dir_for_tools(args.config.as_deref(), args.data_dir.as_ref())?;
    let store = open(&dir)?;
    risk::emergency::set(&store, &args.reason, "operator:cli", SystemClock.now_ms())?;
    println!(
        "emergency stop SET in {}: {}. The engine will start HALTED until `keel resume`.",
        dir.display(),
        args.reason
    );
    Ok(())
}

/// `keel resume`: clears the emergency stop and every latched protection.
pub fn resume(args: ResumeArgs) -> anyhow::Result<()> {
    let dir = settings::data_dir_for_tools(args.config.as_deref(), args.data_dir.as_ref())?;
    let store = open(&dir)?;
    let cleared = risk::emergency::clear(&store, "operator:cli", SystemClock.now_ms())?;
    if cleared.was_active {
        println!("emergency stop cleared in {}; protections released; trading state ACTIVE.", dir.display());
    } else {
        println!("emergency stop was not set; protections released; trading state ACTIVE in {}.", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_assets() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(split_assets("BTCUSDT", "USDT"), ("BTC".into(), "USDT".into()));
        assert_eq!(split_assets("ETHBTC", "BNB"), ("ETH".into(), "BTC".into()));
    }
}
