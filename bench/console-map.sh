#!/usr/bin/env bash
# How soon the console's execution page of a 1 000 000-element map is usable: records one run
# of hostile_guests' `map_fan_out` (a dynamic mapping `ok` over 0..N) in a fresh store, serves
# it with `sandflow ui`, and times, in order, the requests the page makes when it opens the
# execution and then the map (curl's total time per request). Not a test: numbers only.
#
#   bench/console-map.sh [N]            # N defaults to 1000000
#   SANDFLOW=path/to/sandflow bench/console-map.sh
#
# Needs a built `sandflow` (default: target/release/sandflow, else target/debug/sandflow)
# and the guests built (`cargo test -p sandflow-host --test all` builds them into
# examples/target). The store takes about 140 MB for a million elements; it is deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
target="${CARGO_TARGET_DIR:-target}"
SANDFLOW="${SANDFLOW:-}"
if [ -z "$SANDFLOW" ]; then
    for b in "$target/release/sandflow" "$target/debug/sandflow"; do
        if [ -x "$b" ]; then SANDFLOW="$b"; break; fi
    done
fi
[ -x "$SANDFLOW" ] || { echo "no sandflow binary: build it (cargo build -p sandflow-host --release) or set SANDFLOW" >&2; exit 2; }
wasm="${SANDFLOW_GUEST_TARGET_DIR:-examples/target}/wasm32-wasip1/release/hostile_guests.wasm"
[ -f "$wasm" ] || { echo "no $wasm: build the guests first (cargo test -p sandflow-host --test all builds them)" >&2; exit 2; }

dir="$(mktemp -d)"
ui=""
cleanup() { [ -n "$ui" ] && kill "$ui" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
db="$dir/map.db"

echo "sandflow: $SANDFLOW; N = $N; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
"$SANDFLOW" run "$wasm" map_fan_out --n "$N" --db "$db" >/dev/null 2>"$dir/run.err"
echo "recorded run: $(echo "$(date +%s.%N) - $start" | bc) s ($(du -h "$db" | cut -f1) store)"
id=$(sed -n 's/.*(execution \([a-z0-9]*\)).*/\1/p' "$dir/run.err" | head -1)

"$SANDFLOW" ui --db "$db" --addr 127.0.0.1:0 >"$dir/ui.out" 2>&1 &
ui=$!
for _ in $(seq 100); do grep -q http:// "$dir/ui.out" 2>/dev/null && break; sleep 0.05; done
base=$(grep -o 'http://[0-9.:]*' "$dir/ui.out" | head -1)

t() {
    printf '%-58s %s s\n' "$1" "$(curl -s -o /dev/null -w '%{time_total}' "$base$2")"
}
t "page (index.html)" "/"
t "execution summary" "/api/executions/$id"
t "tree, top level (first read of the tree)" "/api/executions/$id/nodes?parent=&limit=100&outputs=false"
t "graphs list" "/api/executions/$id/graphs"
t "timeline (first 2000 spans)" "/api/executions/$id/timeline"
t "tree: open the dynamic" "/api/executions/$id/nodes?parent=map_fan_out&limit=100&outputs=false"
t "map phase counts" "/api/executions/$id/nodes?parent=map_fan_out/ok&limit=0&outputs=false"
t "tree: open the map (first 100 elements)" "/api/executions/$id/nodes?parent=map_fan_out/ok&limit=100&outputs=false"
t "tree: elements 500000.. (show more, far down)" "/api/executions/$id/nodes?parent=map_fan_out/ok&limit=100&offset=$((N / 2))&outputs=false"
t "node panel: one element, inputs resolved" "/api/executions/$id/node?path=map_fan_out/ok%5B$((N / 2))%5D"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
