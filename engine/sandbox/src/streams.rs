//! Market stream names and the control messages of a stream connection
//! (`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`,
//! `GET_PROPERTY`), answered as Binance answers them.
//!
//! Errors use the documented codes and messages (web-socket-streams.md,
//! "Error Messages": 0 unknown property, 1 invalid value type, 2 invalid
//! request, 3 invalid JSON) in the envelope Binance sends on the wire,
//! `{"error":{"code":…,"msg":…},"id":…}`. Binance checks the syntax of a
//! stream name, not that it exists: a malformed name is refused with
//! `Invalid request: invalid stream` and the connection closed, while a
//! well-formed name of an unknown symbol or stream type is acknowledged and
//! never delivers. The sandbox does the same, except that it refuses a
//! stream type Binance documents but the sandbox does not serve (e.g.
//! `@ticker_1h`, `@kline_1s`), rather than acknowledge a stream it will not
//! deliver.

use serde::Deserialize;
use serde_json::{json, Value};

use super::depth::levels_json;
use super::exchange::MarketKind;
use super::rest::interval_ms;

/// The payload a stream named `<symbol>@<suffix>` gets from a depth, ticker
/// or average price message (trades, book tickers and klines are read in
/// `ws.rs`).
pub(crate) fn payload(suffix: &str, kind: &MarketKind) -> Option<Value> {
    match kind {
        MarketKind::DepthDiff { fast, event } => {
            (suffix == if *fast { "depth@100ms" } else { "depth" }).then(|| event.clone())
        }
        MarketKind::PartialDepth { fast, last_update_id, bids, asks } => {
            let (levels, is_fast) = partial(suffix)?;
            if is_fast != *fast {
                return None;
            }
            let n = |v: &[(rust_decimal::Decimal, rust_decimal::Decimal)]| levels_json(&v[..levels.min(v.len())]);
            Some(json!({"lastUpdateId": last_update_id, "bids": n(bids), "asks": n(asks)}))
        }
        // `!miniTicker@arr@1000ms` (python-binance's name) is `!miniTicker@arr`.
        MarketKind::Stream { suffix: s, event } => {
            (*s == suffix || (*s == "arr" && suffix == "arr@1000ms")).then(|| event.clone())
        }
        _ => None,
    }
}

/// `depth5`, `depth10@100ms`, …: the level count and whether it is the 100 ms stream.
fn partial(suffix: &str) -> Option<(usize, bool)> {
    let (base, fast) = match suffix.strip_suffix("@100ms") {
        Some(b) => (b, true),
        None => (suffix, false),
    };
    let levels = match base {
        "depth5" => 5,
        "depth10" => 10,
        "depth20" => 20,
        _ => return None,
    };
    Some((levels, fast))
}

/// What the sandbox makes of a stream name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamName {
    /// A stream the sandbox delivers.
    Served,
    /// Well-formed, but no such symbol or stream type: acknowledged and
    /// silent, as on Binance.
    Unknown,
    /// A stream type Binance documents that the sandbox does not serve.
    NotServed,
    /// Not a stream name at all.
    Invalid,
}

/// Classifies a stream name; `listed` says whether a lower-case symbol is listed.
pub(crate) fn classify(name: &str, listed: &dyn Fn(&str) -> bool) -> StreamName {
    let Some((head, tail)) = name.split_once('@') else { return StreamName::Invalid };
    let head_ok = {
        match head.strip_prefix('!') {
            Some(all) => !all.is_empty() && all.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            None => !head.is_empty() && head.chars().all(|c| c.is_ascii_alphanumeric()),
        }
    };
    let tail_ok = !tail.is_empty() && tail.chars().all(|c| c.is_ascii_alphanumeric() || "_@:+-.".contains(c));
    if !head_ok || !tail_ok || name.len() > 200 {
        return StreamName::Invalid;
    }
    if head.starts_with('!') {
        return match name {
            "!miniTicker@arr" | "!miniTicker@arr@1000ms" => StreamName::Served,
            "!ticker_1h@arr" | "!ticker_4h@arr" | "!ticker_1d@arr" => StreamName::NotServed,
            _ => StreamName::Unknown,
        };
    }
    if head.chars().any(|c| c.is_ascii_uppercase()) || !listed(head) {
        return StreamName::Unknown;
    }
    let served = matches!(
        tail,
        "trade" | "aggTrade" | "bookTicker" | "depth" | "depth@100ms" | "ticker" | "miniTicker" | "avgPrice"
    ) || partial(tail).is_some()
        || tail.strip_prefix("kline_").is_some_and(|i| interval_ms(i).is_some());
    if served {
        return StreamName::Served;
    }
    let documented = tail.starts_with("kline_")
        || matches!(tail, "ticker_1h" | "ticker_4h" | "ticker_1d" | "referencePrice" | "blockTrade");
    if documented {
        StreamName::NotServed
    } else {
        StreamName::Unknown
    }
}

