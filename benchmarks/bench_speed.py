"""The table of issue 8 from one command: start-up and throughput against their baselines, each
measured in the same run, with the targets beside them.

Run: ``python benchmarks/bench_speed.py [rounds] [checkout]`` (from the repository root, with
the package installed). With a checkout of an earlier version (``git worktree add --detach DIR
COMMIT``) its ``verify`` and ``report`` are timed too, cold and warm, in the same interleaved
rounds.

* start-up (:mod:`bench_startup`): JAX's own start-up, then ``softmax-ce verify`` (the default
  grid) and ``softmax-ce report``, cold (an empty cache directory) and warm (the cache the cold
  run wrote), best wall seconds of interleaved rounds;
* throughput (:mod:`bench_verify`): ``verify.check`` at c = 1000, one cell of 260 and of 20,004
  rows, in float32, float64 and bfloat16, against the naive one-liner on as many rows in the
  same dtype, interleaved warm runs;
* peak memory of a fresh process checking c = 262,144 classes × 64 rows.
"""

from __future__ import annotations

import os
import platform
import sys

import bench_startup
import bench_verify

START_TARGETS = {"verify cold": 5.0, "verify warm": 2.0, "report cold": 5.0, "report warm": 2.0}
"""The largest wall time of each command, in JAX start-ups."""
THROUGHPUT_TARGET = 1.0
"""The least throughput of ``verify.check``, in naive one-liners (float32)."""
MEMORY_TARGET_MIB = 2048


def _verdict(met: bool) -> str:
    return "met" if met else "short"


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    before = sys.argv[2] if len(sys.argv) > 2 else None
    print(f"# softmax-ce speed — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start\n")

    names, wall, cpu = bench_startup.timings(rounds, before)
    print(f"Start-up, best of {rounds} interleaved rounds (fresh processes)\n")
    print("| command | wall s | ÷ JAX start-up | target | CPU s | ÷ JAX |")
    print("|---|---:|---:|---|---:|---:|")
    for name in names:
        ratio = wall[name] / wall["jax"]
        target = START_TARGETS.get(name)
        goal = "" if target is None else f"≤ {target:g}× ({_verdict(ratio <= target)})"
        print(f"| {name} | {wall[name]:.2f} | {ratio:.1f}× | {goal} | {cpu[name]:.2f} | "
              f"{cpu[name] / cpu['jax']:.1f}× |")

    print(f"\nThroughput at c = {bench_verify.CLASSES}, elements per second, best of "
          f"{bench_verify.ROUNDS} interleaved warm runs (fewer for 20,004 rows)\n")
    print("| dtype | cells | naive one-liner | verify.check | ÷ naive | target |")
    print("|---|---|---:|---:|---:|---|")
    for dtype in ("float32", "float64", "bfloat16"):
        for case, naive, ours in bench_verify.throughput(dtype, bench_verify.ROUNDS):
            if case.startswith("16"):
                continue  # the table: one cell of each size
            ratio = ours / naive
            goal = (f"≥ {THROUGHPUT_TARGET:g}× ({_verdict(ratio >= THROUGHPUT_TARGET)})"
                    if dtype == "float32" else "")
            print(f"| {dtype} | {case} | {bench_verify.m(naive)} | {bench_verify.m(ours)} | "
                  f"{ratio:.2f} | {goal} |")

    rows, verdict, mib, seconds = bench_verify.peak_memory()
    print(f"\nPeak memory, c = 262,144 × {rows} rows (float32, soft labels): {mib:,.0f} MiB "
          f"(target < {MEMORY_TARGET_MIB:,} MiB: {_verdict(mib < MEMORY_TARGET_MIB)}), "
          f"{seconds:.1f} s, verdict {verdict}")


if __name__ == "__main__":
    main()
