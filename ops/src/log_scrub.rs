//! What every log line goes through before it leaves the process: the value
//! of each configured secret is replaced by `<redacted>` and control
//! characters are escaped, so no secret reaches the log at any level (HTTP,
//! WebSocket and TLS crates dump headers and frames at trace level) and a
//! newline inside a logged value (the reason of a `/stop`, an HTTP emergency
//! stop) cannot forge a second line.
//!
//! Secrets are registered when they are read ([`crate::secret::Secret::from_env`])
//! and, at start, for every variable the config names ([`register_config`]),
//! which covers the venue keys the Binance adapter reads itself.

use std::borrow::Cow;
use std::sync::RwLock;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::Config;

/// What replaces a secret's value.
pub const REDACTED: &str = "<redacted>";

/// Values shorter than this are not redacted: replacing every `ab` would
/// garble the log and hide nothing (the HTTP secrets need 32 characters).
const MIN_SECRET_LEN: usize = 6;

/// Characters a URL carries as they are (RFC 3986 unreserved): a token in a
/// URL path (Telegram's `/bot<token>/…`) may appear percent-encoded.
const URL_ENCODED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The forms of every registered secret, longest first (so a secret that
/// contains another is redacted whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Redacts `value` from every later log line, as written and in the forms a
/// log can carry it: percent-encoded (a URL) and JSON- or Debug-escaped.
pub fn register(value: &str) {
    let value = value.trim();
    if value.chars().count() < MIN_SECRET_LEN {
        return;
    }
    let json = serde_json::to_string(value).unwrap_or_default();
    let forms = [
        value.to_string(),
        utf8_percent_encode(value, URL_ENCODED).to_string(),
        json.trim_matches('"').to_string(),
        format!("{value:?}").trim_matches('"').to_string(),
    ];
    let Ok(mut secrets) = SECRETS.write() else { return };
    for form in forms {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Registers the value of every secret variable `config` names, whether or
/// not the feature using it is enabled: the HTTP API token and webhook
/// secret, the Binance key and secret, the Coinbase private key, the Telegram bot token and the
/// Discord webhook URL.
pub fn register_config(config: &Config) {
    let b = &config.venue.binance;
    for var in [
        &config.http.token_env,
        &config.http.webhook_secret_env,
        &b.api_key_env,
        &b.api_secret_env,
        &config.venue.coinbase.private_key_env,
        &config.notify.telegram.token_env,
        &config.notify.discord.webhook_url_env,
    ] {
        if let Ok(value) = std::env::var(var) {
            register(&value);
        }
    }
}

/// `line` with every registered secret replaced by [`REDACTED`] and every
/// control character escaped (`\n`, `\r`, `\t`, else `\u00XX`), except a
/// final newline: what any log line, or a feed of log lines, must go
/// through before it leaves the process. Borrowed when nothing changed.
pub fn scrub(line: &str) -> Cow<'_, str> {
    scrub_keeping_colours(line, false)
}

/// [`scrub`], but with `colours` the SGR sequences a terminal's coloured
/// log uses (`ESC [ digits ; … m`) are kept; any other escape sequence is
/// still escaped.
pub fn scrub_keeping_colours(line: &str, colours: bool) -> Cow<'_, str> {
    let redacted = redact(line);
    match escape_controls(&redacted, colours) {
        Cow::Borrowed(_) => redacted,
        Cow::Owned(escaped) => Cow::Owned(escaped),
    }
}

fn redact(line: &str) -> Cow<'_, str> {
    let Ok(secrets) = SECRETS.read() else { return Cow::Borrowed(line) };
    let mut out = Cow::Borrowed(line);
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), REDACTED));
        }
    }
    out
}

/// Whether `c` must be escaped: C0 and C1 controls, DEL, and the Unicode
/// line and paragraph separators (shown as line breaks by some viewers).
fn is_escaped(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// The length of the SGR sequence (`ESC [ 0-9 ; … m`) at the start of `s`, if one is.
fn sgr_len(s: &str) -> Option<usize> {
    let rest = s.strip_prefix("\u{1b}[")?;
    let params = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b';').count();
    (rest.as_bytes().get(params) == Some(&b'm')).then_some(2 + params + 1)
}

fn escape_controls(line: &str, colours: bool) -> Cow<'_, str> {
    let body = line.strip_suffix('\n').unwrap_or(line);
    if !body.chars().any(is_escaped) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = body;
    while let Some((i, c)) = rest.char_indices().find(|(_, c)| is_escaped(*c)) {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        if let Some(n) = sgr_len(at).filter(|_| colours) {
            out.push_str(&at[..n]);
            rest = &at[n..];
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push_str(&format!("\\u{:04x}", u32::from(other))),
        }
        rest = &at[c.len_utf8()..];
    }
    out.push_str(rest);
    if body.len() < line.len() {
        out.push('\n');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_except_the_final_newline() {
        let cases: &[(&str, bool, &str)] = &[
            ("plain line\n", false, "plain line\n"),
            ("no newline", false, "no newline"),
            ("reason=a\nERROR forged line\n", false, "reason=a\\nERROR forged line\n"),
            ("cr\rlf\r\n", false, "cr\\rlf\\r\n"),
            ("tab\there", false, "tab\\there"),
            ("esc \u{1b}[2J clear\n", false, "esc \\u001b[2J clear\n"),
            ("c1 \u{85} nel \u{9b}\n", false, "c1 \\u0085 nel \\u009b\n"),
            ("sep \u{2028} x", false, "sep \\u2028 x"),
            ("del \u{7f}", false, "del \\u007f"),
            ("two\n\n", false, "two\\n\n"),
            ("\u{1b}[1mINFO\u{1b}[0m msg\n", true, "\u{1b}[1mINFO\u{1b}[0m msg\n"),
            ("\u{1b}[1mINFO\u{1b}[0m msg\n", false, "\\u001b[1mINFO\\u001b[0m msg\n"),
            ("\u{1b}[2J not a colour\n", true, "\\u001b[2J not a colour\n"),
            ("\u{1b}[31m\nforged\n", true, "\u{1b}[31m\\nforged\n"),
            ("ünïcödé ✓\n", false, "ünïcödé ✓\n"),
        ];
        for (line, colours, want) in cases {
            assert_eq!(scrub_keeping_colours(line, *colours), *want, "{line:?} colours={colours}");
        }
    }

    #[test]
    fn json_lines_stay_valid_json() {
        let line = format!("{}\n", serde_json::json!({"reason": "a\nb \u{85} c", "level": "WARN"}));
        let scrubbed = scrub(&line);
        let v: serde_json::Value = serde_json::from_str(scrubbed.trim_end()).expect("still JSON");
        assert_eq!(v["reason"], "a\nb \u{85} c");
        assert!(!scrubbed.trim_end().contains(['\n', '\u{85}']));
    }

    #[test]
    fn registered_secrets_are_redacted_in_every_form() {
        register("123456:TEST-scrub-token");
        register("ab");
        let cases: &[(&str, &str)] = &[
            ("GET /bot123456:TEST-scrub-token/getMe", "GET /bot<redacted>/getMe"),
            ("GET /bot123456%3ATEST-scrub-token/getMe", "GET /bot<redacted>/getMe"),
            (
                "token=\"123456:TEST-scrub-token\" twice 123456:TEST-scrub-token",
                "token=\"<redacted>\" twice <redacted>",
            ),
            ("ab stays: too short to be redacted", "ab stays: too short to be redacted"),
        ];
        for (line, want) in cases {
            assert_eq!(scrub(line), *want);
        }
        assert!(matches!(scrub("nothing secret here"), Cow::Borrowed(_)));
    }
}
