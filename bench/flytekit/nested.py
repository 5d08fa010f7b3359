# "Nested Dynamics" from the Flyte docs' Nested Parallelization page, copied verbatim
# (between the BEGIN/END markers), plus a `__main__` block that runs it locally for
# bench/compare-flytekit.sh: `python nested.py N CHUNK` runs multi_wf(l=list(range(N)),
# chunk=CHUNK), checks every output is x+3, and prints the wall time as one JSON line.

# ---- BEGIN seed program (verbatim) ----
"""
The structure for 6 items and a chunk size of 2, the workflow will be broken down as follows:

multi_wf -> level1 -> level2 -> core_wf -> step1 -> step2
                             -> core_wf -> step1 -> step2
                      level2 -> core_wf -> step1 -> step2
                             -> core_wf -> step1 -> step2
                      level2 -> core_wf -> step1 -> step2
                             -> core_wf -> step1 -> step2
"""

import typing
from flytekit import task, workflow, dynamic, LaunchPlan


@task
def step1(a: int) -> int:
    return a + 1


@task
def step2(a: int) -> int:
    return a + 2


@workflow
def core_wf(a: int) -> int:
    return step2(a=step1(a=a))


core_wf_lp = LaunchPlan.get_or_create(core_wf)


@dynamic
def level2(l: typing.List[int]) -> typing.List[int]:
    return [core_wf_lp(a=a) for a in l]


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
        v.append(level2(l=l[i:i + chunk]))
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
    want = [x + 3 for x in l]
    if list(out) != want:
        print(f"nested: wrong output for n={n} chunk={chunk}: got {len(out)} items, "
              f"first {list(out)[:5]}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"program": "nested", "n": n, "chunk": chunk, "seconds": round(seconds, 3)}))
