//! The `keel` binary: parses the command line and dispatches to the `ops` library.

use std::process::ExitCode;

use clap::Parser;
use ops::cli::{Cli, Command, ConfigCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The strategy kinds every command builds from.
    let registry = strategies::StrategyRegistry::builtin();
    let result = match cli.command {
        Command::Run(args) => ops::cmd_run::run(args, cli.log_format, &registry),
        Command::State(args) => ops::cmd_state::state(args, &registry),
        Command::CheckConfig(args) => ops::cmd_check::run(args, &registry),
        Command::Config(ConfigCommand::Default) => {
            print!("{}", ops::settings::DEFAULT_CONFIG);
            Ok(())
        }
        Command::Halt(args) => ops::cmd_state::halt(args),
        Command::Resume(args) => ops::cmd_state::resume(args),
        Command::Store(ops::cli::StoreCommand::Accept(args)) => ops::cmd_state::store_accept(args),
        Command::Bench(args) => ops::cmd_bench::run(args, &registry),
        Command::Backtest(args) => ops::backtest::run(*args, &registry),
        Command::Data(command) => ops::cmd_data::run(command),
        Command::Scan(args) => ops::cmd_scan::run(args, &registry),
        Command::Sandbox(args) => ops::cmd_sandbox::run(args, cli.log_format),
        Command::Strategies(args) => ops::cmd_strategies::run(args, &registry),
        Command::Pine(command) => ops::cmd_pine::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel: {e:#}");
            ExitCode::FAILURE
        }
    }
}
