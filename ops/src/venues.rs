//! Builds the venue the config asks for.

use std::sync::Arc;

use engine::balance::{Balance, Balances};
use engine::clock::{Clock, SystemClock};
use engine::config::{Config, VenueMode};
use engine::sim::FeeSchedule;
use engine::venue::paper::{PaperConfig, PaperSymbol, PaperVenue};
use engine::venue::Venue;
use engine::Decimal;

/// Bars of simulated history so strategies can warm up at once.
const HISTORY_BARS: usize = 600;

/// A venue and, for simulated ones, the task driving its clock.
pub struct BuiltVenue {
    /// The venue.
    pub venue: Arc<dyn Venue>,
    /// Background tasks to abort on shutdown.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The paper venue's settings from the config. Balances continue from the
/// store's snapshot when there is one, so a restart keeps the account.
pub fn paper_config(config: &Config, stored: Option<&Balances>, now_ms: i64) -> PaperConfig {
    let balances: Vec<Balance> = match stored {
        Some(b) if !b.assets.is_empty() => b.assets.values().cloned().collect(),
        _ => config
            .balances
            .iter()
            .map(|(asset, amount)| Balance { asset: asset.clone(), free: *amount, locked: Decimal::ZERO })
            .collect(),
    };
    let interval = config.engine.bar_interval.0;
    PaperConfig {
        symbols: config
            .symbols
            .iter()
            .map(|s| PaperSymbol {
                instrument: s.instrument(),
                path: s.price_path(),
                spread_bps: s.spread_bps,
                touch_qty: s.touch_qty,
            })
            .collect(),
        balances,
        fees: FeeSchedule { maker_bps: config.venue.maker_fee_bps, taker_bps: config.venue.taker_fee_bps },
        depth_levels: config.venue.depth_levels,
        bar_interval_ms: interval,
        ticks_per_bar: config.venue.ticks_per_bar,
        bar_wall_ms: config.venue.bar_wall_time.0.max(1) as u64,
        history_bars: HISTORY_BARS,
        start_ms: now_ms - HISTORY_BARS as i64 * interval,
        // Ids from the wall clock keep trade ids unique across restarts of a
        // venue that does not keep its history.
        id_base: (now_ms.max(0) as u64).saturating_mul(1000),
    }
}

/// Builds the configured venue (must run inside a tokio runtime).
pub fn build(config: &Config, stored_balances: Option<&Balances>) -> anyhow::Result<BuiltVenue> {
    match config.venue.mode {
        VenueMode::Paper => {
            let venue = PaperVenue::new(paper_config(config, stored_balances, SystemClock.now_ms()));
            let task = venue.spawn_clock();
            Ok(BuiltVenue { venue, tasks: vec![task] })
        }
        other => anyhow::bail!("venue mode `{}` is not available in this build yet", other.as_str()),
    }
}
