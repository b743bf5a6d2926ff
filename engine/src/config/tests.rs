use super::*;

const BASE: &str = r#"
[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_notional = "5"
start_price = "60000"
volatility = 0.6
touch_qty = "2"

[[strategy]]
id = "a"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20, qty = "0.01" }
"#;

#[test]
fn base_config_parses() {
    let c = Config::parse(BASE).unwrap();
    assert_eq!(c.symbols.len(), 1);
    assert_eq!(c.strategies[0].params["fast"].as_integer(), Some(5));
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
    ];
    for c in cases {
        let err = Config::parse(&c.text).expect_err(c.name);
        if !c.key.is_empty() {
            assert_eq!(err.key, c.key, "{}: {err}", c.name);
        }
        assert!(err.reason.contains(c.reason), "{}: {err}", c.name);
    }
}
