//! Cheap-to-clone identifiers for symbols and strategy instances.
//!
//! Market events flow through the live pipeline at millions per second; an
//! `Arc<str>` clone is an atomic increment where a `String` clone would allocate.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! arc_str_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Eq, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl PartialEq for $name {
            /// Equal text. Two clones of one id compare by pointer: `Arc<str>`
            /// itself compares the bytes even then (std's pointer shortcut is
            /// for sized contents), and a backtest compares symbols at every
            /// bar and order.
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }

        impl std::hash::Hash for $name {
            /// The text's hash (consistent with `eq`).
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state)
            }
        }

        impl $name {
            /// Creates the identifier from any string.
            pub fn new(s: &str) -> Self {
                Self(Arc::from(s))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from(s))
            }
        }
    };
}

arc_str_id!(
    /// A venue symbol such as `BTCUSDT`.
    Symbol
);
arc_str_id!(
    /// The id of one configured strategy instance (the `id` of a `[[strategy]]` block).
    StrategyId
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn equal_text_is_equal_whichever_arc_holds_it() {
        let a = Symbol::new("BTCUSDT");
        let cases = [(a.clone(), true), (Symbol::new("BTCUSDT"), true), (Symbol::new("ETHUSDT"), false)];
        for (b, equal) in cases {
            assert_eq!(a == b, equal, "{b}");
            let map: HashMap<Symbol, u8> = [(b.clone(), 1)].into();
            assert_eq!(map.contains_key(&a), equal, "{b}: lookup by symbol");
            assert_eq!(map.contains_key("BTCUSDT"), equal, "{b}: lookup by text");
        }
    }
}
