//! The trading universe: the symbols a strategy template (`symbols =
//! "universe"`) runs on. The venue's spot pairs in one quote asset that
//! take orders and allow spot trading, without the excluded patterns, at or
//! above a minimum 24-hour quote volume, ranked by that volume: the top N.
//! Each refresh is a new [`Selection`]; [`Selection::change_from`] says
//! which symbols joined and which left, so instances start and retire.
//!
//! Pure: the ranking reads what the caller fetched (tickers, instruments),
//! so `keel scan`, the live refresh and tests rank the same way.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use wildmatch::WildMatch;

use crate::instrument::SymbolStatus;
use crate::symbol::Symbol;

/// An exclusion pattern over symbol names: `*` any run of characters, `?`
/// one character, anything else literally (case-sensitive, as venues name
/// symbols in capitals): `*UP*`, `USDC*`.
#[derive(Debug, Clone)]
pub struct SymbolPattern {
    text: String,
    matcher: WildMatch,
}

impl SymbolPattern {
    /// A pattern; an empty one is refused (it would exclude nothing and is
    /// surely a mistake).
    pub fn new(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("an empty pattern".into());
        }
        Ok(Self { text: text.to_string(), matcher: WildMatch::new(text) })
    }

    /// Whether the pattern matches the whole symbol name.
    pub fn matches(&self, symbol: &str) -> bool {
        self.matcher.matches(symbol)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for SymbolPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// What makes a symbol eligible and how many are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct UniverseRules {
    /// The quote asset every member is priced in, e.g. `USDT`.
    pub quote: String,
    /// How many members at most, by 24-hour quote volume.
    pub top_n: usize,
    /// The least 24-hour quote volume a member has.
    pub min_quote_volume: Decimal,
    /// Symbols matching any of these are never members.
    pub exclude: Vec<SymbolPattern>,
}

/// One symbol as the venue describes it: its instrument's status and
/// permissions, and its 24-hour ticker.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The symbol.
    pub symbol: Symbol,
    /// Its quote asset.
    pub quote_asset: String,
    /// Its trading status.
    pub status: SymbolStatus,
    /// Whether spot trading is permitted (Binance: `isSpotTradingAllowed`).
    pub spot_allowed: bool,
    /// Its 24-hour quote volume.
    pub quote_volume: Decimal,
    /// The last price.
    pub last_price: Decimal,
    /// The price 24 hours ago (the rolling window's open).
    pub open_price: Decimal,
}

impl Candidate {
    /// The 24-hour change in percent, rounded to 3 places as Binance's
    /// `priceChangePercent` is; none when the open is 0 (a new listing).
    pub fn change_pct(&self) -> Option<Decimal> {
        if self.open_price.is_zero() {
            return None;
        }
        Some(((self.last_price - self.open_price) * Decimal::ONE_HUNDRED / self.open_price).round_dp(3))
    }
}

/// Why a candidate is not a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Another quote asset.
    Quote,
    /// Not taking orders, or no spot trading.
    NotTrading,
    /// Matches an exclusion pattern.
    Excluded,
    /// Below the minimum volume.
    LowVolume,
    /// Eligible, but beyond the top N.
    BeyondTop,
}

impl UniverseRules {
    /// Why `c` would not be a member regardless of rank, if it would not.
    fn ineligible(&self, c: &Candidate) -> Option<Skip> {
        if c.quote_asset != self.quote {
            Some(Skip::Quote)
        } else if !c.status.is_trading() || !c.spot_allowed {
            Some(Skip::NotTrading)
        } else if self.exclude.iter().any(|p| p.matches(c.symbol.as_str())) {
            Some(Skip::Excluded)
        } else if c.quote_volume < self.min_quote_volume {
            Some(Skip::LowVolume)
        } else {
            None
        }
    }

    /// The members among `candidates`: the eligible ones by quote volume,
    /// highest first (ties by symbol name, so a selection is reproducible),
    /// at most `top_n`. A symbol listed twice counts once (its first entry).
    pub fn select(&self, candidates: &[Candidate]) -> Selection {
        let mut seen = BTreeSet::new();
        let mut eligible: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| seen.insert(c.symbol.clone()))
            .filter(|c| self.ineligible(c).is_none())
            .collect();
        eligible.sort_by(|a, b| b.quote_volume.cmp(&a.quote_volume).then_with(|| a.symbol.cmp(&b.symbol)));
        Selection { members: eligible.into_iter().take(self.top_n).map(|c| c.symbol.clone()).collect() }
    }

    /// Why `symbol` is not in `selection` (none: it is a member, or the
    /// venue did not list it).
    pub fn why_not(&self, selection: &Selection, candidates: &[Candidate], symbol: &Symbol) -> Option<Skip> {
        if selection.contains(symbol) {
            return None;
        }
        let c = candidates.iter().find(|c| &c.symbol == symbol)?;
        Some(self.ineligible(c).unwrap_or(Skip::BeyondTop))
    }
}

/// The members of one refresh, highest volume first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The members, highest volume first.
    pub members: Vec<Symbol>,
}

impl Selection {
    /// Whether `symbol` is a member.
    pub fn contains(&self, symbol: &Symbol) -> bool {
        self.members.contains(symbol)
    }

    /// How this selection differs from `before`.
    pub fn change_from(&self, before: &Selection) -> Change {
        Change {
            joined: self.members.iter().filter(|s| !before.contains(s)).cloned().collect(),
            left: before.members.iter().filter(|s| !self.contains(s)).cloned().collect(),
        }
    }
}

