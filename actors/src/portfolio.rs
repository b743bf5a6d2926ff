//! Portfolio: positions from fills, balances from the venue, equity marked to
//! market from the price board.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use keel_core::account::AccountView;
use keel_core::balance::Balances;
use keel_core::clock::SharedClock;
use keel_core::instrument::Instrument;
use keel_core::position::Position;
use keel_core::store::{EquityPoint, EQUITY_KEEP};
use keel_core::{Decimal, Symbol};
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::messages::{BalancesChanged, EquityMarked, FillRecorded, GetPortfolio};
use crate::metrics::metrics;
use crate::prices::PriceBoard;
use crate::store_writer::StoreWriter;

/// A position with its mark.
#[derive(Debug, Clone, Serialize)]
pub struct PositionView {
    /// The position.
    #[serde(flatten)]
    pub position: Position,
    /// Latest price, if known.
    pub mark: Option<Decimal>,
    /// Unrealized PnL at the mark.
    pub unrealized_pnl: Option<Decimal>,
}

/// Everything the portfolio knows, for operators.
#[derive(Debug, Clone, Serialize)]
pub struct PortfolioSnapshot {
    /// Positions by symbol.
    pub positions: Vec<PositionView>,
    /// Balances.
    pub balances: Balances,
    /// Equity marked to market, in the quote asset (None until prices are known).
    pub equity: Option<Decimal>,
    /// The quote asset equity is expressed in.
    pub quote_asset: String,
    /// Realized PnL summed over symbols.
    pub realized_pnl: Decimal,
    /// Unrealized PnL summed over symbols.
    pub unrealized_pnl: Decimal,
    /// Fees summed over symbols.
    pub fees: Decimal,
}

/// Positions marked at the price board's latest prices, with their totals
/// (the portfolio's whole account, or one strategy's own ledger).
#[derive(Debug, Clone, Default)]
pub struct Marked {
    /// Each position with its mark.
    pub positions: Vec<PositionView>,
    /// Realized PnL summed over the positions.
    pub realized_pnl: Decimal,
    /// Unrealized PnL summed over the positions with a known mark.
    pub unrealized_pnl: Decimal,
    /// Fees summed over the positions.
    pub fees: Decimal,
}

impl Marked {
    /// Marks `positions` at the latest prices. Sums saturate: an absurd
    /// amount must not panic the caller valuing it.
    pub fn at(prices: &PriceBoard, positions: Vec<Position>) -> Self {
        let mut out = Self::default();
        for p in positions {
            let mark = prices.get(&p.symbol).map(|e| e.price);
            let upnl = mark.map(|m| p.unrealized_pnl(m));
            out.realized_pnl = out.realized_pnl.saturating_add(p.realized_pnl);
            out.fees = out.fees.saturating_add(p.fees);
            out.unrealized_pnl = out.unrealized_pnl.saturating_add(upnl.unwrap_or_default());
            out.positions.push(PositionView { position: p, mark, unrealized_pnl: upnl });
        }
        out
    }
}

/// Receives the equity every time it is re-marked (the risk protections).
pub type EquityListener = Recipient<EquityMarked>;

/// The portfolio actor.
pub struct Portfolio {
    instruments: HashMap<Symbol, Instrument>,
    /// The running account: positions and balances (the order router writes
    /// it as fills and balance reports arrive).
    account: AccountView,
    prices: Arc<PriceBoard>,
    writer: StoreWriter,
    quote_asset: String,
    listener: EquityListener,
    history: EquityHistory,
}

/// How the portfolio keeps the store's equity history.
#[derive(Clone)]
pub struct EquityHistory {
    /// How often a point is added (`[store] equity_interval`; zero: never).
    pub interval: Duration,
    /// The engine's clock, for the points' times.
    pub clock: SharedClock,
}

impl Portfolio {
    /// A portfolio over the running account.
    pub fn new(
        instruments: Vec<Instrument>,
        account: AccountView,
        prices: Arc<PriceBoard>,
        writer: StoreWriter,
        listener: EquityListener,
        history: EquityHistory,
    ) -> Self {
        let quote_asset = instruments.first().map(|i| i.quote_asset.clone()).unwrap_or_else(|| "USDT".into());
        Self {
            instruments: instruments.into_iter().map(|i| (i.symbol.clone(), i)).collect(),
            account,
            prices,
            writer,
            quote_asset,
            listener,
            history,
        }
    }

    fn snapshot(&self) -> PortfolioSnapshot {
        let marked = Marked::at(&self.prices, self.account.positions());
        PortfolioSnapshot {
            positions: marked.positions,
            balances: self.account.with_balances(|b| b.cloned()).unwrap_or_default(),
            equity: self.equity(),
            quote_asset: self.quote_asset.clone(),
            realized_pnl: marked.realized_pnl,
            unrealized_pnl: marked.unrealized_pnl,
            fees: marked.fees,
        }
    }

