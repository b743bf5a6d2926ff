//! The sandbox's state on disk: a sandbox given a `state_dir` keeps its book,
//! open orders, balances, fills, ids, price paths and clock there, so a client
//! that restarts (or a sandbox that restarts with it) meets the venue it left.
//!
//! The whole state is one JSON file, replaced atomically (written beside it,
//! then renamed) after every order placed or canceled and every tick that
//! executed something — before the client hears of it — and at least once a
//! second otherwise. It survives a killed process; it does not `fsync`, so a
//! power loss may take the last writes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use keel_core::market::Bar;
use keel_core::sim::{BarBuilder, MatchingCore, PriceGenState};

/// The file inside the state dir.
pub const STATE_FILE: &str = "state.json";

/// Version of the file's layout; another version is refused, never guessed at.
const FORMAT: u32 = 1;

/// Saved state of one symbol's market.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSymbol {
    /// Where its price path is.
    pub gen: PriceGenState,
    /// Replayed files: the next row.
    pub replay_bar: Option<usize>,
    /// The bar in progress.
    pub builder: BarBuilder,
    /// Closed bars (the newest ones).
    pub history: Vec<Bar>,
    /// Public trades in the bar in progress.
    pub trades_in_bar: u64,
    /// The next public trade id.
    pub next_public_trade: u64,
    /// The book update id.
    pub book_update: u64,
    /// Trade statistics of the bars (first and last trade id, count, volumes).
    #[serde(default)]
    pub tape: crate::tape::SavedTape,
}

/// The saved exchange.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedExchange {
    /// Layout version.
    pub format: u32,
    /// Server time of the save (ms): the downtime runs from here.
    pub saved_at_ms: i64,
    /// Simulated market time.
    pub sim_ms: i64,
    /// Tick within the bar.
    pub tick_in_bar: u32,
    /// Counter of generated client ids.
    pub next_auto_id: u64,
    /// Accounts, orders, fills, books and ids.
    pub core: MatchingCore,
    /// Market of each symbol.
    pub symbols: BTreeMap<String, SavedSymbol>,
}

impl SavedExchange {
    /// A new save of the current layout.
    pub fn new(
        saved_at_ms: i64,
        sim_ms: i64,
        tick_in_bar: u32,
        next_auto_id: u64,
        core: MatchingCore,
        symbols: BTreeMap<String, SavedSymbol>,
    ) -> Self {
        Self { format: FORMAT, saved_at_ms, sim_ms, tick_in_bar, next_auto_id, core, symbols }
    }
}

/// Writes and reads the state file of one state dir.
#[derive(Debug)]
pub struct Saver {
    dir: PathBuf,
    /// Server time of the last save (ms).
    pub last_ms: i64,
    /// Whether the last save failed (so a failure is logged once, and its end too).
    failing: bool,
}

impl Saver {
    /// A saver for `dir`, created (mode 0700) if missing.
    pub fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
        }
        Ok(Self { dir: dir.to_path_buf(), last_ms: 0, failing: false })
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved state, `None` when there is none yet. A file that cannot be
    /// read is an error: starting fresh would forget orders a client placed.
    pub fn load(&self) -> Result<Option<SavedExchange>, String> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let saved: SavedExchange = serde_json::from_slice(&bytes).map_err(|e| {
            format!("{} is not a sandbox state file ({e}); move it away to start the sandbox fresh", path.display())
        })?;
        if saved.format != FORMAT {
            return Err(format!(
                "{} has layout {} (this sandbox reads {FORMAT}); move it away to start the sandbox fresh",
                path.display(),
                saved.format
            ));
        }
        Ok(Some(saved))
    }

    /// Replaces the file with `state` (atomically: a partial file is never read).
    pub fn save(&mut self, state: &SavedExchange) {
        let path = self.path();
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let written = serde_json::to_vec(state)
            .map_err(|e| e.to_string())
            .and_then(|bytes| write_private(&tmp, &bytes).map_err(|e| e.to_string()))
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| e.to_string()));
        self.last_ms = state.saved_at_ms;
        match written {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!(file = %path.display(), "sandbox state saved again");
            }
            Ok(()) => {}
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::error!(file = %path.display(), error = %e, "SANDBOX STATE NOT SAVED: a restart would lose what changed since");
            }
            Err(_) => {}
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)
}
