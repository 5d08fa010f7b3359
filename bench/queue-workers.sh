#!/usr/bin/env bash
# Executions submitted through the PostgreSQL work queue (issue 15, step 2): the nested
# 10 000/100 seed run by `sandflow worker` processes, timed from `run --wait`'s start to its
# exit (submit, claim, the worker's child run, the end read back), against the same program
# run locally into the same kind of store. Each round a fresh database.
#
#   bash bench/queue-workers.sh postgres://postgres:PW@127.0.0.1:PORT [rounds] [workers]
#
# The URL names a server (no database): the script creates databases `sf_queue_*` with psql
# and drops them after. Build first: cargo build --release -p sandflow-host, and the example
# guests (cargo test builds them into examples/target).
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:?a postgres:// URL of a server}
rounds=${2:-5}
nworkers=${3:-2}
bin=${CARGO_TARGET_DIR:-target}/release/sandflow
wasm=examples/target/wasm32-wasip1/release/nested_dynamics.wasm
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
python3 -c 'import json; print(json.dumps({"l": list(range(10000)), "chunk": 100}))' >"$tmp/nested.json"
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

for r in $(seq "$rounds"); do
    dbname="sf_queue_$RANDOM$RANDOM"
    psql -q "$server/postgres" -c "CREATE DATABASE $dbname" >/dev/null
    db=$server/$dbname
    # The tables first (one local run), so the timed runs do not create them.
    "$bin" run "$wasm" multi_wf --l '[1]' --chunk 1 --db "$db" >/dev/null 2>&1
    t0=$(date +%s%N)
    err=$("$bin" run "$wasm" multi_wf --inputs "$tmp/nested.json" --db "$db" 2>&1 >/dev/null)
    local_ms=$(ms "$t0")
    local_run=$(grep -o 'succeeded in [0-9.]* ms' <<<"$err" | grep -o '[0-9.]*' || echo FAILED)
    pids=()
    for _ in $(seq "$nworkers"); do
        SANDFLOW_DB=$db "$bin" worker --workers 2 2>"$tmp/worker.log" &
        pids+=($!)
    done
    sleep 1 # the workers are up and listening
    t0=$(date +%s%N)
    err=$("$bin" run "$wasm" multi_wf --inputs "$tmp/nested.json" --db "$db" --wait 2>&1 >"$tmp/out.json")
    queued_ms=$(ms "$t0")
    queued_run=$(grep -o 'succeeded in [0-9.]* ms' <<<"$err" | grep -o '[0-9.]*' || echo FAILED)
    python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o==[a+3 for a in range(10000)], "wrong output"' "$tmp/out.json"
    for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
    pids=()
    printf 'round %s\tlocal: run %s ms, process %s ms\tqueued (%s workers): run %s ms, submit to end %s ms\n' \
        "$r" "$local_run" "$local_ms" "$nworkers" "$queued_run" "$queued_ms"
    psql -q "$server/postgres" -c "DROP DATABASE $dbname" >/dev/null
done