/// The difference between two selections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Members now that were not before (in this selection's order).
    pub joined: Vec<Symbol>,
    /// Members before that are not now (in the old order).
    pub left: Vec<Symbol>,
}

impl Change {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn c(symbol: &str, quote: &str, status: &str, spot: bool, volume: &str) -> Candidate {
        Candidate {
            symbol: Symbol::new(symbol),
            quote_asset: quote.into(),
            status: SymbolStatus::parse(status),
            spot_allowed: spot,
            quote_volume: d(volume),
            last_price: d("1"),
            open_price: d("1"),
        }
    }

    fn rules(top_n: usize, min: &str, exclude: &[&str]) -> UniverseRules {
        UniverseRules {
            quote: "USDT".into(),
            top_n,
            min_quote_volume: d(min),
            exclude: exclude.iter().map(|p| SymbolPattern::new(p).unwrap()).collect(),
        }
    }

    fn names(s: &Selection) -> Vec<&str> {
        s.members.iter().map(|m| m.as_str()).collect()
    }

    #[test]
    fn patterns_match_whole_names() {
        let cases = [
            ("*UP*", "BTCUPUSDT", true),
            ("*UP*", "BTCUSDT", false),
            ("USDC*", "USDCUSDT", true),
            ("USDC*", "BTCUSDC", false),
            ("FDUSD*", "FDUSDUSDT", true),
            ("BTC?USDT", "BTCXUSDT", true),
            ("BTC?USDT", "BTCUSDT", false),
            ("ETHUSDT", "ETHUSDT", true),
            ("ETHUSDT", "ETHUSDTX", false),
            ("*up*", "BTCUPUSDT", false),
        ];
        for (pattern, symbol, want) in cases {
            assert_eq!(SymbolPattern::new(pattern).unwrap().matches(symbol), want, "{pattern} on {symbol}");
        }
        assert!(SymbolPattern::new(" ").is_err());
    }

    #[test]
    fn selects_the_eligible_top_n_by_volume_with_reasons_for_the_rest() {
        let all = [
            c("BTCUSDT", "USDT", "TRADING", true, "900"),
            c("ETHUSDT", "USDT", "TRADING", true, "800"),
            c("ETHBTC", "BTC", "TRADING", true, "5000"),
            c("BTCUPUSDT", "USDT", "TRADING", true, "700"),
            c("HALTUSDT", "USDT", "HALT", true, "650"),
            c("MARGINUSDT", "USDT", "TRADING", false, "640"),
            c("SOLUSDT", "USDT", "TRADING", true, "600"),
            c("XRPUSDT", "USDT", "TRADING", true, "600"),
            c("DOGEUSDT", "USDT", "TRADING", true, "500"),
            c("TINYUSDT", "USDT", "TRADING", true, "10"),
        ];
        let r = rules(4, "100", &["*UP*"]);
        let s = r.select(&all);
        assert_eq!(names(&s), ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"], "ties by name");
        let why = |sym: &str| r.why_not(&s, &all, &Symbol::new(sym));
        assert_eq!(why("BTCUSDT"), None);
        assert_eq!(why("ETHBTC"), Some(Skip::Quote));
        assert_eq!(why("BTCUPUSDT"), Some(Skip::Excluded));
        assert_eq!(why("HALTUSDT"), Some(Skip::NotTrading));
        assert_eq!(why("MARGINUSDT"), Some(Skip::NotTrading));
        assert_eq!(why("TINYUSDT"), Some(Skip::LowVolume));
        assert_eq!(why("DOGEUSDT"), Some(Skip::BeyondTop));
        assert_eq!(why("NOPEUSDT"), None, "not listed");

        assert_eq!(names(&rules(50, "0", &[]).select(&all)).len(), 7, "fewer eligible than N: all of them");
        assert!(rules(0, "0", &[]).select(&all).members.is_empty());
    }

    #[test]
    fn change_pct_is_against_the_open_and_none_without_one() {
        let cases =
            [("100", "110", Some("10")), ("100", "90", Some("-10")), ("3", "4", Some("33.333")), ("0", "5", None)];
        for (open, last, want) in cases {
            let cand =
                Candidate { open_price: d(open), last_price: d(last), ..c("AUSDT", "USDT", "TRADING", true, "1") };
            assert_eq!(cand.change_pct(), want.map(d), "{open} -> {last}");
        }
    }

    #[test]
    fn a_symbol_listed_twice_counts_once() {
        let all = [c("BTCUSDT", "USDT", "TRADING", true, "1"), c("BTCUSDT", "USDT", "TRADING", true, "999")];
        assert_eq!(names(&rules(5, "0", &[]).select(&all)), ["BTCUSDT"]);
    }

    #[test]
    fn a_refresh_says_who_joined_and_who_left() {
        let r = rules(2, "0", &[]);
        let before = r.select(&[c("AUSDT", "USDT", "TRADING", true, "3"), c("BUSDT", "USDT", "TRADING", true, "2")]);
        let after = r.select(&[
            c("AUSDT", "USDT", "TRADING", true, "3"),
            c("BUSDT", "USDT", "TRADING", true, "2"),
            c("CUSDT", "USDT", "TRADING", true, "5"),
        ]);
        let change = after.change_from(&before);
        assert_eq!(change.joined, [Symbol::new("CUSDT")]);
        assert_eq!(change.left, [Symbol::new("BUSDT")]);
        assert!(after.change_from(&after).is_empty());
    }
}
