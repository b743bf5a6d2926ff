//! `my-keel`: the whole `keel` command line (run, backtest, sweep,
//! check-config, strategies, ...) with the `donchian_breakout` kind added.

use custom_strategy::DonchianBreakout;

fn main() -> std::process::ExitCode {
    keel_ops::App::new().strategy("donchian_breakout", DonchianBreakout::from_params).main()
}