    /// Account equity: every balance valued in the quote asset at its mark.
    fn equity(&self) -> Option<Decimal> {
        self.account.with_balances(|b| self.equity_of(b?))
    }

    fn equity_of(&self, balances: &Balances) -> Option<Decimal> {
        let mut total = Decimal::ZERO;
        for (asset, balance) in &balances.assets {
            let amount = balance.total();
            if amount.is_zero() {
                continue;
            }
            // Overflow (an absurd price or balance) leaves equity unknown — no
            // mark, so the protections see no equity — rather than a panic.
            if *asset == self.quote_asset {
                total = total.checked_add(amount)?;
                continue;
            }
            let inst = self.instruments.values().find(|i| i.base_asset == *asset && i.quote_asset == self.quote_asset);
            match inst {
                Some(i) => total = total.checked_add(amount.checked_mul(self.prices.get(&i.symbol)?.price)?)?,
                // An asset we cannot value (e.g. a fee token) is left out rather than guessed.
                None => continue,
            }
        }
        Some(total)
    }

    /// Adds the equity now to the store's history (bounded), on the writer
    /// thread; nothing while equity is unknown (no prices yet).
    fn record_equity(&self, ctx: &mut Context<Self>) {
        let Some(equity) = self.equity() else { return };
        let point = EquityPoint { ts_ms: self.history.clock.now_ms(), equity };
        let writer = self.writer.clone();
        ctx.spawn(
            async move {
                match writer.run(move |s| s.append_equity(&point, EQUITY_KEEP)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "equity history: point not stored"),
                    Err(e) => tracing::warn!(error = %e, "equity history: point not stored"),
                }
            }
            .into_actor(self),
        );
    }

    fn mark(&mut self) {
        let m = metrics();
        for p in self.account.positions() {
            m.position_quantity.with_label_values(&[p.symbol.as_str()]).set(p.qty.to_f64().unwrap_or(0.0));
            m.realized_pnl.with_label_values(&[p.symbol.as_str()]).set(p.realized_pnl.to_f64().unwrap_or(0.0));
        }
        for (symbol, entry) in self.prices.all() {
            m.market_data_age_seconds.with_label_values(&[symbol.as_str()]).set(entry.at.elapsed().as_secs_f64());
        }
        let snap = self.snapshot();
        if let Some(equity) = snap.equity {
            m.equity.set(equity.to_f64().unwrap_or(0.0));
            // The next mark supersedes this one: under overload it may be dropped (counted).
            let total_pnl = snap.realized_pnl.saturating_add(snap.unrealized_pnl);
            let mark = EquityMarked { equity, total_pnl };
            crate::deliver::may_drop(&self.listener, mark, "risk_guard");
        }
    }
}

impl Actor for Portfolio {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(Duration::from_millis(500), |act, _ctx| act.mark());
        if !self.history.interval.is_zero() {
            ctx.run_interval(self.history.interval, |act, ctx| act.record_equity(ctx));
        }
    }
}

impl Supervised for Portfolio {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!("portfolio restarting; positions are the account's");
    }
}

impl Handler<FillRecorded> for Portfolio {
    type Result = ();

    fn handle(&mut self, msg: FillRecorded, ctx: &mut Self::Context) {
        let started = Instant::now();
        let fill = msg.0;
        let Some(position) = self.account.position(&fill.symbol) else { return };
        let writer = self.writer.clone();
        // The position is a cache of the fills (recomputed at start): no flush needed.
        ctx.spawn(
            async move {
                let _ = writer.run(move |s| s.put_position(&position)).await;
            }
            .into_actor(self),
        );
        metrics().actor_message_seconds.with_label_values(&["portfolio"]).observe(started.elapsed().as_secs_f64());
    }
}

impl Handler<BalancesChanged> for Portfolio {
    type Result = ();

    fn handle(&mut self, _msg: BalancesChanged, ctx: &mut Self::Context) {
        // The router applied the report to the account before telling us.
        let Some(snapshot) = self.account.with_balances(|b| b.cloned()) else { return };
        let writer = self.writer.clone();
        ctx.spawn(
            async move {
                // Flushed: an embedded venue restarts its account from this snapshot.
                let _ = writer.run(move |s| s.put_balances(&snapshot).and_then(|_| s.flush())).await;
            }
            .into_actor(self),
        );
    }
}

impl Handler<GetPortfolio> for Portfolio {
    type Result = MessageResult<GetPortfolio>;

    fn handle(&mut self, _msg: GetPortfolio, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

impl Handler<crate::universe::InstrumentsListed> for Portfolio {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::InstrumentsListed, _ctx: &mut Self::Context) {
        for i in msg.0 {
            self.instruments.insert(i.symbol.clone(), i);
        }
    }
}
