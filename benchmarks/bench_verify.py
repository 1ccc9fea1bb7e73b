"""Throughput and memory of ``verify.check``, measured side by side in one run.

Run: ``python benchmarks/bench_verify.py``. Prints Markdown tables:

* throughput at c = 1000, one cell of 260 rows (256 random + 4 adversarial), one cell of 20,004
  rows, and the 16 cells of 4 scales × 4 label kinds at 260 rows, in float32, float64 and
  bfloat16, against the naive one-liner a user would write: draw logits and one-hot labels,
  ``jit(vmap(grad))`` of the loss, σ − one_hot, ``np.testing.assert_allclose`` — as many rows,
  in the same dtype. ``verify.check`` computes every opinion (the closed form, ``jax.grad`` in
  the dtype, the exact float64 gradient, forward mode and finite differences on 8 rows a chunk),
  every statistic, the verdicts and the report;
* the machine's floor: ``jnp.exp`` over as many float32 elements;
* peak memory (``VmHWM`` of a fresh subprocess) for c = 262,144 classes × 64 rows.

Times are the best of several warm repetitions (compilation excluded), taken in interleaved
rounds — one run of each contender per round — so that a machine whose speed drifts (a shared
VM) slows every contender alike; the ratios are the table's point.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import verify

CLASSES = 1000
ROUNDS = 7
TOLERANCE = {"float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7), "bfloat16": (1.6e-2, 1e-5)}


def best_seconds(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """The fastest of ``rounds`` warm runs of each contender, interleaved round by round (one
    untimed run of each first, which compiles)."""
    for run in contenders.values():
        run()
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def loss(z: jax.Array, y: jax.Array) -> jax.Array:
    return -jnp.sum(y * jax.nn.log_softmax(z))


GRAD_ROWS = jax.jit(jax.vmap(jax.grad(loss)))


def naive(seed: int, rows: int, dtype: str) -> None:
    """What a user writes to check σ − y against autograd on random inputs."""
    key_z, key_y = jax.random.split(jax.random.key(seed))
    z = jax.random.normal(key_z, (rows, CLASSES), dtype)
    y = jax.nn.one_hot(jax.random.randint(key_y, (rows,), 0, CLASSES), CLASSES, dtype=dtype)
    closed_form, autograd = jax.nn.softmax(z) - y, GRAD_ROWS(z, y)
    rtol, atol = TOLERANCE[dtype]
    if dtype == "bfloat16":  # NumPy compares bfloat16 slowly, if at all: widen it once
        closed_form, autograd = closed_form.astype(jnp.float32), autograd.astype(jnp.float32)
    np.testing.assert_allclose(closed_form, autograd, rtol=rtol, atol=atol)


CASES = (
    ("1 cell, 260 rows", dict(scales=1.0, labels="onehot", samples=256)),
    ("1 cell, 20,004 rows", dict(scales=1.0, labels="onehot", samples=20_000)),
    ("16 cells of 260 rows", dict(scales=(0.1, 1.0, 10.0, 100.0), samples=256)),
)


def throughput(dtype: str, rounds: int) -> list[tuple[str, float, float]]:
    """(case, naive elements/s, verify.check elements/s) for each case in one dtype."""
    rows_out = []
    for name, grid in CASES:
        def check(grid: dict = grid) -> verify.Report:
            return verify.check(classes=CLASSES, dtypes=dtype, **grid)

        report = check()
        assert report.ok, report.summary
        elements = sum(cell.rows * cell.classes for cell in report.cells)
        rows = report.cells[0].rows
        per_naive = rows * CLASSES
        with jax.enable_x64(dtype == "float64"):
            seconds = best_seconds({"naive": lambda: naive(0, rows, dtype), "check": check},
                                   rounds if rows < 1000 else max(2, rounds // 3))
        rows_out.append((name, per_naive / seconds["naive"], elements / seconds["check"]))
    return rows_out


MEMORY_PROBE = textwrap.dedent(
    """
    import re, time
    import verify
    start = time.perf_counter()
    report = verify.check(classes=262144, dtypes="float32", scales=1.0, labels="soft",
                          samples=60)
    seconds = time.perf_counter() - start
    # VmHWM, this process's own peak: ru_maxrss would count the parent's from before exec.
    status = open("/proc/self/status").read()
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
    print(report.cells[0].rows, report.cells[0].verdict, f"{peak:.0f}", f"{seconds:.1f}")
    """
)


def peak_memory() -> tuple[int, str, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(out[0]), out[1], float(out[2]), float(out[3])


def m(rate: float) -> str:
    return f"{rate / 1e6:,.1f} M"


def main() -> None:
    print(f"# verify.check throughput — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, jax {jax.__version__}, {jax.default_backend()}\n")
    z = jax.random.normal(jax.random.key(0), (260, CLASSES))
    exp = jax.jit(jnp.exp)
    floor = 260 * CLASSES / best_seconds({"exp": lambda: exp(z).block_until_ready()}, 20)["exp"]
    print(f"Floor: `jnp.exp` over float32 elements, {m(floor)} elements/s.\n")
    print(f"c = {CLASSES}; elements per second, best of {ROUNDS} interleaved warm runs "
          "(fewer for 20,004 rows)\n")
    print("| dtype | cells | naive one-liner | verify.check | verify.check ÷ naive |")
    print("|---|---|---:|---:|---:|")
    for dtype in ("float32", "float64", "bfloat16"):
        for name, ours_naive, ours in throughput(dtype, ROUNDS):
            print(f"| {dtype} | {name} | {m(ours_naive)} | {m(ours)} | "
                  f"{ours / ours_naive:.2f} |")
    rows, verdict, mib, seconds = peak_memory()
    print()
    print(f"Peak memory, c = 262,144 × {rows} rows (float32, soft labels): "
          f"{mib:,.0f} MiB resident at most, {seconds:.1f} s, verdict {verdict}")
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process, which ran the 20,004-row cells, for scale: {self_peak:,.0f} MiB)")


if __name__ == "__main__":
    main()
