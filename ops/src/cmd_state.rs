//! `keel state` (reads a copy of the store, so the engine may be running),
//! `keel halt` and `keel resume` (work on the store of a stopped engine).

use std::path::Path;

use keel_core::clock::{Clock, SystemClock};
use keel_core::error::StoreError;
use std::collections::BTreeMap;

use keel_core::order::OrderStatus;
use keel_core::store::Store;
use keel_core::trading::{EmergencyStop, TradingState};
use keel_core::Decimal;
use keel_store::SledStore;
use serde::Serialize;

use crate::cli::{HaltArgs, ResumeArgs, StateArgs, StoreAcceptArgs};
use crate::settings;

/// The version of the `keel state --json` document. Tools may rely on every
/// key of a schema; a change that removes or retypes one bumps it.
pub const STATE_SCHEMA: u32 = 1;

/// What `keel state --json` prints (schema 1, documented in the README).
#[derive(Debug, Serialize)]
pub struct StateReport {
    /// [`STATE_SCHEMA`].
    pub schema: u32,
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
    /// The venue the config trades on (`paper`, `sandbox`, `testnet`, `mainnet`).
    pub venue_mode: String,
    /// Positions from the recorded fills.
    pub positions: Vec<PositionRow>,
    /// Orders not yet final.
    pub open_orders: Vec<OpenOrderRow>,
    /// Number of orders ever created.
    pub orders_total: usize,
    /// Number of fills recorded.
    pub fills_total: u64,
    /// The last balances the venue reported: asset → free and locked.
    pub balances: Option<BTreeMap<String, BalanceRow>>,
    /// The account checkpoint the numbers start from (`null`: they are
    /// replayed from every recorded fill).
    pub checkpoint: Option<CheckpointRow>,
    /// Whether the store's derived records agree with its fills.
    pub store_integrity: Integrity,
    /// Limits, their usage and the protections' current values (when the config is readable).
    pub risk: Option<risk::RiskSnapshot>,
    /// The exit set of each position with exits (its resting leg, prices
    /// and trigger state), by strategy then symbol.
    pub exits: Vec<crate::state_exits::ExitRow>,
    /// Exits that filled, by reason (every reason listed).
    pub exits_by_reason: BTreeMap<String, u64>,
}

/// One position line. Amounts are decimal strings.
#[derive(Debug, Serialize)]
pub struct PositionRow {
    /// Symbol.
    pub symbol: String,
    /// Net quantity held: executed quantity less commissions paid in the base asset.
    pub qty: String,
    /// Average entry price.
    pub avg_price: String,
    /// Realized PnL in the quote asset, before fees.
    pub realized_pnl: String,
    /// Commissions paid, by asset, as charged.
    pub fees: BTreeMap<String, String>,
    /// Commissions in the base or quote asset, valued in the quote asset.
    pub fees_value: String,
    /// What cannot be sold: the part of `qty` below the lot step or the
    /// minimum quantity (`null` for a symbol whose instrument is unknown:
    /// neither in the config nor a universe member).
    pub dust: Option<String>,
}

/// One open order.
#[derive(Debug, Serialize)]
pub struct OpenOrderRow {
    /// Keel's client order id.
    pub client_order_id: String,
    /// The strategy that placed it (`operator` for manual orders).
    pub strategy: String,
    /// The strategy's tag for it (e.g. a grid level), if it gave one.
    pub tag: Option<u32>,
    /// Symbol.
    pub symbol: String,
    /// `BUY` or `SELL`.
    pub side: &'static str,
    /// `market`, `limit` or `stop_limit`.
    pub order_type: &'static str,
    /// Limit price, if any.
    pub price: Option<String>,
    /// Ordered quantity.
    pub qty: String,
    /// Filled so far.
    pub filled_qty: String,
    /// Status.
    pub status: OrderStatus,
    /// Created (ms since the epoch).
    pub created_ms: i64,
}

/// One balance.
#[derive(Debug, Serialize)]
pub struct BalanceRow {
    /// Available.
    pub free: String,
    /// Locked in orders.
    pub locked: String,
}

/// Where the account's numbers start from.
#[derive(Debug, Serialize)]
pub struct CheckpointRow {
    /// Store sequence of the last fill the checkpoint includes.
    pub fill_seq: u64,
    /// When it was taken (ms since the epoch).
    pub ts_ms: i64,
}

