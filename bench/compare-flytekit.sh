#!/usr/bin/env bash
# Runs the seed's two programs ("Nested Dynamics", "Mixed Parallelism") under flytekit's
# local runner and under sandflow on the same inputs, checks both answers, and prints a
# table of wall times (plain, then markdown for BENCHMARKS.md) on stdout. Progress and
# build output go to stderr; each run's stderr is kept under $BENCH_DIR/logs/.
#
#   bench/compare-flytekit.sh            all sizes (flytekit alone takes about a minute)
#   bench/compare-flytekit.sh --quick    nested 1000/10 and mixed 10000/100 only
#   --no-build                           use the existing release binary and modules as they are
#
# Environment:
#   SANDFLOW_BENCH_DIR              cache dir (venv, inputs, logs); default ~/.cache/sandflow-bench
#   SANDFLOW_BENCH_SIZES            sizes as "program:n:chunk ..." (ignored with --quick), default
#                                   "nested:1000:10 nested:10000:100 mixed:10000:100 mixed:100000:1000"
#   SANDFLOW_BENCH_FLYTEKIT_TIMEOUT seconds before a flytekit run is reported "timeout"; default 900
#   SANDFLOW_BENCH_RUNS             sandflow runs per size, the best is reported; default 3
#   FLYTEKIT_VERSION                flytekit to install in the venv; default 1.16.31
#   PYTHON                          interpreter for the venv; default python3.11, else python3
#
# What is timed: flytekit, `multi_wf(...)` inside the Python process (interpreter start and
# `import flytekit` excluded); sandflow, the whole `sandflow run` process (start, module load
# from sandflow's compiled-module cache after the first run, execution, JSON output).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${SANDFLOW_BENCH_DIR:-$HOME/.cache/sandflow-bench}
VENV=$BENCH_DIR/venv
FLYTEKIT_VERSION=${FLYTEKIT_VERSION:-1.16.31}
FLYTEKIT_TIMEOUT=${SANDFLOW_BENCH_FLYTEKIT_TIMEOUT:-900}
RUNS=${SANDFLOW_BENCH_RUNS:-3}
BUILD=1
SIZES=${SANDFLOW_BENCH_SIZES:-"nested:1000:10 nested:10000:100 mixed:10000:100 mixed:100000:1000"}

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
for arg in "$@"; do
    case $arg in
        --quick) SIZES="nested:1000:10 mixed:10000:100" ;;
        --no-build) BUILD=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare-flytekit: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

log() { echo "[bench] $*" >&2; }
die() { echo "[bench] error: $*" >&2; exit 1; }

[[ $FLYTEKIT_TIMEOUT =~ ^[0-9]+$ ]] || die "SANDFLOW_BENCH_FLYTEKIT_TIMEOUT must be whole seconds"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "SANDFLOW_BENCH_RUNS must be a positive integer"
for spec in $SIZES; do
    [[ $spec =~ ^(nested|mixed):[1-9][0-9]*:[1-9][0-9]*$ ]] ||
        die "bad size '$spec': expected nested|mixed:N:CHUNK"
done

if [[ -z ${PYTHON:-} ]]; then
    if command -v python3.11 >/dev/null; then PYTHON=python3.11; else PYTHON=python3; fi
fi

mkdir -p "$BENCH_DIR/logs" "$BENCH_DIR/inputs"

# ---- 1. the flytekit venv --------------------------------------------------------------
VPY=$VENV/bin/python
if [[ -x $VPY ]] && "$VPY" -c "import sys; from importlib.metadata import version; sys.exit(version('flytekit') != '$FLYTEKIT_VERSION')" 2>/dev/null; then
    log "reusing $VENV (flytekit $FLYTEKIT_VERSION)"
