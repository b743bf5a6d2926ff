//! Binance errors and their classification into [`VenueError`] classes.
//!
//! The rule (rest-api.md "HTTP Return Codes", errors.md): 4XX with a negative
//! code is a definitive answer; 5XX, -1006 and -1007 mean the execution status
//! is unknown; 429/418 carry `Retry-After`.

use keel_core::venue::VenueError;

use super::model::ApiError;

/// `-1003` TOO_MANY_REQUESTS.
pub const TOO_MANY_REQUESTS: i64 = -1003;
/// `-1006` UNEXPECTED_RESP (execution status unknown).
pub const UNEXPECTED_RESP: i64 = -1006;
/// `-1007` TIMEOUT (execution status unknown).
pub const TIMEOUT: i64 = -1007;
/// `-1015` TOO_MANY_ORDERS.
pub const TOO_MANY_ORDERS: i64 = -1015;
/// `-1021` INVALID_TIMESTAMP.
pub const INVALID_TIMESTAMP: i64 = -1021;
/// `-1022` INVALID_SIGNATURE.
pub const INVALID_SIGNATURE: i64 = -1022;
/// `-2010` NEW_ORDER_REJECTED.
pub const NEW_ORDER_REJECTED: i64 = -2010;
/// `-2011` CANCEL_REJECTED.
pub const CANCEL_REJECTED: i64 = -2011;
/// `-2013` NO_SUCH_ORDER.
pub const NO_SUCH_ORDER: i64 = -2013;
/// `-2015` REJECTED_MBX_KEY.
pub const REJECTED_MBX_KEY: i64 = -2015;

/// An error from the Binance adapter, before classification.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BinanceError {
    /// The venue answered with an error body.
    #[error("binance error {code} (HTTP {http_status}): {msg}")]
    Api {
        /// HTTP status (or the WS API `status`).
        http_status: u16,
        /// Binance code.
        code: i64,
        /// Binance message.
        msg: String,
        /// `Retry-After` (REST, seconds → ms) or `retryAfter` (WS API, epoch ms → remaining ms).
        retry_after_ms: Option<u64>,
    },
    /// The venue answered with an HTTP error and no Binance error body.
    #[error("HTTP {status}: {body}")]
    Http {
        /// HTTP status.
        status: u16,
        /// Body (truncated).
        body: String,
    },
    /// The request never left (connect failure, local pacing).
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request left but no answer came (timeout, connection dropped).
    #[error("no response: {0}")]
    NoResponse(String),
    /// The answer could not be decoded.
    #[error("cannot decode response: {0}")]
    Decode(String),
}

impl BinanceError {
    /// Builds an API error from an HTTP status, a body and a `Retry-After` header.
    pub fn from_api(http_status: u16, err: ApiError, retry_after_s: Option<u64>) -> Self {
        let retry_after_ms = retry_after_s.map(|s| s.saturating_mul(1000));
        Self::Api { http_status, code: err.code, msg: err.msg, retry_after_ms }
    }

