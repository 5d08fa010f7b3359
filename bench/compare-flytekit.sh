#!/usr/bin/env bash
# Runs the seed's two programs ("Nested Dynamics", "Mixed Parallelism") under flytekit's
# local runner and under sandflow on the same inputs, checks both answers, and prints a
# table of wall times (plain, then markdown for BENCHMARKS.md) on stdout. Progress and
# build output go to stderr; each run's stderr is kept under $BENCH_DIR/logs/.
#
#   bench/compare-flytekit.sh            all sizes (flytekit alone takes about a minute)
#   bench/compare-flytekit.sh --quick    nested 1000/10 and mixed 10000/100 only
#   --no-build                           use the existing release binary and modules as they are
#   --no-store                           run sandflow with --no-store (record nothing); by default
#                                        every run records into a fresh store under the bench dir
#
# Environment:
#   SANDFLOW_BENCH_DIR              cache dir (venv, inputs, logs); default ~/.cache/sandflow-bench
#   SANDFLOW_BENCH_SIZES            sizes as "program:n:chunk ..." (ignored with --quick), default
#                                   "nested:1000:10 nested:10000:100 mixed:10000:100 mixed:100000:1000"
#   SANDFLOW_BENCH_FLYTEKIT_TIMEOUT seconds before a flytekit run is reported "timeout"; default 900
#   SANDFLOW_BENCH_RUNS             sandflow runs per size, the best is reported; default 5
#   FLYTEKIT_VERSION                flytekit to install in the venv; default 1.16.31
#   PYTHON                          interpreter for the venv; default python3.11, else python3
#   SANDFLOW_BIN                    the sandflow binary to time; default target/release/sandflow
#                                   (an A/B of two builds needs no rebuild in between)
#   SANDFLOW_WASM_DIR               the example guests; default examples/target/wasm32-wasip1/release
#
# What is timed, on each side both ways, so each ratio compares like with like:
#   run      flytekit: `multi_wf(...)` inside the Python process (interpreter start and
#            `import flytekit` excluded); sandflow: the run as `sandflow run` reports it on
#            stderr ("succeeded in N ms": from the scheduler's start to its result; module
#            load, JSON in and out excluded).
#   process  the whole command, spawn to exit: `python prog.py` (interpreter, imports, run) and
#            `sandflow run` (start, module load from the compiled-module cache, run, JSON out).
# The table also gives flytekit's run against sandflow's whole process, the mix most
# favourable to flytekit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${SANDFLOW_BENCH_DIR:-$HOME/.cache/sandflow-bench}
VENV=$BENCH_DIR/venv
FLYTEKIT_VERSION=${FLYTEKIT_VERSION:-1.16.31}
FLYTEKIT_TIMEOUT=${SANDFLOW_BENCH_FLYTEKIT_TIMEOUT:-900}
RUNS=${SANDFLOW_BENCH_RUNS:-5}
BUILD=1
STORE_ARGS=()
SIZES=${SANDFLOW_BENCH_SIZES:-"nested:1000:10 nested:10000:100 mixed:10000:100 mixed:100000:1000"}

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
for arg in "$@"; do
    case $arg in
        --quick) SIZES="nested:1000:10 mixed:10000:100" ;;
        --no-build) BUILD=0 ;;
        --no-store) STORE_ARGS=(--no-store) ;;
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
SANDFLOW=${SANDFLOW_BIN:-$ROOT/target/release/sandflow}
WASM_DIR=${SANDFLOW_WASM_DIR:-$ROOT/examples/target/wasm32-wasip1/release}
for f in "$SANDFLOW" "$WASM_DIR/nested_dynamics.wasm" "$WASM_DIR/mixed_parallelism.wasm"; do
    [[ -f $f ]] || die "missing $f after the build"
done
# Compiled modules are cached here, not in the user's ~/.cache/sandflow.
export SANDFLOW_CACHE_DIR=$BENCH_DIR/sandflow-cache
# With the store on (sandflow's default), runs record into a store of the bench's own, fresh
# for each call of this script, never into the user's.
export SANDFLOW_DB=$BENCH_DIR/sandflow.db
rm -f "$SANDFLOW_DB" "$SANDFLOW_DB-wal" "$SANDFLOW_DB-shm"

