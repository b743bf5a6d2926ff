use super::*;

const BASE: &str = concat!(
    super::btc_symbol_toml!(),
    r#"
[[strategy]]
id = "a"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20, qty = "0.01" }
"#
);

#[test]
fn base_config_parses() {
    let c = Config::parse(BASE).unwrap();
    assert_eq!(c.symbols.len(), 1);
    assert_eq!(c.strategies[0].params["fast"].as_integer(), Some(5));
    assert_eq!(c.store.equity_interval, DurationMs(60_000), "equity every minute unless set");
}

#[test]
fn validation_errors_name_the_key() {
    struct Case {
        name: &'static str,
        text: String,
        key: &'static str,
        reason: &'static str,
    }
    let cases = [
        Case {
            name: "unknown top-level key",
            text: format!("{BASE}\nbogus = 1\n"),
            key: "",
            reason: "unknown field `bogus`",
        },
        Case {
            name: "unknown key in a section",
            text: format!("{BASE}\n[risk]\nmax_order_notionl = \"1\"\n"),
            key: "",
            reason: "unknown field `max_order_notionl`",
        },
        Case {
            name: "wrong type",
            text: format!("{BASE}\n[venue]\nticks_per_bar = \"many\"\n"),
            key: "",
            reason: "invalid type",
        },
        Case {
            name: "negative limit",
            text: format!("{BASE}\n[risk]\nmax_order_notional = \"-5\"\n"),
            key: "risk.max_order_notional",
            reason: "must not be negative",
        },
        Case {
            name: "strategy on unknown symbol",
            text: BASE.replace("symbol = \"BTCUSDT\"\nparams", "symbol = \"DOGEUSDT\"\nparams"),
            key: "strategy[0].symbol",
            reason: "not a configured symbol",
        },
        Case {
            name: "zero tick",
            text: BASE.replace("tick_size = \"0.01\"", "tick_size = \"0\""),
            key: "symbol[0].tick_size",
            reason: "must be positive",
        },
        Case {
            name: "duplicate strategy id",
            text: format!("{BASE}\n[[strategy]]\nid = \"a\"\nkind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\n"),
            key: "strategy[1].id",
            reason: "used twice",
        },
        Case {
            name: "bad duration",
            text: format!("{BASE}\n[venue]\nbar_wall_time = \"fast\"\n"),
            key: "",
            reason: "not a duration",
        },
        Case {
            name: "bad listen address",
            text: format!("{BASE}\n[http]\nlisten = \"nowhere\"\n"),
            key: "http.listen",
            reason: "not an address",
        },
        Case {
            name: "negative balance",
            text: format!("{BASE}\n[balances]\nUSDT = \"-1\"\n"),
            key: "balances.USDT",
            reason: "must not be negative",
        },
        Case {
            name: "mainnet without confirmation",
            text: format!("{BASE}\n[venue]\nmode = \"mainnet\"\n"),
            key: "venue.confirm_mainnet",
            reason: "add confirm_mainnet = true",
        },
        Case {
            name: "unknown key in venue.binance",
            text: format!("{BASE}\n[venue]\nmode = \"testnet\"\n[venue.binance]\napi_key = \"x\"\n"),
            key: "",
            reason: "unknown field `api_key`",
        },
        Case {
            name: "recv window out of range",
            text: format!("{BASE}\n[venue]\nmode = \"testnet\"\n[venue.binance]\nrecv_window_ms = 70000\n"),
            key: "venue.binance.recv_window_ms",
            reason: "not in 1..=60000",
        },
        Case {
            name: "rest url without scheme",
            text: format!("{BASE}\n[venue]\nmode = \"testnet\"\n[venue.binance]\nrest_url = \"127.0.0.1:1\"\n"),
            key: "venue.binance.rest_url",
            reason: "must start with http://",
        },
        Case {
            name: "unknown key in sandbox",
            text: format!("{BASE}\n[sandbox]\nbar_wal_ms = 5\n"),
            key: "",
            reason: "unknown field `bar_wal_ms`",
        },
        Case {
            name: "sandbox needs 1m bars",
            text: format!("{BASE}\n[engine]\nbar_interval = \"5m\"\n[venue]\nmode = \"sandbox\"\n"),
            key: "engine.bar_interval",
            reason: "1m bars",
        },
        Case {
            name: "equity history more often than a second",
            text: format!("{BASE}\n[store]\nequity_interval = \"500ms\"\n"),
            key: "store.equity_interval",
            reason: "at least 1s",
        },
        Case {
            name: "equity interval not a duration",
            text: format!("{BASE}\n[store]\nequity_interval = \"often\"\n"),
            key: "",
            reason: "not a duration",
        },
        Case {
            name: "sandbox must list the configured symbols",
            text: format!("{BASE}\n[venue]\nmode = \"sandbox\"\n[sandbox]\nsymbols = []\n"),
            key: "sandbox.symbols",
            reason: "at least one symbol",
        },
    ];
    for c in cases {
        let err = Config::parse(&c.text).expect_err(c.name);
        if !c.key.is_empty() {
            assert_eq!(err.key, c.key, "{}: {err}", c.name);
        }
        assert!(err.reason.contains(c.reason), "{}: {err}", c.name);
    }
}