else
    if [[ ! -x $VPY ]]; then
        log "creating $VENV with $PYTHON"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    log "installing flytekit==$FLYTEKIT_VERSION into $VENV"
    "$VPY" -m pip install --quiet --disable-pip-version-check "flytekit==$FLYTEKIT_VERSION" >&2
    # Importing flytekit leaves directories in $TMPDIR: check the install inside one of ours.
    chk_tmp=$(mktemp -d "$BENCH_DIR/flytekit-tmp.XXXXXX")
    TMPDIR=$chk_tmp "$VPY" -c 'import flytekit' || die "flytekit does not import in $VENV"
    rm -rf "$chk_tmp"
fi
PY_VERSION=$("$VPY" -c 'import platform; print(platform.python_version())')

# ---- 2. sandflow and the example guests, in release ------------------------------------
if [[ $BUILD -eq 1 ]]; then
    log "building sandflow (release)"
    (cd "$ROOT" && cargo build --release -p sandflow-host) >&2
    log "building the example guests (release, wasm32-wasip1)"
    (cd "$ROOT" && cargo build --release --target wasm32-wasip1 --manifest-path examples/Cargo.toml) >&2
fi
SANDFLOW=$ROOT/target/release/sandflow
WASM_DIR=$ROOT/examples/target/wasm32-wasip1/release
for f in "$SANDFLOW" "$WASM_DIR/nested_dynamics.wasm" "$WASM_DIR/mixed_parallelism.wasm"; do
    [[ -f $f ]] || die "missing $f after the build"
done
# Compiled modules are cached here, not in the user's ~/.cache/sandflow.
export SANDFLOW_CACHE_DIR=$BENCH_DIR/sandflow-cache

# Runs sandflow RUNS times on one input, checks every output, prints the best wall time.
time_sandflow() { # module inputs n offset errlog
    "$VPY" - "$SANDFLOW" "$@" "$RUNS" <<'PY'
import json, subprocess, sys, time
sandflow, module, inputs, n, offset, errlog, runs = sys.argv[1:]
n, offset, runs = int(n), int(offset), int(runs)
want = [x + offset for x in range(n)]
times = []
with open(errlog, "w") as err:
    for i in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run([sandflow, "run", module, "multi_wf", "--inputs", inputs],
                           stdout=subprocess.PIPE, stderr=err)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"sandflow exited {p.returncode} (stderr in {errlog})")
        try:
            got = json.loads(p.stdout)
        except ValueError as e:
            sys.exit(f"sandflow printed no JSON on stdout: {e}: {p.stdout[:200]!r}")
        if got != want:
            head = got[:5] if isinstance(got, list) else got
            sys.exit(f"sandflow gave a wrong answer (want x+{offset} for x < {n}): {head!r}...")
        times.append(dt)
print(" ".join(f"{t:.4f}" for t in times), file=sys.stderr)
print(f"{min(times):.4f}")
PY
}

