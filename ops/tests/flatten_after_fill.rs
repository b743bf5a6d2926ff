//! A flatten right after a buy sells what the account holds, before the
//! venue's balance report arrives (issue 10's "one account truth"; issue 16
//! testing). The sandbox withholds every `outboundAccountPosition`, so the
//! only news of the bought coins is the fill itself: the fill is the truth,
//! the balance report only reconciles. The account starts with no BTC, so a
//! balance check on the last report alone refuses the sell as
//! `insufficient_balance` (what the old code did, silently, with nothing
//! retried).

mod common;

use std::time::Duration;

use common::engine::{engine_with, flattened, operator_fills, risk, sellable, within_20s};
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

/// Buys 0.002 at market on its first bar, then does nothing.
struct BuyOnce(Symbol, bool);

impl Strategy for BuyOnce {
    fn kind(&self) -> &'static str {
        "buy_once"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec![self.0.clone()]
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if !self.1 {
            self.1 = true;
            ctx.market(&bar.symbol, Side::Buy, Decimal::new(2, 3));
        }
    }
}

/// A sandbox whose only account holds USDT and no BTC, and whose user stream
/// sends no balance report.
async fn sandbox_without_btc() -> SandboxHandle {
    let mut cfg = SandboxConfig { history_bars: 30, ..SandboxConfig::demo() };
    for account in &mut cfg.accounts {
        account.balances.retain(|asset, _| asset == "USDT");
    }
    let sb = Sandbox::start(cfg).await.expect("sandbox");
    sb.faults.withhold_balance_reports(true);
    sb
}

#[actix_rt::test]
async fn a_flatten_right_after_a_buy_sells_the_holding_before_the_balance_report() {
    let sb = sandbox_without_btc().await;
    assert!(risk().check_balance, "the balance check is on, as by default");
    let strategy = Box::new(BuyOnce(Symbol::new("BTCUSDT"), false));
    let (handle, store, _dir) = engine_with(ops::venues::sandbox_settings(&sb), strategy).await;

    // The buy filled and is final; no balance report has said so.
    let bought = within_20s(|| async {
        store.fills().expect("fills").iter().any(|f| f.side == Side::Buy)
            && handle.open_orders().await.expect("router answers").is_empty()
    })
    .await;
    assert!(bought, "the buy fills: orders {:?}", store.orders().ok());
    let held = sellable(&store.fills().expect("fills"));
    assert!(held > Decimal::ZERO && held <= Decimal::new(2, 3), "{:?}", store.fills());
    let btc = |sb: &SandboxHandle| sb.market.balances(&sb.api_key).iter().find(|b| b.asset == "BTC").map(|b| b.free);
    assert!(btc(&sb).is_some_and(|b| b >= held), "the venue holds the coins: {:?}", btc(&sb));

    let reported = handle.portfolio().await.expect("portfolio answers").balances.free("BTC");
    assert!(reported.is_zero(), "no balance report told the engine of the BTC: {reported}");
    assert_eq!(handle.flatten(None).await.expect("flatten answers"), 1, "one symbol to flatten");
    let sold = flattened(&handle, &store).await;
    let risk = handle.risk().await.expect("risk answers");
    assert!(sold, "the flatten sold; refusals: {:?}", risk.rejections);
    let operator = operator_fills(&store);
    assert!(operator.iter().all(|f| f.side == Side::Sell), "{operator:?}");
    assert_eq!(operator.iter().map(|f| f.qty).sum::<Decimal>(), held, "exactly the holding: {:?}", store.fills());
    assert!(risk.rejections.is_empty(), "nothing was refused: {:?}", risk.rejections);
    // Never more than held: the venue's BTC is what the fee and the step left.
    assert!(btc(&sb).is_some_and(|b| b >= Decimal::ZERO && b < Decimal::new(1, 5)), "{:?}", btc(&sb));
    handle.shutdown(Duration::from_millis(200)).await;
    sb.shutdown().await;
}
