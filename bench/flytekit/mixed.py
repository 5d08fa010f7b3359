# "Mixed Parallelism" from the Flyte docs' Nested Parallelization page, copied verbatim
# (between the BEGIN/END markers), plus a `__main__` block that runs it locally for
# bench/compare-flytekit.sh: `python mixed.py N CHUNK` runs multi_wf(l=list(range(N)),
# chunk=CHUNK), checks every output is x+2, and prints the wall time as one JSON line.

# ---- BEGIN seed program (verbatim) ----
"""
The structure for 6 items and a chunk size of 2, the workflow will be broken down as follows:

multi_wf -> level1 -> level2 -> mappable
                             -> mappable
                      level2 -> mappable
                             -> mappable
                      level2 -> mappable
                             -> mappable
"""
import typing
from flytekit import task, workflow, dynamic, map_task


@task
def mappable(a: int) -> int:
    return a + 2


@workflow
def level2(l: typing.List[int]) -> typing.List[int]:
    return map_task(mappable)(a=l)


@task
def reduce(l: typing.List[typing.List[int]]) -> typing.List[int]:
    f = []
    for i in l:
        f.extend(i)
    return f


@dynamic
def level1(l: typing.List[int], chunk: int) -> typing.List[int]:
    v = []
    for i in range(0, len(l), chunk):
        v.append(level2(l=l[i : i + chunk]))
    return reduce(l=v)


@workflow
def multi_wf(l: typing.List[int], chunk: int) -> typing.List[int]:
    return level1(l=l, chunk=chunk)

# ---- END seed program ----


if __name__ == "__main__":
    import json
    import sys
    import time

    n, chunk = int(sys.argv[1]), int(sys.argv[2])
    l = list(range(n))
    t0 = time.perf_counter()
    out = multi_wf(l=l, chunk=chunk)
    seconds = time.perf_counter() - t0
    want = [x + 2 for x in l]
    if list(out) != want:
        print(f"mixed: wrong output for n={n} chunk={chunk}: got {len(out)} items, "
              f"first {list(out)[:5]}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"program": "mixed", "n": n, "chunk": chunk, "seconds": round(seconds, 3)}))
