//! Start-up reconciliation: before any strategy may trade, the store is brought
//! into agreement with the venue — fills since the last known trade, open
//! orders (including ones persisted but never heard back about), balances — and
//! positions are recomputed from the recorded fills. Every difference is logged.

use std::sync::Arc;

use keel_core::account::{Account, AccountCheckpoint, Assets, BroughtForward};
use keel_core::balance::Balances;
use keel_core::error::StoreError;
use keel_core::fill::Fill;
use keel_core::instrument::Instrument;
use keel_core::order::{Order, OrderEvent, OrderStatus};
use keel_core::store::Store;
use keel_core::venue::Venue;
use keel_core::{Decimal, StrategyId};

use crate::error::StartupError;
use crate::store_writer::StoreWriter;

/// What reconciliation found and fixed.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Orders still open at the venue.
    pub open_orders: Vec<Order>,
    /// The account from the checkpoint brought forward over every fill
    /// recorded since: the running engine's account starts from it.
    pub account: Account,
    /// Balances as the venue reports them.
    pub balances: Balances,
    /// One line per difference found.
    pub differences: Vec<String>,
    /// What could not be checked (a venue read that failed): the
    /// reconciliation is complete only when this is empty.
    pub incomplete: Vec<String>,
    /// The symbols whose trades it listed (or tried to).
    pub listed: std::collections::BTreeSet<keel_core::Symbol>,
}

