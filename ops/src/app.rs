//! Keel as a library: [`App`] gives a binary of one's own the whole `keel`
//! command line (run, backtest, sweep, check-config, strategies, pine,
//! sandbox, ...) with strategy kinds of one's own added to the registry
//! every command builds strategies from. The `keel` binary itself is
//! `App::new().main()`, so a user's binary runs the same code path.
//!
//! ```no_run
//! # use keel_core::{market::Bar, strategy::{Strategy, StrategyCtx}, Symbol};
//! # use strategies::{params::{ParamSpec, Params}, registry::DeclaredParams, StrategyConfigError};
//! struct Mine(Symbol);
//! impl DeclaredParams for Mine {
//!     fn params() -> Vec<ParamSpec> {
//!         vec![ParamSpec::integer("period").default_value("20").at_least(2)]
//!     }
//! }
//! impl Mine {
//!     fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
//!         p.usize_or("period", 20)?;
//!         Ok(Mine(symbol))
//!     }
//! }
//! impl Strategy for Mine {
//!     fn kind(&self) -> &'static str { "mine" }
//!     fn symbols(&self) -> Vec<Symbol> { vec![self.0.clone()] }
//!     fn on_bar(&mut self, _bar: &Bar, _ctx: &mut StrategyCtx<'_>) {}
//! }
//! fn main() -> std::process::ExitCode {
//!     ops::App::new().strategy("mine", Mine::from_params).main()
//! }
//! ```

use std::process::ExitCode;

use clap::Parser;
use keel_core::strategy::Strategy;
use keel_core::Symbol;
use strategies::params::{ParamSpec, Params};
use strategies::registry::DeclaredParams;
use strategies::{StrategyConfigError, StrategyRegistry};

use crate::cli::{Cli, Command, ConfigCommand, StoreCommand};

/// The `keel` command line with a registry of strategy kinds: Keel's own,
/// plus those added with [`App::strategy`] or [`App::strategy_with_params`].
#[derive(Debug)]
pub struct App {
    registry: StrategyRegistry,
    /// Registrations refused so far, reported together by [`App::main`].
    refused: Vec<String>,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// The `keel` command line with Keel's built-in strategy kinds.
    pub fn new() -> Self {
        Self { registry: StrategyRegistry::builtin(), refused: Vec::new() }
    }

