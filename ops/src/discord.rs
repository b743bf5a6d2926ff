//! Discord webhook notifications: each [`Notice`] becomes an embed (title,
//! colour by severity, fields, an ISO-8601 timestamp, the text as its
//! description) cut to Discord's documented limits, with a chart attached as
//! `chart.png` (multipart `payload_json` + `files[0]`) when the notice asks
//! for one and it can be drawn. Discord's rate limits are honoured: a 429's
//! `retry_after` (body, else the `Retry-After` header) goes back to the
//! worker as [`NotifyError::RetryAfter`], and `X-RateLimit-Remaining: 0`
//! holds the next send until `X-RateLimit-Reset-After` has passed. A 5xx or
//! a network failure is [`NotifyError::Unavailable`]: the worker backs off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::chart::Charts;
use crate::notice::{Notice, Severity};
use crate::notify::{strip_url, truncate, Notifier, NotifyError};
use crate::secret::Secret;

/// Discord's documented embed limits, in characters.
pub mod limits {
    /// Title.
    pub const TITLE: usize = 256;
    /// Description.
    pub const DESCRIPTION: usize = 4096;
    /// Fields per embed.
    pub const FIELDS: usize = 25;
    /// A field's name.
    pub const FIELD_NAME: usize = 256;
    /// A field's value.
    pub const FIELD_VALUE: usize = 1024;
    /// Title, description, field names and values together.
    pub const TOTAL: usize = 6000;
}

/// The attachment's file name, which the embed's image points at.
pub const CHART_FILE: &str = "chart.png";

