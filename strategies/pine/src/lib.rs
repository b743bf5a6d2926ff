//! Keel's Pine Script interpreter (module docs are completed with the runtime).

pub mod ast;
pub mod error;
pub mod lexer;
pub mod parser;
pub mod ta;

pub use error::{Diagnostic, Diagnostics, Pos, Severity};
