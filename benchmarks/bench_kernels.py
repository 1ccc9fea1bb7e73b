"""Peak memory and time of checking a torch kernel on LLM-shaped logits, at a vocabulary of
262,144, as the batch grows; the same rows checked without a shape (the cell drawn whole) are the
baseline, measured side by side in one run.

Run: ``python benchmarks/bench_kernels.py [plain|variant] [POSITIONS ...]``. For each (even)
number of positions B·T (as ``shape=(2, B·T/2, 262144)``: calls of ``[2, 2, V]``, two positions
of two sequences, gathered from the batch), one bfloat16 cell (scale 1, one-hot labels), each
configuration in a fresh subprocess: the peak resident memory (``ru_maxrss``, imports of JAX and
torch included) and the wall time of the check. With a shape the draws are made block by block
as chunks ask for them (``verify._stream``), so memory stays flat; drawn whole, a cell holds
3 MiB a row at this vocabulary. The kernel: softmax in float32, σ·Σy − y, cast back. Nothing is
asserted here.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

VOCABULARY = 262_144
DEFAULT_POSITIONS = (16, 64, 256)
VARIANT_POSITIONS = (16, 64, 256, 512)
WHOLE_UP_TO = 64
"""The largest batch the variant baseline (drawn and called whole) is run at."""

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch
    import verify

    def torch_kernel(logits, targets, grad_output):
        z, y = logits.float(), targets.float()
        p = torch.softmax(z, dim=-1) * y.sum(dim=-1, keepdim=True) - y
        return (grad_output.float() * p).to(logits.dtype)

    how, positions, vocabulary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    grid = {"dtypes": "bfloat16", "scales": 1.0, "labels": "onehot"}
    if how == "shape":
        grid["shape"] = (2, positions // 2, vocabulary)
    else:
        grid |= {"classes": vocabulary, "samples": positions - 4}
    start = time.perf_counter()
    report = verify.check(torch_kernel, framework="torch", **grid)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"ok": report.ok, "peak_mib": peak_kib / 1024, "seconds": seconds}))
    """
)


VARIANT_CHILD = textwrap.dedent(
    """
    import json, pathlib, resource, sys, time
    sys.path.insert(0, str(pathlib.Path(sys.argv[4]) / "examples" / "kernels"))
    from chunked_ce import grad_logits
    import verify
    from verify import _check

    how, positions, vocabulary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if how == "whole":  # every variant cell one batch, as before cells were streamed
        _check.MAX_CHUNK_ELEMENTS = 2**62
    loss = verify.Loss(label_smoothing=0.1, ignore_index=-100, reduction="mean",
                       targets="indices")
    start = time.perf_counter()
    report = verify.check(grad_logits, framework="torch", loss=loss, dtypes="bfloat16",
                          scales=1.0, shape=(2, positions // 2, vocabulary))
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"ok": report.ok, "peak_mib": peak_kib / 1024, "seconds": seconds,
                      "cells": len(report.cells)}))
    """
)


def run(how: str, positions: int, child: str = CHILD) -> dict[str, float]:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", child, how, str(positions), str(VOCABULARY), str(root)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def variant(positions: tuple[int, ...]) -> None:
    from verify import _limits

    print(f"Loss variant (smoothing 0.1, ignore_index -100, mean), V = {VOCABULARY:,}, "
          f"bfloat16, six cells, examples/kernels/chunked_ce.py on CPU; {platform.machine()}, "
          f"Python {platform.python_version()}")
    print()
    print("| positions | cell | peak RSS (MiB) | estimate (MiB) | check (s) | ok |")
    print("|---:|---|---:|---:|---:|---|")
    for n in positions:
        for how in ("whole", "streamed"):  # interleaved: the baseline beside each
            if how == "whole" and n > WHOLE_UP_TO:
                continue
            r = run(how, n, VARIANT_CHILD)
            if how == "whole":
                name, estimate = "one batch (baseline)", _limits.verify_bytes(n, [VOCABULARY], 1,
                                                                           variant=True)
            else:
                name = "streamed, [2, 2, V] calls"
                estimate = _limits.streamed_variant_bytes(n, VOCABULARY, 1)
            print(f"| {n} | {name} | {r['peak_mib']:.0f} | {estimate / 2**20:.0f} | "
                  f"{r['seconds']:.1f} | {r['ok']} |")


def main(positions: tuple[int, ...]) -> None:
    print(f"V = {VOCABULARY:,}, bfloat16, one cell, torch kernel on CPU; "
          f"{platform.machine()}, Python {platform.python_version()}")
    print()
    print("| positions | draws | peak RSS (MiB) | check (s) | ok |")
    print("|---:|---|---:|---:|---|")
    for n in positions:
        for how in ("whole", "shape"):  # interleaved: the baseline beside each
            r = run(how, n)
            name = "whole cell (baseline)" if how == "whole" else "shape=(2, n/2, V), streamed"
            print(f"| {n} | {name} | {r['peak_mib']:.0f} | {r['seconds']:.1f} | {r['ok']} |")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in ("plain", "variant") else None
    given = tuple(int(a) for a in sys.argv[1 + (which is not None):])
    if which in (None, "plain"):
        main(given or DEFAULT_POSITIONS)
    if which is None:
        print()
    if which in (None, "variant"):
        variant(given or VARIANT_POSITIONS)
