//! The API token and the webhook secret: long enough to resist guessing, and
//! not a placeholder copied from `deploy/`. A weak one stops the start with
//! one line naming the variable (never its value).

use crate::config::HttpConfig;
use crate::secret::Secret;

/// The fewest characters an API token or webhook secret may have.
pub const MIN_SECRET_LEN: usize = 32;

/// The example environment file shipped in `deploy/`: every value in it
/// (commented out or not) is a placeholder.
const ENV_EXAMPLE: &str = include_str!("../../../deploy/keel.env.example");

/// The values of `VAR=value` lines of the shipped example, commented or not.
fn placeholders() -> impl Iterator<Item = &'static str> {
    ENV_EXAMPLE.lines().filter_map(|line| {
        let (name, value) = line.trim().trim_start_matches('#').trim().split_once('=')?;
        let is_var = !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        (is_var && !value.trim().is_empty()).then_some(value.trim())
    })
}

/// Why `value` may not guard the API, naming `var` (from config key `key`).
pub fn check(var: &str, key: &str, value: &Secret) -> Result<(), String> {
    let advice = "set it to a long random string, e.g. `openssl rand -hex 32`";
    if placeholders().any(|p| value.matches(p)) {
        return Err(format!("{var} (named by {key}) is the placeholder from deploy/keel.env.example; {advice}"));
    }
    if value.expose().chars().count() < MIN_SECRET_LEN {
        return Err(format!("{var} (named by {key}) is shorter than {MIN_SECRET_LEN} characters; {advice}"));
    }
    Ok(())
}

/// The API token and webhook secret from the variables `[http]` names. An
/// unset one is allowed (its endpoints answer 401); a weak one is an error.
pub fn load(http: &HttpConfig) -> anyhow::Result<(Option<Secret>, Option<Secret>)> {
    let read = |var: &str, key: &str| -> anyhow::Result<Option<Secret>> {
        let secret = Secret::from_env(var);
        if let Some(s) = &secret {
            check(var, key, s).map_err(|e| anyhow::anyhow!("refusing to start: {e}"))?;
        }
        Ok(secret)
    };
    Ok((read(&http.token_env, "http.token_env")?, read(&http.webhook_secret_env, "http.webhook_secret_env")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_refused_naming_the_variable_only() {
        let long = "0123456789abcdef0123456789abcdef";
        let cases = [
            ("xQz9", Some("shorter than 32")),
            ("change-me-to-a-long-random-string", Some("placeholder")),
            ("another-long-random-string", Some("placeholder")),
            (&long[..31], Some("shorter than 32")),
            (long, None),
        ];
        for (value, want) in cases {
            let got = check("KEEL_API_TOKEN", "http.token_env", &Secret::new(value));
            match (got, want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => {
                    assert!(e.contains(w) && e.starts_with("KEEL_API_TOKEN "), "{value}: {e}");
                    assert!(!e.contains(value), "the value is never printed: {e}");
                }
                (got, want) => panic!("{value}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_shipped_example_has_placeholders() {
        assert!(placeholders().any(|p| p == "change-me-to-a-long-random-string"));
    }
}