/// Whether what the store derives agrees with what it records.
#[derive(Debug, Serialize)]
pub struct Integrity {
    /// True when everything read agrees.
    pub ok: bool,
    /// What disagrees, when something does.
    pub reason: Option<String>,
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

/// Reads the state report from a store, with the config's instruments and
/// the universe members' (kept in the store) telling each symbol's assets and
/// lot step.
pub fn report(store: &dyn Store, config: &crate::config::Config) -> anyhow::Result<StateReport> {
    let stop = store.emergency_stop()?;
    let state = store.trading_state()?;
    let (trading_state, reason) = match (&stop, state) {
        // The start refuses such a store, whatever it says of itself.
        _ if store.integrity().is_some() => (
            TradingState::Halted,
            format!(
                "store_integrity: {}; nothing trades until an operator runs `keel store accept`",
                store.integrity().unwrap_or_default()
            ),
        ),
        (s, _) if s.active => {
            (TradingState::Halted, format!("emergency stop: {}", s.reason.clone().unwrap_or_default()))
        }
        (_, Some(r)) => (r.state, r.reason),
        (_, None) => (TradingState::Active, "never started".into()),
    };
    // Universe members' instruments, as the venue listed them when they
    // joined; the config's `[[symbol]]` blocks over them.
    let mut disagreements = Vec::new();
    let mut instruments = keel_core::member_instruments::load(store).unwrap_or_else(|e| {
        disagreements.push(format!("universe members' instruments unreadable (their assets are guessed): {e}"));
        BTreeMap::new()
    });
    instruments.extend(config.instruments().into_iter().map(|i| (i.symbol.clone(), i)));
    // Positions are derived from the fills — the account checkpoint and the
    // fills recorded after it; the store's position cache is only a cache.
    let stored_checkpoint = store.checkpoint()?;
    let mut checkpoint = stored_checkpoint.clone().unwrap_or_default();
    let tail = store.fills_after(checkpoint.fill_seq)?;
    checkpoint.advance(&tail, |fill| match instruments.get(&fill.symbol) {
        Some(i) => (i.base_asset.clone(), i.quote_asset.clone()),
        None => split_assets(&fill.symbol, &fill.fee_asset),
    });
    let account = checkpoint.account;
    for cached in store.positions()? {
        let derived = account.position(&cached.symbol).map(|p| p.qty).unwrap_or_default();
        if derived != cached.qty {
            disagreements
                .push(format!("position cache of {} says {}, the fills say {derived}", cached.symbol, cached.qty));
        }
    }
    let positions = account
        .holdings()
        .map(|h| {
            let p = &h.position;
            let base = instruments.get(&p.symbol).map(|i| i.base_asset.as_str());
            PositionRow {
                symbol: p.symbol.to_string(),
                qty: p.qty.normalize().to_string(),
                avg_price: p.avg_price.round_dp(8).normalize().to_string(),
                realized_pnl: crate::summary::d(p.realized_pnl),
                fees: h.fees.iter().map(|(a, v)| (a.clone(), v.normalize().to_string())).collect(),
                fees_value: crate::summary::d(p.fees),
                dust: instruments.get(&p.symbol).filter(|_| base.is_some()).map(|i| {
                    let held = p.qty.max(Decimal::ZERO);
                    (held - i.tradable_qty(held)).normalize().to_string()
                }),
            }
        })
        .collect();
    let open_orders = store
        .open_orders()?
        .into_iter()
        .map(|o| OpenOrderRow {
            strategy: o.strategy_id.to_string(),
            tag: o.tag.map(|t| t.0),
            symbol: o.symbol.to_string(),
            side: o.side.as_str(),
            order_type: o.order_type.label(),
            price: o.order_type.limit_price().map(|p| p.normalize().to_string()),
            qty: o.qty.normalize().to_string(),
            filled_qty: o.filled_qty.normalize().to_string(),
            status: o.status,
            created_ms: o.created_ms,
            client_order_id: o.client_order_id,
        })
        .collect();
    let exits = crate::state_exits::rows(store.exit_states()?);
    let exits_by_reason = crate::state_exits::by_reason(&store.orders()?, config);
    let balances = store.balances()?.map(|b| {
        b.assets
            .into_iter()
            .map(|(asset, b)| {
                (asset, BalanceRow { free: b.free.normalize().to_string(), locked: b.locked.normalize().to_string() })
            })
            .collect()
    });
    Ok(StateReport {
        schema: STATE_SCHEMA,
        trading_state,
        trading_state_reason: reason,
        emergency_stop: stop.active,
        emergency_stop_reason: stop.reason.clone(),
        emergency_stop_record: stop,
        venue_mode: config.venue.mode.as_str().to_string(),
        positions,
        open_orders,
        orders_total: store.order_count()?,
        fills_total: account.fills_applied(),
        balances,
        checkpoint: stored_checkpoint.map(|c| CheckpointRow { fill_seq: c.fill_seq, ts_ms: c.ts_ms }),
        store_integrity: {
            // Behind its integrity record first: that one stops trading.
            let problems: Vec<String> =
                store.integrity().map(|p| format!("store_integrity: {p}")).into_iter().chain(disagreements).collect();
            Integrity { ok: problems.is_empty(), reason: (!problems.is_empty()).then(|| problems.join("; ")) }
        },
        risk: Some(risk::offline_snapshot(
            config.risk.clone(),
            instruments.into_values().collect(),
            store,
            SystemClock.now_ms(),
        )),
        exits,
        exits_by_reason,
    })
}

/// Base and quote assets of a symbol the config does not list, using the fee
/// asset as a hint.
fn split_assets(symbol: &str, fee_asset: &str) -> (String, String) {
    for quote in [fee_asset, "USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR"] {
        if !quote.is_empty() && symbol.len() > quote.len() && symbol.ends_with(quote) {
            return (symbol[..symbol.len() - quote.len()].to_string(), quote.to_string());
        }
    }
    (String::new(), fee_asset.to_string())
}

/// `keel state`.
pub fn state(args: StateArgs, registry: &strategies::StrategyRegistry) -> anyhow::Result<()> {
    let (config, _) = settings::load(args.config.as_deref(), registry)?;
    let dir = settings::data_dir(&config, args.data_dir.as_ref());
    // A copy: sled writes when it opens, and the engine may be running on it.
    let store =
        SledStore::open_copy(&dir).map_err(|e| anyhow::anyhow!("cannot read the store at {}: {e}", dir.display()))?;
    let r = report(&store, &config)?;
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
    println!("venue         : {}", r.venue_mode);
    match &r.store_integrity {
        Integrity { ok: true, .. } => println!("store         : ok"),
        Integrity { reason: Some(r), .. } if r.starts_with("store_integrity") => {
            println!("store         : REFUSED — {r}");
            println!("                check the data dir (a lost or replaced keel.sled?); if the venue is to be the record, `keel store accept --reason …`, then `keel resume`");
        }
        Integrity { reason, .. } => println!("store         : DISAGREES — {}", reason.as_deref().unwrap_or("?")),
    }
    if r.positions.is_empty() {
        println!("positions     : none");
    } else {
        println!("positions:");
        println!(
            "  {:<12} {:>16} {:>16} {:>16} {:>12} {:>12}",
            "symbol", "qty", "avg_price", "realized_pnl", "fees", "dust"
        );
        for p in &r.positions {
            println!(
                "  {:<12} {:>16} {:>16} {:>16} {:>12} {:>12}",
                p.symbol,
                p.qty,
                p.avg_price,
                p.realized_pnl,
                p.fees_value,
                p.dust.as_deref().unwrap_or("-")
            );
        }
    }
    crate::state_exits::print(&r.exits, &r.exits_by_reason);
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
                "  {} {}{} {} {} {} {} qty {} filled {} ({:?})",
                o.client_order_id,
                o.strategy,
                o.tag.map(|t| format!(" #{t}")).unwrap_or_default(),
                o.symbol,
                o.side,
                o.order_type,
                o.price.as_deref().unwrap_or("market"),
                o.qty,
                o.filled_qty,
                o.status
            );
        }
    }
    Ok(())
}