/// Reconciles the store with the venue. Store errors fail the start (the caller
/// fails closed); venue errors on single orders are logged and left for the
/// router's resolution loop.
/// `also` names symbols whose trades must be listed even with no order open
/// there now (a retry after an attempt that could not list them, whose
/// orders that attempt settled).
pub async fn reconcile(
    venue: &Arc<dyn Venue>,
    writer: &StoreWriter,
    instruments: &[Instrument],
    also: &std::collections::BTreeSet<keel_core::Symbol>,
    now_ms: i64,
) -> Result<Reconciled, StartupError> {
    let mut out = Reconciled::default();
    let stored_open = writer.run(|s| s.open_orders()).await??;

    // 1. Fills the store has not seen, per symbol, since its fill cursor —
    //    only where an order of Keel's was open: with none open since the
    //    last run, no fill of Keel's can be missing (and `myTrades` costs 20
    //    weight a symbol; the adapter keeps its trade watermark for gaps).
    let with_open: std::collections::BTreeSet<keel_core::Symbol> =
        stored_open.iter().map(|o| o.symbol.clone()).collect();
    out.listed = with_open.union(also).cloned().collect();
    for symbol in out.listed.clone() {
        let last = writer
            .run({
                let symbol = symbol.clone();
                move |s| s.fill_cursor(&symbol)
            })
            .await??;
        let fills = match venue.my_trades(&symbol, last.as_ref()).await {
            Ok(f) => f,
            Err(e) => {
                out.incomplete.push(format!("{symbol}: cannot list own trades: {e}"));
                continue;
            }
        };
        for fill in fills {
            let line = record_missing_fill(writer, fill, now_ms).await?;
            if let Some(line) = line {
                out.differences.push(line);
            }
        }
    }

    // 2. Every order the store thinks is open (or never heard back about):
    //    one `openOrders` per symbol (6 weight) for those still working, a
    //    query (4 weight) only for the others.
    let mut working: std::collections::HashMap<String, keel_core::venue::OrderReport> = Default::default();
    for symbol in &with_open {
        match venue.open_orders(Some(symbol)).await {
            Ok(list) => working.extend(list.into_iter().map(|r| (r.client_order_id.clone(), r))),
            Err(e) => tracing::warn!(symbol = %symbol, error = %e, "cannot list open orders; querying each"),
        }
    }
    for stored in stored_open {
        let Some(mut order) = writer
            .run({
                let cid = stored.client_order_id.clone();
                move |s| s.order(&cid)
            })
            .await??
        else {
            continue;
        };
        let before = order.status;
        let found = match working.remove(&order.client_order_id) {
            Some(report) => Ok(Some(report)),
            None => venue.query_order(&order.symbol, &order.client_order_id).await,
        };
        match found {
            Ok(Some(report)) => {
                order.venue_order_id.get_or_insert(report.venue_order_id.clone());
                order.sync_to(report.status, now_ms);
                if report.reason.is_some() {
                    order.reason = report.reason.clone();
                }
            }
            Ok(None) => {
                let (event, reason) = if order.status == OrderStatus::New {
                    (OrderEvent::Reject, "never reached the venue (found at start-up)")
                } else {
                    (OrderEvent::Cancel, "not found at the venue at start-up")
                };
                let _ = order.apply(event, now_ms);
                order.reason = Some(reason.into());
            }
            Err(e) => {
                out.incomplete.push(format!(
                    "order {} ({}): cannot query the venue ({e}); left {:?} for the router to resolve",
                    order.client_order_id, order.symbol, order.status
                ));
                if order.status == OrderStatus::New || order.status == OrderStatus::Submitted {
                    let _ = order.apply(OrderEvent::Submit, now_ms);
                    let _ = order.apply(OrderEvent::OutcomeUnknown, now_ms);
                }
            }
        }
        if order.status != before {
            out.differences.push(format!(
                "order {} ({} {}): store said {:?}, venue says {:?}{}",
                order.client_order_id,
                order.strategy_id,
                order.symbol,
                before,
                order.status,
                order.reason.as_deref().map(|r| format!(" — {r}")).unwrap_or_default()
            ));
            let o = order.clone();
            writer.run(move |s| s.put_order(&o, true)).await??;
        }
        if !order.status.is_terminal() {
            out.open_orders.push(order);
        }
    }

    // 3. Balances: the venue is the truth.
    match venue.balances().await {
        Ok(list) => {
            let fresh = Balances::from_list(list, now_ms);
            let stored = writer.run(|s| s.balances()).await??;
            if let Some(stored) = stored {
                for (asset, b) in &fresh.assets {
                    let old = stored.total(asset);
                    if old != b.total() {
                        out.differences.push(format!("balance {asset}: store {old}, venue {}", b.total()));
                    }
                }
            }
            let snap = fresh.clone();
            writer.run(move |s| s.put_balances(&snap)).await??;
            out.balances = fresh;
        }
        Err(e) => {
            out.incomplete.push(format!("cannot read balances: {e}"));
            out.balances = writer.run(|s| s.balances()).await??.unwrap_or_default();
        }
    }

    // 4. Positions: the account checkpoint brought forward over the fills
    //    recorded after it (start-up cost follows what happened since, not
    //    all history), the cache corrected, a new checkpoint written.
    let assets = Assets::of(instruments);
    let brought = writer.run(move |s| checkpoint_now(s, &assets, now_ms)).await??;
    tracing::info!(
        from_fill_seq = brought.previous.as_ref().map(|c| c.fill_seq).unwrap_or(0),
        to_fill_seq = brought.current.fill_seq,
        replayed = brought.replayed,
        "account brought forward from its checkpoint"
    );
    let cached = writer.run(|s| s.positions()).await??;
    let account = brought.current.account;
    let positions = account.positions();
    for p in &positions {
        let cached_qty = cached.iter().find(|c| c.symbol == p.symbol).map(|c| c.qty);
        if cached_qty != Some(p.qty) {
            out.differences.push(format!(
                "position {}: cache {}, fills imply {}",
                p.symbol,
                cached_qty.map(|q| q.to_string()).unwrap_or_else(|| "none".into()),
                p.qty
            ));
        }
        let p = p.clone();
        writer.run(move |s| s.put_position(&p)).await??;
    }
    out.account = account;
    writer.run(|s| s.flush()).await??;
    Ok(out)
}

