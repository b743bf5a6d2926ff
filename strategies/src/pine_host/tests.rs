//! Construction: what a spot host refuses, named at `file:line:col`.

use std::sync::Arc;

use super::*;

fn program(body: &str, decl: &str) -> Arc<Program> {
    let src = format!("//@version=5\nstrategy(\"t\"{decl})\n{body}");
    Arc::new(pine::compile(&src, Some("pine/t.pine"), &[]).unwrap_or_else(|e| panic!("{e}")).program)
}

fn refusal(body: &str, decl: &str) -> String {
    match PineStrategy::new(Symbol::new("BTCUSDT"), program(body, decl)) {
        Ok(_) => panic!("accepted: {body}"),
        Err(e) => {
            assert_eq!(e.key, "script");
            e.reason
        }
    }
}

#[test]
fn what_spot_cannot_do_is_refused_at_its_position() {
    let cases = [
        (
            "if close > open\n    strategy.entry(\"S\", strategy.short)\n",
            "",
            "pine/t.pine:4:5: strategy.entry with a direction other than strategy.long: Keel trades spot, which cannot sell short",
        ),
        (
            "strategy.entry(\"L\", strategy.long)\nstrategy.exit(\"X\", \"L\", stop = close * 0.9, qty_percent = 50)\n",
            "",
            "pine/t.pine:4:1: strategy.exit(..., qty_percent = ...): Keel's exits close the whole position",
        ),
        ("strategy.close(\"L\", qty = 1)\n", "", "pine/t.pine:3:1: strategy.close(..., qty = ...)"),
        (
            "strategy.entry(\"L\", strategy.long)\nstrategy.exit(\"X\", \"L\", loss = 100)\n",
            ", pyramiding = 3",
            "pine/t.pine:4:1: strategy.exit(..., loss = ...) with pyramiding = 3",
        ),
        ("strategy.entry(\"L\", strategy.long)\n", ", initial_capital = 1e400", "is not a number Keel can hold exactly"),
    ];
    for (body, decl, want) in cases {
        let got = refusal(body, decl);
        assert!(got.starts_with(want) || got.contains(want), "{body}: {got}");
    }
}

#[test]
fn long_scripts_with_whole_position_exits_are_accepted() {
    let body = "strategy.entry(\"L\", strategy.long, limit = close - 1)\nstrategy.exit(\"X\", \"L\", loss = 100, profit = 200, trail_points = 50, trail_offset = 10)\nstrategy.close_all()\n";
    let s = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, ", process_orders_on_close = true")).unwrap();
    assert_eq!(s.kind(), "pine");
    assert!(s.orders_on_close());
    let s = PineStrategy::new(Symbol::new("BTCUSDT"), program(body, "")).unwrap();
    assert!(!s.orders_on_close());
}