# Runs sandflow RUNS times on one input, checks every output, prints the best wall time.
time_sandflow() { # module inputs n offset errlog
    "$VPY" - "$SANDFLOW" "$@" "$RUNS" ${STORE_ARGS[@]+"${STORE_ARGS[@]}"} <<'PY'
import json, re, subprocess, sys, time
sandflow, module, inputs, n, offset, errlog, runs, *extra = sys.argv[1:]
n, offset, runs = int(n), int(offset), int(runs)
want = [x + offset for x in range(n)]
times, runs_ms = [], []
with open(errlog, "w") as err:
    for i in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run([sandflow, "run", module, "multi_wf", "--inputs", inputs, *extra],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        err.write(p.stderr.decode(errors="replace"))
        if p.returncode != 0:
            sys.exit(f"sandflow exited {p.returncode} (stderr in {errlog})")
        m = re.search(rb"succeeded in ([0-9.]+) ms", p.stderr)
        if not m:
            sys.exit(f"sandflow did not report its run time on stderr (see {errlog})")
        runs_ms.append(float(m.group(1)))
        try:
            got = json.loads(p.stdout)
        except ValueError as e:
            sys.exit(f"sandflow printed no JSON on stdout: {e}: {p.stdout[:200]!r}")
        if got != want:
            head = got[:5] if isinstance(got, list) else got
            sys.exit(f"sandflow gave a wrong answer (want x+{offset} for x < {n}): {head!r}...")
        times.append(dt)
print("process " + " ".join(f"{t:.4f}" for t in times) + "; run "
      + " ".join(f"{t / 1e3:.4f}" for t in runs_ms), file=sys.stderr)
print(f"{min(times):.4f} {min(runs_ms) / 1e3:.4f}")
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

    # sandflow first: flytekit leaves thousands of files in its TMPDIR, and the kernel is
    # still busy with them for a while after they are deleted.
    log "$prog n=$n chunk=$chunk: sandflow (best of $RUNS)"
    inputs=$BENCH_DIR/inputs/$prog-$n-$chunk.json
    "$VPY" -c 'import json, sys; json.dump({"l": list(range(int(sys.argv[1]))), "chunk": int(sys.argv[2])}, open(sys.argv[3], "w"))' \
        "$n" "$chunk" "$inputs"
    rc=0
    sf_both=$(time_sandflow "$module" "$inputs" "$n" "$offset" "$BENCH_DIR/logs/sandflow-$tag.err" \
        2>"$BENCH_DIR/logs/sandflow-$tag.runs") || rc=$?
    if [[ $rc -eq 0 ]]; then
        read -r sf sf_run <<<"$sf_both"
        log "  sandflow: process ${sf}s, run ${sf_run}s (all: $(cat "$BENCH_DIR/logs/sandflow-$tag.runs"))"
    else
        sf=error sf_run=error failed=1
        log "  sandflow FAILED: $(cat "$BENCH_DIR/logs/sandflow-$tag.runs")"
    fi
    log "$prog n=$n chunk=$chunk: flytekit (timeout ${FLYTEKIT_TIMEOUT}s)"
    # flytekit's local runner leaves its sandboxes in $TMPDIR: give it one to delete after.
    fk_tmp=$(mktemp -d "$BENCH_DIR/flytekit-tmp.XXXXXX")
    rc=0
    fk_t0=$(date +%s.%N)
    fk_out=$(TMPDIR=$fk_tmp timeout --kill-after=30 "$FLYTEKIT_TIMEOUT" \
        "$VPY" "$ROOT/bench/flytekit/$prog.py" "$n" "$chunk" 2>"$BENCH_DIR/logs/flytekit-$tag.err") || rc=$?
    fk_t1=$(date +%s.%N)
    rm -rf "$fk_tmp"
    fk_proc=-
    if [[ $rc -eq 0 ]]; then
        fk=$("$VPY" -c 'import json, sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["seconds"])' <<<"$fk_out")
        fk_proc=$("$VPY" -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$fk_t0" "$fk_t1")
        log "  flytekit: run ${fk}s, process ${fk_proc}s"
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
        fk=timeout
        log "  flytekit: timeout after ${FLYTEKIT_TIMEOUT}s"
    else
        fk=error failed=1
        log "  flytekit FAILED (exit $rc); stderr in $BENCH_DIR/logs/flytekit-$tag.err:"
        tail -n 5 "$BENCH_DIR/logs/flytekit-$tag.err" | sed 's/^/[bench]    /' >&2
    fi

    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$prog" "$n" "$chunk" "$fk" "$fk_proc" "$sf_run" "$sf" >>"$RESULTS"
done

# ---- 4. the table ------------------------------------------------------------------------
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]]; then COMMIT="$COMMIT (dirty)"; fi
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
"$VPY" - "$RESULTS" "$FLYTEKIT_VERSION" "$PY_VERSION" "$COMMIT" "$(nproc) x ${CPU:-unknown cpu}" \
    "$FLYTEKIT_TIMEOUT" "$RUNS" "$([[ ${#STORE_ARGS[@]} -eq 0 ]] && echo "store on" || echo "--no-store")" <<'PY'
import datetime, sys
results, fk_version, py_version, commit, cpu, timeout, runs, store = sys.argv[1:]
rows = []
def num(s):
    try:
        return float(s)
    except ValueError:
        return None
def ratio(a, b, a_text):
    if a is not None and b:
        r = a / b
        return f"{r:.0f}x" if r >= 100 else f"{r:.1f}x"
    if a_text == "timeout" and b:
        return f">{float(timeout) / b:.0f}x"
    return "-"
for line in open(results):
    prog, n, chunk, fk, fk_proc, sf_run, sf = line.rstrip("\n").split("\t")
    f, fp, sr, s = num(fk), num(fk_proc), num(sf_run), num(sf)
    rows.append([prog, n, chunk,
                 f"{f:.2f}" if f is not None else fk,
                 f"{sr:.3f}" if sr is not None else sf_run,
                 ratio(f, sr, fk),
                 f"{fp:.2f}" if fp is not None else fk_proc,
                 f"{s:.3f}" if s is not None else sf,
                 ratio(fp, s, fk),
                 ratio(f, s, fk)])
head = ["program", "n", "chunk", "flytekit run s", "sandflow run s", "run ratio",
        "flytekit process s", "sandflow process s", "process ratio",
        "flytekit run / sandflow process"]
right = [False, True, True] + [True] * 7
w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
def line(r):
    return "  ".join(c.rjust(w[i]) if right[i] else c.ljust(w[i]) for i, c in enumerate(r))
print(line(head))
print("  ".join("-" * x for x in w))
for r in rows:
    print(line(r))
print()
print(f"flytekit {fk_version} local runner (Python {py_version}) vs sandflow {commit}, "
      f"release build ({store}); {cpu}; {datetime.date.today().isoformat()}.")
print(f"flytekit: one run (timeout {timeout}s); run = `multi_wf(...)` timed in-process, process = "
      f"`python prog.py` spawn to exit. sandflow: best of {runs} runs (compiled-module cache warm "
      f"after the first); run = the time `sandflow run` reports, process = spawn to exit. "
      f"Both answers checked against x+3 (nested) / x+2 (mixed).")
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
