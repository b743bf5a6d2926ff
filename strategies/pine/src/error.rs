//! Diagnostics: every refusal and warning carries its `line:col` and names the construct.

use std::fmt;

/// A position in the script, 1-based, as editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
}

/// Whether a diagnostic stops the script or only warns (see [`Diagnostic`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The script is refused.
    Error,
    /// The script runs, but behaves differently live than in a backtest (repainting); `--strict` refuses it.
    Warning,
}

/// One message about a script: `file:line:col: message` when a file name is known, `line:col: message` otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The script's file name as the user wrote it, if any.
    pub file: Option<String>,
    /// Where the construct starts.
    pub pos: Pos,
    /// What is wrong, naming the construct.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

impl Diagnostic {
    /// An error at `pos`.
    pub fn error(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic { file: None, pos, message: message.into(), severity: Severity::Error }
    }

    /// A warning at `pos`.
    pub fn warning(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic { file: None, pos, message: message.into(), severity: Severity::Warning }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        let kind = if self.severity == Severity::Warning { "warning: " } else { "" };
        write!(f, "{}:{}: {kind}{}", self.pos.line, self.pos.col, self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// The diagnostics of one compilation: errors refuse the script, warnings do not.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
