#!/usr/bin/env python3
"""The dependency arrows of the workspace, checked over `cargo metadata`.

    engine/core  <-  strategies, risk  <-  actors  <-  ops
    engine/store, each venue adapter and the sandbox depend on engine/core only;
    the adapter and the sandbox never on each other; only ops wires them together.
    An example of Keel used as a library (examples/) is a user's own crate: it
    sees ops, strategies and core, as a crate outside the repository does.

Fails (exit 1, one line per broken arrow) when:
  - strategies or risk depend, normally (not dev-only), on anything network,
    disk or runtime-heavy (axum, hyper, reqwest, tokio-tungstenite, sled, actix*),
    directly or through another crate;
  - keel-core depends on any other Keel crate;
  - a Keel crate depends on a Keel crate its layer may not see (the table below),
    in particular the Binance adapter and the sandbox on each other;
  - actix (any actix* crate) is reachable from a crate other than actors and ops
    (an example reaches it only through ops, never directly);
  - the test kit is a normal dependency of anything.

`--self-test` runs the checker against synthetic graphs, one per rule, so a
checker that can no longer fail is caught too.
"""

import json
import subprocess
import sys

HEAVY = ("axum", "hyper", "reqwest", "tokio-tungstenite", "sled")
PLAIN = ("keel-strategies", "keel-risk", "keel-pine")
ACTIX_ALLOWED = ("keel-actors", "keel-ops")
# Keel used as a library: a user's crate built on ops (which links actix), the
# way a crate outside the repository depends on Keel.
EXAMPLES = ("custom-strategy",)
# Which Keel crates each Keel crate may depend on (normal, build and dev edges).
ALLOWED = {
    "keel-core": set(),
    "keel-testkit": set(),
    "keel-store": {"keel-core"},
    "keel-binance": {"keel-core"},
    "keel-sandbox": {"keel-core"},
    "keel-coinbase": {"keel-core"},
    "keel-strategies": {"keel-core", "keel-pine"},  # pine: the `pine` kind runs scripts through it
    "keel-pine": {"keel-core"},  # the Pine Script interpreter: pure code, no I/O
    "keel-risk": {"keel-core", "keel-store"},  # store: dev-only, for tests on real sled files
    "keel-actors": {"keel-core", "keel-risk", "keel-store"},
    "keel-ops": None,  # the composition root sees everything
    "custom-strategy": {"keel-ops", "keel-strategies", "keel-core"},  # examples/custom-strategy
}
# Crates that may not reach each other even through a third crate: each venue
# adapter and the sandbox, and the two adapters.
NEVER_MEET = {
    "keel-binance": ("keel-sandbox", "keel-coinbase"),
    "keel-coinbase": ("keel-sandbox", "keel-binance"),
    "keel-sandbox": ("keel-binance", "keel-coinbase"),
}
DEV_ONLY = {("keel-risk", "keel-store"), ("keel-actors", "keel-store")}


def is_actix(name):
    return name == "actix" or name.startswith("actix-") or name.startswith("actix_")


def graph_of(meta):
    """name -> {dep name: set of kinds}, kinds being 'normal', 'build', 'dev'."""
    names = {p["id"]: p["name"] for p in meta["packages"]}
    graph = {}
    for node in meta["resolve"]["nodes"]:
        edges = graph.setdefault(names[node["id"]], {})
        for dep in node.get("deps", []):
            kinds = {k.get("kind") or "normal" for k in dep.get("dep_kinds", [])} or {"normal"}
            edges.setdefault(names[dep["pkg"]], set()).update(kinds)
    return graph


def closure(graph, start):
    """Crates reachable from `start` over normal and build edges (what it links)."""
    seen, todo = set(), [start]
    while todo:
        for dep, kinds in graph.get(todo.pop(), {}).items():
            if kinds & {"normal", "build"} and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def check(graph, members):
    errors = []
    for crate in sorted(members):
        edges = graph.get(crate, {})
        linked = closure(graph, crate)
        if crate in PLAIN:
            for dep in sorted(linked):
                if dep in HEAVY or is_actix(dep):
                    errors.append(f"{crate} depends on {dep} (strategies and risk stay plain synchronous Rust)")
        if crate in EXAMPLES:
            for dep in sorted(edges):
                if is_actix(dep):
                    errors.append(f"{crate} depends on {dep} (an example reaches actix only through keel-ops)")
        elif crate not in ACTIX_ALLOWED:
            for dep in sorted(linked):
                if is_actix(dep):
                    errors.append(f"{crate} depends on {dep} (actix stays in actors and ops)")
        allowed = ALLOWED.get(crate, set())
        for dep, kinds in sorted(edges.items()):
            if dep not in members:
                continue
            if dep == "keel-testkit":
                if kinds - {"dev"}:
                    errors.append(f"{crate} depends on keel-testkit outside dev-dependencies")
                continue
            if allowed is not None and dep not in allowed:
                errors.append(f"{crate} depends on {dep} ({', '.join(sorted(kinds))}), which its layer may not see")
            elif (crate, dep) in DEV_ONLY and kinds - {"dev"}:
                errors.append(f"{crate} depends on {dep} outside dev-dependencies")
        for other in NEVER_MEET.get(crate, ()):
            if other in linked and other not in edges:
                errors.append(f"{crate} reaches {other} through another crate (adapter and sandbox never meet)")
    return errors


