"""Throughput of a loss-variant check against the plain check, measured side by side in one run.

Run: ``python benchmarks/bench_variants.py``. Prints a Markdown table: for c = 1000 classes,
256 random + 4 adversarial rows a cell, float32, the plain ``verify.check`` (σ − y) and
``verify.check(loss=...)`` for several variants (the derivation's closed form for each), in
elements judged per second (cells × rows × c over the best warm time), and the ratio to the
plain check. The issue asks for a ratio of at least 0.5.

Times are the best of several warm repetitions (compilation excluded), in interleaved rounds,
so that a shared machine whose speed drifts slows every contender alike.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import verify
from derivation import Loss

CLASSES = 1000
SAMPLES = 256
ROUNDS = 5
GRID = {"classes": (CLASSES,), "dtypes": ("float32",), "scales": (1.0,), "samples": SAMPLES}
VARIANTS = {
    "plain (σ − y)": None,
    "label smoothing 0.1, mean": Loss(label_smoothing=0.1, reduction="mean"),
    "z-loss 1e-4, soft-cap 30, T = 2": Loss(z_loss=1e-4, softcap=30.0, temperature=2.0),
    "index targets, ignore_index, weights, mean": Loss(
        weight=tuple(1.0 + (k % 3) for k in range(CLASSES)), ignore_index=-100,
        reduction="mean", targets="indices"),
}


def run(loss: Loss | None) -> Callable[[], verify.Report]:
    labels = {"labels": ("onehot",)}
    return lambda: verify.check(loss=loss, **GRID, **labels)


def main() -> None:
    contenders = {name: run(loss) for name, loss in VARIANTS.items()}
    elements = {}
    for name, contender in contenders.items():  # untimed: compiles
        report = contender()
        assert report.ok, name
        elements[name] = sum(cell.rows for cell in report.cells) * CLASSES
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(ROUNDS):
        for name, contender in contenders.items():
            start = time.perf_counter()
            contender()
            best[name] = min(best[name], time.perf_counter() - start)
    plain = elements["plain (σ − y)"] / best["plain (σ − y)"]
    print(f"verify.check throughput, c = {CLASSES}, {SAMPLES} + 4 rows a cell, float32 "
          f"({platform.machine()}, best of {ROUNDS} warm interleaved rounds)\n")
    print("| check | cells | best time (s) | elements / s | ratio to plain |")
    print("|---|---:|---:|---:|---:|")
    for name in contenders:
        rate = elements[name] / best[name]
        cells = elements[name] // ((SAMPLES + 4) * CLASSES)
        print(f"| {name} | {cells} | {best[name]:.3f} | {rate:.3g} | {rate / plain:.2f} |")
    worst = min(elements[n] / best[n] / plain for n in contenders if n != "plain (σ − y)")
    print(f"\nslowest variant: {worst:.2f}× the plain check's throughput "
          f"({'meets' if worst >= 0.5 else 'misses'} the 0.5× asked)")


if __name__ == "__main__":
    main()