    /// Adds the kind `name`, built by `build` (typically the strategy's
    /// `from_params`), with the parameters its type declares through
    /// [`DeclaredParams`]. A refused registration (a name already taken, a
    /// bad parameter declaration; see [`StrategyRegistry::register`]) is
    /// reported by [`App::main`] before any command runs.
    pub fn strategy<S, F>(self, name: &str, build: F) -> Self
    where
        S: Strategy + DeclaredParams + 'static,
        F: Fn(Symbol, &Params<'_>) -> Result<S, StrategyConfigError> + Send + Sync + 'static,
    {
        self.strategy_with_params(name, S::params(), build)
    }

    /// Adds the kind `name` with the parameters `params` given here: for a
    /// strategy type registered under several kinds, or declarations made
    /// at run time. Refusals as for [`App::strategy`].
    pub fn strategy_with_params<S, F>(mut self, name: &str, params: Vec<ParamSpec>, build: F) -> Self
    where
        S: Strategy + 'static,
        F: Fn(Symbol, &Params<'_>) -> Result<S, StrategyConfigError> + Send + Sync + 'static,
    {
        if let Err(reason) = self.registry.register(name, params, build) {
            self.refused.push(reason);
        }
        self
    }

    /// The registry the commands will use, or every refused registration,
    /// one per line.
    pub fn registry(&self) -> anyhow::Result<&StrategyRegistry> {
        if self.refused.is_empty() {
            Ok(&self.registry)
        } else {
            anyhow::bail!("{}", self.refused.join("\n"))
        }
    }

    /// Parses the process's command line and runs the command, as `keel`
    /// does: exit code 0 on success; on an error (a refused registration
    /// included) `keel: ERROR` on stderr and exit code 1; clap's own exits
    /// for `--help`, `--version` and bad usage (0 and 2).
    pub fn main(self) -> ExitCode {
        let cli = Cli::parse();
        match self.run(cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keel: {e:#}");
                ExitCode::FAILURE
            }
        }
    }

    /// Runs one parsed command with this registry (what [`App::main`] does
    /// after parsing); a refused registration fails before the command runs.
    pub fn run(self, cli: Cli) -> anyhow::Result<()> {
        let registry = self.registry()?;
        match cli.command {
            Command::Run(args) => crate::cmd_run::run(args, cli.log_format, registry),
            Command::State(args) => crate::cmd_state::state(args, registry),
            Command::CheckConfig(args) => crate::cmd_check::run(args, registry),
            Command::Config(ConfigCommand::Default) => {
                print!("{}", crate::settings::DEFAULT_CONFIG);
                Ok(())
            }
            Command::Halt(args) => crate::cmd_state::halt(args),
            Command::Resume(args) => crate::cmd_state::resume(args),
            Command::Store(StoreCommand::Accept(args)) => crate::cmd_state::store_accept(args),
            Command::Bench(args) => crate::cmd_bench::run(args, registry),
            Command::Backtest(args) => crate::backtest::run(*args, registry),
            Command::Data(command) => crate::cmd_data::run(command),
            Command::Scan(args) => crate::cmd_scan::run(args, registry),
            Command::Sandbox(args) => crate::cmd_sandbox::run(args, cli.log_format),
            Command::Strategies(args) => crate::cmd_strategies::run(args, registry),
            Command::Pine(command) => crate::cmd_pine::run(command),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A do-nothing strategy declaring one parameter.
    struct Quiet(Symbol);

    impl DeclaredParams for Quiet {
        fn params() -> Vec<ParamSpec> {
            vec![ParamSpec::integer("period").default_value("20").at_least(2)]
        }
    }

    impl Quiet {
        fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
            p.usize_or("period", 20)?;
            Ok(Self(symbol))
        }
    }

    impl Strategy for Quiet {
        fn kind(&self) -> &'static str {
            "quiet"
        }
        fn symbols(&self) -> Vec<Symbol> {
            vec![self.0.clone()]
        }
    }

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("keel").chain(args.iter().copied())).unwrap()
    }

    /// An added kind sits after the built-in ones with the parameters its
    /// type declares, and builds through the registry like them.
    #[test]
    fn an_added_kind_is_registered_with_its_declared_parameters() {
        let app = App::new().strategy("quiet", Quiet::from_params);
        let registry = app.registry().unwrap();
        let builtin = StrategyRegistry::builtin();
        assert_eq!(registry.kinds().len(), builtin.kinds().len() + 1);
        assert_eq!(registry.kinds().last().map(|k| k.name.as_str()), Some("quiet"));
        assert_eq!(registry.params("quiet"), Some(Quiet::params().as_slice()));
        let explicit = vec![ParamSpec::integer("n").required()];
        let app = App::new().strategy_with_params("quiet_n", explicit.clone(), Quiet::from_params);
        assert_eq!(app.registry().unwrap().params("quiet_n"), Some(explicit.as_slice()));
    }

    /// Refused registrations (a built-in name, the same name twice, a bad
    /// declaration) are all reported, one per line, in place of a command
    /// that succeeds with a good registry.
    #[test]
    fn refused_registrations_fail_the_command_with_every_reason() {
        let app = App::new()
            .strategy("sma_cross", Quiet::from_params)
            .strategy("quiet", Quiet::from_params)
            .strategy("quiet", Quiet::from_params)
            .strategy_with_params("bad", vec![ParamSpec::integer("n"), ParamSpec::integer("n")], Quiet::from_params);
        let err = app.run(cli(&["config", "default"])).unwrap_err().to_string();
        assert_eq!(
            err.lines().collect::<Vec<_>>(),
            [
                "strategy kind `sma_cross` is already registered",
                "strategy kind `quiet` is already registered",
                "strategy kind `bad` declares parameter `n` twice (at 1)",
            ]
        );
        App::new().strategy("quiet", Quiet::from_params).run(cli(&["strategies", "--json"])).unwrap();
    }
}
