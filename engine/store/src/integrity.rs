//! The integrity record: a small file beside sled that says how far the store
//! has come, so a store that lost data is refused instead of trusted.
//!
//! sled opens a directory whose snapshot files are gone as an empty database,
//! and a swapped or truncated directory opens as whatever it holds. The record
//! lives outside sled (`integrity.json` in the data dir, replaced atomically
//! and fsynced) and holds the store's id, the orders ever created, the last
//! fill sequence and the emergency-stop flag. It is only ever written after
//! sled has flushed at least as much, so sled may be ahead of it but never
//! behind: a store behind it lost data.
//!
//! A refusal is sticky: it is written into the record, so nothing the engine
//! records afterwards (reconciliation importing the venue's history) can make
//! the store look whole again. Only [`crate::SledStore::accept_integrity`]
//! (`keel store accept`) clears it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the record in the data dir.
pub const RECORD_FILE: &str = "integrity.json";

/// The record's format version.
const RECORD_VERSION: u32 = 1;

/// What the record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityRecord {
    /// Format version.
    pub version: u32,
    /// The id of the store it describes (also kept inside sled).
    pub store_id: Option<String>,
    /// Orders ever created, as the store counted them when sealed.
    pub orders_total: u64,
    /// The last fill sequence the store had given when sealed.
    pub fill_seq: u64,
    /// The emergency stop was set when sealed.
    pub emergency_stop: bool,
    /// When it was last written (ms since the epoch).
    pub sealed_ms: i64,
    /// Set when the store was refused; sticky until an operator accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Note>,
    /// The last time an operator accepted the store as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Note>,
}

/// A dated reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Why.
    pub reason: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

/// What the store holds now, to compare with the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The id kept inside sled, if any.
    pub store_id: Option<String>,
    /// Orders ever created.
    pub orders_total: u64,
    /// The last fill sequence given.
    pub fill_seq: u64,
    /// The emergency stop is set.
    pub emergency_stop: bool,
    /// The store holds anything at all (orders, fills, a trading state, a checkpoint).
    pub has_data: bool,
}

/// What opening found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No sled files and no record: a new store.
    Fresh,
    /// sled files with data but no record (a store from before records): the
    /// record is written from the store's contents.
    Upgrade,
    /// The record and the store agree.
    Sound,
    /// The store is refused, with why.
    Refused(String),
}

impl IntegrityRecord {
    /// A record of `facts` now.
    pub fn of(facts: &Facts, now_ms: i64) -> Self {
        Self {
            version: RECORD_VERSION,
            store_id: facts.store_id.clone(),
            orders_total: facts.orders_total,
            fill_seq: facts.fill_seq,
            emergency_stop: facts.emergency_stop,
            sealed_ms: now_ms,
            refused: None,
            accepted: None,
        }
    }
}

/// The record's path in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(RECORD_FILE)
}

/// Reads the record: `Ok(None)` when there is none, `Err` with why when it
/// cannot be read or parsed (a garbled record is itself a refusal).
pub fn read(data_dir: &Path) -> Result<Option<IntegrityRecord>, String> {
    let at = path(data_dir);
    let bytes = match std::fs::read(&at) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("the integrity record {} cannot be read: {e}", at.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("the integrity record {} is not readable ({e})", at.display()))
}