#[test]
fn mainnet_confirmed_in_venue_or_venue_binance() {
    for extra in [
        "[venue]\nmode = \"mainnet\"\nconfirm_mainnet = true\n",
        "[venue]\nmode = \"mainnet\"\n[venue.binance]\nconfirm_mainnet = true\n",
    ] {
        let c = Config::parse(&format!("{BASE}\n{extra}")).unwrap();
        assert!(c.venue.binance_config().confirm_mainnet, "{extra}");
        assert_eq!(c.venue.binance_config().mode, keel_binance::BinanceMode::Mainnet);
    }
}

#[test]
fn the_sandbox_follows_symbols_balances_and_venue_timing_unless_set() {
    let text = format!(
        "{BASE}\n[venue]\nmode = \"sandbox\"\nbar_wall_time = \"40ms\"\nticks_per_bar = 4\n[balances]\nUSDT = \"5000\"\n"
    );
    let c = Config::parse(&text).unwrap();
    let sb = c.sandbox_config(SimulatedClock::Embedded);
    assert_eq!(sb.symbols, c.symbols);
    assert_eq!(sb.accounts[0].balances, c.balances);
    assert_eq!(sb.accounts[0].api_key, keel_sandbox::DEFAULT_API_KEY);
    assert_eq!((sb.speed, sb.ticks_per_bar), (1500.0, 4), "the deprecated bar_wall_time still sets the speed");
    assert_eq!(c.deprecations(), vec!["venue.bar_wall_time is deprecated: write [sandbox] speed = 1500 instead"]);

    let text = format!(
        "{text}\n[sandbox]\nspeed = 100\n[[sandbox.accounts]]\napi_key = \"k\"\napi_secret = \"s\"\nbalances = {{ USDT = \"7\" }}\n"
    );
    let c = Config::parse(&text).unwrap();
    let sb = c.sandbox_config(SimulatedClock::Standalone);
    assert_eq!(sb.symbols, c.symbols, "symbols still follow [[symbol]]");
    assert_eq!(sb.speed, 100.0, "[sandbox] speed wins over the alias");
    assert_eq!(c.deprecations(), vec!["venue.bar_wall_time is deprecated and ignored: [sandbox] speed is set"]);
    assert_eq!(sb.ticks_per_bar, 4);
    assert_eq!(sb.accounts.len(), 1);
    assert_eq!(sb.accounts[0].api_key, "k");
    assert_eq!(sb.accounts[0].balances["USDT"], Decimal::new(7, 0));
}

#[test]
fn the_default_config_file_runs_the_sandbox() {
    let text = include_str!("../../../config.toml");
    let c = Config::parse(text).unwrap();
    assert_eq!(c.venue.mode, VenueMode::Sandbox);
    assert_eq!(c.sandbox_config(SimulatedClock::Embedded).symbols.len(), c.symbols.len());
}

#[test]
fn simulated_time_is_a_demo_embedded_and_real_time_standalone_unless_set() {
    let c = Config::parse(BASE).unwrap();
    assert_eq!(c.speed(SimulatedClock::Embedded), EMBEDDED_SPEED);
    assert_eq!(c.speed(SimulatedClock::Standalone), 1.0);
    assert!(c.deprecations().is_empty());
    let c = Config::parse(&format!("{BASE}\n[sandbox]\nspeed = 3\n")).unwrap();
    assert_eq!((c.speed(SimulatedClock::Embedded), c.speed(SimulatedClock::Standalone)), (3.0, 3.0));
    for bad in ["0", "-1", "1e9"] {
        let e = Config::parse(&format!("{BASE}\n[sandbox]\nspeed = {bad}\n")).unwrap_err();
        assert_eq!(e.key, "sandbox.speed", "speed {bad}: {e}");
    }
    let e = Config::parse(&format!("{BASE}\n[venue]\nticks_per_bar = 7\n")).unwrap_err();
    assert_eq!(e.key, "venue.ticks_per_bar");
}

