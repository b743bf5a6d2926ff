//! Secrets (bot token, API token, webhook secret, webhook URL): read from the
//! environment variable the config names, never printed, compared in constant time.

use std::fmt;

/// A secret value. `Debug` and `Display` print `<redacted>`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Reads the variable `name`; `None` when it is unset or empty. The
    /// value is redacted from every later log line ([`crate::log_scrub`]).
    pub fn from_env(name: &str) -> Option<Self> {
        let value = std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())?;
        crate::log_scrub::register(&value);
        Some(Self(value))
    }

    /// Wraps a value (tests, and values read some other way).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `candidate` in time independent of where they differ.
    pub fn matches(&self, candidate: &str) -> bool {
        let a = self.0.as_bytes();
        let b = candidate.as_bytes();
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            let y = b.get(i).copied().unwrap_or(0);
            diff |= usize::from(x ^ y);
        }
        diff == 0
    }

    /// `text` with every occurrence of the secret replaced by `<redacted>`
    /// (error messages of HTTP clients can carry URLs that embed a token).
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_string();
        }
        text.replace(&self.0, "<redacted>")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn compares_and_hides() {
        let s = Secret::new("s3cret");
        assert!(s.matches("s3cret"));
        assert!(!s.matches("s3cre"));
        assert!(!s.matches("s3cretX"));
        assert!(!s.matches(""));
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(s.redact("url /bots3cret/getMe"), "url /bot<redacted>/getMe");
    }
}
