#!/usr/bin/env bash
# Task executions per second through the PostgreSQL work queue (issue 15): K executions of the
# mixed program's `level2` map (N elements each, one task per element) submitted at once and
# run by W `sandflow worker` processes (each --workers 2), timed from the first submit to the
# last end (the queue rows read back every 20 ms). Each round a fresh database.
#
#   bash bench/queue-throughput.sh postgres://postgres:PW@127.0.0.1:PORT [rounds] [workers] [K] [N]
#
# Build first: cargo build --release -p sandflow-host, and the example guests.
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:?a postgres:// URL of a server}
rounds=${2:-3}
nworkers=${3:-1}
k=${4:-8}
n=${5:-50000}
bin=${CARGO_TARGET_DIR:-target}/release/sandflow
wasm=examples/target/wasm32-wasip1/release/mixed_parallelism.wasm
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
python3 -c "import json; print(json.dumps({'l': list(range($n))}))" >"$tmp/in.json"
for r in $(seq "$rounds"); do
    dbname="sf_tput_$RANDOM$RANDOM"
    psql -q "$server/postgres" -c "CREATE DATABASE $dbname" >/dev/null
    db=$server/$dbname
    "$bin" run "$wasm" level2 --l '[1]' --db "$db" >/dev/null 2>&1
    pids=()
    for _ in $(seq "$nworkers"); do
        SANDFLOW_DB=$db "$bin" worker --workers 2 2>/dev/null &
        pids+=($!)
    done
    sleep 1
    t0=$(date +%s%N)
    for _ in $(seq "$k"); do
        SANDFLOW_DB=$db "$bin" run "$wasm" level2 --inputs "$tmp/in.json" --submit >/dev/null 2>&1
    done
    while [ "$(psql -qtA "$db" -c "SELECT count(*) FROM sandflow.queue WHERE state = 'done' AND parent IS NULL AND exit_code = 0 AND inputs <> ''")" -lt "$k" ]; do
        failed=$(psql -qtA "$db" -c "SELECT count(*) FROM sandflow.queue WHERE state = 'done' AND exit_code <> 0")
        [ "$failed" = 0 ] || { echo "a run failed" >&2; exit 1; }
        sleep 0.02
    done
    ms=$((($(date +%s%N) - t0) / 1000000))
    for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
    pids=()
    printf 'round %s\t%s workers: %s executions x %s tasks in %s ms = %s tasks/s\n' \
        "$r" "$nworkers" "$k" "$n" "$ms" $((k * n * 1000 / ms))
    psql -q "$server/postgres" -c "DROP DATABASE $dbname" >/dev/null
done
