//! How the Coinbase protocol names the sandbox's things: product ids from
//! the listed symbols, UUIDs for orders, trades, accounts and users, and
//! Coinbase's spellings of times and decimals (reference §3).
//!
//! Product ids: every listed symbol is served as `BASE-QUOTE` from its
//! configured base and quote assets, so the default `BTCUSDT` (BTC/USDT) is
//! `BTC-USDT`, and a symbol configured with base `BTC` and quote `USD` is
//! `BTC-USD` — one instrument, one book, whichever protocol trades it.
//!
//! Order ids are the core's numeric ids written as UUIDs (RFC 9562 version
//! 8, reversible, so a lookup needs no table); trade, account and user ids
//! are version-8 UUIDs hashed from what identifies them, stable across
//! restarts.

use chrono::{DateTime, SecondsFormat};
use rust_decimal::Decimal;
use sha2::{Digest as _, Sha256};

use keel_core::instrument::Instrument;

/// The first group of every order UUID (marks the id as an order's).
const ORDER_TAG: u32 = 0x6b65_656c;

/// The Coinbase product id of an instrument: `BASE-QUOTE`.
pub fn product_id(inst: &Instrument) -> String {
    format!("{}-{}", inst.base_asset, inst.quote_asset)
}

/// An order's UUID from the core's id (version 8, variant 10).
pub fn order_uuid(id: u64) -> String {
    let a = (id >> 48) & 0xffff;
    let b = (id >> 36) & 0xfff;
    let c = 0x8000 | ((id >> 24) & 0xfff);
    let d = id & 0xff_ffff;
    format!("{ORDER_TAG:08x}-{a:04x}-8{b:03x}-{c:04x}-{d:012x}")
}

/// The core's id of an order UUID (none for anything else).
pub fn order_id_of(uuid: &str) -> Option<u64> {
    let parts: Vec<&str> = uuid.split('-').collect();
    let [tag, a, b, c, d] = parts.as_slice() else { return None };
    let hex = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|x| x.is_ascii_hexdigit())).then(|| u64::from_str_radix(s, 16).ok())?
    };
    if hex(tag, 8)? != u64::from(ORDER_TAG) {
        return None;
    }
    let (a, b, c, d) = (hex(a, 4)?, hex(b, 4)?, hex(c, 4)?, hex(d, 12)?);
    if b >> 12 != 8 || c >> 12 != 8 || d >> 24 != 0 {
        return None;
    }
    Some((a << 48) | ((b & 0xfff) << 36) | ((c & 0xfff) << 24) | d)
}

/// A stable UUID (version 8) hashed from `parts`.
pub fn hashed_uuid(parts: &[&str]) -> String {
    let h = Sha256::digest(parts.join("\u{1f}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..])
}

/// A 64-hex row id (fills' `entry_id`) hashed from `parts`.
pub fn entry_id(parts: &[&str]) -> String {
    hex::encode(Sha256::digest(parts.join("\u{1f}").as_bytes()))
}

/// RFC 3339 UTC with microseconds, as Coinbase writes order and book times
/// (`2023-01-16T23:37:23.947030Z`).
pub fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an RFC 3339 time into ms.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// A decimal as Coinbase sends it: a string, without trailing zeros.
pub fn dec(v: Decimal) -> String {
    v.normalize().to_string()
}

/// An upper bound as Coinbase lists it: the sandbox's "no limit" (zero)
/// becomes a bound no order reaches, since Coinbase never lists a zero
/// maximum and clients take `"0"` literally.
pub fn bound(v: Decimal) -> Decimal {
    if v.is_zero() {
        Decimal::from(1_000_000_000u64)
    } else {
        v
    }
}

/// A decimal sent as a string or a JSON number (§3).
pub fn decimal(v: &serde_json::Value) -> Option<Decimal> {
    match v {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_uuids_round_trip_and_look_like_uuids() {
        for id in [0u64, 1, 1_780_000_000_000_123, u64::MAX] {
            let u = order_uuid(id);
            assert_eq!(u.len(), 36, "{u}");
            assert_eq!(order_id_of(&u), Some(id), "{u}");
        }
        assert_eq!(order_id_of("cdc39e45-bbd3-44ec-bf02-61742dfb16a1"), None);
        assert_eq!(order_id_of("6b65656c-0000-8000-8000-001000000000"), None, "more than 24 bits in the last group");
        assert_eq!(order_id_of("nope"), None);
        let h = hashed_uuid(&["trade", "BTCUSDT", "7"]);
        assert_eq!((h.len(), &h[14..15], &h[19..20]), (36, "8", &h[19..20]));
        assert_ne!(h, hashed_uuid(&["trade", "BTCUSDT", "8"]));
        assert_eq!(rfc3339(1_673_912_243_947), "2023-01-16T23:37:23.947000Z");
        assert_eq!(parse_rfc3339("2023-01-16T23:37:23.947Z"), Some(1_673_912_243_947));
        assert_eq!(dec(Decimal::new(1_500, 3)), "1.5");
    }
}
