#!/usr/bin/env bash
# The execution store's two backends side by side (issue 15): the nested 10 000/100 seed and a
# `level2` map of 100 000 elements through the release CLI, each round in a fresh SQLite file
# and a fresh PostgreSQL database, taking turns. Prints each run's time (as the CLI reports
# it) and the whole process's wall; BENCHMARKS.md has the medians.
#
#   bash bench/store-backends.sh postgres://postgres:PW@127.0.0.1:PORT [rounds]
#
# The URL names a server (no database): the script creates databases `sf_bench_*` on it with
# psql and drops them after. Build first: cargo build --release -p sandflow-host, and the
# example guests (cargo test builds them into examples/target).
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:?a postgres:// URL of a server}
rounds=${2:-5}
bin=${CARGO_TARGET_DIR:-target}/release/sandflow
guests=examples/target/wasm32-wasip1/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -c 'import json; print(json.dumps({"l": list(range(10000)), "chunk": 100}))' >"$tmp/nested.json"
python3 -c 'import json; print(json.dumps({"l": list(range(100000))}))' >"$tmp/map.json"

one() { # name backend wasm entity inputs
    local name=$1 backend=$2 wasm=$3 entity=$4 inputs=$5 db
    if [ "$backend" = sqlite ]; then
        db=$tmp/$name-$RANDOM.db
    else
        local dbname="sf_bench_$RANDOM$RANDOM"
        psql -q "$server/postgres" -c "CREATE DATABASE $dbname" >/dev/null
        db=$server/$dbname
    fi
    local t0 t1 err
    t0=$(date +%s%N)
    err=$("$bin" run "$guests/$wasm" "$entity" --inputs "$inputs" --db "$db" 2>&1 >/dev/null)
    t1=$(date +%s%N)
    local run
    run=$(grep -o 'succeeded in [0-9.]* ms' <<<"$err" | grep -o '[0-9.]*' || echo FAILED)
    printf '%s\t%s\trun %s ms\tprocess %s ms\n' "$name" "$backend" "$run" $(((t1 - t0) / 1000000))
    if [ "$backend" = sqlite ]; then rm -f "$db"*; else psql -q "$server/postgres" -c "DROP DATABASE ${db##*/}" >/dev/null; fi
}

for _ in $(seq "$rounds"); do
    for backend in sqlite postgres; do
        one nested "$backend" nested_dynamics.wasm multi_wf "$tmp/nested.json"
        one map100k "$backend" mixed_parallelism.wasm level2 "$tmp/map.json"
    done
done