/// Writes the record atomically: a temporary file, fsynced, renamed over the
/// old one, and the directory fsynced, so a crash leaves the old record or
/// the new one, never a torn one. The file is private (0600).
pub fn write(data_dir: &Path, record: &IntegrityRecord) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    let tmp = data_dir.join(format!("{RECORD_FILE}.tmp"));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(data_dir))?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// Judges the store against the record. `had_sled` says whether sled's
/// directory held files before this open (a first open creates them).
pub fn judge(record: Option<&IntegrityRecord>, facts: &Facts, had_sled: bool) -> Verdict {
    let Some(rec) = record else {
        return match (had_sled, facts.has_data) {
            (false, _) => Verdict::Fresh,
            (true, true) => Verdict::Upgrade,
            (true, false) => Verdict::Refused(
                "the store's files are there but it is empty, and there is no integrity record: this is what a lost snapshot looks like".into(),
            ),
        };
    };
    if let Some(refused) = &rec.refused {
        return Verdict::Refused(format!("{} (refused at {} ms; not accepted since)", refused.reason, refused.at_ms));
    }
    match (&rec.store_id, &facts.store_id) {
        (Some(want), Some(have)) if want != have => {
            return Verdict::Refused(format!(
                "the store is not the one the integrity record describes (store id {have}, the record says {want}): a swapped directory"
            ))
        }
        (Some(want), None) => {
            return Verdict::Refused(format!(
                "the store is empty or new but the integrity record describes store {want} with {} orders and {} fills: a lost snapshot or a replaced directory",
                rec.orders_total, rec.fill_seq
            ))
        }
        _ => {}
    }
    let mut behind = Vec::new();
    if facts.orders_total < rec.orders_total {
        behind.push(format!("{} orders, the record {}", facts.orders_total, rec.orders_total));
    }
    if facts.fill_seq < rec.fill_seq {
        behind.push(format!("fill sequence {}, the record {}", facts.fill_seq, rec.fill_seq));
    }
    if rec.emergency_stop && !facts.emergency_stop {
        behind.push("the emergency stop clear, the record set".into());
    }
    if behind.is_empty() {
        Verdict::Sound
    } else {
        Verdict::Refused(format!(
            "the store is behind its integrity record (lost or truncated data): it has {}",
            behind.join("; ")
        ))
    }
}

/// True when sled's directory exists and holds any file.
pub fn sled_present(sled_dir: &Path) -> bool {
    std::fs::read_dir(sled_dir).map(|mut d| d.next().is_some()).unwrap_or(false)
}

/// A new store id: unique enough to tell one store from another (it is an
/// identity, not a secret).
pub fn new_store_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{nanos:x}-{:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(id: Option<&str>, orders: u64, fills: u64, stop: bool) -> Facts {
        Facts {
            store_id: id.map(str::to_string),
            orders_total: orders,
            fill_seq: fills,
            emergency_stop: stop,
            has_data: orders > 0 || fills > 0 || stop,
        }
    }

    #[test]
    fn the_verdict_for_every_case() {
        let rec = IntegrityRecord::of(&facts(Some("a"), 10, 7, false), 1);
        let stopped = IntegrityRecord::of(&facts(Some("a"), 10, 7, true), 1);
        let mut refused = rec.clone();
        refused.refused = Some(Note { reason: "earlier".into(), at_ms: 2 });
        let sound = |v: &Verdict| *v == Verdict::Sound;
        let refused_v = |v: &Verdict| matches!(v, Verdict::Refused(_));
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Option<&IntegrityRecord>, Facts, bool, fn(&Verdict) -> bool)> = vec![
            ("fresh", None, facts(None, 0, 0, false), false, |v| *v == Verdict::Fresh),
            ("upgrade", None, facts(None, 3, 2, false), true, |v| *v == Verdict::Upgrade),
            ("sled files, empty, no record", None, facts(None, 0, 0, false), true, refused_v),
            ("equal", Some(&rec), facts(Some("a"), 10, 7, false), true, sound),
            ("ahead", Some(&rec), facts(Some("a"), 12, 9, true), true, sound),
            ("fewer orders", Some(&rec), facts(Some("a"), 9, 7, false), true, refused_v),
            ("fewer fills", Some(&rec), facts(Some("a"), 10, 6, false), true, refused_v),
            ("stop lost", Some(&stopped), facts(Some("a"), 10, 7, false), true, refused_v),
            ("other store", Some(&rec), facts(Some("b"), 10, 7, false), true, refused_v),
            ("empty under a record", Some(&rec), facts(None, 0, 0, false), true, refused_v),
            ("sticky refusal", Some(&refused), facts(Some("a"), 99, 99, false), true, refused_v),
        ];
        for (name, record, f, had, want) in cases {
            let v = judge(record, &f, had);
            assert!(want(&v), "{name}: {v:?}");
        }
    }

    #[test]
    fn the_record_is_written_whole_and_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), Ok(None));
        let rec = IntegrityRecord::of(&facts(Some("a"), 1, 2, true), 3);
        write(dir.path(), &rec).unwrap();
        assert_eq!(read(dir.path()), Ok(Some(rec)));
        assert!(!dir.path().join(format!("{RECORD_FILE}.tmp")).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(dir.path())).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(path(dir.path()), b"{ torn").unwrap();
        assert!(read(dir.path()).is_err(), "a garbled record is an error, not an absent one");
    }
}
