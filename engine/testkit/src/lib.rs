//! Test support shared by Keel's crates (a dev-dependency only, never linked
//! into the product).
//!
//! Exchange fixtures — documented payloads of Binance, Binance USD-M and
//! Coinbase — live outside the repository, in `../shared/fixtures` beside the
//! workspace. A clone without them must still pass its own tests, so a test
//! that needs them asks [`fixtures`] for the folder and returns early when it
//! is absent, after saying so on stderr. CI sets `KEEL_REQUIRE_FIXTURES=1`:
//! then a missing folder fails the test instead.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable that turns a missing fixture folder into a failure.
pub const REQUIRE_FIXTURES_ENV: &str = "KEEL_REQUIRE_FIXTURES";

/// The workspace root: the nearest directory at or above `start` whose
/// `Cargo.toml` declares `[workspace]`.
pub fn workspace_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|dir| is_workspace_manifest(&dir.join("Cargo.toml"))).map(Path::to_path_buf)
}

fn is_workspace_manifest(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
}

/// Where the fixtures of `venue` (`binance`, `binance-usdm`, `coinbase`)
/// would be: `<workspace root>/../shared/fixtures/<venue>`, the workspace
/// found from the test's working directory (cargo runs tests in the crate's
/// folder, which lies inside the workspace).
pub fn fixtures_path(venue: &str) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let root = workspace_root(&cwd).unwrap_or(cwd);
    let beside = root.parent().map(Path::to_path_buf).unwrap_or_else(|| root.join(".."));
    beside.join("shared").join("fixtures").join(venue)
}

/// The fixture folder of `venue` if it exists. When it does not, prints
/// `skipped: fixtures not found at …` with the test's name to stderr (past
/// the test harness's capture, so the run shows it) and returns `None`; with
/// `KEEL_REQUIRE_FIXTURES=1` it panics instead, failing the test.
pub fn fixtures(venue: &str) -> Option<PathBuf> {
    let dir = fixtures_path(venue);
    if dir.is_dir() {
        return Some(dir);
    }
    let required = std::env::var(REQUIRE_FIXTURES_ENV).is_ok_and(|v| v == "1");
    assert!(!required, "{REQUIRE_FIXTURES_ENV}=1 but the fixtures are not at {}", dir.display());
    skipped(&format!("fixtures not found at {}", dir.display()), REQUIRE_FIXTURES_ENV);
    None
}

/// Says a test skipped: `skipped: <why> (<test>; set <require_env>=1 to fail
/// instead)`, written to the stderr handle, past the test harness's capture
/// (`eprintln!` is captured and shown only for failures), so a run shows
/// every skip.
pub fn skipped(why: &str, require_env: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let _ = writeln!(std::io::stderr(), "skipped: {why} ({test}; set {require_env}=1 to fail instead)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_root_is_found_from_a_crate_folder() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = workspace_root(here).expect("inside the workspace");
        assert!(is_workspace_manifest(&root.join("Cargo.toml")));
        assert!(here.starts_with(&root) && here != root, "{} under {}", here.display(), root.display());
        assert!(!is_workspace_manifest(&here.join("Cargo.toml")), "a member's manifest is not the workspace's");
    }

    #[test]
    fn a_missing_folder_is_none_and_named() {
        // A venue nobody has fixtures for: absent here and in CI alike.
        let dir = fixtures_path("no-such-venue");
        assert!(dir.ends_with("shared/fixtures/no-such-venue"));
        if std::env::var(REQUIRE_FIXTURES_ENV).is_ok_and(|v| v == "1") {
            let panicked = std::panic::catch_unwind(|| fixtures("no-such-venue")).is_err();
            assert!(panicked, "a required folder that is missing must fail");
        } else {
            assert_eq!(fixtures("no-such-venue"), None);
        }
    }
}
