//! A level-2 book rebuilt from the `level2` channel: a `snapshot` replaces
//! it, an `update` sets a level's absolute quantity (`0` removes it). There
//! are no per-product update ids (§6.5): consistency rests on the
//! connection's `sequence_num`, which the stream checks.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::model::L2Event;

/// Price → quantity on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Book {
    /// Bids (best is the last).
    pub bids: BTreeMap<Decimal, Decimal>,
    /// Offers (best is the first).
    pub offers: BTreeMap<Decimal, Decimal>,
}

impl L2Book {
    /// Applies one event: a snapshot replaces the book, an update sets levels.
    pub fn apply(&mut self, ev: &L2Event) {
        if ev.kind == "snapshot" {
            *self = Self::default();
        }
        for u in &ev.updates {
            let side = if u.is_bid() { &mut self.bids } else { &mut self.offers };
            if u.new_quantity.is_zero() {
                side.remove(&u.price_level);
            } else {
                side.insert(u.price_level, u.new_quantity);
            }
        }
    }

    /// Best bid and best offer with their quantities, when both sides have one.
    pub fn top(&self) -> Option<((Decimal, Decimal), (Decimal, Decimal))> {
        let (bp, bq) = self.bids.iter().next_back()?;
        let (ap, aq) = self.offers.iter().next()?;
        Some(((*bp, *bq), (*ap, *aq)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, levels: &[(&str, &str, &str)]) -> L2Event {
        let updates: Vec<serde_json::Value> = levels
            .iter()
            .map(|(side, p, q)| serde_json::json!({"side": side, "price_level": p, "new_quantity": q}))
            .collect();
        serde_json::from_value(serde_json::json!({"type": kind, "product_id": "BTC-USD", "updates": updates}))
            .expect("an l2 event")
    }

    #[test]
    fn snapshot_replaces_updates_set_absolute_quantities_and_zero_removes() {
        let d = |s: &str| s.parse::<Decimal>().expect("decimal");
        let mut b = L2Book::default();
        b.apply(&ev("snapshot", &[("bid", "99", "1"), ("bid", "98", "2"), ("offer", "101", "3")]));
        assert_eq!(b.top(), Some(((d("99"), d("1")), (d("101"), d("3")))));
        // Absolute, not a delta; 0 removes; offer is the ask side.
        b.apply(&ev("update", &[("bid", "99", "0"), ("bid", "98", "5"), ("offer", "100", "1")]));
        assert_eq!(b.top(), Some(((d("98"), d("5")), (d("100"), d("1")))));
        b.apply(&ev("snapshot", &[("bid", "50", "1")]));
        assert_eq!(b.bids.len(), 1);
        assert!(b.offers.is_empty() && b.top().is_none());
    }
}
