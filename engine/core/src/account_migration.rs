//! Reading [`Account`]s as every Keel version wrote them: before per-strategy
//! ledgers, a checkpoint kept per strategy and symbol only the net quantity
//! (a bare decimal). Such an account loads with those quantities and is
//! marked [`StrategyLedgers::NotRebuilt`] until the journal rebuilds it.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::account::{Account, Holding, StrategyLedgers};
use crate::position::Position;
use crate::symbol::{StrategyId, Symbol};

/// An account as stored, in either form.
#[derive(Deserialize)]
pub(crate) struct AccountRepr {
    holdings: BTreeMap<Symbol, Holding>,
    strategies: BTreeMap<StrategyId, BTreeMap<Symbol, StrategyEntry>>,
    fills_applied: u64,
    /// Absent in the old form.
    #[serde(default)]
    strategy_ledgers: Option<StrategyLedgers>,
}

/// One strategy's holding in one symbol, in either form.
#[derive(Deserialize)]
#[serde(untagged)]
enum StrategyEntry {
    /// The current form.
    Ledger(Position),
    /// The old form: the net quantity only.
    Net(Decimal),
}

impl From<AccountRepr> for Account {
    fn from(r: AccountRepr) -> Self {
        let mut old_form = r.strategy_ledgers.is_none();
        let strategies = r
            .strategies
            .into_iter()
            .map(|(id, book)| {
                let book = book
                    .into_iter()
                    .map(|(symbol, entry)| {
                        let p = match entry {
                            StrategyEntry::Ledger(p) => p,
                            StrategyEntry::Net(qty) => {
                                old_form = true;
                                Position { qty, ..Position::flat(symbol.clone()) }
                            }
                        };
                        (symbol, p)
                    })
                    .collect();
                (id, book)
            })
            .collect();
        let strategy_ledgers = if r.fills_applied == 0 {
            // An account no fill made has nothing to rebuild.
            StrategyLedgers::Complete
        } else if old_form {
            StrategyLedgers::NotRebuilt
        } else {
            r.strategy_ledgers.unwrap_or(StrategyLedgers::NotRebuilt)
        };
        Account { holdings: r.holdings, strategies, fills_applied: r.fills_applied, strategy_ledgers }
    }
}