/// The embed colour of a severity: critical red, warning amber, info blue, fill green.
pub fn colour(severity: Severity) -> u32 {
    match severity {
        Severity::Critical => 0xE0_2B_2B,
        Severity::Warning => 0xF0_A0_20,
        Severity::Info => 0x34_7A_E0,
        Severity::Fill => 0x2E_B8_5C,
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// The embed for `notice`, within Discord's limits (cut, never refused):
/// each part is cut to its own limit, fields past 25 are dropped, and when
/// the whole is still over 6000 characters the last fields go, then the
/// description is cut to what is left. An empty field value reads `-`
/// (Discord refuses empty ones).
pub fn embed(notice: &Notice, with_image: bool) -> Value {
    let title = truncate(&notice.title, limits::TITLE);
    let mut description = truncate(&notice.text, limits::DESCRIPTION);
    let mut fields: Vec<(String, String)> = notice
        .fields
        .iter()
        .take(limits::FIELDS)
        .map(|(n, v)| {
            let v = if v.trim().is_empty() { "-" } else { v.as_str() };
            let n = if n.trim().is_empty() { "-" } else { n.as_str() };
            (truncate(n, limits::FIELD_NAME), truncate(v, limits::FIELD_VALUE))
        })
        .collect();
    let total = |d: &str, f: &[(String, String)]| {
        chars(&title) + chars(d) + f.iter().map(|(n, v)| chars(n) + chars(v)).sum::<usize>()
    };
    while total(&description, &fields) > limits::TOTAL && !fields.is_empty() {
        fields.pop();
    }
    if total(&description, &fields) > limits::TOTAL {
        description = truncate(&description, limits::TOTAL.saturating_sub(chars(&title)));
    }
    let mut e = json!({
        "title": title,
        "description": description,
        "color": colour(notice.severity),
        "timestamp": iso8601(notice.at_ms),
    });
    if !fields.is_empty() {
        e["fields"] = fields.iter().map(|(n, v)| json!({ "name": n, "value": v, "inline": true })).collect();
    }
    if with_image {
        e["image"] = json!({ "url": format!("attachment://{CHART_FILE}") });
    }
    e
}

/// `2026-12-06T08:30:00.000Z`.
pub fn iso8601(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Posts embeds (and charts) to a Discord channel webhook.
pub struct DiscordNotifier {
    client: reqwest::Client,
    url: Secret,
    charts: Option<Charts>,
    /// No send before this (`X-RateLimit-Remaining: 0` seen).
    not_before: Mutex<Option<Instant>>,
}

/// Longest wait a rate-limit header may impose.
const MAX_HEADER_WAIT: Duration = Duration::from_secs(300);

impl DiscordNotifier {
    /// A notifier posting to the webhook `url` (a secret: it embeds the webhook
    /// token), drawing charts from `charts` when given.
    pub fn new(url: Secret, charts: Option<Charts>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { client, url, charts, not_before: Mutex::new(None) }
    }

    /// Remembers an exhausted bucket: remaining 0 → wait `Reset-After` seconds before the next send.
    fn note_bucket(&self, headers: &HeaderMap) {
        let num =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok());
        if num("x-ratelimit-remaining") == Some(0.0) {
            let wait = num("x-ratelimit-reset-after").unwrap_or(1.0).clamp(0.0, MAX_HEADER_WAIT.as_secs_f64());
            if let Ok(mut nb) = self.not_before.lock() {
                *nb = Some(Instant::now() + Duration::from_secs_f64(wait));
            }
        }
    }

    async fn wait_for_bucket(&self) {
        let until = self.not_before.lock().ok().and_then(|mut nb| nb.take());
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

#[async_trait]
impl Notifier for DiscordNotifier {
    fn name(&self) -> &'static str {
        "discord"
    }

    async fn send(&self, text: &str) -> Result<(), NotifyError> {
        self.send_notice(&Notice::from(text)).await
    }

    async fn attach(&self, notice: &mut Notice) {
        let (Some(charts), Some(request)) = (&self.charts, &notice.chart) else {
            return;
        };
        match charts.png(request).await {
            Ok(png) => notice.image = Some(Arc::new(png)),
            Err(reason) => {
                tracing::warn!(symbol = %request.symbol, %reason, "discord: no chart for this alert; sending it without one")
            }
        }
    }

    async fn send_notice(&self, notice: &Notice) -> Result<(), NotifyError> {
        self.wait_for_bucket().await;
        let payload = json!({ "embeds": [embed(notice, notice.image.is_some())] });
        let request = self.client.post(self.url.expose());
        let request = match &notice.image {
            None => request.json(&payload),
            Some(png) => {
                let file = reqwest::multipart::Part::bytes(png.as_ref().clone())
                    .file_name(CHART_FILE)
                    .mime_str("image/png")
                    .map_err(|e| NotifyError::Failed(format!("attachment: {e}")))?;
                let mut payload = payload;
                payload["attachments"] = json!([{ "id": 0, "filename": CHART_FILE }]);
                let form = reqwest::multipart::Form::new()
                    .part(
                        "payload_json",
                        reqwest::multipart::Part::text(payload.to_string())
                            .mime_str("application/json")
                            .map_err(|e| NotifyError::Failed(format!("payload: {e}")))?,
                    )
                    .part("files[0]", file);
                request.multipart(form)
            }
        };
        let response = request.send().await.map_err(|e| NotifyError::Unavailable(self.url.redact(&strip_url(&e))))?;
        self.note_bucket(response.headers());
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.as_u16() == 429 {
            let header = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok());
            let body: Option<Value> = response.json().await.ok();
            let from_body = body.as_ref().and_then(|b| b.get("retry_after")).and_then(Value::as_f64);
            let secs = from_body.or(header).unwrap_or(1.0);
            return Err(NotifyError::RetryAfter(Duration::from_secs_f64(secs.clamp(0.0, 3600.0))));
        }
        if status.is_server_error() {
            return Err(NotifyError::Unavailable(format!("discord answered HTTP {status}")));
        }
        Err(NotifyError::Failed(format!("discord answered HTTP {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(title: usize, text: usize, fields: usize, value: usize) -> Notice {
        let mut n = Notice::new("T".repeat(title), Severity::Warning, "d".repeat(text), 0);
        for i in 0..fields {
            n = n.field(&format!("f{i}"), "v".repeat(value));
        }
        n
    }

    fn total(e: &Value) -> usize {
        let s = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
        let fields = e["fields"].as_array().map_or(0, |f| f.iter().map(|f| s(&f["name"]) + s(&f["value"])).sum());
        s(&e["title"]) + s(&e["description"]) + fields
    }

    #[test]
    fn embeds_are_cut_to_discords_limits() {
        // (title, description, fields, field value) → (title, description, fields) lengths after.
        let cases = [
            ((10, 100, 3, 10), (10, 100, 3)),
            ((300, 10, 0, 0), (256, 10, 0)),
            ((10, 5000, 0, 0), (10, 4096, 0)),
            ((10, 10, 30, 5), (10, 10, 25)),
            // 25 fields of 1024 are over 6000 in all: fields go from the end until it fits.
            ((10, 10, 25, 2000), (10, 10, 5)),
            // A full description and fields: the fields go first, then the description is cut.
            ((256, 4096, 25, 1024), (256, 4096, 1)),
        ];
        for ((t, d, f, v), (want_t, want_d, want_f)) in cases {
            let e = embed(&notice(t, d, f, v), false);
            let len = |k: &str| e[k].as_str().map_or(0, |s| s.chars().count());
            let nf = e["fields"].as_array().map_or(0, Vec::len);
            assert_eq!((len("title"), len("description"), nf), (want_t, want_d, want_f), "case {:?}", (t, d, f, v));
            assert!(total(&e) <= limits::TOTAL, "total {} for {:?}", total(&e), (t, d, f, v));
            for field in e["fields"].as_array().into_iter().flatten() {
                assert!(field["value"].as_str().map_or(0, |s| s.chars().count()) <= limits::FIELD_VALUE);
            }
        }
    }

    #[test]
    fn empty_field_values_are_filled_and_the_image_points_at_the_attachment() {
        let n = Notice::new("Fill", Severity::Fill, "text", 1_764_979_200_000).field("reason", "");
        let e = embed(&n, true);
        assert_eq!(e["fields"][0]["value"], "-");
        assert_eq!(e["image"]["url"], "attachment://chart.png");
        assert_eq!(e["timestamp"], "2025-12-06T00:00:00.000Z");
        assert_eq!(e["color"], 0x2E_B8_5C);
        assert!(embed(&n, false).get("image").is_none());
    }

    #[test]
    fn colours_by_severity() {
        let cases = [
            (Severity::Critical, 0xE0_2B_2B),
            (Severity::Warning, 0xF0_A0_20),
            (Severity::Info, 0x34_7A_E0),
            (Severity::Fill, 0x2E_B8_5C),
        ];
        for (s, c) in cases {
            assert_eq!(colour(s), c, "{s:?}");
        }
    }
}