#[derive(Deserialize)]
enum Method {
    #[serde(rename = "SUBSCRIBE")]
    Subscribe,
    #[serde(rename = "UNSUBSCRIBE")]
    Unsubscribe,
    #[serde(rename = "LIST_SUBSCRIPTIONS")]
    ListSubscriptions,
    #[serde(rename = "SET_PROPERTY")]
    SetProperty,
    #[serde(rename = "GET_PROPERTY")]
    GetProperty,
}

#[derive(Deserialize)]
struct Request {
    method: Method,
    #[serde(default)]
    params: Option<Value>,
}

fn error(code: i64, msg: impl Into<String>, id: &Value) -> Value {
    json!({"error": {"code": code, "msg": msg.into()}, "id": id})
}

/// A request id as Binance accepts it: a 64-bit integer, an alphanumeric
/// string of at most 36 characters, or null.
fn valid_id(id: &Value) -> bool {
    match id {
        Value::Null => true,
        Value::Number(n) => n.is_i64(),
        Value::String(s) => s.len() <= 36 && s.chars().all(|c| c.is_ascii_alphanumeric()),
        _ => false,
    }
}

/// Answers one control message; true when the connection is to be closed
/// after the answer (Binance closes it after an invalid stream name).
pub(crate) fn control(
    text: &str,
    streams: &mut Vec<String>,
    combined: &mut bool,
    listed: &dyn Fn(&str) -> bool,
) -> (Value, bool) {
    let raw: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return (error(3, format!("Invalid JSON: {e}"), &Value::Null), false),
    };
    let id = raw.get("id").cloned();
    let req: Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return (error(2, format!("Invalid request: {e}"), id.as_ref().unwrap_or(&Value::Null)), false),
    };
    let Some(id) = id.filter(valid_id) else {
        return (error(2, "Invalid request: request ID must be an unsigned integer", &Value::Null), false);
    };
    let params = match req.params {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return (error(2, "Invalid request: too many parameters", &id), false),
    };
    match req.method {
        Method::Subscribe | Method::Unsubscribe => {
            let names: Option<Vec<String>> = params.iter().map(|p| p.as_str().map(str::to_string)).collect();
            let Some(names) = names else { return (error(2, "Invalid request: invalid stream", &id), true) };
            let subscribe = matches!(req.method, Method::Subscribe);
            for n in &names {
                match classify(n, listed) {
                    StreamName::Invalid => return (error(2, "Invalid request: invalid stream", &id), true),
                    StreamName::NotServed if subscribe => {
                        let msg = format!("Invalid request: invalid stream ('{n}' is documented by Binance but not served by the Keel sandbox)");
                        return (error(2, msg, &id), false);
                    }
                    _ => {}
                }
            }
            if subscribe {
                for n in names {
                    if !streams.contains(&n) {
                        streams.push(n);
                    }
                }
            } else {
                streams.retain(|s| !names.contains(s));
            }
            (json!({"result": null, "id": id}), false)
        }
        Method::ListSubscriptions => (json!({"result": streams, "id": id}), false),
        Method::SetProperty | Method::GetProperty => {
            let set = matches!(req.method, Method::SetProperty);
            if params.len() > if set { 2 } else { 1 } {
                return (error(2, "Invalid request: too many parameters", &id), false);
            }
            let Some(name) = params.first().and_then(Value::as_str) else {
                return (error(2, "Invalid request: property name must be a string", &id), false);
            };
            if name != "combined" {
                return (error(0, "Unknown property", &id), false);
            }
            if !set {
                return (json!({"result": *combined, "id": id}), false);
            }
            let Some(value) = params.get(1).and_then(Value::as_bool) else {
                return (error(1, "Invalid value type: expected Boolean", &id), false);
            };
            *combined = value;
            (json!({"result": null, "id": id}), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(s: &str) -> bool {
        s == "btcusdt"
    }

    #[test]
    fn stream_names_are_classified() {
        use StreamName::*;
        let cases = [
            ("btcusdt@trade", Served),
            ("btcusdt@depth@100ms", Served),
            ("btcusdt@depth20", Served),
            ("btcusdt@depth10@100ms", Served),
            ("btcusdt@kline_5m", Served),
            ("btcusdt@avgPrice", Served),
            ("!miniTicker@arr", Served),
            ("!miniTicker@arr@1000ms", Served),
            ("btcusdt@kline_1s", NotServed),
            ("btcusdt@ticker_1h", NotServed),
            ("!ticker_4h@arr", NotServed),
            ("nopeusdt@trade", Unknown),
            ("btcusdt@naoExisteStream", Unknown),
            ("BTCUSDT@trade", Unknown),
            ("@@@lixo###", Invalid),
            ("btcusdt", Invalid),
            ("btc usdt@trade", Invalid),
            ("btcusdt@", Invalid),
        ];
        for (name, want) in cases {
            assert_eq!(classify(name, &listed), want, "{name}");
        }
    }

    #[test]
    fn control_messages_get_the_documented_answers() {
        struct Case {
            msg: &'static str,
            reply: Value,
            close: bool,
        }
        let err = |code: i64, msg: &str, id: Value| json!({"error": {"code": code, "msg": msg}, "id": id});
        let cases = [
            Case { msg: "{", reply: err(3, "Invalid JSON: EOF while parsing an object at line 1 column 1", Value::Null), close: false },
            Case { msg: "x", reply: err(3, "Invalid JSON: expected value at line 1 column 1", Value::Null), close: false },
            Case {
                msg: r#"{"method":"SUBSCRIBEX","id":1}"#,
                reply: err(2, "Invalid request: unknown variant `SUBSCRIBEX`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 22", json!(1)),
                close: false,
            },
            Case {
                msg: r#"{"params":[],"id":1}"#,
                reply: err(2, "Invalid request: missing field `method` at line 1 column 20", json!(1)),
                close: false,
            },
            Case {
                msg: r#"{"method":"LIST_SUBSCRIPTIONS","id":{"a":1}}"#,
                reply: err(2, "Invalid request: request ID must be an unsigned integer", Value::Null),
                close: false,
            },
            Case {
                msg: r#"{"method":"LIST_SUBSCRIPTIONS"}"#,
                reply: err(2, "Invalid request: request ID must be an unsigned integer", Value::Null),
                close: false,
            },
            Case { msg: r#"{"method":"SET_PROPERTY","params":["colour",true],"id":5}"#, reply: err(0, "Unknown property", json!(5)), close: false },
            Case {
                msg: r#"{"method":"SET_PROPERTY","params":["combined","yes"],"id":5}"#,
                reply: err(1, "Invalid value type: expected Boolean", json!(5)),
                close: false,
            },
            Case {
                msg: r#"{"method":"SET_PROPERTY","params":[1,true],"id":5}"#,
                reply: err(2, "Invalid request: property name must be a string", json!(5)),
                close: false,
            },
            Case {
                msg: r#"{"method":"SET_PROPERTY","params":["combined",true,1],"id":5}"#,
                reply: err(2, "Invalid request: too many parameters", json!(5)),
                close: false,
            },
            Case { msg: r#"{"method":"SET_PROPERTY","params":["combined",true],"id":"a1"}"#, reply: json!({"result": null, "id": "a1"}), close: false },
            Case { msg: r#"{"method":"GET_PROPERTY","params":["combined"],"id":2}"#, reply: json!({"result": true, "id": 2}), close: false },
            Case {
                msg: r#"{"method":"SUBSCRIBE","params":["@@@lixo###"],"id":7}"#,
                reply: err(2, "Invalid request: invalid stream", json!(7)),
                close: true,
            },
            Case { msg: r#"{"method":"SUBSCRIBE","params":["nopeusdt@trade"],"id":8}"#, reply: json!({"result": null, "id": 8}), close: false },
            Case { msg: r#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":null}"#, reply: json!({"result": null, "id": null}), close: false },
            Case {
                msg: r#"{"method":"LIST_SUBSCRIPTIONS","id":9}"#,
                reply: json!({"result": ["nopeusdt@trade", "btcusdt@trade"], "id": 9}),
                close: false,
            },
        ];
        let (mut streams, mut combined) = (Vec::new(), false);
        for c in cases {
            let got = control(c.msg, &mut streams, &mut combined, &listed);
            assert_eq!(got, (c.reply, c.close), "{}", c.msg);
        }
        assert!(combined, "SET_PROPERTY combined took effect");
        let (reply, _) = control(
            r#"{"method":"SUBSCRIBE","params":["btcusdt@ticker_1h"],"id":3}"#,
            &mut streams,
            &mut combined,
            &listed,
        );
        assert_eq!(reply["error"]["code"], 2, "a documented stream the sandbox does not serve is refused: {reply}");
        assert_eq!(streams.len(), 2, "and not subscribed");
    }
}