# ---- 3. the runs ------------------------------------------------------------------------
RESULTS=$BENCH_DIR/results.tsv
: >"$RESULTS"
failed=0
for spec in $SIZES; do
    IFS=: read -r prog n chunk <<<"$spec"
    case $prog in
        nested) module=$WASM_DIR/nested_dynamics.wasm offset=3 ;;
        mixed) module=$WASM_DIR/mixed_parallelism.wasm offset=2 ;;
    esac
    tag=$prog-$n-$chunk

    log "$prog n=$n chunk=$chunk: flytekit (timeout ${FLYTEKIT_TIMEOUT}s)"
    # flytekit's local runner leaves its sandboxes in $TMPDIR: give it one to delete after.
    fk_tmp=$(mktemp -d "$BENCH_DIR/flytekit-tmp.XXXXXX")
    rc=0
    fk_out=$(TMPDIR=$fk_tmp timeout --kill-after=30 "$FLYTEKIT_TIMEOUT" \
        "$VPY" "$ROOT/bench/flytekit/$prog.py" "$n" "$chunk" 2>"$BENCH_DIR/logs/flytekit-$tag.err") || rc=$?
    rm -rf "$fk_tmp"
    if [[ $rc -eq 0 ]]; then
        fk=$("$VPY" -c 'import json, sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["seconds"])' <<<"$fk_out")
        log "  flytekit: ${fk}s"
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
        fk=timeout
        log "  flytekit: timeout after ${FLYTEKIT_TIMEOUT}s"
    else
        fk=error failed=1
        log "  flytekit FAILED (exit $rc); stderr in $BENCH_DIR/logs/flytekit-$tag.err:"
        tail -n 5 "$BENCH_DIR/logs/flytekit-$tag.err" | sed 's/^/[bench]    /' >&2
    fi

    log "$prog n=$n chunk=$chunk: sandflow (best of $RUNS)"
    inputs=$BENCH_DIR/inputs/$prog-$n-$chunk.json
    "$VPY" -c 'import json, sys; json.dump({"l": list(range(int(sys.argv[1]))), "chunk": int(sys.argv[2])}, open(sys.argv[3], "w"))' \
        "$n" "$chunk" "$inputs"
    rc=0
    sf=$(time_sandflow "$module" "$inputs" "$n" "$offset" "$BENCH_DIR/logs/sandflow-$tag.err" \
        2>"$BENCH_DIR/logs/sandflow-$tag.runs") || rc=$?
    if [[ $rc -eq 0 ]]; then
        log "  sandflow: ${sf}s (runs: $(cat "$BENCH_DIR/logs/sandflow-$tag.runs"))"
    else
        sf=error failed=1
        log "  sandflow FAILED: $(cat "$BENCH_DIR/logs/sandflow-$tag.runs")"
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$prog" "$n" "$chunk" "$fk" "$sf" >>"$RESULTS"
done

# ---- 4. the table ------------------------------------------------------------------------
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]]; then COMMIT="$COMMIT (dirty)"; fi
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
"$VPY" - "$RESULTS" "$FLYTEKIT_VERSION" "$PY_VERSION" "$COMMIT" "$(nproc) x ${CPU:-unknown cpu}" \
    "$FLYTEKIT_TIMEOUT" "$RUNS" <<'PY'
import datetime, sys
results, fk_version, py_version, commit, cpu, timeout, runs = sys.argv[1:]
rows = []
for line in open(results):
    prog, n, chunk, fk, sf = line.rstrip("\n").split("\t")
    def num(s):
        try:
            return float(s)
        except ValueError:
            return None
    f, s = num(fk), num(sf)
    if f is not None and s:
        ratio = f"{f / s:.1f}x"
    elif fk == "timeout" and s:
        ratio = f">{float(timeout) / s:.0f}x"
    else:
        ratio = "-"
    rows.append([prog, n, chunk,
                 f"{f:.2f}" if f is not None else fk,
                 f"{s:.3f}" if s is not None else sf,
                 ratio])
head = ["program", "n", "chunk", "flytekit s", "sandflow s", "ratio (flytekit/sandflow)"]
right = [False, True, True, True, True, True]
w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
def line(r):
    return "  ".join(c.rjust(w[i]) if right[i] else c.ljust(w[i]) for i, c in enumerate(r))
print(line(head))
print("  ".join("-" * x for x in w))
for r in rows:
    print(line(r))
print()
print(f"flytekit {fk_version} local runner (Python {py_version}) vs sandflow {commit}, "
      f"release build; {cpu}; {datetime.date.today().isoformat()}.")
print(f"flytekit: one run, time of `multi_wf(...)` in-process (imports excluded), timeout {timeout}s. "
      f"sandflow: best of {runs} runs of the whole `sandflow run` process (compiled-module cache warm "
      f"after the first). Both answers checked against x+3 (nested) / x+2 (mixed).")
print()
print("| " + " | ".join(head) + " |")
print("|" + "|".join(":---" if not right[i] else "---:" for i in range(len(head))) + "|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY

if [[ $failed -ne 0 ]]; then
    log "some runs failed: see $BENCH_DIR/logs/"
    exit 1
fi