    /// The Binance code, if the venue sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the request may have been executed: query before anything else.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Api { http_status, code, .. } => {
                *http_status >= 500 || matches!(*code, UNEXPECTED_RESP | TIMEOUT | -1000 | -1001)
            }
            Self::Http { status, .. } => *status >= 500 || *status == 408,
            Self::NoResponse(_) => true,
            // A 200 whose body we cannot read: the request was executed, we just
            // cannot tell how; treat it as unknown so it is queried.
            Self::Decode(_) => true,
            Self::NotSent(_) => false,
        }
    }

    /// True when the same request can be sent again later without risk of a duplicate.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { http_status, code, .. } => {
                !self.outcome_unknown()
                    && (*http_status == 429
                        || matches!(*code, TOO_MANY_REQUESTS | TOO_MANY_ORDERS | INVALID_TIMESTAMP | -1008))
            }
            Self::NotSent(_) => true,
            _ => false,
        }
    }

    /// True for -1021: resynchronise the clock and retry once.
    pub fn needs_time_resync(&self) -> bool {
        self.code() == Some(INVALID_TIMESTAMP)
    }

    /// True for an HTTP 418 ban.
    pub fn is_ban(&self) -> bool {
        matches!(self, Self::Api { http_status: 418, .. })
            || matches!(self, Self::Api { code: TOO_MANY_REQUESTS, msg, .. } if msg.contains("banned"))
    }

    /// Classifies into the exchange-neutral error.
    pub fn to_venue(&self) -> VenueError {
        match self {
            Self::Api { http_status, code, msg, retry_after_ms } => {
                let wait = retry_after_ms.unwrap_or(if *code == TOO_MANY_ORDERS { 10_000 } else { 1_000 });
                if self.is_ban() {
                    VenueError::Banned { retry_after_ms: retry_after_ms.unwrap_or(120_000) }
                } else if *http_status == 429 || matches!(*code, TOO_MANY_REQUESTS | TOO_MANY_ORDERS) {
                    VenueError::RateLimited { retry_after_ms: wait }
                } else if self.outcome_unknown() {
                    VenueError::OutcomeUnknown(format!("{code}: {msg}"))
                } else if *code == NO_SUCH_ORDER || (*code == CANCEL_REJECTED && msg.starts_with("Unknown order")) {
                    VenueError::NotFound
                } else if *code == -1008 {
                    VenueError::NotSent(format!("{code}: {msg}"))
                } else {
                    VenueError::Rejected { code: *code, reason: msg.clone() }
                }
            }
            Self::Http { status, body } => {
                if self.outcome_unknown() {
                    VenueError::OutcomeUnknown(format!("HTTP {status}: {body}"))
                } else {
                    VenueError::Rejected { code: -i64::from(*status), reason: body.clone() }
                }
            }
            Self::NotSent(m) => VenueError::NotSent(m.clone()),
            Self::NoResponse(m) => VenueError::OutcomeUnknown(m.clone()),
            Self::Decode(m) => VenueError::BadResponse(m.clone()),
        }
    }
}

impl From<BinanceError> for VenueError {
    fn from(e: BinanceError) -> Self {
        e.to_venue()
    }
}

/// Remaining ms until an epoch-ms `retryAfter` (WS API form).
pub fn retry_after_from_epoch(retry_after_epoch_ms: i64, now_ms: i64) -> u64 {
    u64::try_from(retry_after_epoch_ms.saturating_sub(now_ms)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: i64, msg: &str) -> BinanceError {
        BinanceError::Api { http_status: status, code, msg: msg.into(), retry_after_ms: None }
    }

    #[test]
    fn classification_table() {
        struct Case {
            name: &'static str,
            err: BinanceError,
            want: &'static str,
        }
        let cases = [
            Case { name: "5xx", err: BinanceError::Http { status: 503, body: String::new() }, want: "outcome_unknown" },
            Case { name: "-1007", err: api(503, -1007, "Timeout"), want: "outcome_unknown" },
            Case { name: "-1006 on 400", err: api(400, -1006, "x"), want: "outcome_unknown" },
            Case { name: "timeout", err: BinanceError::NoResponse("t".into()), want: "outcome_unknown" },
            Case { name: "connect", err: BinanceError::NotSent("c".into()), want: "not_sent" },
            Case { name: "429", err: api(429, -1003, "Too much request weight used"), want: "rate_limited" },
            Case { name: "418", err: api(418, -1003, "IP banned until 1"), want: "banned" },
            Case { name: "-1015", err: api(429, -1015, "Too many new orders"), want: "rate_limited" },
            Case { name: "-2010", err: api(400, -2010, "Duplicate order sent."), want: "rejected" },
            Case { name: "-2013", err: api(400, -2013, "Order does not exist."), want: "not_found" },
            Case { name: "-2011 unknown", err: api(400, -2011, "Unknown order sent."), want: "not_found" },
            Case {
                name: "-2011 restrictions",
                err: api(400, -2011, "Order was not canceled due to cancel restrictions."),
                want: "rejected",
            },
            Case { name: "-1021", err: api(400, -1021, "Timestamp"), want: "rejected" },
        ];
        for c in cases {
            assert_eq!(c.err.to_venue().code(), c.want, "{}", c.name);
        }
    }
}
