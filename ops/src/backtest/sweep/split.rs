//! Walk-forward (`--split DATE`): the sweep chooses its best combination on
//! the bars before DATE (in sample), and that combination alone runs on the
//! bars from DATE on (out of sample), whose report is the one printed and
//! written — a figure the choice never saw.

use anyhow::bail;

use super::super::data::parse_time;
use super::super::{date_bounds, BacktestArgs};

/// The two periods, as `keel backtest` flags.
pub struct Split {
    /// The flag's text, for messages.
    pub text: String,
    /// The first out-of-sample open time (ms).
    pub at_ms: i64,
    /// The flags for the in-sample sweep (`--to` just before the split).
    pub in_sample: BacktestArgs,
    /// The flags for the out-of-sample run (`--from` the split).
    pub out_of_sample: BacktestArgs,
}

impl Split {
    /// Splits the `--from`/`--to` period at `text` (a date, date-time or
    /// epoch ms); refuses a split outside it in one line.
    pub fn new(args: &BacktestArgs, text: &str) -> anyhow::Result<Split> {
        let Some(at_ms) = parse_time(text) else { bail!("--split `{text}` is not an ISO date, date-time or epoch ms") };
        let (from_ms, to_ms) = date_bounds(args.from.as_deref(), args.to.as_deref())?;
        if at_ms <= from_ms || at_ms > to_ms {
            bail!("--split `{text}` must fall after --from and not after --to, so both periods have bars");
        }
        let mut in_sample = args.clone();
        in_sample.to = Some((at_ms - 1).to_string());
        let mut out_of_sample = args.clone();
        out_of_sample.from = Some(at_ms.to_string());
        Ok(Split { text: text.to_string(), at_ms, in_sample, out_of_sample })
    }
}