/// When, for people: ISO-8601 UTC and how long ago.
fn format_ms(ms: i64) -> String {
    keel_core::when::utc_relative(ms, SystemClock.now_ms())
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

/// `keel store accept`: the deliberate way out of `store_integrity`.
pub fn store_accept(args: StoreAcceptArgs) -> anyhow::Result<()> {
    if args.reason.trim().is_empty() {
        anyhow::bail!("--reason must not be empty");
    }
    let dir = settings::data_dir_for_tools(args.config.as_deref(), args.data_dir.as_ref())?;
    let store = open(&dir)?;
    match store.accept_integrity(&args.reason, "operator:cli")? {
        Some(was) => println!(
            "store in {} ACCEPTED as it is (it was refused: {was}).\nThe emergency stop is set: the next start cancels every order resting at the venue, records the venue's fills, and waits HALTED. Check `keel state`, then `keel resume`.",
            dir.display()
        ),
        None => println!("the store in {} is not refused; nothing to accept.", dir.display()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_assets() {
        assert!(format_ms(1_700_000_000_000).starts_with("2023-11-14T22:13:20Z ("), "{}", format_ms(1_700_000_000_000));
        assert_eq!(split_assets("BTCUSDT", "USDT"), ("BTC".into(), "USDT".into()));
        assert_eq!(split_assets("ETHBTC", "BNB"), ("ETH".into(), "BTC".into()));
    }
}
