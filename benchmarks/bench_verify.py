"""Throughput and memory of ``verify.check``, measured side by side in one run.

Run: ``python benchmarks/bench_verify.py``. Prints a Markdown table:

* the machine's floor: ``jnp.exp`` over as many float32 elements (nothing faster touches them all);
* the naive one-liner a user would write: draw logits and one-hot labels, ``jit(vmap(grad))`` of
  the loss, σ − one_hot, ``np.testing.assert_allclose`` (and the same with ``jnp.allclose``);
* ``verify.check`` at float32, c = 1000: 4 scales × 4 label kinds, 256 random + 4 adversarial rows
  a cell, with every opinion — the closed form, ``jax.grad`` in float32, the exact float64
  gradient, forward mode and finite differences on 8 rows a cell — the verdicts and the report;
* peak memory (``ru_maxrss`` of a fresh subprocess) for c = 262,144 classes × 64 rows.

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
SAMPLES = 256
ROWS = SAMPLES + 4  # verify adds 4 adversarial rows a cell; the baselines get as many rows
SCALES = (0.1, 1.0, 10.0, 100.0)
ROUNDS = 15


def best_seconds(contenders: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The fastest of ``ROUNDS`` warm runs of each contender, interleaved round by round (one
    untimed run of each first, which compiles)."""
    for run in contenders.values():
        run()
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def loss(z: jax.Array, y: jax.Array) -> jax.Array:
    return -jnp.sum(y * jax.nn.log_softmax(z))


GRAD_ROWS = jax.jit(jax.vmap(jax.grad(loss)))


def naive(seed: int, compare: str) -> None:
    """What a user writes to check σ − y against autograd on random inputs."""
    key_z, key_y = jax.random.split(jax.random.key(seed))
    z = jax.random.normal(key_z, (ROWS, CLASSES))
    y = jax.nn.one_hot(jax.random.randint(key_y, (ROWS,), 0, CLASSES), CLASSES)
    closed_form, autograd = jax.nn.softmax(z) - y, GRAD_ROWS(z, y)
    if compare == "numpy":
        np.testing.assert_allclose(closed_form, autograd, rtol=1.3e-6, atol=1e-5)
    else:
        assert bool(jnp.allclose(closed_form, autograd, rtol=1.3e-6, atol=1e-5))


def throughputs() -> tuple[dict[str, float], int]:
    """Elements per second of each contender, and the number of cells ``verify.check`` ran."""
    z = jax.random.normal(jax.random.key(0), (ROWS, CLASSES))
    exp = jax.jit(jnp.exp)

    def check() -> verify.Report:
        return verify.check(classes=CLASSES, dtypes="float32", scales=SCALES, samples=SAMPLES)

    report = check()
    assert report.ok, report.summary
    per_call = {"exp": ROWS * CLASSES, "numpy": ROWS * CLASSES, "jnp": ROWS * CLASSES,
                "check": sum(cell.rows * cell.classes for cell in report.cells)}
    seconds = best_seconds({
        "exp": lambda: exp(z).block_until_ready(),
        "numpy": lambda: naive(0, "numpy"),
        "jnp": lambda: naive(0, "jnp"),
        "check": check,
    })
    return {name: per_call[name] / seconds[name] for name in per_call}, len(report.cells)


MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys, time
    import verify
    start = time.perf_counter()
    report = verify.check(classes=262144, dtypes="float32", scales=1.0, labels="soft",
                          samples=60)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(report.cells[0].rows, report.cells[0].verdict, f"{peak:.0f}", f"{seconds:.1f}")
    """
)


def peak_memory() -> tuple[int, str, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(out[0]), out[1], float(out[2]), float(out[3])


def main() -> None:
    rates, cells = throughputs()
    floor, naive_numpy, naive_jnp, ours = rates["exp"], rates["numpy"], rates["jnp"], rates["check"]
    rows, verdict, mib, seconds = peak_memory()

    def m(rate: float) -> str:
        return f"{rate / 1e6:,.0f} M"

    print(f"# verify.check throughput — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, jax {jax.__version__}, {jax.default_backend()}\n")
    print("float32, c = 1000, 260 rows a call; elements per second (best of "
          f"{ROUNDS} interleaved warm runs)\n")
    print("| what | elements/s | verify.check ÷ this |")
    print("|---|---:|---:|")
    print(f"| exp floor: `jnp.exp` over the same elements | {m(floor)} | {ours / floor:.2f} |")
    print(f"| naive one-liner, `np.testing.assert_allclose` | {m(naive_numpy)} | "
          f"{ours / naive_numpy:.2f} |")
    print(f"| naive one-liner, `jnp.allclose` | {m(naive_jnp)} | {ours / naive_jnp:.2f} |")
    print(f"| **verify.check**, {cells} cells, all opinions, verdicts, report | {m(ours)} | 1.00 |")
    print()
    print(f"Peak memory, c = 262,144 × {rows} rows (float32, soft labels): "
          f"{mib:,.0f} MiB resident at most, {seconds:.1f} s, verdict {verdict}")
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process, for scale: {self_peak:,.0f} MiB)")


if __name__ == "__main__":
    main()
