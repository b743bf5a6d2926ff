//! A store that lost its snapshot opens empty in sled; Keel refuses it
//! (issue 11, finding 4). The engine starts HALTED with `store_integrity`
//! and sends nothing, `keel state` says what is wrong without changing a
//! byte, `keel resume` is refused, and only `keel store accept` lets the
//! operator go on — into an emergency stop, to review first.

mod common;

use common::{keel, listing, spawn_run, state_json};

const CONFIG: &str = include_str!("../../config.toml");

#[test]
fn a_store_that_lost_its_snapshot_starts_halted_sends_nothing_and_waits_for_an_accept() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // Any free port: an engine already on the default one (the operator's,
    // another suite's) must not make this run fail to start.
    std::fs::write(&config, CONFIG.replace("listen = \"127.0.0.1:9184\"", "listen = \"127.0.0.1:0\"")).unwrap();
    let populated = dir.path().join("populated");
    let config_s = config.to_str().unwrap();
    let out = keel(&["bench", "--history", "300", "--config", config_s, "--data-dir", populated.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A copy of it loses sled's snapshot and log files.
    let data = dir.path().join("data");
    keel_store::copy_dir(&populated, &data).unwrap();
    let mut lost = 0;
    for e in std::fs::read_dir(data.join("keel.sled")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") || name == "db" {
            std::fs::remove_file(e.path()).unwrap();
            lost += 1;
        }
    }
    assert!(lost > 0, "sled's files were found and removed");
    let data_s = data.to_str().unwrap();

    // `keel state` says what is wrong, and changes nothing.
    let before = listing(&data);
    let state = state_json(config_s, data_s);
    assert_eq!(listing(&data), before, "keel state leaves every file byte-identical");
    assert_eq!(state["store_integrity"]["ok"], false, "{state:#}");
    let reason = state["store_integrity"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("store_integrity") && reason.contains("300"), "names the loss: {reason}");
    assert_eq!(state["trading_state"], "HALTED", "{state:#}");

    // The engine starts HALTED on it and sends nothing.
    let mut run = spawn_run(&config, &data, &["--exit-after", "3s"], &[]);
    run.wait_for("engine started", 1);
    let (status, lines) = run.finish();
    common::assert_stopped("the run", status, &lines);
    let halted = lines.iter().find(|v| v["message"] == "starting HALTED (fail closed)");
    let halted_reason = halted.and_then(|v| v["reason"].as_str()).unwrap_or("");
    assert!(halted_reason.starts_with("store_integrity:"), "{halted:?}");
    let started = lines.iter().find(|v| v["message"] == "engine started").unwrap();
    assert_eq!(started["trading_state"], "HALTED");
    assert_eq!(lines.iter().filter(|v| v["message"] == "order created").count(), 0, "no order is sent");
    assert!(lines.iter().any(|v| v["message"] == "intent refused by risk guard"), "strategies ran and were refused");

    // Still refused after that run, and a resume is not the way out.
    assert_eq!(state_json(config_s, data_s)["store_integrity"]["ok"], false);
    let out = keel(&["resume", "--config", config_s, "--data-dir", data_s]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keel store accept"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The deliberate accept: sound again, and stopped for review.
    let out = keel(&["store", "accept", "--reason", "venue is the record", "--config", config_s, "--data-dir", data_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACCEPTED"));
    let state = state_json(config_s, data_s);
    assert_eq!(state["store_integrity"]["ok"], true, "{state:#}");
    assert_eq!(state["emergency_stop"], true);
    let out = keel(&["resume", "--config", config_s, "--data-dir", data_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The untouched original is sound.
    assert_eq!(state_json(config_s, populated.to_str().unwrap())["store_integrity"]["ok"], true);
}