def self_test():
    base = {
        "keel-core": {"tokio": {"normal"}},
        "keel-store": {"keel-core": {"normal"}, "sled": {"normal"}},
        "keel-binance": {"keel-core": {"normal"}, "reqwest": {"normal"}, "keel-testkit": {"dev"}},
        "keel-sandbox": {"keel-core": {"normal"}, "axum": {"normal"}},
        "keel-coinbase": {"keel-core": {"normal"}, "keel-testkit": {"dev"}},
        "keel-strategies": {"keel-core": {"normal"}, "keel-pine": {"normal"}},
        "keel-pine": {},
        "keel-risk": {"keel-core": {"normal"}, "keel-store": {"dev"}},
        "keel-actors": {"keel-core": {"normal"}, "keel-risk": {"normal"}, "actix": {"normal"}},
        "keel-ops": {"keel-actors": {"normal"}, "keel-binance": {"normal"}, "keel-sandbox": {"normal"},
                     "keel-coinbase": {"normal"},
                     "actix-web": {"normal"}},
        "keel-testkit": {},
        "custom-strategy": {"keel-ops": {"normal"}, "keel-strategies": {"normal"}, "keel-core": {"normal"}},
        "actix-web": {"actix": {"normal"}},
        "reqwest": {"hyper": {"normal"}},
        "axum": {"hyper": {"normal"}},
    }
    members = {k for k in base if k.startswith("keel-") or k in EXAMPLES}

    def broken(crate, dep, kind="normal"):
        g = json.loads(json.dumps({k: {d: sorted(v) for d, v in e.items()} for k, e in base.items()}))
        g = {k: {d: set(v) for d, v in e.items()} for k, e in g.items()}
        g[crate].setdefault(dep, set()).add(kind)
        return g

    assert check(base, members) == [], check(base, members)
    cases = [
        ("risk on sled", broken("keel-risk", "sled"), "keel-risk depends on sled"),
        ("strategies on hyper through the adapter", broken("keel-strategies", "keel-binance"),
         "keel-strategies depends on hyper"),
        ("risk on the store outside dev", broken("keel-risk", "keel-store"), "keel-risk depends on sled"),
        ("core on a Keel crate", broken("keel-core", "keel-store", "dev"), "keel-core depends on keel-store"),
        ("adapter on the sandbox", broken("keel-binance", "keel-sandbox", "dev"),
         "keel-binance depends on keel-sandbox"),
        ("sandbox on the adapter", broken("keel-sandbox", "keel-binance"), "keel-sandbox depends on keel-binance"),
        ("coinbase on the sandbox", broken("keel-coinbase", "keel-sandbox", "dev"),
         "keel-coinbase depends on keel-sandbox"),
        ("sandbox on coinbase", broken("keel-sandbox", "keel-coinbase", "dev"), "keel-sandbox depends on keel-coinbase"),
        ("coinbase on binance", broken("keel-coinbase", "keel-binance"), "keel-coinbase depends on keel-binance"),
        ("binance on coinbase", broken("keel-binance", "keel-coinbase"), "keel-binance depends on keel-coinbase"),
        ("actix in the store", broken("keel-store", "actix"), "keel-store depends on actix"),
        ("pine on tokio's network stack", broken("keel-pine", "reqwest"), "keel-pine depends on hyper"),
        ("pine on the store", broken("keel-pine", "keel-store"), "keel-pine depends on keel-store"),
        ("testkit linked", broken("keel-ops", "keel-testkit"), "keel-ops depends on keel-testkit outside"),
        ("example on the actors", broken("custom-strategy", "keel-actors"), "custom-strategy depends on keel-actors"),
        ("example on the sandbox", broken("custom-strategy", "keel-sandbox", "dev"),
         "custom-strategy depends on keel-sandbox"),
        ("example on actix directly", broken("custom-strategy", "actix"), "custom-strategy depends on actix"),
        ("strategies on ops", broken("keel-strategies", "keel-ops"), "keel-strategies depends on actix"),
    ]
    through = broken("keel-coinbase", "shim")
    through["shim"] = {"keel-sandbox": {"normal"}}
    cases.append(("coinbase reaches the sandbox through a third crate", through,
                  "keel-coinbase reaches keel-sandbox through another crate"))
    for name, graph, want in cases:
        got = check(graph, members)
        assert any(e.startswith(want) for e in got), f"{name}: expected '{want}', got {got}"
    # A dev-only heavy dependency of risk is allowed (tests may use real sled files).
    assert check(broken("keel-risk", "sled", "dev"), members) == []
    print(f"arrows self-test: {len(cases) + 2} cases ok")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return 0
    run = subprocess.run(["cargo", "metadata", "--format-version", "1"], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"arrows: cargo metadata failed:\n{run.stderr}")
        return 1
    meta = json.loads(run.stdout)
    members = {p["name"] for p in meta["packages"] if p["id"] in meta["workspace_members"]}
    unknown = sorted(m for m in members if m not in ALLOWED)
    errors = [f"{m} is not in .ci/arrows.py's layer table: add it with the crates it may see" for m in unknown]
    errors += check(graph_of(meta), members)
    for e in errors:
        print(f"arrow broken: {e}")
    if errors:
        return 1
    print(f"arrows ok: {len(members)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
