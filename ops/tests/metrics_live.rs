//! The live `/metrics` output of a running engine: naming conventions, every
//! metric documented in `README.md`, and every metric the Grafana
//! dashboard and the alert rules use actually exported.

mod http_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use http_support::{eventually, start, BASE};

fn repo_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every `keel_*` identifier in a text.
fn keel_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("keel_") {
        let start = i + pos;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        if boundary && end > start + 5 {
            out.insert(text[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

async fn live_metrics() -> String {
    let r = start(&format!("{BASE}\n[http]\nlisten = \"127.0.0.1:0\"\n")).await;
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let url = r.base_url();
    // Let the engine trade a little so histograms and labelled series fill in.
    let ready = eventually(10, || async {
        client.get(format!("{url}/ready")).send().await.map(|r| r.status().is_success()).unwrap_or(false)
    })
    .await;
    assert!(ready, "engine never became ready");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = client.get(format!("{url}/metrics")).send().await.expect("metrics");
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap_or_default();
    r.stop().await;
    text
}

#[actix_rt::test]
async fn live_metrics_follow_conventions_and_cover_dashboard_and_rules() {
    let text = live_metrics().await;
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples: BTreeSet<String> = BTreeSet::new();
    let mut labels: BTreeSet<String> = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                families.insert(name.to_string(), kind.to_string());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..name_end].to_string());
            if let (Some(open), Some(close)) = (line.find('{'), line.rfind('}')) {
                for pair in line[open + 1..close].split(',') {
                    if let Some((k, _)) = pair.split_once('=') {
                        labels.insert(k.trim().to_string());
                    }
                }
            }
        }
    }
    assert!(families.len() >= 30, "{families:?}");

    // Conventions: prefix, `_total` exactly on counters, bounded labels.
    for (name, kind) in &families {
        assert!(name.starts_with("keel_"), "{name}");
        assert_eq!(name.ends_with("_total"), kind == "counter", "{name} is a {kind}");
        assert!(!name.contains("milliseconds") && !name.contains("_ms"), "{name}: base units");
    }
    for forbidden in ["order_id", "client_order_id", "trade_id", "user_id", "chat_id"] {
        assert!(!labels.contains(forbidden), "unbounded label {forbidden}");
    }

    // The list.
    let required = [
        "keel_orders_submitted_total",
        "keel_orders_filled_total",
        "keel_orders_canceled_total",
        "keel_orders_rejected_total",
        "keel_fills_total",
        "keel_risk_rejections_total",
        "keel_trading_state",
        "keel_emergency_stop",
        "keel_position_quantity",
        "keel_equity",
        "keel_drawdown_ratio",
        "keel_realized_pnl",
        "keel_tick_to_order_seconds",
        "keel_order_ack_seconds",
        "keel_market_data_age_seconds",
        "keel_stream_connected",
        "keel_stream_reconnects_total",
        "keel_venue_used_weight",
        "keel_store_write_seconds",
        "keel_actor_message_seconds",
        "keel_build_info",
        "keel_info",
    ];
    for name in required {
        assert!(families.contains_key(name), "{name} missing from /metrics");
    }
    assert_eq!(families.get("keel_tick_to_order_seconds").map(String::as_str), Some("histogram"));
    // Microsecond buckets.
    assert!(text.contains("keel_tick_to_order_seconds_bucket{le=\"0.000001\"}"), "µs buckets");

    // Every metric documented.
    let doc = repo_file("README.md");
    for name in families.keys() {
        assert!(doc.contains(&format!("`{name}`")), "{name} is not documented in README.md");
    }

    // Everything the dashboard and the rules use exists.
    let mut used = keel_names(&repo_file("deploy/keel.rules.yml"));
    used.extend(keel_names(&repo_file("deploy/grafana/dashboards/keel.json")));
    assert!(used.len() >= 20, "{used:?}");
    for name in &used {
        assert!(
            families.contains_key(name) || samples.contains(name),
            "{name} is used by the dashboard or the alert rules but not in /metrics"
        );
    }
    for name in families.keys() {
        let dashboard = repo_file("deploy/grafana/dashboards/keel.json");
        assert!(dashboard.contains(name.as_str()), "{name} has no panel on the dashboard");
    }

    // The Prometheus linter, when it is installed (CI installs it; deploy/check.sh runs it too).
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().expect("promtool ran");
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn name_scanner() {
    let names = keel_names("rate(keel_orders_submitted_total[5m]) / keel_equity and xkeel_no keel_");
    assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["keel_equity", "keel_orders_submitted_total"]);
}