/// A Coinbase product block: `BTC-USD` of base BTC and quote USD.
const COINBASE_SYMBOL: &str = r#"
[[symbol]]
symbol = "BTC-USD"
base = "BTC"
quote = "USD"
tick_size = "0.01"
step_size = "0.00001"
start_price = "60000"
volatility = 0.6
touch_qty = "2"
"#;

#[test]
fn coinbase_config_errors_name_the_key() {
    let venue = |lines: &str| format!("[venue]\n{lines}\n{COINBASE_SYMBOL}");
    let cases: [(&str, String, Option<&str>); 11] = [
        ("embedded sandbox", venue("exchange = \"coinbase\"\nmode = \"sandbox\""), None),
        ("paper is exchange-neutral", venue("exchange = \"coinbase\"\nmode = \"paper\""), None),
        ("unknown exchange", venue("exchange = \"kraken\"\nmode = \"sandbox\""), Some("venue.exchange")),
        ("no testnet", venue("exchange = \"coinbase\"\nmode = \"testnet\""), Some("venue.mode")),
        ("mainnet unconfirmed", venue("exchange = \"coinbase\"\nmode = \"mainnet\""), Some("venue.confirm_mainnet")),
        (
            "mainnet confirmed in [venue]",
            venue("exchange = \"coinbase\"\nmode = \"mainnet\"\nconfirm_mainnet = true"),
            None,
        ),
        (
            "mainnet confirmed in [venue.coinbase]",
            format!(
                "{}\n[venue.coinbase]\nconfirm_mainnet = true\n",
                venue("exchange = \"coinbase\"\nmode = \"mainnet\"")
            ),
            None,
        ),
        (
            "mainnet override off Coinbase",
            format!(
                "{}\n[venue.coinbase]\nrest_url = \"https://127.0.0.1:8443\"\n",
                venue("exchange = \"coinbase\"\nmode = \"mainnet\"\nconfirm_mainnet = true")
            ),
            Some("venue.coinbase.rest_url"),
        ),
        (
            "product id not of base and quote",
            venue("exchange = \"coinbase\"\nmode = \"sandbox\"").replace("quote = \"USD\"", "quote = \"USDT\""),
            Some("symbol[0].symbol"),
        ),
        ("a dash on Binance", venue("mode = \"sandbox\""), Some("symbol[0].symbol")),
        (
            "no Coinbase candles of 3m",
            format!(
                "[engine]\nbar_interval = \"3m\"\n{}",
                venue("exchange = \"coinbase\"\nmode = \"mainnet\"\nconfirm_mainnet = true")
            ),
            Some("engine.bar_interval"),
        ),
    ];
    for (name, text, want) in cases {
        match (Config::parse(&text), want) {
            (Ok(_), None) => {}
            (Ok(_), Some(key)) => panic!("{name}: accepted, expected an error at {key}"),
            (Err(e), None) => panic!("{name}: refused: {e:?}"),
            // The unknown exchange is a parse error: serde locates the line, the message names the key.
            (Err(e), Some(key)) => assert!(e.key == key || e.to_string().contains(key), "{name}: {e:?}"),
        }
    }
}

#[test]
fn the_exchange_defaults_to_binance_and_paper_runs_none() {
    let c = Config::parse(BASE).unwrap();
    assert_eq!((c.venue.exchange, c.exchange_in_use()), (Exchange::Binance, None));
    let cb =
        Config::parse(&format!("[venue]\nexchange = \"coinbase\"\nmode = \"sandbox\"\n{COINBASE_SYMBOL}")).unwrap();
    assert_eq!(cb.exchange_in_use(), Some(Exchange::Coinbase));
    assert_eq!(cb.venue.coinbase.api_key_name_env, "KEEL_COINBASE_API_KEY_NAME");
    assert!(!cb.venue.coinbase.external_sandbox());
}
