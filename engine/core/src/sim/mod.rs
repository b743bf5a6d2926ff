//! The one simulated matching core, shared by the backtest, the in-process paper
//! venue and the Binance-protocol sandbox exchange.
//!
//! [`price::PriceGen`] produces a seeded geometric-Brownian price path,
//! [`matching::MatchingCore`] keeps a synthetic top of book per symbol, accounts
//! with balances, and fills orders against it with fees and partial fills.

pub mod matching;
pub mod price;

pub use matching::{
    Account, CommissionAsset, Execution, FeeSchedule, FillFacts, ListResult, MatchError, MatchingCore, NewLeg,
    NewOrder, NewOrderList, OrderAsked, OrderEvent, Placed, SimList, SimOrder, SubmitResult, OCO_BAD_PRICES,
    OCO_SIBLING_EXECUTED,
};
pub use price::{BarBuilder, PriceGen, PriceGenState, PricePath};