/// Brings the account checkpoint forward over the fills recorded since it
/// and writes it durably: at start-up, every minute while running and at a
/// graceful stop, so a start or an operator query replays only what happened
/// since the last one.
pub fn checkpoint_now(s: &dyn Store, assets: &Assets, now_ms: i64) -> Result<BroughtForward, StoreError> {
    let brought = AccountCheckpoint::bring_forward(s, |f| assets.of_fill(f), now_ms)?;
    brought.current.save(brought.previous.as_ref(), s)?;
    // The checkpoint is durable: what it covers may leave the live store.
    // A failure leaves that history where it is, so it is only reported.
    if let Err(e) = s.archive(brought.current.fill_seq, keel_core::store::ARCHIVE_BATCH) {
        tracing::warn!(error = %e, "store: could not move final history to the archive (it stays in the live store)");
    }
    Ok(brought)
}

/// Realized PnL and fees of the fills at or after `since_ms`, from the last
/// checkpoint kept at or before it plus the fills after that checkpoint: the
/// cost follows the period, not the whole history.
pub fn period_pnl(s: &dyn Store, assets: &Assets, since_ms: i64) -> Result<PeriodPnl, StoreError> {
    let base = AccountCheckpoint::at_or_before(s, since_ms)?.unwrap_or_default();
    let mut account = base.account;
    let mut out = PeriodPnl::default();
    for (_, fill) in s.fills_after(base.fill_seq)? {
        let (b, q) = assets.of_fill(&fill);
        let fees_before = account.position(&fill.symbol).map(|p| p.fees).unwrap_or_default();
        let realized = account.apply_fill(&fill, &b, &q);
        if fill.ts_ms >= since_ms {
            out.realized += realized;
            out.fees += account.position(&fill.symbol).map(|p| p.fees).unwrap_or_default() - fees_before;
            out.fills += 1;
        }
    }
    Ok(out)
}

/// What a period's fills realized.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeriodPnl {
    /// Realized PnL in the quote asset, before fees.
    pub realized: Decimal,
    /// Fees (base and quote commissions, valued in the quote asset).
    pub fees: Decimal,
    /// Fills in the period.
    pub fills: usize,
}

impl PeriodPnl {
    /// Realized minus fees.
    pub fn net(&self) -> Decimal {
        self.realized - self.fees
    }
}

/// A fill as [`record_venue_fill`] stored it.
#[derive(Debug)]
pub struct RecordedFill {
    /// False if the store already had it (nothing changed).
    pub inserted: bool,
    /// The fill, attributed to the strategy that owns its order.
    pub fill: Fill,
    /// Its order after the fill, if Keel knows the order.
    pub order: Option<Order>,
}

/// Records a venue fill with its order's new quantities, atomically and
/// durably, unless the store already has it. The one place fills enter the
/// store, live and at start-up.
pub fn record_venue_fill(s: &dyn Store, mut fill: Fill, now_ms: i64) -> Result<RecordedFill, StoreError> {
    if s.has_fill(&fill)? {
        return Ok(RecordedFill { inserted: false, fill, order: None });
    }
    let mut order = s.order(&fill.client_order_id)?;
    if let Some(o) = order.as_mut() {
        fill.strategy_id = o.strategy_id.clone();
        fill.tag = o.tag;
        let ev = o.record_fill(fill.price, fill.qty, now_ms);
        if !o.status.is_terminal() {
            o.sync_to(if ev == OrderEvent::Fill { OrderStatus::Filled } else { OrderStatus::PartiallyFilled }, now_ms);
        }
    } else if fill.strategy_id.is_empty() {
        fill.strategy_id = StrategyId::new(crate::order_router::EXTERNAL);
    }
    let inserted = s.record_fill(&fill, order.as_ref())?;
    Ok(RecordedFill { inserted, fill, order })
}

/// Records a fill found at the venue but not in the store; returns the line to log.
async fn record_missing_fill(writer: &StoreWriter, fill: Fill, now_ms: i64) -> Result<Option<String>, StartupError> {
    let recorded = writer.run(move |s| record_venue_fill(s, fill, now_ms)).await??;
    if !recorded.inserted {
        return Ok(None);
    }
    let f = recorded.fill;
    Ok(Some(format!(
        "fill {} #{} ({} {} {} @ {}) was missing from the store: recorded",
        f.symbol,
        f.trade_id,
        f.strategy_id,
        f.side.as_str(),
        f.qty,
        f.price
    )))
}
