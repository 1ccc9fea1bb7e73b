"""What a loss variant's programs cost to compile, and what the cheaper compilation costs at run
time: the reference program compiled unoptimised up to ``FAST_COMPILE_ELEMENTS`` logits
(``verify._variant_cells``) against every program optimised, side by side in one run.

Run: ``python benchmarks/bench_variant_compile.py``. Prints two Markdown tables:

1. **compilation** of a workload shaped like the loss tests' (ten variants at c = 4 and 12 rows
   in float32, one at c = 10 in four dtypes, one at c = 1000 and 20 rows), each side in a fresh
   process with the persistent cache off: XLA backend compilations (count and seconds, from
   ``jax.monitoring``'s ``/jax/core/compile/backend_compile_duration`` events) of the variant
   reference program, of the closed-form program and of everything, the workload's wall time,
   and its verdict counts (equal on both sides, or the script fails);
2. **run time** of a large cell, c = 1000 and 20,000 + 4 rows in float32 (above the threshold:
   optimised on both sides by construction), warm, best of a few; and the same cell with the
   threshold raised so that it is compiled unoptimised, to show what the threshold avoids.

Compile seconds are less noisy than wall time on a shared machine, but still drift: compare
the ratios within one run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter

SIDES = {"every program optimised (before)": -1, "small programs unoptimised (now)": None}
EVENT = "/jax/core/compile/backend_compile_duration"
LARGE_ROWS = 20_000
REPEATS = 3


def _workload() -> list[dict]:
    from derivation import Loss

    small = {"classes": [4], "dtypes": ["float32"], "samples": 8, "scales": [1.0, 30.0]}
    variants = [
        Loss(reduction="none", targets="indices"),
        Loss(label_smoothing=0.1, reduction="mean", targets="indices"),
        Loss(softcap=3.0, targets="indices"),
        Loss(label_smoothing=0.1, weight=(0.5, 2.0, 1.0, 3.0), reduction="mean",
             targets="indices"),
        Loss(weight=(0.5, 2.0, 1.0, 3.0), reduction="mean", targets="indices"),
        Loss(ignore_index=-100, reduction="mean", targets="indices"),
        Loss(z_loss=0.01),
        Loss(reduction="mean"),
        Loss(reduction="none"),
        Loss(temperature=2.0, label_smoothing=0.2),
    ]
    runs = [{"loss": loss, **small} for loss in variants]
    runs.append({"loss": Loss(label_smoothing=0.1, ignore_index=0, reduction="mean",
                              targets="indices"), "classes": [10], "samples": 12,
                 "dtypes": ["float64", "float32", "float16", "bfloat16"], "scales": [1.0]})
    runs.append({"loss": Loss(z_loss=1e-4, softcap=30.0), "classes": [1000], "samples": 16,
                 "dtypes": ["float32"], "scales": [1.0], "labels": ["onehot"]})
    return runs


def _side(gate: int | None, what: str) -> dict:
    """One side, in this (fresh) process: ``what`` is ``compile`` or ``large``."""
    import jax.monitoring

    import verify
    from derivation import Loss
    from verify import _variant_cells

    if gate is not None:
        _variant_cells.FAST_COMPILE_ELEMENTS = gate
    events: list[tuple[str, float]] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **kw: events.append((kw.get("fun_name", "?"), seconds))
        if event == EVENT else None)
    if what == "large":
        loss = Loss(label_smoothing=0.1, reduction="mean", targets="indices")
        kwargs = {"loss": loss, "classes": [1000], "dtypes": ["float32"], "scales": [1.0],
                  "samples": LARGE_ROWS}
        verify.check(**kwargs)  # compiles
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            report = verify.check(**kwargs)
            best = min(best, time.perf_counter() - start)
        return {"best": best, "elements": sum(c.rows for c in report.cells) * 1000}
    start = time.perf_counter()
    verdicts: Counter = Counter()
    for kwargs in _workload():
        verdicts.update(cell.verdict for cell in verify.check(**kwargs).cells)
    wall = time.perf_counter() - start

    def of(name: str | None) -> list[float]:
        return [s for n, s in events if name is None or n == f"jit({name})"]

    return {"wall": wall, "verdicts": dict(sorted(verdicts.items())),
            **{key: [len(of(name)), sum(of(name))] for key, name in
               (("reference", "_variant_reference"), ("closed_form", "_closed_form"),
                ("all", None))}}


def _run(gate: int | None, what: str) -> dict:
    env = {**os.environ, "SOFTMAX_CE_NO_CACHE": "1", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, __file__, "--side", json.dumps([gate, what])],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    results = {name: _run(gate, "compile") for name, gate in SIDES.items()}
    verdicts = {json.dumps(r["verdicts"]) for r in results.values()}
    assert len(verdicts) == 1, f"the verdicts differ: {verdicts}"
    first = next(iter(results.values()))
    print(f"Compilation of a loss-test-shaped workload ({len(_workload())} checks, "
          f"{sum(first['verdicts'].values())} cells, verdicts {first['verdicts']}; "
          f"{platform.machine()}, a fresh process each, persistent cache off)\n")
    print("| side | reference programs | their compile s | closed-form programs | their "
          "compile s | all compilations | all compile s | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['reference'][0]} | {r['reference'][1]:.2f} | "
              f"{r['closed_form'][0]} | {r['closed_form'][1]:.2f} | {r['all'][0]} | "
              f"{r['all'][1]:.2f} | {r['wall']:.2f} |")
    before, now = results.values()
    print(f"\nreference programs' compile time, now / before: "
          f"{now['reference'][1] / before['reference'][1]:.2f}; all compile time: "
          f"{now['all'][1] / before['all'][1]:.2f}; wall: {now['wall'] / before['wall']:.2f}")

    large = {"optimised (the threshold, now and before)": _run(None, "large"),
             "unoptimised (threshold raised past the cell)": _run(2**62, "large")}
    base = next(iter(large.values()))
    print(f"\nRun time of one check at c = 1000, {LARGE_ROWS} + 4 rows, float32, index targets "
          f"(2 cells), warm, best of {REPEATS}\n")
    print("| reference program | best s | elements / s | ratio |")
    print("|---|---:|---:|---:|")
    for name, r in large.items():
        print(f"| {name} | {r['best']:.3f} | {r['elements'] / r['best']:.3g} | "
              f"{base['best'] / r['best']:.2f} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--side"]:
        print(json.dumps(_side(*json.loads(sys.argv[2]))))
    else:
        main()
