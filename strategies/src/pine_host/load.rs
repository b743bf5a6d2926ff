//! What a spot host refuses in a script before it runs, and the declaration's money in exact
//! decimals.

use std::str::FromStr;

use keel_core::Decimal;
use pine::{CommissionType, Direction, OrderCall, Program, QtyType};

use crate::StrategyConfigError;

/// The `strategy()` declaration as the host trades it: exact decimals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Sizing {
    /// `initial_capital`.
    pub initial_capital: Decimal,
    /// `default_qty_type`.
    pub qty_type: QtyType,
    /// `default_qty_value`.
    pub qty_value: Decimal,
    /// The commission as a fraction of an order's value (`commission_value` / 100 for
    /// `strategy.commission.percent`; 0 for the cash commissions, which do not scale with value).
    pub commission_rate: Decimal,
    /// How many entries may be open at once (`pyramiding`, 0 meaning 1).
    pub max_entries: usize,
}

/// The key a refusal names: the block's `script` parameter (the registry prefixes the block).
pub(super) const KEY: &str = "script";

fn refuse(reason: String) -> StrategyConfigError {
    StrategyConfigError { key: KEY.to_string(), reason }
}

/// `file:line:col: message` for an order call.
fn at(program: &Program, call: &OrderCall, message: &str) -> StrategyConfigError {
    let file = program.file().map(|f| format!("{f}:")).unwrap_or_default();
    refuse(format!("{file}{}:{}: {message}", call.pos.line, call.pos.col))
}

/// Refuses what Keel's spot broker cannot do, naming the call: a short entry, partial exits and
/// closes (Keel's exits close the whole position), and exits measured in ticks from each entry's
/// own price when several entries can be open (Keel's exits follow the position's average).
pub(super) fn check(program: &Program) -> Result<Sizing, StrategyConfigError> {
    let decl = program.decl();
    let sizing = sizing(program)?;
    for call in program.order_calls() {
        match call.function {
            "strategy.entry" if call.direction != Some(Direction::Long) => {
                return Err(at(
                    program,
                    call,
                    "strategy.entry with a direction other than strategy.long: Keel trades spot, which cannot sell short",
                ));
            }
            "strategy.exit" | "strategy.close" => {
                for arg in ["qty", "qty_percent"] {
                    if call.has(arg) {
                        return Err(at(
                            program,
                            call,
                            &format!(
                                "{}(..., {arg} = ...): Keel's exits close the whole position; partial exits are not supported",
                                call.function
                            ),
                        ));
                    }
                }
                let relative = ["profit", "loss", "trail_points"].into_iter().find(|a| call.has(a));
                if let (Some(arg), true) = (relative, sizing.max_entries > 1) {
                    return Err(at(
                        program,
                        call,
                        &format!(
                            "strategy.exit(..., {arg} = ...) with pyramiding = {}: Keel's exits follow the position's average price, not each entry's own; give stop/limit prices instead",
                            decl.pyramiding
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(sizing)
}

/// The declaration's sizing in exact decimals (from the literal text the script wrote).
fn sizing(program: &Program) -> Result<Sizing, StrategyConfigError> {
    let decl = program.decl();
    let number = |name: &str, text: &str| {
        Decimal::from_str(text.trim())
            .or_else(|_| Decimal::from_scientific(text.trim()))
            .map_err(|_| refuse(format!("strategy(): {name} = {text} is not a number Keel can hold exactly")))
    };
    let initial_capital = number("initial_capital", &decl.initial_capital)?;
    let qty_value = number("default_qty_value", &decl.default_qty_value)?;
    let commission = number("commission_value", &decl.commission_value)?;
    if qty_value <= Decimal::ZERO {
        return Err(refuse(format!("strategy(): default_qty_value must be above 0, got {qty_value}")));
    }
    let commission_rate = match decl.commission_type {
        CommissionType::Percent => commission / Decimal::ONE_HUNDRED,
        CommissionType::CashPerOrder | CommissionType::CashPerContract => Decimal::ZERO,
    };
    Ok(Sizing {
        initial_capital,
        qty_type: decl.default_qty_type,
        qty_value,
        commission_rate,
        max_entries: decl.pyramiding.max(1) as usize,
    })
}
