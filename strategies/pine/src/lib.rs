//! Keel's Pine Script interpreter (module docs are completed with the runtime).

pub mod ast;
mod compile;
pub mod error;
pub mod lexer;
pub mod parser;
mod program;
mod runner;
pub mod ta;

pub use compile::{compile, Compiled};
pub use error::{Diagnostic, Diagnostics, Pos, Severity};
pub use program::{
    Alert, Bar, BarOutput, Command, CommissionType, Direction, InputDecl, InputKind, InputValue, PlotDecl, PlotKind,
    Program, QtyType, StrId, StrategyDecl, StrategyState,
};
pub use runner::{Runner, MAX_LOOP_ITERATIONS};
