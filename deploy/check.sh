#!/usr/bin/env bash
# Checks the deployment files and the live metrics with promtool (Debian
# package `prometheus`):
#   1. promtool check config deploy/prometheus.yml   (also checks the rule file it names)
#   2. promtool check rules  deploy/keel.rules.yml
#   3. promtool check metrics on the live /metrics of `keel run` (default
#      config, temp data dir, loopback port), plus: every keel_* metric the
#      dashboard and the rules use is in that output.
# Usage: deploy/check.sh            (builds target/debug/keel if needed)
#        KEEL_BIN=target/release/keel KEEL_CHECK_PORT=19184 deploy/check.sh
set -euo pipefail

cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null 2>&1; then
  echo "check.sh: promtool not found (apt-get install -y prometheus)" >&2
  exit 2
fi

echo "== promtool check config"
promtool check config deploy/prometheus.yml
echo "== promtool check rules"
promtool check rules deploy/keel.rules.yml

# The build's target directory (CARGO_TARGET_DIR or the workspace's target/).
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
KEEL_BIN="${KEEL_BIN:-$target_dir/debug/keel}"
if [ ! -x "$KEEL_BIN" ]; then
  echo "== building $KEEL_BIN"
  cargo build -p keel-ops --bin keel
fi
PORT="${KEEL_CHECK_PORT:-19184}"
tmp="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The default config on another loopback port, so a running engine is not disturbed.
sed "s/^listen = .*/listen = \"127.0.0.1:${PORT}\"/" config.toml > "$tmp/config.toml"
grep -q "^listen = \"127.0.0.1:${PORT}\"" "$tmp/config.toml" || { echo "check.sh: no [http] listen line in config.toml" >&2; exit 1; }

echo "== keel run --exit-after 20s on 127.0.0.1:${PORT}"
"$KEEL_BIN" run --config "$tmp/config.toml" --data-dir "$tmp/data" --exit-after 20s >"$tmp/keel.log" 2>&1 &
pid=$!

ready=""
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:${PORT}/ready" >/dev/null 2>&1; then ready=1; break; fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 0.25
done
if [ -z "$ready" ]; then
  echo "check.sh: keel did not become ready; its log:" >&2
  cat "$tmp/keel.log" >&2
  exit 1
fi
sleep 3   # let it trade a little so histograms fill in
curl -fsS -D "$tmp/headers" "http://127.0.0.1:${PORT}/metrics" -o "$tmp/metrics.txt"
grep -qi '^content-type: text/plain; version=0.0.4' "$tmp/headers" || { echo "check.sh: wrong content type:" >&2; cat "$tmp/headers" >&2; exit 1; }

echo "== promtool check metrics (live output, $(grep -c '^# TYPE' "$tmp/metrics.txt") families)"
promtool check metrics < "$tmp/metrics.txt"

echo "== metrics used by the dashboard and the rules exist"
missing=0
for name in $(grep -oh 'keel_[a-z0-9_]\+' deploy/keel.rules.yml deploy/grafana/dashboards/keel.json | sort -u); do
  if ! grep -q -e "^${name}[ {]" -e "^# TYPE ${name} " "$tmp/metrics.txt"; then
    echo "missing from /metrics: $name" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1

kill -TERM "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=""
echo "check.sh: all checks passed"
